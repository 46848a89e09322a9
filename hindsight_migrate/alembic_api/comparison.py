"""What autogenerate compares: types and server defaults too, unless env.py says otherwise.

Alembic compares server defaults only when ``context.configure(compare_server_default=…)`` asks
(its default is False), so a model that gains ``server_default="untitled"`` was "no difference"
to ``new`` and passed ``check``. While the tool autogenerates, env.py's ``configure()`` is seen
before Alembic reads it: what env.py passed is kept (False: not compared, and said so; a function
of its own: used), and what it left out is filled in: ``compare_type=True`` and the tool's server
default comparison (also for ``True``, which asks for a comparison and gets a reliable one): the
PostgreSQL dialect's ``compare_server_default``, which evaluates ``SELECT a = b``, is replaced by
one that stores the models' expression as PostgreSQL would (:mod:`hindsight_migrate.postgres.defaults`)
and evaluates nothing. A default PostgreSQL cannot store that way is listed as not compared.

``configure()`` and the dialect's comparison are wrapped once on their classes (Alembic's module
proxy, ``context.configure`` in env.py, calls configure() on whichever EnvironmentContext is
running); the wrappers do what Alembic does outside :func:`comparing`, which holds its state in a
context variable.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from alembic.ddl.postgresql import PostgresqlImpl
from alembic.runtime.environment import EnvironmentContext

from hindsight_migrate.postgres.defaults import sql_literal, stored_defaults
from hindsight_migrate.revisions import ComparedBy, Comparison, UncomparedDefault


@dataclass
class _Comparing:
    types: ComparedBy = ComparedBy.TOOL
    server_defaults: ComparedBy = ComparedBy.TOOL
    uncompared: list[UncomparedDefault] = field(default_factory=list)

    def result(self) -> Comparison:
        return Comparison(self.types, self.server_defaults, tuple(self.uncompared))

    def options(self, kw: dict[str, Any]) -> dict[str, Any]:
        """env.py's configure() options, with what the comparison needs filled in."""
        types = kw.get("compare_type", True)
        self.types = _who(types)
        kw["compare_type"] = types
        defaults = kw.get("compare_server_default", True)
        self.server_defaults = _who(defaults)
        kw["compare_server_default"] = defaults
        return kw

    def compare_server_default(
        self,
        connection: Any,
        inspected_column: Any,
        metadata_column: Any,
        rendered_metadata_default: str | None,
        rendered_inspector_default: str | None,
    ) -> bool:
        """Whether the defaults differ, as PostgreSQL stores them (Alembic calls this only for plain defaults:
        computed columns and identities have comparators of their own)."""
        table = metadata_column.table
        if metadata_column.primary_key and metadata_column is table._autoincrement_column:
            return False  # a SERIAL's nextval() is not a default of the models (as Alembic judges it)
        metadata_default = metadata_column.server_default
        if metadata_default is None or rendered_inspector_default is None:
            return (metadata_default is None) != (rendered_inspector_default is None)  # added or removed
        arg = metadata_default.arg
        expression = sql_literal(arg) if isinstance(arg, str) else rendered_metadata_default
        if expression is None:
            return False
        stored = stored_defaults(
            connection,
            schema=inspected_column.table.schema,
            table=inspected_column.table.name,
            column=inspected_column.name,
            expression=expression,
        )
        if stored.problem is not None:
            self.uncompared.append(
                UncomparedDefault(
                    str(table.name), str(metadata_column.name), stored.database, expression, stored.problem
                )
            )
            return False  # not compared: listed, never counted as the same
        return stored.differ


def _who(option: Any) -> ComparedBy:
    if option is False:
        return ComparedBy.OFF
    return ComparedBy.ENV_PY if callable(option) else ComparedBy.TOOL


_current: contextvars.ContextVar[_Comparing | None] = contextvars.ContextVar("hindsight_comparing", default=None)


@contextmanager
def comparing() -> Iterator[_Comparing]:
    """While autogenerate runs: types and server defaults compared as env.py allows (``.result()`` says how)."""
    _install()
    state = _Comparing()
    token = _current.set(state)
    try:
        yield state
    finally:
        _current.reset(token)


@functools.cache
def _install() -> None:
    configure_as_alembic_does = EnvironmentContext.configure

    @functools.wraps(configure_as_alembic_does)
    def configure(self: EnvironmentContext, *args: Any, **kw: Any) -> None:
        state = _current.get()
        if state is not None:
            kw = state.options(kw)
        configure_as_alembic_does(self, *args, **kw)

    EnvironmentContext.configure = configure  # type: ignore[method-assign]

    # Not a compare_server_default function handed to configure(): Alembic calls those before it knows the
    # default is a plain one, and fails on an identity column ('Identity' object has no attribute 'arg').
    compare_as_alembic_does: Any = PostgresqlImpl.compare_server_default  # untyped in Alembic

    @functools.wraps(compare_as_alembic_does)
    def compare_server_default(self: PostgresqlImpl, *args: Any) -> Any:
        state = _current.get()
        if state is None or state.server_defaults is not ComparedBy.TOOL:
            return compare_as_alembic_does(self, *args)
        return state.compare_server_default(self.connection, *args)

    PostgresqlImpl.compare_server_default = compare_server_default  # type: ignore[method-assign]

    # A column the models leave without Identity() that the database made an identity (V1's SQL, say): the models
    # leave its generator to the database, as a SERIAL's nextval() is left (Alembic compares neither unless asked;
    # asked by the tool, it would write an alter_column dropping the identity). An identity the models declare is
    # compared as Alembic does.
    identity_as_alembic_does: Any = PostgresqlImpl._compare_identity_default  # untyped in Alembic

    @functools.wraps(identity_as_alembic_does)
    def compare_identity_default(self: PostgresqlImpl, metadata_identity: Any, inspector_identity: Any) -> Any:
        state = _current.get()
        if state is not None and state.server_defaults is ComparedBy.TOOL and metadata_identity is None:
            return set(), set(), False
        return identity_as_alembic_does(self, metadata_identity, inspector_identity)

    PostgresqlImpl._compare_identity_default = compare_identity_default  # type: ignore[method-assign,assignment]
