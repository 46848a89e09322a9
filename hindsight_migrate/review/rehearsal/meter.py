"""Statement timings, relation locks, rows written and rewrites, measured from SQLAlchemy's events."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

from hindsight_migrate.postgres import catalog
from hindsight_migrate.postgres.audit_records import RecordedHold
from hindsight_migrate.postgres.lock_modes import LockMode
from hindsight_migrate.postgres.sqlscript import may_write_rows
from hindsight_migrate.review.rehearsal.model import Hold, Rehearsal, RevisionCost, StatementCost
from hindsight_migrate.review.rehearsal.predict import first_naming, read_statement

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine



# -- measuring ---------------------------------------------------------------------------


class Meter:
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
        # Whether the revision ran a statement that may update or delete rows: pg_stat_xact_user_tables lists
        # every table (reading it costs more as the chain creates tables), so it is read only then. A DDL event
        # trigger may write from any statement: with one enabled, it is always read.
        self._may_write = False
        self._event_triggers = catalog.event_triggers_enabled(connection)
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
        for name, listener in self._listeners:
            event.remove(self._target, name, listener)

    def start(self) -> None:
        self._statements = []
        self._locks = {}
        self._written = {}
        self._may_write = False
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
        self._may_write = self._may_write or may_write_rows(statement)
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
        if not self._may_write and not self._event_triggers:
            return  # nothing updated or deleted: the last reading stays the base of the next one
        transaction, counts = catalog.rows_written_in_transaction(raw)
        # The version table's own update is Alembic's bookkeeping, not a row the revision wrote.
        counts = {table: rows for table, rows in counts.items() if table.rpartition(".")[2] != self._version_table}
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


# -- the apply: how long each lock was held ------------------------------------------------


class HoldTimer:
    """During an apply: how long each revision held its lock on each table the plan predicted (or measured) a
    hold for, timed as the plan times it, from the start of the statement that first names the table (the
    revision's start when none does) to the end of the revision's last statement, before its commit."""

    def __init__(self, connection: Connection, rehearsal: Rehearsal | None) -> None:
        self._connection = connection
        self._predicted: dict[str, tuple[Hold, ...]] = {}
        self._sizes = rehearsal.sizes if rehearsal is not None else {}
        if rehearsal is not None:
            self._predicted = {cost.revision: cost.holds for cost in rehearsal.costs if cost.holds}
        self._statements: list[tuple[float, str]] = []
        self._revision: str | None = None
        self._started = 0.0
        self.recorded: list[RecordedHold] = []
        self._listening = bool(self._predicted)
        if self._listening:
            event.listen(connection, "before_cursor_execute", self._before)

    def close(self) -> None:
        if self._listening:
            event.remove(self._connection, "before_cursor_execute", self._before)
            self._listening = False

    def start(self, revision: str) -> None:
        self._revision = revision if revision in self._predicted else None
        self._statements = []
        self._started = time.perf_counter()

    def finish(self, revision: str) -> None:
        """After the revision's last statement, before its commit."""
        if self._revision != revision:
            return
        ended = time.perf_counter()
        tables = [read_statement(sql) for _, sql in self._statements]
        for hold in self._predicted[revision]:
            first = first_naming(tables, hold.table, self._sizes)
            since = self._statements[first][0] if first is not None else self._started
            self.recorded.append(
                RecordedHold(
                    revision,
                    hold.table,
                    hold.basis.value,
                    hold.seconds,
                    hold.seconds_low,
                    hold.seconds_high,
                    round(ended - since, 4),
                )
            )
        self._revision = None

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self._revision is not None:
            self._statements.append((time.perf_counter(), statement))
