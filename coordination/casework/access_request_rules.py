"""An access request's life as pure rules (CONTRACT.md, "Access requests"):
an agency asks the family for cells it cannot see; the family approves or
declines; an unanswered request lapses after 30 days; after a decline the
agency may not ask for the same field again for 30 days. No database here;
`casework.access_requests` stores requests and turns these answers into
409s.

    pending -> approved
       |   -> declined   (the same fields not asked again for 30 days)
       '---> lapsed      (30 days unanswered; computed from `now`, never stored)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

LAPSE_AFTER = timedelta(days=30)
DECLINE_COOLDOWN = timedelta(days=30)


class State(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    LAPSED = "lapsed"


# What is stored: a lapse is read from the clock.
STORED = frozenset({State.PENDING, State.APPROVED, State.DECLINED})


def lapses_at(created_at: datetime) -> datetime:
    """The moment an unanswered request lapses."""
    return created_at + LAPSE_AFTER


def state_at(stored: State, created_at: datetime, now: datetime) -> State:
    """The request's state at `now`: a pending one is `lapsed` from
    `lapses_at(created_at)` on."""
    if stored == State.PENDING and now >= lapses_at(created_at):
        return State.LAPSED
    return stored


@dataclass(frozen=True)
class Past:
    """An earlier request of the same agency for the same family, as the
    rules for a new one need it."""

    stored: State
    fields: frozenset[str]
    created_at: datetime
    answered_at: datetime | None


@dataclass(frozen=True)
class Refusal:
    """Why a new request cannot be made now (a 409 at the boundary)."""

    message: str


def refusal(asked: Iterable[str], granted: Iterable[str], earlier: Iterable[Past],
            now: datetime) -> Refusal | None:
    """Whether an agency may ask for `asked` now, given the fields the form
    in force already grants it and its earlier requests for this family:
    not for a field already granted, not while one of its requests is still
    pending (not lapsed), and not for a field the family declined less than
    30 days ago. None when it may."""
    wanted = set(asked)
    have = sorted(wanted & set(granted))
    if have:
        return Refusal("your agency may already see " + ", ".join(have)
                       + "; ask only for what it cannot see")
    past = list(earlier)
    if any(state_at(p.stored, p.created_at, now) == State.PENDING for p in past):
        return Refusal("your agency already has a pending request for this family; wait "
                       "for the family's answer (or for it to lapse after 30 days)")
    for p in past:
        if p.stored == State.DECLINED and p.answered_at is not None:
            again = p.answered_at + DECLINE_COOLDOWN
            declined = sorted(wanted & p.fields)
            if declined and now < again:
                return Refusal("the family declined " + ", ".join(declined)
                               + " for your agency on " + p.answered_at.date().isoformat()
                               + "; it may be asked again from "
                               + again.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return None


class NotAnswerable(Exception):
    """The request is no longer pending (a 409 at the boundary)."""


def check_answerable(stored: State, created_at: datetime, now: datetime) -> None:
    """`NotAnswerable` unless the request is pending at `now`."""
    state = state_at(stored, created_at, now)
    if state == State.LAPSED:
        raise NotAnswerable("this request lapsed unanswered on "
                            f"{lapses_at(created_at).date().isoformat()}; the agency may "
                            "ask again")
    if state != State.PENDING:
        raise NotAnswerable(f"this request was {state.value} already")
