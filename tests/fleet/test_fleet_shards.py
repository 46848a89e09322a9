"""``--shard K/N``: N runs at once (a Kubernetes Indexed Job's pods, a CI matrix), each taking its own share of
the targets, together migrating every target exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from hindsight_migrate.errors import ExitCode
from tests.conftest import assert_failure
from tests.harness.audit import audit_rows
from tests.harness.fleet import (
    CHAIN,
    CHAIN_HEAD,
    Databases,
    Entry,
    applied_counts,
    by_name,
    control_rows,
    document,
    fleet,
    fleet_chain,
    start_fleet,
    version,
    write_targets,
)

SHARDS = 3
TARGETS = tuple(f"tenant-{k}" for k in range(1, 7))  # six: two for each of three shards


def test_three_shards_at_once_migrate_every_target_exactly_once(
    tmp_path: Path, databases: Databases, chain_base: str
) -> None:
    names = {target: databases.create(f"shard{k}", template=chain_base) for k, target in enumerate(TARGETS)}
    urls = {target: databases.sql_url(name) for target, name in names.items()}
    control = databases.create("shard_control")
    ini = str(fleet_chain(tmp_path / "p"))
    targets = write_targets(
        tmp_path / "fleet.toml",
        [Entry(target, databases.target_url(name)) for target, name in names.items()],
        control={"url": databases.target_url(control)},
    )
    args = ["up", "-c", ini, "-t", str(targets), "--yes", "--no-rehearsal", "--parallel", "2", "--format", "json"]
    runs: list[subprocess.Popen[str]] = []
    try:
        runs = [start_fleet(*args, "--shard", f"{k}/{SHARDS}", cwd=tmp_path) for k in range(SHARDS)]
        finished = [run.communicate(timeout=180) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait(timeout=30)

    assert [run.returncode for run in runs] == [0] * SHARDS, finished
    shares = [document(subprocess.CompletedProcess([], 0, out, err), "fleet_up") for out, err in finished]
    assert [share["shard"] for share in shares] == [f"{k}/{SHARDS}" for k in range(SHARDS)]
    assert all(share["notes"] == [] for share in shares)  # a [control] database: one error budget for all
    listed = [by_name(share) for share in shares]
    # The shares are disjoint and cover the fleet: each target in exactly one, which applied its revisions.
    assert sorted(target for share in listed for target in share) == sorted(names)
    assert [len(share) for share in listed] == [2, 2, 2]  # dealt out evenly: no shard idle, none with more
    shard_of = {target: f"{k}/{SHARDS}" for k, share in enumerate(listed) for target in share}
    for share in listed:
        for target, outcome in share.items():
            assert (outcome["state"], outcome["applied"], outcome["current"]) == (
                "applied",
                list(CHAIN),
                [CHAIN_HEAD],
            ), target
    for target, url in urls.items():
        assert version(url) == [CHAIN_HEAD], target
        assert applied_counts(url) == dict.fromkeys(CHAIN, 1), target
        assert [row for row in audit_rows(url, "command, outcome") if row[0] == "up"] == [("up", "succeeded")]
    # The control database has each target's row, from the shard that ran it.
    rows = control_rows(databases.sql_url(control))
    assert sorted((row[1], row[2], row[3], row[5]) for row in rows) == sorted(
        (target, "applied", CHAIN_HEAD, shard_of[target]) for target in names
    )


@pytest.mark.parametrize(
    ("shard", "message"),
    [
        ("5/3", "--shard 5/3: K must be from 0 to N-1"),
        ("3/3", "--shard 3/3: K must be from 0 to N-1"),
        ("0/0", "--shard 0/0: K must be from 0 to N-1 and N at least 1"),
        ("two/3", "--shard takes K/N (the K-th of N shares, K from 0 to N-1), not 'two/3'"),
    ],
    ids=["5/3", "3/3", "0/0", "two/3"],
)
def test_a_shard_out_of_range_is_a_usage_error(shard: str, message: str, tmp_path: Path) -> None:
    ini = str(fleet_chain(tmp_path / "p"))
    targets = write_targets(tmp_path / "fleet.toml", [Entry("a", "postgresql://postgres@127.0.0.1:1/never")])
    for command in (["plan"], ["up", "--yes"], ["status"]):
        result = fleet(*command, "-c", ini, "-t", str(targets), "--shard", shard)
        assert_failure(result, ExitCode.USAGE, message)


def test_shard_slash_n_takes_k_from_job_completion_index(
    tmp_path: Path, databases: Databases, chain_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = {target: databases.create(f"index{k}", template=chain_base) for k, target in enumerate(TARGETS)}
    ini = str(fleet_chain(tmp_path / "p"))
    targets = write_targets(tmp_path / "fleet.toml", [Entry(t, databases.target_url(n)) for t, n in names.items()])
    plan = ["plan", "-c", ini, "-t", str(targets), "--no-rehearsal", "--format", "json"]

    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    unset = fleet(*plan, "--shard", "/3")
    assert_failure(unset, ExitCode.USAGE, "--shard /3 takes K from $JOB_COMPLETION_INDEX, which is not set")

    shares = []
    for index in range(SHARDS):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        result = fleet(*plan, "--shard", "/3")
        assert result.exit_code == ExitCode.OK, result.output
        data = document(result, "fleet_plan")
        assert data["shard"] == f"{index}/{SHARDS}"
        shares.append(sorted(by_name(data)))
    assert sorted(name for share in shares for name in share) == sorted(names)  # disjoint, covering all
    explicit = fleet(*plan, "--shard", "1/3")  # the same share as JOB_COMPLETION_INDEX=1 gave
    assert sorted(by_name(document(explicit, "fleet_plan"))) == shares[1]


def test_a_shard_with_no_target_has_nothing_to_do(tmp_path: Path) -> None:
    ini = str(fleet_chain(tmp_path / "p"))
    # Never connected to: a shard that holds none of the targets reads none of them.
    entries = [Entry(name, f"postgresql://postgres@127.0.0.1:1/{name}") for name in ("a", "b")]
    targets = write_targets(tmp_path / "fleet.toml", entries)
    for command in (["plan"], ["up", "--yes"], ["status"]):
        result = fleet(*command, "-c", ini, "-t", str(targets), "--shard", "2/3")
        assert result.exit_code == ExitCode.OK, result.output
        assert "Shard 2/3 holds none of the 2 targets: nothing to do." in result.output
    # A script parsing --format json still gets its document: no target, nothing done.
    for command, kind in ((["up", "--yes"], "fleet_up"), (["status"], "fleet_status")):
        result = fleet(*command, "-c", ini, "-t", str(targets), "--shard", "2/3", "--format", "json")
        assert result.exit_code == ExitCode.OK, result.output
        empty = document(result, kind)
        assert empty["targets"] == [] and empty["shard"] == "2/3"
