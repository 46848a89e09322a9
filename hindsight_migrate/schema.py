"""A database's schema as plain data, and what changed between two readings of it: no SQL, no connection.

:func:`hindsight_migrate.postgres.catalog.schema_snapshot` reads a :class:`SchemaSnapshot`; the
rehearsal compares the one before with the one after (:func:`diff_schemas`), renames included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import Enum


@dataclass(frozen=True)
class SchemaSnapshot:
    """The application's schema as plain data: comparable without a connection."""

    columns: dict[str, dict[str, str]]  # table -> column -> "type, NOT NULL, DEFAULT x"
    indexes: dict[str, str]  # index -> definition
    constraints: dict[str, str]  # "table.constraint" -> definition
    extensions: dict[str, str]  # name -> version
    others: frozenset[str]  # views, sequences, types, functions: "kind name"
    # What PostgreSQL knows each table and column by, whatever its name: a table whose oid is
    # kept under another name was renamed (ALTER TABLE ... RENAME), not dropped and made anew,
    # and so was a column that keeps its (table oid, attnum). Only comparable within one database.
    table_ids: dict[str, int] = field(default_factory=dict)  # table -> pg_class oid
    column_ids: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (table, column) -> ids


class Change(Enum):
    """What happened to an object between the two readings; the value is what JSON documents hold."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    RENAMED = "renamed"


@dataclass(frozen=True)
class SchemaChange:
    kind: str  # "table", "column", "index", "constraint", "extension", "view", ...
    name: str  # the name after (for a rename: the new name)
    change: Change
    before: str | None  # the shape before; for a rename, the old name
    after: str | None  # the shape after; for a rename, the new name


@dataclass(frozen=True)
class GroupedChange(SchemaChange):
    """One change made alike in several schemas, for reading (text, markdown) only: ``*.`` in its name and
    shapes stands for each of ``schemas``. Documents never hold one: they list each change per schema."""

    schemas: tuple[str, ...] = ()


def diff_schemas(before: SchemaSnapshot, after: SchemaSnapshot) -> tuple[SchemaChange, ...]:
    """What changed from ``before`` to ``after``, tables first, in a stable order; renames as renames."""
    changes: list[SchemaChange] = []
    renamed_to = _renamed_tables(before, after)  # old name -> new name
    renamed_from = {new: old for old, new in renamed_to.items()}
    for table in sorted((before.columns.keys() - renamed_to.keys()) | after.columns.keys()):
        old_name = renamed_from.get(table, table)
        old, new = before.columns.get(old_name), after.columns.get(table)
        if old is None or new is None:
            shape = ", ".join(f"{c} {t}" for c, t in (new or old or {}).items())
            changes.append(
                SchemaChange(
                    "table",
                    table,
                    Change.ADDED if old is None else Change.REMOVED,
                    None if old is None else shape,
                    shape if old is None else None,
                )
            )
            continue
        if old_name != table:
            changes.append(SchemaChange("table", table, Change.RENAMED, old_name, table))
        changes += _column_changes(before, after, old_name, table)
    changes += _dict_changes("index", before.indexes, after.indexes)
    changes += _dict_changes("constraint", before.constraints, after.constraints)
    changes += _dict_changes("extension", before.extensions, after.extensions)
    for item in sorted(before.others ^ after.others):
        kind, _, name = item.rpartition(" ")
        added = item in after.others
        changes.append(SchemaChange(kind, name, Change.ADDED if added else Change.REMOVED, None, None))
    return tuple(changes)


def _renamed_tables(before: SchemaSnapshot, after: SchemaSnapshot) -> dict[str, str]:
    new_name_of = {oid: table for table, oid in after.table_ids.items()}
    return {
        table: new_name_of[oid]
        for table, oid in before.table_ids.items()
        if oid in new_name_of and new_name_of[oid] != table and table not in after.columns
    }


def _column_changes(before: SchemaSnapshot, after: SchemaSnapshot, old_table: str, table: str) -> list[SchemaChange]:
    """One table's columns: a column that keeps its attnum under another name was renamed."""
    old, new = dict(before.columns[old_table]), dict(after.columns[table])
    new_name_of = {after.column_ids[(table, c)]: c for c in new if (table, c) in after.column_ids}
    changes: list[SchemaChange] = []
    renamed: dict[str, str] = {}  # old column -> new column, both present only under one name
    for column in old:
        ids = before.column_ids.get((old_table, column))
        target = new_name_of.get(ids) if ids is not None and old_table in before.table_ids else None
        if target is not None and target != column and target not in old and column not in new:
            renamed[column] = target
    for column, target in sorted(renamed.items(), key=lambda item: item[1]):
        new_name = f"{table}.{target}"
        changes.append(SchemaChange("column", new_name, Change.RENAMED, f"{table}.{column}", new_name))
        old[target] = old.pop(column)  # what is left to compare is its shape, under its new name
    return changes + _dict_changes("column", old, new, prefix=f"{table}.")


def _dict_changes(kind: str, old: dict[str, str], new: dict[str, str], prefix: str = "") -> list[SchemaChange]:
    changes = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        change = Change.ADDED if before is None else Change.REMOVED if after is None else Change.CHANGED
        changes.append(SchemaChange(kind, prefix + name, change, before, after))
    return changes


def group_across_schemas(changes: tuple[SchemaChange, ...], schemas: tuple[str, ...]) -> tuple[SchemaChange, ...]:
    """The diff of an env.py that migrates ``schemas`` one after the other, with each change that
    happens alike in more than one of them shown once: ``*.widgets.color`` and the schemas, in the
    order of its first appearance. A change in one schema only, or outside them, stays as it is.
    For reading only (text, markdown): documents keep every change, schema by schema."""
    if len(schemas) < 2:
        return changes
    known = set(schemas)
    groups: dict[tuple[object, ...], list[tuple[str, SchemaChange]]] = {}
    order: list[tuple[object, ...] | SchemaChange] = []
    for change in changes:
        schema = change.name.split(".", 1)[0]
        if schema not in known or "." not in change.name:
            order.append(change)
            continue
        own = re.compile(rf"(?<![\w$.\"]){re.escape(schema)}\.")
        general = replace(
            change,
            name="*." + change.name.split(".", 1)[1],
            before=None if change.before is None else own.sub("*.", change.before),
            after=None if change.after is None else own.sub("*.", change.after),
        )
        key = (general.kind, general.name, general.change, general.before, general.after)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((schema, change))
    grouped: list[SchemaChange] = []
    for item in order:
        if isinstance(item, SchemaChange):
            grouped.append(item)
            continue
        members = groups[item]
        if len(members) == 1:
            grouped.append(members[0][1])
            continue
        kind, name, how, before, after = item
        assert isinstance(kind, str) and isinstance(name, str) and isinstance(how, Change)
        grouped.append(
            GroupedChange(
                kind,
                name,
                how,
                before if isinstance(before, str) else None,
                after if isinstance(after, str) else None,
                tuple(schema for schema, _ in members),
            )
        )
    return tuple(grouped)
