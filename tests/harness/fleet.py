"""Fleets for the tests: target databases (copies of a template, made cheaply), targets files, the fleet
commands in-process or as processes, and what each target holds, read with the tests' own SQL.

Every database is named ``hmtest_fleet_<label>_<hash>`` on the test server (the embedded one, or
HINDSIGHT_TEST_DATABASE_URL's) and dropped by its :class:`Databases` when the test ends. Targets files name
them with a plain ``postgresql://`` URL on that server; :func:`Databases.target_url` with ``secret=True``
puts a password in it (trust auth ignores it), which no output and no row the tool writes may contain.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool
from typer.testing import Result

from hindsight_migrate.render.data import DocumentKind, load_schema
from tests.conftest import invoke
from tests.harness import dbstate
from tests.harness.processes import subprocess_env
from tests.harness.projects import TINY_BASE, TINY_V1, Rev, tiny_project

SECRET = "fleet-secret-pw"  # in the URL of some targets when the server has no password of its own
LEDGER = "hindsight_migrate.fleet_ledger"
CONTROL = "hindsight_migrate.fleet_targets"


class Databases:
    """Databases made for one test (or for the session's templates), all dropped by :meth:`drop_all`."""

    def __init__(self, admin_engine: Engine, server_url: str) -> None:
        self.admin_engine = admin_engine
        self.server = make_url(server_url)
        self.created: list[str] = []

    def create(self, label: str, *, template: str | None = None) -> str:
        """A new database (empty, or a copy of ``template``); its name."""
        name = f"hmtest_fleet_{re.sub(r'[^a-z0-9]+', '_', label.lower())[:20]}_{uuid.uuid4().hex[:8]}"
        self.created.append(name)
        copy = f' TEMPLATE "{template}"' if template else ""
        with self.admin_engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        return name

    def missing(self, label: str = "missing") -> str:
        """The name of a database that does not exist (never created)."""
        return f"hmtest_fleet_{label}_{uuid.uuid4().hex[:8]}"

    def sql_url(self, name: str) -> str:
        """The URL the tests' own SQL uses (psycopg, the server's own password if it has one)."""
        return self.server.set(database=name).render_as_string(hide_password=False)

    def target_url(self, name: str, *, secret: bool = False) -> str:
        """The URL a targets file gives: ``postgresql://`` on the test server; with ``secret``, a password in it."""
        url = self.server.set(drivername="postgresql", database=name)
        if secret and not url.password:
            url = url.set(password=SECRET)
        return url.render_as_string(hide_password=False)

    def secret_of(self, name: str) -> str:
        """The password :meth:`target_url` puts in a ``secret`` URL of ``name``."""
        password = make_url(self.target_url(name, secret=True)).password
        assert password
        return str(password)

    def drop_all(self) -> None:
        with self.admin_engine.connect() as connection:
            for name in reversed(self.created):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.clear()


# -- targets files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One [[targets]] entry: ``url`` or ``url_env`` (or neither, to test the refusal)."""

    name: str | None
    url: str | None = None
    url_env: str | None = None
    group: str | None = None
    schema: str | None = None


def _toml(value: str | list[str]) -> str:
    return json.dumps(value)  # a JSON string (or list of them) is a TOML basic string (array)


def targets_toml(
    entries: Iterable[Entry] = (),
    *,
    control: dict[str, str] | None = None,
    schemas: dict[str, str | list[str]] | None = None,
) -> str:
    lines: list[str] = []
    for entry in entries:
        lines.append("[[targets]]")
        for key in ("name", "url", "url_env", "group", "schema"):
            value = getattr(entry, key)
            if value is not None:
                lines.append(f"{key} = {_toml(value)}")
        lines.append("")
    for table, values in (("control", control), ("schemas", schemas)):
        if values is not None:
            lines.append(f"[{table}]")
            lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
            lines.append("")
    return "\n".join(lines)


def write_targets(
    path: Path,
    entries: Iterable[Entry] = (),
    *,
    control: dict[str, str] | None = None,
    schemas: dict[str, str | list[str]] | None = None,
) -> Path:
    path.write_text(targets_toml(entries, control=control, schemas=schemas), encoding="utf-8")
    return path


# -- running the fleet commands -------------------------------------------------------------------


def fleet(*args: str) -> Result:
    """``hindsight-migrate fleet ARGS`` in-process (fleet up's workers are spawned processes even so)."""
    return invoke("fleet", *args)


def document(result: Result | subprocess.CompletedProcess[str], kind: str) -> dict[str, Any]:
    """The JSON document a ``--format json`` run printed on stdout, of the given kind."""
    stdout = result.stdout
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError as err:
        raise AssertionError(f"not a JSON document ({err}):\n{stdout}\n{getattr(result, 'stderr', '')}") from err
    assert isinstance(data, dict) and data.get("kind") == kind, data
    # Every fleet document the tests read is also checked against the schema the package ships for its kind.
    validator = Draft202012Validator(load_schema(cast("DocumentKind", kind)))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert errors == [], errors
    return data


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A document's ``targets``, by name (every name once)."""
    targets = data["targets"]
    names = [t["name"] for t in targets]
    assert len(names) == len(set(names)), f"a target is listed twice: {names}"
    return {t["name"]: t for t in targets}


def start_fleet(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """The fleet command as a process in a process group of its own (its workers with it): killpg ends them all."""
    return subprocess.Popen(
        [sys.executable, "-m", "hindsight_migrate", "fleet", *args],
        cwd=cwd,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def assert_not_shown(secret: str, *texts: str) -> None:
    for shown in texts:
        assert secret not in shown, f"the password was shown:\n{shown}"


# -- what a target holds ------------------------------------------------------------------------------


def _exists(url: str, table: str) -> bool:
    return bool(dbstate.query(url, "SELECT to_regclass(:table) IS NOT NULL", table=table)[0][0])


def version(url: str, schema: str = "public") -> list[str] | None:
    """The version table's rows (in ``schema``), sorted; None when there is none."""
    if not _exists(url, f'"{schema}".alembic_version'):
        return None
    return sorted(row[0] for row in dbstate.query(url, f'SELECT version_num FROM "{schema}".alembic_version'))


def _rows_of(url: str, table: str, columns: str, order: str) -> list[tuple[Any, ...]]:
    return dbstate.query(url, f"SELECT {columns} FROM {table} ORDER BY {order}") if _exists(url, table) else []


def write(url: str, sql: str, **params: Any) -> None:
    """One statement of the test's own, with bound parameters, committed."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text(sql), params)
    finally:
        engine.dispose()


def ledger(url: str) -> dict[str, tuple[Any, ...]]:
    """The fleet ledger in a target: target -> (state, rollout, heads, error, run_by, updated_at)."""
    rows = _rows_of(url, LEDGER, "target, state, rollout, heads, error, run_by, updated_at", "target")
    return {row[0]: tuple(row[1:]) for row in rows}


def control_rows(url: str) -> list[tuple[Any, ...]]:
    """The control database's rows: (rollout, target, state, current, error, shard), by target."""
    return _rows_of(url, CONTROL, "rollout, target, state, current, error, shard", "target, rollout")


def tool_rows_text(url: str) -> str:
    """Every row the tool wrote in a database (its audit and its ledgers), as text: for a password check."""
    texts = []
    for table in ("apply_log", "applied_revisions", "bootstrap_log", "fleet_ledger", "fleet_targets"):
        qualified = f"hindsight_migrate.{table}"
        if _exists(url, qualified):
            texts += [str(row[0]) for row in dbstate.query(url, f"SELECT t::text FROM {qualified} t")]
    return "\n".join(texts)


def applied_counts(url: str) -> dict[str, int]:
    """How many times each revision of :func:`fleet_chain` ran in a target (its upgrade logs a row, in the
    revision's own transaction: a revision rolled back logs nothing)."""
    return {
        str(row[0]): int(row[1]) for row in dbstate.query(url, "SELECT revision, count(*) FROM applied_log GROUP BY 1")
    }


def wait_until(
    condition: Callable[[], bool], what: str, *, timeout: float = 60, process: subprocess.Popen[str] | None = None
) -> None:
    """Poll ``condition()`` until it is true; fail (saying ``what``) after ``timeout`` or when ``process`` ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            out, err = process.communicate(timeout=10)
            raise AssertionError(f"the run ended (exit {process.returncode}) before {what}:\n{out}\n{err}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting until {what}")


# -- a small project for the fault tests --------------------------------------------------------------

FLEET_V1 = TINY_V1 + "CREATE TABLE applied_log (revision text NOT NULL);\n"
CHAIN = ("f1ee00000001", "f1ee00000002", "f1ee00000003")  # after TINY_BASE, each logs itself in applied_log
CHAIN_HEAD = CHAIN[-1]


def gate_sql(gate: str, database: str) -> str:
    """A statement that, on ``database`` only, waits while a session named ``gate`` is connected anywhere on
    the server (elsewhere it does nothing)."""
    return (
        f"DO $$ BEGIN IF current_database() = '{database}' THEN WHILE EXISTS (SELECT 1 FROM pg_stat_activity "
        f"WHERE application_name = '{gate}') LOOP PERFORM pg_sleep(0.02); PERFORM pg_stat_clear_snapshot(); "
        "END LOOP; END IF; END $$"
    )


def at_gate(url: str, gate: str) -> bool:
    """Whether a session on ``url``'s database is waiting at ``gate`` now."""
    rows = dbstate.query(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
        "AND pid <> pg_backend_pid() AND position(:gate IN query) > 0",
        gate=f"application_name = '{gate}'",
    )
    return bool(rows[0][0])


def fleet_chain(folder: Path, *, gates: dict[str, tuple[str, str]] | None = None) -> Path:
    """TINY_BASE (V1: FLEET_V1) and CHAIN; revision k logs itself in applied_log, in its own transaction.
    ``gates``: revision -> (gate, database): that revision then waits at the gate on that database."""
    revisions = []
    parent = TINY_BASE
    for revision in CHAIN:
        upgrade = f"op.execute(\"INSERT INTO applied_log VALUES ('{revision}')\")"
        if gates and revision in gates:
            upgrade += f"\nop.execute({gate_sql(*gates[revision])!r})"
        revisions.append(Rev(revision, (parent,), message=f"log {revision}", upgrade=upgrade))
        parent = revision
    return tiny_project(folder, *revisions, v1_sql=FLEET_V1)
