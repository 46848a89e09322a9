"""The project's own database, when nobody names another.

Many env.py files build their database URL themselves: from the application's settings (a
``.env`` one folder up, read the way pydantic-settings reads it), from an ini option of their
own, or from an environment variable while ``sqlalchemy.url`` still holds ``alembic init``'s
placeholder. Raw ``alembic upgrade head`` migrates that database; with no ``--url``, no
DATABASE_URL and no real ``sqlalchemy.url``, so does hindsight-migrate, and it says where the URL
came from. The embedded server is not started (its folder not made) for such a project.

Each case runs the tool on one database and raw Alembic, with an environment that makes the same
env.py build a URL for a second database, and compares the two.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import assert_failure, flatten, invoke
from tests.harness.dbstate import alembic_version
from tests.harness.templates import R3, init_project, raw_alembic_as_written, schema_of

# env.py of an application that builds its URL itself (Alembic's generic template otherwise).
ENV_PY = '''\
"""env.py of an application that builds its own database URL."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
target_metadata = None


{database_url}


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = create_engine(database_url(), poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''

# As an app's pydantic-settings class reads them: the environment first, then the .env one folder up
# (the repository's root, beside the app's folder), under the app's own names.
FROM_SETTINGS = '''\
def database_url() -> str:
    values: dict[str, str] = {}
    for line in (Path(__file__).resolve().parents[2] / ".env").read_text().splitlines():
        name, equals, value = line.partition("=")
        if equals and not line.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    values.update({name: value for name, value in os.environ.items() if name.startswith("POSTGRES_")})
    password = values.get("POSTGRES_PASSWORD")
    login = values["POSTGRES_USER"] + (":" + password if password else "")
    server, port, name = values["POSTGRES_SERVER"], values["POSTGRES_PORT"], values["POSTGRES_DB"]
    if server.startswith("/"):  # a socket folder (the tests' server), as libpq takes it
        return f"postgresql+psycopg://{login}@/{name}?host={server}&port={port}"
    return f"postgresql+psycopg://{login}@{server}:{port}/{name}"'''

FROM_INI_OPTION = '''\
def database_url() -> str:
    url = config.get_main_option("db_url")
    assert url, "db_url is not set in alembic.ini"
    return url'''

FROM_ENVIRONMENT = '''\
def database_url() -> str:
    return os.environ["APP_DATABASE_URL"]'''

PLACEHOLDER_LINE = re.compile(r"^sqlalchemy\.url = driver://.*$", re.MULTILINE)

Case = Callable[[Path, str, pytest.MonkeyPatch | None], dict[str, str]]


def app_project(root: Path, env_py_function: str, sqlalchemy_url: str | None) -> Path:
    """``alembic init`` in root/app (with R1..R3), env.py building its own URL; ``sqlalchemy_url`` replaces
    the placeholder line (None: the line is removed). Returns the app folder."""
    app = root / "app"
    init_project(app, "generic")
    (app / "migrations" / "env.py").write_text(ENV_PY.format(database_url=env_py_function))
    ini = app / "alembic.ini"
    line = "" if sqlalchemy_url is None else f"sqlalchemy.url = {sqlalchemy_url}"
    text, count = PLACEHOLDER_LINE.subn(lambda _: line, ini.read_text())
    assert count == 1, text
    ini.write_text(text)
    return app


def settings_of(url: str) -> dict[str, str]:
    parsed = make_url(url)
    values = {
        "POSTGRES_SERVER": parsed.host or str(parsed.query.get("host") or "localhost"),
        "POSTGRES_PORT": str(parsed.port or 5432),
        "POSTGRES_USER": parsed.username or "postgres",
        "POSTGRES_DB": parsed.database or "",
    }
    if parsed.password:
        values["POSTGRES_PASSWORD"] = str(parsed.password)
    return values


def settings_project(root: Path, url: str, monkeypatch: pytest.MonkeyPatch | None) -> dict[str, str]:
    """(a) The app's settings in root/.env, under POSTGRES_* names; no sqlalchemy.url at all."""
    app_project(root, FROM_SETTINGS, None)
    (root / ".env").write_text("".join(f"{name}={value}\n" for name, value in settings_of(url).items()))
    return {}


def ini_option_project(root: Path, url: str, monkeypatch: pytest.MonkeyPatch | None) -> dict[str, str]:
    """(b) The URL in an ini option of the app's own (db_url); sqlalchemy.url left empty."""
    app = app_project(root, FROM_INI_OPTION, "")
    ini = app / "alembic.ini"
    rendered = make_url(url).render_as_string(hide_password=False).replace("%", "%%")
    ini.write_text(ini.read_text().replace("[alembic]\n", f"[alembic]\ndb_url = {rendered}\n", 1))
    return {}


def environment_project(root: Path, url: str, monkeypatch: pytest.MonkeyPatch | None) -> dict[str, str]:
    """(c) The URL in an environment variable of the app's; sqlalchemy.url keeps alembic init's placeholder."""
    app_project(root, FROM_ENVIRONMENT, "driver://user:pass@localhost/dbname")
    rendered = make_url(url).render_as_string(hide_password=False)
    if monkeypatch is not None:
        monkeypatch.setenv("APP_DATABASE_URL", rendered)
    return {"APP_DATABASE_URL": rendered}


CASES: dict[str, Case] = {
    "settings_from_dotenv_one_folder_up": settings_project,
    "custom_ini_option": ini_option_project,
    "placeholder_that_env_py_ignores": environment_project,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_up_migrates_the_database_env_py_builds_as_raw_alembic_does(
    case: str, tmp_path: Path, database_url: str, make_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    build = CASES[case]
    build(tmp_path / "tool", database_url, monkeypatch)
    app = tmp_path / "tool" / "app"
    raw_url = make_database("raw")
    raw_environment = build(tmp_path / "raw", raw_url, None)

    result = invoke("-c", str(app / "alembic.ini"), "up", "--yes")  # no --url; conftest removes DATABASE_URL
    raw_alembic_as_written(tmp_path / "raw" / "app", "upgrade", "head", environment=raw_environment)

    assert result.exit_code == 0, result.output
    assert "(from the URL env.py builds (migrations/env.py))" in flatten(result.output), result.output
    assert alembic_version(database_url) == [R3]
    assert schema_of(database_url) == schema_of(raw_url)
    assert not (app / ".hindsight").exists(), "the embedded server was started"
    assert not (tmp_path / ".hindsight").exists(), "the embedded server was started"


def test_status_reads_the_database_env_py_builds(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment_project(tmp_path / "tool", database_url, monkeypatch)
    ini = tmp_path / "tool" / "app" / "alembic.ini"

    result = invoke("-c", str(ini), "status")

    assert_failure(result, 10)  # behind: R1..R3 pending on the empty database, not a placeholder refusal
    assert "the URL env.py builds (migrations/env.py)" in flatten(result.output), result.output
    assert "placeholder" not in result.output
    assert not (tmp_path / "tool" / "app" / ".hindsight").exists()


def test_an_error_of_env_py_while_finding_its_database_is_the_projects(tmp_path: Path, database_url: str) -> None:
    settings_project(tmp_path / "tool", database_url, None)
    (tmp_path / "tool" / ".env").unlink()  # env.py cannot read its settings
    ini = tmp_path / "tool" / "app" / "alembic.ini"

    result = invoke("-c", str(ini), "up", "--yes")

    assert_failure(result, 14, "FileNotFoundError", "migrations/env.py", "line")
    assert "bug in hindsight-migrate" not in result.output
    assert alembic_version(database_url) is None
    assert not (tmp_path / "tool" / "app" / ".hindsight").exists()


def test_a_url_flag_for_another_database_than_env_py_builds_is_still_refused(
    tmp_path: Path, database_url: str, make_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_database("other")
    environment_project(tmp_path / "tool", other, monkeypatch)
    ini = tmp_path / "tool" / "app" / "alembic.ini"

    result = invoke("-c", str(ini), "--url", database_url, "up", "--yes")

    assert_failure(result, 3, "APP_DATABASE_URL")
    assert alembic_version(database_url) is None
    assert alembic_version(other) is None


def test_the_embedded_server_is_used_only_when_env_py_names_no_database_either(tmp_path: Path) -> None:
    project = tmp_path / "project"
    ini = init_project(project, "generic")
    # Alembic's own env.py, its sqlalchemy.url line deleted: engine_from_config on a section with no URL.
    text, count = PLACEHOLDER_LINE.subn("", ini.read_text())
    assert count == 1
    ini.write_text(text)

    result = invoke("-c", str(ini), "status")

    assert_failure(result, 10)  # behind: R1..R3 pending on the new embedded database
    assert "embedded PostgreSQL" in flatten(result.output), result.output
    assert (project / ".hindsight" / "pgdata").is_dir()


# -- the driver the project configured -------------------------------------------------------


def test_an_async_projects_url_is_shown_with_asyncpg_and_the_connection_driver_said_once(
    tmp_path: Path, database_url: str
) -> None:
    project = tmp_path / "project"
    ini = init_project(project, "async")
    asyncpg = make_url(database_url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    text, count = PLACEHOLDER_LINE.subn(lambda _: "sqlalchemy.url = " + asyncpg.replace("%", "%%"), ini.read_text())
    assert count == 1
    ini.write_text(text)

    up = invoke("-c", str(ini), "up", "--yes")
    status = invoke("-c", str(ini), "status", "--format", "json")
    history = invoke("-c", str(ini), "history", "--format", "json")

    assert up.exit_code == 0, up.output
    header = flatten(up.output)
    assert "Database: postgresql+asyncpg://" in header, up.output
    assert header.count("connected with psycopg 3") == 1, up.output
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["database"].startswith("postgresql+asyncpg://"), status.stdout
    assert json.loads(history.stdout)["database"]["database"].startswith("postgresql+asyncpg://"), history.stdout
    for result in (up, status, history):
        assert "+psycopg" not in result.output, result.output
