"""The fleet's faults, on real processes and real PostgreSQL: a tenant whose data makes a revision fail, the
rollout SIGKILLed half-way, two rollouts racing over the same targets, a target that cannot be reached.

Whatever happens, every target is at a revision that committed (each revision of it applied or not, never
half), the others are at the heads or untouched, and a rerun finishes the job, each revision applied once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from sqlalchemy.engine import Engine

from hindsight_migrate.errors import ExitCode
from tests.harness import dbstate
from tests.harness.audit import audit_rows
from tests.harness.fleet import (
    CHAIN,
    CHAIN_HEAD,
    Databases,
    Entry,
    applied_counts,
    assert_not_shown,
    at_gate,
    by_name,
    control_rows,
    document,
    fleet,
    fleet_chain,
    ledger,
    start_fleet,
    tool_rows_text,
    version,
    wait_until,
    write_targets,
)
from tests.harness.gates import named_gate_closed, new_named_gate
from tests.harness.hindsight_chain import (
    AFTER_BASELINE,
    AFTER_MERGE,
    BASELINE,
    BRANCH_POINT,
    FEEDBACK_BRANCH,
    HEAD,
    MERGE,
    SEARCH_BRANCH,
)
from tests.harness.kill import settle
from tests.harness.markdown import pr_comment, tables
from tests.harness.projects import TINY_BASE

# A rating of 9: the check 2345964a88e0 adds (rating BETWEEN 1 AND 5) fails on it. The revisions before it
# (af874b5e21e4 renames memory_blocks.memory_id, eda51b2b76a6 adds users) pass.
POISON = """
INSERT INTO agents (id, name) VALUES ('00000000-0000-0000-0000-0000000000a1', 'Poisoned');
INSERT INTO memory_blocks (memory_id, agent_id, content)
    VALUES ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'remember');
INSERT INTO feedback_logs (memory_id, rating) VALUES ('00000000-0000-0000-0000-0000000000b1', 9);
"""
CURE = "UPDATE feedback_logs SET rating = 5 WHERE rating > 5"
AUDIT = "command, from_revisions, to_revisions, outcome"


def up_args(ini: str, targets: Path, *more: str) -> list[str]:
    return ["up", "-c", ini, "-t", str(targets), "--yes", "--no-rehearsal", "--format", "json", *more]


def assert_stopped_at_branch_point(url: str) -> None:
    """The poisoned target: the two revisions before the failing one committed, the failing one not at all."""
    assert version(url) == [BRANCH_POINT]
    recorded = {row[0] for row in dbstate.query(url, "SELECT revision FROM hindsight_migrate.applied_revisions")}
    assert recorded == {BASELINE, AFTER_BASELINE, BRANCH_POINT}
    columns = dict(
        dbstate.query(
            url,
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name IN ('memory_blocks', 'feedback_logs')",
        )
    )
    assert columns["memory_blocks.id"] == "uuid" and "memory_blocks.owner_id" in columns  # af874b5e21e4, eda51b2b76a6
    assert columns["feedback_logs.rating"] == "smallint"  # 2345964a88e0's ALTER was rolled back with its check
    constraints = {row[0] for row in dbstate.query(url, "SELECT conname FROM pg_constraint")}
    assert "ck_feedback_logs_rating_range" not in constraints
    assert "users" in dbstate.tables(url)


def test_a_poisoned_tenant_fails_alone_and_the_error_budget_decides_who_else_starts(
    tmp_path: Path, databases: Databases, hindsight_baseline: str, hindsight_ini: str
) -> None:
    names = {f"t{k}": databases.create(f"poison{k}", template=hindsight_baseline) for k in range(1, 5)}
    urls = {target: databases.sql_url(name) for target, name in names.items()}
    dbstate.execute(urls["t2"], POISON)
    targets = write_targets(
        tmp_path / "fleet.toml",
        [Entry(t, databases.target_url(n), group="canary" if t == "t1" else None) for t, n in names.items()],
    )
    before = {target: dbstate.snapshot(url) for target, url in urls.items()}

    # Budget 0 (the default): t2's failure stops new starts; t3 and t4 are never touched.
    first = fleet(*up_args(hindsight_ini, targets, "--parallel", "1"))

    assert first.exit_code == ExitCode.FAILED, first.output
    data = document(first, "fleet_up")
    outcomes = by_name(data)
    assert {t: (o["state"], o["stage"]) for t, o in outcomes.items()} == {
        "t1": ("applied", "canary"),
        "t2": ("failed", "wave"),
        "t3": ("skipped", "wave"),
        "t4": ("skipped", "wave"),
    }
    error = outcomes["t2"]["error"]
    assert FEEDBACK_BRANCH in error and "ck_feedback_logs_rating_range" in error and "violated" in error, error
    assert outcomes["t2"]["current"] == [BRANCH_POINT]  # where it stopped: the revisions before 2345964a88e0
    assert "error budget" in outcomes["t3"]["error"]
    assert data["stopped_by_budget"] is True and data["allowed_failures"] == 0
    assert version(urls["t1"]) == [HEAD]
    assert_stopped_at_branch_point(urls["t2"])
    assert audit_rows(urls["t2"], AUDIT)[-1] == ("up", BASELINE, BRANCH_POINT, "failed")
    assert ledger(urls["t2"])["t2"][0] == "failed" and "ck_feedback_logs_rating_range" in ledger(urls["t2"])["t2"][3]
    for target in ("t3", "t4"):
        assert dbstate.snapshot(urls[target]) == before[target], f"{target} was touched"
        assert ledger(urls[target]) == {}

    status = fleet("status", "-c", hindsight_ini, "-t", str(targets), "--format", "json")
    assert status.exit_code == ExitCode.FAILED, status.output
    rows = by_name(document(status, "fleet_status"))
    assert {t: (r["state"], r["current"]) for t, r in rows.items()} == {
        "t1": ("applied", [HEAD]),
        "t2": ("failed", [BRANCH_POINT]),
        "t3": ("pending", [BASELINE]),
        "t4": ("pending", [BASELINE]),
    }
    assert "ck_feedback_logs_rating_range" in rows["t2"]["error"]
    # The same, as a pull-request comment or a CI job summary: the database's words in a cell, escaped.
    comment = pr_comment(fleet("status", "-c", hindsight_ini, "-t", str(targets), "--format", "markdown").stdout)
    shown = {row[0]: row[1:] for row in tables(comment)[0][1:]}
    assert shown["t2"][:2] == ["failed", BRANCH_POINT] and "ck_feedback_logs_rating_range" in shown["t2"][2]
    assert shown["t3"] == ["pending", BASELINE, ""]

    # A budget of one failure: the others go on to the heads; t2 is not tried again (it failed in this plan).
    t2_runs = audit_rows(urls["t2"], AUDIT)
    second = fleet(*up_args(hindsight_ini, targets, "--parallel", "1", "--max-failures", "1"))

    assert second.exit_code == ExitCode.FAILED, second.output
    outcomes = by_name(document(second, "fleet_up"))
    assert {t: o["state"] for t, o in outcomes.items()} == {
        "t1": "applied",
        "t2": "failed",
        "t3": "applied",
        "t4": "applied",
    }
    assert "--retry-failed" in outcomes["t2"]["error"]
    assert outcomes["t1"]["applied"] == [] and len(outcomes["t3"]["applied"]) == len(outcomes["t4"]["applied"]) == 7
    assert [version(urls[t]) for t in ("t1", "t3", "t4")] == [[HEAD]] * 3
    assert audit_rows(urls["t2"], AUDIT) == t2_runs  # not retried
    assert_stopped_at_branch_point(urls["t2"])

    # The others done, a plain rerun still leaves t2 alone: it failed in this plan (the same revision files).
    third = fleet(*up_args(hindsight_ini, targets))
    assert third.exit_code == ExitCode.FAILED, third.output
    assert by_name(document(third, "fleet_up"))["t2"]["state"] == "failed"
    assert audit_rows(urls["t2"], AUDIT) == t2_runs

    # The data fixed, --retry-failed takes t2 from where it stopped to the heads.
    dbstate.execute(urls["t2"], CURE)
    retried = fleet(*up_args(hindsight_ini, targets, "--retry-failed"))

    assert retried.exit_code == ExitCode.OK, retried.output
    outcomes = by_name(document(retried, "fleet_up"))
    assert outcomes["t2"]["state"] == "applied"
    assert set(outcomes["t2"]["applied"]) == {FEEDBACK_BRANCH, SEARCH_BRANCH, MERGE, AFTER_MERGE, HEAD}
    assert all(version(url) == [HEAD] for url in urls.values())
    # Each revision applied once: the failed run committed the first two, the retry the rest.
    assert audit_rows(urls["t2"], AUDIT)[1:] == [
        ("up", BASELINE, BRANCH_POINT, "failed"),
        ("up", BRANCH_POINT, HEAD, "succeeded"),
    ]
    assert ledger(urls["t2"])["t2"][0] == "applied"


def test_with_a_control_database_a_target_tried_again_no_longer_spends_the_shared_budget(
    tmp_path: Path, databases: Databases, hindsight_baseline: str, hindsight_ini: str
) -> None:
    names = {t: databases.create(f"retry_{t}", template=hindsight_baseline) for t in ("t1", "t2")}
    urls = {target: databases.sql_url(name) for target, name in names.items()}
    control = databases.create("retry_control")
    dbstate.execute(urls["t2"], POISON)
    targets = write_targets(
        tmp_path / "fleet.toml",
        [Entry(t, databases.target_url(n), group="canary" if t == "t1" else None) for t, n in names.items()],
        control={"url": databases.target_url(control)},
    )
    first = fleet(*up_args(hindsight_ini, targets, "--parallel", "1"))
    assert first.exit_code == ExitCode.FAILED, first.output
    assert [row[1:3] for row in control_rows(databases.sql_url(control))] == [("t1", "applied"), ("t2", "failed")]

    # Fixed, and tried again with the default budget (0): the control database's row of its failure is the
    # target's own, not a new failure, so it does not stop the retry before it starts.
    dbstate.execute(urls["t2"], CURE)
    retried = fleet(*up_args(hindsight_ini, targets, "--retry-failed"))

    assert retried.exit_code == ExitCode.OK, retried.output
    assert by_name(document(retried, "fleet_up"))["t2"]["state"] == "applied"
    assert version(urls["t2"]) == [HEAD]
    assert [row[1:3] for row in control_rows(databases.sql_url(control))] == [("t1", "applied"), ("t2", "applied")]


def test_a_failed_canary_stops_the_rollout_unless_continue_on_error(
    tmp_path: Path, databases: Databases, hindsight_baseline: str, hindsight_ini: str
) -> None:
    names = {f"t{k}": databases.create(f"canary{k}", template=hindsight_baseline) for k in range(1, 4)}
    urls = {target: databases.sql_url(name) for target, name in names.items()}
    dbstate.execute(urls["t1"], POISON)
    targets = write_targets(tmp_path / "fleet.toml", [Entry(t, databases.target_url(n)) for t, n in names.items()])
    before = {target: dbstate.snapshot(urls[target]) for target in ("t2", "t3")}

    # Even with a failure to spare, a canary that fails stops the rollout: nothing else starts.
    stopped = fleet(*up_args(hindsight_ini, targets, "--canary", "t1", "--max-failures", "1"))

    assert stopped.exit_code == ExitCode.FAILED, stopped.output
    assert "Stopping: the canary failed: no other target was started" in stopped.stderr
    outcomes = by_name(document(stopped, "fleet_up"))
    assert {t: (o["state"], o["stage"]) for t, o in outcomes.items()} == {
        "t1": ("failed", "canary"),
        "t2": ("skipped", "wave"),
        "t3": ("skipped", "wave"),
    }
    assert outcomes["t2"]["error"] == "not started: the canary failed"  # not the budget: one failure was spared
    assert document(stopped, "fleet_up")["stopped_by_budget"] is False
    assert_stopped_at_branch_point(urls["t1"])
    assert {target: dbstate.snapshot(urls[target]) for target in ("t2", "t3")} == before

    # --continue-on-error: no budget; the canary fails again (tried again by --retry-failed), the rest go on.
    going_on = fleet(*up_args(hindsight_ini, targets, "--canary", "t1", "--continue-on-error", "--retry-failed"))

    assert going_on.exit_code == ExitCode.FAILED, going_on.output
    outcomes = by_name(document(going_on, "fleet_up"))
    assert {t: o["state"] for t, o in outcomes.items()} == {"t1": "failed", "t2": "applied", "t3": "applied"}
    assert "ck_feedback_logs_rating_range" in outcomes["t1"]["error"]
    assert [version(urls[t]) for t in ("t1", "t2", "t3")] == [[BRANCH_POINT], [HEAD], [HEAD]]
    assert [row[3] for row in audit_rows(urls["t1"], AUDIT)[1:]] == ["failed", "failed"]  # tried twice


def test_sigkill_mid_rollout_then_a_rerun_applies_each_revision_once(
    tmp_path: Path, databases: Databases, chain_base: str, admin_engine: Engine
) -> None:
    names = {f"c{k}": databases.create(f"kill{k}", template=chain_base) for k in range(1, 5)}
    urls = {target: databases.sql_url(name) for target, name in names.items()}
    gate = new_named_gate()
    # c2's second revision waits at the gate: the kill lands with c2's first revision committed, its second not.
    ini = str(fleet_chain(tmp_path / "p", gates={CHAIN[1]: (gate, names["c2"])}))
    targets = write_targets(
        tmp_path / "fleet.toml",
        [
            Entry(t, databases.target_url(n, secret=t == "c2"), group="canary" if t == "c1" else None)
            for t, n in names.items()
        ],
    )
    secret = databases.secret_of(names["c2"])

    process: subprocess.Popen[str] | None = None
    try:
        with named_gate_closed(urls["c1"], gate):
            process = start_fleet(*up_args(ini, targets, "--parallel", "1"), cwd=tmp_path)
            wait_until(
                lambda: version(urls["c1"]) == [CHAIN_HEAD] and at_gate(urls["c2"], gate),
                "c1 reached the head and c2 waits at the gate",
                process=process,
            )
            os.killpg(process.pid, signal.SIGKILL)  # the run and its workers
            process.wait(timeout=30)
            for url in urls.values():
                settle(admin_engine, url)  # the dead run's sessions, stuck at the gate or not
    finally:
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    out, err = process.communicate(timeout=10)
    assert_not_shown(secret, out, err)

    # At revisions that committed: c1 at the head, c2 after its first revision, c3 and c4 untouched.
    assert {t: version(u) for t, u in urls.items()} == {
        "c1": [CHAIN_HEAD],
        "c2": [CHAIN[0]],
        "c3": [TINY_BASE],
        "c4": [TINY_BASE],
    }
    assert {t: applied_counts(u) for t, u in urls.items()} == {
        "c1": dict.fromkeys(CHAIN, 1),
        "c2": {CHAIN[0]: 1},  # the second revision's row went with its rolled-back transaction
        "c3": {},
        "c4": {},
    }
    assert ledger(urls["c2"])["c2"][0] == "running"  # written before it started; the kill left it

    # Nobody migrates now: status says so, whatever the ledger's last word was.
    status = fleet("status", "-c", ini, "-t", str(targets), "--format", "json")
    assert status.exit_code == ExitCode.BEHIND, status.output
    rows = by_name(document(status, "fleet_status"))
    assert {t: (r["state"], r["current"]) for t, r in rows.items()} == {
        "c1": ("applied", [CHAIN_HEAD]),
        "c2": ("pending", [CHAIN[0]]),
        "c3": ("pending", [TINY_BASE]),
        "c4": ("pending", [TINY_BASE]),
    }
    assert "stopped here before it finished" in rows["c2"]["error"]
    assert_not_shown(secret, status.output)

    rerun = fleet(*up_args(ini, targets, "--parallel", "2"))

    assert rerun.exit_code == ExitCode.OK, rerun.output
    outcomes = by_name(document(rerun, "fleet_up"))
    assert {t: (o["state"], o["applied"]) for t, o in outcomes.items()} == {
        "c1": ("applied", []),
        "c2": ("applied", list(CHAIN[1:])),
        "c3": ("applied", list(CHAIN)),
        "c4": ("applied", list(CHAIN)),
    }
    for target, url in urls.items():
        assert version(url) == [CHAIN_HEAD], target
        assert applied_counts(url) == dict.fromkeys(CHAIN, 1), target
    # The killed run's audit row stays 'running' with nothing claimed; the rerun took c2 on from where it was.
    assert audit_rows(urls["c2"], AUDIT)[1:] == [
        ("up", TINY_BASE, None, "running"),
        ("up", CHAIN[0], CHAIN_HEAD, "succeeded"),
    ]
    assert_not_shown(secret, tool_rows_text(urls["c2"]))


def workers_on(url: str, runs: list[subprocess.Popen[str]]) -> int:
    """How many worker processes of ``runs`` have a session on ``url``'s database now. The tool names its
    sessions after their process (``hindsight-migrate pid N on HOST``); the runs' own processes (their
    preflight) are left out, so two means a worker of each run."""
    rows = dbstate.query(
        url,
        "SELECT count(DISTINCT application_name) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name LIKE 'hindsight-migrate pid %' AND NOT application_name LIKE ANY(:mains)",
        mains=[f"hindsight-migrate pid {run.pid} on %" for run in runs],
    )
    return int(rows[0][0])


def race(tmp_path: Path, ini: str, targets: Path, url: str, gate: str) -> list[subprocess.CompletedProcess[str]]:
    """Two ``fleet up`` runs at once: the gate (on ``url``'s database, where the first run waits) opens once a
    worker of each run is on that database."""
    runs: list[subprocess.Popen[str]] = []
    try:
        with named_gate_closed(url, gate):
            runs = [start_fleet(*up_args(ini, targets, "--parallel", "2"), cwd=tmp_path) for _ in range(2)]
            wait_until(lambda: at_gate(url, gate) and workers_on(url, runs) >= 2, "a worker of each run is there")
        finished = [run.communicate(timeout=120) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait(timeout=30)
    return [
        subprocess.CompletedProcess(run.args, run.returncode, out, err)
        for run, (out, err) in zip(runs, finished, strict=True)
    ]


def test_two_rollouts_at_once_apply_each_revision_once(tmp_path: Path, databases: Databases, chain_base: str) -> None:
    names = {f"c{k}": databases.create(f"race{k}", template=chain_base) for k in range(1, 5)}
    urls = {target: databases.sql_url(name) for target, name in names.items()}
    gate = new_named_gate()
    # c1 (the canary of both runs) waits at the gate in its first revision, its migration lock held, until
    # the other run's worker is there too, waiting for that lock.
    ini = str(fleet_chain(tmp_path / "p", gates={CHAIN[0]: (gate, names["c1"])}))
    targets = write_targets(
        tmp_path / "fleet.toml",
        [Entry(t, databases.target_url(n), group="canary" if t == "c1" else None) for t, n in names.items()],
    )

    runs = race(tmp_path, ini, targets, urls["c1"], gate)

    assert [run.returncode for run in runs] == [0, 0], runs
    outcomes = [by_name(document(run, "fleet_up")) for run in runs]
    for target, url in urls.items():
        assert version(url) == [CHAIN_HEAD], target
        assert applied_counts(url) == dict.fromkeys(CHAIN, 1), target
        # Both runs say it is at the heads; exactly one of them applied its revisions.
        assert [o[target]["state"] for o in outcomes] == ["applied", "applied"], target
        assert sorted(o[target]["applied"] for o in outcomes) == [[], list(CHAIN)], target
        succeeded = [row for row in audit_rows(url, AUDIT) if row[3] == "succeeded" and row[0] == "up"]
        assert succeeded == [("up", TINY_BASE, CHAIN_HEAD, "succeeded")], target
    assert "applied  c1  applied by another run meanwhile" in "".join(run.stderr for run in runs), runs


def test_an_unreachable_target_counts_against_the_error_budget(
    tmp_path: Path, databases: Databases, hindsight_baseline: str, hindsight_ini: str
) -> None:
    names = {f"t{k}": databases.create(f"reach{k}", template=hindsight_baseline) for k in range(1, 4)}
    urls = {target: databases.sql_url(name) for target, name in names.items()}
    gone = databases.missing()
    entries = [Entry(t, databases.target_url(n)) for t, n in names.items()]
    targets = write_targets(tmp_path / "fleet.toml", [*entries, Entry("gone", databases.target_url(gone, secret=True))])
    before = {target: dbstate.snapshot(url) for target, url in urls.items()}

    # Budget 0: the blocked target is the one failure allowed none; nothing starts.
    stopped = fleet(*up_args(hindsight_ini, targets))
    assert stopped.exit_code == ExitCode.FAILED, stopped.output
    outcomes = by_name(document(stopped, "fleet_up"))
    assert outcomes["gone"]["state"] == "failed" and outcomes["gone"]["error"].startswith("unreachable:")
    assert {t: outcomes[t]["state"] for t in names} == {t: "skipped" for t in names}
    assert {target: dbstate.snapshot(url) for target, url in urls.items()} == before

    result = fleet(*up_args(hindsight_ini, targets, "--max-failures", "1"))

    assert result.exit_code == ExitCode.FAILED, result.output
    outcomes = by_name(document(result, "fleet_up"))
    assert outcomes["gone"]["state"] == "failed"
    assert outcomes["gone"]["error"].startswith("unreachable:") and gone in outcomes["gone"]["error"]
    assert {t: (outcomes[t]["state"], outcomes[t]["current"]) for t in names} == {t: ("applied", [HEAD]) for t in names}
    assert all(version(url) == [HEAD] for url in urls.values())
    assert_not_shown(databases.secret_of(gone), stopped.output, result.output)
