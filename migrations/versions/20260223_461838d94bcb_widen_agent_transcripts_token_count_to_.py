"""widen agent_transcripts.token_count to bigint

Revision ID: 461838d94bcb
Revises: 0823327d9dc6
Create Date: 2026-02-23 10:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "461838d94bcb"
down_revision: str | Sequence[str] | None = "0823327d9dc6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """token_count: integer -> bigint (rewrites the table)."""
    op.alter_column(
        "agent_transcripts",
        "token_count",
        type_=sa.BigInteger(),
        existing_type=sa.Integer(),
        existing_nullable=True,
    )


def downgrade() -> None:
    """token_count: bigint -> integer; fails if a value exceeds integer range."""
    op.alter_column(
        "agent_transcripts",
        "token_count",
        type_=sa.Integer(),
        existing_type=sa.BigInteger(),
        existing_nullable=True,
    )
