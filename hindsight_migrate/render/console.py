"""One console per stream: what people read on stdout (or stderr while stdout carries data), and stderr."""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from hindsight_migrate.masking import mask_secrets

if TYPE_CHECKING:
    from rich.console import Console

    from hindsight_migrate.config import Settings
    from hindsight_migrate.errors import HindsightMigrateError


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
    """What people read: stdout, or stderr while stdout carries data."""
    return _console(stderr=_HUMAN_ON_STDERR[0])


def err() -> Console:
    """Progress, the database announcement, prompts and errors."""
    return _console(stderr=True)


_CONSOLES: dict[bool, tuple[tuple[object, ...], Console]] = {}  # by stderr: (what it was made for, console)
# Rich reads these when a console is made (width, colours): a console is made again when they change.
_CONSOLE_ENVIRONMENT = ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TERM", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def _console(*, stderr: bool) -> Console:
    """One console per stream, kept while the stream and the environment Rich reads stay the same (a test
    runner swaps sys.stdout between commands)."""
    import os

    stream = sys.stderr if stderr else sys.stdout
    made_for = (id(stream), *(os.environ.get(name) for name in _CONSOLE_ENVIRONMENT))
    kept = _CONSOLES.get(stderr)
    if kept is not None and kept[0] == made_for:
        return kept[1]
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # Rich exits 1 here, which the exit-code table keeps for the tool's own bugs: the
            # command decides instead (0 once its change committed, 7 before anything changed).
            self.quiet = True
            raise BrokenPipeError

    console = _Console(highlight=False, stderr=stderr)
    _CONSOLES[stderr] = (made_for, console)
    return console


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
