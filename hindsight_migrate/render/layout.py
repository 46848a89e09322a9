"""Tables and small words shared by every view: never cut a cell where the reader cannot widen the window."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment, Segments
from rich.text import Text

from hindsight_migrate.untrusted import has_hidden, visible
from hindsight_migrate.words import human_bytes, human_rows

if TYPE_CHECKING:
    from rich.console import Console


@dataclasses.dataclass(frozen=True)
class Column:
    title: str
    style: str = ""
    flexible: bool = False  # takes the width the others leave (up to its content), its text folded to fit
    shrink: int | None = None  # narrowest it may be cut to (with …) on a narrow terminal; None: never cut


def _boxed_table(console: Console, columns: list[Column], rows: list[list[str | Text]]) -> Segments:
    """Rows drawn in the box of Rich's default ``Table``, without its layout engine.

    ``Table`` measures and renders every cell as a renderable of its own, which takes about
    half a second for a thousand revisions. Here each cell is measured once and the table
    becomes one run of segments, which Rich writes out in a few milliseconds. Flexible
    columns get the width the others leave (up to their content), their text folded to
    fit. The others keep their lines as they are, cut with … only when the terminal is too
    narrow for them. Plain-string cells are the fast path; a ``Text`` cell keeps its styles.
    Every cell's control characters are made visible before it is measured (:func:`_cell_lines`).
    """

    cells = [[_cell_lines(cell) for cell in row] for row in rows]
    widths = [
        max([cell_len(column.title)] + [size for row in cells for _, size in row[index]])
        for index, column in enumerate(columns)
    ]
    flexible = {i for i, column in enumerate(columns) if column.flexible}
    frame = 3 * len(columns) + 1  # "│ " before each cell, " " after it, and the closing "│"
    if flexible and console.is_terminal:
        # Piped or logged, every cell keeps its content's width: a row is one line, however long (a CI log
        # can be read wide; a cell folded over five lines cannot be read at all).
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
    if console.is_terminal and sum(widths) + frame > console.width:
        # Still wider than the terminal, which would fold every line in two: one block per row instead.
        return _stacked(console, columns, rows)

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


def _stacked(console: Console, columns: list[Column], rows: list[list[str | Text]]) -> Segments:
    """Each row as a block of "Title: value" lines, for a terminal too narrow for the table; nothing is cut."""

    label_width = max(len(column.title) for column in columns) + 2
    segments: list[Segment] = []
    for row in rows:
        segments.append(Segment("─" * min(console.width, 40) + "\n", console.get_style("dim")))
        for column, cell in zip(columns, row, strict=True):
            value = visible_text(cell) if isinstance(cell, Text) else Text(visible(cell))
            if not value.plain.strip():
                continue
            label = Text(f"{column.title or '·'}:".ljust(label_width), style="bold")
            for number, line in enumerate(value.wrap(console, max(console.width - label_width, 20), overflow="fold")):
                segments += list((label if number == 0 else Text(" " * label_width)).render(console))
                segments += list(line.render(console))
                segments.append(Segment("\n"))
    return Segments(segments)


def grid(console: Console, title: str | None, columns: list[Column], rows: Iterable[list[str | Text]]) -> None:
    """A titled table (see :func:`_boxed_table`), printed."""

    if title:
        console.print(Text(visible(title), style="table.title"))
    # crop=False: a row wider than the console (never on a terminal, see above) is written whole.
    console.print(_boxed_table(console, columns, list(rows)), crop=False)


def hanging(console: Console, label: Text, body: Text) -> None:
    """``label`` then ``body``, a long body wrapped under itself (a hanging indent), so a list of labelled
    items stays a column to scan at any width. Not a table: nothing is cut."""
    indent = cell_len(label.plain)
    lines = body.wrap(console, max(console.width - indent, 30), overflow="fold")
    for number, line in enumerate(lines):
        line.rstrip()  # in place: a wrapped line keeps no trailing space
        console.print(Text.assemble(label if number == 0 else Text(" " * indent), line), soft_wrap=True)


def _cell_lines(cell: str | Text) -> list[tuple[str | Text, int]]:
    """A cell's lines, each with its width in cells, measured on what is written: control characters made
    visible (a raw ESC measures 0 cells and would shift the border), tabs expanded as Rich's ``Text`` does."""

    if isinstance(cell, str):
        cell = visible(cell)
        if "\t" in cell:
            cell = cell.expandtabs(8)
        return [(line, cell_len(line)) for line in cell.split("\n")]
    return [(line, cell_len(line.plain)) for line in visible_text(cell).split("\n")]


def visible_text(text: Text) -> Text:
    """A ``Text`` with its control characters made visible (see :mod:`hindsight_migrate.untrusted`), its styles
    kept: each run of one set of styles is escaped apart. The same object when there is nothing to escape."""

    if not has_hidden(text.plain):
        return text
    bounds = sorted({offset for span in text.spans for offset in (span.start, span.end)})
    result = text.blank_copy()
    for piece in text.divide(bounds):
        escaped = Text(visible(piece.plain), end="")
        for span in piece.spans:  # each covers the whole piece: the text was divided at every span's ends
            escaped.stylize(span.style)
        result.append_text(escaped)
    return result


def _cut(line: str | Text, width: int) -> str | Text:
    """A line too wide for its column, cut with … (a ``Text`` keeps its styles)."""
    if isinstance(line, str):
        return _fit(line, width)
    line = line.copy()
    line.truncate(width, overflow="ellipsis", pad=True)
    return line


def _fit(line: str, width: int) -> str:
    """``line`` padded, or cut with …, to exactly ``width`` cells."""

    if cell_len(line) <= width:
        return set_cell_size(line, width)
    return set_cell_size(line, width - 1) + "…" if width > 0 else ""


def count_by_kind(kinds: Iterable[str]) -> str:
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {plural(kind, n)}" for kind, n in counts.items())


def plural(word: str, count: int) -> str:
    if count == 1:
        return word
    return word + ("es" if word.endswith(("x", "s")) else "s")


def relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


__all__ = [
    "Column",
    "count_by_kind",
    "grid",
    "hanging",
    "human_bytes",
    "human_rows",
    "plural",
    "relative",
    "visible_text",
]
