"""Read a database's state for assertions, and set one up, with SQL of the tests' own (not the tool's)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool


def query(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def execute(url: str, sql: str) -> None:
    """Run a test's own SQL (several statements at once, no parameters) and commit it."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(sql)
    finally:
        engine.dispose()


def tables(url: str, schema: str = "public") -> set[str]:
    rows = query(
        url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = :schema AND table_type = 'BASE TABLE'",
        schema=schema,
    )
    return {row[0] for row in rows}


def alembic_version(url: str) -> list[str] | None:
    """The version table's rows, sorted; None when there is no version table."""
    if not query(url, "SELECT to_regclass('public.alembic_version') IS NOT NULL")[0][0]:
        return None
    return sorted(row[0] for row in query(url, "SELECT version_num FROM alembic_version"))


def schemas(url: str) -> set[str]:
    rows = query(
        url,
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'",
    )
    return {row[0] for row in rows}


def snapshot(url: str) -> dict[str, Any]:
    """Everything a refusal must leave as it was: relations, columns, versions, tool rows."""
    relations = query(
        url,
        "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1, 2",
    )
    columns = query(
        url,
        "SELECT table_schema, table_name, column_name, data_type, is_nullable "
        "FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
        "ORDER BY 1, 2, 3",
    )
    bootstrap_rows: list[tuple[Any, ...]] = []
    if query(url, "SELECT to_regclass('hindsight_migrate.bootstrap_log') IS NOT NULL")[0][0]:
        bootstrap_rows = query(url, "SELECT * FROM hindsight_migrate.bootstrap_log ORDER BY id")
    return {
        "relations": relations,
        "columns": columns,
        "alembic_version": alembic_version(url),
        "bootstrap_log": bootstrap_rows,
        "extensions": query(url, "SELECT extname FROM pg_extension ORDER BY 1"),
    }


def scratch_databases_of(url: str) -> list[str]:
    """Scratch databases the tool made for this database (hindsight_rehearsal_<a hash of its name>_...)."""
    from sqlalchemy.engine import make_url

    from hindsight_migrate.postgres.scratch import scratch_prefix

    prefix = scratch_prefix(make_url(url).database or "")
    rows = query(url, "SELECT datname FROM pg_database WHERE starts_with(datname, :prefix)", prefix=prefix)
    return sorted(row[0] for row in rows)


def server_state(url: str) -> dict[str, Any]:
    """What the whole server shares, read with the tests' own SQL: roles and their attributes, memberships,
    role and database settings, databases (owner, privileges, comment), tablespaces, parameter privileges,
    comments on shared objects, and what ALTER SYSTEM wrote. A dry run must leave all of it as it was."""
    return {
        "roles": query(
            url,
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolconnlimit, rolvaliduntil "
            "FROM pg_roles ORDER BY 1",
        ),
        "memberships": query(
            url, "SELECT roleid::regrole::text, member::regrole::text FROM pg_auth_members ORDER BY 1, 2"
        ),
        "settings": query(
            url, "SELECT setdatabase, setrole, setconfig::text FROM pg_db_role_setting ORDER BY 1, 2"
        ),
        "databases": query(
            url,
            "SELECT datname, datdba::regrole::text, datacl::text, datconnlimit FROM pg_database "
            # Other tests' databases and every run's scratch databases come and go; those of this test's
            # target are checked by scratch_databases_of.
            "WHERE NOT (starts_with(datname, 'hmtest_') OR starts_with(datname, 'hindsight_rehearsal_')) "
            "OR datname = current_database() ORDER BY 1",
        ),
        "comments": query(url, "SELECT objoid, classoid, description FROM pg_shdescription ORDER BY 1, 2"),
        "tablespaces": query(url, "SELECT spcname, spcacl::text, spcoptions::text FROM pg_tablespace ORDER BY 1"),
        "parameter_privileges": query(url, "SELECT parname, paracl::text FROM pg_parameter_acl ORDER BY 1"),
        "auto_conf": query(
            url,
            "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf' ORDER BY 1",
        ),
    }
