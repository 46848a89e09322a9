"""One target of a fleet, migrated in a worker process: the single-database apply, as ``up`` runs it.

A worker process migrates many targets in turn: Alembic's ``context`` is one per process, so two targets
never share one, and the imports and the revision graph are paid once per worker, not once per target.
Each target gets the apply's whole protection: its migration lock, a transaction per revision, the lock
waits that grow, the audit row and checksums. Its ledger row says ``running`` before anything starts and
the outcome after; a run killed in between leaves ``running`` with no lock holder, which readers take for
what the database itself says.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.config import DatabaseSource, Settings, resolve_settings
from hindsight_migrate.errors import HindsightMigrateError, LockBusy
from hindsight_migrate.fleet.model import Target, TargetOutcome, TargetState
from hindsight_migrate.masking import mask_secrets, remember_secret_of
from hindsight_migrate.postgres import fleet_sql
from hindsight_migrate.postgres.database import Database, open_database
from hindsight_migrate.review.apply import apply_plan
from hindsight_migrate.review.lock_waits import LockWaits
from hindsight_migrate.review.plan import PlannedRevision, plan_reviewed_upgrade


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker is told once: the project, the reviewed revisions, the rollout and its settings."""

    config_path: Path | None
    ini_section: str
    cwd: Path
    rollout: str
    heads: tuple[str, ...]
    reviewed: Mapping[str, PlannedRevision]
    lock_wait: float
    lock_retries: int | None
    x_argument: str
    secrets: tuple[str, ...]
    version_table: str = "alembic_version"  # where a failed target stands is read from it
    version_schema: str | None = None  # the targets' URLs: masked in whatever this process says


@dataclass(frozen=True)
class Job:
    """Targets that share a database (schema-per-tenant) run one after another: they share its lock."""

    targets: tuple[Target, ...]
    stage: str


_setup: WorkerSetup | None = None
_settings: Settings | None = None
_project: AlembicProject | None = None  # the worker's project, its graph loaded once for all its targets


def start_worker(setup: WorkerSetup) -> None:
    """A worker process's initializer: the settings read once (the project is built per target)."""
    global _setup, _settings
    # Ctrl-C reaches the whole process group: the rollout (the parent) decides, and lets the targets running here
    # finish, as it does on SIGTERM. A migration is never cut mid-revision by a key press.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _setup = setup
    for url in setup.secrets:
        remember_secret_of(url)
    _settings = resolve_settings(
        config_path=setup.config_path, url=None, cwd=setup.cwd, ini_section=setup.ini_section, allow_multidb=True
    )
    for url in setup.secrets:  # resolve_settings starts afresh: remember them again
        remember_secret_of(url)


def run_job(job: Job) -> tuple[TargetOutcome, ...]:
    """Writes: each target of ``job`` in turn (its ledger row, then its revisions)."""
    assert _setup is not None and _settings is not None, "start_worker first"
    return tuple(migrate_target(target, job.stage, _setup, _settings) for target in job.targets)


def migrate_target(target: Target, stage: str, setup: WorkerSetup, settings: Settings) -> TargetOutcome:
    """Writes: ``target``'s revisions up to the reviewed heads, with its ledger row before and after."""
    started = time.monotonic()
    try:
        _write_ledger(target, setup, TargetState.RUNNING, None)
        outcome = _apply(target, stage, setup, settings, started)
    except HindsightMigrateError as err:
        state = TargetState.SKIPPED if isinstance(err, LockBusy) else TargetState.FAILED
        outcome = TargetOutcome(
            target.name, state, (), seconds=time.monotonic() - started, error=_one_paragraph(err), stage=stage
        )
    except Exception as err:  # a bug, or something no layer translated: this target fails, the others go on
        outcome = TargetOutcome(
            target.name,
            TargetState.FAILED,
            (),
            seconds=time.monotonic() - started,
            error=mask_secrets(f"internal error ({type(err).__name__}): {err}"),
            stage=stage,
        )
    if outcome.state is TargetState.FAILED:
        outcome = _unless_another_run_did_it(target, setup, outcome)
    if outcome.state is not TargetState.APPLIED:
        # Where it stands: a failure after some revisions committed leaves it between its start and the heads.
        with contextlib.suppress(HindsightMigrateError):
            outcome = replace(
                outcome,
                current=fleet_sql.current_revisions(
                    target.url,
                    shown=target.masked_url,
                    version_table=setup.version_table,
                    version_schema=target.schema or setup.version_schema,
                ),
            )
    # Unreachable now: the database's own state is the truth, and the rollout reports the outcome.
    with contextlib.suppress(HindsightMigrateError):
        _write_ledger(target, setup, outcome.state, outcome.error)
    return outcome


def _write_ledger(target: Target, setup: WorkerSetup, state: TargetState, error: str | None) -> None:
    fleet_sql.write_ledger(
        target.url,
        shown=target.masked_url,
        name=target.name,
        rollout=setup.rollout,
        state=state.value,
        heads=setup.heads,
        error=error,
    )


def _unless_another_run_did_it(target: Target, setup: WorkerSetup, failed: TargetOutcome) -> TargetOutcome:
    """A failure while another run migrates the same target (two rollouts at once, overlapping shards) may be this
    run's planning tripping over that run's work (a bootstrap half-visible): wait for the other run's lock, and if
    the target then stands at the heads, it is applied — by the other run — not failed."""
    deadline = time.monotonic() + setup.lock_wait
    try:
        while fleet_sql.migration_lock_held(target.url, shown=target.masked_url):
            if time.monotonic() > deadline:
                return failed
            time.sleep(0.2)
        current = fleet_sql.current_revisions(
            target.url,
            shown=target.masked_url,
            version_table=setup.version_table,
            version_schema=target.schema or setup.version_schema,
        )
    except HindsightMigrateError:
        return failed
    if set(current) != set(setup.heads):
        return failed
    return replace(failed, state=TargetState.APPLIED, current=current, error=None, done_by_another=True)


@contextmanager
def target_session(
    settings: Settings, target: Target, x_argument: str, project: AlembicProject | None = None
) -> Iterator[tuple[AlembicProject, Database]]:
    """The project bound to ``target``, and its database: env.py finds the target's URL wherever a per-tenant
    loop would give it (sqlalchemy.url, DATABASE_URL, -x tenant=SCHEMA, the session's search_path).

    ``project``: a worker's project, moved to this target (its revision graph is loaded once per worker)."""
    url = _with_search_path(target.url, target.schema) if target.schema else target.url
    source = DatabaseSource(url=url, origin=f"fleet target {target.name}", written=target.url)
    if project is None:
        project = AlembicProject(replace(settings, database=source))
    else:
        project.retarget(source)
    database = open_database(source)
    try:
        with _environment_for(url):
            project.set_x_arguments((f"{x_argument}={target.schema}",) if target.schema else ())
            if target.engine:
                project.set_main_option("databases", target.engine)  # multidb: env.py migrates this one alone
            project.bind_target(database.engine.url, source.origin)
            yield project, database
    finally:
        database.dispose()


def _apply(target: Target, stage: str, setup: WorkerSetup, settings: Settings, started: float) -> TargetOutcome:
    global _project
    if _project is None:
        _project = AlembicProject(settings)
    with target_session(settings, target, setup.x_argument, _project) as (project, database):
        plan = plan_reviewed_upgrade(project, database, setup.reviewed)
        if plan.nothing_to_do:
            return TargetOutcome(
                target.name, TargetState.APPLIED, plan.current, seconds=time.monotonic() - started, stage=stage
            )
        waits = settings.tool
        result = apply_plan(
            plan,
            project,
            database,
            lock_wait=setup.lock_wait,
            lock_waits=LockWaits(
                ceiling=waits.lock_timeout,
                start=waits.lock_timeout_start,
                doubling=waits.lock_timeout_doubling,
                retries=setup.lock_retries if setup.lock_retries is not None else waits.lock_retries,
                max_wait=waits.lock_retry_max_wait,
            ),
        )
    return TargetOutcome(
        target.name,
        TargetState.APPLIED,
        result.to_revisions,
        applied=tuple(item.revision for item in result.applied),
        seconds=time.monotonic() - started,
        stage=stage,
        done_by_another=result.done_by_another,
    )


@contextmanager
def _environment_for(url: str) -> Iterator[None]:
    """env.py files that read DATABASE_URL themselves find this target's there, as a per-tenant loop gives it."""
    before = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = before


def _with_search_path(url: str, schema: str | None) -> str:
    """Schema-per-tenant: the session's search_path is the tenant's, so unqualified names land there."""
    option = quote(f'-c search_path="{schema}"', safe="")
    return f"{url}{'&' if '?' in url else '?'}options={option}"


def _one_paragraph(err: HindsightMigrateError) -> str:
    """The error's message and what the database said, masked, for a ledger row and one line of output."""
    parts = [err.message, *(f"{section.title}: {section.body}" for section in err.sections[:2])]
    return mask_secrets(" ".join(" ".join(parts).split()))
