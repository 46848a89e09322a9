"""widen feedback_logs.rating to integer and add a check

Revision ID: 2345964a88e0
Revises: eda51b2b76a6
Create Date: 2026-02-03 16:45:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "2345964a88e0"
down_revision: str | Sequence[str] | None = "eda51b2b76a6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """rating: smallint -> integer, restricted to 1..5."""
    op.alter_column(
        "feedback_logs",
        "rating",
        type_=sa.Integer(),
        existing_type=sa.SmallInteger(),
        existing_nullable=False,
    )
    # Fails if existing rows hold ratings outside 1..5; clean those up first.
    op.create_check_constraint(
        "ck_feedback_logs_rating_range",
        "feedback_logs",
        "rating BETWEEN 1 AND 5",
    )


def downgrade() -> None:
    """Drop the check and narrow rating back to smallint."""
    op.drop_constraint("ck_feedback_logs_rating_range", "feedback_logs", type_="check")
    # Safe narrowing: while upgraded, the check kept every rating in 1..5,
    # which fits smallint.
    op.alter_column(
        "feedback_logs",
        "rating",
        type_=sa.SmallInteger(),
        existing_type=sa.Integer(),
        existing_nullable=False,
    )
