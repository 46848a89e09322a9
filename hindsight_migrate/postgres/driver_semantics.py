"""psycopg2's transaction behaviour, on the tool's psycopg 3 connection, for projects configured for psycopg2.

psycopg2 decides whether to send ``BEGIN`` from its own idea of the transaction, which only its
``commit()``/``rollback()`` reset: after a revision runs ``op.execute("COMMIT")``, psycopg2 still
thinks the transaction is open, so the statements that follow are sent without ``BEGIN`` and each
commits on its own. That is how ``COMMIT`` then ``CREATE INDEX CONCURRENTLY`` works under raw
Alembic with a psycopg2 URL. psycopg 3 reads the server's transaction status and opens a new
transaction instead, where ``CONCURRENTLY`` fails ("cannot run inside a transaction block").

So on a project whose URL names psycopg2 (``postgresql+psycopg2://`` or ``postgresql://``), the
migration connection switches to autocommit after such a ``COMMIT`` (the server is idle then),
until SQLAlchemy's next commit or rollback: exactly the statements psycopg2 would have run outside
a transaction run outside one. Every statement that runs outside a transaction — after a COMMIT, or
in ``autocommit_block()`` — is recorded: a failure after it cannot roll it back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

from hindsight_migrate.masking import mask_secrets

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class OutsideTransaction:
    """A statement of the project's that ran outside any transaction: it committed at once."""

    revision: str | None
    statement: str


@dataclass
class DriverSemantics:
    """Watches one migration connection: psycopg2's behaviour after a COMMIT (when asked), and what ran outside."""

    like_psycopg2: bool
    version_table: str = "alembic_version"
    revision: str | None = None  # the revision running now, set by whoever runs them
    outside: list[OutsideTransaction] = field(default_factory=list)
    _switched: bool = False  # autocommit turned on here, after a COMMIT statement

    @contextlib.contextmanager
    def watching(self, connection: Connection) -> Iterator[DriverSemantics]:
        listeners = (
            ("before_cursor_execute", self._before),
            ("after_cursor_execute", self._after),
            ("commit", self._transaction_ended),
            ("rollback", self._transaction_ended),
        )
        for name, fn in listeners:
            event.listen(connection, name, fn)
        try:
            yield self
        finally:
            for name, fn in listeners:
                event.remove(connection, name, fn)
            self._transaction_ended(connection)

    def _before(self, connection: Connection, cursor: Any, statement: str, *_: Any) -> None:
        raw = connection.connection.driver_connection
        if raw is None or not getattr(raw, "autocommit", False) or self.revision is None:
            return
        words = " ".join(statement.split())
        if self.version_table in words.split(" ", 4)[:4] or _transaction_control(statement) is not None:
            return  # the version table's bookkeeping, and the COMMIT itself, are not the project's changes
        self.outside.append(OutsideTransaction(self.revision, mask_secrets(words[:300])))

    def _after(self, connection: Connection, cursor: Any, statement: str, *_: Any) -> None:
        if not self.like_psycopg2 or _transaction_control(statement) not in ("COMMIT", "END"):
            return
        raw = connection.connection.driver_connection
        if raw is None or getattr(raw, "autocommit", True):
            return
        status = getattr(getattr(raw, "info", None), "transaction_status", None)
        if status is not None and int(status) == 0:  # IDLE: the COMMIT ended the transaction
            raw.autocommit = True
            self._switched = True

    def _transaction_ended(self, connection: Connection) -> None:
        if not self._switched:
            return
        raw = connection.connection.driver_connection
        with contextlib.suppress(Exception):  # a connection that is gone has no mode to put back
            raw.autocommit = False  # type: ignore[union-attr]
        self._switched = False


def _transaction_control(statement: str) -> str | None:
    # pglast loads only where a statement is read (a psycopg2 project, a connection in autocommit), not for
    # lazy: every command that runs env.py (history and status read no SQL)
    from hindsight_migrate.postgres.sqlscript import transaction_control

    return transaction_control(statement)
