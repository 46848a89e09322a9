"""The reviewed plan of an upgrade: what is pending, its SQL, the rehearsal, lint and impact.

``plan_upgrade`` is strictly read-only on the target. What it returns is what
``apply.apply_upgrade`` runs: the same revisions in the same order, checked against the
database's revision again under the migration lock, so a reviewer's "yes" cannot apply
something they did not see.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from hindsight_migrate import catalog
from hindsight_migrate.alembic_api import AlembicProject, RevisionInfo
from hindsight_migrate.bootstrap import BootstrapPlan, plan_bootstrap, sha256_of_text
from hindsight_migrate.config import Settings
from hindsight_migrate.database import Database
from hindsight_migrate.lint import LintResult, lint_sql
from hindsight_migrate.rehearsal import Rehearsal, RehearsalOptions, rehearse


@dataclass(frozen=True)
class PendingRevision:
    info: RevisionInfo
    file_sha256: str
    sql: str | None  # Alembic's offline rendering; None when the revision cannot render offline
    sql_problem: str | None  # why it could not, when it could not


@dataclass(frozen=True)
class UpgradePlan:
    database: str  # masked URL
    current: tuple[str, ...]  # the version table's revisions now
    target: str  # what the reviewer asked for: "heads", a revision, "+2", ...
    final: tuple[str, ...]  # the version table's revisions after the upgrade
    bootstrap: BootstrapPlan | None  # an empty database is bootstrapped first, in the same plan
    pending: tuple[PendingRevision, ...]
    rehearsal: Rehearsal | None
    rehearsal_skipped: str | None  # why there is no rehearsal (--no-rehearsal)
    lint: LintResult
    fingerprint: str  # hash of the pending revisions' files and their SQL

    @property
    def nothing_to_do(self) -> bool:
        return not self.pending and self.bootstrap is None

    @property
    def confirmation(self) -> str:
        """What the reviewer types to go on: the revision the database will end at."""
        if self.pending:
            return self.pending[-1].info.revision
        return self.bootstrap.baseline.revision if self.bootstrap else ""


def plan_upgrade(
    project: AlembicProject,
    database: Database,
    *,
    target: str,
    rehearsal: RehearsalOptions | None,
    skip_reason: str | None = None,
) -> UpgradePlan:
    """Read-only on the target: pending work, its SQL, a rehearsal elsewhere, lint."""
    settings = project.settings
    with database.connect() as connection:
        current = project.current_heads(connection)
        is_empty = not current and not catalog.content_objects(catalog.list_objects(connection))
        has_version_table = bool(catalog.version_tables(connection))
        connection.rollback()
    bootstrap = None
    start = current
    if is_empty and not has_version_table and settings.bootstrap_sql is not None and settings.baseline:
        # An empty database is offered bootstrap + upgrade as one plan.
        bootstrap = plan_bootstrap(project, database, sql_path=settings.bootstrap_sql, baseline=settings.baseline)
        start = (bootstrap.baseline.revision,)
    revisions = project.upgrade_path(start, target)
    pending = tuple(_pending(project, settings, info) for info in revisions)
    lint = lint_sql({p.info.revision: p.sql or "" for p in pending}, settings.tool)
    measured = None
    if rehearsal is not None and (pending or bootstrap):
        measured = rehearse(project, database, revisions, rehearsal, bootstrap=bootstrap)
    return UpgradePlan(
        database=database.masked_url,
        current=current,
        target=target,
        final=_final_heads(start, revisions),
        bootstrap=bootstrap,
        pending=pending,
        rehearsal=measured,
        rehearsal_skipped=skip_reason if rehearsal is None else None,
        lint=lint,
        fingerprint=_fingerprint(bootstrap, pending),
    )


def _pending(project: AlembicProject, settings: Settings, info: RevisionInfo) -> PendingRevision:
    path = info.path if info.path.is_absolute() else settings.project_dir / info.path
    file_sha = sha256_of_text(path.read_text(encoding="utf-8"))
    try:
        sql: str | None = project.offline_sql(info)
        problem = None
    except Exception as err:  # a revision that reads data through get_bind() cannot render offline
        sql, problem = None, f"{type(err).__name__}: {err}"
    return PendingRevision(info=info, file_sha256=file_sha, sql=sql, sql_problem=problem)


def _final_heads(start: tuple[str, ...], revisions: tuple[RevisionInfo, ...]) -> tuple[str, ...]:
    heads = set(start)
    for info in revisions:
        heads.difference_update(info.parents)
        heads.add(info.revision)
    return tuple(sorted(heads))


def _fingerprint(bootstrap: BootstrapPlan | None, pending: tuple[PendingRevision, ...]) -> str:
    digest = hashlib.sha256()
    if bootstrap is not None:
        digest.update(f"bootstrap:{bootstrap.sql.sha256}:{bootstrap.baseline.revision}\n".encode())
    for item in pending:
        digest.update(f"{item.info.revision}:{item.file_sha256}\n".encode())
        digest.update((item.sql or "").encode())
    return digest.hexdigest()
