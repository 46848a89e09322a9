"""The rehearsal rehearses the applying role's privileges, not only its SQL.

A scratch copy made by a role that is not a superuser belongs to that role, every object in
it: there an ALTER of a table someone else owns, a CREATE TABLE in a schema the role may not
create in, or a CREATE SCHEMA without CREATE on the database all pass, and the apply would then
fail on the target. The plan fails instead, naming the revision and the object, before
anything is applied. A role that cannot make a scratch database at all, or cannot read what
must be copied, is told what to grant or which --rehearse-on to use.

Each test makes a login role of its own (``app_user_<hex>``) on the test server and drops it,
with what it owns and was granted, afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from hindsight_migrate.errors import ExitCode
from tests.conftest import assert_failure, bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.audit import audit_rows
from tests.harness.projects import TINY_BASE, Rev, tiny_project
from tests.harness.roles import AppUser, login_role, may_read_everything, may_record_runs, run_sql

REVISION = "bbbb00000002"


@pytest.fixture
def app_user(admin_engine: Engine, database_url: str) -> Iterator[AppUser]:
    """A role that may make scratch databases but owns nothing in the test database."""
    with login_role(admin_engine, database_url, "CREATEDB") as role:
        yield role


def project(tmp_path: Path, upgrade: str) -> Path:
    return tiny_project(tmp_path / "p", Rev(REVISION, (TINY_BASE,), upgrade=upgrade))



# -- what the role may not do on the target fails the plan ---------------------------------


def test_altering_a_table_the_role_does_not_own_fails_in_the_plan(
    tmp_path: Path, database_url: str, app_user: AppUser
) -> None:
    ini = bootstrapped(
        project(tmp_path, 'import sqlalchemy as sa\nop.add_column("things", sa.Column("note", sa.Text()))'),
        database_url,  # as postgres: things belongs to postgres
    )
    may_read_everything(database_url, app_user.name)
    before = dbstate.snapshot(database_url)

    dry_run = invoke("-c", str(ini), "--url", app_user.url, "up", "--dry-run")
    applied = invoke("-c", str(ini), "--url", app_user.url, "up", "--yes")

    for result in (dry_run, applied):
        assert_failure(result, ExitCode.FAILED, f"Revision {REVISION}", "must be owner of table public.things")
        assert "Internal error" not in result.output
        assert app_user.name in flatten(result.output)  # who would have to own it
    assert "nothing was applied" in flatten(applied.output)
    assert dbstate.snapshot(database_url) == before
    assert dbstate.alembic_version(database_url) == [TINY_BASE]
    assert [row for row in audit_rows(database_url) if row[0] == "up"] == []
    assert dbstate.scratch_databases_of(database_url) == []


def test_creating_a_table_where_the_role_may_not_create_fails_in_the_plan(
    tmp_path: Path, database_url: str, app_user: AppUser
) -> None:
    # PostgreSQL 15+: only the database owner (pg_database_owner) may create in public. In a scratch
    # copy the role made, the role is that owner; on the target it is not.
    ini = bootstrapped(project(tmp_path, 'op.execute("CREATE TABLE newt (i int)")'), database_url)
    may_read_everything(database_url, app_user.name)
    run_sql(database_url, f'REVOKE CREATE ON SCHEMA public FROM PUBLIC, "{app_user.name}"')
    before = dbstate.snapshot(database_url)

    result = invoke("-c", str(ini), "--url", app_user.url, "up", "--dry-run")

    assert_failure(result, ExitCode.FAILED, f"Revision {REVISION}", "permission denied for schema public")
    assert "GRANT CREATE ON SCHEMA public" in flatten(result.output)
    assert dbstate.snapshot(database_url) == before


def test_creating_a_schema_without_create_on_the_database_fails_in_the_plan(
    tmp_path: Path, database_url: str, app_user: AppUser
) -> None:
    ini = bootstrapped(project(tmp_path, 'op.execute("CREATE SCHEMA extra")'), database_url)
    may_read_everything(database_url, app_user.name)
    database = make_url(database_url).database
    before = dbstate.snapshot(database_url)

    result = invoke("-c", str(ini), "--url", app_user.url, "up", "--dry-run")

    assert_failure(result, ExitCode.FAILED, f"Revision {REVISION}", "permission denied for database")
    assert f"GRANT CREATE ON DATABASE {database}" in flatten(result.output)
    assert "extra" not in dbstate.schemas(database_url)
    assert dbstate.snapshot(database_url) == before


# A role that may only read things (granted SELECT, as may_read_everything gives): every one of these
# passed the plan before, then failed half-way through the apply.
ONLY_READS = {
    "insert": "op.execute(\"INSERT INTO things (name) VALUES ('x')\")",
    "update": 'op.execute("UPDATE things SET name = name")',
    "delete": 'op.execute("DELETE FROM things")',
    "truncate": 'op.execute("TRUNCATE things")',
    "for-update": 'op.get_bind().exec_driver_sql("SELECT * FROM things FOR UPDATE").fetchall()',
    "trigger": (
        'op.execute("CREATE FUNCTION pg_temp.noop() RETURNS trigger LANGUAGE plpgsql AS '
        '$$ BEGIN RETURN NEW; END $$")\n'
        'op.execute("CREATE TRIGGER touch BEFORE INSERT ON things FOR EACH ROW EXECUTE FUNCTION pg_temp.noop()")'
    ),
    "insert-in-a-do-block": (
        "op.execute(\"DO $$ BEGIN EXECUTE 'INSERT INTO things (name) VALUES (' || quote_literal('x') || ')'; "
        'END $$")'
    ),
}


@pytest.mark.parametrize("upgrade", ONLY_READS.values(), ids=ONLY_READS.keys())
def test_writing_a_table_the_role_may_only_read_fails_in_the_plan(
    tmp_path: Path, database_url: str, app_user: AppUser, upgrade: str
) -> None:
    ini = bootstrapped(project(tmp_path, upgrade), database_url)
    may_read_everything(database_url, app_user.name)
    may_record_runs(database_url, app_user.name)
    before = dbstate.snapshot(database_url)

    dry_run = invoke("-c", str(ini), "--url", app_user.url, "up", "--dry-run")
    applied = invoke("-c", str(ini), "--url", app_user.url, "up", "--yes")

    for result in (dry_run, applied):
        assert_failure(result, ExitCode.FAILED, f"Revision {REVISION}", "permission denied for table things")
    assert "run as " + app_user.name + " with its privileges on the target" in flatten(dry_run.output)
    assert dbstate.snapshot(database_url) == before
    assert [row for row in audit_rows(database_url) if row[0] == "up"] == []


def test_altering_a_table_the_role_does_not_own_in_dynamic_sql_fails_in_the_plan(
    tmp_path: Path, database_url: str, app_user: AppUser
) -> None:
    """No reading of the statement sees the ALTER inside the DO block: the measured diff does."""
    ini = bootstrapped(
        project(tmp_path, "op.execute(\"DO $$ BEGIN EXECUTE 'ALTER TABLE things ADD COLUMN note text'; END $$\")"),
        database_url,
    )
    may_read_everything(database_url, app_user.name)
    may_record_runs(database_url, app_user.name)
    before = dbstate.snapshot(database_url)

    result = invoke("-c", str(ini), "--url", app_user.url, "up", "--yes")

    assert_failure(result, ExitCode.FAILED, f"Revision {REVISION}", "must be owner of table public.things")
    assert "measured: the schema diff changes it" in flatten(result.output)
    assert dbstate.snapshot(database_url) == before


def test_a_grant_postgresql_answers_with_a_warning_shows_the_warning(
    tmp_path: Path, database_url: str, app_user: AppUser, admin_engine: Engine
) -> None:
    """GRANT on a table the role neither owns nor holds grant options on grants nothing, and PostgreSQL
    only warns: the plan and the apply say so (and the audit row keeps it), instead of a plain success."""
    reader = f"app_reader_{uuid.uuid4().hex[:8]}"
    with admin_engine.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{reader}" NOLOGIN'))
    try:
        ini = bootstrapped(project(tmp_path, f'op.execute("GRANT SELECT ON things TO {reader}")'), database_url)
        may_read_everything(database_url, app_user.name)
        may_record_runs(database_url, app_user.name)

        dry_run = invoke("-c", str(ini), "--url", app_user.url, "up", "--dry-run")
        applied = invoke("-c", str(ini), "--url", app_user.url, "up", "--yes")

        assert dry_run.exit_code == 0, dry_run.output
        assert applied.exit_code == 0, applied.output
        # The plan foresees it (in its own copy the role owns the table and may grant anything)...
        assert 'PostgreSQL will warn on the target (bbbb00000002): no privileges would be granted for "things"' in (
            flatten(dry_run.output)
        )
        # ...and the apply shows what PostgreSQL said.
        assert 'no privileges were granted for "things"' in flatten(applied.output), applied.output
        rows = dbstate.query(
            database_url, "SELECT outcome, warnings FROM hindsight_migrate.apply_log WHERE command = 'up'"
        )
        assert rows and rows[-1][0] == "succeeded" and 'no privileges were granted for "things"' in rows[-1][1]
    finally:
        run_sql(database_url, f'DROP OWNED BY "{reader}"')
        with admin_engine.connect() as connection:
            connection.execute(text(f'DROP ROLE IF EXISTS "{reader}"'))


# -- what the role may do passes, and applies ----------------------------------------------


def test_a_member_of_the_owning_role_passes_the_plan_and_applies(
    tmp_path: Path, database_url: str, admin_engine: Engine, app_user: AppUser
) -> None:
    owner = f"app_owner_{uuid.uuid4().hex[:8]}"
    ini = bootstrapped(
        project(tmp_path, 'import sqlalchemy as sa\nop.add_column("things", sa.Column("note", sa.Text()))'),
        database_url,
    )
    with admin_engine.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{owner}" NOLOGIN'))
        connection.execute(text(f'GRANT "{owner}" TO "{app_user.name}"'))
    try:
        run_sql(
            database_url,
            f'ALTER TABLE things OWNER TO "{owner}"',
            f'ALTER TABLE alembic_version OWNER TO "{owner}"',
            f'ALTER SCHEMA hindsight_migrate OWNER TO "{owner}"',
            f'ALTER TABLE hindsight_migrate.bootstrap_log OWNER TO "{owner}"',
            f'ALTER TABLE hindsight_migrate.apply_log OWNER TO "{owner}"',
            f'ALTER TABLE hindsight_migrate.applied_revisions OWNER TO "{owner}"',
            # Every run makes sure the tool's schema exists, which PostgreSQL checks against the database.
            f'GRANT CREATE ON DATABASE "{make_url(database_url).database}" TO "{app_user.name}"',
        )
        may_read_everything(database_url, app_user.name)

        dry_run = invoke("-c", str(ini), "--url", app_user.url, "up", "--dry-run")
        assert dry_run.exit_code == 0, dry_run.output
        applied = invoke("-c", str(ini), "--url", app_user.url, "up", "--yes")

        assert applied.exit_code == 0, applied.output
        assert dbstate.alembic_version(database_url) == [REVISION]
        columns = dbstate.query(
            database_url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'things'"
        )
        assert ("note",) in columns
    finally:
        run_sql(database_url, f'DROP OWNED BY "{owner}" CASCADE')
        with admin_engine.connect() as connection:
            connection.execute(text(f'DROP ROLE IF EXISTS "{owner}"'))


def test_writing_rows_the_role_was_granted_passes(tmp_path: Path, database_url: str, app_user: AppUser) -> None:
    """Owning a table is needed to change it, not to write its rows: no false alarm for a backfill."""
    ini = bootstrapped(
        project(tmp_path, "op.execute(\"INSERT INTO things (name) VALUES ('backfilled')\")"), database_url
    )
    may_read_everything(database_url, app_user.name)
    may_record_runs(database_url, app_user.name)
    run_sql(
        database_url,
        f'GRANT INSERT ON things TO "{app_user.name}"',
        f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{app_user.name}"',
    )
    before = dbstate.snapshot(database_url)

    result = invoke("-c", str(ini), "--url", app_user.url, "up", "--dry-run")

    assert result.exit_code == 0, result.output
    assert dbstate.snapshot(database_url) == before


def test_a_role_that_may_not_record_the_run_is_told_what_to_grant(
    tmp_path: Path, database_url: str, app_user: AppUser
) -> None:
    """Every revision would pass, but the apply writes the tool's records and moves the version table
    first: without the privileges for that it would stop at its first statement."""
    ini = bootstrapped(project(tmp_path, 'op.execute("SELECT 1")'), database_url)
    may_read_everything(database_url, app_user.name)
    run_sql(database_url, f'REVOKE UPDATE ON alembic_version FROM "{app_user.name}"')
    database = make_url(database_url).database
    before = dbstate.snapshot(database_url)

    for command in (["up", "--dry-run"], ["up", "--yes"]):
        result = invoke("-c", str(ini), "--url", app_user.url, *command)

        assert_failure(
            result,
            ExitCode.REFUSED,
            "The apply would fail before its first revision",
            "Nothing was changed",
            f"GRANT CREATE ON DATABASE {database} TO {app_user.name}",
            f"GRANT INSERT, UPDATE ON hindsight_migrate.apply_log TO {app_user.name}",
            f"GRANT UPDATE ON public.alembic_version TO {app_user.name}",
        )
        assert "Internal error" not in result.output
    # On the target itself, the rehearsal meets the missing grant in person.
    on_target = invoke("-c", str(ini), "--url", app_user.url, "up", "--dry-run", "--rehearse-on", "target")
    assert_failure(on_target, ExitCode.FAILED, f"Revision {REVISION}", "permission denied for table alembic_version")
    assert dbstate.snapshot(database_url) == before
    assert [row for row in audit_rows(database_url) if row[0] == "up"] == []


# -- no rehearsal possible: say what to grant, or where else to rehearse ---------------------


def test_without_createdb_the_plan_says_what_to_grant_or_where_to_rehearse(
    tmp_path: Path, database_url: str, admin_engine: Engine
) -> None:
    ini = bootstrapped(project(tmp_path, 'op.execute("SELECT 1")'), database_url)
    with login_role(admin_engine, database_url, "NOCREATEDB") as role:
        may_read_everything(database_url, role.name)
        before = dbstate.snapshot(database_url)

        result = invoke("-c", str(ini), "--url", role.url, "up", "--dry-run")

        assert_failure(result, ExitCode.REFUSED, "could not be created", "CREATEDB", "--rehearse-on target")
        assert "Internal error" not in result.output
        assert dbstate.snapshot(database_url) == before
        assert dbstate.scratch_databases_of(database_url) == []


def test_a_role_that_cannot_read_what_is_copied_is_told_so(
    tmp_path: Path, database_url: str, app_user: AppUser
) -> None:
    ini = bootstrapped(project(tmp_path, 'op.execute("SELECT 1")'), database_url)
    may_read_everything(database_url, app_user.name)
    run_sql(database_url, f'REVOKE SELECT ON things FROM "{app_user.name}"')
    before = dbstate.snapshot(database_url)

    result = invoke("-c", str(ini), "--url", app_user.url, "up", "--dry-run")

    assert_failure(result, ExitCode.REFUSED, "permission denied", "GRANT SELECT", "--rehearse-on target")
    assert "Internal error" not in result.output
    assert dbstate.snapshot(database_url) == before
    assert dbstate.scratch_databases_of(database_url) == []
