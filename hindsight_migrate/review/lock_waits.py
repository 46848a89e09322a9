"""How long an applying revision may wait for a lock, attempt by attempt: short at first, growing toward lock_timeout.

Every query on a table queues behind a migration statement that waits for a lock on it, for as long as
that statement waits. Most blockers are one long transaction (a report, a session left idle in a
transaction); once it ends, any attempt gets its lock in milliseconds. So the first attempts wait only a
little (``lock_timeout_start``, 100 ms), holding traffic back for a fraction of ``lock_timeout``; the wait
allowed doubles for every ``lock_timeout_doubling`` (10 s) the revision has spent waiting, up to
``lock_timeout``, so a revision behind a steady stream of lock holders still gets the longer waits it
needs in the end. The attempts and the pauses between them stop at ``lock_retry_max_wait``. As GitLab's
``with_lock_retries`` does, with the schedule read from the settings instead of a table.

Plain: no SQLAlchemy (render words the schedule for the plan).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from hindsight_migrate.duration import Duration

LONGEST_PAUSE_SECONDS = 15.0
FIRST_PAUSE_SECONDS = 0.5


@dataclass(frozen=True)
class LockWaits:
    """The schedule: how many attempts, how long each may wait for a lock, and for how long in all."""

    ceiling: Duration  # lock_timeout: the longest an attempt waits (0: no limit, PostgreSQL's own meaning)
    start: Duration  # lock_timeout_start: the first attempt's wait (0: every attempt waits the ceiling)
    doubling: Duration  # lock_timeout_doubling: the wait doubles for every this much time spent waiting
    retries: int  # attempts after the first
    max_wait: Duration  # lock_retry_max_wait: attempts and pauses together stop here

    @property
    def grows(self) -> bool:
        """Whether attempts start short: only with retries (a lone attempt waits the whole ceiling) and a ceiling."""
        return self.retries > 0 and 0 < self.start.seconds < self.ceiling.seconds and self.doubling.seconds > 0

    def timeout_seconds(self, waited_seconds: float) -> float:
        """What the attempt that starts after ``waited_seconds`` of waiting for this lock may wait: the start,
        doubled for every whole ``doubling`` waited, at most the ceiling (in whole milliseconds)."""
        if not self.grows:
            return self.ceiling.seconds
        doublings = math.floor(max(waited_seconds, 0.0) / self.doubling.seconds)
        grown = self.start.seconds * 2.0 ** min(doublings, 60)
        return round(min(grown, self.ceiling.seconds), 3)

    def pause(self, attempt: int) -> float:
        """Before attempt ``attempt`` + 1: 0.5 s, doubling to 15 s at most, jittered so that runs
        (and the traffic queued behind the lock) do not retry in step."""
        return min(FIRST_PAUSE_SECONDS * 2.0 ** (attempt - 1), LONGEST_PAUSE_SECONDS) * random.uniform(0.5, 1.0)

    def seconds_to_ceiling(self) -> float:
        """How long a revision waits before its attempts may wait the whole ceiling (0 when they always do)."""
        if not self.grows:
            return 0.0
        return math.ceil(math.log2(self.ceiling.seconds / self.start.seconds)) * self.doubling.seconds


def milliseconds(seconds: float) -> str:
    """``100ms``, ``1.6s``: a wait as the schedule's words and PostgreSQL's settings write it."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s" if seconds == int(seconds) else f"{seconds:.1f}s".replace(".0s", "s")


def schedule_words(waits: LockWaits) -> str:
    """The schedule in one sentence, with the settings that change it."""
    if waits.ceiling.seconds == 0:
        return "lock_timeout = 0: a revision waits for its locks as long as it takes, queueing traffic behind it"
    if not waits.grows:
        retried = (
            f"; {waits.retries} retries within lock_retry_max_wait {waits.max_wait}"
            if waits.retries
            else ", and is not retried"
        )
        return f"each attempt waits at most lock_timeout {waits.ceiling} for a lock{retried}"
    return (
        f"an attempt waits {waits.start} for a lock at first (lock_timeout_start), doubling for every "
        f"{waits.doubling} its revision has waited (lock_timeout_doubling) up to lock_timeout {waits.ceiling}; "
        f"{waits.retries} retries within lock_retry_max_wait {waits.max_wait}"
    )


def listed(timeouts: tuple[float, ...]) -> str:
    """``100ms, 100ms and 200ms``."""
    words = [milliseconds(seconds) for seconds in timeouts]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def schedule_brief(waits: LockWaits) -> str:
    """The schedule as the plan states it, in a line: what a lock it waits for can cost the traffic queued behind."""
    if waits.ceiling.seconds == 0:
        return "no limit (lock_timeout = 0): traffic queues behind a waiting revision for as long as it waits"
    retried = f"; {waits.retries} retries in {waits.max_wait}" if waits.retries else ""
    if not waits.grows:
        return f"{waits.ceiling} an attempt{retried or ', no retry'}"
    return f"{waits.start}, doubling every {waits.doubling} waited, up to {waits.ceiling}{retried}"
