"""Run the pending revisions for real somewhere safe, and measure what they did: see :mod:`.orchestrate`.

* :mod:`.model`: what a rehearsal measured, and how it was asked for;
* :mod:`.orchestrate`: where it runs (a scratch copy, the target rolled back, another database), and the checks
  after it;
* :mod:`.strategies`: the two ways it runs (committing per revision, or one rolled-back transaction);
* :mod:`.privileges`: what the apply needs on the target that a copy cannot show;
* :mod:`.meter`: statement timings, locks, rows written and rewrites.
"""

from hindsight_migrate.review.rehearsal.model import (
    ImpactRow,
    Rehearsal,
    RehearsalFailure,
    RehearsalOptions,
    RehearsalPlace,
    RehearsalTarget,
    RevisionCost,
    StatementCost,
)
from hindsight_migrate.review.rehearsal.orchestrate import rehearse
from hindsight_migrate.review.rehearsal.strategies import revision_source

__all__ = [
    "ImpactRow",
    "Rehearsal",
    "RehearsalFailure",
    "RehearsalOptions",
    "RehearsalPlace",
    "RehearsalTarget",
    "RevisionCost",
    "StatementCost",
    "rehearse",
    "revision_source",
]
