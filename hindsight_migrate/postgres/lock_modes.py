"""PostgreSQL's table lock modes, as a vocabulary: how strong each is, and what it stops other sessions doing.

Plain: no SQL and no driver. The mode names are pg_locks' own (``AccessExclusiveLock``), so a row of
pg_locks reads straight into a :class:`LockMode`.
"""

from __future__ import annotations

from enum import Enum


class Blocks(Enum):
    """What a lock stops other sessions' ordinary traffic from doing; the value is the words a reader sees."""

    READS_AND_WRITES = "reads and writes"
    WRITES = "writes"
    NOTHING = "nothing"  # it only waits for (or blocks) other DDL and VACUUM


class LockMode(Enum):
    """A table lock mode, strongest first (PostgreSQL's docs, "Table-Level Locks")."""

    ACCESS_EXCLUSIVE = "AccessExclusiveLock"
    EXCLUSIVE = "ExclusiveLock"
    SHARE_ROW_EXCLUSIVE = "ShareRowExclusiveLock"
    SHARE = "ShareLock"
    SHARE_UPDATE_EXCLUSIVE = "ShareUpdateExclusiveLock"
    ROW_EXCLUSIVE = "RowExclusiveLock"
    ROW_SHARE = "RowShareLock"
    ACCESS_SHARE = "AccessShareLock"

    @classmethod
    def of(cls, name: str) -> LockMode | None:
        """pg_locks' mode, or None for one that is not a table lock mode (SIReadLock, a predicate lock)."""
        try:
            return cls(name)
        except ValueError:
            return None

    @property
    def strength(self) -> int:
        """Higher is stronger: the order of the members, reversed."""
        return len(_ORDER) - _ORDER.index(self)

    @property
    def blocks(self) -> Blocks:
        return _BLOCKS[self]

    @property
    def words(self) -> str:
        """As the docs write it: ``ACCESS EXCLUSIVE``."""
        return self.name.replace("_", " ")

    def stronger(self, other: LockMode | None) -> LockMode:
        """The stronger of the two (this one when ``other`` is None)."""
        return self if other is None or self.strength >= other.strength else other


_ORDER = list(LockMode)
# Ordinary traffic: SELECT takes ACCESS SHARE, INSERT/UPDATE/DELETE take ROW EXCLUSIVE.
_BLOCKS: dict[LockMode, Blocks] = {
    LockMode.ACCESS_EXCLUSIVE: Blocks.READS_AND_WRITES,
    LockMode.EXCLUSIVE: Blocks.WRITES,
    LockMode.SHARE_ROW_EXCLUSIVE: Blocks.WRITES,
    LockMode.SHARE: Blocks.WRITES,
    LockMode.SHARE_UPDATE_EXCLUSIVE: Blocks.NOTHING,
    LockMode.ROW_EXCLUSIVE: Blocks.NOTHING,
    LockMode.ROW_SHARE: Blocks.NOTHING,
    LockMode.ACCESS_SHARE: Blocks.NOTHING,
}
