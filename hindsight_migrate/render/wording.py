"""The words and marks every view uses (terminal, markdown), so a plan reads the same wherever it is shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hindsight_migrate.postgres.audit_records import Outcome
from hindsight_migrate.render.layout import plural
from hindsight_migrate.review.kinds import SHORT_LOCK_SECONDS, Basis, ChangeKind, Concern, NoRehearsal
from hindsight_migrate.revisions import Direction, RevisionState
from hindsight_migrate.schema import Change
from hindsight_migrate.words import hold_cell, human_bytes, row_count, seconds_text

if TYPE_CHECKING:
    from collections.abc import Iterable

    from hindsight_migrate.postgres.audit_records import ApplyRecord, RecordedHold
    from hindsight_migrate.reports.history import HistoryEntry
    from hindsight_migrate.review.lint import LintFinding, LintResult
    from hindsight_migrate.review.plan import MigrationPlan
    from hindsight_migrate.review.rehearsal import ImpactRow, Rehearsal
    from hindsight_migrate.review.rehearsal.model import Hold
    from hindsight_migrate.review.summary import PlanSummary

# Severity in words and symbols, never colour alone (NO_COLOR, a CI log): (mark, words, style).
# Keyed by the enums themselves, so that mypy sees a kind with no words (a test also checks every member).
CONCERN_WORDS: dict[Concern, tuple[str, str, str]] = {
    Concern.REHEARSAL_FAILED: ("✖", "FAILED", "bold red"),
    Concern.DATA_LOSS: ("✖", "DATA LOSS", "bold red"),
    Concern.DROP: ("▲", "DROP", "yellow"),
    Concern.LOCK: ("▲", "LOCK", "red"),
    Concern.RENAME: ("▲", "RENAME", "yellow"),
    Concern.NOT_OFFLINE: ("●", "NO SQL", "yellow"),
    Concern.RUNS_PYTHON: ("●", "PYTHON", "yellow"),
    Concern.SERVER_WIDE: ("▲", "SERVER-WIDE", "yellow"),
    Concern.NOT_REHEARSED: ("●", "NOT REHEARSED", "yellow"),
    Concern.LINT_ERROR: ("✖", "LINT ERROR", "bold red"),
    Concern.WARNING: ("●", "WARNING", "yellow"),
}
NO_REHEARSAL_WORDS: dict[NoRehearsal, str] = {
    NoRehearsal.REQUESTED: "--no-rehearsal was given, so the schema diff, locks and data loss are not measured",
    NoRehearsal.SAVED_PLAN: "applying a saved plan, which was rehearsed when it was reviewed; what it showed then is "
    "checked to be unchanged",
    NoRehearsal.NOTHING_TO_RUN: "nothing to run",
}
CHANGE_WORDS: dict[ChangeKind, str] = {
    ChangeKind.NOTHING: "nothing to do",
    ChangeKind.CHANGES: "the plan changes the database",
    ChangeKind.DESTRUCTIVE: "the plan is destructive",
}
DIFF_MARKS: dict[Change, tuple[str, str]] = {
    Change.ADDED: ("+", "green"),
    Change.REMOVED: ("-", "red"),
    Change.CHANGED: ("~", "yellow"),
    Change.RENAMED: ("→", "yellow"),
}
DIFF_ORDER = [Change.REMOVED, Change.RENAMED, Change.CHANGED, Change.ADDED]  # what destroys or breaks first
IMPACT_COLUMNS = ("Revision", "Table", "Lock", "Blocks", "Rewritten", "Rows written", "Rows", "Size", "Held", "Basis")
IMPACT_TITLE = "Impact at the target's size: locks held (measured or predicted) and storage rewritten"
BIG_DIFF = 40  # a longer diff, in a big plan, is counted by kind
STATE_MARKS: dict[RevisionState, tuple[str, str]] = {
    RevisionState.CURRENT: ("●", "bold green"),
    RevisionState.APPLIED: ("✓", "green"),
    RevisionState.PENDING: ("○", "yellow"),
}
SHOWN_ONE_BY_ONE = 3  # a warning found in more revisions than this is shown once, with the revisions listed


def summary_lines(summary: PlanSummary) -> tuple[str, str]:
    """The plan's header line and count line, as plain text."""
    verb = "Downgrade" if summary.direction is Direction.DOWN else "Upgrade"
    start = ", ".join(summary.current) or "empty"
    end = ", ".join(summary.final) or "base"
    if summary.target not in ("heads", "head", end, "base"):
        end += f" (target {summary.target})"  # a prefix, a relative step, or a branch's revision
    where = (
        f"rehearsed on {summary.rehearsed}"
        if summary.rehearsed is not None
        else f"not rehearsed: {NO_REHEARSAL_WORDS[summary.not_rehearsed] if summary.not_rehearsed else 'skipped'}"
    )
    bootstrap = "bootstrap, then " if summary.bootstrap else ""
    header = (
        f"{verb} plan for {summary.database}: {start} → {end}, "
        f"{bootstrap}{summary.revisions} {plural('revision', summary.revisions)}, {where}."
    )
    counts = summary.counts
    if counts is None:
        return header, "Plan: changes not measured (no rehearsal)."
    lost = "not measured" if counts.rows_lost is None else f"{counts.rows_lost:,}"
    return header, (
        f"Plan: {counts.added} to add, {counts.changed} to change, {counts.renamed} to rename, "
        f"{counts.dropped} to drop; rows of data lost: {lost}; "
        f"lint: {counts.lint_errors} {plural('error', counts.lint_errors)}, "
        f"{counts.lint_warnings} {plural('warning', counts.lint_warnings)}."
    )


NOTHING_NEEDS_ATTENTION = "Needs attention: nothing — no blocking lock over 0.05 s, no data lost, no rename, no error."


def folded_line(summary: PlanSummary) -> str:
    """The short locks not listed one by one, in one line."""
    return (
        f"and {summary.folded} more {plural('table', summary.folded)} locked under {SHORT_LOCK_SECONDS:.2f} s "
        f"each (longest {summary.folded_seconds:.2f} s), nothing rewritten."
    )


def statement_counts(kinds: dict[str, int] | None) -> str:
    """A revision's statements counted by kind (None: its SQL cannot render offline), for a big plan's one
    line per revision."""
    if kinds is None:
        return "cannot render offline SQL"
    return ", ".join(f"{count} {kind}" for kind, count in kinds.items()) or "no SQL"


def lint_where(same: list[LintFinding]) -> tuple[str, str]:
    """The Revision and Line cells of one rule's warnings: each revision with its lines, or folded."""
    lines: dict[str, list[str]] = {}
    for finding in same:
        lines.setdefault(finding.revision, []).append(str(finding.line))
    if len(lines) > SHOWN_ONE_BY_ONE:
        more = len(lines) - SHOWN_ONE_BY_ONE
        return ", ".join(list(lines)[:SHOWN_ONE_BY_ONE]) + f" and {more} more", ""
    return "\n".join(lines), "\n".join(", ".join(numbers) for numbers in lines.values())


def lint_dropped(lint: LintResult) -> str | None:
    """The line that says how many lock warnings on tables the plan creates are not shown."""
    count = lint.dropped_on_new_tables
    if not count:
        return None
    return (
        f"{count} {plural('warning', count)} about locks or existing clients, on tables created earlier "
        f"in these revisions, {'is' if count == 1 else 'are'} not shown: nothing uses those tables yet."
    )


def impact_cells(impact: tuple[ImpactRow, ...]) -> list[list[str]]:
    """The impact table's cells (IMPACT_COLUMNS), plain; a revision's name and time only on its first row."""
    rows = []
    for index, row in enumerate(impact):
        first = index == 0 or impact[index - 1].revision != row.revision
        hold = row.hold
        rows.append(
            [
                row.revision if first else "",
                row.table,
                row.mode.words,
                row.blocks.value,
                "yes" if row.rewritten else "no",  # under "Rewritten": the word again would say nothing more
                (f"{row.rows_written:,}" if row.rows_written_exact else f"~{row.rows_written:,}")
                if row.rows_written
                else "",
                row_count(row.size.estimated_rows, row.size.rows_exact) if row.size else "new",
                human_bytes(row.size.total_bytes) if row.size else "",
                hold_cell(hold.seconds, hold.seconds_low, hold.seconds_high, hold.basis.value) if hold else "",
                _basis_cell(hold),
            ]
        )
    return rows


def _basis_cell(hold: Hold | None) -> str:
    if hold is None or hold.basis is Basis.MEASURED:
        return "measured"
    if hold.basis is Basis.UNKNOWN:
        return "no rows timed"
    sample = f"{hold.sample_percent:.2g} % sample" if hold.sample_percent is not None else "sample"
    return f"predicted, {sample}" + (f", x{hold.calibration:.2f} calibrated" if hold.calibration else "")


# A lock held (or predicted) shorter than this is not worth a line in status: a catalog change, a commit.
HEAVY_HOLD_SECONDS = 0.1


def hold_lines(holds: Iterable[RecordedHold]) -> list[str]:
    """The last apply's heavy locks, what the plan said against what the apply held: how far to trust a plan."""
    lines = []
    for hold in holds:
        predicted = hold.predicted_seconds
        if max(predicted or 0.0, hold.actual_seconds) < HEAVY_HOLD_SECONDS:
            continue
        said = hold_cell(predicted, hold.predicted_low, hold.predicted_high, hold.basis)
        ratio = f" (actual/plan {hold.actual_seconds / predicted:.2f})" if predicted else ""
        lines.append(
            f"{hold.revision} {hold.table}: plan said {said} ({hold.basis}), held {seconds_text(hold.actual_seconds)}"
            + ratio
        )
    return lines


def impact_notes(rehearsal: Rehearsal, *, listed: bool) -> list[str]:
    """The lines after the impact table: revisions that lock nothing the database has, and what was rewritten."""
    _, quiet = rehearsal.impact()
    notes = []
    if quiet:
        others = "The other" if listed else "The"
        notes.append(
            f"{others} {revisions_count(len(quiet))} {'locks' if len(quiet) == 1 else 'lock'} no table the database "
            f"has now ({'it only adds' if len(quiet) == 1 else 'they only add'} new objects); "
            f"{sum(quiet):.2f} s in all."
        )
    rewritten_all = sorted({name for cost in rehearsal.costs for name in cost.rewritten})
    if rewritten_all:
        notes.append(f"Rewritten (tables and indexes): {', '.join(rewritten_all)}")
    bases = {hold.basis for cost in rehearsal.costs for hold in cost.holds}
    if bases & {Basis.PREDICTED, Basis.UNKNOWN}:
        notes.append(
            "Held: from the statement that first names the table to the revision's commit. Predicted times are "
            "scaled from a sample to the target's rows, with their range; for times measured at full size, "
            "rehearse on a copy-on-write clone of production (--rehearse-on URL: a Database Lab thin clone, a "
            "Neon branch, an Aurora clone)."
        )
    return notes


def history_marks(entry: HistoryEntry) -> list[str]:
    """What is special about a revision in the graph (head, base, branch point, merge, its labels)."""
    info = entry.info
    flags = ((info.is_head, "head"), (info.is_base, "base"), (info.is_branch_point, "branch point"))
    labels = [label for flag, label in (*flags, (info.is_merge_point, "merge")) if flag]
    return labels + [f"label {label}" for label in info.branch_labels]


# How an audited run ended, in words (every outcome: mypy checks the keys against Outcome); never the raw
# value a script reads in JSON (`nothing_to_do`).
OUTCOME_WORDS: dict[Outcome, str] = {
    Outcome.RUNNING: "still running, or was killed",
    Outcome.SUCCEEDED: "succeeded",
    Outcome.FAILED: "failed",
    Outcome.INTERRUPTED: "interrupted (Ctrl-C or SIGTERM)",
    Outcome.NOTHING_TO_DO: "found nothing to do",
}


def last_apply_words(run: ApplyRecord) -> str:
    """The last apply without its outcome: "up 2026-12-04 20:41 UTC by ana@box, base → 1a2b3c4d5e6f"."""
    return (
        f"{run.command} {run.started_at:%Y-%m-%d %H:%M %Z} by {run.os_user}@{run.host}, "
        f"{run.from_revisions} → {run.to_revisions or '?'}"
    )


def nothing_to_do_line(plan: MigrationPlan) -> str:
    """Why a plan runs nothing, as its last line says it (after "Nothing to do: ")."""
    at = ", ".join(plan.current)
    if plan.target in ("head", "heads"):
        return f"the database is already at {'its heads' if len(plan.current) > 1 else 'head'} ({at})."
    if not plan.current:
        return "the database is already at base (no revision applied)."
    way = "down" if plan.direction is Direction.DOWN else "up"
    return f"the database is at {at}, so going {way} to {plan.target} changes nothing."


def revisions_count(count: int) -> str:
    """"1 revision", "3 revisions"."""
    return f"{count} {plural('revision', count)}"

