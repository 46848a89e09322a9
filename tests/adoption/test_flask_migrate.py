"""A Flask + Flask-SQLAlchemy + Flask-Migrate project, made at test time with ``flask db init``, run as it is:
no script_location in migrations/alembic.ini, an env.py that reads flask's current_app, the database in the
app's config. ``hindsight-migrate up/status/history/check/down`` from the project's folder with FLASK_APP set,
as ``flask db upgrade`` is run, and the same schema as ``flask db upgrade`` builds."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import assert_failure, flatten, invoke
from tests.harness import dbstate
from tests.harness.processes import subprocess_env
from tests.harness.templates import schema_of

REVISION = "f1a5c0000001"

APP = '''
import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


class Widget(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["APP_DATABASE_URL"]
    db.init_app(app)
    migrate.init_app(app, db)
    return app
'''

FIRST_REVISION = f'''"""widgets

Revision ID: {REVISION}
Revises:
Create Date: 2026-12-05 00:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = "{REVISION}"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "widget",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade():
    op.drop_table("widget")
'''


def _flask(folder: Path, url: str, *args: str) -> None:
    env = {**os.environ, "FLASK_APP": "app", "APP_DATABASE_URL": url}
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "flask", *args], cwd=folder, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def flask_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "flaskapp"
    folder.mkdir()
    (folder / "app.py").write_text(APP)
    _flask(folder, "postgresql+psycopg://nobody@127.0.0.1:1/none", "db", "init")
    (folder / "migrations" / "versions" / f"{REVISION}_widgets.py").write_text(FIRST_REVISION)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("FLASK_APP", "app")
    yield folder
    sys.modules.pop("app", None)  # the app module is the project's: the next test imports its own


@pytest.mark.parametrize("shape", ["app factory", "module-level app"])
def test_a_flask_migrate_project_runs_as_flask_db_runs_it(
    shape: str, flask_project: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    ini = flask_project / "migrations" / "alembic.ini"
    assert "script_location" not in ini.read_text()
    app = "app"
    if shape == "module-level app":
        # Made once, at import: its engine outlives one run of env.py (the rehearsal's) into the next (the apply's).
        (flask_project / "app.py").write_text(APP + "\napp = create_app()\n")
        app = "app:app"
    # As `flask db upgrade` is run: from the project's folder, FLASK_APP set, the database the app's own (no --url).
    env = subprocess_env(FLASK_APP=app, APP_DATABASE_URL=database_url)

    def tool(*args: str) -> tuple[int, str]:
        command = [sys.executable, "-m", "hindsight_migrate", *args]
        done = subprocess.run(command, cwd=flask_project, env=env, capture_output=True, text=True)
        return done.returncode, done.stdout + done.stderr

    code, output = tool("up", "--yes")
    assert code == 0, output
    assert "from the URL env.py builds" in flatten(output), output
    assert dbstate.alembic_version(database_url) == [REVISION]

    code, output = tool("status")
    assert code == 0, output
    code, output = tool("history")
    assert code == 0 and f"base → {REVISION}" in flatten(output), output
    code, output = tool("check")
    assert code == 0, output
    assert "models against a scratch database at head" in flatten(output), output

    raw_url = make_database("raw")
    _flask(flask_project, raw_url, "db", "upgrade")
    assert schema_of(database_url) == schema_of(raw_url)

    code, output = tool("down", "--to", "base", "--yes")
    assert code == 0, output
    assert dbstate.alembic_version(database_url) == [] and "widget" not in dbstate.tables(database_url)


def test_a_flask_app_that_cannot_be_found_is_named(flask_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_APP", "no_such_module")

    result = invoke("--url", "postgresql://nobody@127.0.0.1:1/none", "up", "--sql")

    assert_failure(
        result, 3, "This is a Flask-Migrate project, and its app could not be found (FLASK_APP=no_such_module"
    )
