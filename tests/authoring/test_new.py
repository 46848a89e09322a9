"""`hindsight-migrate new`: autogenerate against a scratch database built at head, reviewed before it is written.

These run the installed command as a real process: each test edits the models of its own
copy of the project, and a fresh interpreter is the only honest way to import them.
"""

from __future__ import annotations

import ast
import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import flatten
from tests.harness import dbstate

MODELS = Path("migrations") / "models.py"


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
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


def edit_models(project: Path, old: str, new: str) -> None:
    path = project / MODELS
    text = path.read_text()
    assert old in text, f"{old!r} is not in the models any more; update the test"
    path.write_text(text.replace(old, new, 1))


def revision_files(project: Path) -> set[str]:
    return {p.name for p in (project / "migrations" / "versions").glob("*.py")}


def scratch_databases(url: str) -> list[str]:
    """This test's database's scratch databases still on the server (other tests have their own)."""
    return dbstate.scratch_databases_of(url)


def test_new_after_a_model_change_writes_a_revision_that_makes_the_database_match(
    hindsight_project: Path, database_url: str
) -> None:
    edit_models(
        hindsight_project,
        "    display_name: Mapped[str | None] = mapped_column(String(200))\n",
        "    display_name: Mapped[str | None] = mapped_column(String(200))\n"
        "    nickname: Mapped[str | None] = mapped_column(String(50))\n",
    )
    before = revision_files(hindsight_project)

    result = run(hindsight_project, "--url", database_url, "new", "add users.nickname", "--sql")

    assert result.returncode == 0, result.stdout + result.stderr
    written = revision_files(hindsight_project) - before
    assert len(written) == 1 and next(iter(written)).endswith("_add_users_nickname.py"), written
    out = flatten(result.stdout)
    assert "a scratch database built at head from nothing" in out
    assert "add column users nickname VARCHAR(50)" in out
    assert "ALTER TABLE users ADD COLUMN nickname VARCHAR(50)" in out
    assert f"Wrote migrations/versions/{next(iter(written))}" in out
    assert dbstate.tables(database_url) == set()  # the configured database was not touched
    assert scratch_databases(database_url) == []

    applied = run(hindsight_project, "--url", database_url, "up", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    nickname = dbstate.query(
        database_url,
        "SELECT data_type, character_maximum_length FROM information_schema.columns "
        "WHERE table_name = 'users' AND column_name = 'nickname'",
    )
    assert nickname == [("character varying", 50)]
    # The models and the database now agree: autogenerate against it finds nothing.
    again = run(hindsight_project, "--url", database_url, "new", "anything left", "--against-target")
    assert again.returncode == 6, again.stdout + again.stderr
    assert "found no difference" in flatten(again.stderr)


def test_no_change_refuses_and_writes_nothing(hindsight_project: Path, database_url: str) -> None:
    before = revision_files(hindsight_project)

    result = run(hindsight_project, "--url", database_url, "new", "nothing changed")

    assert result.returncode == 6, result.stdout + result.stderr
    assert "found no difference" in flatten(result.stderr) and "--empty" in result.stderr
    assert "Traceback" not in result.stderr
    assert revision_files(hindsight_project) == before
    assert scratch_databases(database_url) == []


def test_empty_flag_writes_an_empty_revision_for_a_data_migration(hindsight_project: Path, database_url: str) -> None:
    before = revision_files(hindsight_project)

    result = run(hindsight_project, "--url", database_url, "new", "backfill agent slugs again", "--empty")

    assert result.returncode == 0, result.stdout + result.stderr
    written = revision_files(hindsight_project) - before
    assert len(written) == 1
    assert "Detected operations (0)" in result.stdout


def test_renamed_column_is_flagged_as_a_probable_rename(hindsight_project: Path, database_url: str) -> None:
    edit_models(hindsight_project, "    display_name: Mapped[str | None]", "    shown_name: Mapped[str | None]")

    result = run(hindsight_project, "--url", database_url, "new", "rename display name")

    assert result.returncode == 0, result.stdout + result.stderr
    out = flatten(result.stdout)
    assert "probably a rename" in out
    assert 'op.alter_column("users", "display_name", new_column_name="shown_name")' in out


def test_dropped_column_narrowing_and_not_null_are_flagged(hindsight_project: Path, database_url: str) -> None:
    edit_models(hindsight_project, "    description: Mapped[str | None] = mapped_column(Text)\n", "")
    edit_models(
        hindsight_project,
        "email: Mapped[str] = mapped_column(String(320))",
        "email: Mapped[str] = mapped_column(String(100))",
    )
    edit_models(
        hindsight_project,
        "    display_name: Mapped[str | None] = mapped_column(String(200))\n",
        "    display_name: Mapped[str | None] = mapped_column(String(200))\n"
        "    pinned: Mapped[bool] = mapped_column()\n",
    )

    result = run(hindsight_project, "--url", database_url, "new", "tighten users")

    assert result.returncode == 0, result.stdout + result.stderr
    out = flatten(result.stdout)
    assert "danger: drops column agents.description and its data" in out
    assert "narrows users.email from VARCHAR(320) to VARCHAR(100)" in out
    assert "adds NOT NULL column users.pinned without a server default" in out
    # Squawk's verdict on the new file is shown too.
    assert "Lint (Squawk)" in out and "adding-required-field" in out


def test_dropped_table_recreated_under_another_name_is_a_probable_rename(
    hindsight_project: Path, database_url: str
) -> None:
    edit_models(hindsight_project, '__tablename__ = "keywords"', '__tablename__ = "tags"')
    edit_models(hindsight_project, 'name="keywords_pkey"', 'name="tags_pkey"')
    edit_models(hindsight_project, 'name="keywords_keyword_key"', 'name="tags_keyword_key"')
    edit_models(hindsight_project, '"keywords.id",', '"tags.id",')

    result = run(hindsight_project, "--url", database_url, "new", "rename keywords to tags")

    assert result.returncode == 0, result.stdout + result.stderr
    assert 'op.rename_table("keywords", "tags")' in flatten(result.stdout)


def test_empty_message_is_a_usage_error(hindsight_project: Path, database_url: str) -> None:
    before = revision_files(hindsight_project)
    result = run(hindsight_project, "--url", database_url, "new", "   ")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "needs a message" in flatten(result.stderr)
    assert revision_files(hindsight_project) == before


def test_against_target_needs_the_database_at_head(hindsight_project: Path, database_url: str) -> None:
    assert run(hindsight_project, "--url", database_url, "bootstrap", "--yes").returncode == 0
    before = dbstate.snapshot(database_url)

    result = run(hindsight_project, "--url", database_url, "new", "x", "--against-target")

    assert result.returncode == 6, result.stdout + result.stderr
    assert "must be at head" in flatten(result.stderr) and "hindsight-migrate up" in result.stderr
    assert dbstate.snapshot(database_url) == before


def execute(url: str, sql: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text(sql))
    finally:
        engine.dispose()


def written_file(project: Path, before: set[str]) -> Path:
    written = revision_files(project) - before
    assert len(written) == 1, written
    return project / "migrations" / "versions" / next(iter(written))


DROP_DESCRIPTION = ("    description: Mapped[str | None] = mapped_column(Text)\n", "")


def test_dropped_column_counts_its_rows_on_the_target_and_is_marked_danger_in_the_file(
    hindsight_project: Path, database_url: str
) -> None:
    assert run(hindsight_project, "--url", database_url, "bootstrap", "--yes").returncode == 0
    assert run(hindsight_project, "--url", database_url, "up", "--yes").returncode == 0
    # Three rows hold a description, one does not: only the three lose data.
    execute(
        database_url,
        "INSERT INTO agents (name, slug, description) VALUES "
        "('a', 'a', 'one'), ('b', 'b', 'two'), ('c', 'c', 'three'), ('d', 'd', NULL)",
    )
    edit_models(hindsight_project, *DROP_DESCRIPTION)
    before = revision_files(hindsight_project)

    result = run(hindsight_project, "--url", database_url, "new", "drop agents.description")

    assert result.returncode == 0, result.stdout + result.stderr
    out = flatten(result.stdout)
    assert "danger: drops column agents.description and its data (3 rows on the target)" in out
    assert "Rows at risk counted on" in out
    path = written_file(hindsight_project, before)
    lines = path.read_text().splitlines()
    at = lines.index("    op.drop_column('agents', 'description')")
    assert lines[at - 1] == "    # DANGER: drops column agents.description and its data (3 rows on the target)"
    # Only in upgrade(): downgrade() adds the column back, which is no danger.
    assert sum("# DANGER:" in line for line in lines) == 1
    assert lines.index("def upgrade() -> None:") < at < lines.index("def downgrade() -> None:")
    py_compile.compile(str(path), doraise=True)
    # Counted read-only: the target's rows are as they were.
    assert dbstate.query(database_url, "SELECT count(description) FROM agents") == [(3,)]


def test_strict_exits_13_on_a_danger_and_still_writes_the_file(hindsight_project: Path, database_url: str) -> None:
    edit_models(hindsight_project, *DROP_DESCRIPTION)
    before = revision_files(hindsight_project)

    result = run(hindsight_project, "--url", database_url, "new", "drop agents.description", "--strict")

    assert result.returncode == 13, result.stdout + result.stderr
    path = written_file(hindsight_project, before)
    py_compile.compile(str(path), doraise=True)
    out = flatten(result.stdout)
    assert f"Wrote migrations/versions/{path.name}" in out
    # The target is empty: nothing to count there, and the output says so.
    assert (
        "drops column agents.description and its data (no rows on the target: it has no column agents.description)"
        in out
    )
    last = flatten(result.stdout.split("hindsight-migrate up.")[-1])
    assert last.startswith("--strict: exit 13, 1 danger left in"), result.stdout
    assert "Traceback" not in result.stderr


def test_the_dangers_said_are_the_dangers_shown_and_the_comments_written(
    hindsight_project: Path, database_url: str
) -> None:
    # Three dangers, one of them a probable rename whose comment has an "instead:" line under it:
    # that line is advice, not a fourth danger.
    edit_models(hindsight_project, "    display_name: Mapped[str | None]", "    shown_name: Mapped[str | None]")
    edit_models(hindsight_project, *DROP_DESCRIPTION)
    edit_models(
        hindsight_project,
        "email: Mapped[str] = mapped_column(String(320))",
        "email: Mapped[str] = mapped_column(String(100))",
    )
    before = revision_files(hindsight_project)

    result = run(hindsight_project, "--url", database_url, "new", "three dangers")

    assert result.returncode == 0, result.stdout + result.stderr
    out = flatten(result.stdout)
    printed = out.count("danger: ")
    written = written_file(hindsight_project, before).read_text().count("# DANGER:")
    assert printed == written == 3, result.stdout
    assert "3 dangers are marked in it with a # DANGER: comment above the operation." in out
    assert "4 danger" not in out and "danger(s)" not in out


def test_strict_without_a_danger_exits_0(hindsight_project: Path, database_url: str) -> None:
    edit_models(
        hindsight_project,
        "    display_name: Mapped[str | None] = mapped_column(String(200))\n",
        "    display_name: Mapped[str | None] = mapped_column(String(200))\n"
        "    nickname: Mapped[str | None] = mapped_column(String(50))\n",
    )
    before = revision_files(hindsight_project)

    result = run(hindsight_project, "--url", database_url, "new", "add users.nickname", "--strict")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "--strict" not in result.stdout
    assert "DANGER" not in written_file(hindsight_project, before).read_text()


@pytest.mark.parametrize(
    "message",
    [
        "it's the user's column",
        'say "hi" and end with "',
        'a """docstring""" inside',
        "windows path C:\\New\\x and \\u00e9 written out",
        "ends with a backslash \\",
        "ends with quotes '''",
        "café, naïve, 日本語",
    ],
)
def test_any_message_writes_a_revision_that_compiles_and_history_lists(
    hindsight_project: Path, database_url: str, message: str
) -> None:
    before = revision_files(hindsight_project)

    result = run(hindsight_project, "--url", database_url, "new", message, "--empty")

    assert result.returncode == 0, result.stdout + result.stderr
    path = written_file(hindsight_project, before)
    py_compile.compile(str(path), doraise=True)
    # The docstring, which Alembic reads back as the revision's message, is the message itself.
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=False) or ""
    assert docstring.split("\n\n")[0] == message
    revision = path.name.split("_")[1]
    history = run(hindsight_project, "--url", database_url, "history")
    assert history.returncode == 0, history.stdout + history.stderr
    assert revision in history.stdout
