"""Run the pending revisions for real somewhere safe, and measure what they did.

Where (``--rehearse-on``):

* ``scratch`` (default): a database made from the target on the same server — its schema
  (``pg_dump --schema-only``), its version table and the tool's records, and all of its
  data too when it is small — always dropped afterwards, also on Ctrl-C and SIGTERM
  (:mod:`~hindsight_migrate.postgres.scratch` makes, fills and drops it). Revisions that commit or
  leave their transaction (``autocommit_block()``) run there like any other, and the
  target's tables are never locked beyond ``pg_dump``'s brief ACCESS SHARE.
* ``target``: inside one transaction on the target that is always rolled back. A revision
  that would leave that transaction is refused as not rehearsable before it can commit, and
  the rehearsal — which takes the same locks the migration would — runs under a
  ``lock_timeout`` and a ``statement_timeout`` budget. Sequence values it takes stay taken
  (nextval() is not transactional), and the plan says which.
* a URL: another database with the same schema (staging, a restored backup), which the
  rehearsal changes for real: it must be disposable, and is refused when it is the target
  itself, however the URL is spelled.

What is measured, per revision: the schema before and after (catalog), each statement's
time and the relation locks its backend held (``pg_locks`` for ``pg_backend_pid()``), and
which tables and indexes were rewritten (their ``pg_relation_filenode()`` changed).

A copy that is not the target cannot show the applying role's privileges there (a role that
is not a superuser owns everything in its own copy): what the statements need on the target
(ownership, CREATE on a schema or the database) and what the apply itself needs (the tool's
records, the version table) are checked on the target's catalog before anything is applied.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.duration import A_MINUTE, FIVE_SECONDS, Duration
from hindsight_migrate.errors import ProjectCodeFailed, Refused, Section
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.postgres import catalog
from hindsight_migrate.postgres.catalog import SchemaChange
from hindsight_migrate.postgres.containment import (
    Containment,
    LeftTransaction,
    Mode,
    MustRollBack,
    NotRehearsed,
    ServerWide,
)
from hindsight_migrate.postgres.database import (
    Database,
    ServerWarning,
    ServerWarnings,
    commit_without_waiting_for_the_disk,
    server_said,
    set_lock_timeout,
    set_statement_timeout,
)
from hindsight_migrate.postgres.lock_modes import Blocks, LockMode
from hindsight_migrate.postgres.scratch import ScratchInTheMaking, scratch_copy
from hindsight_migrate.review.bootstrap import BootstrapPlan, drop_baseline_schema, rehearse_bootstrap
from hindsight_migrate.revisions import RevisionInfo

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

@dataclass(frozen=True)
class StatementCost:
    sql: str
    seconds: float
    locks: tuple[tuple[str, LockMode], ...]  # (table, strongest mode) newly held after it


@dataclass(frozen=True)
class RevisionCost:
    revision: str
    seconds: float
    locks: tuple[tuple[str, LockMode], ...]  # (table, strongest mode) over the whole revision
    rewritten: tuple[str, ...]  # tables and indexes whose storage was rewritten
    statements: tuple[StatementCost, ...]
    rows_written: tuple[tuple[str, int], ...] = ()  # (table, rows updated or deleted): a backfill, a purge


@dataclass(frozen=True)
class RehearsalFailure:
    revision: str
    message: str  # what the database said
    statement: str | None


@dataclass(frozen=True)
class Rehearsal:
    """What running the pending revisions did, measured; ``failure`` when one failed."""

    where: RehearsalPlace
    description: str  # words for the reader: where it ran and with what data
    with_data: bool
    diff: tuple[SchemaChange, ...]
    costs: tuple[RevisionCost, ...]
    failure: RehearsalFailure | None
    warnings: tuple[str, ...]
    sizes: dict[str, catalog.TableSize] = field(default_factory=dict)  # the TARGET's tables
    not_rehearsed: tuple[NotRehearsed, ...] = ()  # statements not sent: no rollback would undo them
    server_wide: tuple[ServerWide, ...] = ()  # changes to what the whole server shares, rehearsed and rolled back
    server_warnings: tuple[ServerWarning, ...] = ()  # what PostgreSQL warned about while the revisions ran

    @property
    def ok(self) -> bool:
        return self.failure is None

    def impact(self) -> tuple[tuple[ImpactRow, ...], tuple[float, ...]]:
        """What the revisions did to tables the target has: one row per (revision, table) they lock, and the
        seconds of each revision that locks none (it only adds new objects, which bother no one yet)."""
        rows: list[ImpactRow] = []
        quiet: list[float] = []
        for cost in self.costs:
            touched = [
                (table, mode)
                for table, mode in cost.locks
                if table in self.sizes
            ]
            if not touched:
                quiet.append(cost.seconds)
            rows.extend(
                ImpactRow(
                    revision=cost.revision,
                    table=table,
                    mode=mode,
                    blocks=mode.blocks,
                    rewritten=table in cost.rewritten,
                    size=self.sizes.get(table),
                    seconds=cost.seconds,
                    rows_written=dict(cost.rows_written).get(table, 0),
                )
                for table, mode in touched
            )
        return tuple(rows), tuple(quiet)

    def rewritten_tables(self) -> tuple[ImpactRow, ...]:
        """The target's tables whose storage a revision rewrote, once each, the largest first."""
        seen: dict[str, ImpactRow] = {}
        for row in self.impact()[0]:
            if row.rewritten and row.table not in seen:
                seen[row.table] = row
        return tuple(sorted(seen.values(), key=lambda row: -(row.size.total_bytes if row.size else 0)))

    def longest_blocking(self) -> ImpactRow | None:
        """The lock that held traffic back most in the rehearsal: blocking reads beats blocking writes, then time."""
        blocking = [row for row in self.impact()[0] if row.blocks is not Blocks.NOTHING]
        return max(blocking, key=lambda row: (row.blocks is Blocks.READS_AND_WRITES, row.seconds), default=None)


@dataclass(frozen=True)
class ImpactRow:
    """One table a revision locked on the target, as measured in the rehearsal."""

    revision: str
    table: str
    mode: LockMode
    blocks: Blocks  # what ordinary traffic it stops
    rewritten: bool  # its storage (or its indexes') was rewritten
    size: catalog.TableSize | None  # the target's rows and bytes, None for a table it does not have
    seconds: float  # how long the revision that took the lock ran (the lock is held until it commits)
    rows_written: int = 0  # rows the revision updated or deleted in it (in the rehearsal's copy of the data)


class RehearsalPlace(Enum):
    """Where a rehearsal runs (``--rehearse-on``)."""

    SCRATCH = "scratch"  # a scratch copy of the target on its server, dropped afterwards
    TARGET = "target"  # the target itself, in one transaction that is rolled back
    URL = "url"  # another, disposable database with the same schema, which it changes


@dataclass(frozen=True)
class RehearsalTarget:
    """``--rehearse-on``: a place, and for ``URL`` the database's URL."""

    place: RehearsalPlace
    url: str | None = None

    @classmethod
    def parse(cls, value: str) -> RehearsalTarget:
        """``scratch``, ``target``, or anything else: the URL of a disposable database."""
        for place in (RehearsalPlace.SCRATCH, RehearsalPlace.TARGET):
            if value == place.value:
                return cls(place)
        return cls(RehearsalPlace.URL, value)


@dataclass(frozen=True)
class RehearsalOptions:
    where: RehearsalTarget = RehearsalTarget(RehearsalPlace.SCRATCH)
    data_limit_bytes: int = 200 * 1024 * 1024
    lock_timeout: Duration = FIVE_SECONDS
    statement_timeout: Duration = A_MINUTE


@dataclass(frozen=True)
class _Work:
    """What a rehearsal runs, in order: V1 (going up from empty), the revisions, the V1 drop."""

    revisions: tuple[RevisionInfo, ...]
    downgrade: bool
    bootstrap: BootstrapPlan | None
    drop_baseline: bool
    version_table: str  # env.py's version table: the tool's bookkeeping, not the application's schema


def rehearse(
    project: AlembicProject,
    target: Database,
    revisions: tuple[RevisionInfo, ...],
    options: RehearsalOptions,
    *,
    bootstrap: BootstrapPlan | None = None,
    downgrade: bool = False,
    drop_baseline: bool = False,
    scratch: ScratchInTheMaking | None = None,
) -> Rehearsal:
    """Run ``revisions`` somewhere that is not the target (or rolled back on it) and measure.

    ``bootstrap`` runs V1 first (an empty database going up); ``downgrade`` reverts the
    revisions instead; ``drop_baseline`` then drops what V1 left. Never changes the target:
    a scratch copy is dropped afterwards; the target mode rolls back and refuses any
    revision that would commit. ``scratch``: the scratch database, when the caller started
    making it in advance (and drops it).
    """
    try:
        return _rehearse(project, target, revisions, options, bootstrap, downgrade, drop_baseline, scratch)
    except ProjectCodeFailed as problem:
        # The same message as at apply time, and the reader must know the target was not touched.
        problem.with_section(Section("Where", "in the rehearsal, before anything was applied: the target is unchanged"))
        raise


def _rehearse(
    project: AlembicProject,
    target: Database,
    revisions: tuple[RevisionInfo, ...],
    options: RehearsalOptions,
    bootstrap: BootstrapPlan | None,
    downgrade: bool,
    drop_baseline: bool,
    scratch: ScratchInTheMaking | None,
) -> Rehearsal:
    work = _Work(revisions, downgrade, bootstrap, drop_baseline, project.env.version_table.name)
    with target.connect() as connection:
        # The target's tables, but for the version table: the tool's bookkeeping, which every revision writes.
        sizes = {
            table: size
            for table, size in catalog.table_sizes(connection).items()
            if table.rpartition(".")[2] != work.version_table
        }
        # What the scratch copy needs to know, on the same connection.
        copying = options.where.place is RehearsalPlace.SCRATCH
        with_data = copying and catalog.database_size(connection) <= options.data_limit_bytes
        blank = copying and catalog.is_blank(connection)
        role = catalog.role_context(connection)
        # A role that is not a superuser owns everything in its copy: it gets back there exactly the
        # privileges it has on the target, so what the target would refuse fails in the rehearsal.
        mirrored = copying and not blank and not role.superuser
        privileges = catalog.privileges_script(connection, version_table=work.version_table) if mirrored else None
        connection.rollback()
    if options.where.place is RehearsalPlace.TARGET:
        # There the revisions meet the role's real privileges.
        rehearsal = _rehearse_on_target(project, target, work, options, sizes)
    elif options.where.place is RehearsalPlace.SCRATCH:
        # A superuser restores the target's owners and grants, so the rehearsal meets them as the
        # apply will. Any other role's copy is its own: what that hides is checked on the target below.
        with scratch_copy(
            target,
            scratch,
            with_data=with_data,
            blank=blank,
            version_table=work.version_table,
            keep_owners=role.superuser,
            privileges=privileges,
        ) as copy:
            words = (
                "a scratch copy of the target with its data"
                if with_data
                else f"a scratch copy of the target's schema only (the data is over "
                f"{options.data_limit_bytes // (1024 * 1024)} MB), so data-dependent failures are not caught"
            )
            if privileges is not None:
                words += f"; run as {role.role} with its privileges on the target"
            rehearsal = _rehearse_committing(project, copy, work, RehearsalPlace.SCRATCH, words, with_data, sizes)
    else:
        from hindsight_migrate.config import DatabaseSource, normalize_url
        from hindsight_migrate.postgres.database import open_database

        url = normalize_url(options.where.url or "", "--rehearse-on")
        other = open_database(DatabaseSource(url=url, origin="--rehearse-on"))
        try:
            _refuse_the_target_itself(target, other)
            rehearsal = _rehearse_committing(
                project,
                other,
                work,
                RehearsalPlace.URL,
                f"{other.masked_url} (--rehearse-on; now changed)",
                True,
                sizes,
            )
        finally:
            other.dispose()
    if role.superuser:
        return rehearsal  # nothing on the target is out of its reach
    if options.where.place is not RehearsalPlace.TARGET:
        rehearsal = _with_privileges_checked(rehearsal, target, role)
        if sizes:  # a target with tables of its own
            note = _privileges_not_reproduced(privileges)
            rehearsal = dataclasses.replace(rehearsal, warnings=(*rehearsal.warnings, note))
    if rehearsal.ok:  # a revision that fails is the first thing to fix; then what the tool itself needs
        with target.connect() as connection:
            _refuse_unless_the_apply_may_record(connection, role, work)
            connection.rollback()
    return rehearsal


def _privileges_not_reproduced(mirrored: str | None) -> str:
    """What a rehearsal by a role that is not a superuser cannot show of its privileges on the target, in words."""
    if mirrored is not None:
        return (
            "Privileges: the copy gave the applying role its privileges on the target's tables, sequences, schemas "
            "and functions, and ownership of the target's tables was checked from the measured diff; ownership "
            "of functions, types and other objects, and row-level security policies, were not reproduced."
        )
    return (
        "Privileges: the rehearsal ran as the owner of everything it touched; what the statements and the measured "
        "diff need (ownership of the target's tables, CREATE on schemas and the database) was checked on the "
        "target, but row privileges (INSERT, UPDATE, DELETE, TRUNCATE, triggers) were not reproduced."
    )


def _refuse_the_target_itself(target: Database, other: Database) -> None:
    """--rehearse-on URL commits what it rehearses: refuse a URL that reaches the target, compared by
    what the server says it is (cluster, server start, database oid), not by how the URL is spelled:
    a socket for 127.0.0.1, localhost, another user, extra options all reach the same database."""
    with target.connect() as connection:
        here = catalog.database_identity(connection)
        connection.rollback()
    with other.connect() as connection:
        there = catalog.database_identity(connection)
        connection.rollback()
    if here.same_as(there):
        raise Refused(
            f"--rehearse-on {other.masked_url} is the target itself: it reaches the same database as "
            f"{target.masked_url}, and a rehearsal there would apply the revisions for real. Nothing was "
            "changed. Name a disposable database with the same schema (staging, a restored backup), or "
            "rehearse on a scratch copy (the default) or with --rehearse-on target (rolled back).",
            sections=(
                Section("Same database", f"{there.name} (oid {there.oid}), server started {there.server_started}"),
            ),
        )


# -- privileges: what the apply needs on the target that a copy cannot show --------------
#
# A scratch copy made by a role that is not a superuser belongs to that role, every object in it,
# and so does the scratch database (with its public schema). There, ALTER TABLE on a table another
# role owns, CREATE TABLE in a schema the role may not create in, and CREATE SCHEMA all pass; on
# the target they fail half-way through the apply. So the statements the rehearsal ran are read
# back (PostgreSQL's own parser, pglast) and the target's catalog is asked what each one needs:
# ownership (or membership of the owner), CREATE on the schema, CREATE on the database. Statements
# inside a DO block or a function are not followed: those the rehearsal on the target catches.


@dataclass(frozen=True)
class _Need:
    what: str  # "owner" (name: a relation), "schema" (a schema, None: current), "database", "extension", "grant"
    name: str | None
    statement: str
    privileges: tuple[str, ...] = ()  # "grant": the privileges granted on the relation (ALL: every one)


def _refuse_unless_the_apply_may_record(connection: Connection, role: catalog.RoleContext, work: _Work) -> None:
    """Read-only: refuse a plan whose apply would fail before its first revision, when the role may not
    write the tool's records or move the version table (it would say only "permission denied")."""
    if role.superuser:
        return
    tool = catalog.TOOL_SCHEMA
    database = _sql_name(role.database)
    missing: list[str] = []
    if not role.create_on_database:
        # PostgreSQL checks CREATE SCHEMA IF NOT EXISTS against the database even when the schema exists.
        missing.append(
            f"CREATE on database {role.database}: every run makes sure schema {tool} exists "
            f"(GRANT CREATE ON DATABASE {database} TO {_sql_name(role.role)})"
        )
    if catalog.schema_create_rights(connection, [tool]).get(tool) is False:
        missing.append(
            f"USAGE and CREATE on schema {tool}, where the tool keeps its records "
            f"(GRANT USAGE, CREATE ON SCHEMA {tool} TO {_sql_name(role.role)})"
        )
    records = [("apply_log", ("INSERT", "UPDATE")), ("applied_revisions", ("INSERT", "UPDATE", "DELETE"))]
    tables = [(f"{tool}.{table}", privileges) for table, privileges in records]
    tables += [
        (name, ("UPDATE", "DELETE") if work.downgrade else ("UPDATE",))
        for name in catalog.version_tables(connection, name=work.version_table)
    ]
    for table, privileges in tables:
        schema, _, name = table.partition(".")
        lacking = catalog.missing_table_privileges(connection, f"{_sql_name(schema)}.{_sql_name(name)}", privileges)
        if lacking:
            missing.append(
                f"{', '.join(lacking)} on {table} (GRANT {', '.join(lacking)} ON {_sql_name(schema)}.{_sql_name(name)} "
                f"TO {_sql_name(role.role)})"
            )
    if missing:
        raise Refused(
            f"The apply would fail before its first revision: {role.role} lacks privileges it needs on the "
            f"target, to record the run and move the version table. Nothing was changed. Grant them, or run "
            "as the role that owns the schema.",
            sections=(Section("Missing", "\n".join(missing)),),
        )


def _with_privileges_checked(rehearsal: Rehearsal, target: Database, role: catalog.RoleContext) -> Rehearsal:
    """Read-only on the target: the rehearsal, failed at the first revision whose statements need a
    privilege the role lacks on the target (when that comes before whatever else failed)."""
    import dataclasses

    if rehearsal.failure is not None:
        rehearsal = dataclasses.replace(rehearsal, failure=_with_grant_advice(rehearsal.failure, role))
    needs = [(cost.revision, need) for cost in rehearsal.costs for st in cost.statements for need in _needs(st.sql)]
    needs += _needs_measured(rehearsal)
    if not needs:
        return rehearsal
    created = {change.name for change in rehearsal.diff if change.kind == "schema" and change.change == "added"}
    # CREATE EXTENSION IF NOT EXISTS of one the target has needs nothing: only those the plan adds count.
    added_extensions = {
        change.name for change in rehearsal.diff if change.kind == "extension" and change.change == "added"
    }
    with target.connect() as connection:
        owners = catalog.relation_ownership(connection, [n.name for _, n in needs if n.what == "owner" and n.name])
        schemas = [n.name or role.default_schema or "" for _, n in needs if n.what == "schema"]
        may_create = catalog.schema_create_rights(connection, [name for name in schemas if name])
        ungranted = {
            (revision, need.name): missing
            for revision, need in needs
            if need.what == "grant" and need.name
            and (missing := catalog.missing_table_privileges(connection, need.name, need.privileges, grant_option=True))
        }
        connection.rollback()
    # A GRANT of what the role may not pass on succeeds with only a WARNING, on the target; in its own copy the
    # role owns the table and may grant anything, so the rehearsal did not hear it.
    rehearsal = dataclasses.replace(
        rehearsal,
        server_warnings=(
            *rehearsal.server_warnings,
            *(
                ServerWarning(
                    revision,
                    f'{"no" if set(missing) >= set(_grantable(needs, revision, name)) else "not all"} privileges '
                    f'would be granted for "{name.replace(chr(34), "")}": {role.role} may not grant '
                    f"{', '.join(missing)} on it (it is not the owner and holds no grant option), so the GRANT does "
                    "less than it says",
                    foreseen=True,
                )
                for (revision, name), missing in ungranted.items()
            ),
        ),
    )
    for revision, need in needs:
        problem = None
        if need.what == "owner" and need.name in owners and not owners[need.name].owner_rights:
            found = owners[need.name]
            problem = (
                f"must be owner of {found.kind} {found.relation}: on the target it belongs to {found.owner}, and "
                f"{role.role} is neither {found.owner} nor a member of it (in the scratch copy, which {role.role} "
                f"made, everything is its own). Apply as {found.owner} (or a member of it), or make {role.role} "
                "(or a role it is a member of) the owner."
            )
        elif need.what == "schema":
            schema = need.name or role.default_schema
            if schema and schema not in created and may_create.get(schema) is False:
                problem = (
                    f"permission denied for schema {schema}: {role.role} may not create in it on the target (in "
                    f"the scratch copy it owns the database, and so {schema}). GRANT CREATE ON SCHEMA "
                    f"{_sql_name(schema)} TO {_sql_name(role.role)}, or create in a schema it may."
                )
        elif need.what == "extension" and need.name in added_extensions and not role.create_on_database:
            problem = (
                f"permission denied for database {role.database}: {role.role} may not create extension {need.name} "
                f"on the target (the scratch copy is its own database). GRANT CREATE ON DATABASE "
                f"{_sql_name(role.database)} TO {_sql_name(role.role)}, or have its owner create the extension first."
            )
        elif need.what == "database" and not role.create_on_database:
            problem = (
                f"permission denied for database {role.database}: {role.role} may not create schemas in it on the "
                f"target (the scratch copy is its own database). GRANT CREATE ON DATABASE {_sql_name(role.database)} "
                f"TO {_sql_name(role.role)}."
            )
        if problem is None:
            continue
        failing = rehearsal.failure
        order = [cost.revision for cost in rehearsal.costs]
        if failing is not None and failing.revision in order and order.index(failing.revision) < order.index(revision):
            return rehearsal  # an earlier revision failed in the rehearsal itself: that is the one to fix first
        return dataclasses.replace(rehearsal, failure=RehearsalFailure(revision, problem, mask_secrets(need.statement)))
    return rehearsal


# Lock modes an ALTER, a CREATE INDEX, a DROP or a RENAME of a table takes: a revision that took one
# of these on a table is the one that changed it (as measured in the diff).
_CHANGING_MODES = frozenset(
    {
        LockMode.ACCESS_EXCLUSIVE,
        LockMode.EXCLUSIVE,
        LockMode.SHARE_ROW_EXCLUSIVE,
        LockMode.SHARE,
        LockMode.SHARE_UPDATE_EXCLUSIVE,
    }
)


def _needs_measured(rehearsal: Rehearsal) -> list[tuple[str, _Need]]:
    """What the measured schema diff needs, however the statements were written (a DO block, a function,
    dynamic SQL that no reading of the statements sees): to change a table of the target (a column, an
    index, a constraint, a rename, a drop), its owner's rights; to add a table, view or sequence to a
    schema, CREATE on that schema."""
    import re

    tables_before = set(rehearsal.sizes)
    needs: list[tuple[str, _Need]] = []

    def changed_by(table: str) -> str:
        for cost in rehearsal.costs:
            if any(locked == table and mode in _CHANGING_MODES for locked, mode in cost.locks):
                return cost.revision
        return rehearsal.costs[0].revision if rehearsal.costs else "?"

    def quoted(name: str) -> str:
        schema, _, relation = name.partition(".")
        return f"{catalog.quote_identifier(schema)}.{catalog.quote_identifier(relation)}"

    for change in rehearsal.diff:
        table: str | None = None
        if change.kind == "table" and change.change in ("removed", "renamed"):
            table = change.before if change.change == "renamed" else change.name
        elif change.kind in ("column", "constraint"):
            parent = (change.before if change.change == "renamed" else change.name) or ""
            table = ".".join(parent.split(".")[:2])
        elif change.kind == "index":
            definition = change.before or change.after or ""
            found = re.search(r" ON (?:ONLY )?([^ (]+)", definition)
            table = found.group(1).replace('"', "") if found else None
        if table and table in tables_before:
            needs.append((changed_by(table), _Need("owner", quoted(table), "(measured: the schema diff changes it)")))
        if change.change == "added" and change.kind in ("table", "view", "materialized view", "sequence"):
            schema = change.name.partition(".")[0]
            needs.append((changed_by(change.name), _Need("schema", schema, "(measured: the schema diff adds it)")))
    return needs


def _needs(sql: str) -> list[_Need]:
    """What privileges one statement needs beyond writing rows: whose relations it alters (ownership),
    where it creates (CREATE on a schema, on the database). Unparsable SQL needs nothing known."""
    # pglast is a dependency: without it this fails loudly, never "needs nothing" (a guardrail that fails open).
    from pglast import ast, parse_sql
    from pglast.enums import GrantTargetType, ObjectType, ReindexObjectType
    from pglast.parser import ParseError

    try:
        statements = parse_sql(sql)
    except ParseError:  # a statement with driver placeholders (%(name)s), or SQL PostgreSQL refused too
        return []

    def relation(range_var: Any) -> str | None:
        if not isinstance(range_var, ast.RangeVar) or not range_var.relname or range_var.relpersistence == "t":
            return None
        name = catalog.quote_identifier(range_var.relname)
        return f"{catalog.quote_identifier(range_var.schemaname)}.{name}" if range_var.schemaname else name

    def dotted(names: Any) -> str | None:
        parts = [str(getattr(part, "sval", "")) for part in names or ()]
        if not parts or not all(parts):
            return None
        return ".".join(catalog.quote_identifier(part) for part in parts[-2:])

    def creating(range_var: Any) -> list[_Need]:
        if not isinstance(range_var, ast.RangeVar) or range_var.relpersistence == "t":
            return []  # a temporary table goes to pg_temp, which needs no grant on a schema
        return [_Need("schema", range_var.schemaname, sql)]

    relations = {
        ObjectType.OBJECT_TABLE,
        ObjectType.OBJECT_INDEX,
        ObjectType.OBJECT_SEQUENCE,
        ObjectType.OBJECT_VIEW,
        ObjectType.OBJECT_MATVIEW,
        ObjectType.OBJECT_FOREIGN_TABLE,
    }
    needs: list[_Need] = []
    for raw in statements:
        node = raw.stmt
        owned: list[str | None] = []
        if isinstance(node, (ast.AlterTableStmt, ast.IndexStmt, ast.RuleStmt, ast.RefreshMatViewStmt)):
            owned.append(relation(node.relation))
        elif isinstance(node, (ast.RenameStmt, ast.AlterObjectSchemaStmt, ast.ClusterStmt)):
            owned.append(relation(node.relation) if node.relation is not None else None)
        elif isinstance(node, ast.ReindexStmt) and node.kind in (
            ReindexObjectType.REINDEX_OBJECT_TABLE,
            ReindexObjectType.REINDEX_OBJECT_INDEX,
        ):
            owned.append(relation(node.relation))
        elif isinstance(node, (ast.CreatePolicyStmt, ast.AlterPolicyStmt)):
            owned.append(relation(node.table))
        elif isinstance(node, ast.DropStmt) and node.removeType in relations:
            owned.extend(dotted(names) for names in node.objects or ())
        elif isinstance(node, ast.CommentStmt) and node.objtype in relations:
            owned.append(dotted(node.object))
        elif isinstance(node, ast.CommentStmt) and node.objtype == ObjectType.OBJECT_COLUMN:
            owned.append(dotted(list(node.object or ())[:-1]))  # the column's table
        if isinstance(node, ast.CreateStmt):
            needs += creating(node.relation)
        elif isinstance(node, ast.CreateTableAsStmt) and node.into is not None:
            needs += creating(node.into.rel)
        elif isinstance(node, ast.ViewStmt):
            needs += creating(node.view)
        elif isinstance(node, ast.CreateSeqStmt):
            needs += creating(node.sequence)
        elif isinstance(node, ast.CompositeTypeStmt):
            needs += creating(node.typevar)
        elif isinstance(node, (ast.CreateEnumStmt, ast.CreateDomainStmt, ast.CreateFunctionStmt)):
            names = (
                node.typeName
                if isinstance(node, ast.CreateEnumStmt)
                else (node.domainname if isinstance(node, ast.CreateDomainStmt) else node.funcname)
            )
            parts = [str(getattr(part, "sval", "")) for part in names or ()]
            needs.append(_Need("schema", parts[-2] if len(parts) > 1 else None, sql))
        elif isinstance(node, ast.CreateSchemaStmt):
            needs.append(_Need("database", None, sql))
        elif isinstance(node, ast.CreateExtensionStmt) and node.extname:
            needs.append(_Need("extension", node.extname, sql))  # a trusted one: CREATE on the database
        elif (
            isinstance(node, ast.GrantStmt)
            and node.is_grant
            and node.objtype == ObjectType.OBJECT_TABLE
            and node.targtype == GrantTargetType.ACL_TARGET_OBJECT
        ):
            granted = tuple(
                str(privilege.priv_name).upper() for privilege in node.privileges or () if privilege.priv_name
            ) or _TABLE_PRIVILEGES
            needs += [_Need("grant", name, sql, granted) for name in map(relation, node.objects or ()) if name]
        needs += [_Need("owner", name, sql) for name in owned if name]
    return needs


def _with_grant_advice(failure: RehearsalFailure, role: catalog.RoleContext) -> RehearsalFailure:
    """A "permission denied" the rehearsal met (it ran with the role's privileges on the target): the GRANT to give."""
    import re

    denied = re.match(
        r"permission denied for (schema|table|sequence|view|materialized view|function) (\S+)", failure.message
    )
    if denied is None:
        return failure
    kind, name = denied.groups()
    statement = (failure.statement or "").lstrip().upper()
    if kind == "schema":
        wanted = "CREATE" if statement.startswith(("CREATE", "ALTER")) else "USAGE"
        grant = f"GRANT {wanted} ON SCHEMA {name} TO {_sql_name(role.role)}"
    elif kind == "function":
        grant = f"GRANT EXECUTE ON FUNCTION {name} TO {_sql_name(role.role)}"
    else:
        verbs = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "SELECT")
        wanted = next((verb for verb in verbs if statement.startswith(verb)), "the privilege the statement needs")
        if statement.startswith("CREATE") and "TRIGGER" in statement.split("(")[0]:
            wanted = "TRIGGER"
        grant = f"GRANT {wanted} ON {name} TO {_sql_name(role.role)}"
    return dataclasses.replace(
        failure,
        message=f"{failure.message}\nThe rehearsal ran with {role.role}'s privileges on the target, so the apply "
        f"would stop here too. {grant}, or apply as a role that has it.",
    )


_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def _grantable(needs: list[tuple[str, _Need]], revision: str, name: str) -> tuple[str, ...]:
    """Every privilege the revision's GRANTs name on relation ``name``."""
    return tuple(
        p for r, need in needs if r == revision and need.what == "grant" and need.name == name for p in need.privileges
    )


def _sql_name(name: str) -> str:
    """A name as it may be typed in a GRANT: bare when PostgreSQL would read it back unchanged."""
    import re

    from pglast.keywords import RESERVED_KEYWORDS

    bare = re.fullmatch(r"[a-z_][a-z0-9_]*", name) and name not in RESERVED_KEYWORDS
    return name if bare else catalog.quote_identifier(name)


# -- how: committing per revision (scratch, URL) ----------------------------------------


@dataclass
class _Run:
    """What running the work did, so far: its costs, a failure, warnings, and the schema after (read in the
    rolled-back transaction when the run ended in one; None: read it from what was committed)."""

    costs: list[RevisionCost] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    failure: RehearsalFailure | None = None
    warnings: list[str] = field(default_factory=list)
    after: catalog.SchemaSnapshot | None = None
    rolled_back_from: str | None = None  # the revision from which the rest ran in one rolled-back transaction


def _rehearse_committing(
    project: AlembicProject,
    where_db: Database,
    work: _Work,
    where: RehearsalPlace,
    description: str,
    with_data: bool,
    sizes: dict[str, catalog.TableSize],
) -> Rehearsal:
    containment = Containment(Mode.COMMITTING)
    with where_db.connect() as connection:
        shared_before = catalog.server_objects(connection)
        before = catalog.schema_snapshot(connection, version_table=work.version_table)
        connection.rollback()
        # A scratch or disposable database: its commits need not wait for the disk.
        commit_without_waiting_for_the_disk(connection)
        connection.commit()
        # The impact report shows locks on the target's tables only: with none, there is nothing to read.
        has_tables = bool(sizes)
        with containment.armed(connection), ServerWarnings().listening(connection) as heard:
            run = _run_contained(project, where_db, connection, work, containment, heard, has_tables)
        if run.after is None:
            if work.drop_baseline and run.failure is None:
                with connection.begin():
                    drop_baseline_schema(connection, version_table=work.version_table)
            run.after = catalog.schema_snapshot(connection, version_table=work.version_table)
            connection.rollback()
        shared_after = catalog.server_objects(connection)
        connection.rollback()
    if run.rolled_back_from is not None:
        description += (
            f"; from {run.rolled_back_from} on in one transaction that was rolled back, since it changes objects "
            "the whole server shares"
        )
    return Rehearsal(
        where=where,
        description=description,
        with_data=with_data,
        diff=catalog.diff_schemas(before, run.after),
        costs=tuple(run.costs),
        failure=run.failure or _escaped(shared_before, shared_after, run, containment),
        warnings=tuple(run.warnings),
        sizes=sizes,
        not_rehearsed=tuple(containment.not_rehearsed),
        server_wide=tuple(containment.server_wide),
        server_warnings=tuple(heard.heard),
    )


def _run_contained(
    project: AlembicProject,
    where_db: Database,
    connection: Connection,
    work: _Work,
    containment: Containment,
    heard: ServerWarnings,
    has_tables: bool,
) -> _Run:
    """Each revision commits, until one would change objects the whole server shares: from that revision on,
    the rest runs in one transaction that is rolled back (so nothing outside this database changes)."""
    from sqlalchemy.exc import DBAPIError

    run = _Run()
    bootstrapped = work.bootstrap is None
    try:
        if work.bootstrap is not None:
            with connection.begin():
                rehearse_bootstrap(work.bootstrap, project, connection)
            bootstrapped = True
        meter = _Meter(
            where_db.engine, connection, per_statement=False, read_locks=has_tables, version_table=work.version_table
        )
        try:
            _run_measured(project, connection, work, meter, run.running, run.costs, containment, heard)
            if connection.in_transaction():  # an env.py that does not begin its own transaction
                connection.commit()
        finally:
            meter.close()
        return run
    except MustRollBack as server_wide:
        reason = server_wide.what
        containment.abandon_transaction(connection)  # the revision that reached past the database: not committed
    except DBAPIError as err:
        run.failure = RehearsalFailure(_last(run.running), server_said(err), _statement_of(err))
        if run.costs and run.costs[-1].revision == run.failure.revision:
            run.costs.pop()  # measured, then its commit failed (a deferred constraint): it did not happen
        if connection.in_transaction():
            connection.rollback()
        return run
    if run.costs and run.running and run.costs[-1].revision == run.running[-1]:
        run.costs.pop()  # measured, then its commit was refused: it did not happen
    committed = {cost.revision for cost in run.costs}
    rest = [info for info in work.revisions if info.revision not in committed]
    run.rolled_back_from = rest[0].revision if rest else "the bootstrap"
    commits = next((info for info in rest if "autocommit_block" in revision_source(project, info)), None)
    if commits is not None:
        rest = rest[: rest.index(commits)]
        run.warnings.append(
            f"{commits.revision} and the revisions after it were not rehearsed: it commits (autocommit_block()), and "
            f"the rehearsal runs in one transaction that is rolled back from {run.rolled_back_from} on, because "
            f"that revision changes objects the whole server shares ({reason})."
        )
    connection.begin()
    containment.roll_back_from_here()
    meter = _Meter(connection, connection, per_statement=True, version_table=work.version_table)
    try:
        if not bootstrapped:
            assert work.bootstrap is not None
            rehearse_bootstrap(work.bootstrap, project, connection)
        rest_of_work = _Work(tuple(rest), work.downgrade, None, False, work.version_table)
        _run_measured(project, connection, rest_of_work, meter, run.running, run.costs, containment, heard)
        containment.verify_inside()
        if work.drop_baseline and commits is None:
            drop_baseline_schema(connection, version_table=work.version_table)
        run.after = catalog.schema_snapshot(connection, version_table=work.version_table)
    except LeftTransaction as left:
        raise _not_rehearsable(run.running, left, "in the transaction it had to be rolled back in") from None
    except DBAPIError as err:
        run.failure = RehearsalFailure(_last(run.running), server_said(err), _statement_of(err))
        run.after = None  # what the committed revisions left: read after the rollback
    finally:
        meter.close()
        containment.disarm()
        connection.rollback()
    return run


def _escaped(
    shared_before: catalog.ServerObjects, shared_after: catalog.ServerObjects, run: _Run, containment: Containment
) -> RehearsalFailure | None:
    """The last guard: objects the whole server shares that changed while the rehearsal ran, when a statement
    ran where no check before a commit could see it (outside a transaction: dynamic SQL in a DO block inside
    autocommit_block()). Databases that appear or go are other sessions' (CREATE DATABASE cannot run inside a
    DO block or a function, and a top-level one is never sent), and are left out."""
    if not containment.ran_outside_transactions:
        return None
    changes = catalog.server_object_changes(shared_before, shared_after, new_databases=False)
    if not changes:
        return None
    return RehearsalFailure(
        _last(run.running),
        "objects the whole server shares changed while the rehearsal ran, and a rehearsal must change nothing "
        "outside its own database: " + "; ".join(changes) + ". If a revision did this (dynamic SQL inside "
        "autocommit_block(), which commits at once), the change is committed: undo it by hand. If another session "
        "did, run again.",
        None,
    )


def _not_rehearsable(running: list[str], left: LeftTransaction, where: str) -> Refused:
    return Refused(
        f"Revision {_last(running)} cannot be rehearsed {where}: {left.how}, which would commit part of the "
        "migration during a dry run. Nothing was committed. Rehearse on a scratch copy (the default) or "
        "--rehearse-on URL.",
    )


# -- how: one rolled-back transaction on the target --------------------------------------


def _rehearse_on_target(
    project: AlembicProject,
    target: Database,
    work: _Work,
    options: RehearsalOptions,
    sizes: dict[str, catalog.TableSize],
) -> Rehearsal:
    from sqlalchemy.exc import DBAPIError, OperationalError

    for revision in work.revisions:
        source = revision_source(project, revision)
        if "autocommit_block" in source:
            raise Refused(
                f"Revision {revision.revision} uses autocommit_block(), which commits; it cannot be "
                "rehearsed inside a rolled-back transaction on the target. Rehearse on a scratch "
                "copy (the default) or --rehearse-on URL.",
                sections=(Section("Not rehearsable", str(revision.path)),),
            )
    costs: list[RevisionCost] = []
    failure = None
    warnings: list[str] = []
    # nextval() is not transactional: values the rehearsal takes stay taken after the rollback.
    sequences = _sequence_values(target)
    containment = Containment(Mode.ROLLED_BACK)
    with target.connect() as connection:
        shared_before = catalog.server_objects(connection)
        connection.rollback()
        transaction = connection.begin()
        running: list[str] = []
        with containment.armed(connection), ServerWarnings().listening(connection) as heard:
            # Before anything else, so that every statement after it is checked against this transaction.
            containment.roll_back_from_here()
            meter = _Meter(connection, connection, per_statement=True, version_table=work.version_table)
            try:
                # Whole milliseconds (Duration): nothing from a settings file is pasted into SQL.
                set_lock_timeout(connection, options.lock_timeout, local=True)
                set_statement_timeout(connection, options.statement_timeout, local=True)
                before = catalog.schema_snapshot(connection, version_table=work.version_table)
                if work.bootstrap is not None:
                    rehearse_bootstrap(work.bootstrap, project, connection)
                _run_measured(project, connection, work, meter, running, costs, containment, heard)
                containment.verify_inside()
                if work.drop_baseline:
                    drop_baseline_schema(connection, version_table=work.version_table)
                after = catalog.schema_snapshot(connection, version_table=work.version_table)
            except LeftTransaction as left:
                containment.disarm()
                transaction.rollback()
                raise _not_rehearsable(running, left, "on the target") from None
            except OperationalError as err:
                said = server_said(err)
                if "statement timeout" in said or "lock timeout" in said:
                    busiest = meter.strongest_lock()
                    warnings.append(
                        f"{_last(running)}: a statement takes more than "
                        f"{options.statement_timeout if 'statement' in said else options.lock_timeout}"
                        f"{f' under {busiest[1].value} on {busiest[0]}' if busiest else ''}; "
                        "the rest was not rehearsed."
                    )
                    after = before
                else:
                    failure = RehearsalFailure(_last(running), said, _statement_of(err))
                    after = before
            except DBAPIError as err:
                failure = RehearsalFailure(_last(running), server_said(err), _statement_of(err))
                after = before
            finally:
                meter.close()
                containment.disarm()
                if transaction.is_active:
                    transaction.rollback()
        shared_after = catalog.server_objects(connection)
        connection.rollback()
    warnings += _sequences_advanced(target, sequences, meter.relations_locked(), failed=failure is not None)
    run = _Run(running=running)
    return Rehearsal(
        where=RehearsalPlace.TARGET,
        description="the target itself, in one transaction that was rolled back",
        with_data=True,
        diff=catalog.diff_schemas(before, after),
        costs=tuple(costs),
        failure=failure or _escaped(shared_before, shared_after, run, containment),
        warnings=tuple(warnings),
        sizes=sizes,
        not_rehearsed=tuple(containment.not_rehearsed),
        server_wide=tuple(containment.server_wide),
        server_warnings=tuple(heard.heard),
    )


def _sequence_values(target: Database) -> dict[str, int | None] | None:
    """Read-only: the target's sequences' last values; None when one is locked (the check is then skipped)."""
    from sqlalchemy.exc import DBAPIError

    try:
        with target.connect() as connection:
            values = catalog.sequence_values(connection)
            connection.rollback()
            return values
    except DBAPIError:
        return None


def _sequences_advanced(
    target: Database, before: dict[str, int | None] | None, locked: frozenset[str], *, failed: bool
) -> list[str]:
    """Warnings for the sequences the rehearsal on the target moved on.

    A sequence counts as the rehearsal's when its backend held a lock on it (nextval() takes
    one until the transaction ends): other sessions take values meanwhile, and those are not
    its doing. After a failure the failing statement's locks were never read, so the others
    that moved are named as possibly the rehearsal's.
    """
    after = _sequence_values(target) if before is not None else None
    if before is None or after is None:
        return []

    def shown(value: int | None) -> str:
        return "unused" if value is None else str(value)

    moved = {name: (before[name], value) for name, value in after.items() if name in before and value != before[name]}
    ours = sorted(name for name in moved if name in locked)
    maybe = sorted(name for name in moved if name not in locked) if failed else []
    warnings = []
    if ours:
        warnings.append(
            "The rehearsal advanced the target's sequences, and nextval() is not rolled back: "
            + ", ".join(f"{name} {shown(moved[name][0])} → {shown(moved[name][1])}" for name in ours)
            + ". The values it took are skipped: the next rows get later ids (a gap), nothing else changed."
        )
    if maybe:
        warnings.append(
            "These sequences of the target moved while the rehearsal ran, by the failing statement or by "
            "other sessions (nextval() is not rolled back): "
            + ", ".join(f"{name} {shown(moved[name][0])} → {shown(moved[name][1])}" for name in maybe)
            + "."
        )
    return warnings


def _run_measured(
    project: AlembicProject,
    connection: Connection,
    work: _Work,
    meter: _Meter,
    running: list[str],
    costs: list[RevisionCost],
    containment: Containment,
    heard: ServerWarnings,
) -> None:
    """Run the work's revisions under the meter: each started one joins ``running``, each done one's cost ``costs``."""

    def before_each(revision: str) -> None:
        running.append(revision)
        containment.revision = heard.revision = revision
        meter.start()

    def after_each(revision: str, revision_connection: Connection) -> None:
        containment.verify_inside()
        costs.append(meter.finish(revision_connection, revision))

    project.env.run_revisions(
        connection,
        [revision.revision for revision in work.revisions],
        downgrade=work.downgrade,
        before_each=before_each,
        after_each=after_each,
    )


def _last(running: list[str]) -> str:
    """The revision that was running when something failed ("?" when none had started)."""
    return running[-1] if running else "?"


def revision_source(project: AlembicProject, revision: RevisionInfo) -> str:
    path = revision.path if revision.path.is_absolute() else project.settings.project_dir / revision.path
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _statement_of(err: Any) -> str | None:
    statement = getattr(err, "statement", None)
    return mask_secrets(statement) if statement else None


# -- measuring ---------------------------------------------------------------------------


class _Meter:
    """Statement timings, relation locks and rewrites, from SQLAlchemy events.

    Locks: where each revision commits (scratch, URL), what its transaction holds is read
    once, just before each commit (Alembic's, or one inside ``autocommit_block()``), which
    is everything the revision locked. On the target, where every revision shares one
    rolled-back transaction, they are read after each statement instead, so a revision is
    charged only with what it added, and a timeout can name the lock the statement held.

    Rewrites are looked for only among the relations that existed before the rehearsal:
    those are the target's, where a rewrite blocks traffic; a table the plan itself creates
    bothers no one yet. Reading just those keeps each revision's cost independent of how
    many revisions came before it.
    """

    def __init__(
        self,
        target: Engine | Connection,
        connection: Connection,
        *,
        per_statement: bool,
        version_table: str,
        read_locks: bool = True,
    ) -> None:
        from sqlalchemy import event

        self._target = target
        self._version_table = version_table
        self._per_statement = per_statement and read_locks
        self._read_locks_at_commit = read_locks and not per_statement
        self._statements: list[StatementCost] = []
        self._held: dict[str, LockMode] = {}  # per statement: what the shared transaction holds so far
        self._locks: dict[str, LockMode] = {}  # what the current revision took, strongest mode per table
        self._written: dict[str, int] = {}  # what the current revision updated or deleted, rows per table
        # pg_stat_xact_user_tables counts per transaction: the last reading, and the transaction it was in.
        self._writes_seen: tuple[object, dict[str, int]] = (None, {})
        self._in_revision = False
        self._statement_started = 0.0
        self._revision_started = 0.0
        self._filenodes = self._read_filenodes(connection)  # oid -> (name, filenode), before the rehearsal
        self._listeners: list[tuple[str, Any]] = [
            ("before_cursor_execute", self._before),
            ("after_cursor_execute", self._after),
        ]
        if self._read_locks_at_commit:
            self._listeners.append(("commit", self._before_commit))
        for name, listener in self._listeners:
            event.listen(target, name, listener)

    def close(self) -> None:
        from sqlalchemy import event

        for name, listener in self._listeners:
            event.remove(self._target, name, listener)

    def start(self) -> None:
        self._statements = []
        self._locks = {}
        self._written = {}
        self._in_revision = True
        self._revision_started = time.perf_counter()

    def finish(self, connection: Connection, revision: str) -> RevisionCost:
        """Inside the revision's transaction, after its last statement."""
        seconds = time.perf_counter() - self._revision_started
        raw = connection.connection.driver_connection
        if self._read_locks_at_commit:
            self._add_locks(self._read_locks(raw))
        self._add_writes(raw)
        self._in_revision = False
        after = self._filenodes_now(connection)
        rewritten = sorted(
            name for oid, (name, node) in self._filenodes.items() if oid in after and after[oid][1] != node
        )
        # What this revision left is what the next one starts from; dropped relations are gone.
        self._filenodes = after
        return RevisionCost(
            revision=revision,
            seconds=seconds,
            locks=tuple(sorted(self._locks.items())),
            rewritten=tuple(rewritten),
            statements=tuple(self._statements),
            rows_written=tuple(sorted((table, rows) for table, rows in self._written.items() if rows > 0)),
        )

    def relations_locked(self) -> frozenset[str]:
        """Every relation the shared transaction locked so far (read after each statement, on the target)."""
        return frozenset(self._held)

    def strongest_lock(self) -> tuple[str, LockMode] | None:
        if not self._held:
            return None
        return max(self._held.items(), key=lambda item: item[1].strength)

    def _read_filenodes(self, connection: Connection) -> dict[int, tuple[str, int]]:
        raw = connection.connection.driver_connection
        assert raw is not None
        rows = raw.execute(catalog.FILENODES_SQL).fetchall()
        return {int(oid): (name, int(node or 0)) for oid, name, node in rows}

    def _filenodes_now(self, connection: Connection) -> dict[int, tuple[str, int]]:
        """The current storage file of the relations known before; a dropped one is left out."""
        if not self._filenodes:
            return {}
        raw = connection.connection.driver_connection
        assert raw is not None
        nodes = catalog.current_filenodes(raw, list(self._filenodes))
        return {oid: (self._filenodes[oid][0], node) for oid, node in nodes.items()}

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._statement_started = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seconds = time.perf_counter() - self._statement_started
        if self._version_table in statement:  # the version table's bookkeeping, not the revision's work
            return
        new: tuple[tuple[str, LockMode], ...] = ()
        if self._per_statement:
            now = self._read_locks(cursor.connection)
            new = tuple(sorted((t, m) for t, m in now.items() if self._held.get(t) != m))
            self._held.update(now)
            self._add_locks(dict(new))
        self._statements.append(StatementCost(sql=statement.strip(), seconds=seconds, locks=new))

    def _before_commit(self, conn: Any) -> None:
        # A commit inside a revision (autocommit_block) releases what it locked so far: read it first.
        if self._in_revision:
            self._add_locks(self._read_locks(conn.connection.driver_connection))
            self._add_writes(conn.connection.driver_connection)

    def _add_locks(self, locks: dict[str, LockMode]) -> None:
        for table, mode in locks.items():
            self._locks[table] = mode.stronger(self._locks.get(table))

    def _add_writes(self, raw: Any) -> None:
        """Rows updated or deleted since the last reading: revisions may share one transaction (the
        counts then grow) or each have their own (the counts start again at zero)."""
        transaction, counts = catalog.rows_written_in_transaction(raw)
        seen_in, seen = self._writes_seen
        base = seen if transaction is not None and transaction == seen_in else {}
        for table, rows in counts.items():
            self._written[table] = self._written.get(table, 0) + rows - base.get(table, 0)
        self._writes_seen = (transaction, counts)

    @staticmethod
    def _read_locks(raw: Any) -> dict[str, LockMode]:
        """The relation locks this session holds, strongest mode per table."""
        now: dict[str, LockMode] = {}
        for table, name in raw.execute(catalog.RELATION_LOCKS_SQL).fetchall():
            mode = LockMode.of(name)
            if mode is not None:  # a predicate lock (SIReadLock, serializable transactions) locks out no one
                now[table] = mode.stronger(now.get(table))
        return now
