"""`hindsight-migrate up`: review (pending revisions, SQL, a measured rehearsal, lint), then apply.

Every test checks the real database afterwards: the schema, the version table, the audit rows
in ``hindsight_migrate.apply_log``, and that no scratch database of a rehearsal was left behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.cli import prompts
from hindsight_migrate.config import resolve_settings
from hindsight_migrate.errors import ExitCode
from hindsight_migrate.postgres import catalog
from hindsight_migrate.postgres.database import open_database
from hindsight_migrate.render.wording import IMPACT_COLUMNS
from hindsight_migrate.review.plan import plan_upgrade
from hindsight_migrate.review.rehearsal import RehearsalOptions, RehearsalPlace
from hindsight_migrate.schema import diff_schemas
from tests.conftest import assert_failure, bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.gates import GATE, GATE_LOCK_TIMEOUT, gate_closed, wait_for_apply_at_gate
from tests.harness.hindsight_chain import (
    AFTER_BASELINE,
    AFTER_MERGE,
    BASELINE,
    BRANCH_POINT,
    FEEDBACK_BRANCH,
    HEAD,
    MERGE,
    SEARCH_BRANCH,
)
from tests.harness.processes import cli_command, stop, subprocess_env
from tests.harness.projects import ADD_NOTE, ENV_PY, ENV_PY_OWN_ENGINE, TINY_BASE, Rev, tiny_project
from tests.harness.roles import run_sql

PENDING = {AFTER_BASELINE, BRANCH_POINT, SEARCH_BRANCH, FEEDBACK_BRANCH, MERGE, AFTER_MERGE, HEAD}
V1_TABLES = {"agents", "agent_transcripts", "memory_blocks", "feedback_logs", "keywords", "memory_block_keywords"}
UNREACHABLE_URL = "postgresql://postgres@127.0.0.1:1/nope"

# Tiny projects: V1 is tests.harness.projects.TINY_V1 (table `things`), stamped as TINY_BASE.


# A gate the test holds on the target database: a revision that runs GATE waits there until
# the test opens it. Advisory locks belong to one database, so the same statement passes at
# once in a rehearsal's scratch copy: only the apply on the target waits, holding the migration
# lock, for exactly as long as the test needs (no sleeps to tune).

# -- helpers -----------------------------------------------------------------------------


def scratch_databases(url: str) -> list[str]:
    """This test's database's rehearsal databases still on the server; every rehearsal drops its own.

    Scratch databases carry their target's name, so other suites sharing the server do not count.
    """
    return dbstate.scratch_databases_of(url)


def apply_log(url: str) -> list[tuple[Any, ...]]:
    """(command, from_revisions, to_revisions, outcome) of every audited run, oldest first."""
    if not dbstate.query(url, "SELECT to_regclass('hindsight_migrate.apply_log') IS NOT NULL")[0][0]:
        return []
    return dbstate.query(
        url, "SELECT command, from_revisions, to_revisions, outcome FROM hindsight_migrate.apply_log ORDER BY id"
    )


def up_runs(url: str) -> list[tuple[Any, ...]]:
    return [row for row in apply_log(url) if row[0] == "up"]


def columns(url: str, table: str) -> dict[str, tuple[str, str]]:
    """{column: (data_type, is_nullable)} of a public table."""
    rows = dbstate.query(
        url,
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = :table",
        table=table,
    )
    return {name: (data_type, nullable) for name, data_type, nullable in rows}


def pending_order(stdout: str) -> list[str]:
    """The revision ids of the pending revisions, in the order shown: one line each ("  1  rev  message"),
    or the rows of the table --details shows."""
    listed = re.findall(r"^ +\d+  ([0-9a-f]{12})  ", stdout, flags=re.MULTILINE)
    return listed or re.findall(r"^│\s*\d+\s*│\s*([0-9a-f]{12})\s*│", stdout, flags=re.MULTILINE)


def table_lines(stdout: str, title: str) -> list[str]:
    """The body rows of the Rich table whose title starts with ``title``."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            rows.append(line)
    return rows






def wait_for_output(path: Path, words: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    """Wait until an unbuffered process has written ``words`` to the file its stdout goes to."""
    deadline = time.monotonic() + timeout
    while words not in path.read_text():
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before printing {words!r}:\n{path.read_text()}")
        if time.monotonic() >= deadline:
            pytest.fail(f"the run never printed {words!r}:\n{path.read_text()}")
        time.sleep(0.05)


# -- the plan ------------------------------------------------------------------------------


def test_dry_run_shows_the_measured_plan_and_changes_nothing(hindsight_project: Path, database_url: str) -> None:
    ini = bootstrapped(hindsight_project / "alembic.ini", database_url)
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--details")

    assert result.exit_code == 0, result.output
    out = result.stdout
    order = pending_order(out)
    assert sorted(order) == sorted(PENDING) and len(order) == 7, out
    # Run order: each revision after its parents, the merge after both branches.
    assert order[:2] == [AFTER_BASELINE, BRANCH_POINT]
    assert max(order.index(SEARCH_BRANCH), order.index(FEEDBACK_BRANCH)) < order.index(MERGE)
    assert order[-2:] == [AFTER_MERGE, HEAD]
    assert re.search(r"in the order they run \(7\)", out), out
    # The SQL of each revision, rendered offline.
    assert "ALTER TABLE memory_blocks RENAME memory_id TO id" in out
    assert "ALTER TABLE agent_transcripts ALTER COLUMN token_count TYPE BIGINT" in out
    # The schema diff, measured by the rehearsal.
    diff = table_lines(out, "Schema diff")
    assert any(re.search(r"\+\s*│\s*table\s*│\s*public\.users\s*│", line) for line in diff), out
    token_count = [line for line in diff if "public.agent_transcripts.token_count" in line]
    assert len(token_count) == 1 and "integer" in token_count[0] and "bigint" in token_count[0], out
    # A rename is a rename (the catalog keeps the column's number), not a drop and an add.
    renamed = [line for line in diff if "public.memory_blocks.memory_id" in line]
    assert len(renamed) == 1 and "→" in renamed[0].split("│")[1] and "public.memory_blocks.id" in renamed[0], out
    assert not any("public.memory_blocks.memory_id" in line and "-" in line.split("│")[1] for line in diff), out
    # The impact, measured: the type change rewrites agent_transcripts under ACCESS EXCLUSIVE.
    impact = table_lines(out, "Impact at the target")
    transcripts = [line for line in impact if "public.agent_transcripts" in line]
    assert len(transcripts) == 1, out
    rewritten = 1 + IMPACT_COLUMNS.index("Rewritten")  # the cell after the table's left border
    assert HEAD in transcripts[0] and "ACCESS EXCLUSIVE" in transcripts[0]
    assert transcripts[0].split("│")[rewritten].strip() == "yes", out
    # A rename changes the catalog only: nothing is rewritten.
    rename = next(line for line in impact if AFTER_BASELINE in line)
    assert "public.memory_blocks" in rename and rename.split("│")[rewritten].strip() == "no", out
    assert "Dry run" in result.stderr
    assert dbstate.snapshot(database_url) == before
    assert up_runs(database_url) == []
    assert scratch_databases(database_url) == []


def test_rehearsal_diff_is_what_the_apply_does(hindsight_project: Path, database_url: str) -> None:
    ini = bootstrapped(hindsight_project / "alembic.ini", database_url)
    settings = resolve_settings(config_path=Path(ini), url=database_url)
    project = AlembicProject(settings)
    database = open_database(settings.database)
    project.bind_target(database.engine.url, settings.database.origin)
    try:
        with database.connect() as connection:
            before = catalog.schema_snapshot(connection, version_table="alembic_version")
            connection.rollback()
        plan = plan_upgrade(project, database, target="heads", rehearsal=RehearsalOptions())
    finally:
        database.dispose()
    assert plan.rehearsal is not None and plan.rehearsal.ok, plan.rehearsal
    assert plan.rehearsal.where is RehearsalPlace.SCRATCH and plan.rehearsal.with_data
    assert scratch_databases(database_url) == []

    result = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert result.exit_code == 0, result.output
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            after = catalog.schema_snapshot(connection, version_table="alembic_version")
    finally:
        engine.dispose()
    applied = diff_schemas(before, after)
    assert applied, "the chain changes the schema"
    assert applied == plan.rehearsal.diff
    assert scratch_databases(database_url) == []


# -- applying ------------------------------------------------------------------------------


def test_up_applies_the_chain_and_records_it(hindsight_project: Path, database_url: str) -> None:
    ini = bootstrapped(hindsight_project / "alembic.ini", database_url)

    result = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert result.exit_code == 0, result.output
    # What was reviewed is what ran, in that order.
    ran = re.findall(r"✓ ([0-9a-f]{12})", result.stderr)
    assert ran == pending_order(result.stdout) and set(ran) == PENDING, result.output
    assert dbstate.alembic_version(database_url) == [HEAD]
    memory_blocks = columns(database_url, "memory_blocks")
    assert "id" in memory_blocks and "memory_id" not in memory_blocks
    assert "users" in dbstate.tables(database_url)
    assert columns(database_url, "agents")["slug"] == ("character varying", "NO")
    assert columns(database_url, "agent_transcripts")["token_count"][0] == "bigint"
    assert up_runs(database_url) == [("up", BASELINE, HEAD, "succeeded")]
    assert f"from {BASELINE} to {HEAD}" in flatten(result.stdout)
    assert scratch_databases(database_url) == []

    history = invoke("-c", ini, "--url", database_url, "history")
    assert history.exit_code == 0, history.output
    assert "Last apply: up" in flatten(history.stdout)
    assert f"{BASELINE} → {HEAD}, succeeded" in flatten(history.stdout)

    again = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert again.exit_code == 0, again.output
    assert "Nothing to do" in again.stdout
    # The second run changed nothing, and its row says so.
    assert up_runs(database_url) == [("up", BASELINE, HEAD, "succeeded"), ("up", HEAD, HEAD, "nothing_to_do")]
    assert dbstate.alembic_version(database_url) == [HEAD]


def test_a_failing_revision_is_caught_by_the_rehearsal(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p", Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE things (id integer)")')
        ),
        database_url,
    )
    before = dbstate.snapshot(database_url)
    log_before = apply_log(database_url)

    result = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert_failure(
        result, ExitCode.FAILED, "Revision bbbb00000002 fails in the rehearsal", 'relation "things" already exists'
    )
    assert dbstate.snapshot(database_url) == before
    assert apply_log(database_url) == log_before  # the bootstrap's row only: no 'up' was attempted
    assert up_runs(database_url) == []
    assert scratch_databases(database_url) == []


def test_not_null_over_existing_nulls_is_caught_with_the_data(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev(
                "bbbb00000002",
                (TINY_BASE,),
                upgrade='op.alter_column("notes", "body", nullable=False)',
            ),
            v1_sql="CREATE TABLE notes (id integer PRIMARY KEY, body text);\nINSERT INTO notes VALUES (1, NULL);\n",
        ),
        database_url,
    )
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert_failure(result, ExitCode.FAILED, "fails in the rehearsal", 'column "body"', "contains null values")
    assert "with its data" in flatten(result.stdout)
    assert dbstate.snapshot(database_url) == before
    assert columns(database_url, "notes")["body"] == ("text", "YES")
    assert dbstate.query(database_url, "SELECT id, body FROM notes") == [(1, None)]
    assert up_runs(database_url) == []
    assert scratch_databases(database_url) == []


def test_over_the_data_limit_the_apply_failure_stops_at_the_last_good_revision(
    tmp_path: Path, database_url: str
) -> None:
    """Data over rehearsal_data_limit_mb: the schema-only rehearsal cannot see the NULL row, the apply can."""
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE widgets (id integer)")'),
            Rev("bbbb00000003", ("bbbb00000002",), upgrade='op.alter_column("notes", "body", nullable=False)'),
            v1_sql="CREATE TABLE notes (id integer PRIMARY KEY, body text);\nINSERT INTO notes VALUES (1, NULL);\n",
            settings="rehearsal_data_limit_mb = 0",
        ),
        database_url,
    )

    result = invoke("-c", ini, "--url", database_url, "up", "--yes")

    shown = flatten(result.stdout)
    assert "schema only" in shown and "data-dependent failures are not caught" in shown, result.stdout
    assert_failure(
        result,
        ExitCode.FAILED,
        "Revision bbbb00000003 (revision bbbb00000003) failed and was rolled back",
        "contains null values",
        "ALTER TABLE notes ALTER COLUMN body SET NOT NULL",
        "Database now at bbbb00000002",
    )
    assert dbstate.alembic_version(database_url) == ["bbbb00000002"]
    assert "widgets" in dbstate.tables(database_url)
    assert columns(database_url, "notes")["body"] == ("text", "YES")
    assert up_runs(database_url) == [("up", TINY_BASE, "bbbb00000002", "failed")]
    error = dbstate.query(database_url, "SELECT error FROM hindsight_migrate.apply_log WHERE command = 'up'")
    assert "contains null values" in error[0][0]
    assert scratch_databases(database_url) == []


DEFERRED_VIOLATION = """\
op.execute("CREATE TABLE parents (id integer PRIMARY KEY)")
op.execute("CREATE TABLE children (parent_id integer REFERENCES parents DEFERRABLE INITIALLY DEFERRED)")
op.execute("INSERT INTO children VALUES (1)")"""


def test_a_revision_whose_commit_fails_is_not_reported_as_applied(tmp_path: Path, database_url: str) -> None:
    """A deferred foreign key is checked at COMMIT, after the revision's last statement."""
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE widgets (id integer)")'),
            Rev("cccc00000003", ("bbbb00000002",), upgrade=DEFERRED_VIOLATION),
        ),
        database_url,
    )

    result = invoke("-c", ini, "--url", database_url, "up", "--yes", "--no-rehearsal")

    assert_failure(result, ExitCode.FAILED, "Revision cccc00000003", "violates foreign key constraint")
    assert "✓ bbbb00000002" in result.stderr, result.stderr
    assert "✓ cccc00000003" not in result.stderr, result.stderr
    assert dbstate.alembic_version(database_url) == ["bbbb00000002"]
    assert "parents" not in dbstate.tables(database_url)
    assert up_runs(database_url) == [("up", TINY_BASE, "bbbb00000002", "failed")]
    checksums = dbstate.query(database_url, "SELECT revision FROM hindsight_migrate.applied_revisions ORDER BY 1")
    assert ("cccc00000003",) not in checksums and ("bbbb00000002",) in checksums

    rehearsed = invoke("-c", ini, "--url", database_url, "up", "--dry-run")

    assert_failure(rehearsed, ExitCode.FAILED, "Revision cccc00000003 fails in the rehearsal", "foreign key")
    assert dbstate.alembic_version(database_url) == ["bbbb00000002"]
    assert scratch_databases(database_url) == []


COMMITS_MID_REVISION = """\
op.execute("CREATE TABLE before_commit (id integer)")
op.get_bind().commit()
op.execute("CREATE TABLE after_commit (id integer)")"""

CONCURRENT_INDEX = """\
with op.get_context().autocommit_block():
    op.execute("CREATE INDEX CONCURRENTLY ix_things_name_id ON things (name, id)")"""


def test_revisions_that_commit_rehearse_on_a_scratch_copy_only(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade=COMMITS_MID_REVISION),
            Rev("cccc00000003", ("bbbb00000002",), upgrade=CONCURRENT_INDEX),
        ),
        database_url,
    )
    before = dbstate.snapshot(database_url)

    dry = invoke("-c", ini, "--url", database_url, "up", "--dry-run")

    assert dry.exit_code == 0, dry.output
    assert "public.ix_things_name_id" in dry.stdout and "public.after_commit" in dry.stdout
    assert dbstate.snapshot(database_url) == before
    assert scratch_databases(database_url) == []

    on_target = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--rehearse-on", "target")

    assert_failure(on_target, ExitCode.REFUSED, "cannot be rehearsed", "autocommit_block")
    assert dbstate.snapshot(database_url) == before

    applied = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert applied.exit_code == 0, applied.output
    assert dbstate.alembic_version(database_url) == ["cccc00000003"]
    assert {"before_commit", "after_commit"} <= dbstate.tables(database_url)
    index = dbstate.query(
        database_url, "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass('public.ix_things_name_id')"
    )
    assert index == [(True,)]
    assert up_runs(database_url) == [("up", TINY_BASE, "cccc00000003", "succeeded")]
    assert scratch_databases(database_url) == []


LOCKS_THEN_CONCURRENT_INDEX = """\
op.execute("ALTER TABLE things ADD COLUMN note text")
with op.get_context().autocommit_block():
    op.execute("CREATE INDEX CONCURRENTLY ix_things_note ON things (note)")"""


def test_locks_taken_before_an_autocommit_block_are_in_the_impact(tmp_path: Path, database_url: str) -> None:
    """The block commits mid-revision and releases the ALTER's lock; the impact must still show it."""
    ini = bootstrapped(
        tiny_project(tmp_path / "p", Rev("bbbb00000002", (TINY_BASE,), upgrade=LOCKS_THEN_CONCURRENT_INDEX)),
        database_url,
    )

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--details")

    assert result.exit_code == 0, result.output
    things = [line for line in table_lines(result.stdout, "Impact at the target") if "public.things" in line]
    assert len(things) == 1 and "bbbb00000002" in things[0] and "ACCESS EXCLUSIVE" in things[0], result.stdout
    assert scratch_databases(database_url) == []


def test_a_revision_that_cannot_render_offline_does_not_hide_the_others_sql(tmp_path: Path, database_url: str) -> None:
    reads_data = (
        "import sqlalchemy as sa\n"
        'count = op.get_bind().execute(sa.text("SELECT count(*) FROM things")).scalar()\n'
        'op.execute(f"CREATE TABLE counted_{int(count)} (id integer)")'
    )
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE widgets (id integer)")'),
            Rev("cccc00000003", ("bbbb00000002",), upgrade=reads_data),
            Rev("dddd00000004", ("cccc00000003",), upgrade='op.execute("CREATE TABLE gadgets (id integer)")'),
        ),
        database_url,
    )

    result = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert result.exit_code == 0, result.output
    shown = flatten(result.stdout)
    assert "CREATE TABLE widgets (id integer)" in shown and "CREATE TABLE gadgets (id integer)" in shown, shown
    assert "Cannot render offline" in shown, shown
    assert {"widgets", "counted_0", "gadgets"} <= dbstate.tables(database_url)
    assert dbstate.alembic_version(database_url) == ["dddd00000004"]


def test_a_database_with_only_a_collation_is_copied_for_the_rehearsal(tmp_path: Path, database_url: str) -> None:
    """An empty database needs no copy; one holding a collation a revision uses does."""
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text('CREATE COLLATION app_c FROM "C"'))
    engine.dispose()
    ini = tiny_project(
        tmp_path / "p",
        Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE labels (name text COLLATE app_c)")'),
    )

    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run", "--details")

    assert result.exit_code == 0, result.output
    assert any("public.labels" in line for line in table_lines(result.stdout, "Schema diff")), result.stdout
    assert "labels" not in dbstate.tables(database_url)
    assert scratch_databases(database_url) == []


def test_a_commit_mid_revision_cannot_be_rehearsed_on_the_target(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(tmp_path / "p", Rev("bbbb00000002", (TINY_BASE,), upgrade=COMMITS_MID_REVISION)), database_url
    )
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--rehearse-on", "target")

    assert_failure(result, ExitCode.REFUSED, "Revision bbbb00000002 cannot be rehearsed on the target", "commit")
    assert dbstate.snapshot(database_url) == before
    assert "before_commit" not in dbstate.tables(database_url)


def test_rehearsal_on_the_target_rolls_back(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE widgets (id integer)")'),
        ),
        database_url,
    )
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--details", "--rehearse-on", "target")

    assert result.exit_code == 0, result.output
    assert "the target itself, in one transaction that was rolled back" in flatten(result.stdout)
    assert any("public.widgets" in line for line in table_lines(result.stdout, "Schema diff"))
    assert dbstate.snapshot(database_url) == before
    assert scratch_databases(database_url) == []


ADD_REQUIRED_COLUMN = """\
import sqlalchemy as sa
op.add_column("things", sa.Column("x", sa.Integer(), nullable=False))"""


def test_lint_error_blocks_unless_allowed(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade=ADD_REQUIRED_COLUMN),
            settings="lint_error_rules = adding-required-field",
        ),
        database_url,
    )
    before = dbstate.snapshot(database_url)

    blocked = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert_failure(blocked, ExitCode.REFUSED, "Lint found 1 error(s)", "bbbb00000002 adding-required-field")
    assert dbstate.snapshot(database_url) == before
    assert up_runs(database_url) == []
    assert scratch_databases(database_url) == []

    allowed = invoke("-c", ini, "--url", database_url, "up", "--yes", "--allow-lint")

    assert allowed.exit_code == 0, allowed.output
    assert columns(database_url, "things")["x"] == ("integer", "NO")
    assert dbstate.alembic_version(database_url) == ["bbbb00000002"]
    assert scratch_databases(database_url) == []


def test_the_reviewer_types_the_target_revision(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE widgets (id integer)")'),
            Rev("cccc00000003", ("bbbb00000002",), upgrade='op.execute("CREATE TABLE gadgets (id integer)")'),
        ),
        database_url,
    )
    before = dbstate.snapshot(database_url)
    monkeypatch.setattr(prompts, "stdin_is_interactive", lambda: True)

    declined = invoke("-c", ini, "--url", database_url, "up", input="nope\n")

    assert_failure(declined, ExitCode.ABORTED, "Nothing was changed", "'nope' is not 'cccc00000003'")
    assert dbstate.snapshot(database_url) == before
    assert scratch_databases(database_url) == []

    # Typing the first revision, or 'y', is not the target either.
    wrong = invoke("-c", ini, "--url", database_url, "up", input="y\n")

    assert_failure(wrong, ExitCode.ABORTED, "Nothing was changed")
    assert dbstate.snapshot(database_url) == before

    confirmed = invoke("-c", ini, "--url", database_url, "up", input="cccc0000\n")

    assert confirmed.exit_code == 0, confirmed.output
    assert "Type the target revision (cccc00000003" in flatten(confirmed.stderr)
    assert dbstate.alembic_version(database_url) == ["cccc00000003"]
    assert {"widgets", "gadgets"} <= dbstate.tables(database_url)
    assert scratch_databases(database_url) == []


def test_no_terminal_and_no_yes_refuses(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE widgets (id integer)")'),
        ),
        database_url,
    )
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "up")

    assert_failure(result, ExitCode.ABORTED, "there is no terminal to ask on", "--yes")
    assert "public.widgets" not in result.stdout  # refused before planning: no question anyone can answer
    assert dbstate.snapshot(database_url) == before
    assert up_runs(database_url) == []
    assert scratch_databases(database_url) == []


# -- concurrency, kills and locks ------------------------------------------------------------


APPLY_ONCE = f"""\
op.execute("CREATE TABLE applied_once (n integer)")
op.execute("INSERT INTO applied_once VALUES (1)")
op.execute({GATE!r})"""


def test_concurrent_runs_apply_once(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(tmp_path / "p", Rev("bbbb00000002", (TINY_BASE,), upgrade=APPLY_ONCE), settings=GATE_LOCK_TIMEOUT),
        database_url,
    )
    env = subprocess_env(plain=False, PYTHONUNBUFFERED="1")
    first = impatient = patient = None
    patient_out = tmp_path / "patient.out"
    try:
        with gate_closed(database_url) as open_gate, patient_out.open("w") as patient_stdout:
            first = subprocess.Popen(
                cli_command(ini, database_url, "up", "--yes"),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            wait_for_apply_at_gate(database_url, first)
            # First's apply is mid-revision, holding the migration lock.
            impatient = subprocess.Popen(
                cli_command(ini, database_url, "up", "--yes", "--lock-wait", "1"),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            patient = subprocess.Popen(
                cli_command(ini, database_url, "up", "--yes", "--lock-wait", "30"),
                env=env,
                stdout=patient_stdout,
                stderr=subprocess.PIPE,
                text=True,
            )
            impatient_out, impatient_err = impatient.communicate(timeout=60)
            wait_for_output(patient_out, "Plan fingerprint", patient)  # it planned from the baseline too
            open_gate()
            first_out, first_err = first.communicate(timeout=60)
            _, patient_err = patient.communicate(timeout=60)
    finally:
        stop(first, impatient, patient)

    assert impatient.returncode == ExitCode.LOCKED, impatient_out + impatient_err
    said = flatten(impatient_err)
    assert "Another hindsight-migrate run is changing" in said and "Nothing was changed" in said, impatient_err
    assert f"hindsight-migrate pid {first.pid}" in said, impatient_err
    assert "Traceback" not in impatient_err
    assert first.returncode == 0, first_out + first_err
    assert patient.returncode == 0, patient_out.read_text() + patient_err
    assert "Traceback" not in patient_err
    assert dbstate.query(database_url, "SELECT count(*) FROM applied_once") == [(1,)]
    assert dbstate.alembic_version(database_url) == ["bbbb00000002"]
    # One run applied it; the patient one found it done, and says so in its own row.
    assert up_runs(database_url) == [
        ("up", TINY_BASE, "bbbb00000002", "succeeded"),
        ("up", "bbbb00000002", "bbbb00000002", "nothing_to_do"),
    ]
    assert scratch_databases(database_url) == []


def test_a_run_that_finds_its_plan_applied_by_another_says_it_applied_nothing(
    tmp_path: Path, database_url: str
) -> None:
    ini = bootstrapped(
        tiny_project(tmp_path / "p", Rev("bbbb00000002", (TINY_BASE,), upgrade=APPLY_ONCE), settings=GATE_LOCK_TIMEOUT),
        database_url,
    )
    env = subprocess_env(plain=False, PYTHONUNBUFFERED="1")
    first = second = None
    second_out = tmp_path / "second.out"
    try:
        with gate_closed(database_url) as open_gate, second_out.open("w") as second_stdout:
            first = subprocess.Popen(
                cli_command(ini, database_url, "up", "--yes"),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            wait_for_apply_at_gate(database_url, first)
            second = subprocess.Popen(
                cli_command(ini, database_url, "up", "--yes", "--lock-wait", "30"),
                env=env,
                stdout=second_stdout,
                stderr=subprocess.PIPE,
                text=True,
            )
            wait_for_output(second_out, "Plan fingerprint", second)
            open_gate()
            first.communicate(timeout=60)
            _, second_err = second.communicate(timeout=60)
    finally:
        stop(first, second)

    assert first.returncode == 0 and second.returncode == 0, second_err
    assert dbstate.query(database_url, "SELECT count(*) FROM applied_once") == [(1,)]
    # The second run planned bbbb00000002 from the baseline, then found it applied by the first.
    said = flatten(second_out.read_text().split("Plan fingerprint")[1])
    assert "Upgraded" not in said, said
    assert "nothing to do" in said.lower() or "already" in said.lower(), said


def test_killed_up_stops_at_the_last_committed_revision(tmp_path: Path, database_url: str) -> None:
    """SIGKILL during the second revision: the first stays applied, the second leaves no trace."""
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000001", (TINY_BASE,), upgrade='op.execute("CREATE TABLE t1 (id integer)")'),
            Rev(
                "bbbb00000002",
                ("bbbb00000001",),
                upgrade=f'op.execute("CREATE TABLE t2 (id integer)")\nop.execute({GATE!r})',
            ),
            Rev("bbbb00000003", ("bbbb00000002",), upgrade='op.execute("CREATE TABLE t3 (id integer)")'),
            settings=GATE_LOCK_TIMEOUT,
        ),
        database_url,
    )
    process = None
    try:
        with gate_closed(database_url):
            process = subprocess.Popen(
                cli_command(ini, database_url, "up", "--yes"),
                env=subprocess_env(plain=False),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            backend = wait_for_apply_at_gate(database_url, process)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            # The server notices the dead client only when the statement ends; end it now.
            dbstate.query(database_url, "SELECT pg_terminate_backend(:pid)", pid=backend)
    finally:
        stop(process)

    assert dbstate.alembic_version(database_url) == ["bbbb00000001"]
    assert "t1" in dbstate.tables(database_url)
    assert "t2" not in dbstate.tables(database_url)
    assert up_runs(database_url) == [("up", TINY_BASE, None, "running")]

    result = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert result.exit_code == 0, result.output
    assert dbstate.alembic_version(database_url) == ["bbbb00000003"]
    assert {"t1", "t2", "t3"} <= dbstate.tables(database_url)
    assert up_runs(database_url) == [
        ("up", TINY_BASE, None, "running"),
        ("up", "bbbb00000001", "bbbb00000003", "succeeded"),
    ]
    assert scratch_databases(database_url) == []


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_rehearsal_drops_its_scratch_database(
    tmp_path: Path, database_url: str, how: signal.Signals
) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev(
                "bbbb00000002",
                (TINY_BASE,),
                upgrade='op.execute("CREATE TABLE t (id integer)")\nop.execute("SELECT pg_sleep(30)")',
            ),
        ),
        database_url,
    )
    before = dbstate.snapshot(database_url)
    process = subprocess.Popen(
        cli_command(ini, database_url, "up", "--yes"),
        env=subprocess_env(plain=False),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        rehearsing: list[tuple[Any, ...]] = []
        while not rehearsing and time.monotonic() < deadline and process.poll() is None:
            rehearsing = dbstate.query(
                database_url,
                "SELECT datname FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg\\_sleep(30)%' "
                "AND datname LIKE 'hindsight\\_rehearsal\\_%'",
            )
            time.sleep(0.05)
        assert rehearsing, f"the rehearsal never reached its pg_sleep (exit {process.poll()})"
        process.send_signal(how)
        out, err = process.communicate(timeout=30)
    finally:
        stop(process)

    assert process.returncode == ExitCode.INTERRUPTED, out + err
    assert "Interrupted" in err and "Traceback" not in err
    assert scratch_databases(database_url) == []
    assert dbstate.snapshot(database_url) == before


def test_lock_timeout_gives_up_instead_of_queueing(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            ADD_NOTE,
            settings="lock_timeout = 1s",
        ),
        database_url,
    )
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as holder:
            # Live traffic: a reader's open transaction on the table the revision alters.
            holder.execute(text("LOCK TABLE things IN ACCESS SHARE MODE"))
            started = time.monotonic()
            # A process with a timeout: a tool that queued behind the reader would wait forever.
            result = subprocess.run(
                cli_command(ini, database_url, "up", "--yes", "--lock-retries", "0"),
                env=subprocess_env(plain=False),
                capture_output=True,
                text=True,
                timeout=60,
            )
            took = time.monotonic() - started
            holder.rollback()
    finally:
        engine.dispose()

    assert result.returncode == ExitCode.FAILED, result.stdout + result.stderr
    said = flatten(result.stderr)
    assert "Revision bbbb00000002" in said and "waited for a lock (1s) and gave up" in said, result.stderr
    assert "lock timeout" in said and f"Database now at {TINY_BASE}" in said, result.stderr
    assert "Traceback" not in result.stderr
    assert took < 15, took
    assert dbstate.alembic_version(database_url) == [TINY_BASE]
    assert "note" not in columns(database_url, "things")
    assert up_runs(database_url) == [("up", TINY_BASE, TINY_BASE, "failed")]
    waited = dbstate.query(
        database_url, "SELECT duration_seconds, error FROM hindsight_migrate.apply_log WHERE command = 'up'"
    )
    assert waited[0][0] < 4, waited  # 1s, not the default 5s
    assert "lock timeout" in waited[0][1]
    assert scratch_databases(database_url) == []


# -- what `up` is pointed at -----------------------------------------------------------------


def test_empty_database_is_bootstrapped_in_the_same_plan(hindsight_project: Path, database_url: str) -> None:
    ini = str(hindsight_project / "alembic.ini")

    dry = invoke("-c", ini, "--url", database_url, "up", "--dry-run")

    assert dry.exit_code == 0, dry.output
    assert "Bootstrap first" in flatten(dry.stdout)
    assert "V1__initial_schema.sql" in dry.stdout
    assert sorted(pending_order(dry.stdout)) == sorted(PENDING)
    assert dbstate.snapshot(database_url)["relations"] == []
    assert dbstate.schemas(database_url) == {"public"}
    assert scratch_databases(database_url) == []

    result = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert result.exit_code == 0, result.output
    assert dbstate.alembic_version(database_url) == [HEAD]
    assert V1_TABLES | {"users", "alembic_version"} <= dbstate.tables(database_url)
    assert dbstate.query(database_url, "SELECT baseline FROM hindsight_migrate.bootstrap_log") == [(BASELINE,)]
    assert apply_log(database_url) == [
        ("bootstrap", "base", BASELINE, "succeeded"),
        ("up", BASELINE, HEAD, "succeeded"),
    ]
    assert scratch_databases(database_url) == []


REV_1 = "abcd11110001"
REV_2 = "abcd22220002"
REV_3 = "cdef33330003"


def test_targets(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev(REV_1, (TINY_BASE,), upgrade='op.execute("CREATE TABLE one (id integer)")'),
            Rev(REV_2, (REV_1,), upgrade='op.execute("CREATE TABLE two (id integer)")'),
            Rev(REV_3, (REV_2,), upgrade='op.execute("CREATE TABLE three (id integer)")'),
        ),
        database_url,
    )

    one = invoke("-c", ini, "--url", database_url, "up", "+1", "--yes")

    assert one.exit_code == 0, one.output
    assert dbstate.alembic_version(database_url) == [REV_1]
    assert {"one", "two", "three"} & dbstate.tables(database_url) == {"one"}

    middle = invoke("-c", ini, "--url", database_url, "up", REV_2[:8], "--yes")

    assert middle.exit_code == 0, middle.output
    assert pending_order(middle.stdout) == [REV_2]
    assert dbstate.alembic_version(database_url) == [REV_2]
    assert "three" not in dbstate.tables(database_url)
    before = dbstate.snapshot(database_url)

    unknown = invoke("-c", ini, "--url", database_url, "up", "ffff0000", "--yes")

    assert_failure(unknown, ExitCode.REVISION, "No revision 'ffff0000'")
    ambiguous = invoke("-c", ini, "--url", database_url, "up", "abcd", "--yes")

    assert_failure(ambiguous, ExitCode.REVISION, "'abcd' is ambiguous", f"{REV_1}, {REV_2}")
    assert dbstate.snapshot(database_url) == before
    assert up_runs(database_url) == [
        ("up", TINY_BASE, REV_1, "succeeded"),
        ("up", REV_1, REV_2, "succeeded"),
    ]
    assert scratch_databases(database_url) == []


def test_sql_needs_no_database(hindsight_project: Path) -> None:
    ini = str(hindsight_project / "alembic.ini")

    everything = invoke("-c", ini, "--url", UNREACHABLE_URL, "up", "--sql")

    assert everything.exit_code == 0, everything.output
    sql = everything.stdout
    for revision in PENDING:
        assert f"-- {revision}:" in sql
    assert f"-- {BASELINE}:" not in sql
    assert "ALTER TABLE memory_blocks RENAME memory_id TO id" in sql
    assert "ALTER TABLE agent_transcripts ALTER COLUMN token_count TYPE BIGINT" in sql

    first_two = invoke("-c", ini, "--url", UNREACHABLE_URL, "up", "--sql", f"{BASELINE}:{BRANCH_POINT}")

    assert first_two.exit_code == 0, first_two.output
    assert re.findall(r"^-- ([0-9a-f]{12}):", first_two.stdout, flags=re.MULTILINE) == [AFTER_BASELINE, BRANCH_POINT]
    assert "CREATE TABLE users" in first_two.stdout
    assert "pg_trgm" not in first_two.stdout and "token_count" not in first_two.stdout


def test_env_py_whose_engine_names_another_database_is_refused_before_the_rehearsal(
    tmp_path: Path,
    database_url: str,
    make_database: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other_url = make_database("other")
    monkeypatch.setenv("MY_APP_DB", other_url)
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE widgets (id integer)")'),
        ),
        database_url,
    )
    # The project's env.py is then replaced by one that ignores the connection it is handed.
    assert (tmp_path / "p" / "migrations" / "env.py").read_text() == ENV_PY
    (tmp_path / "p" / "migrations" / "env.py").write_text(ENV_PY_OWN_ENGINE)
    before = dbstate.snapshot(database_url)
    other_before = dbstate.snapshot(other_url)

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run")

    assert_failure(result, ExitCode.CONFIG, "asked for the database in MY_APP_DB", "the plan is for the one from --url")
    assert dbstate.snapshot(database_url) == before
    assert dbstate.snapshot(other_url) == other_before
    assert dbstate.alembic_version(other_url) is None
    assert scratch_databases(database_url) == []


def test_password_stays_out_of_output_and_audit(tmp_path: Path, database_url: str) -> None:
    password = "S3cr3t-pw"
    url = make_url(database_url).set(password=password).render_as_string(hide_password=False)
    assert f":{password}@" in url
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE widgets (id integer)")'),
        ),
        url,
    )

    result = invoke("-c", ini, "--url", url, "up", "--yes")

    assert result.exit_code == 0, result.output
    assert password not in result.output
    assert "postgres:***@" in result.output
    assert dbstate.alembic_version(database_url) == ["bbbb00000002"]
    rows = dbstate.query(database_url, "SELECT a::text FROM hindsight_migrate.apply_log a")
    assert len(rows) == 2  # bootstrap and up
    for (row,) in rows:
        assert password not in row, row
    assert any(":***@" in row for (row,) in rows), rows
    for (row,) in dbstate.query(database_url, "SELECT b::text FROM hindsight_migrate.bootstrap_log b"):
        assert password not in row, row
    assert scratch_databases(database_url) == []


# -- where the rehearsal runs ----------------------------------------------------------------


def test_without_createdb_the_tool_says_so_and_what_to_do(tmp_path: Path, database_url: str, admin_engine: Any) -> None:
    """No scratch database can be made: say so, never fall back silently; target rehearsal still works."""
    role = f"nocreate_{os.getpid()}_{int(time.monotonic() * 1000) % 100000}"
    name = make_url(database_url).database
    with admin_engine.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN NOCREATEDB'))
        connection.execute(text(f'GRANT CREATE ON DATABASE "{name}" TO "{role}"'))
    # PostgreSQL 15+ no longer lets every role create in public.
    grant = create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with grant.connect() as connection:
        connection.execute(text(f'GRANT CREATE, USAGE ON SCHEMA public TO "{role}"'))
    grant.dispose()
    try:
        limited = make_url(database_url).set(username=role).render_as_string(hide_password=False)
        ini = tiny_project(
            tmp_path / "p", Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE x (i int)")')
        )
        bootstrapped(ini, limited)
        before = dbstate.snapshot(database_url)

        refused = invoke("-c", str(ini), "--url", limited, "up", "--dry-run")
        assert_failure(refused, ExitCode.REFUSED, "could not be created", "CREATEDB", "--rehearse-on target")
        assert dbstate.snapshot(database_url) == before

        on_target = invoke("-c", str(ini), "--url", limited, "up", "--dry-run", "--rehearse-on", "target")
        assert on_target.exit_code == 0, on_target.output
        assert "+ table public.x" in flatten(on_target.stdout) or "public.x" in on_target.stdout
        assert dbstate.snapshot(database_url) == before
    finally:
        # What the role owns and was granted lives in the test database: drop it there, then the role.
        engine = create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'DROP OWNED BY "{role}" CASCADE'))
        engine.dispose()
        with admin_engine.connect() as connection:
            connection.execute(text(f'REVOKE ALL ON DATABASE "{name}" FROM "{role}"'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))


def test_rehearse_on_another_database_leaves_the_target_alone(
    tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    ini = tiny_project(
        tmp_path / "p", Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE x (i int)")')
    )
    staging = make_database("staging")
    bootstrapped(ini, database_url)
    bootstrapped(ini, staging)
    before = dbstate.snapshot(database_url)

    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run", "--rehearse-on", staging)

    assert result.exit_code == 0, result.output
    assert "--rehearse-on; now changed" in flatten(result.stdout)
    assert dbstate.snapshot(database_url) == before
    assert dbstate.alembic_version(staging) == ["bbbb00000002"]  # the disposable copy took the rehearsal
    assert "x" in dbstate.tables(staging)


def test_slow_statement_on_the_target_is_a_measured_warning(tmp_path: Path, database_url: str) -> None:
    ini = tiny_project(
        tmp_path / "p",
        Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("SELECT pg_sleep(3)")'),
        settings="statement_timeout = 1s",
    )
    bootstrapped(ini, database_url)
    before = dbstate.snapshot(database_url)

    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run", "--rehearse-on", "target")

    assert result.exit_code == 0, result.output
    assert "bbbb00000002: a statement takes more than 1s" in flatten(result.stdout)
    assert dbstate.snapshot(database_url) == before


def test_rows_a_backfill_writes_are_measured_and_ddl_alone_writes_none(tmp_path: Path, database_url: str) -> None:
    """Rows written are read where a revision may write them (a backfill), and a revision of DDL alone, the
    version table's own update left out, writes none: no figure made of Alembic's bookkeeping."""
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            ADD_NOTE,
            Rev("cccc00000003", ("bbbb00000002",), upgrade="op.execute(\"UPDATE things SET note = 'x' WHERE id > 2\")"),
            Rev("dddd00000004", ("cccc00000003",), upgrade='op.create_index("ix_things_note", "things", ["note"])'),
        ),
        database_url,
    )
    run_sql(database_url, "INSERT INTO things (name) SELECT 'n' || g FROM generate_series(1, 10) g")

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--format", "json")

    assert result.exit_code == 0, result.output
    costs = {cost["revision"]: cost["rows_written"] for cost in json.loads(result.stdout)["plan"]["rehearsal"]["costs"]}
    assert costs == {"bbbb00000002": [], "cccc00000003": [["public.things", 8]], "dddd00000004": []}, costs
