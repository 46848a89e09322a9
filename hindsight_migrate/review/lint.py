"""Lint the SQL of revisions with Squawk, the PostgreSQL migration linter.

``squawk-cli`` ships the real Squawk binary; its JSON reporter gives one finding per rule
and statement. Severity is the project's: rules named in ``lint_error_rules`` are errors
(they block ``up`` unless ``--allow-lint``), rules in ``lint_ignore_rules`` are not run,
and everything else is a warning — except what Squawk itself calls an error.

Squawk lints each file alone, so it warns about locking a table that an earlier revision of
the same plan creates. Such a table has no traffic yet: those findings are dropped (and
counted), after PostgreSQL's own parser (pglast) has shown which table each one is about.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pglast
from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType, ReindexObjectType, TransactionStmtKind, VariableSetKind
from pglast.parser import ParseError

from hindsight_migrate import private_files
from hindsight_migrate.config import ToolSettings
from hindsight_migrate.review.kinds import Level
from hindsight_migrate.revisions import VersionTable

# Rules whose harm is traffic on a table that already has some: a lock that blocks its readers
# or writers (or waits behind them), a scan or rewrite of its rows under that lock, or clients
# that already use a name the statement renames or drops. A table created earlier in the same
# plan has none of that yet, so on it these findings are noise; Squawk itself skips several of
# them for a table created in the same transaction, but it cannot see across revisions.
RULES_ABOUT_TRAFFIC = frozenset(
    {
        # Locks, scans and rewrites.
        "adding-field-with-default",
        "adding-foreign-key-constraint",  # the referenced table's lock is brief: the new side has no rows to check
        "adding-not-nullable-field",
        "adding-serial-primary-key-field",
        "changing-column-type",
        "constraint-missing-not-valid",
        "disallowed-unique-constraint",
        "prefer-repack",
        "require-concurrent-index-creation",
        "require-concurrent-index-deletion",
        "require-concurrent-partition-detach",
        "require-concurrent-reindex",
        # Timeouts bound how long a statement waits for, or holds, a lock others need: nobody else
        # uses a table this plan creates. (lint_ignore_rules skips these by default anyway.)
        "require-lock-timeout",
        "require-statement-timeout",
        "require-timeout-settings",
        # Existing clients: no deployed code knows a table this plan creates.
        "ban-drop-column",
        "ban-drop-constraint",
        "ban-drop-default",
        "ban-drop-not-null",
        "ban-drop-table",
        "ban-new-write-restriction",
        "ban-set-schema",
        "renaming-column",
        "renaming-table",
    }
)
# The shape a column is given (its type, its size): advice worth reading once, not a risk to this
# deployment. On what the plan creates (a new table, a new column) these fold into one "style" line;
# on an existing column they stay findings of their own.
STYLE_RULES = frozenset(
    {
        "ban-char-field",
        "prefer-bigint-over-int",
        "prefer-bigint-over-smallint",
        "prefer-identity",
        "prefer-text-field",
        "prefer-timestamp-tz",
    }
)
# Squawk words prefer-text-field as a change of size, which reads wrong under a CREATE TABLE.
_NEW_VARCHAR_MESSAGE = (
    "A `varchar(n)` column: changing its size later requires an `ACCESS EXCLUSIVE` lock, which blocks all reads "
    "and writes of the table."
)

# Kept on a new table, on purpose:
# * the schema's shape (prefer-bigint-over-int, prefer-bigint-over-smallint, prefer-identity,
#   prefer-text-field, prefer-timestamp-tz, ban-char-field, identifier-too-long): the table
#   gets traffic soon, and changing these then takes exactly the locks the other rules warn of;
# * adding-required-field: it is about rows, not traffic (the ADD fails on a table with rows),
#   and a plan can fill the table it creates (INSERT … SELECT, CREATE TABLE AS) before adding it;
# * prefer-robust-stmts: it is about re-running a revision that failed part way, which a
#   half-made new table blocks just as well (and lint_ignore_rules skips it by default);
# * ban-truncate-cascade: CASCADE reaches the tables that reference this one, which may be old;
# * the transaction rules and everything not about one table (databases, domains, types, enums).


@dataclass(frozen=True)
class LintFinding:
    revision: str
    rule: str
    level: Level
    message: str
    advice: str | None
    line: int  # 1-based, in the revision's SQL (as --show-sql and the SQL file print it)
    statement: str  # the whole statement Squawk pointed into, as the plan shows it
    statement_number: int | None = None  # 1-based among the revision's statements; None: the revision as a whole
    on_new_object: bool = False  # the statement creates what it is about (a table, a column) or acts on a new table

    @property
    def is_style(self) -> bool:
        """A style warning on something the plan creates: folded into one line with a count."""
        return self.level is Level.WARNING and self.on_new_object and self.rule in STYLE_RULES

    @property
    def where(self) -> str:
        """Where it is, in terms the plan shows: the revision and its statement."""
        if self.statement_number is None:
            return self.revision
        return f"{self.revision} statement {self.statement_number}"


@dataclass(frozen=True)
class NotLinted:
    """A revision whose SQL Squawk could not parse as rendered offline, and why (in words)."""

    revision: str
    reason: str


# Offline rendering leaves a statement's bind parameters as placeholders (op.bulk_insert, sa.text with
# parameters): ":name" in the named paramstyle, "%(name)s" in pyformat. Not SQL any parser reads.
_BIND_PLACEHOLDER = re.compile(r"%\([A-Za-z_]\w*\)s|(?<![:\w]):[A-Za-z_]\w*")
SYNTAX_ERROR_RULE = "syntax-error"  # Squawk's own "rule" for what its parser cannot read


@dataclass(frozen=True)
class LintResult:
    findings: tuple[LintFinding, ...]
    ran: bool  # False when Squawk is not installed: say so, never pretend it passed
    note: str | None = None
    # Findings of RULES_ABOUT_TRAFFIC on tables the same SQL created first: not in `findings`.
    dropped_on_new_tables: int = 0
    # Findings of RULES_ABOUT_TRAFFIC in a first deployment into an empty database (no table has
    # traffic, no client uses a name yet): not in `findings`.
    not_applicable_empty: int = 0
    # Revisions whose SQL, as rendered offline, Squawk cannot parse (bind parameters left as placeholders,
    # say): Squawk lints nothing else in such a file, so they are "not linted", never an error.
    not_linted: tuple[NotLinted, ...] = ()

    @property
    def errors(self) -> tuple[LintFinding, ...]:
        return tuple(f for f in self.findings if f.level is Level.ERROR)

    @property
    def style(self) -> tuple[LintFinding, ...]:
        """Style warnings on what the plan creates (see STYLE_RULES): one line says how many."""
        return tuple(f for f in self.findings if f.is_style)

    @property
    def warnings(self) -> tuple[LintFinding, ...]:
        """The warnings shown one rule at a time: neither errors nor style."""
        return tuple(f for f in self.findings if f.level is not Level.ERROR and not f.is_style)

    def advice_by_rule(self) -> dict[str, str]:
        """Squawk's advice for each rule found, once, in the order the rules are first found.

        Squawk repeats a rule's advice under every finding; read once, it says all it has to.
        Where one rule gives different advice for different statements, each text is kept once.
        """
        texts: dict[str, list[str]] = {}
        for finding in self.findings:
            if finding.advice and finding.advice not in texts.setdefault(finding.rule, []):
                texts[finding.rule].append(finding.advice)
        return {rule: " ".join(advice) for rule, advice in texts.items() if advice}


def squawk_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "squawk"
    return str(beside_python) if beside_python.exists() else shutil.which("squawk")


def lint_sql(
    sql_by_revision: dict[str, str],
    settings: ToolSettings,
    *,
    version_table: VersionTable | None = None,
    empty_database: bool = False,
) -> LintResult:
    """Run Squawk over each revision's SQL; reads files only, touches no database.

    ``sql_by_revision`` is in the order the revisions run: a table one revision creates is new
    to the ones after it, and findings of RULES_ABOUT_TRAFFIC on it are dropped and counted.
    Statements about ``version_table`` (Alembic's own bookkeeping, whose shape the project does
    not choose) are not linted. With ``empty_database`` (a first deployment: no table has
    traffic, no client uses any name) no finding of RULES_ABOUT_TRAFFIC applies: they are counted.
    """
    binary = squawk_binary()
    if binary is None:
        return LintResult((), ran=False, note="Squawk is not installed (pip install squawk-cli); nothing was linted.")
    if not any(sql.strip() for sql in sql_by_revision.values()):
        return LintResult((), ran=True)
    # Squawk reads files: each revision's SQL goes to a new folder (mode 0700) in the user's
    # private one, never into the shared temporary folder where others could read it.
    with private_files.private_temporary_folder("hindsight-lint-", what="the SQL for Squawk (lint)") as folder:
        paths = {}
        for number, (revision, sql) in enumerate(sql_by_revision.items()):
            # Named by position: a revision id is the project's text (it may hold a '/').
            path = folder / f"{number:05d}.sql"
            try:
                path.write_text(sql, encoding="utf-8")
            except OSError as err:  # a full temporary folder is this machine's problem, not a bug
                raise private_files.cannot_write(
                    err, path, what="the SQL for Squawk (lint)", advice=private_files.TEMPORARY_ADVICE
                ) from err
            paths[str(path)] = revision
        command = [binary, "--reporter", "json"]
        command += [f"--exclude={rule}" for rule in settings.lint_ignore_rules]
        result = subprocess.run([*command, *paths], capture_output=True, text=True, check=False, timeout=120)
    try:
        raw = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        return LintResult((), ran=False, note=f"Squawk failed: {(result.stderr or result.stdout).strip()[:500]}")
    # Parsed only when there is a finding to place: most plans have none, and parsing costs.
    statements = _Statements(sql_by_revision, version_table or VersionTable()) if raw else None
    findings = []
    dropped = not_applicable = 0
    unparsed: dict[str, str] = {}
    for item in raw:
        revision = paths.get(item.get("file", ""), Path(item.get("file", "")).stem)
        if item.get("rule_name") == SYNTAX_ERROR_RULE:
            # The tool's rendering, not the project's SQL: PostgreSQL reads what actually runs (the rehearsal
            # would fail on real bad SQL). Said once per revision, never an error that blocks `up`.
            unparsed.setdefault(revision, _why_unparsed(sql_by_revision.get(revision, "")))
            continue
        lines = sql_by_revision.get(revision, "").splitlines()
        first, last = int(item.get("line", 0)), int(item.get("line_end", item.get("line", 0)))
        statement = "\n".join(lines[first : last + 1]).strip()
        rule = item.get("rule_name", "?")
        found = statements.locate(revision, item) if statements is not None else None
        if found is not None and found.version_table:
            continue  # Alembic's table, not the project's: its shape is not the project's choice
        if rule in RULES_ABOUT_TRAFFIC and empty_database:
            not_applicable += 1
            continue
        if found is not None and rule in RULES_ABOUT_TRAFFIC and found.only_new_tables:
            dropped += 1
            continue
        level = Level.ERROR if rule in settings.lint_error_rules or item.get("level") == "Error" else Level.WARNING
        message = item.get("message", "")
        new = found is not None and found.creates
        if rule == "prefer-text-field" and new:
            message = _NEW_VARCHAR_MESSAGE
        findings.append(
            LintFinding(
                revision,
                rule,
                level,
                message,
                item.get("help"),
                first + 1,
                found.text if found is not None else statement,
                statement_number=found.number if found is not None else None,
                on_new_object=new,
            )
        )
    order = {revision: i for i, revision in enumerate(sql_by_revision)}
    findings.sort(key=lambda f: (order.get(f.revision, 0), f.line, f.rule))
    return LintResult(
        tuple(findings),
        ran=True,
        dropped_on_new_tables=dropped,
        not_applicable_empty=not_applicable,
        not_linted=tuple(NotLinted(revision, reason) for revision, reason in unparsed.items()),
    )


def _why_unparsed(sql: str) -> str:
    if _BIND_PLACEHOLDER.search(sql):
        return "its offline SQL holds bind parameters left as placeholders (op.bulk_insert, sa.text with parameters)"
    return "Squawk cannot parse its SQL as rendered offline"


# -- which statements are only about tables the plan created ------------------------------------

_Table = tuple[str, str]  # (schema, name), as PostgreSQL folds them


@dataclass
class _Created:
    """What the statements read so far created and that nothing else can reach yet: tables, and their indexes."""

    tables: set[_Table] = field(default_factory=set)
    indexes: dict[_Table, _Table] = field(default_factory=dict)  # index → its table, for indexes on new tables
    # Names old tables had until the plan dropped or renamed them: their clients still use them,
    # so a table made (or renamed) under one of these names has their traffic at once.
    freed: set[_Table] = field(default_factory=set)
    blind: bool = False  # after SQL this cannot follow: nothing is new from there on
    # Where an unqualified name goes. After a change of search_path it is a marker that names no
    # real schema, so an unqualified name then matches only unqualified names made after the same
    # change: which schema the server picks depends on schemas the SQL does not show.
    default_schema: str = "public"
    path_changes: int = 0
    path_is_local: bool = False  # SET LOCAL search_path: it ends with the transaction

    def forget(self) -> None:
        """After SQL that could have done anything (dropped a new table, renamed an old one to its name)."""
        self.blind = True
        self.tables.clear()
        self.indexes.clear()

    def new_search_path(self, *, local: bool = False) -> None:
        self.path_changes += 1
        self.default_schema = f"<search_path #{self.path_changes}>"
        self.path_is_local = local

    def made(self, range_var: ast.RangeVar, parents: Iterable[ast.RangeVar] = ()) -> None:
        """A CREATE of ``range_var``: new unless a parent has traffic (it reaches its partitions and children)."""
        # A temporary table lives in pg_temp whatever the search_path.
        temporary = range_var.relpersistence == "t"
        table = (range_var.schemaname or ("pg_temp" if temporary else self.default_schema), range_var.relname or "")
        if not self.blind and table not in self.freed and all(self.relation(p) in self.tables for p in parents):
            self.tables.add(table)

    def named(self, schema: str | None, name: str) -> _Table:
        """The table a name refers to: unqualified, PostgreSQL looks in pg_temp first."""
        if schema:
            return (schema, name)
        if ("pg_temp", name) in self.tables:
            return ("pg_temp", name)
        return (self.default_schema, name)

    def relation(self, range_var: ast.RangeVar) -> _Table:
        return self.named(range_var.schemaname, range_var.relname or "")

    def dotted(self, names: Iterable[Any]) -> tuple[str | None, str]:
        """A name given as String nodes (DROP …): [name], [schema, name] or [db, schema, name]."""
        parts = [str(getattr(part, "sval", "")) for part in names]
        return (parts[-2] if len(parts) > 1 else None, parts[-1])

    def index(self, schema: str | None, name: str) -> _Table | None:
        """The new table an index of the plan is on; None when the plan did not make the index."""
        return self.indexes.get((schema or self.default_schema, name))

    def reached(self, table: _Table) -> None:
        """``table`` gets traffic from now on (or may): it is no longer new."""
        self.tables.discard(table)
        self.indexes = {index: on for index, on in self.indexes.items() if on != table}

    def dropped(self, table: _Table) -> None:
        if table not in self.tables:
            self.freed.add(table)
        self.reached(table)

    def moved(self, old: _Table, new: _Table) -> None:
        """A rename or SET SCHEMA: the table stays new only if it was, and its new name was no old table's."""
        was_new = old in self.tables
        indexes = {(new[0], index[1]): new for index, on in self.indexes.items() if on == old}
        self.dropped(old)
        self.reached(new)
        if was_new and new not in self.freed:
            self.tables.add(new)
            self.indexes.update(indexes)  # an index lives in its table's schema, and moves with it


@dataclass(frozen=True)
class _Located:
    """The statement a finding lies in, and what it is about."""

    number: int  # 1-based among the revision's statements
    text: str
    only_new_tables: bool  # every table it acts on was created earlier in the plan
    creates: bool  # it creates what it is about (a table, columns), or acts on new tables only
    version_table: bool  # it is about the version table


@dataclass(frozen=True)
class _Span:
    start: int  # in characters of the revision's SQL
    end: int
    only_new_tables: bool
    creates: bool
    version_table: bool


class _Statements:
    """Each revision's statements, parsed by pglast: where each is, and whether it is only about tables
    created before it, creates what it is about, or is about the version table.

    Matching a finding to its statement goes by position, not by text: a finding's
    ``statement`` is the lines Squawk pointed at, which can be part of a statement (a column
    of a CREATE TABLE) or hold more than one. Anything pglast cannot parse, and any statement
    whose tables it cannot name, is not marked: a finding is never dropped on a guess.
    """

    def __init__(self, sql_by_revision: dict[str, str], version_table: VersionTable) -> None:
        self._sql = sql_by_revision
        self._spans: dict[str, list[_Span]] = {}
        self._lines = {revision: sql.split("\n") for revision, sql in sql_by_revision.items()}
        self._line_starts = {revision: _line_starts(lines) for revision, lines in self._lines.items()}
        created = _Created()
        for revision, sql in sql_by_revision.items():
            try:
                statements = pglast.parse_sql(sql)
            except ParseError:
                # PostgreSQL would refuse it too; what it was meant to do is unknown from here on.
                created.forget()
                continue
            spans = self._spans.setdefault(revision, [])
            for raw in statements:
                if raw.stmt is None:
                    continue
                start = raw.stmt_location or 0
                end = start + raw.stmt_len if raw.stmt_len else len(sql)  # 0: the statement runs to the end
                # pglast's statement ends before its semicolon, Squawk's just after it.
                after = len(sql[end:]) - len(sql[end:].lstrip())
                end += after + 1 if sql[end + after : end + after + 1] == ";" else 0
                tables = _tables_of(raw.stmt, created)
                only_new = bool(tables) and all(t in created.tables for t in tables or ())
                creates = only_new or _creates(raw.stmt)
                spans.append(_Span(start, end, only_new, creates, _is_version_table(raw.stmt, version_table)))
                _record(raw.stmt, created)

    def locate(self, revision: str, item: dict[str, Any]) -> _Located | None:
        """The one statement Squawk's finding ``item`` lies inside; None when it spans several, or none
        (a finding about the revision as a whole), or the SQL could not be parsed."""
        spans = self._spans.get(revision)
        if not spans:
            return None
        lines, starts = self._lines[revision], self._line_starts[revision]
        try:
            line, column = int(item["line"]), int(item["column"])
            start = _character(lines, starts, line, column)
            end = _character(lines, starts, int(item.get("line_end", line)), int(item.get("column_end", column)))
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        for number, span in enumerate(spans, start=1):
            if span.start <= start and end <= span.end:
                text = self._sql[revision][span.start : span.end].strip()
                return _Located(number, text, span.only_new_tables, span.creates, span.version_table)
        return None


def _line_starts(lines: list[str]) -> list[int]:
    starts = [0]
    for text in lines[:-1]:
        starts.append(starts[-1] + len(text) + 1)
    return starts


def _character(lines: list[str], starts: list[int], line: int, column: int) -> int:
    """Squawk's 0-based line and byte column as a character offset (pglast counts characters)."""
    if not 0 <= line < len(lines):
        raise IndexError(line)
    return starts[line] + len(lines[line].encode("utf-8")[:column].decode("utf-8", errors="ignore"))


def _creates(node: ast.Node) -> bool:
    """Whether a statement creates what it is about: a table, or only new columns of one."""
    if isinstance(node, (ast.CreateStmt, ast.CreateTableAsStmt)):
        return True
    if isinstance(node, ast.AlterTableStmt) and node.cmds:
        return all(
            isinstance(command, ast.AlterTableCmd) and command.subtype == AlterTableType.AT_AddColumn
            for command in node.cmds
        )
    return False


def _is_version_table(node: ast.Node, version_table: VersionTable) -> bool:
    """Whether a statement creates or changes the version table (Alembic's, named by env.py)."""
    relation = None
    if isinstance(node, (ast.CreateStmt, ast.AlterTableStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)):
        relation = node.relation
    if not isinstance(relation, ast.RangeVar):
        return False
    schema_matches = version_table.schema is None or relation.schemaname in (None, version_table.schema)
    return relation.relname == version_table.name and schema_matches


def _tables_of(node: ast.Node, created: _Created) -> set[_Table] | None:
    """The tables a statement acts on, as it names them; None when it names none this can follow.

    A CREATE TABLE is about a table that is not there yet, so the findings it gets stay.
    """
    relations = (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_MATVIEW)

    def on_index(range_var: ast.RangeVar) -> set[_Table] | None:
        on = created.index(range_var.schemaname, range_var.relname or "")
        return {on} if on else None

    if isinstance(node, ast.IndexStmt) and node.relation is not None:
        return {created.relation(node.relation)}
    if isinstance(node, ast.AlterTableStmt) and node.relation is not None:
        if node.objtype == ObjectType.OBJECT_INDEX:
            return on_index(node.relation)
        if node.objtype not in relations:
            return None
        tables = {created.relation(node.relation)}
        for command in node.cmds or ():
            # Attaching, detaching or inheriting involves a second table, which must be new too.
            if not isinstance(command, ast.AlterTableCmd):
                return None
            if command.subtype in (AlterTableType.AT_AttachPartition, AlterTableType.AT_DetachPartition):
                if not isinstance(command.def_, ast.PartitionCmd) or command.def_.name is None:
                    return None
                tables.add(created.relation(command.def_.name))
            elif command.subtype in (AlterTableType.AT_AddInherit, AlterTableType.AT_DropInherit):
                if not isinstance(command.def_, ast.RangeVar):
                    return None
                tables.add(created.relation(command.def_))
        return tables
    if isinstance(node, ast.RenameStmt) and node.relation is not None:
        if node.renameType == ObjectType.OBJECT_INDEX:
            return on_index(node.relation)
        if node.renameType in relations or (
            node.renameType in (ObjectType.OBJECT_COLUMN, ObjectType.OBJECT_TABCONSTRAINT)
            and node.relationType in relations
        ):
            return {created.relation(node.relation)}
        return None
    if isinstance(node, ast.AlterObjectSchemaStmt) and node.relation is not None:
        return {created.relation(node.relation)} if node.objectType in relations else None
    if isinstance(node, ast.DropStmt) and node.objects:
        if node.removeType in relations:
            return {created.named(*created.dotted(names)) for names in node.objects}
        if node.removeType == ObjectType.OBJECT_INDEX:
            tables = set()
            for names in node.objects:
                on = created.index(*created.dotted(names))
                if on is None:
                    return None
                tables.add(on)
            return tables
        return None
    if isinstance(node, ast.ReindexStmt) and node.relation is not None:
        if node.kind == ReindexObjectType.REINDEX_OBJECT_TABLE:
            return {created.relation(node.relation)}
        if node.kind == ReindexObjectType.REINDEX_OBJECT_INDEX:
            return on_index(node.relation)
        return None
    if isinstance(node, ast.ClusterStmt) and node.relation is not None:
        return {created.relation(node.relation)}
    if isinstance(node, ast.VacuumStmt) and node.rels:
        rels = [rel.relation for rel in node.rels if isinstance(rel, ast.VacuumRelation)]
        if len(rels) != len(node.rels) or any(rel is None for rel in rels):
            return None
        return {created.relation(rel) for rel in rels if rel is not None}
    return None


def _record(node: ast.Node, created: _Created) -> None:
    """What the statement changes in what is known to be new."""
    relations = (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_MATVIEW)
    if isinstance(node, ast.CreateStmt) and node.relation is not None:
        # IF NOT EXISTS may find the table already there, with its traffic: not provably new.
        if not node.if_not_exists:
            parents = [p for p in node.inhRelations or () if isinstance(p, ast.RangeVar)]
            created.made(node.relation, parents)
    elif isinstance(node, ast.CreateTableAsStmt) and node.into is not None and node.into.rel is not None:
        if not node.if_not_exists and node.objtype in relations:
            created.made(node.into.rel)
    elif isinstance(node, ast.SelectStmt) and node.intoClause is not None and node.intoClause.rel is not None:
        created.made(node.intoClause.rel)  # SELECT … INTO makes a table
    elif isinstance(node, ast.IndexStmt) and node.relation is not None and node.idxname:
        table = created.relation(node.relation)
        if table in created.tables and not node.if_not_exists:
            created.indexes[(table[0], node.idxname)] = table  # an index lives in its table's schema
    elif isinstance(node, ast.AlterTableStmt) and node.relation is not None and node.objtype in relations:
        table = created.relation(node.relation)
        for command in node.cmds or ():
            if not isinstance(command, ast.AlterTableCmd):
                continue
            if command.subtype == AlterTableType.AT_AttachPartition and isinstance(command.def_, ast.PartitionCmd):
                other = command.def_.name
            elif command.subtype == AlterTableType.AT_AddInherit and isinstance(command.def_, ast.RangeVar):
                other = command.def_
            else:
                other = None
            # Parent and child share traffic (scans of the parent read the child; what is done to the
            # parent is done to the child): if either has traffic, neither is new any more.
            if other is not None and not {table, created.relation(other)} <= created.tables:
                created.reached(table)
                created.reached(created.relation(other))
            # An old table's foreign key reads the table it references on every write to the old one.
            if table not in created.tables:
                for referenced in _foreign_keys(command.def_):
                    created.reached(created.relation(referenced))
    elif isinstance(node, ast.RenameStmt) and node.relation is not None and node.newname:
        if node.renameType in relations:
            old = created.relation(node.relation)
            created.moved(old, (old[0], node.newname))
        elif node.renameType == ObjectType.OBJECT_INDEX:
            schema = node.relation.schemaname or created.default_schema
            on = created.indexes.pop((schema, node.relation.relname or ""), None)
            if on is not None:
                created.indexes[(schema, node.newname)] = on
    elif isinstance(node, ast.AlterObjectSchemaStmt) and node.relation is not None and node.newschema:
        if node.objectType in relations:
            old = created.relation(node.relation)
            created.moved(old, (node.newschema, old[1]))
    elif isinstance(node, ast.DropStmt) and node.objects:
        if node.removeType in relations:
            for names in node.objects:
                created.dropped(created.named(*created.dotted(names)))
        elif node.removeType == ObjectType.OBJECT_INDEX:
            for names in node.objects:
                in_schema, name = created.dotted(names)
                created.indexes.pop((in_schema or created.default_schema, name), None)
    elif isinstance(node, ast.VariableSetStmt) and (node.name or "").lower() == "search_path":
        created.new_search_path(local=bool(node.is_local))
    elif isinstance(node, ast.VariableSetStmt) and node.kind == VariableSetKind.VAR_RESET_ALL:
        created.new_search_path()
    elif isinstance(node, ast.TransactionStmt) and created.path_is_local:
        if node.kind in (
            TransactionStmtKind.TRANS_STMT_COMMIT,
            TransactionStmtKind.TRANS_STMT_ROLLBACK,
            TransactionStmtKind.TRANS_STMT_PREPARE,
        ):
            created.new_search_path()
    elif isinstance(node, (ast.DoStmt, ast.CallStmt)):
        # A DO block or a procedure runs SQL this cannot read (often built at run time).
        created.forget()
    elif isinstance(node, (ast.CreateTrigStmt, ast.RuleStmt)) and node.relation is not None:
        # A trigger or rule on an old table can write to any table, new ones included, on its traffic.
        if created.relation(node.relation) not in created.tables:
            created.forget()
    elif isinstance(node, ast.ViewStmt) and node.replace:
        # A view that may exist already, with its readers, may now read new tables.
        created.forget()


def _foreign_keys(definition: object) -> list[ast.RangeVar]:
    """The tables a constraint (or a column's constraints) added by ALTER TABLE references."""
    constraints = [definition] if isinstance(definition, ast.Constraint) else []
    if isinstance(definition, ast.ColumnDef):
        constraints += [c for c in definition.constraints or () if isinstance(c, ast.Constraint)]
    return [c.pktable for c in constraints if c.contype == ConstrType.CONSTR_FOREIGN and c.pktable is not None]
