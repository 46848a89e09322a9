"""Runs the project's env.py: online on a connection the tool owns, or offline to render SQL.

Online, the connection is handed over (:mod:`.handoff`): in ``config.attributes["connection"]``
and through every engine env.py builds, after checking that env.py asks for the database the
tool resolved. Each revision is identified by the ``step`` Alembic reports to
``on_version_apply``, not by its position. Alembic's log lines stay out of the tool's output
unless ``--verbose``, even when env.py calls ``fileConfig``.
"""

from __future__ import annotations

import configparser
import functools
import io
import logging
import logging.config
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import RevisionStep
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from hindsight_migrate.alembic_api import handoff
from hindsight_migrate.alembic_api.translate import alembic_errors
from hindsight_migrate.errors import ConfigError, ProjectCodeFailed, Refused, Section
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.postgres.driver_semantics import DriverSemantics, OutsideTransaction
from hindsight_migrate.revisions import RevisionInfo, VersionTable

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from hindsight_migrate.alembic_api.graph import RevisionGraph
    from hindsight_migrate.alembic_api.project import Workspace

# Offline rendering needs only the dialect; env.py files read the URL from sqlalchemy.url.
_OFFLINE_URL = "postgresql+psycopg://"
# Put in sqlalchemy.url while probing an env.py that refused to go on without one: never connected to.
_STAND_IN_DATABASE = "hindsight_migrate_probe"
_STAND_IN_URL = f"postgresql+psycopg://hindsight-migrate@localhost/{_STAND_IN_DATABASE}"


class EnvironmentRunner:
    """env.py, run by the tool: reads the version table, stamps, runs revisions, renders offline SQL."""

    def __init__(self, workspace: Workspace, graph: RevisionGraph) -> None:
        self.workspace = workspace
        self.graph = graph
        self._running: tuple[str, bool] | None = None  # (revision, downgrade) being run, for error messages
        # What env.py configured, learned at each run of it (every command runs it before it needs this).
        self.version_table = VersionTable()
        # The project's statements that ran outside any transaction in the last run_revisions().
        self.outside_transactions: tuple[OutsideTransaction, ...] = ()

    @property
    def env_py(self) -> Path:
        return Path(self.workspace.directory.dir) / "env.py"

    def _run_env(self) -> None:
        """Alembic's run_env(), after checking env.py is there (Alembic's ImportError would read as our bug)."""
        env_py = self.env_py
        if not env_py.is_file():
            raise ConfigError(
                f"There is no env.py in {env_py.parent} (the migrations folder script_location names in "
                f"{self.workspace.settings.config_path}). Alembic runs env.py to reach the database and to render "
                "SQL: restore it (alembic init writes one), or point script_location at the folder that has it."
            )
        flask = self.workspace.settings.flask
        if flask is None:
            self.workspace.directory.run_env()
            return
        from hindsight_migrate.alembic_api.flask_app import app_context  # lazy: Flask-Migrate projects only

        with app_context(flask):  # made anew each run, inside the handoff: its engine lends this run's connection
            self.workspace.directory.run_env()

    # -- probing ------------------------------------------------------------------------

    def url_env_py_asks_for(self) -> str | None:
        """Connects nowhere, writes nothing: the URL env.py builds its engine with, or None if it names none.

        env.py runs online, as ``alembic upgrade`` runs it, up to the engine factory it calls (see
        :func:`.handoff.probe`); what it raises before that is the project's error, with its line.
        """
        try:
            return self._probe()
        except ProjectCodeFailed as failed:
            # Many env.py files stop when sqlalchemy.url is empty ("No database URL: set DATABASE_URL"),
            # the URL the tool fills in. Given a stand-in there, such an env.py hands exactly it over: it
            # names no database of its own. Any other outcome leaves env.py's error as it was.
            with self._main_url(_STAND_IN_URL):
                try:
                    asked = self._probe()
                except ProjectCodeFailed:
                    raise failed from None
            if asked is None or _database_of(asked) != _STAND_IN_DATABASE:
                raise
            return None

    @contextmanager
    def _main_url(self, url: str) -> Iterator[None]:
        config = self.workspace.config
        saved = config.get_main_option("sqlalchemy.url")
        config.set_main_option("sqlalchemy.url", url)
        try:
            yield
        finally:
            if saved is None:
                config.file_config.remove_option(config.config_ini_section, "sqlalchemy.url")
            else:
                config.set_main_option("sqlalchemy.url", saved.replace("%", "%%"))

    def _probe(self) -> str | None:
        def nothing(heads: Any, context: Any) -> list[Any]:
            return []

        # No bytecode written next to env.py (or a module it imports) by a run that only looks.
        writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
        try:
            with self._translated(), self._quiet_alembic(), self._environment(nothing):
                return handoff.probe(self.env_py, self._run_env)
        finally:
            sys.dont_write_bytecode = writes_bytecode

    # -- online ---------------------------------------------------------------------------

    def current_heads(self, connection: Connection) -> tuple[str, ...]:
        """Read-only: the revisions in the database's version table (empty if it has none).

        A version table Alembic could not have written (the same revision twice, a revision and
        one it stands on, a value that is not a revision id) is refused here, naming the table and
        its rows: every command would otherwise act on, or report, a position that does not exist.
        An env.py that migrates several schemas (one version table each) is at the revisions all
        its version tables hold; see :meth:`version_schemas`.
        """
        return self.current_position(connection)[0]

    def current_position(self, connection: Connection) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Read-only: :meth:`current_heads`, and the schemas of the version tables in the order env.py
        configures them when it configures more than one (a multi-tenant env.py that loops over its
        schemas, one version table each; all at the same revisions, or refused), else ()."""
        rows_of: dict[str, list[Any]] = {}  # version table -> its rows, one entry per context.configure()
        schemas: list[str] = []
        table: list[str] = []

        def read(heads: Any, context: Any) -> list[Any]:
            schema = context.version_table_schema
            table.append(f"{schema}.{context.version_table}" if schema else context.version_table)
            schemas.append(schema or "")
            # The heads Alembic has just read from the version table, row by row: not read a second time.
            rows_of.setdefault(table[-1], []).extend(heads)
            return []

        # dont_mutate: without it, Alembic creates a missing version table even on a read.
        try:
            self._run_online(connection, read, dont_mutate=True)
        except DBAPIError as err:
            refused = _unreadable_version_table(err, table[-1] if table else "alembic_version", _role_of(connection))
            if refused is None:
                raise
            raise refused from err
        for name, rows in rows_of.items():
            problem = self._version_rows_problem(rows, name)
            if problem is not None:
                raise problem
        positions = {tuple(sorted(rows)) for rows in rows_of.values()}
        if len(positions) > 1:
            shown = "\n".join(f"{name}: {', '.join(sorted(rows)) or '(empty)'}" for name, rows in rows_of.items())
            raise Refused(
                f"env.py migrates {len(rows_of)} schemas, and their version tables are not at the same revisions: "
                "one plan cannot move them all. Nothing was changed. Bring them to one revision first (with "
                "Alembic, one schema at a time), then plan again.",
                sections=(Section("Version tables", shown),),
            )
        current = positions.pop() if positions else ()
        return current, tuple(schemas) if len(rows_of) > 1 else ()

    def _version_rows_problem(self, rows: list[Any], table: str) -> Refused | None:
        """Why the version table's rows cannot be a position in the graph, or None when they can."""
        if not rows:
            return None
        shown = ", ".join(repr(row) for row in rows)
        fix = (
            "alembic stamp --purge REV sets it to one revision "
            f"(or, in SQL: DELETE FROM {table}; INSERT INTO {table} VALUES ('REV'))"
        )
        odd = [row for row in rows if not isinstance(row, str)]
        if odd:
            return Refused(
                f"The version table {table} holds {', '.join(repr(row) for row in odd)}, which is not a revision id: "
                "its version_num column is not text. Alembic creates it as VARCHAR(32); this one was made or "
                "altered by hand. Nothing was changed. Make version_num a VARCHAR(32) holding the revision the "
                f"schema is at: {fix}.",
                sections=(Section(f"Rows of {table}", shown),),
            )
        graph = self.graph
        spaced = [row for row in rows if not row or row != row.strip() or any(c.isspace() for c in row)]
        spaced = [row for row in spaced if not graph.knows(row)]
        if spaced:
            meant = sorted({"".join(row.split()) for row in spaced if graph.knows("".join(row.split()))})
            hint = f" (did it mean {', '.join(meant)}?)" if meant else ""
            return Refused(
                f"The version table {table} holds {', '.join(repr(row) for row in spaced)}{hint}: a revision id "
                "is never empty and holds no spaces, so the row was written by hand. Nothing was changed. Set the "
                f"row to the revision the schema is at: {fix}.",
                sections=(Section(f"Rows of {table}", shown),),
            )
        twice = sorted({row for row in rows if rows.count(row) > 1})
        if twice:
            return Refused(
                f"The version table {table} holds {', '.join(twice)} more than once. Alembic keeps one row per "
                "head, under a primary key (alembic_version_pkc) that forbids this: the rows or the table were "
                "made by hand. Nothing was changed. Keep one row per head: "
                f"DELETE FROM {table}; INSERT INTO {table} VALUES ('{twice[0]}'), then restore the key "
                f"(ALTER TABLE {table} ADD PRIMARY KEY (version_num)).",
                sections=(Section(f"Rows of {table}", shown),),
            )
        known = [row for row in rows if graph.knows(row)] if len(rows) > 1 else []
        if len(known) > 1:
            below = sorted(
                {row for row in known for other in known if other != row and row in graph.ancestors((other,))}
            )
            if below:
                tops = sorted(set(known) - set(below))
                return Refused(
                    f"The version table {table} holds {', '.join(sorted(known))}, but {', '.join(below)} "
                    f"{'is' if len(below) == 1 else 'are'} below {', '.join(tops)} in the revision graph: one "
                    "row per head says it all, and Alembic never writes both. Nothing was changed. If the schema "
                    f"is at {', '.join(tops)}, remove the other row(s): "
                    + "; ".join(f"DELETE FROM {table} WHERE version_num = '{row}'" for row in below)
                    + ".",
                    sections=(Section(f"Rows of {table}", shown),),
                )
        return None

    def stamp(self, connection: Connection, revision: str) -> None:
        """Writes: sets the version table to ``revision`` inside the caller's transaction."""
        with self.online(connection):
            command.stamp(self.workspace.config, revision)

    def run_revisions(
        self,
        connection: Connection,
        revisions: Sequence[str],
        *,
        downgrade: bool,
        before_each: Callable[[str], None] | None = None,
        after_each: Callable[[str, Connection], None] | None = None,
    ) -> None:
        """Writes: ``revisions`` in order (upgrades, or downgrades of current heads), each in a transaction of its own.

        One run of env.py for them all, with ``transaction_per_migration`` on whatever env.py
        configures: each revision commits with its version-table update, so a failure leaves
        the database at the last revision that committed, and locks are released after each
        one instead of piling up to the end. The connection must not be in a transaction, so
        that ``autocommit_block()`` (``CREATE INDEX CONCURRENTLY``) works as Alembic intends;
        a connection already in one (a rehearsal on the target) runs them all inside it.
        ``before_each`` runs before a revision starts; ``after_each`` inside its transaction,
        right after the version table moved.
        """
        graph = self.graph

        # The project's driver decides how a COMMIT in a revision behaves (see driver_semantics).
        semantics = DriverSemantics(
            like_psycopg2=self.workspace.settings.database.project_driver == "psycopg2",
            version_table=self.version_table.name,
        )

        def steps(heads: Any, context: Any) -> Iterator[Any]:
            for revision in revisions:
                self._running = (revision, downgrade)
                semantics.revision = revision
                if before_each is not None:
                    before_each(revision)
                yield _step(graph.script.revision_map, graph.script_of(revision), downgrade=downgrade)

        def one_done(ctx: Any, step: Any, **_: Any) -> None:
            if after_each is not None and step.up_revision_id is not None:
                after_each(step.up_revision_id, ctx.connection)

        try:
            with (
                semantics.watching(connection),
                self.online(connection),
                self._environment(steps, after_each=one_done, per_revision=True),
            ):
                self._run_env()
        finally:
            self._running = None
            self.outside_transactions = tuple(semantics.outside)

    @contextmanager
    def online(self, connection: Connection) -> Iterator[None]:
        """Hand ``connection`` to env.py for the block: the attribute, the engine factories, errors translated."""
        config = self.workspace.config
        target = self.workspace.target
        assert target is not None, "bind_target() comes before any online run"
        try:
            with (
                handoff.handed_over(connection, target, self.env_py) as lent,
                self._translated(),
                self._quiet_alembic(),
            ):
                config.attributes["connection"] = lent
                yield
        finally:
            config.attributes.pop("connection", None)

    def _run_online(self, connection: Connection, fn: Callable[..., Iterable[Any]], **options: Any) -> None:
        with self.online(connection), self._environment(fn, **options):
            self._run_env()

    # -- offline --------------------------------------------------------------------------

    def offline_sql(self, revision: RevisionInfo, *, downgrade: bool = False) -> str:
        """The SQL one revision's upgrade (or downgrade) emits, in Alembic's offline mode; no database."""
        # Offline mode starts from these heads: the parents going up, the revision going down.
        start = (revision.revision,) if downgrade else revision.parents
        return self.offline_sql_path((revision,), start=start, downgrade=downgrade)[revision.revision]

    def offline_sql_path(
        self, revisions: Sequence[RevisionInfo], *, start: tuple[str, ...], downgrade: bool = False
    ) -> dict[str, str]:
        """The SQL each of ``revisions`` emits, in order from the heads ``start``, in one offline pass; no database.

        One run of env.py for the whole path: running it once per revision costs more than
        rendering the revision itself. Each revision's text ends where Alembic reports its
        version-table update, so it holds that revision's statements and nothing else.
        """
        graph = self.graph
        buffer = io.StringIO()
        texts: dict[str, str] = {}
        cut = [0]

        def steps(heads: Any, context: Any) -> Iterator[Any]:
            for revision in revisions:
                self._running = (revision.revision, downgrade)
                yield _step(graph.script.revision_map, graph.script_of(revision.revision), downgrade=downgrade)

        def one_done(ctx: Any, step: Any, **_: Any) -> None:
            texts[step.up_revision_id] = buffer.getvalue()[cut[0] :]
            cut[0] = buffer.tell()

        config = self.workspace.config
        saved_url = config.get_main_option("sqlalchemy.url")
        if not (saved_url or "").startswith(("postgresql", "postgres:")):
            # Empty, or Alembic's placeholder (driver://…): offline mode only needs the dialect.
            config.set_main_option("sqlalchemy.url", _OFFLINE_URL)
        try:
            with (
                handoff.offline(self.env_py),
                self._translated(),
                self._quiet_alembic(),
                self._environment(
                    steps,
                    after_each=one_done,
                    as_sql=True,
                    starting_rev=start or None,
                    destination_rev=revisions[-1].revision if revisions else None,
                    output_buffer=buffer,
                    transactional_ddl=False,
                ),
            ):
                self._run_env()
        finally:
            self._running = None
            config.set_main_option("sqlalchemy.url", (saved_url or "").replace("%", "%%"))
        return texts

    # -- shared ---------------------------------------------------------------------------

    def _doing(self) -> str:
        if self._running is None:
            return f"while env.py ran ({self.workspace.relative(self.env_py)})"
        revision, downgrade = self._running
        return f"in revision {revision}'s {'downgrade' if downgrade else 'upgrade'}()"

    @contextmanager
    def _translated(self) -> Iterator[None]:
        with alembic_errors(self.workspace.files, self._doing):
            yield

    @contextmanager
    def _quiet_alembic(self) -> Iterator[None]:
        """Keep Alembic's INFO lines ("Running upgrade …") out of the plan and the progress.

        Stock env.py files call ``logging.config.fileConfig(alembic.ini)``, whose [logger_alembic]
        is INFO: 1,500 such lines before a 288-revision plan. The project's logging config still
        applies (its own loggers are its business); only Alembic's and SQLAlchemy's chatter is
        held to warnings. ``--verbose`` (or ``--debug``) lets it through.
        """
        if self.workspace.settings.verbose:
            yield
            return
        original = logging.config.fileConfig

        def file_config(*args: Any, **kwargs: Any) -> None:
            original(*args, **kwargs)
            # Every logger the file turns on is Alembic's command-line output, Alembic extensions' included
            # (alembic_utils, alembic_postgresql_enum): held as Alembic's own are.
            _hold_to_warnings(*_loggers_configured(args[0] if args else kwargs.get("fname")))

        logging.config.fileConfig = file_config
        _hold_to_warnings()
        try:
            yield
        finally:
            logging.config.fileConfig = original

    def _environment(
        self,
        fn: Callable[..., Iterable[Any]],
        *,
        after_each: Callable[..., None] | None = None,
        per_revision: bool = False,
        **options: Any,
    ) -> Any:
        """Alembic's EnvironmentContext, with what the tool needs added to whatever env.py configures.

        env.py's ``context.configure()`` replaces the migration context's options wholesale, so
        the tool's own (a callback after each version update, a transaction per revision) are
        added in configure() itself rather than set beforehand.
        """
        environment = EnvironmentContext(self.workspace.config, self.workspace.directory, fn=fn, **options)
        configure_as_env_py_asks = environment.configure

        def configure(*args: Any, **kw: Any) -> None:
            self.version_table = VersionTable(
                kw.get("version_table") or VersionTable.name, kw.get("version_table_schema") or None
            )
            if per_revision:
                kw["transaction_per_migration"] = True
            if "output_buffer" in options and "output_buffer" in kw:
                # Rendering SQL offline, the tool reads it from its own buffer: an env.py that writes to one of
                # its own (the multidb template writes ENGINE.sql) would leave the plan without its SQL.
                kw["output_buffer"] = options["output_buffer"]
            if after_each is not None:
                theirs = kw.get("on_version_apply") or ()
                kw["on_version_apply"] = (*(theirs if isinstance(theirs, (list, tuple)) else (theirs,)), after_each)
            configure_as_env_py_asks(*args, **kw)

        # On the instance: Alembic's module proxy (``context.configure`` in env.py) reads the
        # instance's attributes, and it only knows EnvironmentContext itself, not subclasses.
        environment.configure = configure  # type: ignore[method-assign]
        return environment


def _database_of(url: str) -> str | None:
    try:
        return make_url(url).database
    except (ArgumentError, ValueError):
        return None


def _step(revision_map: Any, script: Any, *, downgrade: bool) -> Any:
    """Alembic's migration step for exactly this revision, in one direction, in a stable order."""
    return _stable_step_class()(revision_map, script, not downgrade)


@functools.cache
def _stable_step_class() -> Any:
    """Alembic's RevisionStep, with the version-table updates of a merge in the revision's own order.

    Alembic picks which parent of a merge gets the UPDATE and which the INSERT (going down; the
    DELETEs going up past other heads) from a ``set``, so the SQL changed with PYTHONHASHSEED
    and a saved plan was refused as "changed" on one run in two. The same statements, ordered
    as the revision lists its parents, make the SQL and the plan's fingerprint reproducible.
    """

    class StableRevisionStep(RevisionStep):
        def _unmerge_to_revisions(self, heads: set[str]) -> tuple[str, ...]:
            found = set(super()._unmerge_to_revisions(heads))
            return tuple(revision for revision in self.to_revisions if revision in found)

        def merge_branch_idents(self, heads: set[str]) -> tuple[list[str], str, str]:
            deleted, update_from, update_to = super().merge_branch_idents(heads)
            chosen = {*deleted, update_from}
            ordered = [revision for revision in self.from_revisions if revision in chosen]
            return ordered[:-1], ordered[-1], update_to

    return StableRevisionStep


def _hold_to_warnings(*names: str) -> None:
    for name in ("alembic", "sqlalchemy", *names):
        logger = logging.getLogger(name) if name != "root" else logging.getLogger()
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def _loggers_configured(source: Any) -> tuple[str, ...]:
    """The loggers a logging ini ([loggers] keys, each [logger_KEY]'s qualname; "root") turns on; none when it
    cannot be read here (fileConfig read it, or raised, already)."""
    if isinstance(source, configparser.RawConfigParser):
        parser = source
    else:
        parser = configparser.RawConfigParser()
        try:
            parser.read(str(source), encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError, TypeError):
            return ()
    try:
        keys = [key.strip() for key in parser.get("loggers", "keys").split(",") if key.strip()]
    except (configparser.Error, ValueError):
        return ()
    return tuple(
        "root" if key == "root" else parser.get(f"logger_{key}", "qualname", fallback=key).strip() for key in keys
    )


# The SQLSTATE classes of a read that failed because of the table itself (its privileges, its
# columns), not because the server went away: 42501 insufficient_privilege, 42703 undefined_column.
_TABLE_STATES = {"42501": "privileges", "42703": "columns"}


def _role_of(connection: Connection) -> str:
    """The role the connection logged in as, asked of the driver (a failed transaction takes no query)."""
    try:
        user = str(connection.connection.driver_connection.info.user)  # type: ignore[union-attr]
    except Exception:  # not psycopg 3, or the connection is gone: the words stay general
        return "the role in the URL"
    return user if re.fullmatch(r"[a-z_][a-z0-9_$]*", user) else '"' + user.replace('"', '""') + '"'


def _unreadable_version_table(err: Exception, table: str, role: str) -> Refused | None:
    """The version table cannot be read (no SELECT on it, no version_num column): refused, with the fix."""
    state = getattr(getattr(err, "orig", None), "sqlstate", None)
    kind = _TABLE_STATES.get(str(state))
    if kind is None:
        return None
    said = mask_secrets(str(getattr(err, "orig", err)).strip())
    if kind == "privileges":
        headline = (
            f"The version table {table} cannot be read by this role: {said}. Nothing was changed. Grant it "
            f"(GRANT SELECT ON {table} TO {role}; commands that apply also need UPDATE, and down DELETE), "
            "or run as the role that owns it."
        )
    else:
        headline = (
            f"The version table {table} is not the table Alembic writes: {said}. Alembic's has one column, "
            "version_num VARCHAR(32). Nothing was changed. Rename the other table out of the way, or fix its "
            "columns, then run again."
        )
    return Refused(headline, sections=(Section("Database said", said),))
