"""The words and marks every view uses (terminal, markdown), so a plan reads the same wherever it is shown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hindsight_migrate.postgres.audit_records import Outcome
from hindsight_migrate.postgres.lock_modes import Blocks
from hindsight_migrate.render.layout import plural
from hindsight_migrate.review.kinds import SHORT_LOCK_SECONDS, Basis, ChangeKind, Concern, FailedAt, Level, NoRehearsal
from hindsight_migrate.revisions import Direction, RevisionState
from hindsight_migrate.schema import Change, GroupedChange, SchemaChange
from hindsight_migrate.words import hold_cell, human_bytes, row_count, seconds_text

if TYPE_CHECKING:
    from collections.abc import Iterable

    from hindsight_migrate.postgres.audit_records import ApplyRecord, RecordedHold
    from hindsight_migrate.reports.history import HistoryEntry
    from hindsight_migrate.review.lint import LintFinding, LintResult
    from hindsight_migrate.review.plan import MigrationPlan
    from hindsight_migrate.review.rehearsal import ImpactRow, Rehearsal
    from hindsight_migrate.review.rehearsal.model import Hold
    from hindsight_migrate.review.summary import Counts, PlanSummary

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
    NoRehearsal.FLEET: "one target of a fleet: the fleet's plan was rehearsed on its canary when it was reviewed",
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
    # One version table per schema, all at the same revisions: counted, not repeated.
    schemas = f" in {len(summary.schemas)} schemas" if summary.schemas else ""
    header = (
        f"{verb} plan for {summary.database}: {start} → {end}{schemas}, "
        f"{bootstrap}{summary.revisions} {plural('revision', summary.revisions)}, {where}."
    )
    counts = summary.counts
    if counts is None:
        return header, "Plan: changes not measured (no rehearsal)."
    lost = "not measured" if counts.rows_lost is None else f"{counts.rows_lost:,}"
    return header, (
        f"Plan: {counts.added} to add, {counts.changed} to change, {counts.renamed} to rename, "
        f"{counts.dropped} to drop; rows of data lost: {lost}; {lint_counts(counts)}."
    )


def lint_counts(counts: Counts) -> str:
    """Lint's part of the count line: errors, warnings and style notes, or why it did not run."""
    if counts.lint_not_run is not None:
        return "lint: not run (" + counts.lint_not_run.rstrip(".") + ")"
    said = f"lint: {_lint_tally(counts.lint_errors, counts.lint_warnings, counts.lint_style)}"
    if counts.lint_not_linted:
        said += f" ({counts.lint_not_linted} {plural('revision', counts.lint_not_linted)} not linted)"
    return said


def nothing_needs_attention(summary: PlanSummary) -> str:
    """The line in place of the list when nothing needs attention; lint's warnings, if any, are pointed to."""
    said = "Needs attention: nothing — no blocking lock over 0.05 s, no data lost, no rename, no error"
    warnings = summary.counts.lint_warnings if summary.counts is not None else 0
    if warnings:
        said += f" ({warnings} lint {plural('warning', warnings)} below, none blocking)"
    return said + "."


def folded_line(summary: PlanSummary) -> str:
    """The short locks not listed one by one, in one line."""
    lead = f"and {summary.folded} more" if summary.attention else f"{summary.folded}"
    return (
        f"{lead} {plural('table', summary.folded)} locked under {SHORT_LOCK_SECONDS:.2f} s "
        f"each (longest {summary.folded_seconds:.2f} s), nothing rewritten."
    )


def statement_counts(kinds: dict[str, int] | None) -> str:
    """A revision's statements counted by kind (None: its SQL cannot render offline), for a big plan's one
    line per revision."""
    if kinds is None:
        return "cannot render offline SQL"
    return ", ".join(f"{count} {kind}" for kind, count in kinds.items()) or "no SQL"


LINT_COLUMNS = ("Level", "Revision", "Statement", "Rule", "Finding")


@dataclass(frozen=True)
class LintRow:
    """One row of lint's full table (LINT_COLUMNS): an error, or one rule's warnings or style notes gathered."""

    level: Level
    style: bool  # style notes on what the plan creates (lint.STYLE_RULES)
    cells: tuple[str, str, str, str, str]


def lint_rows(lint: LintResult) -> list[LintRow]:
    """Errors one by one (each blocks `up`, so each gets its revision and statement); warnings and style notes
    once per rule, with how often and where, so two hundred identical lines do not bury the one that matters."""
    rows = [
        LintRow(Level.ERROR, False, ("error", e.revision, _statement_cell(e), e.rule, e.message))
        for e in lint.errors
    ]
    by_rule: dict[tuple[str, bool], list[LintFinding]] = {}
    for finding in lint.findings:
        if finding.level is not Level.ERROR:
            by_rule.setdefault((finding.rule, finding.is_style), []).append(finding)
    for (rule, style), same in by_rule.items():
        revision_cell, statement_cell = lint_where(same)
        level = ("style" if style else "warning") + (f", {len(same)} times" if len(same) > 1 else "")
        messages = "\n".join(dict.fromkeys(f.message for f in same))
        rows.append(LintRow(Level.WARNING, style, (level, revision_cell, statement_cell, rule, messages)))
    return rows


def _statement_cell(finding: LintFinding) -> str:
    return "whole" if finding.statement_number is None else str(finding.statement_number)


def lint_where(same: list[LintFinding]) -> tuple[str, str]:
    """The Revision and Statement cells of one rule's warnings: each revision with its statements, or folded."""
    numbers: dict[str, list[str]] = {}
    for finding in same:
        numbers.setdefault(finding.revision, []).append(_statement_cell(finding))
    if len(numbers) > SHOWN_ONE_BY_ONE:
        more = len(numbers) - SHOWN_ONE_BY_ONE
        return ", ".join(list(numbers)[:SHOWN_ONE_BY_ONE]) + f" and {more} more", ""
    return "\n".join(numbers), "\n".join(", ".join(dict.fromkeys(found)) for found in numbers.values())


STATEMENT_EXCERPT = 48  # characters of a statement's first line that name it beside a finding


def lint_places(same: list[LintFinding]) -> str:
    """Where one rule's findings are, in terms the plan shows: the revision, its statement and how that
    statement begins (one finding), or the revisions and statement numbers (several)."""
    if len(same) == 1:
        finding = same[0]
        first_line = finding.statement.strip().split("\n", 1)[0]
        excerpt = first_line if len(first_line) <= STATEMENT_EXCERPT else first_line[: STATEMENT_EXCERPT - 1] + "…"
        return f"{finding.where}: {excerpt}" if finding.statement_number is not None else finding.where
    places = list(dict.fromkeys(finding.where for finding in same))
    if len(places) > SHOWN_ONE_BY_ONE:
        return "; ".join(places[:SHOWN_ONE_BY_ONE]) + f" and {len(places) - SHOWN_ONE_BY_ONE} more"
    return "; ".join(places)


def lint_title(lint: LintResult) -> str:
    """Lint's title: errors, warnings and style notes counted."""
    return f"Lint (Squawk): {_lint_tally(len(lint.errors), len(lint.warnings), len(lint.style))}"


def _lint_tally(errors: int, warnings: int, style: int) -> str:
    """"2 errors, 1 warning, 1,100 style notes": the same words in lint's title and in the plan's count line."""
    tally = f"{errors} {plural('error', errors)}, {warnings} {plural('warning', warnings)}"
    return tally + (f", {style:,} style {plural('note', style)}" if style else "")


def lint_style_line(lint: LintResult) -> str | None:
    """Style notes on what the plan creates (see lint.STYLE_RULES), in one line with their rules counted."""
    style = lint.style
    if not style:
        return None
    by_rule: dict[str, int] = {}
    for finding in style:
        by_rule[finding.rule] = by_rule.get(finding.rule, 0) + 1
    rules = ", ".join(f"{rule} {count}" for rule, count in sorted(by_rule.items(), key=lambda item: -item[1]))
    return f"{len(style):,} {plural('note', len(style))} on the shape of what this plan creates: {rules}"


def lint_dropped(lint: LintResult) -> str | None:
    """The lines that say which lock and client warnings are not shown, and why."""
    said = []
    if lint.not_applicable_empty:
        count = lint.not_applicable_empty
        said.append(
            f"Lock and client rules do not apply to a first deployment into an empty database: no table has "
            f"traffic and no client uses a name yet ({count} {plural('finding', count)} not shown)."
        )
    if lint.not_linted:
        count = len(lint.not_linted)
        reasons: dict[str, list[str]] = {}
        for item in lint.not_linted:
            reasons.setdefault(item.reason, []).append(item.revision)
        said.append(
            f"Not linted: {count} {plural('revision', count)} ("
            + "; ".join(f"{', '.join(revisions)}: {reason}" for reason, revisions in reasons.items())
            + "). PostgreSQL reads what runs: the rehearsal still runs them."
        )
    count = lint.dropped_on_new_tables
    if count:
        said.append(
            f"{count} {plural('warning', count)} about locks or existing clients, on tables created earlier "
            f"in these revisions, {'is' if count == 1 else 'are'} not shown: nothing uses those tables yet."
        )
    return " ".join(said) or None


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


def impact_notes(rehearsal: Rehearsal, *, listed: bool, brief: bool = False) -> list[str]:
    """The lines after the impact table: revisions that lock nothing the database has, and what was rewritten
    (``brief``: the first only, the rest is in the summary's recap and under --details)."""
    _, quiet = rehearsal.impact()
    notes = []
    if quiet:
        one = len(quiet) == 1
        which = ("The other" if listed else "The") + (" revision locks" if one else f" {len(quiet)} revisions lock")
        notes.append(
            f"{which} no table the database has now ({'it only adds' if one else 'they only add'} new objects); "
            f"{sum(quiet):.2f} s in all."
        )
    rewritten_all = sorted({name for cost in rehearsal.costs for name in cost.rewritten})
    if rewritten_all and not brief:
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


def impact_line(impact: tuple[ImpactRow, ...]) -> str | None:
    """The impact table in one line, outside --details: how many of the target's tables are locked, rewritten
    and written to (each lock that blocks is in Needs attention, with its hold)."""
    if not impact:
        return None
    tables = {row.table for row in impact}
    blocking = {row.table for row in impact if row.blocks is not Blocks.NOTHING}
    rewritten = {row.table for row in impact if row.rewritten}
    written = sum(row.rows_written for row in impact)
    parts = [f"{len(tables)} {plural('table', len(tables))} the database has locked"]
    parts.append(f"{len(blocking)} of them against reads or writes" if blocking else "none against reads or writes")
    if rewritten:
        parts.append(f"{len(rewritten)} rewritten")
    if written:
        exact = all(row.rows_written_exact for row in impact if row.rows_written)
        parts.append(f"{'' if exact else '~'}{written:,} {plural('row', written)} written")
    return f"Impact at the target's size: {', '.join(parts)} (--details shows the impact table)."


SCHEMAS_NAMED = 5  # a change grouped across more schemas than this names the first few, then "…"


def in_schemas(change: SchemaChange) -> str:
    """ " (in 40 schemas: t1, t2, t3, t4, t5, …)" for a change grouped across schemas; "" for one that is not."""
    if not isinstance(change, GroupedChange):
        return ""
    named = ", ".join(change.schemas[:SCHEMAS_NAMED]) + (", …" if len(change.schemas) > SCHEMAS_NAMED else "")
    return f" (in {len(change.schemas)} schemas: {named})"


def diff_line(change: SchemaChange) -> str:
    """One change of the schema diff in a line, outside --details: what it is, and for a change or a rename
    what it was and is (an added or removed object's whole definition is under --details)."""
    if change.change is Change.RENAMED:
        return f"{change.kind} {change.before} → {change.after}{in_schemas(change)}"
    if change.change is Change.CHANGED:
        return f"{change.kind} {change.name}: {change.before or '?'} → {change.after or '?'}{in_schemas(change)}"
    return f"{change.kind} {change.name}{in_schemas(change)}"


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


# What failed, when a run failed before its first revision: Alembic creates the version table, and env.py runs
# its own statements, before it asks for one.
FAILED_BEFORE_REVISIONS_WORDS = {
    FailedAt.VERSION_TABLE: "Creating the version table env.py names (before the first revision)",
    FailedAt.ENV_PY: "A statement of env.py's own (before the first revision)",
}


def what_failed(revision: str | None, at: FailedAt) -> str:
    """``Revision r1``, or what ran before any revision did."""
    if revision is not None or at is FailedAt.REVISION:
        return f"Revision {revision}"
    return FAILED_BEFORE_REVISIONS_WORDS[at]
