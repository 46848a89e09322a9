"""What a rehearsal measured, and how it was asked for: plain data, shared by its modules and its readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

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
from hindsight_migrate.postgres.sample import TableSample
from hindsight_migrate.review.bootstrap import BootstrapPlan
from hindsight_migrate.review.kinds import Basis, FailedAt
from hindsight_migrate.revisions import RevisionInfo
from hindsight_migrate.schema import SchemaChange


@dataclass(frozen=True)
class Hold:
    """How long a revision holds its lock on one of the target's tables, at the target's size: from the start of
    the statement that first names the table (or the revision's first) to the revision's commit."""

    table: str
    seconds: float | None  # expected; None when unknown
    seconds_low: float | None
    seconds_high: float | None
    basis: Basis
    rehearsal_seconds: float  # what the rehearsal itself timed, on whatever rows it had
    sample_percent: float | None = None  # PREDICTED: the share of the table's pages the sample held
    calibration: float | None = None  # PREDICTED: the ratio of actual to predicted holds seen on earlier applies


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
    holds: tuple[Hold, ...] = ()  # each of the target's tables it locks, at the target's size


@dataclass(frozen=True)
class RehearsalFailure:
    revision: str | None  # None when it failed before the first revision started
    message: str  # what the database said
    statement: str | None
    at: FailedAt = FailedAt.REVISION


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
    samples: dict[str, TableSample] = field(default_factory=dict)  # what a sampled copy held of each table

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
            holds = {hold.table: hold for hold in cost.holds}
            for table, mode in touched:
                timed = cost.seconds
                hold = holds.get(table) or Hold(table, timed, timed, timed, Basis.MEASURED, timed)
                written = dict(cost.rows_written).get(table, 0)
                sample = self.samples.get(table)
                scaled = sample is not None and not sample.whole and written > 0
                size = self.sizes.get(table)
                if scaled and sample is not None and size is not None:
                    written = round(written * scale_to_target(size, sample))
                rows.append(
                    ImpactRow(
                        revision=cost.revision,
                        table=table,
                        mode=mode,
                        blocks=mode.blocks,
                        rewritten=table in cost.rewritten,
                        size=size,
                        seconds=hold.seconds if hold.seconds is not None else hold.rehearsal_seconds,
                        rows_written=written,
                        hold=hold,
                        rows_written_exact=not scaled,
                    )
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
        """The lock that holds traffic back most at the target's size: blocking reads beats blocking writes, then
        the high end of its hold (an unknown one first)."""
        blocking = [row for row in self.impact()[0] if row.blocks is not Blocks.NOTHING]
        return max(blocking, key=lambda row: (row.blocks is Blocks.READS_AND_WRITES, row.worst_seconds), default=None)


@dataclass(frozen=True)
class ImpactRow:
    """One of the target's tables a revision locks, as the rehearsal saw it, with its hold at the target's size."""

    revision: str
    table: str
    mode: LockMode
    blocks: Blocks  # what ordinary traffic it stops
    rewritten: bool  # its storage (or its indexes') was rewritten
    size: catalog.TableSize | None  # the target's rows and bytes, None for a table it does not have
    seconds: float  # how long the lock is held at the target's size, expected (see ``hold`` for what it rests on)
    rows_written: int = 0  # rows the revision updated or deleted in it (scaled to the target's from a sample)
    hold: Hold | None = None  # the expected time, its range and what it rests on
    rows_written_exact: bool = True  # False: the sample's count, scaled to the target's rows

    @property
    def basis(self) -> Basis:
        return self.hold.basis if self.hold is not None else Basis.MEASURED

    @property
    def worst_seconds(self) -> float:
        """The high end of the range: what a reviewer must be ready for. An unknown time counts as endless."""
        if self.hold is None:
            return self.seconds
        if self.hold.basis is Basis.UNKNOWN:
            return float("inf")
        return self.hold.seconds_high if self.hold.seconds_high is not None else self.seconds


def scale_to_target(size: catalog.TableSize, sample: TableSample) -> float:
    """How many times the target's table holds what its sample does: by rows when both are known, else by bytes."""
    if size.estimated_rows and sample.rows:
        return max(size.estimated_rows / sample.rows, 1.0)
    if sample.total_bytes:
        return max(size.total_bytes / sample.total_bytes, 1.0)
    return 1.0


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
    sample_bytes: int = 32 * 1024 * 1024  # over the data limit, the sample's budget; 0: the schema alone
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
