"""Apply a reviewed plan, up or down: one transaction per revision, under the migration lock, audited.

A failure leaves the database at the last revision that committed, never half-way through
one; the error names the revision, what the database said, the statement, and where the
database now stands.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from hindsight_migrate import ledger
from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.bootstrap import apply_bootstrap, drop_baseline_schema
from hindsight_migrate.database import Database, server_said
from hindsight_migrate.errors import HindsightMigrateError, Refused, Section, StatementFailed
from hindsight_migrate.locking import migration_lock
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.plan import DOWN, MigrationPlan, PlannedRevision
from hindsight_migrate.revisions import RevisionInfo

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


class Progress(Protocol):
    """Told as each revision starts and ends; the CLI draws it."""

    def started(self, revision: RevisionInfo) -> None: ...

    def finished(self, revision: RevisionInfo, seconds: float) -> None: ...


class NoProgress:
    def started(self, revision: RevisionInfo) -> None:
        pass

    def finished(self, revision: RevisionInfo, seconds: float) -> None:
        pass


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


def apply_plan(
    plan: MigrationPlan,
    project: AlembicProject,
    database: Database,
    *,
    lock_wait: float,
    lock_timeout: str,
    progress: Progress | None = None,
) -> ApplyResult:
    """Writes: the plan's revisions, each in a transaction of its own, and one audit row."""
    downgrade = plan.direction == DOWN
    from sqlalchemy.exc import DBAPIError

    progress = progress or NoProgress()
    started = time.monotonic()
    applied: list[AppliedRevision] = []
    if plan.bootstrap is not None:
        apply_bootstrap(plan.bootstrap, project, database, lock_wait=lock_wait)
    with migration_lock(database, wait_seconds=lock_wait), database.connect() as connection:
        now = project.env.current_heads(connection)
        expected = (plan.bootstrap.baseline.revision,) if plan.bootstrap else plan.current
        if now == plan.final and now != expected:
            # Another run applied exactly this plan while we waited for the lock: nothing to do.
            connection.rollback()
            return ApplyResult(plan.database, now, now, (), False, time.monotonic() - started, done_by_another=True)
        if now != expected:
            connection.rollback()
            raise Refused(
                f"The database moved since this plan was made: it was at {_words(expected)}, it is now at "
                f"{_words(now)}. Nothing was applied. Run hindsight-migrate up again to review the new plan.",
            )
        ledger.ensure_tool_tables(connection)
        audit_id = ledger.start_apply(
            connection, command=plan.direction, database=plan.database, from_revisions=now, fingerprint=plan.fingerprint
        )
        connection.commit()
        # Session-wide, so it holds in the transaction env.py opens for each revision: a migration
        # waiting behind live traffic gives up instead of queueing every other query behind it.
        connection.exec_driver_sql(f"SET lock_timeout = '{lock_timeout}'")
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

        def before_each(revision: str) -> None:
            committed()  # Alembic asks for the next revision after the previous one committed
            running.append((items[revision], time.monotonic()))
            progress.started(items[revision].info)

        def after_each(revision: str, revision_connection: Connection) -> None:
            _record_checksum(revision_connection, items[revision], audit_id, downgrade)
            uncommitted.append(items[revision])

        try:
            project.env.run_revisions(
                connection, list(items), downgrade=downgrade, before_each=before_each, after_each=after_each
            )
            if connection.in_transaction():  # an env.py that does not begin its own
                connection.commit()
            committed()
        except DBAPIError as err:
            connection.rollback()
            failing = running[-1][0].info if running else plan.revisions[0].info
            raise _failed(project, connection, audit_id, failing, err, started, lock_timeout) from err
        except HindsightMigrateError as problem:
            # The project's code raised (ProjectCodeFailed), or env.py asked for something refused:
            # the row says so, and the reader learns where the database stands now.
            now = _close_audit(project, connection, audit_id, started, error=mask_secrets(problem.message))
            problem.with_section(Section("Database now at", _words(now)))
            raise
        except BaseException as err:
            # Ctrl-C, SIGTERM, or a bug of ours: the row must not stay 'running' for ever.
            with contextlib.suppress(Exception):
                reason = "interrupted (Ctrl-C or SIGTERM)" if isinstance(err, KeyboardInterrupt) else repr(err)
                _close_audit(project, connection, audit_id, started, error=mask_secrets(reason))
            raise
        if plan.drops_baseline:
            # Past the baseline: what V1 created goes too, with the version table, in one transaction.
            with connection.begin():
                drop_baseline_schema(connection)
        final = project.env.current_heads(connection)
        connection.rollback()
        with connection.begin():
            ledger.finish_apply(
                connection, audit_id, outcome="succeeded", to_revisions=final, seconds=time.monotonic() - started
            )
    return ApplyResult(
        database=plan.database,
        from_revisions=plan.current,
        to_revisions=final,
        applied=tuple(applied),
        bootstrapped=plan.bootstrap is not None,
        seconds=time.monotonic() - started,
    )


def _close_audit(
    project: AlembicProject, connection: Connection, audit_id: int, started: float, *, error: str
) -> tuple[str, ...]:
    """Writes: the audit row ends 'failed' with ``error``; returns where the database stands."""
    connection.rollback()
    now = project.env.current_heads(connection)
    connection.rollback()
    with connection.begin():
        ledger.finish_apply(
            connection, audit_id, outcome="failed", to_revisions=now, seconds=time.monotonic() - started, error=error
        )
    return now


def _record_checksum(connection: Connection, item: PlannedRevision, audit_id: int, downgrade: bool) -> None:
    """In the revision's own transaction: its file's checksum, or its removal."""
    if downgrade:
        ledger.forget_applied(connection, revision=item.info.revision)
    else:
        ledger.record_applied(
            connection,
            revision=item.info.revision,
            file_sha256=item.file_sha256,
            file_path=str(item.info.path),
            apply_id=audit_id,
        )


def _failed(
    project: AlembicProject,
    connection: Connection,
    audit_id: int,
    revision: RevisionInfo,
    err: BaseException,
    started: float,
    lock_timeout: str,
) -> StatementFailed:
    said = server_said(err)
    now = _close_audit(project, connection, audit_id, started, error=said)
    if "lock timeout" in said:
        headline = (
            f"Revision {revision.revision} ({revision.message}) gave up after waiting {lock_timeout} for a lock: "
            "another session holds a lock on a table it changes. Nothing of that revision was applied; "
            "retry when traffic is lower, or raise lock_timeout in [hindsight-migrate]."
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
    sections.append(Section("Database now at", _words(now)))
    return StatementFailed(headline, sections=tuple(sections))


def _words(revisions: tuple[str, ...]) -> str:
    return ", ".join(revisions) if revisions else "no revision (empty version table)"
