"""Applying under live traffic: lock retries, concurrent first deploys, and an audit row for every run."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from hindsight_migrate.errors import ExitCode
from hindsight_migrate.postgres.locking import LOCK_NAMESPACE
from tests.conftest import bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.audit import audit_rows
from tests.harness.gates import GATE, GATE_KEY, GATE_LOCK_TIMEOUT, wait_for_apply_at_gate
from tests.harness.processes import cli_command, start_cli, stop, subprocess_env
from tests.harness.projects import ADD_NOTE, TINY_BASE, Rev, tiny_project

# What the tests here read of each audited run.
LOGGED = "command, from_revisions, to_revisions, outcome, lock_attempts, error"


def wait_for_alter_to_queue(url: str, process: subprocess.Popen[str], count: int = 1, timeout: float = 60) -> None:
    """Until the apply's ALTER TABLE has queued for its lock ``count`` times (each attempt is a new wait)."""
    deadline = time.monotonic() + timeout
    seen: set[Any] = set()
    while len(seen) < count and time.monotonic() < deadline and process.poll() is None:
        rows = dbstate.query(
            url,
            "SELECT pid, query_start FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE things%'",
        )
        seen.update(rows)
        time.sleep(0.02)
    assert len(seen) >= count, f"the ALTER queued {len(seen)} time(s), not {count} (exit {process.poll()})"


def test_a_lock_released_after_two_timeouts_is_retried_and_the_run_completes(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(tiny_project(tmp_path / "p", ADD_NOTE, settings="lock_timeout = 500ms"), database_url)
    engine = create_engine(database_url, poolclass=NullPool, connect_args={"application_name": "nightly-report"})
    process = None
    try:
        with engine.connect() as holder:
            # A long report: its open transaction holds ACCESS SHARE on the table the revision alters.
            holder.execute(text("LOCK TABLE things IN ACCESS SHARE MODE"))
            holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
            process = start_cli(ini, database_url, "up", "--yes", cwd=tmp_path)
            wait_for_alter_to_queue(database_url, process, count=3)  # two attempts timed out
            holder.rollback()  # the report ends: the next attempt gets its lock
        out, err = process.communicate(timeout=120)
    finally:
        engine.dispose()
        stop(process)

    assert process.returncode == ExitCode.OK, out + err
    said = flatten(err)
    assert re.search(
        rf"⧗ bbbb00000002 waited 100ms for a lock, blocked by pid {holder_pid} \(nightly-report", said
    )
    assert re.search(r"attempt 2/21 in \d+\.\d s, waiting up to 100ms", said), err
    assert dbstate.alembic_version(database_url) == ["bbbb00000002"]
    rows = [row for row in audit_rows(database_url, LOGGED) if row[0] == "up"]
    assert len(rows) == 1 and rows[0][3] == "succeeded" and rows[0][4] >= 3, rows


def test_a_lock_never_released_fails_naming_the_blocker_with_the_attempts_recorded(
    tmp_path: Path, database_url: str
) -> None:
    ini = bootstrapped(
        tiny_project(tmp_path / "p", ADD_NOTE, settings="lock_timeout = 300ms\nlock_retries = 2"), database_url
    )
    before = dbstate.snapshot(database_url)
    engine = create_engine(database_url, poolclass=NullPool, connect_args={"application_name": "stuck-worker"})
    try:
        with engine.connect() as holder:
            holder.execute(text("LOCK TABLE things IN ACCESS SHARE MODE"))
            holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
            result = subprocess.run(
                cli_command(ini, database_url, "up", "--yes"),
                env=subprocess_env(),
                capture_output=True,
                text=True,
                cwd=tmp_path,
                timeout=120,
            )
            holder.rollback()
    finally:
        engine.dispose()

    assert result.returncode == ExitCode.FAILED, result.stdout + result.stderr
    said = flatten(result.stderr)
    assert "Revision bbbb00000002" in said and "waited for a lock 3 times (100ms each) and gave up" in said, said
    assert f"Blocked by pid {holder_pid} (stuck-worker" in said, said
    assert "Attempts 3, waiting 100ms, 100ms and 100ms; an attempt waits 100ms for a lock at first" in said, said
    assert "Traceback" not in result.stderr
    assert dbstate.snapshot(database_url)["relations"] == before["relations"]
    assert dbstate.alembic_version(database_url) == [TINY_BASE]
    rows = [row for row in audit_rows(database_url, LOGGED) if row[0] == "up"]
    assert len(rows) == 1 and rows[0][3] == "failed" and rows[0][4] == 3 and "lock timeout" in rows[0][5], rows


def lock_waits_of_the_alter(url: str, process: subprocess.Popen[str]) -> list[float]:
    """How long each attempt's ALTER TABLE waited for its lock (so held the traffic queued behind it back), as
    pg_stat_activity shows it, sampled every 10 ms until the process ends; in the order they started."""
    seen: dict[Any, float] = {}  # (pid, query_start) -> the last time it was seen waiting, seconds after its start
    while process.poll() is None:
        for pid, started, waited in dbstate.query(
            url,
            "SELECT pid, query_start, extract(epoch FROM clock_timestamp() - query_start)::float "
            "FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND query LIKE 'ALTER TABLE things%'",
        ):
            seen[(pid, started)] = max(seen.get((pid, started), 0.0), waited)
        time.sleep(0.01)
    return [seen[key] for key in sorted(seen, key=lambda key: key[1])]


def test_each_attempt_waits_longer_and_the_whole_stops_at_lock_retry_max_wait(
    tmp_path: Path, database_url: str
) -> None:
    settings = (
        "lock_timeout = 800ms\nlock_timeout_start = 100ms\nlock_timeout_doubling = 1s\n"
        "lock_retries = 50\nlock_retry_max_wait = 6s"
    )
    ini = bootstrapped(tiny_project(tmp_path / "p", ADD_NOTE, settings=settings), database_url)
    engine = create_engine(database_url, poolclass=NullPool, connect_args={"application_name": "stuck-worker"})
    try:
        with engine.connect() as holder:
            holder.execute(text("LOCK TABLE things IN ACCESS SHARE MODE"))  # never released while the run lasts
            started = time.monotonic()
            process = start_cli(ini, database_url, "up", "--yes", cwd=tmp_path)
            try:
                waits = lock_waits_of_the_alter(database_url, process)
                out, err = process.communicate(timeout=120)
            finally:
                stop(process)
            took = time.monotonic() - started
            holder.rollback()
    finally:
        engine.dispose()

    assert process.returncode == ExitCode.FAILED, out + err
    # The first attempts hold the traffic back for about lock_timeout_start, later ones longer, none past lock_timeout.
    assert len(waits) >= 3, waits
    assert waits[0] < 0.3, waits
    assert max(waits) > 0.3 and max(waits) < 0.8 + 0.3, waits
    # Attempts and pauses stop at lock_retry_max_wait (6 s), however many retries are allowed; the rest is start-up.
    assert took < 6 + 8, took
    said = flatten(err)
    assert re.search(r"waited for a lock \d+ times \(100ms growing to (400|800)ms\) and gave up", said), said
    rows = [row for row in audit_rows(database_url, LOGGED) if row[0] == "up"]
    assert len(rows) == 1 and rows[0][3] == "failed" and rows[0][4] == len(waits), (rows, waits)
    assert dbstate.alembic_version(database_url) == [TINY_BASE]


def test_concurrent_first_deploys_of_an_empty_database_find_the_winners_work_done(
    tmp_path: Path, database_url: str
) -> None:
    ini = tiny_project(
        tmp_path / "p",
        ADD_NOTE,
        # Long enough on the target that the others plan while the winner applies.
        Rev("cccc00000003", ("bbbb00000002",), upgrade='op.execute("SELECT pg_sleep(1)")'),
    )
    processes: list[subprocess.Popen[str]] = []
    try:
        for _ in range(4):
            processes.append(
                subprocess.Popen(
                    cli_command(ini, database_url, "up", "--yes", "--lock-wait", "120"),
                    env=subprocess_env(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=tmp_path,
                )
            )
        outputs = []
        for process in processes:
            out, err = process.communicate(timeout=300)
            outputs.append((process.returncode, out, err))
    finally:
        stop(*processes)

    shown = "\n\n".join(f"exit {code}\n{out}\n{err}" for code, out, err in outputs)
    assert [code for code, _, _ in outputs] == [0, 0, 0, 0], shown
    winners = [out for _, out, _ in outputs if "Upgraded" in out]
    assert len(winners) == 1, shown
    assert dbstate.alembic_version(database_url) == ["cccc00000003"]
    rows = audit_rows(database_url, LOGGED)
    assert [row[3] for row in rows if row[0] == "bootstrap"] == ["succeeded"], rows
    ups = [row[3] for row in rows if row[0] == "up"]
    assert sorted(ups) == ["nothing_to_do"] * 3 + ["succeeded"], rows


def test_a_run_with_nothing_to_do_leaves_its_audit_row(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(tiny_project(tmp_path / "p", ADD_NOTE), database_url)
    assert invoke("-c", ini, "--url", database_url, "up", "--yes").exit_code == 0

    again = invoke("-c", ini, "--url", database_url, "up", "--yes")
    dry = invoke("-c", ini, "--url", database_url, "up", "--dry-run")

    assert again.exit_code == 0 and "Nothing to do" in again.output, again.output
    assert dry.exit_code == 0, dry.output
    ups = [row[:4] for row in audit_rows(database_url, LOGGED) if row[0] == "up"]
    # The dry run changes nothing, its audit row included.
    assert ups == [
        ("up", TINY_BASE, "bbbb00000002", "succeeded"),
        ("up", "bbbb00000002", "bbbb00000002", "nothing_to_do"),
    ], ups


def test_an_apply_log_made_by_an_earlier_version_takes_the_new_outcomes(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(tiny_project(tmp_path / "p", ADD_NOTE), database_url)
    # As 0.x made it: three outcomes, no lock_attempts.
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE hindsight_migrate.apply_log DROP COLUMN lock_attempts"))
        connection.execute(text("ALTER TABLE hindsight_migrate.apply_log DROP CONSTRAINT apply_log_outcome_check"))
        connection.execute(
            text(
                "ALTER TABLE hindsight_migrate.apply_log ADD CONSTRAINT apply_log_outcome_check "
                "CHECK (outcome IN ('running', 'succeeded', 'failed'))"
            )
        )
    engine.dispose()
    status = invoke("-c", ini, "--url", database_url, "status")
    assert status.exit_code == 10, status.output  # behind: reading works on the old table

    assert invoke("-c", ini, "--url", database_url, "up", "--yes").exit_code == 0
    assert invoke("-c", ini, "--url", database_url, "up", "--yes").exit_code == 0

    assert [row[3] for row in audit_rows(database_url, LOGGED) if row[0] == "up"] == ["succeeded", "nothing_to_do"]
    check = dbstate.query(
        database_url,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'apply_log_outcome_check'",
    )
    assert "interrupted" in check[0][0], check


def test_ctrl_c_during_an_apply_ends_its_audit_row_interrupted(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE t1 (id integer)")'),
            Rev(
                "bbbb00000003",
                ("bbbb00000002",),
                upgrade=f'op.execute("CREATE TABLE t2 (id integer)")\nop.execute({GATE!r})',
            ),
            settings=GATE_LOCK_TIMEOUT,
        ),
        database_url,
    )
    engine = create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    process = None
    try:
        with engine.connect() as gate:
            gate.execute(text("SELECT pg_advisory_lock(:key)"), {"key": GATE_KEY})
            process = start_cli(ini, database_url, "up", "--yes", cwd=tmp_path)
            wait_for_apply_at_gate(database_url, process)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
    finally:
        engine.dispose()
        stop(process)

    assert process.returncode == ExitCode.INTERRUPTED, out + err
    assert dbstate.alembic_version(database_url) == ["bbbb00000002"]
    rows = [row for row in audit_rows(database_url, LOGGED) if row[0] == "up"]
    assert len(rows) == 1, rows
    _, start, end, outcome, _, error = rows[0]
    assert (start, end, outcome) == (TINY_BASE, "bbbb00000002", "interrupted"), rows
    assert "revisions committed before it: bbbb00000002" in error, error


# -- the migration lock is watched ------------------------------------------------------------

SLOW_FIRST = (
    Rev(
        "bbbb00000002",
        (TINY_BASE,),
        upgrade='op.execute("SELECT pg_sleep(3)")\nop.execute("CREATE TABLE slow_one (id int)")',
    ),
    Rev("bbbb00000003", ("bbbb00000002",), upgrade='op.execute("CREATE TABLE after_slow (id int)")'),
)


def lock_holder_pid(url: str, timeout: float = 30) -> int:
    """The session holding the database's migration lock ("HMIG", 1), once a run has taken it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = dbstate.query(
            url,
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted "
            "AND l.classid::bigint = :namespace AND l.objid = 1 AND l.objsubid = 2",
            namespace=LOCK_NAMESPACE,
        )
        sleeping = dbstate.query(url, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(3)%'")
        if rows and sleeping[0][0]:
            return int(rows[0][0])
        time.sleep(0.05)
    raise AssertionError("no run took the migration lock and started the slow revision")


def test_a_run_whose_migration_lock_is_lost_stops_before_the_next_commit_and_a_second_run_is_kept_out(
    tmp_path: Path, database_url: str
) -> None:
    ini = bootstrapped(tiny_project(tmp_path / "p", *SLOW_FIRST), database_url)
    first = None
    try:
        first = subprocess.Popen(
            cli_command(ini, database_url, "up", "--yes", "--no-rehearsal"),
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        holder = lock_holder_pid(database_url)
        # An administrator (or a pooler, or the network) ends the session that holds the lock.
        assert dbstate.query(database_url, "SELECT pg_terminate_backend(:pid)", pid=holder)[0][0]
        second = invoke("-c", ini, "--url", database_url, "up", "--yes", "--no-rehearsal", "--lock-wait", "0")
        assert first.poll() is None, "the first run must still be inside its slow revision"
        out, err = first.communicate(timeout=120)
    finally:
        stop(first)

    # The second run took the free migration lock, then found the first still applying: kept out.
    assert second.exit_code == ExitCode.LOCKED, second.output
    assert "still applying" in flatten(second.output), second.output
    # The first run noticed before committing its revision: rolled back, stopped, said why.
    assert first.returncode == ExitCode.LOCKED, out + err
    said = flatten(err)
    assert f"the server session that held it (pid {holder}) ended" in said, err
    assert "Revision bbbb00000002 was rolled back" in said, err
    assert dbstate.alembic_version(database_url) == [TINY_BASE]
    assert "slow_one" not in dbstate.tables(database_url)
    assert [row[3] for row in audit_rows(database_url, LOGGED) if row[0] == "up"] == ["failed"]
    # Nothing is left locked: the next run applies both revisions.
    result = invoke("-c", ini, "--url", database_url, "up", "--yes", "--no-rehearsal")
    assert result.exit_code == ExitCode.OK, result.output
    assert dbstate.alembic_version(database_url) == ["bbbb00000003"]


def test_a_revision_that_commits_part_of_itself_waits_the_whole_lock_timeout_at_once(
    tmp_path: Path, database_url: str
) -> None:
    """CREATE INDEX CONCURRENTLY in autocommit_block() is never tried again (part of it commits): its one attempt
    may not give up after lock_timeout_start, or an open transaction of a few hundred ms fails the deploy."""
    concurrent = Rev(
        "bbbb00000002",
        (TINY_BASE,),
        upgrade=(
            "with op.get_context().autocommit_block():\n"
            '    op.execute("CREATE INDEX CONCURRENTLY ix_things_id_name ON things (id, name)")'
        ),
    )
    ini = bootstrapped(tiny_project(tmp_path / "p", concurrent, settings="lock_timeout = 5s"), database_url)
    engine = create_engine(database_url, poolclass=NullPool, connect_args={"application_name": "short-writer"})
    try:
        with engine.connect() as holder:
            holder.execute(text("UPDATE things SET name = name"))  # an open writer: the index build waits for it
            process = start_cli(ini, database_url, "up", "--yes", cwd=tmp_path)
            try:
                deadline = time.monotonic() + 60
                while process.poll() is None and time.monotonic() < deadline and not dbstate.query(
                    database_url,
                    "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE 'CREATE INDEX CONCURRENTLY%'",
                ):
                    time.sleep(0.02)
                time.sleep(0.5)  # five times lock_timeout_start: the build is still waiting, not given up
                holder.rollback()
                out, err = process.communicate(timeout=120)
            finally:
                stop(process)
    finally:
        engine.dispose()

    assert process.returncode == ExitCode.OK, out + err
    assert dbstate.alembic_version(database_url) == ["bbbb00000002"]
    valid = dbstate.query(
        database_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_things_id_name'::regclass"
    )
    assert valid == [(True,)], valid
