"""All terminal output: Rich for people, JSON for scripts. Core code never prints.

Data goes to stdout; progress, the database announcement, prompts and errors go to stderr,
so ``hindsight-migrate history --json | jq`` sees only JSON.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import traceback
from collections.abc import Iterable
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hindsight_migrate.masking import mask_secrets

if TYPE_CHECKING:
    from rich.console import Console

    from hindsight_migrate.bootstrap import BootstrapPlan, BootstrapResult
    from hindsight_migrate.config import Settings
    from hindsight_migrate.errors import HindsightMigrateError
    from hindsight_migrate.history import History


def out() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


# -- shared pieces -------------------------------------------------------------------


def announce_database(settings: Settings) -> None:
    source = settings.database
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
    from rich.table import Table

    console = out()
    console.print(f"[bold]Bootstrap plan[/] for {plan.database}")
    console.print(
        f"  SQL file:  {_relative(plan.sql.path, project_dir)}  "
        f"[dim]({len(plan.sql.statements)} statements, SHA-256 {plan.sql.sha256[:12]}…)[/]"
    )
    console.print(
        f"  Baseline:  {plan.baseline.revision}  {plan.baseline.message}  [dim](stamped in the same transaction)[/]"
    )
    table = Table(title="What it creates (measured in a rolled-back rehearsal)", title_justify="left")
    table.add_column("Kind")
    table.add_column("Name")
    for obj in plan.creates:
        table.add_row(obj.kind, obj.qualified_name)
    console.print(table)
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

_STATE_MARK = {"current": "[bold green]●[/]", "applied": "[green]✓[/]", "pending": "[yellow]○[/]"}


def history(history: History) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = out()
    table = Table(title="Revisions, newest first", title_justify="left")
    show_state = history.database is not None and history.database.reachable
    if show_state:
        table.add_column("", no_wrap=True)
    table.add_column("Revision", no_wrap=True, style="bold")
    table.add_column("Parent(s)", no_wrap=True)
    table.add_column("Message", ratio=1, min_width=20)
    table.add_column("Created", no_wrap=True)
    table.add_column("Marks", no_wrap=True)
    for entry in history.entries:
        info = entry.info
        marks = [
            label
            for flag, label in (
                (info.is_head, "head"),
                (info.is_base, "base"),
                (info.is_branch_point, "branch point"),
                (info.is_merge_point, "merge"),
            )
            if flag
        ]
        marks += [f"label {label}" for label in info.branch_labels]
        if entry.state == "current":
            marks.append("[bold green]current[/]")
        row = [
            info.revision,
            "\n".join(info.parents) or "—",
            escape(info.message),
            (info.created or "")[:10],
            ", ".join(marks),
        ]
        table.add_row(*([_STATE_MARK.get(entry.state or "", "")] if show_state else []), *row)
    console.print(table)
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
        if state.v1_drift:
            console.print(f"[yellow]Warning:[/] {state.v1_drift}")


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
