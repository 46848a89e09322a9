"""The tool's own records, kept in the ``hindsight_migrate`` schema of the target database.

They live in a schema of their own so that the application, its models and Alembic's
autogenerate never see them. Every write here happens inside the transaction of the
change it records, so a record exists if and only if the change committed.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from hindsight_migrate import __version__
from hindsight_migrate.catalog import TOOL_SCHEMA, table_exists

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

BOOTSTRAP_LOG = "bootstrap_log"

_CREATE_BOOTSTRAP_LOG = f"""
CREATE TABLE IF NOT EXISTS {TOOL_SCHEMA}.{BOOTSTRAP_LOG} (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sql_path        text        NOT NULL,
    sql_sha256      text        NOT NULL,
    baseline        text        NOT NULL,
    bootstrapped_at timestamptz NOT NULL DEFAULT now(),
    os_user         text        NOT NULL,
    host            text        NOT NULL,
    tool_version    text        NOT NULL
)
"""


@dataclass(frozen=True)
class BootstrapRecord:
    sql_path: str
    sql_sha256: str
    baseline: str
    bootstrapped_at: datetime
    os_user: str
    host: str
    tool_version: str


def who_and_where() -> tuple[str, str]:
    """The OS user and host recorded with every change."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        user = "unknown"
    return user, socket.gethostname()


def record_bootstrap(connection: Connection, *, sql_path: str, sql_sha256: str, baseline: str) -> None:
    """Writes: creates the tool schema if needed and records one bootstrap."""
    from sqlalchemy import text

    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {TOOL_SCHEMA}"))
    connection.execute(text(_CREATE_BOOTSTRAP_LOG))
    user, host = who_and_where()
    connection.execute(
        text(
            f"INSERT INTO {TOOL_SCHEMA}.{BOOTSTRAP_LOG} "
            "(sql_path, sql_sha256, baseline, os_user, host, tool_version) "
            "VALUES (:sql_path, :sql_sha256, :baseline, :os_user, :host, :tool_version)"
        ),
        {
            "sql_path": sql_path,
            "sql_sha256": sql_sha256,
            "baseline": baseline,
            "os_user": user,
            "host": host,
            "tool_version": __version__,
        },
    )


def last_bootstrap(connection: Connection) -> BootstrapRecord | None:
    """Read-only: the most recent bootstrap of this database, if the tool did one."""
    from sqlalchemy import text

    if not table_exists(connection, TOOL_SCHEMA, BOOTSTRAP_LOG):
        return None
    row = connection.execute(
        text(
            "SELECT sql_path, sql_sha256, baseline, bootstrapped_at, os_user, host, tool_version "
            f"FROM {TOOL_SCHEMA}.{BOOTSTRAP_LOG} ORDER BY id DESC LIMIT 1"
        )
    ).one_or_none()
    return BootstrapRecord(*row) if row is not None else None
