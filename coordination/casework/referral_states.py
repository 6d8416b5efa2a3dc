"""The referral's life as pure rules (CONTRACT.md, "Referrals: asked,
answered, booked, attended"): which act moves a referral from which state to
which, and who may do it. No database here; the use cases that store
referrals apply these rules and turn `IllegalTransition` into a 409.

    awaiting_family -> sent -> accepted -> booked -> attended -> closed
          |             |         |         |  |-> missed -> booked / closed
          v             v         v         '--> cancelled appointment: back to accepted
    declined_by_family  declined  withdrawn   (withdrawn: by the referrer, any time before closed)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum


class State(StrEnum):
    AWAITING_FAMILY = "awaiting_family"
    SENT = "sent"
    DECLINED_BY_FAMILY = "declined_by_family"
    DECLINED = "declined"
    ACCEPTED = "accepted"
    BOOKED = "booked"
    ATTENDED = "attended"
    MISSED = "missed"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


class Act(StrEnum):
    FAMILY_AGREES = "agree"
    FAMILY_REFUSES = "refuse"
    ACCEPT = "accept"
    DECLINE = "decline"
    BOOK = "book"
    ATTENDED = "attended"
    MISSED = "missed"
    CANCEL_APPOINTMENT = "cancelled"
    CLOSE = "close"
    WITHDRAW = "withdraw"


class Party(StrEnum):
    """Who acts: the family (or a coordinator recording its answer), the
    receiving agency, or the referring agency."""

    FAMILY = "family"
    RECEIVER = "receiver"
    REFERRER = "referrer"


class Urgency(StrEnum):
    ROUTINE = "routine"
    SOON = "soon"
    URGENT = "urgent"


# Days the receiving agency has to answer, by urgency, when the referrer sets no date.
RESPOND_WITHIN = {Urgency.ROUTINE: 10, Urgency.SOON: 3, Urgency.URGENT: 1}

ENDED = frozenset({State.DECLINED_BY_FAMILY, State.DECLINED, State.CLOSED, State.WITHDRAWN})

# (act, from) -> to. Withdrawing is added below for every state before an end.
_MOVES: dict[tuple[Act, State], State] = {
    (Act.FAMILY_AGREES, State.AWAITING_FAMILY): State.SENT,
    (Act.FAMILY_REFUSES, State.AWAITING_FAMILY): State.DECLINED_BY_FAMILY,
    (Act.ACCEPT, State.SENT): State.ACCEPTED,
    (Act.DECLINE, State.SENT): State.DECLINED,
    (Act.BOOK, State.ACCEPTED): State.BOOKED,
    (Act.BOOK, State.MISSED): State.BOOKED,
    (Act.ATTENDED, State.BOOKED): State.ATTENDED,
    (Act.MISSED, State.BOOKED): State.MISSED,
    (Act.CANCEL_APPOINTMENT, State.BOOKED): State.ACCEPTED,
    (Act.CLOSE, State.ATTENDED): State.CLOSED,
    (Act.CLOSE, State.MISSED): State.CLOSED,
}
_MOVES.update({(Act.WITHDRAW, s): State.WITHDRAWN for s in State if s not in ENDED})

WHO: dict[Act, Party] = {
    Act.FAMILY_AGREES: Party.FAMILY,
    Act.FAMILY_REFUSES: Party.FAMILY,
    Act.ACCEPT: Party.RECEIVER,
    Act.DECLINE: Party.RECEIVER,
    Act.BOOK: Party.RECEIVER,
    Act.ATTENDED: Party.RECEIVER,
    Act.MISSED: Party.RECEIVER,
    Act.CANCEL_APPOINTMENT: Party.RECEIVER,
    Act.CLOSE: Party.RECEIVER,
    Act.WITHDRAW: Party.REFERRER,
}


@dataclass(frozen=True)
class IllegalTransition(Exception):
    """The act does not fit the referral's state (a 409 at the boundary)."""

    act: Act
    state: State

    def __str__(self) -> str:
        if self.state in ENDED:
            return f"the referral is {self.state.value.replace('_', ' ')}: nothing more can be done"
        return (f"a referral that is {self.state.value.replace('_', ' ')} cannot be "
                f"{PAST[self.act]}")


PAST = {
    Act.FAMILY_AGREES: "agreed to",
    Act.FAMILY_REFUSES: "refused",
    Act.ACCEPT: "accepted",
    Act.DECLINE: "declined",
    Act.BOOK: "booked",
    Act.ATTENDED: "marked attended",
    Act.MISSED: "marked missed",
    Act.CANCEL_APPOINTMENT: "have its appointment cancelled",
    Act.CLOSE: "closed",
    Act.WITHDRAW: "withdrawn",
}


def next_state(state: State, act: Act) -> State:
    """The state `act` moves a referral in `state` to; `IllegalTransition`
    for a move the diagram does not have."""
    try:
        return _MOVES[(act, state)]
    except KeyError:
        raise IllegalTransition(act, state) from None


def allowed_acts(state: State) -> list[Act]:
    """What can be done next, in the diagram's order (for offering buttons)."""
    return [act for act in Act if (act, state) in _MOVES]


def receiver_sees(state: State, ever_sent: bool = True) -> bool:
    """A receiving agency sees a referral only from `sent` on: not while the
    family is still asked, nor when the family refused it, nor when the
    referrer withdrew it before it was ever sent (`ever_sent` False)."""
    if state == State.WITHDRAWN:
        return ever_sent
    return state not in {State.AWAITING_FAMILY, State.DECLINED_BY_FAMILY}


def respond_by(sent_on: date, urgency: Urgency, asked: date | None = None) -> date:
    """The day by which the receiving agency should answer: the referrer's
    date, or the urgency's default counted from the day it was sent."""
    return asked if asked is not None else sent_on + timedelta(days=RESPOND_WITHIN[urgency])


def overdue(state: State, due: date, today: date) -> bool:
    """A referral waiting for the receiving agency's answer past its day
    (the day itself still counts as in time)."""
    return state == State.SENT and today > due
