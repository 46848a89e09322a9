"""examples/ci/migrations.yml: the commands the workflow runs work, against a fresh database.

The workflow is read as the file it is (no YAML library: the project does not depend on one, and
this reader takes only what it needs: each step's name, id, ``if``, ``env`` and ``run`` script).
The steps that run hindsight-migrate are run as GitHub runs them — the same script, with
``bash -e``, ``$GITHUB_OUTPUT`` and the job's environment, ``DATABASE_URL`` pointing at this
test's own database — in a copy of Hindsight's project; then their exit codes and the markdown
they left for the comment are checked.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO
from tests.harness import dbstate
from tests.harness.markdown import fences, pr_comment, summary_texts, tables

WORKFLOW = REPO / "examples" / "ci" / "migrations.yml"


@dataclass
class Step:
    keys: dict[str, str] = field(default_factory=dict)  # name, id, if, uses, run (a block, dedented)
    env: dict[str, str] = field(default_factory=dict)
    with_: dict[str, str] = field(default_factory=dict)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block(lines: list[str], start: int, parent: int) -> tuple[str, int]:
    """The lines after ``start`` indented deeper than ``parent``, dedented: a ``|`` block's text."""
    body: list[str] = []
    index = start
    while index < len(lines) and (not lines[index].strip() or _indent(lines[index]) > parent):
        body.append(lines[index])
        index += 1
    while body and not body[-1].strip():
        body.pop()
    depth = min((_indent(line) for line in body if line.strip()), default=0)
    return "\n".join(line[depth:] for line in body) + "\n", index


def _mapping(lines: list[str], start: int, parent: int) -> tuple[dict[str, str], int]:
    """``key: value`` lines indented deeper than ``parent`` (a step's env: or with:)."""
    found: dict[str, str] = {}
    index = start
    while index < len(lines) and (not lines[index].strip() or _indent(lines[index]) > parent):
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(":")
        if value.strip() in ("|", ">-"):
            found[key], index = _block(lines, index, _indent(lines[index - 1]))
        else:
            found[key] = value.strip().strip('"')
    return found, index


def job_env(text: str) -> dict[str, str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line == "    env:")  # the job's own env
    return _mapping(lines, start + 1, 4)[0]


def steps(text: str) -> list[Step]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "steps:")
    base = _indent(lines[start])
    found: list[Step] = []
    index = start + 1
    while index < len(lines):
        line = lines[index]
        if line.strip() and _indent(line) <= base:
            break
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            index += 1
            continue
        if stripped.startswith("- "):
            found.append(Step())
            key_indent = _indent(line) + 2
            stripped = stripped[2:]
        else:
            key_indent = _indent(line)
        key, _, value = stripped.partition(":")
        value = value.strip()
        index += 1
        if value == "|":
            found[-1].keys[key], index = _block(lines, index, key_indent)
        elif value == "" and key in ("env", "with"):
            mapping, index = _mapping(lines, index, key_indent)
            if key == "env":
                found[-1].env = mapping
            else:
                found[-1].with_ = mapping
        else:
            found[-1].keys[key] = value.strip('"')
    return found


def hindsight_migrate_commands(step: Step) -> list[list[str]]:
    """The hindsight-migrate command lines of a step's script, as words (redirections left out)."""
    commands = []
    for line in step.keys.get("run", "").splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "hindsight-migrate":
            redirected = next((i for i, word in enumerate(words) if word.startswith(">")), len(words))
            commands.append(words[:redirected])
    return commands


def test_the_workflow_runs_on_pull_requests_with_a_postgres_service_and_posts_a_comment() -> None:
    text = WORKFLOW.read_text()
    assert re.search(r"^on:\n  pull_request:", text, re.MULTILINE)
    assert re.search(r"^    services:\n      postgres:\n        image: postgres:\d+", text, re.MULTILINE)
    assert job_env(text)["DATABASE_URL"].startswith("postgresql://postgres:postgres@localhost:5432/")
    by_name = {step.keys.get("name", step.keys.get("uses", "")): step for step in steps(text)}
    assert "pip install -e ." in by_name["Install"].keys["run"]
    comment = by_name["Comment on the pull request"]
    assert comment.keys["uses"].startswith("actions/github-script@")
    assert 'readFileSync("check.md"' in comment.with_["script"] and 'readFileSync("plan.md"' in comment.with_["script"]
    commands = [command for step in steps(text) for command in hindsight_migrate_commands(step)]
    assert commands == [
        ["hindsight-migrate", "check", "--format", "markdown"],
        ["hindsight-migrate", "up", "--dry-run", "--detailed-exitcode", "--format", "markdown"],
    ]


def test_the_workflows_commands_pass_on_a_fresh_database_and_leave_a_comment_that_parses(
    hindsight_project: Path, database_url: str, tmp_path: Path
) -> None:
    text = WORKFLOW.read_text()
    outputs = tmp_path / "github_output"
    outputs.write_text("")
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        **job_env(text),
        "DATABASE_URL": database_url,  # this test's own database, empty, as the service's is
        "GITHUB_OUTPUT": str(outputs),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # the installed console script
    }
    ran: dict[str, subprocess.CompletedProcess[str]] = {}
    for step in steps(text):
        if not hindsight_migrate_commands(step):
            continue  # checkout, setup-python, install: done already; the comment needs GitHub
        script = tmp_path / f"{step.keys['id']}.sh"
        script.write_text(step.keys["run"])
        # As GitHub runs a `run:` step on ubuntu: bash -e {0}, in the repository's root.
        ran[step.keys["id"]] = subprocess.run(
            ["bash", "-e", str(script)],
            cwd=hindsight_project,
            env={**env, **step.env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert set(ran) == {"check", "plan"}
    for step_id, process in ran.items():
        assert process.returncode == 0, f"{step_id}: {process.stdout}{process.stderr}"  # set +e: codes are outputs
        assert process.stdout == ""  # the document went to the file, the rest to the log (stderr)
        assert "Database:" in process.stderr

    codes = [line.split("=", 1)[1] for line in outputs.read_text().splitlines()]
    assert codes == ["0", "2"], codes  # check passed; the plan changes the database (bootstrap + 7)
    gate = next(step for step in steps(text) if step.keys.get("name") == "Gate").keys["if"]
    assert "steps.check.outputs.exit_code != '0'" in gate and 'fromJSON(\'["0", "2", "3"]\')' in gate

    check = pr_comment((hindsight_project / "check.md").read_text())
    assert summary_texts(check)[0] == "Check" and summary_texts(check)[1].startswith("check passed for ")
    plan_text = (hindsight_project / "plan.md").read_text()
    plan = pr_comment(plan_text)
    visible = summary_texts(plan)
    assert visible[0] == "Upgrade plan"
    assert visible[1].startswith("Upgrade plan for ") and "bootstrap, then 7 revisions" in visible[1]
    assert any(row[1:3] == ["461838d94bcb", "widen agent_transcripts.token_count to bigint"] for row in tables(plan)[0])
    assert len(fences(plan)) == 7
    # The comment step finds its earlier comment by the marker the document ends with.
    comment = next(step for step in steps(text) if step.keys.get("name") == "Comment on the pull request")
    marker = re.search(r'const marker = "([^"]+)";', comment.with_["script"])
    assert marker is not None and plan_text.rstrip().endswith(marker.group(1))
    # A dry run: the service's database is left as it was.
    assert dbstate.tables(database_url) == set()
