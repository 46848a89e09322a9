"""The ``hindsight-migrate`` command line: the Typer app and its commands.

Each command parses its options, calls one core function that returns a dataclass, and
hands that to ``render``. Nothing heavy is imported at module level, so ``--help`` stays
fast (no SQLAlchemy, no Alembic). :func:`~hindsight_migrate.cli.guard.guarded` is the one place where
errors become messages and exit codes.
"""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from hindsight_migrate import __version__
from hindsight_migrate.errors import BadArgument, ExitCode, HindsightMigrateError
from hindsight_migrate.review.kinds import NoRehearsal

if TYPE_CHECKING:
    from hindsight_migrate.alembic_api import AlembicProject
    from hindsight_migrate.postgres.database import Database
    from hindsight_migrate.review.plan import MigrationPlan
    from hindsight_migrate.review.rehearsal import RehearsalOptions

from hindsight_migrate.cli.fleet import fleet_app
from hindsight_migrate.cli.guard import CommandRun, guarded, warn
from hindsight_migrate.cli.options import (
    ConfigOption,
    DebugOption,
    DetailedExitOption,
    DetailsOption,
    FormatOption,
    GlobalOptions,
    JsonOption,
    LockRetriesOption,
    NameOption,
    OutputFormat,
    PlanInOption,
    PlanOutOption,
    ShowSqlOption,
    UrlOption,
    VerboseOption,
)
from hindsight_migrate.cli.output import document_can_be_printed, no_document_with_sql, output_format, show
from hindsight_migrate.cli.pipeline import Review, review_and_apply
from hindsight_migrate.cli.prompts import confirm, refuse_early_without_terminal
from hindsight_migrate.cli.session import open_all, open_project, with_database
from hindsight_migrate.revisions import Direction

CommandFunction = TypeVar("CommandFunction", bound=Callable[..., None])

app = typer.Typer(
    name="hindsight-migrate",
    help=(
        "Review-before-apply migrations for PostgreSQL + SQLAlchemy, driving Alembic.\n\n"
        "Global options (-c, --url, --debug) go before the command, as with alembic; they are "
        "also accepted after it."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Click's plain help, not Typer's Rich panels: the panels cut any word wider than their help
    # column with "…" (a URL at 80 columns), label every flag <bool>, and read "[alembic]" as markup.
    # Click wraps to the terminal, shows a flag as a flag and prints text as written.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def command(**settings: Any) -> Callable[[CommandFunction], CommandFunction]:
    """app.command, with the docstring's whole first paragraph as the line under Commands.

    Click shortens that line to what fits on one (cutting it with "..."); given as short_help,
    it is wrapped instead, so nothing of it is lost at 80 columns.
    """

    def register(function: CommandFunction) -> CommandFunction:
        summary = " ".join((function.__doc__ or "").split("\n\n")[0].split())
        app.command(short_help=summary, **settings)(function)
        return function

    return register


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"hindsight-migrate {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    config: ConfigOption = None,
    url: UrlOption = None,
    debug: DebugOption = False,
    name: NameOption = None,
    verbose: VerboseOption = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    ctx.obj = GlobalOptions(config=config, url=url, debug=debug, name=name, verbose=verbose)


def _globals(ctx: typer.Context, config: Path | None, url: str | None, debug: bool) -> GlobalOptions:
    """Merge options given after the command over those given before it."""
    before = ctx.obj if isinstance(ctx.obj, GlobalOptions) else GlobalOptions()
    return GlobalOptions(
        config=config or before.config,
        url=url if url is not None else before.url,  # an empty --url is refused, never ignored
        debug=debug or before.debug,
        name=before.name,
        verbose=before.verbose,
    )


@command()
def bootstrap(
    ctx: typer.Context,
    sql: Annotated[
        Path | None,
        typer.Option("--sql", help="V1 SQL file (default: bootstrap_sql in alembic.ini).", dir_okay=False),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Revision that stands for V1 (default: baseline in alembic.ini)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan and change nothing.")] = False,
    lock_wait: Annotated[
        float,
        typer.Option("--lock-wait", help="Seconds to wait for another run's migration lock.", min=0),
    ] = 5.0,
    output: FormatOption = OutputFormat.text,
    config: ConfigOption = None,
    url: UrlOption = None,
    debug: DebugOption = False,
) -> None:
    """Create the first schema on an EMPTY database: V1 SQL plus the baseline stamp.

    Runs the V1 file and stamps the baseline revision in one transaction, so a failure or a
    kill half-way leaves the database empty. Shows what it will create first (measured by
    running V1 in a rolled-back transaction) and asks before it changes anything. Refuses a
    database that already has tables or an Alembic version table.

    Example:

    \b
        hindsight-migrate --url postgresql://app@localhost/hindsight bootstrap
    """
    options = _globals(ctx, config, url, debug)

    def body(run: CommandRun) -> None:
        from hindsight_migrate import render
        from hindsight_migrate.review.bootstrap import BootstrapPlan, BootstrapResult, apply_bootstrap, plan_bootstrap

        document_can_be_printed(output, dry_run=dry_run, yes=yes)
        refuse_early_without_terminal(asks=not (dry_run or yes))  # before V1 is measured
        plan: BootstrapPlan | None = None
        done: BootstrapResult | None = None
        # With a document on stdout, what people read (the plan, the result) goes to stderr.
        with render.stdout_for_data(output is not OutputFormat.text):
            settings, project, database = open_all(options)
            try:
                plan = plan_bootstrap(
                    project,
                    database,
                    sql_path=(Path.cwd() / sql).resolve() if sql else settings.bootstrap_sql,
                    baseline=baseline or settings.baseline,
                )
                render.bootstrap_plan(plan, settings.project_dir)
                if dry_run:
                    render.err().print("Dry run: nothing was changed.")
                    return
                confirm(f"Bootstrap {plan.database} with these objects?", yes=yes)
                done = apply_bootstrap(plan, project, database, lock_wait=lock_wait)
                run.committed = True
                render.bootstrap_done(done)
            finally:
                database.dispose()
                if plan is not None:  # the plan was made: its document, with the result when it was applied
                    shown = plan
                    show(
                        output,
                        lambda: None,
                        lambda: render.bootstrap_document(shown, done),
                        lambda: render.bootstrap_markdown(shown, settings.project_dir, done),
                    )

    guarded(options, body)


@command()
def history(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Do not consult the database; show the graph only.")
    ] = False,
    output: FormatOption = OutputFormat.text,
    config: ConfigOption = None,
    url: UrlOption = None,
    debug: DebugOption = False,
) -> None:
    """Show the revision graph, newest first, with what the database has applied.

    Marks heads, bases, branch points and merges; when the database is reachable, which
    revisions are applied, which one is current and which are pending. Without a database
    (or with --offline) it still shows the graph and says so.

    Example:

    \b
        hindsight-migrate history --json | jq '.database.current'
    """
    options = _globals(ctx, config, url, debug)

    def body(run: CommandRun) -> None:
        from hindsight_migrate import render
        from hindsight_migrate.reports.history import build_history

        shown = output_format(output, as_json)
        if offline:
            _, project = open_project(options)
            result = build_history(project, None)
        else:
            result = with_database(options, build_history)
        show(
            shown,
            lambda: render.history(result),
            lambda: render.history_document(result),
            lambda: render.history_markdown(result),
        )
        state = result.database
        if state is not None and state.reachable and state.problem:
            warn((state.problem,))  # the tool's records it could not read, and why

    guarded(options, body)


@command()
def up(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="heads (default), head, a revision id or unique prefix, or +N.")
    ] = "heads",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking (for automation).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan and change nothing.")] = False,
    sql: Annotated[
        bool,
        typer.Option(
            "--sql",
            help="Print only the SQL, no database needed. TARGET may be FROM:TO; FROM defaults to the baseline.",
        ),
    ] = False,
    rehearse_on: Annotated[
        str,
        typer.Option(
            "--rehearse-on",
            help="scratch (a copy on the same server, dropped after), target (a rolled-back transaction), "
            "or the URL of a disposable database with the same schema.",
        ),
    ] = "scratch",
    no_rehearsal: Annotated[
        bool, typer.Option("--no-rehearsal", help="Skip the rehearsal (the schema diff is then not measured).")
    ] = False,
    allow_lint: Annotated[bool, typer.Option("--allow-lint", help="Apply despite lint errors.")] = False,
    detailed_exitcode: DetailedExitOption = False,
    show_sql: ShowSqlOption = False,
    details: DetailsOption = False,
    lock_retries: LockRetriesOption = None,
    plan_out: PlanOutOption = None,
    plan_in: PlanInOption = None,
    lock_wait: Annotated[
        float, typer.Option("--lock-wait", help="Seconds to wait for another run's migration lock.", min=0)
    ] = 5.0,
    output: FormatOption = OutputFormat.text,
    config: ConfigOption = None,
    url: UrlOption = None,
    debug: DebugOption = False,
) -> None:
    """Review, then apply, the pending revisions.

    Shows the plan first: the pending revisions in order, the SQL each emits, a schema diff
    measured by rehearsing them (on a scratch copy of the database by default), Squawk's lint
    findings, and the locks and table rewrites the rehearsal measured. Then asks you to type
    the target revision; only then applies, one transaction per revision, under a lock that
    keeps other runs out. An empty database is bootstrapped first, in the same plan.

    Example:

    \b
        hindsight-migrate up --dry-run
        hindsight-migrate up 461838d9 --rehearse-on target
        hindsight-migrate up --dry-run --format markdown > plan.md
    """
    options = _globals(ctx, config, url, debug)

    def body(run: CommandRun) -> None:
        from hindsight_migrate.review.plan import plan_upgrade

        if sql:
            no_document_with_sql(output)
            _print_offline_sql(options, target)
            return
        document_can_be_printed(output, dry_run=dry_run, yes=yes, plan_out=plan_out)

        def make_plan(
            project: AlembicProject, database: Database, rehearsal: RehearsalOptions | None, skipped: NoRehearsal
        ) -> MigrationPlan:
            return plan_upgrade(project, database, target=target, rehearsal=rehearsal, skip_reason=skipped)

        review_and_apply(
            run,
            options,
            make_plan,
            Review(
                rehearse_on,
                no_rehearsal,
                allow_lint,
                dry_run,
                yes,
                lock_wait,
                plan_out,
                plan_in,
                direction=Direction.UP,
                detailed_exitcode=detailed_exitcode,
                show_sql=show_sql,
                lock_retries=lock_retries,
                details=details,
                output=output,
            ),
        )

    guarded(options, body)


# Alembic's habit, `alembic downgrade -1`: a dash and a number is a step count, not an option, so
# unknown options reach the command, which refuses any but -N itself (_relative_target).
@command(context_settings={"ignore_unknown_options": True})
def down(
    ctx: typer.Context,
    relative: Annotated[
        str | None,
        typer.Argument(
            metavar="-N|REVISION",
            help="As in alembic downgrade: -N reverts N revisions, or a revision to go back to (as --to).",
            show_default=False,
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Revision to go back to: an id or unique prefix, -N, or base."),
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Revert this many revisions.", min=1)] = None,
    allow_drop_baseline: Annotated[
        bool,
        typer.Option(
            "--allow-drop-baseline", help="With --to base: go back past the baseline, dropping the V1 tables too."
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Revert without asking (for automation).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan and change nothing.")] = False,
    sql: Annotated[
        bool, typer.Option("--sql", help="Print only the downgrade SQL (from the database's current revision).")
    ] = False,
    rehearse_on: Annotated[
        str, typer.Option("--rehearse-on", help="scratch (default), target, or a URL: as for up.")
    ] = "scratch",
    no_rehearsal: Annotated[
        bool, typer.Option("--no-rehearsal", help="Skip the rehearsal (data loss is then not measured).")
    ] = False,
    detailed_exitcode: DetailedExitOption = False,
    show_sql: ShowSqlOption = False,
    details: DetailsOption = False,
    lock_retries: LockRetriesOption = None,
    plan_out: PlanOutOption = None,
    plan_in: PlanInOption = None,
    lock_wait: Annotated[
        float, typer.Option("--lock-wait", help="Seconds to wait for another run's migration lock.", min=0)
    ] = 5.0,
    output: FormatOption = OutputFormat.text,
    config: ConfigOption = None,
    url: UrlOption = None,
    debug: DebugOption = False,
) -> None:
    """Review, then revert, applied revisions (one step by default).

    The same review as up: the revisions to revert in order, the downgrade SQL of each, a
    schema diff measured by rehearsing them, and a data-loss report: every table and column
    the downgrade drops, with the rows it holds now. A revision that cannot be reverted
    stops the plan before anything runs; going back past the baseline needs
    --to base --allow-drop-baseline.

    Example:

    \b
        hindsight-migrate down -1 --dry-run
        hindsight-migrate down --to cd3fb603
    """
    options = _globals(ctx, config, url, debug)

    def body(run: CommandRun) -> None:
        from hindsight_migrate.review.plan import plan_downgrade

        given = _relative_target(relative)
        if to is not None and steps is not None:
            raise BadArgument("Give either --to or --steps, not both.")
        if given is not None and (to is not None or steps is not None):
            raise BadArgument(f"{given} already says where to go: give it, or --to or --steps, not both.")
        to_target = given if given is not None else to
        if to_target is None and steps is None and plan_in is not None:
            from hindsight_migrate.review.plan_file import load_plan

            target = load_plan(plan_in, direction=Direction.DOWN).target  # the saved plan says where it goes
        else:
            target = to_target if to_target is not None else f"-{steps or 1}"
        if sql:
            no_document_with_sql(output)
            _print_offline_downgrade_sql(options, target)
            return
        document_can_be_printed(output, dry_run=dry_run, yes=yes, plan_out=plan_out)

        def make_plan(
            project: AlembicProject, database: Database, rehearsal: RehearsalOptions | None, skipped: NoRehearsal
        ) -> MigrationPlan:
            return plan_downgrade(
                project,
                database,
                target=target,
                rehearsal=rehearsal,
                allow_drop_baseline=allow_drop_baseline,
                skip_reason=skipped,
            )

        review_and_apply(
            run,
            options,
            make_plan,
            Review(
                rehearse_on,
                no_rehearsal,
                allow_lint=False,
                dry_run=dry_run,
                yes=yes,
                lock_wait=lock_wait,
                plan_out=plan_out,
                plan_in=plan_in,
                direction=Direction.DOWN,
                detailed_exitcode=detailed_exitcode,
                show_sql=show_sql,
                lock_retries=lock_retries,
                details=details,
                output=output,
            ),
        )

    guarded(options, body)


@command()
def new(
    ctx: typer.Context,
    message: Annotated[str, typer.Argument(help="What the revision does; it also names the file.")],
    against_target: Annotated[
        bool,
        typer.Option(
            "--against-target",
            help="Compare with the configured database (it must be at head) instead of a scratch one built at head.",
        ),
    ] = False,
    empty: Annotated[
        bool, typer.Option("--empty", help="Write the revision even when nothing changed (a data migration).")
    ] = False,
    sql: Annotated[bool, typer.Option("--sql", help="Also show the SQL the new revision emits.")] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Exit 13 when a danger or a lint error is left in the new revision (the file is still written).",
        ),
    ] = False,
    output: FormatOption = OutputFormat.text,
    config: ConfigOption = None,
    url: UrlOption = None,
    debug: DebugOption = False,
) -> None:
    """Autogenerate a new revision from the models, reviewed before it is written.

    Compares the models with a scratch database built at head from nothing (on the configured
    server, dropped afterwards), so the result depends only on the code. Flags every drop, type
    narrowing and NOT NULL without a server default, names probable renames with the operation
    to use instead, refuses an empty revision unless --empty, and lints the new file's SQL.
    Each danger says how many rows it puts at risk on the configured database (counted
    read-only) and is written into the file as a "# DANGER:" comment above its operation.

    Example:

    \b
        hindsight-migrate new "add memory_blocks.pinned" --strict
    """
    options = _globals(ctx, config, url, debug)

    def body(run: CommandRun) -> None:
        from hindsight_migrate import render
        from hindsight_migrate.authoring.autogen import new_revision

        result = with_database(
            options,
            lambda project, database: new_revision(
                project, database, message, against_target=against_target, allow_empty=empty, strict=strict
            ),
        )
        show(
            output,
            lambda: render.new_revision(result, show_sql=sql),
            lambda: render.new_revision_document(result),
            lambda: render.new_revision_markdown(result),
        )
        if result.strict_failed:
            raise typer.Exit(int(ExitCode.CHECK_FAILED))

    guarded(options, body)


@command()
def status(
    ctx: typer.Context,
    as_json: JsonOption = False,
    output: FormatOption = OutputFormat.text,
    config: ConfigOption = None,
    url: UrlOption = None,
    debug: DebugOption = False,
) -> None:
    """Whether the database and the code agree, in one screen; the exit code says it to scripts.

    Current revision(s), head(s), pending revisions, revision files whose code was edited after
    they were applied (a comment, docstring or formatter's change is listed as reformatted, not
    tampered), applied revisions whose file is gone,
    whether the V1 file still matches its bootstrap, and the last apply. Exit 0 when up to
    date; 10 behind, 11 diverged, 12 tampered (the most serious wins).

    Example:

    \b
        hindsight-migrate status || echo "the database needs attention"
    """
    options = _globals(ctx, config, url, debug)

    def body(run: CommandRun) -> None:
        from hindsight_migrate import render
        from hindsight_migrate.reports.status import read_status

        shown = output_format(output, as_json)
        result = with_database(options, read_status)
        show(
            shown,
            lambda: render.status(result),
            lambda: render.status_document(result),
            lambda: render.status_markdown(result),
        )
        warn(result.notes)  # the tool's records it could not read, and why
        raise typer.Exit(int(result.exit_code))

    guarded(options, body)


@command()
def check(
    ctx: typer.Context,
    as_json: JsonOption = False,
    output: FormatOption = OutputFormat.text,
    against_target: Annotated[
        bool,
        typer.Option(
            "--against-target",
            help="Compare the models with the configured database (it must be at head) instead of a scratch one "
            "built at head: for chains that cannot start from an empty database.",
        ),
    ] = False,
    config: ConfigOption = None,
    url: UrlOption = None,
    debug: DebugOption = False,
) -> None:
    """For CI: fail (exit 13) with a readable list when code and database need attention.

    Fails when the models differ from the schema at head (compared with a scratch database
    built at head), the chain has more than one head, a revision cannot be reverted, a
    revision file was edited after it was applied, or revisions not yet applied have lint errors.

    Example:

    \b
        hindsight-migrate check --json
    """
    options = _globals(ctx, config, url, debug)

    def body(run: CommandRun) -> None:
        from hindsight_migrate import render
        from hindsight_migrate.reports.check import run_checks

        shown = output_format(output, as_json)
        try:
            report = with_database(
                options, lambda project, database: run_checks(project, database, against_target=against_target)
            )
        except HindsightMigrateError as problem:
            if shown is OutputFormat.json:  # a CI step that parses stdout gets a document whatever happened
                render.print_document(render.check_error_document(problem))
            raise
        show(
            shown,
            lambda: render.check_report(report),
            lambda: render.check_document(report),
            lambda: render.check_markdown(report),
        )
        if not report.ok:
            raise typer.Exit(int(ExitCode.CHECK_FAILED))

    guarded(options, body)


@command()
def lint(
    ctx: typer.Context,
    revision_range: Annotated[
        str | None,
        typer.Argument(metavar="[RANGE]", help="FROM:TO, or all (default: what the database has not applied)."),
    ] = None,
    as_json: JsonOption = False,
    output: FormatOption = OutputFormat.text,
    config: ConfigOption = None,
    url: UrlOption = None,
    debug: DebugOption = False,
) -> None:
    """Lint the SQL of a range of revisions with Squawk, grouped by revision.

    Exit 13 when a finding is an error (rules in lint_error_rules, or Squawk's own errors); 0
    with warnings only. With a RANGE no database is needed.

    Example:

    \b
        hindsight-migrate lint base:heads
    """
    options = _globals(ctx, config, url, debug)

    def body(run: CommandRun) -> None:
        from hindsight_migrate import render
        from hindsight_migrate.reports.check import lint_range

        shown = output_format(output, as_json)
        if revision_range is None:
            report = with_database(options, lambda project, database: lint_range(project, database, None))
        else:
            _, project = open_project(options)
            report = lint_range(project, None, revision_range)
        show(
            shown,
            lambda: render.lint_report(report),
            lambda: render.lint_document(report),
            lambda: render.lint_markdown(report),
        )
        raise typer.Exit(int(report.exit_code))

    guarded(options, body)


@command()
def merge(
    ctx: typer.Context,
    message: Annotated[str, typer.Option("--message", "-m", help="What the merge joins.")] = "merge heads",
    output: FormatOption = OutputFormat.text,
    config: ConfigOption = None,
    url: UrlOption = None,
    debug: DebugOption = False,
) -> None:
    """Join the chain's heads with a merge revision (Alembic's merge), when there are several.

    Example:

    \b
        hindsight-migrate merge -m "merge search and billing branches"
    """
    options = _globals(ctx, config, url, debug)

    def body(run: CommandRun) -> None:
        from hindsight_migrate import render
        from hindsight_migrate.authoring.merge import merge_heads

        _, project = open_project(options)
        merged = merge_heads(project, message)
        show(
            output,
            lambda: render.merged(merged.revision, merged.path),
            lambda: render.merge_document(merged.revision, merged.path, merged.heads),
            lambda: render.merge_markdown(merged.revision, merged.path, merged.heads),
        )

    guarded(options, body)


def _relative_target(given: str | None) -> str | None:
    """down's positional target: -N or a revision; anything else that starts with a dash was a mistyped option."""
    if given is None or not given.startswith("-") or re.fullmatch(r"-[1-9][0-9]*", given):
        return given
    raise BadArgument(f"No such option: {given}. To go back N revisions, give -N (as alembic downgrade -1).")


def _print_offline_sql(options: GlobalOptions, target: str) -> None:
    """``up --sql``: Alembic's offline rendering of the range; touches no database."""
    from hindsight_migrate import render
    from hindsight_migrate.reports.ranges import upgrade_range

    settings, project = open_project(options)
    wanted = upgrade_range(project, target, start_when_missing=settings.baseline)
    revisions = project.graph.upgrade_path(wanted.start, wanted.end)
    sql = project.env.offline_sql_path(revisions, start=wanted.start)
    render.offline_sql([(info, sql[info.revision]) for info in revisions])


def _print_offline_downgrade_sql(options: GlobalOptions, target: str) -> None:
    """``down --sql``: the downgrade SQL from the database's current revision; reads the version table only."""
    from hindsight_migrate import render

    def read(project: AlembicProject, database: Database) -> tuple[AlembicProject, tuple[str, ...]]:
        with database.connect() as connection:
            current = project.env.current_heads(connection)
            connection.rollback()
        return project, current

    project, current = with_database(options, read)
    revisions = project.graph.downgrade_path(current, target)
    sql = project.env.offline_sql_path(revisions, start=current, downgrade=True)
    render.offline_sql([(info, sql[info.revision]) for info in revisions])


app.add_typer(
    fleet_app,
    name="fleet",
    short_help="One reviewed plan, many databases: fleet plan, fleet up and fleet status over a targets file.",
)


def main() -> NoReturn:
    """Console-script entry point."""
    def terminate(signum: int, frame: object) -> None:
        # A polite kill (a CI job cancelled, a deploy aborted) unwinds like Ctrl-C, so the
        # open transaction is rolled back and a rehearsal's scratch database is dropped.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    sys.exit(app())
