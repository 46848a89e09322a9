"""All terminal output: Rich for people, JSON for scripts. Core code never prints.

Data goes to stdout; progress, the database announcement, prompts and errors go to stderr,
so ``hindsight-migrate history --json | jq`` sees only JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import sys
import traceback
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hindsight_migrate.masking import mask_secrets

if TYPE_CHECKING:
    from rich.console import Console
    from rich.segment import Segments
    from rich.text import Text

    from hindsight_migrate.apply import ApplyResult
    from hindsight_migrate.autogen import NewRevision
    from hindsight_migrate.bootstrap import BootstrapPlan, BootstrapResult
    from hindsight_migrate.check import CheckReport, LintReport
    from hindsight_migrate.config import Settings
    from hindsight_migrate.errors import HindsightMigrateError
    from hindsight_migrate.history import History
    from hindsight_migrate.lint import LintResult
    from hindsight_migrate.plan import ChangeKind, MigrationPlan
    from hindsight_migrate.revisions import RevisionInfo
    from hindsight_migrate.status import Status


_HUMAN_ON_STDERR = [False]  # set when stdout carries data (--plan-out -): what people read moves to stderr


@contextlib.contextmanager
def stdout_for_data(wanted: bool) -> Iterator[None]:
    """While ``wanted``, what people read goes to stderr, so stdout holds the data alone (``--plan-out -``)."""
    before = _HUMAN_ON_STDERR[0]
    _HUMAN_ON_STDERR[0] = wanted or before
    try:
        yield
    finally:
        _HUMAN_ON_STDERR[0] = before


def out() -> Console:
    from rich.console import Console

    return Console(highlight=False, stderr=_HUMAN_ON_STDERR[0])


def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


# -- shared pieces -------------------------------------------------------------------


def announce_database(settings: Settings) -> None:
    source = settings.database
    if source.unusable is not None:
        return  # opening it fails next, with the words that say why
    if source.is_embedded:
        err().print(
            f"[bold]Database:[/] embedded PostgreSQL in {source.embedded_data_dir} "
            "[dim](no --url, DATABASE_URL or sqlalchemy.url is set; the server starts on demand "
            "and stops when this command exits)[/]"
        )
    else:
        err().print(f"[bold]Database:[/] {source.masked_url} [dim](from {source.origin})[/]")


def error(problem: HindsightMigrateError) -> None:
    from rich.console import Group
    from rich.markup import escape
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.text import Text

    parts: list[Any] = [Text(mask_secrets(problem.message))]
    for section in problem.sections:
        parts.append(Text(f"\n{section.title}", style="bold"))
        parts.append(Padding(Text(mask_secrets(section.body)), (0, 0, 0, 2)))
    err().print(
        Panel(
            Group(*parts),
            title=f"[bold red]{escape(problem.title)}[/]",
            subtitle=f"exit code {int(problem.exit_code)}",
            title_align="left",
            border_style="red",
        )
    )


def internal_error(exc: BaseException) -> None:
    err().print(
        f"[bold red]Internal error:[/] {mask_secrets(f'{type(exc).__name__}: {exc}')}\n"
        "This is a bug in hindsight-migrate. Run again with --debug for the traceback and "
        "report it."
    )


def debug_traceback(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    sys.stderr.write(mask_secrets(text))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(data), indent=2) + "\n")


def jsonable(value: Any) -> Any:
    """Dataclasses, paths, dates and enums as plain JSON values (properties are not included)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


# -- bootstrap -----------------------------------------------------------------------


def bootstrap_plan(plan: BootstrapPlan, project_dir: Path) -> None:

    console = out()
    console.print(f"[bold]Bootstrap plan[/] for {plan.database}")
    console.print(
        f"  SQL file:  {_relative(plan.sql.path, project_dir)}  "
        f"[dim]({len(plan.sql.statements)} statements, SHA-256 {plan.sql.sha256[:12]}…)[/]"
    )
    console.print(
        f"  Baseline:  {plan.baseline.revision}  {plan.baseline.message}  [dim](stamped in the same transaction)[/]"
    )
    grid(
        console,
        "What it creates (measured in a rolled-back rehearsal)",
        [_Column("Kind"), _Column("Name", flexible=True)],
        ([obj.kind, obj.qualified_name] for obj in plan.creates),
    )
    counts = _count_by_kind(obj.kind for obj in plan.creates)
    console.print(f"  In all: {counts or 'nothing'}; plus the tool's record in schema hindsight_migrate.")


def bootstrap_done(result: BootstrapResult) -> None:
    out().print(
        f"[green]Bootstrapped[/] {result.plan.database} in {result.seconds:.2f} s: "
        f"{len(result.plan.creates)} objects from {result.plan.sql.path.name}, version table at "
        f"{', '.join(result.current_heads) or '(empty)'}.\n"
        "Next: [bold]hindsight-migrate up[/] to review and apply the revisions after the baseline."
    )


# -- history -------------------------------------------------------------------------

_STATE_MARK = {"current": ("●", "bold green"), "applied": ("✓", "green"), "pending": ("○", "yellow")}


def history(history: History) -> None:
    from rich.text import Text

    console = out()
    show_state = history.database is not None and history.database.reachable
    columns = [
        _Column("Revision", style="bold"),
        _Column("Parent(s)", shrink=8),
        _Column("Message", flexible=True, shrink=8),
        _Column("Created"),
        _Column("Marks", shrink=5),
    ]
    if show_state:
        columns.insert(0, _Column(""))
    state_marks = {state: Text(mark, style=style) for state, (mark, style) in _STATE_MARK.items()}
    rows: list[list[str | Text]] = []
    for entry in history.entries:
        info = entry.info
        labels = [
            label
            for flag, label in (
                (info.is_head, "head"),
                (info.is_base, "base"),
                (info.is_branch_point, "branch point"),
                (info.is_merge_point, "merge"),
            )
            if flag
        ]
        labels += [f"label {label}" for label in info.branch_labels]
        marks: str | Text = ", ".join(labels)
        if entry.state == "current":
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
            row.insert(0, state_marks.get(entry.state or "", ""))
        rows.append(row)
    grid(console, "Revisions, newest first", columns, rows)
    console.print(
        f"{len(history.entries)} revisions; head(s): {', '.join(history.heads) or 'none'}; "
        f"base(s): {', '.join(history.bases) or 'none'}."
    )
    state = history.database
    if state is None:
        console.print("[dim]Database not consulted (--offline).[/]")
    elif not state.reachable:
        console.print(f"[yellow]Database not reachable, so applied/pending is unknown:[/] {state.problem}")
    else:
        console.print("Legend: ● current  ✓ applied  ○ pending")
        if state.current:
            console.print(
                f"Database {state.database} is at {', '.join(state.current)}; {len(history.pending)} pending."
            )
        elif not state.unknown:
            console.print(f"Database {state.database} has no revision applied (not bootstrapped).")
        if state.unknown:
            console.print(
                f"[red]The database is at {', '.join(state.unknown)}, which no revision file of "
                "this project has.[/] Was a revision file deleted, or is this another branch's "
                "database?"
            )
        if state.bootstrap is not None:
            console.print(
                f"Bootstrapped {state.bootstrap.bootstrapped_at:%Y-%m-%d %H:%M %Z} from "
                f"{state.bootstrap.sql_path} by {state.bootstrap.os_user}@{state.bootstrap.host}."
            )
        if state.last_apply is not None:
            run = state.last_apply
            outcome = {"running": "[yellow]still running, or was killed[/]", "failed": "[red]failed[/]"}.get(
                run.outcome, "[green]succeeded[/]"
            )
            console.print(
                f"Last apply: {run.command} {run.started_at:%Y-%m-%d %H:%M %Z} by {run.os_user}@{run.host}, "
                f"{run.from_revisions} → {run.to_revisions or '?'}, {outcome}."
            )
        if state.v1_drift:
            console.print(f"[yellow]Warning:[/] {state.v1_drift}")


@dataclasses.dataclass(frozen=True)
class _Column:
    title: str
    style: str = ""
    flexible: bool = False  # takes the width the others leave (up to its content), its text folded to fit
    shrink: int | None = None  # narrowest it may be cut to (with …) on a narrow terminal; None: never cut


def _boxed_table(console: Console, columns: list[_Column], rows: list[list[str | Text]]) -> Segments:
    """Rows drawn in the box of Rich's default ``Table``, without its layout engine.

    ``Table`` measures and renders every cell as a renderable of its own, which takes about
    half a second for a thousand revisions. Here each cell is measured once and the table
    becomes one run of segments, which Rich writes out in a few milliseconds. Flexible
    columns get the width the others leave (up to their content), their text folded to
    fit. The others keep their lines as they are, cut with … only when the terminal is too
    narrow for them. Plain-string cells are the fast path; a ``Text`` cell keeps its styles.
    """
    from rich.cells import cell_len
    from rich.segment import Segment, Segments
    from rich.text import Text

    cells = [[_cell_lines(cell) for cell in row] for row in rows]
    widths = [
        max([cell_len(column.title)] + [size for row in cells for _, size in row[index]])
        for index, column in enumerate(columns)
    ]
    flexible = {i for i, column in enumerate(columns) if column.flexible}
    frame = 3 * len(columns) + 1  # "│ " before each cell, " " after it, and the closing "│"
    if flexible:
        # The flexible columns share what the others leave: the narrow ones keep their content's
        # width, the wide ones split the rest evenly (never below 20 cells).
        left = console.width - (sum(w for i, w in enumerate(widths) if i not in flexible) + frame)
        by_width = sorted(flexible, key=lambda i: widths[i])
        for taken, index in enumerate(by_width):
            share = max(left // (len(by_width) - taken), 20)
            widths[index] = min(widths[index], share)
            left -= widths[index]
    # Too wide still: cut the columns that allow it down to their floors, right to left, the flexible one last.
    # Only on a terminal, where the reader can widen it: a CI log or a pipe keeps every cell whole,
    # and the table is simply wider than the 80 columns Rich assumes there.
    shrinkable = range(len(columns)) if console.is_terminal else range(0)
    for index in sorted(shrinkable, key=lambda i: (columns[i].flexible, -i)):
        excess = sum(widths) + frame - console.width
        floor = columns[index].shrink
        if excess > 0 and floor is not None and widths[index] > floor:
            widths[index] = max(floor, widths[index] - excess)

    styles = [console.get_style(column.style) if column.style else None for column in columns]
    segments: list[Segment] = []

    def rule(left: str, line: str, middle: str, right: str) -> str:
        return left + middle.join(line * (width + 2) for width in widths) + right + "\n"

    # Unstyled text is gathered in `run` until a styled piece comes: fewer, longer segments print faster.
    run = rule("┏", "━", "┳", "┓") + "┃"
    for column, width in zip(columns, widths, strict=True):
        segments += [Segment(run + " "), Segment(_fit(column.title, width), console.get_style("table.header"))]
        run = " ┃"
    run += "\n" + rule("┡", "━", "╇", "┩")
    for row in cells:
        for index, width in enumerate(widths):
            cell = row[index]
            if index in flexible and (len(cell) > 1 or cell[0][1] > width):
                joined = Text("\n").join(line if isinstance(line, Text) else Text(line) for line, _ in cell)
                row[index] = [(line, cell_len(line.plain)) for line in joined.wrap(console, width, overflow="fold")]
            elif index not in flexible:
                row[index] = [(_cut(line, width), width) if size > width else (line, size) for line, size in cell]
        for number in range(max(len(cell) for cell in row)):
            run += "│"
            for width, style, cell in zip(widths, styles, row, strict=True):
                if number >= len(cell):
                    run += " " * (width + 2) + "│"
                    continue
                line, size = cell[number]
                if isinstance(line, str) and style is None:
                    run += f" {line}"
                else:
                    segments.append(Segment(run + " "))
                    if isinstance(line, str):
                        segments.append(Segment(line, style))
                    else:
                        # Text.render leaves a Text's own style to the caller when it has no spans.
                        own = console.get_style(line.style) if line.style else None
                        segments += Segment.apply_style(line.render(console), style + own if style else own)
                    run = ""
                run += " " * (width - size + 1) + "│"
            run += "\n"
    segments.append(Segment(run + rule("└", "─", "┴", "┘")))
    return Segments(segments)


def grid(console: Console, title: str | None, columns: list[_Column], rows: Iterable[list[str | Text]]) -> None:
    """A titled table (see :func:`_boxed_table`), printed."""
    from rich.text import Text

    if title:
        console.print(Text(title, style="table.title"))
    # crop=False: a row wider than the console (never on a terminal, see above) is written whole.
    console.print(_boxed_table(console, columns, list(rows)), crop=False)


def _cell_lines(cell: str | Text) -> list[tuple[str | Text, int]]:
    """A cell's lines, each with its width in cells; a string cleaned as Rich's ``Text`` would clean it."""
    from rich.cells import cell_len

    if isinstance(cell, str):
        if _CONTROL.search(cell):  # rare: only then pay for the cleaning
            from rich.control import strip_control_codes

            cell = strip_control_codes(cell).expandtabs(8)
        return [(line, cell_len(line)) for line in cell.split("\n")]
    return [(line, cell_len(line.plain)) for line in cell.split("\n")]


def _cut(line: str | Text, width: int) -> str | Text:
    """A line too wide for its column, cut with … (a ``Text`` keeps its styles)."""
    if isinstance(line, str):
        return _fit(line, width)
    line = line.copy()
    line.truncate(width, overflow="ellipsis", pad=True)
    return line


_CONTROL = re.compile(r"[\a\b\t\v\f\r]")


def _fit(line: str, width: int) -> str:
    """``line`` padded, or cut with …, to exactly ``width`` cells."""
    from rich.cells import cell_len, set_cell_size

    if cell_len(line) <= width:
        return set_cell_size(line, width)
    return set_cell_size(line, width - 1) + "…" if width > 0 else ""


def _count_by_kind(kinds: Iterable[str]) -> str:
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {_plural(kind, n)}" for kind, n in counts.items())


def _plural(word: str, count: int) -> str:
    if count == 1:
        return word
    return word + ("es" if word.endswith(("x", "s")) else "s")


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


# -- up --------------------------------------------------------------------------------


def lock_words(mode: str) -> str:
    """PostgreSQL's 'AccessExclusiveLock' as the docs write it: 'ACCESS EXCLUSIVE'."""
    words = re.findall(r"[A-Z][a-z]*", mode.removesuffix("Lock"))
    return " ".join(words).upper()


def migration_plan(plan: MigrationPlan, *, show_sql: bool = True) -> None:
    from rich.text import Text

    console = out()
    down = plan.direction == "down"
    console.print(f"[bold]{'Downgrade' if down else 'Upgrade'} plan[/] for {plan.database}")
    console.print(f"  Current:  {', '.join(plan.current) or 'nothing applied (empty database)'}")
    console.print(f"  Target:   {plan.target} → {', '.join(plan.final) or 'base (no revision)'}")
    if plan.bootstrap is not None:
        console.print(
            f"  [bold]Bootstrap first:[/] the database is empty, so {plan.bootstrap.sql.path.name} runs and "
            f"{plan.bootstrap.baseline.revision} is stamped, in one transaction, before the revisions."
        )
    if plan.drops_baseline:
        console.print(
            "  [bold red]Past the baseline:[/] after the revisions, every table V1 created is dropped, with the "
            "version table: the database ends empty."
        )
    if plan.nothing_to_do:
        at = ", ".join(plan.current) or "base (no revision)"
        console.print(f"[green]Nothing to do:[/] {plan.target} is already reached; the database is at {at}.")
        return
    verb = "to revert, in the order they are reverted" if down else "pending, in the order they run"
    grid(
        console,
        f"Revisions {verb} ({len(plan.revisions)})",
        [
            _Column("#"),
            _Column("Revision"),
            _Column("Message", flexible=True),
            _Column("Created"),
            _Column("File", flexible=True),
        ],
        (
            [str(number), item.info.revision, item.info.message, (item.info.created or "")[:10], str(item.info.path)]
            for number, item in enumerate(plan.revisions, start=1)
        ),
    )

    if show_sql:
        # Highlighted for a person at a terminal; plain where it is piped or logged, which is
        # also where a long plan would spend most of its time in the lexer for nothing.
        highlight = console.is_terminal
        plain = Text()
        for item in plan.revisions:
            title = f"{'Downgrade' if down else 'SQL'} of {item.info.revision} — {item.info.message} "
            parts: list[Any] = [Text(f"── {title}" + "─" * max(0, console.width - len(title) - 3), style="bold")]
            if item.sql is None:
                parts.append(Text(f"Cannot render offline: {item.sql_problem or ''}", style="yellow"))
            elif highlight:
                from rich.syntax import Syntax

                parts.append(Syntax(item.sql.strip() or "-- (no SQL)", "sql", theme="ansi_dark", word_wrap=True))
            else:
                parts.append(Text(item.sql.strip() or "-- (no SQL)"))
            if highlight:
                console.print(*parts, sep="\n")
                continue
            for part in parts:
                plain.append_text(part)
                plain.append("\n")
        if plain:
            plain.rstrip()
            console.print(plain, soft_wrap=True)

    if down or plan.data_loss:  # going up, only when it drops something that holds data
        _data_loss(plan)
    _rehearsal(plan)
    _lint(plan)
    # Last before the prompt, so they are on screen when the reviewer confirms.
    for warning in plan.warnings:
        console.print(f"[bold yellow]Warning:[/] {warning}")
    console.print(f"Plan fingerprint: {plan.fingerprint[:16]}")


def dry_run_done(kind: ChangeKind, reasons: tuple[str, ...], *, detailed: bool) -> None:
    console = err()
    console.print("Dry run: nothing was changed.")
    if not detailed:
        return
    words = {0: "nothing to do", 2: "the plan changes the database", 3: "the plan is destructive"}[kind.value]
    console.print(f"Exit code {kind.value}: {words}" + (f": {'; '.join(reasons)}." if reasons else "."))


def stakes(plan: MigrationPlan) -> None:
    """Two or three lines right above the confirmation: what is destroyed, the longest blocking lock."""
    console = err()
    if plan.data_loss:
        losses = ", ".join(
            f"{loss.kind} {loss.name} ({loss.rows:,} rows{'' if loss.exact else ', estimated'})"
            for loss in plan.data_loss
        )
        console.print(f"[bold red]Destroys:[/] {losses}")
    elif plan.rehearsal is not None and plan.rehearsal.ok:
        console.print("Destroys: no table or column that holds data.")
    else:
        console.print("[yellow]Destroys: not measured[/] (no rehearsal).")
    blocking = plan.rehearsal.longest_blocking() if plan.rehearsal is not None else None
    if blocking is not None:
        rows = f", {_rows(blocking.size.estimated_rows)} rows" if blocking.size else ""
        rewrite = ", rewriting it" if blocking.rewritten else ""
        console.print(
            f"[bold]Longest blocking lock:[/] {lock_words(blocking.mode)} on {blocking.table}{rows} (blocks "
            f"{blocking.blocks}), about {blocking.seconds:.2f} s in the rehearsal ({blocking.revision}){rewrite}."
        )
    elif plan.rehearsal is not None:
        console.print("Blocks no reads or writes of the tables the database has.")


def _data_loss(plan: MigrationPlan) -> None:
    console = out()
    if plan.rehearsal is None or not plan.rehearsal.ok:
        console.print("[yellow]Data loss not measured:[/] it is read from the rehearsal, which did not complete.")
        return
    if not plan.data_loss:
        console.print("[green]Data loss:[/] the downgrade drops no table or column that holds data.")
        return
    console.print(
        f"[bold red]Data loss:[/] what the {'downgrade' if plan.direction == 'down' else 'upgrade'} drops, and the "
        "rows that hold data in it now"
    )
    grid(
        console,
        None,
        [_Column("Drops", style="red"), _Column("Name", style="red"), _Column("Rows with data", style="red")],
        ([loss.kind, loss.name, f"{loss.rows:,}" + ("" if loss.exact else " (estimate)")] for loss in plan.data_loss),
    )


_DIFF_MARKS = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow")}


_NO_REHEARSAL_WORDS = {  # by NoRehearsal's value (plan.py)
    "requested": "--no-rehearsal was given, so the schema diff, locks and data loss are not measured",
    "saved_plan": "applying a saved plan, which was rehearsed when it was reviewed; what it showed then is "
    "checked to be unchanged",
    "nothing_to_run": "nothing to run",
}


def _rehearsal(plan: MigrationPlan) -> None:
    from rich.markup import escape
    from rich.text import Text

    console = out()
    rehearsal = plan.rehearsal
    if rehearsal is None:
        why = _NO_REHEARSAL_WORDS[plan.rehearsal_skipped.value] if plan.rehearsal_skipped else "skipped"
        console.print(f"[yellow]No rehearsal:[/] {why}.")
        return
    console.print(f"[bold]Rehearsal[/] on {escape(rehearsal.description)}:")
    if rehearsal.failure is not None:
        console.print(
            f"  [bold red]Revision {rehearsal.failure.revision} failed in the rehearsal[/]: "
            f"{escape(rehearsal.failure.message)}"
        )
        if rehearsal.failure.statement:
            console.print(f"  Statement: {escape(rehearsal.failure.statement)}")
    for warning in rehearsal.warnings:
        console.print(f"  [yellow]Warning:[/] {escape(warning)}")
    if rehearsal.diff:
        grid(
            console,
            "Schema diff, measured (+ added, - removed, ~ changed)",
            [
                _Column(""),
                _Column("Kind"),
                _Column("Name", flexible=True),
                _Column("Before", flexible=True),
                _Column("After", flexible=True),
            ],
            (
                [
                    Text(_DIFF_MARKS[change.change][0], style=_DIFF_MARKS[change.change][1]),
                    change.kind,
                    change.name,
                    change.before or "",
                    change.after or "",
                ]
                for change in rehearsal.diff
            ),
        )
    else:
        console.print("  The schema does not change.")

    impact, quiet = rehearsal.impact()
    rows: list[list[Any]] = []
    for index, row in enumerate(impact):
        first = index == 0 or impact[index - 1].revision != row.revision
        rows.append(
            [
                row.revision if first else "",
                row.table,
                Text(lock_words(row.mode), style="red" if row.blocks else ""),
                Text("rewritten", style="red") if row.rewritten else "no",
                _rows(row.size.estimated_rows) if row.size else "new",
                _bytes(row.size.total_bytes) if row.size else "",
                f"{row.seconds:.2f} s" if first else "",
            ]
        )
    if rows:
        grid(
            console,
            "Impact, measured: locks taken and storage rewritten",
            [_Column(c) for c in ("Revision", "Table", "Lock", "Rewritten", "Rows (est.)", "Size", "Took")],
            rows,
        )
    if quiet:
        others = "The other" if rows else "The"
        console.print(
            f"  {others} {len(quiet)} revision(s) lock no table the database has now (they only add new objects); "
            f"{sum(quiet):.2f} s in all."
        )
    rewritten_all = sorted({name for cost in rehearsal.costs for name in cost.rewritten})
    if rewritten_all:
        console.print(f"  Rewritten (tables and indexes): {', '.join(rewritten_all)}")


def _lint(plan: MigrationPlan) -> None:
    lint_result(plan.lint)


SHOWN_ONE_BY_ONE = 3  # a warning found in more revisions than this is shown once, with the revisions listed


def lint_result(lint: LintResult) -> None:
    from rich.markup import escape
    from rich.text import Text

    console = out()
    if not lint.ran:
        console.print(f"[yellow]Lint:[/] {escape(lint.note or 'not run')}")
        return
    if not lint.findings:
        console.print("[green]Lint (Squawk):[/] no findings.")
        return
    warnings: dict[tuple[str, str], list[Any]] = {}
    for finding in lint.findings:
        if finding.level != "error":
            warnings.setdefault((finding.rule, finding.message), []).append(finding)
    rows: list[list[Any]] = []
    # Errors one by one, with Squawk's advice in full; a warning repeated across many revisions
    # once, so two hundred identical lines do not bury the one that matters.
    for finding in lint.findings:
        if finding.level == "error":
            text = finding.message + (f" {finding.advice}" if finding.advice else "")
            rows.append([Text("error", style="bold red"), finding.revision, str(finding.line), finding.rule, text])
            continue
        same = warnings[(finding.rule, finding.message)]
        if len(same) <= SHOWN_ONE_BY_ONE:
            rows.append(
                [Text("warning", style="yellow"), finding.revision, str(finding.line), finding.rule, finding.message]
            )
        elif finding is same[0]:
            revisions = list(dict.fromkeys(f.revision for f in same))
            more = len(revisions) - SHOWN_ONE_BY_ONE
            where = ", ".join(revisions[:SHOWN_ONE_BY_ONE]) + (f" and {more} more" if more > 0 else "")
            rows.append([Text(f"warning, {len(same)} times", style="yellow"), where, "", finding.rule, finding.message])
    grid(
        console,
        f"Lint (Squawk): {len(lint.errors)} errors, {len(lint.findings) - len(lint.errors)} warnings",
        [
            _Column("Level"),
            _Column("Revision", flexible=True),
            _Column("Line"),
            _Column("Rule"),
            _Column("Finding", flexible=True),
        ],
        rows,
    )


def _rows(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f} M"
    if count >= 1_000:
        return f"{count / 1_000:.1f} k"
    return str(count)


def _bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


class RichProgress:
    """Each revision as it runs (on stderr), with its time when it is done.

    One spinner for the whole run, and only where someone is watching a terminal; a log
    gets just the line per revision.
    """

    def __init__(self) -> None:
        self._console = err()
        self._status: Any = self._console.status("Applying…") if self._console.is_terminal else None
        self._spinning = False

    def started(self, revision: RevisionInfo) -> None:
        from rich.text import Text

        if self._status is not None:
            self._status.update(Text(f"Applying {revision.revision} {revision.message}…"))
            if not self._spinning:
                self._status.start()
                self._spinning = True

    def finished(self, revision: RevisionInfo, seconds: float) -> None:
        from rich.text import Text

        if self._status is None:  # a log: the same line without styles, and without Rich's layout pass
            self._console.file.write(f"  ✓ {revision.revision}  {revision.message}  {seconds:.2f} s\n")
            return
        self._console.print(
            Text.assemble(("  ✓ ", "green"), f"{revision.revision}  {revision.message}  ", (f"{seconds:.2f} s", "dim")),
            soft_wrap=True,
        )

    def close(self) -> None:
        if self._spinning:
            self._status.stop()
            self._spinning = False


def migration_done(result: ApplyResult, *, direction: str) -> None:
    console = out()
    if result.done_by_another:
        console.print(
            f"[green]Nothing to do:[/] another run applied this plan while this one waited for the lock; "
            f"{result.database} is at {', '.join(result.to_revisions) or 'base'}. Nothing was applied twice."
        )
        return
    verb = "Downgraded" if direction == "down" else "Upgraded"
    console.print(
        f"[green]{verb}[/] {result.database}: {len(result.applied)} revision(s) in {result.seconds:.2f} s, "
        f"from {', '.join(result.from_revisions) or 'an empty database'} to "
        f"{', '.join(result.to_revisions) or 'base (no revision)'}."
    )


def offline_sql(chunks: list[tuple[RevisionInfo, str]]) -> None:
    for info, sql in chunks:
        sys.stdout.write(f"-- {info.revision}: {info.message}\n{sql.strip()}\n\n")


# -- new ---------------------------------------------------------------------------------


def new_revision(result: NewRevision, *, show_sql: bool) -> None:
    from rich.markup import escape
    from rich.syntax import Syntax
    from rich.text import Text

    console = out()
    if result.compared_with is None:
        console.print("No models to compare (env.py sets no target_metadata): an empty revision, to write by hand.")
    else:
        console.print(f"Compared the models with {escape(result.compared_with)}.")
    flagged = {id(f.operation): f for f in result.findings}
    rows: list[list[str | Text]] = []
    for op in result.operations:
        finding = flagged.get(id(op))
        mark = (
            Text("") if finding is None else Text("!", "bold red") if finding.level == "danger" else Text("?", "yellow")
        )
        type_text = op.type or ""
        if op.kind == "alter_column" and op.existing_type and op.type:
            type_text = f"{op.existing_type} → {op.type}"
        rows.append([mark, op.kind.replace("_", " "), op.table, op.name, type_text])
    if rows:
        grid(
            console,
            f"Detected operations ({len(result.operations)})",
            [_Column(""), _Column("Operation"), _Column("Table"), _Column("Name"), _Column("Type", flexible=True)],
            rows,
        )
    else:
        console.print("Detected operations (0): upgrade() and downgrade() are empty, to be written by hand.")
    if result.counted_on is not None:
        console.print(f"Rows at risk counted on {escape(result.counted_on)} (read-only, rolled back):")
    elif result.not_counted is not None:
        console.print(f"[yellow]Rows at risk not counted:[/] {escape(result.not_counted)}")
    for finding in result.findings:
        colour = "red" if finding.level == "danger" else "yellow"
        count = f" [bold]({escape(finding.rows_on_target)})[/]" if finding.rows_on_target else ""
        console.print(f"  [{colour}]{finding.level}:[/] {escape(finding.message)}{count}")
        if finding.instead:
            console.print(f"      instead: [bold]{escape(finding.instead)}[/]")
    if result.lint is not None:
        lint_result(result.lint)
    if show_sql and result.sql is not None:
        console.print(Syntax(result.sql.strip() or "-- (no SQL)", "sql", theme="ansi_dark", word_wrap=True))
    todo = "fix what is flagged above" if result.findings else "write what it should do" if not rows else "check it"
    marked = (
        f" {result.danger_comments} danger(s) are marked in it with a # DANGER: comment above the operation."
        if result.danger_comments
        else ""
    )
    console.print(
        f"[green]Wrote[/] {escape(str(result.path))} (revision {result.revision}).{marked} Open it, {todo}, "
        "then review and apply it with [bold]hindsight-migrate up[/]."
    )
    if result.strict_failed:
        left = [f"{len(result.dangers)} danger(s)"] if result.dangers else []
        left += [f"{len(result.lint_errors)} lint error(s)"] if result.lint_errors else []
        console.print(
            f"[bold red]--strict: exit 13[/], {' and '.join(left)} left in {escape(str(result.path))}; "
            "the file is written, to be edited (or change the models and run new again)."
        )


# -- status, check, lint, merge ---------------------------------------------------------------


def status(result: Status) -> None:
    from rich.markup import escape

    console = out()
    verdict = " and ".join(result.verdicts) if result.verdicts else "up to date"
    colour = "green" if not result.verdicts else "red" if set(result.verdicts) - {"behind"} else "yellow"
    console.print(f"[bold]Status[/] of {result.database}: [{colour}]{verdict}[/]")
    console.print(f"  Current:  {', '.join(result.current) or 'no revision applied'}")
    console.print(f"  Head(s):  {', '.join(result.heads)}")
    console.print(f"  Pending:  {', '.join(result.pending) or 'none'}")
    if result.unknown:
        console.print(f"  [red]Unknown:[/]  {', '.join(result.unknown)} (in the version table; no file has them)")
    if result.missing:
        console.print(f"  [red]Missing:[/]  {', '.join(result.missing)} (applied; their files are gone from versions/)")
    for edited in result.edited:
        console.print(
            f"  [red]Edited after it was applied:[/] {edited.revision} {escape(edited.path)} "
            f"(SHA-256 then {edited.recorded_sha256[:12]}…, now {edited.file_sha256[:12]}…)"
        )
    if result.unrecorded:
        console.print(
            f"  [dim]No checksum recorded (applied before this tool kept them): {', '.join(result.unrecorded)}[/]"
        )
    console.print(
        f"  V1:       {escape(result.v1_drift) if result.v1_drift else 'as bootstrapped (or not bootstrapped)'}"
    )
    if result.last_apply is not None:
        run = result.last_apply
        console.print(
            f"  Last apply: {run.command} {run.started_at:%Y-%m-%d %H:%M %Z} by {run.os_user}@{run.host}, "
            f"{run.from_revisions} → {run.to_revisions or '?'}, {run.outcome}"
        )


def check_report(report: CheckReport) -> None:
    from rich.markup import escape

    console = out()
    for warning in report.warnings:
        console.print(f"  [yellow]! {warning.kind}:[/] {escape(warning.message)}")
        for detail in warning.details:
            console.print(f"      {escape(detail)}")
    if report.ok:
        console.print(f"[green]check passed[/] for {report.database}: {'; '.join(report.checked)}.")
        return
    console.print(f"[bold red]check found {len(report.problems)} problem(s)[/] ({report.database}):")
    for problem in report.problems:
        console.print(f"  [red]✗ {problem.kind}:[/] {escape(problem.message)}")
        for detail in problem.details:
            console.print(f"      {escape(detail)}")


def lint_report(report: LintReport) -> None:
    console = out()
    console.print(
        f"Linted {len(report.revisions)} revision(s) ({report.range}): {', '.join(report.revisions) or 'none'}"
    )
    lint_result(report.result)


def merged(revision: str, path: Path) -> None:
    out().print(
        f"[green]Wrote[/] merge revision {revision}: {path}. Review it, then apply it with "
        "[bold]hindsight-migrate up[/]."
    )
