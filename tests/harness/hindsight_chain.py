"""The revision ids of Hindsight's own chain (migrations/versions), as the tests name them, and a copy
of the project brought to its head.

Baseline, a rename, then a branch point with two branches (search, feedback), their merge,
and two revisions after it.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import invoke

BASELINE = "cd3fb603795c"
AFTER_BASELINE = "af874b5e21e4"
BRANCH_POINT = "eda51b2b76a6"
SEARCH_BRANCH = "d528e1c62d2e"
FEEDBACK_BRANCH = "2345964a88e0"
MERGE = "320ade7a869e"
AFTER_MERGE = "0823327d9dc6"
HEAD = "461838d94bcb"


def at_head(project: Path, url: str) -> str:
    """Bring the empty database at ``url`` to HEAD with a copy of Hindsight's project (bootstrap and the
    whole chain, not rehearsed); return the -c argument."""
    ini = str(project / "alembic.ini")
    result = invoke("-c", ini, "--url", url, "up", "--yes", "--no-rehearsal")
    assert result.exit_code == 0, result.output
    return ini
