"""A reviewed plan file applies only to what was reviewed: the same revisions, the same database, at the
same revision; anything else is refused and changes nothing.

(Moved from guarantees/test_trust.py; status, check, lint and merge have their own files in reports/ and authoring/.)
"""

from __future__ import annotations

import json
from pathlib import Path

from hindsight_migrate.errors import ExitCode
from tests.conftest import assert_failure, invoke
from tests.harness import dbstate
from tests.harness.hindsight_chain import BASELINE, HEAD
from tests.harness.projects import Rev, write_revision


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
