"""Input that is not quite right: an empty --url, a raw '@' in a password, a .env that does not parse,
a stdout that closes. Each gets a clear message and a documented exit code, and changes nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from hindsight_migrate.errors import ExitCode
from tests.conftest import assert_failure, bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.gates import GATE, GATE_KEY, GATE_LOCK_TIMEOUT, wait_for_apply_at_gate
from tests.harness.processes import cli_command, stop, subprocess_env
from tests.harness.projects import TINY_BASE, Rev, tiny_project


def test_an_empty_url_is_a_configuration_error_not_another_database(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ini = bootstrapped(tiny_project(tmp_path / "p", Rev("bbbb00000002", (TINY_BASE,))), database_url)
    before = dbstate.snapshot(database_url)
    # The URL that would otherwise be used: an empty --url must not fall through to it.
    monkeypatch.setenv("DATABASE_URL", database_url)

    before_flag = invoke("-c", ini, "--url", "", "up", "--yes")
    after_flag = invoke("-c", ini, "status", "--url", "")

    assert_failure(before_flag, ExitCode.CONFIG, "--url was given an empty value")
    assert_failure(after_flag, ExitCode.CONFIG, "--url was given an empty value")
    assert dbstate.snapshot(database_url) == before
    assert dbstate.alembic_version(database_url) == [TINY_BASE]


def test_a_raw_at_sign_in_a_password_is_refused_without_echoing_any_of_it(tmp_path: Path) -> None:
    ini = tiny_project(tmp_path / "p")
    started = time.monotonic()

    result = invoke("-c", str(ini), "--url", "postgresql://app:pa@ss-w0rd@db.internal/app", "status")

    assert_failure(result, ExitCode.CONFIG, "more than one '@' before the host", "percent-encoded", "%40")
    for fragment in ("pa@ss", "ss-w0rd", "w0rd@db", "pa@"):
        assert fragment not in result.output, result.output
    assert time.monotonic() - started < 10  # refused before any connection attempt (no DNS lookup)


def test_a_dotenv_that_does_not_parse_names_its_line(tmp_path: Path) -> None:
    project = tmp_path / "p"
    ini = tiny_project(project)
    (project / ".env").write_text('OTHER=1\nDATABASE_URL="postgresql://postgres@127.0.0.1/x\nMORE=2\n')

    result = subprocess.run(
        [sys.executable, "-m", "hindsight_migrate", "-c", str(ini), "status"],  # no --url: the .env is read
        env=subprocess_env(),
        capture_output=True,
        text=True,
        cwd=project,
        timeout=60,
    )

    assert result.returncode == ExitCode.CONFIG, result.stdout + result.stderr
    said = flatten(result.stderr)
    assert f"{project / '.env'} line 2 cannot be parsed" in said, said
    assert "embedded" not in said.lower(), said  # no silent fallback to the embedded server
    assert "Traceback" not in result.stderr


def test_a_dotenv_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    project = tmp_path / "p"
    ini = tiny_project(project)
    (project / ".env").write_bytes(b"OTHER=1\nDATABASE_URL=postgresql://caf\xe9@127.0.0.1/x\n")

    result = subprocess.run(
        [sys.executable, "-m", "hindsight_migrate", "-c", str(ini), "status"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        cwd=project,
        timeout=60,
    )

    assert result.returncode == ExitCode.CONFIG, result.stdout + result.stderr
    assert "is not UTF-8 text (line 2)" in flatten(result.stderr), result.stderr
    assert "Internal error" not in result.stderr and "Traceback" not in result.stderr


def test_a_stdout_closed_before_the_plan_is_shown_changes_nothing(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p", Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE t (id int)")')
        ),
        database_url,
    )
    process = subprocess.Popen(
        cli_command(ini, database_url, "up", "--yes"),
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # as `| head -c 0` does
    err = process.stderr.read()
    process.wait(timeout=120)

    assert process.returncode == ExitCode.ABORTED, err
    assert "Nothing was changed: stdout was closed" in flatten(err), err
    assert "Traceback" not in err and "Internal error" not in err
    assert dbstate.alembic_version(database_url) == [TINY_BASE]


def test_a_stdout_closed_after_the_apply_committed_exits_0(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade=f'op.execute("CREATE TABLE t (id int)")\nop.execute({GATE!r})'),
            settings=GATE_LOCK_TIMEOUT,
        ),
        database_url,
    )
    engine = create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    process = None
    try:
        with engine.connect() as gate:
            gate.execute(text("SELECT pg_advisory_lock(:key)"), {"key": GATE_KEY})
            process = subprocess.Popen(
                cli_command(ini, database_url, "up", "--yes"),
                env=subprocess_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tmp_path,
            )
            wait_for_apply_at_gate(database_url, process)  # the plan is shown; the apply runs
            assert process.stdout is not None
            process.stdout.close()  # the reader goes away before the result is printed
            gate.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": GATE_KEY})
            _, err = process.communicate(timeout=120)
    finally:
        engine.dispose()
        stop(process)

    assert process.returncode == ExitCode.OK, err
    assert "Traceback" not in err and "Internal error" not in err
    assert dbstate.alembic_version(database_url) == ["bbbb00000002"]
    outcomes = dbstate.query(database_url, "SELECT outcome FROM hindsight_migrate.apply_log WHERE command = 'up'")
    assert outcomes == [("succeeded",)], outcomes


def test_a_missing_revision_template_is_named_not_an_internal_error(tmp_path: Path, database_url: str) -> None:
    # Two heads to merge, and no migrations/script.py.mako (tiny projects have none).
    ini = str(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,)),
            Rev("cccc00000003", (TINY_BASE,)),
        )
    )
    versions = tmp_path / "p" / "migrations" / "versions"
    before = sorted(path.name for path in versions.iterdir())

    new = invoke("-c", ini, "--url", database_url, "new", "hand written", "--empty")
    merge = invoke("-c", ini, "--url", database_url, "merge")

    for result in (new, merge):
        assert_failure(result, ExitCode.CONFIG, "The revision template migrations/script.py.mako does not exist")
        assert "Internal error" not in result.output
    assert sorted(path.name for path in versions.iterdir()) == before
