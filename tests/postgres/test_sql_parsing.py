"""SQL read with PostgreSQL's own parser (pglast): what ends a transaction, V1's statements, counts by kind.

The unit tests pin the reading of tricky text (comments, strings, dollar quotes, several
statements in one string); the end-to-end ones check what the reading protects: a rehearsal
on the target never commits, and bootstrap names the line of what it cannot run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hindsight_migrate.errors import ExitCode
from hindsight_migrate.postgres.sqlscript import (
    ScriptSyntaxError,
    Statement,
    is_transaction_control,
    may_write_rows,
    split_statements,
    statement_kinds,
    transaction_control,
)
from tests.conftest import assert_failure, bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.projects import TINY_BASE, Rev, tiny_project, write_project

# -- transaction_control: what would end or escape the caller's transaction ---------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("COMMIT", "COMMIT"),
        ("-- end\nCOMMIT", "COMMIT"),
        ("/* a /* nested */ comment */ COMMIT", "COMMIT"),
        ("UPDATE t SET a = 1; COMMIT", "COMMIT"),
        ("UPDATE t SET a = 1;\n-- done\ncommit;", "COMMIT"),
        ("commit work", "COMMIT"),
        ("COMMIT AND CHAIN", "COMMIT"),
        ("end;", "END"),
        ("End Transaction", "END"),
        ("ROLLBACK", "ROLLBACK"),
        ("SELECT 1; rollback; CREATE TABLE t (id integer)", "ROLLBACK"),
        ("ABORT", "ABORT"),
        ("PREPARE TRANSACTION 'x'", "PREPARE TRANSACTION"),
        ("COMMIT PREPARED 'x'", "COMMIT PREPARED"),
        ("ROLLBACK PREPARED 'x'", "ROLLBACK PREPARED"),
        # The first one is named, the one that would end the transaction first.
        ("SELECT 1; ABORT; COMMIT", "ABORT"),
    ],
)
def test_statements_that_end_the_transaction_are_named(sql: str, expected: str) -> None:
    assert transaction_control(sql) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'COMMIT'",
        "INSERT INTO log (message) VALUES ('done; COMMIT')",
        "SELECT E'it\\'s; COMMIT'",
        'SELECT 1 AS "COMMIT"',
        "-- COMMIT\nSELECT 1",
        "SELECT 1 /* ; COMMIT; */",
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$",
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $body$ BEGIN ROLLBACK; END; $body$",
        # A SQL-standard body has semicolons and an END outside any quote.
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
        "SELECT CASE WHEN true THEN 1 END",
        # Inside the transaction these keep it: the server only warns about BEGIN, and a
        # savepoint is rolled back to or released within the same transaction.
        "BEGIN",
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SAVEPOINT s; UPDATE t SET a = 1; ROLLBACK TO SAVEPOINT s; RELEASE SAVEPOINT s",
        "rollback to s",
        # A PREPARE of a statement is not PREPARE TRANSACTION.
        "PREPARE q AS SELECT 1",
        # PL/pgSQL's COMMIT in a DO block or a procedure is refused by the server inside a
        # transaction block ("invalid transaction termination"): nothing can commit.
        "DO $$ BEGIN COMMIT; END $$",
        "CALL commits_inside()",
        "",
        "-- only a comment",
    ],
)
def test_text_that_keeps_the_transaction_is_not_transaction_control(sql: str) -> None:
    assert transaction_control(sql) is None


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # Placeholders are not SQL: PostgreSQL's lexer still splits the text exactly.
        ("UPDATE t SET a = %(a)s; COMMIT", "COMMIT"),
        ("UPDATE t SET a = %(a)s WHERE b = 'x; COMMIT'", None),
        ("SELECT %(n)s; -- COMMIT\nROLLBACK TO SAVEPOINT s", None),
        ("SELECT %(n)s; ROLLBACK WORK", "ROLLBACK"),
        ("SELECT %(n)s; end", "END"),
        ("SELECT %(n)s; PREPARE TRANSACTION %(gid)s", "PREPARE TRANSACTION"),
        ("SELECT %(n)s; COMMIT PREPARED 'x'", "COMMIT PREPARED"),
        ("SELECT CASE WHEN %(a)s THEN 1 END", None),
        # Not even PostgreSQL's lexer can read it: any of the words counts.
        ("SELECT 'unterminated; COMMIT", "COMMIT"),
        ("SELECT 'unterminated", None),
    ],
)
def test_text_the_parser_rejects_falls_back_to_the_lexer(sql: str, expected: str | None) -> None:
    assert transaction_control(sql) == expected


# -- split_statements: V1 -----------------------------------------------------------------


def test_statements_carry_the_line_of_their_first_sql_character() -> None:
    sql = (
        "-- header\n"  # 1
        "\n"  # 2
        "CREATE TABLE a (id integer);\n"  # 3
        "/* a block\n"  # 4
        "   comment */\n"  # 5
        "CREATE TABLE b (\n"  # 6
        "    id integer\n"  # 7
        ");  CREATE INDEX ix_b ON b (id);\n"  # 8
        "-- trailing comment\n"  # 9
        "INSERT INTO a VALUES (1)\n"  # 10, no semicolon at the end
    )

    statements = split_statements(sql)

    assert [(s.line, s.text) for s in statements] == [
        (3, "CREATE TABLE a (id integer)"),
        (6, "CREATE TABLE b (\n    id integer\n)"),
        (8, "CREATE INDEX ix_b ON b (id)"),
        (10, "INSERT INTO a VALUES (1)"),
    ]
    assert statements[1].first_line == "CREATE TABLE b ("


def test_lines_count_characters_not_bytes() -> None:
    # pglast reports PostgreSQL's byte offsets as character indexes; a line is a line either way.
    sql = "COMMENT ON SCHEMA public IS 'schéma — ünïcode';\n-- ½ ½ ½\nCREATE TABLE é (id integer);\n"

    statements = split_statements(sql)

    assert [(s.line, s.text) for s in statements] == [
        (1, "COMMENT ON SCHEMA public IS 'schéma — ünïcode'"),
        (3, "CREATE TABLE é (id integer)"),
    ]


def test_semicolons_hidden_in_quotes_comments_and_bodies_do_not_split() -> None:
    sql = (
        "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
        "BEGIN\n"
        "  RAISE NOTICE 'a; b';  -- ; here\n"
        "  RETURN NEW;\n"
        "END;\n"
        "$fn$;\n"
        "SELECT $$;$$, E'\\'; still a string', 'it''s; one', \"odd;name\" FROM (SELECT 1 AS \"odd;name\") s;\n"
        "/* outer /* inner; */ still a comment; */ CREATE TABLE t (id integer);\n"
        "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n"
    )

    statements = split_statements(sql)

    assert [s.line for s in statements] == [1, 7, 8, 9]
    assert statements[0].text.endswith("END;\n$fn$")
    assert statements[1].text.startswith("SELECT $$;$$, E'\\'; still a string'")
    assert statements[2].text == "CREATE TABLE t (id integer)"
    assert statements[3].text == "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END"


def test_empty_statements_and_comments_are_not_statements() -> None:
    assert split_statements("") == []
    assert split_statements("-- nothing\n/* at all */\n;;\n") == []
    assert split_statements(";;SELECT 1;;") == [Statement(text="SELECT 1", line=1)]


@pytest.mark.parametrize(
    ("sql", "line", "words"),
    [
        ("CREATE TABLE a (id integer);\n\nCREATE TABLE b (id integer,);\n", 3, 'syntax error at or near ")"'),
        ("SELECT 1;\nSELECT 'unterminated;\nSELECT 2;\n", 2, "unterminated quoted string"),
        ("SELECT 1;\n/* never closed\nSELECT 2;\n", 2, "unterminated /* comment"),
        ("SELECT 1;\nSELECT $x$ never closed $y$;\n", 2, "unterminated dollar-quoted string"),
        # At the end of the input: the last line that holds any SQL, not the blank one after it.
        ("SELECT 1;\nCREATE TABLE t (id integer\n\n", 2, "syntax error at end of input"),
        ("SELECT é;\nSELECT ö FROM ;\n", 2, 'syntax error at or near ";"'),
    ],
)
def test_sql_that_does_not_parse_names_its_line(sql: str, line: int, words: str) -> None:
    with pytest.raises(ScriptSyntaxError) as raised:
        split_statements(sql)

    assert raised.value.line == line
    assert str(raised.value).startswith(f"line {line}: {words}")


def test_a_long_unterminated_string_is_not_quoted_whole() -> None:
    sql = "SELECT 'never closed\n" + "CREATE TABLE t (id integer);\n" * 200

    with pytest.raises(ScriptSyntaxError) as raised:
        split_statements(sql)

    assert raised.value.line == 1
    assert len(str(raised.value)) < 200, str(raised.value)


@pytest.mark.parametrize(
    ("sql", "line", "command"),
    [
        ("\\connect other\nCREATE TABLE t (id integer);\n", 1, "\\connect"),
        ("CREATE TABLE t (id integer);\n  \\i more.sql\n", 2, "\\i"),
        ("CREATE TABLE t (id integer)\n\\gset\n", 2, "\\gset"),
    ],
)
def test_psql_meta_commands_are_refused_with_their_line(sql: str, line: int, command: str) -> None:
    with pytest.raises(ScriptSyntaxError) as raised:
        split_statements(sql)

    assert raised.value.line == line
    assert f"psql meta-command {command}" in str(raised.value)


def test_a_backslash_inside_a_string_is_not_a_meta_command() -> None:
    assert split_statements("SELECT '\\connect';\nSELECT $$\n\\i x$$;") == [
        Statement(text="SELECT '\\connect'", line=1),
        Statement(text="SELECT $$\n\\i x$$", line=2),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "BEGIN",
        "begin transaction",
        "START TRANSACTION",
        "COMMIT",
        "END",
        "ROLLBACK",
        "ABORT",
        "SAVEPOINT s",
        "RELEASE s",
        "ROLLBACK TO s",
        "PREPARE TRANSACTION 'x'",
        "COMMIT PREPARED 'x'",
        "ROLLBACK PREPARED 'x'",
    ],
)
def test_every_transaction_statement_controls_v1s_transaction(text: str) -> None:
    # bootstrap runs V1 and the stamp as one transaction: V1 may not manage it, not even with a savepoint.
    assert is_transaction_control(Statement(text=text, line=1))


@pytest.mark.parametrize("text", ["SELECT 'COMMIT'", "CREATE TABLE begin_log (id integer)", "PREPARE q AS SELECT 1"])
def test_other_statements_do_not_control_v1s_transaction(text: str) -> None:
    assert not is_transaction_control(Statement(text=text, line=1))


# -- statement_kinds ----------------------------------------------------------------------

OFFLINE_SQL = """\
BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> aaaa00000001

CREATE TABLE widgets (id integer, name text);

CREATE UNIQUE INDEX ix_widgets_name ON widgets (name);

CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_widgets_id ON widgets (id);

ALTER TABLE widgets ADD COLUMN price numeric;

ALTER TABLE widgets RENAME COLUMN price TO cost;

UPDATE widgets SET name = 'COMMIT; ALTER TABLE x' WHERE name IS NULL;

UPDATE widgets SET cost = 0;

COMMENT ON TABLE widgets IS 'things; sold';

CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;

DROP INDEX ix_widgets_id;

INSERT INTO alembic_version (version_num) VALUES ('aaaa00000001') RETURNING alembic_version.version_num;

UPDATE alembic_version SET version_num='bbbb00000002' WHERE alembic_version.version_num = 'aaaa00000001';

COMMIT;
"""


def test_statement_kinds_counts_in_order_without_bookkeeping() -> None:
    assert list(statement_kinds(OFFLINE_SQL, version_table="alembic_version").items()) == [
        ("CREATE TABLE", 1),
        ("CREATE INDEX", 2),
        ("ALTER TABLE", 2),
        ("UPDATE", 2),
        ("COMMENT ON", 1),
        ("CREATE FUNCTION", 1),
        ("DROP INDEX", 1),
    ]


def test_statement_kinds_of_what_the_parser_rejects_counts_what_it_can() -> None:
    # A revision's op.execute may hold SQL of a newer server, or a typo: the rest is still counted.
    sql = "CREATE TABLE t (id integer);\nALTER TABLE t FROBNICATE;\nCREATE INDEX ix ON t (id);\n"

    counted = statement_kinds(sql, version_table="alembic_version")
    assert counted == {"CREATE TABLE": 1, "ALTER TABLE": 1, "CREATE INDEX": 1}


def test_statement_kinds_of_nothing() -> None:
    assert statement_kinds("", version_table="alembic_version") == {}
    assert statement_kinds("BEGIN;\n-- nothing\nCOMMIT;\n", version_table="alembic_version") == {}


def test_the_bookkeeping_left_out_is_that_of_the_version_table_env_py_names() -> None:
    sql = (
        "CREATE TABLE tenant_versions (version_num VARCHAR(32) NOT NULL);\n"
        "CREATE TABLE t (id integer);\n"
        "INSERT INTO tenant_versions (version_num) VALUES ('a1');\n"
        "UPDATE tenant_versions SET version_num='a2' WHERE tenant_versions.version_num = 'a1';\n"
    )

    assert statement_kinds(sql, version_table="tenant_versions") == {"CREATE TABLE": 1}
    assert statement_kinds(sql, version_table="alembic_version") == {"CREATE TABLE": 2, "INSERT": 1, "UPDATE": 1}


# -- end to end ---------------------------------------------------------------------------

LEAVES_TRANSACTION = {
    "commit after a comment": (
        'op.execute("CREATE TABLE x (id integer)")\nop.execute("-- end\\nCOMMIT")',
        "COMMIT",
    ),
    "commit in a multi-statement string": ('op.execute("CREATE TABLE x (id integer); COMMIT")', "COMMIT"),
    "lowercase end after a statement": ('op.execute("CREATE TABLE x (id integer); end")', "END"),
    "rollback, then more work that would autocommit": (
        'op.execute("SELECT 1; ROLLBACK; CREATE TABLE x (id integer)")',
        "ROLLBACK",
    ),
    # BEGIN itself only earns a warning inside the rehearsal's transaction; the COMMIT after it is refused.
    "begin, then commit": (
        'op.execute("BEGIN")\nop.execute("CREATE TABLE x (id integer)")\nop.execute("COMMIT")',
        "COMMIT",
    ),
    # Would leave the rehearsal's work prepared, holding its locks, for anyone to commit later.
    "prepare transaction": (
        "op.execute(\"CREATE TABLE x (id integer); PREPARE TRANSACTION 'rehearsal'\")",
        "PREPARE TRANSACTION",
    ),
}


@pytest.mark.parametrize("upgrade, words", LEAVES_TRANSACTION.values(), ids=LEAVES_TRANSACTION.keys())
def test_rehearsal_on_the_target_refuses_sql_that_leaves_its_transaction(
    tmp_path: Path, database_url: str, upgrade: str, words: str
) -> None:
    ini = bootstrapped(tiny_project(tmp_path / "p", Rev("bbbb00000002", (TINY_BASE,), upgrade=upgrade)), database_url)
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--rehearse-on", "target")

    assert_failure(
        result, ExitCode.REFUSED, "Revision bbbb00000002 cannot be rehearsed on the target", f"it runs {words}"
    )
    assert dbstate.snapshot(database_url) == before
    assert "x" not in dbstate.tables(database_url)


def test_rehearsal_on_the_target_allows_begin_savepoints_and_quoted_commits(tmp_path: Path, database_url: str) -> None:
    upgrade = (
        'op.execute("BEGIN")\n'
        'op.execute("CREATE TABLE x (id integer, note text)")\n'
        "op.execute(\"SAVEPOINT s; INSERT INTO x VALUES (1, 'COMMIT'); ROLLBACK TO SAVEPOINT s; RELEASE s\")\n"
        'op.execute("-- COMMIT\\nINSERT INTO x VALUES (2, $$; COMMIT$$)")'
    )
    ini = bootstrapped(tiny_project(tmp_path / "p", Rev("bbbb00000002", (TINY_BASE,), upgrade=upgrade)), database_url)
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--rehearse-on", "target")

    assert result.exit_code == 0, result.output
    assert "the target itself, in one transaction that was rolled back" in flatten(result.stdout)
    assert "public.x" in result.stdout
    assert dbstate.snapshot(database_url) == before


def test_v1_with_a_commit_after_a_comment_is_refused_naming_its_line(tmp_path: Path, database_url: str) -> None:
    ini = write_project(
        tmp_path / "p",
        [Rev("aaaa00000001", ())],
        v1_sql="CREATE TABLE t (id integer);\n-- done\ncommit;\n",
    )

    result = invoke("-c", str(ini), "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, ExitCode.CONFIG, "line 3", "'commit' controls the transaction")
    assert dbstate.tables(database_url) == set()


def test_v1_with_a_psql_meta_command_is_refused_naming_its_line(tmp_path: Path, database_url: str) -> None:
    ini = write_project(
        tmp_path / "p",
        [Rev("aaaa00000001", ())],
        v1_sql="CREATE TABLE t (id integer);\n\\connect other\nCREATE TABLE u (id integer);\n",
    )

    result = invoke("-c", str(ini), "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, ExitCode.CONFIG, "v1.sql cannot be read as SQL: line 2", "psql meta-command \\connect")
    assert dbstate.tables(database_url) == set()


def test_v1_that_does_not_parse_is_refused_before_anything_runs(tmp_path: Path, database_url: str) -> None:
    ini = write_project(
        tmp_path / "p",
        [Rev("aaaa00000001", ())],
        v1_sql="CREATE TABLE t (id integer);\n\nCREATE TABLE u (id integer,);\n",
    )

    result = invoke("-c", str(ini), "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, ExitCode.CONFIG, "v1.sql cannot be read as SQL: line 3", 'syntax error at or near ")"')
    assert dbstate.tables(database_url) == set()


def test_v1_with_dollar_quotes_and_unicode_bootstraps(tmp_path: Path, database_url: str) -> None:
    v1 = (
        "-- ünïcode before the first statement\n"
        "CREATE TABLE things (id integer PRIMARY KEY, name text CHECK (name <> 'a;b'));\n"
        "CREATE FUNCTION things_touch() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
        "BEGIN\n  NEW.name := coalesce(NEW.name, 'é; COMMIT');\n  RETURN NEW;\nEND;\n$fn$;\n"
        "/* a /* nested */ comment; */\n"
        "CREATE TRIGGER things_touch BEFORE INSERT ON things FOR EACH ROW EXECUTE FUNCTION things_touch();\n"
    )
    ini = write_project(tmp_path / "p", [Rev("aaaa00000001", ())], v1_sql=v1)

    result = invoke("-c", str(ini), "--url", database_url, "bootstrap", "--yes")

    assert result.exit_code == 0, result.output
    assert dbstate.tables(database_url) == {"things", "alembic_version"}
    triggers = dbstate.query(database_url, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
    assert triggers == [("things_touch",)]


@pytest.mark.parametrize(
    ("statement", "may_write"),
    [
        ("CREATE TABLE t (id int)", False),
        ("ALTER TABLE t ADD COLUMN x int DEFAULT 0", False),
        ("COMMENT ON TABLE t IS 'SELECT; DELETE'", False),  # the words inside a string decide nothing
        ("-- UPDATE t\nCREATE INDEX i ON t (x)", False),
        ("LOCK TABLE t; ALTER TABLE t DROP COLUMN x", False),
        ("UPDATE t SET x = 1", True),
        ("DELETE FROM t", True),
        ("INSERT INTO t VALUES (1)", True),  # a trigger on t may update other rows
        ("SELECT backfill()", True),
        ("CREATE TABLE t2 AS SELECT * FROM t", True),
        ("CREATE TABLE t (id int); UPDATE t SET x = 1", True),
        ("DO $$ BEGIN UPDATE t SET x = 1; END $$", True),
        ("CALL purge()", True),
    ],
)
def test_a_statement_that_may_update_or_delete_rows_is_told_from_ddl(statement: str, may_write: bool) -> None:
    assert may_write_rows(statement) is may_write
