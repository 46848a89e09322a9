"""`hindsight-migrate bootstrap`: V1 plus the baseline stamp, in one transaction, on an empty database."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from hindsight_migrate.cli import prompts
from tests.conftest import assert_failure, flatten, invoke
from tests.harness import dbstate
from tests.harness.hindsight_chain import BASELINE
from tests.harness.projects import Rev, write_project

V1_TABLES = {
    "agents",
    "agent_transcripts",
    "memory_blocks",
    "feedback_logs",
    "keywords",
    "memory_block_keywords",
}


def test_bootstrap_creates_v1_tables_and_stamps_baseline(hindsight_project: Path, database_url: str) -> None:
    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", database_url, "bootstrap", "--yes")

    assert result.exit_code == 0, result.output
    assert dbstate.tables(database_url) == V1_TABLES | {"alembic_version"}
    assert dbstate.alembic_version(database_url) == [BASELINE]
    columns = dbstate.query(
        database_url,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'memory_blocks' ORDER BY column_name",
    )
    assert ("memory_id", "uuid") in columns and ("metadata", "jsonb") in columns
    v1 = hindsight_project / "infra" / "migrations" / "V1__initial_schema.sql"
    recorded = dbstate.query(database_url, "SELECT sql_path, sql_sha256, baseline FROM hindsight_migrate.bootstrap_log")
    assert recorded == [
        ("infra/migrations/V1__initial_schema.sql", hashlib.sha256(v1.read_bytes()).hexdigest(), BASELINE)
    ]
    # The tool's own record stays out of the application's schema.
    assert "bootstrap_log" not in dbstate.tables(database_url)
    out = flatten(result.output)
    assert "table public.memory_blocks" in out or "public.memory_blocks" in out
    assert f"version table at {BASELINE}" in out


def test_plan_lists_what_v1_creates_before_asking(hindsight_project: Path, database_url: str) -> None:
    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", database_url, "bootstrap", "--dry-run")

    assert result.exit_code == 0, result.output
    for table in V1_TABLES:
        assert f"public.{table}" in result.stdout
    assert "public.ix_memory_blocks_agent_id" in result.stdout
    assert "Dry run: nothing was changed" in result.stderr
    assert dbstate.tables(database_url) == set()
    assert dbstate.schemas(database_url) == {"public"}


def test_second_bootstrap_refuses_and_changes_nothing(hindsight_project: Path, database_url: str) -> None:
    ini = str(hindsight_project / "alembic.ini")
    assert invoke("-c", ini, "--url", database_url, "bootstrap", "--yes").exit_code == 0
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, 6, "This database is not empty", "table public.agents", "table public.alembic_version")
    assert dbstate.snapshot(database_url) == before


def test_bootstrap_refuses_a_database_with_only_a_version_table(hindsight_project: Path, database_url: str) -> None:
    dbstate.query(database_url, "SELECT 1")  # connectivity
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("CREATE SCHEMA app"))
        connection.execute(text("CREATE TABLE app.alembic_version (version_num varchar(32) PRIMARY KEY)"))
    engine.dispose()

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, 6, "not empty", "app.alembic_version")
    assert dbstate.tables(database_url) == set()


def test_changed_v1_file_is_reported(hindsight_project: Path, database_url: str) -> None:
    ini = str(hindsight_project / "alembic.ini")
    assert invoke("-c", ini, "--url", database_url, "bootstrap", "--yes").exit_code == 0
    v1 = hindsight_project / "infra" / "migrations" / "V1__initial_schema.sql"
    v1.write_text(v1.read_text() + "\nCREATE TABLE sneaky (id integer);\n")

    result = invoke("-c", ini, "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, 6, "not empty", "V1__initial_schema.sql has changed since this database was bootstrapped")
    assert "sneaky" not in dbstate.tables(database_url)
    history = invoke("-c", ini, "--url", database_url, "history")
    assert history.exit_code == 0, history.output
    assert "has changed since this database was bootstrapped" in flatten(history.output)


def test_crlf_checkout_of_v1_is_not_a_change(hindsight_project: Path, database_url: str) -> None:
    ini = str(hindsight_project / "alembic.ini")
    assert invoke("-c", ini, "--url", database_url, "bootstrap", "--yes").exit_code == 0
    v1 = hindsight_project / "infra" / "migrations" / "V1__initial_schema.sql"
    v1.write_bytes(v1.read_bytes().replace(b"\n", b"\r\n"))

    result = invoke("-c", ini, "--url", database_url, "history")

    assert result.exit_code == 0, result.output
    assert "has changed" not in result.output


def test_failing_v1_leaves_the_database_empty(tmp_path: Path, database_url: str) -> None:
    ini = write_project(
        tmp_path / "p",
        [Rev("aaaa00000001", ())],
        v1_sql="CREATE TABLE first_table (id integer);\nCREATE TABLE second (id integer REFERENCES missing (id));\n",
    )

    result = invoke("-c", str(ini), "--url", database_url, "bootstrap", "--yes")

    assert_failure(
        result, 9, "v1.sql failed in the rehearsal at statement 2 (line 2)", 'relation "missing" does not exist'
    )
    assert "REFERENCES missing" in result.output
    assert dbstate.snapshot(database_url)["relations"] == []
    assert dbstate.schemas(database_url) == {"public"}


def test_v1_with_its_own_commit_is_refused_before_running(tmp_path: Path, database_url: str) -> None:
    ini = write_project(
        tmp_path / "p",
        [Rev("aaaa00000001", ())],
        v1_sql="BEGIN;\nCREATE TABLE t (id integer);\nCOMMIT;\n",
    )

    result = invoke("-c", str(ini), "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, 3, "line 1", "controls the transaction", "remove BEGIN/COMMIT/ROLLBACK")
    assert dbstate.tables(database_url) == set()


def test_percent_and_semicolons_inside_strings_survive(tmp_path: Path, database_url: str) -> None:
    ini = write_project(tmp_path / "p", [Rev("aaaa00000001", ())])

    result = invoke("-c", str(ini), "--url", database_url, "bootstrap", "--yes")

    assert result.exit_code == 0, result.output
    assert dbstate.tables(database_url) == {"things", "alembic_version"}
    check = dbstate.query(
        database_url,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname LIKE 'things_name_check'",
    )
    assert check and "%;%" in check[0][0]


def test_no_terminal_and_no_yes_refuses(hindsight_project: Path, database_url: str) -> None:
    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", database_url, "bootstrap")

    assert_failure(result, 7, "there is no terminal to ask on", "--yes")
    assert dbstate.tables(database_url) == set()


def test_declining_the_prompt_changes_nothing(
    hindsight_project: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prompts, "stdin_is_interactive", lambda: True)

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", database_url, "bootstrap", input="n\n")

    assert_failure(result, 7, "you did not confirm")
    assert dbstate.tables(database_url) == set()


def test_confirming_the_prompt_bootstraps(
    hindsight_project: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prompts, "stdin_is_interactive", lambda: True)

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", database_url, "bootstrap", input="y\n")

    assert result.exit_code == 0, result.output
    assert dbstate.alembic_version(database_url) == [BASELINE]


def test_sql_and_baseline_options_override_the_ini(tmp_path: Path, database_url: str) -> None:
    ini = write_project(
        tmp_path / "p", [Rev("aaaa00000001", ()), Rev("bbbb00000002", ("aaaa00000001",))], baseline="nope"
    )
    other_sql = tmp_path / "other.sql"
    other_sql.write_text("CREATE TABLE from_option (id integer);\n")

    result = invoke(
        "-c", str(ini), "--url", database_url, "bootstrap", "--yes", "--sql", str(other_sql), "--baseline", "bbbb"
    )

    assert result.exit_code == 0, result.output
    assert dbstate.tables(database_url) == {"from_option", "alembic_version"}
    assert dbstate.alembic_version(database_url) == ["bbbb00000002"]


def test_unknown_baseline_is_a_revision_error(hindsight_project: Path, database_url: str) -> None:
    result = invoke(
        "-c",
        str(hindsight_project / "alembic.ini"),
        "--url",
        database_url,
        "bootstrap",
        "--yes",
        "--baseline",
        "ffffffff",
    )

    assert_failure(result, 5, "No revision 'ffffffff' in this project", "hindsight-migrate history")
    assert dbstate.tables(database_url) == set()


def test_ambiguous_baseline_lists_the_candidates(tmp_path: Path, database_url: str) -> None:
    ini = write_project(
        tmp_path / "p", [Rev("abcd00000001", ()), Rev("abcd00000002", ("abcd00000001",))], baseline="abcd"
    )

    result = invoke("-c", str(ini), "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, 5, "'abcd' is ambiguous", "abcd00000001, abcd00000002")
    assert dbstate.tables(database_url) == set()


def test_missing_v1_file_is_a_config_error(hindsight_project: Path, database_url: str) -> None:
    (hindsight_project / "infra" / "migrations" / "V1__initial_schema.sql").unlink()

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, 3, "V1__initial_schema.sql does not exist", "--sql PATH")


def test_unconfigured_baseline_says_where_to_set_it(tmp_path: Path, database_url: str) -> None:
    ini = write_project(tmp_path / "p", [Rev("aaaa00000001", ())], baseline="")

    result = invoke("-c", str(ini), "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, 3, "No baseline revision is configured", "[hindsight-migrate]", "--baseline REV")


def test_another_run_holding_the_lock_is_named(hindsight_project: Path, database_url: str) -> None:
    from hindsight_migrate.postgres.locking import LOCK_NAMESPACE, MIGRATION_LOCK

    engine = create_engine(database_url, poolclass=NullPool, connect_args={"application_name": "other deploy job"})
    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:a, :b)"), {"a": LOCK_NAMESPACE, "b": MIGRATION_LOCK})
        holder.commit()
        result = invoke(
            "-c",
            str(hindsight_project / "alembic.ini"),
            "--url",
            database_url,
            "bootstrap",
            "--yes",
            "--lock-wait",
            "0.3",
        )
    engine.dispose()

    assert_failure(result, 8, "Another hindsight-migrate run is changing", "other deploy job", "--lock-wait")
    assert dbstate.tables(database_url) == set()


def test_killed_bootstrap_leaves_the_database_empty(tmp_path: Path, database_url: str) -> None:
    """SIGKILL while V1 runs: the one transaction never commits, nothing is half-built."""
    ini = write_project(
        tmp_path / "p",
        [Rev("aaaa00000001", ())],
        v1_sql=(
            "CREATE TABLE early (id integer);\n"
            # Sleeps only in the apply, where the migration lock is held, not in the rehearsal.
            "SELECT pg_sleep(CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
            "AND granted) THEN 60 ELSE 0 END);\n"
            "CREATE TABLE late (id integer);\n"
        ),
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "hindsight_migrate", "-c", str(ini), "--url", database_url, "bootstrap", "--yes"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        sleeping: list[tuple[object, ...]] = []
        while time.monotonic() < deadline and not sleeping:
            sleeping = dbstate.query(
                database_url,
                "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg\\_sleep%' "
                "AND state = 'active' AND datname = current_database()",
            )
            time.sleep(0.1)
        assert sleeping, "bootstrap never reached the pg_sleep of its apply"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    # The server notices the dead client and rolls its transaction back.
    dbstate.query(database_url, "SELECT pg_terminate_backend(:pid)", pid=sleeping[0][0])

    assert dbstate.snapshot(database_url)["relations"] == []
    assert dbstate.schemas(database_url) == {"public"}
