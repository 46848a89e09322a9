"""``new``: autogenerate a revision with guardrails.

By default the models are compared with a scratch database built at head from nothing
(bootstrap, then every revision), so what is written depends only on the code, never on
leftovers in someone's local database. The detected operations are reviewed before the file
is written (drops, narrowings, NOT NULL without a default, probable renames), an empty
revision is refused unless asked for, and the new file's SQL is linted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.bootstrap import plan_bootstrap, rehearse_bootstrap
from hindsight_migrate.database import Database
from hindsight_migrate.errors import BadArgument, NoTargetMetadata, Refused, Section
from hindsight_migrate.lint import LintResult, lint_sql
from hindsight_migrate.review import ReviewFinding, review_operations
from hindsight_migrate.revisions import Operation


@dataclass(frozen=True)
class NewRevision:
    message: str
    compared_with: str | None  # None: env.py has no models (target_metadata = None), nothing was compared
    operations: tuple[Operation, ...]
    findings: tuple[ReviewFinding, ...]
    path: Path | None  # None when nothing was written
    revision: str | None
    sql: str | None
    lint: LintResult | None


def new_revision(
    project: AlembicProject,
    database: Database,
    message: str,
    *,
    against_target: bool,
    allow_empty: bool,
) -> NewRevision:
    """Writes a revision file; reads the target only (``--against-target``) or a scratch database."""
    message = " ".join(message.split())
    if not message:
        raise BadArgument('A revision needs a message that says what it does, e.g. hindsight-migrate new "add users".')
    try:
        with (
            database_at_head(project, database, against_target) as (at_head, compared_with),
            at_head.connect() as connection,
        ):
            operations, path = project.authoring.autogenerate(
                connection, message, write=lambda ops: bool(ops) or allow_empty
            )
            connection.rollback()
    except NoTargetMetadata:
        if not allow_empty:
            raise
        # No models (target_metadata = None, as alembic init writes it): a hand-written revision
        # needs none, as `alembic revision -m` needs none.
        operations, path, compared_with = (), project.authoring.empty_revision(message), None
    findings = review_operations(operations)
    if path is None:
        raise Refused(
            f"Autogenerate found no difference between the models and {compared_with}, so no revision was "
            "written. For a hand-written data migration, pass --empty.",
        )
    revision = _revision_in(project, path)
    sql = project.env.offline_sql(project.graph.resolve(revision)) if revision else None
    lint = lint_sql({revision: sql}, project.settings.tool) if revision and sql is not None else None
    return NewRevision(message, compared_with, operations, findings, path, revision, sql, lint)


@contextmanager
def database_at_head(
    project: AlembicProject, database: Database, against_target: bool
) -> Iterator[tuple[Database, str]]:
    if against_target:
        with database.connect() as connection:
            current = project.env.current_heads(connection)
            connection.rollback()
        heads = project.graph.heads()
        if set(current) != set(heads):
            raise Refused(
                f"--against-target compares the models with {database.masked_url}, which must be at head: it is at "
                f"{', '.join(current) or 'no revision'}, head is {', '.join(heads)}. Run hindsight-migrate up first, "
                "or leave out --against-target to compare with a scratch database built at head.",
            )
        yield database, database.masked_url
        return
    from hindsight_migrate.rehearsal import scratch_database

    with scratch_database(database) as scratch:
        _build_at_head(project, scratch)
        yield scratch, "a scratch database built at head from nothing"


def _build_at_head(project: AlembicProject, scratch: Database) -> None:
    """Writes (to the scratch database): V1 and the baseline stamp if configured, then every revision."""
    from sqlalchemy.exc import DBAPIError

    settings = project.settings
    start: tuple[str, ...] = ()
    if settings.bootstrap_sql is not None and settings.baseline:
        bootstrap = plan_bootstrap(project, scratch, sql_path=settings.bootstrap_sql, baseline=settings.baseline)
        with scratch.connect() as connection, connection.begin():
            rehearse_bootstrap(bootstrap, project, connection)
        start = (bootstrap.baseline.revision,)
    running: list[str] = []
    with scratch.connect() as connection:
        try:
            project.env.run_revisions(
                connection,
                [info.revision for info in project.graph.upgrade_path(start, "heads")],
                downgrade=False,
                before_each=running.append,
            )
        except DBAPIError as err:
            from hindsight_migrate.database import server_said

            raise Refused(
                f"Building a scratch database at head from nothing failed at revision "
                f"{running[-1] if running else '?'}, so the models could not be compared. Chains whose schema was "
                "made by metadata.create_all() and then stamped cannot start from an empty database; compare "
                "with a database that is at head instead: `hindsight-migrate new --against-target` or "
                "`hindsight-migrate check --against-target` (with --url naming it). Otherwise fix that revision "
                "(hindsight-migrate up --dry-run shows it).",
                sections=(Section("Database said", server_said(err)),),
            ) from err
        if connection.in_transaction():
            connection.commit()


def _revision_in(project: AlembicProject, path: Path) -> str | None:
    full = path if path.is_absolute() else project.settings.project_dir / path
    for info in project.graph.revisions():
        candidate = info.path if info.path.is_absolute() else project.settings.project_dir / info.path
        if candidate.resolve() == full.resolve():
            return info.revision
    return None
