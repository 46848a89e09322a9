"""Reviewed plans: save what was reviewed, and apply it only if nothing has changed since.

``up --plan-out plan.json`` (and ``down``) writes the plan: the database's identity and
revision, the revisions with their file hashes and SQL, the rehearsal's diff and the lint
result. ``up --plan plan.json`` plans again and applies only when the database, its
revision, the revision files and their SQL are what the reviewer saw (Terraform's saved
plan, for migrations): review in a pull request, apply in deployment.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hindsight_migrate import __version__, private_files
from hindsight_migrate.errors import BadArgument, Refused, Section
from hindsight_migrate.postgres import catalog
from hindsight_migrate.postgres.database import Database
from hindsight_migrate.render import jsonable
from hindsight_migrate.review.plan import MigrationPlan, sql_script
from hindsight_migrate.revisions import Direction

FORMAT = "hindsight-migrate plan 1"


@dataclass(frozen=True)
class PlannedDatabase:
    """Which database a saved plan is for, as far as it needs to know (no password, no host secrets); the
    server-level identity that tells a copy from the real one is catalog.DatabaseIdentity."""

    database: str  # masked URL
    name: str
    oid: int
    server_version: str


@dataclass(frozen=True)
class SavedPlan:
    direction: Direction
    target: str
    identity: PlannedDatabase
    current: tuple[str, ...]
    revisions: tuple[tuple[str, str, str], ...]  # (revision, file sha256, SQL)
    fingerprint: str


def planned_database(database: Database) -> PlannedDatabase:
    """Read-only: the database's name, oid and server version."""
    with database.read_only() as connection:
        name, oid, version = catalog.database_name_oid_version(connection)
        connection.rollback()
    return PlannedDatabase(database.masked_url, name, oid, version)


def plan_document(plan: MigrationPlan, identity: PlannedDatabase) -> str:
    """The plan as the JSON text of a plan file (the rehearsal and lint included, for the reviewer)."""
    document = {
        "format": FORMAT,
        "tool_version": __version__,
        "identity": jsonable(identity),
        "plan": jsonable(plan),
    }
    return json.dumps(document, indent=2) + "\n"


def save_plan(plan: MigrationPlan, identity: PlannedDatabase, path: Path) -> None:
    """Writes ``path``: the plan file, atomically (a failure leaves the old file or none, never half of one).

    A new file gets mode 0600: it holds every revision's SQL, which may carry data. An existing
    file keeps its mode: whoever made it group-readable (a review bot, a deploy user) meant it,
    and the file is replaced, not rewritten, so its mode would otherwise be lost. A symbolic
    link at ``path`` is replaced by the file, never followed; a pipe or a device
    (``/dev/stdout``, ``>(…)``) is written as a stream (``--plan-out -`` never gets here).
    """
    save_document(plan_document(plan, identity), path)


def save_document(document: str, path: Path) -> None:
    """Writes ``path`` as :func:`save_plan` does (atomically, a new file 0600, a stream written in place)."""
    try:
        if private_files.write_stream_in_place(path, document):
            return
        try:
            facts = os.lstat(path)
        except FileNotFoundError:
            facts = None
        if facts is not None and stat.S_ISDIR(facts.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        mode = stat.S_IMODE(facts.st_mode) if facts is not None and stat.S_ISREG(facts.st_mode) else 0o600
        private_files.write_atomically(path, document, mode=mode)
    except OSError as err:
        if private_files.is_full_disk(err):
            raise private_files.cannot_write(
                err, path, what="the plan", advice="Free some space there, or save the plan elsewhere (--plan-out)."
            ) from err
        raise BadArgument(
            f"Cannot write the plan to {path}: {err.strerror or err}. Nothing was changed in the database; "
            f"{path} is as it was. Name a file in a folder you can write (--plan-out)."
        ) from err


def save_sql(plan: MigrationPlan) -> Path:
    """Writes a file in the user's private temporary folder (mode 0600): every revision's SQL, named by the fingerprint.

    Not the shared temporary folder itself: there another user could read it, or plant a link
    at its predictable name. See :mod:`hindsight_migrate.private_files`.
    """
    name = f"{plan.direction.value}-plan-{plan.fingerprint[:16]}.sql"
    return private_files.write_private(
        name,
        sql_script(plan),
        what="the plan's SQL",
        advice="Free some space there, set TMPDIR to a folder on a disk with room, or see the SQL inline (--show-sql).",
    )


def load_plan(path: Path, *, direction: Direction) -> SavedPlan:
    """Reads a file: the saved plan, refused when it goes the other way than the command (up or down)."""
    saved = _read_plan(path)
    if saved.direction != direction:
        way = saved.direction.value
        raise Refused(f"This is a plan to go {way}; run it with `hindsight-migrate {way}`.")
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
        identity = PlannedDatabase(**document["identity"])
        return SavedPlan(
            direction=Direction(plan["direction"]),
            target=str(plan["target"]),
            identity=identity,
            current=tuple(plan["current"]),
            revisions=tuple(
                (item["info"]["revision"], item["file_sha256"], item["sql"] or "") for item in plan["revisions"]
            ),
            fingerprint=str(plan["fingerprint"]),
        )
    except (KeyError, TypeError, ValueError) as err:  # ValueError: a direction other than up and down
        raise BadArgument(f"{path} is a damaged plan file (missing or wrong {err}).") from err


def refuse_unless_unchanged(saved: SavedPlan, plan: MigrationPlan, identity: PlannedDatabase) -> None:
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
