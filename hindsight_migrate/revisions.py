"""Plain data about revisions and what autogenerate found: no Alembic, no SQLAlchemy.

The adapter (``alembic_api``) builds these from Alembic's objects; everything else (the
plan, history, the graph cache, render) reads only these, so importing them costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path


@dataclass(frozen=True)
class VersionTable:
    """Where env.py keeps the version table: ``context.configure(version_table=…, version_table_schema=…)``.

    A project may name its own (two environments in one database keep one each); the tool learns it from
    env.py's configure() and never assumes Alembic's default when env.py said otherwise.
    """

    name: str = "alembic_version"  # Alembic's default, used until env.py has configured a run
    schema: str | None = None


class RevisionState(Enum):
    """Where a revision stands in the database; the value is what `history --format json` holds."""

    CURRENT = "current"  # the version table holds it
    APPLIED = "applied"  # an ancestor of what it holds
    PENDING = "pending"


class Direction(Enum):
    """Which way a plan goes: up applies revisions (upgrade()), down reverts them (downgrade())."""

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class RevisionInfo:
    """One revision file, as the graph sees it."""

    revision: str
    parents: tuple[str, ...]
    children: tuple[str, ...]
    message: str
    created: str | None  # the "Create Date:" of the file header, as written
    path: Path  # relative to the project folder (the one holding alembic.ini) when inside it
    branch_labels: tuple[str, ...]
    is_head: bool
    is_base: bool
    is_branch_point: bool
    is_merge_point: bool


@dataclass(frozen=True)
class GraphSources:
    """Where Alembic finds the revision files, and how it walks the folders (for the graph cache)."""

    script_dir: Path  # script_location, as configured (Alembic refuses it when it does not exist)
    version_locations: tuple[Path, ...]  # absolute; a folder that does not exist is skipped by Alembic
    recursive: bool  # recursive_version_locations: subfolders hold revision files too
    sourceless: bool  # sourceless: .pyc files in __pycache__ count as revision files
    relative_to_cwd: bool  # a location was configured as a relative path: the folders depend on the cwd


@dataclass(frozen=True)
class Operation:
    """One schema operation autogenerate detected, as plain data (no Alembic objects)."""

    kind: str  # add_table, drop_table, add_column, drop_column, alter_column, add_index, ...
    table: str
    name: str  # column, index or constraint name; the table name for table operations
    columns: tuple[tuple[str, str], ...] = ()  # (name, type) of a created or dropped table
    type: str | None = None  # the column's type (add/drop column), or the new type (alter)
    existing_type: str | None = None  # alter_column: the type before
    nullable: bool | None = None  # add_column: the column's; alter_column: the new nullability
    has_server_default: bool = False
