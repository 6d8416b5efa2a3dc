"""The demo's population (`onestory seed-demo --population`): a few hundred
families over the last twelve months, so the reports page shows something
true on the demo's first run.

Seeded random (`SEED`): the same `now` gives the same population. Every
family goes through the casework use cases, as staff would record it, in
the order things happened (the audit log stays oldest first): recorded by an
agency with one of its areas, a joint form signed an hour later (most say
yes to being counted), its needs at reception in De Sloep's proportions
(DOMAIN.md), for some a referral to the health centre or child protective
services, accepted or declined, with appointments attended or missed, and
attendance of kindergarten days or parenting-group sessions. What would
happen after `until` is left out: those referrals are still under way.

Receipts: every first form issues the family a receipt code and PIN, hashed
with argon2 at full cost (a quarter of a second each). The population's are
never printed or used, so they are hashed at a lower cost (`_cheap_receipts`)
to keep the seeding well under a minute.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

from coordination.actors import Actor
from coordination.casework import areas, consent_forms, entries, families, referrals
from coordination.casework.referral_states import Act
from coordination.crypto import Vault

SEED = 20141  # De Sloep's year, and a one
FAMILIES = 320

# Areas of the town the demo agencies serve (one list for every agency).
AREAS = {
    "docklands": "Docklands",
    "old-town": "Old Town",
    "riverside": "Riverside",
    "north-hill": "North Hill",
    "east-park": "East Park",
}
AREA_WEIGHTS = (0.3, 0.2, 0.2, 0.15, 0.15)

# De Sloep's 2014 reception counts (DOMAIN.md) of its 1 100-1 200 families:
# each family has each need with the code's share of that.
NEEDS = {
    "income": 441, "housing": 427, "health": 390, "material_help": 389,
    "child_benefit": 316, "childcare": 267, "family": 256, "education": 241,
    "parenting": 133, "pregnancy": 92, "training": 45, "other": 356,
}
DE_SLOEP_FAMILIES = 1150

# Who records the families: (agency, practitioner, coordinator, share).
RECORDERS = [
    ("health-centre", "nurse1", "coord1", 0.45),
    ("harbour", "ngo1", "ngocoord1", 0.25),
    ("ecec", "ecec1", "ececcoord1", 0.15),
    ("child-protection", "cps1", "cpscoord1", 0.15),
]
# The fields each recording agency is granted on its own families' forms.
OWN_FIELDS = {
    "health-centre": ["involvement", "contact", "household", "story", "health", "social"],
    "harbour": ["involvement", "contact", "story"],
    "ecec": ["involvement", "contact", "household", "story", "education"],
    "child-protection": ["involvement", "contact", "household", "story", "social",
                         "protection"],
}
# Where a recording agency refers a family, what it asks to share, and who
# answers at the receiving agency: (to, asked, coordinator, contact worker).
REFERRALS = {
    "health-centre": ("child-protection", ["story", "social"], "cpscoord1", "cps1"),
    "harbour": ("health-centre", ["story"], "coord1", "nurse1"),
    "ecec": ("health-centre", ["story", "education"], "coord1", "nurse2"),
    "child-protection": ("health-centre", ["story", "social"], "coord1", "nurse2"),
}
REFERRED_SHARE = {"health-centre": 0.15, "harbour": 0.6, "ecec": 0.35,
                  "child-protection": 0.5}
FIRST_NAMES = [
    "Aylin", "Mira", "Yana", "Fatma", "Amina", "Sara", "Ingrid", "Noor", "Elif", "Maria",
    "Ana", "Zeynep", "Leila", "Hana", "Olga", "Iman", "Nora", "Eva", "Marta", "Rania",
    "Sofia", "Layla", "Ewa", "Ioana", "Kari", "Lotte", "Dina", "Asha", "Mona", "Lina",
]
SURNAMES = [
    "Demir", "Hansen", "Nowak", "Popescu", "Haddad", "Olsen", "Yilmaz", "Peeters",
    "Johansen", "Kaya", "Ahmadi", "Berg", "Ivanova", "Silva", "Larsen", "Novak",
]
LANGUAGES = ["nb", "tr", "ar", "pl", "ro", "bg", "pt", "nl", "en", "so"]


@dataclass
class Population:
    families: int = 0
    counted: int = 0
    referrals: int = 0
    attendance: int = 0
    ids: list[str] = field(default_factory=list)


Run = Callable[[Session, Vault], None]
Schedule = Callable[[datetime, Run], None]


@dataclass(order=True)
class _Step:
    at: datetime
    order: int
    run: Callable[[Session, Vault], None] = field(compare=False)


@contextmanager
def _cheap_receipts() -> Iterator[None]:
    """The population's receipts (never printed, never used) hashed at a
    low argon2 cost while it is seeded; the usual cost again after."""
    from argon2 import PasswordHasher

    import consent.services as receipts

    kept = receipts._hasher
    receipts._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    try:
        yield
    finally:
        receipts._hasher = kept


def _office_hours(rng: random.Random, day: date) -> datetime:
    return datetime.combine(day, time(rng.randint(8, 15), rng.choice((0, 15, 30, 45))), UTC)


def _needs(rng: random.Random) -> list[str]:
    codes = [code for code, count in NEEDS.items() if rng.random() < count / DE_SLOEP_FAMILIES]
    return codes or ["other"]


def set_areas(session: Session, agencies: list[str], now: datetime) -> None:
    """Give each of the demo's casework agencies the town's areas."""
    for slug in agencies:
        areas.set_agency_areas(session, slug, dict(AREAS), [], now)


def seed_population(session: Session, vault: Vault, staff: dict[str, Actor], now: datetime,
                    until: datetime, count: int = FAMILIES) -> Population:
    """Record `count` families between a year before `now` and `until`
    through the use cases, as `staff` (username -> actor) would, in time
    order; what would happen after `until` is left out."""
    rng = random.Random(SEED)
    out = Population()
    queue: list[_Step] = []
    order = itertools.count()

    def at(moment: datetime, run: Callable[[Session, Vault], None]) -> None:
        if moment < until:
            heapq.heappush(queue, _Step(moment, next(order), run))

    first_day = (now - timedelta(days=365)).date()
    span = (until.date() - first_day).days - 1
    recorders = [(a, w, c) for a, w, c, _ in RECORDERS]
    shares = [r[3] for r in RECORDERS]
    for _ in range(count):
        agency, worker, coordinator = rng.choices(recorders, shares)[0]
        day = first_day + timedelta(days=rng.randrange(span))
        _plan_family(rng, staff, agency, worker, coordinator,
                     _office_hours(rng, day), at, out)
    with _cheap_receipts():
        while queue:
            heapq.heappop(queue).run(session, vault)
    return out


def _plan_family(rng: random.Random, staff: dict[str, Actor], agency: str, worker: str,
                 coordinator: str, begun: datetime, at: Schedule, out: Population) -> None:
    """One family's year, as steps at their moments (`at`)."""
    minimal = agency == "harbour"
    area = rng.choices(list(AREAS), AREA_WEIGHTS)[0]
    counted = rng.random() < 0.88
    state: dict[str, Any] = {}
    first = rng.choice(FIRST_NAMES)
    born = begun.date() - timedelta(days=rng.randrange(30, 5 * 365))
    lang = rng.sample(LANGUAGES, rng.choice((1, 1, 2)))
    referred = rng.random() < REFERRED_SHARE[agency]
    to, asked, answerer, contact = REFERRALS[agency]
    needs = _needs(rng)
    valid_days = rng.choice((365, 365, 540, 730))

    def record(session: Session, vault: Vault) -> None:
        data: dict[str, Any] = {"display_name": first, "languages": lang}
        if not minimal:
            data.update(display_name=f"{first} {rng.choice(SURNAMES)}", birth_date=born,
                        area=area, members=[
                            {"name": first, "relation": "mother"},
                            {"name": f"Child of {first}", "relation": "child",
                             "birth_date": born}])
        state["id"] = families.create_family(session, vault, staff[worker], data, begun)["id"]
        out.families += 1
        out.ids.append(state["id"])

    def sign(session: Session, vault: Vault) -> None:
        signed = begun + timedelta(hours=1)
        grants = {agency: list(OWN_FIELDS[agency])}
        if referred:
            grants[to] = ["involvement", *asked]
        consent_forms.record_consent(session, vault, staff[coordinator], state["id"], {
            "signed_by": first, "signed_on": signed.date(), "method": "paper",
            "purpose": "coordinated support for the family",
            "legal_basis": "consent", "statistics": counted,
            "valid_until": signed.date() + timedelta(days=valid_days),
            "grants": grants,
        }, signed)
        if counted:
            out.counted += 1

    def give_area(session: Session, vault: Vault) -> None:
        areas.set_family_area(session, vault, staff[worker], state["id"], area,
                              begun + timedelta(hours=1, minutes=5))

    steps: list[tuple[datetime, Run]] = [(begun, record), (begun + timedelta(hours=1), sign)]
    if minimal and counted:  # a pseudonymous family carries an area once it agreed to be counted
        steps.append((begun + timedelta(hours=1, minutes=5), give_area))
    steps += _needs_steps(state, staff[worker], agency, needs, begun + timedelta(hours=2))
    if referred:
        steps += _referral_steps(rng, state, staff, agency, worker, to, asked, answerer,
                                 contact, begun + timedelta(days=rng.randint(1, 10)), out)
    steps += _attendance_steps(rng, state, staff, agency, begun, out)
    for moment, run in steps:
        at(moment, run)


def _needs_steps(state: dict[str, Any], actor: Actor, agency: str, needs: list[str],
                 moment: datetime) -> list[tuple[datetime, Run]]:
    field_id = "story" if agency in ("harbour", "ecec") else "social"
    if agency == "child-protection":
        field_id = "social"

    def write(session: Session, vault: Vault) -> None:
        entries.write_entry(session, vault, actor, state["id"], field_id, None, moment,
                            kind="needs", data={"codes": needs})

    return [(moment, write)]


def _referral_steps(rng: random.Random, state: dict[str, Any], staff: dict[str, Actor],
                    agency: str, worker: str, to: str, asked: list[str], answerer: str,
                    contact: str, sent: datetime, out: Population,
                    ) -> list[tuple[datetime, Run]]:
    steps: list[tuple[datetime, Run]] = []
    answered = sent + timedelta(days=rng.randint(1, 6), hours=2)
    accepted = rng.random() < 0.8
    place = "Health centre, room 2" if to == "health-centre" else "Child protective services"

    def create(session: Session, vault: Vault) -> None:
        state["ref"] = referrals.create_referral(session, vault, staff[worker], state["id"], {
            "to": to, "asked": asked, "reason": "The family asks for support the referring "
                                                "agency cannot give.",
        }, sent)["id"]
        out.referrals += 1

    def answer(session: Session, vault: Vault) -> None:
        if accepted:
            referrals.act_on_referral(session, vault, staff[answerer], state["ref"], Act.ACCEPT,
                                      {"contact_worker": contact}, answered)
        else:
            referrals.act_on_referral(session, vault, staff[answerer], state["ref"],
                                      Act.DECLINE, {"reason": "No capacity this month; "
                                                              "please try the drop-in."},
                                      answered)

    steps += [(sent, create), (answered, answer)]
    if not accepted:
        return steps
    moment = answered + timedelta(hours=1)
    for attempt in range(2):
        when = _office_hours(rng, (moment + timedelta(days=rng.randint(3, 21))).date())
        came = rng.random() < (0.75 if attempt == 0 else 0.6)
        steps += _appointment(state, staff[contact], place, moment, when, came)
        moment = when + timedelta(hours=3)
        if came:
            steps.append((moment + timedelta(days=1), _close(state, staff[contact],
                                                             moment + timedelta(days=1))))
            break
    return steps


def _appointment(state: dict[str, Any], actor: Actor, place: str, booked: datetime,
                 when: datetime, came: bool,
                 ) -> list[tuple[datetime, Run]]:
    def book(session: Session, vault: Vault) -> None:
        state["apt"] = referrals.book_appointment(session, vault, actor, state["ref"], {
            "at": when, "place": place}, booked)["id"]

    def outcome(session: Session, vault: Vault) -> None:
        referrals.set_outcome(session, vault, actor, state["ref"], state["apt"],
                              {"outcome": "attended" if came else "missed"},
                              when + timedelta(hours=3))

    return [(booked, book), (when + timedelta(hours=3), outcome)]


def _close(state: dict[str, Any], actor: Actor, moment: datetime
           ) -> Callable[[Session, Vault], None]:
    def close(session: Session, vault: Vault) -> None:
        referrals.act_on_referral(session, vault, actor, state["ref"], Act.CLOSE,
                                  {"outcome_note": "Seen; the family knows where to find us."},
                                  moment)

    return close


def _attendance_steps(rng: random.Random, state: dict[str, Any], staff: dict[str, Actor],
                      agency: str, begun: datetime, out: Population,
                      ) -> list[tuple[datetime, Run]]:
    """Kindergarten days (ECEC's families, under education) or parenting-group
    sessions (some of the health centre's, under health), month by month."""
    if agency == "ecec":
        who, field_id, offered, months, rate = "ecec1", "education", 20, 6, rng.uniform(.6, .98)
    elif agency == "health-centre" and rng.random() < 0.35:
        who, field_id, offered, months, rate = "nurse2", "health", 4, 3, rng.uniform(.4, 1.0)
    else:
        return []
    steps: list[tuple[datetime, Run]] = []
    start = begun.date().replace(day=1)
    for n in range(1, months + 1):
        total = start.year * 12 + start.month - 1 + n
        first = date(total // 12, total % 12 + 1, 1)
        prev = date((total - 1) // 12, (total - 1) % 12 + 1, 1)
        attended = min(offered, round(offered * rate + rng.uniform(-2, 2)))
        data = {"attended": max(0, attended), "offered": offered,
                "from": prev.isoformat(), "to": (first - timedelta(days=1)).isoformat()}
        moment = _office_hours(rng, first + timedelta(days=rng.randint(0, 4)))

        def write(session: Session, vault: Vault, data: dict[str, Any] = data,
                  moment: datetime = moment) -> None:
            entries.write_entry(session, vault, staff[who], state["id"], field_id, None,
                                moment, kind="attendance", data=data)
            out.attendance += 1

        steps.append((moment, write))
    return steps
