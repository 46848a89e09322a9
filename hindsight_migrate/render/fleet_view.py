"""The fleet's views: its plan, the rollout's progress and result, and its status (text, JSON, markdown)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from rich.live import Live
from rich.text import Text

from hindsight_migrate.fleet.model import ErrorBudget, FleetStatus, RolloutSummary, Target, TargetOutcome, TargetState
from hindsight_migrate.render.console import err, out, safe_markup, sql_block
from hindsight_migrate.render.layout import Column, grid, plural
from hindsight_migrate.untrusted import visible
from hindsight_migrate.words import human_bytes

if TYPE_CHECKING:
    from hindsight_migrate.fleet.plan import FleetPlan

GROUPS_SHOWN = 8
SQL_INLINE_REVISIONS = 10  # more, and the SQL is in the JSON document rather than on screen
NAMES_SHOWN = 4
FORMAT_VERSION = 1

_STATE_STYLE = {
    TargetState.PENDING: "yellow",
    TargetState.RUNNING: "cyan",
    TargetState.APPLIED: "green",
    TargetState.FAILED: "bold red",
    TargetState.SKIPPED: "magenta",
}


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return f"{shown} and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else shown


def _at(current: tuple[str, ...]) -> str:
    return ", ".join(current) if current else "(empty)"


def fleet_plan(plan: FleetPlan) -> None:
    """The fleet's review: what blocks first, then how many targets need what, the riskiest, the revisions."""
    console = out()
    pending, blocked, done = plan.pending, plan.blocked, plan.up_to_date
    scope = f" (shard {plan.shard})" if plan.shard else ""
    console.print(
        f"[bold]Fleet plan {plan.rollout}[/]{scope}: {len(plan.readings)} {plural('target', len(plan.readings))} — "
        f"[yellow]{len(pending)} to migrate[/], [green]{len(done)} up to date[/], "
        f"[{'bold red' if blocked else 'green'}]{len(blocked)} blocked[/]; heads {safe_markup(_at(plan.heads))}"
    )
    if blocked:
        grid(
            console,
            "Blocked (not migrated until fixed)",
            [Column("target"), Column("why"), Column("problem", flexible=True)],
            ([r.target.name, r.blocker.value if r.blocker else "", visible(r.problem or "")] for r in blocked),
        )
    groups = [(current, readings) for current, readings in plan.groups() if any(r.pending or r.empty for r in readings)]
    if groups:
        rows: list[list[str | Text]] = []
        for current, readings in groups[:GROUPS_SHOWN]:
            example = readings[0]
            rows.append(
                [_at(current), str(len(readings)), str(len(example.pending)), _names([r.target.name for r in readings])]
            )
        grid(
            console,
            "Targets by current revision",
            [Column("at"), Column("targets"), Column("revisions to run"), Column("which", flexible=True)],
            rows,
        )
    unknown = [r.target.name for r in plan.pending if not r.sizes_known]
    if unknown:
        console.print(
            f"[yellow]Sizes unknown[/] for {safe_markup(_names(unknown))}: a table the revisions touch was locked by "
            "another session when it was read, so those targets are not ranked by size."
        )
    riskiest = plan.riskiest()
    if riskiest:
        grid(
            console,
            "Riskiest targets (most data in the tables the revisions touch)",
            [Column("target"), Column("data touched"), Column("largest tables", flexible=True)],
            (
                [
                    r.target.name,
                    human_bytes(r.touched_bytes),
                    ", ".join(
                        f"{t.table} {human_bytes(t.bytes)}" for t in sorted(r.touched, key=lambda t: -t.bytes)[:3]
                    ),
                ]
                for r in riskiest
            ),
        )
    if plan.canaries:
        console.print(
            f"[bold]Canary:[/] {safe_markup(_names(list(plan.canaries)))} — migrated first, alone; "
            "a canary that fails stops the rollout."
        )
    if plan.revisions:
        console.print(f"[bold]Revisions[/] ({len(plan.revisions)}), the same for every target:")
        for item in plan.revisions:
            console.print(f"  {safe_markup(item.info.revision)}  {safe_markup(item.info.message)}")
        if plan.lint.errors:
            console.print(
                f"[bold red]Lint: {len(plan.lint.errors)} {plural('error', len(plan.lint.errors))}[/] "
                "(fleet up refuses to start without --allow-lint):"
            )
            for finding in plan.lint.errors[:5]:
                console.print(
                    f"  {safe_markup(finding.where)} {safe_markup(finding.rule)}: {safe_markup(finding.message)}"
                )
    if plan.canary_plan is not None:
        console.print(
            f"[bold]Rehearsed on the canary {safe_markup(plan.canaries[0])}[/]: its plan follows; its figures are "
            "that target's (measured or predicted, as each one says), not the others'."
        )
    elif plan.rehearsal_problem:
        console.print(f"[yellow]Not rehearsed:[/] {safe_markup(plan.rehearsal_problem)}")
    elif plan.revisions:
        why = plan.rehearsal_skipped or "no target has work to do"
        console.print(f"[yellow]Not rehearsed[/] ({safe_markup(why)}): lock times and data loss are not measured.")
    if plan.canary_plan is None and plan.revisions:
        # Without the canary's plan (which shows it), the SQL is shown here: what the reviewer approves.
        if len(plan.revisions) <= SQL_INLINE_REVISIONS:
            for item in plan.revisions:
                console.rule(f"SQL of {visible(item.info.revision)} — {visible(item.info.message)}", align="left")
                console.print(
                    sql_block(item.sql) if item.sql else f"(cannot render offline: {visible(item.sql_problem or '')})"
                )
        else:
            console.print(f"The SQL of the {len(plan.revisions)} revisions is in --format json (revisions[].sql).")
    if not plan.revisions and not blocked:
        console.print("[green]Nothing to do:[/] every target is at the heads.")
    for problem in plan.problems:
        console.print(f"[bold red]Refused:[/] {safe_markup(problem)}; fleet up will not apply this plan.")


def rollout_stakes(plan: FleetPlan, budget: ErrorBudget, parallel: int) -> None:
    """Right above the question, whatever scrolled away: how many targets, in what order, within what budget."""
    console = err()
    canary = f"the canary {_names(list(plan.canaries))} first, then " if plan.canaries else ""
    blocked = f"; {len(plan.blocked)} blocked target(s) count as failed" if plan.blocked else ""
    console.print(
        f"[bold]About to migrate {len(plan.pending)} of {len(plan.readings)} targets[/]: {canary}{parallel} at a time, "
        f"{len(plan.revisions)} revision(s) to {safe_markup(_at(plan.heads))}; error budget "
        f"{budget.words(len(plan.readings))}{blocked}."
    )


def fleet_plan_document(plan: FleetPlan) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "kind": "fleet_plan",
        "rollout": plan.rollout,
        "heads": list(plan.heads),
        "shard": str(plan.shard) if plan.shard else None,
        "revisions": [
            {"revision": i.info.revision, "message": i.info.message, "file_sha256": i.file_sha256, "sql": i.sql}
            for i in plan.revisions
        ],
        "lint_errors": [{"revision": f.revision, "rule": f.rule, "message": f.message} for f in plan.lint.errors],
        "canaries": list(plan.canaries),
        "rehearsed_on": plan.canaries[0] if plan.canary_plan is not None else None,
        "rehearsal_problem": plan.rehearsal_problem,
        "targets": [
            {
                "name": r.target.name,
                "url": r.target.masked_url,
                "group": r.target.group,
                "current": list(r.current),
                "pending": list(r.pending),
                "empty": r.empty,
                "blocked": r.blocker.value if r.blocker else None,
                "problem": r.problem,
                "touched_bytes": r.touched_bytes if r.sizes_known else None,
                "touched": [{"table": t.table, "bytes": t.bytes} for t in r.touched],
            }
            for r in plan.readings
        ],
    }


# -- the rollout ------------------------------------------------------------------------------------


class FleetProgress:
    """The rollout as it goes: a live view on a terminal (counts, throughput, the slowest target now), one
    line per finished target otherwise (a CI log)."""

    def __init__(self) -> None:
        self.console = err()
        self.total = 0
        self.counts = {state: 0 for state in TargetState}
        self.running: dict[str, float] = {}
        self.started_at = time.monotonic()
        self.live: Live | None = None

    def begin(self, total: int, already: int) -> None:
        self.total = total
        self.started_at = time.monotonic()
        if self.console.is_terminal and sys.stderr.isatty():
            self.live = Live(self._view(), console=self.console, refresh_per_second=4, transient=True)
            self.live.start()

    def started(self, target: Target, stage: str) -> None:
        self.running[target.name] = time.monotonic()
        self._refresh()

    def finished(self, outcome: TargetOutcome) -> None:
        self.running.pop(outcome.name, None)
        self.counts[outcome.state] += 1
        # A target found at the heads before the run is counted, not listed: a no-op over 500 targets is one line.
        untouched = outcome.state is TargetState.APPLIED and not outcome.applied and not outcome.done_by_another
        if not untouched and (self.live is None or outcome.state in (TargetState.FAILED, TargetState.SKIPPED)):
            self._line(outcome)
        self._refresh()

    def stopping(self, reason: str) -> None:
        self.console.print(f"[bold red]Stopping:[/] {safe_markup(reason)}")

    def note(self, text: str) -> None:
        self.console.print(safe_markup(text))

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _line(self, outcome: TargetOutcome) -> None:
        style = _STATE_STYLE[outcome.state]
        what = (
            f"{len(outcome.applied)} {plural('revision', len(outcome.applied))} in {outcome.seconds:.1f} s"
            if outcome.applied
            else ""
        )
        if outcome.done_by_another:
            what = "applied by another run meanwhile"
        detail = what or (outcome.error or "")
        text = Text.assemble((f"{outcome.state.value:<8}", style), " ", visible(outcome.name), "  ", visible(detail))
        if self.live is not None:
            self.live.console.print(text, crop=False, soft_wrap=True)
        else:
            self.console.print(text, crop=False, soft_wrap=True)

    def _view(self) -> Text:
        # One line at 80 columns: counts first, then the rate, then the slowest target running now.
        done = sum(self.counts[s] for s in (TargetState.APPLIED, TargetState.FAILED, TargetState.SKIPPED))
        elapsed = max(time.monotonic() - self.started_at, 1e-6)
        slowest = max(self.running.items(), key=lambda item: time.monotonic() - item[1], default=None)
        slow = f"  slowest {visible(slowest[0])} {time.monotonic() - slowest[1]:.0f}s" if slowest else ""
        return Text.assemble(
            (f"{done}/{self.total} done", "bold"),
            "  ",
            (f"{self.counts[TargetState.APPLIED]} applied", "green"),
            "  ",
            (f"{self.counts[TargetState.FAILED]} failed", "red"),
            "  ",
            (f"{len(self.running)} running", "cyan"),
            "  ",
            (f"{self.total - done - len(self.running)} to go", "yellow"),
            f"  {done / elapsed:.1f}/s{slow}",
            no_wrap=True,
            overflow="ellipsis",
        )

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._view())


def rollout_done(summary: RolloutSummary) -> None:
    console = out()
    failed = [o for o in summary.outcomes if o.state is TargetState.FAILED]
    skipped = [o for o in summary.outcomes if o.state is TargetState.SKIPPED]
    applied = [o for o in summary.outcomes if o.state is TargetState.APPLIED]
    changed = [o for o in applied if o.applied]
    verdict = "[green]Done[/]" if not failed and not skipped else "[bold red]Not done[/]"
    console.print(
        f"{verdict}: {len(applied)} of {len(summary.outcomes)} targets at the heads ({len(changed)} migrated by "
        f"this run), {len(failed)} failed, {len(skipped)} skipped, in {summary.seconds:.1f} s. "
        f"Error budget: {summary.budget.words(len(summary.outcomes))}"
        + ("; spent, so no new target started." if summary.stopped_by_budget else ".")
    )
    if summary.interrupted:
        console.print(
            "[bold red]Interrupted:[/] no new target was started; the targets that were running finished, and are "
            "listed as they ended. Run fleet up again to continue."
        )
    if failed:
        grid(
            console,
            "Failed",
            [Column("target"), Column("error", flexible=True)],
            ([o.name, visible(o.error or "")] for o in failed),
        )
        console.print(
            "Rerun [bold]hindsight-migrate fleet up --retry-failed[/] once fixed; applied targets are skipped."
        )
    for note in summary.notes:
        console.print(f"[yellow]Note:[/] {safe_markup(note)}")


def rollout_document(summary: RolloutSummary) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "kind": "fleet_up",
        "rollout": summary.rollout,
        "heads": list(summary.heads),
        "shard": str(summary.shard) if summary.shard else None,
        "seconds": round(summary.seconds, 3),
        "allowed_failures": summary.allowed_failures,
        "stopped_by_budget": summary.stopped_by_budget,
        "interrupted": summary.interrupted,
        "notes": list(summary.notes),
        "targets": [
            {
                "name": o.name,
                "state": o.state.value,
                "current": list(o.current),
                "applied": list(o.applied),
                "seconds": round(o.seconds, 3),
                "error": o.error,
                "stage": o.stage or None,
            }
            for o in summary.outcomes
        ],
    }


# -- status -------------------------------------------------------------------------------------------


def fleet_status(status: FleetStatus) -> None:
    console = out()
    counts = ", ".join(
        f"[{_STATE_STYLE[state]}]{status.count(state)} {state.value}[/]" for state in TargetState if status.count(state)
    )
    scope = f" (shard {status.shard})" if status.shard else ""
    console.print(
        f"[bold]Fleet[/]{scope}: {len(status.rows)} targets — {counts}; heads {safe_markup(_at(status.heads))}"
    )
    order = {
        TargetState.FAILED: 0,
        TargetState.RUNNING: 1,
        TargetState.SKIPPED: 2,
        TargetState.PENDING: 3,
        TargetState.APPLIED: 4,
    }
    grid(
        console,
        None,
        [Column("target"), Column("state"), Column("at"), Column("error", flexible=True)],
        (
            [row.name, Text(row.state.value, style=_STATE_STYLE[row.state]), _at(row.current), visible(row.error or "")]
            for row in sorted(status.rows, key=lambda r: (order[r.state], r.name))
        ),
    )
    for note in status.notes:
        console.print(f"[yellow]Note:[/] {safe_markup(note)}")


def fleet_status_document(status: FleetStatus) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "kind": "fleet_status",
        "heads": list(status.heads),
        "shard": str(status.shard) if status.shard else None,
        "counts": {state.value: status.count(state) for state in TargetState},
        "notes": list(status.notes),
        "targets": [
            {
                "name": row.name,
                "url": row.url,
                "group": row.group,
                "state": row.state.value,
                "current": list(row.current),
                "pending": list(row.pending),
                "error": row.error,
                "updated_at": row.updated_at,
            }
            for row in status.rows
        ],
    }
