"""Async env.py files as written in the wild, on a project made by ``alembic init -t async``: one that uses
what it finds in ``config.attributes["connection"]`` as an AsyncEngine, and the cookbook's, which hands it to
its sync migration function. Raw Alembic sets no such attribute; both build the schema raw Alembic builds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import invoke
from tests.harness import dbstate
from tests.harness.templates import R1, R3, init_project, raw_alembic, schema_of

_ASYNC_ENGINE_FACTORY = "    connectable = async_engine_from_config("
_RUN_ONLINE = '''def run_migrations_online() -> None:
    """Run migrations in 'online' mode."""

    asyncio.run(run_async_migrations())
'''

SHAPES = {
    # The handed connection, used as the AsyncEngine env.py would otherwise build.
    "as an AsyncEngine": (
        _ASYNC_ENGINE_FACTORY,
        '    connectable = config.attributes.get("connection") or async_engine_from_config(',
    ),
    # Alembic's cookbook: a connection handed over goes to the sync function; only without one does env.py go async.
    "the cookbook's": (
        _RUN_ONLINE,
        _RUN_ONLINE.replace(
            "    asyncio.run(run_async_migrations())\n",
            '    connectable = config.attributes.get("connection", None)\n'
            "    if connectable is None:\n"
            "        asyncio.run(run_async_migrations())\n"
            "    else:\n"
            "        do_run_migrations(connectable)\n",
        ),
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_an_async_env_py_that_uses_the_handed_connection_works_as_under_raw_alembic(
    shape: str, tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    project = tmp_path / "project"
    ini = init_project(project, "async")
    env_py = project / "migrations" / "env.py"
    old, new = SHAPES[shape]
    assert old in env_py.read_text(), env_py.read_text()
    env_py.write_text(env_py.read_text().replace(old, new))

    up = invoke("-c", str(ini), "--url", database_url, "up", "--yes")
    assert up.exit_code == 0, up.output
    raw_url = make_database("raw")
    raw_alembic(project, ["-c", "alembic.ini"], raw_url, "upgrade", "head")
    assert dbstate.alembic_version(database_url) == dbstate.alembic_version(raw_url) == [R3]
    assert schema_of(database_url) == schema_of(raw_url)

    status = invoke("-c", str(ini), "--url", database_url, "status")
    assert status.exit_code == 0, status.output

    down = invoke("-c", str(ini), "--url", database_url, "down", "--to", R1, "--yes")
    assert down.exit_code == 0, down.output
    raw_alembic(project, ["-c", "alembic.ini"], raw_url, "downgrade", R1)
    assert dbstate.alembic_version(database_url) == dbstate.alembic_version(raw_url) == [R1]
    assert schema_of(database_url) == schema_of(raw_url)
