"""The revision graph, with what the database has applied when it can be asked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.errors import ConfigError, ConnectionFailed, Refused
from hindsight_migrate.postgres.audit_records import ApplyRecord, BootstrapRecord
from hindsight_migrate.reports.graph_cache import load_graph
from hindsight_migrate.revisions import RevisionInfo, RevisionState

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    from hindsight_migrate.postgres.database import Database

@dataclass(frozen=True)
class HistoryEntry:
    info: RevisionInfo
    state: RevisionState | None  # None when the database was not asked (or cannot say)


@dataclass(frozen=True)
class DatabaseState:
    database: str  # masked URL
    reachable: bool
    # Why it could not be read, when it could not; when reachable, what of the tool's records could not be
    # read (the audit log, when this role may not read it or it is not the tool's), and why.
    problem: str | None
    current: tuple[str, ...]  # the version table's revisions, in this project's graph
    unknown: tuple[str, ...]  # revisions in the version table that no file in versions/ has
    bootstrap: BootstrapRecord | None
    v1_drift: str | None
    last_apply: ApplyRecord | None = None
    # Not reachable, but connected: the version table holds what no revision can be read from.
    connected: bool = False


@dataclass(frozen=True)
class History:
    entries: tuple[HistoryEntry, ...]  # newest first
    heads: tuple[str, ...]
    bases: tuple[str, ...]
    database: DatabaseState | None  # None with --offline
    # Whether the project configures a bootstrap file (bootstrap_sql): only then are "bootstrapped" and V1 its words.
    bootstraps: bool

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(e.info.revision for e in self.entries if e.state is RevisionState.PENDING)


def build_history(project: AlembicProject, database: Database | None) -> History:
    """Read-only: the graph from versions/, and the database's state if ``database`` is given.

    The graph may come from the graph cache (which this may write): the same facts, without
    importing Alembic (--offline) or every revision file (with a database, env.py runs only to
    read the version table, which needs none of them).
    """
    if database is None:
        graph = load_graph(project)
        return History(
            entries=tuple(HistoryEntry(info=info, state=None) for info in graph.revisions),
            heads=graph.heads,
            bases=graph.bases,
            database=None,
            bootstraps=project.settings.bootstrap_sql is not None,
        )
    # The graph as --offline reads it (the cache, when nothing it came from changed): env.py needs no revision
    # file to say where the database stands, so Alembic does not import every one of them for history.
    graph = load_graph(project)
    by_id = {info.revision: info for info in graph.revisions}
    state = _database_state(project, database, known=by_id.keys())
    applied = _ancestors(by_id, state.current) if state.reachable else frozenset()

    def state_of(info: RevisionInfo) -> RevisionState | None:
        if not state.reachable:
            return None
        if state.unknown and info.revision not in state.current:
            return None  # at a revision this code does not know: what is applied is unknown
        if info.revision in state.current:
            return RevisionState.CURRENT
        return RevisionState.APPLIED if info.revision in applied else RevisionState.PENDING

    return History(
        entries=tuple(HistoryEntry(info=info, state=state_of(info)) for info in graph.revisions),
        heads=graph.heads,
        bases=graph.bases,
        database=state,
        bootstraps=project.settings.bootstrap_sql is not None,
    )


def _ancestors(by_id: Mapping[str, RevisionInfo], revisions: Iterable[str]) -> frozenset[str]:
    """The given revisions and every revision they stand on, through each one's parents (its down revisions and
    dependencies, as Alembic's iterate_revisions(revision, "base") walks them)."""
    found: set[str] = set()
    waiting = [revision for revision in revisions if revision in by_id]
    while waiting:
        revision = waiting.pop()
        if revision in found:
            continue
        found.add(revision)
        waiting.extend(parent for parent in by_id[revision].parents if parent in by_id)
    return frozenset(found)


def _database_state(project: AlembicProject, database: Database, *, known: Collection[str]) -> DatabaseState:
    # The seam of `history --offline`: the database layer (SQLAlchemy, the audit ledger) loads only here.
    from hindsight_migrate.postgres import audit
    from hindsight_migrate.review.v1 import v1_checksum, v1_drift

    try:
        with database.read_only() as connection:
            heads = project.env.current_heads(connection)
            # The records this role cannot read (or that are not the tool's) are left out, and said why.
            unreadable = audit.audit_unreadable(connection, audit.BOOTSTRAP_LOG, audit.APPLY_LOG)
            record = audit.last_bootstrap(connection)
            last_apply = audit.last_apply(connection, environment=project.env.version_table.environment)
            connection.rollback()
    except (ConnectionFailed, Refused) as err:
        # history is useful without a database, and with a version table no revision can be read from
        # (the same revision twice, a value that is no revision id): show the graph and say why state is missing.
        connected = isinstance(err, Refused)
        return DatabaseState(database.masked_url, False, err.message, (), (), None, None, connected=connected)
    drift = None
    if record is not None and project.settings.bootstrap_sql is not None:
        try:
            drift = v1_drift(record, project.settings.bootstrap_sql, v1_checksum(project.settings.bootstrap_sql))
        except ConfigError as err:
            drift = f"The V1 file cannot be checked: {err.message}"
    return DatabaseState(
        database=database.masked_url,
        reachable=True,
        problem=" ".join(dict.fromkeys(unreadable.values())) or None,  # a schema it may not use: said once
        current=tuple(h for h in heads if h in known),
        unknown=tuple(h for h in heads if h not in known),
        bootstrap=record,
        v1_drift=drift,
        last_apply=last_apply,
    )
