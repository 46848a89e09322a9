"""rename memory_blocks.memory_id to id

Revision ID: af874b5e21e4
Revises: cd3fb603795c
Create Date: 2026-01-19 10:30:00.000000

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "af874b5e21e4"
down_revision: str | Sequence[str] | None = "cd3fb603795c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Rename the primary key column memory_blocks.memory_id to id."""
    # A plain column rename: PostgreSQL keeps the primary key constraint
    # (still named memory_blocks_pkey) and the foreign keys in feedback_logs
    # and memory_block_keywords, which reference the column by number and so
    # follow the rename automatically. Their own column names (memory_id) and
    # constraint names are unchanged.
    op.alter_column("memory_blocks", "memory_id", new_column_name="id")


def downgrade() -> None:
    """Rename memory_blocks.id back to memory_id."""
    op.alter_column("memory_blocks", "id", new_column_name="memory_id")
