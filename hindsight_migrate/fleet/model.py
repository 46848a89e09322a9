"""The fleet's vocabulary: targets, their states, what the preflight read and what the rollout did."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import Enum

from hindsight_migrate.errors import BadArgument
from hindsight_migrate.masking import mask_secrets


class TargetState(Enum):
    """Where one target stands in a rollout (the JSON's ``state``)."""

    PENDING = "pending"  # revisions to apply, not started (or started by a run that died: nothing committed)
    RUNNING = "running"  # a run holds the target's migration lock now
    APPLIED = "applied"  # at the plan's heads
    FAILED = "failed"  # the last try failed, with its error; retried only with --retry-failed
    SKIPPED = "skipped"  # left out on purpose: the error budget was spent, or its state changed since the review


class Blocker(Enum):
    """Why the preflight says a target cannot be migrated as planned."""

    UNREACHABLE = "unreachable"
    DIVERGED = "diverged"  # at a revision no file has
    TAMPERED = "tampered"  # an applied revision's code changed since it was applied


@dataclass(frozen=True)
class Target:
    """One database (or one schema in a database) of the fleet. ``url`` holds a secret: show ``masked_url``."""

    name: str
    url: str
    group: str | None = None
    labels: tuple[str, ...] = ()
    schema: str | None = None  # schema-per-tenant: migrated with search_path and -x tenant=SCHEMA
    engine: str | None = None  # a multidb project's database name: env.py is told `databases = ENGINE` alone

    @property
    def masked_url(self) -> str:
        shown = mask_secrets(self.url)
        return f"{shown} (schema {self.schema})" if self.schema else shown

    @property
    def database_key(self) -> str:
        """Targets sharing a database share its migration lock: the rollout runs them one after another."""
        return self.url


@dataclass(frozen=True)
class Shard:
    """``--shard K/N``: the K-th of N stable shares of the targets (K from 0, as JOB_COMPLETION_INDEX)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if match is None:
            raise BadArgument(f"--shard takes K/N (the K-th of N shares, K from 0 to N-1), not {text!r}.")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or index >= count:
            raise BadArgument(f"--shard {text}: K must be from 0 to N-1 and N at least 1.")
        return cls(index, count)

    def share(self, targets: tuple[Target, ...]) -> tuple[Target, ...]:
        """This shard's targets, in their file's order: the targets ranked by a hash of their name, dealt out
        in turn. Every shard that reads the same targets deals the same way, so each target falls to exactly one
        shard, and the shares differ by one target at most (a hash alone leaves some shards empty)."""
        ranked = sorted(targets, key=lambda target: hashlib.sha256(target.name.encode()).digest())
        mine = {target.name for rank, target in enumerate(ranked) if rank % self.count == self.index}
        return tuple(target for target in targets if target.name in mine)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class ErrorBudget:
    """``--max-failures N`` or ``P%``: past it no new target starts; those in flight finish."""

    count: int | None = 0
    percent: float | None = None
    unlimited: bool = False  # --continue-on-error

    @classmethod
    def parse(cls, text: str | None, *, continue_on_error: bool) -> ErrorBudget:
        if continue_on_error:
            return cls(None, None, unlimited=True)
        if text is None:
            return cls(0)
        stripped = text.strip()
        try:
            if stripped.endswith("%"):
                percent = float(stripped[:-1])
                if not 0 <= percent <= 100:
                    raise ValueError
                return cls(None, percent)
            count = int(stripped)
            if count < 0:
                raise ValueError
            return cls(count)
        except ValueError:
            raise BadArgument(
                f"--max-failures takes a number of targets (3) or a share of them (5%), not {text!r}."
            ) from None

    def allowed(self, targets: int) -> int | None:
        """Failures allowed among ``targets``; None: no limit."""
        if self.unlimited:
            return None
        if self.percent is not None:
            return int(targets * self.percent / 100)
        return self.count

    def words(self, targets: int) -> str:
        allowed = self.allowed(targets)
        if allowed is None:
            return "no limit (--continue-on-error)"
        shown = f"{self.percent:g}% of {targets}: " if self.percent is not None else ""
        return f"{shown}{allowed} failed target{'s' if allowed != 1 else ''}"


@dataclass(frozen=True)
class TableSize:
    table: str
    bytes: int


@dataclass(frozen=True)
class LedgerEntry:
    """What the fleet ledger says of a target (its own ``hindsight_migrate`` schema, or the control database)."""

    state: TargetState
    rollout: str
    error: str | None
    updated_at: str  # ISO time, as the database wrote it
    holder_alive: bool = True  # for RUNNING: whether the run that wrote it still holds the target's lock


@dataclass(frozen=True)
class TargetReading:
    """The preflight's reading of one target: read-only, over one plain connection."""

    target: Target
    current: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    blocker: Blocker | None = None
    problem: str | None = None  # the blocker in words (masked), or None
    touched: tuple[TableSize, ...] = ()  # the tables the pending revisions name, with their size here
    ledger: LedgerEntry | None = None
    locked: bool = False  # a run holds its migration lock now
    empty: bool = False  # no version table and nothing in it: bootstrapped first, when the project says how
    applied: frozenset[str] = frozenset()  # every revision applied at ``current`` (its ancestors included)
    sizes_known: bool = True  # False: a touched table was locked by someone else, so no size was read there

    @property
    def touched_bytes(self) -> int:
        return sum(size.bytes for size in self.touched)


@dataclass(frozen=True)
class TargetOutcome:
    """What the rollout did to one target."""

    name: str
    state: TargetState
    current: tuple[str, ...]  # where it stands after the run
    applied: tuple[str, ...] = ()  # revisions this run applied
    seconds: float = 0.0
    error: str | None = None  # masked, one paragraph
    stage: str = ""  # "canary" or "wave"
    done_by_another: bool = False


@dataclass(frozen=True)
class FleetRow:
    """One line of ``fleet status`` (and of the JSON's ``targets``)."""

    name: str
    url: str  # masked
    state: TargetState
    current: tuple[str, ...]
    pending: tuple[str, ...]
    error: str | None
    group: str | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class FleetStatus:
    heads: tuple[str, ...]
    rows: tuple[FleetRow, ...]
    shard: Shard | None = None
    notes: tuple[str, ...] = ()

    def count(self, state: TargetState) -> int:
        return sum(1 for row in self.rows if row.state is state)


@dataclass(frozen=True)
class RolloutSummary:
    """What ``fleet up`` did, every target's outcome in the order they finished."""

    rollout: str
    heads: tuple[str, ...]
    outcomes: tuple[TargetOutcome, ...]
    budget: ErrorBudget
    allowed_failures: int | None
    stopped_by_budget: bool
    seconds: float
    shard: Shard | None = None
    notes: tuple[str, ...] = field(default=())
    interrupted: bool = False  # Ctrl-C or SIGTERM: no new target started; the running ones finished

    def count(self, state: TargetState) -> int:
        return sum(1 for outcome in self.outcomes if outcome.state is state)
