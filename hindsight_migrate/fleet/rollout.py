"""``fleet up``: the reviewed plan applied to every target — the canary stage first, then the rest, ``parallel``
at a time, within an error budget; and ``fleet status``, the ledger read back against each database.

Targets run in worker processes (see :mod:`hindsight_migrate.fleet.worker`); this process schedules them,
keeps the budget and the control database's rows, and tells a :class:`RolloutProgress` what happens.
Past the budget no new target starts; those in flight finish (a migration is never killed mid-DDL).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from hindsight_migrate.errors import HindsightMigrateError
from hindsight_migrate.fleet.model import (
    ErrorBudget,
    FleetRow,
    FleetStatus,
    RolloutSummary,
    Shard,
    Target,
    TargetOutcome,
    TargetReading,
    TargetState,
)
from hindsight_migrate.fleet.plan import FleetPlan, SavedFleetPlan, changed_since
from hindsight_migrate.fleet.targets import Fleet
from hindsight_migrate.fleet.worker import Job, WorkerSetup, run_job, start_worker
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.postgres import fleet_sql

CANARY = "canary"
BUDGET_SPENT = "the error budget was spent"
WAVE = "wave"


class RolloutInterrupted(Exception):
    """The rollout was interrupted; the targets that were running finished, with these outcomes."""

    def __init__(self, outcomes: list[TargetOutcome]) -> None:
        super().__init__("interrupted")
        self.outcomes = outcomes


class RolloutProgress(Protocol):
    """The rollout's watcher (render implements it: a live view on a terminal, a line per target when piped)."""

    def begin(self, total: int, already: int) -> None: ...

    def started(self, target: Target, stage: str) -> None: ...

    def finished(self, outcome: TargetOutcome) -> None: ...

    def stopping(self, reason: str) -> None: ...

    def note(self, text: str) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class RolloutRequest:
    parallel: int
    budget: ErrorBudget
    retry_failed: bool
    lock_wait: float
    lock_retries: int | None
    config_path: Path | None
    ini_section: str
    cwd: Path
    saved: SavedFleetPlan | None = None
    canary_wait: float = 3600.0  # how long a shard waits for the canaries another shard runs


def roll_out(plan: FleetPlan, fleet: Fleet, request: RolloutRequest, progress: RolloutProgress) -> RolloutSummary:
    """Writes: every target with work to do, canaries first, within the error budget."""
    started = time.monotonic()
    outcomes: list[TargetOutcome] = []
    runnable: list[TargetReading] = []
    shard_text = str(plan.shard) if plan.shard else None
    for reading in plan.readings:
        early = _decided_before_start(plan, reading, request)
        if early is not None:
            outcomes.append(early)
        else:
            runnable.append(reading)
    # With a control database the budget is the whole fleet's, shared by its shards: so is its P%.
    allowed = request.budget.allowed(len(fleet.targets) if fleet.control_url and plan.shard else len(plan.readings))
    failed_before = sum(1 for o in outcomes if o.state is TargetState.FAILED)
    progress.begin(len(plan.readings), len(outcomes))
    for outcome in outcomes:
        progress.finished(outcome)
        _control(fleet, plan, outcome, shard_text)
    for reading in runnable:
        if reading.ledger is not None and reading.ledger.state is TargetState.FAILED:
            # Tried again (--retry-failed): its failure of an earlier run no longer counts in the shared budget.
            _control(fleet, plan, TargetOutcome(reading.target.name, TargetState.PENDING, reading.current), shard_text)
    budget = _Budget(fleet, plan, allowed, failed_before)
    canaries = [r for r in runnable if r.target.name in plan.canaries]
    rest = [r for r in runnable if r.target.name not in plan.canaries]
    stopped = interrupted = False
    why_stopped = BUDGET_SPENT
    if runnable:
        setup = WorkerSetup(
            config_path=request.config_path,
            ini_section=request.ini_section,
            cwd=request.cwd,
            rollout=plan.rollout,
            heads=plan.heads,
            reviewed=plan.reviewed,
            lock_wait=request.lock_wait,
            lock_retries=request.lock_retries,
            x_argument=fleet.x_argument,
            version_table=plan.version_table.name,
            version_schema=plan.version_table.schema,
            secrets=tuple({t.url for t in fleet.targets} | ({fleet.control_url} if fleet.control_url else set())),
        )
        workers = max(1, min(request.parallel, len(_jobs(runnable, WAVE))))
        # spawn, not fork: the parent has threads (the live view), and a forked child would inherit their locks.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker, initargs=(setup,)) as pool:
            for stage, readings, width in ((CANARY, canaries, workers), (WAVE, rest, workers)):
                if stage == WAVE and readings and plan.canaries_elsewhere and allowed is not None:
                    why = _wait_for_canaries(fleet, plan, request.canary_wait, progress)
                    if why is not None:
                        stopped, why_stopped = True, why
                        progress.stopping(why)
                        break
                if not readings:
                    continue
                if budget.spent():
                    stopped = True
                    break
                try:
                    stopped = _run_stage(
                        pool,
                        _jobs(readings, stage),
                        width,
                        budget,
                        progress,
                        outcomes,
                        lambda o: _control(fleet, plan, o, shard_text),
                    )
                except RolloutInterrupted:
                    stopped = interrupted = True
                    why_stopped = "the run was interrupted"
                    break
                if stopped:
                    break
                if stage == CANARY and budget.failures_now > failed_before and allowed is not None:
                    stopped, why_stopped = True, "the canary failed"
                    progress.stopping("the canary failed: no other target was started")
                    break

    if stopped:
        ran = {o.name for o in outcomes}
        for reading in runnable:
            if reading.target.name not in ran:
                skipped = TargetOutcome(
                    reading.target.name,
                    TargetState.SKIPPED,
                    reading.current,
                    error=f"not started: {why_stopped}",
                    stage=WAVE,
                )
                outcomes.append(skipped)
                _control(fleet, plan, skipped, shard_text)
    return RolloutSummary(
        rollout=plan.rollout,
        heads=plan.heads,
        outcomes=tuple(outcomes),
        budget=request.budget,
        allowed_failures=allowed,
        stopped_by_budget=stopped and why_stopped is BUDGET_SPENT,
        interrupted=interrupted,
        seconds=time.monotonic() - started,
        shard=plan.shard,
        notes=_budget_notes(fleet, plan),
    )


def _wait_for_canaries(fleet: Fleet, plan: FleetPlan, seconds: float, progress: RolloutProgress) -> str | None:
    """Waits until every canary another shard runs is applied: None, go on; else why this shard stops."""
    names = plan.canaries_elsewhere
    if fleet.control_url is None:
        return (
            f"the canary {', '.join(names)} is in another shard, and without a [control] database this shard "
            "cannot see how it went: name a control database in the targets file, or run the canary first"
        )
    progress.note(f"Waiting for the canary {', '.join(names)}, which another shard migrates.")
    deadline = time.monotonic() + seconds
    while True:
        rows = fleet_sql.control_rows(fleet.control_url, rollout=plan.rollout)
        states = {name: rows[name].state if name in rows else None for name in names}
        failed = [name for name, state in states.items() if state in ("failed", "skipped")]
        if failed:
            return f"the canary {', '.join(failed)} (another shard's) failed: no target of this shard was started"
        if all(state == "applied" for state in states.values()):
            return None
        if time.monotonic() > deadline:
            return f"the canary {', '.join(names)} did not finish within {seconds:.0f} s: no target was started"
        time.sleep(1.0)


def _decided_before_start(plan: FleetPlan, reading: TargetReading, request: RolloutRequest) -> TargetOutcome | None:
    """A target the rollout does not start: up to date, blocked, failed before (without --retry-failed), or moved
    since a saved plan was reviewed."""
    name = reading.target.name
    if reading.blocker is not None:
        return TargetOutcome(
            name, TargetState.FAILED, reading.current, error=f"{reading.blocker.value}: {reading.problem}"
        )
    if not reading.pending and not reading.empty:
        return TargetOutcome(name, TargetState.APPLIED, reading.current)
    if request.saved is not None:
        why = changed_since(request.saved, reading)
        if why is not None:
            return TargetOutcome(name, TargetState.SKIPPED, reading.current, error=why)
    ledger = reading.ledger
    if (
        ledger is not None
        and ledger.state is TargetState.FAILED
        and ledger.rollout == plan.rollout
        and not request.retry_failed
    ):
        return TargetOutcome(
            name,
            TargetState.FAILED,
            reading.current,
            error=f"failed before ({ledger.error or 'no error recorded'}); rerun with --retry-failed to try it again",
        )
    return None


def _jobs(readings: list[TargetReading], stage: str) -> list[Job]:
    """One job per database: schema-per-tenant targets share their database's migration lock."""
    by_database: dict[str, list[Target]] = {}
    for reading in readings:
        by_database.setdefault(reading.target.database_key, []).append(reading.target)
    return [Job(tuple(targets), stage) for targets in by_database.values()]


class _Budget:
    """Failures so far against what the budget allows; shared through the control database when there is one."""

    def __init__(self, fleet: Fleet, plan: FleetPlan, allowed: int | None, failed_before: int) -> None:
        self.fleet, self.plan, self.allowed = fleet, plan, allowed
        self.failures_now = failed_before

    def failed(self) -> None:
        self.failures_now += 1

    def spent(self) -> bool:
        if self.allowed is None:
            return False
        failures = self.failures_now
        if self.fleet.control_url is not None:
            # The control database away: this shard's own count still holds.
            with contextlib.suppress(HindsightMigrateError):
                failures = max(failures, fleet_sql.control_failures(self.fleet.control_url, rollout=self.plan.rollout))
        return failures > self.allowed


def _run_stage(
    pool: ProcessPoolExecutor,
    jobs: list[Job],
    width: int,
    budget: _Budget,
    progress: RolloutProgress,
    outcomes: list[TargetOutcome],
    record: Callable[[TargetOutcome], None],
) -> bool:
    """Runs ``jobs``, ``width`` at a time; True when the budget stopped it (those in flight finished first)."""
    queue = list(reversed(jobs))
    running: dict[Future[tuple[TargetOutcome, ...]], Job] = {}
    stopped = False
    interrupted = False
    while queue or running:
        while queue and len(running) < width and not stopped:
            if budget.spent():
                stopped = True
                progress.stopping("the error budget is spent: no new target starts; those running finish")
                break
            job = queue.pop()
            for target in job.targets:
                progress.started(target, job.stage)
            running[pool.submit(run_job, job)] = job
        if not running:
            break
        try:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM (a cancelled deploy): no new target starts; the running ones finish (a
            # migration is never killed mid-DDL here) and are reported. A second one stops waiting.
            if interrupted:
                raise
            interrupted = stopped = True
            queue.clear()
            progress.stopping(f"interrupted: no new target starts; waiting for the {len(running)} running to finish")
            continue
        for future in done:
            job = running.pop(future)
            try:
                results = future.result()
            except Exception as err:  # the worker process died (killed, out of memory): its targets failed
                results = tuple(
                    TargetOutcome(
                        t.name,
                        TargetState.FAILED,
                        (),
                        error=mask_secrets(f"the worker stopped: {err}"),
                        stage=job.stage,
                    )
                    for t in job.targets
                )
            for outcome in results:
                outcomes.append(outcome)
                if outcome.state is TargetState.FAILED:
                    budget.failed()
                record(outcome)
                progress.finished(outcome)
    if interrupted:
        raise RolloutInterrupted(outcomes)
    return stopped


def _control(fleet: Fleet, plan: FleetPlan, outcome: TargetOutcome, shard: str | None) -> None:
    if fleet.control_url is None:
        return
    # Unreachable: the target's own ledger row holds the outcome; status reads the databases themselves.
    with contextlib.suppress(HindsightMigrateError):
        fleet_sql.control_record(
            fleet.control_url,
            rollout=plan.rollout,
            target=outcome.name,
            state=outcome.state.value,
            current=outcome.current,
            error=outcome.error,
            shard=shard,
        )


def _budget_notes(fleet: Fleet, plan: FleetPlan) -> tuple[str, ...]:
    if plan.shard is not None and fleet.control_url is None:
        return (
            f"Shard {plan.shard} kept its own error budget: no [control] database is named in {fleet.source}, "
            "so the shards do not share one.",
        )
    return ()


# -- fleet status -----------------------------------------------------------------------------------


def fleet_status(plan: FleetPlan, fleet: Fleet) -> FleetStatus:
    """Read-only: every target's state, from its own database first (the truth), then its ledger row."""
    control = {}
    notes: list[str] = []
    if fleet.control_url is not None:
        try:
            control = fleet_sql.control_rows(fleet.control_url, rollout=None)
        except HindsightMigrateError as err:
            notes.append(f"The control database could not be read: {mask_secrets(err.message)}")
    rows = []
    for reading in plan.readings:
        rows.append(_status_row(reading, control.get(reading.target.name)))
    return FleetStatus(heads=plan.heads, rows=tuple(rows), shard=plan.shard, notes=tuple(notes))


def _status_row(reading: TargetReading, control: fleet_sql.ControlRow | None) -> FleetRow:
    target = reading.target
    base = FleetRow(
        target.name, target.masked_url, TargetState.PENDING, reading.current, reading.pending, None, target.group
    )
    if reading.blocker is not None:
        return replace(base, state=TargetState.FAILED, error=f"{reading.blocker.value}: {reading.problem}")
    ledger = reading.ledger
    updated = ledger.updated_at if ledger else (control.updated_at.isoformat() if control else None)
    base = replace(base, updated_at=updated)
    if reading.locked:
        return replace(base, state=TargetState.RUNNING)
    if not reading.pending and not reading.empty:
        return replace(base, state=TargetState.APPLIED)
    if ledger is not None and ledger.state in (TargetState.FAILED, TargetState.SKIPPED):
        return replace(base, state=ledger.state, error=ledger.error)
    if ledger is not None and ledger.state is TargetState.RUNNING:
        # No one holds its lock: the run that wrote "running" is gone. Whatever it committed is in the version
        # table, read above; the rest is pending.
        return replace(base, error="a run stopped here before it finished (killed?); what it committed is applied")
    if control is not None and control.state == TargetState.SKIPPED.value:
        return replace(base, state=TargetState.SKIPPED, error=control.error)
    return base


def shard_words(shard: Shard | None) -> str:
    return f"shard {shard}" if shard else "all targets"
