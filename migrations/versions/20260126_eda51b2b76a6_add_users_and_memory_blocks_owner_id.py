"""add users and memory_blocks.owner_id

Revision ID: eda51b2b76a6
Revises: af874b5e21e4
Create Date: 2026-01-26 14:05:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "eda51b2b76a6"
down_revision: str | Sequence[str] | None = "af874b5e21e4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create users; give memory blocks an optional owner."""
    op.create_table(
        "users",
        sa.Column(
            "id",
            sa.Uuid(),
            server_default=sa.text("gen_random_uuid()"),
            nullable=False,
        ),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="users_pkey"),
        sa.UniqueConstraint("email", name="users_email_key"),
    )
    # Nullable: existing memory blocks have no owner; deleting a user keeps
    # their memory blocks and just clears the owner.
    op.add_column("memory_blocks", sa.Column("owner_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        "memory_blocks_owner_id_fkey",
        "memory_blocks",
        "users",
        ["owner_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index("ix_memory_blocks_owner_id", "memory_blocks", ["owner_id"])


def downgrade() -> None:
    """Drop memory_blocks.owner_id and the users table."""
    op.drop_index("ix_memory_blocks_owner_id", table_name="memory_blocks")
    op.drop_constraint("memory_blocks_owner_id_fkey", "memory_blocks", type_="foreignkey")
    op.drop_column("memory_blocks", "owner_id")
    op.drop_table("users")
