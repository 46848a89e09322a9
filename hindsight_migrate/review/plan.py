"""The reviewed plan of a migration, up or down: what runs, its SQL, the rehearsal, lint, data loss.

``plan_upgrade`` and ``plan_downgrade`` are strictly read-only on the target. What they
return is what ``apply.apply_plan`` runs: the same revisions in the same order, checked
against the database's revision again under the migration lock, so a reviewer's "yes"
cannot apply something they did not see.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.code_fingerprint import code_fingerprint
from hindsight_migrate.errors import (
    EnvIgnoresConnection,
    HindsightMigrateError,
    Refused,
    Section,
    StatementFailed,
    VersionTableUnusable,
)
from hindsight_migrate.postgres import audit, catalog
from hindsight_migrate.postgres.database import Database
from hindsight_migrate.postgres.lock_modes import Blocks
from hindsight_migrate.postgres.scratch import scratch_made_in_advance
from hindsight_migrate.review.bootstrap import BootstrapPlan, plan_bootstrap
from hindsight_migrate.review.kinds import ChangeKind, FailedAt, NoRehearsal
from hindsight_migrate.review.lint import LintResult, lint_sql
from hindsight_migrate.review.rehearsal import Rehearsal, RehearsalOptions, RehearsalPlace, rehearse
from hindsight_migrate.review.v1 import sha256_of_text
from hindsight_migrate.revisions import Direction, RevisionInfo
from hindsight_migrate.schema import Change


@dataclass(frozen=True)
class PlannedRevision:
    info: RevisionInfo
    file_sha256: str
    sql: str | None  # Alembic's offline rendering; None when the revision cannot render offline
    sql_problem: str | None  # why it could not, when it could not
    runs_python: bool = False  # it reads the database from Python (op.get_bind()): its SQL is not all it does
    # Its code without comments, docstrings and layout (code_fingerprint): recorded with the checksum when
    # applied, so that status tells a reformatted file from an edited one. None: the file does not parse.
    code_fingerprint: str | None = None


class Dropped(Enum):
    """What a plan drops that holds data; the value is what JSON documents hold."""

    TABLE = "table"
    COLUMN = "column"


@dataclass(frozen=True)
class DataLoss:
    """A table or column the downgrade drops, with what it holds on the target now."""

    kind: Dropped
    name: str  # schema.table or schema.table.column
    rows: int  # rows of the table; for a column, rows where it is not NULL
    exact: bool  # False when counting took too long and this is the planner's estimate

    @property
    def holds_data(self) -> bool:
        """Whether dropping it loses data: only an exact count of 0 proves it holds none (an estimate does not)."""
        return self.rows > 0 or not self.exact


@dataclass(frozen=True)
class MigrationPlan:
    direction: Direction
    database: str  # masked URL
    current: tuple[str, ...]  # the version table's revisions now
    target: str  # what the reviewer asked for: "heads", a revision, "+2", "-1", "base"
    final: tuple[str, ...]  # the version table's revisions after the run
    bootstrap: BootstrapPlan | None  # up: an empty database is bootstrapped first, in the same plan
    drops_baseline: bool  # down past the baseline: the V1 schema is dropped too
    revisions: tuple[PlannedRevision, ...]  # in the order they run
    rehearsal: Rehearsal | None
    rehearsal_skipped: NoRehearsal | None  # why there is no rehearsal
    lint: LintResult
    data_loss: tuple[DataLoss, ...]
    fingerprint: str  # hash of the revisions' files and their SQL
    warnings: tuple[str, ...] = ()  # what the reviewer must know before confirming (no-op downgrades)
    # The schemas env.py migrates in one run, each with its own version table at ``current``, when
    # there are several (a multi-tenant env.py); () for one version table.
    schemas: tuple[str, ...] = ()

    @property
    def nothing_to_do(self) -> bool:
        return not self.revisions and self.bootstrap is None and not self.drops_baseline

    @property
    def confirmation(self) -> str:
        """What the reviewer types to go on: the revision the database will end at."""
        if self.direction is Direction.DOWN:
            return ",".join(self.final) or "base"
        if self.revisions:
            return self.revisions[-1].info.revision
        return self.bootstrap.baseline.revision if self.bootstrap else ""


def sql_script(plan: MigrationPlan) -> str:
    """Every revision's offline SQL, in the order it runs, each under a comment naming it."""
    parts = []
    for item in plan.revisions:
        head = f"-- {item.info.revision}: {item.info.message}"
        body = item.sql.strip() if item.sql is not None else f"-- cannot render offline: {item.sql_problem or ''}"
        parts.append(f"{head}\n{body}\n")
    return "\n".join(parts)


def _on_a_scratch_copy(rehearsal: RehearsalOptions | None) -> bool:
    return rehearsal is not None and rehearsal.where.place is RehearsalPlace.SCRATCH


def plan_upgrade(
    project: AlembicProject,
    database: Database,
    *,
    target: str,
    rehearsal: RehearsalOptions | None,
    skip_reason: NoRehearsal = NoRehearsal.REQUESTED,
) -> MigrationPlan:
    """Read-only on the target: pending work, its SQL, a rehearsal elsewhere, lint."""
    settings = project.settings
    with database.read_only() as connection:
        current, schemas = project.env.current_position(connection)
        is_empty = not current and not catalog.content_objects(catalog.list_objects(connection))
        has_version_table = bool(catalog.version_tables(connection, name=project.env.version_table.name))
        if rehearsal is not None:
            audit.refuse_unless_schema_usable(connection)  # the rehearsal checks the apply's privileges there
        connection.rollback()
    bootstrap = None
    start = current
    if is_empty and not has_version_table and settings.bootstrap_sql is not None and settings.baseline:
        # An empty database is offered bootstrap + upgrade as one plan.
        bootstrap = plan_bootstrap(project, database, sql_path=settings.bootstrap_sql, baseline=settings.baseline)
        start = (bootstrap.baseline.revision,)
    revisions = project.graph.upgrade_path(start, target)
    if not (revisions or bootstrap):
        rehearsal = None  # nothing to rehearse (and nothing to make a scratch database for)
    with (
        scratch_made_in_advance(database, wanted=_on_a_scratch_copy(rehearsal)) as scratch,
        ThreadPoolExecutor(1, "hindsight-lint") as beside,
    ):
        planned = planned_revisions(project, revisions, start=start, downgrade=False)
        # Squawk runs in its own process while the rehearsal waits on the server.
        linting = beside.submit(
            lint_sql,
            {p.info.revision: p.sql or "" for p in planned},
            settings.tool,
            version_table=project.env.version_table,
            empty_database=is_empty,
        )
        measured = None
        if rehearsal is not None:
            measured = rehearse(project, database, revisions, rehearsal, bootstrap=bootstrap, scratch=scratch)
        lint = linting.result()
    # Going up can destroy data too (a dropped column, a dropped table): the same report as down.
    data_loss = _data_loss(database, measured) if measured is not None and measured.ok else ()
    final = _heads_after(project, start, revisions, downgrade=False)
    warnings: tuple[str, ...] = ()
    if revisions and len(final) > 1:
        # Two revisions written on the same parent (two pull requests merged) make a branch nobody meant:
        # applying both is what `heads` asks, and the reviewer should know the database will stand on both.
        warnings = (
            f"The database will stand on {len(final)} heads ({', '.join(final)}): the chain branches, and this plan "
            "applies every branch. If the branch was not meant, join the heads first (hindsight-migrate merge), or "
            "apply one of them (hindsight-migrate up REV).",
        )
    return MigrationPlan(
        direction=Direction.UP,
        database=database.masked_url,
        current=current,
        target=target,
        final=final,
        bootstrap=bootstrap,
        drops_baseline=False,
        revisions=planned,
        rehearsal=measured,
        rehearsal_skipped=_why_not_rehearsed(measured, skip_reason, anything=bool(revisions or bootstrap)),
        lint=lint,
        data_loss=data_loss,
        fingerprint=_fingerprint(Direction.UP, bootstrap, planned),
        warnings=warnings,
        schemas=schemas,
    )


def plan_reviewed_upgrade(
    project: AlembicProject, database: Database, reviewed: Mapping[str, PlannedRevision]
) -> MigrationPlan:
    """Read-only on the target: one target of a fleet, to heads, each revision as the fleet's review rendered it.

    No rehearsal and no lint here: both ran once, for the whole fleet, when it was reviewed. A revision the
    review did not see, or whose file changed since, is refused: what runs is what was reviewed.
    """
    settings = project.settings
    with database.read_only() as connection:
        current, schemas = project.env.current_position(connection)
        is_empty = not current and not catalog.content_objects(catalog.list_objects(connection))
        has_version_table = bool(catalog.version_tables(connection, name=project.env.version_table.name))
        connection.rollback()
    bootstrap = None
    start = current
    if is_empty and not has_version_table and settings.bootstrap_sql is not None and settings.baseline:
        bootstrap = plan_bootstrap(project, database, sql_path=settings.bootstrap_sql, baseline=settings.baseline)
        start = (bootstrap.baseline.revision,)
    planned = []
    for info in project.graph.upgrade_path(start, "heads"):
        seen = reviewed.get(info.revision)
        now = sha256_of_text((settings.project_dir / info.path).read_text(encoding="utf-8"))
        if seen is None or seen.file_sha256 != now:
            why = "was not in the reviewed plan" if seen is None else "changed since the plan was reviewed"
            raise Refused(
                f"Revision {info.revision} ({info.path}) {why}: nothing was applied to {database.masked_url}. "
                "Review the fleet's plan again (hindsight-migrate fleet plan)."
            )
        planned.append(seen)
    revisions = tuple(planned)
    return MigrationPlan(
        direction=Direction.UP,
        database=database.masked_url,
        current=current,
        target="heads",
        final=_heads_after(project, start, tuple(item.info for item in revisions), downgrade=False),
        bootstrap=bootstrap,
        drops_baseline=False,
        revisions=revisions,
        rehearsal=None,
        rehearsal_skipped=NoRehearsal.FLEET if revisions or bootstrap else NoRehearsal.NOTHING_TO_RUN,
        lint=LintResult((), ran=True, note="linted once, in the fleet's plan"),
        data_loss=(),
        fingerprint=_fingerprint(Direction.UP, bootstrap, revisions),
        schemas=schemas,
    )


def plan_downgrade(
    project: AlembicProject,
    database: Database,
    *,
    target: str,
    rehearsal: RehearsalOptions | None,
    allow_drop_baseline: bool,
    skip_reason: NoRehearsal = NoRehearsal.REQUESTED,
) -> MigrationPlan:
    """Read-only on the target: what reverting to ``target`` runs, rehearsed, with the data it drops.

    Refuses (before anything runs) an irreversible revision, and going back past the
    baseline unless ``target`` is ``base`` and ``allow_drop_baseline`` is given.
    """
    settings = project.settings
    with database.read_only() as connection:
        current, schemas = project.env.current_position(connection)
        if rehearsal is not None:
            audit.refuse_unless_schema_usable(connection)  # the rehearsal checks the apply's privileges there
        connection.rollback()
    if not current:
        raise Refused(f"{database.masked_url} has no revision applied: there is nothing to go back from.")
    revisions = project.graph.downgrade_path(current, target)
    baseline = settings.baseline and project.graph.resolve(settings.baseline).revision
    drops_baseline = bool(baseline) and any(info.revision == baseline for info in revisions)
    if drops_baseline and not (target == "base" and allow_drop_baseline):
        raise Refused(
            f"Going back to {target} passes the baseline {baseline}, which stands for the V1 schema: it would "
            "remove the V1 tables and all their data. To really empty the database, run "
            "hindsight-migrate down --to base --allow-drop-baseline.",
        )
    problems = [problem for info in revisions if (problem := downgrade_problem(info, project))]
    refuse_noop = settings.tool.refuse_noop_downgrades
    refused = [problem for problem in problems if problem.refused or refuse_noop]
    if refused:
        setting = " (refuse_noop_downgrades is on)" if any(not p.refused for p in refused) else ""
        raise Refused(
            f"The plan reverts a revision that cannot be reverted{setting}, so nothing was run. Write its "
            "downgrade(), or stop before it (down --to a later revision).",
            sections=(Section("Irreversible", "\n".join(problem.words for problem in refused)),),
        )
    warnings = tuple(problem.words for problem in problems)  # no-op downgrades, reverted as Alembic would
    if not (revisions or drops_baseline):
        rehearsal = None
    with scratch_made_in_advance(database, wanted=_on_a_scratch_copy(rehearsal)) as scratch:
        planned = planned_revisions(project, revisions, start=current, downgrade=True)
        measured = None
        if rehearsal is not None:
            measured = rehearse(
                project, database, revisions, rehearsal, downgrade=True, drop_baseline=drops_baseline, scratch=scratch
            )
    data_loss: tuple[DataLoss, ...] = ()
    if measured is not None and measured.ok:
        data_loss = _data_loss(database, measured)
    return MigrationPlan(
        direction=Direction.DOWN,
        database=database.masked_url,
        current=current,
        target=target,
        final=_heads_after(project, current, revisions, downgrade=True),
        bootstrap=None,
        drops_baseline=drops_baseline,
        revisions=planned,
        rehearsal=measured,
        rehearsal_skipped=_why_not_rehearsed(measured, skip_reason, anything=bool(revisions or drops_baseline)),
        lint=LintResult((), ran=False, note="downgrades are not linted: dropping is what they are for."),
        data_loss=data_loss,
        fingerprint=_fingerprint(Direction.DOWN, None, planned, drops_baseline),
        warnings=warnings,
        schemas=schemas,
    )


@dataclass(frozen=True)
class DowngradeProblem:
    """What a revision's downgrade() cannot do, read from its source before anything runs."""

    revision: str
    kind: Literal["missing", "raises", "noop"]  # noop: empty while upgrade() is not (a backfill)
    words: str  # "<rev> (<message>): downgrade() raises NotImplementedError"

    @property

    def refused(self) -> bool:
        """A missing or raising downgrade always stops a plan; a no-op one only where the team says so."""
        return self.kind != "noop"


def change_kind(plan: MigrationPlan, *, blocking_seconds: float) -> tuple[ChangeKind, tuple[str, ...]]:
    """Read-only: what kind of change the plan is, and why it is destructive when it is."""
    if plan.nothing_to_do:
        return ChangeKind.NOTHING, ()
    reasons = [
        f"drops {loss.kind.value} {loss.name} holding {loss.rows:,} row(s)" for loss in plan.data_loss if loss.rows
    ]
    if plan.rehearsal is not None:
        impact, _ = plan.rehearsal.impact()
        # A table whose rows are unknown (never analysed, too big to count) may hold some: it counts.
        rewrites = {row.table for row in impact if row.rewritten and row.size and row.size.estimated_rows != 0}
        reasons += [f"rewrites {table}, which holds rows" for table in sorted(rewrites)]
        # A predicted hold counts at its range's high end, an unknown one as over any limit.
        reasons += [
            f"blocks {row.blocks.value} of {row.table} for "
            + (
                f"an unknown time ({row.revision}), not measured on its rows"
                if row.worst_seconds == float("inf")
                else f"up to {row.worst_seconds:.2f} s ({row.revision}, {row.basis.value}), over {blocking_seconds:g} s"
            )
            for row in impact
            if row.blocks is not Blocks.NOTHING and row.worst_seconds > blocking_seconds
        ]
    return (ChangeKind.DESTRUCTIVE if reasons else ChangeKind.CHANGES), tuple(reasons)


def refuse_unless_applicable(plan: MigrationPlan, *, allow_lint: bool) -> None:
    """Read-only: refuse (before any prompt) a plan whose rehearsal failed, or with lint errors unless allowed."""
    if plan.rehearsal is not None and plan.rehearsal.failure is not None:
        failure = plan.rehearsal.failure
        if failure.revision is None:
            raise failed_before_the_first_revision(
                failure.at, failure.message, failure.statement, when="in the rehearsal, so nothing was applied"
            )
        raise StatementFailed(
            f"Revision {failure.revision} fails in the rehearsal, so nothing was applied. Fix it and run again.",
            sections=(Section("Database said", failure.message),),
        )
    if plan.lint.errors and not allow_lint:
        raise Refused(
            f"Lint found {len(plan.lint.errors)} error(s) (rules in lint_error_rules), so nothing was "
            "applied. Fix the revisions, or pass --allow-lint after reviewing them.",
            sections=(Section("Errors", "\n".join(f"{f.revision} {f.rule}: {f.message}" for f in plan.lint.errors)),),
        )


def failed_before_the_first_revision(
    at: FailedAt, said: str, statement: str | None, *, when: str
) -> HindsightMigrateError:
    """The error for a run that failed before Alembic started its first revision: creating the version table
    env.py names (a configuration error: its schema does not exist, say), or a statement of env.py's own.
    ``when``: where it happened and what that left, in words ("in the rehearsal, so nothing was applied")."""
    sections = [Section("Database said", said)]
    if statement:
        sections.append(Section("Statement", statement))
    if at is FailedAt.VERSION_TABLE:
        return VersionTableUnusable(
            f"Alembic could not create the version table env.py names, before the first revision ran ({when}). "
            "env.py chooses it (version_table and version_table_schema in context.configure()): create its schema "
            "first (in V1, or in env.py before run_migrations()), or name one that exists.",
            sections=tuple(sections),
        )
    return StatementFailed(
        f"A statement env.py runs before the first revision failed ({when}). It is env.py's own SQL, not a "
        "revision's: fix env.py and run again.",
        sections=tuple(sections),
    )


def downgrade_problem(info: RevisionInfo, project: AlembicProject) -> DowngradeProblem | None:
    """Why ``info``'s downgrade() does not revert its upgrade(): none, it raises, or it does nothing.

    An empty pair (a merge, the baseline) is fine. An empty downgrade() under a non-empty
    upgrade() (data backfills, flag updates) is a "noop": raw Alembic reverts it by doing
    nothing, and so does the tool, with a warning, unless refuse_noop_downgrades is set.
    """
    path = project.absolute(info.path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None  # Alembic loaded it, so it compiles; unreadable here means we cannot tell
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    downgrade, upgrade = functions.get("downgrade"), functions.get("upgrade")
    name = f"{info.revision} ({info.message})"
    if downgrade is None:
        return DowngradeProblem(info.revision, "missing", f"{name}: has no downgrade()")
    raised = _raises(downgrade)
    if raised is not None:
        return DowngradeProblem(info.revision, "raises", f"{name}: downgrade() raises {raised}")
    if _is_empty(downgrade) and upgrade is not None and not _is_empty(upgrade):
        return DowngradeProblem(
            info.revision, "noop", f"{name}: its downgrade does nothing: what its upgrade did stays"
        )
    return None


def _raises(function: ast.FunctionDef) -> str | None:
    """The exception a downgrade() raises unconditionally (a top-level raise), or NotImplementedError anywhere."""
    for node in ast.walk(function):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        raised_name = raised.id if isinstance(raised, ast.Name) else ast.unparse(raised)
        if raised_name == "NotImplementedError" or node in function.body:
            return raised_name
    return None


def _is_empty(function: ast.FunctionDef) -> bool:
    for statement in function.body:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring or `...`
        return False
    return True


def _why_not_rehearsed(measured: Rehearsal | None, asked: NoRehearsal, *, anything: bool) -> NoRehearsal | None:
    if measured is not None:
        return None
    return asked if anything else NoRehearsal.NOTHING_TO_RUN


def _data_loss(database: Database, rehearsal: Rehearsal) -> tuple[DataLoss, ...]:
    # The diff names renames as renames (the catalog keeps a renamed table's oid and a renamed
    # column's attnum): what is removed here is really gone.
    dropped_tables = [c.name for c in rehearsal.diff if c.kind == "table" and c.change is Change.REMOVED]
    dropped_columns = [c.name for c in rehearsal.diff if c.kind == "column" and c.change is Change.REMOVED]
    # Counted on the target: only tables it has (a rehearsal on another database may start elsewhere).
    dropped_tables = [table for table in dropped_tables if table in rehearsal.sizes]
    dropped_columns = [name for name in dropped_columns if name.rpartition(".")[0] in rehearsal.sizes]
    with database.read_only() as connection:
        # Diff names are schema.table[.column]; a schema name holds no dot in practice, a table name may.
        losses = [
            DataLoss(Dropped.TABLE, table, *catalog.count_rows(connection, *table.split(".", 1)))
            for table in dropped_tables
        ]
        for name in dropped_columns:
            table, _, column = name.rpartition(".")
            schema, _, table_name = table.partition(".")
            rows, exact = catalog.count_rows(connection, schema, table_name, non_null_column=column)
            losses.append(DataLoss(Dropped.COLUMN, name, rows, exact))
        connection.rollback()
    return tuple(losses)


def planned_revisions(
    project: AlembicProject, revisions: tuple[RevisionInfo, ...], *, start: tuple[str, ...], downgrade: bool
) -> tuple[PlannedRevision, ...]:
    """Each revision with its file's checksum and its offline SQL, rendered in one pass from ``start``; a revision
    that cannot render offline has ``sql`` None and ``sql_problem`` saying why."""
    try:
        sqls = project.env.offline_sql_path(revisions, start=start, downgrade=downgrade)
    except EnvIgnoresConnection:
        # env.py has no offline branch (it builds an engine whatever the mode, as most env.py files in the wild
        # do): no revision can render, and trying each alone would run env.py once per revision to learn that.
        return tuple(
            _planned_one(project, info, None, downgrade=downgrade, problem=NO_OFFLINE_BRANCH) for info in revisions
        )
    except Exception:  # one revision cannot render offline: render each alone to say which, and why
        sqls = {}
    return tuple(_planned_one(project, info, sqls.get(info.revision), downgrade=downgrade) for info in revisions)


# Why a revision's SQL could not be rendered, when env.py is the reason: said once, in words.
NO_OFFLINE_BRANCH = (
    "env.py has no offline branch (it builds an engine even under --sql), so Alembic cannot render SQL without a "
    "database"
)


def _planned_one(
    project: AlembicProject, info: RevisionInfo, sql: str | None, *, downgrade: bool, problem: str | None = None
) -> PlannedRevision:
    # Read once: its checksum, and whether it reads the database from Python.
    source = (project.settings.project_dir / info.path).read_text(encoding="utf-8")
    file_sha = sha256_of_text(source)
    runs_python = _reads_the_database(source, downgrade=downgrade)
    if sql is None and problem is None:
        try:
            sql = project.env.offline_sql(info, downgrade=downgrade)
        except EnvIgnoresConnection:
            problem = NO_OFFLINE_BRANCH
        except Exception as err:  # a revision that reads data through get_bind() cannot render offline
            said = err.message if isinstance(err, HindsightMigrateError) else f"{type(err).__name__}: {err}"
            problem = (
                "it reads the database from Python (get_bind()), which SQL rendered without a database cannot "
                f"do: {said}"
                if runs_python
                else said
            )
    return PlannedRevision(
        info=info,
        file_sha256=file_sha,
        sql=sql,
        sql_problem=problem,
        runs_python=runs_python,
        code_fingerprint=code_fingerprint(source),
    )


# What a revision calls to talk to the database from Python rather than through op's DDL:
# offline, these render nothing (or the wrong thing), so the SQL shown is not all that runs.
_READS_THE_DATABASE = frozenset({"get_bind", "get_context", "Session", "sessionmaker"})


def _reads_the_database(source: str, *, downgrade: bool) -> bool:
    """Whether upgrade() (or downgrade()) calls get_bind() and the like; False when it cannot be parsed."""
    # Most revisions name none of these: no need to parse them (a thousand parses cost 0.2 s).
    if not any(name in source for name in _READS_THE_DATABASE):
        return False
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    wanted = "downgrade" if downgrade else "upgrade"
    function = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == wanted), None)
    if function is None:
        return False
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if called in _READS_THE_DATABASE:
                return True
    return False


def _heads_after(
    project: AlembicProject, start: tuple[str, ...], revisions: tuple[RevisionInfo, ...], *, downgrade: bool
) -> tuple[str, ...]:
    heads = set(start)
    for info in revisions:
        if downgrade:
            heads.discard(info.revision)
            heads.update(info.parents)
        else:
            heads.difference_update(info.parents)
            heads.add(info.revision)
    # A parent that another remaining head stands on is not a head of its own (as in Alembic's version table).
    covered = {ancestor for head in heads for ancestor in project.graph.ancestors((head,)) if ancestor != head}
    return tuple(sorted(heads - covered))


def _fingerprint(
    direction: Direction,
    bootstrap: BootstrapPlan | None,
    planned: tuple[PlannedRevision, ...],
    drops_baseline: bool = False,
) -> str:
    digest = hashlib.sha256(f"{direction.value}:{drops_baseline}\n".encode())
    if bootstrap is not None:
        digest.update(f"bootstrap:{bootstrap.sql.sha256}:{bootstrap.baseline.revision}\n".encode())
    for item in planned:
        digest.update(f"{item.info.revision}:{item.file_sha256}\n".encode())
        digest.update((item.sql or "").encode())
    return digest.hexdigest()
