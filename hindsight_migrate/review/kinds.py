"""The review's kinds, as plain enums: what render words and scripts read, importable without SQLAlchemy."""

from __future__ import annotations

from enum import Enum

# A lock held less than this, on a table it neither rewrites nor writes rows in, is folded
# into one "and N more" line: traffic waits for it about as long as for a slow query.
SHORT_LOCK_SECONDS = 0.05


class NoRehearsal(Enum):
    """Why a plan has no rehearsal; render words it."""

    REQUESTED = "requested"  # --no-rehearsal
    SAVED_PLAN = "saved_plan"  # --plan FILE: it was rehearsed when it was reviewed
    NOTHING_TO_RUN = "nothing_to_run"
    FLEET = "fleet"  # one target of a fleet: the fleet's plan rehearsed on its canary


class FailedAt(Enum):
    """Where a run failed: in a revision, or before the first one started (Alembic reads and creates the version
    table, and env.py runs its own statements, before it asks for the first revision)."""

    REVISION = "revision"
    VERSION_TABLE = "version-table"  # creating the version table env.py names
    ENV_PY = "env.py"  # env.py's own statements, before the first revision


class ChangeKind(Enum):
    """What a plan does, for --detailed-exitcode (as Terraform's -detailed-exitcode): 0, 2 or 3."""

    NOTHING = 0
    CHANGES = 2
    DESTRUCTIVE = 3  # data lost, a table with rows rewritten, or traffic blocked longer than destructive_lock


class Concern(Enum):
    """What kind of item needs attention; the words a reader sees for it are render's."""

    REHEARSAL_FAILED = "rehearsal_failed"
    DATA_LOSS = "data_loss"
    DROP = "drop"  # drops a table or column counted to hold no data: no data lost, code that reads it breaks
    LOCK = "lock"
    RENAME = "rename"
    NOT_OFFLINE = "not_offline"  # its SQL cannot be rendered offline: the review does not show what runs
    RUNS_PYTHON = "runs_python"  # it reads the database from Python (get_bind): its SQL is not all of it
    SERVER_WIDE = "server_wide"  # it changes what the whole server shares (roles, database settings)
    NOT_REHEARSED = "not_rehearsed"  # a statement the rehearsal did not run: no rollback would undo it
    LINT_ERROR = "lint_error"
    WARNING = "warning"


class Level(Enum):
    """How a lint finding weighs: an error blocks up (unless --allow-lint), a warning is shown."""

    ERROR = "error"
    WARNING = "warning"


class Basis(Enum):
    """What a lock's time at the target's size rests on."""

    MEASURED = "measured"  # timed on all of the table's rows: a full copy, the target itself, --rehearse-on URL
    PREDICTED = "predicted"  # timed on a sample of its rows, scaled to the target's rows
    UNKNOWN = "unknown"  # timed on none of its rows (a copy of the schema alone): says nothing of the target
