"""What the live database contains, read from PostgreSQL's catalog.

The only module that queries ``pg_catalog``. Everything it returns is plain data, so the
core can compare two readings (before and after a rehearsal) without a connection.
Objects that belong to an extension (e.g. pg_trgm's functions) are reported as the
extension, not one by one, and the tool's own schema is never part of the application's
schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# The tool's own records (bootstrap log, later audit and checksums) live here, apart from
# the application, so autogenerate and the application never see them.
TOOL_SCHEMA = "hindsight_migrate"

_RELKINDS = {
    "r": "table",
    "p": "table",
    "v": "view",
    "m": "materialized view",
    "S": "sequence",
    "f": "foreign table",
    "i": "index",
    "I": "index",
}
# The order a reader expects: containers first, then what lives in them.
_KIND_ORDER = {
    kind: rank
    for rank, kind in enumerate(
        [
            "schema",
            "extension",
            "enum type",
            "domain",
            "type",
            "table",
            "foreign table",
            "view",
            "materialized view",
            "sequence",
            "index",
            "function",
            "procedure",
        ]
    )
}
# Which of those make a database "not empty" for bootstrap: indexes belong to their table.
_CONTENT_KINDS = frozenset({"table", "view", "materialized view", "sequence", "foreign table"})


@dataclass(frozen=True, order=True)
class CatalogObject:
    kind: str  # "table", "index", "extension", "schema", "type", "function", ...
    schema: str | None
    name: str

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


_NOT_APPLICATION = """
    n.nspname NOT IN ('pg_catalog', 'information_schema', :tool_schema)
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
"""
_NOT_FROM_EXTENSION = """
    NOT EXISTS (SELECT 1 FROM pg_depend d
                WHERE d.classid = {catalog}::regclass AND d.objid = {oid} AND d.deptype = 'e')
"""

_OBJECTS_SQL = f"""
SELECT kind, schema_name, name FROM (
    SELECT c.relkind::text AS kind, n.nspname AS schema_name, c.relname AS name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I')
       AND {_NOT_APPLICATION}
       AND {_NOT_FROM_EXTENSION.format(catalog="'pg_class'", oid="c.oid")}
    UNION ALL
    SELECT 'extension', NULL, e.extname FROM pg_extension e WHERE e.extname <> 'plpgsql'
    UNION ALL
    SELECT 'schema', NULL, n.nspname FROM pg_namespace n
     WHERE {_NOT_APPLICATION} AND n.nspname <> 'public'
       AND {_NOT_FROM_EXTENSION.format(catalog="'pg_namespace'", oid="n.oid")}
    UNION ALL
    SELECT CASE t.typtype WHEN 'e' THEN 'enum type' WHEN 'd' THEN 'domain' ELSE 'type' END,
           n.nspname, t.typname
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE t.typtype IN ('e', 'd', 'r', 'm')
       AND {_NOT_APPLICATION}
       AND {_NOT_FROM_EXTENSION.format(catalog="'pg_type'", oid="t.oid")}
    UNION ALL
    SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END, n.nspname, p.proname
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE p.prokind IN ('f', 'p')
       AND {_NOT_APPLICATION}
       AND {_NOT_FROM_EXTENSION.format(catalog="'pg_proc'", oid="p.oid")}
) objects
ORDER BY 1, 2, 3
"""


def list_objects(connection: Connection) -> tuple[CatalogObject, ...]:
    """Read-only: the application's objects (tables, indexes, views, types, ...)."""
    from sqlalchemy import text

    rows = connection.execute(text(_OBJECTS_SQL), {"tool_schema": TOOL_SCHEMA}).all()
    objects = (CatalogObject(_RELKINDS.get(kind, kind), schema, name) for kind, schema, name in rows)
    return tuple(sorted(objects, key=lambda obj: (_KIND_ORDER.get(obj.kind, 99), obj)))


def content_objects(objects: tuple[CatalogObject, ...]) -> tuple[CatalogObject, ...]:
    """The objects that mean a database already holds a schema (tables, views, sequences)."""
    return tuple(obj for obj in objects if obj.kind in _CONTENT_KINDS)


def version_tables(connection: Connection) -> tuple[str, ...]:
    """Read-only: every ``alembic_version`` table, schema-qualified, in any schema."""
    from sqlalchemy import text

    rows = connection.execute(
        text(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'alembic_version' AND c.relkind IN ('r', 'p') ORDER BY 1"
        )
    ).scalars()
    return tuple(rows)


def table_exists(connection: Connection, schema: str, table: str) -> bool:
    from sqlalchemy import text

    found = connection.execute(
        text("SELECT to_regclass(quote_ident(:schema) || '.' || quote_ident(:table))"),
        {"schema": schema, "table": table},
    ).scalar()
    return found is not None
