"""One migration at a time per database: a PostgreSQL advisory lock.

The lock is held on a connection of its own, not on the connection that migrates: a
revision that uses ``autocommit_block()`` (``CREATE INDEX CONCURRENTLY``) waits for every
older transaction, and a lock held in a transaction on the migrating connection would make
it wait for itself. A session-level lock also survives the per-revision commits, and the
server releases it when the process dies, so a killed run never leaves the database locked.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from hindsight_migrate.database import Database
from hindsight_migrate.errors import LockBusy, Section

# pg_advisory_lock(int4, int4): the first key says "hindsight-migrate" ("HMIG" in ASCII),
# the second which lock of the tool this is.
LOCK_NAMESPACE = 0x484D4947
MIGRATION_LOCK = 1
POLL_SECONDS = 0.1


@contextmanager
def migration_lock(database: Database, *, wait_seconds: float) -> Iterator[None]:
    """Hold the database's migration lock for the block, waiting up to ``wait_seconds``."""
    from sqlalchemy import text

    with database.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        take = text("SELECT pg_try_advisory_lock(:ns, :key)")
        keys = {"ns": LOCK_NAMESPACE, "key": MIGRATION_LOCK}
        while not connection.execute(take, keys).scalar():
            if time.monotonic() >= deadline:
                raise _busy(connection, database.masked_url, wait_seconds)
            time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            from sqlalchemy.exc import DBAPIError

            # If the session is gone (server restarted, connection cut), so is its lock.
            with contextlib.suppress(DBAPIError):
                connection.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), keys)


def _busy(connection: object, masked_url: str, wait_seconds: float) -> LockBusy:
    from sqlalchemy import text
    from sqlalchemy.engine import Connection

    assert isinstance(connection, Connection)
    holder = connection.execute(
        text(
            "SELECT a.pid, a.application_name, a.client_addr::text, a.usename, a.backend_start "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.classid::bigint = :ns AND l.objid::bigint = :key AND l.objsubid = 2"
        ),
        {"ns": LOCK_NAMESPACE, "key": MIGRATION_LOCK},
    ).first()
    if holder is None:  # released between our last try and this look
        details = "The holder released it just now; run again."
    else:
        pid, application, address, user, started = holder
        details = (
            f"server pid {pid}, {application or 'no application name'}, user {user}, "
            f"from {address or 'a local socket'}, connected since {started:%Y-%m-%d %H:%M:%S %Z}"
        )
    return LockBusy(
        f"Another hindsight-migrate run is changing {masked_url} (waited {wait_seconds:g} s for "
        "it). Nothing was changed. Wait for it to finish, or raise --lock-wait.",
        sections=(Section("Lock holder", details),),
    )
