"""What sessions hold and do: relation locks, rewrites, rows written, sizes, blockers, advisory locks, sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hindsight_migrate.postgres.catalog.objects import _NOT_APPLICATION, TOOL_SCHEMA, exact_count, quote_identifier

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Connection


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


def event_triggers_enabled(connection: Connection) -> bool:
    """Read-only: whether an enabled DDL event trigger may run (and write) on any statement here."""
    raw = connection.connection.driver_connection
    assert raw is not None
    return bool(raw.execute("SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtenabled <> 'D')").fetchone()[0])


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
    # Rows: counted when rows_exact, else the planner's estimate scaled to the table's size now; None when
    # nothing can say (a big table never analysed). The name is the plan document's, kept for its readers.
    estimated_rows: int | None
    total_bytes: int
    rows_exact: bool = False
    partitioned: bool = False  # its rows and bytes are its partitions' (which are listed too): never add both up


# A table whose heap is at most this is counted (count(*) reads it in milliseconds), as many as fit in
# COUNTED_BYTES_AT_MOST together: a reviewer sees 15 rows, not the 0 a never-analysed table's reltuples says.
COUNT_TABLES_UP_TO_BYTES = 8 * 1024 * 1024
COUNTED_BYTES_AT_MOST = 64 * 1024 * 1024

_TABLE_SIZES_SQL = f"""
SELECT n.nspname, c.relname, c.relkind, c.reltuples, c.relpages,
       pg_relation_size(c.oid), pg_total_relation_size(c.oid), current_setting('block_size')::int
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'm') AND {_NOT_APPLICATION}
"""


def table_sizes(connection: Connection) -> dict[str, TableSize]:
    """Read-only: each application table's rows and size (table, indexes, TOAST).

    Small tables are counted, each under a short lock and statement timeout in a savepoint (a table
    this role may not read, or one busy under an ACCESS EXCLUSIVE lock, keeps its estimate). Other
    tables get the planner's rows per page times their pages now, as PostgreSQL's planner scales
    them; a table never analysed and too big to count has no figure (None), never 0.
    """
    found = connection.execute(text(_TABLE_SIZES_SQL), {"tool_schema": TOOL_SCHEMA}).all()
    sizes: dict[str, TableSize] = {}
    counted_bytes = 0
    for schema, table, kind, reltuples, relpages, heap_bytes, total_bytes, block_size in found:
        name = f"{schema}.{table}"
        rows: int | None = None
        exact = False
        small = heap_bytes <= COUNT_TABLES_UP_TO_BYTES and counted_bytes + heap_bytes <= COUNTED_BYTES_AT_MOST
        if kind != "p" and small:
            # No SELECT on it, a lock held, a matview never populated: its estimate stands.
            quoted = f"ONLY {quote_identifier(schema)}.{quote_identifier(table)}"
            rows = exact_count(connection, quoted, statement_timeout="2s", lock_timeout="100ms")
            exact = rows is not None
            counted_bytes += heap_bytes
        if rows is None:
            rows = _estimate(kind, float(reltuples), int(relpages), int(heap_bytes), int(block_size))
        sizes[name] = TableSize(name, rows, int(total_bytes), exact, partitioned=kind == "p")
    # A partitioned table holds its partitions' rows and bytes: their sum, known when each one's is.
    for parent, leaves in partition_leaves(connection).items():
        parts = [sizes[leaf] for leaf in leaves if leaf in sizes]
        if parent not in sizes or not parts:
            continue
        counts = [part.estimated_rows for part in parts]
        rows_known = None if any(count is None for count in counts) else sum(count or 0 for count in counts)
        sizes[parent] = TableSize(
            parent,
            rows_known if rows_known is not None else sizes[parent].estimated_rows,
            sum(part.total_bytes for part in parts),
            rows_known is not None and all(part.rows_exact for part in parts),
            partitioned=True,
        )
    return sizes


_PARTITION_LEAVES_SQL = """
SELECT pn.nspname || '.' || p.relname, ln.nspname || '.' || l.relname
  FROM pg_class p
  JOIN pg_namespace pn ON pn.oid = p.relnamespace
 CROSS JOIN LATERAL pg_partition_tree(p.oid) t
  JOIN pg_class l ON l.oid = t.relid
  JOIN pg_namespace ln ON ln.oid = l.relnamespace
 WHERE p.relkind = 'p' AND t.isleaf
   AND pn.nspname NOT IN ('pg_catalog', 'information_schema')
"""


def partition_leaves(connection: Connection) -> dict[str, list[str]]:
    """Read-only: each partitioned table's leaf partitions (at any depth), by qualified name."""
    leaves: dict[str, list[str]] = {}
    for parent, leaf in connection.execute(text(_PARTITION_LEAVES_SQL)).all():
        leaves.setdefault(str(parent), []).append(str(leaf))
    return leaves


def _estimate(kind: str, reltuples: float, relpages: int, heap_bytes: int, block_size: int) -> int | None:
    if kind == "p":  # a partitioned table holds no rows itself: its partitions' estimates, summed by the planner
        return max(int(reltuples), 0) if reltuples >= 0 else None
    if heap_bytes == 0:
        return 0
    if reltuples < 0 or relpages == 0:  # never analysed (or vacuumed) with pages: nothing to scale from
        return None
    return round(reltuples / relpages * (heap_bytes / block_size))


def database_size(connection: Connection) -> int:
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
    rows = connection.execute(
        text(
            "SELECT n.nspname || '.' || c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid AND {_NOT_APPLICATION}"
        ),
        {"tool_schema": TOOL_SCHEMA},
    ).scalars()
    return frozenset(rows)


@dataclass(frozen=True)
class AdvisoryHolder:
    pid: int
    application: str
    user: str
    address: str | None  # None: a local socket
    connected_since: datetime


def advisory_lock_holder(connection: Connection, namespace: int, key: int) -> AdvisoryHolder | None:
    """Read-only: the session holding the session-level advisory lock (namespace, key), if one does."""
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


# Whether a session still holds a session-level advisory lock here, as an SQL condition on the driver's
# placeholders %(lock_ns)s, %(lock_key)s and %(lock_pid)s (see advisory_lock_parameters): written into the
# statement a revision's transaction runs anyway, it costs no round trip of its own.
ADVISORY_LOCK_HELD = (
    "EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.pid = %(lock_pid)s "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.classid::bigint = %(lock_ns)s AND l.objid::bigint = %(lock_key)s AND l.objsubid = 2)"
)


def advisory_lock_parameters(namespace: int, key: int, pid: int) -> dict[str, int]:
    """The values of ADVISORY_LOCK_HELD's placeholders."""
    return {"lock_ns": namespace, "lock_key": key, "lock_pid": pid}


def advisory_lock_held_by(connection: Connection, namespace: int, key: int, pid: int) -> bool:
    """Read-only: whether session ``pid`` still holds the session-level advisory lock (namespace, key) here."""
    held = connection.exec_driver_sql(f"SELECT {ADVISORY_LOCK_HELD}", advisory_lock_parameters(namespace, key, pid))
    return bool(held.scalar())


def current_filenodes(raw: Any, oids: list[int]) -> dict[int, int]:
    """On a driver connection: the storage file of each relation in ``oids`` that still exists."""
    rows = raw.execute(
        "SELECT oid::bigint, pg_relation_filenode(oid)::bigint FROM unnest(%s::oid[]) AS oid", (oids,)
    ).fetchall()
    return {int(oid): int(node) for oid, node in rows if node is not None}


def databases_starting_with(connection: Connection, prefix: str) -> tuple[str, ...]:
    """Read-only: the server's databases whose name starts with ``prefix``."""
    rows = connection.execute(
        text("SELECT datname FROM pg_database WHERE starts_with(datname, :prefix) ORDER BY 1"), {"prefix": prefix}
    ).scalars()
    return tuple(rows)


def backend_pid(connection: Connection) -> int:
    """This session's server process id."""
    return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def sessions_in_database(connection: Connection, name: str, *, but: int) -> tuple[int, ...]:
    """Read-only: the server processes connected to database ``name``, other than ``but``."""
    rows = connection.execute(
        text("SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> :but"), {"name": name, "but": but}
    ).scalars()
    return tuple(int(pid) for pid in rows)


def terminate_sessions(connection: Connection, pids: Iterable[int]) -> int:
    """Writes (ends sessions): how many of ``pids`` were signalled to end (pg_terminate_backend)."""
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
    rows = connection.execute(
        text(
            "SELECT l.objid::bigint FROM pg_locks l WHERE l.locktype = 'advisory' "
            "AND l.classid::bigint = :namespace AND l.objsubid = 2"
        ),
        {"namespace": namespace},
    ).scalars()
    return frozenset(int(key) for key in rows)
