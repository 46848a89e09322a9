"""merge search and feedback branches

Revision ID: 320ade7a869e
Revises: d528e1c62d2e, 2345964a88e0
Create Date: 2026-02-09 09:15:00.000000

"""

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "320ade7a869e"
down_revision: str | Sequence[str] | None = ("d528e1c62d2e", "2345964a88e0")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Merge point only: joins the two heads, no schema change."""


def downgrade() -> None:
    """Merge point only: nothing to undo."""
