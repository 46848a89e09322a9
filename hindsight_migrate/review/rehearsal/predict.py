"""How long each revision holds its locks at the target's size, from what the rehearsal timed.

A rehearsal on all of a table's rows (a full copy, the target itself, ``--rehearse-on URL``) measured the hold:
it is shown as measured. On a sampled copy (:mod:`hindsight_migrate.postgres.sample`) each statement is looked
at with PostgreSQL's grammar (:func:`~hindsight_migrate.postgres.sqlscript.statement_tables`):

* a statement that reads or writes a sampled table's rows (a rewrite, a scan to validate a constraint or a NOT
  NULL, an index build, an UPDATE) took time in proportion to the rows it had, so its time is scaled by the
  target's rows over the sample's (by bytes when the target's rows are unknown);
* a statement that changes only the catalog (a nullable ADD COLUMN, a constant default, a rename) costs the same
  on any size, and is taken as timed.

The hold of a lock runs from the statement that first names its table to the revision's commit, so a table
locked by a revision's last statement is not charged with the ones before it.

A prediction is a range, not a point: the sample's pages are not the table's (a table whose rows differ in
width from page to page), an index build sorts n log n, the target's cache is not the copy's. The range
(``LOW``, ``HIGH`` times the expected) is what ``bench/impact.py`` measured on Hindsight's chain at 1x, 10x and
30x the data limit. Earlier applies on the same database narrow the aim: the median ratio of actual to
predicted holds they recorded (:func:`calibration`) scales every new prediction.
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hindsight_migrate.postgres.sqlscript import StatementTables, statement_tables
from hindsight_migrate.review.kinds import Basis
from hindsight_migrate.review.rehearsal.model import Hold, Rehearsal, RevisionCost, scale_to_target

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from hindsight_migrate.postgres import catalog
    from hindsight_migrate.postgres.sample import TableSample

# The range around a prediction: the actual hold was inside it for every heavy revision of bench/impact.py.
LOW = 0.5
HIGH = 2.0
# Earlier applies' holds shorter than this are mostly fixed costs (a round trip, a commit): they say nothing of
# how a prediction scales, and are left out of the calibration.
CALIBRATE_FROM_SECONDS = 0.05
# The calibration is bounded: a ratio outside these is a different workload (a busy apply, a cold cache), not
# a better estimate.
CALIBRATION_BOUNDS = (0.25, 4.0)
_PLACEHOLDER = re.compile(r"%\(\w+\)s|%s")


@dataclass(frozen=True)
class Calibration:
    """What earlier applies on this database say of the predictions: the median of actual over predicted."""

    ratio: float
    holds: int  # how many recorded holds it rests on


def calibration(recorded: Iterable[tuple[float, float]]) -> Calibration | None:
    """From (predicted, actual) seconds of earlier applies' predicted holds; None when none is long enough."""
    ratios = [
        actual / predicted for predicted, actual in recorded if predicted >= CALIBRATE_FROM_SECONDS and actual > 0
    ]
    if not ratios:
        return None
    low, high = CALIBRATION_BOUNDS
    return Calibration(min(max(statistics.median(ratios), low), high), len(ratios))


def with_holds(rehearsal: Rehearsal, *, basis: Basis, calibrated: Calibration | None = None) -> Rehearsal:
    """The rehearsal with each revision's holds at the target's size. ``basis``: what the rehearsal ran on
    (MEASURED: all the rows; PREDICTED: ``rehearsal.samples``; UNKNOWN: the schema alone)."""
    # Each statement read once, for the fixed cost and for every hold of its revision.
    reads = [[read_statement(statement.sql) for statement in cost.statements] for cost in rehearsal.costs]
    scaling = _Scaling(
        rehearsal.sizes,
        rehearsal.samples,
        basis,
        calibrated,
        _fixed_cost(rehearsal.costs, reads, rehearsal.sizes),
    )
    costs = tuple(
        dataclasses.replace(cost, holds=_holds(cost, tables, scaling))
        for cost, tables in zip(rehearsal.costs, reads, strict=True)
    )
    return dataclasses.replace(rehearsal, costs=costs)


@dataclass(frozen=True)
class _Scaling:
    """What every hold of a rehearsal is scaled with."""

    sizes: Mapping[str, catalog.TableSize]  # the target's
    samples: Mapping[str, TableSample]  # what the copy held of them
    basis: Basis  # what the rehearsal ran on
    calibrated: Calibration | None  # from earlier applies
    fixed_seconds: float  # what any statement costs on this server, whatever the rows


def _holds(cost: RevisionCost, tables: list[StatementTables], scaling: _Scaling) -> tuple[Hold, ...]:
    holds = []
    for table, _mode in cost.locks:
        if table not in scaling.sizes:
            continue  # a table the revisions create: it bothers no one yet
        first = first_naming(tables, table, scaling.sizes) or 0
        timed = sum(statement.seconds for statement in cost.statements[first:])
        if scaling.basis is Basis.MEASURED:
            holds.append(Hold(table, timed, timed, timed, Basis.MEASURED, timed))
        else:
            holds.append(_predicted(table, cost, tables, first, timed, scaling))
    return tuple(holds)


def _predicted(
    table: str, cost: RevisionCost, tables: list[StatementTables], first: int, timed: float, scaling: _Scaling
) -> Hold:
    sizes, samples, calibrated = scaling.sizes, scaling.samples, scaling.calibrated
    ratio = calibrated.ratio if calibrated is not None else 1.0
    rewritten = _names_of(cost.rewritten)
    expected = low = high = 0.0
    scaled_from: list[float] = []
    unknown = False
    for statement, read in zip(cost.statements[first:], tables[first:], strict=True):
        processed = _resolved(read.processed | (read.altered & rewritten), sizes)
        grows = [name for name in processed if not _whole(name, samples) and _has_rows(sizes[name])]
        if not grows:  # the catalog alone, or tables the copy holds whole: as timed
            expected, low, high = expected + statement.seconds, low + statement.seconds, high + statement.seconds
            continue
        if scaling.basis is Basis.UNKNOWN or any(name not in samples or not samples[name].rows for name in grows):
            unknown = True
            continue
        factor = max(scale_to_target(sizes[name], samples[name]) for name in grows)
        # A B-tree build sorts (n log n), and a rewrite rebuilds the table's indexes: each row costs more on
        # the target's n than on the sample's.
        if read.sorts or read.altered & rewritten:
            factor *= max(_log_growth(sizes[name], samples[name]) for name in grows)
        # What any statement costs on this server (a round trip, a catalog change) does not grow with the rows.
        fixed = min(scaling.fixed_seconds, statement.seconds)
        seconds = (fixed + (statement.seconds - fixed) * factor) * ratio
        expected, low, high = expected + seconds, low + seconds * LOW, high + seconds * HIGH
        scaled_from += [samples[name].percent for name in grows]
    if unknown:
        return Hold(table, None, None, None, Basis.UNKNOWN, timed)
    if not scaled_from:
        return Hold(table, expected, low, high, Basis.MEASURED, timed)
    return Hold(
        table,
        expected,
        low,
        high,
        Basis.PREDICTED,
        timed,
        sample_percent=min(scaled_from),
        calibration=calibrated.ratio if calibrated is not None else None,
    )


def _fixed_cost(
    costs: Iterable[RevisionCost], reads: list[list[StatementTables]], sizes: Mapping[str, catalog.TableSize]
) -> float:
    """What a statement costs this server whatever the rows: the quickest of the rehearsal's DDL statements that
    process no rows (a catalog change, a lock taken), 0 when it ran none."""
    flat = [
        statement.seconds
        for cost, tables in zip(costs, reads, strict=True)
        for statement, read in zip(cost.statements, tables, strict=True)
        if read.parsed and read.named and not _resolved(read.processed, sizes)
    ]
    return min(flat) if flat else 0.0


def _log_growth(size: catalog.TableSize, sample: TableSample) -> float:
    """log n on the target over log n on the sample: how much more a sort pays per row there."""
    rows = max(sample.rows, 2)
    return max(math.log(max(rows * scale_to_target(size, sample), rows)) / math.log(rows), 1.0)


def first_naming(tables: list[StatementTables], table: str, sizes: Mapping[str, catalog.TableSize]) -> int | None:
    """The index of the first statement that names ``table``; None when none does (a function locked it)."""
    return next(
        (index for index, read in enumerate(tables) if table in _resolved(read.named | read.altered, sizes)), None
    )


def read_statement(sql: str) -> StatementTables:
    """What a statement sent to the driver names and processes. It carries the driver's placeholders: any value
    reads the same to the grammar."""
    return statement_tables(_PLACEHOLDER.sub("NULL", sql))


def _names_of(relations: Iterable[str]) -> frozenset[str]:
    """Rewritten relations (schema.name) as a statement may write them: qualified, and by their name alone."""
    names: set[str] = set()
    for relation in relations:
        names |= {relation, relation.partition(".")[2]}
    return frozenset(names)


def _resolved(names: Iterable[str], sizes: Mapping[str, catalog.TableSize]) -> set[str]:
    """The target's tables a statement's names mean: qualified as written, a bare name in public first, else the
    one table of that name (a search_path the tool does not know is not guessed further)."""
    found: set[str] = set()
    for name in names:
        if name in sizes:
            found.add(name)
            continue
        if "." in name:
            continue
        if f"public.{name}" in sizes:
            found.add(f"public.{name}")
            continue
        same = [table for table in sizes if table.partition(".")[2] == name]
        if len(same) == 1:
            found.add(same[0])
    return found


def _whole(table: str, samples: Mapping[str, TableSample]) -> bool:
    sample = samples.get(table)
    return sample is not None and sample.whole


def _has_rows(size: catalog.TableSize) -> bool:
    """Whether the target's table may hold rows: counted or estimated above 0, or unknown."""
    return size.estimated_rows != 0
