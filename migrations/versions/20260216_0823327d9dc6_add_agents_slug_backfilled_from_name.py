"""add agents.slug backfilled from name

Revision ID: 0823327d9dc6
Revises: 320ade7a869e
Create Date: 2026-02-16 13:40:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0823327d9dc6"
down_revision: str | Sequence[str] | None = "320ade7a869e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 1. Slugify: lower-case, runs of anything but [a-z0-9] become one '-',
#    leading/trailing dashes trimmed; names with no usable characters get
#    'agent'. Result is at most 200 chars (name is varchar(200)).
_SLUGIFY = """
UPDATE agents
SET slug = COALESCE(
    NULLIF(btrim(regexp_replace(lower(name), '[^a-z0-9]+', '-', 'g'), '-'), ''),
    'agent'
)
"""

# 2. De-duplicate: the oldest agent keeps the plain slug, later ones get
#    '-' plus the first 8 hex digits of their id (base cut to 191 chars so
#    the result still fits varchar(200)).
_DEDUPLICATE = """
WITH ranked AS (
    SELECT id,
           row_number() OVER (PARTITION BY slug ORDER BY created_at, id) AS rn
    FROM agents
)
UPDATE agents AS a
SET slug = rtrim(left(a.slug, 191), '-') || '-' || left(replace(a.id::text, '-', ''), 8)
FROM ranked AS r
WHERE a.id = r.id AND r.rn > 1
"""

# 3. Belt and braces: if a suffixed slug happens to equal another agent's
#    slug, all but the oldest of them also get the full 32-hex-digit id.
_DEDUPLICATE_FULL_ID = """
WITH ranked AS (
    SELECT id,
           row_number() OVER (PARTITION BY slug ORDER BY created_at, id) AS rn
    FROM agents
)
UPDATE agents AS a
SET slug = rtrim(left(a.slug, 167), '-') || '-' || replace(a.id::text, '-', '')
FROM ranked AS r
WHERE a.id = r.id AND r.rn > 1
"""


def upgrade() -> None:
    """Add agents.slug, backfill it from name, then make it required and unique."""
    # Added nullable first so existing rows can be backfilled.
    op.add_column("agents", sa.Column("slug", sa.String(length=200), nullable=True))
    op.execute(_SLUGIFY)
    op.execute(_DEDUPLICATE)
    op.execute(_DEDUPLICATE_FULL_ID)
    op.alter_column("agents", "slug", existing_type=sa.String(length=200), nullable=False)
    op.create_index("ix_agents_slug", "agents", ["slug"], unique=True)


def downgrade() -> None:
    """Drop agents.slug (the slugs are derived data; name is untouched)."""
    op.drop_index("ix_agents_slug", table_name="agents")
    op.drop_column("agents", "slug")
