"""`hindsight-migrate lint`: Squawk over the SQL of a range of revisions; with a range, no database is needed.

Exit 0 with warnings only, 13 when a finding is an error (a rule in lint_error_rules), 2 for a range
that is not one.
"""

from __future__ import annotations

import json
from pathlib import Path

from hindsight_migrate.errors import ExitCode
from tests.conftest import assert_failure, invoke
from tests.harness.projects import Rev, write_project


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
