"""Help at 80 columns, Alembic's habits (`down -1`, `up +2`), and the prompt: three tries, no terminal, Ctrl-C."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import pytest

from hindsight_migrate.cli import prompts
from hindsight_migrate.errors import ExitCode
from tests.conftest import assert_failure, bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.processes import cli_command, in_terminal, subprocess_env
from tests.harness.projects import TINY_BASE, Rev, tiny_project

COMMANDS = ("bootstrap", "history", "up", "down", "new", "status", "check", "lint", "merge")
REV_2, REV_3, REV_4 = "bbbb00000002", "cccc00000003", "dddd00000004"


def chain(folder: Path, *, marker: Path | None = None) -> str:
    """TINY_BASE, then three revisions each creating a table; with ``marker``, running REV_2's upgrade
    (in a rehearsal, or for real) appends a line to that file."""
    touch = f"open({str(marker)!r}, 'a').write('ran\\n')\n" if marker is not None else ""
    revisions = [
        Rev(REV_2, (TINY_BASE,), upgrade=touch + 'op.execute("CREATE TABLE t2 (id integer)")',
            downgrade='op.execute("DROP TABLE t2")'),
        Rev(REV_3, (REV_2,), upgrade='op.execute("CREATE TABLE t3 (id integer)")',
            downgrade='op.execute("DROP TABLE t3")'),
        Rev(REV_4, (REV_3,), upgrade='op.execute("CREATE TABLE t4 (id integer)")',
            downgrade='op.execute("DROP TABLE t4")'),
    ]
    return str(tiny_project(folder, *revisions))


# --- help ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_fits_80_columns_and_cuts_nothing(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = invoke(*([command] if command else []), "--help")

    assert result.exit_code == 0, result.output
    assert "…" not in result.output, result.output
    assert "<bool>" not in result.output, result.output  # a flag takes no value: it shows as a flag
    assert all(len(line) <= 80 for line in result.output.splitlines()), result.output
    said = flatten(result.output)
    # Bracketed words are text, not markup to be swallowed.
    assert "./pyproject.toml's [tool.alembic])" in said, result.output
    assert "--url URL Database URL (postgresql://USER:PASSWORD@HOST:PORT/DB)." in said, result.output
    if command == "":
        assert "instead of [alembic] (as alembic -n)" in said, result.output


def test_the_command_list_shows_each_summary_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = importlib.import_module("hindsight_migrate.cli.app")  # the package's `app` is the Typer app

    monkeypatch.setenv("COLUMNS", "80")
    said = flatten(invoke("--help").output)

    for name in COMMANDS:
        summary = " ".join((getattr(commands, name).__doc__ or "").split("\n\n")[0].split())
        assert f"{name} {summary}" in said, said


# --- Alembic's habits ------------------------------------------------------------------------------


def test_down_minus_one_goes_where_down_to_minus_one_goes(tmp_path: Path, make_database: object) -> None:
    ini = chain(tmp_path / "p")
    ends: list[list[str] | None] = []
    for spelling in (("-1",), ("--to", "-1"), ("-2",), ("--to", "-2")):
        url = make_database("down")  # type: ignore[operator]
        bootstrapped(ini, url)
        assert invoke("-c", ini, "--url", url, "up", "--yes", "--no-rehearsal").exit_code == 0
        result = invoke("-c", ini, "--url", url, "down", *spelling, "--yes", "--no-rehearsal")
        assert result.exit_code == 0, result.output
        ends.append(dbstate.alembic_version(url))

    assert ends == [[REV_3], [REV_3], [REV_2], [REV_2]]


def test_down_with_a_mistyped_option_is_a_usage_error_that_names_the_habit(tmp_path: Path) -> None:
    ini = chain(tmp_path / "p")
    assert_failure(invoke("-c", ini, "down", "-x"), ExitCode.USAGE, "No such option: -x", "-N")
    assert_failure(invoke("-c", ini, "down", "-1", "--to", "-2"), ExitCode.USAGE, "-1 already says where to go")


def test_up_plus_two_applies_two_revisions(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(chain(tmp_path / "p"), database_url)

    result = invoke("-c", ini, "--url", database_url, "up", "+2", "--yes", "--no-rehearsal")

    assert result.exit_code == 0, result.output
    assert dbstate.alembic_version(database_url) == [REV_3]


# --- the prompt ------------------------------------------------------------------------------------


def test_a_mistyped_confirmation_is_asked_again_up_to_three_times(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prompts, "stdin_is_interactive", lambda: True)
    ini = bootstrapped(chain(tmp_path / "p"), database_url)
    before = dbstate.snapshot(database_url)

    refused = invoke("-c", ini, "--url", database_url, "up", "--no-rehearsal", input="yes\ndddd\ny\n")

    assert_failure(refused, ExitCode.ABORTED, "Nothing was changed", "'yes', 'dddd', 'y'")
    assert refused.output.count("Type the target revision") == 3
    assert refused.output.count("try again") == 2
    assert dbstate.snapshot(database_url) == before

    second_try = invoke("-c", ini, "--url", database_url, "up", "--no-rehearsal", input="dddd0000\ndddd00000004\n")

    assert second_try.exit_code == 0, second_try.output
    assert dbstate.alembic_version(database_url) == [REV_4]


def test_without_a_terminal_up_refuses_before_planning(tmp_path: Path, database_url: str) -> None:
    marker = tmp_path / "rehearsed"
    ini = bootstrapped(chain(tmp_path / "p", marker=marker), database_url)
    before = dbstate.snapshot(database_url)

    started = time.monotonic()
    result = invoke("-c", ini, "--url", database_url, "up")
    took = time.monotonic() - started

    assert_failure(result, ExitCode.ABORTED, "there is no terminal to ask on", "--yes", "Run it in a terminal")
    assert not marker.exists()  # no revision ran anywhere: no rehearsal, no scratch database
    assert REV_2 not in result.output  # no plan was printed
    assert took < 10, took
    assert dbstate.snapshot(database_url) == before


@pytest.mark.parametrize("command", [("down",), ("down", "-1"), ("bootstrap",)])
def test_without_a_terminal_down_and_bootstrap_refuse_before_planning(
    command: tuple[str, ...], tmp_path: Path, database_url: str
) -> None:
    ini = chain(tmp_path / "p")
    if command[0] == "down":
        bootstrapped(ini, database_url)
        assert invoke("-c", ini, "--url", database_url, "up", "--yes", "--no-rehearsal").exit_code == 0
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, *command)

    assert_failure(result, ExitCode.ABORTED, "there is no terminal to ask on", "--yes")
    assert "t4" not in result.output and "things" not in result.output  # no plan was printed
    assert dbstate.snapshot(database_url) == before


def test_without_a_terminal_the_modes_that_never_ask_still_work(tmp_path: Path, database_url: str) -> None:
    marker = tmp_path / "rehearsed"
    ini = bootstrapped(chain(tmp_path / "p", marker=marker), database_url)

    dry = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--plan-out", str(tmp_path / "plan.json"))
    assert dry.exit_code == 0, dry.output
    assert REV_2 in dry.output and (tmp_path / "plan.json").is_file()
    assert marker.exists()  # the dry run rehearsed, as before

    sql = invoke("-c", ini, "up", "--sql")
    assert sql.exit_code == 0, sql.output
    assert "CREATE TABLE t4" in sql.output


def test_ctrl_c_at_the_prompt_starts_the_message_on_a_line_of_its_own(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(chain(tmp_path / "p"), database_url)
    before = dbstate.snapshot(database_url)

    code, shown = in_terminal(
        cli_command(ini, database_url, "up", "--no-rehearsal"),
        env=subprocess_env(),
        when="Type the target revision",
        keys=b"\x03",  # Ctrl-C, as typed: the terminal echoes ^C and sends SIGINT
    )

    assert code == ExitCode.ABORTED, shown
    assert "^C" in shown, shown
    after_interrupt = shown.split("^C", 1)[1]
    assert after_interrupt.startswith("\r\n"), repr(shown[-300:])  # not "^C╭─ Aborted ──…" on one line
    assert "the confirmation was not given" in flatten(after_interrupt), shown
    assert dbstate.snapshot(database_url) == before
