"""up and down: plan, show, check, confirm, apply — the one path both take.

The core decides; the person is reached through :class:`Reviewer`, which the command line implements
(render shows, a prompt asks). Nothing here prints, prompts or exits: what happened comes back as a
:class:`ReviewOutcome`, which the caller turns into a document and an exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from hindsight_migrate.errors import BadArgument
from hindsight_migrate.review import plan_file
from hindsight_migrate.review.apply import ApplyResult, Progress, apply_plan, record_nothing_to_do
from hindsight_migrate.review.kinds import ChangeKind, NoRehearsal
from hindsight_migrate.review.lock_waits import LockWaits
from hindsight_migrate.review.plan import MigrationPlan, change_kind, refuse_unless_applicable
from hindsight_migrate.review.rehearsal import RehearsalOptions, RehearsalTarget
from hindsight_migrate.review.summary import PlanDigest, digest
from hindsight_migrate.revisions import Direction

if TYPE_CHECKING:
    from hindsight_migrate.alembic_api import AlembicProject
    from hindsight_migrate.config import Settings
    from hindsight_migrate.postgres.database import Database

MakePlan = Callable[["AlembicProject", "Database", RehearsalOptions | None, NoRehearsal], MigrationPlan]


@dataclass(frozen=True)
class ReviewRequest:
    """What the reviewer asked for: the options up and down share."""

    rehearse_on: RehearsalTarget
    no_rehearsal: bool
    allow_lint: bool
    dry_run: bool
    yes: bool
    lock_wait: float
    plan_out: Path | None = None  # save the plan there ("-": stdout)
    plan_in: Path | None = None  # apply this saved plan, if nothing changed
    direction: Direction = Direction.UP
    detailed_exitcode: bool = False  # with --dry-run: 0 nothing to do, 2 changes, 3 destructive
    show_sql: bool = False  # every revision's SQL inline, also in a big plan
    lock_retries: int | None = None  # --lock-retries: instead of the lock_retries setting
    details: bool = False  # every part of the plan in full (the text view; JSON and markdown always are)


@dataclass
class ReviewOutcome:
    """How far the review got: the plan and its kind of change once made, the apply's result once applied."""

    plan: MigrationPlan | None = None
    digest: PlanDigest | None = None  # what the views show of the plan, decided once
    change: tuple[ChangeKind, tuple[str, ...]] | None = None
    result: ApplyResult | None = None
    exit_code: int | None = None  # --detailed-exitcode's 0, 2 or 3


class Reviewer(Protocol):
    """The person on the other side of the review (the command line implements it)."""

    def saved_plan_holds(self, path: Path) -> None: ...

    def show(self, plan: MigrationPlan, digest: PlanDigest, *, sql_file: Path | None) -> None: ...

    def plan_document(self, document: str) -> None: ...  # --plan-out -: the plan file, on stdout

    def plan_saved(self, path: Path) -> None: ...

    def dry_run_done(self, kind: ChangeKind, reasons: tuple[str, ...]) -> None: ...

    def confirm(self, plan: MigrationPlan) -> None: ...  # raises Aborted unless the person confirms

    def progress(self, revisions: int) -> ClosingProgress: ...

    def committed(self) -> None: ...  # the change is in: a reader who goes away now changes nothing

    def applied(self, result: ApplyResult) -> None: ...


class ClosingProgress(Progress, Protocol):
    def close(self) -> None: ...


def saved_plan_of(request: ReviewRequest) -> plan_file.SavedPlan | None:
    """Reads a file (--plan): the saved plan to apply, or None; the request's options checked first, before
    any database is opened."""
    if request.detailed_exitcode and not request.dry_run:
        raise BadArgument("--detailed-exitcode describes a plan: use it with --dry-run.")
    return plan_file.load_plan(request.plan_in, direction=request.direction) if request.plan_in else None


def review_and_apply(
    settings: Settings,
    project: AlembicProject,
    database: Database,
    make_plan: MakePlan,
    request: ReviewRequest,
    saved: plan_file.SavedPlan | None,
    reviewer: Reviewer,
    outcome: ReviewOutcome,
) -> ReviewOutcome:
    """Writes (unless a dry run, or refused): plans, shows, checks, asks, applies; fills ``outcome`` as it goes,
    so a caller that meets an error still has the plan to report."""
    rehearsal = None
    # A saved plan was rehearsed when it was reviewed; what matters now is that nothing changed.
    skipped = NoRehearsal.SAVED_PLAN if saved is not None else NoRehearsal.REQUESTED
    if not request.no_rehearsal and saved is None:
        rehearsal = RehearsalOptions(
            where=request.rehearse_on,
            data_limit_bytes=settings.tool.rehearsal_data_limit_mb * 1024 * 1024,
            sample_bytes=settings.tool.rehearsal_sample_mb * 1024 * 1024,
            lock_timeout=settings.tool.lock_timeout,
            statement_timeout=settings.tool.statement_timeout,
        )
    plan = make_plan(project, database, rehearsal, skipped)
    if saved is not None and request.plan_in is not None:
        plan_file.refuse_unless_unchanged(saved, plan, plan_file.planned_database(database))
        reviewer.saved_plan_holds(request.plan_in)
    shown = digest(
        plan,
        show_sql=request.show_sql,
        details=request.details,
        version_table=project.env.version_table,
        lock_waits=lock_waits_of(settings, request),
    )
    outcome.plan, outcome.digest = plan, shown
    # A big plan's SQL goes to a file, named on screen, unless --show-sql asks for it inline.
    sql_file = None if shown.sql_inline else plan_file.save_sql(plan)
    reviewer.show(plan, shown, sql_file=sql_file)
    if request.plan_out == Path("-"):
        reviewer.plan_document(plan_file.plan_document(plan, plan_file.planned_database(database)))
    elif request.plan_out is not None:
        plan_file.save_plan(plan, plan_file.planned_database(database), request.plan_out)
        reviewer.plan_saved(request.plan_out)
    kind, reasons = change_kind(plan, blocking_seconds=settings.tool.destructive_lock.seconds)
    outcome.change = kind, reasons
    if plan.nothing_to_do:
        if not request.dry_run and saved is None:
            record_nothing_to_do(plan, project, database)  # every applying run leaves its row, this one too
        return outcome
    refuse_unless_applicable(plan, allow_lint=request.allow_lint)
    if request.dry_run:
        reviewer.dry_run_done(kind, reasons)
        if request.detailed_exitcode:
            outcome.exit_code = kind.value
        return outcome
    reviewer.confirm(plan)
    progress = reviewer.progress(len(plan.revisions))
    try:
        result = apply_plan(
            plan,
            project,
            database,
            lock_wait=request.lock_wait,
            lock_waits=lock_waits_of(settings, request),
            progress=progress,
        )
    finally:
        progress.close()
    reviewer.committed()
    outcome.result = result
    reviewer.applied(result)
    return outcome


def lock_waits_of(settings: Settings, request: ReviewRequest) -> LockWaits:
    """The lock-wait schedule of this run: the settings, with --lock-retries instead of lock_retries."""
    tool = settings.tool
    return LockWaits(
        ceiling=tool.lock_timeout,
        start=tool.lock_timeout_start,
        doubling=tool.lock_timeout_doubling,
        retries=request.lock_retries if request.lock_retries is not None else tool.lock_retries,
        max_wait=tool.lock_retry_max_wait,
    )
