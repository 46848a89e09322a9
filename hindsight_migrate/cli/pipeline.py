"""up and down: plan, show, check, confirm, apply — the one path both take."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

if TYPE_CHECKING:
    from hindsight_migrate.alembic_api import AlembicProject
    from hindsight_migrate.postgres.database import Database
    from hindsight_migrate.review.apply import ApplyResult
    from hindsight_migrate.review.plan import ChangeKind, MigrationPlan, NoRehearsal
    from hindsight_migrate.review.rehearsal import RehearsalOptions

from hindsight_migrate.cli.guard import COMMITTED
from hindsight_migrate.cli.options import GlobalOptions, OutputFormat
from hindsight_migrate.cli.output import show
from hindsight_migrate.cli.prompts import confirm_by_typing
from hindsight_migrate.cli.session import open_all
from hindsight_migrate.revisions import Direction


@dataclass(frozen=True)
class Review:
    """The review options up and down share."""

    rehearse_on: str
    no_rehearsal: bool
    allow_lint: bool
    dry_run: bool
    yes: bool
    lock_wait: float
    plan_out: Path | None = None  # save the plan there
    plan_in: Path | None = None  # apply this saved plan, if nothing changed
    direction: Direction = Direction.UP
    detailed_exitcode: bool = False  # with --dry-run: 0 nothing to do, 2 changes, 3 destructive
    show_sql: bool = False  # every revision's SQL inline, also in a big plan
    lock_retries: int | None = None  # --lock-retries: instead of the lock_retries setting
    output: Literal["text", "json", "markdown"] = "text"  # --format: json and markdown print a document on stdout


def review_and_apply(
    options: GlobalOptions,
    make_plan: Callable[[AlembicProject, Database, RehearsalOptions | None, NoRehearsal], MigrationPlan],
    review: Review,
) -> None:
    """Plan, show, check, confirm, apply: the one path up and down both take."""
    from hindsight_migrate import render

    outcome = _PlanOutcome()
    # --plan-out - or --format json|markdown: stdout carries the document alone; what a person reads goes to stderr.
    with render.stdout_for_data(review.plan_out == Path("-") or review.output != "text"):
        try:
            _plan_and_apply(options, make_plan, review, outcome)
        finally:
            # Once a plan was made, its document is printed, whatever came next: a dry run's exit code, a
            # refusal (lint errors, a failed rehearsal), the apply's result or its failure (then result is null).
            if review.output != "text" and outcome.plan is not None and outcome.change is not None:
                plan, change, result = outcome.plan, outcome.change, outcome.result
                inline_sql = True if review.show_sql else None
                show(
                    OutputFormat(review.output),
                    lambda: None,
                    lambda: render.plan_document(plan, change, result),
                    lambda: render.plan_markdown(plan, change, result, show_sql=inline_sql),
                )


@dataclass
class _PlanOutcome:
    """What _plan_and_apply got to: the plan and its kind of change once made, the apply's result once applied."""

    plan: MigrationPlan | None = None
    change: tuple[ChangeKind, tuple[str, ...]] | None = None
    result: ApplyResult | None = None


def _plan_and_apply(
    options: GlobalOptions,
    make_plan: Callable[[AlembicProject, Database, RehearsalOptions | None, NoRehearsal], MigrationPlan],
    review: Review,
    outcome: _PlanOutcome | None = None,
) -> None:
    from hindsight_migrate import render
    from hindsight_migrate.review import plan_file
    from hindsight_migrate.review.apply import LockRetries, apply_plan, record_nothing_to_do
    from hindsight_migrate.review.plan import NoRehearsal, change_kind, is_big, refuse_unless_applicable
    from hindsight_migrate.review.rehearsal import RehearsalOptions, RehearsalTarget

    if review.detailed_exitcode and not review.dry_run:
        from hindsight_migrate.errors import BadArgument

        raise BadArgument("--detailed-exitcode describes a plan: use it with --dry-run.")
    saved = plan_file.load_plan(review.plan_in, direction=review.direction) if review.plan_in else None
    settings, project, database = open_all(options)
    try:
        rehearsal = None
        # A saved plan was rehearsed when it was reviewed; what matters now is that nothing changed.
        skipped = NoRehearsal.SAVED_PLAN if saved is not None else NoRehearsal.REQUESTED
        if not review.no_rehearsal and saved is None:
            rehearsal = RehearsalOptions(
                where=RehearsalTarget.parse(review.rehearse_on),
                data_limit_bytes=settings.tool.rehearsal_data_limit_mb * 1024 * 1024,
                lock_timeout=settings.tool.lock_timeout,
                statement_timeout=settings.tool.statement_timeout,
            )
        plan = make_plan(project, database, rehearsal, skipped)
        if saved is not None:
            plan_file.refuse_unless_unchanged(saved, plan, plan_file.database_identity(database))
            render.err().print(
                f"The saved plan {render.safe_markup(review.plan_in)} still holds: nothing changed since it was "
                "reviewed."
            )
        plan_to_stdout = review.plan_out == Path("-")
        # A big plan's SQL goes to a file, named on screen, unless --show-sql asks for it inline.
        sql_file = plan_file.save_sql(plan) if is_big(plan) and not review.show_sql else None
        render.migration_plan(plan, show_sql=True if review.show_sql else None, sql_file=sql_file)
        if plan_to_stdout:
            sys.stdout.write(plan_file.plan_document(plan, plan_file.database_identity(database)))
            sys.stdout.flush()
        elif review.plan_out is not None:
            plan_file.save_plan(plan, plan_file.database_identity(database), review.plan_out)
            render.err().print(f"Plan saved to {render.safe_markup(review.plan_out)}.")
        kind, reasons = change_kind(plan, blocking_seconds=settings.tool.destructive_lock.seconds)
        if outcome is not None:
            outcome.plan, outcome.change = plan, (kind, reasons)
        if plan.nothing_to_do:
            if not review.dry_run and saved is None:
                record_nothing_to_do(plan, database)  # every applying run leaves its row, this one too
            return
        refuse_unless_applicable(plan, allow_lint=review.allow_lint)
        if review.dry_run:
            render.dry_run_done(kind, reasons, detailed=review.detailed_exitcode)
            if review.detailed_exitcode:
                raise typer.Exit(kind.value)
            return
        confirm_by_typing(plan, yes=review.yes)
        progress = render.RichProgress(len(plan.revisions))
        try:
            result = apply_plan(
                plan,
                project,
                database,
                lock_wait=review.lock_wait,
                lock_timeout=settings.tool.lock_timeout,
                retries=LockRetries(
                    retries=review.lock_retries if review.lock_retries is not None else settings.tool.lock_retries,
                    max_wait_seconds=settings.tool.lock_retry_max_wait.seconds,
                    lock_timeout_seconds=settings.tool.lock_timeout.seconds,
                ),
                progress=progress,
            )
        finally:
            progress.close()
        COMMITTED[0] = True
        if outcome is not None:
            outcome.result = result
        render.migration_done(result, direction=plan.direction)
    finally:
        database.dispose()
