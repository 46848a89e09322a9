"""What the audit tables hold, as plain data: no SQL and no driver, so that reports and render read
them without loading the database layer (:mod:`hindsight_migrate.postgres.audit` writes and reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


# How an audited run ended. 'running' is also what a run killed half-way (SIGKILL, a power cut)
# leaves: the log never claims an outcome that did not happen.
class Outcome(Enum):
    """How an audited run ended: the value is what the log's outcome column holds."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM: what committed stays, what was running rolled back
    NOTHING_TO_DO = "nothing_to_do"  # the database was already where the run was going


@dataclass(frozen=True)
class AppliedChecksum:
    revision: str
    file_sha256: str
    file_path: str
    applied_at: datetime
    code_fingerprint: str | None = None  # None: applied by a version that did not fingerprint code


@dataclass(frozen=True)
class RecordedHold:
    """One lock the plan predicted (or measured), and how long the apply then held it."""

    revision: str
    table: str
    basis: str  # the plan's: measured, predicted or unknown
    predicted_seconds: float | None
    predicted_low: float | None
    predicted_high: float | None
    actual_seconds: float  # from the start of the statement that first named the table to the revision's commit


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
    outcome: Outcome  # RUNNING also when the run was killed
    plan_fingerprint: str | None
    error: str | None
    lock_attempts: int | None = None  # attempts to take the locks the revisions needed, when more than one
    lock_holds: tuple[RecordedHold, ...] = ()  # predicted against actual, per revision and table


@dataclass(frozen=True)
class BootstrapRecord:
    sql_path: str
    sql_sha256: str
    baseline: str
    bootstrapped_at: datetime
    os_user: str
    host: str
    tool_version: str
