"""Split a hand-written SQL file (like V1) into statements, the way psql would.

Running the statements one by one lets a failure name the statement and its line, and
lets bootstrap refuse a file that would end its one transaction (``COMMIT``) before any
of it runs. The scanner understands what can hide a semicolon: quoted strings
(``'...'``, ``E'...'``), quoted identifiers, dollar-quoted bodies (``$$...$$``,
``$fn$...$fn$``) and comments (``--`` and nested ``/* */``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_TRANSACTION_CONTROL = re.compile(
    r"^(BEGIN|COMMIT|END|ROLLBACK|ABORT|START\s+TRANSACTION|SAVEPOINT|RELEASE|"
    r"PREPARE\s+TRANSACTION|COMMIT\s+PREPARED|ROLLBACK\s+PREPARED)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Statement:
    text: str  # without the trailing semicolon
    line: int  # 1-based line where the statement starts

    @property
    def first_line(self) -> str:
        return self.text.strip().splitlines()[0] if self.text.strip() else ""


class ScriptSyntaxError(ValueError):
    """The file cannot be split: an unterminated string, comment or dollar quote."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


def split_statements(sql: str) -> list[Statement]:
    """The statements of ``sql``, in order, without empty ones and without comments-only ones."""
    statements: list[Statement] = []
    start = 0
    i = 0
    length = len(sql)
    has_code = False  # did the current statement have anything but comments and blanks?
    while i < length:
        char = sql[i]
        if char == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = length if end == -1 else end + 1
            continue
        if char == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
            continue
        if char == ";":
            if has_code:
                statements.append(_statement(sql, start, i))
            start = i + 1
            has_code = False
            i += 1
            continue
        if char == "\\" and _at_line_start(sql, i) and not has_code:
            raise ScriptSyntaxError(
                "psql meta-commands (lines starting with a backslash) cannot run outside psql",
                _line_of(sql, i),
            )
        if not char.isspace():
            has_code = True
        if char == "'":
            escaped = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _is_word(sql[i - 2]))
            i = _skip_quoted(sql, i, "'", backslash_escapes=escaped)
            continue
        if char == '"':
            i = _skip_quoted(sql, i, '"', backslash_escapes=False)
            continue
        if char == "$" and (i == 0 or not _is_word(sql[i - 1])):
            tag = _DOLLAR_TAG.match(sql, i)
            if tag:
                end = sql.find(tag.group(), tag.end())
                if end == -1:
                    raise ScriptSyntaxError(f"unterminated dollar quote {tag.group()}", _line_of(sql, i))
                i = end + len(tag.group())
                continue
        i += 1
    if has_code:
        statements.append(_statement(sql, start, length))
    return statements


def is_transaction_control(statement: Statement) -> bool:
    """BEGIN, COMMIT, ROLLBACK and friends: they would end the caller's one transaction."""
    return bool(_TRANSACTION_CONTROL.match(_strip_leading_comments(statement.text)))


def _statement(sql: str, start: int, end: int) -> Statement:
    raw = sql[start:end]
    leading = len(raw) - len(raw.lstrip())
    return Statement(text=raw.strip(), line=_line_of(sql, start + leading))


def _strip_leading_comments(text: str) -> str:
    while True:
        text = text.lstrip()
        if text.startswith("--"):
            newline = text.find("\n")
            text = "" if newline == -1 else text[newline + 1 :]
        elif text.startswith("/*"):
            text = text[_skip_block_comment(text, 0) :]
        else:
            return text


def _skip_block_comment(sql: str, i: int) -> int:
    depth = 0
    start = i
    while i < len(sql):
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise ScriptSyntaxError("unterminated /* comment", _line_of(sql, start))


def _skip_quoted(sql: str, i: int, quote: str, *, backslash_escapes: bool) -> int:
    start = i
    i += 1
    while i < len(sql):
        char = sql[i]
        if backslash_escapes and char == "\\":
            i += 2
            continue
        if char == quote:
            if sql.startswith(quote * 2, i):  # doubled quote is an escaped quote
                i += 2
                continue
            return i + 1
        i += 1
    kind = "string" if quote == "'" else "quoted identifier"
    raise ScriptSyntaxError(f"unterminated {kind}", _line_of(sql, start))


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _at_line_start(sql: str, i: int) -> bool:
    line_start = sql.rfind("\n", 0, i) + 1
    return sql[line_start:i].strip() == ""


def _line_of(sql: str, index: int) -> int:
    return sql.count("\n", 0, index) + 1


_KIND_SKIPPED_WORDS = frozenset({"UNIQUE", "OR", "REPLACE", "CONCURRENTLY", "IF", "NOT", "EXISTS", "TEMPORARY", "TEMP"})
_KIND_VERBS = frozenset({"CREATE", "ALTER", "DROP", "COMMENT"})


def statement_kinds(sql: str) -> dict[str, int]:
    """How many statements of each kind (CREATE TABLE, ALTER TABLE, UPDATE, ...) a script runs, in order
    of first appearance; the version table's bookkeeping and transaction control are not counted."""
    kinds: dict[str, int] = {}
    try:
        statements = split_statements(sql)
    except ScriptSyntaxError:
        return {}
    for statement in statements:
        if is_transaction_control(statement) or "alembic_version" in statement.text:
            continue
        words = [w.upper() for w in re.findall(r"[A-Za-z_]+", _strip_leading_comments(statement.text))[:6]]
        if not words:
            continue
        if words[0] in _KIND_VERBS:
            rest = [w for w in words[1:] if w not in _KIND_SKIPPED_WORDS]
            kind = f"{words[0]} {rest[0]}" if rest else words[0]
        else:
            kind = words[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds
