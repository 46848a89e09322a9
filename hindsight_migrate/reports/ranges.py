"""A range of revisions as ``up --sql`` and ``lint`` read it: ``FROM:TO``, or ``TO`` alone. One parser for both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hindsight_migrate.alembic_api import AlembicProject


@dataclass(frozen=True)
class UpgradeRange:
    start: tuple[str, ...]  # the heads the range starts from (empty: the very beginning)
    end: str  # a revision, a unique prefix, head or heads


def upgrade_range(project: AlembicProject, spec: str, *, start_when_missing: str | None) -> UpgradeRange:
    """Reads the revision graph: ``FROM:TO`` (FROM ``base``: the beginning; TO empty: ``heads``), or ``TO`` alone,
    which starts at ``start_when_missing`` (``up --sql``: the baseline, which V1 stands for; else the beginning)."""
    first, colon, end = spec.rpartition(":")
    if not colon or not first:
        first = start_when_missing or ""
    start = (project.graph.resolve(first).revision,) if first and first != "base" else ()
    return UpgradeRange(start, end or "heads")
