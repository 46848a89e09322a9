"""The fleet's SQL: reading a target in one short read-only session, the fleet ledger kept in each target's
``hindsight_migrate`` schema and in a control database, and the queries that list targets.

Plain psycopg connections (no SQLAlchemy engine): the preflight reads hundreds of databases, and a target
read costs one connection and a handful of statements. Every message is masked.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql

from hindsight_migrate.errors import ConfigError, ConnectionFailed, Refused, Section
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.postgres.catalog.objects import TOOL_SCHEMA
from hindsight_migrate.postgres.database import APPLICATION_NAME, CONNECT_TIMEOUT_SECONDS
from hindsight_migrate.postgres.locking import LOCK_NAMESPACE, MIGRATION_LOCK

LEDGER = "fleet_ledger"  # in each target: one row per target name (schema-per-tenant: several in one database)
CONTROL = "fleet_targets"  # in the control database: one row per (rollout, target)
STATES = ("pending", "running", "applied", "failed", "skipped")
_STATE_CHECK = "CHECK (state IN (" + ", ".join(f"'{state}'" for state in STATES) + "))"

_CREATE_LEDGER = f"""
CREATE TABLE IF NOT EXISTS {TOOL_SCHEMA}.{LEDGER} (
    target text PRIMARY KEY,
    rollout text NOT NULL,
    state text NOT NULL {_STATE_CHECK},
    heads text NOT NULL,
    error text,
    run_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)"""

_CREATE_CONTROL = f"""
CREATE TABLE IF NOT EXISTS {TOOL_SCHEMA}.{CONTROL} (
    rollout text NOT NULL,
    target text NOT NULL,
    state text NOT NULL {_STATE_CHECK},
    current text NOT NULL DEFAULT '',
    error text,
    shard text,
    run_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rollout, target)
)"""


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://) as libpq reads it."""
    scheme, separator, rest = url.partition("://")
    return f"{scheme.partition('+')[0]}{separator}{rest}" if separator else url


@contextmanager
def connected(url: str, *, read_only: bool, shown: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """One short session on ``url``; a login or network failure is a ConnectionFailed naming ``shown``."""
    try:
        connection = psycopg.connect(
            libpq_url(url),
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name=f"{APPLICATION_NAME} fleet",
            autocommit=True,
        )
    except psycopg.Error as err:
        raise ConnectionFailed(
            f"Cannot connect to {shown}.", sections=(Section("Database said", mask_secrets(str(err).strip())),)
        ) from err
    try:
        if read_only:
            connection.execute("SET default_transaction_read_only = on")
            # A read that queues behind a migration's lock would hold up the whole preflight (and the traffic
            # queued behind it): a table locked that long is read as not readable now.
            connection.execute("SET lock_timeout = '2s'")
        yield connection
    except psycopg.OperationalError as err:
        raise ConnectionFailed(
            f"The connection to {shown} was lost.", sections=(Section("Database said", mask_secrets(str(err).strip())),)
        ) from err
    except psycopg.Error as err:
        # The fleet's own reading or bookkeeping (a role that may not create the tool's schema, say).
        raise Refused(
            f"{shown}: the fleet's reading or ledger failed, so this target is left as it is.",
            sections=(Section("Database said", mask_secrets(str(err).strip())),),
        ) from err
    finally:
        connection.close()


def run_by() -> str:
    """Who writes a ledger row: this machine and process (a Kubernetes pod's name is its host name)."""
    return f"{socket.gethostname()}:{os.getpid()}"


# -- listing targets --------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetRow:
    name: object
    url: str
    group: str | None = None
    schema: str | None = None


def target_rows(control_url: str, query: str, source: str) -> tuple[TargetRow, ...]:
    """Read-only: the [control] query's rows; its columns are named name and url (group and schema optional)."""
    with connected(control_url, read_only=True, shown=mask_secrets(control_url)) as connection:
        try:
            cursor = connection.execute(query.encode())
        except psycopg.Error as err:
            raise ConfigError(
                f"The [control] query of {source} failed.",
                sections=(Section("Database said", mask_secrets(str(err).strip())),),
            ) from err
        columns = [column.name for column in cursor.description or ()]
        if "name" not in columns or "url" not in columns:
            raise ConfigError(
                f"The [control] query of {source} must return columns named name and url "
                f"(and optionally group and schema); it returned {', '.join(columns) or 'no columns'}."
            )
        rows = []
        for values in cursor.fetchall():
            row = dict(zip(columns, values, strict=True))
            url = row["url"]
            if not isinstance(url, str):
                raise ConfigError(
                    f"The [control] query of {source} returned a url that is not text for {row['name']!r}."
                )
            group, schema = row.get("group"), row.get("schema")
            rows.append(
                TargetRow(
                    name=row["name"],
                    url=url,
                    group=group if isinstance(group, str) else None,
                    schema=schema if isinstance(schema, str) else None,
                )
            )
        return tuple(rows)


def schema_names(url: str, query: str, source: str) -> tuple[str, ...]:
    """Read-only: the [schemas] query's first column, one tenant schema per row."""
    with connected(url, read_only=True, shown=mask_secrets(url)) as connection:
        try:
            rows = connection.execute(query.encode()).fetchall()
        except psycopg.Error as err:
            raise ConfigError(
                f"The [schemas] query of {source} failed.",
                sections=(Section("Database said", mask_secrets(str(err).strip())),),
            ) from err
    names = tuple(row[0] for row in rows)
    if not all(isinstance(name, str) for name in names):
        raise ConfigError(f"The [schemas] query of {source} must return schema names (text) in its first column.")
    return tuple(str(name) for name in names)


# -- reading a target -------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedChecksum:
    revision: str
    file_sha256: str
    code_fingerprint: str | None


@dataclass(frozen=True)
class LedgerRow:
    state: str
    rollout: str
    error: str | None
    updated_at: datetime
    heads: str


@dataclass(frozen=True)
class TargetRead:
    version_table_exists: bool
    current: tuple[str, ...]
    has_tables: bool  # any table outside the system schemas and the tool's own
    checksums: tuple[RecordedChecksum, ...]
    ledger: LedgerRow | None
    locked: bool  # a session holds the migration lock of this database


def read_target(
    url: str,
    *,
    shown: str,
    version_table: str,
    version_schema: str | None,
    environment: str,
    name: str,
) -> TargetRead:
    """Read-only, one session: where a target stands, what the tool recorded there, how big what is touched is."""
    with connected(url, read_only=True, shown=shown) as connection:
        if version_schema is not None:
            connection.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(version_schema)))
        qualified = (
            sql.SQL("{}.{}").format(sql.Identifier(version_schema), sql.Identifier(version_table))
            if version_schema
            else sql.Identifier(version_table)
        )
        regclass = f"{version_schema}.{version_table}" if version_schema else version_table
        quoted_regclass = (
            ".".join(f'"{part}"' for part in regclass.split(".", 1)) if version_schema else f'"{version_table}"'
        )
        exists_row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (quoted_regclass,)).fetchone()
        exists = bool(exists_row and exists_row[0])
        current: tuple[str, ...] = ()
        if exists:
            rows = connection.execute(sql.SQL("SELECT version_num FROM {} ORDER BY 1").format(qualified)).fetchall()
            current = tuple(str(row[0]) for row in rows)
        facts = connection.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "  WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', %s) "
            "  AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'), "
            " to_regclass(%s) IS NOT NULL AND has_table_privilege(%s, 'SELECT'), "
            " to_regclass(%s) IS NOT NULL AND has_table_privilege(%s, 'SELECT'), "
            " EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid::bigint = %s "
            "  AND objid::bigint = %s AND objsubid = 2 "
            "  AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            (
                TOOL_SCHEMA,
                f"{TOOL_SCHEMA}.applied_revisions",
                f"{TOOL_SCHEMA}.applied_revisions",
                f"{TOOL_SCHEMA}.{LEDGER}",
                f"{TOOL_SCHEMA}.{LEDGER}",
                LOCK_NAMESPACE,
                MIGRATION_LOCK,
            ),
        ).fetchone()
        assert facts is not None
        has_tables, checksums_readable, ledger_readable, locked = (bool(value) for value in facts)
        checksums: tuple[RecordedChecksum, ...] = ()
        if checksums_readable:
            columns = {
                str(row[0])
                for row in connection.execute(
                    "SELECT attname FROM pg_attribute "
                    "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                    (f"{TOOL_SCHEMA}.applied_revisions",),
                ).fetchall()
            }
            fingerprint = "code_fingerprint" if "code_fingerprint" in columns else "NULL"
            mine = "(environment = %s OR environment IS NULL)" if "environment" in columns else "%s::text IS NOT NULL"
            checksums = tuple(
                RecordedChecksum(str(row[0]), str(row[1]), None if row[2] is None else str(row[2]))
                for row in connection.execute(
                    f"SELECT revision, file_sha256, {fingerprint} "
                    f"FROM {TOOL_SCHEMA}.applied_revisions WHERE {mine}".encode(),
                    (environment,),
                ).fetchall()
            )
        ledger = None
        if ledger_readable:
            row = connection.execute(
                f"SELECT state, rollout, error, updated_at, heads "
                f"FROM {TOOL_SCHEMA}.{LEDGER} WHERE target = %s".encode(),
                (name,),
            ).fetchone()
            if row is not None:
                ledger = LedgerRow(
                    str(row[0]), str(row[1]), None if row[2] is None else str(row[2]), row[3], str(row[4])
                )
    return TargetRead(exists, current, has_tables, checksums, ledger, locked)


# -- the ledger in a target -------------------------------------------------------------------


def write_ledger(
    url: str, *, shown: str, name: str, rollout: str, state: str, heads: tuple[str, ...], error: str | None
) -> None:
    """Writes the target's ledger row (its own session, committed at once: the row outlives a killed run)."""
    with connected(url, read_only=False, shown=shown) as connection:
        _create(connection, _CREATE_LEDGER)
        connection.execute(
            f"INSERT INTO {TOOL_SCHEMA}.{LEDGER} (target, rollout, state, heads, error, run_by) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (target) DO UPDATE SET rollout = EXCLUDED.rollout, "
            "state = EXCLUDED.state, heads = EXCLUDED.heads, error = EXCLUDED.error, run_by = EXCLUDED.run_by, "
            "updated_at = now()".encode(),
            (name, rollout, state, ",".join(heads), None if error is None else mask_secrets(error), run_by()),
        )


# -- the control database ---------------------------------------------------------------------


@dataclass(frozen=True)
class ControlRow:
    target: str
    state: str
    current: str
    error: str | None
    shard: str | None
    updated_at: datetime


def control_record(
    url: str, *, rollout: str, target: str, state: str, current: tuple[str, ...], error: str | None, shard: str | None
) -> None:
    """Writes one target's row of a rollout in the control database."""
    with connected(url, read_only=False, shown=mask_secrets(url)) as connection:
        _ensure_control(connection)
        connection.execute(
            f"INSERT INTO {TOOL_SCHEMA}.{CONTROL} (rollout, target, state, current, error, shard, run_by) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (rollout, target) DO UPDATE SET state = EXCLUDED.state, "
            "current = EXCLUDED.current, error = EXCLUDED.error, shard = EXCLUDED.shard, run_by = EXCLUDED.run_by, "
            "updated_at = now()".encode(),
            (
                rollout,
                target,
                state,
                ",".join(current),
                None if error is None else mask_secrets(error),
                shard,
                run_by(),
            ),
        )


def control_failures(url: str, *, rollout: str) -> int:
    """Read-only: the targets of ``rollout`` whose last try failed, whichever shard tried them."""
    with connected(url, read_only=False, shown=mask_secrets(url)) as connection:
        _ensure_control(connection)
        row = connection.execute(
            f"SELECT count(*) FROM {TOOL_SCHEMA}.{CONTROL} WHERE rollout = %s AND state = 'failed'".encode(), (rollout,)
        ).fetchone()
    return int(row[0]) if row else 0


def control_rows(url: str, *, rollout: str | None) -> dict[str, ControlRow]:
    """Read-only: each target's latest row (of ``rollout``, or of any rollout)."""
    with connected(url, read_only=True, shown=mask_secrets(url)) as connection:
        exists = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{TOOL_SCHEMA}.{CONTROL}",)).fetchone()
        if not (exists and exists[0]):
            return {}
        where = "WHERE rollout = %s" if rollout is not None else "WHERE %s::text IS NULL"
        rows = connection.execute(
            f"SELECT DISTINCT ON (target) target, state, current, error, shard, updated_at "
            f"FROM {TOOL_SCHEMA}.{CONTROL} {where} ORDER BY target, updated_at DESC".encode(),
            (rollout,),
        ).fetchall()
    return {
        str(row[0]): ControlRow(
            str(row[0]),
            str(row[1]),
            str(row[2]),
            None if row[3] is None else str(row[3]),
            None if row[4] is None else str(row[4]),
            row[5],
        )
        for row in rows
    }


def _ensure_control(connection: psycopg.Connection[tuple[Any, ...]]) -> None:
    _create(connection, _CREATE_CONTROL)


def _create(connection: psycopg.Connection[tuple[Any, ...]], create_table: str) -> None:
    """The tool's schema and one of its tables, if missing. Two runs (shards) that create them at the same moment
    collide in the catalog (IF NOT EXISTS does not lock): the loser finds them made, and goes on."""
    for statement in (f"CREATE SCHEMA IF NOT EXISTS {TOOL_SCHEMA}", create_table):
        with contextlib.suppress(
            psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable, psycopg.errors.DuplicateSchema
        ):
            connection.execute(statement.encode())


def table_sizes(url: str, *, shown: str, tables: tuple[str, ...]) -> dict[str, int] | None:
    """Read-only: the size of each table in ``tables`` that exists (heap, indexes and TOAST), by name as asked;
    None when a table is locked by someone else for longer than the preflight waits (sizes not known now)."""
    with connected(url, read_only=True, shown=shown) as connection:
        try:
            rows = connection.execute(
                "SELECT t, pg_total_relation_size(to_regclass(t)) FROM unnest(%s::text[]) AS t "
                "WHERE to_regclass(t) IS NOT NULL",
                (list(tables),),
            ).fetchall()
        except psycopg.errors.LockNotAvailable:
            return None
    return {str(table): int(size or 0) for table, size in rows}


def current_revisions(url: str, *, shown: str, version_table: str, version_schema: str | None) -> tuple[str, ...]:
    """Read-only: the version table's revisions (none: no version table)."""
    with connected(url, read_only=True, shown=shown) as connection:
        name = f'"{version_schema}"."{version_table}"' if version_schema else f'"{version_table}"'
        exists = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        if not (exists and exists[0]):
            return ()
        table = (
            sql.SQL("{}.{}").format(sql.Identifier(version_schema), sql.Identifier(version_table))
            if version_schema
            else sql.Identifier(version_table)
        )
        rows = connection.execute(sql.SQL("SELECT version_num FROM {} ORDER BY 1").format(table)).fetchall()
    return tuple(str(row[0]) for row in rows)


def migration_lock_held(url: str, *, shown: str) -> bool:
    """Read-only: whether a session holds this database's migration lock (another run is migrating it)."""
    with connected(url, read_only=True, shown=shown) as connection:
        row = connection.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid::bigint = %s "
            "AND objid::bigint = %s AND objsubid = 2 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            (LOCK_NAMESPACE, MIGRATION_LOCK),
        ).fetchone()
    return bool(row and row[0])
