"""One migration at a time per database: a PostgreSQL advisory lock.

The lock is held on a connection of its own, not on the connection that migrates: a
revision that uses ``autocommit_block()`` (``CREATE INDEX CONCURRENTLY``) waits for every
older transaction, and a lock held in a transaction on the migrating connection would make
it wait for itself. A session-level lock also survives the per-revision commits, and the
server releases it when the process dies, so a killed run never leaves the database locked.

A lock held by another session can be lost while the run goes on (the session terminated by
an administrator, a pooler or a network cut). Two guards keep two runs from ever overlapping:

* the migrating connection holds a second, session-level lock (``APPLYING_LOCK``) for as long
  as it applies, and a run that took the migration lock waits for that one too before it
  reads where the database stands: a run whose lock session died is still applying until its
  migrating connection lets go;
* before each revision commits, :meth:`HeldLock.verify` checks, inside that revision's
  transaction, that the lock's session still holds it; when it does not, the revision is
  rolled back and the run stops (:class:`~hindsight_migrate.errors.LockLost`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from hindsight_migrate.errors import HindsightMigrateError, LockBusy, LockLost, Section
from hindsight_migrate.postgres import catalog
from hindsight_migrate.postgres.database import Database

# pg_advisory_lock(int4, int4): the first key says "hindsight-migrate" ("HMIG" in ASCII),
# the second which lock of the tool this is.
LOCK_NAMESPACE = 0x484D4947
MIGRATION_LOCK = 1
APPLYING_LOCK = 2  # held by the migrating connection itself while it applies
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class HeldLock:
    """The migration lock as this run holds it: which server session holds it."""

    holder_pid: int
    masked_url: str

    @property
    def parameters(self) -> dict[str, int]:
        """For catalog.ADVISORY_LOCK_HELD in a statement of the caller's: this lock, in its holder's session."""
        return catalog.advisory_lock_parameters(LOCK_NAMESPACE, MIGRATION_LOCK, self.holder_pid)

    def verify(self, connection: Connection, *, before: str) -> None:
        """Read-only, in the caller's transaction (a revision's, about to commit): raise LockLost unless the
        lock's session still holds it, so that the transaction is rolled back instead of committed."""
        if not catalog.advisory_lock_held_by(connection, LOCK_NAMESPACE, MIGRATION_LOCK, self.holder_pid):
            raise self.lost(before=before)

    def lost(self, *, before: str) -> LockLost:
        return LockLost(
            f"The migration lock of {self.masked_url} was lost: the server session that held it (pid "
            f"{self.holder_pid}) ended while this run was applying. {before} was rolled back and the run "
            "stopped, so that it cannot overlap with another run that took the lock meanwhile. Run "
            "hindsight-migrate status to see where the database stands, then run again.",
        )


@contextmanager
def migration_lock(database: Database, *, wait_seconds: float) -> Iterator[HeldLock]:
    """Hold the database's migration lock for the block, waiting up to ``wait_seconds``."""
    with database.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        take = text("SELECT pg_try_advisory_lock(:ns, :key)")
        keys = {"ns": LOCK_NAMESPACE, "key": MIGRATION_LOCK}
        while not connection.execute(take, keys).scalar():
            if time.monotonic() >= deadline:
                raise _busy(connection, database.masked_url, wait_seconds)
            time.sleep(POLL_SECONDS)
        pid = int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        try:
            yield HeldLock(holder_pid=pid, masked_url=database.masked_url)
        finally:
            # If the session is gone (server restarted, connection cut), so is its lock.
            with contextlib.suppress(DBAPIError):
                connection.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), keys)


def hold_applying(connection: Connection, *, wait_seconds: float, masked_url: str) -> None:
    """On the migrating connection, for the rest of its session: the lock that says "this session applies".

    Taken after the migration lock. Waiting here means a run that lost its migration lock (its
    session ended) is still inside a revision; it stops before that revision commits, and lets go.
    """
    deadline = time.monotonic() + max(wait_seconds, 0.0)
    take = text("SELECT pg_try_advisory_lock(:ns, :key)")
    keys = {"ns": LOCK_NAMESPACE, "key": APPLYING_LOCK}
    while not connection.execute(take, keys).scalar():
        connection.rollback()
        if time.monotonic() >= deadline:
            raise _busy(connection, masked_url, wait_seconds, key=APPLYING_LOCK)
        time.sleep(POLL_SECONDS)
    connection.commit()  # a session-level lock: it outlives the transaction that took it


def _busy(connection: object, masked_url: str, wait_seconds: float, *, key: int = MIGRATION_LOCK) -> LockBusy:
    assert isinstance(connection, Connection)
    holder = catalog.advisory_lock_holder(connection, LOCK_NAMESPACE, key)
    if holder is None:  # released between our last try and this look
        details = "The holder released it just now; run again."
    else:
        details = (
            f"server pid {holder.pid}, {holder.application or 'no application name'}, user {holder.user}, "
            f"from {holder.address or 'a local socket'}, connected since "
            f"{holder.connected_since:%Y-%m-%d %H:%M:%S %Z}"
        )
    still = (
        " Its migration lock is gone (its session ended), but it is still applying a revision; it stops "
        "before that revision commits."
        if key == APPLYING_LOCK
        else ""
    )
    return LockBusy(
        f"Another hindsight-migrate run is changing {masked_url} (waited {wait_seconds:g} s for "
        f"it).{still} Nothing was changed. Wait for it to finish, or raise --lock-wait.",
        sections=(Section("Lock holder", details),),
    )


class BlockerWatch:
    """Who blocks the migrating backend, seen from a connection of its own while a revision runs.

    A statement waiting for a lock cannot say who holds it, and once lock_timeout ends the wait
    the holder is no longer linked to it in the catalog: a poll a few times a second, while the
    revision runs, is what can name the session to look at.
    """

    POLL_SECONDS = 0.25

    def __init__(self, database: Database, pid: int, *, poll_seconds: float = POLL_SECONDS) -> None:
        self._poll_seconds = poll_seconds
        self._database = database
        self._pid = pid
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last: tuple[catalog.Blocker, ...] = ()
        self._thread = threading.Thread(target=self._watch, name="hindsight-blockers", daemon=True)

    def __enter__(self) -> BlockerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def last_seen(self) -> tuple[catalog.Blocker, ...]:
        """The sessions that blocked the backend the last time it was blocked (empty if it never was)."""
        with self._lock:
            return self._last

    def forget(self) -> None:
        with self._lock:
            self._last = ()

    def _watch(self) -> None:
        try:
            with self._database.connect() as connection:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                while not self._stop.wait(self._poll_seconds):
                    blockers = catalog.blockers_of(connection, self._pid)
                    if blockers:
                        with self._lock:
                            self._last = blockers
        except (SQLAlchemyError, HindsightMigrateError):
            return  # the watch only adds names to a message; the migration goes on without it


def describe_blockers(blockers: tuple[catalog.Blocker, ...]) -> str:
    """``pid 4242 (psql, alice, idle in transaction, transaction open 12.3 s)``, for each blocker."""
    words = []
    for blocker in blockers:
        facts = [blocker.application or "no application name", blocker.user, blocker.state or "unknown state"]
        if blocker.transaction_seconds is not None:
            facts.append(f"transaction open {blocker.transaction_seconds:.1f} s")
        words.append(f"pid {blocker.pid} ({', '.join(f for f in facts if f)})")
    return "; ".join(words)
