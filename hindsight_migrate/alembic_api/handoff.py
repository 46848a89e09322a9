"""Hand env.py the tool's connection, whatever way env.py asks for a database.

Most env.py files build an engine themselves: ``engine_from_config(config.get_section(...))``
(Alembic's ``generic`` template), ``async_engine_from_config`` (``async``), or
``create_engine(os.environ["DATABASE_URL"])``. Run as they are, they would connect on their
own, outside the transaction, the migration lock, the audit and the checksums, and during a
rehearsal they would change the real database instead of the scratch copy.

So while the tool runs env.py online, SQLAlchemy's engine factories, from every module path
they are importable from, return an engine *bound to the tool's connection*: ``connect()``
and ``begin()`` give that connection (closing it is a no-op; the tool owns it), ``dispose()``
does nothing, ``.url`` is what env.py asked for and ``.dialect`` the connection's. Before it
hands anything over, the URL env.py asked for must name the database the tool resolved and
reviews (host or socket, port, database, user); another database is refused before anything
runs. The connection handed over is the one the tool is running on at that moment: the
scratch copy during a rehearsal, the target during the apply.

Outside a handoff (another thread, or after it ended) the factories behave exactly as
SQLAlchemy's: each call checks the handoff of its own context.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import getpass
import importlib
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from hindsight_migrate.errors import EnvAsksForAnotherDatabase, EnvIgnoresConnection, Section
from hindsight_migrate.masking import mask_secrets, remember_secret_of

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection


@dataclass(frozen=True)
class ExpectedDatabase:
    """The database the tool resolved (and the plan is for), with where its URL came from."""

    url: URL
    origin: str  # "--url", "DATABASE_URL (environment)", "embedded server", ...


@dataclass
class _Handoff:
    connection: Connection | None  # None: offline mode, where no engine may be built
    expected: ExpectedDatabase | None
    env_py: Path
    asked: list[str] = field(default_factory=list)  # masked URLs env.py asked for, for messages
    probing: bool = False  # only finding out which database env.py names: the first factory call ends env.py

    def engine_for(self, url: Any) -> Engine:
        asked = _as_url(url, self.env_py)
        if self.expected is not None and database_key(asked) != database_key(self.expected.url):
            raise _another_database(asked, url, self.expected, self.env_py)
        # Offline, an engine may be built (Flask-SQLAlchemy builds one with the app) but never connect.
        return _bound_engine(self.connection, asked)

    def offline_refusal(self) -> EnvIgnoresConnection:
        return EnvIgnoresConnection(
            f"{self.env_py} builds a database engine in offline mode (--sql, or the plan's SQL rendering), "
            "where no database may be used. Make its offline path call context.configure(url=...) "
            "without creating an engine, as Alembic's templates do.",
        )


_current: contextvars.ContextVar[_Handoff | None] = contextvars.ContextVar("hindsight_handoff", default=None)


@contextmanager
def handed_over(connection: Connection, expected: ExpectedDatabase, env_py: Path) -> Iterator[Connection]:
    """While env.py runs online: every engine it builds is bound to ``connection``.

    Yields what the caller puts in ``config.attributes["connection"]``: ``connection`` itself, so that an env.py
    that treats it as an Engine (``.connect()``, as pytest-alembic hands one) or as an AsyncEngine (``async with
    connectable.connect()``) gets it back; closing it (``with connection:``) leaves it open for the tool.
    """
    handoff = _Handoff(connection, expected, env_py)
    # Instance attributes, removed afterwards: Connection has no connect() of its own in SQLAlchemy 2, and
    # `with engine.connect() as c:` ends with c.close(), which must not end the tool's transaction, release its
    # lock or lose its session settings.
    connection.__dict__["connect"] = lambda: connection
    connection.__dict__["close"] = _not_closed
    # An async env.py may take the attribute for an AsyncEngine (`async with connectable.connect()
    # as c: await c.run_sync(...)`, then `await connectable.dispose()`) while the cookbook's shape
    # calls `do_run_migrations(connectable)` with it: for the handoff, the connection is both.
    # The class (not the instance) must have __aenter__ for `async with`; it is put back afterwards.
    own_class = type(connection)
    connection.__class__ = _lent_connection_class(own_class)
    try:
        with _factories_installed(), _active(handoff):
            yield connection
    finally:
        connection.__class__ = own_class
        connection.__dict__.pop("connect", None)
        connection.__dict__.pop("close", None)


class _EitherTransaction:
    """The transaction ``begin()`` started on the lent connection, usable with ``with`` and ``async with``.

    ``with`` gives the transaction, as SQLAlchemy's; ``async with`` gives the connection, as an
    AsyncEngine's ``begin()`` does, and commits at the end unless the block raised.
    """

    __slots__ = ("_connection", "_transaction")

    def __init__(self, transaction: Any, connection: Any) -> None:
        self._transaction = transaction
        self._connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transaction, name)

    def __enter__(self) -> Any:
        return self._transaction.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._transaction.__exit__(*exc)

    async def __aenter__(self) -> Any:
        return self._connection

    async def __aexit__(self, kind: Any, *_: Any) -> None:
        if not self._transaction.is_active:
            return
        if kind is None:
            self._transaction.commit()
        else:
            self._transaction.rollback()


class _Done:
    """An awaitable that is already done, and harmless when nobody awaits it (no 'never awaited' warning)."""

    def __await__(self) -> Generator[Any, None, None]:
        return None
        yield  # a generator function: awaiting it returns at once


_lent_classes: dict[type[Any], type[Any]] = {}  # one subclass per Connection class, made once


def _lent_connection_class(base: type[Connection]) -> type[Connection]:
    """``base`` with what an AsyncEngine and an AsyncConnection add, run inline on the sync connection.

    A subclass, so ``isinstance(c, Connection)``, ``sa.inspect(c)`` and Alembic's own checks hold.
    """
    if base in _lent_classes:
        return _lent_classes[base]

    class LentConnection(base):  # type: ignore[valid-type,misc]
        """The tool's connection while env.py has it: a Connection, an async engine and an async connection."""

        async def __aenter__(self) -> LentConnection:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        async def run_sync(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            return fn(self, *args, **kwargs)

        @property
        def sync_connection(self) -> LentConnection:
            return self

        @property
        def sync_engine(self) -> Any:
            return self.engine

        def begin(self) -> Any:
            # `async with connectable.begin() as c` (an AsyncEngine's) as well as `with connection.begin()`.
            return _EitherTransaction(super().begin(), self)

        def dispose(self, close: bool = True) -> _Done:
            # `await connectable.dispose()`: the tool owns the connection, nothing is disposed.
            return _Done()

    LentConnection.__name__ = base.__name__
    LentConnection.__qualname__ = base.__qualname__
    _lent_classes[base] = LentConnection
    return LentConnection


class _Probed(BaseException):
    """Ends env.py at the first engine it asks for while probing: nothing connects, no revision runs.

    A BaseException, as KeyboardInterrupt: an env.py that wraps its work in ``except Exception``
    (to log and re-raise, or to fall back) must not swallow it and go on.
    """

    def __init__(self, url: Any) -> None:
        super().__init__("env.py probed")
        self.url = url


def probe(env_py: Path, run_env: Callable[[], None]) -> str | None:
    """Connects nowhere, writes nothing: the URL env.py hands SQLAlchemy's engine factory (``create_engine``,
    ``engine_from_config``, the async two), found by running env.py online until it asks for an engine.

    None when env.py names no database: it builds no engine, or builds it from a configuration
    with no URL in it. What env.py raises before it asks (its own errors) propagates.
    """
    try:
        with _factories_installed(), _active(_Handoff(None, None, env_py, probing=True)):
            run_env()
    except _Probed as probed:
        return _as_text(probed.url)
    return None


def _as_text(url: Any) -> str | None:
    if url is None:
        return None
    if isinstance(url, str):
        text = url
    elif hasattr(url, "render_as_string"):  # a sqlalchemy URL env.py built with URL.create()
        text = url.render_as_string(hide_password=False)
    else:
        text = str(url)
    remember_secret_of(text)
    return text


@contextmanager
def offline(env_py: Path) -> Iterator[None]:
    """While env.py runs offline: building an engine is refused (no database may be used)."""
    with _factories_installed(), _active(_Handoff(None, None, env_py)):
        yield


def database_key(url: URL) -> tuple[str, str, int, str, str]:
    """What makes two URLs the same database: backend, host or socket folder, port, database, user.

    Driver suffixes (``+asyncpg``, ``+psycopg2``) and ``postgres://`` do not matter: the tool
    always connects with psycopg 3. libpq's defaults fill what is left out (port 5432, the OS
    user, a database named like the user), and every loopback name is one host.
    """
    backend = url.get_backend_name()
    backend = "postgresql" if backend == "postgres" else backend
    host = url.query.get("host") or url.host or ""
    if isinstance(host, tuple):
        host = host[0] if host else ""
    host = str(host).lower().rstrip("/") if str(host).startswith("/") else str(host).lower()
    if host in ("localhost", "127.0.0.1", "::1", "[::1]"):
        host = "localhost"
    port_text = url.query.get("port")
    port = url.port or int(port_text[0] if isinstance(port_text, tuple) else port_text or 5432)
    user = url.username or str(url.query.get("user") or "") or getpass.getuser()
    return backend, host, port, url.database or user, user


def _another_database(asked: URL, raw: Any, expected: ExpectedDatabase, env_py: Path) -> EnvAsksForAnotherDatabase:
    asked_shown = mask_secrets(asked.render_as_string(hide_password=True))
    expected_shown = mask_secrets(expected.url.render_as_string(hide_password=True))
    source = _where_env_py_got(raw, expected)
    return EnvAsksForAnotherDatabase(
        f"{env_py} asked for the database in {source}; the plan is for the one from {expected.origin}. They are "
        "not the same database, so nothing was run on either. Point both at one database: give hindsight-migrate "
        f"the URL env.py uses (--url or DATABASE_URL), or make {source} name the database the plan is for.",
        sections=(
            Section(f"env.py asked for ({source})", asked_shown),
            Section(f"The plan is for ({expected.origin})", expected_shown),
        ),
    )


def _where_env_py_got(raw: Any, expected: ExpectedDatabase) -> str:
    """A guess, in words, at where env.py found the URL it asked for: an environment variable, or the config."""
    text = raw if isinstance(raw, str) else raw.render_as_string(hide_password=False)
    for name, value in sorted(os.environ.items()):
        if value and value.strip() == text.strip():
            return name
    # bind_target() wrote exactly this into sqlalchemy.url, which is where stock env.py files read it.
    if expected.url.render_as_string(hide_password=False) == text.strip():
        return "sqlalchemy.url"
    return "a URL env.py built itself"


def _as_url(url: Any, env_py: Path) -> URL:
    if isinstance(url, str):
        remember_secret_of(url)
    try:
        return make_url(url)
    except (ArgumentError, ValueError, TypeError) as err:
        raise EnvAsksForAnotherDatabase(
            f"{env_py} asked for an engine with a URL SQLAlchemy cannot read ({type(err).__name__}), so nothing "
            "was run. The database URL hindsight-migrate resolved is in config's sqlalchemy.url: let env.py use it.",
        ) from err


def _not_closed() -> None:
    """close() on the connection env.py was lent: the tool closes it, later."""


# -- the engines handed out ---------------------------------------------------------------


def _bound_engine(connection: Connection | None, url: URL) -> Engine:
    return _bound_engine_class()(connection, url)


@functools.cache
def _bound_engine_class() -> Callable[[Connection | None, URL], Engine]:
    """An Engine subclass (so isinstance checks in env.py hold) that only ever lends one connection."""

    def no_second_connection() -> Any:
        raise EnvIgnoresConnection(
            "env.py asked its engine for a raw DBAPI connection of its own. hindsight-migrate lends env.py one "
            "connection (under the migration lock, in the revision's transaction); use the Connection that "
            "engine.connect() returns.",
        )

    class BoundEngine(Engine):
        """What env.py's create_engine() returns while the tool runs it: the tool's connection, lent."""

        def __init__(self, connection: Connection | None, url: URL) -> None:
            dialect = connection.dialect if connection is not None else _offline_dialect()
            super().__init__(NullPool(no_second_connection), dialect, url)
            self._first = connection

        @property
        def _lent(self) -> Connection:
            """The connection of the run of env.py going on now: an engine built in an earlier run (by a module
            env.py imported once, a Flask app made at import) lends today's, for the same database only."""
            handoff = _current.get()
            if handoff is not None and handoff.probing:
                raise _Probed(self.url)  # built before this run of env.py: its database is the one env.py names
            if handoff is not None and handoff.connection is not None:
                if handoff.connection is not self._first:
                    handoff.engine_for(self.url)  # the database it was built for must be this run's
                return handoff.connection
            if handoff is not None or self._first is None:
                raise (handoff or _Handoff(None, None, Path("env.py"))).offline_refusal()
            return self._first

        def connect(self) -> Connection:
            return self._lent

        @contextmanager
        def begin(self) -> Iterator[Connection]:
            # No transaction of its own: the tool decides them (one per revision, or the
            # rehearsal's single rolled-back one), and commits what env.py leaves open.
            yield self._lent

        def dispose(self, close: bool = True) -> None:
            pass

        def execution_options(self, **options: Any) -> BoundEngine:  # type: ignore[override]
            return self

    return BoundEngine


class _BoundAsyncConnection:
    """What ``async with engine.connect() as c`` gives an async env.py: the tool's connection, run inline.

    ``run_sync(fn)`` calls ``fn`` with the tool's (synchronous, psycopg 3) connection. No
    greenlet is needed: nothing here is really asynchronous.
    """

    def __init__(self, connection: Connection) -> None:
        self.sync_connection = connection
        self.dialect = connection.dialect

    async def run_sync(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(self.sync_connection, *args, **kwargs)

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return self.sync_connection.execute(statement, *args, **kwargs)

    async def exec_driver_sql(self, statement: str, *args: Any, **kwargs: Any) -> Any:
        return self.sync_connection.exec_driver_sql(statement, *args, **kwargs)

    async def commit(self) -> None:
        self.sync_connection.commit()

    async def rollback(self) -> None:
        self.sync_connection.rollback()

    async def close(self) -> None:
        pass

    async def start(self) -> _BoundAsyncConnection:
        return self

    def __await__(self) -> Generator[Any, None, _BoundAsyncConnection]:
        return self.start().__await__()

    async def __aenter__(self) -> _BoundAsyncConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _BoundAsyncEngine:
    """What env.py's create_async_engine() returns while the tool runs it."""

    def __init__(self, engine: Engine) -> None:
        self.sync_engine = engine
        self.url = engine.url
        self.dialect = engine.dialect

    def connect(self) -> _BoundAsyncConnection:
        return _BoundAsyncConnection(self.sync_engine.connect())

    def begin(self) -> _BoundAsyncConnection:
        return self.connect()

    async def dispose(self, close: bool = True) -> None:
        pass

    def execution_options(self, **options: Any) -> _BoundAsyncEngine:
        return self


# -- the factories --------------------------------------------------------------------------

_SYNC_PLACES = ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.engine.create")
_ASYNC_PLACES = ("sqlalchemy.ext.asyncio", "sqlalchemy.ext.asyncio.engine")
_installed: list[tuple[Any, str, Any]] = []  # (module, name, SQLAlchemy's own function) while installed
_depth = 0


@contextmanager
def _active(handoff: _Handoff) -> Iterator[None]:
    token = _current.set(handoff)
    try:
        yield
    finally:
        _current.reset(token)


@contextmanager
def _factories_installed() -> Iterator[None]:
    """Put the handing-over factories in SQLAlchemy's modules, where env.py imports them from.

    env.py runs anew each time (``from sqlalchemy import create_engine`` then binds ours). A
    module env.py imported earlier may keep a reference to ours after this ends: ours then
    behave as SQLAlchemy's, since no handoff is active.
    """
    global _depth
    if _depth == 0:
        _install()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            _uninstall()


def _install() -> None:
    names = [(place, name, False) for place in _SYNC_PLACES for name in ("create_engine", "engine_from_config")]
    _replace(names)
    # SQLAlchemy's asyncio extension takes longer to import than most env.py runs (it brings the ORM): its
    # factories are replaced once something imports it (an async env.py, a module env.py imports), not before.
    if _ASYNC_PLACES[0] in sys.modules:
        _install_async()
    else:
        sys.meta_path.insert(0, _ASYNC_IMPORT_WATCH)


def _install_async() -> None:
    async_names = ("create_async_engine", "async_engine_from_config")
    _replace([(place, name, True) for place in _ASYNC_PLACES for name in async_names])


def _replace(names: list[tuple[str, str, bool]]) -> None:
    for place, name, asynchronous in names:
        module = importlib.import_module(place)
        original = getattr(module, name, None)
        if original is None:
            continue
        _installed.append((module, name, original))
        from_config = name.endswith("from_config")
        setattr(module, name, _handing_over(original, from_config=from_config, asynchronous=asynchronous))


def _uninstall() -> None:
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_ASYNC_IMPORT_WATCH)
    for module, name, original in _installed:
        setattr(module, name, original)
    _installed.clear()


class _AsyncImportWatch(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when sqlalchemy.ext.asyncio is imported while the factories are installed, its
    async factories are replaced as soon as the module has run, before the importer binds them."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != _ASYNC_PLACES[0]:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        loader = spec.loader if spec is not None else None
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return None
        run_module = loader.exec_module

        def exec_module(module: Any) -> None:
            run_module(module)
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(_ASYNC_IMPORT_WATCH)
            if _depth > 0:
                _install_async()

        setattr(loader, "exec_module", exec_module)  # noqa: B010  (this spec's loader only)
        return spec


_ASYNC_IMPORT_WATCH = _AsyncImportWatch()


def _handing_over(original: Any, *, from_config: bool, asynchronous: bool) -> Any:
    """A factory that lends the tool's connection during a handoff, and is SQLAlchemy's own outside one."""

    @functools.wraps(original)
    def factory(*args: Any, **kwargs: Any) -> Any:
        handoff = _current.get()
        if handoff is None:
            return original(*args, **kwargs)
        if handoff.probing:
            raise _Probed(_url_from_config(args, kwargs, required=False) if from_config else _url_given(args, kwargs))
        url = _url_from_config(args, kwargs) if from_config else _url_given(args, kwargs)
        engine = handoff.engine_for(url)
        return _BoundAsyncEngine(engine) if asynchronous else engine

    return factory


@functools.cache
def _offline_dialect() -> Any:
    """The dialect of an engine built offline, which never connects: PostgreSQL's, as the tool's connections."""
    return PGDialect_psycopg()  # type: ignore[no-untyped-call]


def _url_given(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The URL create_engine(url, **kwargs) asks for."""
    return args[0] if args else kwargs.get("url")


def _url_from_config(args: tuple[Any, ...], kwargs: dict[str, Any], *, required: bool = True) -> Any:
    """The URL engine_from_config(configuration, prefix, **kwargs) asks for, read as SQLAlchemy reads it."""
    if "url" in kwargs:
        return kwargs["url"]
    configuration = args[0] if args else kwargs.get("configuration") or {}
    prefix = args[1] if len(args) > 1 else kwargs.get("prefix", "sqlalchemy.")
    url = configuration.get(f"{prefix}url")
    if url is None and required:
        raise EnvAsksForAnotherDatabase(
            f"env.py called engine_from_config() with a configuration that has no {prefix}url, so it names no "
            "database. hindsight-migrate puts the database it resolved in sqlalchemy.url of the config section "
            "Alembic reads: pass config.get_section(config.config_ini_section).",
        )
    return url


