"""Numbers and PostgreSQL's names as people read them; shared by the core's summaries and the views."""

from __future__ import annotations


def human_rows(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f} M"
    if count >= 1_000:
        return f"{count / 1_000:.1f} k"
    return str(count)


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def row_count(rows: int | None, exact: bool) -> str:
    """A table's rows as a cell: counted (15), the planner's estimate (~2.0 M), or unknown (never analysed)."""
    if rows is None:
        return "unknown"
    return f"{rows:,}" if exact else f"~{human_rows(rows)}"


def rows_phrase(rows: int | None, exact: bool) -> str:
    """A table's rows in a sentence: "15 rows", "an estimated 2,000,000 rows", "rows unknown"."""
    if rows is None:
        return "rows unknown (never analysed)"
    return f"{rows:,} rows" if exact else f"an estimated {rows:,} rows"
