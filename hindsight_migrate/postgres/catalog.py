"""What the live database contains, read from PostgreSQL's catalog.

The only module that queries ``pg_catalog``. Everything it returns is plain data, so the
core can compare two readings (before and after a rehearsal) without a connection.
Objects that belong to an extension (e.g. pg_trgm's functions) are reported as the
extension, not one by one, and the tool's own schema is never part of the application's
schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

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
    from sqlalchemy import text

    if list_objects(connection):
        return False
    return not connection.execute(text(_USER_MADE_SQL), {"tool_schema": TOOL_SCHEMA}).scalar()


def content_objects(objects: tuple[CatalogObject, ...]) -> tuple[CatalogObject, ...]:
    """The objects that mean a database already holds a schema (tables, views, sequences)."""
    return tuple(obj for obj in objects if obj.kind in _CONTENT_KINDS)


def version_tables(connection: Connection, *, name: str) -> tuple[str, ...]:
    """Read-only: every version table called ``name`` (env.py's version_table), schema-qualified, in any schema."""
    from sqlalchemy import text

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
    from sqlalchemy import text

    found = connection.execute(
        text("SELECT to_regclass(quote_ident(:schema) || '.' || quote_ident(:table))"),
        {"schema": schema, "table": table},
    ).scalar()
    return found is not None


# -- schema snapshots, for the rehearsal's before/after diff ---------------------------


@dataclass(frozen=True)
class SchemaSnapshot:
    """The application's schema as plain data: comparable without a connection."""

    columns: dict[str, dict[str, str]]  # table -> column -> "type, NOT NULL, DEFAULT x"
    indexes: dict[str, str]  # index -> definition
    constraints: dict[str, str]  # "table.constraint" -> definition
    extensions: dict[str, str]  # name -> version
    others: frozenset[str]  # views, sequences, types, functions: "kind name"
    # What PostgreSQL knows each table and column by, whatever its name: a table whose oid is
    # kept under another name was renamed (ALTER TABLE ... RENAME), not dropped and made anew,
    # and so was a column that keeps its (table oid, attnum). Only comparable within one database.
    table_ids: dict[str, int] = field(default_factory=dict)  # table -> pg_class oid
    column_ids: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (table, column) -> ids


@dataclass(frozen=True)
class SchemaChange:
    kind: str  # "table", "column", "index", "constraint", "extension", "view", ...
    name: str  # the name after (for a rename: the new name)
    change: str  # "added", "removed", "changed", "renamed"
    before: str | None  # the shape before; for a rename, the old name
    after: str | None  # the shape after; for a rename, the new name


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


def schema_snapshot(connection: Connection, *, version_table: str) -> SchemaSnapshot:
    """Read-only: tables and columns (type, nullability, default), indexes, constraints,
    extensions, and the names of everything else."""
    from sqlalchemy import text

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


def diff_schemas(before: SchemaSnapshot, after: SchemaSnapshot) -> tuple[SchemaChange, ...]:
    """What changed from ``before`` to ``after``, tables first, in a stable order; renames as renames."""
    changes: list[SchemaChange] = []
    renamed_to = _renamed_tables(before, after)  # old name -> new name
    renamed_from = {new: old for old, new in renamed_to.items()}
    for table in sorted((before.columns.keys() - renamed_to.keys()) | after.columns.keys()):
        old_name = renamed_from.get(table, table)
        old, new = before.columns.get(old_name), after.columns.get(table)
        if old is None or new is None:
            shape = ", ".join(f"{c} {t}" for c, t in (new or old or {}).items())
            changes.append(
                SchemaChange(
                    "table",
                    table,
                    "added" if old is None else "removed",
                    None if old is None else shape,
                    shape if old is None else None,
                )
            )
            continue
        if old_name != table:
            changes.append(SchemaChange("table", table, "renamed", old_name, table))
        changes += _column_changes(before, after, old_name, table)
    changes += _dict_changes("index", before.indexes, after.indexes)
    changes += _dict_changes("constraint", before.constraints, after.constraints)
    changes += _dict_changes("extension", before.extensions, after.extensions)
    for item in sorted(before.others ^ after.others):
        kind, _, name = item.rpartition(" ")
        added = item in after.others
        changes.append(SchemaChange(kind, name, "added" if added else "removed", None, None))
    return tuple(changes)


def _renamed_tables(before: SchemaSnapshot, after: SchemaSnapshot) -> dict[str, str]:
    new_name_of = {oid: table for table, oid in after.table_ids.items()}
    return {
        table: new_name_of[oid]
        for table, oid in before.table_ids.items()
        if oid in new_name_of and new_name_of[oid] != table and table not in after.columns
    }


def _column_changes(before: SchemaSnapshot, after: SchemaSnapshot, old_table: str, table: str) -> list[SchemaChange]:
    """One table's columns: a column that keeps its attnum under another name was renamed."""
    old, new = dict(before.columns[old_table]), dict(after.columns[table])
    new_name_of = {after.column_ids[(table, c)]: c for c in new if (table, c) in after.column_ids}
    changes: list[SchemaChange] = []
    renamed: dict[str, str] = {}  # old column -> new column, both present only under one name
    for column in old:
        ids = before.column_ids.get((old_table, column))
        target = new_name_of.get(ids) if ids is not None and old_table in before.table_ids else None
        if target is not None and target != column and target not in old and column not in new:
            renamed[column] = target
    for column, target in sorted(renamed.items(), key=lambda item: item[1]):
        changes.append(SchemaChange("column", f"{table}.{target}", "renamed", f"{table}.{column}", f"{table}.{target}"))
        old[target] = old.pop(column)  # what is left to compare is its shape, under its new name
    return changes + _dict_changes("column", old, new, prefix=f"{table}.")


def _dict_changes(kind: str, old: dict[str, str], new: dict[str, str], prefix: str = "") -> list[SchemaChange]:
    changes = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        change = "added" if before is None else "removed" if after is None else "changed"
        changes.append(SchemaChange(kind, prefix + name, change, before, after))
    return changes


# -- what a statement costs: locks, rewrites, sizes ------------------------------------

RELATION_LOCKS_SQL = """
SELECT n.nspname || '.' || c.relname, l.mode
  FROM pg_locks l
  JOIN pg_class c ON c.oid = l.relation
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
"""

# What this transaction wrote (rows inserted, updated, deleted) in each catalog the whole server
# shares. PostgreSQL counts per session and flushes between transactions, so a reading means
# something only against one taken at the same transaction's start. pg_shdepend is left out: it
# records which local objects depend on roles, and its rows go with the database they describe.
SHARED_WRITES_SQL = """
SELECT c.relname,
       pg_stat_get_xact_tuples_inserted(c.oid) + pg_stat_get_xact_tuples_updated(c.oid)
       + pg_stat_get_xact_tuples_deleted(c.oid)
  FROM pg_class c
 WHERE c.relisshared AND c.relkind = 'r' AND c.relname <> 'pg_shdepend'
"""

SHARED_CATALOG_WORDS = {
    "pg_authid": "roles",
    "pg_auth_members": "role memberships",
    "pg_db_role_setting": "role or database settings",
    "pg_database": "databases",
    "pg_shdescription": "comments on roles, databases or tablespaces",
    "pg_shseclabel": "security labels on roles, databases or tablespaces",
    "pg_tablespace": "tablespaces",
    "pg_parameter_acl": "privileges on server parameters",
    "pg_subscription": "subscriptions",
    "pg_replication_origin": "replication origins",
}

FILENODES_SQL = """
SELECT c.oid::bigint, n.nspname || '.' || c.relname, pg_relation_filenode(c.oid)::bigint
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'i', 'm', 't')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'hindsight_migrate')
   AND n.nspname NOT LIKE 'pg\\_temp%' AND n.nspname NOT LIKE 'pg\\_toast%'
"""


def rows_written_in_transaction(raw: Any) -> tuple[object, dict[str, int]]:
    """On a driver connection, inside a transaction: (its id, rows it updated or deleted per table).

    pg_stat_xact_user_tables counts what the current transaction did; its id tells one
    transaction's counts from the next one's. None when it has written nothing yet.
    """
    transaction = raw.execute("SELECT txid_current_if_assigned()").fetchone()[0]
    if transaction is None:
        return None, {}
    rows = raw.execute(
        "SELECT schemaname || '.' || relname, n_tup_upd + n_tup_del FROM pg_stat_xact_user_tables "
        "WHERE n_tup_upd + n_tup_del > 0"
    ).fetchall()
    return transaction, {table: int(count) for table, count in rows}


@dataclass(frozen=True)
class TableSize:
    table: str
    estimated_rows: int
    total_bytes: int


def table_sizes(connection: Connection) -> dict[str, TableSize]:
    """Read-only: each application table's row estimate and size (table, indexes, TOAST)."""
    from sqlalchemy import text

    rows = connection.execute(
        text(
            "SELECT n.nspname || '.' || c.relname, GREATEST(c.reltuples, 0)::bigint, "
            "pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind IN ('r', 'p', 'm') AND {_NOT_APPLICATION}"
        ),
        {"tool_schema": TOOL_SCHEMA},
    )
    return {name: TableSize(name, int(estimate), int(size)) for name, estimate, size in rows}


def database_size(connection: Connection) -> int:
    from sqlalchemy import text

    return int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


@dataclass(frozen=True)
class Blocker:
    """A session that holds a lock another one waits for: who it is, never what it runs (it may hold data)."""

    pid: int
    application: str
    user: str
    state: str  # "idle in transaction", "active", ...
    transaction_seconds: float | None  # how long its transaction has been open


def blockers_of(connection: Connection, pid: int) -> tuple[Blocker, ...]:
    """Read-only: the sessions that block backend ``pid`` right now (pg_blocking_pids), longest-open first."""
    from sqlalchemy import text

    rows = connection.execute(
        text(
            "SELECT a.pid, a.application_name, a.usename, a.state, "
            "EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)::float "
            "FROM pg_stat_activity a WHERE a.pid = ANY(pg_blocking_pids(:pid)) "
            "ORDER BY a.xact_start NULLS LAST"
        ),
        {"pid": pid},
    ).all()
    return tuple(Blocker(int(p), app or "", user or "", state or "", seconds) for p, app, user, state, seconds in rows)


def invalid_indexes(connection: Connection) -> frozenset[str]:
    """Read-only: indexes left invalid (a CREATE INDEX CONCURRENTLY that failed or was cancelled)."""
    from sqlalchemy import text

    rows = connection.execute(
        text(
            "SELECT n.nspname || '.' || c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid AND {_NOT_APPLICATION}"
        ),
        {"tool_schema": TOOL_SCHEMA},
    ).scalars()
    return frozenset(rows)


def constraint_definition(connection: Connection, schema: str, table: str, name: str) -> str | None:
    """Read-only: a table's constraint as PostgreSQL prints it (pg_get_constraintdef); None when there is none."""
    from sqlalchemy import text

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
    from sqlalchemy import text

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
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    quoted = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    where = f" WHERE {quote_identifier(non_null_column)} IS NOT NULL" if non_null_column else ""
    savepoint = connection.begin_nested() if connection.in_transaction() else connection.begin()
    try:
        connection.execute(text("SET LOCAL statement_timeout = '5s'"))
        rows = int(connection.execute(text(f"SELECT count(*) FROM {quoted}{where}")).scalar_one())
        savepoint.rollback()
        return rows, True
    except DBAPIError:
        savepoint.rollback()
    estimate = connection.execute(
        text(
            "SELECT GREATEST(c.reltuples, 0) * (1 - COALESCE(s.null_frac, 0)) FROM pg_class c "
            "LEFT JOIN pg_stats s ON s.schemaname = :schema AND s.tablename = :table AND s.attname = :column "
            "WHERE c.oid = to_regclass(:quoted)"
        ),
        {"schema": schema, "table": table, "column": non_null_column, "quoted": quoted},
    ).scalar()
    return int(estimate or 0), False


def quote_identifier(name: str) -> str:
    """As PostgreSQL's quote_ident always quoting: any name, quotes inside it doubled."""
    return '"' + name.replace('"', '""') + '"'


# -- the server and the applying role: scratch databases, --rehearse-on, privileges ------


@dataclass(frozen=True)
class DatabaseIdentity:
    """Which database a connection reached, whatever its URL said (host or socket, user, options)."""

    system_identifier: int | None  # pg_control_system(): the cluster, since initdb (None: not readable)
    server_started: str  # pg_postmaster_start_time(): tells a clone of the cluster from the cluster
    oid: int
    name: str

    def same_as(self, other: DatabaseIdentity) -> bool:
        # A physical copy (a restored base backup, a promoted standby) keeps the cluster's system
        # identifier and its database oids; it is still another server, started at another time.
        cluster = (
            self.system_identifier == other.system_identifier
            if self.system_identifier is not None and other.system_identifier is not None
            else True
        )
        return cluster and (self.server_started, self.oid, self.name) == (other.server_started, other.oid, other.name)


def database_identity(connection: Connection) -> DatabaseIdentity:
    """Read-only: the cluster, server start and database oid of the database ``connection`` is in."""
    from sqlalchemy import text

    readable = connection.execute(text("SELECT has_function_privilege('pg_control_system()', 'EXECUTE')")).scalar()
    system = (
        connection.execute(text("SELECT system_identifier FROM pg_control_system()")).scalar() if readable else None
    )
    started, oid, name = connection.execute(
        text(
            "SELECT pg_postmaster_start_time()::text, d.oid::bigint, d.datname FROM pg_database d "
            "WHERE d.datname = current_database()"
        )
    ).one()
    return DatabaseIdentity(int(system) if system is not None else None, str(started), int(oid), str(name))


def database_name_oid_version(connection: Connection) -> tuple[str, int, str]:
    """Read-only: the current database's name and oid, and the server's version (a plan file records them)."""
    from sqlalchemy import text

    name, oid, version = connection.execute(
        text(
            "SELECT current_database(), d.oid::bigint, current_setting('server_version') "
            "FROM pg_database d WHERE d.datname = current_database()"
        )
    ).one()
    return str(name), int(oid), str(version)


@dataclass(frozen=True)
class AdvisoryHolder:
    pid: int
    application: str
    user: str
    address: str | None  # None: a local socket
    connected_since: datetime


def advisory_lock_holder(connection: Connection, namespace: int, key: int) -> AdvisoryHolder | None:
    """Read-only: the session holding the session-level advisory lock (namespace, key), if one does."""
    from sqlalchemy import text

    row = connection.execute(
        text(
            "SELECT a.pid, a.application_name, a.usename, a.client_addr::text, a.backend_start "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted "
            # Advisory locks belong to one database: a run on another database of the server is not the holder.
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid::bigint = :ns AND l.objid::bigint = :key AND l.objsubid = 2"
        ),
        {"ns": namespace, "key": key},
    ).first()
    if row is None:
        return None
    pid, application, user, address, started = row
    return AdvisoryHolder(int(pid), application or "", user or "", address, started)


def advisory_lock_held_by(connection: Connection, namespace: int, key: int, pid: int) -> bool:
    """Read-only: whether session ``pid`` still holds the session-level advisory lock (namespace, key) here."""
    from sqlalchemy import text

    return bool(
        connection.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.pid = :pid AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid::bigint = :ns AND l.objid::bigint = :key AND l.objsubid = 2)"
            ),
            {"ns": namespace, "key": key, "pid": pid},
        ).scalar()
    )


def current_filenodes(raw: Any, oids: list[int]) -> dict[int, int]:
    """On a driver connection: the storage file of each relation in ``oids`` that still exists."""
    rows = raw.execute(
        "SELECT oid::bigint, pg_relation_filenode(oid)::bigint FROM unnest(%s::oid[]) AS oid", (oids,)
    ).fetchall()
    return {int(oid): int(node) for oid, node in rows if node is not None}


def databases_starting_with(connection: Connection, prefix: str) -> tuple[str, ...]:
    """Read-only: the server's databases whose name starts with ``prefix``."""
    from sqlalchemy import text

    rows = connection.execute(
        text("SELECT datname FROM pg_database WHERE starts_with(datname, :prefix) ORDER BY 1"), {"prefix": prefix}
    ).scalars()
    return tuple(rows)


# -- what the whole server shares -----------------------------------------------------------
#
# Roles, memberships, settings, databases, tablespaces and parameter privileges, each as a name
# and the facts that say what it is, read from the views any role may read (pg_roles hides
# passwords). Scratch databases (of any run) are left out: they come and go by design; so is a database
# another session is dropping (PostgreSQL marks it invalid, connection limit -2, while it goes).
_SERVER_OBJECTS_SQL = r"""
SELECT 'role', r.rolname, concat_ws(' ', CASE WHEN r.rolsuper THEN 'superuser' END,
       CASE WHEN r.rolcreaterole THEN 'createrole' END, CASE WHEN r.rolcreatedb THEN 'createdb' END,
       CASE WHEN r.rolcanlogin THEN 'login' END, CASE WHEN r.rolreplication THEN 'replication' END,
       CASE WHEN r.rolbypassrls THEN 'bypassrls' END, CASE WHEN NOT r.rolinherit THEN 'noinherit' END,
       'connection limit ' || r.rolconnlimit, 'valid until ' || r.rolvaliduntil,
       'comment ' || shobj_description(r.oid, 'pg_authid'))
  FROM pg_roles r
UNION ALL
SELECT 'membership', m.rolname || ' in ' || g.rolname, CASE WHEN a.admin_option THEN 'with admin option' END
  FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member JOIN pg_roles g ON g.oid = a.roleid
UNION ALL
SELECT 'settings', coalesce('role ' || r.rolname, 'every role') || ' in ' || coalesce('database ' || d.datname,
       'every database'), array_to_string(s.setconfig, ', ')
  FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase
UNION ALL
SELECT 'database', d.datname, concat_ws(' ', 'owner ' || pg_get_userbyid(d.datdba), 'privileges ' || d.datacl::text,
       'connection limit ' || d.datconnlimit, CASE WHEN NOT d.datallowconn THEN 'no connections' END,
       CASE WHEN d.datistemplate THEN 'template' END, 'comment ' || shobj_description(d.oid, 'pg_database'))
  FROM pg_database d WHERE NOT starts_with(d.datname, 'hindsight_rehearsal_') AND d.datconnlimit <> -2
UNION ALL
SELECT 'tablespace', t.spcname, concat_ws(' ', 'owner ' || pg_get_userbyid(t.spcowner),
       'privileges ' || t.spcacl::text, 'options ' || t.spcoptions::text,
       'comment ' || shobj_description(t.oid, 'pg_tablespace'))
  FROM pg_tablespace t
"""
# PostgreSQL 15 added privileges on parameters (GRANT SET ON PARAMETER).
_PARAMETER_PRIVILEGES_SQL = "SELECT 'parameter privileges', parname, paracl::text FROM pg_parameter_acl"


@dataclass(frozen=True)
class ServerObjects:
    """What the whole server shares, as (kind, name) -> the facts that say what it is."""

    objects: dict[tuple[str, str], str]


def server_objects(connection: Connection) -> ServerObjects:
    """Read-only: roles, memberships, settings, databases, tablespaces and parameter privileges of the server."""
    rows = list(connection.exec_driver_sql(_SERVER_OBJECTS_SQL))
    if connection.exec_driver_sql("SELECT to_regclass('pg_catalog.pg_parameter_acl') IS NOT NULL").scalar():
        rows += list(connection.exec_driver_sql(_PARAMETER_PRIVILEGES_SQL))
    return ServerObjects({(str(kind), str(name)): str(facts or "") for kind, name, facts in rows})


def server_object_changes(before: ServerObjects, after: ServerObjects, *, new_databases: bool) -> tuple[str, ...]:
    """In words: what was added, removed or changed between two readings of :func:`server_objects`
    (with ``new_databases`` false, databases that appeared or went are not counted)."""
    changes = []
    for key in sorted(set(before.objects) | set(after.objects)):
        kind, name = key
        if not new_databases and kind == "database" and (key not in before.objects or key not in after.objects):
            continue
        if key not in before.objects:
            changes.append(f"{kind} {name} appeared")
        elif key not in after.objects:
            changes.append(f"{kind} {name} is gone")
        elif before.objects[key] != after.objects[key]:
            was, now = before.objects[key] or "nothing", after.objects[key] or "nothing"
            changes.append(f"{kind} {name} changed (was: {was}; now: {now})")
    return tuple(changes)


def backend_pid(connection: Connection) -> int:
    """This session's server process id."""
    return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def sessions_in_database(connection: Connection, name: str, *, but: int) -> tuple[int, ...]:
    """Read-only: the server processes connected to database ``name``, other than ``but``."""
    from sqlalchemy import text

    rows = connection.execute(
        text("SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> :but"), {"name": name, "but": but}
    ).scalars()
    return tuple(int(pid) for pid in rows)


def terminate_sessions(connection: Connection, pids: Iterable[int]) -> int:
    """Writes (ends sessions): how many of ``pids`` were signalled to end (pg_terminate_backend)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    ended = 0
    for pid in pids:
        try:
            ended += bool(connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar())
        except DBAPIError:  # another role's session, which this role may not signal: not ended
            continue
    return ended


def advisory_keys_held(connection: Connection, namespace: int) -> frozenset[int]:
    """Read-only: the second keys of every pg_advisory_lock(namespace, key) any session on the server
    holds or waits for (pg_locks is cluster-wide; the key shows as an unsigned oid)."""
    from sqlalchemy import text

    rows = connection.execute(
        text(
            "SELECT l.objid::bigint FROM pg_locks l WHERE l.locktype = 'advisory' "
            "AND l.classid::bigint = :namespace AND l.objsubid = 2"
        ),
        {"namespace": namespace},
    ).scalars()
    return frozenset(int(key) for key in rows)


def sequence_values(connection: Connection) -> dict[str, int | None]:
    """Read-only: each application sequence's last value (None: never used, or not readable by this role).

    Reading a sequence waits behind an ALTER SEQUENCE in flight: for a second at most, then the driver's
    error (the caller skips what it wanted these for)."""
    from sqlalchemy import text

    connection.exec_driver_sql("SET LOCAL lock_timeout = '1s'")
    rows = connection.execute(
        text(
            "SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema', :tool_schema)"
        ),
        {"tool_schema": TOOL_SCHEMA},
    )
    return {name: int(value) if value is not None else None for name, value in rows}


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
    from sqlalchemy import text

    role, superuser, database, on_database, schema = connection.execute(
        text(
            "SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
            "current_database(), has_database_privilege(current_database(), 'CREATE'), current_schema()"
        )
    ).one()
    return RoleContext(str(role), bool(superuser), str(database), bool(on_database), schema)


def schema_create_rights(connection: Connection, schemas: Iterable[str]) -> dict[str, bool | None]:
    """Read-only: whether this role may create in each schema; None for a schema the database lacks."""
    from sqlalchemy import bindparam, text

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
    from sqlalchemy import bindparam, text

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
    from sqlalchemy import text

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
    from sqlalchemy import Text
    from sqlalchemy.dialects.postgresql import ARRAY

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
    from sqlalchemy import text

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
