"""`hindsight-migrate check`: for CI, exit 13 with a readable list when code and database need attention.

A change to the models without a revision is a problem (found on a scratch database built at head, and
none is left behind); a clean project passes. Two heads are one too (tests/authoring/test_merge.py, with
the merge that fixes them), and so is a revision file edited after it was applied (tests/reports/test_status.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hindsight_migrate.errors import ExitCode
from tests.conftest import invoke
from tests.harness import dbstate
from tests.harness.hindsight_chain import at_head


def test_model_change_without_a_revision_fails_check(hindsight_project: Path, database_url: str) -> None:
    """Run as a process: the edited models must be imported fresh."""
    models = hindsight_project / "migrations" / "models.py"
    models.write_text(
        models.read_text().replace(
            "    display_name: Mapped[str | None] = mapped_column(String(200))\n",
            "    display_name: Mapped[str | None] = mapped_column(String(200))\n"
            "    nickname: Mapped[str | None] = mapped_column(String(50))\n",
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "hindsight_migrate", "--url", database_url, "check", "--json"],
        cwd=hindsight_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == ExitCode.CHECK_FAILED, result.stdout + result.stderr
    report = json.loads(result.stdout)
    models_problem = next(p for p in report["problems"] if p["kind"] == "models")
    assert any("users nickname" in detail for detail in models_problem["details"])
    assert dbstate.scratch_databases_of(database_url) == []


def test_check_passes_on_a_clean_project(hindsight_project: Path, database_url: str) -> None:
    ini = at_head(hindsight_project, database_url)
    result = invoke("-c", ini, "--url", database_url, "check")
    assert result.exit_code == 0, result.output
    assert "check passed" in result.stdout
