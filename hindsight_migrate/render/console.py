"""One console per stream: what people read on stdout (or stderr while stdout carries data), and stderr.

Both consoles escape the control characters of everything they write (:func:`_visible_segments`), the
one place where every view's output becomes text: nothing from the project reaches a terminal raw.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.markup import escape
from rich.padding import Padding
from rich.panel import Panel
from rich.segment import Segment
from rich.text import Text

from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.untrusted import has_hidden, visible

if TYPE_CHECKING:
    from rich.syntax import Syntax

    from hindsight_migrate.config import Settings
    from hindsight_migrate.errors import HindsightMigrateError


def sql_block(sql: str) -> Syntax:
    """The project's SQL for a terminal, highlighted, its control characters escaped ("-- (no SQL)" when empty)."""
    # lazy: rich.syntax brings Pygments (~20 ms), which --help, a cached history --offline and every piped
    # plan never need (a command that loads Alembic gets it anyway: Mako imports it).
    from rich.syntax import Syntax

    return Syntax(visible(sql.strip()) or "-- (no SQL)", "sql", theme="ansi_dark", word_wrap=True)


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
    stream = sys.stderr if stderr else sys.stdout
    made_for = (id(stream), *(os.environ.get(name) for name in _CONSOLE_ENVIRONMENT))
    kept = _CONSOLES.get(stderr)
    if kept is not None and kept[0] == made_for:
        return kept[1]

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # Rich exits 1 here, which the exit-code table keeps for the tool's own bugs: the
            # command decides instead (0 once its change committed, 7 before anything changed).
            self.quiet = True
            raise BrokenPipeError

        def _render_buffer(self, buffer: Iterable[Segment]) -> str:
            # Where Rich turns segments into the text it writes (print, a status line, a capture).
            return super()._render_buffer(_visible_segments(buffer))

    console = _Console(highlight=False, stderr=stderr)
    _CONSOLES[stderr] = (made_for, console)
    return console


def _visible_segments(buffer: Iterable[Segment]) -> Iterator[Segment]:
    """The segments with their text's control characters escaped (:func:`~hindsight_migrate.untrusted.visible`).

    The chokepoint behind the views' own escaping, so that no view can forget it: a revision message, a file
    name, SQL, what the database said, in a table, a panel or a markup string. Only content is touched:
    Rich's own escapes are added later, from the styles, and its cursor moves (a spinner's) are control
    segments. Rich strips a few control characters itself (BEL, backspace, CR), not ESC, C1 controls or
    bidi overrides. Text escaped here was measured raw, so the views escape what they show first: a table's
    widths and a line's wrapping are then measured on what is written.
    """

    for segment in buffer:
        if segment.control is None and has_hidden(segment.text):
            yield Segment(visible(segment.text), segment.style)
        else:
            yield segment


def safe_markup(value: object) -> str:
    """Text from the project for a markup string: its control characters made visible, then Rich's markup
    escaped (a ``[bold]`` in a revision message is shown, not obeyed)."""

    return escape(visible(str(value)))


def announce_database(settings: Settings) -> None:
    source = settings.database
    if source.unusable is not None:
        return  # opening it fails next, with the words that say why
    if source.is_embedded:
        err().print(
            f"[bold]Database:[/] embedded PostgreSQL in {safe_markup(source.embedded_data_dir)} "
            "[dim](no --url, DATABASE_URL or sqlalchemy.url is set, and env.py names no database; the server "
            "starts on demand and stops when this command exits)[/]"
        )
    else:
        # The URL is shown with the project's driver; said once that the tool's connection is psycopg 3's.
        driver = "; connected with psycopg 3" if source.other_driver else ""
        if source.project_driver == "psycopg2":
            # postgres/driver_semantics: after a COMMIT, statements run outside a transaction, as under psycopg2.
            driver = "; connected with psycopg 3, revisions run with psycopg2's transaction behaviour"
        err().print(
            f"[bold]Database:[/] {safe_markup(source.masked_url)} [dim](from {safe_markup(source.origin)}{driver})[/]"
        )


def error(problem: HindsightMigrateError) -> None:
    """The error panel. Its message and sections quote the project (an exception's message, a file name,
    what the database said): secrets masked first, then control characters made visible."""

    parts: list[Any] = [Text(visible(mask_secrets(problem.message)))]
    for section in problem.sections:
        parts.append(Text(f"\n{visible(section.title)}", style="bold"))
        parts.append(Padding(Text(visible(mask_secrets(section.body))), (0, 0, 0, 2)))
    err().print(
        Panel(
            Group(*parts),
            title=f"[bold red]{safe_markup(problem.title)}[/]",
            subtitle=f"exit code {int(problem.exit_code)}",
            title_align="left",
            border_style="red",
        )
    )


def internal_error(exc: BaseException) -> None:
    err().print(
        f"[bold red]Internal error:[/] {safe_markup(mask_secrets(f'{type(exc).__name__}: {exc}'))}\n"
        "This is a bug in hindsight-migrate. Run again with --debug for the traceback and "
        "report it."
    )


def debug_traceback(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    sys.stderr.write(visible(mask_secrets(text)))  # the frames quote the project's source lines and messages
