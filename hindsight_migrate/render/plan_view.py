"""The review of a migration plan (bootstrap, up, down), the prompt's recap, progress and the result."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from hindsight_migrate.postgres.lock_modes import Blocks
from hindsight_migrate.render.console import err, out, safe_markup, sql_block
from hindsight_migrate.render.layout import (
    Column,
    count_by_kind,
    grid,
    hanging,
    human_bytes,
    plural,
    relative,
)
from hindsight_migrate.render.reports import lint_lines, lint_result
from hindsight_migrate.render.wording import (
    BIG_DIFF,
    CHANGE_WORDS,
    CONCERN_WORDS,
    DIFF_MARKS,
    DIFF_ORDER,
    IMPACT_COLUMNS,
    IMPACT_TITLE,
    NO_REHEARSAL_WORDS,
    diff_line,
    folded_line,
    hold_lines,
    impact_cells,
    impact_line,
    impact_notes,
    in_schemas,
    nothing_needs_attention,
    nothing_to_do_line,
    revisions_count,
    statement_counts,
    summary_lines,
    what_failed,
)
from hindsight_migrate.review.kinds import ChangeKind
from hindsight_migrate.review.lock_waits import LockWaits, milliseconds, schedule_brief, schedule_words
from hindsight_migrate.revisions import Direction
from hindsight_migrate.schema import Change, group_across_schemas
from hindsight_migrate.untrusted import visible
from hindsight_migrate.words import hold_phrase, rows_phrase

if TYPE_CHECKING:
    from hindsight_migrate.review.apply import ApplyResult, LockRetry
    from hindsight_migrate.review.bootstrap import BootstrapPlan, BootstrapResult
    from hindsight_migrate.review.plan import MigrationPlan
    from hindsight_migrate.review.summary import PlanDigest, PlanSummary
    from hindsight_migrate.revisions import RevisionInfo


def bootstrap_plan(plan: BootstrapPlan, project_dir: Path) -> None:

    console = out()
    console.print(f"[bold]Bootstrap plan[/] for {safe_markup(plan.database)}")
    console.print(
        f"  SQL file:  {safe_markup(relative(plan.sql.path, project_dir))}  "
        f"[dim]({len(plan.sql.statements)} statements, SHA-256 {plan.sql.sha256[:12]}…)[/]"
    )
    console.print(
        f"  Baseline:  {safe_markup(plan.baseline.revision)}  {safe_markup(plan.baseline.message)}  "
        "[dim](stamped in the same transaction)[/]"
    )
    grid(
        console,
        "What it creates (measured in a rolled-back rehearsal)",
        [Column("Kind"), Column("Name", flexible=True)],
        ([obj.kind, obj.qualified_name] for obj in plan.creates),
    )
    counts = count_by_kind(obj.kind for obj in plan.creates)
    console.print(f"  In all: {safe_markup(counts or 'nothing')}; plus the tool's record in schema hindsight_migrate.")


def bootstrap_done(result: BootstrapResult) -> None:
    out().print(
        f"[green]Bootstrapped[/] {safe_markup(result.plan.database)} in {result.seconds:.2f} s: "
        f"{len(result.plan.creates)} objects from {safe_markup(result.plan.sql.path.name)}, version table at "
        f"{safe_markup(', '.join(result.current_heads) or '(empty)')}.\n"
        "Next: [bold]hindsight-migrate up[/] to review and apply the revisions after the baseline."
    )


def plan_summary(summary: PlanSummary) -> None:
    """The first screen: the header line, the count line, and what needs attention, ranked."""

    console = out()
    header, counts = summary_lines(summary)
    console.print(Text(visible(header), style="bold"))
    console.print(Text(visible(counts)))
    if not summary.attention:
        # Short locks alone need no attention: said after the "nothing", not under a "(0)".
        console.print(nothing_needs_attention(summary))
        if summary.folded:
            console.print(f"  {folded_line(summary)}")
        return
    console.print(Text(f"Needs attention ({len(summary.attention)})", style="bold"))
    # The marks make a column to scan; a long item wraps under its own text (a hanging indent).
    label_width = 3 + max(len(words) for _, words, _ in CONCERN_WORDS.values()) + 1
    for item in summary.attention:
        mark, words, style = CONCERN_WORDS[item.concern]
        hanging(console, Text(f"  {mark} {words}".ljust(label_width + 1), style=style), Text(visible(item.text)))
    if summary.folded:
        console.print(f"  {folded_line(summary)}")


def migration_plan(plan: MigrationPlan, digest: PlanDigest, *, sql_file: Path | None = None) -> None:
    """The whole review: the summary first, then the details (revisions, diff, impact, data loss, lint, SQL).

    Without ``digest.details`` each detail is a few lines (a one-revision plan fits an 80x24 screen with
    its SQL and the prompt's recap); --details shows each one in full, as tables. A big plan's revisions
    are counted by kind, and the whole SQL is in ``sql_file``, unless the digest says the SQL is inline
    (--show-sql).
    """
    console = out()
    plan_summary(digest.summary)
    if plan.bootstrap is not None:
        console.print(
            f"  [bold]Bootstrap first:[/] the database is empty, so {safe_markup(plan.bootstrap.sql.path.name)} runs "
            f"and {safe_markup(plan.bootstrap.baseline.revision)} is stamped, in one transaction, before the revisions."
        )
    if plan.drops_baseline:
        console.print(
            "  [bold red]Past the baseline:[/] after the revisions, every table V1 created is dropped, with the "
            "version table: the database ends empty."
        )
    if plan.nothing_to_do:
        console.print(f"[green]Nothing to do:[/] {safe_markup(nothing_to_do_line(plan))}")
        return
    if digest.details:
        _revisions(plan, digest)
    else:
        _revision_lines(plan, digest)
    _rehearsal(plan, summarised=digest.big, details=digest.details, lock_waits=digest.lock_waits)
    if plan.direction is Direction.DOWN or plan.data_loss:  # going up, only when it drops something that holds data
        _data_loss(plan)
    if digest.details:
        lint_result(plan.lint)
    else:
        lint_lines(plan.lint)
    if digest.sql_inline:
        _sql(plan)
    elif sql_file is not None:
        console.print(
            f"SQL of every revision, in the order it runs: [bold]{safe_markup(sql_file)}[/] "
            "(--show-sql prints it here)."
        )
    for warning in plan.warnings:
        console.print(f"[bold yellow]Warning:[/] {safe_markup(warning)}")
    console.print(f"Plan fingerprint: {plan.fingerprint[:16]}")


# A list of revisions longer than this shows its first and last ones only (--details lists every one).
REVISIONS_LISTED = 12
REVISIONS_AT_EACH_END = 5


def _revision_lines(plan: MigrationPlan, digest: PlanDigest) -> None:
    """The revisions one line each (number, id, message; a big plan's statements counted by kind); a long
    list folded to its ends, since the summary above already names every revision that needs a look."""
    console = out()
    down = plan.direction is Direction.DOWN
    verb = "to revert, in the order they are reverted" if down else "pending, in the order they run"
    console.print(Text(f"Revisions {verb} ({len(plan.revisions)})", style="bold"))
    counts = digest.statement_counts or (None,) * len(plan.revisions)
    width = len(str(len(plan.revisions)))
    lines: list[tuple[str, str]] = []  # (number and revision, what it does)
    for number, item, kinds in zip(range(1, len(plan.revisions) + 1), plan.revisions, counts, strict=True):
        said = item.info.message + ("" if digest.sql_inline else f"  ({statement_counts(kinds)})")
        lines.append((f"  {number:>{width}}  {item.info.revision}  ", said))
    if len(lines) > REVISIONS_LISTED:
        hidden = len(lines) - 2 * REVISIONS_AT_EACH_END
        lines = [
            *lines[:REVISIONS_AT_EACH_END],
            ("  ", f"… {hidden} more {plural('revision', hidden)} (--details lists every one, with its file)"),
            *lines[-REVISIONS_AT_EACH_END:],
        ]
    for label, said in lines:
        if console.is_terminal:
            hanging(console, Text(visible(label)), Text(visible(said)))
        else:  # a log: one line per revision, however long
            console.print(Text(visible(label + said)), soft_wrap=True)


def _revisions(plan: MigrationPlan, digest: PlanDigest) -> None:
    console = out()
    down = plan.direction is Direction.DOWN
    verb = "to revert, in the order they are reverted" if down else "pending, in the order they run"
    if not digest.sql_inline:
        # A big plan: one line per revision, its SQL counted by kind (the file holds it whole).
        grid(
            console,
            f"Revisions {verb} ({len(plan.revisions)})",
            [Column("#"), Column("Revision"), Column("Message", flexible=True), Column("SQL", flexible=True)],
            (
                [str(number), item.info.revision, item.info.message, statement_counts(counts)]
                for number, item, counts in zip(
                    range(1, len(plan.revisions) + 1), plan.revisions, digest.statement_counts, strict=True
                )
            ),
        )
        return
    grid(
        console,
        f"Revisions {verb} ({len(plan.revisions)})",
        [
            Column("#"),
            Column("Revision"),
            Column("Message", flexible=True),
            Column("Created"),
            Column("File", flexible=True),
        ],
        (
            [str(number), item.info.revision, item.info.message, (item.info.created or "")[:10], str(item.info.path)]
            for number, item in enumerate(plan.revisions, start=1)
        ),
    )


def _sql(plan: MigrationPlan) -> None:

    console = out()
    down = plan.direction is Direction.DOWN
    # Highlighted for a person at a terminal; plain where it is piped or logged, which is
    # also where a long plan would spend most of its time in the lexer for nothing.
    highlight = console.is_terminal
    plain = Text()
    for item in plan.revisions:
        title = visible(f"{'Downgrade' if down else 'SQL'} of {item.info.revision} — {item.info.message} ")
        parts: list[Any] = [Text(f"── {title}" + "─" * max(0, console.width - len(title) - 3), style="bold")]
        if item.sql is None:
            parts.append(Text(f"Cannot render offline: {visible(item.sql_problem or '')}", style="yellow"))

        elif highlight:
            parts.append(sql_block(item.sql))
        else:
            parts.append(Text(visible(item.sql.strip()) or "-- (no SQL)"))
        if highlight:
            console.print(*parts, sep="\n")
            continue
        for part in parts:
            plain.append_text(part)
            plain.append("\n")
    if plain:
        plain.rstrip()
        console.print(plain, soft_wrap=True)


def dry_run_done(kind: ChangeKind, reasons: tuple[str, ...], *, detailed: bool) -> None:
    console = err()
    console.print("Dry run: nothing was changed.")
    if not detailed:
        return
    words = CHANGE_WORDS[kind]
    console.print(f"Exit code {kind.value}: {words}" + (f": {safe_markup('; '.join(reasons))}." if reasons else "."))


def stakes(plan: MigrationPlan) -> None:
    """A few lines right above the confirmation: what is destroyed, the longest blocking lock, what is
    rewritten (the largest table first) and renamed."""
    console = err()
    destroyed = [loss for loss in plan.data_loss if loss.holds_data]
    empty = [loss for loss in plan.data_loss if not loss.holds_data]
    if destroyed:
        losses = ", ".join(
            f"{loss.kind.value} {loss.name} ({rows_phrase(loss.rows, loss.exact)})" for loss in destroyed
        )
        console.print(f"[bold red]Destroys:[/] {safe_markup(losses)}")
    elif plan.rehearsal is not None and plan.rehearsal.ok:
        console.print("Destroys: no table or column that holds data.")
    else:
        console.print("[yellow]Destroys: not measured[/] (no rehearsal).")
    if empty:
        drops = ", ".join(f"{loss.kind.value} {loss.name}" for loss in empty)
        console.print(f"[bold]Drops, empty:[/] {safe_markup(drops)} (code that reads it breaks).")
    blocking = plan.rehearsal.longest_blocking() if plan.rehearsal is not None else None
    if blocking is not None:
        rows = f", {rows_phrase(blocking.size.estimated_rows, blocking.size.rows_exact)}" if blocking.size else ""
        rewrite = ", rewriting it" if blocking.rewritten else ""
        hold = blocking.hold
        held = (
            hold_phrase(hold.seconds, hold.seconds_low, hold.seconds_high, hold.basis.value, hold.sample_percent)
            if hold is not None
            else f"held {blocking.seconds:.2f} s"
        )
        console.print(
            f"[bold]Longest blocking lock:[/] {blocking.mode.words} on {safe_markup(blocking.table)}{rows} "
            f"(blocks {blocking.blocks.value}), {held} ({safe_markup(blocking.revision)}){rewrite}."
        )
    elif plan.rehearsal is not None:
        console.print("Blocks no reads or writes of the tables the database has.")
    rewrites = plan.rehearsal.rewritten_tables() if plan.rehearsal is not None else ()
    if rewrites:
        sized = [
            row.table
            + (
                f" ({rows_phrase(row.size.estimated_rows, row.size.rows_exact)}, {human_bytes(row.size.total_bytes)})"
                if row.size
                else ""
            )
            for row in rewrites
        ]
        console.print(f"[bold]Rewrites:[/] {safe_markup(', '.join(sized))}.")
    renames = [c for c in plan.rehearsal.diff if c.change is Change.RENAMED] if plan.rehearsal is not None else []
    if renames:
        console.print(
            "[bold]Renames:[/] "
            + safe_markup(", ".join(f"{c.kind} {c.before} → {c.after}" for c in renames))
            + " (code that uses the old names breaks)."
        )


def _data_loss(plan: MigrationPlan) -> None:
    console = out()
    if plan.rehearsal is None or not plan.rehearsal.ok:
        console.print("[yellow]Data loss not measured:[/] it is read from the rehearsal, which did not complete.")
        return
    if not plan.data_loss:
        console.print("[green]Data loss:[/] the downgrade drops no table or column that holds data.")
        return
    console.print(
        f"[bold red]Data loss:[/] what the {'downgrade' if plan.direction is Direction.DOWN else 'upgrade'} drops, "
        "and the rows that hold data in it now"
    )
    # In red only what holds data: a drop counted to be empty loses nothing (it still breaks code that reads it).
    grid(
        console,
        None,
        [Column("Drops"), Column("Name"), Column("Rows with data")],
        (
            [
                Text(cell, style="red" if loss.holds_data else "")
                for cell in (loss.kind.value, loss.name, f"{loss.rows:,}" + ("" if loss.exact else " (estimate)"))
            ]
            for loss in plan.data_loss
        ),
    )


# A diff longer than this is counted by kind outside --details.
DIFF_LISTED = 10


def _rehearsal(plan: MigrationPlan, *, summarised: bool, details: bool, lock_waits: LockWaits | None) -> None:

    console = out()
    rehearsal = plan.rehearsal
    if rehearsal is None:
        why = NO_REHEARSAL_WORDS[plan.rehearsal_skipped] if plan.rehearsal_skipped else "skipped"
        console.print(f"[yellow]No rehearsal:[/] {why}.")
        return
    console.print(f"[bold]Rehearsal[/] on {safe_markup(rehearsal.description)}:")
    if rehearsal.failure is not None:
        console.print(
            f"  [bold red]{safe_markup(what_failed(rehearsal.failure.revision, rehearsal.failure.at))} failed in "
            "the rehearsal[/]: "
            f"{safe_markup(rehearsal.failure.message)}"
        )
        if rehearsal.failure.statement:
            console.print(f"  Statement: {safe_markup(rehearsal.failure.statement)}")
    for warning in rehearsal.warnings:
        console.print(f"  [yellow]Warning:[/] {safe_markup(warning)}")
    # An env.py that migrates many schemas: a change made alike in several is shown once (JSON keeps each).
    diff = group_across_schemas(rehearsal.diff, plan.schemas)
    # --details lists the diff unless the plan is big and the diff long; the brief view lists DIFF_LISTED at most.
    details_count = summarised and len(diff) > BIG_DIFF
    counted = details_count if details else len(diff) > DIFF_LISTED
    if diff and counted:
        # A first deployment changes hundreds of objects: counted by kind, one line each.
        counts: dict[tuple[Change, str], int] = {}
        for change in diff:
            counts[(change.change, change.kind)] = counts.get((change.change, change.kind), 0) + 1
        console.print(
            f"[bold]Schema diff, measured[/]: {len(diff)} changes, by kind "
            f"({'' if details or details_count else '--details lists each one; '}"
            "--plan-out FILE holds each one, as --format json does):"
        )
        for (how, kind), count in sorted(counts.items(), key=lambda item: (DIFF_ORDER.index(item[0][0]), item[0][1])):
            console.print(f"  {DIFF_MARKS[how][0]} {count} {safe_markup(plural(kind, count))} {how.value}")
    elif diff and not details:
        console.print(Text("Schema diff, measured", style="bold"))
        for change in diff:
            mark, style = DIFF_MARKS[change.change]
            console.print(Text.assemble(("  " + mark, style), " " + visible(diff_line(change))))
    elif diff:
        grid(
            console,
            "Schema diff, measured (+ added, - removed, ~ changed, → renamed)",
            [
                Column(""),
                Column("Kind"),
                Column("Name", flexible=True),
                Column("Before", flexible=True),
                Column("After", flexible=True),
            ],
            (
                [
                    Text(DIFF_MARKS[change.change][0], style=DIFF_MARKS[change.change][1]),
                    change.kind,
                    change.name + in_schemas(change),
                    change.before or "",
                    change.after or "",
                ]
                for change in diff
            ),
        )
    else:
        console.print("  The schema does not change.")

    impact, _ = rehearsal.impact()
    # Traffic queues behind a statement waiting for a lock that blocks it: how long, when the plan takes one.
    waits = lock_waits if any(row.blocks is not Blocks.NOTHING for row in impact) else None
    if not details:
        said = impact_line(impact)
        if said is not None:
            console.print(f"{safe_markup(said)}")
        for note in impact_notes(rehearsal, listed=bool(impact), brief=True):
            console.print(f"  {safe_markup(note)}")
        if waits is not None:
            console.print(f"  Lock waits: {safe_markup(schedule_brief(waits))}.")
        return
    rows: list[list[Any]] = []
    for row, cells in zip(impact, impact_cells(impact), strict=True):
        styled: list[Any] = list(cells)
        # The lock and what it blocks, in red (the words say it without colour too).
        if row.blocks is not Blocks.NOTHING:
            styled[2], styled[3] = Text(cells[2], style="red"), Text(cells[3], style="red")
        if row.rewritten:
            styled[4] = Text(cells[4], style="red")
        rows.append(styled)
    if rows:
        grid(console, IMPACT_TITLE, [Column(c) for c in IMPACT_COLUMNS], rows)
    for note in impact_notes(rehearsal, listed=bool(rows)):
        console.print(f"  {safe_markup(note)}")
    if waits is not None:
        console.print(f"  Lock waits while applying: {safe_markup(schedule_words(waits))}.")


class RichProgress:
    """Each revision as it runs (on stderr), with its time when it is done.

    One spinner for the whole run, and only where someone is watching a terminal; a log
    gets just the line per revision.
    """

    # Above this many revisions a log gets a line per slow revision and one every EVERY, not one per
    # revision: the plan above listed them all already.
    MANY = 50
    EVERY = 25
    SLOW_SECONDS = 1.0

    def __init__(self, total: int = 0) -> None:
        self._console = err()
        self._status: Any = self._console.status("Applying…") if self._console.is_terminal else None
        self._spinning = False
        self._total = total
        self._done = 0

    def started(self, revision: RevisionInfo) -> None:

        if self._status is not None:
            self._status.update(Text(visible(f"Applying {revision.revision} {revision.message}…")))
            if not self._spinning:
                self._status.start()
                self._spinning = True

    def finished(self, revision: RevisionInfo, seconds: float) -> None:

        self._done += 1
        if self._total > self.MANY and seconds < self.SLOW_SECONDS:
            if self._done % self.EVERY == 0 or self._done == self._total:
                self._console.file.write(f"  ✓ {self._done}/{self._total} revisions applied\n")
            return
        if self._status is None:  # a log: the same line without styles, and without Rich's layout pass
            # Written straight to the stream, past the console's escaping: escaped here.
            self._console.file.write(visible(f"  ✓ {revision.revision}  {revision.message}  {seconds:.2f} s") + "\n")
            return
        self._console.print(
            Text.assemble(
                ("  ✓ ", "green"), visible(f"{revision.revision}  {revision.message}  "), (f"{seconds:.2f} s", "dim")
            ),
            soft_wrap=True,
        )

    def retrying(self, revision: RevisionInfo, retry: LockRetry) -> None:
        """A lock not granted in time: who holds it, and when the revision is tried again, waiting how long."""

        from hindsight_migrate.postgres.locking import describe_blockers

        who = describe_blockers(retry.blockers) if retry.blockers else "a session the watch did not catch"
        # The blockers are other sessions' words (their application name, their query): one line, escaped,
        # since it is written straight to the stream.
        line = visible(
            f"  ⧗ {revision.revision}  waited {milliseconds(retry.waited_seconds)} for a lock, blocked by {who}; "
            f"attempt {retry.attempt}/{retry.of} in {retry.pause_seconds:.1f} s, waiting up to "
            f"{milliseconds(retry.next_wait_seconds)}",
            multiline=False,
        )
        if self._status is not None:
            self._status.update(Text(line.strip()))
        self._console.file.write(line + "\n")
        self._console.file.flush()

    def close(self) -> None:
        if self._spinning:
            self._status.stop()
            self._spinning = False


def migration_done(result: ApplyResult, *, direction: Direction) -> None:
    console = out()
    if result.done_by_another:
        console.print(
            f"[green]Nothing to do:[/] another run applied this plan while this one waited for the lock; "
            f"{safe_markup(result.database)} is at {safe_markup(', '.join(result.to_revisions) or 'base')}. "
            "Nothing was applied twice."
        )
        return
    verb = "Downgraded" if direction is Direction.DOWN else "Upgraded"
    console.print(
        f"[green]{verb}[/] {safe_markup(result.database)}: {revisions_count(len(result.applied))} in "
        f"{result.seconds:.2f} s, from {safe_markup(', '.join(result.from_revisions) or 'an empty database')} to "
        f"{safe_markup(', '.join(result.to_revisions) or 'base (no revision)')}."
    )
    for warning in result.server_warnings:
        console.print(
            f"[bold yellow]PostgreSQL warned[/] ({safe_markup(warning.revision or 'bootstrap')}): "
            f"{safe_markup(warning.message)}"
        )
    held = hold_lines(result.lock_holds)
    if held:
        console.print("Locks held, the plan's figure against the apply's (recorded for the next plans):")
        for line in held:
            console.print(f"  {safe_markup(line)}")


def offline_sql(chunks: list[tuple[RevisionInfo, str]]) -> None:
    """``up --sql``/``down --sql``: the SQL alone, for piping into psql.

    Piped or redirected, the SQL is data and is written byte for byte, control characters included
    (a string literal may hold one on purpose). On a terminal it is only read, so it is escaped
    like everything else shown. Each revision's header is an SQL ``--`` comment, which a newline or
    a CR in the revision's message would end (psql would run the rest of the message): it is one
    line, escaped, wherever it goes.
    """
    escape_sql = _stdout_is_terminal()
    for info, sql in chunks:
        header = visible(f"{info.revision}: {info.message}", multiline=False)
        body = visible(sql.strip()) if escape_sql else sql.strip()
        sys.stdout.write(f"-- {header}\n{body}\n\n")


def _stdout_is_terminal() -> bool:
    """Whether stdout is a terminal (a person reading), not a pipe or a file (data)."""
    try:
        return sys.stdout.isatty()
    except ValueError:  # closed
        return False
