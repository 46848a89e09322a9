"""Whether the code and the database agree, in one reading: ``status``.

Behind (revisions pending), diverged (the database is at a revision no file has, or an
applied revision's file is gone) and tampered (a revision file whose code changed after it was
applied, or the V1 file changed since bootstrap) each have an exit code, so CI and deploy
scripts can gate on them. A file whose text changed but whose code did not (comments, its
docstrings, a formatter's pass) is reformatted: said, and no verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.code_fingerprint import code_fingerprint
from hindsight_migrate.errors import ConfigError, ExitCode
from hindsight_migrate.postgres import audit
from hindsight_migrate.postgres.audit_records import ApplyRecord
from hindsight_migrate.postgres.database import Database
from hindsight_migrate.review.v1 import sha256_of_text, v1_checksum, v1_drift

UP_TO_DATE = "up to date"
BEHIND = "behind"
DIVERGED = "diverged"
TAMPERED = "tampered"


@dataclass(frozen=True)
class EditedRevision:
    revision: str
    path: str
    recorded_sha256: str  # when it was applied
    file_sha256: str  # now


@dataclass(frozen=True)
class ReformattedRevision:
    """Applied, then its file changed, but not its code: comments, docstrings or layout only."""

    revision: str
    path: str
    recorded_sha256: str  # when it was applied
    file_sha256: str  # now
    code_fingerprint: str  # the same then and now


@dataclass(frozen=True)
class Status:
    database: str  # masked URL
    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: tuple[str, ...]  # in the order `up` would run them
    unknown: tuple[str, ...]  # in the version table, but no file has them
    missing: tuple[str, ...]  # applied by the tool (checksum recorded), but their file is gone
    edited: tuple[EditedRevision, ...]  # applied, then their code changed (or could not be compared)
    unrecorded: tuple[str, ...]  # applied before the tool recorded checksums (e.g. by raw alembic)
    v1_drift: str | None
    last_apply: ApplyRecord | None
    verdicts: tuple[str, ...]  # TAMPERED, DIVERGED, BEHIND; empty when up to date
    # Whether the project configures a bootstrap file (bootstrap_sql): only then is there a V1 to speak of.
    bootstraps: bool
    # What could not be read, and why, with the fix (the tool's records, when this role may not read them or
    # they are not the tool's): the tool's table -> why. Said under the report, and in its JSON.
    unreadable: Mapping[str, str] = field(default_factory=dict)
    reformatted: tuple[ReformattedRevision, ...] = ()  # applied, then their text changed but not their code

    def unread(self, table: str) -> str | None:
        """Why the tool's ``table`` (audit.APPLY_LOG, ...) could not be read, with the fix; None when it was."""
        return self.unreadable.get(table)

    @property
    def notes(self) -> tuple[str, ...]:
        """What the report could not read, and why, with the fix (the audit log, the recorded checksums)."""
        return tuple(dict.fromkeys(self.unreadable.values()))  # a schema this role may not use: said once

    @property
    def exit_code(self) -> ExitCode:
        """The most serious verdict decides: tampered, then diverged, then behind."""
        for verdict, code in ((TAMPERED, ExitCode.TAMPERED), (DIVERGED, ExitCode.DIVERGED), (BEHIND, ExitCode.BEHIND)):
            if verdict in self.verdicts:
                return code
        return ExitCode.OK


def read_status(project: AlembicProject, database: Database) -> Status:
    """Read-only: the database's revision, checksums and records against the files."""
    with database.read_only() as connection:
        current = project.env.current_heads(connection)
        # The tool's records this role cannot read are left out, and said why: the rest still tells.
        unreadable = audit.audit_unreadable(
            connection, audit.APPLIED_REVISIONS, audit.BOOTSTRAP_LOG, audit.APPLY_LOG
        )
        environment = project.env.version_table.environment  # learned by current_heads(), from env.py
        checksums = audit.applied_checksums(connection, environment=environment)
        record = audit.last_bootstrap(connection)
        last_apply = audit.last_apply(connection, environment=environment)
        connection.rollback()
    known = tuple(h for h in current if project.graph.knows(h))
    unknown = tuple(h for h in current if not project.graph.knows(h))
    pending: tuple[str, ...] = ()
    if not unknown:
        pending = tuple(info.revision for info in project.graph.upgrade_path(known, "heads"))
    applied = project.graph.ancestors(known) if not unknown else frozenset(known)
    edited: list[EditedRevision] = []
    reformatted: list[ReformattedRevision] = []
    missing: list[str] = []
    for revision, recorded in sorted(checksums.items()):
        if not project.graph.knows(revision):
            missing.append(revision)
            continue
        source = (project.settings.project_dir / project.graph.resolve(revision).path).read_text(encoding="utf-8")
        now = sha256_of_text(source)
        if now == recorded.file_sha256:
            continue
        # The text changed: the same code is a reformat. Without a fingerprint recorded (applied by an earlier
        # version) or one to take now (the file no longer parses), nothing says the code is the same: tampered.
        fingerprint = code_fingerprint(source)
        if recorded.code_fingerprint is not None and fingerprint == recorded.code_fingerprint:
            reformatted.append(
                ReformattedRevision(revision, recorded.file_path, recorded.file_sha256, now, fingerprint)
            )
        else:
            edited.append(EditedRevision(revision, recorded.file_path, recorded.file_sha256, now))
    # Without the checksums, nothing is known to be unrecorded: the note says why they are missing.
    unrecorded = (
        () if audit.APPLIED_REVISIONS in unreadable else tuple(sorted(r for r in applied if r not in checksums))
    )
    drift = None
    if record is not None and project.settings.bootstrap_sql is not None:
        try:
            drift = v1_drift(record, project.settings.bootstrap_sql, v1_checksum(project.settings.bootstrap_sql))
        except ConfigError as err:
            drift = f"The V1 file cannot be checked: {err.message}"
    verdicts = []
    if edited or drift:
        verdicts.append(TAMPERED)
    if unknown or missing:
        verdicts.append(DIVERGED)
    if pending:
        verdicts.append(BEHIND)
    return Status(
        database=database.masked_url,
        current=current,
        heads=project.graph.heads(),
        pending=pending,
        unknown=unknown,
        missing=tuple(missing),
        edited=tuple(edited),
        unrecorded=unrecorded,
        v1_drift=drift,
        last_apply=last_apply,
        verdicts=tuple(verdicts),
        bootstraps=project.settings.bootstrap_sql is not None,
        unreadable=unreadable,
        reformatted=tuple(reformatted),
    )
