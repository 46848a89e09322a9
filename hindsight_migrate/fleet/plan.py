"""``fleet plan``: one read-only preflight of every target, and one reviewed plan for all of them.

Every target is read in parallel over one short read-only session (no env.py per target): where it stands,
whether it diverged or was tampered with, and how big the tables the pending revisions touch are there. The
revisions and their SQL are rendered once; lint runs once; the rehearsal runs on the canary — by default the
target with the most data in the touched tables, so the plan's lock times and row counts are measured where
they are largest.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.code_fingerprint import code_fingerprint
from hindsight_migrate.config import Settings
from hindsight_migrate.errors import ConfigError, ConnectionFailed, HindsightMigrateError, Refused
from hindsight_migrate.fleet.model import Blocker, LedgerEntry, Shard, TableSize, Target, TargetReading, TargetState
from hindsight_migrate.fleet.targets import Fleet
from hindsight_migrate.fleet.worker import target_session
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.postgres import fleet_sql
from hindsight_migrate.postgres.sqlscript import ScriptSyntaxError, split_statements, statement_tables
from hindsight_migrate.review.kinds import NoRehearsal
from hindsight_migrate.review.lint import LintResult, lint_sql
from hindsight_migrate.review.plan import MigrationPlan, PlannedRevision, plan_upgrade, planned_revisions
from hindsight_migrate.review.rehearsal import RehearsalOptions, RehearsalTarget
from hindsight_migrate.review.v1 import sha256_of_text
from hindsight_migrate.revisions import VersionTable

PLAN_FORMAT = "hindsight-migrate fleet plan"
PLAN_VERSION = 1
READERS = 16  # sessions the preflight keeps open at once: reading waits on the network, not on this machine
RISKIEST_SHOWN = 5


@dataclass(frozen=True)
class FleetPlanRequest:
    shard: Shard | None = None
    canary: tuple[str, ...] = ()  # named canaries; () with canary_largest False: the group "canary", else largest
    canary_largest: bool = False
    no_rehearsal: bool = False
    rehearse_on: str = "scratch"
    rehearsal_skipped: str | None = None  # with no_rehearsal: why, in words ("--no-rehearsal", "a saved plan")
    labels: tuple[str, ...] = ()  # --label: only the targets with one of these labels (or in such a group)
    positions_only: bool = False  # fleet status: where each target stands; no SQL, lint, sizes nor canary


@dataclass(frozen=True)
class FleetPlan:
    """What the reviewer reads and what the rollout runs: the same revisions for every target."""

    rollout: str  # the plan's id: the heads and every revision's file, hashed
    heads: tuple[str, ...]
    revisions: tuple[PlannedRevision, ...]  # every revision some target still needs, in the order they run
    lint: LintResult
    readings: tuple[TargetReading, ...]
    canaries: tuple[str, ...]
    canary_plan: MigrationPlan | None  # the canary's own plan, rehearsed there (None: not rehearsed)
    rehearsal_problem: str | None  # why the canary's plan could not be made, when it could not
    version_table: VersionTable
    shard: Shard | None = None
    source: str = ""  # the targets file
    rehearsal_skipped: str | None = None  # why there is no rehearsal, in words, when none was asked for
    canaries_elsewhere: tuple[str, ...] = ()  # the fleet's canaries that other shards run: waited for

    @property
    def rehearsal_failed(self) -> bool:
        rehearsal = self.canary_plan.rehearsal if self.canary_plan is not None else None
        return rehearsal is not None and not rehearsal.ok

    @property
    def problems(self) -> tuple[str, ...]:
        """What the review refuses to apply: lint errors, and a rehearsal on the canary that failed."""
        found = []
        if self.lint.errors:
            found.append(f"lint found {len(self.lint.errors)} error(s) in the revisions")
        if self.rehearsal_failed:
            found.append(f"the rehearsal on the canary {self.canaries[0]} failed")
        return tuple(found)

    @property
    def reviewed(self) -> dict[str, PlannedRevision]:
        return {item.info.revision: item for item in self.revisions}

    @property
    def pending(self) -> tuple[TargetReading, ...]:
        return tuple(r for r in self.readings if r.blocker is None and (r.pending or r.empty))

    @property
    def blocked(self) -> tuple[TargetReading, ...]:
        return tuple(r for r in self.readings if r.blocker is not None)

    @property
    def up_to_date(self) -> tuple[TargetReading, ...]:
        return tuple(r for r in self.readings if r.blocker is None and not r.pending and not r.empty)

    def groups(self) -> list[tuple[tuple[str, ...], tuple[TargetReading, ...]]]:
        """Reachable targets by where they stand, the largest group first."""
        by: dict[tuple[str, ...], list[TargetReading]] = {}
        for reading in self.readings:
            if reading.blocker is None:
                by.setdefault(reading.current, []).append(reading)
        return sorted(((k, tuple(v)) for k, v in by.items()), key=lambda item: -len(item[1]))

    def riskiest(self) -> tuple[TargetReading, ...]:
        touched = [r for r in self.pending if r.touched_bytes > 0]
        return tuple(sorted(touched, key=lambda r: -r.touched_bytes)[:RISKIEST_SHOWN])


def make_fleet_plan(
    settings: Settings, fleet: Fleet, request: FleetPlanRequest, *, readers: int = READERS
) -> FleetPlan:
    """Read-only on every target (the rehearsal copies the canary to a scratch database, as ``up`` does)."""
    targets = fleet.sharded(request.shard, request.labels)
    if not targets:
        if request.labels:
            raise ConfigError(f"No target of {fleet.source} has the label or group {', '.join(request.labels)}.")
        raise ConfigError(f"Shard {request.shard} of {fleet.source} holds no target ({len(fleet.targets)} in all).")
    project = AlembicProject(settings)
    heads = project.graph.heads()
    version_table = _version_table(settings, targets, fleet.x_argument)
    file_sha: dict[str, str] = {}
    fingerprints: dict[str, str | None] = {}

    def read(target: Target) -> TargetReading:
        return _read_one(project, target, version_table, file_sha, fingerprints)

    with ThreadPoolExecutor(readers, "hindsight-fleet-read") as pool:
        readings = list(pool.map(read, targets))
    # fleet status renders no SQL (env.py offline, per starting point), runs no Squawk and reads no sizes.
    revisions = () if request.positions_only else _revisions_pending(project, settings, readings, fleet.x_argument)
    touched = tuple(t for t in _touched_tables(revisions) if t.rpartition(".")[2] != version_table.name)
    if touched:
        with ThreadPoolExecutor(readers, "hindsight-fleet-size") as pool:
            sized = pool.map(
                lambda r: _sized(r, touched) if r.blocker is None and (r.pending or r.empty) else r, readings
            )
            readings = list(sized)
    lint = (
        lint_sql({item.info.revision: item.sql or "" for item in revisions}, settings.tool, version_table=version_table)
        if revisions
        else LintResult((), ran=True)
    )
    plan = FleetPlan(
        rollout=rollout_id(project, heads),
        heads=heads,
        revisions=revisions,
        lint=lint,
        readings=tuple(readings),
        canaries=(),
        canary_plan=None,
        rehearsal_problem=None,
        version_table=version_table,
        shard=request.shard,
        source=str(fleet.source),
    )
    canaries = () if request.positions_only else choose_canaries(plan, fleet, request)
    plan = replace(
        plan,
        canaries=canaries,
        canaries_elsewhere=elsewhere_canaries(fleet, request),
        rehearsal_skipped=request.rehearsal_skipped,
    )
    if canaries and not request.no_rehearsal:
        canary = next(r.target for r in plan.readings if r.target.name == canaries[0])
        try:
            plan = replace(plan, canary_plan=_rehearse_on(settings, canary, fleet.x_argument, request))
        except HindsightMigrateError as err:
            plan = replace(plan, rehearsal_problem=mask_secrets(err.message))
    return plan


def rollout_id(project: AlembicProject, heads: tuple[str, ...]) -> str:
    """The plan's id: the heads and every revision file of the chain. The same for every shard and every rerun
    while the code is the same, wherever each target stands; another id as soon as any revision file changes."""
    digest = hashlib.sha256(("heads:" + ",".join(sorted(heads)) + "\n").encode())
    for info in sorted(project.graph.revisions(), key=lambda info: info.revision):
        source = (project.settings.project_dir / info.path).read_bytes()
        digest.update(f"{info.revision}:{hashlib.sha256(source).hexdigest()}\n".encode())
    return digest.hexdigest()[:12]


def choose_canaries(plan: FleetPlan, fleet: Fleet, request: FleetPlanRequest) -> tuple[str, ...]:
    """The targets the rollout migrates first, alone: named, or the group "canary", or the one with the most
    data in the tables the plan touches (ties: the first in the file). Only targets with work to do."""
    pending = {r.target.name: r for r in plan.pending}
    if request.shard is not None and not request.canary_largest:
        # Shards share the fleet's canaries (named, or the group "canary" of the whole file): the shard that holds
        # one runs it; the others wait for it (see elsewhere_canaries).
        named = request.canary or tuple(t.name for t in fleet.targets if t.group == "canary")
        fleet.named(named)
        if named:
            return tuple(name for name in named if name in pending)
    if request.canary:
        fleet.named(request.canary)  # an unknown name is refused, not ignored
        return tuple(name for name in request.canary if name in pending)
    if not request.canary_largest:
        grouped = tuple(name for name, r in pending.items() if r.target.group == "canary")
        if grouped:
            return grouped
    if not pending:
        return ()
    largest = max(pending.values(), key=lambda r: r.touched_bytes)
    return (largest.target.name,)


def elsewhere_canaries(fleet: Fleet, request: FleetPlanRequest) -> tuple[str, ...]:
    """The fleet's canaries another shard holds: this shard's waves wait for them (through the control database)."""
    if request.shard is None or request.canary_largest:
        return ()
    named = request.canary or tuple(t.name for t in fleet.targets if t.group == "canary")
    mine = {t.name for t in fleet.sharded(request.shard, request.labels)}
    return tuple(name for name in named if name not in mine)


def _version_table(settings: Settings, targets: tuple[Target, ...], x_argument: str) -> VersionTable:
    """The version table env.py names, learned from env.py once, on the first target that answers."""
    problems = []
    for target in targets[:3]:
        try:
            with target_session(settings, target, x_argument) as (project, database):
                with database.read_only() as connection:
                    project.env.current_position(connection)
                    connection.rollback()
                return project.env.version_table
        except HindsightMigrateError as err:
            problems.append(f"{target.name}: {err.message}")
            if not isinstance(err, ConnectionFailed):
                raise
    raise ConnectionFailed(
        "None of the first targets could be read to learn the version table env.py names: " + " ".join(problems)
    )


def _read_one(
    project: AlembicProject,
    target: Target,
    version_table: VersionTable,
    file_sha: dict[str, str],
    fingerprints: dict[str, str | None],
) -> TargetReading:
    schema = target.schema or version_table.schema
    environment = replace(version_table, schema=schema).environment if target.schema else version_table.environment
    try:
        read = fleet_sql.read_target(
            target.url,
            shown=target.masked_url,
            version_table=version_table.name,
            version_schema=schema,
            environment=environment,
            name=target.name,
        )
    except HindsightMigrateError as err:
        return TargetReading(target, blocker=Blocker.UNREACHABLE, problem=_words(err))
    ledger = None
    if read.ledger is not None:
        ledger = LedgerEntry(
            TargetState(read.ledger.state),
            read.ledger.rollout,
            read.ledger.error,
            read.ledger.updated_at.isoformat(),
            holder_alive=read.locked,
        )
    graph = project.graph

    def blocked(blocker: Blocker, problem: str) -> TargetReading:
        return TargetReading(target, read.current, blocker=blocker, ledger=ledger, locked=read.locked, problem=problem)

    unknown = tuple(r for r in read.current if not graph.knows(r))
    if unknown:
        return blocked(
            Blocker.DIVERGED,
            f"at {', '.join(unknown)}, which no revision file has (another branch's database, a deleted file)",
        )
    tampered, missing = [], []
    for recorded in read.checksums:
        if not graph.knows(recorded.revision):
            missing.append(recorded.revision)
            continue
        if recorded.revision not in file_sha:
            source = (project.settings.project_dir / graph.resolve(recorded.revision).path).read_text(encoding="utf-8")
            file_sha[recorded.revision] = sha256_of_text(source)
            fingerprints[recorded.revision] = code_fingerprint(source)
        if file_sha[recorded.revision] != recorded.file_sha256 and (
            recorded.code_fingerprint is None or recorded.code_fingerprint != fingerprints[recorded.revision]
        ):
            tampered.append(recorded.revision)
    if tampered:
        return blocked(
            Blocker.TAMPERED,
            f"revision {', '.join(tampered)} was edited after it was applied here (write a new revision)",
        )
    if missing:
        return blocked(Blocker.DIVERGED, f"revision {', '.join(missing)} was applied here but no file has it now")
    empty = not read.version_table_exists and not read.has_tables
    start = read.current
    settings = project.settings
    if empty and settings.bootstrap_sql is not None and settings.baseline:
        start = (graph.resolve(settings.baseline).revision,)
    pending = tuple(info.revision for info in graph.upgrade_path(start, "heads"))
    return TargetReading(
        target,
        read.current,
        pending,
        ledger=ledger,
        locked=read.locked,
        empty=empty,
        applied=graph.ancestors(read.current),
    )


def _sized(reading: TargetReading, touched: tuple[str, ...]) -> TargetReading:
    """The same reading with the size of each touched table there (one more short session)."""
    tables = tuple(_in_schema(table, reading.target.schema) for table in touched)
    try:
        sizes = fleet_sql.table_sizes(reading.target.url, shown=reading.target.masked_url, tables=tables)
    except HindsightMigrateError as err:
        return replace(reading, blocker=Blocker.UNREACHABLE, problem=_words(err))
    if sizes is None:
        return replace(reading, sizes_known=False)  # a table locked now: sizes unknown, the target not blocked
    return replace(reading, touched=tuple(TableSize(table, size) for table, size in sorted(sizes.items()) if size))


def _in_schema(table: str, schema: str | None) -> str:
    return f'"{schema}".{table}' if schema and "." not in table else table


def _revisions_pending(
    project: AlembicProject, settings: Settings, readings: list[TargetReading], x_argument: str
) -> tuple[PlannedRevision, ...]:
    """Every revision some target still needs, rendered once (per distinct starting point), in run order.

    A multidb project's revision runs different SQL on each of its databases: each database's SQL is rendered,
    under a comment naming it."""
    starts: dict[tuple[tuple[str, ...], str | None], Target] = {}
    for reading in readings:
        if reading.blocker is None and reading.pending:
            start = reading.current
            if reading.empty and settings.baseline:
                start = (project.graph.resolve(settings.baseline).revision,)
            starts.setdefault((start, reading.target.engine), reading.target)
    rendered: dict[tuple[str, str | None], PlannedRevision] = {}
    order: list[str] = []
    for (start, engine), target in sorted(starts.items(), key=lambda item: len(project.graph.ancestors(item[0][0]))):
        path = tuple(i for i in project.graph.upgrade_path(start, "heads") if (i.revision, engine) not in rendered)
        if not path:
            continue
        with target_session(settings, target, x_argument) as (bound, _):
            for item in planned_revisions(bound, path, start=start, downgrade=False):
                rendered[(item.info.revision, engine)] = item
                if item.info.revision not in order:
                    order.append(item.info.revision)
    planned = []
    for revision in order:
        versions = [(engine, item) for (name, engine), item in rendered.items() if name == revision]
        first = versions[0][1]
        if len(versions) > 1:
            sql = "\n".join(f"-- on {engine}\n{item.sql or ''}" for engine, item in versions)
            first = replace(first, sql=sql)
        planned.append(first)
    return tuple(planned)


def _touched_tables(revisions: tuple[PlannedRevision, ...]) -> tuple[str, ...]:
    """The tables the revisions' SQL names (those it creates do not exist yet, and are not found)."""
    found: dict[str, None] = {}
    for item in revisions:
        if not item.sql:
            continue
        try:
            statements = split_statements(item.sql)
        except ScriptSyntaxError:
            continue
        for statement in statements:
            tables = statement_tables(statement.text)
            for table in sorted(tables.named | tables.altered | tables.processed):
                found.setdefault(table, None)
    return tuple(found)


def _rehearse_on(settings: Settings, canary: Target, x_argument: str, request: FleetPlanRequest) -> MigrationPlan:
    """The canary's own plan, rehearsed as ``up`` rehearses (on a scratch copy of it, by default)."""
    tool = settings.tool
    options = RehearsalOptions(
        where=RehearsalTarget.parse(request.rehearse_on),
        data_limit_bytes=tool.rehearsal_data_limit_mb * 1024 * 1024,
        sample_bytes=tool.rehearsal_sample_mb * 1024 * 1024,
        lock_timeout=tool.lock_timeout,
        statement_timeout=tool.statement_timeout,
    )
    with target_session(settings, canary, x_argument) as (project, database):
        return plan_upgrade(project, database, target="heads", rehearsal=options, skip_reason=NoRehearsal.REQUESTED)


def _words(err: HindsightMigrateError) -> str:
    parts = [err.message, *(section.body for section in err.sections[:1])]
    return mask_secrets(" ".join(" ".join(parts).split()))


# -- the saved plan -----------------------------------------------------------------------------


def plan_document(plan: FleetPlan) -> str:
    """The saved plan: what ``fleet up --plan`` checks before it applies (no URL, no secret)."""
    return (
        json.dumps(
            {
                "format": PLAN_FORMAT,
                "version": PLAN_VERSION,
                "rollout": plan.rollout,
                "heads": list(plan.heads),
                "revisions": [{"revision": i.info.revision, "file_sha256": i.file_sha256} for i in plan.revisions],
                "targets": [{"name": r.target.name, "current": list(r.current)} for r in plan.readings],
                "problems": list(plan.problems),
                "rehearsal_failed": plan.rehearsal_failed,
            },
            indent=2,
        )
        + "\n"
    )


@dataclass(frozen=True)
class SavedFleetPlan:
    rollout: str
    current: dict[str, tuple[str, ...]]  # target -> where it stood when reviewed
    problems: tuple[str, ...] = ()  # what the review found that refuses it (lint errors, a failed rehearsal)
    rehearsal_failed: bool = False  # no option overrides this one


def load_fleet_plan(path: Path) -> SavedFleetPlan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"Cannot read the saved fleet plan {path}: {err.strerror}.") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} is not a saved fleet plan (hindsight-migrate fleet plan --plan-out): {err}") from err
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT or data.get("version") != PLAN_VERSION:
        raise ConfigError(
            f"{path} is not a saved fleet plan (hindsight-migrate fleet plan --plan-out FILE writes one)."
        )
    try:
        return SavedFleetPlan(
            rollout=str(data["rollout"]),
            current={str(t["name"]): tuple(str(r) for r in t["current"]) for t in data["targets"]},
            problems=tuple(str(p) for p in data.get("problems", ())),
            rehearsal_failed=bool(data.get("rehearsal_failed", False)),
        )
    except (KeyError, TypeError) as err:
        raise ConfigError(f"{path} is not a complete saved fleet plan: {err!r} is missing.") from err


def refuse_unless_same_revisions(saved: SavedFleetPlan, plan: FleetPlan, path: Path) -> None:
    if saved.rollout != plan.rollout:
        raise Refused(
            f"The revisions changed since {path} was reviewed (its plan {saved.rollout}, now {plan.rollout}): "
            "nothing was applied. Review the fleet's plan again (hindsight-migrate fleet plan --plan-out FILE)."
        )


def changed_since(saved: SavedFleetPlan, reading: TargetReading) -> str | None:
    """Why a target may not be applied under a saved plan: it was not in it, or it moved off the reviewed path.

    A target that moved along the path the review showed (a run of this plan applied some or all of its
    revisions, and was stopped or failed) is still under the review: a rerun finishes it."""
    before = saved.current.get(reading.target.name)
    if before is None:
        return "not in the reviewed plan"
    if before != reading.current and not set(before) <= reading.applied:
        was, now = ", ".join(before) or "base", ", ".join(reading.current) or "base"
        return f"moved since the review: it was at {was}, it is at {now}"
    return None
