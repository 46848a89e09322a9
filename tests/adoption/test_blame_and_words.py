"""Who is to blame, in true words, on projects made by ``alembic init``: the version table env.py names but
cannot create, a post-write hook that is not there, a revision without a message, a target with no data."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import assert_failure, flatten, invoke
from tests.harness import dbstate
from tests.harness.templates import R1, R3, init_project, versions_dir


def _version_table_in(ini: Path, schema: str) -> None:
    """env.py's online configure() names a version table schema (as a multi-tenant project does)."""
    env_py = ini.parent / "migrations" / "env.py"
    text = env_py.read_text()
    configure = "connection=connection, target_metadata=target_metadata"
    assert configure in text
    env_py.write_text(text.replace(configure, f"{configure}, version_table_schema={schema!r}"))


def test_a_version_table_in_a_schema_that_does_not_exist_is_a_configuration_error_before_any_revision(
    tmp_path: Path, database_url: str
) -> None:
    ini = init_project(tmp_path / "p", "generic")
    _version_table_in(ini, "nowhere")
    before = dbstate.snapshot(database_url)

    rehearsed = invoke("-c", str(ini), "--url", database_url, "up", "--yes")
    assert_failure(
        rehearsed,
        3,
        "Alembic could not create the version table env.py names, before the first revision ran (in the "
        "rehearsal, so nothing was applied)",
        'schema "nowhere" does not exist',
        "CREATE TABLE nowhere.alembic_version",
    )
    assert "Revision ?" not in rehearsed.output and "KeyError" not in rehearsed.output
    assert dbstate.snapshot(database_url) == before

    shown = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run")
    assert "Creating the version table env.py names (before the first revision) failed in the rehearsal" in (
        flatten(shown.output)
    ), shown.output
    document = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run", "--format", "json")
    failure = json.loads(document.stdout)["plan"]["rehearsal"]["failure"]
    assert (failure["revision"], failure["at"]) == (None, "version-table"), failure

    checked = invoke("-c", str(ini), "--url", database_url, "check")  # the scratch database built at head
    assert_failure(checked, 3, "could not create the version table env.py names, before the first revision ran")
    assert "revision ?" not in checked.output

    applied = invoke("-c", str(ini), "--url", database_url, "up", "--yes", "--no-rehearsal")
    assert_failure(applied, 3, "could not create the version table env.py names", "Database now at")
    assert f"Revision {R1}" not in applied.output  # R1 never started: it is not the one to fix
    assert dbstate.tables(database_url) == set() and dbstate.alembic_version(database_url) is None


def test_a_post_write_hook_that_is_not_there_leaves_no_revision_file(tmp_path: Path, database_url: str) -> None:
    ini = init_project(tmp_path / "p", "generic")
    text = ini.read_text()
    assert "\n[post_write_hooks]\n" in text
    ini.write_text(
        text.replace(
            "\n[post_write_hooks]\n",
            "\n[post_write_hooks]\nhooks = fmt\nfmt.type = console_scripts\nfmt.entrypoint = no-such-formatter\n",
        )
    )
    versions = versions_dir(ini.parent, "generic")
    files_before = sorted(versions.glob("*.py"))

    result = invoke("-c", str(ini), "--url", database_url, "new", "hand written", "--empty")

    assert_failure(
        result,
        3,
        "A post-write hook of the ini ([post_write_hooks]) failed after Alembic wrote the revision file, so the "
        "file was removed and nothing was written",
        "Could not find entrypoint console_scripts.no-such-formatter",
        "Removed migrations/versions/",
    )
    assert "revision graph" not in result.output
    assert sorted(versions.glob("*.py")) == files_before


def test_a_revision_without_a_message_has_none_and_its_header_is_not_one(tmp_path: Path) -> None:
    ini = init_project(tmp_path / "p", "generic")
    versions = versions_dir(ini.parent, "generic")
    # Written by hand: the docstring holds only the header `alembic revision` puts under a message.
    (versions / "b1_no_message.py").write_text(
        f'"""\nRevision ID: b1\nRevises: {R3}\nCreate Date: 2020-01-01 00:00:00\n\n"""\n'
        f'revision = "b1"\ndown_revision = "{R3}"\n\n\ndef upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n'
    )
    (versions / "b2_long.py").write_text(
        '"""Add the gadgets\ntable, at last.\n\nWhy, at length.\n\nRevision ID: b2\nRevises: b1\n'
        'Create Date: 2020-01-02 00:00:00\n"""\n'
        'revision = "b2"\ndown_revision = "b1"\n\n\ndef upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n'
    )

    result = invoke("-c", str(ini), "history", "--offline", "--format", "json")

    assert result.exit_code == 0, result.output
    messages = {entry["info"]["revision"]: entry["info"]["message"] for entry in json.loads(result.stdout)["entries"]}
    assert messages["b1"] == "", messages
    assert messages["b2"] == "Add the gadgets\ntable, at last.", messages  # as Alembic's history shows it
    assert "Create Date" not in invoke("-c", str(ini), "history", "--offline").output


def test_a_target_without_tables_is_not_said_to_be_copied_with_its_data(tmp_path: Path, database_url: str) -> None:
    ini = init_project(tmp_path / "p", "generic")

    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run")

    assert result.exit_code == 0, result.output
    said = flatten(result.output)
    assert "rehearsed on a scratch copy of the target, which has no tables yet" in said, result.output
    assert "with its data" not in said
