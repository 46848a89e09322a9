"""Every kind the core can report has words: a new member of an enum without them fails here, not at a user's screen."""

from __future__ import annotations

from hindsight_migrate.postgres.audit import Outcome
from hindsight_migrate.render.reports import OUTCOME_WORDS
from hindsight_migrate.render.wording import CHANGE_WORDS, CONCERN_WORDS, NO_REHEARSAL_WORDS
from hindsight_migrate.review.kinds import ChangeKind, Concern, NoRehearsal


def test_every_concern_change_kind_reason_and_outcome_has_words() -> None:
    assert set(CONCERN_WORDS) == set(Concern)
    assert set(CHANGE_WORDS) == set(ChangeKind)
    assert set(NO_REHEARSAL_WORDS) == set(NoRehearsal)
    assert set(OUTCOME_WORDS) == set(Outcome)
