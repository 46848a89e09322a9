"""The kill trials' harness: the CLI as a process SIGKILLed at a chosen moment, and what a trial checks after.

``run_cli`` runs the command in a process group of its own and kills the whole group that many seconds
after its start, or after it printed its plan; ``settle`` ends what the dead run left on the server;
``observe`` reads the database as a trial sees it; ``check_kill_trial`` and ``check_bootstrap_trial``
check that it is at a committed revision (or, for bootstrap, all or nothing), that the audit log claims
nothing that did not commit, and that the same command again finishes the job. The trials themselves
are in tests/guarantees/test_faults.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from hindsight_migrate.errors import ExitCode
from tests.conftest import flatten, invoke, server_password
from tests.harness import dbstate
from tests.harness.audit import audit_rows
from tests.harness.processes import subprocess_env
from tests.harness.projects import TINY_BASE, Rev, tiny_project

SEED = int(os.environ.get("HINDSIGHT_FAULT_SEED", "20261125"))
TRIALS = 20

BASE = TINY_BASE  # the baseline: stands for V1
REVISIONS = [f"cccc0000000{k}" for k in range(1, 7)]  # six revisions after it, each creating t<k>
CHAIN = [BASE, *REVISIONS]
HEAD = REVISIONS[-1]
ROWS = 3  # rows each revision's table gets, in the same transaction as the table


def database_name(url: str) -> str:
    name = make_url(url).database
    assert name
    return name


def apply_rows(url: str, after_id: int = 0) -> list[tuple[Any, ...]]:
    """(id, command, from_revisions, to_revisions, outcome) of the audited runs after ``after_id``."""
    return [row for row in audit_rows(url, "id, command, from_revisions, to_revisions, outcome") if row[0] > after_id]


def last_apply_id(url: str) -> int:
    rows = apply_rows(url)
    return int(rows[-1][0]) if rows else 0


def settle(admin_engine: Engine, url: str) -> None:
    """End what a killed run left on the server: its backends on the target, its scratch databases."""
    with admin_engine.connect() as connection:
        # With a timeout, pg_terminate_backend waits until the backend is gone (PostgreSQL 14+).
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": database_name(url)},
        )
        # A rehearsal's scratch database is named after its target (hindsight_rehearsal_<target hash>_...).
        for name in dbstate.scratch_databases_of(url):
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class Run:
    """One run of the CLI as a process."""

    returncode: int | None  # None when the test killed it
    seconds: float
    stdout: str
    stderr: str
    marker_at: float | None  # seconds after the start when the plan's last line was printed
    done_at: float | None  # ... and when the line saying it is done was


PLAN_MARKER = "Plan fingerprint"  # up and down: the plan is shown, the apply comes next
BOOTSTRAP_MARKER = "  In all:"  # bootstrap: the same
DONE_MARKERS = ("Upgraded", "Downgraded", "Bootstrapped")  # printed once the work committed


def run_cli(
    command: list[str],
    folder: Path,
    label: str,
    *,
    marker: str,
    kill_after: float | None = None,
    after_marker: bool = False,
    timeout: float = 120,
) -> Run:
    """Run the CLI in a process group of its own, reading its output as it comes.

    With ``kill_after``, SIGKILL the whole group that many seconds after the start, or (with
    ``after_marker``) after the line starting with ``marker`` appeared: the plan is shown, the
    apply begins. The whole group, because a kill of the tool alone would leave its pg_dump,
    psql or squawk children running on as orphans.
    """
    started = time.monotonic()
    lines: list[str] = []
    marked: list[float] = []
    done: list[float] = []
    seen = threading.Event()
    err_path = folder / f"{label}.err"
    with err_path.open("w") as err:
        process = subprocess.Popen(
            command,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=folder,
            start_new_session=True,
        )

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if not marked and line.startswith(marker):
                marked.append(time.monotonic() - started)
                seen.set()
            if not done and line.startswith(DONE_MARKERS):
                done.append(time.monotonic() - started)
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if kill_after is None:
            process.wait(timeout=timeout)
        else:
            kill_at = started + kill_after
            if after_marker:
                limit = time.monotonic() + timeout
                while not seen.wait(0.01) and process.poll() is None and time.monotonic() < limit:
                    pass
                if marked:
                    kill_at += marked[0]
            try:
                process.wait(timeout=max(0.0, kill_at - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        reader.join(timeout=10)
    returncode = None if process.returncode == -signal.SIGKILL else process.returncode
    secret = server_password()
    assert not secret or secret not in "".join(lines) + err_path.read_text(), "the password was printed"
    return Run(
        returncode,
        time.monotonic() - started,
        "".join(lines),
        err_path.read_text(),
        marked[0] if marked else None,
        done[0] if done else None,
    )


def pause(databases: list[str], seconds: float) -> str:
    """A statement that sleeps on the given databases only: a scratch copy runs at full speed, while
    on the target each revision lingers inside its transaction, where a kill is most telling."""
    names = ", ".join(f"'{name}'" for name in databases)
    return f"SELECT pg_sleep(CASE WHEN current_database() IN ({names}) THEN {seconds} ELSE 0 END)"


def kill_chain(folder: Path, databases: list[str]) -> Path:
    """BASE plus six revisions; revision k creates t<k> and fills it (in one transaction, with a pause
    between), and its downgrade empties and drops it (the same way)."""
    revisions = []
    parent = BASE
    for k, revision in enumerate(REVISIONS, start=1):
        upgrade = (
            f'op.execute("CREATE TABLE t{k} (n integer NOT NULL)")\n'
            f"op.execute({pause(databases, 0.05)!r})\n"
            f'op.execute("INSERT INTO t{k} SELECT generate_series(1, {ROWS})")'
        )
        downgrade = (
            f'op.execute("DELETE FROM t{k}")\nop.execute({pause(databases, 0.05)!r})\nop.execute("DROP TABLE t{k}")'
        )
        revisions.append(Rev(revision, (parent,), message=f"add t{k}", upgrade=upgrade, downgrade=downgrade))
        parent = revision
    return tiny_project(folder, *revisions)


@dataclass(frozen=True)
class Observed:
    """A database as a kill trial sees it, read on one connection."""

    version: list[str] | None  # the version table's rows; None without a version table
    tables: dict[str, int]  # t<k> -> its rows
    checksums: set[str] | None  # the tool's applied-revision ledger; None without one
    runs: list[tuple[Any, ...]]  # apply_log: (id, command, from_revisions, to_revisions, outcome)


def observe(url: str) -> Observed:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:

            def one(sql: str) -> Any:
                return connection.execute(text(sql)).scalar()

            version = None
            if one("SELECT to_regclass('public.alembic_version') IS NOT NULL"):
                version = sorted(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
            names = connection.execute(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' AND table_name ~ '^t[0-9]+$'"
                )
            ).scalars()
            tables = {name: int(one(f'SELECT count(*) FROM "{name}"')) for name in list(names)}
            checksums = None
            if one("SELECT to_regclass('hindsight_migrate.applied_revisions') IS NOT NULL"):
                rows = connection.execute(text("SELECT revision FROM hindsight_migrate.applied_revisions"))
                checksums = set(rows.scalars())
            runs: list[tuple[Any, ...]] = []
            if one("SELECT to_regclass('hindsight_migrate.apply_log') IS NOT NULL"):
                log = connection.execute(
                    text(
                        "SELECT id, command, from_revisions, to_revisions, outcome "
                        "FROM hindsight_migrate.apply_log ORDER BY id"
                    )
                )
                runs = [tuple(row) for row in log]
            return Observed(version, tables, checksums, runs)
    finally:
        engine.dispose()


def at_a_committed_revision(seen: Observed, where: str) -> str:
    """The version table holds one revision of the chain, and the schema is exactly that revision's:
    every table of the revisions up to it, each with all its rows, and no table of a later one."""
    version = seen.version
    assert version is not None and len(version) == 1 and version[0] in CHAIN, f"{where}: version table {version}"
    at = CHAIN.index(version[0])
    expected = {f"t{k}": ROWS for k in range(1, at + 1)}
    assert seen.tables == expected, f"{where}: at {version[0]}, tables (rows) {seen.tables}"
    if seen.checksums is not None:
        assert seen.checksums - {BASE} == set(REVISIONS[:at]), f"{where}: at {version[0]}, ledger {seen.checksums}"
    return version[0]


@dataclass
class KillStats:
    """Where the kills landed, to show the trials reached the apply and not only the start-up."""

    before_apply: int = 0  # nothing written: killed while starting, planning or rehearsing
    audit_row_only: int = 0  # the 'running' row committed, no revision yet
    half_way: int = 0  # some revisions committed, not all
    all_revisions: int = 0  # every revision committed, the run's row not finished
    finished: int = 0  # the 'succeeded' row committed (killed at exit, or done before the kill)
    delays: list[str] = field(default_factory=list)

    @property
    def in_the_apply(self) -> int:
        return self.audit_row_only + self.half_way + self.all_revisions

    def words(self) -> str:
        return (
            f"{self.before_apply} before the apply, {self.audit_row_only} with only the audit row, "
            f"{self.half_way} half-way, {self.all_revisions} with every revision but no outcome, "
            f"{self.finished} finished"
        )


@dataclass(frozen=True)
class Trial:
    number: int
    command: str  # "up" or "down"
    url: str
    delay: float
    after_plan: bool  # the delay counts from when the plan was printed
    log_before: int  # the last apply_log id before it

    @property
    def start(self) -> str:
        return BASE if self.command == "up" else HEAD

    @property
    def target(self) -> str:
        return HEAD if self.command == "up" else BASE

    @property
    def where(self) -> str:
        since = "after its plan was printed" if self.after_plan else "after its start"
        return f"[seed {SEED}, trial {self.number}: {self.command}, killed {self.delay:.3f} s {since}]"


KILLED_COMMANDS = {
    "up": ["up", "--yes", "--rehearse-on", "target"],
    "down": ["down", "--to", BASE, "--yes", "--rehearse-on", "target"],
}


def kill_window(typical: Run, after_plan: bool, *, to_the_end: bool = False) -> float:
    """How far after its start (or after its plan was printed) a kill may come: the whole run; or
    from the plan to the line saying it is done (the apply), or to the end of the run."""
    if not after_plan:
        return typical.seconds
    assert typical.marker_at is not None and typical.done_at is not None
    return (typical.seconds if to_the_end else typical.done_at + 0.05) - typical.marker_at


def check_kill_trial(admin_engine: Engine, ini: str, trial: Trial, run: Run, stats: KillStats) -> None:
    where, url, start, target, name = trial.where, trial.url, trial.start, trial.target, trial.command
    settle(admin_engine, url)
    seen = observe(url)

    # (a) At a committed revision, never half-way through one.
    at = at_a_committed_revision(seen, where)
    # (b) The audit log claims nothing that did not commit.
    rows = [row for row in seen.runs if row[0] > trial.log_before]
    assert all(row[1] == name for row in rows) and len(rows) <= 1, f"{where}: {rows}"
    if run.returncode is not None:  # it finished before the kill
        assert run.returncode == 0, f"{where}\n{run.stdout}\n{run.stderr}"
        assert at == target and [row[2:] for row in rows] == [(start, target, "succeeded")], f"{where}: {rows}"
        stats.finished += 1
    elif rows and rows[0][4] == "succeeded":
        # Killed after its last commit (while printing or exiting): then the work is all there.
        assert at == target and rows[0][2:] == (start, target, "succeeded"), f"{where}: {rows}"
        stats.finished += 1
    else:
        assert [row[2:] for row in rows] in ([], [(start, None, "running")]), f"{where}: {rows}"
        if not rows:
            assert at == start, f"{where}: at {at} with no audit row"
            stats.before_apply += 1
        elif at == start:
            stats.audit_row_only += 1
        elif at == target:
            stats.all_revisions += 1
        else:
            stats.half_way += 1
    for row in seen.runs:
        assert row[4] != "failed", f"{where}: a kill is not a failure: {row}"
        ends = {"up": HEAD, "down": BASE, "bootstrap": BASE}[row[1]]
        assert row[4] != "succeeded" or row[3] == ends, f"{where}: {row} claims a revision no {row[1]} ends at"

    # (c) The same command again finishes the job.
    rerun = invoke("-c", ini, "--url", url, *KILLED_COMMANDS[name])
    assert rerun.exit_code == 0, f"{where}\n{rerun.output}"
    assert "Traceback" not in rerun.output
    done = observe(url)
    assert at_a_committed_revision(done, where) == target
    rerun_rows = [row[2:] for row in done.runs if row[0] > trial.log_before][len(rows) :]
    if at == target:
        assert "Nothing to do" in rerun.stdout, f"{where}\n{rerun.output}"
        assert rerun_rows == [(target, target, "nothing_to_do")], f"{where}: {rerun_rows}"
    else:
        assert rerun_rows == [(at, target, "succeeded")], f"{where}: {rerun_rows}"
    stats.delays.append(f"{trial.delay:.2f}{'+plan' if trial.after_plan else ''}")


KILL_V1 = """\
CREATE TABLE things (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO things VALUES (1, 'a'), (2, 'b'), (3, 'c');
SELECT pg_sleep(0.1);
CREATE TABLE more_things (id integer PRIMARY KEY REFERENCES things (id));
INSERT INTO more_things VALUES (1), (2), (3);
CREATE INDEX ix_more_things ON more_things (id);
"""
UNBOOTSTRAP = ["down", "--to", "base", "--allow-drop-baseline", "--yes", "--no-rehearsal"]


@dataclass(frozen=True)
class BootstrapTrial:
    number: int
    url: str
    delay: float
    after_plan: bool
    empty: dict[str, Any]  # the snapshot of the emptied database before the run
    log_before: int

    @property
    def where(self) -> str:
        since = "after its plan was printed" if self.after_plan else "after its start"
        return f"[seed {SEED}, trial {self.number}: bootstrap, killed {self.delay:.3f} s {since}]"


def check_bootstrap_trial(
    admin_engine: Engine, ini: str, trial: BootstrapTrial, run: Run, outcomes: dict[str, int]
) -> None:
    where, url = trial.where, trial.url
    settle(admin_engine, url)
    now = dbstate.snapshot(url)
    rows = apply_rows(url, trial.log_before)
    if now == trial.empty:
        # Nothing committed: as empty as before, no audit row, and bootstrap runs again.
        assert run.returncode is None, f"{where}: exit {run.returncode}\n{run.stdout}\n{run.stderr}"
        assert rows == [], f"{where}: {rows}"
        outcomes["left empty"] += 1
        rerun = invoke("-c", ini, "--url", url, "bootstrap", "--yes")
        assert rerun.exit_code == 0, f"{where}\n{rerun.output}"
    else:
        # Everything committed, in one go: V1's tables with their rows, the stamp, the records.
        assert run.returncode in (None, 0), f"{where}: exit {run.returncode}\n{run.stdout}\n{run.stderr}"
        outcomes["bootstrapped"] += 1
        assert now["alembic_version"] == [BASE], f"{where}: {now}"
        assert {"things", "more_things", "alembic_version"} <= dbstate.tables(url), f"{where}: {now}"
        assert len(now["bootstrap_log"]) == len(trial.empty["bootstrap_log"]) + 1, f"{where}: {now['bootstrap_log']}"
        assert [row[1:] for row in rows] == [("bootstrap", "base", BASE, "succeeded")], f"{where}: {rows}"
        # Run again, bootstrap refuses a database that is not empty (the documented exit 6).
        rerun = invoke("-c", ini, "--url", url, "bootstrap", "--yes")
        assert rerun.exit_code == ExitCode.REFUSED, f"{where}\n{rerun.output}"
        assert "This database is not empty" in flatten(rerun.output), f"{where}\n{rerun.output}"
    assert "Traceback" not in rerun.output
    assert dbstate.alembic_version(url) == [BASE], where
    assert dbstate.query(url, "SELECT (SELECT count(*) FROM things), (SELECT count(*) FROM more_things)") == [(3, 3)]
    assert [row[1:] for row in apply_rows(url, trial.log_before)] == [("bootstrap", "base", BASE, "succeeded")], where
    emptied = invoke("-c", ini, "--url", url, *UNBOOTSTRAP)  # ready for this database's next trial
    assert emptied.exit_code == 0, emptied.output
