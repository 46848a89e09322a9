"""`--format json` and `--format markdown`: one document per command, on stdout alone.

Every JSON document is validated against the schema the package ships for its kind, and each
schema is shown to reject the document with a field removed, renamed or added. Every markdown
document is parsed with markdown-it-py (CommonMark plus GitHub's tables) and read as a reviewer
would read the comment: a heading first, the summary before the first ``<details>``, SQL in
``sql`` fences, tables whose rows all have the header's cells.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from markdown_it import MarkdownIt
from markdown_it.token import Token
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from hindsight_migrate.errors import ExitCode
from hindsight_migrate.render import markdown
from hindsight_migrate.render.data import DOCUMENT_KINDS, DocumentKind, load_schema
from tests.conftest import REPO, assert_failure, bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.hindsight_chain import BASELINE, HEAD
from tests.harness.markdown import fences, inline_text, pr_comment, summary_texts, tables
from tests.harness.projects import TINY_BASE, Rev, tiny_project, write_project

ADD = "bbbb00000002"  # things gains a column, note
DROP = "cccc00000003"  # and loses it again: a destructive upgrade
NASTY = "pipes | and `ticks` <b>bold</b> & **stars** _under_ [link](x) #1"

SCHEMAS = REPO / "hindsight_migrate" / "schemas"


# -- JSON: documents and their schemas --------------------------------------------------------


def validator(kind: DocumentKind) -> Any:
    schema = load_schema(kind)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def valid_document(stdout: str, kind: DocumentKind) -> dict[str, Any]:
    """stdout is one JSON document and nothing else, of ``kind``, valid against that kind's schema, and strict."""
    document: dict[str, Any] = json.loads(stdout)  # prose before or after the document fails here
    assert document["format_version"] == 1
    assert document["kind"] == kind
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(kind).iter_errors(document)]
    assert errors == [], errors
    assert_schema_rejects_damage(document)
    return document


def _walk(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index))


def _at(document: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


def _is_map(document: dict[str, Any], path: tuple[str | int, ...]) -> bool:
    """Objects whose keys are data (table names, kinds of object), not fields."""
    keyed_by_table = bool(path) and path[-1] in ("sizes", "samples")
    return keyed_by_table or (document["kind"] == "bootstrap_plan" and path == ("counts",))


def assert_schema_rejects_damage(document: dict[str, Any]) -> None:
    """Every field of the document's top level, and one field of every kind of object inside it, is
    required: removed or renamed, the schema refuses the document; an unknown field is refused too."""
    check = validator(document["kind"])
    seen: set[tuple[str | int, ...]] = set()
    damaged: list[tuple[str, dict[str, Any]]] = []
    for path, node in _walk(document):
        if not isinstance(node, dict) or not node or _is_map(document, path):
            continue
        shape = tuple("*" if isinstance(step, int) else step for step in path)
        if shape in seen:
            continue
        seen.add(shape)
        for key in list(node) if not path else list(node)[:1]:
            removed = copy.deepcopy(document)
            del _at(removed, path)[key]
            damaged.append((f"{shape}: {key} removed", removed))
            renamed = copy.deepcopy(document)
            _at(renamed, path)[f"{key}_renamed"] = _at(renamed, path).pop(key)
            damaged.append((f"{shape}: {key} renamed", renamed))
        added = copy.deepcopy(document)
        _at(added, path)["unexpected_field"] = None
        damaged.append((f"{shape}: a field added", added))
    accepted = [what for what, bad in damaged if check.is_valid(bad)]
    assert accepted == [], f"the {document['kind']} schema accepts damaged documents: {accepted}"


def test_every_kind_has_a_valid_draft_2020_12_schema_shipped_in_the_package() -> None:
    files = sorted(path.name for path in SCHEMAS.glob("*.schema.json"))
    assert files == sorted(f"{kind}.schema.json" for kind in DOCUMENT_KINDS)
    for kind in DOCUMENT_KINDS:
        schema = load_schema(kind)  # read as package data, as an installed tool reads it
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["properties"]["kind"] == {"const": kind}
        assert schema["properties"]["format_version"] == {"const": 1}
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) == set(schema["properties"])


def test_a_shape_shared_by_several_schemas_is_the_same_in_each() -> None:
    """Each schema stands alone (no reference between files): the copies of a shared shape must not drift."""
    seen: dict[str, tuple[str, Any]] = {}
    for kind in DOCUMENT_KINDS:
        for name, definition in load_schema(kind).get("$defs", {}).items():
            first = seen.setdefault(name, (kind, definition))
            assert definition == first[1], f"$defs/{name} differs between {first[0]} and {kind}"
    assert {"revision_info", "lint_result", "apply_record"} <= set(seen)


def test_a_schema_rejects_a_document_without_a_required_field() -> None:
    merge = {"format_version": 1, "kind": "merge", "revision": "abc", "path": "x.py", "heads": ["a", "b"]}
    assert validator("merge").is_valid(merge)
    for field in merge:
        assert not validator("merge").is_valid({k: v for k, v in merge.items() if k != field}), field
    assert not validator("merge").is_valid({**merge, "format_version": 2})
    assert not validator("merge").is_valid({**merge, "kind": "plan"})


# -- markdown: read as a pull-request comment ----------------------------------------------------


# -- projects ----------------------------------------------------------------------------------------


def project_with_a_drop(folder: Path, *, message: str = "add things.note") -> Path:
    return tiny_project(
        folder,
        Rev(
            ADD,
            (TINY_BASE,),
            message=message,
            upgrade='op.execute("ALTER TABLE things ADD COLUMN note text")',
            downgrade='op.execute("ALTER TABLE things DROP COLUMN note")',
        ),
        Rev(
            DROP,
            (ADD,),
            message="drop things.note",
            upgrade='op.execute("ALTER TABLE things DROP COLUMN note")',
            downgrade='op.execute("ALTER TABLE things ADD COLUMN note text")',
        ),
    )


def insert_notes(url: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO things (name, note) VALUES ('a', 'x'), ('b', 'y'), ('c', NULL)"))
    engine.dispose()


@pytest.fixture
def at_add(tmp_path: Path, database_url: str) -> str:
    """The project at ADD, with two rows whose note holds data; DROP pending."""
    ini = bootstrapped(project_with_a_drop(tmp_path / "p", message=NASTY), database_url)
    assert invoke("-c", ini, "--url", database_url, "up", ADD, "--yes").exit_code == 0
    insert_notes(database_url)
    return ini


def hindsight_ini(project: Path) -> str:
    return str(project / "alembic.ini")


# -- up and down ------------------------------------------------------------------------------------


def test_up_dry_run_json_is_one_plan_document_with_the_summary_the_screen_shows(
    hindsight_project: Path, database_url: str
) -> None:
    result = invoke(
        "-c", hindsight_ini(hindsight_project), "--url", database_url, "up", "--dry-run", "--format", "json"
    )

    assert result.exit_code == 0, result.output
    document = valid_document(result.stdout, "plan")
    assert document["direction"] == "up" and document["result"] is None
    summary, plan = document["summary"], document["plan"]
    assert plan["bootstrap"]["baseline"]["revision"] == BASELINE
    assert [item["info"]["revision"] for item in plan["revisions"]][-1] == HEAD
    assert summary["revisions"] == len(plan["revisions"]) == 7 and summary["bootstrap"] is True
    assert document["change_kind"] == {"exit_code": 2, "name": "changes", "reasons": []}
    # The same numbers the person reading stderr is shown.
    counts = summary["counts"]
    human = flatten(result.stderr)
    assert f"Plan: {counts['added']} to add, {counts['changed']} to change" in human
    errors, warnings, style = counts["lint_errors"], counts["lint_warnings"], counts["lint_style"]
    said = f"lint: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    assert said + (f", {style} style note{'s' * (style != 1)}" if style else "") + "." in human, human
    assert "Dry run: nothing was changed." in human
    assert dbstate.tables(database_url) == set()  # a dry run


def test_up_yes_json_holds_the_plan_and_the_result_of_the_apply(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(project_with_a_drop(tmp_path / "p"), database_url)

    result = invoke("-c", ini, "--url", database_url, "up", ADD, "--yes", "--format", "json")

    assert result.exit_code == 0, result.output
    document = valid_document(result.stdout, "plan")
    assert document["result"]["from_revisions"] == [TINY_BASE]
    assert document["result"]["to_revisions"] == [ADD]
    assert [applied["revision"] for applied in document["result"]["applied"]] == [ADD]
    assert dbstate.alembic_version(database_url) == [ADD]
    assert "Upgraded" in result.stderr and "Upgraded" not in result.stdout


def test_a_destructive_plan_keeps_exit_code_3_and_says_why_in_both_formats(at_add: str, database_url: str) -> None:
    as_json = invoke("-c", at_add, "--url", database_url, "up", "--dry-run", "--detailed-exitcode", "--format", "json")
    as_markdown = invoke(
        "-c", at_add, "--url", database_url, "up", "--dry-run", "--detailed-exitcode", "--format", "markdown"
    )

    assert as_json.exit_code == 3, as_json.output
    assert as_markdown.exit_code == 3, as_markdown.output
    document = valid_document(as_json.stdout, "plan")
    assert document["change_kind"]["name"] == "destructive"
    assert document["change_kind"]["reasons"] == ["drops column public.things.note holding 2 row(s)"]
    assert document["plan"]["data_loss"] == [{"kind": "column", "name": "public.things.note", "rows": 2, "exact": True}]
    [attention] = [a for a in document["summary"]["attention"] if a["concern"] == "data_loss"]
    assert attention["rows"] == 2 and attention["revision"] == DROP

    tokens = pr_comment(as_markdown.stdout)
    visible = summary_texts(tokens)
    assert visible[0] == "Upgrade plan"
    assert any("the plan is destructive: drops column public.things.note holding 2 row(s)" in t for t in visible)
    needs = next(table for table in tables(tokens) if table[0] == ["", "Severity", "What"])
    assert needs[1][1] == "DATA LOSS" and attention["text"] == needs[1][2]
    loss = next(table for table in tables(tokens) if table[0] == ["Drops", "Name", "Rows with data"])
    assert loss[1:] == [["column", "public.things.note", "2"]]
    assert any("ALTER TABLE things DROP COLUMN note" in sql for sql in fences(tokens))


@pytest.mark.parametrize(("target", "exit_code", "name"), [(ADD, 0, "nothing"), (DROP, 3, "destructive")])
def test_detailed_exit_codes_apply_with_a_document(
    at_add: str, database_url: str, target: str, exit_code: int, name: str
) -> None:
    result = invoke(
        "-c", at_add, "--url", database_url, "up", target, "--dry-run", "--detailed-exitcode", "--format", "json"
    )

    assert result.exit_code == exit_code, result.output
    document = valid_document(result.stdout, "plan")
    assert document["change_kind"]["name"] == name and document["change_kind"]["exit_code"] == exit_code


def test_up_markdown_puts_the_summary_first_and_the_details_folded(hindsight_project: Path, database_url: str) -> None:
    ini = hindsight_ini(hindsight_project)
    as_text = invoke("-c", ini, "--url", database_url, "up", "--dry-run")
    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--format", "markdown")

    assert result.exit_code == 0, result.output
    tokens = pr_comment(result.stdout)
    visible = summary_texts(tokens)
    header, counts, attention = visible[1], visible[2], visible[3]
    # The words of the text view, built from the same summary.
    assert header.startswith("Upgrade plan for ") and header in flatten(as_text.stdout)
    assert re.match(r"Plan: \d+ to add, 0 to change", counts) and counts in flatten(as_text.stdout)
    assert attention.startswith("Needs attention: nothing") and attention in flatten(as_text.stdout)
    summaries = [t.content for t in tokens if t.type == "html_block" and t.content.startswith("<details>")]
    assert any("Revisions pending, in the order they run (7)" in s for s in summaries)
    assert any("Schema diff, measured" in s for s in summaries)
    # A first deployment: no lock or client finding applies; the new tables' varchar columns are style notes.
    assert any("Lint (Squawk): 0 errors, 1 warning, 3 style notes" in s for s in summaries), summaries
    assert sum("SQL of " in s for s in summaries) == 7
    sql = fences(tokens)
    assert len(sql) == 7 and "ALTER TABLE agent_transcripts ALTER COLUMN token_count TYPE BIGINT" in sql[-1]
    revisions = next(table for table in tables(tokens) if table[0][:2] == ["#", "Revision"])
    assert [row[1] for row in revisions[1:]][-1] == HEAD
    # What people read went to stderr: the plan, the dry-run line; stdout holds the document alone.
    assert "Dry run: nothing was changed." in result.stderr and "Dry run" not in result.stdout
    assert "Database:" in result.stderr and "Database:" not in result.stdout


def test_markdown_shows_text_from_revisions_as_it_is_and_never_as_markup(at_add: str, database_url: str) -> None:
    """A message with a pipe, backticks, HTML, emphasis and a link: one cell, shown literally."""
    result = invoke("-c", at_add, "--url", database_url, "down", "--dry-run", "--format", "markdown")

    assert result.exit_code == 0, result.output
    tokens = pr_comment(result.stdout)  # no html_inline other than <br>: the <b> is text
    revisions = next(table for table in tables(tokens) if table[0][:2] == ["#", "Revision"])
    assert revisions[0] == ["#", "Revision", "Message", "Created", "File"]
    assert revisions[1][:3] == ["1", ADD, NASTY]
    assert [
        child.type for child in cell_children(tokens) if child.type not in ("text", "code_inline", "html_inline")
    ] == []
    summaries = [t.content for t in tokens if t.type == "html_block" and t.content.startswith("<details>")]
    assert any("&lt;b&gt;bold&lt;/b&gt; &amp;" in s for s in summaries)  # escaped in <summary>, not markup
    assert summary_texts(tokens)[0] == "Downgrade plan"
    loss = next(table for table in tables(tokens) if table[0] == ["Drops", "Name", "Rows with data"])
    assert loss[1:] == [["column", "public.things.note", "2"]]
    assert any("ALTER TABLE things DROP COLUMN note" in sql for sql in fences(tokens))


def cell_children(tokens: list[Token]) -> Iterator[Token]:
    """What the table cells hold, inline: text, code, <br> — a link or emphasis would be markup from the data."""
    for index, token in enumerate(tokens):
        if token.type in ("td_open", "th_open"):
            yield from tokens[index + 1].children or []


def test_down_json_reports_the_data_it_drops(at_add: str, database_url: str) -> None:
    result = invoke("-c", at_add, "--url", database_url, "down", "--dry-run", "--format", "json")

    assert result.exit_code == 0, result.output
    document = valid_document(result.stdout, "plan")
    assert document["direction"] == "down"
    assert document["plan"]["final"] == [TINY_BASE]
    assert document["plan"]["data_loss"] == [{"kind": "column", "name": "public.things.note", "rows": 2, "exact": True}]
    assert dbstate.alembic_version(database_url) == [ADD]


def test_a_plan_that_fails_in_the_rehearsal_is_still_printed_then_the_error(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(tmp_path / "p", Rev(ADD, (TINY_BASE,), message="divide", upgrade='op.execute("SELECT 1/0")')),
        database_url,
    )

    as_json = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--format", "json")
    as_markdown = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--format", "markdown")

    assert_failure(as_json, ExitCode.FAILED, "fails in the rehearsal")
    document = valid_document(as_json.stdout, "plan")
    assert document["plan"]["rehearsal"]["failure"]["revision"] == ADD
    assert "division by zero" in document["plan"]["rehearsal"]["failure"]["message"]
    assert document["summary"]["attention"][0]["concern"] == "rehearsal_failed"
    assert as_markdown.exit_code == ExitCode.FAILED, as_markdown.output
    tokens = pr_comment(as_markdown.stdout)
    needs = next(table for table in tables(tokens) if table[0] == ["", "Severity", "What"])
    assert needs[1][:2] == ["✖", "FAILED"] and "division by zero" in needs[1][2]
    assert "SELECT 1/0" in fences(tokens)[0]
    assert "Refused" not in as_json.stdout + as_markdown.stdout  # the error went to stderr
    assert dbstate.alembic_version(database_url) == [TINY_BASE]


def test_an_apply_that_fails_prints_the_plan_with_no_result(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(tmp_path / "p", Rev(ADD, (TINY_BASE,), message="divide", upgrade='op.execute("SELECT 1/0")')),
        database_url,
    )

    result = invoke("-c", ini, "--url", database_url, "up", "--yes", "--no-rehearsal", "--format", "json")

    assert result.exit_code == ExitCode.FAILED, result.output
    document = valid_document(result.stdout, "plan")
    assert document["result"] is None and document["plan"]["rehearsal"] is None
    assert document["summary"]["counts"] is None and document["summary"]["not_rehearsed"] == "requested"
    assert dbstate.alembic_version(database_url) == [TINY_BASE]


@pytest.mark.parametrize("command", [["up"], ["down"], ["bootstrap"]])
@pytest.mark.parametrize("output", ["json", "markdown"])
def test_a_document_without_dry_run_or_yes_is_refused_before_anything_runs(
    at_add: str, database_url: str, command: list[str], output: str
) -> None:
    before = dbstate.snapshot(database_url)

    result = invoke("-c", at_add, "--url", database_url, *command, "--format", output)

    assert_failure(result, ExitCode.USAGE, f"--format {output} prints one document", "--dry-run", "--yes")
    assert result.stdout == ""
    assert dbstate.snapshot(database_url) == before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["up", "--dry-run", "--plan-out", "-", "--format", "json"], "would both write to stdout"),
        (["up", "--sql", "--format", "json"], "--sql prints the SQL alone"),
        (["status", "--json", "--format", "markdown"], "--json means --format json"),
    ],
)
def test_formats_that_cannot_share_stdout_are_refused(
    at_add: str, database_url: str, args: list[str], words: str
) -> None:
    result = invoke("-c", at_add, "--url", database_url, *args)

    assert_failure(result, ExitCode.USAGE, words)
    assert result.stdout == ""


def test_a_big_plan_in_markdown_counts_statements_and_leaves_the_sql_out(tmp_path: Path, database_url: str) -> None:
    chain = [Rev(TINY_BASE, ())]
    for number in range(1, 56):
        chain.append(
            Rev(f"dddd{number:08d}", (chain[-1].revision,), upgrade=f'op.execute("CREATE TABLE t{number} (i int)")')
        )
    ini = bootstrapped(write_project(tmp_path / "p", chain), database_url)

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--no-rehearsal", "--format", "markdown")

    assert result.exit_code == 0, result.output
    tokens = pr_comment(result.stdout)
    assert fences(tokens) == []
    revisions = next(table for table in tables(tokens) if table[0][:2] == ["#", "Revision"])
    assert revisions[0] == ["#", "Revision", "Message", "SQL"] and len(revisions) == 56
    assert "1 CREATE TABLE" in revisions[1][3]
    assert any(t.startswith("Plan: changes not measured (no rehearsal)") for t in summary_texts(tokens))
    assert "SQL of every revision: not shown" in result.stdout


# -- bootstrap, new, merge --------------------------------------------------------------------------


def test_bootstrap_json_and_markdown(tmp_path: Path, database_url: str) -> None:
    ini = str(tiny_project(tmp_path / "p"))

    planned = invoke("-c", ini, "--url", database_url, "bootstrap", "--dry-run", "--format", "json")
    shown = invoke("-c", ini, "--url", database_url, "bootstrap", "--dry-run", "--format", "markdown")
    done = invoke("-c", ini, "--url", database_url, "bootstrap", "--yes", "--format", "json")

    assert planned.exit_code == shown.exit_code == done.exit_code == 0, planned.output + shown.output + done.output
    plan = valid_document(planned.stdout, "bootstrap_plan")
    assert plan["result"] is None
    assert {(o["kind"], o["name"]) for o in plan["plan"]["creates"]} >= {
        ("table", "things"),
        ("index", "ix_things_name"),
    }
    assert plan["counts"]["table"] == 1 and plan["plan"]["baseline"]["revision"] == TINY_BASE
    tokens = pr_comment(shown.stdout)
    assert summary_texts(tokens)[0] == "Bootstrap plan"
    assert "CREATE TABLE things" in fences(tokens)[0]
    objects = next(table for table in tables(tokens) if table[0] == ["Kind", "Name"])
    assert ["table", "public.things"] in objects
    applied = valid_document(done.stdout, "bootstrap_plan")
    assert applied["result"]["current_heads"] == [TINY_BASE]
    assert dbstate.alembic_version(database_url) == [TINY_BASE]
    assert "Bootstrapped" in done.stderr


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as a process: the models are imported fresh, and stdout is a real pipe."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "hindsight_migrate", *args],
        cwd=project,
        env={**env, "COLUMNS": "200", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _add_models_column(project: Path) -> None:
    models = project / "migrations" / "models.py"
    old = "    display_name: Mapped[str | None] = mapped_column(String(200))\n"
    assert old in models.read_text()
    models.write_text(
        models.read_text().replace(old, old + "    nickname: Mapped[str] = mapped_column(String(50), nullable=False)\n")
    )


def test_new_json_and_markdown_flag_the_same_dangers(hindsight_project: Path, database_url: str) -> None:
    assert invoke("-c", hindsight_ini(hindsight_project), "--url", database_url, "up", "--yes").exit_code == 0
    _add_models_column(hindsight_project)

    result = _run(hindsight_project, "--url", database_url, "new", "add users.nickname", "--format", "json")

    assert result.returncode == 0, result.stdout + result.stderr
    document = valid_document(result.stdout, "new_revision")
    [operation] = document["operations"]
    assert (operation["kind"], operation["table"], operation["name"]) == ("add_column", "users", "nickname")
    [finding] = document["findings"]
    assert finding["level"] == "danger" and "NOT NULL" in finding["message"]
    assert (hindsight_project / document["path"]).is_file()
    assert "ADD COLUMN nickname" in document["sql"]

    (hindsight_project / document["path"]).unlink()
    shown = _run(hindsight_project, "--url", database_url, "new", "add users.nickname", "--format", "markdown")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    tokens = pr_comment(shown.stdout)
    needs = next(table for table in tables(tokens) if table[0] == ["", "Severity", "What"])
    assert needs[1][1] == "DANGER" and finding["message"] in needs[1][2]
    assert "ADD COLUMN nickname" in fences(tokens)[0]


def two_heads(folder: Path) -> Path:
    return tiny_project(
        folder,
        Rev(ADD, (TINY_BASE,), upgrade='op.execute("CREATE TABLE b (i int)")', downgrade='op.execute("DROP TABLE b")'),
        Rev(
            "eeee00000004",
            (TINY_BASE,),
            upgrade='op.execute("CREATE TABLE c (i int)")',
            downgrade='raise NotImplementedError("no way back")',
        ),
    )


def test_merge_json_names_the_file_and_the_heads_it_joins(tmp_path: Path) -> None:
    ini = two_heads(tmp_path / "p")
    (ini.parent / "migrations" / "script.py.mako").write_text(  # the template a new file is written from
        (REPO / "migrations" / "script.py.mako").read_text()
    )

    result = invoke("-c", str(ini), "merge", "-m", "join", "--format", "json")

    assert result.exit_code == 0, result.output
    document = valid_document(result.stdout, "merge")
    assert sorted(document["heads"]) == [ADD, "eeee00000004"]
    assert (ini.parent / document["path"]).is_file()
    assert document["revision"] in (ini.parent / document["path"]).read_text()
    tokens = pr_comment(invoke("-c", str(ini), "history", "--offline", "--format", "markdown").stdout)
    assert any(row[0] == document["revision"] and "merge" in row[4] for row in tables(tokens)[0][1:])


# -- check, status, lint, history ---------------------------------------------------------------------


def test_check_json_gives_each_problem_structured_fields(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(two_heads(tmp_path / "p"), database_url)

    result = invoke("-c", ini, "--url", database_url, "check", "--format", "json")
    alias = invoke("-c", ini, "--url", database_url, "check", "--json")

    assert result.exit_code == alias.exit_code == ExitCode.CHECK_FAILED, result.output
    document = valid_document(result.stdout, "check")
    assert json.loads(alias.stdout) == document  # --json is --format json
    assert document["ok"] is False
    problems = {problem["kind"]: problem for problem in document["problems"]}
    assert sorted(item["revision"] for item in problems["heads"]["items"]) == [ADD, "eeee00000004"]
    [irreversible] = problems["irreversible"]["items"]
    assert irreversible["revision"] == "eeee00000004" and irreversible["reason"] == "raises"
    assert irreversible["path"] == "migrations/versions/eeee00000004.py"
    assert irreversible["table"] is None and irreversible["column"] is None
    # The message and the lines of the text view are still there.
    assert problems["irreversible"]["message"] == "Revisions without a working downgrade:"
    assert problems["irreversible"]["details"] == [irreversible["text"]]


def test_check_json_names_the_table_and_column_the_models_change(hindsight_project: Path, database_url: str) -> None:
    assert invoke("-c", hindsight_ini(hindsight_project), "--url", database_url, "up", "--yes").exit_code == 0
    _add_models_column(hindsight_project)

    result = _run(hindsight_project, "--url", database_url, "check", "--format", "json")
    shown = _run(hindsight_project, "--url", database_url, "check", "--format", "markdown")

    assert result.returncode == shown.returncode == ExitCode.CHECK_FAILED, result.stdout + result.stderr
    document = valid_document(result.stdout, "check")
    [models] = [problem for problem in document["problems"] if problem["kind"] == "models"]
    [item] = models["items"]
    assert (item["operation"], item["table"], item["column"], item["name"]) == ("add_column", "users", "nickname", None)
    assert item["text"] == "add column users nickname"

    tokens = pr_comment(shown.stdout)
    visible = summary_texts(tokens)
    assert visible[0] == "Check"
    assert visible[1].startswith("check found 1 problem ")
    needs = next(table for table in tables(tokens) if table[0] == ["", "Severity", "Kind", "What"])
    assert needs[1][1:3] == ["PROBLEM", "models"]
    items = next(table for table in tables(tokens) if table[0][0] == "Detail")
    assert items == [
        ["Detail", "Operation", "Table", "Column"],
        ["add column users nickname", "add_column", "users", "nickname"],
    ]
    assert result.stderr.startswith("Database:") and "Database:" not in result.stdout


def test_check_markdown_on_a_clean_project_passes(hindsight_project: Path, database_url: str) -> None:
    result = _run(hindsight_project, "--url", database_url, "check", "--format", "markdown")

    assert result.returncode == 0, result.stdout + result.stderr
    tokens = pr_comment(result.stdout)
    visible = summary_texts(tokens)
    assert visible[1].startswith("check passed for ") and visible[3] == "Needs attention: nothing."


def test_status_json_and_markdown_say_behind_with_exit_10(at_add: str, database_url: str) -> None:
    result = invoke("-c", at_add, "--url", database_url, "status", "--format", "json")
    alias = invoke("-c", at_add, "--url", database_url, "status", "--json")
    shown = invoke("-c", at_add, "--url", database_url, "status", "--format", "markdown")

    assert result.exit_code == alias.exit_code == shown.exit_code == ExitCode.BEHIND, result.output
    document = valid_document(result.stdout, "status")
    assert json.loads(alias.stdout) == document
    assert document["pending"] == [DROP] and document["verdicts"] == ["behind"] and document["exit_code"] == 10
    assert document["last_apply"]["to_revisions"] == ADD
    tokens = pr_comment(shown.stdout)
    assert summary_texts(tokens)[1].endswith(": behind")
    needs = next(table for table in tables(tokens) if table[0] == ["", "Severity", "What"])
    assert needs[1:] == [["▲", "BEHIND", f"1 pending: {DROP}"]]


def test_lint_json_and_markdown_show_the_error_and_its_statement(tmp_path: Path) -> None:
    ini = tiny_project(
        tmp_path / "p",
        Rev(
            ADD,
            (TINY_BASE,),
            upgrade='import sqlalchemy as sa\nop.add_column("things", sa.Column("x", sa.Integer(), nullable=False))',
        ),
        settings="lint_error_rules = adding-required-field",
    )

    result = invoke("-c", str(ini), "lint", "base:heads", "--format", "json")
    alias = invoke("-c", str(ini), "lint", "base:heads", "--json")
    shown = invoke("-c", str(ini), "lint", "base:heads", "--format", "markdown")

    assert result.exit_code == alias.exit_code == shown.exit_code == ExitCode.CHECK_FAILED, result.output
    document = valid_document(result.stdout, "lint")
    assert json.loads(alias.stdout) == document
    errors = [f for f in document["result"]["findings"] if f["level"] == "error"]
    assert [(f["revision"], f["rule"]) for f in errors] == [(ADD, "adding-required-field")]
    tokens = pr_comment(shown.stdout)
    needs = next(table for table in tables(tokens) if table[0] == ["", "Severity", "What"])
    assert needs[1][1] == "LINT ERROR" and needs[1][2].startswith("adding-required-field:")
    assert any("ADD COLUMN x INTEGER NOT NULL" in sql for sql in fences(tokens))


def test_history_json_and_markdown(at_add: str, database_url: str) -> None:
    result = invoke("-c", at_add, "--url", database_url, "history", "--format", "json")
    alias = invoke("-c", at_add, "--url", database_url, "history", "--json")
    offline = invoke("-c", at_add, "history", "--offline", "--format", "json")
    shown = invoke("-c", at_add, "--url", database_url, "history", "--format", "markdown")

    assert result.exit_code == alias.exit_code == offline.exit_code == shown.exit_code == 0, result.output
    document = valid_document(result.stdout, "history")
    assert json.loads(alias.stdout) == document
    assert {e["info"]["revision"]: e["state"] for e in document["entries"]} == {
        DROP: "pending",
        ADD: "current",
        TINY_BASE: "applied",
    }
    assert valid_document(offline.stdout, "history")["database"] is None
    tokens = pr_comment(shown.stdout)
    [graph] = tables(tokens)
    assert graph[0] == ["State", "Revision", "Parent(s)", "Message", "Created", "Marks"]
    assert [row[:2] for row in graph[1:]] == [["○ pending", DROP], ["● current", ADD], ["✓ applied", TINY_BASE]]
    assert graph[2][3] == NASTY


# -- the escaping itself -------------------------------------------------------------------------------

# Printable text, markdown's and HTML's punctuation over-represented; no line breaks (a cell is one line).
_TEXT = st.text(
    alphabet=st.sampled_from(list("ab1 _*`|\\[]()<>&#!~-+.:;\"'/{}=é→—"))
    | st.characters(min_codepoint=33, max_codepoint=126),
    max_size=40,
)


@settings(max_examples=300, deadline=None, database=None)
@given(value=_TEXT)
def test_any_text_in_a_cell_reads_back_as_itself(value: str) -> None:
    tokens = pr_comment("## t\n\n" + markdown.table(["a", "b"], [[value, "x"]]) + "\n")
    [[header, row]] = tables(tokens)
    assert header == ["a", "b"]
    assert row == [value.strip(" "), "x"]


@settings(max_examples=300, deadline=None, database=None)
@given(value=_TEXT)
def test_any_text_in_a_paragraph_or_a_code_span_reads_back_as_itself(value: str) -> None:
    tokens = MarkdownIt("commonmark").parse(f"Said: {markdown.text(value)}\n\nCode: {markdown.code(value)}\n")
    said, code = [inline_text(t) for t in tokens if t.type == "inline"]
    assert said == f"Said: {value}".rstrip(" ")
    assert code == f"Code: {value}" or (value.strip(" ") == "" and code == "Code:")
    assert not any(c.type == "html_inline" for t in tokens for c in t.children or [])


@settings(max_examples=200, deadline=None, database=None)
@given(body=st.text(alphabet=st.sampled_from(list("ab `~\n;'")), min_size=1, max_size=60))
def test_a_fence_holds_any_sql_even_with_backticks(body: str) -> None:
    tokens = MarkdownIt("commonmark").parse(markdown.fence(body) + "\n\nafter\n")
    assert tokens[0].type == "fence"
    assert tokens[0].content == body.rstrip() + "\n" and tokens[0].info == "sql"
    assert inline_text(tokens[-2]) == "after"
