"""Keep what a rehearsal runs inside the database it runs on: a dry run changes nothing anywhere.

A rehearsal runs the revisions for real, on a scratch copy (each revision commits there, which
is what lets ``autocommit_block()`` work) or in one transaction on the target that is rolled
back. Neither is enough on its own: roles, their settings and memberships, databases (the
target's own name included), tablespaces and parameter privileges live in catalogs the whole
server shares, so a revision that creates a role would create it for real on the scratch copy's
server, and then the real apply would fail with "role … already exists". A revision can also
end the rolled-back transaction by a path no statement check sees (the DBAPI connection's
``commit()``, a raw cursor).

So the rehearsal's DBAPI connection is guarded, whatever path the revision takes to it
(SQLAlchemy, ``op.get_bind().connection.dbapi_connection``, a raw cursor):

* every statement is read before it is sent (PostgreSQL's parser, :func:`sqlscript.server_wide`).
  One whose effect no rollback undoes (CREATE DATABASE, ALTER SYSTEM, a subscription, COPY … TO
  PROGRAM, pg_terminate_backend()) is not sent at all: the plan lists it as not rehearsed. One
  PostgreSQL runs in a transaction (CREATE ROLE, ALTER DATABASE … SET, GRANT … ON DATABASE) is
  rehearsed in a transaction that is rolled back;
* before each commit on a scratch copy, what the transaction wrote in the shared catalogs is read
  (``pg_stat_get_xact_tuples_*``, counted from the transaction's first statement), which also sees
  a role created by dynamic SQL in a DO block or a function. Such a transaction is not committed:
  the rehearsal goes on from that revision in one transaction that is rolled back (:class:`MustRollBack`);
* in a rolled-back rehearsal, every commit (a call or a statement) is refused before it happens,
  and the transaction id is compared after each revision, so a transaction ended by a path no
  guard sees fails the plan loudly instead of being reported as rolled back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.pq import TransactionStatus

from hindsight_migrate.errors import Refused
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.postgres import catalog
from hindsight_migrate.postgres.sqlscript import server_wide, transaction_control

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# Sent instead of a statement that is not rehearsed: it does nothing and returns no row.
_NOTHING = "SELECT WHERE false"


class Mode(Enum):
    COMMITTING = "committing"  # each revision commits (a scratch copy, a disposable database)
    ROLLED_BACK = "rolled_back"  # one transaction, rolled back at the end (the target, or after a server-wide change)


@dataclass(frozen=True)
class NotRehearsed:
    """A statement the rehearsal did not send: no rollback would have undone it."""

    revision: str | None
    words: str  # what it does ("CREATE DATABASE reports")
    statement: str  # its text, masked


@dataclass(frozen=True)
class ServerWide:
    """A change to objects the whole server shares that the rehearsal made, and rolled back."""

    revision: str | None
    words: str


class MustRollBack(Exception):
    """A transaction is about to change objects the whole server shares: it is not committed (or the
    statement is not sent), and the rehearsal goes on in one transaction that is rolled back."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class LeftTransaction(Exception):
    """A revision tried to end the rolled-back transaction a rehearsal runs in (refused before it could)."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


class Containment:
    """The guard of one rehearsal connection; see the module's docstring."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self.revision: str | None = None  # the revision running now (set by the rehearsal)
        self.not_rehearsed: list[NotRehearsed] = []
        self.server_wide: list[ServerWide] = []
        self._raw: Any = None
        self._originals: dict[str, Any] = {}
        # Whether a transaction ran a statement through a cursor since the last commit or rollback.
        self._in_transaction = False
        self._must_roll_back: str | None = None  # sticky: a revision that swallowed MustRollBack cannot commit
        self._xid: str | None = None  # the rolled-back transaction's id
        # A statement ran outside any transaction (autocommit_block()): it committed at once, so no check
        # before a commit saw it, and the rehearsal must compare the server's shared objects afterwards.
        self.ran_outside_transactions = False

    # -- installing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def armed(self, connection: Connection) -> Iterator[Containment]:
        """Guard ``connection``'s DBAPI connection for the block."""
        raw = connection.connection.driver_connection
        assert raw is not None
        self._raw = raw
        self._originals = {
            "commit": raw.commit,
            "rollback": raw.rollback,
            "cursor_factory": raw.cursor_factory,
        }
        raw._hindsight_containment = self
        raw.commit = self._commit
        raw.rollback = self._rollback
        raw.cursor_factory = _guarded_cursor_class()
        try:
            yield self
        finally:
            self.disarm()

    def disarm(self) -> None:
        """Let the connection commit and roll back as any other (the rehearsal's own final rollback)."""
        raw = self._raw
        if raw is None:
            return
        for name in ("commit", "rollback"):
            with contextlib.suppress(AttributeError):
                delattr(raw, name)  # the instance attribute: the class's method shows again
        raw.cursor_factory = self._originals["cursor_factory"]
        with contextlib.suppress(AttributeError):
            del raw._hindsight_containment
        self._raw = None

    def abandon_transaction(self, connection: Connection) -> None:
        """After MustRollBack: roll back whatever the server has open. SQLAlchemy may already consider its
        transaction over (its commit raised), while the server's is still open, holding what was refused."""
        connection.rollback()
        self._rollback()

    # -- the rolled-back mode --------------------------------------------------------------

    def roll_back_from_here(self) -> None:
        """From now on nothing commits: call inside the transaction the rest of the rehearsal runs in."""
        self.mode = Mode.ROLLED_BACK
        self._must_roll_back = None
        self._xid = str(self._own_query("SELECT pg_current_xact_id()::text")[0][0])

    def verify_inside(self) -> None:
        """Rolled-back mode: raise unless the connection is still in the transaction the rehearsal began."""
        if self.mode is not Mode.ROLLED_BACK or self._xid is None:
            return
        now = self._own_query("SELECT pg_current_xact_id_if_assigned()::text")[0][0]
        if now != self._xid:
            raise Refused(
                f"Revision {self.revision or '?'} ended the transaction the rehearsal runs in, by a path the "
                "tool cannot stop (the server connection itself, a procedure): whatever the rehearsal ran before "
                "may have been COMMITTED, although it was meant to be rolled back. Check the database (hindsight-"
                "migrate status, and the objects the revisions create), and rehearse on a scratch copy (the "
                "default) instead. A revision must leave transactions to Alembic (autocommit_block()).",
            )

    # -- what the DBAPI connection calls ---------------------------------------------------

    def before_statement(self, raw: Any, query: Any, params: Any) -> tuple[Any, Any, bool]:
        """(query, params, sent): what to send instead, and whether the statement is sent at all."""
        text = _query_text(raw, query)
        self.ran_outside_transactions = self.ran_outside_transactions or bool(raw.autocommit)
        starts_transaction = not raw.autocommit and raw.info.transaction_status == _idle()
        if self.mode is Mode.COMMITTING and starts_transaction:
            # The counters _shared_writes reads are the transaction's own (pg_stat_get_xact_*): a
            # transaction starts at zero, so what it wrote is whatever they count before its commit.
            self._in_transaction = True
        control = transaction_control(text)
        if control is not None:
            if self.mode is Mode.ROLLED_BACK:
                raise LeftTransaction(f"it runs {control}")
            if not raw.autocommit:
                self._before_commit(f"a {control} statement")
        for statement in server_wide(text):
            if not statement.undoable:
                self.not_rehearsed.append(
                    NotRehearsed(self.revision, statement.words, mask_secrets(" ".join(text.split())[:300]))
                )
                return _NOTHING, None, False
            if self.mode is Mode.COMMITTING:
                self._must_roll_back = statement.words
                raise MustRollBack(statement.words)
            self.server_wide.append(ServerWide(self.revision, statement.words))
        return query, params, True

    def _commit(self) -> None:
        if self.mode is Mode.ROLLED_BACK:
            raise LeftTransaction("it commits the transaction (a commit() call)")
        if not self._raw.autocommit:
            self._before_commit("its commit")
        self._originals["commit"]()
        self._in_transaction = False

    def _rollback(self) -> None:
        self._originals["rollback"]()
        self._in_transaction = False
        self._must_roll_back = None

    def _before_commit(self, what: str) -> None:
        """Committing mode: refuse to commit a transaction that changed objects the whole server shares."""
        if self._must_roll_back is not None:
            raise MustRollBack(self._must_roll_back)
        if not self._in_transaction:
            return  # nothing ran in this transaction through a cursor
        written = sorted(table for table, count in self._shared_writes().items() if count > 0)
        if written:
            self._must_roll_back = f"writes {', '.join(catalog.SHARED_CATALOG_WORDS.get(t, t) for t in written)}"
            raise MustRollBack(self._must_roll_back)

    # -- reading, past the guard -----------------------------------------------------------

    def _shared_writes(self) -> dict[str, int]:
        return {str(name): int(count) for name, count in self._own_query(catalog.SHARED_WRITES_SQL)}

    def _own_query(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.Cursor(self._raw) as cursor:  # a plain cursor: the guard does not read its own queries
            cursor.execute(sql)
            return list(cursor.fetchall())


def _idle() -> Any:
    return TransactionStatus.IDLE


def _query_text(raw: Any, query: Any) -> str:
    if isinstance(query, str):
        return query
    if isinstance(query, bytes):
        return query.decode("utf-8", errors="replace")
    as_string = getattr(query, "as_string", None)  # psycopg.sql.Composable
    return str(as_string(raw)) if as_string is not None else str(query)


_CURSOR_CLASS: list[type[Any]] = []


def _guarded_cursor_class() -> type[Any]:
    """A psycopg cursor that shows every statement to the connection's Containment before sending it."""
    if _CURSOR_CLASS:
        return _CURSOR_CLASS[0]

    class GuardedCursor(psycopg.Cursor[Any]):
        def _guard(self, query: Any, params: Any) -> tuple[Any, Any, bool]:
            containment = getattr(self.connection, "_hindsight_containment", None)
            if containment is None:
                return query, params, True
            guarded: tuple[Any, Any, bool] = containment.before_statement(self.connection, query, params)
            return guarded

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            query, params, _ = self._guard(query, params)
            return super().execute(query, params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
            guarded, _, sent = self._guard(query, None)
            if sent:
                super().executemany(guarded, params_seq, **kwargs)

        def stream(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            query, params, _ = self._guard(query, params)
            return super().stream(query, params, **kwargs)

        def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> Any:
            statement, params, _ = self._guard(statement, params)
            return super().copy(statement, params, **kwargs)

    _CURSOR_CLASS.append(GuardedCursor)
    return GuardedCursor
