"""The command itself: the installed console script, help, version, lazy imports, the embedded default."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hindsight_migrate import __version__
from tests.conftest import flatten, invoke

CONSOLE_SCRIPT = shutil.which("hindsight-migrate") or str(Path(sys.executable).parent / "hindsight-migrate")


def _run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(
        [CONSOLE_SCRIPT, *args],
        cwd=cwd,
        env={**base, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"hindsight-migrate {__version__}"


def test_python_dash_m_runs_the_same_app(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hindsight_migrate", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"hindsight-migrate {__version__}"


@pytest.mark.parametrize("command", ["bootstrap", "history", "up"])
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert "--config" in result.output and "--url" in result.output


def test_no_command_shows_usage() -> None:
    result = invoke()
    assert "Usage" in result.output
    assert "bootstrap" in result.output and "history" in result.output


def test_unknown_command_is_a_usage_error() -> None:
    result = invoke("upgrade-everything")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "argv", [["--help"], ["bootstrap", "--help"], ["history", "--help"], ["up", "--help"], ["--version"]]
)
def test_help_does_not_import_sqlalchemy_or_alembic(argv: list[str]) -> None:
    probe = (
        "import sys\n"
        "from hindsight_migrate.cli import main\n"
        f"sys.argv = ['hindsight-migrate', *{argv!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic', 'psycopg'))\n"
        "sys.stderr.write('HEAVY:' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert "HEAVY:" in result.stderr, result.stderr
    assert result.stderr.split("HEAVY:")[-1].strip() == ""


@pytest.mark.parametrize("argv", [["history"], ["up", "--dry-run", "--no-rehearsal"], ["status"]])
def test_a_synchronous_project_never_loads_sqlalchemys_asyncio_extension(
    argv: list[str], hindsight_project: Path, database_url: str
) -> None:
    """It takes longer to import than env.py takes to run; only an env.py that imports it pays for it (the async
    templates' tests show its factories still hand the connection over)."""
    probe = (
        "import sys\n"
        "from hindsight_migrate.cli import main\n"
        f"sys.argv = ['hindsight-migrate', '--url', {database_url!r}, *{argv!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('LOADED:' + str('sqlalchemy.ext.asyncio' in sys.modules) + ',' + "
        "str('alembic.runtime.migration' in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, cwd=hindsight_project
    )
    assert result.stderr.split("LOADED:")[-1].strip() == "False,True", result.stdout + result.stderr


def test_console_script_bootstraps_and_reports_history(hindsight_project: Path, database_url: str) -> None:
    bootstrap = _run("--url", database_url, "bootstrap", "--yes", cwd=hindsight_project)
    assert bootstrap.returncode == 0, bootstrap.stdout + bootstrap.stderr
    assert "Bootstrapped" in bootstrap.stdout

    history = _run("history", "--json", "--url", database_url, cwd=hindsight_project)
    assert history.returncode == 0, history.stderr
    data = json.loads(history.stdout)
    states = {entry["info"]["revision"]: entry["state"] for entry in data["entries"]}
    assert states["cd3fb603795c"] == "current"
    assert sum(state == "pending" for state in states.values()) == 7


def test_embedded_default_needs_no_database_url(hindsight_project: Path) -> None:
    """The README's first command: with no URL anywhere, `up --yes` bootstraps and upgrades the embedded server."""
    up = _run("up", "--yes", cwd=hindsight_project)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "embedded PostgreSQL" in up.stderr
    assert "Bootstrap first" in up.stdout
    assert (hindsight_project / ".hindsight" / "pgdata" / "PG_VERSION").is_file()
    assert (hindsight_project / ".hindsight" / ".gitignore").read_text().strip().endswith("*")

    # A second process finds the same data: the schema persisted, at the head.
    history = _run("history", "--json", cwd=hindsight_project)
    assert history.returncode == 0, history.stderr
    assert json.loads(history.stdout)["database"]["current"] == ["461838d94bcb"]
    again = _run("up", "--yes", cwd=hindsight_project)
    assert again.returncode == 0, again.stderr
    assert "Nothing to do" in again.stdout
    bootstrap = _run("bootstrap", "--yes", cwd=hindsight_project)
    assert bootstrap.returncode == 6, bootstrap.stderr


def test_help_shows_bracketed_words_instead_of_reading_them_as_markup() -> None:
    """Typer's help is Rich markup: "[tool.alembic]" and "[alembic]" vanished from --help as unknown tags."""
    result = invoke("--help")

    assert result.exit_code == 0, result.output
    said = flatten(result.output)
    assert "./pyproject.toml's [tool.alembic])" in said, result.output
    assert "instead of [alembic] (as alembic -n)" in said, result.output
