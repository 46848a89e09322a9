"""The only code that imports Alembic, in three parts that follow Alembic's own seams.

* :mod:`.graph` — the revision graph, from ``ScriptDirectory`` (no database, no env.py);
* :mod:`.environment` — env.py runs: online on the tool's connection (:mod:`.handoff` lends
  it to whatever engine env.py builds), offline for SQL;
* :mod:`.authoring` — revision files written by autogenerate and merge.

:mod:`.translate` is the one place Alembic's errors, and exceptions from the project's own
code, become the tool's. The plain data these return lives in :mod:`hindsight_migrate.revisions`.
Nothing here imports Alembic or SQLAlchemy at module level.
"""

from hindsight_migrate.alembic_api.project import AlembicProject

__all__ = ["AlembicProject"]
