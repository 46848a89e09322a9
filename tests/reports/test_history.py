"""`hindsight-migrate history`: the revision graph, newest first, with what the database has applied."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from tests.conftest import flatten, invoke
from tests.harness import dbstate
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
from tests.harness.projects import Rev, write_project

ALL_REVISIONS = {BASELINE, AFTER_BASELINE, BRANCH_POINT, SEARCH_BRANCH, FEEDBACK_BRANCH, MERGE, AFTER_MERGE, HEAD}
UNREACHABLE_URL = "postgresql://postgres@127.0.0.1:1/nope"


def execute(url: str, *statements: str) -> None:
    """Run SQL of the test's own and commit it (a hand-made stamp, a version table)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def table_rows(output: str) -> dict[str, dict[str, str]]:
    """The history table as {revision: {column title: cell text}}; a row's wrapped lines joined."""
    lines = output.splitlines()
    header = next(line for line in lines if "┃" in line and "Revision" in line)
    titles = [cell.strip() for cell in header.split("┃")[1:-1]]
    revision_column = titles.index("Revision")
    rows: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in lines:
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        assert len(cells) == len(titles), line
        if cells[revision_column]:
            current = rows.setdefault(cells[revision_column], {title: [] for title in titles})
        assert current is not None, line
        for title, cell in zip(titles, cells, strict=True):
            if cell:
                current[title].append(cell)
    return {revision: {title: " ".join(parts) for title, parts in row.items()} for revision, row in rows.items()}


def history_json(*args: str) -> dict[str, Any]:
    """Run the command, which must succeed, and parse its stdout as one JSON document."""
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def states(document: dict[str, Any]) -> dict[str, str | None]:
    return {entry["info"]["revision"]: entry["state"] for entry in document["entries"]}


def bootstrapped(hindsight_project: Path, database_url: str) -> str:
    """Bootstrap Hindsight's database to the baseline; return the -c path."""
    ini = str(hindsight_project / "alembic.ini")
    result = invoke("-c", ini, "--url", database_url, "bootstrap", "--yes")
    assert result.exit_code == 0, result.output
    assert dbstate.alembic_version(database_url) == [BASELINE]
    return ini


# -- the graph, without a database ----------------------------------------------------


def test_offline_table_lists_every_revision_with_its_marks(hindsight_project: Path) -> None:
    result = invoke("-c", str(hindsight_project / "alembic.ini"), "history", "--offline")

    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert set(rows) == ALL_REVISIONS
    marks = {revision: row["Marks"] for revision, row in rows.items()}
    assert marks == {
        HEAD: "head",
        AFTER_MERGE: "",
        MERGE: "merge",
        SEARCH_BRANCH: "",
        FEEDBACK_BRANCH: "",
        BRANCH_POINT: "branch point",
        AFTER_BASELINE: "",
        BASELINE: "base",
    }
    assert rows[MERGE]["Parent(s)"].split() == [SEARCH_BRANCH, FEEDBACK_BRANCH]
    assert rows[BASELINE]["Parent(s)"] == "—"
    # No state column when the database was not asked.
    assert "" not in rows[HEAD]
    out = flatten(result.output)
    assert f"8 revisions; head(s): {HEAD}; base(s): {BASELINE}." in out
    assert "Database not consulted" in out


def test_offline_json_is_the_graph_newest_first(hindsight_project: Path) -> None:
    document = history_json("-c", str(hindsight_project / "alembic.ini"), "history", "--json", "--offline")

    assert document["heads"] == [HEAD]
    assert document["bases"] == [BASELINE]
    assert document["database"] is None
    entries = {entry["info"]["revision"]: entry for entry in document["entries"]}
    assert set(entries) == ALL_REVISIONS and len(document["entries"]) == 8
    assert all(entry["state"] is None for entry in document["entries"])
    merge = entries[MERGE]["info"]
    assert sorted(merge["parents"]) == sorted([SEARCH_BRANCH, FEEDBACK_BRANCH])
    assert merge["is_merge_point"] is True
    assert entries[BRANCH_POINT]["info"]["is_branch_point"] is True
    assert sorted(entries[BRANCH_POINT]["info"]["children"]) == sorted([SEARCH_BRANCH, FEEDBACK_BRANCH])
    assert entries[HEAD]["info"]["is_head"] is True and entries[BASELINE]["info"]["is_base"] is True
    order = [entry["info"]["revision"] for entry in document["entries"]]
    assert order[0] == HEAD and order[-1] == BASELINE
    for position, revision in enumerate(order):
        for parent in entries[revision]["info"]["parents"]:
            assert order.index(parent) > position, f"{revision} is listed after its parent {parent}: {order}"


def test_json_goes_to_stdout_alone(hindsight_project: Path, database_url: str) -> None:
    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", database_url, "history", "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # nothing but JSON: no announcement, no table
    assert document["database"]["reachable"] is True
    assert "Revisions, newest first" not in result.output


def test_global_options_after_the_command_work_the_same(hindsight_project: Path, database_url: str) -> None:
    ini = str(hindsight_project / "alembic.ini")

    before = invoke("-c", ini, "history", "--offline")
    after = invoke("history", "--offline", "-c", ini)

    assert before.exit_code == 0, before.output
    assert after.exit_code == 0, after.output
    assert after.output == before.output
    assert HEAD in after.stdout

    json_before = invoke("-c", ini, "--url", database_url, "history", "--json")
    json_after = invoke("history", "--json", "--url", database_url, "--config", ini)
    assert json_before.exit_code == 0, json_before.output
    assert json_after.exit_code == 0, json_after.output
    assert json.loads(json_after.stdout) == json.loads(json_before.stdout)
    assert json.loads(json_after.stdout)["database"]["reachable"] is True


# -- the graph with the database's state ---------------------------------------------


def test_bootstrapped_database_is_at_the_baseline_with_seven_pending(
    hindsight_project: Path, database_url: str
) -> None:
    ini = bootstrapped(hindsight_project, database_url)

    document = history_json("-c", ini, "--url", database_url, "history", "--json")

    assert states(document) == {revision: "pending" for revision in ALL_REVISIONS} | {BASELINE: "current"}
    assert document["database"]["current"] == [BASELINE]
    assert document["database"]["reachable"] is True
    assert document["database"]["unknown"] == []
    assert document["database"]["problem"] is None
    assert document["database"]["bootstrap"]["baseline"] == BASELINE

    result = invoke("-c", ini, "--url", database_url, "history")

    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    pending_but_the_baseline = {revision: "○" for revision in ALL_REVISIONS} | {BASELINE: "●"}
    assert {revision: row[""] for revision, row in rows.items()} == pending_but_the_baseline
    assert rows[BASELINE]["Marks"] == "base, current"
    assert f"is at {BASELINE}; 7 pending." in flatten(result.stdout)
    assert "Database:" in result.stderr


def test_history_reads_the_version_table_and_the_tools_catalog_once_each(
    hindsight_project: Path, database_url: str
) -> None:
    """Over a network every query is a round trip: history asks the database what it needs, once."""
    ini = bootstrapped(hindsight_project, database_url)
    sent: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", count)
    try:
        result = invoke("-c", ini, "--url", database_url, "history")
    finally:
        event.remove(Engine, "before_cursor_execute", count)

    assert result.exit_code == 0, result.output
    assert f"is at {BASELINE}; 7 pending." in flatten(result.stdout)
    assert sum("FROM alembic_version" in statement for statement in sent) == 1, sent
    assert sum("has_database_privilege" in statement for statement in sent) == 1, sent  # the tool's records
    assert not any("to_regclass" in statement for statement in sent), sent  # columns come with the records
    assert len(sent) <= 8, sent


def test_database_stamped_at_the_merge(hindsight_project: Path, database_url: str) -> None:
    ini = bootstrapped(hindsight_project, database_url)
    execute(database_url, f"UPDATE alembic_version SET version_num = '{MERGE}'")

    document = history_json("-c", ini, "--url", database_url, "history", "--json")

    assert states(document) == {
        HEAD: "pending",
        AFTER_MERGE: "pending",
        MERGE: "current",
        SEARCH_BRANCH: "applied",
        FEEDBACK_BRANCH: "applied",
        BRANCH_POINT: "applied",
        AFTER_BASELINE: "applied",
        BASELINE: "applied",
    }
    assert document["database"]["current"] == [MERGE]

    result = invoke("-c", ini, "--url", database_url, "history")

    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert {revision: row[""] for revision, row in rows.items()} == {
        HEAD: "○",
        AFTER_MERGE: "○",
        MERGE: "●",
        SEARCH_BRANCH: "✓",
        FEEDBACK_BRANCH: "✓",
        BRANCH_POINT: "✓",
        AFTER_BASELINE: "✓",
        BASELINE: "✓",
    }
    assert rows[MERGE]["Marks"] == "merge, current"
    assert f"is at {MERGE}; 2 pending." in flatten(result.stdout)
    # Reading the state changed nothing.
    assert dbstate.alembic_version(database_url) == [MERGE]


def test_unreachable_database_still_shows_the_graph(hindsight_project: Path) -> None:
    ini = str(hindsight_project / "alembic.ini")

    result = invoke("-c", ini, "--url", UNREACHABLE_URL, "history")

    assert result.exit_code == 0, result.output
    assert set(table_rows(result.stdout)) == ALL_REVISIONS
    out = flatten(result.output)
    assert "Database not reachable, so applied/pending is unknown" in out
    assert "Cannot connect to postgresql://postgres@127.0.0.1:1/nope" in out
    assert "Database not consulted" not in out

    document = history_json("-c", ini, "--url", UNREACHABLE_URL, "history", "--json")

    assert document["database"]["reachable"] is False
    assert "Cannot connect" in document["database"]["problem"]
    assert document["database"]["current"] == []
    assert all(entry["state"] is None for entry in document["entries"])
    assert document["heads"] == [HEAD]


def test_database_at_a_revision_no_file_has(hindsight_project: Path, database_url: str) -> None:
    ini = bootstrapped(hindsight_project, database_url)
    execute(database_url, "UPDATE alembic_version SET version_num = 'deadbeef0000'")

    result = invoke("-c", ini, "--url", database_url, "history")

    assert result.exit_code == 0, result.output
    out = flatten(result.stdout)
    assert "The database is at deadbeef0000, which no revision file of this project has." in out
    assert set(table_rows(result.stdout)) == ALL_REVISIONS
    assert "current" not in " ".join(row["Marks"] for row in table_rows(result.stdout).values())

    document = history_json("-c", ini, "--url", database_url, "history", "--json")

    assert document["database"]["unknown"] == ["deadbeef0000"]
    assert document["database"]["current"] == []
    assert document["database"]["reachable"] is True
    assert "current" not in states(document).values()
    assert dbstate.alembic_version(database_url) == ["deadbeef0000"]


# -- graph shapes Hindsight's chain does not have ------------------------------------


def test_two_independent_roots_give_two_bases_and_two_heads(tmp_path: Path) -> None:
    ini = write_project(
        tmp_path / "p",
        [
            Rev("a1a1a1a1a1a1", ()),
            Rev("a2a2a2a2a2a2", ("a1a1a1a1a1a1",)),
            Rev("b1b1b1b1b1b1", ()),
            Rev("b2b2b2b2b2b2", ("b1b1b1b1b1b1",)),
        ],
    )

    document = history_json("-c", str(ini), "history", "--json", "--offline")

    assert sorted(document["heads"]) == ["a2a2a2a2a2a2", "b2b2b2b2b2b2"]
    assert sorted(document["bases"]) == ["a1a1a1a1a1a1", "b1b1b1b1b1b1"]
    order = [entry["info"]["revision"] for entry in document["entries"]]
    assert order.index("a2a2a2a2a2a2") < order.index("a1a1a1a1a1a1")
    assert order.index("b2b2b2b2b2b2") < order.index("b1b1b1b1b1b1")

    result = invoke("-c", str(ini), "history", "--offline")

    assert result.exit_code == 0, result.output
    marks = {revision: row["Marks"] for revision, row in table_rows(result.stdout).items()}
    assert marks == {
        "a2a2a2a2a2a2": "head",
        "a1a1a1a1a1a1": "base",
        "b2b2b2b2b2b2": "head",
        "b1b1b1b1b1b1": "base",
    }


def test_database_at_two_heads_shows_both_as_current(tmp_path: Path, database_url: str) -> None:
    root, left, right, merge = "c0c0c0c0c0c0", "c1c1c1c1c1c1", "c2c2c2c2c2c2", "c3c3c3c3c3c3"
    ini = str(
        write_project(
            tmp_path / "p",
            [Rev(root, ()), Rev(left, (root,)), Rev(right, (root,)), Rev(merge, (left, right))],
        )
    )
    execute(
        database_url,
        "CREATE TABLE alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY)",
        f"INSERT INTO alembic_version VALUES ('{left}'), ('{right}')",
    )

    document = history_json("-c", ini, "--url", database_url, "history", "--json")

    assert states(document) == {merge: "pending", left: "current", right: "current", root: "applied"}
    assert document["database"]["current"] == sorted([left, right])
    assert document["heads"] == [merge]

    result = invoke("-c", ini, "--url", database_url, "history")

    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert {revision: row[""] for revision, row in rows.items()} == {merge: "○", left: "●", right: "●", root: "✓"}
    assert rows[root]["Marks"] == "base, branch point"
    assert rows[merge]["Marks"] == "head, merge"
    assert rows[left]["Marks"] == rows[right]["Marks"] == "current"
    assert f"is at {left}, {right}; 1 pending." in flatten(result.stdout)
    assert dbstate.alembic_version(database_url) == sorted([left, right])


# -- the table's layout --------------------------------------------------------------


def test_a_long_graph_shows_every_revision_with_its_parents_and_message(tmp_path: Path) -> None:
    revisions = [Rev(f"{1:012x}", (), message="start")]
    for number in range(2, 301):
        parents = (revisions[-1].revision,) if number != 150 else (revisions[-1].revision, revisions[-2].revision)
        revisions.append(Rev(f"{number:012x}", parents, message=f"step {number} " + "word " * (number % 17)))
    # 148 has two children, 149 and the merge at 150: a branch point.
    ini = write_project(tmp_path / "p", revisions)

    result = invoke("-c", str(ini), "history", "--offline")

    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert set(rows) == {rev.revision for rev in revisions}
    for rev in revisions:
        assert rows[rev.revision]["Parent(s)"].split() == list(rev.parents or ["—"])
        assert rows[rev.revision]["Message"].split() == rev.message.split()
    assert rows[f"{150:012x}"]["Marks"] == "merge"
    assert rows[f"{148:012x}"]["Marks"] == "branch point"
    assert rows[f"{300:012x}"]["Marks"] == "head"


def test_a_narrow_terminal_keeps_the_message_column(hindsight_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal: only there may a cell be cut

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "history", "--offline")

    assert result.exit_code == 0, result.output
    stdout = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)  # the bold of the ids, which NO_COLOR keeps
    table = [line for line in stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and all(len(line) <= 60 for line in table), "\n".join(table)
    rows = table_rows(stdout)
    assert set(rows) == ALL_REVISIONS  # ids are never cut
    # The message folds into the room that is left; no word of it is lost.
    assert rows[HEAD]["Message"].replace(" ", "") == "widenagent_transcripts.token_counttobigint"
    assert rows[BASELINE]["Created"] == "2026-01-12"


def test_piped_output_never_cuts_a_cell(hindsight_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CI log or a pipe is no terminal: Rich assumes 80 columns there, and nothing may be lost to them."""
    monkeypatch.setenv("COLUMNS", "40")

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "history", "--offline")

    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout, result.stdout
    rows = table_rows(result.stdout)
    assert set(rows) == ALL_REVISIONS
    assert rows[MERGE]["Marks"] == "merge"
    assert rows[BRANCH_POINT]["Marks"] == "branch point"
    assert rows[HEAD]["Marks"] == "head"


def test_colour_is_kept_on_a_terminal(hindsight_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "history", "--offline")

    assert result.exit_code == 0, result.output
    assert f"\x1b[1m{HEAD}\x1b[0m" in result.stdout  # revision ids in bold
    assert "\x1b[3mRevisions, newest first\x1b[0m" in result.stdout  # the title in italics
    assert "\x1b[1mMessage" in result.stdout  # headers in bold


def test_history_says_how_the_last_apply_ended_for_every_outcome(tmp_path: Path, database_url: str) -> None:
    """An interrupted run is not shown as "succeeded"; a run that found nothing to do is not the last apply."""
    from tests.harness.projects import TINY_BASE, Rev, tiny_project

    ini = str(tiny_project(tmp_path / "p", Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("SELECT 1")')))
    assert invoke("-c", ini, "--url", database_url, "bootstrap", "--yes").exit_code == 0
    assert invoke("-c", ini, "--url", database_url, "up", "--yes", "--no-rehearsal").exit_code == 0
    assert invoke("-c", ini, "--url", database_url, "up", "--yes", "--no-rehearsal").exit_code == 0  # nothing to do

    nothing = invoke("-c", ini, "--url", database_url, "history")
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:  # as a run stopped by Ctrl-C leaves its row
        connection.execute(
            text(
                "UPDATE hindsight_migrate.apply_log SET outcome = 'interrupted' "
                "WHERE id = (SELECT max(id) FROM hindsight_migrate.apply_log)"
            )
        )
    engine.dispose()
    interrupted = invoke("-c", ini, "--url", database_url, "history")

    assert f"{TINY_BASE} → bbbb00000002, succeeded." in flatten(nothing.output), nothing.output
    assert "interrupted (Ctrl-C or SIGTERM)." in flatten(interrupted.output), interrupted.output
    assert "succeeded" not in flatten(interrupted.output).split("Last apply:")[1]
