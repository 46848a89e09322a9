"""``new``: autogenerate a revision with guardrails.

By default the models are compared with a scratch database built at head from nothing
(bootstrap, then every revision), so what is written depends only on the code, never on
leftovers in someone's local database. The detected operations are reviewed before the file
is written (drops, narrowings, NOT NULL without a default, probable renames), an empty
revision is refused unless asked for, and the new file's SQL is linted.

What a danger puts at risk is counted on the configured (target) database, read-only, and
written into the revision file as a ``# DANGER:`` comment above the operation, so whoever
opens the file sees it where the edit has to happen.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.authoring.findings import DANGER, ReviewFinding, review_operations
from hindsight_migrate.errors import (
    BadArgument,
    BuildAtHeadFailed,
    ConnectionFailed,
    HindsightMigrateError,
    NoTargetMetadata,
    Refused,
    Section,
)
from hindsight_migrate.postgres import catalog
from hindsight_migrate.postgres.containment import Containment, Mode, MustRollBack
from hindsight_migrate.postgres.database import Database, server_said
from hindsight_migrate.postgres.scratch import scratch_database
from hindsight_migrate.review.bootstrap import BootstrapPlan, plan_bootstrap, rehearse_bootstrap
from hindsight_migrate.review.lint import LintFinding, LintResult, lint_sql
from hindsight_migrate.review.plan import failed_before_the_first_revision
from hindsight_migrate.review.rehearsal.strategies import failure_of
from hindsight_migrate.revisions import Comparison, Operation
from hindsight_migrate.schema import diff_schemas

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


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
    counted_on: str | None = None  # the target the findings' rows were counted on (masked URL)
    not_counted: str | None = None  # why the rows could not be counted on the target, when they could not
    danger_comments: int = 0  # `# DANGER:` comments written into the revision file
    strict: bool = False  # --strict: dangers or lint errors left in the file fail the command (exit 13)
    # What was compared besides tables, columns, indexes and keys (types, server defaults), and what could not be;
    # None when nothing was compared (no models).
    comparison: Comparison | None = None

    @property
    def dangers(self) -> tuple[ReviewFinding, ...]:
        return tuple(f for f in self.findings if f.level is DANGER)

    @property
    def lint_errors(self) -> tuple[LintFinding, ...]:
        return self.lint.errors if self.lint is not None else ()

    @property
    def strict_failed(self) -> bool:
        """--strict and something to fix is left: the file is written all the same, to be edited."""
        return self.strict and bool(self.dangers or self.lint_errors)


def new_revision(
    project: AlembicProject,
    database: Database,
    message: str,
    *,
    against_target: bool,
    allow_empty: bool,
    strict: bool = False,
) -> NewRevision:
    """Writes a revision file; reads the target only (``--against-target``) or a scratch database.

    The rows each danger puts at risk are counted on the target (``database``) read-only,
    whichever database the models were compared with.
    """
    message = " ".join(message.split())
    if not message:
        raise BadArgument('A revision needs a message that says what it does, e.g. hindsight-migrate new "add users".')
    try:
        with (
            database_at_head(project, database, against_target) as (connection, compared_with),
        ):
            operations, path, comparison = project.authoring.autogenerate(
                connection, _docstring_safe(message), write=lambda ops: bool(ops) or allow_empty
            )
            connection.rollback()
    except NoTargetMetadata:
        if not allow_empty:
            raise
        # No models (target_metadata = None, as alembic init writes it): a hand-written revision
        # needs none, as `alembic revision -m` needs none.
        operations, path, compared_with = (), project.authoring.empty_revision(_docstring_safe(message)), None
        comparison = None
    findings = review_operations(operations)
    if path is None:
        unsaid = comparison.not_compared() if comparison is not None else ()
        raise Refused(
            f"Autogenerate found no difference between the models and {compared_with}, so no revision was "
            "written. For a hand-written data migration, pass --empty."
            + (" Not compared: " + "; ".join(unsaid) + "." if unsaid else ""),
        )
    findings, not_counted = count_affected_rows(database, findings)
    full_path = path if path.is_absolute() else project.settings.project_dir / path
    danger_comments = write_danger_comments(full_path, findings)
    revision = _revision_in(project, path)
    sql = project.env.offline_sql(project.graph.resolve(revision)) if revision else None
    lint = (
        lint_sql({revision: sql}, project.settings.tool, version_table=project.env.version_table)
        if revision and sql is not None
        else None
    )
    return NewRevision(
        message=message,
        compared_with=compared_with,
        operations=operations,
        findings=findings,
        path=path,
        revision=revision,
        sql=sql,
        lint=lint,
        counted_on=database.masked_url if not_counted is None and any(f.counted for f in findings) else None,
        not_counted=not_counted,
        danger_comments=danger_comments,
        strict=strict,
        comparison=comparison,
    )

# Alembic writes the message into the template as it is: stock templates open the module
# docstring with `"""${message}`, so a message holding `"""` ends the docstring early, and a
# backslash starts an escape (`\N`, `\x`, `\u` that do not parse are a SyntaxError; a trailing
# one swallows the newline). Escaped, the file compiles and its docstring (which Alembic reads
# back as the revision's message) is the message itself. The file name's slug is built from
# the word characters only, so it is the same either way.
_ENDS_A_STRING = re.compile(r"\"{3,}|'{3,}|[\"']+$")


def _docstring_safe(message: str) -> str:
    escaped = message.replace("\\", "\\\\")
    return _ENDS_A_STRING.sub(lambda quotes: "".join("\\" + q for q in quotes.group()), escaped)


def count_affected_rows(
    database: Database, findings: tuple[ReviewFinding, ...]
) -> tuple[tuple[ReviewFinding, ...], str | None]:
    """Read-only: the rows each finding puts at risk, counted on the target; the transaction is rolled back.

    Returns the findings with their counts, and why nothing could be counted (None when it could).
    A table or column the target does not have is counted as holding nothing (``rows=None``).
    """
    wanted = [f for f in findings if f.affects is not None]
    if not wanted:
        return findings, None
    counts: dict[int, tuple[int | None, bool]] = {}
    try:
        with database.read_only() as connection:
            for finding in wanted:
                counts[id(finding)] = _count_one(connection, finding)
            connection.rollback()
    except ConnectionFailed as err:
        return findings, err.message
    except DBAPIError as err:
        return findings, f"the target could not be read: {server_said(err)}"
    return tuple(
        replace(f, counted=True, rows=counts[id(f)][0], rows_exact=counts[id(f)][1]) if id(f) in counts else f
        for f in findings
    ), None


def _count_one(connection: Connection, finding: ReviewFinding) -> tuple[int | None, bool]:
    """(rows, exact); (None, True) when the target has no such table or column."""
    op = finding.operation
    # Operations carry no schema: autogenerate's tables are in the default one (search_path's first).
    schema = connection.dialect.default_schema_name or "public"
    column = op.name if finding.affects == "column_values" else None
    if not catalog.table_exists(connection, schema, op.table):
        return None, True
    if column is not None and not catalog.column_exists(connection, schema, op.table, column):
        return None, True
    return catalog.count_rows(connection, schema, op.table, non_null_column=column)


# -- `# DANGER:` comments in the written file ------------------------------------------

_MARKED_CALLS = frozenset({"drop_table", "drop_column", "alter_column", "add_column"})


def write_danger_comments(path: Path, findings: tuple[ReviewFinding, ...]) -> int:
    """Writes the revision file: a ``# DANGER:`` comment above each upgrade() call a danger is about.

    Returns how many ``# DANGER:`` comments were written (an ``#   instead:`` line under one is not another
    danger: counted, a rename read as four dangers where three were written and shown). The file is left as
    Alembic wrote it when it cannot be read as Python, when no call is found, or when the commented text would
    not compile.
    """
    dangers = [f for f in findings if f.level is DANGER]
    if not dangers:
        return 0
    try:
        text = path.read_bytes().decode("utf-8")
        calls = _upgrade_calls(ast.parse(text))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return 0
    comments: dict[int, list[str]] = {}
    for finding in dangers:
        op = finding.operation
        for line in calls.get((op.kind, op.table, op.name), ()):
            count = finding.rows_on_target
            said = f"# DANGER: {finding.message}" + (f" ({count})" if count else "")
            comments.setdefault(line, []).append(_one_line(said))
            if finding.instead:
                comments[line].append(_one_line(f"#   instead: {finding.instead}"))
    if not comments:
        return 0
    lines = text.splitlines(keepends=True)
    for line in sorted(comments, reverse=True):
        statement = lines[line - 1]
        indent = statement[: len(statement) - len(statement.lstrip(" \t"))]
        newline = statement[len(statement.rstrip("\r\n")) :] or "\n"
        lines[line - 1 : line - 1] = [f"{indent}{comment}{newline}" for comment in comments[line]]
    commented = "".join(lines)
    try:
        compile(commented, str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return 0
    path.write_bytes(commented.encode("utf-8"))
    return sum(comment.startswith("# DANGER:") for written in comments.values() for comment in written)


def _one_line(comment: str) -> str:
    # A table or column name may hold a line break; a comment must stay one line.
    return " ".join(comment.replace("\x00", "").split())


def _upgrade_calls(tree: ast.Module) -> dict[tuple[str, str, str], list[int]]:
    """(operation, table, name) -> first lines of the statements in upgrade() that call it."""
    found: dict[tuple[str, str, str], list[int]] = {}
    upgrade = next(
        (n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "upgrade"),
        None,
    )

    def visit(statements: list[ast.stmt], batch_table: str | None) -> None:
        for statement in statements:
            if isinstance(statement, (ast.With, ast.AsyncWith)):
                visit(statement.body, _batch_table(statement) or batch_table)
                continue
            for part in ("body", "orelse", "finalbody"):
                visit(getattr(statement, part, []), batch_table)
            for handler in getattr(statement, "handlers", []):
                visit(handler.body, batch_table)
            if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
                key = _call_key(statement.value, batch_table)
                if key is not None:
                    found.setdefault(key, []).append(statement.lineno)

    if upgrade is not None:
        visit(upgrade.body, None)
    return found


def _batch_table(statement: ast.With | ast.AsyncWith) -> str | None:
    """The table of `with op.batch_alter_table("t") as batch_op:` (render_as_batch projects)."""
    for item in statement.items:
        call = item.context_expr
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "batch_alter_table"
        ):
            return _string(call.args[0] if call.args else _keyword(call, "table_name"))
    return None


def _call_key(call: ast.Call, batch_table: str | None) -> tuple[str, str, str] | None:
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr not in _MARKED_CALLS:
        return None
    args: list[ast.expr | None] = list(call.args)
    on_op = isinstance(func.value, ast.Name) and func.value.id == "op"
    if on_op or batch_table is None:
        table = _string(args.pop(0) if args else _keyword(call, "table_name"))
    else:
        table = batch_table  # batch_op.drop_column("c"): the table is the batch's
    if table is None:
        return None
    if func.attr == "drop_table":
        return func.attr, table, table
    if func.attr == "add_column":
        column = args[0] if args else _keyword(call, "column")
        if not (isinstance(column, ast.Call) and column.args):
            return None
        name = _string(column.args[0])
    else:
        name = _string(args[0] if args else _keyword(call, "column_name"))
    return (func.attr, table, name) if name is not None else None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _string(node: Any) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


@contextmanager
def database_at_head(
    project: AlembicProject,
    database: Database,
    against_target: bool,
    *,
    downgrades: DowngradeCheck | None = None,
) -> Iterator[tuple[Connection, str]]:
    """A connection to a database at head, and words for it: the target itself (``against_target``, which
    must be at head), or a scratch database built at head from nothing, dropped afterwards.

    ``downgrades``: while the scratch database is built, each revision is also reverted and applied again, and
    what its downgrade leaves (or its failure) is collected there.
    """
    if against_target:
        with database.connect() as connection:
            current = project.env.current_heads(connection)
            connection.rollback()
            heads = project.graph.heads()
            if set(current) != set(heads):
                raise Refused(
                    f"--against-target compares the models with {database.masked_url}, which must be at head: it is "
                    f"at {', '.join(current) or 'no revision'}, head is {', '.join(heads)}. Run hindsight-migrate up "
                    "first, or leave out --against-target to compare with a scratch database built at head.",
                )
            yield connection, database.masked_url
        return
    with scratch_database(database) as scratch, scratch.connect() as connection:
        containment = Containment(Mode.COMMITTING)
        with containment.armed(connection):
            # Built as a rehearsal runs: what reaches past the scratch database (a role a revision creates)
            # is never committed; the build then ends in a transaction that is rolled back after the comparison.
            _build_at_head(project, scratch, connection, containment, downgrades)
            yield connection, "a scratch database built at head from nothing"
        if connection.in_transaction():
            connection.rollback()


def _build_at_head(
    project: AlembicProject,
    scratch: Database,
    connection: Connection,
    containment: Containment,
    downgrades: DowngradeCheck | None = None,
) -> None:
    """Writes (to the scratch database, or in a transaction left open): V1 and the baseline stamp if configured,
    then every revision."""
    settings = project.settings
    bootstrap = None
    if settings.bootstrap_sql is not None and settings.baseline:
        bootstrap = plan_bootstrap(project, scratch, sql_path=settings.bootstrap_sql, baseline=settings.baseline)
    shared_before = catalog.server_objects(connection)
    connection.rollback()
    running: list[str] = []
    try:
        try:
            _build_steps(project, connection, bootstrap, running, downgrades)
        except MustRollBack:
            # A revision reaches past the database (it creates a role): the build goes on from there in one
            # transaction, which is rolled back once the models were compared.
            containment.abandon_transaction(connection)
            connection.begin()
            containment.roll_back_from_here()
            _build_steps(project, connection, bootstrap, running)
            containment.verify_inside()
    except DBAPIError as err:
        if not running:  # Alembic creating the version table env.py names, or env.py's own SQL
            failure = failure_of([], server_said(err), err, project.env.version_table.name)
            raise failed_before_the_first_revision(
                failure.at, failure.message, failure.statement, when="building a scratch database at head from nothing"
            ) from err
        raise BuildAtHeadFailed(
            f"Building a scratch database at head from nothing failed at revision "
            f"{running[-1] if running else '?'}, so the models could not be compared. Chains whose schema was "
            "made by metadata.create_all() and then stamped cannot start from an empty database; compare "
            "with a database that is at head instead: `hindsight-migrate new --against-target` or "
            "`hindsight-migrate check --against-target` (with --url naming it). Otherwise fix that revision "
            "(hindsight-migrate up --dry-run shows it).",
            revision=running[-1],
            said=server_said(err),
            sections=(Section("Database said", server_said(err)),),
        ) from err
    if containment.ran_outside_transactions:
        changes = catalog.server_object_changes(
            shared_before, catalog.server_objects(connection), new_databases=False
        )
        if changes:
            raise Refused(
                "Objects the whole server shares changed while the scratch database was built at head, and building "
                "it must change nothing outside it: " + "; ".join(changes) + ". If a revision did this (dynamic SQL "
                "inside autocommit_block(), which commits at once), the change is committed: undo it by hand. If "
                "another session did, run again.",
            )


def _build_steps(
    project: AlembicProject,
    connection: Connection,
    bootstrap: BootstrapPlan | None,
    running: list[str],
    downgrades: DowngradeCheck | None = None,
) -> None:
    """V1 (when there is one and the database has none yet), then the revisions from where the database is."""
    rolled_back = connection.in_transaction()  # the rolled-back mode runs everything in the caller's transaction
    start = project.env.current_heads(connection)
    if not rolled_back:
        connection.rollback()
    if bootstrap is not None and not start:
        if rolled_back:
            rehearse_bootstrap(bootstrap, project, connection)
        else:
            with connection.begin():
                rehearse_bootstrap(bootstrap, project, connection)
        start = (bootstrap.baseline.revision,)
    revisions = [info.revision for info in project.graph.upgrade_path(start, "heads")]
    if downgrades is None or rolled_back:
        project.env.run_revisions(connection, revisions, downgrade=False, before_each=running.append)
    else:
        for revision in revisions:
            _up_down_up(project, connection, revision, running, downgrades)
    if not rolled_back and connection.in_transaction():
        connection.commit()


@dataclass
class DowngradeCheck:
    """pytest-alembic's up/down consistency, while the scratch database is built at head: each revision applied,
    reverted, the schema compared with the one before it, then applied again. ``skip``: revisions whose
    downgrade is known not to work (reported as such already)."""

    skip: frozenset[str] = frozenset()
    traces: list[DowngradeTrace] = field(default_factory=list)
    checked: int = 0


@dataclass(frozen=True)
class DowngradeTrace:
    revision: str
    left: tuple[str, ...]  # what the downgrade left different from the schema before the upgrade
    failed: str | None = None  # why the downgrade failed (then nothing was compared)


def _up_down_up(
    project: AlembicProject, connection: Connection, revision: str, running: list[str], check: DowngradeCheck
) -> None:
    version_table = project.env.version_table.name
    before = catalog.schema_snapshot(connection, version_table=version_table)
    connection.rollback()
    project.env.run_revisions(connection, [revision], downgrade=False, before_each=running.append)
    if revision in check.skip:
        return
    check.checked += 1
    try:
        project.env.run_revisions(connection, [revision], downgrade=True)
    except (DBAPIError, HindsightMigrateError) as err:
        if connection.in_transaction():
            connection.rollback()  # its transaction is gone: the revision is still applied
        said = server_said(err) if isinstance(err, DBAPIError) else err.message
        check.traces.append(DowngradeTrace(revision, (), said))
        return
    after = catalog.schema_snapshot(connection, version_table=version_table)
    connection.rollback()
    left = tuple(f"{c.change.value} {c.kind} {c.name}" for c in diff_schemas(before, after))
    if left:
        check.traces.append(DowngradeTrace(revision, left))
    project.env.run_revisions(connection, [revision], downgrade=False)


def _revision_in(project: AlembicProject, path: Path) -> str | None:
    full = path if path.is_absolute() else project.settings.project_dir / path
    for info in project.graph.revisions():
        candidate = info.path if info.path.is_absolute() else project.settings.project_dir / info.path
        if candidate.resolve() == full.resolve():
            return info.revision
    return None
