"""The ``hindsight-migrate`` command line: Typer commands only.

Each command parses its options, calls one core function that returns a dataclass, and
hands that to ``render``. Nothing heavy is imported at module level, so ``--help`` stays
fast (no SQLAlchemy, no Alembic). :func:`_guarded` is the one place where errors become
messages and exit codes.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NoReturn, TypeVar

import typer

from hindsight_migrate import __version__
from hindsight_migrate.errors import Aborted, BadArgument, ExitCode, HindsightMigrateError

if TYPE_CHECKING:
    from hindsight_migrate.alembic_api import AlembicProject
    from hindsight_migrate.apply import ApplyResult
    from hindsight_migrate.config import Settings
    from hindsight_migrate.database import Database
    from hindsight_migrate.plan import ChangeKind, MigrationPlan, NoRehearsal
    from hindsight_migrate.rehearsal import RehearsalOptions

T = TypeVar("T")

app = typer.Typer(
    name="hindsight-migrate",
    help=(
        "Review-before-apply migrations for PostgreSQL + SQLAlchemy, driving Alembic.\n\n"
        "Global options (-c, --url, --debug) go before the command, as with alembic; they are "
        "also accepted after it."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Options every database command accepts, before or after the command name.
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Path to alembic.ini or pyproject.toml (default: ./alembic.ini, else ./pyproject.toml's "
        "[tool.alembic]).",
        show_default=False,
        dir_okay=False,
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Database URL (postgresql://USER:PASSWORD@HOST:PORT/DB). Overrides DATABASE_URL "
        "and sqlalchemy.url; with none of them set, the embedded server is used.",
        show_default=False,
    ),
]
NameOption = Annotated[
    str | None,
    typer.Option(
        "--name",
        "-n",
        help="The ini section to read instead of [alembic] (as alembic -n).",
        show_default=False,
    ),
]
DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show the traceback of a failure, and Alembic's own log lines.")
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Let Alembic's own log lines through (they are hidden by default).")
]


PlanOutOption = Annotated[
    Path | None,
    typer.Option(
        "--plan-out",
        help="Save the reviewed plan as JSON (for review in a pull request); - writes it to stdout (the plan "
        "itself then goes to stderr).",
        dir_okay=False,
    ),
]
DetailedExitOption = Annotated[
    bool,
    typer.Option(
        "--detailed-exitcode",
        help="With --dry-run: exit 0 when there is nothing to do, 2 when the plan changes the database, 3 when "
        "it is destructive (data lost, a table with rows rewritten, a blocking lock over destructive_lock).",
    ),
]
LockRetriesOption = Annotated[
    int | None,
    typer.Option(
        "--lock-retries",
        min=0,
        help="Times a revision that waits lock_timeout for a lock is tried again (setting lock_retries, "
        "default 10); 0 gives up at the first wait.",
    ),
]
PlanInOption = Annotated[
    Path | None,
    typer.Option(
        "--plan",
        help="Apply a saved plan, only if the database and the revisions are still what it shows.",
        dir_okay=False,
        exists=False,
    ),
]


class OutputFormat(str, Enum):
    """--format: the text view, one JSON document (schemas in hindsight_migrate/schemas/), or a PR comment."""

    text = "text"
    json = "json"
    markdown = "markdown"


FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        help="text (for people), json (one document with format_version and kind; its JSON Schema is in "
        "hindsight_migrate/schemas/), or markdown (a pull-request comment). Data goes to stdout, the rest to stderr.",
        case_sensitive=False,
    ),
]


def _output_format(output: OutputFormat, as_json: bool = False) -> OutputFormat:
    """--json is the older spelling of --format json."""
    if as_json and output not in (OutputFormat.text, OutputFormat.json):
        raise BadArgument(f"--json means --format json: give --json or --format {output.value}, not both.")
    return OutputFormat.json if as_json else output


def _no_document_with_sql(output: OutputFormat) -> None:
    if output is not OutputFormat.text:
        raise BadArgument(f"--sql prints the SQL alone, for piping: it takes no --format {output.value}.")


def _document_can_be_printed(output: OutputFormat, *, dry_run: bool, yes: bool, plan_out: Path | None = None) -> None:
    """A document on stdout leaves no one to answer a prompt, and nothing else may share stdout with it."""
    if output is OutputFormat.text:
        return
    if not dry_run and not yes:
        raise BadArgument(
            f"--format {output.value} prints one document on stdout, with no one to answer a prompt in between: "
            "add --dry-run to print the plan only, or --yes to apply it and print the plan with the result."
        )
    if plan_out == Path("-"):
        raise BadArgument(
            f"--plan-out - and --format {output.value} would both write to stdout: save the plan to a file "
            "(--plan-out FILE)."
        )


def _show(
    output: OutputFormat,
    text: Callable[[], None],
    document: Callable[[], dict[str, object]],
    markdown: Callable[[], str],
) -> None:
    """The one place a report command picks its format."""
    from hindsight_migrate import render

    if output is OutputFormat.json:
        render.print_document(document())
    elif output is OutputFormat.markdown:
        render.print_markdown(markdown())
    else:
        text()


@dataclass
class GlobalOptions:
    config: Path | None = None
    url: str | None = None
    debug: bool = False
    name: str | None = None
    verbose: bool = False


def stdin_is_interactive() -> bool:
    """Whether a person can answer a prompt. Tests replace this one function."""
    return sys.stdin.isatty()


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


def _guarded(options: GlobalOptions, body: Callable[[], None]) -> None:
    """Run a command body; the one place that maps failures to messages and exit codes."""
    from hindsight_migrate import render

    _COMMITTED[0] = False
    try:
        body()
    except BrokenPipeError:
        # Whoever read stdout went away (`| head`, a closed CI log): what was done stays done.
        _silence_stdout()
        if _COMMITTED[0]:
            raise typer.Exit(int(ExitCode.OK)) from None
        with contextlib.suppress(OSError):
            render.err().print("Nothing was changed: stdout was closed before the command could show its plan.")
        raise typer.Exit(int(ExitCode.ABORTED)) from None
    except HindsightMigrateError as problem:
        render.error(problem)
        if options.debug:
            render.debug_traceback(problem)
        raise typer.Exit(int(problem.exit_code)) from None
    except KeyboardInterrupt:
        render.err().print(
            "[bold red]Interrupted.[/] Whatever was running was rolled back; the database is "
            "at its last committed state."
        )
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        render.internal_error(exc)
        if options.debug:
            render.debug_traceback(exc)
        raise typer.Exit(int(ExitCode.INTERNAL)) from None


# Set once the command's change has committed (an apply, a bootstrap, a file written): a reader
# who goes away afterwards (a closed pipe) does not turn a finished, audited apply into a failure.
_COMMITTED = [False]


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail on the closed pipe."""
    import os

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _warn(notes: tuple[str, ...]) -> None:
    """What a report could not read, on stderr (a document on stdout stays whole), as written."""
    from hindsight_migrate import render

    for note in notes:
        render.err().print(f"Warning: {note}", markup=False, highlight=False)


def _someone_to_ask(yes: bool) -> bool:
    """False with --yes; refuses when there is no terminal to ask on and no --yes."""
    if yes:
        return False
    if not stdin_is_interactive():
        raise Aborted(
            "Nothing was changed: this command asks for confirmation, and there is no terminal "
            "to ask on. Review the plan above, then run again with --yes."
        )
    return True


def _confirm(question: str, *, yes: bool) -> None:
    """Ask before changing anything (bootstrap, on an empty database: a y/N is enough)."""
    from hindsight_migrate.untrusted import visible

    # click writes the question itself, past render's escaping: it may quote the project (a URL, a path).
    if _someone_to_ask(yes) and not typer.confirm(visible(question, multiline=False), default=False, err=True):
        raise Aborted("Nothing was changed: you did not confirm.")


@app.command()
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

        hindsight-migrate --url postgresql://app@localhost/hindsight bootstrap
    """
    options = _globals(ctx, config, url, debug)

    def body() -> None:
        from hindsight_migrate import render
        from hindsight_migrate.bootstrap import BootstrapPlan, BootstrapResult, apply_bootstrap, plan_bootstrap

        _document_can_be_printed(output, dry_run=dry_run, yes=yes)
        plan: BootstrapPlan | None = None
        done: BootstrapResult | None = None
        # With a document on stdout, what people read (the plan, the result) goes to stderr.
        with render.stdout_for_data(output is not OutputFormat.text):
            settings, project, database = _open(options)
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
                _confirm(f"Bootstrap {plan.database} with these objects?", yes=yes)
                done = apply_bootstrap(plan, project, database, lock_wait=lock_wait)
                _COMMITTED[0] = True
                render.bootstrap_done(done)
            finally:
                database.dispose()
                if plan is not None:  # the plan was made: its document, with the result when it was applied
                    shown = plan
                    _show(
                        output,
                        lambda: None,
                        lambda: render.bootstrap_document(shown, done),
                        lambda: render.bootstrap_markdown(shown, settings.project_dir, done),
                    )

    _guarded(options, body)


@app.command()
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

        hindsight-migrate history --json | jq '.entries[] | select(.state == "pending")'
    """
    options = _globals(ctx, config, url, debug)

    def body() -> None:
        from hindsight_migrate import render
        from hindsight_migrate.history import build_history

        shown = _output_format(output, as_json)
        if offline:
            _, project = _open_project(options)
            result = build_history(project, None)
        else:
            result = _with_database(options, build_history)
        _show(
            shown,
            lambda: render.history(result),
            lambda: render.history_document(result),
            lambda: render.history_markdown(result),
        )
        state = result.database
        if state is not None and state.reachable and state.problem:
            _warn((state.problem,))  # the tool's records it could not read, and why

    _guarded(options, body)


@app.command()
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

        hindsight-migrate up --dry-run
        hindsight-migrate up 461838d9 --rehearse-on target
        hindsight-migrate up --dry-run --format markdown > plan.md
    """
    options = _globals(ctx, config, url, debug)

    def body() -> None:
        from hindsight_migrate.plan import plan_upgrade

        if sql:
            _no_document_with_sql(output)
            _print_offline_sql(options, target)
            return
        _document_can_be_printed(output, dry_run=dry_run, yes=yes, plan_out=plan_out)

        def make_plan(
            project: AlembicProject, database: Database, rehearsal: RehearsalOptions | None, skipped: NoRehearsal
        ) -> MigrationPlan:
            return plan_upgrade(project, database, target=target, rehearsal=rehearsal, skip_reason=skipped)

        _review_and_apply(
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
                direction="up",
                detailed_exitcode=detailed_exitcode,
                show_sql=show_sql,
                lock_retries=lock_retries,
                output=output.value,
            ),
        )

    _guarded(options, body)


@app.command()
def down(
    ctx: typer.Context,
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

        hindsight-migrate down --dry-run
        hindsight-migrate down --to cd3fb603
    """
    options = _globals(ctx, config, url, debug)

    def body() -> None:
        from hindsight_migrate.errors import BadArgument
        from hindsight_migrate.plan import plan_downgrade

        if to is not None and steps is not None:
            raise BadArgument("Give either --to or --steps, not both.")
        if to is None and steps is None and plan_in is not None:
            from hindsight_migrate.plan_file import load_plan

            target = load_plan(plan_in, direction="down").target  # the saved plan says where it goes
        else:
            target = to if to is not None else f"-{steps or 1}"
        if sql:
            _no_document_with_sql(output)
            _print_offline_downgrade_sql(options, target)
            return
        _document_can_be_printed(output, dry_run=dry_run, yes=yes, plan_out=plan_out)

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

        _review_and_apply(
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
                direction="down",
                detailed_exitcode=detailed_exitcode,
                show_sql=show_sql,
                lock_retries=lock_retries,
                output=output.value,
            ),
        )

    _guarded(options, body)


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
    direction: Literal["up", "down"] = "up"
    detailed_exitcode: bool = False  # with --dry-run: 0 nothing to do, 2 changes, 3 destructive
    show_sql: bool = False  # every revision's SQL inline, also in a big plan
    lock_retries: int | None = None  # --lock-retries: instead of the lock_retries setting
    output: Literal["text", "json", "markdown"] = "text"  # --format: json and markdown print a document on stdout


def _review_and_apply(
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
                _show(
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
    from hindsight_migrate import plan_file, render
    from hindsight_migrate.apply import LockRetries, apply_plan, record_nothing_to_do
    from hindsight_migrate.plan import NoRehearsal, change_kind, is_big, refuse_unless_applicable
    from hindsight_migrate.rehearsal import RehearsalOptions

    if review.detailed_exitcode and not review.dry_run:
        from hindsight_migrate.errors import BadArgument

        raise BadArgument("--detailed-exitcode describes a plan: use it with --dry-run.")
    saved = plan_file.load_plan(review.plan_in, direction=review.direction) if review.plan_in else None
    settings, project, database = _open(options)
    try:
        rehearsal = None
        # A saved plan was rehearsed when it was reviewed; what matters now is that nothing changed.
        skipped = NoRehearsal.SAVED_PLAN if saved is not None else NoRehearsal.REQUESTED
        if not review.no_rehearsal and saved is None:
            rehearsal = RehearsalOptions(
                where=review.rehearse_on,
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
        kind, reasons = change_kind(plan, blocking_seconds=settings.tool.destructive_lock_seconds)
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
        _confirm_by_typing(plan, yes=review.yes)
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
                    max_wait_seconds=settings.tool.lock_retry_max_wait_seconds,
                    lock_timeout_seconds=settings.tool.lock_timeout_seconds,
                ),
                progress=progress,
            )
        finally:
            progress.close()
        _COMMITTED[0] = True
        if outcome is not None:
            outcome.result = result
        render.migration_done(result, direction=plan.direction)
    finally:
        database.dispose()


@app.command()
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

        hindsight-migrate new "add memory_blocks.pinned" --strict
    """
    options = _globals(ctx, config, url, debug)

    def body() -> None:
        from hindsight_migrate import render
        from hindsight_migrate.autogen import new_revision

        result = _with_database(
            options,
            lambda project, database: new_revision(
                project, database, message, against_target=against_target, allow_empty=empty, strict=strict
            ),
        )
        _show(
            output,
            lambda: render.new_revision(result, show_sql=sql),
            lambda: render.new_revision_document(result),
            lambda: render.new_revision_markdown(result),
        )
        if result.strict_failed:
            raise typer.Exit(int(ExitCode.CHECK_FAILED))

    _guarded(options, body)


ShowSqlOption = Annotated[
    bool,
    typer.Option(
        "--show-sql",
        help="Print every revision's SQL in the plan, also when the plan is big (it is then written to a file).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="The same as --format json.")]


@app.command()
def status(
    ctx: typer.Context,
    as_json: JsonOption = False,
    output: FormatOption = OutputFormat.text,
    config: ConfigOption = None,
    url: UrlOption = None,
    debug: DebugOption = False,
) -> None:
    """Whether the database and the code agree, in one screen; the exit code says it to scripts.

    Current revision(s), head(s), pending revisions, revision files edited after they were
    applied (their SHA-256 is recorded when applied), applied revisions whose file is gone,
    whether the V1 file still matches its bootstrap, and the last apply. Exit 0 when up to
    date; 10 behind, 11 diverged, 12 tampered (the most serious wins).

    Example:

        hindsight-migrate status || echo "the database needs attention"
    """
    options = _globals(ctx, config, url, debug)

    def body() -> None:
        from hindsight_migrate import render
        from hindsight_migrate.status import read_status

        shown = _output_format(output, as_json)
        result = _with_database(options, read_status)
        _show(
            shown,
            lambda: render.status(result),
            lambda: render.status_document(result),
            lambda: render.status_markdown(result),
        )
        _warn(result.notes)  # the tool's records it could not read, and why
        raise typer.Exit(int(result.exit_code))

    _guarded(options, body)


@app.command()
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

        hindsight-migrate check --json
    """
    options = _globals(ctx, config, url, debug)

    def body() -> None:
        from hindsight_migrate import render
        from hindsight_migrate.check import run_checks

        shown = _output_format(output, as_json)
        report = _with_database(
            options, lambda project, database: run_checks(project, database, against_target=against_target)
        )
        _show(
            shown,
            lambda: render.check_report(report),
            lambda: render.check_document(report),
            lambda: render.check_markdown(report),
        )
        if not report.ok:
            raise typer.Exit(int(ExitCode.CHECK_FAILED))

    _guarded(options, body)


@app.command()
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

        hindsight-migrate lint base:heads
    """
    options = _globals(ctx, config, url, debug)

    def body() -> None:
        from hindsight_migrate import render
        from hindsight_migrate.check import lint_range

        shown = _output_format(output, as_json)
        if revision_range is None:
            report = _with_database(options, lambda project, database: lint_range(project, database, None))
        else:
            _, project = _open_project(options)
            report = lint_range(project, None, revision_range)
        _show(
            shown,
            lambda: render.lint_report(report),
            lambda: render.lint_document(report),
            lambda: render.lint_markdown(report),
        )
        raise typer.Exit(int(report.exit_code))

    _guarded(options, body)


@app.command()
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

        hindsight-migrate merge -m "merge search and billing branches"
    """
    options = _globals(ctx, config, url, debug)

    def body() -> None:
        from hindsight_migrate import render
        from hindsight_migrate.errors import Refused

        _, project = _open_project(options)
        heads = project.graph.heads()
        if len(heads) < 2:
            raise Refused(f"The chain has one head ({', '.join(heads) or 'none'}): there is nothing to merge.")
        revision, path = project.authoring.merge_heads(message)
        _show(
            output,
            lambda: render.merged(revision, path),
            lambda: render.merge_document(revision, path, heads),
            lambda: render.merge_markdown(revision, path, heads),
        )

    _guarded(options, body)


def _print_offline_sql(options: GlobalOptions, target: str) -> None:
    """``up --sql``: Alembic's offline rendering of the range; touches no database."""
    from hindsight_migrate import render

    settings, project = _open_project(options)
    start, _, end = target.rpartition(":")
    if not start:
        start = settings.baseline or ""
    begin = (project.graph.resolve(start).revision,) if start and start != "base" else ()
    revisions = project.graph.upgrade_path(begin, end or "heads")
    sql = project.env.offline_sql_path(revisions, start=begin)
    render.offline_sql([(info, sql[info.revision]) for info in revisions])


def _print_offline_downgrade_sql(options: GlobalOptions, target: str) -> None:
    """``down --sql``: the downgrade SQL from the database's current revision; reads the version table only."""
    from hindsight_migrate import render

    def read(project: AlembicProject, database: Database) -> tuple[AlembicProject, tuple[str, ...]]:
        with database.connect() as connection:
            current = project.env.current_heads(connection)
            connection.rollback()
        return project, current

    project, current = _with_database(options, read)
    revisions = project.graph.downgrade_path(current, target)
    sql = project.env.offline_sql_path(revisions, start=current, downgrade=True)
    render.offline_sql([(info, sql[info.revision]) for info in revisions])


def _confirm_by_typing(plan: MigrationPlan, *, yes: bool) -> None:
    """The reviewer types the target revision: a deliberate act, not a reflexive 'y'.

    Right above the question, what is at stake (data destroyed, the longest blocking lock), so
    it is on screen when the answer is typed, whatever scrolled away.
    """
    from hindsight_migrate import render
    from hindsight_migrate.untrusted import visible

    if not _someone_to_ask(yes):
        return
    render.stakes(plan)
    expected = plan.confirmation
    verb = "revert" if plan.direction == "down" else "apply"
    try:
        answer = typer.prompt(
            # The revision id is the project's text, and click writes the prompt past render's escaping.
            visible(f"Type the target revision ({expected}, or its first 8 characters) to {verb}", multiline=False),
            err=True,
        ).strip()
    except (typer.Abort, EOFError):  # Ctrl-C, or the input ended: nothing was asked of the database
        raise Aborted("Nothing was changed: the confirmation was not given.") from None
    if answer not in (expected, expected[:8]):
        raise Aborted(f"Nothing was changed: {answer!r} is not {expected!r}.")  # repr: escaped already


def _open_project(options: GlobalOptions) -> tuple[Settings, AlembicProject]:
    from hindsight_migrate.alembic_api import AlembicProject
    from hindsight_migrate.config import resolve_settings

    settings = resolve_settings(
        config_path=options.config,
        url=options.url,
        ini_section=options.name or "alembic",
        verbose=options.verbose or options.debug,
    )
    return settings, AlembicProject(settings)


def _with_database(options: GlobalOptions, read: Callable[[AlembicProject, Database], T]) -> T:
    """Open the project and its database, run ``read``, and always release the database."""
    _, project, database = _open(options)
    try:
        return read(project, database)
    finally:
        database.dispose()


def _open(options: GlobalOptions) -> tuple[Settings, AlembicProject, Database]:
    from hindsight_migrate import render
    from hindsight_migrate.database import open_database

    settings, project = _open_project(options)
    render.announce_database(settings)  # stderr: --json output on stdout stays clean
    database = open_database(settings.database)
    # env.py is handed this database, and may ask for no other (the embedded server's URL is known only now).
    project.bind_target(database.engine.url, settings.database.origin)
    return settings, project, database


def main() -> NoReturn:
    """Console-script entry point."""
    import signal

    def terminate(signum: int, frame: object) -> None:
        # A polite kill (a CI job cancelled, a deploy aborted) unwinds like Ctrl-C, so the
        # open transaction is rolled back and a rehearsal's scratch database is dropped.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    sys.exit(app())
