"""True numbers and plain words: what the reports say is what happened, in words a person reads.

"Last apply" is the last run that changed the database (a run that found nothing to do is not it); a count
of one is singular; a drop of an empty column is no data loss; an outcome is said in words, never as its
raw value; and Hindsight's own words (V1, bootstrapped) appear only in a project that configures a
bootstrap file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hindsight_migrate.cli import prompts
from tests.conftest import bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.projects import TINY_BASE, Rev, tiny_project
from tests.harness.templates import R3, init_project

ADD = "bbbb00000002"


def _tiny_at_head(tmp_path: Path, database_url: str) -> str:
    """A tiny project applied to its head (ADD) by one `up`, then `up` again, which finds nothing to do."""
    project = tiny_project(tmp_path / "p", Rev(ADD, (TINY_BASE,), upgrade='op.execute("SELECT 1")'))
    ini = bootstrapped(project, database_url)
    assert invoke("-c", ini, "--url", database_url, "up", "--yes", "--no-rehearsal").exit_code == 0
    assert invoke("-c", ini, "--url", database_url, "up", "--yes", "--no-rehearsal").exit_code == 0
    return ini


def test_last_apply_is_the_run_that_changed_the_database_not_a_later_one_that_found_nothing_to_do(
    tmp_path: Path, database_url: str
) -> None:
    ini = _tiny_at_head(tmp_path, database_url)

    for command in ("history", "status"):
        for shown in ("text", "markdown"):
            result = invoke("-c", ini, "--url", database_url, command, "--format", shown)
            out = flatten(result.output)
            assert "Last apply: up " in out, result.output
            said = out.split("Last apply: ")[1]
            assert f"{TINY_BASE} → {ADD}, succeeded" in said, result.output
            assert f"{ADD} → {ADD}" not in out and "nothing_to_do" not in out and "nothing to do" not in said
        document = json.loads(invoke("-c", ini, "--url", database_url, command, "--json").stdout)
        run = document["last_apply"] if command == "status" else document["database"]["last_apply"]
        assert (run["from_revisions"], run["to_revisions"], run["outcome"]) == (TINY_BASE, ADD, "succeeded")


def test_status_says_how_the_last_apply_ended_in_words_not_its_raw_value(tmp_path: Path, database_url: str) -> None:
    ini = _tiny_at_head(tmp_path, database_url)
    # As a run stopped by Ctrl-C leaves its row.
    dbstate.execute(
        database_url,
        "UPDATE hindsight_migrate.apply_log SET outcome = 'interrupted' WHERE id = "
        "(SELECT max(id) FROM hindsight_migrate.apply_log WHERE outcome = 'succeeded')",
    )

    for shown in ("text", "markdown"):
        result = invoke("-c", ini, "--url", database_url, "status", "--format", shown)
        assert f"{TINY_BASE} → {ADD}, interrupted (Ctrl-C or SIGTERM)" in flatten(result.output), result.output


def test_nothing_to_do_at_head_says_so_in_plain_words(tmp_path: Path, database_url: str) -> None:
    ini = _tiny_at_head(tmp_path, database_url)

    for target in ((), ("head",), ("heads",)):
        for shown in ("text", "markdown"):
            result = invoke("-c", ini, "--url", database_url, "up", *target, "--dry-run", "--format", shown)
            out = flatten(result.output)
            assert f"Nothing to do: the database is already at head ({ADD})." in out.replace("**", ""), result.output
            assert "already reached" not in out


def test_one_revision_is_counted_as_one_revision(tmp_path: Path) -> None:
    ini = str(tiny_project(tmp_path / "p"))  # the baseline alone

    for shown in ("text", "markdown"):
        result = invoke("-c", ini, "history", "--offline", "--format", shown)
        out = flatten(result.output)
        assert f"1 revision; head(s): {TINY_BASE}" in out, result.output
        assert "1 revisions" not in out


def test_a_dropped_column_no_row_holds_a_value_in_is_a_drop_not_data_loss(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev(ADD, (TINY_BASE,), upgrade='op.execute("ALTER TABLE things ADD COLUMN note text")'),
            Rev("cccc00000003", (ADD,), upgrade='op.execute("ALTER TABLE things DROP COLUMN note")'),
        ),
        database_url,
    )
    assert invoke("-c", ini, "--url", database_url, "up", ADD, "--yes").exit_code == 0
    # Rows, but none holds a note: counted exactly, nothing of value is lost.
    dbstate.execute(database_url, "INSERT INTO things (name) SELECT 'n' || g FROM generate_series(1, 5) g")

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run")

    assert result.exit_code == 0, result.output
    out = flatten(result.output)
    assert "Needs attention (1) ▲ DROP drops column public.things.note: no row holds a value in it" in out, out
    assert "DATA LOSS" not in out and "0 rows hold a value" not in out

    # Above the prompt too: nothing is destroyed, and the empty drop is named for the code that reads it.
    monkeypatch.setattr(prompts, "stdin_is_interactive", lambda: True)
    asked = flatten(invoke("-c", ini, "--url", database_url, "up", input="no\nno\nno\n").output)
    recap = asked[asked.index("Plan fingerprint") : asked.index("Type the")]
    assert "Destroys: no table or column that holds data." in recap, recap
    assert "Drops, empty: column public.things.note (code that reads it breaks)." in recap, recap


def test_one_row_holding_a_value_is_one_row_of_data_loss(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev(ADD, (TINY_BASE,), upgrade='op.execute("ALTER TABLE things ADD COLUMN note text")'),
            Rev("cccc00000003", (ADD,), upgrade='op.execute("ALTER TABLE things DROP COLUMN note")'),
        ),
        database_url,
    )
    assert invoke("-c", ini, "--url", database_url, "up", ADD, "--yes").exit_code == 0
    dbstate.execute(database_url, "INSERT INTO things (name, note) VALUES ('a', 'kept'), ('b', NULL)")

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run")

    out = flatten(result.output)
    assert "✖ DATA LOSS drops column public.things.note: 1 row holds a value in it" in out, out


def test_a_failed_rehearsal_says_failed_once(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(tmp_path / "p", Rev(ADD, (TINY_BASE,), upgrade='op.execute("SELECT 1/0")')), database_url
    )

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run")

    out = flatten(result.output)
    assert "✖ FAILED" in out and "division by zero" in out, out
    assert "FAILED failed" not in out


def test_a_project_without_a_bootstrap_file_hears_nothing_of_v1_or_bootstrapping(
    tmp_path: Path, database_url: str
) -> None:
    ini = str(init_project(tmp_path / "plain", "generic"))

    for shown in ("text", "markdown"):
        history = invoke("-c", ini, "--url", database_url, "history", "--format", shown)
        assert "has no revision applied." in flatten(history.output).replace("`", ""), history.output
        status = invoke("-c", ini, "--url", database_url, "status", "--format", shown)
        check = invoke("-c", ini, "--url", database_url, "check", "--format", shown)
        for result in (history, status, check):
            assert "Traceback" not in result.output, result.output
            assert "bootstrap" not in result.output.lower() and "V1" not in result.output, result.output
    assert json.loads(invoke("-c", ini, "--url", database_url, "status", "--json").stdout)["bootstraps"] is False
    # Applied, too: the reports speak of the revisions, and of nothing this project has not got.
    assert invoke("-c", ini, "--url", database_url, "up", "--yes").exit_code == 0
    status = invoke("-c", ini, "--url", database_url, "status")
    assert f"Current:  {R3}" in status.output and "V1" not in status.output, status.output


def test_a_project_with_a_bootstrap_file_keeps_its_v1_words(hindsight_project: Path, database_url: str) -> None:
    ini = str(hindsight_project / "alembic.ini")

    history = invoke("-c", ini, "--url", database_url, "history")
    status = invoke("-c", ini, "--url", database_url, "status")

    assert "has no revision applied (not bootstrapped)." in flatten(history.output), history.output
    assert "V1:" in status.output, status.output
    assert json.loads(invoke("-c", ini, "--url", database_url, "status", "--json").stdout)["bootstraps"] is True
