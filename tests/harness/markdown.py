"""Markdown documents (pull-request comments) as a reader sees them: parsed with markdown-it, as GitHub would."""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token


def _pipes(row: str) -> int:
    """The cell separators of a table row: pipes not escaped by a backslash."""
    count, backslashes = 0, 0
    for char in row:
        if char == "|" and backslashes % 2 == 0:
            count += 1
        backslashes = backslashes + 1 if char == "\\" else 0
    return count


def inline_text(token: Token) -> str:
    """What a reader sees of an inline token: text and code, with <br> and line breaks as newlines."""
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak") or (child.type == "html_inline" and child.content == "<br>"):
            parts.append("\n")
    return "".join(parts)


def pr_comment(document: str) -> list[Token]:
    """The token stream of a markdown document, checked for what every comment must be."""
    tokens = MarkdownIt("commonmark").enable("table").parse(document)
    assert tokens and tokens[0].type == "heading_open", document[:200]
    opened = [t for t in tokens if t.type == "html_block" and t.content.startswith("<details><summary>")]
    closed = [t for t in tokens if t.type == "html_block" and t.content.strip() == "</details>"]
    assert len(opened) == len(closed), "a <details> block is not closed"
    for token in tokens:
        if token.type == "fence":
            assert token.info == "sql", token.info
        if token.type == "html_inline":
            assert token.content == "<br>", f"HTML from the data went through: {token.content}"
        if token.type == "html_block":
            assert re.fullmatch(
                r"(<details><summary>[^<]*</summary>|</details>|<!-- hindsight-migrate \w+ -->)\n?", token.content
            ), token.content
        if token.type == "table_open":
            assert token.map is not None
            rows = document.splitlines()[token.map[0] : token.map[1]]
            assert len({_pipes(row) for row in rows}) == 1, "\n".join(rows)
    return tokens


def summary_texts(tokens: list[Token]) -> list[str]:
    """The visible text before the first <details>: what the reviewer reads without a click."""
    first = next((i for i, t in enumerate(tokens) if t.type == "html_block" and "<details>" in t.content), len(tokens))
    return [inline_text(t) for t in tokens[:first] if t.type == "inline"]


def tables(tokens: list[Token]) -> list[list[list[str]]]:
    """Every table's rows (the header first), each cell as the reader sees it."""
    found: list[list[list[str]]] = []
    row: list[str] = []
    for index, token in enumerate(tokens):
        if token.type == "table_open":
            found.append([])
        elif token.type == "tr_open":
            row = []
        elif token.type in ("th_open", "td_open"):
            row.append(inline_text(tokens[index + 1]))
        elif token.type == "tr_close":
            found[-1].append(row)
    return found


def fences(tokens: list[Token]) -> list[str]:
    return [t.content for t in tokens if t.type == "fence"]
