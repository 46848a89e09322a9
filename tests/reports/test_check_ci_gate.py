"""`check` as the CI gate of any project, on a fresh database: every ``alembic init`` template, an env.py with
no offline branch, a revision that reads the database through get_bind(), env.py's own
process_revision_directives hook; its JSON written whatever happens, and what it compared said."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import flatten, invoke
from tests.harness import dbstate
from tests.harness.templates import TEMPLATES, add_revision, init_project

# A model env.py declares, and the revision that creates it exactly: the models match the schema at head.
_MODELS = """
from sqlalchemy import Column, Integer, MetaData, Table
target_metadata = MetaData()
Table("things", target_metadata, Column("id", Integer, primary_key=True))
"""
_HOOK = """

def process_revision_directives(context, revision, directives):
    # The common guard against empty revision files: Alembic hands it the revision it would write.
    script = directives[0]
    if script.upgrade_ops.is_empty():
        directives[:] = []
"""
_READS = (
    "rows = op.get_bind().execute(sa.text('SELECT count(*) FROM things')).fetchall()",
    "assert rows[0][0] >= 0",
)


def _project_in_the_wild(folder: Path) -> Path:
    """A generic project with models, env.py's own hook, and a revision that reads the database."""
    ini = init_project(folder, "generic", revisions=False)
    add_revision(
        folder,
        "generic",
        "c10000000001",
        "create things",
        ('op.create_table("things", sa.Column("id", sa.Integer(), nullable=False), sa.PrimaryKeyConstraint("id"))',),
        ('op.drop_table("things")',),
    )
    add_revision(folder, "generic", "c10000000002", "count things", _READS, ("pass",))
    env_py = folder / "migrations" / "env.py"
    text = env_py.read_text()
    assert "target_metadata = None" in text
    text = text.replace("target_metadata = None", _MODELS.strip() + _HOOK)
    configure = "connection=connection, target_metadata=target_metadata"
    assert configure in text
    text = text.replace(configure, f"{configure}, process_revision_directives=process_revision_directives")
    env_py.write_text(text)
    return ini


def _without_offline_branch(ini: Path) -> None:
    """env.py as most are written by hand: it runs online whatever the mode."""
    env_py = ini.parent / "migrations" / "env.py"
    text = env_py.read_text()
    branch = text.index("if context.is_offline_mode():")
    env_py.write_text(text[:branch] + "run_migrations_online()\n")


@pytest.mark.parametrize("template", TEMPLATES)
def test_check_passes_on_a_fresh_database_for_every_template(
    template: str, tmp_path: Path, database_url: str
) -> None:
    ini = init_project(tmp_path / "p", template)

    result = invoke("-c", str(ini), "--url", database_url, "check", "--format", "json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["error"] is None, report
    assert report["target"].startswith("3 revisions behind head (no revision applied)"), report["target"]
    assert "compared with a scratch database built at head, not with it" in report["target"]
    assert dbstate.alembic_version(database_url) is None  # nothing applied to the target


def test_check_on_a_project_as_found_in_the_wild(tmp_path: Path, database_url: str) -> None:
    ini = _project_in_the_wild(tmp_path / "p")

    # With its offline branch: the revision that reads the database is not linted (offline it has no
    # database to read), and that is no fault of the project's; env.py's hook sees the revision Alembic built.
    first = invoke("-c", str(ini), "--url", database_url, "check", "--format", "json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["ok"] is True, report
    assert any(c.startswith("models against a scratch database at head") for c in report["checked"]), report
    (not_linted,) = [w for w in report["warnings"] if w["kind"] == "lint"]
    assert [item["revision"] for item in not_linted["items"]] == ["c10000000002"], not_linted
    assert "reads the database from Python (get_bind())" in not_linted["items"][0]["reason"], not_linted

    # Without it, as most env.py files are written: nothing renders, every revision is "not linted" with the
    # reason, and every other check still runs.
    _without_offline_branch(ini)
    second = invoke("-c", str(ini), "--url", database_url, "check")
    assert second.exit_code == 0, second.output
    said = flatten(second.output)
    assert "Not linted (2 of 2 pending revisions)" in said, second.output
    assert "env.py has no offline branch (it builds an engine even under --sql)" in said, second.output
    assert "check passed" in said and "lint of pending revisions (2 not linted)" in said, second.output
    assert "models against a scratch database at head" in said, second.output
    assert "Target: 2 revisions behind head (no revision applied)" in said, second.output
    assert "offline mode" not in said and "Traceback" not in second.output
    assert dbstate.alembic_version(database_url) is None


def test_check_writes_its_json_when_it_cannot_finish(tmp_path: Path) -> None:
    ini = init_project(tmp_path / "p", "generic")

    result = invoke("-c", str(ini), "--url", "postgresql://hm:secret-pw@127.0.0.1:1/nope", "check", "--format", "json")

    assert result.exit_code == 4, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["problems"] == [], report
    assert report["error"]["exit_code"] == 4 and report["error"]["title"] == "Cannot connect to the database", report
    assert "secret-pw" not in result.stdout


def test_loggers_the_projects_ini_turns_on_are_kept_out_like_alembics(tmp_path: Path, database_url: str) -> None:
    """An Alembic extension's logger, configured at INFO in the ini as Alembic's own is, says nothing in check."""
    ini = init_project(tmp_path / "p", "generic")
    text = ini.read_text()
    text = text.replace("[loggers]\nkeys = root,sqlalchemy,alembic", "[loggers]\nkeys = root,sqlalchemy,alembic,ext")
    text = text.replace(
        "[handlers]", "[logger_ext]\nlevel = INFO\nhandlers = console\nqualname = alembic_ext\n\n[handlers]", 1
    )
    ini.write_text(text)
    env_py = ini.parent / "migrations" / "env.py"
    env_py.write_text(
        env_py.read_text().replace(
            "    fileConfig(config.config_file_name)\n",
            "    fileConfig(config.config_file_name)\n"
            "import logging\nlogging.getLogger('alembic_ext').info('EXTENSION CHATTER')\n",
        )
    )

    result = invoke("-c", str(ini), "--url", database_url, "check")

    assert result.exit_code == 0, result.output
    assert "EXTENSION CHATTER" not in result.output
