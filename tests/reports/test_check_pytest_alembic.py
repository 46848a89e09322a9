"""`check` covers pytest-alembic's built-in tests, each as a named item, on projects made by ``alembic init``:
models that no revision creates yet (test_model_definitions_match_ddl, with no revision at all), a chain that
does not build from an empty database (test_upgrade), a downgrade that leaves a trace (test_up_down_consistency,
the experimental downgrade-leaves-no-trace)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import invoke
from tests.harness import dbstate
from tests.harness.templates import add_revision, init_project

_MODELS = """from sqlalchemy import Column, Integer, MetaData, Table
target_metadata = MetaData()
Table("things", target_metadata, Column("id", Integer, primary_key=True))"""


def _check(ini: Path, url: str) -> tuple[int, dict[str, Any], str]:
    result = invoke("-c", str(ini), "--url", url, "check", "--format", "json")
    report = json.loads(result.stdout)
    return result.exit_code, {problem["kind"]: problem for problem in report["problems"]}, result.stdout


def test_models_with_no_revision_yet_are_compared_with_an_empty_database(tmp_path: Path, database_url: str) -> None:
    ini = init_project(tmp_path / "p", "generic", revisions=False)
    env_py = ini.parent / "migrations" / "env.py"
    env_py.write_text(env_py.read_text().replace("target_metadata = None", _MODELS))

    code, problems, shown = _check(ini, database_url)

    assert code == 13, shown
    assert [item["table"] for item in problems["models"]["items"]] == ["things"], problems
    assert "no target_metadata" not in shown


def test_a_downgrade_that_leaves_a_trace_fails_check(tmp_path: Path, database_url: str) -> None:
    ini = init_project(tmp_path / "p", "generic")
    # Its downgrade renames the table it should drop: reverted, the schema is not what it was.
    add_revision(
        ini.parent,
        "generic",
        "d10000000004",
        "create sprockets",
        ('op.create_table("sprockets", sa.Column("id", sa.BigInteger(), primary_key=True))',),
        ('op.rename_table("sprockets", "sprockets_old")',),
    )

    code, problems, shown = _check(ini, database_url)

    assert code == 13, shown
    (item,) = problems["downgrade"]["items"]
    assert item["revision"] == "d10000000004", item
    assert "sprockets_old" in item["reason"], item
    assert dbstate.alembic_version(database_url) is None  # all of it on a scratch database


def test_a_chain_that_does_not_build_from_an_empty_database_is_named(tmp_path: Path, database_url: str) -> None:
    ini = init_project(tmp_path / "p", "generic")
    add_revision(
        ini.parent,
        "generic",
        "d10000000004",
        "alter a table nobody made",
        ('op.add_column("nowhere", sa.Column("x", sa.Integer()))',),
        ('op.drop_column("nowhere", "x")',),
    )

    code, problems, shown = _check(ini, database_url)

    assert code == 13, shown
    (item,) = problems["upgrade"]["items"]
    assert item["revision"] == "d10000000004" and 'relation "nowhere" does not exist' in item["reason"], item


def test_a_clean_chain_passes_with_every_downgrade_tried(tmp_path: Path, database_url: str) -> None:
    ini = init_project(tmp_path / "p", "generic")

    result = invoke("-c", str(ini), "--url", database_url, "check", "--format", "json")

    assert result.exit_code == 0, result.output
    checked = json.loads(result.stdout)["checked"]
    assert any(c.startswith("downgrades undo their upgrades (3 revisions applied, reverted") for c in checked), checked
