"""`new` and `check` compare server defaults and types, as env.py allows, and say what they did not compare.

A project made by `alembic init -t generic`, with R1..R3 (tests/harness/templates.py) and models that match
their head; env.py is the template's, with its target_metadata pointed at the models. Alembic compares server
defaults only when env.py asks, so a model that gained `server_default="untitled"` used to be "no difference"
for `new` (exit 6) and a pass for `check`. The defaults are compared as PostgreSQL stores them (no false
difference for `'new'` against `'new'::text`); what env.py turns off stays off and is said; a default
PostgreSQL cannot compare is listed, never passed in silence.

Run as processes: each test edits the models, and a fresh interpreter is the only honest way to import them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hindsight_migrate.errors import ExitCode
from tests.conftest import flatten
from tests.harness import dbstate
from tests.harness.templates import init_project

# The models at R3, the head of the harness's chain: widgets(id, name, color), gadgets(id, widget_id, label).
MODELS = """\
import sqlalchemy as sa

metadata = sa.MetaData()

widgets = sa.Table(
    "widgets",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("color", sa.Text(), nullable=True),
    sa.Index("ix_widgets_color", "color"),
)

gadgets = sa.Table(
    "gadgets",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("widget_id", sa.Integer(), sa.ForeignKey("widgets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("label", sa.Text(), server_default="new", nullable=False),
    sa.Index("ix_gadgets_widget_id", "widget_id"),
)
"""
# env.py finds the models next to itself, whatever the current folder.
USE_MODELS = (
    "import sys\nfrom pathlib import Path\nsys.path.insert(0, str(Path(__file__).parent))\n"
    "from models import metadata as target_metadata  # noqa: E402\n"
)
NAME = '    sa.Column("name", sa.Text(), nullable=False),\n'
NAME_WITH_DEFAULT = '    sa.Column("name", sa.Text(), server_default="untitled", nullable=False),\n'


def project_with_models(folder: Path) -> Path:
    init_project(folder, "generic")
    (folder / "migrations" / "models.py").write_text(MODELS)
    env_py = folder / "migrations" / "env.py"
    text = env_py.read_text()
    assert "target_metadata = None\n" in text, "alembic init's env.py changed; update the test"
    env_py.write_text(text.replace("target_metadata = None\n", USE_MODELS, 1))
    return folder


def edit(path: Path, old: str, new: str, *, count: int = 1) -> None:
    text = path.read_text()
    assert text.count(old) == count, f"{old!r} is not {count} time(s) in {path.name}; update the test"
    path.write_text(text.replace(old, new))


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "hindsight_migrate", *args],
        cwd=project,
        env={**env, "COLUMNS": "200", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def revision_files(project: Path) -> set[Path]:
    return set((project / "migrations" / "versions").glob("*.py"))


def test_a_server_default_added_to_a_model_is_written_by_new(tmp_path: Path, database_url: str) -> None:
    project = project_with_models(tmp_path / "proj")
    edit(project / "migrations" / "models.py", NAME, NAME_WITH_DEFAULT)
    before = revision_files(project)

    result = run(project, "--url", database_url, "new", "widget names default to untitled")

    assert result.returncode == 0, result.stdout + result.stderr
    out = flatten(result.stdout)
    assert "types compared, server defaults compared" in out
    assert "alter column widgets name server default 'untitled'" in out
    (written,) = revision_files(project) - before
    text = written.read_text()
    assert "op.alter_column(" in text and "'widgets'" in text and "'name'" in text
    assert "server_default='untitled'" in text, text

    # Applied, the database has the default, and the models and the chain agree again.
    assert run(project, "--url", database_url, "up", "--yes").returncode == 0
    default = dbstate.query(
        database_url,
        "SELECT column_default FROM information_schema.columns WHERE table_name = 'widgets' AND column_name = 'name'",
    )
    assert default == [("'untitled'::text",)]
    again = run(project, "--url", database_url, "check")
    assert again.returncode == 0, again.stdout + again.stderr


def test_check_fails_on_a_server_default_the_chain_does_not_have(tmp_path: Path, database_url: str) -> None:
    project = project_with_models(tmp_path / "proj")
    passed = run(project, "--url", database_url, "check")
    # 'new' in the models, 'new'::text in the database: the same default, as PostgreSQL stores both.
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "types compared, server defaults compared" in flatten(passed.stdout)

    edit(project / "migrations" / "models.py", NAME, NAME_WITH_DEFAULT)
    result = run(project, "--url", database_url, "check", "--json")

    assert result.returncode == ExitCode.CHECK_FAILED, result.stdout + result.stderr
    report = json.loads(result.stdout)
    models = next(p for p in report["problems"] if p["kind"] == "models")
    assert models["details"] == ["alter column widgets name (server default 'untitled')"]
    assert any("server defaults compared" in checked for checked in report["checked"])
    assert dbstate.scratch_databases_of(database_url) == []


def test_what_env_py_turns_off_stays_off_and_is_said(tmp_path: Path, database_url: str) -> None:
    project = project_with_models(tmp_path / "proj")
    edit(
        project / "migrations" / "env.py",
        "connection=connection, target_metadata=target_metadata",
        "connection=connection, target_metadata=target_metadata, compare_server_default=False, compare_type=False",
    )
    edit(project / "migrations" / "models.py", NAME, NAME_WITH_DEFAULT)

    checked = run(project, "--url", database_url, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    out = flatten(checked.stdout)
    assert "types not compared (env.py turned it off), server defaults not compared (env.py turned it off)" in out

    new = run(project, "--url", database_url, "new", "anything")
    assert new.returncode == ExitCode.REFUSED, new.stdout + new.stderr
    said = flatten(new.stderr)
    assert "found no difference" in said
    assert "Not compared: column types (env.py passes compare_type=False); server defaults (env.py passes " in said


def test_env_pys_own_comparison_function_is_used(tmp_path: Path, database_url: str) -> None:
    project = project_with_models(tmp_path / "proj")
    # A function that finds every server default the same: the project's choice, used as it is, and said.
    edit(
        project / "migrations" / "env.py",
        "connection=connection, target_metadata=target_metadata",
        "connection=connection, target_metadata=target_metadata, compare_server_default=lambda *args: False",
    )
    edit(project / "migrations" / "models.py", NAME, NAME_WITH_DEFAULT)

    checked = run(project, "--url", database_url, "check")

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "types compared, server defaults compared by env.py's own function" in flatten(checked.stdout)


def test_a_default_postgresql_cannot_compare_is_listed_not_passed(tmp_path: Path, database_url: str) -> None:
    project = project_with_models(tmp_path / "proj")
    edit(
        project / "migrations" / "models.py",
        'server_default="new"',
        'server_default=sa.text("no_such_function()")',
    )

    result = run(project, "--url", database_url, "check", "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    (warning,) = [w for w in report["warnings"] if w["kind"] == "models"]
    assert "could not compare" in warning["message"]
    (item,) = warning["items"]
    assert (item["table"], item["column"]) == ("gadgets", "label")
    assert "'new'::text" in item["text"] and "no_such_function()" in item["text"]
    assert "does not exist" in item["text"]
    assert any("except 1 PostgreSQL could not compare" in checked for checked in report["checked"])


def test_hindsights_own_defaults_compare_equal(hindsight_project: Path, database_url: str) -> None:
    """Hindsight's env.py turns the comparison off (for Alembic's false positives); without that, its defaults
    (gen_random_uuid(), now(), jsonb and text literals, identities) all compare equal at head: no false positive."""
    edit(
        hindsight_project / "migrations" / "env.py",
        "        target_metadata=target_metadata,\n        compare_type=True,\n        compare_server_default=False,\n",
        "        target_metadata=target_metadata,\n",
        count=2,  # offline and online
    )
    result = run(hindsight_project, "--url", database_url, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "types compared, server defaults compared" in flatten(result.stdout)
