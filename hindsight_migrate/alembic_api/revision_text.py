"""A revision file's graph facts read from its text, for files that importing could not change.

Alembic learns a revision's id, parents, labels and message by importing its file. For the
file ``alembic revision`` writes — a docstring, imports of Alembic and SQLAlchemy, literal
assignments and plain functions — importing it can do nothing but bind those literals, so
reading them from the syntax tree gives the same facts without executing anything (a cold
``history`` of 1,000 revisions: ~0.2 s of imports down to ~0.05 s of parsing). A file with
anything else at its top level (a call, a condition, a decorator, an import of the project's
own code, a computed value) returns None: the caller then lets Alembic import every file as it
always did, so whatever that import would do or raise still happens, exactly as before.
"""

from __future__ import annotations

import ast
import builtins
import importlib
from pathlib import Path
from types import ModuleType

# Packages a generated revision imports; importing them runs no project code. Anything else
# (the project's models, a helper module) may fail or act on import: such a file is imported.
_KNOWN_PACKAGES = frozenset({"__future__", "alembic", "sqlalchemy", "typing", "typing_extensions", "collections"})
_GRAPH_NAMES = ("revision", "down_revision", "branch_labels", "depends_on")


def module_from_text(path: Path) -> ModuleType | None:
    """A module holding the docstring and the literal assignments of ``path``; None if it must be imported."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None  # Alembic's import reports it in its own words
    bound = set(dir(builtins))
    postponed = False  # `from __future__ import annotations`: annotations are never evaluated
    values: dict[str, object] = {}
    body = tree.body
    doc: str | None = None
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        if not isinstance(body[0].value.value, str):
            return None
        doc = body[0].value.value
        body = body[1:]
    for statement in body:
        if isinstance(statement, ast.ImportFrom):
            if statement.level or not _importable(statement):
                return None
            postponed = postponed or (
                statement.module == "__future__" and any(a.name == "annotations" for a in statement.names)
            )
            bound.update(alias.asname or alias.name for alias in statement.names)
        elif isinstance(statement, ast.Import):
            if not all(_known(alias.name) and _module(alias.name) is not None for alias in statement.names):
                return None
            bound.update(alias.asname or alias.name.partition(".")[0] for alias in statement.names)
        elif isinstance(statement, (ast.Assign, ast.AnnAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            if statement.value is None or not all(isinstance(t, ast.Name) for t in targets):
                return None
            if isinstance(statement, ast.AnnAssign) and not postponed and not _names_bound(statement.annotation, bound):
                return None
            try:
                value = ast.literal_eval(statement.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                return None
            for target in targets:
                assert isinstance(target, ast.Name)
                values[target.id] = value
                bound.add(target.id)
        elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not _plain_function(statement, bound, postponed):
                return None
            bound.add(statement.name)
        elif isinstance(statement, ast.Pass):
            continue
        else:
            return None
    if not isinstance(values.get("revision"), str) or "down_revision" not in values:
        return None  # Alembic's import finds the id (or its absence) in its own way
    module = ModuleType(path.stem, doc)
    for name in _GRAPH_NAMES:
        if name in values:
            setattr(module, name, values[name])
    return module


def _known(name: str) -> bool:
    return name.partition(".")[0] in _KNOWN_PACKAGES


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except Exception:  # an import that fails is Alembic's to report, from the file's own import
        return None


def _importable(statement: ast.ImportFrom) -> bool:
    """``from M import a, b``: M is a known package and each name is there (an attribute or a submodule)."""
    if statement.module is None or not _known(statement.module):
        return False
    if statement.module == "__future__":
        return True
    module = _module(statement.module)
    if module is None:
        return False
    for alias in statement.names:
        if alias.name == "*":
            return False
        if not hasattr(module, alias.name) and _module(f"{statement.module}.{alias.name}") is None:
            return False
    return True


def _names_bound(expression: ast.expr, bound: set[str]) -> bool:
    """An annotation evaluated at import: made only of names already bound, their attributes and subscripts."""
    for node in ast.walk(expression):
        if isinstance(node, ast.Name):
            if node.id not in bound:
                return False
        elif not isinstance(
            node, (ast.Attribute, ast.Subscript, ast.Tuple, ast.List, ast.Constant, ast.BinOp, ast.BitOr, ast.Load)
        ):
            return False
    return True


def _plain_function(function: ast.FunctionDef | ast.AsyncFunctionDef, bound: set[str], postponed: bool) -> bool:
    """A def whose creation runs nothing: no decorator, literal defaults, annotations that evaluate."""
    if function.decorator_list:
        return False
    arguments = function.args
    for default in [*arguments.defaults, *(d for d in arguments.kw_defaults if d is not None)]:
        try:
            ast.literal_eval(default)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
    if postponed:
        return True
    annotations = [
        argument.annotation
        for argument in [
            *arguments.posonlyargs,
            *arguments.args,
            *arguments.kwonlyargs,
            *(a for a in (arguments.vararg, arguments.kwarg) if a is not None),
        ]
        if argument.annotation is not None
    ]
    if function.returns is not None:
        annotations.append(function.returns)
    return all(_names_bound(annotation, bound) for annotation in annotations)
