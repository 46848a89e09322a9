"""Lint that fits the plan: Squawk's lock warnings on a table the same plan creates are not shown.

A table created by an earlier revision of the plan (or earlier in the same revision) has no
traffic yet, so Squawk's warnings about blocking its readers and writers are noise there; the
same statements on a table that exists already keep them. Each rule's advice is shown once.
The unit tests run the real Squawk on SQL strings; the last ones go through ``up --dry-run``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hindsight_migrate.config import ToolSettings
from hindsight_migrate.review.lint import RULES_ABOUT_TRAFFIC, LintResult, lint_sql
from tests.conftest import bootstrapped, flatten, invoke
from tests.harness.projects import TINY_BASE, Rev, tiny_project

SETTINGS = ToolSettings()  # the defaults: prefer-robust-stmts and the timeout rules are not run

ADD_AND_INDEX = "ALTER TABLE {table} ADD COLUMN c int NOT NULL DEFAULT 0;\nCREATE INDEX ix_c ON {table} (c);\n"
# Lock rules fired by statements on an existing table; every one of them is in RULES_ABOUT_TRAFFIC.
LOCKING = """\
CREATE INDEX ix_a ON {table} (id);
ALTER TABLE {table} ADD CONSTRAINT uq_a UNIQUE (id);
ALTER TABLE {table} ADD CONSTRAINT fk_a FOREIGN KEY (id) REFERENCES things (id);
ALTER TABLE {table} ALTER COLUMN id TYPE bigint;
ALTER TABLE {table} ALTER COLUMN id SET NOT NULL;
ALTER TABLE {table} RENAME COLUMN id TO ident;
ALTER TABLE {table} DROP COLUMN ident;
"""


def rules_on(result: LintResult, revision: str | None = None) -> list[str]:
    return [f.rule for f in result.findings if revision is None or f.revision == revision]


def traffic_rules(result: LintResult) -> list[str]:
    return [f.rule for f in result.findings if f.rule in RULES_ABOUT_TRAFFIC]


# -- lint_sql: which findings are dropped -----------------------------------------------------


def test_a_table_an_earlier_revision_creates_gets_no_lock_warnings() -> None:
    result = lint_sql({"a": "CREATE TABLE t (id bigint);\n", "b": ADD_AND_INDEX.format(table="t")}, SETTINGS)

    assert result.ran, result.note
    assert traffic_rules(result) == [], result.findings
    assert result.dropped_on_new_tables == 1  # require-concurrent-index-creation on CREATE INDEX ix_c ON t
    # What still matters on a new table stays: int is 32 bits however new the table is.
    assert rules_on(result, "b") == ["prefer-bigint-over-int"]


def test_the_same_statements_on_an_existing_table_keep_their_warnings() -> None:
    result = lint_sql({"a": "CREATE TABLE t (id bigint);\n", "b": ADD_AND_INDEX.format(table="things")}, SETTINGS)

    assert traffic_rules(result) == ["require-concurrent-index-creation"], result.findings
    assert result.dropped_on_new_tables == 0
    finding = next(f for f in result.findings if f.rule == "require-concurrent-index-creation")
    assert (finding.revision, finding.line, finding.statement) == ("b", 2, "CREATE INDEX ix_c ON things (c);")


def test_every_lock_rule_is_dropped_on_a_new_table_and_kept_on_an_old_one() -> None:
    old = lint_sql({"a": "CREATE TABLE t (id bigint);\n", "b": LOCKING.format(table="things")}, SETTINGS)
    new = lint_sql({"a": "CREATE TABLE t (id bigint);\n", "b": LOCKING.format(table="t")}, SETTINGS)

    kept = set(traffic_rules(old))
    assert kept >= {
        "require-concurrent-index-creation",
        "disallowed-unique-constraint",
        "constraint-missing-not-valid",
        "adding-foreign-key-constraint",
        "changing-column-type",
        "adding-not-nullable-field",
        "renaming-column",
        "ban-drop-column",
    }, old.findings
    assert traffic_rules(new) == [], new.findings
    assert new.dropped_on_new_tables == len(traffic_rules(old))


def test_a_table_created_earlier_in_the_same_revision_counts_too() -> None:
    sql = "CREATE TABLE t (id bigint);\n" + ADD_AND_INDEX.format(table="t") + "CREATE INDEX ix_n ON things (name);\n"

    result = lint_sql({"a": sql}, SETTINGS)

    # Only the index on `things` is left: a statement after the CREATE is about a new table.
    index_warnings = [f for f in result.findings if f.rule == "require-concurrent-index-creation"]
    assert [f.statement for f in index_warnings] == ["CREATE INDEX ix_n ON things (name);"], result.findings
    assert result.dropped_on_new_tables == 1


def test_a_table_created_after_the_statement_does_not_count() -> None:
    # The index comes first: then `t` is a table that exists already (and has traffic).
    result = lint_sql(
        {"a": "CREATE INDEX ix ON t (id);\n", "b": "DROP TABLE t;\nCREATE TABLE t (id bigint);\n"}, SETTINGS
    )

    assert traffic_rules(result) == ["require-concurrent-index-creation", "ban-drop-table"], result.findings
    assert result.dropped_on_new_tables == 0


def test_public_and_unqualified_names_are_the_same_table_and_other_schemas_are_not() -> None:
    result = lint_sql(
        {
            "a": "CREATE TABLE public.t (id bigint);\nCREATE TABLE u (id bigint);\n",
            "b": (
                "CREATE INDEX ix_t ON t (id);\n"
                "CREATE INDEX ix_u ON public.u (id);\n"
                "CREATE INDEX ix_o ON other.t (id);\n"
            ),
        },
        SETTINGS,
    )

    index_warnings = [f.statement for f in result.findings if f.rule == "require-concurrent-index-creation"]
    assert index_warnings == ["CREATE INDEX ix_o ON other.t (id);"], result.findings
    assert result.dropped_on_new_tables == 2


def test_sql_pglast_cannot_parse_keeps_its_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Squawk's parser is not PostgreSQL's: it reads some SQL that pglast refuses (syntax of a
    # newer PostgreSQL than pglast knows, such as 19's REPACK). Which SQL that is changes with
    # each pglast release, so the refusal is made here: then nothing shows the index is on the
    # new table, and its warning stays.
    import pglast
    from pglast.parser import ParseError

    def refuse(sql: str) -> None:
        raise ParseError("syntax error (refused by the test)", 0)

    monkeypatch.setattr(pglast, "parse_sql", refuse)

    result = lint_sql({"a": "CREATE TABLE t (id bigint);\n", "b": "CREATE INDEX ix ON t (id);\n"}, SETTINGS)

    assert traffic_rules(result) == ["require-concurrent-index-creation"], result.findings
    assert result.dropped_on_new_tables == 0


def test_after_sql_that_cannot_be_read_no_table_counts_as_new() -> None:
    # Revision b could have dropped `t` and renamed an old table to `t`: c's index stays.
    # (Squawk stops at b's syntax error but still lints c; pglast refuses b as PostgreSQL would.)
    result = lint_sql(
        {"a": "CREATE TABLE t (id bigint);\n", "b": "SELEC oops;\n", "c": "CREATE INDEX ix ON t (id);\n"},
        SETTINGS,
    )

    assert traffic_rules(result) == ["require-concurrent-index-creation"], result.findings
    assert result.dropped_on_new_tables == 0


def test_a_new_table_that_takes_an_old_tables_name_gets_its_traffic() -> None:
    # The swap: the new table is renamed to the old one's name, so the old one's clients use it.
    swap = (
        "ALTER TABLE things RENAME TO things_old;\nALTER TABLE t RENAME TO things;\nCREATE INDEX ix ON things (id);\n"
    )

    result = lint_sql({"a": "CREATE TABLE t (id bigint);\n", "b": swap}, SETTINGS)

    assert "require-concurrent-index-creation" in traffic_rules(result), result.findings
    # Renaming the old table may break its clients; renaming the new one breaks nobody.
    renames = [f.statement for f in result.findings if f.rule == "renaming-table"]
    assert renames == ["ALTER TABLE things RENAME TO things_old;"], result.findings


def test_create_if_not_exists_and_a_partition_of_an_old_table_are_not_new() -> None:
    result = lint_sql(
        {
            "a": "CREATE TABLE IF NOT EXISTS t (id bigint);\nCREATE TABLE p1 PARTITION OF things FOR VALUES IN (1);\n",
            "b": "CREATE INDEX ix_t ON t (id);\nCREATE INDEX ix_p ON p1 (id);\n",
        },
        SETTINGS,
    )

    assert traffic_rules(result) == ["require-concurrent-index-creation"] * 2, result.findings
    assert result.dropped_on_new_tables == 0


def test_lock_rules_promoted_to_errors_are_dropped_on_new_tables_too() -> None:
    settings = ToolSettings(lint_error_rules=("require-concurrent-index-creation",))

    result = lint_sql({"a": "CREATE TABLE t (id bigint);\nCREATE INDEX ix ON t (id);\n"}, settings)

    assert result.errors == ()
    assert result.dropped_on_new_tables == 1


def test_advice_is_given_once_per_rule() -> None:
    result = lint_sql(
        {"a": "CREATE TABLE t (a int, b int);\n", "b": "CREATE TABLE u (c int);\n"},
        SETTINGS,
    )

    assert rules_on(result).count("prefer-bigint-over-int") == 3, result.findings
    advice = result.advice_by_rule()
    assert list(advice) == ["prefer-bigint-over-int"]
    assert advice["prefer-bigint-over-int"] == next(f.advice for f in result.findings if f.advice)


# -- through the CLI --------------------------------------------------------------------------

NEW_TABLE = """\
import sqlalchemy as sa
op.create_table("gadgets", sa.Column("id", sa.BigInteger(), primary_key=True), sa.Column("size", sa.Integer()))
op.create_index("ix_gadgets_size", "gadgets", ["size"])"""

ON_BOTH_TABLES = """\
import sqlalchemy as sa
op.add_column("gadgets", sa.Column("weight", sa.Integer(), nullable=False, server_default="0"))
op.create_index("ix_gadgets_weight", "gadgets", ["weight"])
op.add_column("things", sa.Column("weight", sa.Integer()))
op.create_index("ix_things_weight", "things", ["weight"])"""


def advice_for(rule: str, sql: str) -> str:
    """Squawk's own advice for ``rule``, taken from a lint of ``sql`` (so no Squawk wording is copied here)."""
    return lint_sql({"x": sql}, SETTINGS).advice_by_rule()[rule]


def rows_of(output: str, rule: str) -> list[str]:
    return [line for line in output.splitlines() if f" {rule} " in line]


def test_dry_run_shows_lock_warnings_on_existing_tables_only(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade=NEW_TABLE),
            Rev("cccc00000003", ("bbbb00000002",), upgrade=ON_BOTH_TABLES),
        ),
        database_url,
    )

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--details")

    assert result.exit_code == 0, result.output
    out = result.stdout
    # One row for the rule: the index on `things` (cccc's 4th statement), not the two on `gadgets`.
    index_rows = rows_of(out, "require-concurrent-index-creation")
    assert len(index_rows) == 1, out
    level, revision, statement, rule = (cell.strip() for cell in index_rows[0].split("│")[1:5])
    assert (level, revision, statement, rule) == (
        "warning",
        "cccc00000003",
        "4",
        "require-concurrent-index-creation",
    ), out
    assert "CREATE INDEX ix_things_weight ON things (weight)" in out and "CREATE INDEX ix_gadgets_size" in out
    assert (
        "2 warnings about locks or existing clients, on tables created earlier in these revisions, are not shown"
        in flatten(out)
    ), out
    # The shape of new columns is style, one row per rule with its count: the three int columns, in both revisions.
    bigint_rows = rows_of(out, "prefer-bigint-over-int")
    assert len(bigint_rows) == 1 and "style, 3 times" in bigint_rows[0], out
    # Each rule's advice once, under the table, not in every row.
    flat = flatten(out)
    for rule, sample in (
        ("require-concurrent-index-creation", "CREATE INDEX i ON things (name);"),
        ("prefer-bigint-over-int", "ALTER TABLE things ADD COLUMN n int;"),
    ):
        advice = advice_for(rule, sample)
        assert flat.count(flatten(advice)) == 1, (advice, out)

    # Without --details: the warning points at the revision and the statement the SQL below shows, and the
    # style notes are one line with their count.
    brief = flatten(invoke("-c", ini, "--url", database_url, "up", "--dry-run").stdout)
    assert "lint: 0 errors, 1 warning, 4 style notes." in brief, brief
    assert re.search(
        r"▲ warning require-concurrent-index-creation: .+ \(cccc00000003 statement 4: CREATE INDEX ix_things_weight",
        brief,
    ), brief
    assert "● style 4 notes on the shape of what this plan creates: prefer-bigint-over-int 3, prefer-identity 1" in (
        brief
    ), brief
    assert "Line" not in brief and "line " not in brief.replace("line per", ""), brief


def test_a_warning_in_more_revisions_than_shown_one_by_one_is_folded(tmp_path: Path, database_url: str) -> None:
    revisions = [f"bbbb0000000{n}" for n in range(2, 7)]
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            *(
                Rev(revision, (parent,), upgrade=f'op.execute("ALTER TABLE things ADD COLUMN c{n} int")')
                for n, (revision, parent) in enumerate(zip(revisions, [TINY_BASE, *revisions[:-1]], strict=True))
            ),
        ),
        database_url,
    )

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--details")

    assert result.exit_code == 0, result.output
    rows = rows_of(result.stdout, "prefer-bigint-over-int")
    assert len(rows) == 1, result.stdout
    assert "style, 5 times" in rows[0] and "bbbb00000002, bbbb00000003, bbbb00000004 and 2 more" in rows[0], rows
    assert "not shown" not in result.stdout  # nothing here is on a new table


def test_a_missing_pglast_is_an_error_not_nothing_found() -> None:
    """pglast is a dependency: the guardrails built on it fail loudly without it, never "no new table, no
    privilege needed" (which would let lint findings and a plan's privilege gaps through). The modules that
    hold them import pglast at the top, so without it they do not import at all."""
    code = (
        "import sys\n"
        "sys.modules['pglast'] = None\n"
        "for name in ('hindsight_migrate.review.lint', 'hindsight_migrate.review.rehearsal.privileges'):\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ImportError:\n"
        "        continue\n"
        "    raise SystemExit(f'{name} imported without pglast')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
