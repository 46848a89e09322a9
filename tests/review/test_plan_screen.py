"""The plan as a person reads it: the summary and what needs attention first, at any size.

Hindsight's own chain over a database with data is the case the first screen is designed
for; a 288-revision first deployment is the case that must stay reviewable.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hindsight_migrate.cli import prompts
from hindsight_migrate.errors import ExitCode
from tests.conftest import bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.processes import as_seen, cli_command, in_terminal, subprocess_env
from tests.harness.projects import TINY_BASE, Rev, tiny_project, write_project
from tests.render.test_formats import valid_document

HINDSIGHT_DATA = """
INSERT INTO agents (name, description)
    SELECT 'Agent ' || g, CASE WHEN mod(g, 3) = 0 THEN NULL ELSE 'about ' || g END FROM generate_series(1, 20000) g;
INSERT INTO memory_blocks (agent_id, content)
    SELECT a.id, 'memory ' || a.name || ' ' || g FROM agents a, generate_series(1, 2) g;
INSERT INTO agent_transcripts (agent_id, role, content, token_count)
    SELECT a.id, 'user', repeat('hello ', 20), g FROM agents a, generate_series(1, 8) g;
INSERT INTO feedback_logs (memory_id, rating)
    SELECT memory_id, 1 + mod(g, 5) FROM memory_blocks, generate_series(1, 1) g;
ANALYZE;
"""


def cli(folder: Path, *args: str, columns: int = 100, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command in a fresh process, its stdout a pipe (as in a CI log), COLUMNS wide."""
    return subprocess.run(
        [sys.executable, "-m", "hindsight_migrate", *args],
        env=subprocess_env(plain=False, COLUMNS=str(columns), NO_COLOR="1"),
        capture_output=True,
        text=True,
        cwd=folder,
        input=stdin,
        timeout=600,
    )


def summary_block(stdout: str) -> list[str]:
    """The lines before the first detail (the revisions table)."""
    lines = stdout.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("Revisions "))
    return lines[:end]


@pytest.fixture
def hindsight_with_data(hindsight_project: Path, database_url: str) -> str:
    ini = bootstrapped(hindsight_project / "alembic.ini", database_url)
    dbstate.execute(database_url, HINDSIGHT_DATA)
    return ini


def test_hindsight_plan_over_data_opens_with_the_summary_and_what_needs_attention(
    hindsight_with_data: str, hindsight_project: Path, database_url: str
) -> None:
    before = dbstate.snapshot(database_url)

    result = cli(hindsight_project, "-c", hindsight_with_data, "--url", database_url, "up", "--dry-run")

    assert result.returncode == 0, result.stdout + result.stderr
    summary = summary_block(result.stdout)
    assert len(summary) <= 25, "\n".join(summary)
    head = flatten("\n".join(summary[: next(i for i, line in enumerate(summary) if line.startswith("Plan:"))]))
    assert re.match(
        # The URL may be long enough to wrap (the embedded server's socket path), and flatten() joins lines with spaces.
        r"Upgrade plan for .+?: cd3fb603795c → 461838d94bcb, 7 revisions, rehearsed on a scratch copy", head
    )
    counts = flatten("\n".join(summary))
    assert re.search(r"Plan: \d+ to add, \d+ to change, 1 to rename, 0 to drop; rows of data lost: 0; lint:", counts)
    attention = flatten(
        "\n".join(summary[summary.index(next(s for s in summary if s.startswith("Needs attention"))) :])
    )
    # The rewrite of the largest table comes first, with its rows and size; then the backfill of agents.
    locks = re.findall(r"▲ LOCK (public\.\w+):", attention)
    assert locks[0] == "public.agent_transcripts", attention
    assert re.search(
        r"public\.agent_transcripts: ACCESS EXCLUSIVE, blocks reads and writes; held \d\.\d\d s, measured on all its "
        r"rows, rewrites it, an estimated 160,000 rows",
        attention,
    ), attention
    assert re.search(
        r"public\.agents: ACCESS EXCLUSIVE, blocks reads and writes; held \d\.\d\d s, measured on all its rows, "
        r"writes 20,000 rows",
        attention,
    )
    assert "▲ RENAME column public.memory_blocks.memory_id becomes id" in attention
    # Without colour (NO_COLOR), the severity is still in words and symbols.
    assert "\x1b[" not in result.stdout
    assert dbstate.snapshot(database_url) == before


def test_the_prompt_recap_names_the_rewrite_of_the_largest_table_and_the_rename(
    hindsight_with_data: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prompts, "stdin_is_interactive", lambda: True)
    result = invoke("-c", hindsight_with_data, "--url", database_url, "up", input="no\n")

    assert result.exit_code == 7, result.output
    out = flatten(result.output)
    recap = out[out.index("Plan fingerprint") : out.index("Type the")]
    assert "Rewrites: public.agent_transcripts (an estimated 160,000 rows" in recap, recap
    assert recap.index("public.agent_transcripts") < recap.index("public.feedback_logs"), recap
    assert "Renames: column public.memory_blocks.memory_id → public.memory_blocks.id" in recap, recap
    assert dbstate.alembic_version(database_url) == ["cd3fb603795c"]


def test_an_upgrade_that_drops_a_column_with_rows_lists_the_loss_first(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("ALTER TABLE things ADD COLUMN note text")'),
            Rev("cccc00000003", ("bbbb00000002",), upgrade='op.execute("ALTER TABLE things DROP COLUMN note")'),
        ),
        database_url,
    )
    assert invoke("-c", ini, "--url", database_url, "up", "bbbb00000002", "--yes").exit_code == 0
    dbstate.execute(database_url, "INSERT INTO things (name, note) SELECT 'n' || g, 'x' FROM generate_series(1, 30) g")

    result = cli(tmp_path, "-c", ini, "--url", database_url, "up", "--dry-run")

    assert result.returncode == 0, result.stdout + result.stderr
    summary = flatten("\n".join(summary_block(result.stdout)))
    assert "0 to add, 0 to change, 0 to rename, 1 to drop; rows of data lost: 30;" in summary, summary
    first = summary[summary.index("Needs attention") :]
    assert first.startswith("Needs attention (1) ✖ DATA LOSS drops column public.things.note: 30 rows hold a value"), (
        first
    )


def test_short_locks_fold_into_one_line(tmp_path: Path, database_url: str) -> None:
    # Eight tables, each given a nullable column: ACCESS EXCLUSIVE for a moment, nothing rewritten. One
    # revision each, so that each lock is held for one statement's time, far under 0.05 s even on a busy
    # machine (eight in one revision each counted the whole revision's time, and sometimes crossed it).
    v1 = "".join(f"CREATE TABLE t{n} (id integer);\n" for n in range(8))
    revisions = [
        Rev(
            f"bbbb0000000{n}",
            (f"bbbb0000000{n - 1}" if n else TINY_BASE,),
            upgrade=f'op.execute("ALTER TABLE t{n} ADD COLUMN note text")',
        )
        for n in range(8)
    ]
    ini = bootstrapped(tiny_project(tmp_path / "p", *revisions, v1_sql=v1), database_url)

    result = cli(tmp_path, "-c", ini, "--url", database_url, "up", "--dry-run")

    assert result.returncode == 0, result.stdout + result.stderr
    summary = flatten("\n".join(summary_block(result.stdout)))
    folded = re.search(r"(?:and )?(\d+) (?:more )?tables locked under 0\.05 s each", summary)
    listed = len(re.findall(r"▲ LOCK", summary))
    assert folded is not None and int(folded.group(1)) + listed == 8, summary
    # Short locks alone need no attention: "nothing", then the folded line; never "Needs attention (0)".
    assert "Needs attention (0)" not in summary, summary
    if not listed:
        assert re.search(r"Needs attention: nothing .*\. 8 tables locked under 0\.05 s each", summary), summary


# -- a first deployment of a long chain ---------------------------------------------------

CHAIN = 288
READS_DATA_EVERY = 22  # 13 of the 288 read the database from Python, and cannot render offline SQL


def long_chain(folder: Path) -> Path:
    """288 revisions as a team writes them: a table each, with the column types style rules flag (serial,
    varchar, timestamp), an index, and messages as long as real ones; 13 read the database from Python."""
    revisions = [Rev("r0000", ())]
    for n in range(1, CHAIN + 1):
        upgrade = (
            f'op.execute("CREATE TABLE t{n} (id serial PRIMARY KEY, name varchar(80), created_at timestamp)")\n'
            f'op.execute("CREATE INDEX ix_t{n}_name ON t{n} (name)")'
        )
        if n % READS_DATA_EVERY == 0:
            upgrade += (
                "\nimport sqlalchemy as sa\n"
                f'count = op.get_bind().execute(sa.text("SELECT count(*) FROM t{n}")).scalar()\n'
                f"op.execute(f\"COMMENT ON TABLE t{n} IS '{{int(count)}} rows'\")"
            )
        message = f"add table t{n} for the reporting pipeline, with an index on its name column"
        revisions.append(Rev(f"r{n:04d}", (revisions[-1].revision,), message=message, upgrade=upgrade))
    return write_project(folder, revisions, baseline="r0000")


def test_a_288_revision_first_deployment_stays_reviewable(tmp_path: Path, database_url: str) -> None:
    """Piped at 80 columns (a CI log): the summary, the revisions folded to their ends, the diff counted by
    kind, no lock warning (the database is empty) and the style notes in one line: under 150 lines."""
    ini = str(long_chain(tmp_path / "p"))

    result = cli(tmp_path, "-c", ini, "--url", database_url, "up", "--dry-run", columns=80)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) < 150, f"{len(lines)} lines:\n{result.stdout}"
    summary = summary_block(result.stdout)
    assert len(summary) <= 40, "\n".join(summary)
    said = flatten("\n".join(summary))
    assert f"bootstrap, then {CHAIN} revisions" in said
    assert "13 revisions cannot render offline SQL" in said, said
    # The list folded to its ends, each revision one line with its statements counted by kind.
    listed = [line for line in lines if re.match(r" +\d+  r\d{4}  ", line)]
    assert [line.split()[1] for line in listed] == [f"r{n:04d}" for n in (1, 2, 3, 4, 5, 284, 285, 286, 287, 288)]
    assert "(1 CREATE TABLE, 1 CREATE INDEX)" in listed[0], listed[0]
    assert f"… {CHAIN - 10} more revisions (--details lists every one, with its file)" in result.stdout
    # Lint: a first deployment has no traffic to lock out and no client to break; the shape of the new
    # tables (serial, varchar, timestamp) is one style line with its count.
    text = flatten(result.stdout)
    assert "Lock and client rules do not apply to a first deployment into an empty database" in text, text
    assert "require-concurrent-index-creation" not in text and "warning" not in text.replace("0 warnings", "")
    style = re.search(r"● style (\d[\d,]*) notes on the shape of what this plan creates: (.+?) \(--details", text)
    assert style is not None, text
    linted = CHAIN - 13  # the 13 that cannot render offline SQL have none to lint
    assert int(style.group(1).replace(",", "")) == 4 * linted  # serial: identity and bigint; varchar; timestamp
    assert f"prefer-text-field {linted}" in style.group(2) and f"prefer-timestamp-tz {linted}" in style.group(2)
    assert f"lint: 0 errors, 0 warnings, {4 * linted:,} style notes." in text, text
    named = re.search(r"SQL of every revision, in the order it runs: (\S+\.sql)", text)
    assert named is not None, result.stdout
    sql = Path(named.group(1)).read_text()
    assert sql.count("CREATE TABLE t") == CHAIN - 13 and "CREATE TABLE t288 " in sql
    assert "CREATE TABLE t1 " not in result.stdout  # not inline
    assert re.search(r"\+ 289 tables added", result.stdout), result.stdout  # V1's things, and one per revision
    assert dbstate.alembic_version(database_url) is None  # no version table: nothing was applied

    inline = cli(tmp_path, "-c", ini, "--url", database_url, "up", "--dry-run", "--show-sql", columns=80)
    assert inline.returncode == 0, inline.stderr
    assert "CREATE TABLE t1 (id serial PRIMARY KEY" in inline.stdout


def test_details_list_every_revision_one_line_each_when_piped(tmp_path: Path, database_url: str) -> None:
    """--details piped at 80 columns: a table whose rows are never wrapped inside a cell (a CI log can be
    read wide), every revision a row with its whole message."""
    ini = str(long_chain(tmp_path / "p"))

    result = cli(tmp_path, "-c", ini, "--url", database_url, "up", "--dry-run", "--details", columns=80)

    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if re.match(r"│ \d+ +│ r\d{4} ", line)]
    assert len(rows) == CHAIN, result.stdout
    assert "add table t1 for the reporting pipeline, with an index on its name column" in rows[0], rows[0]
    assert "1 CREATE TABLE, 1 CREATE INDEX" in rows[0], rows[0]
    # No cell continues on a line of its own: each table line is a row, a rule or the header.
    table_lines = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert all(re.match(r"│ (\d+|\S.*?) +│", line) for line in table_lines), result.stdout
    continued = [line for line in table_lines if re.match(r"│ +│", line)]
    assert continued == [], continued[:5]


def test_up_yes_on_a_long_chain_does_not_list_every_revision_twice(tmp_path: Path, database_url: str) -> None:
    ini = str(long_chain(tmp_path / "p"))

    result = cli(tmp_path, "-c", ini, "--url", database_url, "up", "--yes", columns=80)

    assert result.returncode == 0, result.stdout + result.stderr
    progress = [line for line in result.stderr.splitlines() if line.lstrip().startswith("✓")]
    assert len(progress) < 30, result.stderr
    assert f"✓ {CHAIN}/{CHAIN} revisions applied" in result.stderr
    assert dbstate.alembic_version(database_url) == [f"r{CHAIN:04d}"]


def test_a_table_too_wide_for_the_terminal_is_stacked_whole_not_folded() -> None:
    from rich.console import Console

    from hindsight_migrate.render.layout import Column, grid

    console = Console(force_terminal=True, width=40, record=True, color_system=None)
    grid(console, "Impact", [Column("Revision"), Column("Table"), Column("Lock")], [["a" * 12, "b" * 24, "c" * 16]])

    shown = console.export_text()
    assert all(len(line) <= 40 for line in shown.splitlines()), shown
    assert "Revision: " + "a" * 12 in shown and "Table:    " + "b" * 24 in shown and "Lock:     " + "c" * 16 in shown


def test_a_table_never_analysed_shows_the_rows_it_holds_not_zero(tmp_path: Path, database_url: str) -> None:
    """The planner's reltuples of a table never analysed is -1 (0 before PostgreSQL 14): a small table is
    counted instead, so a rewrite of 15 rows reads as 15 rows, as the data-loss report would count them."""
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE notes (id integer)")'),
            Rev("cccc00000003", ("bbbb00000002",), upgrade='op.execute("ALTER TABLE notes ALTER id TYPE bigint")'),
        ),
        database_url,
    )
    assert invoke("-c", ini, "--url", database_url, "up", "bbbb00000002", "--yes").exit_code == 0
    dbstate.execute(database_url, "INSERT INTO notes SELECT g FROM generate_series(1, 15) g")
    never_analysed = dbstate.query(database_url, "SELECT reltuples FROM pg_class WHERE relname = 'notes'")
    assert never_analysed in ([(-1.0,)], [(0.0,)]), never_analysed

    shown = invoke("-c", ini, "--url", database_url, "up", "--dry-run")
    document = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--format", "json")

    assert shown.exit_code == 0, shown.output
    assert "rewrites it, 15 rows" in flatten(shown.output), shown.output
    impact = next(line for line in shown.output.splitlines() if "public.notes" in line and "ACCESS EXCLUSIVE" in line)
    assert " 15 " in impact and " 0 " not in impact, impact
    notes = json.loads(document.stdout)["plan"]["rehearsal"]["sizes"]["public.notes"]
    assert (notes["estimated_rows"], notes["rows_exact"]) == (15, True), notes


def test_a_table_over_the_data_limit_shows_predicted_holds_with_a_range_that_holds_the_applys(
    tmp_path: Path, database_url: str
) -> None:
    """Over rehearsal_data_limit_mb the copy holds a sample of each table: a rewrite and an index build of a
    table the sample holds a part of are predicted at the target's size, said to be predictions (with their
    range and the sample's share) on the screen and in the JSON, and the apply's holds, recorded against them,
    fall in that range (generous bounds here: bench/impact.py holds the tight target); status then shows both."""
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev(
                "bbbb00000002",
                (TINY_BASE,),
                upgrade='op.execute("CREATE TABLE big (id bigint PRIMARY KEY, n integer, payload text)")',
            ),
            Rev(
                "cccc00000003",
                ("bbbb00000002",),
                upgrade='op.execute("ALTER TABLE big ALTER n TYPE bigint")\n'
                'op.execute("CREATE INDEX ix_big_payload ON big (payload)")',
            ),
            settings="rehearsal_data_limit_mb = 2\nrehearsal_sample_mb = 2",
        ),
        database_url,
    )
    assert invoke("-c", ini, "--url", database_url, "up", "bbbb00000002", "--yes").exit_code == 0
    dbstate.execute(
        database_url,
        "INSERT INTO big SELECT g, mod(g, 1000), md5(g::text) || md5((g * 3)::text) FROM generate_series(1, 300000) g",
    )
    dbstate.execute(database_url, "ANALYZE big")

    shown = invoke("-c", ini, "--url", database_url, "up", "--dry-run")
    planned = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--format", "json")

    assert shown.exit_code == 0, shown.output
    said = flatten(shown.output)
    assert re.search(r"public\.big: ACCESS EXCLUSIVE, blocks reads and writes; held ~[\d.]+ s \([\d.]+ s-[\d.]+ s\), "
                     r"predicted from a [\d.]+ % sample", said), said
    assert re.search(r"rehearsed on a scratch copy with a [\d.]+ [kM]B sample of the target.s [\d.]+ MB", said), said
    assert "--rehearse-on URL" in said, said  # where measured figures come from
    document = valid_document(planned.stdout, "plan")
    (cost,) = [c for c in document["plan"]["rehearsal"]["costs"] if c["revision"] == "cccc00000003"]
    (hold,) = [h for h in cost["holds"] if h["table"] == "public.big"]
    assert hold["basis"] == "predicted" and hold["sample_percent"] < 100, hold
    assert hold["seconds_low"] <= hold["seconds"] <= hold["seconds_high"], hold
    assert hold["seconds"] > hold["rehearsal_seconds"], hold  # scaled up from the sample, not the sample's time
    lock = next(item for item in document["summary"]["attention"] if item["subject"] == "public.big")
    assert (lock["basis"], lock["seconds_high"]) == ("predicted", hold["seconds_high"]), lock

    applied = invoke("-c", ini, "--url", database_url, "up", "--yes", "--format", "json")

    assert applied.exit_code == 0, applied.output
    result = valid_document(applied.stdout, "plan")["result"]
    (held,) = [h for h in result["lock_holds"] if h["revision"] == "cccc00000003" and h["table"] == "public.big"]
    assert held["basis"] == "predicted"
    assert hold["seconds_low"] / 3 <= held["actual_seconds"] <= hold["seconds_high"] * 3, (hold, held)
    recorded = dbstate.query(database_url, "SELECT lock_holds IS NOT NULL FROM hindsight_migrate.apply_log "
                             "WHERE outcome = 'succeeded' ORDER BY id DESC LIMIT 1")
    assert recorded == [(True,)], recorded
    status = invoke("-c", ini, "--url", database_url, "status")
    assert re.search(r"cccc00000003 public\.big: plan said ~[\d.]+ s .*held [\d.]+ s", flatten(status.output)), (
        status.output
    )


# -- one revision, on a person's terminal ---------------------------------------------------------


def test_a_one_revision_up_fits_an_80x24_terminal_up_to_the_prompt(
    hindsight_with_data: str, hindsight_project: Path, database_url: str
) -> None:
    """Header, counts, Needs attention, the revision, its SQL and the recap: at most 40 lines before the
    question, so the summary has not scrolled far past the top of an 80x24 screen when the answer is typed."""
    assert invoke("-c", hindsight_with_data, "--url", database_url, "up", "0823327d9dc6", "--yes").exit_code == 0
    before = dbstate.snapshot(database_url)

    env = {k: v for k, v in subprocess_env(plain=False, NO_COLOR="1").items() if k not in ("COLUMNS", "LINES")}
    code, raw = in_terminal(
        cli_command(hindsight_with_data, database_url, "up"),
        env={**env, "TERM": "xterm"},
        when="Type the target revision",
        keys=b"\x03",  # Ctrl-C at the prompt: nothing is applied
    )
    shown = as_seen(raw)
    assert code == ExitCode.ABORTED, shown

    before_prompt = shown[: shown.index("Type the target revision")].rstrip("\n").split("\n")
    assert len(before_prompt) <= 40, f"{len(before_prompt)} lines:\n" + "\n".join(before_prompt)
    assert all(len(line) <= 80 for line in before_prompt), "\n".join(before_prompt)
    said = flatten("\n".join(before_prompt))
    assert "0823327d9dc6 → 461838d94bcb, 1 revision," in said, said
    assert re.search(r"▲ LOCK +public\.agent_transcripts: ACCESS EXCLUSIVE", said), said
    assert "1 461838d94bcb widen agent_transcripts.token_count to bigint" in said, said
    assert "ALTER TABLE agent_transcripts ALTER COLUMN token_count TYPE BIGINT;" in said, said
    assert "Longest blocking lock: ACCESS EXCLUSIVE on public.agent_transcripts" in said, said  # the recap
    # The traffic queued behind that lock waits as long as the apply waits for it: the schedule, in a line.
    assert "Lock waits: 100ms, doubling every 10s waited, up to 5s; 20 retries in 5min." in said, said
    assert dbstate.snapshot(database_url) == before  # killed at the prompt: nothing changed

    # The same plan with --details: the tables, more than a screen, for whoever wants them.
    detailed = cli(hindsight_project, "-c", hindsight_with_data, "--url", database_url, "up", "--dry-run", "--details")
    assert detailed.returncode == 0, detailed.stderr
    assert "Impact at the target's size: locks held" in detailed.stdout and "┃ Statement ┃" in detailed.stdout
