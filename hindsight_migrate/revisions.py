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

    @property
    def environment(self) -> str:
        """What the tool's records say an environment is, in a database several may share: its version table
        ("alembic_version", "tenant.alembic_version"), which two environments of one database never share."""
        return f"{self.schema}.{self.name}" if self.schema else self.name


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
    # alter_column: the new server default as SQL ("NULL" when it is dropped); None when it does not change.
    server_default: str | None = None


class ComparedBy(Enum):
    """Who decided whether autogenerate compares something (types, server defaults); the value is JSON's."""

    TOOL = "tool"  # env.py asked for the comparison or left it to the tool: compared, the tool's way
    ENV_PY = "env_py"  # env.py passed a function of its own: compared, its way
    OFF = "off"  # env.py passed False: not compared


@dataclass(frozen=True)
class UncomparedDefault:
    """A column whose server default could not be compared: what each side holds, and why."""

    table: str
    column: str
    database: str | None  # the default in the database, as PostgreSQL shows it
    models: str  # the models' default, as SQL
    why: str  # what PostgreSQL said when the models' default was stored as it would store it


@dataclass(frozen=True)
class Comparison:
    """What autogenerate compared between the models and the database, besides tables, columns, indexes and keys."""

    types: ComparedBy
    server_defaults: ComparedBy
    uncompared_defaults: tuple[UncomparedDefault, ...] = ()  # compared, except these (said, never passed)

    def not_compared(self) -> tuple[str, ...]:
        """What was not compared, one phrase each: options env.py turned off, and each server default PostgreSQL
        could not store as the models have it (with what it said)."""
        said = ["column types (env.py passes compare_type=False)"] if self.types is ComparedBy.OFF else []
        if self.server_defaults is ComparedBy.OFF:
            said.append("server defaults (env.py passes compare_server_default=False)")
        said += [
            f"the server default of {d.table}.{d.column} (database {d.database or 'none'}, models {d.models}: {d.why})"
            for d in self.uncompared_defaults
        ]
        return tuple(said)

    def words(self) -> str:
        """Whether types and server defaults were compared, in a few words, for the list of what was checked."""

        def one(what: str, by: ComparedBy) -> str:
            if by is ComparedBy.OFF:
                return f"{what} not compared (env.py turned it off)"
            return f"{what} compared" + (" by env.py's own function" if by is ComparedBy.ENV_PY else "")

        words = f"{one('types', self.types)}, {one('server defaults', self.server_defaults)}"
        if self.uncompared_defaults:
            words += f" except {len(self.uncompared_defaults)} PostgreSQL could not compare"
        return words
