"""A dry run changes nothing anywhere: not the target, not the scratch copy's server, not other databases.

A rehearsal runs the revisions for real. What reaches past the database it runs in — roles, their
settings and memberships, the target database's own settings and comment (named by name),
ALTER SYSTEM, a database or a file made by COPY … TO PROGRAM — must not survive it: what
PostgreSQL runs in a transaction is rehearsed in one that is rolled back; what it cannot is not
run at all, and the plan says so. Under ``--rehearse-on target``, a commit by any path (the DBAPI
connection, a raw cursor) is refused before it happens, and one no guard can stop fails the plan
loudly. Each test compares the server's shared state (tests/harness/dbstate.py ``server_state``) and the
target before and after.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from hindsight_migrate.errors import ExitCode
from tests.conftest import assert_failure, bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.projects import TINY_BASE, Rev, tiny_project
from tests.harness.roles import drop_roles, unique

REVISION = "bbbb00000002"


def project(tmp_path: Path, upgrade: str, *more: Rev) -> Path:
    return tiny_project(tmp_path / "p", Rev(REVISION, (TINY_BASE,), upgrade=upgrade), *more)



@contextlib.contextmanager
def dropped_afterwards(admin_engine: Engine, database_url: str, *roles: str) -> Iterator[None]:
    """Whatever a test's apply (or a failed guard) created on the server goes again."""
    try:
        yield
    finally:
        drop_roles(admin_engine, *roles)

def dry_run(ini: Path | str, url: str, *extra: str) -> tuple[int, str]:
    result = invoke("-c", str(ini), "--url", url, "up", "--dry-run", *extra)
    assert "Traceback" not in result.output and "Internal error" not in result.output, result.output
    return result.exit_code, result.output


# -- roles and the target's own settings: rehearsed, rolled back --------------------------------


def test_a_revision_creating_a_role_rehearses_without_creating_it_and_then_applies(
    tmp_path: Path, database_url: str, admin_engine: Engine
) -> None:
    role = unique("hm_reader")
    ini = bootstrapped(
        project(
            tmp_path,
            f'op.execute("CREATE ROLE {role} NOLOGIN")\n'
            f"op.execute(\"ALTER ROLE {role} SET work_mem = '5MB'\")\n"
            f'op.execute("GRANT SELECT ON things TO {role}")\n'
            f"op.execute(\"COMMENT ON ROLE {role} IS 'reads things'\")",
            Rev("bbbb00000003", (REVISION,), upgrade='op.execute("CREATE TABLE after_the_role (id int)")'),
        ),
        database_url,
    )
    server, target = dbstate.server_state(database_url), dbstate.snapshot(database_url)
    with dropped_afterwards(admin_engine, database_url, role):
        code, output = dry_run(ini, database_url)

        assert code == ExitCode.OK, output
        assert dbstate.server_state(database_url) == server, "the dry run changed the server"
        assert dbstate.snapshot(database_url) == target
        said = flatten(output)
        assert f"SERVER-WIDE CREATE ROLE {role}; ALTER ROLE {role} SET" in said, output
        assert "rehearsed in a transaction that was rolled back (bbbb00000002)" in said, output
        # The revision after it was rehearsed too, in the same rolled-back transaction.
        assert "public.after_the_role" in said, output

        check = invoke("-c", str(ini), "--url", database_url, "check")
        assert "Traceback" not in check.output and "Internal error" not in check.output, check.output
        assert dbstate.server_state(database_url) == server, "check changed the server"

        # The rehearsal did not take the role's name: the real apply creates it.
        applied = invoke("-c", str(ini), "--url", database_url, "up", "--yes")
        assert applied.exit_code == ExitCode.OK, applied.output
        settings = dbstate.query(
            database_url,
            "SELECT s.setconfig::text FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
            "WHERE r.rolname = :role",
            role=role,
        )
        assert settings == [("{work_mem=5MB}",)]
        assert dbstate.alembic_version(database_url) == ["bbbb00000003"]


def test_the_target_databases_own_settings_and_comment_are_not_changed_by_a_dry_run(
    tmp_path: Path, database_url: str
) -> None:
    name = make_url(database_url).database
    ini = bootstrapped(
        project(
            tmp_path,
            "\n".join(
                f"op.execute({statement!r})"
                for statement in (
                    f"ALTER DATABASE \"{name}\" SET work_mem = '7MB'",
                    f"COMMENT ON DATABASE \"{name}\" IS 'the things service'",
                    f'REVOKE TEMPORARY ON DATABASE "{name}" FROM PUBLIC',
                )
            ),
        ),
        database_url,
    )
    server = dbstate.server_state(database_url)

    code, output = dry_run(ini, database_url)

    assert code == ExitCode.OK, output
    assert dbstate.server_state(database_url) == server, "the dry run changed the target database's settings"
    assert "SERVER-WIDE ALTER DATABASE" in flatten(output), output


def test_a_role_made_by_dynamic_sql_in_a_do_block_is_rolled_back_too(
    tmp_path: Path, database_url: str, admin_engine: Engine
) -> None:
    role = unique("hm_dynamic")
    # No statement names it: the check before each commit sees what the transaction wrote.
    ini = bootstrapped(
        project(tmp_path, f"op.execute(\"DO $$ BEGIN EXECUTE 'CREATE ROLE ' || '{role}'; END $$\")"),
        database_url,
    )
    server = dbstate.server_state(database_url)
    with dropped_afterwards(admin_engine, database_url, role):
        code, output = dry_run(ini, database_url)

        assert code == ExitCode.OK, output
        assert dbstate.server_state(database_url) == server, "the DO block's role was committed"
        assert "one transaction that was rolled back" in flatten(output), output


# -- what no rollback undoes is not run at all ---------------------------------------------------


def undo_server_wide_leftovers(admin_engine: Engine, database: str, server: dict[str, object]) -> None:
    """If a regression lets the rehearsal run them, the server must not keep them (nor the next test see them):
    the assertions after this still fail, on the state read before it."""
    server_now = dbstate.server_state(admin_engine.url.render_as_string(hide_password=False))
    with admin_engine.connect() as connection:
        if server_now["auto_conf"] != server["auto_conf"]:
            connection.execute(text("ALTER SYSTEM RESET log_min_duration_statement"))
            connection.execute(text("SELECT pg_reload_conf()"))
        connection.execute(text(f'DROP DATABASE IF EXISTS "{database}"'))


def test_statements_no_rollback_undoes_are_not_run_in_the_rehearsal_and_are_listed(
    tmp_path: Path, database_url: str, admin_engine: Engine
) -> None:
    touched = tmp_path / "touched-by-copy"
    made = unique("hm_made_by_revision")
    ini = bootstrapped(
        project(
            tmp_path,
            "with op.get_context().autocommit_block():\n"
            "    op.execute(\"ALTER SYSTEM SET log_min_duration_statement = '12345'\")\n"
            f'    op.execute("CREATE DATABASE {made}")\n'
            f"op.execute(\"COPY (SELECT 1) TO PROGRAM 'touch {touched}'\")\n"
            "op.execute(\"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'nobody'\")",
        ),
        database_url,
    )
    server = dbstate.server_state(database_url)

    try:
        code, output = dry_run(ini, database_url)
        after = dbstate.server_state(database_url)
        made_it = dbstate.query(database_url, "SELECT 1 FROM pg_database WHERE datname = :name", name=made)
    finally:
        undo_server_wide_leftovers(admin_engine, made, server)

    assert code == ExitCode.OK, output
    assert after == server, "ALTER SYSTEM or CREATE DATABASE ran in a dry run"
    assert not made_it
    assert not touched.exists(), "COPY … TO PROGRAM ran in a dry run"
    said = flatten(output)
    for words in (
        "NOT REHEARSED ALTER SYSTEM SET log_min_duration_statement",
        f"NOT REHEARSED CREATE DATABASE {made}",
        "NOT REHEARSED COPY TO PROGRAM",
        "NOT REHEARSED calls pg_terminate_backend()",
    ):
        assert words in said, output


def test_a_server_wide_change_made_outside_any_transaction_fails_the_plan_loudly(
    tmp_path: Path, database_url: str, admin_engine: Engine
) -> None:
    """autocommit_block() commits each statement at once: dynamic SQL there is seen only afterwards, and the
    plan fails naming what changed instead of saying nothing was changed."""
    role = unique("hm_escaped")
    ini = bootstrapped(
        project(
            tmp_path,
            "with op.get_context().autocommit_block():\n"
            f"    op.execute(\"DO $$ BEGIN EXECUTE 'CREATE ROLE ' || '{role}'; END $$\")",
        ),
        database_url,
    )
    with dropped_afterwards(admin_engine, database_url, role):
        code, output = dry_run(ini, database_url)

        assert code == ExitCode.FAILED, output
        said = flatten(output)
        assert f"role {role} appeared" in said, output
        assert "the change is committed: undo it by hand" in said, output


# -- --rehearse-on target: no commit by any path ---------------------------------------------


@pytest.mark.parametrize(
    "commit",
    [
        "op.get_bind().connection.dbapi_connection.commit()",
        'op.get_bind().connection.dbapi_connection.cursor().execute("commit")',
        'op.get_bind().connection.dbapi_connection.execute("END")',
    ],
    ids=["dbapi-commit", "raw-cursor", "connection-execute"],
)
def test_rehearse_on_target_refuses_a_commit_through_the_dbapi_connection(
    tmp_path: Path, database_url: str, commit: str
) -> None:
    ini = bootstrapped(project(tmp_path, f'op.execute("CREATE TABLE leaked (id int)")\n{commit}'), database_url)
    before = dbstate.snapshot(database_url)

    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run", "--rehearse-on", "target")

    assert_failure(result, ExitCode.REFUSED, f"Revision {REVISION} cannot be rehearsed on the target")
    assert "Nothing was committed" in flatten(result.output)
    assert "leaked" not in dbstate.tables(database_url)
    assert dbstate.snapshot(database_url) == before


def test_a_transaction_ended_where_no_guard_can_stop_it_fails_the_plan_loudly(
    tmp_path: Path, database_url: str
) -> None:
    """The server connection itself (pgconn) is below every guard: the transaction id tells."""
    ini = bootstrapped(
        project(
            tmp_path,
            'op.execute("CREATE TABLE leaked (id int)")\n'
            'op.get_bind().connection.dbapi_connection.pgconn.exec_(b"COMMIT")',
        ),
        database_url,
    )

    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run", "--rehearse-on", "target")

    assert_failure(result, ExitCode.REFUSED, f"Revision {REVISION} ended the transaction the rehearsal runs in")
    assert "may have been COMMITTED" in flatten(result.output)
    assert "rolled back" not in flatten(result.output).split("may have been COMMITTED")[0].lower()


def test_check_and_new_build_their_database_at_head_without_creating_the_role(
    hindsight_project: Path, database_url: str, admin_engine: Engine
) -> None:
    """check and new build a scratch database at head from nothing, running every revision: a revision that
    creates a role is rolled back there too, after the models were compared."""
    from tests.harness.hindsight_chain import HEAD
    from tests.harness.projects import write_revision

    role = unique("hm_at_head")
    write_revision(
        hindsight_project / "migrations" / "versions",
        Rev(
            "ffff00000001",
            (HEAD,),
            upgrade=f'op.execute("CREATE ROLE {role}")',
            downgrade=f'op.execute("DROP ROLE {role}")',
        ),
    )
    ini = str(hindsight_project / "alembic.ini")
    server = dbstate.server_state(database_url)
    with dropped_afterwards(admin_engine, database_url, role):
        check = invoke("-c", ini, "--url", database_url, "check")
        new = invoke("-c", ini, "--url", database_url, "new", "nothing to add")

        assert "Traceback" not in check.output + new.output and "Internal error" not in check.output + new.output
        assert check.exit_code in (ExitCode.OK, ExitCode.CHECK_FAILED), check.output
        assert_failure(new, ExitCode.REFUSED, "Autogenerate found no difference between the models")
        assert dbstate.server_state(database_url) == server, "building the database at head created the role"
