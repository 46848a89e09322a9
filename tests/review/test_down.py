"""`hindsight-migrate down`: the same review as up, with the data that would be lost."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from hindsight_migrate.cli import prompts
from tests.conftest import assert_failure, flatten, invoke
from tests.harness import dbstate
from tests.harness.hindsight_chain import BASELINE, HEAD
from tests.harness.projects import Rev, write_project


def reflected_schema(url: str) -> dict[str, object]:
    """The schema as SQLAlchemy's Inspector sees it: tables, columns, indexes, keys."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        inspector = inspect(engine)
        schema: dict[str, object] = {}
        for table in sorted(inspector.get_table_names()):
            if table == "alembic_version":
                continue
            schema[table] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                    for c in inspector.get_columns(table)
                ],
                "indexes": sorted((i["name"] or "", tuple(i["column_names"])) for i in inspector.get_indexes(table)),
                "pk": inspector.get_pk_constraint(table),
                "fks": sorted(str(fk) for fk in inspector.get_foreign_keys(table)),
                "checks": sorted(str(c) for c in inspector.get_check_constraints(table)),
            }
        return schema
    finally:
        engine.dispose()


def scratch_databases(url: str) -> list[str]:
    """This test's database's scratch databases still on the server (other tests have their own)."""
    return dbstate.scratch_databases_of(url)


@dataclass(frozen=True)
class AtHead:
    ini: str
    baseline_schema: dict[str, object]  # reflected right after bootstrap


@pytest.fixture
def head(hindsight_project: Path, database_url: str) -> AtHead:
    """The Hindsight chain bootstrapped and upgraded to head, with a few rows."""
    ini = str(hindsight_project / "alembic.ini")
    assert invoke("-c", ini, "--url", database_url, "bootstrap", "--yes").exit_code == 0
    dbstate.query(database_url, "SELECT 1")
    baseline_schema = reflected_schema(database_url)
    result = invoke("-c", ini, "--url", database_url, "up", "--yes")
    assert result.exit_code == 0, result.output
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO agents (name, slug) VALUES ('Ada', 'ada'), ('Grace', 'grace'), ('Linus', 'linus')"
        )
        connection.exec_driver_sql("INSERT INTO users (email) VALUES ('a@example.org'), ('b@example.org')")
    engine.dispose()
    return AtHead(ini, baseline_schema)


def test_down_to_baseline_restores_the_baseline_schema_and_reports_data_loss(head: AtHead, database_url: str) -> None:
    plan = invoke("-c", head.ini, "--url", database_url, "down", "--to", BASELINE, "--dry-run")

    assert plan.exit_code == 0, plan.output
    out = flatten(plan.stdout)
    assert "Data loss" in out
    # Every dropped table and column, with its live row count; a rename is not a loss.
    assert "table public.users 2" in out
    assert "column public.agents.slug 3" in out
    assert "column public.memory_blocks.owner_id 0" in out
    assert "public.memory_blocks.id" not in out.split("Data loss", 1)[1].split("Rehearsal", 1)[0]
    # Downgrades are not linted, and the count line says so rather than "0 errors, 0 warnings".
    assert "lint: not run (downgrades are not linted: dropping is what they are for)." in out, out
    assert "lint: 0 errors" not in out
    assert dbstate.alembic_version(database_url) == [HEAD]

    result = invoke("-c", head.ini, "--url", database_url, "down", "--to", BASELINE, "--yes")

    assert result.exit_code == 0, result.output
    assert dbstate.alembic_version(database_url) == [BASELINE]
    assert reflected_schema(database_url) == head.baseline_schema
    rows = dbstate.query(
        database_url,
        "SELECT command, from_revisions, to_revisions, outcome FROM hindsight_migrate.apply_log ORDER BY id",
    )
    assert rows[-1] == ("down", HEAD, BASELINE, "succeeded")
    assert scratch_databases(database_url) == []


def test_down_one_step_reverts_exactly_one_revision(head: AtHead, database_url: str) -> None:
    result = invoke("-c", head.ini, "--url", database_url, "down", "--yes")

    assert result.exit_code == 0, result.output
    assert dbstate.alembic_version(database_url) == ["0823327d9dc6"]
    token_type = dbstate.query(
        database_url,
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'agent_transcripts' "
        "AND column_name = 'token_count'",
    )
    assert token_type == [("integer",)]
    assert "slug" in {
        c
        for (c,) in dbstate.query(
            database_url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'agents'"
        )
    }


def test_down_steps_and_relative_targets(head: AtHead, database_url: str) -> None:
    assert invoke("-c", head.ini, "--url", database_url, "down", "--steps", "2", "--yes").exit_code == 0
    assert dbstate.alembic_version(database_url) == ["320ade7a869e"]
    # From a merge, counting steps back has two answers: the tool asks for a revision instead.
    ambiguous = invoke("-c", head.ini, "--url", database_url, "down", "--to", "-1", "--yes")
    assert_failure(ambiguous, 5, "'-1' is ambiguous from 320ade7a869e", "Name the revision")
    # Back to one branch's revision: as with Alembic, only the merge is reverted; both branches stay applied.
    plan = invoke("-c", head.ini, "--url", database_url, "down", "--to", "d528e1c6", "--dry-run")
    assert "320ade7a869e → 2345964a88e0, d528e1c62d2e (target d528e1c6)" in flatten(plan.stdout), plan.output
    assert invoke("-c", head.ini, "--url", database_url, "down", "--to", "d528e1c6", "--yes").exit_code == 0
    assert dbstate.alembic_version(database_url) == ["2345964a88e0", "d528e1c62d2e"]


def test_wrong_confirmation_aborts_and_right_one_reverts(
    head: AtHead, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prompts, "stdin_is_interactive", lambda: True)
    before = dbstate.snapshot(database_url)

    wrong = invoke("-c", head.ini, "--url", database_url, "down", input="yes\n")
    assert_failure(wrong, 7, "Nothing was changed")
    assert dbstate.snapshot(database_url) == before

    right = invoke("-c", head.ini, "--url", database_url, "down", input="0823327d\n")
    assert right.exit_code == 0, right.output
    assert dbstate.alembic_version(database_url) == ["0823327d9dc6"]


def test_no_terminal_and_no_yes_refuses(head: AtHead, database_url: str) -> None:
    before = dbstate.snapshot(database_url)
    result = invoke("-c", head.ini, "--url", database_url, "down")
    assert_failure(result, 7, "no terminal")
    assert dbstate.snapshot(database_url) == before


def test_going_below_the_baseline_needs_base_and_the_flag(head: AtHead, database_url: str) -> None:
    before = dbstate.snapshot(database_url)

    refused = invoke("-c", head.ini, "--url", database_url, "down", "--to", "base", "--yes")
    assert_failure(refused, 6, "passes the baseline", "remove the V1 tables", "--allow-drop-baseline")
    assert dbstate.snapshot(database_url) == before

    done = invoke("-c", head.ini, "--url", database_url, "down", "--to", "base", "--allow-drop-baseline", "--yes")
    assert done.exit_code == 0, done.output
    assert dbstate.tables(database_url) == set()
    assert dbstate.alembic_version(database_url) is None
    # Empty again: bootstrap works, and the tool's own records are still there.
    again = invoke("-c", head.ini, "--url", database_url, "bootstrap", "--yes")
    assert again.exit_code == 0, again.output
    assert dbstate.query(database_url, "SELECT count(*) FROM hindsight_migrate.bootstrap_log") == [(2,)]


@pytest.mark.parametrize(
    "downgrade_body",
    ['raise RuntimeError("no way back")', 'raise NotImplementedError("one way")'],
    ids=["raises", "not-implemented"],
)
def test_irreversible_revision_stops_the_plan(tmp_path: Path, database_url: str, downgrade_body: str) -> None:
    ini = str(
        write_project(
            tmp_path / "p",
            [
                Rev("aaaa00000001", ()),
                Rev(
                    "bbbb00000002",
                    ("aaaa00000001",),
                    upgrade='op.execute("CREATE TABLE two (id int)")',
                    downgrade='op.execute("DROP TABLE two")',
                ),
                Rev(
                    "cccc00000003",
                    ("bbbb00000002",),
                    upgrade='op.execute("CREATE TABLE three (id int)")',
                    downgrade=downgrade_body,
                ),
            ],
        )
    )
    assert invoke("-c", ini, "--url", database_url, "up", "--yes").exit_code == 0
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "down", "--to", "aaaa00000001", "--yes")

    assert_failure(result, 6, "cannot be reverted", "cccc00000003")
    assert dbstate.snapshot(database_url) == before
    assert scratch_databases(database_url) == []
    # Stopping before it is fine.
    assert invoke("-c", ini, "--url", database_url, "down", "--to", "cccc", "--yes").exit_code == 0


def test_unknown_and_ambiguous_targets(tmp_path: Path, database_url: str) -> None:
    ini = str(
        write_project(
            tmp_path / "p",
            [Rev("abcd00000001", ()), Rev("abcd00000002", ("abcd00000001",)), Rev("ef0000000003", ("abcd00000002",))],
        )
    )
    assert invoke("-c", ini, "--url", database_url, "up", "--yes").exit_code == 0

    unknown = invoke("-c", ini, "--url", database_url, "down", "--to", "999999", "--yes")
    assert_failure(unknown, 5, "No revision '999999'")
    ambiguous = invoke("-c", ini, "--url", database_url, "down", "--to", "abcd", "--yes")
    assert_failure(ambiguous, 5, "'abcd' is ambiguous", "abcd00000001, abcd00000002")
    both = invoke("-c", ini, "--url", database_url, "down", "--to", "abcd00000001", "--steps", "1")
    assert_failure(both, 2, "either --to or --steps")
    assert dbstate.alembic_version(database_url) == ["ef0000000003"]


def test_down_sql_prints_the_downgrade(head: AtHead, database_url: str) -> None:
    result = invoke("-c", head.ini, "--url", database_url, "down", "--sql")
    assert result.exit_code == 0, result.output
    assert "ALTER TABLE agent_transcripts ALTER COLUMN token_count TYPE INTEGER" in result.stdout
    assert dbstate.alembic_version(database_url) == [HEAD]


def test_nothing_applied_has_nothing_to_go_back_from(hindsight_project: Path, database_url: str) -> None:
    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", database_url, "down", "--yes")
    assert_failure(result, 6, "nothing to go back from")


def test_a_saved_plan_through_a_merge_replays_under_any_hash_seed(
    head: AtHead, database_url: str, tmp_path: Path
) -> None:
    """Alembic chooses a merge's version-table UPDATE and INSERT from a set: the plan must not depend on it."""
    import json
    import os
    import subprocess

    from tests.harness.hindsight_chain import BRANCH_POINT
    from tests.harness.processes import cli_command

    def run(seed: int, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        return subprocess.run(
            cli_command(head.ini, database_url, *args), capture_output=True, text=True, env=env, timeout=120
        )

    fingerprints = set()
    for seed in range(1, 9):
        path = tmp_path / f"plan-{seed}.json"
        made = run(seed, "down", "--to", BRANCH_POINT, "--dry-run", "--no-rehearsal", "--plan-out", str(path))
        assert made.returncode == 0, made.stdout + made.stderr
        fingerprints.add(json.loads(path.read_text())["plan"]["fingerprint"])
    assert len(fingerprints) == 1, fingerprints

    # Reviewed under one seed, applied under another.
    applied = run(5, "down", "--to", BRANCH_POINT, "--plan", str(tmp_path / "plan-1.json"), "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert dbstate.alembic_version(database_url) == [BRANCH_POINT]


def test_data_loss_is_counted_for_names_that_need_quoting(tmp_path: Path, database_url: str) -> None:
    # A table and a column whose names hold a double quote and a dot: counting their rows must
    # quote them as PostgreSQL does, not break the plan.
    ini = str(
        write_project(
            tmp_path / "p",
            [
                Rev("aaaa00000001", ()),
                Rev(
                    "bbbb00000002",
                    ("aaaa00000001",),
                    upgrade=(
                        "op.execute('CREATE TABLE \"odd\"\"name.x\" (id int, \"say \"\"hi\"\"\" text)')\n"
                        "op.execute('INSERT INTO \"odd\"\"name.x\" VALUES (1, NULL), (2, $$a$$), (3, $$b$$)')\n"
                        "op.execute('ALTER TABLE things ADD COLUMN \"we\"\"ird\" text')\n"
                        "op.execute('INSERT INTO things (name, \"we\"\"ird\") VALUES ($$n$$, $$v$$)')"
                    ),
                    downgrade=(
                        "op.execute('ALTER TABLE things DROP COLUMN \"we\"\"ird\"')\n"
                        "op.execute('DROP TABLE \"odd\"\"name.x\"')"
                    ),
                ),
            ],
        )
    )
    assert invoke("-c", ini, "--url", database_url, "bootstrap", "--yes").exit_code == 0
    assert invoke("-c", ini, "--url", database_url, "up", "--yes").exit_code == 0

    result = invoke("-c", ini, "--url", database_url, "down", "--to", "aaaa00000001", "--dry-run")

    assert result.exit_code == 0, result.output
    lost = {
        cells[1]: cells[2]
        for line in result.stdout.splitlines()
        if len(cells := [cell.strip() for cell in line.strip("│ ").split("│")]) == 3 and cells[0] in ("table", "column")
    }
    assert lost == {'public.odd"name.x': "3", 'public.things.we"ird': "1"}, result.stdout
    assert dbstate.alembic_version(database_url) == ["bbbb00000002"]
