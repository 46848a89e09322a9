"""The moment of review: what the prompt restates, how it ends, and what a saved plan says about itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hindsight_migrate.cli import prompts
from hindsight_migrate.errors import ExitCode
from tests.conftest import assert_failure, bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.projects import TINY_BASE, Rev, tiny_project

ADD = "bbbb00000002"
DROP = "cccc00000003"


def project_with_a_drop(folder: Path) -> Path:
    """things (V1) gains a column, which the next revision drops again: a destructive upgrade."""
    return tiny_project(
        folder,
        Rev(
            ADD,
            (TINY_BASE,),
            upgrade='op.execute("ALTER TABLE things ADD COLUMN note text")',
            downgrade='op.execute("ALTER TABLE things DROP COLUMN note")',
        ),
        Rev(
            DROP,
            (ADD,),
            upgrade='op.execute("ALTER TABLE things DROP COLUMN note")',
            downgrade='op.execute("ALTER TABLE things ADD COLUMN note text")',
        ),
    )


@pytest.fixture
def at_add(tmp_path: Path, database_url: str) -> str:
    """The project at ADD, with three rows whose note holds data."""
    ini = bootstrapped(project_with_a_drop(tmp_path / "p"), database_url)
    assert invoke("-c", ini, "--url", database_url, "up", ADD, "--yes").exit_code == 0
    dbstate.query(database_url, "SELECT 1")
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO things (name, note) VALUES ('a', 'x'), ('b', 'y'), ('c', NULL)"))
    engine.dispose()
    return ini


def test_an_upgrade_that_drops_data_shows_the_rows_it_destroys_and_restates_them_at_the_prompt(
    at_add: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prompts, "stdin_is_interactive", lambda: True)
    before = dbstate.snapshot(database_url)

    declined = invoke("-c", at_add, "--url", database_url, "up", input="no\n")

    assert_failure(declined, ExitCode.ABORTED, "Nothing was changed")
    out = flatten(declined.output)
    assert "Data loss: what the upgrade drops" in out, declined.output
    assert "Destroys: column public.things.note (2 rows)" in out, declined.output
    # The recap stands right above the question, after the whole plan.
    assert out.index("Destroys:") > out.index("Plan fingerprint") and out.index("Destroys:") < out.index("Type the")
    assert "[]" not in declined.output  # no empty default offered
    assert dbstate.snapshot(database_url) == before


def test_end_of_input_at_the_prompt_aborts_with_exit_7(
    at_add: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prompts, "stdin_is_interactive", lambda: True)
    before = dbstate.snapshot(database_url)

    result = invoke("-c", at_add, "--url", database_url, "up", input="")

    assert_failure(result, ExitCode.ABORTED, "Nothing was changed: the confirmation was not given")
    assert dbstate.snapshot(database_url) == before


def test_a_saved_down_plan_replays_to_its_own_target_and_says_why_it_is_not_rehearsed(
    at_add: str, database_url: str, tmp_path: Path
) -> None:
    assert invoke("-c", at_add, "--url", database_url, "up", "--yes").exit_code == 0
    saved = tmp_path / "down.json"
    made = invoke("-c", at_add, "--url", database_url, "down", "--to", TINY_BASE, "--dry-run", "--plan-out", str(saved))
    assert made.exit_code == 0, made.output
    assert json.loads(saved.read_text())["plan"]["target"] == TINY_BASE

    # No --to: the saved plan's target (two steps), not one step.
    applied = invoke("-c", at_add, "--url", database_url, "down", "--plan", str(saved), "--yes")

    assert applied.exit_code == 0, applied.output
    assert dbstate.alembic_version(database_url) == [TINY_BASE]
    out = flatten(applied.output)
    assert "No rehearsal: applying a saved plan, which was rehearsed when it was reviewed" in out, applied.output
    assert "--no-rehearsal was given" not in out


def test_a_saved_up_plan_is_refused_by_down(at_add: str, database_url: str, tmp_path: Path) -> None:
    saved = tmp_path / "up.json"
    assert invoke("-c", at_add, "--url", database_url, "up", "--dry-run", "--plan-out", str(saved)).exit_code == 0
    before = dbstate.snapshot(database_url)

    result = invoke("-c", at_add, "--url", database_url, "down", "--plan", str(saved), "--yes")

    assert_failure(result, ExitCode.REFUSED, "This is a plan to go up; run it with `hindsight-migrate up`")
    assert dbstate.snapshot(database_url) == before


def test_detailed_exitcode_tells_nothing_changes_and_destruction_apart(database_url: str, at_add: str) -> None:
    # The fixture's database is at ADD, with rows in the column the next revision drops: destructive.
    destructive = invoke("-c", at_add, "--url", database_url, "up", "--dry-run", "--detailed-exitcode")
    assert destructive.exit_code == 3, destructive.output
    assert "drops column public.things.note holding 2 row(s)" in flatten(destructive.output)

    # Back at the baseline: adding a nullable column to things (three rows, no rewrite) changes, destroys nothing.
    assert invoke("-c", at_add, "--url", database_url, "up", "--yes").exit_code == 0
    assert invoke("-c", at_add, "--url", database_url, "down", "--to", TINY_BASE, "--yes").exit_code == 0
    changes = invoke("-c", at_add, "--url", database_url, "up", ADD, "--dry-run", "--detailed-exitcode")
    assert changes.exit_code == 2, changes.output
    assert "Exit code 2: the plan changes the database" in flatten(changes.output)

    assert invoke("-c", at_add, "--url", database_url, "up", "--yes").exit_code == 0
    nothing = invoke("-c", at_add, "--url", database_url, "up", "--dry-run", "--detailed-exitcode")
    assert nothing.exit_code == 0, nothing.output

    applying = invoke("-c", at_add, "--url", database_url, "up", "--detailed-exitcode", "--yes")
    assert_failure(applying, ExitCode.USAGE, "use it with --dry-run")


def test_plan_out_dash_writes_the_plan_file_to_stdout_alone(at_add: str, database_url: str, tmp_path: Path) -> None:
    result = invoke("-c", at_add, "--url", database_url, "up", "--dry-run", "--plan-out", "-")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # nothing but the plan file on stdout
    assert document["plan"]["direction"] == "up" and document["plan"]["final"] == [DROP]
    assert "Upgrade plan for" in result.stderr  # what a person reads went to stderr
    assert not (tmp_path / "-").exists() and not Path("-").exists()
    # It is a plan file like any other.
    saved = tmp_path / "saved.json"
    saved.write_text(result.stdout)
    applied = invoke("-c", at_add, "--url", database_url, "up", "--plan", str(saved), "--yes")
    assert applied.exit_code == 0, applied.output
    assert dbstate.alembic_version(database_url) == [DROP]
