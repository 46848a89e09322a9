"""The reports that change nothing: history, new, status, check, lint, merge."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text

from hindsight_migrate.authoring.findings import Severity
from hindsight_migrate.postgres.audit_records import Outcome
from hindsight_migrate.render.console import out, safe_markup, sql_block
from hindsight_migrate.render.layout import Column, grid, hanging, plural
from hindsight_migrate.render.wording import (
    LINT_COLUMNS,
    OUTCOME_WORDS,
    STATE_MARKS,
    history_marks,
    hold_lines,
    last_apply_words,
    lint_dropped,
    lint_places,
    lint_rows,
    lint_style_line,
    lint_title,
    revisions_count,
)
from hindsight_migrate.review.kinds import Level
from hindsight_migrate.revisions import RevisionState
from hindsight_migrate.untrusted import visible

if TYPE_CHECKING:

    from hindsight_migrate.authoring.autogen import NewRevision
    from hindsight_migrate.reports.check import CheckReport, LintReport
    from hindsight_migrate.reports.history import History
    from hindsight_migrate.reports.status import Status
    from hindsight_migrate.review.lint import LintFinding, LintResult





# How the last apply's outcome is coloured (every outcome: mypy checks the keys against Outcome).
OUTCOME_STYLES: dict[Outcome, str] = {
    Outcome.RUNNING: "yellow",
    Outcome.SUCCEEDED: "green",
    Outcome.FAILED: "red",
    Outcome.INTERRUPTED: "yellow",
    Outcome.NOTHING_TO_DO: "green",
}


def _outcome(outcome: Outcome) -> str:
    return f"[{OUTCOME_STYLES[outcome]}]{OUTCOME_WORDS[outcome]}[/]"


def history(history: History) -> None:

    console = out()
    show_state = history.database is not None and history.database.reachable
    columns = [
        Column("Revision", style="bold"),
        Column("Parent(s)", shrink=8),
        Column("Message", flexible=True, shrink=8),
        Column("Created"),
        Column("Marks", shrink=5),
    ]
    if show_state:
        columns.insert(0, Column(""))
    state_marks = {state: Text(mark, style=style) for state, (mark, style) in STATE_MARKS.items()}
    rows: list[list[str | Text]] = []
    for entry in history.entries:
        info = entry.info
        labels = history_marks(entry)
        marks: str | Text = ", ".join(labels)
        if entry.state is RevisionState.CURRENT:
            marks = Text(f"{marks}, " if marks else "")
            marks.append("current", style="bold green")
        row: list[str | Text] = [
            info.revision,
            "\n".join(info.parents) or "—",
            info.message,
            (info.created or "")[:10],
            marks,
        ]
        if show_state:
            row.insert(0, state_marks[entry.state] if entry.state is not None else "")
        rows.append(row)
    grid(console, "Revisions, newest first", columns, rows)
    console.print(
        f"{revisions_count(len(history.entries))}; head(s): {safe_markup(', '.join(history.heads) or 'none')}; "
        f"base(s): {safe_markup(', '.join(history.bases) or 'none')}."
    )
    state = history.database
    if state is None:
        console.print("[dim]Database not consulted (--offline).[/]")
    elif not state.reachable:
        lead = "Where the database stands is unknown" if state.connected else "Database not reachable"
        console.print(f"[yellow]{lead}, so applied/pending is unknown:[/] {safe_markup(state.problem)}")
    else:
        console.print("Legend: ● current  ✓ applied  ○ pending")
        if state.current:
            console.print(
                f"Database {safe_markup(state.database)} is at {safe_markup(', '.join(state.current))}; "
                f"{len(history.pending)} pending."
            )
        elif not state.unknown:
            # "Bootstrapped" is this tool's word for a project whose V1 file it runs: none without bootstrap_sql.
            unbooted = " (not bootstrapped)" if history.bootstraps else ""
            console.print(f"Database {safe_markup(state.database)} has no revision applied{unbooted}.")
        if state.unknown:
            console.print(
                f"[red]The database is at {safe_markup(', '.join(state.unknown))}, which no revision file of "
                "this project has.[/] Was a revision file deleted, or is this another branch's "
                "database?"
            )
        if state.bootstrap is not None:
            console.print(
                f"Bootstrapped {state.bootstrap.bootstrapped_at:%Y-%m-%d %H:%M %Z} from "
                f"{safe_markup(state.bootstrap.sql_path)} by "
                f"{safe_markup(state.bootstrap.os_user)}@{safe_markup(state.bootstrap.host)}."
            )
        if state.last_apply is not None:
            run = state.last_apply
            console.print(f"Last apply: {safe_markup(last_apply_words(run))}, {_outcome(run.outcome)}.")
        if state.v1_drift:
            console.print(f"[yellow]Warning:[/] {safe_markup(state.v1_drift)}")


def new_revision(result: NewRevision, *, show_sql: bool) -> None:

    console = out()
    if result.compared_with is None:
        console.print("No models to compare (env.py sets no target_metadata): an empty revision, to write by hand.")
    else:
        compared = f" ({result.comparison.words()})" if result.comparison is not None else ""
        console.print(f"Compared the models with {safe_markup(result.compared_with)}{safe_markup(compared)}.")
        for phrase in result.comparison.not_compared() if result.comparison is not None else ():
            console.print(f"  [yellow]Not compared:[/] {safe_markup(phrase)}")
    flagged = {id(f.operation): f for f in result.findings}
    rows: list[list[str | Text]] = []
    for op in result.operations:
        finding = flagged.get(id(op))
        mark = (
            Text("")
            if finding is None
            else Text("!", "bold red")
            if finding.level is Severity.DANGER
            else Text("?", "yellow")
        )
        type_text = op.type or ""
        if op.kind == "alter_column" and op.existing_type and op.type:
            type_text = f"{op.existing_type} → {op.type}"
        if op.server_default is not None:
            type_text = ", ".join(filter(None, (type_text, f"server default {op.server_default}")))
        rows.append([mark, op.kind.replace("_", " "), op.table, op.name, type_text])
    if rows:
        grid(
            console,
            f"Detected operations ({len(result.operations)})",
            [Column(""), Column("Operation"), Column("Table"), Column("Name"), Column("Type", flexible=True)],
            rows,
        )
    else:
        console.print("Detected operations (0): upgrade() and downgrade() are empty, to be written by hand.")
    if result.counted_on is not None:
        console.print(f"Rows at risk counted on {safe_markup(result.counted_on)} (read-only, rolled back):")
    elif result.not_counted is not None:
        console.print(f"[yellow]Rows at risk not counted:[/] {safe_markup(result.not_counted)}")
    for finding in result.findings:
        colour = "red" if finding.level is Severity.DANGER else "yellow"
        count = f" [bold]({safe_markup(finding.rows_on_target)})[/]" if finding.rows_on_target else ""
        console.print(f"  [{colour}]{finding.level.value}:[/] {safe_markup(finding.message)}{count}")
        if finding.instead:
            console.print(f"      instead: [bold]{safe_markup(finding.instead)}[/]")
    if result.lint is not None:
        lint_result(result.lint)
    if show_sql and result.sql is not None:
        console.print(sql_block(result.sql))
    todo = "fix what is flagged above" if result.findings else "write what it should do" if not rows else "check it"
    marked = (
        f" {result.danger_comments} {plural('danger', result.danger_comments)} "
        f"{'is' if result.danger_comments == 1 else 'are'} marked in it with a # DANGER: comment above the "
        "operation."
        if result.danger_comments
        else ""
    )
    console.print(
        f"[green]Wrote[/] {safe_markup(result.path)} (revision {safe_markup(result.revision)}).{marked} "
        f"Open it, {todo}, then review and apply it with [bold]hindsight-migrate up[/]."
    )
    if result.strict_failed:
        left = [f"{len(result.dangers)} {plural('danger', len(result.dangers))}"] if result.dangers else []
        errors = len(result.lint_errors)
        left += [f"{errors} lint {plural('error', errors)}"] if errors else []
        console.print(
            f"[bold red]--strict: exit 13[/], {' and '.join(left)} left in {safe_markup(result.path)}; "
            "the file is written, to be edited (or change the models and run new again)."
        )


def status(result: Status) -> None:
    console = out()
    verdict = " and ".join(result.verdicts) if result.verdicts else "up to date"
    colour = "green" if not result.verdicts else "red" if set(result.verdicts) - {"behind"} else "yellow"
    console.print(f"[bold]Status[/] of {safe_markup(result.database)}: [{colour}]{verdict}[/]")
    console.print(f"  Current:  {safe_markup(', '.join(result.current) or 'no revision applied')}")
    console.print(f"  Head(s):  {safe_markup(', '.join(result.heads))}")
    console.print(f"  Pending:  {safe_markup(', '.join(result.pending) or 'none')}")
    if result.unknown:
        console.print(
            f"  [red]Unknown:[/]  {safe_markup(', '.join(result.unknown))} (in the version table; no file has them)"
        )
    if result.missing:
        console.print(
            f"  [red]Missing:[/]  {safe_markup(', '.join(result.missing))} "
            "(applied; their files are gone from versions/)"
        )
    for edited in result.edited:
        console.print(
            f"  [red]Edited after it was applied:[/] {safe_markup(edited.revision)} {safe_markup(edited.path)} "
            f"(SHA-256 then {edited.recorded_sha256[:12]}…, now {edited.file_sha256[:12]}…)"
        )
    for reformatted in result.reformatted:
        console.print(
            f"  Reformatted after it was applied: {safe_markup(reformatted.revision)} "
            f"{safe_markup(reformatted.path)} (comments, docstrings or layout only: the same code, not an edit)"
        )
    if result.unrecorded:
        console.print(
            "  [dim]No checksum recorded (applied before this tool kept them): "
            f"{safe_markup(', '.join(result.unrecorded))}[/]"
        )
    if result.bootstraps:  # V1 is this tool's bootstrap file: a project without bootstrap_sql has none
        v1 = safe_markup(result.v1_drift) if result.v1_drift else "as bootstrapped (or not bootstrapped)"
        console.print(f"  V1:       {v1}")
    if result.last_apply is not None:
        run = result.last_apply
        console.print(f"  Last apply: {safe_markup(last_apply_words(run))}, {_outcome(run.outcome)}")
        held = hold_lines(run.lock_holds)
        if held:
            console.print("  Its locks, the plan's figure against the apply's:")
            for line in held:
                console.print(f"    {safe_markup(line)}")


def check_report(report: CheckReport) -> None:
    console = out()
    if report.target:
        console.print(f"Target: {safe_markup(report.target)}.")
    for warning in report.warnings:
        console.print(f"  [yellow]! {warning.kind}:[/] {safe_markup(warning.message)}")
        for detail in warning.details:
            console.print(f"      {safe_markup(detail)}")
    if report.ok:
        console.print(
            f"[green]check passed[/] for {safe_markup(report.database)}: {safe_markup('; '.join(report.checked))}."
        )
        return
    found = f"{len(report.problems)} {plural('problem', len(report.problems))}"
    console.print(f"[bold red]check found {found}[/] ({safe_markup(report.database)}):")
    for problem in report.problems:
        console.print(f"  [red]✗ {problem.kind}:[/] {safe_markup(problem.message)}")
        for detail in problem.details:
            console.print(f"      {safe_markup(detail)}")


def lint_report(report: LintReport) -> None:
    console = out()
    console.print(
        f"Linted {revisions_count(len(report.revisions))} ({safe_markup(report.range)}): "
        f"{safe_markup(', '.join(report.revisions) or 'none')}"
    )
    lint_result(report.result)


def merged(revision: str, path: Path) -> None:
    out().print(
        f"[green]Wrote[/] merge revision {safe_markup(revision)}: {safe_markup(path)}. Review it, then apply it with "
        "[bold]hindsight-migrate up[/]."
    )




def _nothing_to_list(lint: LintResult) -> bool:
    """Says so when lint did not run or found nothing (and what it left out); False when there are findings."""
    if not lint.ran:
        out().print(f"[yellow]Lint:[/] {safe_markup(lint.note or 'not run')}")
        return True
    if not lint.findings:
        out().print("[green]Lint (Squawk):[/] no findings.")
        _lint_dropped(lint)
        return True
    return False


def lint_lines(lint: LintResult) -> None:
    """Lint in a few lines: each error, each warning rule once (how often, where), style notes on what the plan
    creates counted in one line, and what was not shown and why. --details shows the table and the advice."""
    console = out()
    if _nothing_to_list(lint):
        return
    console.print(Text(lint_title(lint), style="bold"))
    # Errors one by one: each blocks `up`. Warnings once per rule, with how often and where, so two hundred
    # identical lines do not bury the one that matters.
    groups: list[tuple[Text, str, list[LintFinding]]] = [
        (Text("  ✖ error   ", style="bold red"), error.rule, [error]) for error in lint.errors
    ]
    by_rule: dict[str, list[LintFinding]] = {}
    for finding in lint.warnings:
        by_rule.setdefault(finding.rule, []).append(finding)
    groups += [(Text("  ▲ warning ", style="yellow"), rule, same) for rule, same in by_rule.items()]
    for label, rule, same in groups:
        times = f", {len(same)} times" if len(same) > 1 else ""
        messages = " / ".join(dict.fromkeys(f.message for f in same))
        said = visible(f"{times}: {messages} ({lint_places(same)})")
        hanging(console, label, Text.assemble((visible(rule), "bold"), said))
    style = lint_style_line(lint)
    if style is not None:
        hanging(console, Text("  ● style   ", style="dim"), Text(visible(style + " (--details lists them)")))
    _lint_dropped(lint)


def lint_result(lint: LintResult) -> None:
    """Lint in full (--details and the lint command): a table of errors and warnings by rule, style notes
    included, with the revision and statement of each, then Squawk's advice once per rule."""
    console = out()
    if _nothing_to_list(lint):
        return
    rows: list[list[str | Text]] = []
    for row in lint_rows(lint):
        colour = "bold red" if row.level is Level.ERROR else "dim" if row.style else "yellow"
        rows.append([Text(row.cells[0], style=colour), *row.cells[1:]])
    grid(
        console,
        lint_title(lint),
        [Column(title, flexible=title in ("Revision", "Finding")) for title in LINT_COLUMNS],
        rows,
    )
    # Squawk gives the same advice under every finding of a rule: once per rule is enough.
    advice = lint.advice_by_rule()
    shown = [rule for rule in dict.fromkeys(str(row[3]) for row in rows) if rule in advice]
    if shown:
        console.print("Squawk's advice:")
        for rule in shown:
            console.print(f"  [bold]{safe_markup(rule)}[/]: {safe_markup(advice[rule])}")
    _lint_dropped(lint)


def _lint_dropped(lint: LintResult) -> None:
    said = lint_dropped(lint)
    if said is not None:
        out().print(safe_markup(said))
