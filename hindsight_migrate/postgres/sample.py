"""A sample of the target's rows in a scratch copy: what a rehearsal measures when the target is too big to copy.

A copy of the schema alone times every statement on empty tables: a rewrite of a 550 MB table shows 0.03 s
and holds its lock for 14.6 s. A copy of everything is out of reach above the data limit. So the scratch copy
gets the target's schema without its indexes and constraints (``pg_dump --section=pre-data``), then a sample
of each table's rows, then the indexes, constraints and triggers (``--section=post-data``), which are built on
the sampled rows as PostgreSQL builds them on the target's:

* each table gets a share of a byte budget (:func:`sample_shares`; ``rehearsal_sample_mb``, 32 MB: enough that a
  rewrite or an index build on the sample takes long enough to time well, small enough that copying it and
  building its indexes adds seconds to a plan): tables that fit their share whole are copied
  whole, the bigger ones a random set of their pages (``TABLESAMPLE SYSTEM … REPEATABLE``), all in one snapshot
  of the target (a read-only, repeatable-read transaction);
* rows are streamed from the target to the copy with ``COPY … (FORMAT binary)``: they never land in a file;
* a row whose foreign key names a row its parent's sample left out is not copied (the child is read at up to
  20 times its share to make up for it), and any left over down a longer chain is deleted before the constraints
  come back, so that they validate as they do on the target;
* the sequences are set to the target's values, so a revision that inserts does not collide with sampled ids;
* the copy is analysed, as the target is.

How many rows of each table the copy holds is measured afterwards (:func:`sampled_rows`): a statement's time on
the sample is scaled by the target's rows over the sample's (``review/rehearsal/predict.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from hindsight_migrate.postgres.catalog.activity import partition_leaves
from hindsight_migrate.postgres.catalog.objects import TOOL_SCHEMA, quote_identifier

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from hindsight_migrate.postgres.catalog import TableSize
    from hindsight_migrate.postgres.database import Database

# A child table is read at up to this many times its share, to make up for the rows its parents' sample leaves
# without a parent (they are deleted).
MAX_INFLATION = 20.0
# Rows are handed to the copy this many bytes at a time.
_WRITE_BYTES = 1 << 20
# The seed of TABLESAMPLE: the same pages each time, so two plans of the same database agree.
_SEED = 20261204


@dataclass(frozen=True)
class TableSample:
    """What the copy holds of one of the target's tables."""

    table: str  # schema.table
    percent: float  # of the target's pages asked for (100: all of it)
    rows: int  # rows the copy holds, counted after the orphans were removed
    total_bytes: int  # the copy's bytes of it, with its indexes and TOAST
    partitioned: bool = False  # its partitions' samples together (which are listed too): never add both up

    @property
    def whole(self) -> bool:
        return self.percent >= 100.0


def sample_shares(sizes: Mapping[str, TableSize], budget_bytes: int) -> dict[str, float]:
    """Per table, the percent of its pages to copy: the budget shared out from the smallest table up, each
    taking all of itself when it fits its fair share of what is left, and the biggest ones sharing the rest.
    A partitioned table holds no rows of its own: its partitions take its share."""
    shares: dict[str, float] = {}
    left = budget_bytes
    ordered = sorted((size for size in sizes.values() if not size.partitioned), key=lambda size: size.total_bytes)
    for index, size in enumerate(ordered):
        fair = left / (len(ordered) - index)
        if size.total_bytes <= fair:
            shares[size.table] = 100.0
            left -= size.total_bytes
        else:
            shares[size.table] = max(100.0 * fair / size.total_bytes, 0.0001)
            left -= int(fair)
    return shares


_COLUMNS_SQL = """
SELECT a.attname FROM pg_attribute a
 WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
 ORDER BY a.attnum
"""

# Foreign keys between application tables, as (child, its columns, parent, their columns); a partitioned
# table's key once, on the table that declares it (conparentid = 0).
_FOREIGN_KEYS_SQL = f"""
SELECT cn.nspname, c.relname, p.nspname, pc.relname,
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i)
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
  JOIN pg_class pc ON pc.oid = k.confrelid JOIN pg_namespace p ON p.oid = pc.relnamespace
 WHERE k.contype = 'f' AND k.conparentid = 0 AND cn.nspname <> '{TOOL_SCHEMA}'
"""


def copy_sample(source: Database, copy: Database, shares: Mapping[str, float]) -> dict[str, str]:
    """Writes (the copy, only): stream each table's share of rows from ``source`` into ``copy`` (whose schema is
    there without its constraints yet), then delete the rows whose foreign keys the sample broke. Returns the
    tables that could not be sampled, with what PostgreSQL said (no SELECT on one: the copy keeps it empty)."""
    skipped: dict[str, str] = {}
    with source.connect() as reading, copy.connect() as writing:
        source_raw = _raw(reading)
        copy_raw = _raw(writing)
        source_raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        keys = source_raw.execute(_FOREIGN_KEYS_SQL).fetchall()
        reads = _through_parents(shares, keys)
        for table, percent in sorted(reads.items()):
            schema, _, name = table.partition(".")
            columns = [row[0] for row in source_raw.execute(_COLUMNS_SQL, (_quoted(table),)).fetchall()]
            if not columns:
                continue
            listed = sql.SQL(", ").join(sql.Identifier(column) for column in columns)
            # Rows whose parent the parent's sample leaves out are left out here already (the same pages of the
            # parent in the same snapshot): they would only be copied to be deleted.
            kept = [_has_parent(key, reads) for key in keys if f"{key[0]}.{key[1]}" == table]
            conditions = [condition for condition in kept if condition is not None]
            where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
            out = sql.SQL("COPY (SELECT {} FROM {}{}) TO STDOUT (FORMAT binary)").format(
                listed, _sampled(schema, name, percent, "c"), where
            )
            into = sql.SQL("COPY {}.{} ({}) FROM STDIN (FORMAT binary)").format(
                sql.Identifier(schema), sql.Identifier(name), listed
            )
            source_raw.execute("SAVEPOINT sample")
            try:
                with source_raw.cursor().copy(out) as rows_out, copy_raw.cursor().copy(into) as rows_in:
                    # psycopg hands out a row at a time: written a megabyte at a time instead.
                    pending: list[memoryview] = []
                    size = 0
                    for block in rows_out:
                        pending.append(block)
                        size += len(block)
                        if size >= _WRITE_BYTES:
                            rows_in.write(b"".join(pending))
                            pending, size = [], 0
                    if pending:
                        rows_in.write(b"".join(pending))
                source_raw.execute("RELEASE SAVEPOINT sample")
                copy_raw.commit()
            except psycopg.Error as err:  # no SELECT on it, a type the copy lacks: this table stays empty
                source_raw.execute("ROLLBACK TO SAVEPOINT sample")
                copy_raw.rollback()
                skipped[table] = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        source_raw.execute("ROLLBACK")
        _delete_orphans(copy_raw, keys)
    return skipped


def _sampled(schema: str, name: str, percent: float, alias: str) -> sql.Composable:
    """A table's rows, or its pages' share with the seed: the same rows wherever it is written, in one snapshot."""
    relation = sql.SQL("ONLY {}.{} {}").format(sql.Identifier(schema), sql.Identifier(name), sql.Identifier(alias))
    if percent >= 100.0:
        return relation
    return sql.SQL("{} TABLESAMPLE SYSTEM ({}) REPEATABLE ({})").format(
        relation, sql.Literal(percent), sql.Literal(_SEED)
    )


def _has_parent(key: tuple[str, str, str, str, Any, Any], reads: Mapping[str, float]) -> sql.Composable | None:
    """The condition that a row of the child (``c``) has its parent in the parent's sample, or one of the key's
    columns null (MATCH SIMPLE: no parent needed); None when the parent is its own child or not sampled."""
    child_schema, child, parent_schema, parent, child_columns, parent_columns = key
    of = f"{parent_schema}.{parent}"
    if of == f"{child_schema}.{child}" or of not in reads or reads[of] >= 100.0:
        return None
    unset = sql.SQL(" OR ").join(sql.SQL("c.{} IS NULL").format(sql.Identifier(column)) for column in child_columns)
    mine = sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(column)) for column in child_columns)
    theirs = sql.SQL(", ").join(sql.SQL("p.{}").format(sql.Identifier(column)) for column in parent_columns)
    return sql.SQL("({} OR ({}) IN (SELECT {} FROM {}))").format(
        unset, mine, theirs, _sampled(parent_schema, parent, reads[of], "p")
    )


def _through_parents(shares: Mapping[str, float], keys: list[tuple[str, str, str, str, Any, Any]]) -> dict[str, float]:
    """The percent of each table's pages to read, so that what is left of it once its rows without a sampled
    parent are gone is about its share: a child of a table sampled at 5 % keeps about 5 % of what it read.
    (Capped at all of it, and at MAX_INFLATION times its share, so that a plan stays quick.)"""
    kept = {table: 1.0 for table in shares}
    for child_schema, child, parent_schema, parent, _, _ in keys:
        table, of = f"{child_schema}.{child}", f"{parent_schema}.{parent}"
        if table in kept and of in shares and of != table:
            kept[table] *= shares[of] / 100.0
    return {table: min(100.0, percent / max(kept[table], 1 / MAX_INFLATION)) for table, percent in shares.items()}


def _delete_orphans(raw: Any, keys: list[tuple[str, str, str, str, list[str], list[str]]]) -> None:
    """Delete sampled rows whose foreign key (all of its columns set: MATCH SIMPLE) finds no parent in the sample,
    until none is left: a deleted parent can orphan its children in turn. A table that lost rows is compacted
    (VACUUM FULL, cheap before its indexes exist): its pages must hold rows as densely as the target's, or a
    rewrite of the sample reads more pages per row than the target's will."""
    shrunk: set[tuple[str, str]] = set()
    for _ in range(32):  # a chain deeper than this is not a schema anyone keeps
        deleted = 0
        for child_schema, child, parent_schema, parent, child_columns, parent_columns in keys:
            set_columns = sql.SQL(" AND ").join(
                sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(column)) for column in child_columns
            )
            matching = sql.SQL(" AND ").join(
                sql.SQL("p.{} = c.{}").format(sql.Identifier(p), sql.Identifier(c))
                for c, p in zip(child_columns, parent_columns, strict=True)
            )
            statement = sql.SQL(
                "DELETE FROM {}.{} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {}.{} p WHERE {})"
            ).format(
                sql.Identifier(child_schema),
                sql.Identifier(child),
                set_columns,
                sql.Identifier(parent_schema),
                sql.Identifier(parent),
                matching,
            )
            gone = raw.execute(statement).rowcount or 0
            if gone:
                shrunk.add((child_schema, child))
            deleted += gone
        if not deleted:
            break
    raw.commit()
    raw.autocommit = True
    try:
        for schema, table in sorted(shrunk):
            raw.execute(sql.SQL("VACUUM FULL {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
    finally:
        raw.autocommit = False


def set_sequences(copy: Database, values: Mapping[str, int | None]) -> None:
    """Writes (the copy): each sequence at the target's last value, so that rows a revision inserts into the
    sample get ids the sampled rows do not have."""
    with copy.connect() as connection:
        raw = _raw(connection)
        for name, value in values.items():
            if value is not None:
                raw.execute("SELECT setval(to_regclass(%s), %s)", (_quoted(name), value))
        raw.commit()


def analyse(copy: Database, tables: Iterable[str]) -> None:
    """Writes (the copy's statistics): VACUUM ANALYZE of the sampled tables (not the catalogs: they are as the
    restore left them), so that the sample is planned and scanned as a table PostgreSQL keeps up is (hint bits
    and visibility map set, statistics read)."""
    names = [_quoted(table) for table in tables]
    with copy.connect() as connection:
        raw = _raw(connection)
        raw.rollback()
        raw.autocommit = True
        try:
            # One statement for all, each name quoted; a table the restore did not make is skipped.
            found = raw.execute(
                "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NOT NULL", (names,)
            )
            present = [row[0] for row in found.fetchall()]
            if present:
                raw.execute(f"VACUUM (ANALYZE) {', '.join(present)}")
        finally:
            raw.autocommit = False


def sampled_rows(copy: Database, shares: Mapping[str, float]) -> dict[str, TableSample]:
    """Read-only (the copy): how many rows of each sampled table the copy holds, and their bytes; a partitioned
    table's are its sampled partitions' together, at the smallest of their shares."""
    samples: dict[str, TableSample] = {}
    with copy.connect() as connection:
        leaves = partition_leaves(connection)
        connection.rollback()
        raw = _raw(connection)
        for table, percent in shares.items():
            relation = _quoted(table)
            found = raw.execute("SELECT pg_total_relation_size(to_regclass(%s))", (relation,)).fetchone()
            if found is None or found[0] is None:  # the restore did not make it
                continue
            rows = raw.execute(f"SELECT count(*) FROM ONLY {relation}").fetchone()
            samples[table] = TableSample(table, percent, int(rows[0]) if rows else 0, int(found[0]))
        raw.rollback()
    for parent, parts in leaves.items():
        sampled = [samples[leaf] for leaf in parts if leaf in samples]
        if sampled:
            samples[parent] = TableSample(
                parent,
                min(sample.percent for sample in sampled),
                sum(sample.rows for sample in sampled),
                sum(sample.total_bytes for sample in sampled),
                partitioned=True,
            )
    return samples


def _quoted(table: str) -> str:
    schema, _, name = table.partition(".")
    return f"{quote_identifier(schema)}.{quote_identifier(name)}"


def _raw(connection: Any) -> Any:
    raw = connection.connection.driver_connection
    assert raw is not None
    return raw
