"""SQLAlchemy models of the Hindsight schema at the Alembic head revision.

This is ``target_metadata`` for Alembic autogenerate: against a database
upgraded to head, ``alembic revision --autogenerate`` must find no
differences. When you change a model, add a revision that makes the same
change (and vice versa). Constraint and index names are spelled out because
the tables started life in infra/migrations/V1__initial_schema.sql, which
uses PostgreSQL's default names (``<table>_pkey``, ``<table>_<col>_fkey``,
``<table>_<col>_key``) and SQLAlchemy's ``ix_<table>_<col>`` for indexes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

_GEN_UUID = text("gen_random_uuid()")


class Base(DeclarativeBase):
    """Declarative base; ``Base.metadata`` is Alembic's target_metadata."""


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="users_pkey"),
        UniqueConstraint("email", name="users_email_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, server_default=_GEN_UUID)
    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="agents_pkey"),
        Index("ix_agents_slug", "slug", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, server_default=_GEN_UUID)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AgentTranscript(Base):
    __tablename__ = "agent_transcripts"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="agent_transcripts_pkey"),
        Index("ix_agent_transcripts_agent_id_created_at", "agent_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False))
    agent_id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        ForeignKey("agents.id", name="agent_transcripts_agent_id_fkey", ondelete="CASCADE"),
    )
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MemoryBlock(Base):
    __tablename__ = "memory_blocks"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="memory_blocks_pkey"),
        Index("ix_memory_blocks_agent_id", "agent_id"),
        Index("ix_memory_blocks_owner_id", "owner_id"),
        Index(
            "ix_memory_blocks_content_trgm",
            "content",
            postgresql_using="gin",
            postgresql_ops={"content": "gin_trgm_ops"},
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, server_default=_GEN_UUID)
    agent_id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        ForeignKey("agents.id", name="memory_blocks_agent_id_fkey", ondelete="CASCADE"),
    )
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid,
        ForeignKey("users.id", name="memory_blocks_owner_id_fkey", ondelete="SET NULL"),
    )
    content: Mapped[str] = mapped_column(Text)
    # "metadata" is reserved on declarative classes, hence the attribute name.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FeedbackLog(Base):
    __tablename__ = "feedback_logs"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="feedback_logs_pkey"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="ck_feedback_logs_rating_range"),
        Index("ix_feedback_logs_memory_id", "memory_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False))
    memory_id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        ForeignKey("memory_blocks.id", name="feedback_logs_memory_id_fkey", ondelete="CASCADE"),
    )
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Keyword(Base):
    __tablename__ = "keywords"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="keywords_pkey"),
        UniqueConstraint("keyword", name="keywords_keyword_key"),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(always=False))
    keyword: Mapped[str] = mapped_column(String(100))


class MemoryBlockKeyword(Base):
    __tablename__ = "memory_block_keywords"
    __table_args__ = (
        PrimaryKeyConstraint("memory_id", "keyword_id", name="memory_block_keywords_pkey"),
        Index("ix_memory_block_keywords_keyword_id", "keyword_id"),
    )

    memory_id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        ForeignKey(
            "memory_blocks.id",
            name="memory_block_keywords_memory_id_fkey",
            ondelete="CASCADE",
        ),
    )
    keyword_id: Mapped[int] = mapped_column(
        Integer,
        ForeignKey(
            "keywords.id",
            name="memory_block_keywords_keyword_id_fkey",
            ondelete="CASCADE",
        ),
    )
