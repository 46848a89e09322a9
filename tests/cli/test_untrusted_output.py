"""Nothing from the project reaches a terminal raw (issue 18, item 3).

A revision message, a file name, SQL, an exception's message, what the database said: any of them may
hold terminal control sequences. ESC [2K erases a line, ESC [1A moves up one, ESC [8m hides what follows,
a CR or a backspace writes over it, U+009B is the same CSI as ESC [ to some terminals, and U+202E (a
"Trojan Source" bidi override) shows a line reversed. A hostile revision could erase or hide a line of
the plan a reviewer reads. Every view shows them escaped instead (``\\x1b[2K``), also when stdout is a
file or a pipe; JSON keeps them exactly, as ``\\u001b``; SQL piped for psql stays byte for byte.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import termios
import time
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from hindsight_migrate import render
from hindsight_migrate.cli import prompts
from hindsight_migrate.errors import ExitCode
from hindsight_migrate.untrusted import visible
from tests.conftest import REPO, bootstrapped, flatten, invoke
from tests.harness.processes import cli_command
from tests.harness.projects import TINY_BASE, Rev, tiny_project

EVIL = "bbbb00000002"
# Each sequence a reviewer must see rather than have obeyed, in one revision message.
HOSTILE = "evil \x1b[2Kerased \x1b[1Aup \x1b[8mhidden\x1b[0m cr\rbel\x07 csi\x9b2J rlo\u202eevil"
SHOWN = ("\\x1b[2K", "\\x1b[1A", "\\x1b[8m", "\\r", "\\x07", "\\x9b", "\\u202e")
SHOWN_MESSAGE = "evil \\x1b[2Kerased \\x1b[1Aup \\x1b[8mhidden\\x1b[0m cr\\rbel\\x07 csi\\x9b2J rlo\\u202eevil"
HOSTILE_FILE = f"{EVIL}_\x1b[8mhidden.py"  # a file name holds one too
# SQL with an ESC inside a string literal: data, which psql must receive as it is.
HOSTILE_SQL = "CREATE TABLE t_evil (note text DEFAULT '\x1b[2Kdefault')"
# What must never be written raw: C0 controls but \t and \n, DEL, C1, the bidi controls, the line separators.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
UNREACHABLE_URL = "postgresql://postgres@127.0.0.1:1/nope"  # up --sql needs no database


def source(text: str) -> str:
    """``text`` as Python escapes, for a revision file: the file holds ``\\x1b``, the running code ESC."""
    return text.encode("unicode_escape").decode("ascii")


def hostile_project(folder: Path, *, upgrade: str | None = None, message: str = HOSTILE) -> Path:
    """The tiny project plus one revision whose message, file name and SQL hold control characters."""
    body = upgrade if upgrade is not None else f'op.execute("{source(HOSTILE_SQL)}")'
    ini = tiny_project(folder, Rev(EVIL, (TINY_BASE,), message=source(message), upgrade=body))
    versions = folder / "migrations" / "versions"
    (versions / f"{EVIL}.py").rename(versions / HOSTILE_FILE)
    return ini


def assert_nothing_raw(output: str) -> None:
    """No control character but \\n and \\t, no bidi control, in what was written."""
    found = sorted({f"U+{ord(char):04X}" for char in RAW.findall(output)})
    assert not found, f"raw {', '.join(found)} in:\n{output!r}"


def assert_shown(output: str, *fragments: str) -> None:
    for fragment in fragments or SHOWN:
        assert fragment in output, f"{fragment} is not shown in:\n{output}"


def assert_tables_aligned(output: str) -> None:
    """Each table's lines (and each panel's) as wide as its border: widths were measured on what is written."""
    tables: list[list[str]] = []
    inside = False
    for line in output.splitlines():
        framed = line.startswith(("│", "┃", "┏", "┡", "└", "╭", "╰"))
        if framed and not inside:
            tables.append([])
        if framed:
            tables[-1].append(line)
        inside = framed
    assert tables, output
    for table in tables:
        assert len({len(line) for line in table}) == 1, "\n".join(table)


# -- history ----------------------------------------------------------------------------------------


def test_history_shows_control_characters_escaped(database_url: str, tmp_path: Path) -> None:
    ini = bootstrapped(hostile_project(tmp_path / "project"), database_url)

    result = invoke("-c", ini, "--url", database_url, "history")

    assert result.exit_code == 0, result.output
    assert_nothing_raw(result.output)
    assert_shown(result.output)
    assert_tables_aligned(result.stdout)


def test_history_offline_shows_them_escaped_from_the_files_and_from_the_cache(tmp_path: Path) -> None:
    ini = hostile_project(tmp_path / "project")
    past = time.time() - 60  # files just written are not cached (graph_cache.SETTLE_NS)
    for path in ini.parent.rglob("*"):
        os.utime(path, (past, past))

    first = invoke("-c", str(ini), "history", "--offline")  # Alembic reads the files, and the cache is written
    second = invoke("-c", str(ini), "history", "--offline")  # from the cache

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert list((ini.parent / ".hindsight" / "cache").glob("graph-*.json"))
    for result in (first, second):
        assert_nothing_raw(result.output)
        assert_shown(result.output)
    assert first.stdout == second.stdout


# -- up's plan: text, markdown, JSON ----------------------------------------------------------------


def test_up_plan_shows_message_file_name_sql_and_catalog_escaped(database_url: str, tmp_path: Path) -> None:
    ini = hostile_project(tmp_path / "project")

    brief = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run")
    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run", "--details")

    assert brief.exit_code == 0, brief.output
    assert_nothing_raw(brief.output)
    assert_shown(brief.output)
    assert result.exit_code == 0, result.output
    assert_nothing_raw(result.output)
    assert_shown(result.output)
    flat = flatten(result.output)
    assert "_\\x1b[8mhidden.py" in flat.replace(" ", "")  # the file name (its cell may wrap)
    assert "DEFAULT '\\x1b[2Kdefault'" in flat  # the SQL
    assert "'\\x1b[2Kdefault'::text" in flat  # the schema diff: what the database says the default is
    assert_tables_aligned(result.stdout)


def test_up_plan_markdown_shows_them_escaped(database_url: str, tmp_path: Path) -> None:
    ini = hostile_project(tmp_path / "project")

    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run", "--format", "markdown")

    assert result.exit_code == 0, result.output
    assert_nothing_raw(result.stdout)
    assert_nothing_raw(result.stderr)  # the text view went there
    # As the pull request shows it: the escapes as written, and the revisions table kept whole (a raw CR
    # ends a row for GitHub).
    html = MarkdownIt("commonmark").enable("table").render(result.stdout)
    assert_nothing_raw(html)
    assert_shown(html)
    assert "DEFAULT '\\x1b[2Kdefault'" in html
    assert f"<td>{SHOWN_MESSAGE}</td>" in html  # one cell


def test_up_plan_json_keeps_them_exactly_as_json_escapes(database_url: str, tmp_path: Path) -> None:
    ini = hostile_project(tmp_path / "project")

    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run", "--format", "json")

    assert result.exit_code == 0, result.output
    assert b"\x1b" not in result.stdout_bytes
    assert_nothing_raw(result.stdout)
    assert "\\u001b[2K" in result.stdout
    document = json.loads(result.stdout)
    revision = next(r for r in document["plan"]["revisions"] if r["info"]["revision"] == EVIL)
    assert revision["info"]["message"] == HOSTILE  # round-trips exactly
    assert revision["info"]["path"].endswith(HOSTILE_FILE)
    assert HOSTILE_SQL in revision["sql"]


def test_plan_file_on_stdout_keeps_them_as_json_escapes(database_url: str, tmp_path: Path) -> None:
    ini = hostile_project(tmp_path / "project")

    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run", "--plan-out", "-")

    assert result.exit_code == 0, result.output
    assert b"\x1b" not in result.stdout_bytes
    assert_nothing_raw(result.stdout)
    assert_nothing_raw(result.stderr)  # the plan a person reads
    assert_shown(result.stderr)
    plan = json.loads(result.stdout)["plan"]
    assert [r["info"]["message"] for r in plan["revisions"] if r["info"]["revision"] == EVIL] == [HOSTILE]


def test_apply_progress_and_result_show_them_escaped(database_url: str, tmp_path: Path) -> None:
    ini = hostile_project(tmp_path / "project")

    result = invoke("-c", str(ini), "--url", database_url, "up", "--yes")

    assert result.exit_code == 0, result.output
    assert_nothing_raw(result.output)
    progress = next(line for line in result.stderr.splitlines() if line.startswith(f"  ✓ {EVIL}"))
    assert_shown(progress)  # the progress line, written straight to the stream


def test_the_confirmation_prompt_shows_a_hostile_revision_id_escaped(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prompt quotes the target revision's id, which the project's file sets: click writes it, not render."""

    hostile_id = "bbbb\x1b[8m0002"
    ini = tiny_project(tmp_path / "project", Rev(hostile_id, (TINY_BASE,), upgrade='op.execute("SELECT 1")'))
    bootstrapped(ini, database_url)
    monkeypatch.setattr(prompts, "stdin_is_interactive", lambda: True)

    result = invoke("-c", str(ini), "--url", database_url, "up", input="no\n")

    assert result.exit_code == ExitCode.ABORTED, result.output
    assert_nothing_raw(result.output)
    assert "Type the target revision (bbbb\\x1b[8m0002" in result.output


# -- errors ----------------------------------------------------------------------------------------


def test_error_panel_shows_the_projects_exception_escaped(database_url: str, tmp_path: Path) -> None:
    ini = hostile_project(tmp_path / "project", upgrade='raise RuntimeError("\\x1b[2Kbad")')

    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run")
    debug = invoke("-c", str(ini), "--url", database_url, "--debug", "up", "--dry-run")

    assert result.exit_code == ExitCode.PROJECT_CODE, result.output
    assert_nothing_raw(result.output)
    assert "RuntimeError: \\x1b[2Kbad" in flatten(result.output)
    assert_tables_aligned(result.stderr)  # the panel's border
    assert debug.exit_code == ExitCode.PROJECT_CODE, debug.output
    assert_nothing_raw(debug.output)  # the traceback too
    assert "RuntimeError: \\x1b[2Kbad" in debug.stderr


# -- up --sql: data when piped, escaped on a terminal -------------------------------------------------


def test_up_sql_piped_is_byte_exact_and_its_comment_stays_one_line(tmp_path: Path) -> None:
    # A newline in the message would end the -- comment, and psql would run the rest.
    ini = hostile_project(tmp_path / "project", message=f"{HOSTILE}\nDROP TABLE things;")

    result = invoke("-c", str(ini), "--url", UNREACHABLE_URL, "up", "--sql")

    assert result.exit_code == 0, result.output
    assert f"{HOSTILE_SQL};" in result.stdout  # the SQL is data: ESC and all
    assert "\nDROP TABLE things;" not in result.stdout
    header = next(line for line in result.stdout.splitlines() if line.startswith(f"-- {EVIL}"))
    assert header == f"-- {EVIL}: {SHOWN_MESSAGE}\\nDROP TABLE things;"
    assert_nothing_raw(result.stdout.replace(HOSTILE_SQL, ""))


def test_up_sql_on_a_terminal_is_escaped(tmp_path: Path) -> None:
    ini = hostile_project(tmp_path / "project")
    primary, secondary = pty.openpty()
    attributes = termios.tcgetattr(secondary)
    attributes[1] &= ~termios.OPOST  # no "\n" → "\r\n": what is read is what the command wrote
    termios.tcsetattr(secondary, termios.TCSANOW, attributes)
    command = cli_command(ini, UNREACHABLE_URL, "up", "--sql")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(command, stdout=secondary, stderr=subprocess.PIPE, env=env) as process:
        os.close(secondary)
        written = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the command closed the terminal
                break
            if not chunk:
                break
            written += chunk
        process.wait(timeout=60)
    os.close(primary)
    output = written.decode()

    assert process.returncode == 0, output
    assert b"\x1b" not in written
    assert_nothing_raw(output)
    assert "DEFAULT '\\x1b[2Kdefault'" in output


# -- the chokepoint, and visible() -------------------------------------------------------------------


def test_every_console_write_is_escaped_and_rich_keeps_its_own_styles(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal with colours: Rich writes ESC of its own

    render.err().print("[bold]bold[/] \x1b[1Aup \x9b2J \u202eevil")  # no view escaped it first

    written = capsys.readouterr().err
    assert "\x1b[1m" in written  # Rich's bold, untouched
    assert "\x1b[1A" not in written and "\x9b" not in written and "\u202e" not in written
    assert "\\x1b[1Aup \\x9b2J \\u202eevil" in written


def test_visible_escapes_each_kind_of_control_character() -> None:
    assert visible(HOSTILE) == SHOWN_MESSAGE
    assert visible("a\\b \x7f \x00 \u2066x\u2069 \u2028 \udcff") == "a\\b \\x7f \\x00 \\u2066x\\u2069 \\u2028 \\udcff"
    assert visible("one\n\ttwo") == "one\n\ttwo"
    assert visible("one\n\ttwo", multiline=False) == "one\\n\\ttwo"
    sql = "CREATE TABLE t (id int);\n" * 50_000  # the SQL of a long plan: returned as it is
    assert visible(sql) is sql


BIDI_CONTROLS = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}


def _is_control(char: str) -> bool:
    """What must not be written raw, judged by Unicode's own tables rather than by visible()'s pattern."""
    return (
        unicodedata.category(char) in ("Cc", "Cs")
        or unicodedata.bidirectional(char) in BIDI_CONTROLS
        or char in "\u061c\u200e\u200f\u2028\u2029"
    )


@given(st.text(alphabet=st.characters(exclude_categories=())))  # surrogates too
def test_visible_leaves_no_control_character_but_newline_and_tab(text: str) -> None:
    assert [char for char in visible(text) if _is_control(char) and char not in "\n\t"] == []
    assert [char for char in visible(text, multiline=False) if _is_control(char)] == []


@given(st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")).filter(lambda c: not _is_control(c))))
def test_visible_leaves_printable_text_unchanged(text: str) -> None:
    assert visible(text) == text
    assert visible(text, multiline=False) == text
