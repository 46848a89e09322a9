"""Plain JSON for scripts: result dataclasses field for field, one document per command.

Every document (``--format json``) is one JSON object with ``"format_version": 1`` and a
``"kind"`` saying which of the shapes in ``hindsight_migrate/schemas/<kind>.schema.json`` it
has. The report commands (history, status, check, lint) put their result's fields beside
those two, so what ``--json`` printed before is still there under the same names.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import date, datetime
from enum import Enum
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from hindsight_migrate.errors import HindsightMigrateError
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.review.lock_waits import schedule_words

if TYPE_CHECKING:
    from hindsight_migrate.authoring.autogen import NewRevision
    from hindsight_migrate.reports.check import CheckReport, LintReport
    from hindsight_migrate.reports.history import History
    from hindsight_migrate.reports.status import Status
    from hindsight_migrate.review.apply import ApplyResult
    from hindsight_migrate.review.bootstrap import BootstrapPlan, BootstrapResult
    from hindsight_migrate.review.kinds import ChangeKind
    from hindsight_migrate.review.plan import MigrationPlan
    from hindsight_migrate.review.summary import PlanDigest

FORMAT_VERSION = 1  # raised when a field is renamed or removed; a new field keeps it
DocumentKind = Literal[
    "plan",
    "bootstrap_plan",
    "new_revision",
    "merge",
    "check",
    "status",
    "lint",
    "history",
    "fleet_plan",
    "fleet_up",
    "fleet_status",
]
DOCUMENT_KINDS: tuple[DocumentKind, ...] = get_args(DocumentKind)


def load_schema(kind: DocumentKind) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one kind of document, as shipped in the package."""
    schema: dict[str, Any] = json.loads(
        (files("hindsight_migrate") / "schemas" / f"{kind}.schema.json").read_text(encoding="utf-8")
    )
    return schema


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(data), indent=2) + "\n")


def print_document(document: dict[str, Any]) -> None:
    """One document on stdout, alone: what people read goes to stderr meanwhile."""
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    sys.stdout.flush()


def jsonable(value: Any) -> Any:
    """Dataclasses, paths, dates and enums as plain JSON values (properties are not included)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def _document(kind: DocumentKind, fields: dict[str, Any]) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "kind": kind, **fields}


def plan_document(
    plan: MigrationPlan, digest: PlanDigest, change: tuple[ChangeKind, tuple[str, ...]], result: ApplyResult | None
) -> dict[str, Any]:
    """``up``/``down``: the summary the first screen shows, the whole plan, what kind of change it is, and what
    the apply did (None when nothing was applied: a dry run, nothing to do, or a refusal)."""
    kind, reasons = change
    return _document(
        "plan",
        {
            "direction": plan.direction.value,
            "summary": jsonable(digest.summary),
            "plan": jsonable(plan),
            # --detailed-exitcode's 0/2/3, with why a plan is destructive when it is.
            "change_kind": {"exit_code": kind.value, "name": kind.name.lower(), "reasons": list(reasons)},
            "result": jsonable(result) if result is not None else None,
            # How long each attempt of the apply waits for a lock (review/lock_waits.py), in words and in figures.
            "lock_waits": (
                {**jsonable(digest.lock_waits), "words": schedule_words(digest.lock_waits)}
                if digest.lock_waits is not None
                else None
            ),
        },
    )


def bootstrap_document(plan: BootstrapPlan, result: BootstrapResult | None) -> dict[str, Any]:
    """``bootstrap``: the plan (V1's file and statements, the baseline, what it creates) and the result."""
    counts: dict[str, int] = {}
    for obj in plan.creates:
        counts[obj.kind] = counts.get(obj.kind, 0) + 1
    return _document(
        "bootstrap_plan",
        {
            "plan": jsonable(plan),
            "counts": counts,
            "result": (
                {"current_heads": list(result.current_heads), "seconds": result.seconds} if result is not None else None
            ),
        },
    )


def new_revision_document(result: NewRevision) -> dict[str, Any]:
    """``new``: what autogenerate detected, the review's findings (with the rows at risk in words), the file."""
    fields = jsonable(result)
    fields["findings"] = [
        {**jsonable(finding), "rows_on_target": finding.rows_on_target} for finding in result.findings
    ]
    fields["strict_failed"] = result.strict_failed
    return _document("new_revision", fields)


def merge_document(revision: str, path: Path, heads: tuple[str, ...]) -> dict[str, Any]:
    return _document("merge", {"revision": revision, "path": str(path), "heads": list(heads)})


def check_document(report: CheckReport) -> dict[str, Any]:
    return _document("check", {**jsonable(report), "ok": report.ok, "error": None})


def check_error_document(problem: HindsightMigrateError) -> dict[str, Any]:
    """``check`` that could not finish: still a document (a CI step that parses stdout gets one), with the error
    that stopped it and its exit code; nothing checked, nothing passed."""
    error = {
        "title": problem.title,
        "message": mask_secrets(problem.message),
        "exit_code": int(problem.exit_code),
        "sections": [{"title": s.title, "body": mask_secrets(s.body)} for s in problem.sections],
    }
    fields = {"database": "", "problems": [], "checked": [], "warnings": [], "target": "", "ok": False, "error": error}
    return _document("check", fields)


def status_document(status: Status) -> dict[str, Any]:
    return _document("status", {**jsonable(status), "exit_code": int(status.exit_code)})


def lint_document(report: LintReport) -> dict[str, Any]:
    return _document("lint", {**jsonable(report), "exit_code": int(report.exit_code)})


def history_document(history: History) -> dict[str, Any]:
    return _document("history", jsonable(history))
