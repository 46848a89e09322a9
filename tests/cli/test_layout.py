"""The package's folders are its architecture, and each rule is one a grep can check.

Typer only in ``cli/``, Rich only in ``render/``, Alembic only in ``alembic_api/``, and SQL run only from
``postgres/`` (the catalog's queries, the tool's records, the guard on a rehearsal's connection). A new
module that breaks one of these fails here, naming the file and the line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "hindsight_migrate"

# (what, where it may appear, the pattern of a line that uses it)
RULES = [
    ("Typer", "cli", re.compile(r"^\s*(import typer|from typer\b)")),
    ("Rich", "render", re.compile(r"^\s*(import rich|from rich\b)")),
    ("Alembic", "alembic_api", re.compile(r"^\s*(import alembic\b|from alembic\b)")),
    (
        "SQL run on a connection",
        "postgres",
        re.compile(r"exec_driver_sql\(|^\s*from sqlalchemy import .*\btext\b|^\s*import psycopg\b|\.execute\(\s*f?\""),
    ),
]
# The handoff forwards env.py's own calls on the engine it is lent (its exec_driver_sql is env.py's SQL).
FORWARDS = {Path("alembic_api/handoff.py")}


def source_lines() -> list[tuple[Path, int, str]]:
    lines = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            lines.append((path.relative_to(PACKAGE), number, line))
    return lines


@pytest.mark.parametrize(("what", "folder", "pattern"), RULES, ids=[rule[0] for rule in RULES])
def test_each_library_is_used_from_its_own_folder_only(what: str, folder: str, pattern: re.Pattern[str]) -> None:
    outside = [
        f"{path}:{number}: {line.strip()}"
        for path, number, line in source_lines()
        if pattern.search(line) and path.parts[0] != folder and path not in FORWARDS
    ]
    assert not outside, f"{what} outside {folder}/:\n" + "\n".join(outside)


def test_the_folders_say_what_is_where() -> None:
    folders = {path.name for path in PACKAGE.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    assert {"cli", "config", "alembic_api", "postgres", "review", "reports", "authoring", "render"} <= folders, folders


def _module_name(path: Path) -> str:
    parts = ["hindsight_migrate", *path.with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_at_load(path: Path, modules: set[str]) -> set[str]:
    """The package's modules a module imports when it is loaded (top level, not under TYPE_CHECKING), with
    the packages those imports load first."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hindsight_migrate"):
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("hindsight_migrate")}
    with_parents = {".".join(name.split(".")[:end]) for name in found for end in range(2, name.count(".") + 2)}
    return with_parents & modules


def test_no_module_imports_one_that_imports_it_back() -> None:
    """No import circle: every part can be loaded, built and tested on its own."""
    paths = {_module_name(path.relative_to(PACKAGE)): path for path in PACKAGE.rglob("*.py")}
    modules = set(paths)
    graph = {
        name: {other for other in _imports_at_load(path, modules) if other != name and not name.startswith(other + ".")}
        for name, path in paths.items()
    }
    circles = []
    for start in sorted(graph):
        # A depth-first walk from each module: a path that comes back to it is a circle.
        stack: list[tuple[str, tuple[str, ...]]] = [(start, (start,))]
        seen: set[str] = set()
        while stack:
            name, trail = stack.pop()
            for other in sorted(graph[name]):
                if other == start:
                    circles.append(" -> ".join((*trail, start)))
                elif other not in seen:
                    seen.add(other)
                    stack.append((other, (*trail, other)))
    assert not circles, "import circles:\n" + "\n".join(sorted(set(circles)))


# The path of `--help` and `history --offline`, which must not load SQLAlchemy or Alembic (tests/cli/test_cli.py
# and tests/reports/test_history_cache.py check that): these modules import the database layer where a command
# first needs it. Every other module is loaded only once a command needs the database, and imports at its top.
LIGHT_PATH = ("cli/", "render/", "config/", "alembic_api/project.py", "alembic_api/translate.py", "reports/history.py")


def test_outside_the_light_path_every_import_is_at_the_top_unless_it_says_why_not() -> None:
    local = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(LIGHT_PATH):
            continue
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for function in ast.walk(ast.parse(source)):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                if not any("# lazy:" in line for line in lines[node.lineno - 2 : node.lineno]):
                    local.append(f"{relative}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not local, "function-local imports without a '# lazy:' reason:\n" + "\n".join(local)
