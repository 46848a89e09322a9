"""The applying role: what it may do on the target, and the script that gives a copy the same privileges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

from hindsight_migrate.postgres.catalog.objects import _RELKINDS, TOOL_SCHEMA

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class RoleContext:
    """The role a connection acts as, and what it may create in its database."""

    role: str
    superuser: bool
    database: str
    create_on_database: bool  # CREATE SCHEMA (and a trusted extension) needs it
    default_schema: str | None  # where an unqualified CREATE goes (current_schema())


def role_context(connection: Connection) -> RoleContext:
    """Read-only: who the connection is, and whether it may create schemas in this database."""
    role, superuser, database, on_database, schema = connection.execute(
        text(
            "SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
            "current_database(), has_database_privilege(current_database(), 'CREATE'), current_schema()"
        )
    ).one()
    return RoleContext(str(role), bool(superuser), str(database), bool(on_database), schema)


def schema_create_rights(connection: Connection, schemas: Iterable[str]) -> dict[str, bool | None]:
    """Read-only: whether this role may create in each schema; None for a schema the database lacks."""
    wanted = sorted(set(schemas))
    if not wanted:
        return {}
    rows = connection.execute(
        text(
            "SELECT s.name, has_schema_privilege(n.oid, 'CREATE') FROM unnest(:schemas) AS s(name) "
            "LEFT JOIN pg_namespace n ON n.nspname = s.name"
        ).bindparams(bindparam("schemas", type_=_text_array())),
        {"schemas": wanted},
    )
    return {name: (bool(may) if may is not None else None) for name, may in rows}


@dataclass(frozen=True)
class RelationOwnership:
    """Who owns a relation, and whether this role has the owner's privileges (is it, or a member)."""

    relation: str  # schema.name, as PostgreSQL resolved it
    kind: str  # "table", "index", "sequence", "view", ...
    owner: str
    owner_rights: bool  # pg_has_role(owner, 'USAGE'): what "must be owner of" checks


def relation_ownership(connection: Connection, names: Iterable[str]) -> dict[str, RelationOwnership]:
    """Read-only: ownership of each relation named (quoted, optionally schema-qualified, resolved
    on this connection's search_path); a name that resolves to nothing is left out. Takes no lock."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = connection.execute(
        text(
            "SELECT q.name, n.nspname || '.' || c.relname, c.relkind::text, pg_get_userbyid(c.relowner), "
            "pg_has_role(c.relowner, 'USAGE') FROM unnest(:names) AS q(name) "
            f"JOIN pg_class c ON c.oid = {_regclass('q.name')} JOIN pg_namespace n ON n.oid = c.relnamespace"
        ).bindparams(bindparam("names", type_=_text_array())),
        {"names": wanted},
    )
    return {
        name: RelationOwnership(relation, _RELKINDS.get(kind, kind), owner, bool(rights))
        for name, relation, kind, owner, rights in rows
    }


def missing_table_privileges(
    connection: Connection, table: str, privileges: Iterable[str], *, grant_option: bool = False
) -> tuple[str, ...] | None:
    """Read-only: which of ``privileges`` (SELECT, INSERT, UPDATE, ...) this role lacks on ``table``
    (quoted, optionally qualified), or may not grant with ``grant_option``; None when there is no such table."""
    oid = connection.execute(text(f"SELECT {_regclass(':table')}::oid"), {"table": table}).scalar()
    if oid is None:
        return None
    missing = []
    for privilege in privileges:
        # One at a time: has_table_privilege(…, 'INSERT, UPDATE') is true when any one of them is held.
        held = connection.execute(
            text("SELECT has_table_privilege(CAST(:oid AS oid), :privilege)"),
            {"oid": oid, "privilege": f"{privilege} WITH GRANT OPTION" if grant_option else privilege},
        ).scalar()
        if not held:
            missing.append(privilege)
    return tuple(missing)


def _regclass(name: str) -> str:
    """SQL for the relation ``name`` (an SQL expression holding a quoted, maybe qualified name) stands for, or NULL.

    A qualified name is looked up in the catalog, not by to_regclass(), which raises "permission denied for
    schema" when the role has no USAGE on it: a question about privileges must not fail for lack of one.
    """
    return (
        f"(CASE WHEN array_length(parse_ident({name}), 1) = 1 THEN to_regclass({name}) "
        "ELSE (SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = (parse_ident({name}))[1] AND c.relname = (parse_ident({name}))[2]) END)"
    )


def _text_array() -> Any:
    return ARRAY(Text())


# -- the applying role's privileges, mirrored into a copy ----------------------------------
#
# A copy restored by a role that is not a superuser belongs to that role, with every privilege.
# What the role may do on the target is read here (has_*_privilege: grants to it, to PUBLIC and to
# roles it belongs to, and an owner's own) and written into the copy as its privileges there: an
# owner may revoke its own, so an INSERT, a TRUNCATE, a trigger or a SELECT … FOR UPDATE the
# target would refuse is refused in the rehearsal too, wherever it is written (a DO block, a
# function). The version table and the tool's schema are left as they are: what the apply needs
# there is checked on the target, with the GRANT to give.
_MIRRORED_SCHEMAS = f"""
n.nspname NOT IN ('pg_catalog', 'information_schema', '{TOOL_SCHEMA}') AND n.nspname NOT LIKE 'pg\\_%'
"""
_NOT_EXTENSION_MEMBER = """
NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = {catalog}::regclass AND e.objid = {oid} AND e.deptype = 'e')
"""
_MIRROR_RELATIONS_SQL = f"""
SELECT format('%I.%I', n.nspname, c.relname), c.relkind = 'S',
       ARRAY(SELECT p FROM unnest(CASE WHEN c.relkind = 'S' THEN ARRAY['USAGE', 'SELECT', 'UPDATE']
                                  ELSE ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES',
                                             'TRIGGER'] END) AS p
              WHERE CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, p)
                         ELSE has_table_privilege(c.oid, p) END),
       ARRAY(SELECT format('%s (%I)', p, a.attname)
               FROM pg_attribute a, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) AS p
              WHERE c.relkind <> 'S' AND a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                AND NOT has_table_privilege(c.oid, p) AND has_column_privilege(c.oid, a.attnum, p))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND {_MIRRORED_SCHEMAS}
   AND c.relname <> :version_table
   AND {_NOT_EXTENSION_MEMBER.format(catalog="'pg_class'", oid="c.oid")}
"""
_MIRROR_SCHEMAS_SQL = f"""
SELECT format('%I', n.nspname), has_schema_privilege(n.oid, 'USAGE'), has_schema_privilege(n.oid, 'CREATE')
  FROM pg_namespace n
 WHERE {_MIRRORED_SCHEMAS} AND {_NOT_EXTENSION_MEMBER.format(catalog="'pg_namespace'", oid="n.oid")}
"""
_MIRROR_FUNCTIONS_SQL = f"""
SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.prokind IN ('f', 'p') AND {_MIRRORED_SCHEMAS} AND NOT has_function_privilege(p.oid, 'EXECUTE')
   AND {_NOT_EXTENSION_MEMBER.format(catalog="'pg_proc'", oid="p.oid")}
"""


def privileges_script(connection: Connection, *, version_table: str) -> str:
    """Read-only (on the target): the SQL that gives a copy, made by this role, this role's privileges on the target.

    Run in the copy by the same role, which owns everything there: it revokes its own privileges (and
    PUBLIC's, which the copy's defaults give) on every table, view, sequence, schema and function, and
    grants back exactly what the target lets it do, column privileges included.
    """
    statements = []
    # PostgreSQL 14 gave the public schema to pg_database_owner: the copy's database owner holds it through that role.
    owner_role = connection.exec_driver_sql("SELECT to_regrole('pg_database_owner') IS NOT NULL").scalar()
    schema_holders = "PUBLIC, CURRENT_USER" + (", pg_database_owner" if owner_role else "")
    for schema, usage, create in connection.execute(text(_MIRROR_SCHEMAS_SQL)):
        statements.append(f"REVOKE ALL ON SCHEMA {schema} FROM {schema_holders}")
        granted = [name for name, allowed in (("USAGE", usage), ("CREATE", create)) if allowed]
        if granted:
            statements.append(f"GRANT {', '.join(granted)} ON SCHEMA {schema} TO CURRENT_USER")
    relations = connection.execute(text(_MIRROR_RELATIONS_SQL), {"version_table": version_table})
    for relation, is_sequence, privileges, columns in relations:
        kind = "SEQUENCE" if is_sequence else "TABLE"
        statements.append(f"REVOKE ALL ON {kind} {relation} FROM PUBLIC, CURRENT_USER")
        if privileges:
            statements.append(f"GRANT {', '.join(privileges)} ON {kind} {relation} TO CURRENT_USER")
        if columns:
            statements.append(f"GRANT {', '.join(columns)} ON TABLE {relation} TO CURRENT_USER")
    for function, kind in connection.execute(text(_MIRROR_FUNCTIONS_SQL)):
        statements.append(f"REVOKE ALL ON {kind} {function} FROM PUBLIC, CURRENT_USER")
    return ";\n".join(statements) + (";\n" if statements else "")
