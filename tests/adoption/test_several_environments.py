"""Two Alembic environments in one database (two ini sections, each with its own version table, chosen with
-n as ``alembic -n NAME`` chooses them): each environment's status, check and history speak of its own runs
and revisions only, and the result is the one raw Alembic builds."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.conftest import assert_failure, flatten, invoke
from tests.harness.dbstate import query
from tests.harness.templates import PLACEHOLDER_URL, S1, T1, schema_of, two_environments


def _version(url: str, table: str) -> list[str]:
    return [row[0] for row in query(url, f"SELECT version_num FROM {table}")]


def _raw_alembic(folder: Path, url: str, *args: str) -> None:
    """``alembic -n NAME ...`` on a copy of the project whose sections name ``url``."""
    raw = folder.parent / "raw"
    if raw.exists():
        shutil.rmtree(raw)
    shutil.copytree(folder, raw, ignore=shutil.ignore_patterns("__pycache__", ".hindsight"))
    rendered = make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    ini = raw / "alembic.ini"
    ini.write_text(ini.read_text().replace(PLACEHOLDER_URL, rendered.replace("%", "%%")))
    done = subprocess.run([sys.executable, "-m", "alembic", *args], cwd=raw, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_two_environments_in_one_database_each_report_only_their_own(
    tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    ini = two_environments(tmp_path / "p")

    def tool(name: str, *args: str) -> tuple[int, str]:
        result = invoke("-c", str(ini), "-n", name, "--url", database_url, *args)
        return result.exit_code, result.output

    code, output = tool("shared", "up", "--yes")
    assert code == 0, output

    # The tenant environment has applied nothing: behind, with its own revision pending, not "diverged" over
    # the shared one's revision, and no last apply of the shared environment's.
    code, output = tool("tenant", "status")
    said = flatten(output)
    assert code == 10, output
    assert f"Pending: {T1}" in said and S1 not in said and "Last apply" not in said, output
    code, output = tool("tenant", "check")
    assert code == 0, output

    code, output = tool("tenant", "up", "--yes")
    assert code == 0, output
    for name, revision in (("shared", S1), ("tenant", T1)):
        code, output = tool(name, "status")
        assert code == 0, output
        other = T1 if revision == S1 else S1
        assert other not in flatten(output), output
        code, output = tool(name, "check")
        assert code == 0, output
        code, output = tool(name, "history")
        assert code == 0, output
        assert "Last apply: up" in flatten(output) and f"base → {revision}" in flatten(output), output

    raw_url = make_database("raw")
    _raw_alembic(ini.parent, raw_url, "-n", "shared", "upgrade", "head")
    _raw_alembic(ini.parent, raw_url, "-n", "tenant", "upgrade", "head")
    for table, revision in (("shared_version", S1), ("tenant_version", T1)):
        assert _version(database_url, table) == _version(raw_url, table) == [revision]
    assert schema_of(database_url) == schema_of(raw_url)


def test_without_an_alembic_section_the_error_names_the_sections_to_choose_from(tmp_path: Path) -> None:
    ini = two_environments(tmp_path / "p")

    result = invoke("-c", str(ini), "history", "--offline")

    assert_failure(
        result,
        3,
        "Its sections with a script_location: [shared], [tenant]. Name one with -n NAME "
        "(hindsight-migrate -n shared ...), as alembic -n NAME does.",
    )
