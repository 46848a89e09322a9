"""The application's objects as the catalog lists them: kinds, snapshots of the schema, the version table, rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hindsight_migrate.schema import SchemaSnapshot

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
    rows = connection.execute(text(_OBJECTS_SQL), {"tool_schema": TOOL_SCHEMA}).all()
    objects = (CatalogObject(_RELKINDS.get(kind, kind), schema, name) for kind, schema, name in rows)
    return tuple(sorted(objects, key=lambda obj: (_KIND_ORDER.get(obj.kind, 99), obj)))


_USER_MADE_SQL = """
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = :tool_schema)
    OR EXISTS (SELECT 1 FROM pg_collation WHERE oid >= 16384)
    OR EXISTS (SELECT 1 FROM pg_ts_config WHERE oid >= 16384)
    OR EXISTS (SELECT 1 FROM pg_ts_dict WHERE oid >= 16384)
    OR EXISTS (SELECT 1 FROM pg_operator WHERE oid >= 16384)
    OR EXISTS (SELECT 1 FROM pg_cast WHERE oid >= 16384)
    OR EXISTS (SELECT 1 FROM pg_foreign_server)
    OR EXISTS (SELECT 1 FROM pg_event_trigger)
"""


def is_blank(connection: Connection) -> bool:
    """Read-only: nothing in the database beyond what CREATE DATABASE gives: no application object,
    no version table, no tool record, and none of the rarer things pg_dump would carry (collations,
    text search configurations, operators, casts, foreign servers, event triggers; 16384 is
    PostgreSQL's first OID for objects made after initdb)."""
    if list_objects(connection):
        return False
    return not connection.execute(text(_USER_MADE_SQL), {"tool_schema": TOOL_SCHEMA}).scalar()


def content_objects(objects: tuple[CatalogObject, ...]) -> tuple[CatalogObject, ...]:
    """The objects that mean a database already holds a schema (tables, views, sequences)."""
    return tuple(obj for obj in objects if obj.kind in _CONTENT_KINDS)


def version_tables(connection: Connection, *, name: str) -> tuple[str, ...]:
    """Read-only: every version table called ``name`` (env.py's version_table), schema-qualified, in any schema."""
    rows = connection.execute(
        text(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = :name AND c.relkind IN ('r', 'p') ORDER BY 1"
        ),
        {"name": name},
    ).scalars()
    return tuple(rows)


def table_exists(connection: Connection, schema: str, table: str) -> bool:
    found = connection.execute(
        text("SELECT to_regclass(quote_ident(:schema) || '.' || quote_ident(:table))"),
        {"schema": schema, "table": table},
    ).scalar()
    return found is not None


# -- schema snapshots, for the rehearsal's before/after diff ---------------------------


_COLUMNS_SQL = f"""
SELECT n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, c.oid::bigint, a.attnum
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
   AND c.relname <> :version_table AND {_NOT_APPLICATION}
"""
_INDEXES_SQL = f"""
SELECT n.nspname || '.' || ic.relname, pg_get_indexdef(i.indexrelid)
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_class tc ON tc.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = ic.relnamespace
 WHERE tc.relname <> :version_table AND {_NOT_APPLICATION}
"""
_CONSTRAINTS_SQL = f"""
SELECT n.nspname || '.' || c.relname || '.' || co.conname, pg_get_constraintdef(co.oid)
  FROM pg_constraint co
  JOIN pg_class c ON c.oid = co.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname <> :version_table AND {_NOT_APPLICATION}
"""


# What every snapshot is read under, whatever the session's search_path: pg_get_expr, format_type,
# pg_get_indexdef and pg_get_constraintdef leave out the schema of any name the search_path finds,
# so an env.py that runs SET search_path TO app between the reading before and the reading after
# turned nextval('app.widgets_id_seq'::regclass) into nextval('widgets_id_seq'::regclass) and every
# default and foreign key of the schema into a change. pg_catalog first and public are what a
# default search_path ("$user", public) resolves to on a database with no schema named after a role,
# so a project in public reads as it always did, and every other schema's names come out qualified.
SNAPSHOT_SEARCH_PATH = "pg_catalog, public"


def schema_snapshot(connection: Connection, *, version_table: str) -> SchemaSnapshot:
    """Read-only: tables and columns (type, nullability, default), indexes, constraints,
    extensions, and the names of everything else, read under :data:`SNAPSHOT_SEARCH_PATH`.

    The caller's search_path is set back afterwards (both are local to the transaction, which the
    snapshot reads in): a rehearsal on the target reads its "before" in the transaction its revisions
    then run in, under whatever search_path env.py chose."""
    saved = connection.execute(text("SELECT current_setting('search_path')")).scalar_one()
    connection.execute(text("SELECT set_config('search_path', :path, true)"), {"path": SNAPSHOT_SEARCH_PATH})
    snapshot = _schema_snapshot(connection, version_table=version_table)
    connection.execute(text("SELECT set_config('search_path', :path, true)"), {"path": saved})
    return snapshot


def _schema_snapshot(connection: Connection, *, version_table: str) -> SchemaSnapshot:
    params = {"tool_schema": TOOL_SCHEMA, "version_table": version_table}
    columns: dict[str, dict[str, str]] = {}
    table_ids: dict[str, int] = {}
    column_ids: dict[tuple[str, str], tuple[int, int]] = {}
    for table, column, type_, not_null, default, identity, oid, attnum in connection.execute(
        text(_COLUMNS_SQL), params
    ):
        table_ids[table] = int(oid)
        column_ids[(table, column)] = (int(oid), int(attnum))
        shape = type_ + (" NOT NULL" if not_null else "")
        if identity:
            shape += " GENERATED " + ("ALWAYS" if identity == "a" else "BY DEFAULT") + " AS IDENTITY"
        elif default is not None:
            shape += f" DEFAULT {default}"
        columns.setdefault(table, {})[column] = shape
    indexes = {name: definition for name, definition in connection.execute(text(_INDEXES_SQL), params)}
    constraints = {name: definition for name, definition in connection.execute(text(_CONSTRAINTS_SQL), params)}
    extensions = {
        name: version
        for name, version in connection.execute(
            text("SELECT extname, extversion FROM pg_extension WHERE extname <> 'plpgsql'")
        )
    }
    others = frozenset(
        f"{obj.kind} {obj.qualified_name}"
        for obj in list_objects(connection)
        if obj.kind not in ("table", "index", "extension") and obj.name != version_table
    )
    return SchemaSnapshot(columns, indexes, constraints, extensions, others, table_ids, column_ids)


def constraint_definition(connection: Connection, schema: str, table: str, name: str) -> str | None:
    """Read-only: a table's constraint as PostgreSQL prints it (pg_get_constraintdef); None when there is none."""
    return connection.execute(
        text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = :name "
            "AND conrelid = to_regclass(quote_ident(:schema) || '.' || quote_ident(:table))"
        ),
        {"schema": schema, "table": table, "name": name},
    ).scalar()


def column_exists(connection: Connection, schema: str, table: str, column: str) -> bool:
    """Read-only, and takes no lock: SQLAlchemy's inspector waits behind a lock held on the table
    (a long migration, a VACUUM FULL) where pg_attribute alone does not."""
    found = connection.execute(
        text(
            "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(quote_ident(:schema) || '.' || "
            "quote_ident(:table)) AND attname = :column AND attnum > 0 AND NOT attisdropped"
        ),
        {"schema": schema, "table": table, "column": column},
    ).scalar()
    return found is not None


def count_rows(
    connection: Connection, schema: str, table: str, *, non_null_column: str | None = None
) -> tuple[int, bool]:
    """Read-only: rows of ``schema.table`` (or rows where a column is not NULL), and whether exact.

    Counts for real under a short statement timeout; a table too big to count in time gets the
    planner's estimate instead, said to be one (for a column, scaled by its share of non-NULL
    values in pg_stats when the table has been analysed).
    """
    quoted = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    where = f" WHERE {quote_identifier(non_null_column)} IS NOT NULL" if non_null_column else ""
    rows = exact_count(connection, f"{quoted}{where}", statement_timeout="5s")
    if rows is not None:
        return rows, True
    estimate = connection.execute(
        text(
            "SELECT GREATEST(c.reltuples, 0) * (1 - COALESCE(s.null_frac, 0)) FROM pg_class c "
            "LEFT JOIN pg_stats s ON s.schemaname = :schema AND s.tablename = :table AND s.attname = :column "
            "WHERE c.oid = to_regclass(:quoted)"
        ),
        {"schema": schema, "table": table, "column": non_null_column, "quoted": quoted},
    ).scalar()
    return int(estimate or 0), False


def exact_count(
    connection: Connection, relation_and_filter: str, *, statement_timeout: str, lock_timeout: str | None = None
) -> int | None:
    """``count(*)`` of a quoted relation (and its WHERE), in a savepoint under the timeouts given; None when
    PostgreSQL refuses or gives up (no SELECT, a timeout, a lock not granted in time). The savepoint's
    rollback also undoes its SET LOCALs."""
    savepoint = connection.begin_nested() if connection.in_transaction() else connection.begin()
    try:
        connection.execute(text(f"SET LOCAL statement_timeout = '{statement_timeout}'"))
        if lock_timeout is not None:
            connection.execute(text(f"SET LOCAL lock_timeout = '{lock_timeout}'"))
        rows: int | None = int(connection.execute(text(f"SELECT count(*) FROM {relation_and_filter}")).scalar_one())
    except DBAPIError:
        rows = None
    savepoint.rollback()
    return rows


def quote_identifier(name: str) -> str:
    """As PostgreSQL's quote_ident always quoting: any name, quotes inside it doubled."""
    return '"' + name.replace('"', '""') + '"'


def sequence_values(connection: Connection) -> dict[str, int | None]:
    """Read-only: each application sequence's last value (None: never used, or not readable by this role).

    Reading a sequence waits behind an ALTER SEQUENCE in flight: for a second at most, then the driver's
    error (the caller skips what it wanted these for)."""
    connection.exec_driver_sql("SET LOCAL lock_timeout = '1s'")
    rows = connection.execute(
        text(
            "SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema', :tool_schema)"
        ),
        {"tool_schema": TOOL_SCHEMA},
    )
    return {name: int(value) if value is not None else None for name, value in rows}


def drop_application_objects(connection: Connection, *, version_table: str) -> tuple[str, ...]:
    """Writes, in the caller's transaction: drops every application object and the version table, so the database
    is as empty as before bootstrap; returns the statements it ran."""
    statements: list[str] = []
    # Dependent objects go with CASCADE; order only keeps the statements readable.
    for obj in list_objects(connection):
        quoted = (
            f"{quote_identifier(obj.schema)}.{quote_identifier(obj.name)}" if obj.schema else quote_identifier(obj.name)
        )
        if obj.kind in ("table", "foreign table", "view", "materialized view", "sequence"):
            keyword = {"foreign table": "FOREIGN TABLE", "materialized view": "MATERIALIZED VIEW"}.get(
                obj.kind, obj.kind.upper()
            )
            statements.append(f"DROP {keyword} IF EXISTS {quoted} CASCADE")
        elif obj.kind in ("enum type", "type", "domain"):
            statements.append(f"DROP {'DOMAIN' if obj.kind == 'domain' else 'TYPE'} IF EXISTS {quoted} CASCADE")
        elif obj.kind in ("function", "procedure"):
            statements.append(f"DROP ROUTINE IF EXISTS {quoted} CASCADE")
        elif obj.kind == "schema":
            statements.append(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
    for found in version_tables(connection, name=version_table):
        schema, _, name = found.partition(".")
        statements.append(f"DROP TABLE IF EXISTS {quote_identifier(schema)}.{quote_identifier(name)}")
    for statement in statements:
        connection.exec_driver_sql(statement)
    return tuple(statements)
