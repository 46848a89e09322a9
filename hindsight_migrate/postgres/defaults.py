"""Column defaults as PostgreSQL stores them, so that the models' default and the database's are compared
as PostgreSQL would write both, not as two texts.

PostgreSQL stores a default rewritten (``'untitled'`` becomes ``'untitled'::character varying``,
``now()`` stays ``now()``, a cast may be added or dropped), so comparing the models' text with the
catalog's text finds differences that are not there. Alembic's own comparison evaluates both
expressions in a ``SELECT a = b`` instead, which is wrong for volatile ones (``gen_random_uuid()``
never equals itself, ``nextval()`` advances the sequence) and fails on types that do not compare
(``boolean = integer``). Here the models' expression is stored as the default of a temporary
column of the same type, inside a savepoint that is rolled back, and read back with the same
``pg_get_expr()`` as the column's: nothing is evaluated, and the two texts are alike when the
defaults are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hindsight_migrate.postgres.database import server_said
from hindsight_migrate.postgres.sqlscript import ScriptSyntaxError, split_statements

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_COLUMN_SQL = (
    "SELECT format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid) "
    "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "WHERE a.attrelid = to_regclass(format('%I.%I', coalesce(CAST(:schema AS text), current_schema()), "
    "CAST(:table AS text))) "
    "AND a.attname = :column AND a.attnum > 0 AND NOT a.attisdropped"
)
_PROBE = "hindsight_migrate_default_probe"
_PROBE_SQL = f"SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'pg_temp.{_PROBE}'::regclass"


@dataclass(frozen=True)
class StoredDefaults:
    """A column's default and the models' expression, both as PostgreSQL stores them."""

    database: str | None  # the column's default now (pg_get_expr); None when it has none
    models: str | None  # the models' expression stored as a default of the column's type; None when it could not be
    problem: str | None = None  # why the models' expression could not be stored (what PostgreSQL said)

    @property
    def differ(self) -> bool:
        return self.database != self.models


def sql_literal(value: str) -> str:
    """A string default as SQLAlchemy writes it into DDL: a quoted literal (standard_conforming_strings)."""
    return "'" + value.replace("'", "''") + "'"


def stored_defaults(
    connection: Connection, *, schema: str | None, table: str, column: str, expression: str
) -> StoredDefaults:
    """Reads the catalog; writes only a temporary table inside a savepoint that is always rolled back.

    ``expression`` is the models' default as SQL (a literal already quoted, or an expression).
    """
    row = connection.execute(text(_COLUMN_SQL), {"schema": schema, "table": table, "column": column}).one_or_none()
    if row is None:
        return StoredDefaults(None, None, f"the database has no column {table}.{column}")
    type_, database = str(row[0]), row[1]
    probe = f"CREATE TEMPORARY TABLE {_PROBE} (value {type_} DEFAULT {expression})"
    try:
        alone = len(split_statements(probe)) == 1
    except ScriptSyntaxError:
        alone = True  # PostgreSQL parses the whole text before it runs any of it: it says what is wrong
    if not alone:
        # The models' text would end the statement and start another: it is not one expression.
        return StoredDefaults(database, None, f"the models' default is not one SQL expression: {expression}")
    savepoint = connection.begin_nested()
    try:
        connection.exec_driver_sql(probe)
        models = connection.exec_driver_sql(_PROBE_SQL).scalar_one()
    except DBAPIError as err:
        return StoredDefaults(database, None, server_said(err))
    finally:
        savepoint.rollback()
    return StoredDefaults(database, str(models))
