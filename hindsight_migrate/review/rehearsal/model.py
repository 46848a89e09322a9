"""What a rehearsal measured, and how it was asked for: plain data, shared by its modules and its readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from hindsight_migrate.duration import A_MINUTE, FIVE_SECONDS, Duration
from hindsight_migrate.postgres import catalog
from hindsight_migrate.postgres.containment import (
    NotRehearsed,
    ServerWide,
)
from hindsight_migrate.postgres.database import (
    ServerWarning,
)
from hindsight_migrate.postgres.lock_modes import Blocks, LockMode
from hindsight_migrate.review.bootstrap import BootstrapPlan
from hindsight_migrate.revisions import RevisionInfo
from hindsight_migrate.schema import SchemaChange

if TYPE_CHECKING:
    pass



@dataclass(frozen=True)
class StatementCost:
    sql: str
    seconds: float
    locks: tuple[tuple[str, LockMode], ...]  # (table, strongest mode) newly held after it


@dataclass(frozen=True)
class RevisionCost:
    revision: str
    seconds: float
    locks: tuple[tuple[str, LockMode], ...]  # (table, strongest mode) over the whole revision
    rewritten: tuple[str, ...]  # tables and indexes whose storage was rewritten
    statements: tuple[StatementCost, ...]
    rows_written: tuple[tuple[str, int], ...] = ()  # (table, rows updated or deleted): a backfill, a purge


@dataclass(frozen=True)
class RehearsalFailure:
    revision: str
    message: str  # what the database said
    statement: str | None


@dataclass(frozen=True)
class Rehearsal:
    """What running the pending revisions did, measured; ``failure`` when one failed."""

    where: RehearsalPlace
    description: str  # words for the reader: where it ran and with what data
    with_data: bool
    diff: tuple[SchemaChange, ...]
    costs: tuple[RevisionCost, ...]
    failure: RehearsalFailure | None
    warnings: tuple[str, ...]
    sizes: dict[str, catalog.TableSize] = field(default_factory=dict)  # the TARGET's tables
    not_rehearsed: tuple[NotRehearsed, ...] = ()  # statements not sent: no rollback would undo them
    server_wide: tuple[ServerWide, ...] = ()  # changes to what the whole server shares, rehearsed and rolled back
    server_warnings: tuple[ServerWarning, ...] = ()  # what PostgreSQL warned about while the revisions ran

    @property
    def ok(self) -> bool:
        return self.failure is None

    def impact(self) -> tuple[tuple[ImpactRow, ...], tuple[float, ...]]:
        """What the revisions did to tables the target has: one row per (revision, table) they lock, and the
        seconds of each revision that locks none (it only adds new objects, which bother no one yet)."""
        rows: list[ImpactRow] = []
        quiet: list[float] = []
        for cost in self.costs:
            touched = [
                (table, mode)
                for table, mode in cost.locks
                if table in self.sizes
            ]
            if not touched:
                quiet.append(cost.seconds)
            rows.extend(
                ImpactRow(
                    revision=cost.revision,
                    table=table,
                    mode=mode,
                    blocks=mode.blocks,
                    rewritten=table in cost.rewritten,
                    size=self.sizes.get(table),
                    seconds=cost.seconds,
                    rows_written=dict(cost.rows_written).get(table, 0),
                )
                for table, mode in touched
            )
        return tuple(rows), tuple(quiet)

    def rewritten_tables(self) -> tuple[ImpactRow, ...]:
        """The target's tables whose storage a revision rewrote, once each, the largest first."""
        seen: dict[str, ImpactRow] = {}
        for row in self.impact()[0]:
            if row.rewritten and row.table not in seen:
                seen[row.table] = row
        return tuple(sorted(seen.values(), key=lambda row: -(row.size.total_bytes if row.size else 0)))

    def longest_blocking(self) -> ImpactRow | None:
        """The lock that held traffic back most in the rehearsal: blocking reads beats blocking writes, then time."""
        blocking = [row for row in self.impact()[0] if row.blocks is not Blocks.NOTHING]
        return max(blocking, key=lambda row: (row.blocks is Blocks.READS_AND_WRITES, row.seconds), default=None)


@dataclass(frozen=True)
class ImpactRow:
    """One table a revision locked on the target, as measured in the rehearsal."""

    revision: str
    table: str
    mode: LockMode
    blocks: Blocks  # what ordinary traffic it stops
    rewritten: bool  # its storage (or its indexes') was rewritten
    size: catalog.TableSize | None  # the target's rows and bytes, None for a table it does not have
    seconds: float  # how long the revision that took the lock ran (the lock is held until it commits)
    rows_written: int = 0  # rows the revision updated or deleted in it (in the rehearsal's copy of the data)


class RehearsalPlace(Enum):
    """Where a rehearsal runs (``--rehearse-on``)."""

    SCRATCH = "scratch"  # a scratch copy of the target on its server, dropped afterwards
    TARGET = "target"  # the target itself, in one transaction that is rolled back
    URL = "url"  # another, disposable database with the same schema, which it changes


@dataclass(frozen=True)
class RehearsalTarget:
    """``--rehearse-on``: a place, and for ``URL`` the database's URL."""

    place: RehearsalPlace
    url: str | None = None

    @classmethod
    def parse(cls, value: str) -> RehearsalTarget:
        """``scratch``, ``target``, or anything else: the URL of a disposable database."""
        for place in (RehearsalPlace.SCRATCH, RehearsalPlace.TARGET):
            if value == place.value:
                return cls(place)
        return cls(RehearsalPlace.URL, value)


@dataclass(frozen=True)
class RehearsalOptions:
    where: RehearsalTarget = RehearsalTarget(RehearsalPlace.SCRATCH)
    data_limit_bytes: int = 200 * 1024 * 1024
    lock_timeout: Duration = FIVE_SECONDS
    statement_timeout: Duration = A_MINUTE


@dataclass(frozen=True)
class Work:
    """What a rehearsal runs, in order: V1 (going up from empty), the revisions, the V1 drop."""

    revisions: tuple[RevisionInfo, ...]
    downgrade: bool
    bootstrap: BootstrapPlan | None
    drop_baseline: bool
    version_table: str  # env.py's version table: the tool's bookkeeping, not the application's schema
