"""The access request's rules as plain Python (`casework.access_request_rules`):
the lapse after 30 days, one pending request per agency, no second ask for a
declined field within 30 days, nothing asked that is granted already."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coordination.casework.access_request_rules import (
    NotAnswerable,
    Past,
    State,
    check_answerable,
    lapses_at,
    refusal,
    state_at,
)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def test_a_pending_request_lapses_after_30_days() -> None:
    assert lapses_at(T0) == T0 + 30 * DAY
    assert state_at(State.PENDING, T0, T0 + 30 * DAY - timedelta(seconds=1)) == State.PENDING
    assert state_at(State.PENDING, T0, T0 + 30 * DAY) == State.LAPSED
    # Answered ones never lapse.
    assert state_at(State.APPROVED, T0, T0 + 90 * DAY) == State.APPROVED
    assert state_at(State.DECLINED, T0, T0 + 90 * DAY) == State.DECLINED


@pytest.mark.parametrize(("stored", "later", "word"), [
    (State.PENDING, 30 * DAY, "lapsed"),
    (State.APPROVED, DAY, "approved"),
    (State.DECLINED, DAY, "declined"),
])
def test_only_a_pending_request_is_answered(stored: State, later: timedelta, word: str) -> None:
    with pytest.raises(NotAnswerable, match=word):
        check_answerable(stored, T0, T0 + later)
    check_answerable(State.PENDING, T0, T0 + 29 * DAY)


def test_nothing_already_granted_is_asked() -> None:
    found = refusal(["contact", "health"], ["health"], [], T0)
    assert found is not None and "may already see health" in found.message
    assert refusal(["contact"], ["health"], [], T0) is None


def test_one_pending_request_until_it_lapses() -> None:
    pending = Past(State.PENDING, frozenset({"contact"}), T0, None)
    found = refusal(["story"], [], [pending], T0 + DAY)
    assert found is not None and "pending request" in found.message
    assert refusal(["story"], [], [pending], T0 + 30 * DAY) is None
    answered = Past(State.APPROVED, frozenset({"contact"}), T0, T0 + DAY)
    assert refusal(["story"], [], [answered], T0 + 2 * DAY) is None


def test_a_declined_field_waits_30_days_from_the_answer() -> None:
    declined = Past(State.DECLINED, frozenset({"contact", "story"}), T0, T0 + 2 * DAY)
    found = refusal(["health", "story"], [], [declined], T0 + 31 * DAY)
    assert found is not None and "declined story" in found.message
    assert "2026-12-24T10:00:00Z" in found.message
    assert refusal(["story"], [], [declined], T0 + 32 * DAY) is None
    assert refusal(["health"], [], [declined], T0 + 3 * DAY) is None  # another field
