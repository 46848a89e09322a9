"""What the apply needs on the target that a copy cannot show: read from the statements, the measured diff and
the target's catalog."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from pglast import ast, parse_sql
from pglast.enums import GrantTargetType, ObjectType, ReindexObjectType
from pglast.keywords import RESERVED_KEYWORDS
from pglast.parser import ParseError

from hindsight_migrate.errors import Refused, Section
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.postgres import catalog
from hindsight_migrate.postgres.database import (
    Database,
    ServerWarning,
)
from hindsight_migrate.postgres.lock_modes import LockMode
from hindsight_migrate.review.rehearsal.model import Rehearsal, RehearsalFailure, Work
from hindsight_migrate.schema import Change

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection



# -- privileges: what the apply needs on the target that a copy cannot show --------------
#
# A scratch copy made by a role that is not a superuser belongs to that role, every object in it,
# and so does the scratch database (with its public schema). There, ALTER TABLE on a table another
# role owns, CREATE TABLE in a schema the role may not create in, and CREATE SCHEMA all pass; on
# the target they fail half-way through the apply. So the statements the rehearsal ran are read
# back (PostgreSQL's own parser, pglast) and the target's catalog is asked what each one needs:
# ownership (or membership of the owner), CREATE on the schema, CREATE on the database. Statements
# inside a DO block or a function are not followed: those the rehearsal on the target catches.


class Needed(Enum):
    """What a statement needs of the role that runs it."""

    OWNER = "owner"  # of a relation (Need.name)
    SCHEMA = "schema"  # CREATE on a schema (Need.name; None: the current one)
    DATABASE = "database"  # CREATE on the database
    EXTENSION = "extension"  # a trusted extension: CREATE on the database
    GRANT = "grant"  # the grant option on a relation (Need.privileges)


@dataclass(frozen=True)
class Need:
    what: Needed
    name: str | None
    statement: str
    privileges: tuple[str, ...] = ()  # GRANT: the privileges granted on the relation (ALL: every one)


def refuse_unless_the_apply_may_record(connection: Connection, role: catalog.RoleContext, work: Work) -> None:
    """Read-only: refuse a plan whose apply would fail before its first revision, when the role may not
    write the tool's records or move the version table (it would say only "permission denied")."""
    if role.superuser:
        return
    tool = catalog.TOOL_SCHEMA
    database = sql_name(role.database)
    missing: list[str] = []
    if not role.create_on_database:
        # PostgreSQL checks CREATE SCHEMA IF NOT EXISTS against the database even when the schema exists.
        missing.append(
            f"CREATE on database {role.database}: every run makes sure schema {tool} exists "
            f"(GRANT CREATE ON DATABASE {database} TO {sql_name(role.role)})"
        )
    if catalog.schema_create_rights(connection, [tool]).get(tool) is False:
        missing.append(
            f"USAGE and CREATE on schema {tool}, where the tool keeps its records "
            f"(GRANT USAGE, CREATE ON SCHEMA {tool} TO {sql_name(role.role)})"
        )
    records = [("apply_log", ("INSERT", "UPDATE")), ("applied_revisions", ("INSERT", "UPDATE", "DELETE"))]
    tables = [(f"{tool}.{table}", privileges) for table, privileges in records]
    tables += [
        (name, ("UPDATE", "DELETE") if work.downgrade else ("UPDATE",))
        for name in catalog.version_tables(connection, name=work.version_table)
    ]
    for table, privileges in tables:
        schema, _, name = table.partition(".")
        lacking = catalog.missing_table_privileges(connection, f"{sql_name(schema)}.{sql_name(name)}", privileges)
        if lacking:
            missing.append(
                f"{', '.join(lacking)} on {table} (GRANT {', '.join(lacking)} ON {sql_name(schema)}.{sql_name(name)} "
                f"TO {sql_name(role.role)})"
            )
    if missing:
        raise Refused(
            f"The apply would fail before its first revision: {role.role} lacks privileges it needs on the "
            f"target, to record the run and move the version table. Nothing was changed. Grant them, or run "
            "as the role that owns the schema.",
            sections=(Section("Missing", "\n".join(missing)),),
        )


def with_privileges_checked(rehearsal: Rehearsal, target: Database, role: catalog.RoleContext) -> Rehearsal:
    """Read-only on the target: the rehearsal, failed at the first revision whose statements need a
    privilege the role lacks on the target (when that comes before whatever else failed)."""
    if rehearsal.failure is not None:
        rehearsal = dataclasses.replace(rehearsal, failure=_with_grant_advice(rehearsal.failure, role))
    needs = [(cost.revision, need) for cost in rehearsal.costs for st in cost.statements for need in needs_of(st.sql)]
    needs += _needs_measured(rehearsal)
    if not needs:
        return rehearsal
    created = {change.name for change in rehearsal.diff if change.kind == "schema" and change.change is Change.ADDED}
    # CREATE EXTENSION IF NOT EXISTS of one the target has needs nothing: only those the plan adds count.
    added_extensions = {
        change.name for change in rehearsal.diff if change.kind == "extension" and change.change is Change.ADDED
    }
    with target.connect() as connection:
        owners = catalog.relation_ownership(connection, [n.name for _, n in needs if n.what is Needed.OWNER and n.name])
        schemas = [n.name or role.default_schema or "" for _, n in needs if n.what is Needed.SCHEMA]
        may_create = catalog.schema_create_rights(connection, [name for name in schemas if name])
        ungranted = {
            (revision, need.name): missing
            for revision, need in needs
            if need.what is Needed.GRANT and need.name
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
        if need.what is Needed.OWNER and need.name in owners and not owners[need.name].owner_rights:
            found = owners[need.name]
            problem = (
                f"must be owner of {found.kind} {found.relation}: on the target it belongs to {found.owner}, and "
                f"{role.role} is neither {found.owner} nor a member of it (in the scratch copy, which {role.role} "
                f"made, everything is its own). Apply as {found.owner} (or a member of it), or make {role.role} "
                "(or a role it is a member of) the owner."
            )
        elif need.what is Needed.SCHEMA:
            schema = need.name or role.default_schema
            if schema and schema not in created and may_create.get(schema) is False:
                problem = (
                    f"permission denied for schema {schema}: {role.role} may not create in it on the target (in "
                    f"the scratch copy it owns the database, and so {schema}). GRANT CREATE ON SCHEMA "
                    f"{sql_name(schema)} TO {sql_name(role.role)}, or create in a schema it may."
                )
        elif need.what is Needed.EXTENSION and need.name in added_extensions and not role.create_on_database:
            problem = (
                f"permission denied for database {role.database}: {role.role} may not create extension {need.name} "
                f"on the target (the scratch copy is its own database). GRANT CREATE ON DATABASE "
                f"{sql_name(role.database)} TO {sql_name(role.role)}, or have its owner create the extension first."
            )
        elif need.what is Needed.DATABASE and not role.create_on_database:
            problem = (
                f"permission denied for database {role.database}: {role.role} may not create schemas in it on the "
                f"target (the scratch copy is its own database). GRANT CREATE ON DATABASE {sql_name(role.database)} "
                f"TO {sql_name(role.role)}."
            )
        if problem is None:
            continue
        failing = rehearsal.failure
        order = [cost.revision for cost in rehearsal.costs]
        if failing is not None and (
            failing.revision is None
            or (failing.revision in order and order.index(failing.revision) < order.index(revision))
        ):
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


def _needs_measured(rehearsal: Rehearsal) -> list[tuple[str, Need]]:
    """What the measured schema diff needs, however the statements were written (a DO block, a function,
    dynamic SQL that no reading of the statements sees): to change a table of the target (a column, an
    index, a constraint, a rename, a drop), its owner's rights; to add a table, view or sequence to a
    schema, CREATE on that schema."""
    tables_before = set(rehearsal.sizes)
    needs: list[tuple[str, Need]] = []

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
        if change.kind == "table" and change.change in (Change.REMOVED, Change.RENAMED):
            table = change.before if change.change is Change.RENAMED else change.name
        elif change.kind in ("column", "constraint"):
            parent = (change.before if change.change is Change.RENAMED else change.name) or ""
            table = ".".join(parent.split(".")[:2])
        elif change.kind == "index":
            definition = change.before or change.after or ""
            found = re.search(r" ON (?:ONLY )?([^ (]+)", definition)
            table = found.group(1).replace('"', "") if found else None
        if table and table in tables_before:
            measured = Need(Needed.OWNER, quoted(table), "(measured: the schema diff changes it)")
            needs.append((changed_by(table), measured))
        if change.change is Change.ADDED and change.kind in ("table", "view", "materialized view", "sequence"):
            schema = change.name.partition(".")[0]
            needs.append((changed_by(change.name), Need(Needed.SCHEMA, schema, "(measured: the schema diff adds it)")))
    return needs


def needs_of(sql: str) -> list[Need]:
    """What privileges one statement needs beyond writing rows: whose relations it alters (ownership),
    where it creates (CREATE on a schema, on the database). Unparsable SQL needs nothing known."""
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

    def creating(range_var: Any) -> list[Need]:
        if not isinstance(range_var, ast.RangeVar) or range_var.relpersistence == "t":
            return []  # a temporary table goes to pg_temp, which needs no grant on a schema
        return [Need(Needed.SCHEMA, range_var.schemaname, sql)]

    relations = {
        ObjectType.OBJECT_TABLE,
        ObjectType.OBJECT_INDEX,
        ObjectType.OBJECT_SEQUENCE,
        ObjectType.OBJECT_VIEW,
        ObjectType.OBJECT_MATVIEW,
        ObjectType.OBJECT_FOREIGN_TABLE,
    }
    needs: list[Need] = []
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
            needs.append(Need(Needed.SCHEMA, parts[-2] if len(parts) > 1 else None, sql))
        elif isinstance(node, ast.CreateSchemaStmt):
            needs.append(Need(Needed.DATABASE, None, sql))
        elif isinstance(node, ast.CreateExtensionStmt) and node.extname:
            needs.append(Need(Needed.EXTENSION, node.extname, sql))  # a trusted one: CREATE on the database
        elif (
            isinstance(node, ast.GrantStmt)
            and node.is_grant
            and node.objtype == ObjectType.OBJECT_TABLE
            and node.targtype == GrantTargetType.ACL_TARGET_OBJECT
        ):
            granted = tuple(
                str(privilege.priv_name).upper() for privilege in node.privileges or () if privilege.priv_name
            ) or _TABLE_PRIVILEGES
            needs += [Need(Needed.GRANT, name, sql, granted) for name in map(relation, node.objects or ()) if name]
        needs += [Need(Needed.OWNER, name, sql) for name in owned if name]
    return needs


def _with_grant_advice(failure: RehearsalFailure, role: catalog.RoleContext) -> RehearsalFailure:
    """A "permission denied" the rehearsal met (it ran with the role's privileges on the target): the GRANT to give."""
    denied = re.match(
        r"permission denied for (schema|table|sequence|view|materialized view|function) (\S+)", failure.message
    )
    if denied is None:
        return failure
    kind, name = denied.groups()
    statement = (failure.statement or "").lstrip().upper()
    if kind == "schema":
        wanted = "CREATE" if statement.startswith(("CREATE", "ALTER")) else "USAGE"
        grant = f"GRANT {wanted} ON SCHEMA {name} TO {sql_name(role.role)}"
    elif kind == "function":
        grant = f"GRANT EXECUTE ON FUNCTION {name} TO {sql_name(role.role)}"
    else:
        verbs = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "SELECT")
        wanted = next((verb for verb in verbs if statement.startswith(verb)), "the privilege the statement needs")
        if statement.startswith("CREATE") and "TRIGGER" in statement.split("(")[0]:
            wanted = "TRIGGER"
        grant = f"GRANT {wanted} ON {name} TO {sql_name(role.role)}"
    return dataclasses.replace(
        failure,
        message=f"{failure.message}\nThe rehearsal ran with {role.role}'s privileges on the target, so the apply "
        f"would stop here too. {grant}, or apply as a role that has it.",
    )


_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def _grantable(needs: list[tuple[str, Need]], revision: str, name: str) -> tuple[str, ...]:
    """Every privilege the revision's GRANTs name on relation ``name``."""
    grants = [need for r, need in needs if r == revision and need.what is Needed.GRANT and need.name == name]
    return tuple(privilege for need in grants for privilege in need.privileges)


def sql_name(name: str) -> str:
    """A name as it may be typed in a GRANT: bare when PostgreSQL would read it back unchanged."""
    bare = re.fullmatch(r"[a-z_][a-z0-9_]*", name) and name not in RESERVED_KEYWORDS
    return name if bare else catalog.quote_identifier(name)
