"""Bring an empty database to the baseline: the hand-written V1 SQL plus the baseline stamp.

Both happen in one transaction, with the record of which V1 file ran, so a run killed
half-way leaves the database exactly as empty as it was. The preview runs the same
statements in a transaction that is rolled back and reads what they created from the
catalog, so what the reviewer is shown is measured, not guessed from the SQL text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.code_fingerprint import code_fingerprint
from hindsight_migrate.errors import ConfigError, Refused, Section
from hindsight_migrate.postgres import audit, catalog
from hindsight_migrate.postgres.audit_records import Outcome
from hindsight_migrate.postgres.catalog import CatalogObject
from hindsight_migrate.postgres.database import Database, execute_as_written, statement_failed
from hindsight_migrate.postgres.locking import HeldLock, migration_lock
from hindsight_migrate.postgres.sqlscript import (
    ScriptSyntaxError,
    Statement,
    is_transaction_control,
    split_statements,
)
from hindsight_migrate.review.v1 import read_v1_text, sha256_of_text, v1_drift
from hindsight_migrate.revisions import RevisionInfo

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class BootstrapSql:
    path: Path
    sha256: str
    statements: tuple[Statement, ...]


@dataclass(frozen=True)
class BootstrapPlan:
    """What bootstrap will do, measured by a rolled-back rehearsal; apply runs exactly this."""

    database: str  # masked URL
    sql: BootstrapSql
    baseline: RevisionInfo
    creates: tuple[CatalogObject, ...]


@dataclass(frozen=True)
class BootstrapResult:
    plan: BootstrapPlan
    current_heads: tuple[str, ...]
    seconds: float


def read_bootstrap_sql(path: Path | None) -> BootstrapSql:
    """Read and split the V1 file; refuse one that would end bootstrap's single transaction."""
    if path is None:
        raise ConfigError(
            "No bootstrap SQL file is configured. Set bootstrap_sql in the [hindsight-migrate] "
            "section of alembic.ini, or pass --sql PATH."
        )
    text = read_v1_text(path)
    try:
        # An editor's byte-order mark is not SQL (psql skips it too); the checksum keeps it, as the file has it.
        statements = tuple(split_statements(text.removeprefix("\ufeff")))
    except ScriptSyntaxError as err:
        raise ConfigError(f"The bootstrap SQL file {path} cannot be read as SQL: {err}.") from err
    if not statements:
        raise ConfigError(f"The bootstrap SQL file {path} has no statements.")
    for statement in statements:
        if is_transaction_control(statement):
            raise ConfigError(
                f"{path}, line {statement.line}: {statement.first_line!r} controls the "
                "transaction. bootstrap runs the whole file and the baseline stamp in one "
                "transaction of its own, so that a failure leaves the database empty; remove "
                "BEGIN/COMMIT/ROLLBACK from the file."
            )
    return BootstrapSql(path=path, sha256=sha256_of_text(text), statements=statements)


def plan_bootstrap(
    project: AlembicProject,
    database: Database,
    *,
    sql_path: Path | None,
    baseline: str | None,
) -> BootstrapPlan:
    """Read-only: check the database is empty and rehearse V1 in a rolled-back transaction."""
    sql = read_bootstrap_sql(sql_path)
    if not baseline:
        raise ConfigError(
            "No baseline revision is configured. Set baseline in the [hindsight-migrate] "
            "section of alembic.ini, or pass --baseline REV."
        )
    baseline_info = project.graph.resolve(baseline)
    with database.connect() as connection:
        transaction = connection.begin()
        try:
            refuse_unless_empty(connection, sql, version_table=project.env.version_table.name)
            before = set(catalog.list_objects(connection))
            _run_statements(connection, sql, rehearsal=True)
            creates = tuple(sorted(set(catalog.list_objects(connection)) - before))
        finally:
            transaction.rollback()
    return BootstrapPlan(database=database.masked_url, sql=sql, baseline=baseline_info, creates=creates)


def apply_bootstrap(
    plan: BootstrapPlan, project: AlembicProject, database: Database, *, lock_wait: float
) -> BootstrapResult:
    """Writes: V1, the bootstrap record and the baseline stamp, all in one transaction."""
    with migration_lock(database, wait_seconds=lock_wait) as lock:
        return bootstrap_under_lock(plan, project, database, lock)


def bootstrap_under_lock(
    plan: BootstrapPlan, project: AlembicProject, database: Database, lock: HeldLock
) -> BootstrapResult:
    """Writes, with the migration lock held by the caller: V1, the record and the stamp, in one transaction."""
    started = time.monotonic()
    with database.connect() as connection:
        with connection.begin():
            # Checked again under the lock: another run may have bootstrapped since the plan.
            refuse_unless_empty(connection, plan.sql, version_table=project.env.version_table.name)
            _run_statements(connection, plan.sql, rehearsal=False)
            audit.record_bootstrap(
                connection,
                sql_path=_display_path(plan.sql.path, project.settings.project_dir),
                sql_sha256=plan.sql.sha256,
                baseline=plan.baseline.revision,
            )
            project.env.stamp(connection, plan.baseline.revision)
            baseline_source = (project.settings.project_dir / plan.baseline.path).read_text(encoding="utf-8")
            recorded = audit.record_applied(
                connection,
                revision=plan.baseline.revision,
                file_sha256=sha256_of_text(baseline_source),
                file_path=str(plan.baseline.path),
                apply_id=None,
                code_fingerprint=code_fingerprint(baseline_source),
                environment=project.env.version_table.environment,
                lock=lock.parameters,
            )
            if not recorded:
                raise lock.lost(before="The bootstrap")
            # Audited in the same transaction: the row exists exactly when the bootstrap committed.
            audit_id = audit.start_apply(
                connection,
                command="bootstrap",
                database=plan.database,
                from_revisions=(),
                fingerprint=plan.sql.sha256,
                environment=project.env.version_table.environment,
            )
            audit.finish_apply(
                connection,
                audit_id,
                outcome=Outcome.SUCCEEDED,
                to_revisions=(plan.baseline.revision,),
                seconds=time.monotonic() - started,
            )
            lock.verify(connection, before="The bootstrap")
        heads = project.env.current_heads(connection)
        connection.rollback()
    return BootstrapResult(plan=plan, current_heads=heads, seconds=time.monotonic() - started)


def rehearse_bootstrap(plan: BootstrapPlan, project: AlembicProject, connection: Connection) -> None:
    """Writes (to a rehearsal database): V1 and the baseline stamp, in the caller's transaction."""
    _run_statements(connection, plan.sql, rehearsal=True)
    project.env.stamp(connection, plan.baseline.revision)


def drop_baseline_schema(connection: Connection, *, version_table: str) -> tuple[str, ...]:
    """Writes: drops what V1 left (every application object) and the version table, in the
    caller's transaction, so the database is empty again and bootstrap can run. Only for
    ``down --to base --allow-drop-baseline``; returns the statements it ran."""
    return catalog.drop_application_objects(connection, version_table=version_table)


def refuse_unless_empty(connection: Connection, sql: BootstrapSql, *, version_table: str) -> None:
    """Read-only: raise :class:`Refused` listing what the database already holds, if anything."""
    found = catalog.content_objects(catalog.list_objects(connection))
    version_tables = catalog.version_tables(connection, name=version_table)
    if not found and not version_tables:
        return
    record = audit.last_bootstrap(connection)
    listing = [f"{obj.kind} {obj.qualified_name}" for obj in found]
    listing += [
        f"Alembic version table {name}"
        for name in version_tables
        if name not in {f"{o.schema}.{o.name}" for o in found}
    ]
    sections = [Section("Found", "\n".join(listing))]
    drift = v1_drift(record, sql.path, sql.sha256)
    if drift:
        sections.append(Section("V1 file changed", drift))
    raise Refused(
        "This database is not empty, so bootstrap will not touch it: bootstrap only runs on a "
        "database with no tables and no Alembic version table. If it was bootstrapped already, "
        "use `hindsight-migrate up`; otherwise point --url at an empty database.",
        sections=tuple(sections),
    )


def _run_statements(connection: Connection, sql: BootstrapSql, *, rehearsal: bool) -> None:
    for number, statement in enumerate(sql.statements, start=1):
        err = execute_as_written(connection, statement.text)
        if err is not None:
            stage = "in the rehearsal" if rehearsal else "while bootstrapping"
            raise statement_failed(
                err,
                what=(
                    f"{sql.path.name} failed {stage} at statement {number} (line "
                    f"{statement.line}). The transaction was rolled back: the database is as "
                    "empty as before. Fix the file and run again."
                ),
                statement=statement.text,
            ) from err


def _display_path(path: Path, project_dir: Path) -> str:
    try:
        return str(path.relative_to(project_dir))
    except ValueError:
        return str(path)
