"""Gates: a revision that waits where the test wants it to, until the test lets it go on.

* The advisory gate: a revision runs ``GATE`` (a transaction-level advisory lock) and waits while the
  test holds that lock on the same database (:func:`gate_closed`). Waiting there is a lock wait, which
  the apply's lock_timeout would end: projects that use it set ``GATE_LOCK_TIMEOUT``.
* The named gate: a revision runs :func:`named_gate_sql` and loops while a session with the gate's
  application name exists anywhere on the server (pg_stat_activity is cluster-wide, so the same gate
  holds in a scratch database whose name the test does not know in advance).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from tests.harness import dbstate

GATE_KEY = 74_2002
GATE = f"SELECT pg_advisory_xact_lock({GATE_KEY})"
GATE_LOCK_TIMEOUT = "lock_timeout = 120s"


@contextmanager
def gate_closed(url: str) -> Iterator[Callable[[], None]]:
    """Hold the gate on ``url``'s database; the yielded function opens it (leaving the block does too)."""
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": GATE_KEY})

            def open_gate() -> None:
                connection.execute(text("SELECT pg_advisory_unlock_all()"))

            yield open_gate
    finally:
        engine.dispose()


def wait_for_apply_at_gate(url: str, process: subprocess.Popen[str], timeout: float = 60) -> int:
    """Server pid of the backend whose apply waits at the gate (the run's migration lock is held)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = dbstate.query(
            url,
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
            "AND wait_event_type = 'Lock' AND query LIKE :gate",
            gate=GATE + "%",
        )
        if rows:
            return int(rows[0][0])
        if process.poll() is not None:
            out, err = process.communicate(timeout=10)
            pytest.fail(f"the run ended (exit {process.returncode}) before its apply reached the gate:\n{out}\n{err}")
        time.sleep(0.05)
    pytest.fail("the run never reached the gate in its apply")


def new_named_gate() -> str:
    return f"hm-gate-{uuid.uuid4().hex[:10]}"


def named_gate_sql(gate: str) -> str:
    """A statement that waits while a session named ``gate`` is connected anywhere on the server
    (pg_stat_activity is read once per transaction unless its snapshot is cleared)."""
    return (
        "DO $$ BEGIN WHILE EXISTS (SELECT 1 FROM pg_stat_activity "
        f"WHERE application_name = '{gate}') LOOP PERFORM pg_sleep(0.02); PERFORM pg_stat_clear_snapshot(); "
        "END LOOP; END $$"
    )


@contextmanager
def named_gate_closed(url: str, gate: str) -> Iterator[Connection]:
    """The named gate stays closed while this connection is open (closing it opens the gate)."""
    engine = create_engine(url, poolclass=NullPool, connect_args={"application_name": gate})
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()
