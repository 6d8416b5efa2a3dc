"""The referral state machine (coordination.casework.referral_states): every
allowed move and every refused one, written out from CONTRACT.md's diagram
rather than derived from the module's own table."""

from __future__ import annotations

from datetime import date

import pytest

from coordination.casework.referral_states import (
    WHO,
    Act,
    IllegalTransition,
    Party,
    State,
    Urgency,
    allowed_acts,
    next_state,
    overdue,
    receiver_sees,
    respond_by,
)

S, A = State, Act
BEFORE_AN_END = [S.AWAITING_FAMILY, S.SENT, S.ACCEPTED, S.BOOKED, S.ATTENDED, S.MISSED]
ALLOWED = {
    (S.AWAITING_FAMILY, A.FAMILY_AGREES): S.SENT,
    (S.AWAITING_FAMILY, A.FAMILY_REFUSES): S.DECLINED_BY_FAMILY,
    (S.SENT, A.ACCEPT): S.ACCEPTED,
    (S.SENT, A.DECLINE): S.DECLINED,
    (S.ACCEPTED, A.BOOK): S.BOOKED,
    (S.BOOKED, A.ATTENDED): S.ATTENDED,
    (S.BOOKED, A.MISSED): S.MISSED,
    (S.BOOKED, A.CANCEL_APPOINTMENT): S.ACCEPTED,
    (S.MISSED, A.BOOK): S.BOOKED,
    (S.MISSED, A.CLOSE): S.CLOSED,
    (S.ATTENDED, A.CLOSE): S.CLOSED,
    **{(state, A.WITHDRAW): S.WITHDRAWN for state in BEFORE_AN_END},
}
EVERY_PAIR = [(state, act) for state in State for act in Act]


@pytest.mark.parametrize(("state", "act"), [p for p in EVERY_PAIR if p in ALLOWED])
def test_allowed_moves(state: State, act: Act) -> None:
    assert next_state(state, act) == ALLOWED[(state, act)]


@pytest.mark.parametrize(("state", "act"), [p for p in EVERY_PAIR if p not in ALLOWED])
def test_every_other_move_is_refused(state: State, act: Act) -> None:
    with pytest.raises(IllegalTransition) as refused:
        next_state(state, act)
    assert refused.value.state == state and refused.value.act == act
    assert state.value.replace("_", " ") in str(refused.value)


@pytest.mark.parametrize("state", [S.DECLINED_BY_FAMILY, S.DECLINED, S.CLOSED, S.WITHDRAWN])
def test_an_ended_referral_allows_nothing(state: State) -> None:
    assert allowed_acts(state) == []
    with pytest.raises(IllegalTransition, match="nothing more can be done"):
        next_state(state, A.WITHDRAW)


def test_allowed_acts_are_the_diagrams() -> None:
    assert allowed_acts(S.BOOKED) == [A.ATTENDED, A.MISSED, A.CANCEL_APPOINTMENT, A.WITHDRAW]
    assert allowed_acts(S.AWAITING_FAMILY) == [A.FAMILY_AGREES, A.FAMILY_REFUSES, A.WITHDRAW]


def test_who_does_what() -> None:
    assert {act for act, party in WHO.items() if party == Party.FAMILY} == {
        A.FAMILY_AGREES, A.FAMILY_REFUSES}
    assert {act for act, party in WHO.items() if party == Party.REFERRER} == {A.WITHDRAW}
    assert set(WHO) == set(Act)  # every act has its party


@pytest.mark.parametrize(("state", "seen"), [
    (S.AWAITING_FAMILY, False), (S.DECLINED_BY_FAMILY, False), (S.SENT, True),
    (S.DECLINED, True), (S.ACCEPTED, True), (S.BOOKED, True), (S.ATTENDED, True),
    (S.MISSED, True), (S.CLOSED, True), (S.WITHDRAWN, True),
])
def test_the_receiver_sees_a_referral_only_from_sent_on(state: State, seen: bool) -> None:
    assert receiver_sees(state) is seen


@pytest.mark.parametrize("state", list(S))
def test_a_referral_never_sent_stays_unseen_once_withdrawn(state: State) -> None:
    """Withdrawn while the family was still asked: the receiving agency never
    learns of it (and of the family through it)."""
    assert receiver_sees(state, ever_sent=False) is (
        state not in {S.AWAITING_FAMILY, S.DECLINED_BY_FAMILY, S.WITHDRAWN})


@pytest.mark.parametrize(("urgency", "days"), [
    (Urgency.ROUTINE, 10), (Urgency.SOON, 3), (Urgency.URGENT, 1)])
def test_respond_by_defaults_to_the_urgency(urgency: Urgency, days: int) -> None:
    sent = date(2026, 11, 28)
    assert (respond_by(sent, urgency) - sent).days == days
    assert respond_by(sent, urgency, date(2026, 12, 24)) == date(2026, 12, 24)


def test_overdue_only_while_waiting_for_an_answer_and_after_its_day() -> None:
    due = date(2026, 12, 1)
    assert not overdue(S.SENT, due, date(2026, 12, 1))  # the day itself is in time
    assert overdue(S.SENT, due, date(2026, 12, 2))
    for state in State:
        if state != S.SENT:
            assert not overdue(state, due, date(2027, 1, 1))
