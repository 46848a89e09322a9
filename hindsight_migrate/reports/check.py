"""``check``: everything CI should refuse, in one list.

The models differ from the schema at head (autogenerate would write something); the chain
has more than one head; a revision cannot be reverted; a revision's code was edited after it
was applied (a reformat is not); lint errors in revisions not applied yet. What autogenerate
compared (types, server defaults) is said, and a server default it could not compare is a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.alembic_api.models import unregistered_models
from hindsight_migrate.authoring.autogen import DowngradeCheck, DowngradeTrace, database_at_head
from hindsight_migrate.errors import BadArgument, BuildAtHeadFailed, ExitCode, NoTargetMetadata, ProjectCodeFailed
from hindsight_migrate.postgres import audit
from hindsight_migrate.postgres.database import Database
from hindsight_migrate.reports.ranges import upgrade_range
from hindsight_migrate.reports.status import read_status
from hindsight_migrate.review.lint import LintResult, lint_sql
from hindsight_migrate.review.plan import DowngradeProblem, downgrade_problem, planned_revisions
from hindsight_migrate.revisions import Comparison, Operation

CheckKind = Literal[
    "models",
    "heads",
    "irreversible",
    "noop-downgrade",
    "edited",
    "lint",
    "v1",
    "diverged",
    "upgrade",
    "downgrade",
    "unregistered",
]


@dataclass(frozen=True)
class CheckItem:
    """One thing a problem is about: its line in the text view, and the same facts as fields for scripts.

    A field is None where it does not apply (a head has a revision, no table; a lint error has
    a revision, a rule and a line).
    """

    text: str  # the detail line the text view shows
    revision: str | None = None
    table: str | None = None
    column: str | None = None  # a column the models add, drop or alter
    name: str | None = None  # an index or constraint the models add or drop
    operation: str | None = None  # models: what autogenerate would write (add_column, drop_index, ...)
    path: str | None = None  # the revision file, relative to the project folder
    rule: str | None = None  # lint: Squawk's rule
    line: int | None = None  # lint: the line in the revision's SQL
    reason: str | None = None  # downgrades: missing, raises, noop; diverged: unknown, missing


@dataclass(frozen=True)
class CheckProblem:
    kind: CheckKind
    message: str
    details: tuple[str, ...] = ()  # the items' text, one line each
    items: tuple[CheckItem, ...] = ()  # the same, as fields

    @classmethod
    def of(cls, kind: CheckKind, message: str, items: tuple[CheckItem, ...]) -> CheckProblem:
        return cls(kind, message, tuple(item.text for item in items), items)


@dataclass(frozen=True)
class CheckReport:
    database: str
    problems: tuple[CheckProblem, ...]
    checked: tuple[str, ...]  # what was looked at, for the reader
    warnings: tuple[CheckProblem, ...] = ()  # reported, but check still passes
    # Where the target stands, and so what check compared: the models are compared with a scratch database built
    # at head (or the target itself with --against-target), whatever the target's revision; lint reads what the
    # target has not applied. Words, e.g. "2 revisions behind head (at r1; pending r2, r3)".
    target: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def run_checks(project: AlembicProject, database: Database, *, against_target: bool = False) -> CheckReport:
    """Reads the target; builds (and drops) a scratch database at head for the models check.

    ``against_target``: compare the models with the target itself (which must be at head),
    for chains whose oldest revisions cannot run on an empty database.
    """
    problems: list[CheckProblem] = []
    warnings: list[CheckProblem] = []  # worth knowing, not failing CI for
    heads = project.graph.heads()
    if len(heads) > 1:
        problems.append(
            CheckProblem.of(
                "heads",
                f"The chain has {len(heads)} heads: {', '.join(heads)}. Join them with "
                'hindsight-migrate merge -m "merge ..."',
                tuple(CheckItem(head, revision=head) for head in heads),
            )
        )
    baseline = project.settings.baseline and project.graph.resolve(project.settings.baseline).revision
    revisions = project.graph.revisions()
    paths = {info.revision: str(info.path) for info in revisions}  # as the text view names files
    downgrades = [
        problem
        for info in revisions
        if info.revision != baseline and (problem := downgrade_problem(info, project))
    ]
    refuse_noop = project.settings.tool.refuse_noop_downgrades
    irreversible = tuple(_downgrade_item(p, paths) for p in downgrades if p.refused or refuse_noop)
    if irreversible:
        problems.append(CheckProblem.of("irreversible", "Revisions without a working downgrade:", irreversible))
    noop = tuple(_downgrade_item(p, paths) for p in downgrades if not (p.refused or refuse_noop))
    if noop:
        warnings.append(
            CheckProblem.of(
                "noop-downgrade",
                "Revisions whose downgrade does nothing (reverted with a warning; set refuse_noop_downgrades = "
                "true in [hindsight-migrate] to fail on them):",
                noop,
            )
        )

    status = read_status(project, database)
    # What could not be checked, for want of the tool's records (this role may not read them, or they are
    # not the tool's): a warning that says why, not a pass that claims it was checked.
    # V1 is the project's bootstrap file: a project without bootstrap_sql has none, and hears nothing of it.
    bootstraps = project.settings.bootstrap_sql is not None
    unchecked: tuple[tuple[CheckKind, str, str], ...] = (
        ("edited", audit.APPLIED_REVISIONS, "Applied files were not checked against their checksums"),
        *((("v1", audit.BOOTSTRAP_LOG, "V1 was not checked against its bootstrap record"),) if bootstraps else ()),
    )
    for kind, table, words in unchecked:
        why = status.unread(table)
        if why is not None:
            warnings.append(CheckProblem(kind, f"{words}: {why}"))
    if status.edited:
        problems.append(
            CheckProblem.of(
                "edited",
                "Revision files edited after they were applied (write a new revision instead):",
                tuple(CheckItem(f"{e.revision} {e.path}", revision=e.revision, path=e.path) for e in status.edited),
            )
        )
    if status.v1_drift:
        problems.append(CheckProblem("v1", status.v1_drift))
    if status.unknown or status.missing:
        problems.append(
            CheckProblem.of(
                "diverged",
                "Applied revisions that no file has (deleted, or another branch's database):",
                (
                    *(CheckItem(revision, revision=revision, reason="unknown") for revision in status.unknown),
                    *(CheckItem(revision, revision=revision, reason="missing") for revision in status.missing),
                ),
            )
        )
    not_linted: tuple[tuple[str, str], ...] = ()
    if status.pending and not status.unknown:
        pending = project.graph.upgrade_path(status.current, "heads")
        # Rendered as `up` renders its plan: a revision that cannot render offline (an env.py without an offline
        # branch, a revision that reads the database through get_bind()) is not linted, and said so; the project
        # is not blamed for what its own commands never do.
        planned = planned_revisions(project, pending, start=status.current, downgrade=False)
        lint = lint_sql(
            {item.info.revision: item.sql or "" for item in planned},
            project.settings.tool,
            version_table=project.env.version_table,
        )
        not_linted = (
            *((item.info.revision, item.sql_problem or "no SQL") for item in planned if item.sql is None),
            *((item.revision, item.reason) for item in lint.not_linted),
        )
        if not_linted:
            warnings.append(
                CheckProblem.of(
                    "lint",
                    f"Not linted ({len(not_linted)} of {len(planned)} pending revisions): their SQL could not be "
                    "rendered without a database, or Squawk could not read it. The other checks ran.",
                    _not_linted_items(not_linted, paths),
                )
            )
        if lint.errors:
            problems.append(
                CheckProblem.of(
                    "lint",
                    "Lint errors in revisions not applied yet:",
                    tuple(
                        CheckItem(
                            f"{f.where} {f.rule}: {f.message}",
                            revision=f.revision,
                            path=paths.get(f.revision),
                            rule=f.rule,
                            line=f.line,
                        )
                        for f in lint.errors
                    ),
                )
            )
    # No revision yet is one head too (pytest-alembic's test_model_definitions_match_ddl): the models are compared
    # with an empty database, where every table they define is missing.
    models_checked = len(heads) <= 1
    models_skipped = "several heads"
    comparison: Comparison | None = None
    operations: tuple[Operation, ...] = ()
    # pytest-alembic's test_up_down_consistency and downgrade-leaves-no-trace, on the scratch database the models
    # are compared with (a revision whose downgrade raises or does nothing is reported above already).
    downgrade_check = (
        None if against_target else DowngradeCheck(skip=frozenset(p.revision for p in downgrades))
    )
    if models_checked:
        try:
            operations, comparison = _models_against_head(project, database, against_target, downgrade_check)
        except NoTargetMetadata:
            models_checked, models_skipped = False, "env.py sets no target_metadata"
        except BuildAtHeadFailed as failed:
            # pytest-alembic's test_upgrade: the chain must build from an empty database.
            models_checked, models_skipped = False, "the chain does not upgrade from an empty database"
            problems.append(
                CheckProblem.of(
                    "upgrade",
                    "A revision fails when the chain is built from an empty database up to head (a scratch "
                    "database); fix it, or compare with a database at head: check --against-target.",
                    (
                        CheckItem(
                            f"{failed.revision}: {failed.said}",
                            revision=failed.revision,
                            path=paths.get(failed.revision),
                            reason=failed.said,
                        ),
                    ),
                )
            )
        if comparison is not None and comparison.uncompared_defaults:
            # Not compared is not the same: said, for a person to look at, never counted as a pass in silence.
            warnings.append(
                CheckProblem.of(
                    "models",
                    "Server defaults PostgreSQL could not compare (the models' default could not be stored as the "
                    "database would store it): look at them by hand.",
                    tuple(
                        CheckItem(
                            f"{d.table}.{d.column}: database {d.database or 'none'}, models {d.models}: {d.why}",
                            table=d.table,
                            column=d.column,
                            operation="alter_column",
                        )
                        for d in comparison.uncompared_defaults
                    ),
                )
            )
        if operations:
            problems.append(
                CheckProblem.of(
                    "models",
                    "The models differ from the schema at head: autogenerate would write these (run "
                    'hindsight-migrate new "..." and review it):',
                    tuple(_operation_item(op) for op in operations),
                )
            )
    seen = project.authoring.models_seen if models_checked else None
    unregistered: dict[str, str] = {}
    if seen is not None:
        try:
            unregistered = unregistered_models(seen)
        except ProjectCodeFailed as failed:
            # A module of the models' package that cannot be imported alone: said, the rest of check stands.
            warnings.append(CheckProblem("unregistered", f"Not checked that every model is registered: {failed}"))
            seen = None
    if unregistered:
        problems.append(
            CheckProblem.of(
                "unregistered",
                f"Models in {seen.package if seen else 'the models package'} that env.py's target_metadata does not "
                "see (nothing imports their module when env.py runs), so autogenerate never compares them: import "
                "them where target_metadata is built.",
                tuple(
                    CheckItem(f"{table} ({module})", table=table, path=module, reason="not on target_metadata")
                    for table, module in unregistered.items()
                ),
            )
        )
    if downgrade_check is not None and downgrade_check.traces:
        problems.append(
            CheckProblem.of(
                "downgrade",
                "Downgrades that do not undo their upgrade (each revision was applied, reverted and compared with "
                "the schema before it, on the scratch database):",
                tuple(_trace_item(trace, paths) for trace in downgrade_check.traces),
            )
        )
    checked = (
        "heads",
        "downgrades",
        "applied files against their checksums (comments, docstrings and layout do not count"
        + (f"; {len(status.reformatted)} reformatted, the same code)" if status.reformatted else ")")
        if status.unread(audit.APPLIED_REVISIONS) is None
        else "applied files (skipped: the checksums cannot be read)",
        *(
            (
                "V1 against its bootstrap record"
                if status.unread(audit.BOOTSTRAP_LOG) is None
                else "V1 (skipped: the bootstrap record cannot be read)",
            )
            if bootstraps
            else ()
        ),
        "lint of pending revisions" + (f" ({len(not_linted)} not linted)" if not_linted else ""),
        *(
            (
                f"downgrades undo their upgrades ({downgrade_check.checked} "
                f"{'revision' if downgrade_check.checked == 1 else 'revisions'} applied, reverted and applied again "
                "on the scratch database)",
            )
            if downgrade_check is not None and downgrade_check.checked
            else ()
        ),
        *(
            (f"every model module of {seen.package} imported: all on target_metadata",)
            if seen is not None and seen.package is not None and not unregistered
            else ()
        ),
        ("models against the target" if against_target else "models against a scratch database at head")
        + (f" ({comparison.words()})" if comparison is not None else "")
        if models_checked
        else f"models (skipped: {models_skipped})",
    )
    return CheckReport(
        database=database.masked_url,
        problems=tuple(problems),
        checked=checked,
        warnings=tuple(warnings),
        target=_target_words(status.current, status.pending, against_target),
    )


def _target_words(current: tuple[str, ...], pending: tuple[str, ...], against_target: bool) -> str:
    """Where the target stands, and what that means for what was compared."""
    at = ", ".join(current)
    compared = (
        "the models were compared with it"
        if against_target
        else "the models were compared with a scratch database built at head, not with it"
    )
    if not pending:
        return f"at head ({at or 'no revision: the chain is empty'}); {compared}"
    behind = f"{len(pending)} {'revision' if len(pending) == 1 else 'revisions'} behind head"
    where = f"at {at}" if current else "no revision applied"
    return f"{behind} ({where}), which `up` would apply and lint read; {compared}"


def _downgrade_item(problem: DowngradeProblem, paths: dict[str, str]) -> CheckItem:
    return CheckItem(problem.words, revision=problem.revision, path=paths.get(problem.revision), reason=problem.kind)


def _operation_item(op: Operation) -> CheckItem:
    """What autogenerate would write, with the table and the column (or index, constraint) it is about."""
    on_column = op.kind.endswith("_column")
    on_table = op.kind.endswith("_table")
    default = f" (server default {op.server_default})" if op.server_default is not None else ""
    return CheckItem(
        f"{op.kind.replace('_', ' ')} {op.table} {op.name}".strip() + default,
        table=op.table or None,
        column=op.name if on_column else None,
        name=(op.name or None) if not (on_column or on_table) else None,
        operation=op.kind,
    )


def _trace_item(trace: DowngradeTrace, paths: dict[str, str]) -> CheckItem:
    words = f"downgrade fails: {trace.failed}" if trace.failed else "leaves " + "; ".join(trace.left)
    return CheckItem(
        f"{trace.revision}: {words}", revision=trace.revision, path=paths.get(trace.revision), reason=words
    )


def _not_linted_items(not_linted: tuple[tuple[str, str], ...], paths: dict[str, str]) -> tuple[CheckItem, ...]:
    """One item per revision; a reason many share (env.py without an offline branch: every one) is one line."""
    by_reason: dict[str, list[str]] = {}
    for revision, why in not_linted:
        by_reason.setdefault(why, []).append(revision)
    items: list[CheckItem] = []
    for why, revisions in by_reason.items():
        if len(revisions) > 3:
            named = f"{', '.join(revisions[:3])} and {len(revisions) - 3} more"
            items.append(CheckItem(f"{named}: {why}", reason=why))
        else:
            items += [CheckItem(f"{r}: {why}", revision=r, path=paths.get(r), reason=why) for r in revisions]
    return tuple(items)


def _models_against_head(
    project: AlembicProject, database: Database, against_target: bool, downgrades: DowngradeCheck | None
) -> tuple[tuple[Operation, ...], Comparison]:
    """What autogenerate would write: the models compared with a database at head (nothing is written), and
    what was compared; ``downgrades`` collects what each revision's downgrade leaves, while the scratch
    database is built."""
    with database_at_head(project, database, against_target=against_target, downgrades=downgrades) as (conn, _):
        operations, _, comparison = project.authoring.autogenerate(conn, "check", write=lambda ops: False)
        conn.rollback()
    return operations, comparison


@dataclass(frozen=True)
class LintReport:
    range: str
    revisions: tuple[str, ...]  # in the order they run
    result: LintResult

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.CHECK_FAILED if self.result.errors else ExitCode.OK


def lint_range(project: AlembicProject, database: Database | None, revision_range: str | None) -> LintReport:
    """Reads files (and the version table, for the default range): Squawk over a range's upgrade SQL.

    ``revision_range``: None for what the database has not applied; ``all``; or ``FROM:TO``
    as for ``up --sql`` (``base:heads`` is everything).
    """
    if revision_range is None:
        if database is None:
            raise BadArgument("Without a database, name the range: FROM:TO, or all.")
        with database.read_only() as connection:
            current = project.env.current_heads(connection)
            connection.rollback()
        start, end, words = current, "heads", "not yet applied"
    else:
        words = revision_range
        spec = "base:heads" if revision_range == "all" else revision_range
        if ":" not in spec:
            raise BadArgument(f"{revision_range!r} is not a range: write FROM:TO (e.g. base:heads) or all.")
        wanted = upgrade_range(project, spec, start_when_missing=None)
        start, end = wanted.start, wanted.end
    revisions = project.graph.upgrade_path(start, end)
    result = lint_sql(
        project.env.offline_sql_path(revisions, start=start),
        project.settings.tool,
        version_table=project.env.version_table,
    )
    return LintReport(range=words, revisions=tuple(info.revision for info in revisions), result=result)
