"""What a reviewer must see first: one header line, one count line, and what needs attention, ranked.

Everything here is read from the plan as measured (the rehearsal's diff, locks, rewrites and
rows written, the data-loss counts, lint), never guessed from the SQL's text. The order of
"needs attention" is the order of harm: what failed, what destroys data, what blocks traffic
longest, what breaks code (renames), what the review cannot show (Python, no offline SQL),
lint errors, then the plan's own warnings. Short locks that rewrite nothing and write no row
fold into one line, so a long plan's first screen is still about what matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hindsight_migrate.postgres.lock_modes import Blocks, LockMode
from hindsight_migrate.postgres.sqlscript import statement_kinds
from hindsight_migrate.review.kinds import SHORT_LOCK_SECONDS, Basis, Concern
from hindsight_migrate.review.lock_waits import LockWaits
from hindsight_migrate.review.plan import DataLoss, Dropped, MigrationPlan
from hindsight_migrate.review.rehearsal import ImpactRow, Rehearsal
from hindsight_migrate.revisions import Direction, VersionTable
from hindsight_migrate.schema import Change
from hindsight_migrate.words import hold_phrase, human_bytes, rows_phrase

if TYPE_CHECKING:
    from hindsight_migrate.review.kinds import NoRehearsal


@dataclass(frozen=True)
class Attention:
    """One item that needs the reviewer's attention, as plain facts."""

    concern: Concern
    subject: str  # the table, column or revision it is about
    revision: str | None  # the revision that does it, when one does
    text: str  # what happens, in words
    seconds: float | None = None  # a lock: how long it is held at the target's size, expected (None: unknown)
    rows: int | None = None  # data loss: rows holding data; a lock: the table's rows
    seconds_low: float | None = None  # a lock: the range of its hold (equal to seconds when measured)
    seconds_high: float | None = None
    basis: Basis | None = None  # a lock: measured on all its rows, predicted from a sample, or unknown


@dataclass(frozen=True)
class Counts:
    """Terraform's "Plan: X to add, Y to change, Z to destroy", from the measured diff."""

    added: int
    changed: int
    renamed: int
    dropped: int
    rows_lost: int | None  # None: not measured (no rehearsal, or it failed)
    lint_errors: int
    lint_warnings: int  # neither errors nor style
    lint_style: int = 0  # style warnings on what the plan creates, folded into one line
    lint_not_run: str | None = None  # why lint did not run (downgrades, no Squawk); the counts are then 0
    lint_not_linted: int = 0  # revisions whose offline SQL Squawk cannot parse (bind placeholders, say)


@dataclass(frozen=True)
class PlanSummary:
    direction: Direction
    database: str  # masked URL
    current: tuple[str, ...]
    target: str  # what the reviewer asked for ("heads", a prefix, "-1")
    final: tuple[str, ...]
    revisions: int
    bootstrap: bool
    rehearsed: str | None  # where it was rehearsed, in words; None when it was not
    not_rehearsed: NoRehearsal | None  # why not, when it was not
    counts: Counts | None  # None: no rehearsal, so nothing was measured
    attention: tuple[Attention, ...]
    folded: int  # short locks not listed one by one
    folded_seconds: float  # the longest of them
    schemas: tuple[str, ...] = ()  # the schemas env.py migrates in one run, when there are several


# Above either, a plan is "big": each revision's SQL is counted by kind on screen and written
# whole to a file, and the schema diff is counted by kind (a first deployment of a long chain).
BIG_PLAN_REVISIONS = 50
BIG_PLAN_SQL_LINES = 300


def is_big(plan: MigrationPlan) -> bool:
    lines = sum((item.sql or "").count("\n") for item in plan.revisions)
    return len(plan.revisions) > BIG_PLAN_REVISIONS or lines > BIG_PLAN_SQL_LINES


@dataclass(frozen=True)
class PlanDigest:
    """What the views show of a plan besides the plan itself, decided once by the review, so render only words it."""

    summary: PlanSummary
    big: bool  # too many revisions or SQL lines for a screen: one line per revision, the whole SQL in a file
    sql_inline: bool  # each revision's SQL is printed with the plan (not in a big plan, unless --show-sql)
    # The statements of each revision counted by kind (CREATE TABLE: 2), in the plan's order, when the
    # SQL is not inline; None for a revision whose SQL cannot render offline.
    statement_counts: tuple[dict[str, int] | None, ...] = ()
    # --details: every part in full (each revision with its file, the diff, impact and lint tables). Without
    # it the text view is the screen a reviewer reads: the summary, each part in a few lines, the SQL.
    details: bool = False
    # How long each attempt of the apply may wait for a lock (None: the plan is not for applying, as check's).
    lock_waits: LockWaits | None = None


def digest(
    plan: MigrationPlan,
    *,
    show_sql: bool,
    version_table: VersionTable,
    details: bool = False,
    lock_waits: LockWaits | None = None,
) -> PlanDigest:
    """The summary, whether the plan is big, and a big plan's statements counted by kind (the version
    table's bookkeeping left out: env.py names that table)."""
    big = is_big(plan)
    inline = show_sql or not big
    counts = () if inline else tuple(
        None if item.sql is None else statement_kinds(item.sql, version_table=version_table.name)
        for item in plan.revisions
    )
    return PlanDigest(summarise(plan), big, inline, counts, details, lock_waits)


def _revisions(count: int) -> str:
    return f"{count} {'revision' if count == 1 else 'revisions'}"


def _holding(loss: DataLoss) -> str:
    """What a dropped table or column holds now: "3 rows", "1 row holds a value in it", "no row holds a value in it"."""
    estimate = "" if loss.exact else " (the planner's estimate)"
    if not loss.exact and loss.rows == 0:
        # No count (too big to count in time, or not readable), and an estimate of none: that proves nothing.
        return "it could not be counted, and the planner's estimate of 0 rows does not prove it empty"
    if loss.kind is Dropped.TABLE:
        if loss.exact and loss.rows == 0:
            return "it has no rows"
        return f"{loss.rows:,} {'row' if loss.rows == 1 else 'rows'}{estimate}"
    if loss.exact and loss.rows == 0:
        return "no row holds a value in it"
    held = "row holds" if loss.rows == 1 else "rows hold"
    return f"{loss.rows:,} {held} a value in it{estimate}"


def summarise(plan: MigrationPlan) -> PlanSummary:
    rehearsal = plan.rehearsal
    attention: list[Attention] = []
    folded: list[float] = []
    if rehearsal is not None and rehearsal.failure is not None:
        failure = rehearsal.failure
        attention.append(
            # The label already says FAILED: the text is what failed, not the word again.
            Attention(Concern.REHEARSAL_FAILED, failure.revision or failure.at.value, failure.revision, failure.message)
        )
    # Counted to be empty, a drop loses no data: it is shown as a drop, after the locks and renames (it breaks
    # code that reads it, as a rename does), not as data loss. An estimate of 0 (a table never analysed) is
    # no such proof, and stays data loss.
    drops: list[Attention] = []
    for loss in plan.data_loss:
        empty = not loss.holds_data
        (drops if empty else attention).append(
            Attention(
                Concern.DROP if empty else Concern.DATA_LOSS,
                loss.name,
                _revision_dropping(plan, loss.name),
                f"drops {loss.kind.value} {loss.name}: {_holding(loss)}",
                rows=loss.rows,
            )
        )
    if rehearsal is not None:
        locks, short = _locks(rehearsal.impact()[0])
        attention += locks
        folded += short
        for change in rehearsal.diff:
            if change.change is Change.RENAMED:
                attention.append(
                    Attention(
                        Concern.RENAME,
                        change.name,
                        None,
                        f"{change.kind} {change.before} becomes {_short_new_name(change.before, change.after)}: "
                        "code that still uses the old name breaks once this is applied",
                    )
                )
    attention += drops
    not_offline = [item for item in plan.revisions if item.sql is None]
    if not_offline:
        attention.append(
            Attention(
                Concern.NOT_OFFLINE,
                ", ".join(item.info.revision for item in not_offline),
                None,
                f"{_revisions(len(not_offline))} cannot render offline SQL, so the SQL shown is not what runs: "
                + ", ".join(item.info.revision for item in not_offline),
            )
        )
    python = [item for item in plan.revisions if item.runs_python and item.sql is not None]
    if python:
        attention.append(
            Attention(
                Concern.RUNS_PYTHON,
                ", ".join(item.info.revision for item in python),
                None,
                f"{_revisions(len(python))} {'reads' if len(python) == 1 else 'read'} the database from Python "
                "(get_bind), so their SQL shown is not "
                "all they do: " + ", ".join(item.info.revision for item in python),
            )
        )
    if rehearsal is not None:
        attention += _beyond_the_database(rehearsal)
    for finding in plan.lint.errors:
        attention.append(
            Attention(
                Concern.LINT_ERROR,
                finding.rule,
                finding.revision,
                f"{finding.rule}: {finding.message} ({finding.where})",
            )
        )
    for warning in plan.warnings:
        attention.append(Attention(Concern.WARNING, "", None, warning))
    return PlanSummary(
        direction=plan.direction,
        database=plan.database,
        current=plan.current,
        target=plan.target,
        final=plan.final,
        revisions=len(plan.revisions),
        bootstrap=plan.bootstrap is not None,
        rehearsed=rehearsal.description if rehearsal is not None else None,
        not_rehearsed=plan.rehearsal_skipped,
        counts=_counts(plan),
        attention=tuple(attention),
        folded=len(folded),
        folded_seconds=max(folded, default=0.0),
        schemas=plan.schemas,
    )


def _beyond_the_database(rehearsal: Rehearsal) -> list[Attention]:
    """What reaches past the database: rehearsed in a transaction that was rolled back, or not run at all."""
    items = [
        Attention(
            Concern.NOT_REHEARSED,
            skipped.words,
            skipped.revision,
            f"{skipped.words}: not run in the rehearsal, since no rollback would undo it; it runs for real only "
            f"when applied ({skipped.revision or 'bootstrap'})",
        )
        for skipped in rehearsal.not_rehearsed
    ]
    by_revision: dict[str | None, list[str]] = {}
    for change in rehearsal.server_wide:
        by_revision.setdefault(change.revision, []).append(change.words)
    items += [
        Attention(
            Concern.WARNING,
            warning.message,
            warning.revision,
            f"PostgreSQL {'will warn on the target' if warning.foreseen else 'warned'} "
            f"({warning.revision or 'bootstrap'}): {warning.message}",
        )
        for warning in rehearsal.server_warnings
    ]
    items += [
        Attention(
            Concern.SERVER_WIDE,
            ", ".join(words),
            revision,
            f"{'; '.join(dict.fromkeys(words))}: changes what the whole server shares (every database on it sees "
            f"it); rehearsed in a transaction that was rolled back ({revision or 'bootstrap'})",
        )
        for revision, words in by_revision.items()
    ]
    return items


def _counts(plan: MigrationPlan) -> Counts | None:
    rehearsal = plan.rehearsal
    if rehearsal is None:
        return None
    # The diff lists a new or dropped table once, not once more per column: each counts as one object.
    by_kind = {kind: sum(1 for c in rehearsal.diff if c.change is kind) for kind in Change}
    return Counts(
        added=by_kind[Change.ADDED],
        changed=by_kind[Change.CHANGED],
        renamed=by_kind[Change.RENAMED],
        dropped=by_kind[Change.REMOVED],
        rows_lost=sum(loss.rows for loss in plan.data_loss) if rehearsal.ok else None,
        lint_errors=len(plan.lint.errors),
        lint_warnings=len(plan.lint.warnings),
        lint_style=len(plan.lint.style),
        lint_not_run=None if plan.lint.ran else (plan.lint.note or "not run"),
        lint_not_linted=len(plan.lint.not_linted),
    )


def _locks(impact: tuple[ImpactRow, ...]) -> tuple[list[Attention], list[float]]:
    """Each table locked against reads or writes, once, ranked: what blocks reads first, then the longest."""
    by_table: dict[str, list[ImpactRow]] = {}
    for row in impact:
        if row.blocks is not Blocks.NOTHING:
            by_table.setdefault(row.table, []).append(row)
    ranked: list[tuple[tuple[float, float, bool, int], Attention]] = []
    short: list[float] = []
    for table, rows in by_table.items():
        # The lock that matters most: one that blocks reads beats one that blocks writes, then the longest.
        worst = max(rows, key=lambda row: (row.blocks is Blocks.READS_AND_WRITES, row.worst_seconds))
        longer = [row for row in rows if row.worst_seconds > worst.worst_seconds]  # a weaker lock held longer
        rewritten = any(row.rewritten for row in rows)
        written = sum(row.rows_written for row in rows)
        longest = max(row.worst_seconds for row in rows)
        if longest < SHORT_LOCK_SECONDS and not rewritten and not written:
            short.append(longest)
            continue
        size = worst.size
        hold = worst.hold
        facts = [_hold_words(worst)]
        if longer:
            other = max(longer, key=lambda row: row.worst_seconds)
            facts.append(f"{other.mode.words} (blocks {other.blocks.value}) {_hold_words(other)}")
        if rewritten:
            facts.append("rewrites it")
        if written:
            exact = all(row.rows_written_exact for row in rows)
            facts.append(f"writes {written:,} rows" if exact else f"writes an estimated {written:,} rows")
        if size is not None:
            facts.append(f"{rows_phrase(size.estimated_rows, size.rows_exact)}, {human_bytes(size.total_bytes)}")
        revisions = list(dict.fromkeys(row.revision for row in rows))
        ranked.append(
            (
                # Traffic stopped outright counts before traffic that can still read, then the rest.
                (_held(rows, Blocks.READS_AND_WRITES), _held(rows, Blocks.WRITES), rewritten, written),
                Attention(
                    Concern.LOCK,
                    table,
                    worst.revision,
                    f"{table}: {worst.mode.words}, blocks {worst.blocks.value}; " + ", ".join(facts)
                    + f" ({', '.join(revisions)})",
                    seconds=hold.seconds if hold is not None else worst.seconds,
                    rows=size.estimated_rows if size is not None else None,
                    seconds_low=hold.seconds_low if hold is not None else worst.seconds,
                    seconds_high=hold.seconds_high if hold is not None else worst.seconds,
                    basis=worst.basis,
                ),
            )
        )
    ranked.sort(key=lambda item: item[0], reverse=True)
    return [item for _, item in ranked], short


def _held(rows: list[ImpactRow], blocks: Blocks) -> float:
    """The longest any of ``rows`` may hold a lock that blocks ``blocks`` (its range's high end; 0: none does)."""
    return max((row.worst_seconds for row in rows if row.blocks is blocks), default=0.0)


def _hold_words(row: ImpactRow) -> str:
    hold = row.hold
    if hold is None:
        return hold_phrase(row.seconds, row.seconds, row.seconds, Basis.MEASURED.value, None)
    return hold_phrase(hold.seconds, hold.seconds_low, hold.seconds_high, hold.basis.value, hold.sample_percent)


def _short_new_name(old: str | None, new: str | None) -> str:
    """A column renamed in its table is named by its new name alone: `public.t.a becomes b`."""
    old_parent, new_parent = (old or "").rpartition(".")[0], (new or "").rpartition(".")[0]
    return (new or "").rpartition(".")[2] if old_parent and old_parent == new_parent else new or ""


def _revision_dropping(plan: MigrationPlan, name: str) -> str | None:
    """The revision whose rehearsal locked the dropped table (the one that drops it), when one did."""
    if plan.rehearsal is None:
        return None
    table = name if any(c.kind == "table" and c.name == name for c in plan.rehearsal.diff) else name.rpartition(".")[0]
    for cost in plan.rehearsal.costs:
        if any(locked == table and mode is LockMode.ACCESS_EXCLUSIVE for locked, mode in cost.locks):
            return cost.revision
    return None
