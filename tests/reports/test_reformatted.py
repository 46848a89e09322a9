"""An applied revision reformatted, commented or given another docstring is not tampered; a change to its code is.

`up` records, with each file's SHA-256, a fingerprint of its code (the parsed module without docstrings,
comments or layout). `status` then says such a file is reformatted and exits 0, and `check` passes; a
change to what the code does (another column name) is still tampered (12) and fails check (13). A row
an earlier version wrote has no fingerprint: an edit there stays tampered, nothing says the code is the same.
"""

from __future__ import annotations

import json
from pathlib import Path

from hindsight_migrate.errors import ExitCode
from tests.conftest import flatten, invoke
from tests.harness import dbstate
from tests.harness.hindsight_chain import AFTER_BASELINE, at_head

# The rename revision as black or ruff format, an editor and a reviewer could leave it: other quotes, lines
# wrapped with a trailing comma, comments added and removed, the docstrings reworded. The code is the same.
REFORMATTED = '''\
"""Rename memory_blocks.memory_id to id (reworded after review).

Revision ID: af874b5e21e4
Revises: cd3fb603795c
Create Date: 2026-01-19 10:30:00.000000
"""
from collections.abc import Sequence

from alembic import op

revision: str = 'af874b5e21e4'  # the id, as Alembic reads it
down_revision: str | Sequence[str] | None = 'cd3fb603795c'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """A docstring reworded: it does not run."""
    op.alter_column(
        'memory_blocks',
        'memory_id',
        new_column_name='id',
    )


def downgrade() -> None:
    # the docstring is gone, a comment came
    op.alter_column(
        "memory_blocks", "id", new_column_name="memory_id",
    )
'''


def _revision_file(project: Path) -> Path:
    return next((project / "migrations" / "versions").glob(f"*_{AFTER_BASELINE}_*.py"))


def test_a_reformatted_revision_is_reported_and_is_not_tampered(hindsight_project: Path, database_url: str) -> None:
    ini = at_head(hindsight_project, database_url)
    path = _revision_file(hindsight_project)
    path.write_text(REFORMATTED)

    result = invoke("-c", ini, "--url", database_url, "status")
    assert result.exit_code == 0, result.output
    out = flatten(result.stdout)
    assert "up to date" in out
    assert f"Reformatted after it was applied: {AFTER_BASELINE}" in out and "the same code, not an edit" in out
    data = json.loads(invoke("-c", ini, "--url", database_url, "status", "--json").stdout)
    assert data["verdicts"] == [] and data["edited"] == []
    assert [r["revision"] for r in data["reformatted"]] == [AFTER_BASELINE]
    assert data["reformatted"][0]["code_fingerprint"].startswith("ast1:")

    checked = invoke("-c", ini, "--url", database_url, "check")
    assert checked.exit_code == 0, checked.output
    assert "1 reformatted, the same code" in flatten(checked.stdout)


def test_a_change_to_the_code_is_still_tampered(hindsight_project: Path, database_url: str) -> None:
    ini = at_head(hindsight_project, database_url)
    path = _revision_file(hindsight_project)
    # Reformatted as above, and one name changed: the column it renames to.
    path.write_text(REFORMATTED.replace("new_column_name='id'", "new_column_name='block_id'"))

    result = invoke("-c", ini, "--url", database_url, "status")
    assert result.exit_code == ExitCode.TAMPERED, result.output
    assert f"Edited after it was applied: {AFTER_BASELINE}" in flatten(result.stdout)
    data = json.loads(invoke("-c", ini, "--url", database_url, "status", "--json").stdout)
    assert [e["revision"] for e in data["edited"]] == [AFTER_BASELINE] and data["reformatted"] == []

    checked = invoke("-c", ini, "--url", database_url, "check")
    assert checked.exit_code == ExitCode.CHECK_FAILED, checked.output
    assert "edited after they were applied" in flatten(checked.stdout)


def test_a_checksum_recorded_without_a_fingerprint_stays_strict(hindsight_project: Path, database_url: str) -> None:
    """Rows an earlier version wrote have no fingerprint: the file's SHA-256 alone decides, as it did."""
    ini = at_head(hindsight_project, database_url)
    dbstate.execute(database_url, "UPDATE hindsight_migrate.applied_revisions SET code_fingerprint = NULL")
    _revision_file(hindsight_project).write_text(REFORMATTED)

    result = invoke("-c", ini, "--url", database_url, "status")
    assert result.exit_code == ExitCode.TAMPERED, result.output
    assert f"Edited after it was applied: {AFTER_BASELINE}" in flatten(result.stdout)


def test_a_table_an_earlier_version_made_gains_the_fingerprint_column(
    hindsight_project: Path, database_url: str
) -> None:
    """applied_revisions without code_fingerprint (an earlier version's) is read as it is, and the next apply
    adds the column in place; the revisions it then applies are fingerprinted."""
    ini = str(hindsight_project / "alembic.ini")
    assert invoke("-c", ini, "--url", database_url, "up", AFTER_BASELINE, "--yes", "--no-rehearsal").exit_code == 0
    dbstate.execute(database_url, "ALTER TABLE hindsight_migrate.applied_revisions DROP COLUMN code_fingerprint")
    status = invoke("-c", ini, "--url", database_url, "status")
    assert status.exit_code == ExitCode.BEHIND, status.output

    assert invoke("-c", ini, "--url", database_url, "up", "--yes", "--no-rehearsal").exit_code == 0
    rows = dict(
        dbstate.query(database_url, "SELECT revision, code_fingerprint FROM hindsight_migrate.applied_revisions")
    )
    before = {"cd3fb603795c", AFTER_BASELINE}  # applied before the column was there: never fingerprinted
    assert all(rows[revision] is None for revision in before)
    later = {revision: value for revision, value in rows.items() if revision not in before}
    assert later and all(str(value).startswith("ast1:") for value in later.values()), later
