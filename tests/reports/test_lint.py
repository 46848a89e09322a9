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


def test_the_version_table_is_not_linted_and_a_new_column_s_shape_is_a_style_note(tmp_path: Path) -> None:
    """Alembic's own ``alembic_version (version_num VARCHAR(32))`` is not the project's choice: no finding.
    A varchar in a CREATE TABLE is worded as what it is (not "changing the size"), marked as on a new object,
    and pointed at by its revision and statement."""
    ini = write_project(
        tmp_path / "p",
        [
            Rev("aaaa00000001", ()),
            Rev(
                "bbbb00000002",
                ("aaaa00000001",),
                upgrade='op.execute("CREATE TABLE notes (id bigint PRIMARY KEY, title varchar(200))")',
            ),
        ],
    )

    result = invoke("-c", str(ini), "lint", "base:heads", "--json")

    assert result.exit_code == 0, result.output
    findings = json.loads(result.stdout)["result"]["findings"]
    assert not [f for f in findings if "alembic_version" in f["statement"]], findings
    varchar = [f for f in findings if f["rule"] == "prefer-text-field"]
    assert len(varchar) == 1, findings
    assert varchar[0]["revision"] == "bbbb00000002" and varchar[0]["statement_number"] == 1, varchar
    assert varchar[0]["statement"].startswith("CREATE TABLE notes") and varchar[0]["on_new_object"] is True
    assert "changing its size later" in varchar[0]["message"] and "Changing the size" not in varchar[0]["message"]

    shown = invoke("-c", str(ini), "lint", "base:heads")
    assert shown.exit_code == 0, shown.output
    assert "alembic_version" not in shown.stdout and "Line" not in shown.stdout, shown.stdout
    assert "1 style note" in shown.stdout, shown.stdout


def test_sql_squawk_cannot_parse_is_counted_as_not_linted_never_an_error(tmp_path: Path) -> None:
    """Offline SQL that holds bind placeholders is the rendering's, not the project's: Squawk's parser fails on
    it (and lints nothing else in that file), so the revision is "not linted", once, and never an error."""
    ini = write_project(
        tmp_path / "p",
        [
            Rev("aaaa00000001", ()),
            Rev(
                "bbbb00000002",
                ("aaaa00000001",),
                upgrade='op.execute("INSERT INTO things (name) VALUES (%(name)s)")\n'
                'op.execute("INSERT INTO things (name) VALUES (%(other)s)")',
            ),
            Rev(
                "cccc00000003",
                ("bbbb00000002",),
                upgrade='op.execute("CREATE TABLE notes (id bigint PRIMARY KEY, title varchar(200))")',
            ),
        ],
    )

    result = invoke("-c", str(ini), "lint", "base:heads", "--json")

    assert result.exit_code == 0, result.output  # it was 13: Squawk calls a syntax error an error
    report = json.loads(result.stdout)["result"]
    assert [f["rule"] for f in report["findings"]] == ["prefer-text-field"], report  # the other revisions still are
    assert [n["revision"] for n in report["not_linted"]] == ["bbbb00000002"], report
    assert "bind parameters left as placeholders" in report["not_linted"][0]["reason"]

    shown = invoke("-c", str(ini), "lint", "base:heads")
    assert shown.exit_code == 0, shown.output
    said = " ".join(shown.stdout.split())
    assert "syntax-error" not in said, said
    assert "Not linted: 1 revision (bbbb00000002: its offline SQL holds bind parameters left as placeholders" in said
