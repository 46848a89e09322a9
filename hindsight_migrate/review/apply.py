"""Apply a reviewed plan, up or down: one transaction per revision, under the migration lock, audited.

A failure leaves the database at the last revision that committed, never half-way through
one; the error names the revision, what the database said, the statement, and where the
database now stands.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.exc import DBAPIError

from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.duration import Duration
from hindsight_migrate.errors import HindsightMigrateError, Refused, Section, StatementFailed
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.postgres import audit
from hindsight_migrate.postgres.audit_records import Outcome, RecordedHold
from hindsight_migrate.postgres.catalog import Blocker, invalid_indexes
from hindsight_migrate.postgres.database import Database, ServerWarning, ServerWarnings, server_said, set_lock_timeout
from hindsight_migrate.postgres.locking import BlockerWatch, HeldLock, describe_blockers, hold_applying, migration_lock
from hindsight_migrate.review.bootstrap import bootstrap_under_lock, drop_baseline_schema
from hindsight_migrate.review.lock_waits import LockWaits, listed, milliseconds, schedule_words
from hindsight_migrate.review.plan import MigrationPlan, PlannedRevision, failed_before_the_first_revision
from hindsight_migrate.review.rehearsal import revision_source
from hindsight_migrate.review.rehearsal.meter import HoldTimer
from hindsight_migrate.review.rehearsal.strategies import failure_of
from hindsight_migrate.revisions import Direction, RevisionInfo

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


class Progress(Protocol):
    """Told as each revision starts and ends; the CLI draws it."""

    def started(self, revision: RevisionInfo) -> None: ...

    def finished(self, revision: RevisionInfo, seconds: float) -> None: ...

    def retrying(self, revision: RevisionInfo, retry: LockRetry) -> None: ...


class NoProgress:
    def started(self, revision: RevisionInfo) -> None:
        pass

    def finished(self, revision: RevisionInfo, seconds: float) -> None:
        pass

    def retrying(self, revision: RevisionInfo, retry: LockRetry) -> None:
        pass


@dataclass(frozen=True)
class LockRetry:
    """Told to the progress line: the lock was not granted in time; the revision is tried again."""

    attempt: int  # the attempt that is about to start (2 for the first retry)
    of: int  # attempts allowed
    pause_seconds: float
    blockers: tuple[Blocker, ...]
    waited_seconds: float  # what the attempt that timed out waited for its lock
    next_wait_seconds: float  # what the next attempt may wait (the schedule grows it toward lock_timeout)


@dataclass(frozen=True)
class AppliedRevision:
    revision: str
    message: str
    seconds: float


@dataclass(frozen=True)
class ApplyResult:
    database: str
    from_revisions: tuple[str, ...]
    to_revisions: tuple[str, ...]
    applied: tuple[AppliedRevision, ...]
    bootstrapped: bool
    seconds: float
    done_by_another: bool = False  # another run applied this very plan while this one waited for the lock
    lock_attempts: int = 1  # attempts the revisions took, lock retries included
    server_warnings: tuple[ServerWarning, ...] = ()  # what PostgreSQL warned about (a GRANT that granted nothing)
    lock_holds: tuple[RecordedHold, ...] = ()  # each lock the plan timed, with how long the apply held it


def apply_plan(
    plan: MigrationPlan,
    project: AlembicProject,
    database: Database,
    *,
    lock_wait: float,
    lock_waits: LockWaits,
    progress: Progress | None = None,
) -> ApplyResult:
    """Writes: the plan's revisions, each in a transaction of its own, and one audit row.

    Under one hold of the migration lock, bootstrap included: runs that race to deploy an empty
    database wait for the winner and then find its work done, instead of finding it "not empty".
    """
    progress = progress or NoProgress()
    started = time.monotonic()
    with migration_lock(database, wait_seconds=lock_wait) as lock, database.connect() as connection:
        # Before reading where the database stands: a run whose lock session died may still be applying.
        hold_applying(connection, wait_seconds=lock_wait, masked_url=database.masked_url)
        if plan.bootstrap is not None:
            now = project.env.current_heads(connection)
            connection.rollback()
            if not now:
                bootstrap_under_lock(plan.bootstrap, project, database, lock)
            # else: another run bootstrapped it while this one waited; what follows sees where it stands.
        return _apply_under_lock(plan, project, database, connection, lock, lock_waits, progress, started)


def record_nothing_to_do(plan: MigrationPlan, project: AlembicProject, database: Database) -> None:
    """Writes: the audit row of a run that found nothing to do (every applying run leaves one)."""
    with database.connect() as connection, connection.begin():
        audit.record_nothing_to_do(
            connection,
            command=plan.direction.value,
            database=plan.database,
            at=plan.current,
            fingerprint=plan.fingerprint,
            environment=project.env.version_table.environment,
        )


def _apply_under_lock(
    plan: MigrationPlan,
    project: AlembicProject,
    database: Database,
    connection: Connection,
    lock: HeldLock,
    lock_waits: LockWaits,
    progress: Progress,
    started: float,
) -> ApplyResult:
    downgrade = plan.direction is Direction.DOWN
    applied: list[AppliedRevision] = []
    now = project.env.current_heads(connection)
    expected = (plan.bootstrap.baseline.revision,) if plan.bootstrap else plan.current
    if now == plan.final and now != expected:
        # Another run applied exactly this plan while we waited for the lock: nothing to do.
        connection.rollback()
        with connection.begin():
            audit.record_nothing_to_do(
                connection,
                command=plan.direction.value,
                database=plan.database,
                at=now,
                fingerprint=plan.fingerprint,
                environment=project.env.version_table.environment,
            )
        return ApplyResult(plan.database, now, now, (), False, time.monotonic() - started, done_by_another=True)
    if now != expected:
        connection.rollback()
        raise Refused(
            f"The database moved since this plan was made: it was at {_words(expected)}, it is now at "
            f"{_words(now)}. Nothing was applied. Run hindsight-migrate up again to review the new plan.",
        )
    audit.ensure_tool_tables(connection)
    audit_id = audit.start_apply(
        connection,
        command=plan.direction.value,
        database=plan.database,
        from_revisions=now,
        fingerprint=plan.fingerprint,
        environment=project.env.version_table.environment,
    )
    invalid_before = invalid_indexes(connection)
    connection.commit()
    # Session-wide, so it holds in the transaction env.py opens for each revision: a migration
    # waiting behind live traffic gives up instead of queueing every other query behind it. The
    # first attempt waits lock_timeout_start; a retry waits longer the longer its revision has waited.
    timeouts = [lock_waits.timeout_seconds(0.0)]  # each attempt's, in order
    set_lock_timeout(connection, _wait(timeouts[-1]))
    # Commits keep the server's synchronous_commit: the ✓ shown for a revision means it
    # survives a server crash. (Turning it off would save ~0.6 ms per revision, and lose
    # revisions already reported as applied when the server crashes mid-run.)
    connection.commit()
    items = {item.info.revision: item for item in plan.revisions}
    running: list[tuple[PlannedRevision, float]] = []  # revisions started, with when
    uncommitted: list[PlannedRevision] = []  # the one whose transaction is about to commit

    def committed() -> None:
        # Reported only once its commit returned: a commit can still fail (a deferred
        # constraint), and a revision shown as applied must be.
        if uncommitted:
            item = uncommitted.pop()
            seconds = time.monotonic() - running[-1][1]
            applied.append(AppliedRevision(item.info.revision, item.info.message, seconds))
            progress.finished(item.info, seconds)

    # A revision that commits part of itself (autocommit_block: CREATE INDEX CONCURRENTLY) is never tried
    # again, so its one attempt waits the whole lock_timeout, as every attempt did before lock waits grew.
    tried_once = {name for name, item in items.items() if "autocommit_block" in revision_source(project, item.info)}
    session_wait: list[float | None] = [timeouts[-1]]  # the session's lock_timeout now (None: not known)

    def before_each(revision: str) -> None:
        committed()  # Alembic asks for the next revision after the previous one committed
        wanted = lock_waits.ceiling.seconds if revision in tried_once else timeouts[-1]
        if wanted != session_wait[0]:
            # Alembic begins the revision's transaction after this: the SET is in it (autobegun, adopted).
            set_lock_timeout(connection, _wait(wanted))
            session_wait[0] = wanted
        heard.revision = revision
        running.append((items[revision], time.monotonic()))
        progress.started(items[revision].info)
        holds.start(revision)

    def after_each(revision: str, revision_connection: Connection) -> None:
        holds.finish(revision)
        # Last thing before the commit: a run that lost its lock must not commit another revision.
        _record_checksum(
            revision_connection, items[revision], audit_id, downgrade, project.env.version_table.environment, lock
        )
        uncommitted.append(items[revision])

    attempts = 1
    pending = list(items)
    waited_since = time.monotonic()
    blocked: tuple[str, float] | None = None  # the revision that timed out last, and since when it waits
    audit_closed = False  # by _failed, which then raises its own error
    heard = ServerWarnings()
    # What the plan predicted for each lock, against what the apply then held: the next plan's calibration.
    holds = HoldTimer(connection, plan.rehearsal)
    # Polled faster than the shortest wait, or a blocker that outlasts a short attempt goes unnamed.
    poll = min(BlockerWatch.POLL_SECONDS, timeouts[0] / 2 or BlockerWatch.POLL_SECONDS)
    try:
        with BlockerWatch(database, _backend_pid(connection), poll_seconds=poll) as watch, heard.listening(connection):
            while True:
                started_before = len(running)  # a failure with none started since is not a revision's
                try:
                    project.env.run_revisions(
                        connection, pending, downgrade=downgrade, before_each=before_each, after_each=after_each
                    )
                    if connection.in_transaction():  # an env.py that does not begin its own
                        connection.commit()
                    committed()
                    break
                except DBAPIError as err:
                    connection.rollback()
                    session_wait[0] = None  # a SET in the rolled-back transaction is undone
                    uncommitted.clear()  # its transaction is gone: it is not applied
                    if len(running) == started_before:
                        audit_closed = True
                        raise _failed_before_the_first_revision(
                            project, connection, audit_id, err, started, attempts=attempts
                        ) from err
                    failing = running[-1][0] if running else items[pending[0]]
                    if blocked is None or blocked[0] != failing.info.revision:
                        blocked = (failing.info.revision, time.monotonic() - timeouts[-1])
                    retry = _retry_after(
                        err, failing, project, lock_waits, attempts, waited_since, blocked[1], timeouts[-1],
                        watch.last_seen(),
                    )
                    if retry is None:
                        audit_closed = True
                        raise _failed(
                            project,
                            connection,
                            audit_id,
                            failing.info,
                            err,
                            started,
                            lock_waits,
                            # The last attempt of a revision tried once waited the whole lock_timeout.
                            (*timeouts[:-1], lock_waits.ceiling.seconds)
                            if failing.info.revision in tried_once
                            else tuple(timeouts),
                            attempts=attempts,
                            blockers=watch.last_seen(),
                            invalid=invalid_indexes(connection) - invalid_before,
                        ) from err
                    progress.retrying(failing.info, retry)
                    time.sleep(retry.pause_seconds)
                    timeouts.append(retry.next_wait_seconds)
                    set_lock_timeout(connection, _wait(timeouts[-1]))
                    connection.commit()
                    session_wait[0] = timeouts[-1]
                    attempts += 1
                    watch.forget()
                    done = {item.revision for item in applied}
                    pending = [revision for revision in pending if revision not in done]
    except HindsightMigrateError as problem:
        if audit_closed:
            raise
        # The project's code raised (ProjectCodeFailed), or env.py asked for something refused:
        # the row says so, and the reader learns where the database stands now.
        now = _close_audit(project, connection, audit_id, started, error=mask_secrets(problem.message))
        problem.with_section(Section("Database now at", _words(now)))
        raise
    except BaseException as err:
        # Ctrl-C, SIGTERM, or a bug of ours: the row must not stay 'running' for ever. The
        # interrupted connection may be mid-statement: the row is closed on a fresh one.
        interrupted = isinstance(err, KeyboardInterrupt)
        committed_before = ", ".join(item.revision for item in applied) or "none"
        reason = (
            f"interrupted (Ctrl-C or SIGTERM); revisions committed before it: {committed_before}"
            if interrupted
            else repr(err)
        )
        _close_audit_on_fresh_connection(
            project,
            database,
            audit_id,
            started,
            outcome=Outcome.INTERRUPTED if interrupted else Outcome.FAILED,
            error=mask_secrets(reason),
            attempts=attempts,
        )
        raise
    finally:
        holds.close()
    if plan.drops_baseline:
        # Past the baseline: what V1 created goes too, with the version table, in one transaction.
        with connection.begin():
            drop_baseline_schema(connection, version_table=project.env.version_table.name)
    final = project.env.current_heads(connection)
    connection.rollback()
    with connection.begin():
        audit.finish_apply(
            connection,
            audit_id,
            outcome=Outcome.SUCCEEDED,
            to_revisions=final,
            seconds=time.monotonic() - started,
            lock_attempts=attempts,
            warnings=tuple(f"{warning.revision}: {warning.message}" for warning in heard.heard),
            lock_holds=tuple(holds.recorded),
        )
    return ApplyResult(
        database=plan.database,
        from_revisions=plan.current,
        to_revisions=final,
        applied=tuple(applied),
        bootstrapped=plan.bootstrap is not None,
        seconds=time.monotonic() - started,
        lock_attempts=attempts,
        server_warnings=tuple(heard.heard),
        lock_holds=tuple(holds.recorded),
    )


def _backend_pid(connection: Connection) -> int:
    raw = connection.connection.driver_connection
    return int(raw.info.backend_pid)  # type: ignore[union-attr]


def _retry_after(
    err: BaseException,
    failing: PlannedRevision,
    project: AlembicProject,
    lock_waits: LockWaits,
    attempts: int,
    waited_since: float,
    blocked_since: float,
    waited_seconds: float,
    blockers: tuple[Blocker, ...],
) -> LockRetry | None:
    """The next attempt, when the failure was a lock not granted in time and another attempt is safe and due."""
    if "lock timeout" not in server_said(err) or attempts > lock_waits.retries:
        return None
    # A revision that commits part of itself (autocommit_block: CREATE INDEX CONCURRENTLY) would
    # run that part twice: it is not retried (what it left, such as an invalid index, is named).
    if "autocommit_block" in revision_source(project, failing.info):
        return None
    pause = lock_waits.pause(attempts)
    now = time.monotonic()
    next_wait = lock_waits.timeout_seconds(now + pause - blocked_since)
    if now - waited_since + pause + next_wait > lock_waits.max_wait.seconds:
        return None
    return LockRetry(
        attempt=attempts + 1,
        of=lock_waits.retries + 1,
        pause_seconds=pause,
        blockers=blockers,
        waited_seconds=waited_seconds,
        next_wait_seconds=next_wait,
    )


def _wait(seconds: float) -> Duration:
    return Duration(milliseconds(seconds), seconds)


def attempts_in_words(timeouts: tuple[float, ...]) -> str:
    """``100ms each``, ``100ms, then up to 400ms``: what the attempts waited for their lock."""
    if len(set(timeouts)) == 1:
        return f"{milliseconds(timeouts[0])}{' each' if len(timeouts) > 1 else ''}"
    return f"{milliseconds(timeouts[0])} growing to {milliseconds(max(timeouts))}"


def _close_audit(
    project: AlembicProject,
    connection: Connection,
    audit_id: int,
    started: float,
    *,
    error: str,
    outcome: Outcome = Outcome.FAILED,
    attempts: int | None = None,
) -> tuple[str, ...]:
    """Writes: the audit row ends ``outcome`` with ``error``; returns where the database stands."""
    connection.rollback()
    now = project.env.current_heads(connection)
    connection.rollback()
    with connection.begin():
        audit.finish_apply(
            connection,
            audit_id,
            outcome=outcome,
            to_revisions=now,
            seconds=time.monotonic() - started,
            error=error,
            lock_attempts=attempts,
        )
    return now


def _close_audit_on_fresh_connection(
    project: AlembicProject,
    database: Database,
    audit_id: int,
    started: float,
    *,
    outcome: Outcome,
    error: str,
    attempts: int,
) -> None:
    """Writes, best effort: the row of a run stopped by a signal, on a connection of its own (the
    migrating one may be mid-statement), with a second Ctrl-C or SIGTERM held off while it writes."""
    with _signals_held(), contextlib.suppress(Exception), database.connect() as connection:
        _close_audit(project, connection, audit_id, started, error=error, outcome=outcome, attempts=attempts)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM ignored for the block (a few milliseconds), in the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _record_checksum(
    connection: Connection, item: PlannedRevision, audit_id: int, downgrade: bool, environment: str, lock: HeldLock
) -> None:
    """In the revision's own transaction, last thing before its commit: its file's checksum, or its removal; a run
    that lost its migration lock writes nothing and rolls the revision back (LockLost) instead of committing it."""
    if downgrade:
        held = audit.forget_applied(connection, revision=item.info.revision, lock=lock.parameters)
    else:
        held = audit.record_applied(
            connection,
            revision=item.info.revision,
            file_sha256=item.file_sha256,
            file_path=str(item.info.path),
            apply_id=audit_id,
            code_fingerprint=item.code_fingerprint,
            environment=environment,
            lock=lock.parameters,
        )
    if not held:
        raise lock.lost(before=f"Revision {item.info.revision}")

def _failed(
    project: AlembicProject,
    connection: Connection,
    audit_id: int,
    revision: RevisionInfo,
    err: BaseException,
    started: float,
    lock_waits: LockWaits,
    timeouts: tuple[float, ...],
    *,
    attempts: int = 1,
    blockers: tuple[Blocker, ...] = (),
    invalid: frozenset[str] = frozenset(),
) -> StatementFailed:
    said = server_said(err)
    now = _close_audit(project, connection, audit_id, started, error=said, attempts=attempts)
    if "lock timeout" in said:
        tries = f" {attempts} times" if attempts > 1 else ""
        headline = (
            f"Revision {revision.revision} ({revision.message}) waited for a lock{tries} "
            f"({attempts_in_words(timeouts)}) and gave up: another session holds a lock on a table it changes. "
            "Nothing of that revision was applied. End or wait out the session named below, then run again (or "
            "raise lock_retries, lock_retry_max_wait or lock_timeout in [hindsight-migrate])."
        )
    else:
        headline = (
            f"Revision {revision.revision} ({revision.message}) failed and was rolled back. Fix the revision "
            "(or the data it trips over) and run again; the revisions before it in the plan are done."
        )
    statement = getattr(err, "statement", None)
    sections = [
        Section("Failing revision", f"{revision.revision}  {revision.path}"),
        Section("Database said", said),
    ]
    if statement:
        sections.append(Section("Statement", mask_secrets(str(statement).strip())))
    if blockers:
        sections.append(Section("Blocked by", describe_blockers(blockers)))
    if attempts > 1:
        sections.append(Section("Attempts", f"{attempts}, waiting {listed(timeouts)}; {schedule_words(lock_waits)}"))
    if invalid:
        sections.append(
            Section(
                "Left invalid",
                ", ".join(sorted(invalid)) + ": a concurrent index build that did not finish leaves its index "
                "INVALID; drop it (DROP INDEX CONCURRENTLY) before running the revision again.",
            )
        )
    sections.append(Section("Database now at", _words(now)))
    return StatementFailed(headline, sections=tuple(sections))


def _failed_before_the_first_revision(
    project: AlembicProject, connection: Connection, audit_id: int, err: DBAPIError, started: float, *, attempts: int
) -> HindsightMigrateError:
    """Alembic failed before it started a revision of this run: creating the version table, or env.py's own SQL."""
    said = server_said(err)
    now = _close_audit(project, connection, audit_id, started, error=said, attempts=attempts)
    failure = failure_of([], said, err, project.env.version_table.name)  # as the rehearsal tells the two apart
    problem = failed_before_the_first_revision(failure.at, said, failure.statement, when="nothing was applied")
    return problem.with_section(Section("Database now at", _words(now)))


def _words(revisions: tuple[str, ...]) -> str:
    return ", ".join(revisions) if revisions else "no revision (empty version table)"
