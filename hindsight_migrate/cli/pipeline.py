"""up and down at the command line: the review's core (:mod:`hindsight_migrate.review.pipeline`) with a
terminal on the other side: render shows the plan, a prompt asks, the document and exit code follow."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hindsight_migrate.cli.guard import CommandRun
from hindsight_migrate.cli.options import GlobalOptions, OutputFormat
from hindsight_migrate.cli.output import show
from hindsight_migrate.cli.prompts import confirm_by_typing, refuse_early_without_terminal
from hindsight_migrate.cli.session import open_all
from hindsight_migrate.review.kinds import ChangeKind, NoRehearsal
from hindsight_migrate.revisions import Direction

if TYPE_CHECKING:
    from hindsight_migrate.alembic_api import AlembicProject
    from hindsight_migrate.postgres.database import Database
    from hindsight_migrate.review.apply import ApplyResult
    from hindsight_migrate.review.pipeline import ClosingProgress, ReviewRequest
    from hindsight_migrate.review.plan import MigrationPlan
    from hindsight_migrate.review.rehearsal import RehearsalOptions
    from hindsight_migrate.review.summary import PlanDigest


@dataclass(frozen=True)
class Review:
    """The review options up and down share, as the command line gives them."""

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
    details: bool = False  # --details: every part of the plan in full
    output: OutputFormat = OutputFormat.text  # --format: json and markdown print a document on stdout

    def request(self) -> ReviewRequest:
        from hindsight_migrate.review.pipeline import ReviewRequest
        from hindsight_migrate.review.rehearsal import RehearsalTarget

        return ReviewRequest(
            rehearse_on=RehearsalTarget.parse(self.rehearse_on),
            no_rehearsal=self.no_rehearsal,
            allow_lint=self.allow_lint,
            dry_run=self.dry_run,
            yes=self.yes,
            lock_wait=self.lock_wait,
            plan_out=self.plan_out,
            plan_in=self.plan_in,
            direction=self.direction,
            detailed_exitcode=self.detailed_exitcode,
            show_sql=self.show_sql,
            lock_retries=self.lock_retries,
            details=self.details,
        )


@dataclass
class TerminalReviewer:
    """The review's person, at a terminal (or a pipe, a CI log): render shows, the prompt asks."""

    review: Review
    run: CommandRun

    def saved_plan_holds(self, path: Path) -> None:
        from hindsight_migrate import render

        render.err().print(
            f"The saved plan {render.safe_markup(path)} still holds: nothing changed since it was reviewed."
        )

    def show(self, plan: MigrationPlan, digest: PlanDigest, *, sql_file: Path | None) -> None:
        from hindsight_migrate import render

        render.migration_plan(plan, digest, sql_file=sql_file)

    def plan_document(self, document: str) -> None:
        sys.stdout.write(document)
        sys.stdout.flush()

    def plan_saved(self, path: Path) -> None:
        from hindsight_migrate import render

        render.err().print(f"Plan saved to {render.safe_markup(path)}.")

    def dry_run_done(self, kind: ChangeKind, reasons: tuple[str, ...]) -> None:
        from hindsight_migrate import render

        render.dry_run_done(kind, reasons, detailed=self.review.detailed_exitcode)

    def confirm(self, plan: MigrationPlan) -> None:
        confirm_by_typing(plan, yes=self.review.yes)

    def progress(self, revisions: int) -> ClosingProgress:
        from hindsight_migrate import render

        return render.RichProgress(revisions)

    def committed(self) -> None:
        self.run.committed = True

    def applied(self, result: ApplyResult) -> None:
        from hindsight_migrate import render

        render.migration_done(result, direction=self.review.direction)


def review_and_apply(
    run: CommandRun,
    options: GlobalOptions,
    make_plan: Callable[[AlembicProject, Database, RehearsalOptions | None, NoRehearsal], MigrationPlan],
    review: Review,
) -> None:
    """Plan, show, check, confirm, apply: the one path up and down both take."""
    from hindsight_migrate import render
    from hindsight_migrate.review import pipeline

    outcome = pipeline.ReviewOutcome()
    request = review.request()
    # --plan-out - or --format json|markdown: stdout carries the document alone; what a person reads goes to stderr.
    with render.stdout_for_data(review.plan_out == Path("-") or review.output is not OutputFormat.text):
        try:
            saved = pipeline.saved_plan_of(request)
            # Before the project or the database is opened: no rehearsal for a question no one can answer.
            refuse_early_without_terminal(asks=not (review.dry_run or review.yes))
            settings, project, database = open_all(options)
            try:
                pipeline.review_and_apply(
                    settings, project, database, make_plan, request, saved, TerminalReviewer(review, run), outcome
                )
            finally:
                database.dispose()
        finally:
            # Once a plan was made, its document is printed, whatever came next: a dry run's exit code, a
            # refusal (lint errors, a failed rehearsal), the apply's result or its failure (then result is null).
            plan, digest, change, result = outcome.plan, outcome.digest, outcome.change, outcome.result
            if (
                review.output is not OutputFormat.text
                and plan is not None
                and digest is not None
                and change is not None
            ):
                show(
                    review.output,
                    lambda: None,
                    lambda: render.plan_document(plan, digest, change, result),
                    lambda: render.plan_markdown(plan, digest, change, result),
                )
    if outcome.exit_code is not None:
        raise typer.Exit(outcome.exit_code)
