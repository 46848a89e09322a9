"""``merge``: join the chain's heads with a merge revision (Alembic's merge), when there are several."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hindsight_migrate.errors import Refused

if TYPE_CHECKING:
    from hindsight_migrate.alembic_api import AlembicProject


@dataclass(frozen=True)
class Merged:
    revision: str
    path: Path
    heads: tuple[str, ...]  # the heads it joins


def merge_heads(project: AlembicProject, message: str) -> Merged:
    """Writes a revision file that joins every head; refuses (nothing written) when there is one head or none."""
    heads = project.graph.heads()
    if len(heads) < 2:
        raise Refused(f"The chain has one head ({', '.join(heads) or 'none'}): there is nothing to merge.")
    revision, path = project.authoring.merge_heads(message)
    return Merged(revision, path, tuple(heads))
