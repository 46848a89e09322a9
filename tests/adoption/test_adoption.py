"""Adopting the tool on an existing project: its env.py, its revisions and its habits as they are.

An env.py that builds its own engine (from a variable of its own, from config.attributes as
pytest-alembic hands it, or async as Alembic's async template) runs unmodified on the tool's
connection; the project's own exceptions are reported as the project's (exit 14); no-op
downgrades are reverted with a warning unless the team refuses them; duplicate revision ids
name both files; Alembic's log lines stay out of the output unless --verbose; and
``check --against-target`` serves chains that cannot start from an empty database.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from hindsight_migrate.errors import ExitCode
from tests.conftest import assert_failure, bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.projects import TINY_BASE, Rev, tiny_project, write_project, write_revision

TWO = "bbbb00000002"
THREE = "cccc00000003"
DUPLICATE = "dddd00000002"

CREATE_WIDGETS = Rev(
    TWO,
    (TINY_BASE,),
    upgrade='op.execute("CREATE TABLE widgets (id integer)")',
    downgrade='op.execute("DROP TABLE widgets")',
)
CREATE_GADGETS = Rev(
    THREE,
    (TWO,),
    upgrade='op.execute("CREATE TABLE gadgets (id integer)")',
    downgrade='op.execute("DROP TABLE gadgets")',
)

# -- env.py files as projects have them ------------------------------------------------------

# Reads a variable of its own, builds its own engine, never looks at config.attributes.
ENV_PY_OWN_VARIABLE = """\
import os

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
target_metadata = None


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url") or "postgresql://",
                      literal_binds=True, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = (os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
           or config.get_main_option("sqlalchemy.url"))
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
"""

# pytest-alembic style: config.attributes["connection"] is expected to be an Engine.
ENV_PY_ATTRIBUTES_ENGINE = """\
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
target_metadata = None


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url") or "postgresql://",
                      literal_binds=True, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection") or engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
"""

# Alembic's async template.
ENV_PY_ASYNC = """\
import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

config = context.config
target_metadata = None


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True,
                      target_metadata=target_metadata, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    connectable = async_engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await connectable.dispose()


def run_migrations_online() -> None:
    asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
"""

MISSING_PACKAGE = "hm_no_such_package_xyz"
ENV_PY_MISSING_PACKAGE = f"import {MISSING_PACKAGE}\n" + ENV_PY_ATTRIBUTES_ENGINE

# As Alembic's generic template does: fileConfig() of alembic.ini first, which turns Alembic's INFO lines on.
ENV_PY_FILE_CONFIG = "from logging.config import fileConfig\n" + ENV_PY_ATTRIBUTES_ENGINE.replace(
    "config = context.config\n",
    "config = context.config\nif config.config_file_name is not None:\n    fileConfig(config.config_file_name)\n",
    1,
)

# Alembic's standard logging sections (as in the repo's alembic.ini).
LOGGING_SECTIONS = """
[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""


RUNNING_UPGRADE_LOG = "[alembic.runtime.migration] Running upgrade"


# -- helpers -----------------------------------------------------------------------------


def project(folder: Path, *revisions: Rev, env_py: str, settings: str = "") -> str:
    """tiny_project's baseline plus ``revisions``, with the given env.py."""
    ini = write_project(folder, [Rev(TINY_BASE, ()), *revisions], env_py=env_py)
    if settings:
        ini.write_text(ini.read_text() + settings.strip() + "\n")
    return str(ini)


def set_ini_url(ini: str, url: str) -> None:
    """Write ``url`` into the ini's (empty) sqlalchemy.url line, escaped for configparser."""
    path = Path(ini)
    text = path.read_text()
    assert "sqlalchemy.url =\n" in text
    path.write_text(text.replace("sqlalchemy.url =\n", f"sqlalchemy.url = {url.replace('%', '%%')}\n", 1))


def execute(url: str, *statements: str) -> None:
    """Run SQL on ``url`` and commit (dbstate.query does not commit)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def newest_apply_log(url: str) -> tuple[Any, ...]:
    rows = dbstate.query(
        url,
        "SELECT command, from_revisions, to_revisions, outcome, error FROM hindsight_migrate.apply_log "
        "ORDER BY id DESC LIMIT 1",
    )
    assert rows, "no apply_log row"
    return rows[0]


def applied_revisions(url: str) -> set[str]:
    return {row[0] for row in dbstate.query(url, "SELECT revision FROM hindsight_migrate.applied_revisions")}


def assert_not_a_tool_bug(output: str) -> None:
    assert "bug in hindsight-migrate" not in flatten(output), output
    assert "Traceback" not in output, output


# -- 1. env.py that builds its own engine ------------------------------------------------


def test_env_py_reading_its_own_variable_runs_on_the_tools_connection(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", database_url)
    ini = project(tmp_path / "p", CREATE_WIDGETS, CREATE_GADGETS, env_py=ENV_PY_OWN_VARIABLE)

    result = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert result.exit_code == 0, result.output
    assert {"things", "widgets", "gadgets"} <= dbstate.tables(database_url)
    assert dbstate.alembic_version(database_url) == [THREE]
    command, _, to_revisions, outcome, error = newest_apply_log(database_url)
    assert (command, to_revisions, outcome, error) == ("up", THREE, "succeeded", None)
    assert applied_revisions(database_url) == {TINY_BASE, TWO, THREE}

    down = invoke("-c", ini, "--url", database_url, "down", "--yes")

    assert down.exit_code == 0, down.output
    assert dbstate.alembic_version(database_url) == [TWO]
    assert "gadgets" not in dbstate.tables(database_url)
    assert "widgets" in dbstate.tables(database_url)
    assert newest_apply_log(database_url)[:4] == ("down", THREE, TWO, "succeeded")


def test_env_py_asking_for_another_database_is_refused_before_anything_runs(
    tmp_path: Path,
    database_url: str,
    make_database: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other_url = make_database("other")
    monkeypatch.setenv("TEST_DATABASE_URL", other_url)
    ini = project(tmp_path / "p", CREATE_WIDGETS, env_py=ENV_PY_OWN_VARIABLE)
    before = dbstate.snapshot(database_url)
    other_before = dbstate.snapshot(other_url)

    result = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert_failure(result, ExitCode.CONFIG, "asked for the database in TEST_DATABASE_URL", "--url")
    assert dbstate.snapshot(database_url) == before
    assert dbstate.snapshot(other_url) == other_before
    assert dbstate.scratch_databases_of(database_url) == []


def test_env_py_expecting_an_engine_in_config_attributes(tmp_path: Path, database_url: str) -> None:
    ini = project(tmp_path / "p", CREATE_WIDGETS, env_py=ENV_PY_ATTRIBUTES_ENGINE)

    result = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert result.exit_code == 0, result.output
    assert "widgets" in dbstate.tables(database_url)
    assert dbstate.alembic_version(database_url) == [TWO]
    status = invoke("-c", ini, "--url", database_url, "status")
    assert status.exit_code == 0, status.output


def test_async_env_py_with_an_asyncpg_url(tmp_path: Path, database_url: str) -> None:
    ini = project(tmp_path / "p", CREATE_WIDGETS, CREATE_GADGETS, env_py=ENV_PY_ASYNC)
    set_ini_url(ini, make_url(database_url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False))

    up = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert up.exit_code == 0, up.output
    assert dbstate.alembic_version(database_url) == [THREE]
    assert {"widgets", "gadgets"} <= dbstate.tables(database_url)

    down = invoke("-c", ini, "--url", database_url, "down", "--yes")

    assert down.exit_code == 0, down.output
    assert dbstate.alembic_version(database_url) == [TWO]
    assert "gadgets" not in dbstate.tables(database_url)


def test_async_env_py_without_url_uses_the_ini_asyncpg_url(tmp_path: Path, database_url: str) -> None:
    ini = project(tmp_path / "p", CREATE_WIDGETS, env_py=ENV_PY_ASYNC)
    set_ini_url(ini, make_url(database_url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False))

    up = invoke("-c", ini, "up", "--yes")

    assert up.exit_code == 0, up.output
    assert dbstate.alembic_version(database_url) == [TWO]
    assert "widgets" in dbstate.tables(database_url)
    assert newest_apply_log(database_url)[3] == "succeeded"


# -- 2. errors in the project's code ---------------------------------------------------


def test_a_revision_raising_at_import_is_the_projects_error(tmp_path: Path, database_url: str) -> None:
    ini = project(tmp_path / "p", CREATE_WIDGETS, env_py=ENV_PY_ATTRIBUTES_ENGINE)
    path = Path(ini).parent / "migrations" / "versions" / f"{TWO}.py"
    path.write_text(
        path.read_text().replace(
            "from alembic import op\n", 'import os\n\nfrom alembic import op\n\nCOLOR = os.environ["WIDGET_COLOR"]\n', 1
        )
    )
    before = dbstate.snapshot(database_url)

    for args in (("history",), ("up", "--yes")):
        result = invoke("-c", ini, "--url", database_url, *args)
        assert_failure(result, ExitCode.PROJECT_CODE, "KeyError", "WIDGET_COLOR", f"{TWO}.py", "line")
        assert_not_a_tool_bug(result.output)

    assert dbstate.snapshot(database_url) == before
    assert dbstate.scratch_databases_of(database_url) == []


RAISES_AFTER_DDL = Rev(
    THREE,
    (TWO,),
    upgrade='op.execute("CREATE TABLE made_by_b (id int)")\nraise RuntimeError("backfill source missing")',
    downgrade='op.execute("DROP TABLE made_by_b")',
)


def test_a_revision_raising_in_upgrade_is_caught_in_the_rehearsal(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        project(tmp_path / "p", CREATE_WIDGETS, RAISES_AFTER_DDL, env_py=ENV_PY_ATTRIBUTES_ENGINE), database_url
    )
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert_failure(
        result,
        ExitCode.PROJECT_CODE,
        "RuntimeError",
        "backfill source missing",
        f"{THREE}.py",
        "line",
        "rehearsal",
        "target is unchanged",
    )
    assert_not_a_tool_bug(result.output)
    assert dbstate.alembic_version(database_url) == [TINY_BASE]
    assert dbstate.snapshot(database_url) == before
    assert "made_by_b" not in dbstate.tables(database_url)
    assert dbstate.scratch_databases_of(database_url) == []


def test_a_revision_raising_in_upgrade_without_rehearsal_stops_after_the_previous(
    tmp_path: Path, database_url: str
) -> None:
    ini = bootstrapped(
        project(tmp_path / "p", CREATE_WIDGETS, RAISES_AFTER_DDL, env_py=ENV_PY_ATTRIBUTES_ENGINE), database_url
    )

    result = invoke("-c", ini, "--url", database_url, "up", "--no-rehearsal", "--yes")

    assert_failure(result, ExitCode.PROJECT_CODE, "RuntimeError", "backfill source missing", f"{THREE}.py")
    assert_not_a_tool_bug(result.output)
    assert dbstate.alembic_version(database_url) == [TWO]
    assert "widgets" in dbstate.tables(database_url)
    assert "made_by_b" not in dbstate.tables(database_url)
    flat = flatten(result.output)
    assert "Database now at" in flat, result.output
    assert TWO in flat.split("Database now at", 1)[1], result.output
    command, _, _, outcome, error = newest_apply_log(database_url)
    assert (command, outcome) == ("up", "failed")
    assert error is not None and "RuntimeError" in error
    assert dbstate.scratch_databases_of(database_url) == []


def test_env_py_importing_a_missing_package_says_it_is_not_installed(tmp_path: Path, database_url: str) -> None:
    ini = project(tmp_path / "p", CREATE_WIDGETS, env_py=ENV_PY_MISSING_PACKAGE)
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert_failure(result, ExitCode.PROJECT_CODE, MISSING_PACKAGE, "not installed")
    assert_not_a_tool_bug(result.output)
    assert dbstate.snapshot(database_url) == before


# -- 3. no-op downgrades -----------------------------------------------------------------

BACKFILL = Rev(TWO, (TINY_BASE,), upgrade="op.execute(\"UPDATE things SET name = 'backfilled'\")", downgrade="pass")


def backfilled(ini: str, url: str) -> None:
    """Bootstrap, add a row, apply the backfill."""
    bootstrapped(ini, url)
    execute(url, "INSERT INTO things (name) VALUES ('original')")
    result = invoke("-c", ini, "--url", url, "up", "--yes")
    assert result.exit_code == 0, result.output
    assert dbstate.query(url, "SELECT name FROM things") == [("backfilled",)]


def test_a_noop_downgrade_is_reverted_with_a_warning(tmp_path: Path, database_url: str) -> None:
    ini = str(tiny_project(tmp_path / "p", BACKFILL))
    backfilled(ini, database_url)

    result = invoke("-c", ini, "--url", database_url, "down", "--yes")

    assert result.exit_code == 0, result.output
    assert "its downgrade does nothing" in flatten(result.output), result.output
    assert dbstate.alembic_version(database_url) == [TINY_BASE]
    assert dbstate.query(database_url, "SELECT name FROM things") == [("backfilled",)]


def test_refuse_noop_downgrades_refuses_it(tmp_path: Path, database_url: str) -> None:
    ini = str(tiny_project(tmp_path / "p", BACKFILL, settings="refuse_noop_downgrades = true"))
    backfilled(ini, database_url)
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "down", "--yes")

    assert_failure(result, ExitCode.REFUSED, "refuse_noop_downgrades", TWO)
    assert dbstate.snapshot(database_url) == before
    assert dbstate.alembic_version(database_url) == [TWO]


def test_a_raising_downgrade_stays_refused(tmp_path: Path, database_url: str) -> None:
    ini = str(
        tiny_project(
            tmp_path / "p",
            Rev(
                TWO,
                (TINY_BASE,),
                upgrade='op.execute("CREATE TABLE widgets (id int)")',
                downgrade='raise RuntimeError("no way back")',
            ),
        )
    )
    bootstrapped(ini, database_url)
    assert invoke("-c", ini, "--url", database_url, "up", "--yes").exit_code == 0
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "down", "--yes")

    assert_failure(result, ExitCode.REFUSED, "cannot be reverted", TWO)
    assert dbstate.snapshot(database_url) == before
    assert "widgets" in dbstate.tables(database_url)


def test_check_warns_about_noop_downgrades_and_fails_when_refused(tmp_path: Path, database_url: str) -> None:
    ini = str(tiny_project(tmp_path / "lenient", BACKFILL))
    backfilled(ini, database_url)

    lenient = invoke("-c", ini, "--url", database_url, "check")

    assert lenient.exit_code == 0, lenient.output
    assert "downgrade does nothing" in flatten(lenient.output), lenient.output

    strict_ini = str(tiny_project(tmp_path / "strict", BACKFILL, settings="refuse_noop_downgrades = true"))
    strict = invoke("-c", strict_ini, "--url", database_url, "check")

    assert_failure(strict, ExitCode.CHECK_FAILED, TWO)


# -- 4. duplicate revision ids --------------------------------------------------------------


def test_duplicate_revision_ids_name_both_files(tmp_path: Path, database_url: str) -> None:
    ini = str(tiny_project(tmp_path / "p", Rev(DUPLICATE, (TINY_BASE,), message="first copy")))
    versions = Path(ini).parent / "migrations" / "versions"
    spare = tmp_path / "spare"
    spare.mkdir()
    second = write_revision(spare, Rev(DUPLICATE, (TINY_BASE,), message="second copy"))
    shutil.move(second, versions / "second_copy_of_dddd.py")
    before = dbstate.snapshot(database_url)

    history = invoke("-c", ini, "history", "--offline")
    assert_failure(history, ExitCode.REVISION, f"{DUPLICATE}.py", "second_copy_of_dddd.py")

    up = invoke("-c", ini, "--url", database_url, "up", "--yes")
    assert_failure(up, ExitCode.REVISION, f"{DUPLICATE}.py", "second_copy_of_dddd.py")
    assert dbstate.snapshot(database_url) == before


# -- 5. Alembic's log lines ------------------------------------------------------------------


def test_alembic_log_lines_are_hidden_unless_verbose(
    tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    ini = project(tmp_path / "p", CREATE_WIDGETS, env_py=ENV_PY_FILE_CONFIG)
    Path(ini).write_text(Path(ini).read_text() + LOGGING_SECTIONS)
    # Real processes: fileConfig's handler writes to the sys.stderr of the moment it is made.
    quiet = subprocess.run(
        [sys.executable, "-m", "hindsight_migrate", "-c", ini, "--url", database_url, "up", "--yes"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    quiet_output = quiet.stdout + quiet.stderr

    assert quiet.returncode == 0, quiet_output
    assert dbstate.alembic_version(database_url) == [TWO]
    assert "INFO  [alembic" not in quiet_output, quiet_output
    # The plan's SQL has Alembic's "-- Running upgrade" comments; the log line is another thing.
    assert RUNNING_UPGRADE_LOG not in quiet_output, quiet_output

    other_url = make_database("verbose")
    verbose = subprocess.run(
        [sys.executable, "-m", "hindsight_migrate", "--verbose", "-c", ini, "--url", other_url, "up", "--yes"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    verbose_output = verbose.stdout + verbose.stderr

    assert verbose.returncode == 0, verbose_output
    assert dbstate.alembic_version(other_url) == [TWO]
    assert RUNNING_UPGRADE_LOG in verbose_output, verbose_output
    assert "INFO  [alembic" in verbose_output, verbose_output


# -- 6. check --against-target ---------------------------------------------------------------


# Models for the tiny project's V1 plus a table V1 does not create, so that check has something to compare.
MODELS_WITH_MADE_ELSEWHERE = """\
from sqlalchemy import Column, Index, Integer, MetaData, Table, Text

target_metadata = MetaData()
Table("things", target_metadata, Column("id", Integer, primary_key=True), Column("name", Text, nullable=False),
      Index("ix_things_name", "name"))
Table("made_elsewhere", target_metadata, Column("id", Integer), Column("x", Integer))
"""


def test_check_against_target_for_a_chain_that_cannot_start_from_nothing(tmp_path: Path, database_url: str) -> None:
    ini_path = tiny_project(
        tmp_path / "p",
        Rev(
            TWO,
            (TINY_BASE,),
            upgrade='op.execute("ALTER TABLE made_elsewhere ADD COLUMN x int")',
            downgrade='op.execute("ALTER TABLE made_elsewhere DROP COLUMN x")',
        ),
    )
    env_py = tmp_path / "p" / "migrations" / "env.py"
    env_py.write_text(env_py.read_text().replace("target_metadata = None\n", MODELS_WITH_MADE_ELSEWHERE))
    ini = bootstrapped(ini_path, database_url)
    # The table came from somewhere V1 does not know of (metadata.create_all(), say).
    execute(database_url, "CREATE TABLE made_elsewhere (id int)")
    up = invoke("-c", ini, "--url", database_url, "up", "--yes")
    assert up.exit_code == 0, up.output
    assert dbstate.alembic_version(database_url) == [TWO]
    before = dbstate.snapshot(database_url)

    plain = invoke("-c", ini, "--url", database_url, "check")

    # pytest-alembic's test_upgrade, as a check item: the chain does not build from nothing (exit 13, not a refusal).
    assert_failure(
        plain, ExitCode.CHECK_FAILED, "✗ upgrade:", 'relation "made_elsewhere" does not exist', "--against-target"
    )
    assert dbstate.scratch_databases_of(database_url) == []

    against = invoke("-c", ini, "--url", database_url, "check", "--against-target")

    assert against.exit_code == 0, against.output
    assert "models against the target" in flatten(against.output), against.output
    assert dbstate.snapshot(database_url) == before


def test_a_version_table_of_the_projects_own_name_is_copied_and_left_out_of_the_review(
    tmp_path: Path, database_url: str
) -> None:
    """env.py's version_table (two environments in one database keep one each) is the tool's bookkeeping under
    whatever name: a schema-only copy carries its rows (or the rehearsal would start nowhere), and it is not
    reviewed as an application table."""
    ini = tiny_project(
        tmp_path / "p",
        Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("ALTER TABLE things ADD COLUMN note text")'),
        settings="rehearsal_data_limit_mb = 0",  # a copy of the schema only, as for a large target
    )
    env_py = ini.parent / "migrations" / "env.py"
    configured = env_py.read_text().replace(
        "target_metadata=target_metadata", 'target_metadata=target_metadata, version_table="hm_versions"'
    )
    env_py.write_text(configured)
    bootstrapped(ini, database_url)
    assert dbstate.query(database_url, "SELECT version_num FROM hm_versions") == [(TINY_BASE,)]

    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run")

    assert result.exit_code == ExitCode.OK, result.output
    said = flatten(result.output)
    assert "rehearsed on a scratch copy of the target's schema only" in said, result.output
    assert "hm_versions" not in said.split("-- Running upgrade")[0], result.output  # not reviewed as a table
    applied = invoke("-c", str(ini), "--url", database_url, "up", "--yes", "--no-rehearsal")
    assert applied.exit_code == ExitCode.OK, applied.output
    assert dbstate.query(database_url, "SELECT version_num FROM hm_versions") == [("bbbb00000002",)]
