"""Review what autogenerate detected, before it becomes a revision file.

Autogenerate cannot tell a rename from a drop and an add, and writes both happily: the data
of the old column or table is lost. This flags every drop, every type narrowing and every
new NOT NULL without a server default, and names the probable renames with the operation to
use instead. Pure functions over :class:`~hindsight_migrate.alembic_api.Operation`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from hindsight_migrate.revisions import Operation


class Severity(Enum):
    """How much harm an operation autogenerate wrote may do: danger (data lost), caution (worth a look)."""

    DANGER = "danger"
    CAUTION = "caution"


DANGER, CAUTION = Severity.DANGER, Severity.CAUTION

# What a finding puts at risk, to be counted on the target: every row of the table (a drop,
# a NOT NULL column added without a default), or the rows holding a value in the column.
Affects = Literal["table_rows", "column_values"]

_INTEGER_WIDTH = {"SMALLINT": 2, "INTEGER": 4, "INT": 4, "BIGINT": 8}
_SIZED = re.compile(r"^(?P<base>[A-Z ]+?)\s*(\((?P<size>\d+)(,\s*(?P<scale>\d+))?\))?$")


@dataclass(frozen=True)
class ReviewFinding:
    level: Severity
    operation: Operation
    message: str
    instead: str | None = None  # the operation to write instead, for a probable rename
    affects: Affects | None = None  # None: the finding puts no rows at risk (an index, a constraint)
    counted: bool = False  # whether the rows were counted on the target (see autogen.count_affected_rows)
    rows: int | None = None  # counted: the rows at risk; None: the target has no such table or column
    rows_exact: bool = False  # False: the planner's estimate (pg_class.reltuples), the count took too long

    @property
    def rows_on_target(self) -> str | None:
        """The count in words, as the output and the revision file's ``# DANGER:`` comment say it."""
        if self.affects is None or not self.counted:
            return None
        if self.rows is None:
            op = self.operation
            missing = f"table {op.table}" if self.affects == "table_rows" else f"column {op.table}.{op.name}"
            return f"no rows on the target: it has no {missing}"
        noun = "row" if self.rows == 1 else "rows"
        if not self.rows_exact:
            if self.rows == 0:  # reltuples says 0 (or -1) for a table never analysed, too: no estimate at all
                return "rows on the target unknown: no exact count within 5s, and the planner has no estimate"
            return f"about {self.rows:,} {noun} on the target, the planner's estimate: no exact count within 5s"
        if self.rows == 0:
            return "no rows on the target"
        return f"{self.rows:,} {noun} on the target"


def review_operations(operations: tuple[Operation, ...]) -> tuple[ReviewFinding, ...]:
    findings: list[ReviewFinding] = []
    renames = _probable_renames(operations)
    findings.extend(renames)
    renamed = {id(f.operation) for f in renames}
    for op in operations:
        if op.kind == "drop_table" and id(op) not in renamed:
            findings.append(ReviewFinding(DANGER, op, f"drops table {op.table} and all its rows", affects="table_rows"))
        elif op.kind == "drop_column" and id(op) not in renamed:
            findings.append(
                ReviewFinding(DANGER, op, f"drops column {op.table}.{op.name} and its data", affects="column_values")
            )
        elif op.kind in ("drop_index", "drop_constraint"):
            findings.append(ReviewFinding(CAUTION, op, f"drops {op.kind.removeprefix('drop_')} {op.name}"))
        elif op.kind == "add_column" and op.nullable is False and not op.has_server_default:
            findings.append(
                ReviewFinding(
                    DANGER,
                    op,
                    f"adds NOT NULL column {op.table}.{op.name} without a server default: fails on a table "
                    "that has rows (add it nullable, backfill, then set NOT NULL; or give it a server_default)",
                    affects="table_rows",
                )
            )
        elif op.kind == "alter_column":
            if op.type and op.existing_type and _narrows(op.existing_type, op.type):
                findings.append(
                    ReviewFinding(
                        DANGER,
                        op,
                        f"narrows {op.table}.{op.name} from {op.existing_type} to {op.type}: values that do not "
                        "fit make the migration fail, or are cut",
                        affects="column_values",
                    )
                )
            if op.nullable is False and not op.has_server_default:
                findings.append(
                    ReviewFinding(
                        CAUTION,
                        op,
                        f"makes {op.table}.{op.name} NOT NULL: fails if a row holds NULL, and scans the table "
                        "under an ACCESS EXCLUSIVE lock",
                    )
                )
    return tuple(findings)


def _probable_renames(operations: tuple[Operation, ...]) -> list[ReviewFinding]:
    findings: list[ReviewFinding] = []
    dropped_tables = [op for op in operations if op.kind == "drop_table"]
    added_tables = [op for op in operations if op.kind == "add_table"]
    for dropped in dropped_tables:
        for added in added_tables:
            if _compatible_columns(dropped.columns, added.columns):
                findings.append(
                    ReviewFinding(
                        DANGER,
                        dropped,
                        f"drops table {dropped.table} and creates {added.table} with the same columns: probably a "
                        "rename, which as written loses every row",
                        instead=f'op.rename_table("{dropped.table}", "{added.table}")',
                        affects="table_rows",
                    )
                )
                break
    dropped_columns = [op for op in operations if op.kind == "drop_column"]
    added_columns = [op for op in operations if op.kind == "add_column"]
    for dropped in dropped_columns:
        for added in added_columns:
            if added.table == dropped.table and _same_type(added.type, dropped.type):
                findings.append(
                    ReviewFinding(
                        DANGER,
                        dropped,
                        f"drops {dropped.table}.{dropped.name} and adds {added.table}.{added.name} of the same type: "
                        "probably a rename, which as written loses the column's data",
                        instead=f'op.alter_column("{dropped.table}", "{dropped.name}", new_column_name="{added.name}")',
                        affects="column_values",
                    )
                )
                break
    return findings


def _compatible_columns(old: tuple[tuple[str, str], ...], new: tuple[tuple[str, str], ...]) -> bool:
    if not old or len(old) != len(new):
        return False
    return sorted(_normal(t) for _, t in old) == sorted(_normal(t) for _, t in new) and (
        len({n for n, _ in old} & {n for n, _ in new}) * 2 >= len(old)
    )


def _same_type(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and _normal(a) == _normal(b)


def _normal(type_: str) -> str:
    return " ".join(type_.upper().split())


def _narrows(old: str, new: str) -> bool:
    """Whether ``new`` holds less than ``old``: a shorter varchar, a smaller integer, text to varchar."""
    before, after = _SIZED.match(_normal(old)), _SIZED.match(_normal(new))
    if not before or not after:
        return False
    old_base, new_base = before["base"].strip(), after["base"].strip()
    if old_base in _INTEGER_WIDTH and new_base in _INTEGER_WIDTH:
        return _INTEGER_WIDTH[new_base] < _INTEGER_WIDTH[old_base]
    if old_base == "TEXT" and new_base in ("VARCHAR", "CHAR", "CHARACTER VARYING"):
        return True
    if old_base == new_base and before["size"] and after["size"]:
        if int(after["size"]) < int(before["size"]):
            return True
        return bool(before["scale"] and after["scale"] and int(after["scale"]) < int(before["scale"]))
    # VARCHAR -> VARCHAR(n)
    return old_base == new_base and not before["size"] and bool(after["size"])
