"""Alembic projects exactly as ``alembic init -t TEMPLATE`` makes them, driven by hindsight-migrate.

env.py, script.py.mako and the config stay as Alembic wrote them; only revision files are added and
the database is given with --url. Every test compares the tool's result with raw ``alembic`` doing the
same on a database of its own: the same schema, the same version rows. ``multidb`` is refused before
anything runs, and so is the placeholder URL ``alembic init`` writes into alembic.ini.
"""

from __future__ import annotations

import json
import py_compile
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import assert_failure, flatten, invoke
from tests.harness import dbstate
from tests.harness.templates import (
    PLACEHOLDER_URL,
    PYPROJECT_TEMPLATES,
    R1,
    R2,
    R3,
    REVISIONS,
    TEMPLATES,
    alembic_config,
    init_project,
    raw_alembic,
    schema_of,
    versions_dir,
)

RAW_CONFIG = ["-c", "alembic.ini"]  # raw alembic, run in (a copy of) the project folder
APP_TABLES = {"widgets", "gadgets"}


def assert_clean_output(output: str) -> None:
    """No internal error, no traceback, and none of Alembic's log lines (the templates' env.py calls
    fileConfig, which turns them on). The plan's SQL carries Alembic's "-- Running upgrade" comments:
    those are SQL, not log lines."""
    assert "bug in hindsight-migrate" not in output, output
    assert "Traceback" not in output, output
    assert "[alembic." not in output, output
    assert "Context impl PostgresqlImpl" not in output, output
    assert "Will assume transactional DDL" not in output, output
    for line in output.splitlines():
        if re.search(r"Running (upgrade|downgrade)", line):
            assert line.lstrip(" │").startswith("-- "), f"an Alembic log line in the output: {line!r}\n{output}"


def project_files(folder: Path) -> dict[str, bytes]:
    """The project's files as Alembic wrote them (the tool's .hindsight/ and bytecode aside)."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and ".hindsight" not in path.parts
    }


def up_runs(url: str) -> list[tuple[Any, ...]]:
    """(command, to_revisions, outcome) of the tool's audited runs, oldest first."""
    if not dbstate.query(url, "SELECT to_regclass('hindsight_migrate.apply_log') IS NOT NULL")[0][0]:
        return []
    return dbstate.query(url, "SELECT command, to_revisions, outcome FROM hindsight_migrate.apply_log ORDER BY id")


def tool(ini: Path, url: str, *args: str) -> str:
    """Run the CLI with --url; it must succeed with clean output. Returns the output."""
    result = invoke("-c", str(ini), "--url", url, *args)
    assert result.exit_code == 0, result.output
    assert_clean_output(result.output)
    return result.output


# -- up ----------------------------------------------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES)
def test_up_builds_what_raw_alembic_upgrade_builds(
    template: str, tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    project = tmp_path / "project"
    ini = init_project(project, template)
    files_before = project_files(project)

    result = invoke("-c", str(ini), "--url", database_url, "up", "--yes")

    assert result.exit_code == 0, result.output
    assert_clean_output(result.output)
    assert dbstate.alembic_version(database_url) == [R3]
    assert dbstate.tables(database_url) == APP_TABLES | {"alembic_version"}
    raw_url = make_database("raw")
    raw_alembic(project, RAW_CONFIG, raw_url, "upgrade", "head")
    assert schema_of(database_url) == schema_of(raw_url)
    # The run is audited like any other, and the project is left exactly as alembic init wrote it.
    assert [(command, outcome) for command, _, outcome in up_runs(database_url)] == [("up", "succeeded")]
    assert project_files(project) == files_before

    again = invoke("-c", str(ini), "--url", database_url, "up", "--yes")
    assert again.exit_code == 0, again.output
    assert_clean_output(again.output)
    assert dbstate.alembic_version(database_url) == [R3]


@pytest.mark.parametrize("template", TEMPLATES)
def test_up_to_a_revision_then_to_head_matches_raw_alembic(
    template: str, tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    project = tmp_path / "project"
    ini = init_project(project, template)
    raw_url = make_database("raw")

    tool(ini, database_url, "up", R2, "--yes")
    raw_alembic(project, RAW_CONFIG, raw_url, "upgrade", R2)

    assert dbstate.alembic_version(database_url) == [R2]
    assert dbstate.tables(database_url) == {"widgets", "alembic_version"}
    assert schema_of(database_url) == schema_of(raw_url)

    tool(ini, database_url, "up", "--yes")
    raw_alembic(project, RAW_CONFIG, raw_url, "upgrade", "head")

    assert dbstate.alembic_version(database_url) == [R3]
    assert schema_of(database_url) == schema_of(raw_url)


@pytest.mark.parametrize("template", TEMPLATES)
def test_dry_run_changes_nothing(template: str, tmp_path: Path, database_url: str) -> None:
    ini = init_project(tmp_path / "project", template)
    before = dbstate.snapshot(database_url)

    output = tool(ini, database_url, "up", "--dry-run")

    for revision in REVISIONS:
        assert revision in output, output
    assert dbstate.snapshot(database_url) == before
    assert dbstate.alembic_version(database_url) is None
    assert dbstate.scratch_databases_of(database_url) == []


@pytest.mark.parametrize("template", sorted(PYPROJECT_TEMPLATES))
def test_config_given_as_pyproject_toml(
    template: str, tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    project = tmp_path / "project"
    toml = init_project(project, template, config="pyproject.toml")
    assert toml.name == "pyproject.toml"

    tool(toml, database_url, "up", "--yes")

    raw_url = make_database("raw")
    raw_alembic(project, ["-c", "pyproject.toml"], raw_url, "upgrade", "head")
    assert dbstate.alembic_version(database_url) == [R3]
    assert schema_of(database_url) == schema_of(raw_url)


# -- history and status --------------------------------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES)
def test_history_and_status_see_what_is_applied(template: str, tmp_path: Path, database_url: str) -> None:
    ini = init_project(tmp_path / "project", template)
    tool(ini, database_url, "up", R2, "--yes")

    plain = flatten(tool(ini, database_url, "history"))
    for revision in REVISIONS:
        assert revision in plain, plain
    assert "3 revisions" in plain, plain

    result = invoke("-c", str(ini), "--url", database_url, "history", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    states = {entry["info"]["revision"]: entry["state"] for entry in document["entries"]}
    assert states == {R3: "pending", R2: "current", R1: "applied"}
    assert document["heads"] == [R3]
    assert document["database"]["current"] == [R2]

    behind = invoke("-c", str(ini), "--url", database_url, "status", "--json")
    assert behind.exit_code == 10, behind.output
    status = json.loads(behind.stdout)
    assert status["verdicts"] == ["behind"]
    assert status["pending"] == [R3]
    assert status["current"] == [R2]

    tool(ini, database_url, "up", "--yes")

    at_head = invoke("-c", str(ini), "--url", database_url, "status")
    assert at_head.exit_code == 0, at_head.output
    assert_clean_output(at_head.output)
    assert "up to date" in flatten(at_head.output), at_head.output


# -- down ----------------------------------------------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES)
def test_down_matches_raw_alembic_downgrade(
    template: str, tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    project = tmp_path / "project"
    ini = init_project(project, template)
    raw_url = make_database("raw")
    tool(ini, database_url, "up", "--yes")
    raw_alembic(project, RAW_CONFIG, raw_url, "upgrade", "head")

    tool(ini, database_url, "down", "--to", R1, "--yes")
    raw_alembic(project, RAW_CONFIG, raw_url, "downgrade", R1)

    assert dbstate.alembic_version(database_url) == [R1]
    assert schema_of(database_url) == schema_of(raw_url)

    # These projects configure no baseline, so nothing protects the first revision: base is allowed.
    tool(ini, database_url, "down", "--to", "base", "--yes")
    raw_alembic(project, RAW_CONFIG, raw_url, "downgrade", "base")

    assert dbstate.tables(database_url) & APP_TABLES == set()
    assert dbstate.alembic_version(database_url) == []
    assert schema_of(database_url) == schema_of(raw_url)


# -- check and new ---------------------------------------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES)
def test_check_at_head(template: str, tmp_path: Path, database_url: str) -> None:
    ini = init_project(tmp_path / "project", template)
    tool(ini, database_url, "up", "--yes")

    result = invoke("-c", str(ini), "--url", database_url, "check")

    # The templates say target_metadata = None: there are no models, so autogenerate has nothing to
    # compare and nothing to write; one head, every revision reversible, nothing edited: no problem.
    assert result.exit_code == 0, result.output
    assert_clean_output(result.output)
    assert dbstate.alembic_version(database_url) == [R3]


@pytest.mark.parametrize("template", TEMPLATES)
def test_new_empty_revision_is_written_with_the_project_template(
    template: str, tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    project = tmp_path / "project"
    ini = init_project(project, template)
    versions = versions_dir(project, template)
    before = set(versions.glob("*.py"))

    output = tool(ini, database_url, "new", "add thing", "--empty")

    written = sorted(set(versions.glob("*.py")) - before)
    assert len(written) == 1, output
    py_compile.compile(str(written[0]), doraise=True)
    text = written[0].read_text()
    assert '"""Upgrade schema."""' in text, text  # rendered from the template's script.py.mako
    assert re.search(r"^down_revision: .* = 'a10000000003'$", text, flags=re.MULTILINE), text

    plain = invoke("-c", str(ini), "history", "--offline")
    assert plain.exit_code == 0, plain.output
    assert "4 revisions" in flatten(plain.output), plain.output
    result = invoke("-c", str(ini), "history", "--offline", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert len(document["entries"]) == 4
    (new_head,) = document["heads"]
    assert new_head not in REVISIONS
    assert [entry["info"]["parents"] for entry in document["entries"] if entry["info"]["revision"] == new_head] == [
        [R3]
    ]
    # Raw Alembic reads the new file as one of its own.
    raw_url = make_database("raw")
    raw_alembic(project, RAW_CONFIG, raw_url, "upgrade", "head")
    assert dbstate.alembic_version(raw_url) == [new_head]


# -- refused before anything runs ---------------------------------------------------------------


def test_multidb_is_refused_and_no_database_is_touched(
    tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    project = tmp_path / "project"
    ini = init_project(project, "multidb")
    # A multidb user names the two databases in [engine1] and [engine2]: real ones here, so that
    # "untouched" means something.
    engines = {"engine1": make_database("engine1"), "engine2": make_database("engine2")}
    text = ini.read_text()
    for placeholder, name in (("dbname", "engine1"), ("dbname2", "engine2")):
        url = make_url(engines[name]).render_as_string(hide_password=False).replace("%", "%%")
        line = f"sqlalchemy.url = driver://user:pass@localhost/{placeholder}\n"
        assert text.count(line) == 1, text
        text = text.replace(line, f"sqlalchemy.url = {url}\n")
    ini.write_text(text)
    before = {url: dbstate.snapshot(url) for url in (database_url, *engines.values())}

    result = invoke("-c", str(ini), "--url", database_url, "up", "--yes")

    assert_failure(result, 3, "engine1", "engine2")
    assert "bug in hindsight-migrate" not in result.output
    assert {url: dbstate.snapshot(url) for url in before} == before
    for url in before:
        assert dbstate.alembic_version(url) is None
    assert not (project / ".hindsight" / "pgdata").exists(), "the embedded server was started"


def test_the_placeholder_url_of_alembic_init_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    ini = init_project(project, "generic")
    assert PLACEHOLDER_URL in ini.read_text()

    result = invoke("-c", str(ini), "up", "--yes")  # no --url; conftest removes DATABASE_URL

    # It names the placeholder (its "password" masked or not) and the two ways to give a database.
    assert_failure(result, 3, "--url", "DATABASE_URL")
    flat = flatten(result.output)
    assert "driver://user:" in flat, result.output
    assert "@localhost/dbname" in flat, result.output
    assert "bug in hindsight-migrate" not in result.output
    assert not (project / ".hindsight" / "pgdata").exists(), "the embedded server was started"
    assert not (tmp_path / ".hindsight").exists()


@pytest.mark.parametrize("template", TEMPLATES)
def test_lint_and_merge_work_on_the_stock_project(
    template: str, tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    from alembic.script import ScriptDirectory

    project = tmp_path / "project"
    ini = init_project(project, template)
    config = alembic_config(project, template)
    # A second head beside R3, as two developers' branches make one.
    ScriptDirectory.from_config(config).generate_revision(
        "b10000000001", "side branch", head=R2, splice=True, config=config
    )

    lint = invoke("-c", str(ini), "lint", "base:heads")
    assert lint.exit_code == 0, lint.output  # the stock revisions only draw warnings
    assert "Linted 4 revisions" in flatten(lint.output), lint.output
    assert_clean_output(lint.output)

    merge = invoke("-c", str(ini), "merge", "-m", "join the branches")
    assert merge.exit_code == 0, merge.output
    document = json.loads(invoke("-c", str(ini), "history", "--offline", "--json").stdout)
    (merge_head,) = document["heads"]
    assert merge_head not in (*REVISIONS, "b10000000001")

    tool(ini, database_url, "up", "--yes")
    raw_url = make_database("raw")
    raw_alembic(project, RAW_CONFIG, raw_url, "upgrade", "heads")
    assert dbstate.alembic_version(database_url) == [merge_head] == dbstate.alembic_version(raw_url)
    assert schema_of(database_url) == schema_of(raw_url)
