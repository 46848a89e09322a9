"""Trust between code and database: status, check, checksums, lint, merge and reviewed plan files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hindsight_migrate.errors import ExitCode
from tests.conftest import REPO, assert_failure, flatten, invoke
from tests.harness import dbstate
from tests.harness.hindsight_chain import BASELINE, HEAD
from tests.harness.projects import Rev, write_project, write_revision


def at_head(project: Path, url: str) -> str:
    ini = str(project / "alembic.ini")
    result = invoke("-c", ini, "--url", url, "up", "--yes", "--no-rehearsal")
    assert result.exit_code == 0, result.output
    return ini


def test_status_is_zero_at_head_and_ten_when_behind(hindsight_project: Path, database_url: str) -> None:
    ini = at_head(hindsight_project, database_url)

    up_to_date = invoke("-c", ini, "--url", database_url, "status")
    assert up_to_date.exit_code == 0, up_to_date.output
    assert "up to date" in up_to_date.stdout
    data = json.loads(invoke("-c", ini, "--url", database_url, "status", "--json").stdout)
    assert data["current"] == [HEAD] and data["pending"] == [] and data["verdicts"] == []
    assert data["last_apply"]["outcome"] == "succeeded"

    assert invoke("-c", ini, "--url", database_url, "down", "--steps", "2", "--yes").exit_code == 0
    behind = invoke("-c", ini, "--url", database_url, "status")
    assert behind.exit_code == ExitCode.BEHIND, behind.output
    assert "behind" in behind.stdout
    data = json.loads(invoke("-c", ini, "--url", database_url, "status", "--json").stdout)
    assert data["pending"] == ["0823327d9dc6", HEAD]


def test_edited_applied_revision_is_reported_by_status_and_fails_check(
    hindsight_project: Path, database_url: str
) -> None:
    ini = at_head(hindsight_project, database_url)
    edited = next((hindsight_project / "migrations" / "versions").glob("*_af874b5e21e4_*.py"))
    edited.write_text(edited.read_text() + "\n# a quiet fix, after the fact\n")

    result = invoke("-c", ini, "--url", database_url, "status")
    assert result.exit_code == ExitCode.TAMPERED, result.output
    assert "Edited after it was applied: af874b5e21e4" in flatten(result.stdout)
    data = json.loads(invoke("-c", ini, "--url", database_url, "status", "--json").stdout)
    assert [e["revision"] for e in data["edited"]] == ["af874b5e21e4"]

    checked = invoke("-c", ini, "--url", database_url, "check")
    assert checked.exit_code == ExitCode.CHECK_FAILED, checked.output
    assert "edited after they were applied" in flatten(checked.stdout) and "af874b5e21e4" in checked.stdout


def test_changed_line_endings_are_not_an_edit(hindsight_project: Path, database_url: str) -> None:
    ini = at_head(hindsight_project, database_url)
    path = next((hindsight_project / "migrations" / "versions").glob("*_af874b5e21e4_*.py"))
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    result = invoke("-c", ini, "--url", database_url, "status")
    assert result.exit_code == 0, result.output


def test_database_at_an_unknown_revision_is_diverged(hindsight_project: Path, database_url: str) -> None:
    ini = at_head(hindsight_project, database_url)
    dbstate.query(database_url, "SELECT 1")
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'deadbeef0000'"))
    engine.dispose()

    result = invoke("-c", ini, "--url", database_url, "status")
    assert result.exit_code == ExitCode.DIVERGED, result.output
    assert "deadbeef0000" in result.stdout


def test_model_change_without_a_revision_fails_check(hindsight_project: Path, database_url: str) -> None:
    """Run as a process: the edited models must be imported fresh."""
    models = hindsight_project / "migrations" / "models.py"
    models.write_text(
        models.read_text().replace(
            "    display_name: Mapped[str | None] = mapped_column(String(200))\n",
            "    display_name: Mapped[str | None] = mapped_column(String(200))\n"
            "    nickname: Mapped[str | None] = mapped_column(String(50))\n",
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "hindsight_migrate", "--url", database_url, "check", "--json"],
        cwd=hindsight_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == ExitCode.CHECK_FAILED, result.stdout + result.stderr
    report = json.loads(result.stdout)
    models_problem = next(p for p in report["problems"] if p["kind"] == "models")
    assert any("users nickname" in detail for detail in models_problem["details"])
    assert dbstate.scratch_databases_of(database_url) == []


def test_check_passes_on_a_clean_project(hindsight_project: Path, database_url: str) -> None:
    ini = at_head(hindsight_project, database_url)
    result = invoke("-c", ini, "--url", database_url, "check")
    assert result.exit_code == 0, result.output
    assert "check passed" in result.stdout


def test_two_heads_fail_check_and_merge_fixes_it(tmp_path: Path, database_url: str) -> None:
    ini = write_project(
        tmp_path / "p",
        [
            Rev("aaaa00000001", ()),
            Rev(
                "bbbb00000002",
                ("aaaa00000001",),
                upgrade='op.execute("CREATE TABLE b (i int)")',
                downgrade='op.execute("DROP TABLE b")',
            ),
            Rev(
                "cccc00000003",
                ("aaaa00000001",),
                upgrade='op.execute("CREATE TABLE c (i int)")',
                downgrade='op.execute("DROP TABLE c")',
            ),
        ],
    )
    # The scaffold's template for new files.
    (ini.parent / "migrations" / "script.py.mako").write_text(
        (REPO / "migrations" / "script.py.mako").read_text()
    )

    checked = invoke("-c", str(ini), "--url", database_url, "check")
    assert checked.exit_code == ExitCode.CHECK_FAILED, checked.output
    assert "2 heads: bbbb00000002, cccc00000003" in flatten(checked.stdout)
    assert "hindsight-migrate merge" in checked.stdout

    merged = invoke("-c", str(ini), "merge", "-m", "join b and c")
    assert merged.exit_code == 0, merged.output
    history = json.loads(invoke("-c", str(ini), "history", "--offline", "--json").stdout)
    assert len(history["heads"]) == 1
    merge = next(e for e in history["entries"] if e["info"]["revision"] == history["heads"][0])
    assert sorted(merge["info"]["parents"]) == ["bbbb00000002", "cccc00000003"]
    assert merge["info"]["message"] == "join b and c"

    again = invoke("-c", str(ini), "merge")
    assert_failure(again, ExitCode.REFUSED, "nothing to merge")


def test_lint_a_range_exits_by_severity(tmp_path: Path) -> None:
    ini = write_project(
        tmp_path / "p",
        [
            Rev("aaaa00000001", ()),
            Rev(
                "bbbb00000002",
                ("aaaa00000001",),
                upgrade=(
                    'import sqlalchemy as sa\nop.add_column("things", sa.Column("x", sa.Integer(), nullable=False))'
                ),
            ),
        ],
    )
    plain = invoke("-c", str(ini), "lint", "base:heads", "--json")
    assert plain.exit_code == 0, plain.output
    report = json.loads(plain.stdout)
    assert report["revisions"] == ["aaaa00000001", "bbbb00000002"]
    assert any(f["rule"] == "adding-required-field" and f["level"] == "warning" for f in report["result"]["findings"])

    ini.write_text(ini.read_text() + "lint_error_rules = adding-required-field\n")
    strict = invoke("-c", str(ini), "lint", "all")
    assert strict.exit_code == ExitCode.CHECK_FAILED, strict.output
    assert "adding-required-field" in strict.stdout

    bad = invoke("-c", str(ini), "lint", "nonsense")
    assert_failure(bad, ExitCode.USAGE, "is not a range")


def test_saved_plan_applies_when_nothing_changed(hindsight_project: Path, database_url: str, tmp_path: Path) -> None:
    ini = str(hindsight_project / "alembic.ini")
    assert invoke("-c", ini, "--url", database_url, "bootstrap", "--yes").exit_code == 0
    plan = tmp_path / "plan.json"

    reviewed = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--plan-out", str(plan))
    assert reviewed.exit_code == 0, reviewed.output
    saved = json.loads(plan.read_text())
    assert saved["plan"]["current"] == [BASELINE]
    assert len(saved["plan"]["revisions"]) == 7
    assert saved["plan"]["rehearsal"]["diff"], "the reviewed plan carries its measured diff"
    assert "s3cret" not in plan.read_text()
    assert dbstate.alembic_version(database_url) == [BASELINE]

    applied = invoke("-c", ini, "--url", database_url, "up", "--plan", str(plan), "--yes")
    assert applied.exit_code == 0, applied.output
    assert "still holds" in applied.output
    assert dbstate.alembic_version(database_url) == [HEAD]


def test_saved_plan_is_refused_after_a_new_revision_or_when_the_database_moved(
    hindsight_project: Path, database_url: str, tmp_path: Path
) -> None:
    ini = str(hindsight_project / "alembic.ini")
    assert invoke("-c", ini, "--url", database_url, "bootstrap", "--yes").exit_code == 0
    plan = tmp_path / "plan.json"
    assert (
        invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--no-rehearsal", "--plan-out", str(plan)).exit_code
        == 0
    )

    write_revision(
        hindsight_project / "migrations" / "versions",
        Rev(
            "eeee00000009",
            (HEAD,),
            upgrade='op.execute("CREATE TABLE later (i int)")',
            downgrade='op.execute("DROP TABLE later")',
        ),
    )
    before = dbstate.snapshot(database_url)
    new_file = invoke("-c", ini, "--url", database_url, "up", "--plan", str(plan), "--yes")
    assert_failure(new_file, ExitCode.REFUSED, "changed since this plan was reviewed", "new: eeee00000009")
    assert dbstate.snapshot(database_url) == before

    (hindsight_project / "migrations" / "versions" / "eeee00000009.py").unlink()
    assert invoke("-c", ini, "--url", database_url, "up", "af874b5e", "--yes", "--no-rehearsal").exit_code == 0
    moved = invoke("-c", ini, "--url", database_url, "up", "--plan", str(plan), "--yes")
    assert_failure(moved, ExitCode.REFUSED, "current revision: was cd3fb603795c, is af874b5e21e4")
    assert dbstate.alembic_version(database_url) == ["af874b5e21e4"]


def test_saved_plan_for_another_database_is_refused(
    hindsight_project: Path, database_url: str, make_database: object, tmp_path: Path
) -> None:
    ini = str(hindsight_project / "alembic.ini")
    other = make_database("other")  # type: ignore[operator]
    for url in (database_url, other):
        assert invoke("-c", ini, "--url", url, "bootstrap", "--yes").exit_code == 0
    plan = tmp_path / "plan.json"
    assert (
        invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--no-rehearsal", "--plan-out", str(plan)).exit_code
        == 0
    )

    result = invoke("-c", ini, "--url", other, "up", "--plan", str(plan), "--yes")
    assert_failure(result, ExitCode.REFUSED, "database: the plan was made for")
    assert dbstate.alembic_version(other) == [BASELINE]

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert_failure(
        invoke("-c", ini, "--url", other, "up", "--plan", str(broken), "--yes"), ExitCode.USAGE, "not a plan file"
    )
