"""add trigram search index on memory_blocks.content

Revision ID: d528e1c62d2e
Revises: eda51b2b76a6
Create Date: 2026-02-02 11:20:00.000000

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "d528e1c62d2e"
down_revision: str | Sequence[str] | None = "eda51b2b76a6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Enable pg_trgm and index memory_blocks.content for ILIKE/similarity."""
    # pg_trgm ships with PostgreSQL's contrib package; creating it needs a
    # role allowed to create extensions (it is a "trusted" extension, so
    # CREATE privilege on the database is enough since PostgreSQL 13).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        "ix_memory_blocks_content_trgm",
        "memory_blocks",
        ["content"],
        postgresql_using="gin",
        postgresql_ops={"content": "gin_trgm_ops"},
    )


def downgrade() -> None:
    """Drop the trigram index and the pg_trgm extension."""
    op.drop_index("ix_memory_blocks_content_trgm", table_name="memory_blocks")
    # Fails (rather than cascading) if something else still uses pg_trgm,
    # which is the safe outcome.
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
