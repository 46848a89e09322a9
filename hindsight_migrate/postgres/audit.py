"""The tool's own records, kept in the ``hindsight_migrate`` schema of the target database.

They live in a schema of their own so that the application, its models and Alembic's
autogenerate never see them. Every write here happens inside the transaction of the
change it records, so a record exists if and only if the change committed.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text

from hindsight_migrate import __version__
from hindsight_migrate.errors import Refused, Section
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.postgres.audit_records import (
    AppliedChecksum,
    ApplyRecord,
    BootstrapRecord,
    Outcome,
    RecordedHold,
)
from hindsight_migrate.postgres.catalog import ADVISORY_LOCK_HELD, TOOL_SCHEMA, column_exists, constraint_definition

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.engine import Connection

BOOTSTRAP_LOG = "bootstrap_log"

_CREATE_BOOTSTRAP_LOG = f"""
CREATE TABLE IF NOT EXISTS {TOOL_SCHEMA}.{BOOTSTRAP_LOG} (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sql_path        text        NOT NULL,
    sql_sha256      text        NOT NULL,
    baseline        text        NOT NULL,
    bootstrapped_at timestamptz NOT NULL DEFAULT now(),
    os_user         text        NOT NULL,
    host            text        NOT NULL,
    tool_version    text        NOT NULL
)
"""


APPLY_LOG = "apply_log"

_OUTCOME_CHECK = "CHECK (outcome IN (" + ", ".join(f"'{outcome.value}'" for outcome in Outcome) + "))"

_CREATE_APPLY_LOG = f"""
CREATE TABLE IF NOT EXISTS {TOOL_SCHEMA}.{APPLY_LOG} (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command          text        NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz,
    os_user          text        NOT NULL,
    host             text        NOT NULL,
    tool_version     text        NOT NULL,
    database         text        NOT NULL,
    from_revisions   text        NOT NULL,
    to_revisions     text,
    duration_seconds double precision,
    outcome          text        NOT NULL CONSTRAINT apply_log_outcome_check {_OUTCOME_CHECK},
    plan_fingerprint text,
    error            text,
    lock_attempts    integer,
    warnings         text,
    lock_holds       text,
    environment      text
)
"""


APPLIED_REVISIONS = "applied_revisions"

# One row per applied revision: the SHA-256 of its file (normalised line endings) when it was
# applied, so an edit afterwards is seen (Flyway's validate), and the fingerprint of its code
# (hindsight_migrate.code_fingerprint), so that a comment, a docstring or a formatter's pass is
# told from a change to the code. Written in the revision's own transaction, so the row exists
# exactly when the revision is applied.
_CREATE_APPLIED_REVISIONS = f"""
CREATE TABLE IF NOT EXISTS {TOOL_SCHEMA}.{APPLIED_REVISIONS} (
    revision         text        PRIMARY KEY,
    file_sha256      text        NOT NULL,
    file_path        text        NOT NULL,
    applied_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    apply_id         bigint,
    code_fingerprint text,
    environment      text
)
"""


def who_and_where() -> tuple[str, str]:
    """The OS user and host recorded with every change."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        user = "unknown"
    return user, socket.gethostname()


# -- what the tool's tables must be, and whether this role may use them -------------------
#
# The schema may hold tables someone else made (another tool, a hand-written table of the same
# name), and the role applying may lack the privileges on them: found by asking the catalog
# first, which needs no privilege at all, so that a writing run is refused before it changes
# anything, naming the GRANT or the fix, and a reading command says what it could not read and
# shows the rest, instead of stopping at "permission denied" or a missing column.

# Each column as this version reads and writes it, by family of types (see _TYPE_FAMILIES).
_INTEGER, _TEXT, _TIMESTAMP, _FLOAT = "integer", "text", "timestamp with time zone", "double precision"
_SHAPES: dict[str, dict[str, str]] = {
    BOOTSTRAP_LOG: {
        "id": _INTEGER,
        "sql_path": _TEXT,
        "sql_sha256": _TEXT,
        "baseline": _TEXT,
        "bootstrapped_at": _TIMESTAMP,
        "os_user": _TEXT,
        "host": _TEXT,
        "tool_version": _TEXT,
    },
    APPLY_LOG: {
        "id": _INTEGER,
        "command": _TEXT,
        "started_at": _TIMESTAMP,
        "finished_at": _TIMESTAMP,
        "os_user": _TEXT,
        "host": _TEXT,
        "tool_version": _TEXT,
        "database": _TEXT,
        "from_revisions": _TEXT,
        "to_revisions": _TEXT,
        "duration_seconds": _FLOAT,
        "outcome": _TEXT,
        "plan_fingerprint": _TEXT,
        "error": _TEXT,
        "lock_attempts": _INTEGER,
        "warnings": _TEXT,
        "lock_holds": _TEXT,
        "environment": _TEXT,
    },
    APPLIED_REVISIONS: {
        "revision": _TEXT,
        "file_sha256": _TEXT,
        "file_path": _TEXT,
        "applied_at": _TIMESTAMP,
        "apply_id": _INTEGER,
        "code_fingerprint": _TEXT,
        "environment": _TEXT,
    },
}
# What a table an earlier version made lacks: it gains them on the next apply.
_ADDED_LATER = {
    APPLY_LOG: frozenset({"lock_attempts", "warnings", "lock_holds", "environment"}),
    APPLIED_REVISIONS: frozenset({"code_fingerprint", "environment"}),
}
# Several Alembic environments may share one database (two ini sections, each with a version table of its own):
# every record says whose it is, by the environment's version table ("alembic_version", "tenant.alembic_version"),
# which is what keeps two environments apart in the database itself. Rows an earlier version wrote have none:
# they are read by every environment, as they were before.
_OF_THIS_ENVIRONMENT = "(environment = :environment OR environment IS NULL)"
_TYPE_FAMILIES = {
    "smallint": _INTEGER,
    "integer": _INTEGER,
    "bigint": _INTEGER,
    "text": _TEXT,
    "character varying": _TEXT,
    "timestamp with time zone": _TIMESTAMP,
    "timestamp without time zone": _TIMESTAMP,
    "double precision": _FLOAT,
    "real": _FLOAT,
}
# What each table needs of the role that records a run (RETURNING id and WHERE id = … read the log);
# bootstrap_log only when the run is a bootstrap.
_WRITES = {
    APPLY_LOG: ("SELECT", "INSERT", "UPDATE"),
    APPLIED_REVISIONS: ("INSERT", "UPDATE", "DELETE"),
    BOOTSTRAP_LOG: ("INSERT",),
}


@dataclass(frozen=True)
class _Column:
    type: str  # format_type(), e.g. "timestamp with time zone"
    not_null: bool
    generated: bool  # a default or an identity: the tool does not write it


@dataclass(frozen=True)
class _Table:
    kind: str  # pg_class.relkind
    owned: bool  # this role has the owner's rights (ALTER TABLE)
    privileges: frozenset[str]  # of SELECT, INSERT, UPDATE, DELETE
    columns: dict[str, _Column]
    outcome_check: str | None  # apply_log's CHECK on outcome, as pg_get_constraintdef prints it


@dataclass(frozen=True)
class _Records:
    """The catalog's answers about the tool's schema and tables, for this role (read with no privilege)."""

    role: str
    database: str
    create_on_database: bool
    schema_exists: bool
    schema_usage: bool
    schema_create: bool
    tables: dict[str, _Table]  # the tool's tables that exist, by name


# Connection.info key: the _Records read in the connection's current transaction.
_RECORDS_MEMO = "hindsight_migrate.audit.records"


def _records(connection: Connection) -> _Records:
    """Read-only, and needs no privilege (the catalog only): the tool's schema and tables as this role sees them.

    Read once per transaction: a report reads several of the tool's tables, each checked against these
    answers, and nothing changes them in between but ensure_tool_tables (which forgets them)."""
    transaction = connection.get_transaction()
    memo = connection.info.get(_RECORDS_MEMO)
    if transaction is not None and memo is not None and memo[0] is transaction:
        records: _Records = memo[1]
        return records
    records = _read_records(connection)
    transaction = connection.get_transaction()  # the one reading them began, when none was open
    if transaction is not None:
        connection.info[_RECORDS_MEMO] = (transaction, records)
    return records


def _has_column(connection: Connection, table: str, column: str) -> bool:
    """Whether the tool's ``table`` (readable: see _readable) has ``column``, from the transaction's _Records."""
    found = _records(connection).tables.get(table)
    return found is not None and column in found.columns


def _read_records(connection: Connection) -> _Records:
    role, database, on_database, exists, usage, create = connection.execute(
        text(
            "SELECT current_user, current_database(), has_database_privilege(current_database(), 'CREATE'), "
            "n.oid IS NOT NULL, coalesce(has_schema_privilege(n.oid, 'USAGE'), false), "
            "coalesce(has_schema_privilege(n.oid, 'CREATE'), false) "
            "FROM (SELECT 1) AS one LEFT JOIN pg_namespace n ON n.nspname = :schema"
        ),
        {"schema": TOOL_SCHEMA},
    ).one()
    tables: dict[str, _Table] = {}
    if exists:
        rows = connection.execute(
            text(
                "SELECT c.relname, c.relkind::text, pg_has_role(c.relowner, 'USAGE'), "
                "has_any_column_privilege(c.oid, 'SELECT'), has_any_column_privilege(c.oid, 'INSERT'), "
                "has_any_column_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE'), "
                "(SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k WHERE k.conrelid = c.oid "
                "AND k.conname = 'apply_log_outcome_check'), "
                "a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, (a.atthasdef OR a.attidentity <> '') "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
                "WHERE n.nspname = :schema AND c.relname IN (:bootstrap_log, :apply_log, :applied_revisions) "
                "AND c.relkind NOT IN ('i', 'I', 'S', 'c', 't') ORDER BY c.relname, a.attnum"
            ),
            {
                "schema": TOOL_SCHEMA,
                "bootstrap_log": BOOTSTRAP_LOG,
                "apply_log": APPLY_LOG,
                "applied_revisions": APPLIED_REVISIONS,
            },
        )
        for name, kind, owned, select, insert, update, delete, check, column, type_, not_null, generated in rows:
            if name not in tables:
                held = (("SELECT", select), ("INSERT", insert), ("UPDATE", update), ("DELETE", delete))
                privileges = frozenset(privilege for privilege, has in held if has)
                tables[name] = _Table(str(kind), bool(owned), privileges, {}, check)
            if column is not None:
                tables[name].columns[str(column)] = _Column(str(type_), bool(not_null), bool(generated))
    return _Records(str(role), str(database), bool(on_database), bool(exists), bool(usage), bool(create), tables)


def _family(type_: str) -> str:
    """The family a column's type belongs to: timestamp(3) with time zone and timestamp are timestamps,
    character varying(32) is text."""
    return _TYPE_FAMILIES.get(re.sub(r"\(\d+(,\d+)?\)", "", type_).strip(), type_)


def _shape_problems(name: str, table: _Table, *, writing: bool) -> list[str]:
    """How a table of the tool's name differs from what this version reads (and, writing, writes)."""
    if table.kind not in ("r", "p"):
        kinds = {"v": "a view", "m": "a materialized view", "f": "a foreign table"}
        return [f"it is {kinds.get(table.kind, 'not a table')}, not a table"]
    expected = _SHAPES[name]
    missing = [
        column
        for column in expected
        if column not in table.columns and column not in _ADDED_LATER.get(name, frozenset())
    ]
    problems = [f"it has no column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"] if missing else []
    problems += [
        f"column {column} is {found.type}, not {expected[column]}"
        for column, found in table.columns.items()
        if column in expected and _family(found.type) != expected[column]
    ]
    if writing:
        problems += [
            f"column {column} is NOT NULL without a default, and hindsight-migrate does not write it"
            for column, found in table.columns.items()
            if column not in expected and found.not_null and not found.generated
        ]
        id_column = table.columns.get("id")
        if id_column is not None and not id_column.generated:
            problems.append("column id has no default nor identity, and hindsight-migrate does not write it")
    return problems


def _grant(privileges: str, on: str, role: str) -> str:
    return f"GRANT {privileges} ON {on} TO {_sql_name(role)}"


def _sql_name(name: str) -> str:
    """A name as it may be typed in a GRANT: bare when PostgreSQL would read it back unchanged."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'


def _reading_problem(records: _Records, name: str) -> str | None:
    """Why this role cannot read the tool's table ``name`` as this version reads it; None when it can (or is absent)."""
    qualified = f"{TOOL_SCHEMA}.{name}"
    if not records.schema_exists:
        return None
    if not records.schema_usage:
        # One reason for every table of the schema: the same words, said once by the reports.
        return (
            f"The tool's records (audit log, checksums, bootstrap) cannot be read: role {records.role} may not use "
            f"schema {TOOL_SCHEMA}, where hindsight-migrate keeps them "
            f"({_grant('USAGE', f'SCHEMA {TOOL_SCHEMA}', records.role)}, and "
            f"{_grant('SELECT', f'ALL TABLES IN SCHEMA {TOOL_SCHEMA}', records.role)})."
        )
    table = records.tables.get(name)
    if table is None:
        return None
    shape = _shape_problems(name, table, writing=False)
    if shape:
        return (
            f"{qualified} is not the table hindsight-migrate keeps there: {'; '.join(shape)}. Another tool or a "
            f"person made it. Rename it out of the way (ALTER TABLE {qualified} RENAME TO {name}_other): the next "
            "applying run creates the tool's own."
        )
    if "SELECT" not in table.privileges:
        return (
            f"{qualified} cannot be read: role {records.role} has no SELECT on it "
            f"({_grant('SELECT', qualified, records.role)})."
        )
    return None


def audit_unreadable(connection: Connection, *tables: str) -> dict[str, str]:
    """Read-only: why each of the tool's ``tables`` this role cannot read is unreadable, with the fix, by table
    (empty: all can be read, or are not there yet).

    The readers below return nothing for such a table rather than fail: a report shows what it can.
    """
    records = _records(connection)
    return {name: problem for name in tables if (problem := _reading_problem(records, name)) is not None}


def _readable(connection: Connection, name: str) -> bool:
    """The tool's table ``name`` exists and this role can read it as this version reads it."""
    records = _records(connection)
    return name in records.tables and _reading_problem(records, name) is None


def _refuse_unless_recordable(connection: Connection, *, bootstrapping: bool = False) -> None:
    """Read-only: refuse, before anything is written, a run whose records this role could not write."""
    records = _records(connection)
    role = records.role
    missing: list[str] = []
    if not records.create_on_database:
        # PostgreSQL checks CREATE SCHEMA IF NOT EXISTS against the database even when the schema exists.
        missing.append(
            f"CREATE on database {records.database}: every run makes sure schema {TOOL_SCHEMA} exists "
            f"({_grant('CREATE', f'DATABASE {_sql_name(records.database)}', role)})"
        )
    if records.schema_exists and not (records.schema_usage and records.schema_create):
        lacking = " and ".join(
            p for p, held in (("USAGE", records.schema_usage), ("CREATE", records.schema_create)) if not held
        )
        missing.append(
            f"{lacking} on schema {TOOL_SCHEMA}, where the tool keeps its records "
            f"({_grant(lacking.replace(' and ', ', '), f'SCHEMA {TOOL_SCHEMA}', role)})"
        )
    shapes: list[str] = []
    fixes: list[str] = []
    for name, table in sorted(records.tables.items()):
        qualified = f"{TOOL_SCHEMA}.{name}"
        shape = _shape_problems(name, table, writing=True)
        if shape:
            shapes.append(f"{qualified}: {'; '.join(shape)}")
            fixes.append(f"ALTER TABLE {qualified} RENAME TO {name}_other")
            continue
        needed = _WRITES[name] if name != BOOTSTRAP_LOG or bootstrapping else ()
        lacking_on_table = [privilege for privilege in needed if privilege not in table.privileges]
        if lacking_on_table:
            privileges = ", ".join(lacking_on_table)
            missing.append(f"{privileges} on {qualified} ({_grant(privileges, qualified, role)})")
        if name in _ADDED_LATER and not table.owned and _needs_evolving(name, table):
            missing.append(
                f"ownership of {qualified}: an earlier version made it, and this one adds to it (ALTER TABLE), "
                "which only its owner may do; run hindsight-migrate once as that owner"
            )
    if shapes:
        raise Refused(
            f"Schema {TOOL_SCHEMA} holds a table of the tool's name that is not the tool's, so this run cannot be "
            "recorded there and nothing was changed. Another tool or a person made it. Rename it out of the way "
            f"({'; '.join(fixes)}): the next run creates the tool's own.",
            sections=(Section("Not the tool's table", "\n".join(shapes)),),
        )
    if missing:
        raise Refused(
            f"Role {role} may not write the tool's records in schema {TOOL_SCHEMA} (every run that changes the "
            "database records itself there), so nothing was changed. Grant what is missing, or run as the role "
            "that owns the schema.",
            sections=(Section("Missing", "\n".join(missing)),),
        )


def refuse_unless_schema_usable(connection: Connection) -> None:
    """Read-only: refuse, naming every GRANT a run needs, when the tool's schema exists and this role may not use it.

    For the planning of a rehearsed run: what checks the apply's privileges there would otherwise stop at
    PostgreSQL's "permission denied for schema" instead of saying what to grant.
    """
    records = _records(connection)
    if records.schema_exists and not records.schema_usage:
        _refuse_unless_recordable(connection)


def _needs_evolving(name: str, table: _Table) -> bool:
    """Whether _evolve_apply_log (or _evolve_applied_revisions) would ALTER the table (which needs its owner)."""
    missing = any(column not in table.columns for column in _ADDED_LATER[name])
    if name != APPLY_LOG:
        return missing
    check = table.outcome_check
    return missing or check is None or any(f"'{outcome.value}'" not in check for outcome in Outcome)


def ensure_tool_tables(connection: Connection, *, bootstrapping: bool = False) -> None:
    """Writes: the tool's schema and tables, if they are not there yet (in the caller's transaction).

    Refuses first (:class:`Refused`, nothing written) when this role could not write them, or a table of
    their name is not the tool's: named, with the GRANT or the fix.
    """
    _refuse_unless_recordable(connection, bootstrapping=bootstrapping)
    connection.info.pop(_RECORDS_MEMO, None)  # what follows may create or change the tables
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {TOOL_SCHEMA}"))
    connection.execute(text(_CREATE_BOOTSTRAP_LOG))
    connection.execute(text(_CREATE_APPLY_LOG))
    connection.execute(text(_CREATE_APPLIED_REVISIONS))
    _evolve_apply_log(connection)
    _evolve_applied_revisions(connection)


def _evolve_apply_log(connection: Connection) -> None:
    """An apply_log made by an earlier version gains what this one writes, in place and only when missing
    (ALTER TABLE locks the table: a run that finds it current takes no lock beyond reading the catalog)."""
    qualified = f"{TOOL_SCHEMA}.{APPLY_LOG}"
    check = constraint_definition(connection, TOOL_SCHEMA, APPLY_LOG, "apply_log_outcome_check")
    if check is None or any(f"'{outcome.value}'" not in check for outcome in Outcome):
        connection.execute(text(f"ALTER TABLE {qualified} DROP CONSTRAINT IF EXISTS apply_log_outcome_check"))
        connection.execute(text(f"ALTER TABLE {qualified} ADD CONSTRAINT apply_log_outcome_check {_OUTCOME_CHECK}"))
    if not column_exists(connection, TOOL_SCHEMA, APPLY_LOG, "lock_attempts"):
        connection.execute(text(f"ALTER TABLE {qualified} ADD COLUMN lock_attempts integer"))
    if not column_exists(connection, TOOL_SCHEMA, APPLY_LOG, "warnings"):
        connection.execute(text(f"ALTER TABLE {qualified} ADD COLUMN warnings text"))
    if not column_exists(connection, TOOL_SCHEMA, APPLY_LOG, "lock_holds"):
        connection.execute(text(f"ALTER TABLE {qualified} ADD COLUMN lock_holds text"))
    if not column_exists(connection, TOOL_SCHEMA, APPLY_LOG, "environment"):
        connection.execute(text(f"ALTER TABLE {qualified} ADD COLUMN environment text"))


def _evolve_applied_revisions(connection: Connection) -> None:
    """An applied_revisions made by an earlier version gains the code fingerprint, in place and only when
    missing; its rows keep none (their code was never fingerprinted), and are judged by the file's SHA-256."""
    if not column_exists(connection, TOOL_SCHEMA, APPLIED_REVISIONS, "code_fingerprint"):
        connection.execute(text(f"ALTER TABLE {TOOL_SCHEMA}.{APPLIED_REVISIONS} ADD COLUMN code_fingerprint text"))
    if not column_exists(connection, TOOL_SCHEMA, APPLIED_REVISIONS, "environment"):
        connection.execute(text(f"ALTER TABLE {TOOL_SCHEMA}.{APPLIED_REVISIONS} ADD COLUMN environment text"))


def record_applied(
    connection: Connection,
    *,
    revision: str,
    file_sha256: str,
    file_path: str,
    apply_id: int | None,
    code_fingerprint: str | None,
    environment: str,
    lock: Mapping[str, int],
) -> bool:
    """Writes, in the revision's transaction, unless the migration lock was lost: the checksum and code
    fingerprint of a revision just applied. Returns whether ``lock`` (catalog.ADVISORY_LOCK_HELD's parameters)
    is still held; when it is not, nothing is written and the caller must roll the revision back."""
    # One statement for the check and the write (this runs once per revision), on the driver's own
    # placeholders: SQLAlchemy's text() machinery costs more than the round trip on a chain of small revisions.
    held = connection.exec_driver_sql(
        f"WITH held AS (SELECT {ADVISORY_LOCK_HELD} AS ok), written AS ("
        f"INSERT INTO {TOOL_SCHEMA}.{APPLIED_REVISIONS} (revision, file_sha256, file_path, apply_id, "
        "code_fingerprint, environment) SELECT %(revision)s::text, %(sha)s::text, %(path)s::text, "
        "%(apply_id)s::bigint, %(fingerprint)s::text, %(environment)s::text FROM held WHERE held.ok "
        "ON CONFLICT (revision) DO UPDATE SET file_sha256 = EXCLUDED.file_sha256, file_path = EXCLUDED.file_path, "
        "applied_at = clock_timestamp(), apply_id = EXCLUDED.apply_id, code_fingerprint = EXCLUDED.code_fingerprint, "
        "environment = EXCLUDED.environment RETURNING 1) "
        "SELECT ok FROM held",
        {
            "revision": revision,
            "sha": file_sha256,
            "path": file_path,
            "apply_id": apply_id,
            "fingerprint": code_fingerprint,
            "environment": environment,
            **lock,
        },
    )
    return bool(held.scalar())


def forget_applied(connection: Connection, *, revision: str, lock: Mapping[str, int]) -> bool:
    """Writes, in the revision's transaction, unless the migration lock was lost: drops the checksum of a revision
    just reverted. Returns whether ``lock`` is still held (nothing is deleted when it is not)."""
    held = connection.exec_driver_sql(
        f"WITH held AS (SELECT {ADVISORY_LOCK_HELD} AS ok), gone AS ("
        f"DELETE FROM {TOOL_SCHEMA}.{APPLIED_REVISIONS} WHERE revision = %(revision)s AND (SELECT ok FROM held) "
        "RETURNING 1) SELECT ok FROM held",
        {"revision": revision, **lock},
    )
    return bool(held.scalar())


def applied_checksums(connection: Connection, *, environment: str) -> dict[str, AppliedChecksum]:
    """Read-only: the recorded checksum of every revision the tool applied in ``environment`` and did not revert."""
    if not _readable(connection, APPLIED_REVISIONS):  # see audit_unreadable for why
        return {}
    mine = _OF_THIS_ENVIRONMENT if _has_column(connection, APPLIED_REVISIONS, "environment") else "true"
    # A table an earlier version made has no fingerprints until this version's first apply adds the column.
    fingerprint = (
        "code_fingerprint" if _has_column(connection, APPLIED_REVISIONS, "code_fingerprint") else "NULL"
    )
    rows = connection.execute(
        text(
            f"SELECT revision, file_sha256, file_path, applied_at, {fingerprint} "
            f"FROM {TOOL_SCHEMA}.{APPLIED_REVISIONS} WHERE {mine}"
        ),
        {"environment": environment},
    )
    return {row[0]: AppliedChecksum(*row) for row in rows}


def start_apply(
    connection: Connection,
    *,
    command: str,
    database: str,
    from_revisions: tuple[str, ...],
    fingerprint: str | None,
    environment: str,
) -> int:
    """Writes: a 'running' audit row; the caller commits it before changing anything.

    A run killed half-way leaves it 'running': the log never claims a success that did not commit.
    """
    user, host = who_and_where()
    return int(
        connection.execute(
            text(
                f"INSERT INTO {TOOL_SCHEMA}.{APPLY_LOG} (command, os_user, host, tool_version, database, "
                "from_revisions, outcome, plan_fingerprint, environment) VALUES (:command, :user, :host, :version, "
                ":database, :from_revisions, 'running', :fingerprint, :environment) RETURNING id"
            ),
            {
                "command": command,
                "user": user,
                "host": host,
                "version": __version__,
                "database": mask_secrets(database),
                "from_revisions": _revisions_text(from_revisions),
                "fingerprint": fingerprint,
                "environment": environment,
            },
        ).scalar_one()
    )


def finish_apply(
    connection: Connection,
    audit_id: int,
    *,
    outcome: Outcome,
    to_revisions: tuple[str, ...],
    seconds: float,
    error: str | None = None,
    lock_attempts: int | None = None,
    warnings: tuple[str, ...] = (),
    lock_holds: tuple[RecordedHold, ...] = (),
) -> None:
    """Writes: the outcome of an audited run (in the caller's transaction); ``warnings``: what PostgreSQL
    warned about while it ran (a GRANT that granted nothing), one a line; ``lock_holds``: each lock the plan
    predicted or measured, with how long the apply held it."""
    connection.execute(
        text(
            f"UPDATE {TOOL_SCHEMA}.{APPLY_LOG} SET finished_at = clock_timestamp(), outcome = :outcome, "
            "to_revisions = :to_revisions, duration_seconds = :seconds, error = :error, "
            "lock_attempts = :attempts, warnings = :warnings, lock_holds = :holds WHERE id = :id"
        ),
        {
            "id": audit_id,
            "outcome": outcome.value,
            "to_revisions": _revisions_text(to_revisions),
            "seconds": seconds,
            "error": mask_secrets(error) if error else None,
            "attempts": lock_attempts,
            "warnings": mask_secrets("\n".join(warnings)) if warnings else None,
            "holds": json.dumps([dataclasses.asdict(hold) for hold in lock_holds]) if lock_holds else None,
        },
    )


def record_nothing_to_do(
    connection: Connection,
    *,
    command: str,
    database: str,
    at: tuple[str, ...],
    fingerprint: str | None,
    environment: str,
) -> None:
    """Writes: one finished row for a run that found the database where it was going (in the caller's transaction)."""
    ensure_tool_tables(connection)
    audit_id = start_apply(
        connection,
        command=command,
        database=database,
        from_revisions=at,
        fingerprint=fingerprint,
        environment=environment,
    )
    finish_apply(connection, audit_id, outcome=Outcome.NOTHING_TO_DO, to_revisions=at, seconds=0.0)


def last_apply(connection: Connection, *, environment: str) -> ApplyRecord | None:
    """Read-only: the most recent audited run of ``environment`` on this database that changed it, or tried to.

    A run that found nothing to do is left out (a succeeded row from X to X, as an older version wrote it,
    too): shown as the last apply, it hid the apply that actually brought the database where it is.
    A failed, interrupted or killed run stays, even when it changed nothing: that it did not finish matters.
    """
    if not _readable(connection, APPLY_LOG):  # see audit_unreadable for why
        return None
    # A log an earlier version made has no lock_attempts (or lock_holds) until this version's first apply adds it.
    attempts = "lock_attempts" if _has_column(connection, APPLY_LOG, "lock_attempts") else "NULL"
    holds = "lock_holds" if _has_column(connection, APPLY_LOG, "lock_holds") else "NULL"
    mine = _OF_THIS_ENVIRONMENT if _has_column(connection, APPLY_LOG, "environment") else "true"
    row = connection.execute(
        text(
            "SELECT id, command, started_at, finished_at, os_user, host, tool_version, database, from_revisions, "
            f"to_revisions, duration_seconds, outcome, plan_fingerprint, error, {attempts}, {holds} "
            f"FROM {TOOL_SCHEMA}.{APPLY_LOG} WHERE {mine} AND outcome <> :nothing_to_do "
            "AND NOT (outcome = :succeeded AND from_revisions IS NOT DISTINCT FROM to_revisions) "
            "ORDER BY id DESC LIMIT 1"
        ),
        {
            "nothing_to_do": Outcome.NOTHING_TO_DO.value,
            "succeeded": Outcome.SUCCEEDED.value,
            "environment": environment,
        },
    ).one_or_none()
    if row is None:
        return None
    record = dataclasses.replace(ApplyRecord(*row[:15]), lock_holds=_holds_of(row[15]))
    # Read as it is stored; a value this version does not know (a hand-edited row) reads as still running.
    known = {outcome.value: outcome for outcome in Outcome}
    return dataclasses.replace(record, outcome=known.get(str(row[11]), Outcome.RUNNING))


def recorded_holds(connection: Connection, *, applies: int = 20) -> list[tuple[float, float]]:
    """Read-only: (predicted, actual) seconds of the predicted lock holds the last ``applies`` successful
    applies recorded, the newest first; none when the log is not there, not readable or older."""
    if not _readable(connection, APPLY_LOG) or not _has_column(connection, APPLY_LOG, "lock_holds"):
        return []
    rows = connection.execute(
        text(
            f"SELECT lock_holds FROM {TOOL_SCHEMA}.{APPLY_LOG} WHERE outcome = 'succeeded' AND lock_holds IS NOT NULL "
            "ORDER BY id DESC LIMIT :applies"
        ),
        {"applies": applies},
    ).scalars()
    pairs = []
    for stored in rows:
        for hold in _holds_of(stored):
            if hold.basis == "predicted" and hold.predicted_seconds is not None:
                pairs.append((hold.predicted_seconds, hold.actual_seconds))
    return pairs


def _holds_of(stored: str | None) -> tuple[RecordedHold, ...]:
    """The holds a row recorded; a value someone edited by hand into something else reads as none."""
    try:
        items = json.loads(stored or "[]")
        return tuple(RecordedHold(**item) for item in items)
    except (ValueError, TypeError):
        return ()


def _revisions_text(revisions: tuple[str, ...]) -> str:
    return ",".join(revisions) or "base"


def record_bootstrap(connection: Connection, *, sql_path: str, sql_sha256: str, baseline: str) -> None:
    """Writes: creates the tool schema if needed and records one bootstrap."""
    ensure_tool_tables(connection, bootstrapping=True)
    user, host = who_and_where()
    connection.execute(
        text(
            f"INSERT INTO {TOOL_SCHEMA}.{BOOTSTRAP_LOG} "
            "(sql_path, sql_sha256, baseline, os_user, host, tool_version) "
            "VALUES (:sql_path, :sql_sha256, :baseline, :os_user, :host, :tool_version)"
        ),
        {
            "sql_path": sql_path,
            "sql_sha256": sql_sha256,
            "baseline": baseline,
            "os_user": user,
            "host": host,
            "tool_version": __version__,
        },
    )


def last_bootstrap(connection: Connection) -> BootstrapRecord | None:
    """Read-only: the most recent bootstrap of this database, if the tool did one."""
    if not _readable(connection, BOOTSTRAP_LOG):  # see audit_unreadable for why
        return None
    row = connection.execute(
        text(
            "SELECT sql_path, sql_sha256, baseline, bootstrapped_at, os_user, host, tool_version "
            f"FROM {TOOL_SCHEMA}.{BOOTSTRAP_LOG} ORDER BY id DESC LIMIT 1"
        )
    ).one_or_none()
    return BootstrapRecord(*row) if row is not None else None
