"""Reviewed plans: save what was reviewed, and apply it only if nothing has changed since.

``up --plan-out plan.json`` (and ``down``) writes the plan: the database's identity and
revision, the revisions with their file hashes and SQL, the rehearsal's diff and the lint
result. ``up --plan plan.json`` plans again and applies only when the database, its
revision, the revision files and their SQL are what the reviewer saw (Terraform's saved
plan, for migrations): review in a pull request, apply in deployment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hindsight_migrate import __version__
from hindsight_migrate.database import Database
from hindsight_migrate.errors import BadArgument, Refused, Section
from hindsight_migrate.plan import MigrationPlan

FORMAT = "hindsight-migrate plan 1"


@dataclass(frozen=True)
class DatabaseIdentity:
    """Which database this is, as far as a plan needs to know (no password, no host secrets)."""

    database: str  # masked URL
    name: str
    oid: int
    server_version: str


@dataclass(frozen=True)
class SavedPlan:
    direction: str
    target: str
    identity: DatabaseIdentity
    current: tuple[str, ...]
    revisions: tuple[tuple[str, str, str], ...]  # (revision, file sha256, SQL)
    fingerprint: str


def database_identity(database: Database) -> DatabaseIdentity:
    """Read-only: the database's name, oid and server version."""
    from hindsight_migrate import catalog

    with database.read_only() as connection:
        name, oid, version = catalog.database_name_oid_version(connection)
        connection.rollback()
    return DatabaseIdentity(database.masked_url, name, oid, version)


def plan_document(plan: MigrationPlan, identity: DatabaseIdentity) -> str:
    """The plan as the JSON text of a plan file (the rehearsal and lint included, for the reviewer)."""
    from hindsight_migrate.render import jsonable

    document = {
        "format": FORMAT,
        "tool_version": __version__,
        "identity": jsonable(identity),
        "plan": jsonable(plan),
    }
    return json.dumps(document, indent=2) + "\n"


def save_plan(plan: MigrationPlan, identity: DatabaseIdentity, path: Path) -> None:
    """Writes ``path``: the plan file."""
    try:
        path.write_text(plan_document(plan, identity), encoding="utf-8")
    except OSError as err:
        raise BadArgument(f"Cannot write the plan to {path}: {err.strerror}.") from err


def save_sql(plan: MigrationPlan) -> Path:
    """Writes a file in the system's temporary folder: every revision's SQL, named by the plan's fingerprint."""
    import tempfile

    from hindsight_migrate.plan import sql_script

    folder = Path(tempfile.gettempdir()) / "hindsight-migrate"
    path = folder / f"{plan.direction}-plan-{plan.fingerprint[:16]}.sql"
    try:
        folder.mkdir(exist_ok=True)
        path.write_text(sql_script(plan), encoding="utf-8")
    except OSError as err:
        raise BadArgument(f"Cannot write the plan's SQL to {path}: {err.strerror}. Use --show-sql.") from err
    return path


def load_plan(path: Path, *, direction: str) -> SavedPlan:
    """Reads a file: the saved plan, refused when it goes the other way than the command (up or down)."""
    saved = _read_plan(path)
    if saved.direction != direction:
        raise Refused(f"This is a plan to go {saved.direction}; run it with `hindsight-migrate {saved.direction}`.")
    return saved


def _read_plan(path: Path) -> SavedPlan:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise BadArgument(f"Cannot read the plan {path}: {err.strerror}.") from err
    except json.JSONDecodeError as err:
        raise BadArgument(f"{path} is not a plan file (not JSON: {err}).") from err
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BadArgument(f"{path} is not a hindsight-migrate plan file (format {FORMAT!r} expected).")
    try:
        plan: dict[str, Any] = document["plan"]
        identity = DatabaseIdentity(**document["identity"])
        return SavedPlan(
            direction=str(plan["direction"]),
            target=str(plan["target"]),
            identity=identity,
            current=tuple(plan["current"]),
            revisions=tuple(
                (item["info"]["revision"], item["file_sha256"], item["sql"] or "") for item in plan["revisions"]
            ),
            fingerprint=str(plan["fingerprint"]),
        )
    except (KeyError, TypeError) as err:
        raise BadArgument(f"{path} is a damaged plan file (missing {err}).") from err


def refuse_unless_unchanged(saved: SavedPlan, plan: MigrationPlan, identity: DatabaseIdentity) -> None:
    """Raise :class:`Refused` listing every difference between the reviewed plan and now."""
    differences: list[str] = []
    if (saved.identity.name, saved.identity.oid) != (identity.name, identity.oid):
        differences.append(
            f"database: the plan was made for {saved.identity.name} (oid {saved.identity.oid}, "
            f"{saved.identity.database}); this is {identity.name} (oid {identity.oid}, {identity.database})"
        )
    if saved.current != plan.current:
        differences.append(
            f"current revision: was {', '.join(saved.current) or 'none'}, is {', '.join(plan.current) or 'none'}"
        )
    now = tuple((item.info.revision, item.file_sha256, item.sql or "") for item in plan.revisions)
    saved_ids, now_ids = [r for r, _, _ in saved.revisions], [r for r, _, _ in now]
    if saved_ids != now_ids:
        added = [r for r in now_ids if r not in saved_ids]
        removed = [r for r in saved_ids if r not in now_ids]
        words = "revisions to run changed"
        if added:
            words += f"; new: {', '.join(added)}"
        if removed:
            words += f"; gone: {', '.join(removed)}"
        if not added and not removed:
            words += f": order was {', '.join(saved_ids)}, is {', '.join(now_ids)}"
        differences.append(words)
    now_by_revision = {revision: (sha, sql) for revision, sha, sql in now}
    for revision, sha, sql in saved.revisions:
        if revision not in now_by_revision:
            continue
        now_sha, now_sql = now_by_revision[revision]
        if sha != now_sha:
            differences.append(f"{revision}: its file changed since the review")
        elif sql != now_sql:
            differences.append(f"{revision}: the SQL it emits changed since the review")
    if differences:
        raise Refused(
            "The database or the code changed since this plan was reviewed, so nothing was applied. Make and "
            "review a new plan (--plan-out).",
            sections=(Section("What changed", "\n".join(differences)),),
        )
