"""Lock holds at the target's size over the data limit: the sample the copy holds, what scales and what stays
flat, and the calibration later plans take from earlier applies."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hindsight_migrate.postgres.catalog import TableSize
from hindsight_migrate.postgres.sample import sample_shares
from hindsight_migrate.postgres.sqlscript import statement_tables
from hindsight_migrate.review.rehearsal.predict import CALIBRATION_BOUNDS, calibration
from tests.conftest import bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.projects import TINY_BASE, Rev, tiny_project
from tests.render.test_formats import valid_document

MB = 1024 * 1024


def test_the_sample_budget_takes_small_tables_whole_and_shares_the_rest_among_the_big_ones() -> None:
    sizes = {
        name: TableSize(name, None, size)
        for name, size in {"public.tiny": MB // 10, "public.mid": 20 * MB, "public.big": 500 * MB}.items()
    }

    shares = sample_shares(sizes, 32 * MB)

    assert shares["public.tiny"] == 100.0
    assert 0 < shares["public.big"] < shares["public.mid"] < 100.0
    taken = sum(sizes[name].total_bytes * share / 100 for name, share in shares.items())
    assert taken <= 32 * MB + 1, taken


def test_only_statements_that_read_or_write_rows_grow_with_the_table() -> None:
    assert statement_tables("ALTER TABLE t ALTER n TYPE bigint").processed == {"t"}
    assert statement_tables("ALTER TABLE t ADD CONSTRAINT c CHECK (n > 0)").processed == {"t"}
    assert statement_tables("ALTER TABLE t ADD CONSTRAINT c CHECK (n > 0) NOT VALID").processed == set()
    assert statement_tables("ALTER TABLE t ADD COLUMN x integer").processed == set()
    assert statement_tables("ALTER TABLE t RENAME COLUMN a TO b").processed == set()
    index = statement_tables("CREATE INDEX i ON s.t USING gin (x gin_trgm_ops)")
    assert index.processed == {"s.t"} and not index.sorts
    assert statement_tables("CREATE INDEX i ON s.t (x)").sorts
    assert statement_tables("UPDATE t SET a = 1 FROM u WHERE t.id = u.id").processed == {"t", "u"}
    assert statement_tables("INSERT INTO t VALUES (1)").processed == set()
    fk = statement_tables("ALTER TABLE c ADD CONSTRAINT f FOREIGN KEY (p) REFERENCES p (id)")
    assert fk.processed == {"c", "p"}
    assert not statement_tables("not sql at all").parsed


def test_calibration_is_the_median_ratio_of_long_enough_holds_within_bounds() -> None:
    assert calibration([]) is None
    assert calibration([(0.01, 5.0)]) is None  # too short to say anything of how a prediction scales
    found = calibration([(1.0, 1.5), (2.0, 3.0), (1.0, 0.5)])
    assert found is not None and (found.ratio, found.holds) == (1.5, 3)
    wild = calibration([(1.0, 100.0)])
    assert wild is not None and wild.ratio == CALIBRATION_BOUNDS[1]


def over_the_limit(tmp_path: Path, database_url: str, *revisions: Rev) -> str:
    """A project whose data limit (2 MB) and sample (2 MB) the tables below are well over, at its revision bbbb."""
    schema = Rev(
        "bbbb00000002",
        (TINY_BASE,),
        upgrade=(
            'op.execute("CREATE TABLE parents (id bigint PRIMARY KEY, name text)")\n'
            'op.execute("CREATE TABLE children (id bigint PRIMARY KEY, parent_id bigint REFERENCES parents, '
            'n integer, doubled bigint GENERATED ALWAYS AS (id * 2) STORED, payload text)")\n'
            'op.execute("CREATE TABLE events (id bigint, at date NOT NULL, body text) PARTITION BY RANGE (at)")\n'
            "op.execute(\"CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') "
            "TO ('2027-01-01')\")"
        ),
    )
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p", schema, *revisions, settings="rehearsal_data_limit_mb = 2\nrehearsal_sample_mb = 2"
        ),
        database_url,
    )
    assert invoke("-c", ini, "--url", database_url, "up", "bbbb00000002", "--yes").exit_code == 0
    dbstate.execute(
        database_url,
        "INSERT INTO parents SELECT g, md5(g::text) FROM generate_series(1, 50000) g;"
        "INSERT INTO children (id, parent_id, n, payload) SELECT g, 1 + mod(g, 50000), mod(g, 7), "
        "md5(g::text) || md5((g * 3)::text) FROM generate_series(1, 200000) g;"
        "INSERT INTO events SELECT g, date '2026-01-01' + mod(g, 300), md5(g::text) FROM generate_series(1, 50000) g;"
        "ANALYZE",
    )
    return ini


def test_a_sample_keeps_foreign_keys_generated_columns_and_partitions_as_the_target_has_them(
    tmp_path: Path, database_url: str
) -> None:
    """Sampled children keep only rows whose parent was sampled (the constraint is restored and validates), a
    generated column is computed again, a partition is sampled like a table: nothing is left unsampled, and the
    rewrite of the child is predicted from its sample, as is the rewrite of a partitioned table (from its
    partitions' samples, whose rows it holds), and the schema diff is the one the apply then makes."""
    ini = over_the_limit(
        tmp_path,
        database_url,
        Rev(
            "cccc00000003",
            ("bbbb00000002",),
            upgrade='op.execute("ALTER TABLE children ALTER n TYPE bigint")\n'
            'op.execute("ALTER TABLE events ALTER id TYPE numeric")',
        ),
    )

    planned = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--format", "json")

    assert planned.exit_code == 0, planned.output
    document = valid_document(planned.stdout, "plan")
    rehearsal = document["plan"]["rehearsal"]
    assert not [warning for warning in rehearsal["warnings"] if "could be sampled" in warning], rehearsal["warnings"]
    samples = rehearsal["samples"]
    assert 0 < samples["public.children"]["rows"] < 200000 and samples["public.children"]["total_bytes"] > 0, samples
    assert samples["public.events_2026"]["rows"] > 0, samples
    # The partitioned table's sample is its partition's, marked so that nobody adds the two up.
    assert samples["public.events"]["partitioned"] and not samples["public.events_2026"]["partitioned"], samples
    assert samples["public.events"]["rows"] == samples["public.events_2026"]["rows"], samples
    (cost,) = [c for c in rehearsal["costs"] if c["revision"] == "cccc00000003"]
    (hold,) = [h for h in cost["holds"] if h["table"] == "public.children"]
    assert hold["basis"] == "predicted", hold
    (events,) = [h for h in cost["holds"] if h["table"] == "public.events"]
    assert events["basis"] == "predicted", events
    parent = rehearsal["sizes"]["public.events"]
    assert (parent["estimated_rows"], parent["rows_exact"]) == (50000, True), parent
    assert {"public.children.n", "public.events.id"} <= {change["name"] for change in rehearsal["diff"]}
    before = dbstate.query(database_url, "SELECT count(*), sum(doubled) FROM children")

    applied = invoke("-c", ini, "--url", database_url, "up", "--yes")

    assert applied.exit_code == 0, applied.output
    assert dbstate.query(database_url, "SELECT count(*), sum(doubled) FROM children") == before


def test_a_later_plan_scales_its_predictions_by_what_earlier_applies_held(tmp_path: Path, database_url: str) -> None:
    """The median ratio of actual to predicted holds recorded by earlier applies scales a new prediction, and
    the plan says so; a table fitting in the sample whole stays measured."""
    ini = over_the_limit(
        tmp_path,
        database_url,
        Rev("cccc00000003", ("bbbb00000002",), upgrade='op.execute("ALTER TABLE children ALTER n TYPE bigint")'),
        Rev("dddd00000004", ("cccc00000003",), upgrade='op.execute("ALTER TABLE children ALTER n TYPE numeric")'),
    )
    assert invoke("-c", ini, "--url", database_url, "up", "cccc00000003", "--yes").exit_code == 0
    recorded = dbstate.query(
        database_url, "SELECT lock_holds FROM hindsight_migrate.apply_log WHERE lock_holds IS NOT NULL"
    )
    assert len(recorded) == 1 and "public.children" in recorded[0][0], recorded
    # What the apply held, as if it had taken twice what was predicted: the next plan aims at twice as long.
    dbstate.execute(
        database_url,
        "UPDATE hindsight_migrate.apply_log SET lock_holds = '"
        + json.dumps(
            [
                {
                    "revision": "cccc00000003",
                    "table": "public.children",
                    "basis": "predicted",
                    "predicted_seconds": 1.0,
                    "predicted_low": 0.5,
                    "predicted_high": 2.0,
                    "actual_seconds": 2.0,
                }
            ]
        )
        + "' WHERE lock_holds IS NOT NULL",
    )

    planned = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--format", "json")
    shown = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--details")

    assert planned.exit_code == 0, planned.output
    (cost,) = [c for c in valid_document(planned.stdout, "plan")["plan"]["rehearsal"]["costs"]]
    (hold,) = [h for h in cost["holds"] if h["table"] == "public.children"]
    assert (hold["basis"], hold["calibration"]) == ("predicted", 2.0), hold
    assert re.search(r"public\.children .*predicted, [\d.]+ % sample, x2\.00 calibrated", flatten(shown.output)), (
        shown.output
    )
