"""The staff home page: the agency's worklist, each item a sentence and a
link to where to act, with the family search beside it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flask import render_template

from coordination.actors import Actor
from coordination.api.worklist import href
from coordination.casework import common, worklist
from coordination.runtime import current, request_db

# (label, how the tag looks) per kind.
TAGS = {
    "referral.overdue": ("Overdue", "tag-bad"),
    "appointment.missed": ("Missed", "tag-bad"),
    "referral.to_answer": ("To answer", "tag-warn"),
    "appointment.upcoming": ("This week", "tag-ok"),
    "access_request.answered": ("Answered", "tag-ok"),
    "consent.renew": ("Consent", "tag-warn"),
    "involvement.ended": ("Ended", ""),
    "hold.review": ("Hold review", "tag-warn"),
    "emergency.unreviewed": ("Emergency access", "tag-warn"),
}
LINK_TEXT = {"staff.family": "Open the record", "staff.consent": "Open the consent form",
             "staff.access_requests_page": "Open the requests",
             "staff.referral": "Open the referral"}


@dataclass(frozen=True)
class Row:
    tag: str
    tag_class: str
    sentence: str
    href: str | None
    link_text: str


def _day(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def _moment(at: datetime | None) -> str:
    return "" if at is None else f"{_day(at.date())} at {at:%H:%M} UTC"


def sentence(item: worklist.Item, names: dict[str, str], today: date) -> str:
    """What the item asks of the reader's agency, in one sentence."""
    family = item.display_name or "the family"
    other = names.get(item.agency or "", item.agency or "")
    incoming = item.direction == "in"
    if item.kind == "referral.to_answer":
        return (f"{other} referred {family} to your agency: accept or decline by "
                f"{_day(item.due)}.")
    if item.kind == "referral.overdue":
        if incoming:
            return (f"{other}'s referral of {family} was to be answered by "
                    f"{_day(item.due)}: it is overdue.")
        return (f"Your referral of {family} to {other} has had no answer since it was due "
                f"on {_day(item.due)}.")
    if item.kind == "appointment.upcoming":
        if incoming:
            return f"{family} comes to your agency on {_moment(item.at)}."
        return f"{family} has an appointment with {other} on {_moment(item.at)}."
    if item.kind == "appointment.missed":
        if incoming:
            return (f"{family} missed the appointment of {_moment(item.at)}: book another one "
                    "or close the referral.")
        return (f"{family} missed the appointment with {other} of {_moment(item.at)}: check "
                "in with the family.")
    if item.kind == "access_request.answered":
        if item.answer == "approved":
            return (f"{family} agreed on {_day(item.due)} to let your agency see what it "
                    "asked for: it is now in the record.")
        return (f"{family} said no on {_day(item.due)} to your agency's request to see more "
                "information.")
    if item.kind == "consent.renew":
        when = "ended on" if item.due < today else "ends on"
        return (f"{family}'s consent form {when} {_day(item.due)}: ask the family to sign a "
                "new one.")
    if item.kind == "involvement.ended":
        return (f"A family ended your agency's part on {_day(item.due)} (family "
                f"{item.family_id}): it no longer appears for you.")
    if item.kind == "hold.review":
        return (f"Your agency's protection hold on {family} is to be reviewed by "
                f"{_day(item.due)}: renew or lift it, or it lapses after that day.")
    if item.kind == "emergency.unreviewed":
        return (f"A colleague at your agency opened a family's record in an emergency on "
                f"{_moment(item.at)} ({item.ref}): an auditor has still to review it.")
    return f"{item.kind}: {family}"  # a kind this page has no words for yet


def rows(actor: Actor) -> list[Row]:
    """The actor's agency's worklist as the home page shows it (a list read,
    on record like the API's)."""
    rt = current()
    now = rt.now()
    items = worklist.worklist(request_db(), rt.vault, actor, now)
    names = {a.id: a.name for a in common.agencies(request_db())}
    out = []
    for item in items:
        tag, tag_class = TAGS.get(item.kind, (item.kind, ""))
        out.append(Row(tag, tag_class, sentence(item, names, now.date()), href(item),
                       LINK_TEXT.get(item.link.endpoint, "Open") if item.link else ""))
    return out


def home_page(actor: Actor) -> str:
    return render_template("staff/home.html", worklist=rows(actor))
