"""The only module that imports Alembic.

It reads the revision graph from Alembic's ``ScriptDirectory`` and the database's state
through the project's own ``env.py`` (so a custom version table or schema is respected),
always on a connection the tool opened and owns. Alembic's errors become ours here, at one
boundary, the way Alembic's own ``_catch_revision_errors`` does for its CLI.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hindsight_migrate.config import Settings
from hindsight_migrate.errors import ConfigError, EnvIgnoresConnection, RevisionProblem, Section

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import Script, ScriptDirectory
    from sqlalchemy.engine import Connection

_CREATE_DATE = re.compile(r"^Create Date:\s*(?P<date>.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class RevisionInfo:
    """One revision file, as the graph sees it."""

    revision: str
    parents: tuple[str, ...]
    children: tuple[str, ...]
    message: str
    created: str | None  # the "Create Date:" of the file header, as written
    path: Path  # relative to the project folder (the one holding alembic.ini) when inside it
    branch_labels: tuple[str, ...]
    is_head: bool
    is_base: bool
    is_branch_point: bool
    is_merge_point: bool


@dataclass(frozen=True)
class GraphSources:
    """Where Alembic finds the revision files, and how it walks the folders (for the graph cache)."""

    script_dir: Path  # script_location, as configured (Alembic refuses it when it does not exist)
    version_locations: tuple[Path, ...]  # absolute; a folder that does not exist is skipped by Alembic
    recursive: bool  # recursive_version_locations: subfolders hold revision files too
    sourceless: bool  # sourceless: .pyc files in __pycache__ count as revision files
    relative_to_cwd: bool  # a location was configured as a relative path: the folders depend on the cwd


class AlembicProject:
    """An Alembic project on disk: its config, its revision graph and its env.py."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.output = io.StringIO()  # what Alembic's commands print, kept out of our output

    @cached_property
    def config(self) -> Config:
        from alembic.config import Config

        config = Config(str(self.settings.ini_path), ini_section=self.settings.ini_section, stdout=self.output)
        # pytest-alembic's convention: an env.py that honours it leaves logging to the caller.
        config.attributes["configure_logger"] = False
        return config

    @cached_property
    def _directory(self) -> ScriptDirectory:
        """The migrations folder as Alembic configures it, before any revision file is read."""
        from alembic.script import ScriptDirectory
        from alembic.util import CommandError

        try:
            return ScriptDirectory.from_config(self.config)
        except CommandError as err:
            raise ConfigError(
                f"Alembic cannot open the migrations folder named by script_location in {self.settings.ini_path}: {err}"
            ) from err

    @cached_property
    def script(self) -> ScriptDirectory:
        script = self._directory
        with _revision_errors():
            script.revision_map.heads  # noqa: B018 - loads every revision file now, errors here
        return script

    def _forget_graph(self) -> None:
        """A revision file was written: the next use of the graph reads the folder again."""
        self.__dict__.pop("script", None)
        self.__dict__.pop("_directory", None)  # it memoizes the revision map it loaded

    # -- the graph -------------------------------------------------------------------

    def graph_sources(self) -> GraphSources:
        """Where Alembic reads revision files from and how, without reading any of them."""
        directory = self._directory
        # The resolved folders are private to ScriptDirectory, but they are exactly the ones
        # _load_revisions walks: a relative script_location or version location is resolved
        # against the working directory there, which the caller must then take into account.
        configured = [directory.dir, *directory.version_locations]
        return GraphSources(
            script_dir=Path(directory.dir),
            version_locations=tuple(Path(folder) for folder in directory._version_locations),
            recursive=bool(directory.recursive_version_locations),
            sourceless=bool(directory.sourceless),
            relative_to_cwd=not all(Path(location).is_absolute() for location in configured),
        )

    def revisions(self) -> tuple[RevisionInfo, ...]:
        """Every revision, newest first (heads first, each before its parents)."""
        with _revision_errors():
            return tuple(self._info(script) for script in self.script.walk_revisions())

    def heads(self) -> tuple[str, ...]:
        with _revision_errors():
            return tuple(self.script.get_heads())

    def bases(self) -> tuple[str, ...]:
        with _revision_errors():
            return tuple(self.script.get_bases())

    def resolve(self, revision: str) -> RevisionInfo:
        """A single revision by full id, unique prefix (4+ characters), ``head`` or label."""
        from alembic.script.revision import MultipleHeads, ResolutionError, RevisionError

        revision_map = self.script.revision_map  # loading errors are reported as they are
        try:
            script = revision_map.get_revision(revision)
        except MultipleHeads as err:
            raise RevisionProblem(
                f"{revision!r} means more than one revision: {', '.join(err.heads)}. Name one of them.",
            ) from err
        except ResolutionError as err:
            candidates = sorted(r for r in revision_map._revision_map if r and r.startswith(revision))
            if len(candidates) > 1:
                raise RevisionProblem(
                    f"{revision!r} is ambiguous: it starts {len(candidates)} revisions "
                    f"({', '.join(candidates)}). Give more characters of the revision id."
                ) from err
            raise RevisionProblem(_resolution_advice(revision)) from err
        except (RevisionError, KeyError, ValueError, AssertionError) as err:  # e.g. '@' in odd places
            raise RevisionProblem(f"{revision!r} is not a revision this project knows: {err}") from err
        if script is None:
            raise RevisionProblem(f"{revision!r} is not a single revision (it names the empty base).")
        return self._info(script)  # type: ignore[arg-type]

    def ancestors(self, revisions: Iterable[str]) -> frozenset[str]:
        """The given revisions and every revision they stand on (what is applied at them)."""
        found: set[str] = set()
        with _revision_errors():
            for revision in revisions:
                found.update(s.revision for s in self.script.iterate_revisions(revision, "base"))
        return frozenset(found)

    def knows(self, revision: str) -> bool:
        return revision in self.script.revision_map._revision_map  # exact ids only

    def _info(self, script: Script) -> RevisionInfo:
        created = _CREATE_DATE.search(script.module.__doc__ or "")
        return RevisionInfo(
            revision=script.revision,
            parents=tuple(script._all_down_revisions),
            children=tuple(sorted(script.nextrev)),
            message=script.doc,
            created=created.group("date") if created else None,
            path=_relative_to(Path(script.path), self.settings.project_dir),
            branch_labels=tuple(sorted(script.branch_labels)),
            is_head=script.is_head,
            is_base=script.is_base,
            is_branch_point=script.is_branch_point,
            is_merge_point=script.is_merge_point,
        )

    def upgrade_path(self, current: tuple[str, ...], target: str) -> tuple[RevisionInfo, ...]:
        """The revisions an upgrade from ``current`` to ``target`` runs, in the order it runs them.

        ``target`` is anything ``alembic upgrade`` takes: ``heads``, ``head``, a revision id
        or unique prefix, a branch label, or ``+N`` (relative to ``current``).
        """
        self.resolve_target(target)
        with _revision_errors(), _relative_target_words(target, current):
            scripts = list(self.script.iterate_revisions(target, current, implicit_base=True))
        return tuple(self._info(script) for script in reversed(scripts))

    def downgrade_path(self, current: tuple[str, ...], target: str) -> tuple[RevisionInfo, ...]:
        """The revisions a downgrade from ``current`` to ``target`` reverts, in the order it reverts them.

        ``target`` is anything ``alembic downgrade`` takes: a revision id or unique prefix,
        ``base``, or ``-N`` (relative to ``current``).
        """
        if target != "base" and not target.startswith("-"):
            self.resolve(target)
        with _revision_errors(), _relative_target_words(target, current):
            scripts = list(self.script.iterate_revisions(current, target, select_for_downgrade=True))
        return tuple(self._info(script) for script in scripts)

    def resolve_target(self, target: str) -> None:
        """Refuse an unknown or ambiguous target with our words (relative targets pass through)."""
        if target in ("head", "heads") or target.startswith("+") or "@" in target:
            return
        self.resolve(target)

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
        buffer = io.StringIO()
        texts: dict[str, str] = {}
        pending = iter(revisions)
        cut = [0]

        def steps(heads: Any, context: Any) -> list[Any]:
            return [self._step(revision.revision, downgrade=downgrade) for revision in revisions]

        def one_done(ctx: Any, **_: Any) -> None:
            texts[next(pending).revision] = buffer.getvalue()[cut[0] :]
            cut[0] = buffer.tell()

        env_py = Path(self.script.dir) / "env.py"
        saved_url = self.config.get_main_option("sqlalchemy.url")
        if not saved_url:
            # Offline mode only needs the dialect; many env.py files read the URL from here.
            self.config.set_main_option("sqlalchemy.url", "postgresql+psycopg://")
        try:
            with (
                _engine_factories_refused(env_py),
                _revision_errors(),
                _environment(
                    self,
                    steps,
                    after_each=one_done,
                    as_sql=True,
                    starting_rev=start or None,
                    destination_rev=revisions[-1].revision if revisions else None,
                    output_buffer=buffer,
                    transactional_ddl=False,
                ),
            ):
                self.script.run_env()
        finally:
            if not saved_url:
                self.config.set_main_option("sqlalchemy.url", "")
        return texts

    # -- the database, through env.py -----------------------------------------------

    def current_heads(self, connection: Connection) -> tuple[str, ...]:
        """Read-only: the revisions in the database's version table (empty if it has none)."""
        found: list[str] = []

        def read(heads: Any, context: Any) -> list[Any]:
            found.extend(context.get_current_heads())
            return []

        # dont_mutate: without it, Alembic creates a missing version table even on a read.
        self._run_env(connection, read, dont_mutate=True)
        return tuple(sorted(found))

    def stamp(self, connection: Connection, revision: str) -> None:
        """Writes: sets the version table to ``revision`` inside the caller's transaction."""
        from alembic import command

        with self._env_uses(connection):
            command.stamp(self.config, revision)

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

        def steps(heads: Any, context: Any) -> Iterator[Any]:
            for revision in revisions:
                if before_each is not None:
                    before_each(revision)
                yield self._step(revision, downgrade=downgrade)

        pending = iter(revisions)

        def one_done(ctx: Any, **_: Any) -> None:
            revision = next(pending)
            if after_each is not None:
                after_each(revision, ctx.connection)

        with self._env_uses(connection), _environment(self, steps, after_each=one_done, per_revision_transactions=True):
            self.script.run_env()

    def _step(self, revision: str, *, downgrade: bool) -> Any:
        """Alembic's migration step for exactly this revision, in one direction."""
        from alembic.runtime.migration import MigrationStep

        script = self.script.get_revision(revision)
        if downgrade:
            return MigrationStep.downgrade_from_script(self.script.revision_map, script)
        return MigrationStep.upgrade_from_script(self.script.revision_map, script)

    def autogenerate(
        self,
        connection: Connection,
        message: str,
        *,
        write: Callable[[tuple[Operation, ...]], bool],
    ) -> tuple[tuple[Operation, ...], Path | None]:
        """Compare the models with the database on ``connection`` (which must be at head).

        ``write`` sees the detected operations before anything is written and says whether to
        write the revision file. Returns the operations and the new file's path (None when
        nothing was written). Writes a file; reads the database only.
        """
        from alembic import command

        found: list[Operation] = []
        decision: list[bool] = []

        def review(context: Any, revision: Any, directives: list[Any]) -> None:
            script = directives[0]
            found.extend(_operations(script.upgrade_ops.ops))
            if not write(tuple(found)):
                decision.append(False)
                directives[:] = []  # Alembic then writes nothing

        # Alembic announces "Generating ... done" on stdout itself; the tool says it in its own words.
        with self._env_uses(connection), contextlib.redirect_stdout(self.output):
            result = command.revision(
                self.config, message=message, autogenerate=True, process_revision_directives=review
            )
        # Alembic returns a Script, a list of them, or an empty list when the hook cleared the directives.
        script = (result[0] if result else None) if isinstance(result, list) else result
        if decision or script is None:
            return tuple(found), None
        self._forget_graph()  # a new file: later calls must see it
        return tuple(found), _relative_to(Path(script.path), self.settings.project_dir)

    def merge_heads(self, message: str) -> tuple[str, Path]:
        """Writes a file: a merge revision of every head (Alembic's merge). Returns its id and path."""
        from alembic import command

        with _revision_errors(), contextlib.redirect_stdout(self.output):
            script = command.merge(self.config, revisions="heads", message=message)
        self._forget_graph()  # the graph has a new file
        assert script is not None
        return script.revision, _relative_to(Path(script.path), self.settings.project_dir)

    def _run_env(self, connection: Connection, fn: Callable[..., Iterable[Any]], **options: Any) -> None:
        with self._env_uses(connection), _environment(self, fn, **options):
            self.script.run_env()

    @contextmanager
    def _env_uses(self, connection: Connection) -> Iterator[None]:
        """Hand ``connection`` to env.py, and refuse any engine env.py tries to make itself.

        An env.py that ignores the connection it is handed and builds its own engine would
        run outside the tool's transaction — a rehearsal would apply for real, a bootstrap
        would stamp outside its transaction. Refusing SQLAlchemy's engine factories while
        env.py runs catches that before it connects, whatever variable its URL comes from.
        """
        self.config.attributes["connection"] = connection
        env_py = Path(self.script.dir) / "env.py"
        try:
            with _engine_factories_refused(env_py), _revision_errors():
                yield
        finally:
            self.config.attributes.pop("connection", None)


@dataclass(frozen=True)
class Operation:
    """One schema operation autogenerate detected, as plain data (no Alembic objects)."""

    kind: str  # add_table, drop_table, add_column, drop_column, alter_column, add_index, ...
    table: str
    name: str  # column, index or constraint name; the table name for table operations
    columns: tuple[tuple[str, str], ...] = ()  # (name, type) of a created or dropped table
    type: str | None = None  # the column's type (add/drop column), or the new type (alter)
    existing_type: str | None = None  # alter_column: the type before
    nullable: bool | None = None  # add_column: the column's; alter_column: the new nullability
    has_server_default: bool = False


def _operations(ops: Iterable[Any]) -> list[Operation]:
    """Flatten Alembic's op tree (ModifyTableOps hold the per-table ones) into Operations."""
    from alembic.operations import ops as alembic_ops

    result: list[Operation] = []
    for op in ops:
        if isinstance(op, alembic_ops.ModifyTableOps):
            result.extend(_operations(op.ops))
        elif isinstance(op, (alembic_ops.CreateTableOp, alembic_ops.DropTableOp)):
            kind = "add_table" if isinstance(op, alembic_ops.CreateTableOp) else "drop_table"
            columns = tuple((c.name, str(c.type)) for c in op.to_table().columns)
            result.append(Operation(kind, op.table_name, op.table_name, columns=columns))
        elif isinstance(op, (alembic_ops.AddColumnOp, alembic_ops.DropColumnOp)):
            column = op.column if isinstance(op, alembic_ops.AddColumnOp) else op.to_column()
            kind = "add_column" if isinstance(op, alembic_ops.AddColumnOp) else "drop_column"
            result.append(
                Operation(
                    kind,
                    op.table_name,
                    column.name,
                    type=str(column.type),
                    nullable=bool(column.nullable),
                    has_server_default=column.server_default is not None,
                )
            )
        elif isinstance(op, alembic_ops.AlterColumnOp):
            result.append(
                Operation(
                    "alter_column",
                    op.table_name,
                    op.column_name,
                    type=str(op.modify_type) if op.modify_type is not None else None,
                    existing_type=str(op.existing_type) if op.existing_type is not None else None,
                    nullable=op.modify_nullable,
                    has_server_default=bool(op.existing_server_default or op.modify_server_default),
                )
            )
        else:
            name = getattr(op, "index_name", None) or getattr(op, "constraint_name", None) or ""
            table_name = getattr(op, "table_name", None) or ""
            kind = {
                "CreateIndexOp": "add_index",
                "DropIndexOp": "drop_index",
                "AddConstraintOp": "add_constraint",
                "CreateUniqueConstraintOp": "add_constraint",
                "CreateForeignKeyOp": "add_constraint",
                "CreateCheckConstraintOp": "add_constraint",
                "DropConstraintOp": "drop_constraint",
            }.get(type(op).__name__, type(op).__name__)
            result.append(Operation(kind, str(table_name), str(name)))
    return result


_ENV_PY_FIX = """\
# in run_migrations_online(), before the engine is created:
connectable = config.attributes.get("connection", None)
if connectable is None:
    connectable = engine_from_config(...)   # your existing code
    with connectable.connect() as connection:
        do_run_migrations(connection)
else:
    do_run_migrations(connectable)

# with
def do_run_migrations(connection):
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
"""


def _environment(
    project: AlembicProject,
    fn: Callable[..., Iterable[Any]],
    *,
    after_each: Callable[..., None] | None = None,
    per_revision_transactions: bool = False,
    **options: Any,
) -> Any:
    """Alembic's EnvironmentContext, with what the tool needs added to whatever env.py configures.

    env.py's ``context.configure()`` replaces the migration context's options wholesale, so
    the tool's own (a callback after each version update, a transaction per revision) are
    added in configure() itself rather than set beforehand.
    """
    from alembic.runtime.environment import EnvironmentContext

    environment = EnvironmentContext(project.config, project.script, fn=fn, **options)
    configure_as_env_py_asks = environment.configure

    def configure(*args: Any, **kw: Any) -> None:
        if per_revision_transactions:
            kw["transaction_per_migration"] = True
        if after_each is not None:
            theirs = kw.get("on_version_apply") or ()
            kw["on_version_apply"] = (*(theirs if isinstance(theirs, (list, tuple)) else (theirs,)), after_each)
        configure_as_env_py_asks(*args, **kw)

    # On the instance: Alembic's module proxy (``context.configure`` in env.py) reads the
    # instance's attributes, and it only knows EnvironmentContext itself, not subclasses.
    environment.configure = configure  # type: ignore[method-assign]
    return environment


@functools.cache
def _sqlalchemy_asyncio() -> Any:
    """SQLAlchemy's asyncio extension, or None where it cannot load (it needs greenlet).

    Asked once per process: a failed import is not remembered by Python, and retrying it
    before every env.py run cost more than the runs themselves. Where it cannot load,
    env.py cannot build an async engine either.
    """
    import importlib.util

    if importlib.util.find_spec("greenlet") is None:  # the extension would import half of asyncio, then fail
        return None
    try:
        import sqlalchemy.ext.asyncio
    except ImportError:
        return None
    return sqlalchemy.ext.asyncio


@contextmanager
def _engine_factories_refused(env_py: Path) -> Iterator[None]:
    import sqlalchemy
    import sqlalchemy.engine
    import sqlalchemy.engine.create

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise EnvIgnoresConnection(
            f"{env_py} creates its own database engine instead of using the connection "
            "hindsight-migrate hands it in config.attributes['connection']. Running it could "
            "change a database nobody reviewed, so nothing was run. Add the lines below "
            "(Alembic's documented pattern for sharing a connection) and run again.",
            sections=(Section("Add to env.py", _ENV_PY_FIX),),
        )

    targets: list[tuple[Any, str]] = [
        (module, name)
        for module in (sqlalchemy, sqlalchemy.engine, sqlalchemy.engine.create)
        for name in ("create_engine", "engine_from_config")
    ]
    asyncio_ext = _sqlalchemy_asyncio()
    if asyncio_ext is not None:
        targets += [(asyncio_ext, n) for n in ("create_async_engine", "async_engine_from_config")]
    saved = [(module, name, getattr(module, name)) for module, name in targets if hasattr(module, name)]
    for module, name, _ in saved:
        setattr(module, name, refuse)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


@contextmanager
def _relative_target_words(target: str, current: tuple[str, ...]) -> Iterator[None]:
    """Alembic's "Ambiguous walk" for +N/-N across a branch point or merge, in words that say what to do."""
    from alembic.script.revision import RevisionError

    try:
        yield
    except RevisionError as err:
        if "Ambiguous walk" in str(err) and target[:1] in "+-":
            raise RevisionProblem(
                f"{target!r} is ambiguous from {', '.join(current) or 'base'}: the graph branches or merges there, "
                "so counting steps has more than one answer. Name the revision to go to (see hindsight-migrate "
                "history)."
            ) from err
        raise


@contextmanager
def _revision_errors() -> Iterator[None]:
    """Alembic's graph and loading errors, as our RevisionProblem."""
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    try:
        yield
    except (RevisionError, CommandError) as err:
        raise RevisionProblem(f"Alembic cannot use the revision graph: {err}") from err
    except AssertionError as err:
        # Alembic asserts on some malformed identifiers ('', 'rev@', 'head+1@x') instead of raising.
        raise RevisionProblem(
            "That is not a revision identifier Alembic can read. Name a revision id, a unique prefix, "
            "head(s), base or +N/-N (see hindsight-migrate history)."
        ) from err
    except SyntaxError as err:
        raise RevisionProblem(
            f"A revision file does not compile: {err.filename}, line {err.lineno}: {err.msg}. "
            "Fix the file and run again."
        ) from err
    except ImportError as err:
        raise RevisionProblem(f"A revision file or env.py fails to import: {err}. Fix it and run again.") from err


def _relative_to(path: Path, folder: Path) -> Path:
    try:
        return path.resolve().relative_to(folder)
    except ValueError:
        return path


def _resolution_advice(revision: str) -> str:
    if len(revision) < 4:
        return (
            f"No revision {revision!r}: give the full revision id, or at least its first four "
            "characters (see hindsight-migrate history)."
        )
    return f"No revision {revision!r} in this project. See hindsight-migrate history for the ids."
