"""``fleet plan``: a read-only preflight of every target — where each stands, what it still needs, what blocks
it — and one plan for all of them; the targets file's mistakes refused before anything connects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hindsight_migrate.errors import ExitCode
from tests.conftest import assert_failure, flatten, invoke
from tests.harness import dbstate
from tests.harness.audit import audit_rows
from tests.harness.fleet import SECRET, Databases, Entry, assert_not_shown, by_name, document, fleet, write_targets
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
from tests.harness.markdown import fences, pr_comment, tables

AFTER_BASELINE_ALL = {AFTER_BASELINE, BRANCH_POINT, FEEDBACK_BRANCH, SEARCH_BRANCH, MERGE, AFTER_MERGE, HEAD}


def state_of(url: str) -> dict[str, Any]:
    """What a read-only command must leave as it was: the schema, the version table, the tool's rows."""
    return {**dbstate.snapshot(url), "audit": audit_rows(url, "*"), "schemas": dbstate.schemas(url)}


def test_plan_reads_where_each_target_stands_and_changes_nothing(
    tmp_path: Path, databases: Databases, hindsight_baseline: str, hindsight_ini: str
) -> None:
    empty = databases.create("empty")
    base = databases.create("base", template=hindsight_baseline)
    mid = databases.create("mid", template=hindsight_baseline)
    head = databases.create("head", template=hindsight_baseline)
    for name, revision in ((mid, BRANCH_POINT), (head, HEAD)):
        moved = invoke("-c", hindsight_ini, "--url", databases.sql_url(name), "up", revision, "--yes", "--no-rehearsal")
        assert moved.exit_code == 0, moved.output
    targets = write_targets(
        tmp_path / "fleet.toml",
        [
            Entry("empty", databases.target_url(empty)),
            Entry("base", databases.target_url(base, secret=True)),
            Entry("mid", databases.target_url(mid)),
            Entry("head", databases.target_url(head)),
        ],
    )
    urls = [databases.sql_url(name) for name in (empty, base, mid, head)]
    before = [state_of(url) for url in urls]

    result = fleet("plan", "-c", hindsight_ini, "-t", str(targets), "--format", "json", "--plan-out", "plan.json")

    assert result.exit_code == ExitCode.OK, result.output
    data = document(result, "fleet_plan")
    assert data["heads"] == [HEAD]
    plan = by_name(data)
    assert list(plan) == ["empty", "base", "mid", "head"]  # the file's order
    seen = {name: (t["current"], set(t["pending"]), len(t["pending"]), t["blocked"]) for name, t in plan.items()}
    assert seen == {
        "empty": ([], AFTER_BASELINE_ALL, 7, None),  # bootstrapped first (V1 is the baseline), then the 7
        "base": ([BASELINE], AFTER_BASELINE_ALL, 7, None),
        "mid": ([BRANCH_POINT], {FEEDBACK_BRANCH, SEARCH_BRANCH, MERGE, AFTER_MERGE, HEAD}, 5, None),
        "head": ([HEAD], set(), 0, None),
    }
    assert plan["empty"]["empty"] is True and plan["base"]["empty"] is False
    assert {r["revision"] for r in data["revisions"]} == AFTER_BASELINE_ALL  # rendered once for the fleet
    assert all(r["sql"] for r in data["revisions"])
    # The rehearsal ran on the canary's scratch copy (the canary is one with work to do), then was dropped.
    assert data["rehearsed_on"] in {"empty", "base", "mid"}, data["rehearsed_on"]
    assert data["canaries"] == [data["rehearsed_on"]]
    assert all(dbstate.scratch_databases_of(url) == [] for url in urls)

    # Read-only: no target changed, not even a schema of the tool's in the empty one.
    assert [state_of(url) for url in urls] == before
    assert "hindsight_migrate" not in dbstate.schemas(urls[0])
    assert dbstate.alembic_version(urls[0]) is None

    # The saved plan names each target where it stood, and no URL or password.
    saved_text = Path("plan.json").read_text()
    saved = json.loads(saved_text)
    assert saved["format"] == "hindsight-migrate fleet plan" and saved["rollout"] == data["rollout"]
    assert {t["name"]: t["current"] for t in saved["targets"]} == {
        "empty": [],
        "base": [BASELINE],
        "mid": [BRANCH_POINT],
        "head": [HEAD],
    }
    assert "postgresql" not in saved_text
    secret = databases.secret_of(base)
    assert_not_shown(secret, saved_text, result.output)
    assert "***" in plan["base"]["url"]

    # As a pull-request comment (no rehearsal: read-only and quick): the revisions' table, and each one's SQL
    # folded in a fence.
    comment = pr_comment(
        fleet("plan", "-c", hindsight_ini, "-t", str(targets), "--no-rehearsal", "--format", "markdown").stdout
    )
    assert {row[0] for row in tables(comment)[-1][1:]} == AFTER_BASELINE_ALL
    assert len(fences(comment)) == len(AFTER_BASELINE_ALL) and all(fences(comment))
    assert [state_of(url) for url in urls] == before


def test_unreachable_and_diverged_targets_are_blocked_and_the_others_still_read(
    tmp_path: Path, databases: Databases, hindsight_baseline: str, hindsight_ini: str
) -> None:
    ok = databases.create("ok", template=hindsight_baseline)
    diverged = databases.create("diverged", template=hindsight_baseline)
    dbstate.execute(databases.sql_url(diverged), "UPDATE alembic_version SET version_num = 'feedfacecafe'")
    gone = databases.missing()
    targets = write_targets(
        tmp_path / "fleet.toml",
        [
            Entry("gone", databases.target_url(gone, secret=True)),
            Entry("ok", databases.target_url(ok)),
            Entry("diverged", databases.target_url(diverged)),
        ],
    )
    before = {name: state_of(databases.sql_url(name)) for name in (ok, diverged)}

    result = fleet("plan", "-c", hindsight_ini, "-t", str(targets), "--format", "json", "--no-rehearsal")

    assert result.exit_code == ExitCode.REFUSED, result.output
    plan = by_name(document(result, "fleet_plan"))
    assert plan["ok"]["blocked"] is None and plan["ok"]["current"] == [BASELINE]
    assert set(plan["ok"]["pending"]) == AFTER_BASELINE_ALL
    assert plan["gone"]["blocked"] == "unreachable"
    assert gone in plan["gone"]["problem"] and "does not exist" in plan["gone"]["problem"]
    assert plan["diverged"]["blocked"] == "diverged"
    assert plan["diverged"]["current"] == ["feedfacecafe"] and plan["diverged"]["pending"] == []
    assert "feedfacecafe" in plan["diverged"]["problem"]
    assert_not_shown(databases.secret_of(gone), result.output)

    text = fleet("plan", "-c", hindsight_ini, "-t", str(targets), "--no-rehearsal")
    assert_failure(
        text, ExitCode.REFUSED, "3 targets", "1 to migrate", "2 blocked", "Blocked (not migrated until fixed)"
    )
    assert_not_shown(databases.secret_of(gone), text.output)
    assert {name: state_of(databases.sql_url(name)) for name in (ok, diverged)} == before


def test_no_target_answering_is_a_connection_error(tmp_path: Path, databases: Databases, hindsight_ini: str) -> None:
    gone = [databases.missing(f"gone{k}") for k in range(2)]
    targets = write_targets(
        tmp_path / "fleet.toml",
        [Entry(f"gone-{k}", databases.target_url(name, secret=True)) for k, name in enumerate(gone)],
    )
    result = fleet("plan", "-c", hindsight_ini, "-t", str(targets), "--no-rehearsal")
    assert_failure(result, ExitCode.CONNECTION, "None of the first targets could be read", gone[0], gone[1])
    assert_not_shown(databases.secret_of(gone[0]), result.output)


def test_a_target_url_from_the_environment(
    tmp_path: Path, databases: Databases, hindsight_baseline: str, hindsight_ini: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = databases.create("env", template=hindsight_baseline)
    monkeypatch.setenv("FLEET_TENANT_A_URL", databases.target_url(name, secret=True))
    targets = write_targets(tmp_path / "fleet.toml", [Entry("tenant-a", url_env="FLEET_TENANT_A_URL")])

    result = fleet("plan", "-c", hindsight_ini, "-t", str(targets), "--format", "json", "--no-rehearsal")

    assert result.exit_code == ExitCode.OK, result.output
    plan = by_name(document(result, "fleet_plan"))
    assert plan["tenant-a"]["current"] == [BASELINE] and len(plan["tenant-a"]["pending"]) == 7
    assert_not_shown(databases.secret_of(name), result.output)

    write_targets(
        targets,
        [Entry("tenant-a", url_env="FLEET_TENANT_A_URL"), Entry("tenant-b", url_env="FLEET_TENANT_B_URL")],
    )
    missing = fleet("plan", "-c", hindsight_ini, "-t", str(targets), "--no-rehearsal")
    assert_failure(
        missing, ExitCode.CONFIG, "target 'tenant-b' takes its URL from $FLEET_TENANT_B_URL, which is not set"
    )
    monkeypatch.setenv("FLEET_TENANT_B_URL", "  ")
    blank = fleet("plan", "-c", hindsight_ini, "-t", str(targets), "--no-rehearsal")
    assert_failure(blank, ExitCode.CONFIG, "$FLEET_TENANT_B_URL, which is not set (or empty)")


URL = f"postgresql://postgres:{SECRET}@127.0.0.1:1/never_connected"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        pytest.param(
            f'[[targets]]\nname = "a"\nurl = "{URL}"\n[[targets]]\nname = "a"\nurl = "{URL}"\n',
            "the target name 'a' is used twice; names must be unique",
            id="duplicate-names",
        ),
        pytest.param(
            '[[targets]]\nname = "a"\ngroup = "canary"\n',
            'target \'a\' needs url = "postgresql://..." or url_env = "VARIABLE" (one of them)',
            id="no-url",
        ),
        pytest.param(
            f'[[targets]]\nname = "a"\nurl = "{URL}"\nurl_env = "A_URL"\n',
            'target \'a\' needs url = "postgresql://..." or url_env = "VARIABLE" (one of them)',
            id="url-and-url-env",
        ),
        pytest.param(f'[[targets]]\nurl = "{URL}"\n', "[[targets]] #1 needs a name", id="no-name"),
        pytest.param(
            f'[[targets]]\nname = "a"\nurls = "{URL}"\n', "[[targets]] #1 has unknown key urls", id="unknown-key"
        ),
        pytest.param(f'[[targets]\nname = "a"\nurl = "{URL}"\n', "is not a valid TOML file", id="not-toml"),
        pytest.param("", "names no target", id="empty"),
    ],
)
def test_a_bad_targets_file_is_refused_before_anything_connects(
    toml: str, message: str, tmp_path: Path, hindsight_ini: str
) -> None:
    targets = tmp_path / "fleet.toml"
    targets.write_text(toml)
    for command in ("plan", "up", "status"):
        result = fleet(command, "-c", hindsight_ini, "-t", str(targets), *(["--yes"] if command == "up" else []))
        assert_failure(result, ExitCode.CONFIG, message)
        assert_not_shown(SECRET, result.output)


def test_no_targets_file_says_how_to_write_one(hindsight_ini: str) -> None:
    result = fleet("plan", "-c", hindsight_ini)
    assert_failure(result, ExitCode.CONFIG, "No targets file at fleet.toml", "[[targets]]", 'url_env = "')
    assert "Traceback" not in flatten(result.output)


def test_the_canary_is_the_canary_group_else_the_target_with_the_most_data_touched(
    tmp_path: Path, databases: Databases, hindsight_baseline: str, hindsight_ini: str
) -> None:
    names = {t: databases.create(f"canary_{t}", template=hindsight_baseline) for t in ("small", "big", "grouped")}
    # Memory blocks: the first revision renames a column of that table, so the plan touches it.
    dbstate.execute(
        databases.sql_url(names["big"]),
        "INSERT INTO agents (id, name) VALUES ('00000000-0000-0000-0000-0000000000a1', 'Big');"
        "INSERT INTO memory_blocks (agent_id, content) SELECT '00000000-0000-0000-0000-0000000000a1', "
        "repeat('memory ', 50) || g FROM generate_series(1, 2000) g",
    )
    entries = [Entry(t, databases.target_url(n), group="canary" if t == "grouped" else None) for t, n in names.items()]
    targets = write_targets(tmp_path / "fleet.toml", entries)
    plan = ["plan", "-c", hindsight_ini, "-t", str(targets), "--no-rehearsal", "--format", "json"]

    def canaries(*args: str) -> list[str]:
        result = fleet(*plan, *args)
        assert result.exit_code == ExitCode.OK, result.output
        data = document(result, "fleet_plan")
        return list(data["canaries"])

    assert canaries() == ["grouped"]
    assert canaries("--canary", "largest") == ["big"]
    assert canaries("--canary", "small", "--canary", "big") == ["small", "big"]
    sizes = {t["name"]: t["touched_bytes"] for t in document(fleet(*plan), "fleet_plan")["targets"]}
    assert sizes["big"] > sizes["small"] and sizes["big"] > sizes["grouped"], sizes
    unknown = fleet(*plan, "--canary", "nobody")
    assert_failure(unknown, ExitCode.CONFIG, "names no target 'nobody' (asked by --canary)")
