"""`hindsight-migrate status`: whether the database and the code agree, in one screen and in the exit code.

0 up to date, 10 behind (the pending revisions listed), 11 diverged (the database at a revision no file
has), 12 tampered (a revision file whose code was edited after it was applied, which check fails on too); a
checkout's changed line endings are no edit, and neither is a reformat (tests/reports/test_reformatted.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from hindsight_migrate.errors import ExitCode
from tests.conftest import flatten, invoke
from tests.harness import dbstate
from tests.harness.hindsight_chain import HEAD, at_head


def test_status_is_zero_at_head_and_ten_when_behind(hindsight_project: Path, database_url: str) -> None:
    ini = at_head(hindsight_project, database_url)

    up_to_date = invoke("-c", ini, "--url", database_url, "status")
    assert up_to_date.exit_code == 0, up_to_date.output
    assert "up to date" in up_to_date.stdout
    data = json.loads(invoke("-c", ini, "--url", database_url, "status", "--json").stdout)
    assert data["current"] == [HEAD] and data["pending"] == [] and data["verdicts"] == []
    assert data["last_apply"]["outcome"] == "succeeded"

    assert invoke("-c", ini, "--url", database_url, "down", "--steps", "2", "--yes").exit_code == 0
    behind = invoke("-c", ini, "--url", database_url, "status")
    assert behind.exit_code == ExitCode.BEHIND, behind.output
    assert "behind" in behind.stdout
    data = json.loads(invoke("-c", ini, "--url", database_url, "status", "--json").stdout)
    assert data["pending"] == ["0823327d9dc6", HEAD]


def test_edited_applied_revision_is_reported_by_status_and_fails_check(
    hindsight_project: Path, database_url: str
) -> None:
    ini = at_head(hindsight_project, database_url)
    edited = next((hindsight_project / "migrations" / "versions").glob("*_af874b5e21e4_*.py"))
    # A quiet fix after the fact: the code changes (a comment alone would not count: tests/reports/test_reformatted.py).
    edited.write_text(edited.read_text().replace('new_column_name="id")', 'new_column_name="block_id")', 1))

    result = invoke("-c", ini, "--url", database_url, "status")
    assert result.exit_code == ExitCode.TAMPERED, result.output
    assert "Edited after it was applied: af874b5e21e4" in flatten(result.stdout)
    data = json.loads(invoke("-c", ini, "--url", database_url, "status", "--json").stdout)
    assert [e["revision"] for e in data["edited"]] == ["af874b5e21e4"]

    checked = invoke("-c", ini, "--url", database_url, "check")
    assert checked.exit_code == ExitCode.CHECK_FAILED, checked.output
    assert "edited after they were applied" in flatten(checked.stdout) and "af874b5e21e4" in checked.stdout


def test_changed_line_endings_are_not_an_edit(hindsight_project: Path, database_url: str) -> None:
    ini = at_head(hindsight_project, database_url)
    path = next((hindsight_project / "migrations" / "versions").glob("*_af874b5e21e4_*.py"))
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    result = invoke("-c", ini, "--url", database_url, "status")
    assert result.exit_code == 0, result.output


def test_database_at_an_unknown_revision_is_diverged(hindsight_project: Path, database_url: str) -> None:
    ini = at_head(hindsight_project, database_url)
    dbstate.query(database_url, "SELECT 1")
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'deadbeef0000'"))
    engine.dispose()

    result = invoke("-c", ini, "--url", database_url, "status")
    assert result.exit_code == ExitCode.DIVERGED, result.output
    assert "deadbeef0000" in result.stdout
