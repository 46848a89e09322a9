"""baseline: V1 initial schema

Revision ID: cd3fb603795c
Revises:
Create Date: 2026-01-12 09:00:00.000000

"""

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "cd3fb603795c"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Stand-in for infra/migrations/V1__initial_schema.sql; does nothing.

    The initial schema was created by that hand-run SQL file before Alembic
    was introduced. ``hindsight-migrate bootstrap`` runs the file on an empty
    database and then stamps this revision; databases that already have V1
    are simply stamped. Every later change is a normal revision on top.
    """


def downgrade() -> None:
    """Nothing to undo: this revision only marks the V1 schema as present.

    Going below the baseline means dropping the V1 tables by hand; it is not
    something Alembic manages.
    """
