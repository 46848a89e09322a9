"""Every kind the core can report has words: a new member of an enum without them fails here, not at a user's screen."""

from __future__ import annotations

from hindsight_migrate.postgres.audit_records import Outcome
from hindsight_migrate.render.reports import OUTCOME_STYLES
from hindsight_migrate.render.wording import (
    CHANGE_WORDS,
    CONCERN_WORDS,
    DIFF_MARKS,
    DIFF_ORDER,
    NO_REHEARSAL_WORDS,
    OUTCOME_WORDS,
    STATE_MARKS,
)
from hindsight_migrate.review.kinds import ChangeKind, Concern, NoRehearsal
from hindsight_migrate.revisions import RevisionState
from hindsight_migrate.schema import Change


def test_every_concern_change_kind_reason_and_outcome_has_words() -> None:
    assert set(CONCERN_WORDS) == set(Concern)
    assert set(CHANGE_WORDS) == set(ChangeKind)
    assert set(NO_REHEARSAL_WORDS) == set(NoRehearsal)
    assert set(OUTCOME_WORDS) == set(OUTCOME_STYLES) == set(Outcome)


def test_every_schema_change_and_revision_state_has_its_mark_and_place() -> None:
    assert set(DIFF_MARKS) == set(Change)
    assert sorted(DIFF_ORDER, key=lambda change: change.value) == sorted(Change, key=lambda change: change.value)
    assert set(STATE_MARKS) == set(RevisionState)
