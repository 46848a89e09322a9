"""Lint the SQL of revisions with Squawk, the PostgreSQL migration linter.

``squawk-cli`` ships the real Squawk binary; its JSON reporter gives one finding per rule
and statement. Severity is the project's: rules named in ``lint_error_rules`` are errors
(they block ``up`` unless ``--allow-lint``), rules in ``lint_ignore_rules`` are not run,
and everything else is a warning — except what Squawk itself calls an error.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hindsight_migrate.config import ToolSettings

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class LintFinding:
    revision: str
    rule: str
    level: str  # ERROR or WARNING
    message: str
    advice: str | None
    line: int  # 1-based, in the revision's SQL
    statement: str


@dataclass(frozen=True)
class LintResult:
    findings: tuple[LintFinding, ...]
    ran: bool  # False when Squawk is not installed: say so, never pretend it passed
    note: str | None = None

    @property
    def errors(self) -> tuple[LintFinding, ...]:
        return tuple(f for f in self.findings if f.level == ERROR)


def squawk_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "squawk"
    return str(beside_python) if beside_python.exists() else shutil.which("squawk")


def lint_sql(sql_by_revision: dict[str, str], settings: ToolSettings) -> LintResult:
    """Run Squawk over each revision's SQL; reads files only, touches no database."""
    binary = squawk_binary()
    if binary is None:
        return LintResult((), ran=False, note="Squawk is not installed (pip install squawk-cli); nothing was linted.")
    if not any(sql.strip() for sql in sql_by_revision.values()):
        return LintResult((), ran=True)
    with tempfile.TemporaryDirectory(prefix="hindsight-lint-") as folder:
        paths = {}
        for revision, sql in sql_by_revision.items():
            path = Path(folder) / f"{revision}.sql"
            path.write_text(sql, encoding="utf-8")
            paths[str(path)] = revision
        command = [binary, "--reporter", "json"]
        command += [f"--exclude={rule}" for rule in settings.lint_ignore_rules]
        result = subprocess.run([*command, *paths], capture_output=True, text=True, check=False, timeout=120)
    try:
        raw = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        return LintResult((), ran=False, note=f"Squawk failed: {(result.stderr or result.stdout).strip()[:500]}")
    findings = []
    for item in raw:
        revision = paths.get(item.get("file", ""), Path(item.get("file", "")).stem)
        lines = sql_by_revision.get(revision, "").splitlines()
        first, last = int(item.get("line", 0)), int(item.get("line_end", item.get("line", 0)))
        statement = "\n".join(lines[first : last + 1]).strip()
        rule = item.get("rule_name", "?")
        level = ERROR if rule in settings.lint_error_rules or item.get("level") == "Error" else WARNING
        findings.append(
            LintFinding(revision, rule, level, item.get("message", ""), item.get("help"), first + 1, statement)
        )
    order = {revision: i for i, revision in enumerate(sql_by_revision)}
    findings.sort(key=lambda f: (order.get(f.revision, 0), f.line, f.rule))
    return LintResult(tuple(findings), ran=True)
