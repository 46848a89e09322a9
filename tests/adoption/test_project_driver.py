"""The project's env.py and revisions run as they run under raw Alembic, whatever driver and shape they use.

An async env.py may take ``config.attributes["connection"]`` for an AsyncEngine (``async with
connectable.connect()``, ``await connectable.dispose()``) or, as the cookbook does, hand it to
``do_run_migrations`` as a sync Connection: both run unchanged, and end where raw Alembic ends.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hindsight_migrate.errors import ExitCode
from tests.conftest import invoke
from tests.harness import dbstate
from tests.harness.templates import R1, R3, init_project, raw_alembic, schema_of

RAW_CONFIG = ["-c", "alembic.ini"]

# env.py shapes found in projects, each a rewrite of Alembic's async template.
_ASYNC_ENGINE_SHAPE = (
    "    connectable = async_engine_from_config(",
    '    connectable = config.attributes.get("connection")\n'
    "    if connectable is None:  # pytest-alembic's way: the caller hands an engine\n"
    "        connectable = async_engine_from_config(",
)
_ASYNC_ENGINE_BEGIN_SHAPE = (
    "    async with connectable.connect() as connection:\n",
    '    connectable = config.attributes.get("connection") or connectable\n'
    "    async with connectable.begin() as connection:\n",
)
_COOKBOOK_SHAPE = (
    "    asyncio.run(run_async_migrations())\n",
    '    connectable = config.attributes.get("connection", None)\n'
    "    if connectable is None:\n"
    "        asyncio.run(run_async_migrations())\n"
    "    else:\n"
    "        do_run_migrations(connectable)\n",
)


def _rewrite_env_py(project: Path, change: tuple[str, str]) -> None:
    env_py = project / "migrations" / "env.py"
    text = env_py.read_text()
    assert text.count(change[0]) == 1, f"Alembic's async env.py changed shape:\n{text}"
    env_py.write_text(text.replace(change[0], change[1]))


def _ok(ini: Path, url: str, *args: str) -> str:
    result = invoke("-c", str(ini), "--url", url, *args)
    assert result.exit_code == 0, result.output
    assert "bug in hindsight-migrate" not in result.output and "Traceback" not in result.output, result.output
    return result.output


@pytest.mark.parametrize("shape", ["async engine", "async engine begin", "cookbook"])
def test_async_env_py_using_the_handed_connection_runs_as_under_raw_alembic(
    shape: str, tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    project = tmp_path / "project"
    ini = init_project(project, "async")
    changes = {
        "async engine": _ASYNC_ENGINE_SHAPE,
        "async engine begin": _ASYNC_ENGINE_BEGIN_SHAPE,
        "cookbook": _COOKBOOK_SHAPE,
    }
    _rewrite_env_py(project, changes[shape])
    raw_url = make_database("raw")

    _ok(ini, database_url, "up", "--yes")
    raw_alembic(project, RAW_CONFIG, raw_url, "upgrade", "head")
    assert dbstate.alembic_version(database_url) == dbstate.alembic_version(raw_url) == [R3]
    assert schema_of(database_url) == schema_of(raw_url)

    status = _ok(ini, database_url, "status")
    assert R3 in status

    _ok(ini, database_url, "down", "--to", R1, "--yes")
    raw_alembic(project, RAW_CONFIG, raw_url, "downgrade", R1)
    assert dbstate.alembic_version(database_url) == dbstate.alembic_version(raw_url) == [R1]
    assert schema_of(database_url) == schema_of(raw_url)


# -- a psycopg2 project: statements after a COMMIT run outside a transaction, as under psycopg2 ------------

R4 = "a10000000004"
_CONCURRENT_INDEX = {
    "commit": (
        'op.execute("COMMIT")  # end the revision\'s transaction: CONCURRENTLY cannot run inside one',
        'op.execute("CREATE INDEX CONCURRENTLY ix_gadgets_label ON gadgets (label)")',
    ),
    "autocommit_block": (
        "with op.get_context().autocommit_block():",
        '    op.execute("CREATE INDEX CONCURRENTLY ix_gadgets_label ON gadgets (label)")',
    ),
}


def _psycopg2_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


@pytest.mark.parametrize("way", ["commit", "autocommit_block"])
def test_psycopg2_project_builds_an_index_concurrently_as_under_raw_alembic(
    way: str, tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    from tests.harness.templates import add_revision

    project = tmp_path / "project"
    ini = init_project(project, "generic")
    add_revision(
        project, "generic", R4, "index gadgets label", _CONCURRENT_INDEX[way], ('op.drop_index("ix_gadgets_label")',)
    )
    raw_url = make_database("raw")

    output = _ok(ini, _psycopg2_url(database_url), "up", "--yes")

    assert dbstate.alembic_version(database_url) == [R4]
    assert dbstate.query(
        database_url,
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = 'ix_gadgets_label'",
    ) == [(True,)]
    # Raw Alembic on psycopg2, as the project is configured.
    raw_alembic(project, RAW_CONFIG, raw_url, "upgrade", "head", driver="postgresql+psycopg2")
    assert dbstate.alembic_version(raw_url) == [R4]
    assert schema_of(database_url) == schema_of(raw_url)
    flat = " ".join(output.split())
    assert "revisions run with psycopg2's transaction behaviour" in flat, output
    # The rehearsal says which statement ran outside a transaction, and what that means for a failure.
    assert f"{R4}: ran outside a transaction" in flat, output
    assert "not rolled back if a later statement fails" in flat, output
    assert "CREATE INDEX CONCURRENTLY ix_gadgets_label ON gadgets (label)" in flat, output

    if way == "commit":
        # The same project named with psycopg 3 behaves as raw Alembic with psycopg 3: after the COMMIT a new
        # transaction opens, CONCURRENTLY fails there, and nothing is applied.
        psycopg3_url = make_database("psycopg3")
        refused = invoke("-c", str(ini), "--url", psycopg3_url, "up", "--yes")
        assert refused.exit_code == ExitCode.FAILED, refused.output
        assert "cannot run inside a transaction block" in " ".join(refused.output.split()), refused.output
        assert not dbstate.alembic_version(psycopg3_url)  # no version table: nothing ran on it
