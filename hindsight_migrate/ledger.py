"""The tool's own records, kept in the ``hindsight_migrate`` schema of the target database.

They live in a schema of their own so that the application, its models and Alembic's
autogenerate never see them. Every write here happens inside the transaction of the
change it records, so a record exists if and only if the change committed.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from hindsight_migrate import __version__
from hindsight_migrate.catalog import TOOL_SCHEMA, column_exists, constraint_definition, table_exists
from hindsight_migrate.masking import mask_secrets

if TYPE_CHECKING:
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

# How an audited run ended. 'running' is also what a run killed half-way (SIGKILL, a power cut)
# leaves: the log never claims an outcome that did not happen.
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM: what committed stays, what was running rolled back
NOTHING_TO_DO = "nothing_to_do"  # the database was already where the run was going
OUTCOMES = (RUNNING, SUCCEEDED, FAILED, INTERRUPTED, NOTHING_TO_DO)
_OUTCOME_CHECK = "CHECK (outcome IN (" + ", ".join(f"'{outcome}'" for outcome in OUTCOMES) + "))"

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
    lock_attempts    integer
)
"""


APPLIED_REVISIONS = "applied_revisions"

# One row per applied revision: the SHA-256 of its file (normalised line endings) when it was
# applied, so an edit afterwards is seen (Flyway's validate). Written in the revision's own
# transaction, so the row exists exactly when the revision is applied.
_CREATE_APPLIED_REVISIONS = f"""
CREATE TABLE IF NOT EXISTS {TOOL_SCHEMA}.{APPLIED_REVISIONS} (
    revision    text        PRIMARY KEY,
    file_sha256 text        NOT NULL,
    file_path   text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    apply_id    bigint
)
"""


@dataclass(frozen=True)
class AppliedChecksum:
    revision: str
    file_sha256: str
    file_path: str
    applied_at: datetime


@dataclass(frozen=True)
class ApplyRecord:
    id: int
    command: str
    started_at: datetime
    finished_at: datetime | None
    os_user: str
    host: str
    tool_version: str
    database: str
    from_revisions: str
    to_revisions: str | None
    duration_seconds: float | None
    outcome: str  # one of OUTCOMES; "running" also when the run was killed
    plan_fingerprint: str | None
    error: str | None
    lock_attempts: int | None = None  # attempts to take the locks the revisions needed, when more than one


@dataclass(frozen=True)
class BootstrapRecord:
    sql_path: str
    sql_sha256: str
    baseline: str
    bootstrapped_at: datetime
    os_user: str
    host: str
    tool_version: str


def who_and_where() -> tuple[str, str]:
    """The OS user and host recorded with every change."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        user = "unknown"
    return user, socket.gethostname()


def ensure_tool_tables(connection: Connection) -> None:
    """Writes: the tool's schema and tables, if they are not there yet (in the caller's transaction)."""
    from sqlalchemy import text

    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {TOOL_SCHEMA}"))
    connection.execute(text(_CREATE_BOOTSTRAP_LOG))
    connection.execute(text(_CREATE_APPLY_LOG))
    connection.execute(text(_CREATE_APPLIED_REVISIONS))
    _evolve_apply_log(connection)


def _evolve_apply_log(connection: Connection) -> None:
    """An apply_log made by an earlier version gains what this one writes, in place and only when missing
    (ALTER TABLE locks the table: a run that finds it current takes no lock beyond reading the catalog)."""
    from sqlalchemy import text

    qualified = f"{TOOL_SCHEMA}.{APPLY_LOG}"
    check = constraint_definition(connection, TOOL_SCHEMA, APPLY_LOG, "apply_log_outcome_check")
    if check is None or any(f"'{outcome}'" not in check for outcome in OUTCOMES):
        connection.execute(text(f"ALTER TABLE {qualified} DROP CONSTRAINT IF EXISTS apply_log_outcome_check"))
        connection.execute(text(f"ALTER TABLE {qualified} ADD CONSTRAINT apply_log_outcome_check {_OUTCOME_CHECK}"))
    if not column_exists(connection, TOOL_SCHEMA, APPLY_LOG, "lock_attempts"):
        connection.execute(text(f"ALTER TABLE {qualified} ADD COLUMN lock_attempts integer"))


def record_applied(
    connection: Connection, *, revision: str, file_sha256: str, file_path: str, apply_id: int | None
) -> None:
    """Writes: the checksum of a revision just applied (in its transaction)."""
    # The driver's own placeholders: this runs once per revision, and SQLAlchemy's text()
    # machinery costs more than the round trip on a chain of small revisions.
    connection.exec_driver_sql(
        f"INSERT INTO {TOOL_SCHEMA}.{APPLIED_REVISIONS} (revision, file_sha256, file_path, apply_id) "
        "VALUES (%(revision)s, %(sha)s, %(path)s, %(apply_id)s) ON CONFLICT (revision) DO UPDATE SET "
        "file_sha256 = EXCLUDED.file_sha256, file_path = EXCLUDED.file_path, "
        "applied_at = clock_timestamp(), apply_id = EXCLUDED.apply_id",
        {"revision": revision, "sha": file_sha256, "path": file_path, "apply_id": apply_id},
    )


def forget_applied(connection: Connection, *, revision: str) -> None:
    """Writes: drops the checksum of a revision just reverted (in its transaction)."""
    from sqlalchemy import text

    connection.execute(
        text(f"DELETE FROM {TOOL_SCHEMA}.{APPLIED_REVISIONS} WHERE revision = :revision"), {"revision": revision}
    )


def applied_checksums(connection: Connection) -> dict[str, AppliedChecksum]:
    """Read-only: the recorded checksum of every revision the tool applied and did not revert."""
    from sqlalchemy import text

    if not table_exists(connection, TOOL_SCHEMA, APPLIED_REVISIONS):
        return {}
    rows = connection.execute(
        text(f"SELECT revision, file_sha256, file_path, applied_at FROM {TOOL_SCHEMA}.{APPLIED_REVISIONS}")
    )
    return {row[0]: AppliedChecksum(*row) for row in rows}


def start_apply(
    connection: Connection, *, command: str, database: str, from_revisions: tuple[str, ...], fingerprint: str | None
) -> int:
    """Writes: a 'running' audit row; the caller commits it before changing anything.

    A run killed half-way leaves it 'running': the log never claims a success that did not commit.
    """
    from sqlalchemy import text

    user, host = who_and_where()
    return int(
        connection.execute(
            text(
                f"INSERT INTO {TOOL_SCHEMA}.{APPLY_LOG} (command, os_user, host, tool_version, database, "
                "from_revisions, outcome, plan_fingerprint) VALUES (:command, :user, :host, :version, "
                ":database, :from_revisions, 'running', :fingerprint) RETURNING id"
            ),
            {
                "command": command,
                "user": user,
                "host": host,
                "version": __version__,
                "database": mask_secrets(database),
                "from_revisions": _revisions_text(from_revisions),
                "fingerprint": fingerprint,
            },
        ).scalar_one()
    )


def finish_apply(
    connection: Connection,
    audit_id: int,
    *,
    outcome: str,
    to_revisions: tuple[str, ...],
    seconds: float,
    error: str | None = None,
    lock_attempts: int | None = None,
) -> None:
    """Writes: the outcome of an audited run (in the caller's transaction)."""
    from sqlalchemy import text

    assert outcome in OUTCOMES, outcome
    connection.execute(
        text(
            f"UPDATE {TOOL_SCHEMA}.{APPLY_LOG} SET finished_at = clock_timestamp(), outcome = :outcome, "
            "to_revisions = :to_revisions, duration_seconds = :seconds, error = :error, "
            "lock_attempts = :attempts WHERE id = :id"
        ),
        {
            "id": audit_id,
            "outcome": outcome,
            "to_revisions": _revisions_text(to_revisions),
            "seconds": seconds,
            "error": mask_secrets(error) if error else None,
            "attempts": lock_attempts,
        },
    )


def record_nothing_to_do(
    connection: Connection, *, command: str, database: str, at: tuple[str, ...], fingerprint: str | None
) -> None:
    """Writes: one finished row for a run that found the database where it was going (in the caller's transaction)."""
    ensure_tool_tables(connection)
    audit_id = start_apply(connection, command=command, database=database, from_revisions=at, fingerprint=fingerprint)
    finish_apply(connection, audit_id, outcome=NOTHING_TO_DO, to_revisions=at, seconds=0.0)


def last_apply(connection: Connection) -> ApplyRecord | None:
    """Read-only: the most recent audited run on this database."""
    from sqlalchemy import text

    if not table_exists(connection, TOOL_SCHEMA, APPLY_LOG):
        return None
    # A log an earlier version made has no lock_attempts until this version's first apply adds it.
    attempts = "lock_attempts" if column_exists(connection, TOOL_SCHEMA, APPLY_LOG, "lock_attempts") else "NULL"
    row = connection.execute(
        text(
            "SELECT id, command, started_at, finished_at, os_user, host, tool_version, database, from_revisions, "
            f"to_revisions, duration_seconds, outcome, plan_fingerprint, error, {attempts} "
            f"FROM {TOOL_SCHEMA}.{APPLY_LOG} ORDER BY id DESC LIMIT 1"
        )
    ).one_or_none()
    return ApplyRecord(*row) if row is not None else None


def _revisions_text(revisions: tuple[str, ...]) -> str:
    return ",".join(revisions) or "base"


def record_bootstrap(connection: Connection, *, sql_path: str, sql_sha256: str, baseline: str) -> None:
    """Writes: creates the tool schema if needed and records one bootstrap."""
    from sqlalchemy import text

    ensure_tool_tables(connection)
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
    from sqlalchemy import text

    if not table_exists(connection, TOOL_SCHEMA, BOOTSTRAP_LOG):
        return None
    row = connection.execute(
        text(
            "SELECT sql_path, sql_sha256, baseline, bootstrapped_at, os_user, host, tool_version "
            f"FROM {TOOL_SCHEMA}.{BOOTSTRAP_LOG} ORDER BY id DESC LIMIT 1"
        )
    ).one_or_none()
    return BootstrapRecord(*row) if row is not None else None
