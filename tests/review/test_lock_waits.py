"""The lock-wait schedule of an apply: short attempts first, growing toward lock_timeout (review/lock_waits.py)."""

from __future__ import annotations

import pytest

from hindsight_migrate.duration import Duration
from hindsight_migrate.review.lock_waits import LockWaits, schedule_brief, schedule_words

FIVE_SECONDS = Duration.of("5s")
START = Duration.of("100ms")
DOUBLING = Duration.of("10s")


def waits(retries: int = 20, *, ceiling: Duration = FIVE_SECONDS, start: Duration = START) -> LockWaits:
    return LockWaits(ceiling=ceiling, start=start, doubling=DOUBLING, retries=retries, max_wait=Duration.of("5min"))


@pytest.mark.parametrize(
    ("waited", "allowed"),
    [(0.0, 0.1), (9.9, 0.1), (10.0, 0.2), (25.0, 0.4), (30.0, 0.8), (55.0, 3.2), (60.0, 5.0), (3600.0, 5.0)],
)
def test_the_wait_doubles_for_every_ten_seconds_waited_up_to_lock_timeout(waited: float, allowed: float) -> None:
    assert waits().timeout_seconds(waited) == allowed


def test_the_wait_never_shrinks_and_reaches_lock_timeout_in_the_end() -> None:
    schedule = [waits().timeout_seconds(second / 2) for second in range(0, 400)]
    assert schedule == sorted(schedule)
    assert schedule[0] == 0.1 and schedule[-1] == 5.0
    assert waits().seconds_to_ceiling() == 60.0


def test_a_lone_attempt_waits_the_whole_lock_timeout() -> None:
    # --lock-retries 0: no later attempt could wait longer, so the only one must not give up early.
    assert waits(retries=0).timeout_seconds(0.0) == 5.0
    assert "not retried" in schedule_words(waits(retries=0))


def test_a_start_of_zero_or_above_lock_timeout_waits_lock_timeout_every_time() -> None:
    assert waits(start=Duration.of("0")).timeout_seconds(0.0) == 5.0
    assert waits(start=Duration.of("10s")).timeout_seconds(0.0) == 5.0


def test_the_schedule_is_said_with_the_settings_that_change_it() -> None:
    words = schedule_words(waits())
    assert words == (
        "an attempt waits 100ms for a lock at first (lock_timeout_start), doubling for every 10s its revision has "
        "waited (lock_timeout_doubling) up to lock_timeout 5s; 20 retries within lock_retry_max_wait 5min"
    )
    assert schedule_brief(waits()) == "100ms, doubling every 10s waited, up to 5s; 20 retries in 5min"
    assert "no limit" in schedule_brief(waits(ceiling=Duration.of("0")))
