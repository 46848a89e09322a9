"""Markdown for a pull-request comment (``--format markdown``): pure functions that return strings.

Every document opens with what a reviewer must see, visible: a heading, the header line,
the count line and "Needs attention" (severity in words, never colour alone). The details
follow, each folded in a ``<details>`` block: revisions, schema diff, impact, data loss,
lint, and SQL in ```` ```sql ```` fences. The words are the text view's (render/plan_view.py,
render/reports.py), built from the same core objects (``PlanSummary``, ``CheckReport``, …), so
a reviewer reading the comment and an operator reading the terminal read the same sentences.

Text from outside (revision messages, names, SQL, what the database said) is escaped: ``|``
and backticks cannot break a table or a code span, and HTML is shown, never interpreted.
Control characters are made visible in the whole document, once it is assembled (``_join``):
the generator writes none of its own, and a raw CR would end a table row (GitHub reads it as
a line end), an ESC would reach whoever reads the comment's source in a terminal, and a bidi
override would reorder what a reviewer reads. The escape (``\\x1b``) has a letter after its
backslash, so markdown shows it as written, also inside a code span or a fence.
"""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hindsight_migrate.authoring.findings import Severity
from hindsight_migrate.fleet.model import TargetState
from hindsight_migrate.postgres.lock_modes import Blocks
from hindsight_migrate.render.fleet_view import SQL_INLINE_REVISIONS
from hindsight_migrate.render.layout import count_by_kind, plural, relative
from hindsight_migrate.render.wording import (
    BIG_DIFF,
    CHANGE_WORDS,
    CONCERN_WORDS,
    DIFF_MARKS,
    DIFF_ORDER,
    IMPACT_COLUMNS,
    IMPACT_TITLE,
    LINT_COLUMNS,
    NO_REHEARSAL_WORDS,
    OUTCOME_WORDS,
    STATE_MARKS,
    folded_line,
    history_marks,
    hold_lines,
    impact_cells,
    impact_notes,
    in_schemas,
    last_apply_words,
    lint_dropped,
    lint_rows,
    lint_title,
    nothing_needs_attention,
    nothing_to_do_line,
    revisions_count,
    statement_counts,
    summary_lines,
    what_failed,
)
from hindsight_migrate.review.kinds import ChangeKind
from hindsight_migrate.review.lock_waits import LockWaits, schedule_words
from hindsight_migrate.revisions import Direction, RevisionState
from hindsight_migrate.schema import Change, group_across_schemas
from hindsight_migrate.untrusted import visible
from hindsight_migrate.words import human_bytes

if TYPE_CHECKING:
    from hindsight_migrate.authoring.autogen import NewRevision
    from hindsight_migrate.fleet.model import FleetStatus, RolloutSummary
    from hindsight_migrate.fleet.plan import FleetPlan
    from hindsight_migrate.reports.check import CheckProblem, CheckReport, LintReport
    from hindsight_migrate.reports.history import History
    from hindsight_migrate.reports.status import Status
    from hindsight_migrate.review.apply import ApplyResult
    from hindsight_migrate.review.bootstrap import BootstrapPlan, BootstrapResult
    from hindsight_migrate.review.lint import LintResult
    from hindsight_migrate.review.plan import MigrationPlan
    from hindsight_migrate.review.summary import PlanDigest, PlanSummary

# The last line of every document, invisible once rendered: a bot finds its own earlier comment by it
# (to edit it instead of adding one more on every push).
MARKER = "<!-- hindsight-migrate {kind} -->"
# GitHub refuses a comment longer than 65,536 characters: past this much SQL, the rest is named, not shown.
SQL_BUDGET = 40_000

# -- escaping ------------------------------------------------------------------------------

# Backslash-escaped: what would start emphasis, a link, a code span, a table cell or a strikethrough.
_INLINE_SPECIAL = re.compile(r"([\\`*\[\]|~])")
_UNDERSCORES = re.compile(r"_+")


def text(value: str) -> str:
    """Inline text, shown as it is: markdown's punctuation escaped, HTML as entities, one line."""
    escaped = html.escape(value, quote=False)  # & < > first: the backslashes added next are not entities
    source = _INLINE_SPECIAL.sub(r"\\\1", escaped)
    escaped = _UNDERSCORES.sub(lambda run: _underscores(run, source), source)
    return " ".join(escaped.split("\n"))


def _underscores(run: re.Match[str], within: str) -> str:
    """Underscores inside a word (memory_blocks) cannot start or end emphasis: only the others are escaped,
    so names stay readable in the comment's source."""
    before = within[run.start() - 1] if run.start() > 0 else " "
    after = within[run.end()] if run.end() < len(within) else " "
    if before.isalnum() and after.isalnum():
        return run.group()
    return "\\_" * len(run.group())


def cell(value: str) -> str:
    """A table cell: as :func:`text`, its lines kept apart with <br> (a newline would end the row)."""
    return "<br>".join(text(line) for line in value.split("\n"))


def code(value: str) -> str:
    """An inline code span holding ``value`` whatever it contains (a backtick, a pipe outside tables)."""
    value = " ".join(value.split("\n"))
    if not value:
        return ""
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    ticks = "`" * (longest + 1)
    # A space each side is stripped when both are there (so a value may start with a backtick), but not
    # from a value of spaces alone.
    pad = " " if value.strip() and (value.startswith(("`", " ")) or value.endswith(("`", " "))) else ""
    return f"{ticks}{pad}{value}{pad}{ticks}"


def fence(body: str, info: str = "sql") -> str:
    """A fenced block longer than any run of backticks in ``body``, so the body cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{body.rstrip()}\n{ticks}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub table; every row has the header's number of cells, each escaped."""
    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    for row in rows:
        cells = [cell(value) for value in row]
        cells += [""] * (len(headers) - len(cells))
        lines.append("| " + " | ".join(cells[: len(headers)]) + " |")
    return "\n".join(lines)


def details(summary: str, body: str) -> str:
    """A folded block: ``summary`` is plain text (escaped as HTML), ``body`` markdown."""
    return f"<details><summary>{html.escape(summary)}</summary>\n\n{body.strip()}\n\n</details>"


def _join(blocks: Iterable[str]) -> str:
    """A whole document from its blocks (every document is assembled here), its control characters visible."""
    return visible("\n\n".join(block.strip("\n") for block in blocks if block) + "\n")


# -- plans (up, down) ----------------------------------------------------------------------------


def plan_header(summary: PlanSummary) -> tuple[str, str]:
    """The header line and count line, as the text view says them."""
    return summary_lines(summary)


def _header_markdown(header: str, database: str) -> str:
    """The header line with its leading words in bold and the database as code (a URL is no link, no email)."""
    lead, sep, rest = header.partition(database)
    if not sep:
        return text(header)
    return f"**{text(lead.strip())}** {code(database)}{text(rest)}"


def _needs_attention(summary: PlanSummary) -> str:
    if not summary.attention:
        lead, _, rest = nothing_needs_attention(summary).partition(":")
        said = f"**{lead}:**{text(rest)}"
        return said + (f"\n\n{text(folded_line(summary))}" if summary.folded else "")
    blocks = [f"**Needs attention ({len(summary.attention)})**"]
    if summary.attention:
        rows = []
        for item in summary.attention:
            mark, words, _ = CONCERN_WORDS[item.concern]
            rows.append([mark, words, item.text])
        blocks.append(table(["", "Severity", "What"], rows))
    if summary.folded:
        blocks.append(text(folded_line(summary)))
    return "\n\n".join(blocks)


def plan_markdown(
    plan: MigrationPlan,
    digest: PlanDigest,
    change: tuple[ChangeKind, tuple[str, ...]],
    result: ApplyResult | None = None,
) -> str:
    """The review of an up or down plan as a pull-request comment; ``result`` when it was applied.

    As in the text view, a big plan's SQL is not shown unless the digest says it is inline (--show-sql).
    """
    summary = digest.summary
    header, counts = plan_header(summary)
    verb = "Downgrade" if plan.direction is Direction.DOWN else "Upgrade"
    blocks = [f"## {verb} plan", _header_markdown(header, summary.database), text(counts), _needs_attention(summary)]
    kind, reasons = change
    blocks.append(
        f"**Change:** {text(CHANGE_WORDS[kind])}"
        + (f": {text('; '.join(reasons))}." if reasons else ".")
        + f" (--detailed-exitcode: {kind.value})"
    )
    if plan.bootstrap is not None:
        blocks.append(
            f"**Bootstrap first:** the database is empty, so {text(plan.bootstrap.sql.path.name)} runs and "
            f"{text(plan.bootstrap.baseline.revision)} is stamped, in one transaction, before the revisions."
        )
    if plan.drops_baseline:
        blocks.append(
            "**Past the baseline:** after the revisions, every table V1 created is dropped, with the "
            "version table: the database ends empty."
        )
    if result is not None:
        blocks.append(_result_line(result, plan.direction))
    if plan.nothing_to_do:
        blocks.append(f"**Nothing to do:** {text(nothing_to_do_line(plan))}")
        blocks.append(MARKER.format(kind="plan"))
        return _join(blocks)
    blocks.append(_revisions(plan, digest))
    blocks += _rehearsal(plan, summarised=digest.big, lock_waits=digest.lock_waits)
    if plan.direction is Direction.DOWN or plan.data_loss:
        blocks.append(_data_loss(plan))
    blocks.append(lint_section(plan.lint))
    if digest.sql_inline:
        blocks += _sql(plan)
    else:
        blocks.append(
            "SQL of every revision: not shown, the plan is big (`hindsight-migrate "
            f"{plan.direction.value} --sql` prints it, `--plan-out FILE` saves it with the plan)."
        )
    blocks.append(f"Plan fingerprint: {code(plan.fingerprint[:16])}")
    blocks.append(MARKER.format(kind="plan"))
    return _join(blocks)


def _result_line(result: ApplyResult, direction: Direction) -> str:
    """The text view's last line (plan_view.migration_done)."""
    if result.done_by_another:
        return (
            "**Nothing to do:** another run applied this plan while this one waited for the lock; "
            f"{code(result.database)} is at {text(', '.join(result.to_revisions) or 'base')}. "
            "Nothing was applied twice."
        )
    verb = "Downgraded" if direction is Direction.DOWN else "Upgraded"
    warned = "".join(
        f"\n\n**PostgreSQL warned** ({text(warning.revision or 'bootstrap')}): {text(warning.message)}"
        for warning in result.server_warnings
    )
    held = hold_lines(result.lock_holds)
    if held:
        warned += "\n\nLocks held, the plan's figure against the apply's:\n" + "\n".join(
            f"- {text(line)}" for line in held
        )
    return (
        f"**{verb}** {code(result.database)}: {revisions_count(len(result.applied))} in {result.seconds:.2f} s, "
        f"from {text(', '.join(result.from_revisions) or 'an empty database')} to "
        f"{text(', '.join(result.to_revisions) or 'base (no revision)')}.{warned}"
    )


def _revisions(plan: MigrationPlan, digest: PlanDigest) -> str:

    down = plan.direction is Direction.DOWN
    verb = "to revert, in the order they are reverted" if down else "pending, in the order they run"
    title = f"Revisions {verb} ({len(plan.revisions)})"
    if not digest.sql_inline:
        body = table(
            ["#", "Revision", "Message", "SQL"],
            (
                [str(number), item.info.revision, item.info.message, statement_counts(counts)]
                for number, item, counts in zip(
                    range(1, len(plan.revisions) + 1), plan.revisions, digest.statement_counts, strict=True
                )
            ),
        )
    else:
        body = table(
            ["#", "Revision", "Message", "Created", "File"],
            (
                [
                    str(number),
                    item.info.revision,
                    item.info.message,
                    (item.info.created or "")[:10],
                    str(item.info.path),
                ]
                for number, item in enumerate(plan.revisions, start=1)
            ),
        )
    return details(title, body)


def _rehearsal(plan: MigrationPlan, *, summarised: bool, lock_waits: LockWaits | None) -> list[str]:

    rehearsal = plan.rehearsal
    if rehearsal is None:
        why = NO_REHEARSAL_WORDS[plan.rehearsal_skipped] if plan.rehearsal_skipped else "skipped"
        return [f"**No rehearsal:** {text(why)}."]
    blocks = [f"**Rehearsal** on {text(rehearsal.description)}:"]
    if rehearsal.failure is not None:
        failed = [
            f"**{text(what_failed(rehearsal.failure.revision, rehearsal.failure.at))} failed in the rehearsal**: "
            f"{text(rehearsal.failure.message)}"
        ]
        if rehearsal.failure.statement:
            failed.append("Statement:\n\n" + fence(rehearsal.failure.statement))
        failing = rehearsal.failure.revision or "before the first revision"
        blocks.append(details(f"Rehearsal failure: {failing}", "\n\n".join(failed)))
    for warning in rehearsal.warnings:
        blocks.append(f"**Warning:** {text(warning)}")
    # An env.py that migrates many schemas: a change made alike in several is shown once (JSON keeps each).
    diff = group_across_schemas(rehearsal.diff, plan.schemas)
    if diff and summarised and len(diff) > BIG_DIFF:
        counts: dict[tuple[Change, str], int] = {}
        for change in diff:
            counts[(change.change, change.kind)] = counts.get((change.change, change.kind), 0) + 1
        ordered = sorted(counts.items(), key=lambda item: (DIFF_ORDER.index(item[0][0]), item[0][1]))
        body = "\n".join(
            f"- {text(DIFF_MARKS[how][0])} {count} {text(plural(kind, count))} {how.value}"
            for (how, kind), count in ordered
        )
        blocks.append(
            details(
                f"Schema diff, measured: {len(diff)} changes, by kind",
                body + "\n\n(--plan-out FILE holds each one, as --format json does.)",
            )
        )
    elif diff:
        blocks.append(
            details(
                f"Schema diff, measured (+ added, - removed, ~ changed, → renamed) ({len(diff)})",
                table(
                    ["", "Kind", "Name", "Before", "After"],
                    (
                        [DIFF_MARKS[c.change][0], c.kind, c.name + in_schemas(c), c.before or "", c.after or ""]
                        for c in diff
                    ),
                ),
            )
        )
    else:
        blocks.append("The schema does not change.")
    impact, _ = rehearsal.impact()
    rows = impact_cells(impact)
    impact_blocks = [table(list(IMPACT_COLUMNS), rows)] if rows else []
    impact_blocks += [text(note) for note in impact_notes(rehearsal, listed=bool(rows))]
    if lock_waits is not None and any(row.blocks is not Blocks.NOTHING for row in impact):
        impact_blocks.append(f"Lock waits while applying: {text(schedule_words(lock_waits))}.")
    if impact_blocks:
        blocks.append(details(IMPACT_TITLE, "\n\n".join(impact_blocks)))
    return blocks


def _data_loss(plan: MigrationPlan) -> str:
    title = f"Data loss: what the {'downgrade' if plan.direction is Direction.DOWN else 'upgrade'} drops"
    if plan.rehearsal is None or not plan.rehearsal.ok:
        return details(
            "Data loss not measured",
            "Data loss not measured: it is read from the rehearsal, which did not complete.",
        )
    if not plan.data_loss:
        return details(title, "The downgrade drops no table or column that holds data.")
    return details(
        f"{title} ({len(plan.data_loss)})",
        f"What the {'downgrade' if plan.direction is Direction.DOWN else 'upgrade'} drops, and the rows that hold "
        "data in "
        "it now:\n\n"
        + table(
            ["Drops", "Name", "Rows with data"],
            (
                [loss.kind.value, loss.name, f"{loss.rows:,}" + ("" if loss.exact else " (estimate)")]
                for loss in plan.data_loss
            ),
        ),
    )


def _sql(plan: MigrationPlan) -> list[str]:
    down = plan.direction is Direction.DOWN
    blocks = []
    spent = 0
    left: list[str] = []
    for item in plan.revisions:
        if spent > SQL_BUDGET:
            left.append(item.info.revision)
            continue
        title = f"{'Downgrade' if down else 'SQL'} of {item.info.revision} — {item.info.message}"
        if item.sql is None:
            body = f"Cannot render offline: {text(item.sql_problem or '')}"
        else:
            sql = item.sql.strip() or "-- (no SQL)"
            spent += len(sql)
            body = fence(sql)
        blocks.append(details(title, body))
    if left:
        blocks.append(
            f"SQL of {len(left)} more {plural('revision', len(left))} not shown, to keep the comment within "
            "GitHub's limit: "
            f"{text(', '.join(left))} (`hindsight-migrate {plan.direction.value} --sql` prints it)."
        )
    return blocks


# -- lint -----------------------------------------------------------------------------------------


def lint_section(lint: LintResult, *, statements: bool = False) -> str:
    """Lint's findings in one folded block, as the text view groups them (errors one by one, warnings by rule)."""

    if not lint.ran:
        return f"**Lint:** {text(lint.note or 'not run')}"
    title = lint_title(lint)
    dropped = _lint_dropped(lint)
    if not lint.findings:
        return f"**Lint (Squawk):** no findings.{' ' + dropped if dropped else ''}"
    rows = [list(row.cells) for row in lint_rows(lint)]
    body = [table(list(LINT_COLUMNS), rows)]
    advice = lint.advice_by_rule()
    shown = [rule for rule in dict.fromkeys(row[3] for row in rows) if rule in advice]
    if shown:
        body.append("Squawk's advice:\n\n" + "\n".join(f"- **{text(rule)}**: {text(advice[rule])}" for rule in shown))
    if statements and lint.errors:
        for error in lint.errors:
            body.append(f"{text(error.where)}, {text(error.rule)}:\n\n" + fence(error.statement))
    if dropped:
        body.append(dropped)
    return details(title, "\n\n".join(body))


def _lint_dropped(lint: LintResult) -> str:
    return text(lint_dropped(lint) or "")


def lint_markdown(report: LintReport) -> str:
    """``lint``: what was linted, the counts, the errors visible; every finding folded, with the statements."""
    lint = report.result
    header = (
        f"Linted {revisions_count(len(report.revisions))} ({report.range}): {', '.join(report.revisions) or 'none'}"
    )
    blocks = ["## Lint (Squawk)", text(header)]
    if not lint.ran:
        blocks += [f"**Lint:** {text(lint.note or 'not run')}", MARKER.format(kind="lint")]
        return _join(blocks)
    errors = len(lint.errors)
    blocks.append(text(lint_title(lint)) + ".")
    if lint.errors:
        blocks.append(
            f"**Needs attention ({errors})**\n\n"
            + table(
                ["", "Severity", "What"],
                (["✖", "LINT ERROR", f"{e.rule}: {e.message} ({e.where})"] for e in lint.errors),
            )
        )
    else:
        blocks.append("**Needs attention:** nothing — no lint error.")
    if lint.findings:
        blocks.append(lint_section(lint, statements=True))
    elif lint_dropped(lint):
        blocks.append(_lint_dropped(lint))
    blocks.append(MARKER.format(kind="lint"))
    return _join(blocks)


# -- check, status, history ----------------------------------------------------------------------


def check_markdown(report: CheckReport) -> str:
    """``check``: passed or the problems, visible, ranked as listed; each problem's items folded, as fields."""
    blocks = ["## Check"]
    if report.ok:
        blocks.append(f"**check passed** for {code(report.database)}: {text('; '.join(report.checked))}.")
    else:
        found = f"{len(report.problems)} {plural('problem', len(report.problems))}"
        blocks.append(f"**check found {found}** ({code(report.database)}):")
    problems, warnings = len(report.problems), len(report.warnings)
    blocks.append(f"{problems} {plural('problem', problems)}, {warnings} {plural('warning', warnings)}.")
    listed = [("✖", "PROBLEM", p) for p in report.problems] + [("●", "WARNING", w) for w in report.warnings]
    if listed:
        blocks.append(
            f"**Needs attention ({len(listed)})**\n\n"
            + table(["", "Severity", "Kind", "What"], ([mark, words, p.kind, _lead(p)] for mark, words, p in listed))
        )
    else:
        blocks.append("**Needs attention:** nothing.")
    if report.target:
        blocks.append(f"**Target:** {text(report.target)}.")
    for _, words, problem in listed:
        if problem.details:
            blocks.append(details(f"{words.lower()}: {problem.kind} ({len(problem.details)})", _check_items(problem)))
    blocks.append(details("What was checked", "\n".join(f"- {text(what)}" for what in report.checked)))
    blocks.append(MARKER.format(kind="check"))
    return _join(blocks)


def _lead(problem: CheckProblem) -> str:
    """A problem's message, and how many items it has when the message introduces them (the text view's list)."""
    if problem.details and problem.message.endswith(":"):
        return f"{problem.message[:-1]}: {len(problem.details)}, listed below."
    return problem.message


_ITEM_FIELDS = (
    ("revision", "Revision"),
    ("operation", "Operation"),
    ("table", "Table"),
    ("column", "Column"),
    ("name", "Name"),
    ("rule", "Rule"),
    ("line", "Line"),
    ("path", "File"),
    ("reason", "Reason"),
)


def _check_items(problem: CheckProblem) -> str:
    """A problem's items as a table: the detail line, then only the fields some item has."""
    if not problem.items:
        return "\n".join(f"- {text(detail)}" for detail in problem.details)
    used = [
        (field, title) for field, title in _ITEM_FIELDS if any(getattr(i, field) is not None for i in problem.items)
    ]
    rows = (
        [item.text, *("" if getattr(item, field) is None else str(getattr(item, field)) for field, _ in used)]
        for item in problem.items
    )
    return table(["Detail", *(title for _, title in used)], rows)


def status_markdown(status: Status) -> str:
    """``status``: the verdict and the revisions visible, what needs attention ranked as the exit code ranks it."""
    verdict = " and ".join(status.verdicts) if status.verdicts else "up to date"
    blocks = ["## Status", f"**Status** of {code(status.database)}: **{text(verdict)}**"]
    blocks.append(
        f"Current: {text(', '.join(status.current) or 'no revision applied')}; "
        f"head(s): {text(', '.join(status.heads))}; "
        f"pending: {len(status.pending)}; edited: {len(status.edited)}; "
        f"unknown: {len(status.unknown)}; missing: {len(status.missing)}."
    )
    rows: list[list[str]] = []
    for edited in status.edited:
        rows.append(["✖", "TAMPERED", f"edited after it was applied: {edited.revision} {edited.path}"])
    if status.v1_drift:
        rows.append(["✖", "TAMPERED", status.v1_drift])
    if status.unknown:
        rows.append(["✖", "DIVERGED", f"{', '.join(status.unknown)} (in the version table; no file has them)"])
    if status.missing:
        rows.append(["✖", "DIVERGED", f"{', '.join(status.missing)} (applied; their files are gone from versions/)"])
    if status.pending:
        rows.append(["▲", "BEHIND", f"{len(status.pending)} pending: {', '.join(status.pending)}"])
    if rows:
        blocks.append(f"**Needs attention ({len(rows)})**\n\n" + table(["", "Severity", "What"], rows))
    else:
        blocks.append("**Needs attention:** nothing — the database is up to date.")
    if status.pending:
        blocks.append(
            details(
                f"Pending, in the order up runs them ({len(status.pending)})",
                "\n".join(f"{n}. {text(rev)}" for n, rev in enumerate(status.pending, start=1)),
            )
        )
    if status.edited:
        blocks.append(
            details(
                f"Edited after they were applied ({len(status.edited)})",
                table(
                    ["Revision", "File", "SHA-256 then", "SHA-256 now"],
                    ([e.revision, e.path, e.recorded_sha256, e.file_sha256] for e in status.edited),
                ),
            )
        )
    # V1 is this tool's bootstrap file: a project without bootstrap_sql has none to speak of.
    facts = [f"- V1: {text(status.v1_drift or 'as bootstrapped (or not bootstrapped)')}"] if status.bootstraps else []
    if status.reformatted:
        facts.append(
            "- Reformatted after they were applied (comments, docstrings or layout; the same code): "
            + text(", ".join(f"{r.revision} {r.path}" for r in status.reformatted))
        )
    if status.unrecorded:
        facts.append(
            f"- No checksum recorded (applied before this tool kept them): {text(', '.join(status.unrecorded))}"
        )
    if status.last_apply is not None:
        run = status.last_apply
        facts.append(f"- Last apply: {text(last_apply_words(run))}, {OUTCOME_WORDS[run.outcome]}")
        facts += [f"  - {text(line)}" for line in hold_lines(run.lock_holds)]
    blocks.append(details("Records", "\n".join(facts)))
    blocks.append(MARKER.format(kind="status"))
    return _join(blocks)


def history_markdown(history: History) -> str:
    """``history``: the graph, newest first, with the database's state when it was read."""

    state = history.database
    blocks = [
        "## Revisions, newest first",
        text(
            f"{revisions_count(len(history.entries))}; head(s): {', '.join(history.heads) or 'none'}; "
            f"base(s): {', '.join(history.bases) or 'none'}."
        ),
    ]
    if state is None:
        blocks.append("Database not consulted (--offline).")
    elif not state.reachable:
        lead = "Where the database stands is unknown" if state.connected else "Database not reachable"
        blocks.append(f"{lead}, so applied/pending is unknown: {text(state.problem or '')}")
    elif state.current:
        blocks.append(
            f"Database {code(state.database)} is at {text(', '.join(state.current))}; {len(history.pending)} pending."
        )
    else:
        unbooted = " (not bootstrapped)" if history.bootstraps else ""
        blocks.append(f"Database {code(state.database)} has no revision applied{unbooted}.")
    if state is not None and state.unknown:
        blocks.append(
            f"**The database is at {text(', '.join(state.unknown))}, which no revision file of this project has.** "
            "Was a revision file deleted, or is this another branch's database?"
        )
    show_state = state is not None and state.reachable
    rows = []
    for entry in history.entries:
        info = entry.info
        marks = history_marks(entry)
        if entry.state is RevisionState.CURRENT:
            marks.append("current")
        row = [info.revision, "\n".join(info.parents) or "—", info.message, (info.created or "")[:10], ", ".join(marks)]
        if show_state:
            where = entry.state
            row.insert(0, f"{STATE_MARKS[where][0]} {where.value}" if where is not None else "")
        rows.append(row)
    headers = ["Revision", "Parent(s)", "Message", "Created", "Marks"]
    blocks.append(table(["State", *headers] if show_state else headers, rows))
    if state is not None and state.last_apply is not None:  # as the text view says it
        run = state.last_apply
        blocks.append(f"Last apply: {text(last_apply_words(run))}, {OUTCOME_WORDS[run.outcome]}.")
    if state is not None and state.v1_drift:
        blocks.append(f"**Warning:** {text(state.v1_drift)}")
    blocks.append(MARKER.format(kind="history"))
    return _join(blocks)


# -- new, bootstrap, merge ----------------------------------------------------------------------


def new_revision_markdown(result: NewRevision) -> str:
    """``new``: the file written, the dangers visible, the operations, lint and SQL folded."""
    blocks = ["## New revision"]
    if result.path is not None:
        blocks.append(f"**Wrote** {code(str(result.path))} (revision {text(result.revision or '?')}).")
    if result.compared_with is None:
        blocks.append("No models to compare (env.py sets no target_metadata): an empty revision, to write by hand.")
    else:
        blocks.append(f"Compared the models with {text(result.compared_with)}.")
    dangers = len(result.dangers)
    blocks.append(
        f"Detected operations ({len(result.operations)}); {dangers} {plural('danger', dangers)}, "
        f"{len(result.findings) - dangers} {plural('caution', len(result.findings) - dangers)}; lint: "
        + (
            f"{len(result.lint.errors)} errors, {len(result.lint.findings) - len(result.lint.errors)} warnings."
            if result.lint is not None and result.lint.ran
            else "not run."
        )
    )
    if result.findings:
        rows = []
        for finding in result.findings:
            words = finding.message + (f" ({finding.rows_on_target})" if finding.rows_on_target else "")
            if finding.instead:
                words += f"\ninstead: {finding.instead}"
            rows.append(["✖" if finding.level is Severity.DANGER else "●", finding.level.value.upper(), words])
        blocks.append(f"**Needs attention ({len(rows)})**\n\n" + table(["", "Severity", "What"], rows))
    else:
        blocks.append("**Needs attention:** nothing flagged.")
    if result.not_counted is not None:
        blocks.append(f"Rows at risk not counted: {text(result.not_counted)}")
    if result.strict_failed:
        blocks.append("**--strict: exit 13**: a danger or a lint error is left in the file.")
    if result.operations:
        rows = []
        for op in result.operations:
            type_text = op.type or ""
            if op.kind == "alter_column" and op.existing_type and op.type:
                type_text = f"{op.existing_type} → {op.type}"
            rows.append([op.kind.replace("_", " "), op.table, op.name, type_text])
        blocks.append(
            details(
                f"Detected operations ({len(result.operations)})", table(["Operation", "Table", "Name", "Type"], rows)
            )
        )
    if result.lint is not None:
        blocks.append(lint_section(result.lint))
    if result.sql is not None:
        blocks.append(details(f"SQL of {result.revision}", fence(result.sql.strip() or "-- (no SQL)")))
    blocks.append(MARKER.format(kind="new_revision"))
    return _join(blocks)


def bootstrap_markdown(plan: BootstrapPlan, project_dir: Path, result: BootstrapResult | None = None) -> str:
    """``bootstrap``: the V1 file, the baseline and the counts visible; the objects and V1's SQL folded."""
    counts = count_by_kind(obj.kind for obj in plan.creates)
    blocks = [
        "## Bootstrap plan",
        f"**Bootstrap plan** for {code(plan.database)}",
        f"SQL file: {code(relative(plan.sql.path, project_dir))} ({len(plan.sql.statements)} statements, "
        f"SHA-256 {text(plan.sql.sha256[:12])}…); baseline: {text(plan.baseline.revision)} "
        f"{text(plan.baseline.message)} (stamped in the same transaction).",
        f"In all: {text(counts or 'nothing')}; plus the tool's record in schema {text('hindsight_migrate')}.",
        "**Needs attention:** nothing — bootstrap runs only on an empty database, in one transaction.",
    ]
    if result is not None:
        blocks.append(
            f"**Bootstrapped** {code(plan.database)} in {result.seconds:.2f} s: {len(plan.creates)} objects from "
            f"{text(plan.sql.path.name)}, version table at {text(', '.join(result.current_heads) or '(empty)')}."
        )
    blocks.append(
        details(
            f"What it creates (measured in a rolled-back rehearsal) ({len(plan.creates)})",
            table(["Kind", "Name"], ([obj.kind, obj.qualified_name] for obj in plan.creates)),
        )
    )
    sql = ";\n\n".join(statement.text for statement in plan.sql.statements)
    blocks.append(details(f"SQL of {plan.sql.path.name}", fence(sql + ";" if sql else "-- (no SQL)")))
    blocks.append(MARKER.format(kind="bootstrap_plan"))
    return _join(blocks)


def merge_markdown(revision: str, path: Path, heads: tuple[str, ...]) -> str:
    return _join(
        [
            "## Merge revision",
            f"**Wrote** merge revision {text(revision)}: {code(str(path))}, joining {text(', '.join(heads))}. "
            "Review it, then apply it with `hindsight-migrate up`.",
            MARKER.format(kind="merge"),
        ]
    )


# -- fleets ------------------------------------------------------------------------------------------

def _at(current: tuple[str, ...]) -> str:
    return ", ".join(current) if current else "(empty)"


def fleet_plan_markdown(plan: FleetPlan) -> str:
    """``fleet plan``: what refuses and what blocks first, the riskiest targets, the canary, lint, the revisions
    and their SQL."""
    blocks = [
        f"## Fleet plan {code(plan.rollout)}",
        f"{len(plan.readings)} targets: {len(plan.pending)} to migrate, {len(plan.up_to_date)} up to date, "
        f"{len(plan.blocked)} blocked; heads {code(_at(plan.heads))}.",
    ]
    blocks += [f"**Refused:** {text(problem)}; fleet up will not apply this plan." for problem in plan.problems]
    if plan.blocked:
        blocks.append(
            table(
                ["Blocked target", "Why", "Problem"],
                ([r.target.name, r.blocker.value if r.blocker else "", r.problem or ""] for r in plan.blocked),
            )
        )
    riskiest = plan.riskiest()
    if riskiest:
        blocks.append(
            table(
                ["Riskiest target", "Data touched"], ([r.target.name, human_bytes(r.touched_bytes)] for r in riskiest)
            )
        )
    if plan.canaries:
        blocks.append(f"Canary: {text(', '.join(plan.canaries))}.")
    if plan.canary_plan is not None and plan.canary_plan.rehearsal is not None:
        verdict = "succeeded" if plan.canary_plan.rehearsal.ok else "**failed**"
        blocks.append(f"Rehearsed on the canary {text(plan.canaries[0])}: {verdict}.")
    elif plan.revisions:
        blocks.append(f"Not rehearsed ({text(plan.rehearsal_skipped or plan.rehearsal_problem or 'nothing to run')}).")
    if plan.lint.errors:
        blocks.append(
            table(["Lint error", "Revision", "Message"], ([f.rule, f.revision, f.message] for f in plan.lint.errors))
        )
    if plan.revisions:
        blocks.append(table(["Revision", "Message"], ([i.info.revision, i.info.message] for i in plan.revisions)))
        blocks += [
            details(
                f"SQL of {item.info.revision}",
                fence(item.sql or f"-- cannot render offline: {item.sql_problem or ''}"),
            )
            for item in plan.revisions[:SQL_INLINE_REVISIONS]
        ]
    blocks.append(MARKER.format(kind="fleet_plan"))
    return _join(blocks)


def rollout_markdown(summary: RolloutSummary) -> str:
    """``fleet up``: how many targets are at the heads, and every target this run migrated, failed or skipped."""
    stopped = " (stopped: the error budget was spent)." if summary.stopped_by_budget else "."
    blocks = [
        f"## Fleet rollout {code(summary.rollout)}",
        f"{summary.count(TargetState.APPLIED)} of {len(summary.outcomes)} targets at the heads "
        f"{code(_at(summary.heads))}, {summary.count(TargetState.FAILED)} failed, "
        f"{summary.count(TargetState.SKIPPED)} skipped, in {summary.seconds:.1f} s{stopped}",
    ]
    shown = [o for o in summary.outcomes if o.applied or o.state is not TargetState.APPLIED]
    if shown:
        blocks.append(
            table(
                ["Target", "State", "At", "Revisions applied", "Error"],
                ([o.name, o.state.value, _at(o.current), str(len(o.applied)), o.error or ""] for o in shown),
            )
        )
    untouched = len(summary.outcomes) - len(shown)
    if untouched:
        blocks.append(f"{untouched} target(s) were at the heads already.")
    blocks.append(MARKER.format(kind="fleet_up"))
    return _join(blocks)


def fleet_status_markdown(status: FleetStatus) -> str:
    """``fleet status``: the counts by state, then every target."""
    blocks = [
        f"## Fleet status: {len(status.rows)} targets",
        text(", ".join(f"{status.count(s)} {s.value}" for s in TargetState if status.count(s)) or "no target"),
        table(
            ["Target", "State", "At", "Error"],
            ([r.name, r.state.value, _at(r.current), r.error or ""] for r in status.rows),
        ),
        MARKER.format(kind="fleet_status"),
    ]
    return _join(blocks)


def print_markdown(document: str) -> None:
    """One markdown document on stdout, alone: what people read goes to stderr meanwhile."""
    sys.stdout.write(visible(document))  # made visible in _join already; this keeps any other document safe too
    sys.stdout.flush()
