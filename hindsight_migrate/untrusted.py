"""Text from the project, made safe to show: its control characters escaped, visibly.

A revision message, a file name, a line of SQL, what the database said, an exception's
message: any of them may hold terminal control characters. Written raw, ``ESC [1A`` (cursor
up) and ``ESC [2K`` (erase line) let a hostile revision erase a line of the plan a reviewer
reads, ``ESC [8m`` hides text, a bare CR or a backspace writes over it, and Unicode's bidi
overrides ("Trojan Source") show a line in another order than it has. Rich strips only BEL,
backspace, VT, FF and CR, not ESC. So everything the project says goes through
:func:`visible` before it is shown: each such character becomes its Python escape
(``ESC`` → ``\\x1b``), which a reviewer can read and no terminal obeys. A literal backslash
stays as it is: the result is for reading, not for parsing back.

Plain: no Rich, no SQLAlchemy, no Alembic (``history --offline`` imports it).
"""

from __future__ import annotations

import re

__all__ = ["has_hidden", "visible"]

# What is escaped, by code point:
#   U+0000-U+001F  C0 controls (ESC, CR, BEL, backspace, ...); \n and \t only when not multiline
#   U+007F         DEL
#   U+0080-U+009F  C1 controls: U+009B is CSI, which some terminals obey like ESC [
#   U+061C, U+200E, U+200F                      bidi marks (ALM, LRM, RLM)
#   U+202A-U+202E, U+2066-U+2069                bidi embeddings, overrides and isolates (Trojan Source)
#   U+2028, U+2029                              line and paragraph separators (a new line to some viewers)
#   U+D800-U+DFFF  lone surrogates (a file name decoded with surrogateescape): no stream can encode them
_HIDDEN = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff"
_HIDDEN_IN_LINES = re.compile(f"[{_HIDDEN}]")  # \n (0x0a) and \t (0x09) are kept
_HIDDEN_IN_ONE_LINE = re.compile(rf"[{_HIDDEN}\t\n]")

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}  # as Python's repr() writes them


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    point = ord(char)
    return f"\\x{point:02x}" if point < 0x100 else f"\\u{point:04x}"


def visible(text: str, *, multiline: bool = True) -> str:
    """``text`` with every control character written as its escape: ESC as ``\\x1b``, CR as ``\\r``, U+009B as
    ``\\x9b``, U+202E as ``\\u202e``. ``\\n`` and ``\\t`` are kept when ``multiline`` (SQL, a traceback, a
    table cell of several lines), escaped too when not (a one-line label, an SQL ``--`` comment).

    Printable text comes back unchanged, the same string, so it costs one regex scan (the SQL of a
    288-revision plan included).
    """
    pattern = _HIDDEN_IN_LINES if multiline else _HIDDEN_IN_ONE_LINE
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)


def has_hidden(text: str, *, multiline: bool = True) -> bool:
    """Whether :func:`visible` would change ``text``."""
    return (_HIDDEN_IN_LINES if multiline else _HIDDEN_IN_ONE_LINE).search(text) is not None
