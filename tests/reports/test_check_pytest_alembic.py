"""`check` covers pytest-alembic's built-in tests, each as a named item, on projects made by ``alembic init``:
models that no revision creates yet (test_model_definitions_match_ddl, with no revision at all), a chain that
does not build from an empty database (test_upgrade), a downgrade that leaves a trace (test_up_down_consistency,
the experimental downgrade-leaves-no-trace)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

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


def test_a_model_module_env_py_never_imports_is_named(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "p"
    ini = init_project(folder, "generic", revisions=False)
    models = folder / "shop" / "models"
    models.mkdir(parents=True)
    (folder / "shop" / "__init__.py").write_text("")
    (models / "__init__.py").write_text(
        "from sqlalchemy import Integer\n"
        "from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column\n\n\n"
        "class Base(DeclarativeBase):\n    pass\n\n\n"
        "class Thing(Base):\n    __tablename__ = 'things'\n"
        "    id: Mapped[int] = mapped_column(Integer, primary_key=True)\n"
    )
    # Defined on the same Base, in a module nothing imports when env.py runs.
    (models / "extra.py").write_text(
        "from sqlalchemy import Integer\n"
        "from sqlalchemy.orm import Mapped, mapped_column\n\n"
        "from shop.models import Base\n\n\n"
        "class Extra(Base):\n    __tablename__ = 'extras'\n"
        "    id: Mapped[int] = mapped_column(Integer, primary_key=True)\n"
    )
    env_py = folder / "migrations" / "env.py"
    wired = "from shop.models import Base\ntarget_metadata = Base.metadata"
    env_py.write_text(env_py.read_text().replace("target_metadata = None", wired))
    add_revision(
        folder,
        "generic",
        "e10000000001",
        "create things",
        ('op.create_table("things", sa.Column("id", sa.Integer(), nullable=False), sa.PrimaryKeyConstraint("id"))',),
        ('op.drop_table("things")',),
    )

    monkeypatch.chdir(folder)  # as alembic is run: prepend_sys_path = . puts the project's folder on sys.path
    importlib.invalidate_caches()  # "." was another folder for the tests before this one, in this process
    try:
        code, problems, shown = _check(ini, database_url)
        # A module of the package that cannot be imported alone: not checked, said so, and check stands.
        (models / "extra.py").write_text("raise RuntimeError('needs the app configured')\n")
        second = invoke("-c", str(ini), "--url", database_url, "check", "--format", "json")
    finally:
        for name in [name for name in sys.modules if name == "shop" or name.startswith("shop.")]:
            del sys.modules[name]

    assert code == 13, shown
    assert "models" not in problems, problems  # what env.py sees matches the schema at head
    (item,) = problems["unregistered"]["items"]
    assert (item["table"], item["path"]) == ("extras", "shop.models.extra"), item
    assert second.exit_code == 0, second.output
    (warning,) = [w for w in json.loads(second.stdout)["warnings"] if w["kind"] == "unregistered"]
    assert "Not checked that every model is registered" in warning["message"], warning
    assert "needs the app configured" in warning["message"], warning
