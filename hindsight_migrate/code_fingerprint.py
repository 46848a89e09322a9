"""A revision file's code, fingerprinted so that what cannot change behaviour does not count as an edit.

The file's SHA-256 changes with a comment, a docstring or a formatter's pass (quotes, line breaks,
trailing commas), none of which changes what the revision runs: ``status`` used to call such a file
tampered (exit 12) and ``check`` failed on it. The fingerprint is taken of the parsed module instead
(Python's ``ast``, no import of the file, no Alembic), without its docstrings and without positions:
the same code gives the same fingerprint however it is laid out, and any change to a name, a value
or a statement gives another.
"""

from __future__ import annotations

import ast
import hashlib

# The scheme is part of the value, so that a later way of fingerprinting is never compared with this one.
SCHEME = "ast1"


def code_fingerprint(source: str) -> str | None:
    """``ast1:<sha256>`` of the module's code; None when the text is not Python this interpreter parses."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    return f"{SCHEME}:{hashlib.sha256(_canonical(tree).encode('utf-8')).hexdigest()}"


_SCOPES = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _canonical(node: object) -> str:
    """The node as text, field by field, docstrings left out.

    Not ``ast.dump``: its output changed between Python versions (3.13 leaves out empty fields, 3.12
    added ``type_params``), and a fingerprint recorded under one must match under the next. Fields that
    are None or empty are left out here whatever the version, and so is ``Constant.kind`` (the ``u``
    of ``u"…"``, which a formatter may drop).
    """
    if isinstance(node, ast.AST):
        parts = []
        for name, value in ast.iter_fields(node):
            if name == "kind" and isinstance(node, ast.Constant):
                continue
            if name == "body" and isinstance(node, _SCOPES) and isinstance(value, list):
                value = _without_docstring(value)
            if value is None or value == []:
                continue
            parts.append(f"{name}={_canonical(value)}")
        return f"{type(node).__name__}({','.join(parts)})"
    if isinstance(node, list):
        return "[" + ",".join(_canonical(item) for item in node) + "]"
    return repr(node)


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return body[1:]
    return body
