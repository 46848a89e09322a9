"""``hindsight-migrate fleet plan|up|status``: one reviewed plan, many databases."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from hindsight_migrate.cli.guard import CommandRun, guarded
from hindsight_migrate.cli.options import ConfigOption, DebugOption, FormatOption, GlobalOptions, OutputFormat
from hindsight_migrate.cli.output import show
from hindsight_migrate.cli.prompts import confirm_rollout, refuse_early_without_terminal
from hindsight_migrate.errors import BadArgument, ExitCode

if TYPE_CHECKING:
    from hindsight_migrate.config import Settings
    from hindsight_migrate.fleet.model import Shard
    from hindsight_migrate.fleet.plan import FleetPlan, FleetPlanRequest
    from hindsight_migrate.fleet.targets import Fleet

CommandFunction = TypeVar("CommandFunction", bound=Callable[..., Any])

fleet_app = typer.Typer(
    name="fleet",
    help=(
        "One reviewed plan, many databases: plan, apply and follow a rollout over every target in a targets file "
        "(fleet.toml): a database each, a query on a control database, or one schema per tenant."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

TargetsOption = Annotated[
    Path,
    typer.Option(
        "--targets",
        "-t",
        metavar="FILE",
        help="The targets file (TOML): [[targets]] with name and url or url_env, a [control] query, or [schemas].",
        dir_okay=False,
    ),
]
ShardOption = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="K/N",
        help="Take the K-th of N stable shares of the targets (K from 0), as one pod of a Kubernetes Indexed Job "
        "or one job of a CI matrix; default K from $JOB_COMPLETION_INDEX when N is given as --shard /N.",
        show_default=False,
    ),
]
CanaryOption = Annotated[
    list[str] | None,
    typer.Option(
        "--canary",
        metavar="NAME|largest",
        help="Migrate these targets first, alone (repeat for several), or 'largest': the target with the most data "
        "in the tables the plan touches. Default: the group 'canary' of the targets file, else the largest.",
        show_default=False,
    ),
]
NoRehearsalOption = Annotated[
    bool, typer.Option("--no-rehearsal", help="Skip the rehearsal on the canary (nothing measured).")
]


LabelOption = Annotated[
    list[str] | None,
    typer.Option(
        "--label",
        metavar="LABEL",
        help="Only the targets with this label (or in a group of this name); repeat for several.",
        show_default=False,
    ),
]


def _options(ctx: typer.Context, config: Path | None, debug: bool) -> GlobalOptions:
    """The global options given before `fleet` (-c, -n, --debug, --verbose), with those given after it."""
    before = ctx.find_root().obj if isinstance(ctx.find_root().obj, GlobalOptions) else GlobalOptions()
    return GlobalOptions(
        config=config or before.config,
        url=None,
        debug=debug or before.debug,
        name=before.name,
        verbose=before.verbose,
    )


def _refuse_url(ctx: typer.Context) -> None:
    root = ctx.find_root().obj
    if isinstance(root, GlobalOptions) and root.url is not None:
        raise BadArgument("fleet takes its databases from the targets file (--targets), not from --url.")


def _shard(given: str | None) -> Shard | None:
    from hindsight_migrate.fleet.model import Shard

    if given is None:
        return None
    if given.strip().startswith("/"):
        index = os.environ.get("JOB_COMPLETION_INDEX")
        if index is None:
            raise BadArgument(f"--shard {given} takes K from $JOB_COMPLETION_INDEX, which is not set.")
        given = f"{index}{given.strip()}"
    return Shard.parse(given)


def _request(
    shard: Shard | None,
    canary: list[str] | None,
    labels: list[str] | None,
    *,
    no_rehearsal: bool,
    skipped: str | None = None,
) -> FleetPlanRequest:
    from hindsight_migrate.fleet.plan import FleetPlanRequest

    names = tuple(canary or ())
    largest = names == ("largest",)
    return FleetPlanRequest(
        shard=shard,
        canary=() if largest else names,
        canary_largest=largest,
        no_rehearsal=no_rehearsal,
        rehearsal_skipped=skipped or ("--no-rehearsal" if no_rehearsal else None),
        labels=tuple(labels or ()),
    )


def _open(options: GlobalOptions, targets: Path) -> tuple[Settings, Fleet]:
    from hindsight_migrate.config import resolve_settings
    from hindsight_migrate.fleet.targets import load_fleet

    settings = resolve_settings(
        config_path=options.config,
        url=None,
        ini_section=options.name or "alembic",
        verbose=options.verbose or options.debug,
        allow_multidb=True,
    )
    if settings.multidb and not targets.exists():
        from hindsight_migrate.fleet.targets import multidb_fleet

        return settings, multidb_fleet(settings)  # `alembic init -t multidb`: the databases its ini lists
    return settings, load_fleet(targets)


def _empty_shard(fleet: Fleet, shard: Shard | None, labels: list[str] | None) -> bool:
    """A shard that holds no target has nothing to do (more shards than targets): said, and exit 0."""
    from hindsight_migrate import render

    if shard is None or fleet.sharded(shard, tuple(labels or ())):
        return False
    render.err().print(f"Shard {shard} holds none of the {len(fleet.targets)} targets: nothing to do.")
    return True


def _heads(settings: Settings) -> tuple[str, ...]:
    from hindsight_migrate.alembic_api import AlembicProject

    return AlembicProject(settings).graph.heads()


def _show_plan(plan: FleetPlan, output: OutputFormat) -> None:
    from hindsight_migrate import render
    from hindsight_migrate.render import fleet_view, markdown

    def text() -> None:
        fleet_view.fleet_plan(plan)
        if plan.canary_plan is not None:
            from hindsight_migrate.review.summary import digest  # lazy: only a rehearsed plan is shown in full

            render.migration_plan(
                plan.canary_plan,
                digest(plan.canary_plan, show_sql=False, version_table=plan.version_table),
            )

    show(output, text, lambda: fleet_view.fleet_plan_document(plan), lambda: markdown.fleet_plan_markdown(plan))


def _command(name: str) -> Callable[[CommandFunction], CommandFunction]:
    """fleet_app.command, with the docstring's first paragraph as the line under Commands (wrapped, not cut)."""

    def register(function: CommandFunction) -> CommandFunction:
        summary = " ".join((function.__doc__ or "").split("\n\n")[0].split())
        fleet_app.command(name, short_help=summary)(function)
        return function

    return register


@_command("plan")
def plan_command(
    ctx: typer.Context,
    targets: TargetsOption = Path("fleet.toml"),
    shard: ShardOption = None,
    label: LabelOption = None,
    canary: CanaryOption = None,
    no_rehearsal: NoRehearsalOption = False,
    plan_out: Annotated[
        Path | None,
        typer.Option("--plan-out", metavar="FILE", help="Save the plan for fleet up --plan FILE ('-': stdout)."),
    ] = None,
    output: FormatOption = OutputFormat.text,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Read-only: preflight every target in parallel and print one reviewed plan for all of them.

    Where each target stands, what would block (unreachable, diverged, tampered), the revisions and their SQL
    once, the targets with the most data where the revisions touch, and the plan rehearsed on the canary.
    Exit 0 when the plan can be applied; 6 when some target is blocked, lint found errors or the rehearsal
    on the canary failed.

    Example:

    \b
        hindsight-migrate fleet plan --targets fleet.toml --plan-out fleet-plan.json
    """
    options = _options(ctx, config, debug)

    def body(run: CommandRun) -> None:
        from hindsight_migrate import render
        from hindsight_migrate.fleet.plan import make_fleet_plan, plan_document
        from hindsight_migrate.review.plan_file import save_document

        if plan_out == Path("-") and output is not OutputFormat.text:
            raise BadArgument(f"--plan-out - and --format {output.value} would both write to stdout.")
        _refuse_url(ctx)
        settings, fleet = _open(options, targets)
        the_shard = _shard(shard)
        if _empty_shard(fleet, the_shard, label):
            raise typer.Exit(int(ExitCode.OK))
        with render.stdout_for_data(output is not OutputFormat.text or plan_out == Path("-")):
            plan = make_fleet_plan(settings, fleet, _request(the_shard, canary, label, no_rehearsal=no_rehearsal))
            _show_plan(plan, output)
            if plan_out == Path("-"):
                sys.stdout.write(plan_document(plan))  # the document, alone on stdout
                sys.stdout.flush()
            elif plan_out is not None:
                save_document(plan_document(plan), plan_out)
                render.err().print(f"Plan saved to {render.safe_markup(plan_out)}.")
        raise typer.Exit(int(ExitCode.REFUSED if plan.blocked or plan.problems else ExitCode.OK))

    guarded(options, body)


@_command("up")
def up_command(
    ctx: typer.Context,
    targets: TargetsOption = Path("fleet.toml"),
    shard: ShardOption = None,
    label: LabelOption = None,
    canary: CanaryOption = None,
    no_rehearsal: NoRehearsalOption = False,
    plan_in: Annotated[
        Path | None,
        typer.Option("--plan", metavar="FILE", help="Apply this saved plan; targets that moved off it are skipped."),
    ] = None,
    parallel: Annotated[int, typer.Option("--parallel", "-p", min=1, max=64, help="Targets migrated at once.")] = 4,
    max_failures: Annotated[
        str | None,
        typer.Option(
            "--max-failures",
            metavar="N|P%",
            help="The error budget: past N failed targets (or P% of them) no new target starts. Default 0.",
            show_default=False,
        ),
    ] = None,
    continue_on_error: Annotated[
        bool, typer.Option("--continue-on-error", help="No error budget: every target is tried.")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Try again the targets whose last try in this plan failed.")
    ] = False,
    allow_lint: Annotated[bool, typer.Option("--allow-lint", help="Apply despite lint errors.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask: the plan was reviewed.")] = False,
    lock_wait: Annotated[
        float, typer.Option("--lock-wait", min=0, help="Seconds to wait for another run's migration lock, per target.")
    ] = 30.0,
    output: FormatOption = OutputFormat.text,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Writes: apply the reviewed plan to every target — the canary first, then the rest, --parallel at a time.

    Each target gets the single-database apply (its migration lock, one transaction per revision, lock waits
    that grow, its audit row). Targets already at the heads are skipped; a rerun continues where a run stopped.
    Ctrl-C or SIGTERM starts no new target and lets the running ones finish. Exit 0 when every target is at the
    heads, 9 when some failed or were skipped, 130 when interrupted.

    Example:

    \b
        hindsight-migrate fleet up --targets fleet.toml --parallel 8 --max-failures 2%
    """
    options = _options(ctx, config, debug)

    def body(run: CommandRun) -> None:
        from hindsight_migrate import render
        from hindsight_migrate.errors import Refused
        from hindsight_migrate.fleet.model import ErrorBudget, TargetState
        from hindsight_migrate.fleet.plan import load_fleet_plan, make_fleet_plan, refuse_unless_same_revisions
        from hindsight_migrate.fleet.rollout import RolloutRequest, roll_out
        from hindsight_migrate.render import fleet_view, markdown

        budget = ErrorBudget.parse(max_failures, continue_on_error=continue_on_error)
        saved = load_fleet_plan(plan_in) if plan_in is not None else None
        if saved is not None and (saved.rehearsal_failed or (saved.problems and not allow_lint)):
            raise Refused(
                f"The saved plan {plan_in} was refused when it was reviewed ({'; '.join(saved.problems)}): "
                "nothing was applied. Fix the revisions and review the fleet's plan again"
                + ("." if saved.rehearsal_failed else ", or add --allow-lint after reading the lint errors.")
            )
        _refuse_url(ctx)
        refuse_early_without_terminal(asks=not yes, review_with="hindsight-migrate fleet plan")
        settings, fleet = _open(options, targets)
        the_shard = _shard(shard)
        if _empty_shard(fleet, the_shard, label):
            if output is not OutputFormat.text:  # a script parsing the output still gets its document
                from hindsight_migrate.fleet.model import RolloutSummary

                empty = RolloutSummary("", _heads(settings), (), budget, budget.allowed(0), False, 0.0, the_shard)
                with render.stdout_for_data(True):
                    show(
                        output,
                        lambda: None,
                        lambda: fleet_view.rollout_document(empty),
                        lambda: markdown.rollout_markdown(empty),
                    )
            raise typer.Exit(int(ExitCode.OK))
        with render.stdout_for_data(output is not OutputFormat.text):
            skipped = "applying a saved plan, rehearsed when it was reviewed" if saved is not None else None
            request = _request(
                the_shard, canary, label, no_rehearsal=no_rehearsal or saved is not None, skipped=skipped
            )
            plan = make_fleet_plan(settings, fleet, request)
            if saved is not None and plan_in is not None:
                refuse_unless_same_revisions(saved, plan, plan_in)
            if output is OutputFormat.text:
                _show_plan(plan, output)
            if plan.rehearsal_failed or (plan.problems and not allow_lint):
                raise Refused(
                    f"The plan is refused ({'; '.join(plan.problems)}): nothing was applied."
                    + ("" if plan.rehearsal_failed else " Add --allow-lint after reading the lint errors.")
                )
            if plan.pending:
                if not yes:
                    fleet_view.rollout_stakes(plan, budget, parallel)
                confirm_rollout(plan.rollout, len(plan.pending), yes=yes)
            progress = fleet_view.FleetProgress()
            try:
                summary = roll_out(
                    plan,
                    fleet,
                    RolloutRequest(
                        parallel=parallel,
                        budget=budget,
                        retry_failed=retry_failed,
                        lock_wait=lock_wait,
                        lock_retries=None,
                        config_path=settings.config_path,
                        ini_section=settings.ini_section,
                        cwd=Path.cwd(),
                        saved=saved,
                    ),
                    progress,
                )
            finally:
                progress.close()
            run.committed = True
            show(
                output,
                lambda: fleet_view.rollout_done(summary),
                lambda: fleet_view.rollout_document(summary),
                lambda: markdown.rollout_markdown(summary),
            )
        if summary.interrupted:
            raise typer.Exit(int(ExitCode.INTERRUPTED))
        incomplete = summary.count(TargetState.FAILED) or summary.count(TargetState.SKIPPED)
        raise typer.Exit(int(ExitCode.FAILED if incomplete else ExitCode.OK))

    guarded(options, body)


@_command("status")
def status_command(
    ctx: typer.Context,
    targets: TargetsOption = Path("fleet.toml"),
    shard: ShardOption = None,
    label: LabelOption = None,
    output: FormatOption = OutputFormat.text,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Read-only: every target's state — pending, running, applied, failed or skipped — read from its database.

    The database's own version table is the truth; the fleet ledger adds the last error. Exit 0 when every
    target is applied, 9 when some failed or were skipped (a blocked target — unreachable, diverged,
    tampered — is failed), 10 when some are pending or running.

    Example:

    \b
        hindsight-migrate fleet status --targets fleet.toml --format json
    """
    options = _options(ctx, config, debug)

    def body(run: CommandRun) -> None:
        from hindsight_migrate import render
        from hindsight_migrate.fleet.model import TargetState
        from hindsight_migrate.fleet.plan import make_fleet_plan
        from hindsight_migrate.fleet.rollout import fleet_status
        from hindsight_migrate.render import fleet_view, markdown

        _refuse_url(ctx)
        settings, fleet = _open(options, targets)
        the_shard = _shard(shard)
        if _empty_shard(fleet, the_shard, label):
            if output is not OutputFormat.text:  # a script parsing the output still gets its document
                from hindsight_migrate.fleet.model import FleetStatus

                empty = FleetStatus(heads=_heads(settings), rows=(), shard=the_shard)
                with render.stdout_for_data(True):
                    show(
                        output,
                        lambda: None,
                        lambda: fleet_view.fleet_status_document(empty),
                        lambda: markdown.fleet_status_markdown(empty),
                    )
            raise typer.Exit(int(ExitCode.OK))
        with render.stdout_for_data(output is not OutputFormat.text):
            request = replace(_request(the_shard, None, label, no_rehearsal=True), positions_only=True)
            status = fleet_status(make_fleet_plan(settings, fleet, request), fleet)
            show(
                output,
                lambda: fleet_view.fleet_status(status),
                lambda: fleet_view.fleet_status_document(status),
                lambda: markdown.fleet_status_markdown(status),
            )
        if status.count(TargetState.FAILED) or status.count(TargetState.SKIPPED):
            code = ExitCode.FAILED
        elif status.count(TargetState.PENDING) or status.count(TargetState.RUNNING):
            code = ExitCode.BEHIND
        else:
            code = ExitCode.OK
        raise typer.Exit(int(code))

    guarded(options, body)
