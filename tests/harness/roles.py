"""Roles for tests that need someone other than the superuser: made with a unique name, and dropped
afterwards with whatever they own or were granted, in every database of the server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool


def unique(label: str) -> str:
    """``label`` and eight hex digits: a role or gate name no other test (or run) has."""
    return f"{label}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class AppUser:
    name: str
    url: str  # the test database, as this role


def run_sql(url: str, *statements: str) -> None:
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


@contextlib.contextmanager
def login_role(admin_engine: Engine, database_url: str, *options: str) -> Iterator[AppUser]:
    name = f"app_user_{uuid.uuid4().hex[:8]}"
    with admin_engine.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{name}" LOGIN {" ".join(options)}'))
    try:
        yield AppUser(name, make_url(database_url).set(username=name).render_as_string(hide_password=False))
    finally:
        database = make_url(database_url).database
        with admin_engine.connect() as connection:
            # A scratch database the role made and a failed run left would keep the role alive.
            owned = connection.execute(
                text("SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = :r)"),
                {"r": name},
            ).scalars()
            for leftover in list(owned):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{leftover}" WITH (FORCE)'))
        run_sql(database_url, f'DROP OWNED BY "{name}" CASCADE')
        with admin_engine.connect() as connection:
            connection.execute(text(f'REVOKE ALL ON DATABASE "{database}" FROM "{name}"'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{name}"'))


def may_read_everything(database_url: str, role: str) -> None:
    """What pg_dump needs to copy the target, and what moving alembic_version needs: nothing more."""
    run_sql(
        database_url,
        f'GRANT USAGE ON SCHEMA public, hindsight_migrate TO "{role}"',
        f'GRANT SELECT ON ALL TABLES IN SCHEMA public, hindsight_migrate TO "{role}"',
        f'GRANT SELECT ON ALL SEQUENCES IN SCHEMA public, hindsight_migrate TO "{role}"',
        f'GRANT UPDATE ON alembic_version TO "{role}"',
    )


def may_record_runs(database_url: str, role: str) -> None:
    """What every apply needs besides the revisions' own privileges: the tool's records."""
    run_sql(
        database_url,
        f'GRANT CREATE ON DATABASE "{make_url(database_url).database}" TO "{role}"',
        f'GRANT USAGE, CREATE ON SCHEMA hindsight_migrate TO "{role}"',
        f'GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA hindsight_migrate TO "{role}"',
    )


@contextlib.contextmanager
def roles(admin_engine: Engine, *names: str, login: bool = True) -> Iterator[None]:
    """Roles for the test (``names``), dropped afterwards with whatever they own or were granted."""
    with admin_engine.connect() as connection:
        for name in names:
            connection.execute(text(f'CREATE ROLE "{name}"{" LOGIN" if login else ""}'))
    try:
        yield
    finally:
        drop_roles(admin_engine, *names)


def drop_roles(admin_engine: Engine, *names: str) -> None:
    """Drops ``names`` (those that exist), with what they own or were granted in every database."""
    with admin_engine.connect() as connection:
        existing = [
            name
            for name in names
            if connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": name}).first()
        ]
        if not existing:
            return
        databases = connection.execute(
            text("SELECT datname FROM pg_database WHERE datallowconn AND datname NOT LIKE 'template%'")
        ).scalars()
        for database in list(databases):
            engine = create_engine(
                admin_engine.url.set(database=database), poolclass=NullPool, isolation_level="AUTOCOMMIT"
            )
            with contextlib.suppress(Exception), engine.connect() as there:
                for name in existing:
                    there.execute(text(f'DROP OWNED BY "{name}" CASCADE'))
            engine.dispose()
        for name in existing:
            connection.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
