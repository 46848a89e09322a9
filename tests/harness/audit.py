"""The tool's audit log, as the tests read it (their own SQL, not the tool's)."""

from __future__ import annotations

from typing import Any

from tests.harness import dbstate


def audit_rows(url: str, columns: str = "command, outcome") -> list[tuple[Any, ...]]:
    """``columns`` of every row of hindsight_migrate.apply_log, oldest first; none when no run was recorded."""
    if not dbstate.query(url, "SELECT to_regclass('hindsight_migrate.apply_log') IS NOT NULL")[0][0]:
        return []
    return dbstate.query(url, f"SELECT {columns} FROM hindsight_migrate.apply_log ORDER BY id")
