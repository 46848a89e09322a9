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
    noun = "row" if rows == 1 else "rows"
    return f"{rows:,} {noun}" if exact else f"an estimated {rows:,} {noun}"


def seconds_text(seconds: float) -> str:
    """A duration as people read it: 0.42 s, 14 s, 3.2 min."""
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"


def hold_cell(seconds: float | None, low: float | None, high: float | None, basis: str) -> str:
    """A lock's hold at the target's size, as a cell: 0.42 s (measured), ~14 s (7.0 s-28 s), unknown."""
    if basis == "unknown" or seconds is None:
        return "unknown"
    if basis == "predicted" and low is not None and high is not None:
        return f"~{seconds_text(seconds)} ({seconds_text(low)}-{seconds_text(high)})"
    return seconds_text(seconds)


def hold_phrase(
    seconds: float | None, low: float | None, high: float | None, basis: str, sample_percent: float | None
) -> str:
    """A lock's hold in a sentence, with what it rests on: "held 0.42 s, measured on all its rows", "held ~14 s
    (7.0 s-28 s), predicted from a 4.2 % sample", "held for an unknown time (not measured on its rows)"."""
    if basis == "unknown" or seconds is None:
        return "held for an unknown time (timed on a copy without its rows)"
    if basis == "predicted":
        sample = f"a {sample_percent:.2g} % sample" if sample_percent is not None else "a sample"
        return f"held {hold_cell(seconds, low, high, basis)}, predicted from {sample}"
    return f"held {seconds_text(seconds)}, measured on all its rows"
