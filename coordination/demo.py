"""The demo: both scenarios of DOMAIN.md, one login per role.

Norway: a family centre where the health centre, physiotherapy and the
kindergarten (ECEC) share under one joint form. Belgium: a low-threshold NGO
in minimal-data mode that records a family by first name and a relative's
phone number, refers it to the health centre once the family agrees, and
follows the appointments through to the health centre's feedback; a second
NGO family, referred this week, has an appointment coming up and a referral
waiting for the health centre's answer.

Everything goes through the casework use cases (so it is on the audit log),
at times counted back from the moment of seeding, oldest first. What the
worklists of coord1 and ngocoord1 show comes from this data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coordination import accounts, demo_population
from coordination.casework import consent_forms, entries, families, referrals
from coordination.casework.referral_states import Act
from coordination.crypto import Vault
from coordination.errors import Conflict
from coordination.model import Agency

AGENCIES = [
    ("health-centre", "Family centre health station", "health", False),
    ("physio", "Family centre physiotherapy", "physiotherapy", False),
    ("ecec", "Sunflower kindergarten", "ecec", False),
    ("child-protection", "Child protective services", "child-protection", False),
    ("harbour", "Harbour drop-in (low-threshold NGO)", "ngo", True),
    ("oversight", "Programme data protection office", "oversight", False),
]

# Agencies whose coordinators may place protection holds (CONTRACT.md).
PROTECTION_HOLDS = {"health-centre", "child-protection"}
# The agencies whose practitioners and coordinators may break the glass.
EMERGENCY_ACCESS = frozenset({"health-centre", "child-protection"})

# The agencies' names on the family page in its other languages (the
# low-threshold NGO keeps its own name in every language).
AGENCY_NAMES = {
    "health-centre": {"nb": "Helsestasjonen i familiesenteret",
                      "tr": "Aile merkezi sağlık istasyonu",
                      "ar": "المحطة الصحية في مركز الأسرة"},
    "physio": {"nb": "Fysioterapi i familiesenteret", "tr": "Aile merkezi fizyoterapi",
               "ar": "العلاج الطبيعي في مركز الأسرة"},
    "ecec": {"nb": "Solsikken barnehage", "tr": "Ayçiçeği anaokulu",
             "ar": "روضة عباد الشمس"},
    "child-protection": {"nb": "Barnevernet", "tr": "Çocuk koruma hizmetleri",
                         "ar": "خدمات حماية الطفل"},
}

USERS = [
    ("nurse1", "health-centre", "practitioner"),
    ("nurse2", "health-centre", "practitioner"),
    ("coord1", "health-centre", "coordinator"),
    ("physio1", "physio", "practitioner"),
    ("ecec1", "ecec", "practitioner"),
    ("ececcoord1", "ecec", "coordinator"),
    ("cps1", "child-protection", "practitioner"),
    ("cpscoord1", "child-protection", "coordinator"),
    ("ngo1", "harbour", "practitioner"),
    ("ngocoord1", "harbour", "coordinator"),
    ("auditor1", "oversight", "auditor"),
    ("eval1", "oversight", "evaluator"),
    ("admin1", "oversight", "admin"),
    ("hcadmin1", "health-centre", "admin"),
]
# How families are told their contact person's name.
DISPLAY_NAMES = {
    "nurse1": "Kari Nordmann", "nurse2": "Sigrid Haugen", "coord1": "Ingrid Berg",
    "physio1": "Ola Hansen", "ecec1": "Nora Lie", "ececcoord1": "Liv Aas", "cps1": "Per Olsen",
    "cpscoord1": "Anne Moe",
    "ngo1": "Lotte Peeters", "ngocoord1": "Jan Claes", "auditor1": "Eva Strand",
    "admin1": "Tor Bakke", "hcadmin1": "Marit Dahl", "eval1": "Siri Holm",
}


def demo_password(username: str) -> str:
    return f"{username}-demo"


@dataclass
class DemoData:
    logins: list[tuple[str, str, str, str]] = field(default_factory=list)
    families: dict[str, str] = field(default_factory=dict)
    receipt: dict[str, str] = field(default_factory=dict)
    population: demo_population.Population | None = None


def is_seeded(session: Session) -> bool:
    return session.scalars(select(Agency.id).limit(1)).first() is not None


def seed(session: Session, vault: Vault, now: datetime, population: int = 0) -> DemoData:
    """Load the demo; refuses (`Conflict`) if the database has agencies already.
    With `population` (a number of families), a year of families before the
    scenarios as well (`coordination.demo_population`), for the reports page."""
    if is_seeded(session):
        raise Conflict("the database already has agencies; the demo loads only into an empty one")
    out = DemoData()
    # The Belgian cases happened over the last three weeks; Norway's is today.
    start = now - timedelta(days=21)
    # The agencies exist from the start of what is seeded.
    opened = now - timedelta(days=366) if population else start
    for slug, name, kind, minimal in AGENCIES:
        accounts.add_agency(session, slug, name, kind, minimal, opened,
                            protection_holds=slug in PROTECTION_HOLDS,
                            emergency_access=slug in EMERGENCY_ACCESS)
    for slug, names in AGENCY_NAMES.items():
        accounts.set_agency_names(session, slug, dict(names), opened)
    demo_population.set_areas(session, [a[0] for a in AGENCIES if a[0] != "oversight"], opened)
    for username, agency, role in USERS:
        accounts.add_staff(session, username, agency, role, demo_password(username), opened,
                           DISPLAY_NAMES.get(username))
        out.logins.append((username, role, agency, demo_password(username)))

    def as_user(username: str, at: datetime = start) -> Any:
        token = accounts.create_token(session, username, timedelta(minutes=5), at)
        return accounts.authenticate(session, token, at)

    if population:
        everyone = {u: as_user(u, opened) for u, _a, role in USERS
                    if role in ("practitioner", "coordinator")}
        out.population = demo_population.seed_population(
            session, vault, everyone, now, until=start - timedelta(hours=1), count=population)

    # Signed in once, before anything happens (token creation is on record too).
    staff = {u: as_user(u) for u in ("nurse1", "coord1", "ngo1", "ngocoord1")}
    belgium = _belgium(session, vault, staff, start)
    belgium2 = _belgium_second(session, vault, staff, now)
    nurse, coord = staff["nurse1"], staff["coord1"]
    # Norway: the family asks the family centre for help.
    norway = families.create_family(session, vault, nurse, {
        "display_name": "Aylin Demir",
        "birth_date": date(2024, 3, 14),
        "address": "Storgata 12, 0155 Oslo",
        "languages": ["tr", "nb"],
        "members": [
            {"name": "Aylin Demir", "relation": "mother"},
            {"name": "Emir Demir", "relation": "child", "birth_date": date(2024, 3, 14)},
        ],
    }, now)
    fid = norway["id"]
    entries.write_entry(session, vault, nurse, fid, "health",
                        "Emir: growth on track; late to sit unaided, physiotherapy advised.", now)
    entries.write_entry(session, vault, nurse, fid, "contact",
                        "Mother's mobile: +47 400 00 000 (Turkish preferred).", now)
    form = consent_forms.record_consent(session, vault, coord, fid, {
        "signed_by": "Aylin Demir",
        "signed_on": now.date(),
        "method": "paper",
        "interpreter_language": "tr",
        "purpose": "coordinated support from the family centre",
        "legal_basis": "consent",
        "valid_until": now.date() + timedelta(days=365),
        "grants": {
            "health-centre": ["involvement", "contact", "household", "story", "health",
                              "education"],
            "physio": ["involvement", "health"],
            "ecec": ["involvement", "education"],
        },
    }, now)
    out.families = {"norway": fid, "belgium": belgium, "belgium2": belgium2}
    out.receipt = form["receipt"]
    return out


def _at(day: datetime, hour: int, minute: int = 0) -> datetime:
    """That day at a time of day (UTC): appointments keep office hours."""
    return datetime.combine(day.date(), time(hour, minute), UTC)


def _family_says_yes(session: Session, vault: Vault, receipt: dict[str, str], family_id: str,
                     referral_id: str, now: datetime) -> None:
    """The family, signed in with its receipt, agrees to the referral."""
    opened = accounts.open_family_session(session, receipt["code"], receipt["pin"],
                                          timedelta(minutes=15), now)
    family = accounts.authenticate(session, opened["token"], now)
    referrals.family_answer(session, vault, family, family_id, referral_id, True, now)


def _belgium(session: Session, vault: Vault, staff: dict[str, Any], start: datetime) -> str:
    """DOMAIN.md's Belgian scenario, then a referral played through: the NGO
    knows a first name and a relative's phone number; the family agrees to
    be referred to the health centre, which books an appointment with an
    interpreter; the family misses it, comes to the second, and the health
    centre closes the referral with feedback. The family signed for six
    weeks only, so its form is up for renewal now."""
    ngo, ngocoord, nurse, coord = (staff[u] for u in ("ngo1", "ngocoord1", "nurse1", "coord1"))
    mira = families.create_family(session, vault, ngo, {
        "display_name": "Mira", "languages": ["bg"],
    }, start)["id"]
    entries.write_entry(session, vault, ngo, mira, "contact", "Aunt's phone: +32 470 00 00 00",
                        start)
    entries.write_entry(session, vault, ngo, mira, "story",
                        "Baby of 4 months; asked us to book a health-centre appointment.", start)
    signed = start + timedelta(hours=1)
    form = consent_forms.record_consent(session, vault, ngocoord, mira, {
        "signed_by": "Mira",
        "signed_on": signed.date(),
        "method": "in_person",
        "interpreter_language": "bg",
        "purpose": "support from Harbour drop-in and the services it books for the family",
        "legal_basis": "consent",
        "valid_until": signed.date() + timedelta(days=41),
        "grants": {"harbour": ["involvement", "contact", "story"]},
    }, signed)
    day = start + timedelta(days=1)
    ref = referrals.create_referral(session, vault, ngo, mira, {
        "to": "health-centre", "asked": ["contact", "story"], "urgency": "soon",
        "interpreter_language": "bg", "accompany": True,
        "reason": "Baby of 4 months not yet seen by a doctor; the mother asks for a check-up "
                  "and vaccinations. Speaks Bulgarian; call the aunt to reach her.",
    }, day)["id"]
    _family_says_yes(session, vault, form["receipt"], mira, ref, day + timedelta(hours=2))
    day = start + timedelta(days=2)
    referrals.act_on_referral(session, vault, coord, ref, Act.ACCEPT,
                              {"contact_worker": "nurse1"}, day)
    place = "Health centre, Sint-Pietersnieuwstraat 41, Ghent (ground floor)"
    first = referrals.book_appointment(session, vault, nurse, ref, {
        "at": _at(start + timedelta(days=5), 9, 30), "place": place,
        "interpreter_language": "bg", "accompanied_by": "a Harbour volunteer"}, day)["id"]
    referrals.set_outcome(session, vault, nurse, ref, first, {
        "outcome": "missed", "note": "Did not come; the aunt says the bus did not run."},
        _at(start + timedelta(days=5), 12))
    second = referrals.book_appointment(session, vault, nurse, ref, {
        "at": _at(start + timedelta(days=9), 9, 30), "place": place,
        "interpreter_language": "bg", "accompanied_by": "a Harbour volunteer"},
        start + timedelta(days=6))["id"]
    referrals.set_outcome(session, vault, nurse, ref, second, {"outcome": "attended"},
                          _at(start + timedelta(days=9), 11))
    referrals.act_on_referral(session, vault, nurse, ref, Act.CLOSE, {
        "outcome_note": "Seen with a Bulgarian interpreter: the baby is growing well and "
                        "had the first vaccinations. Next check in two months, booked with "
                        "the mother."}, start + timedelta(days=10))
    return mira


def _belgium_second(session: Session, vault: Vault, staff: dict[str, Any], now: datetime) -> str:
    """A second NGO family, this week: referred to the health centre, which
    accepted and booked an appointment in two days; the mother then asked for
    her own check, a referral the health centre has still to answer."""
    ngo, ngocoord, nurse, coord = (staff[u] for u in ("ngo1", "ngocoord1", "nurse1", "coord1"))
    begun = now - timedelta(days=5)
    yana = families.create_family(session, vault, ngo, {
        "display_name": "Yana", "languages": ["ro"],
    }, begun)["id"]
    entries.write_entry(session, vault, ngo, yana, "story",
                        "Mother and a baby of 6 weeks; the baby has not seen a doctor yet.",
                        begun)
    consent_forms.record_consent(session, vault, ngocoord, yana, {
        "signed_by": "Yana",
        "signed_on": begun.date(),
        "method": "in_person",
        "interpreter_language": "ro",
        "purpose": "support from Harbour drop-in and the services it books for the family",
        "legal_basis": "consent",
        "valid_until": begun.date() + timedelta(days=365),
        "grants": {"harbour": ["involvement", "contact", "story"],
                   "health-centre": ["involvement", "story", "health"]},
    }, begun)
    ref = referrals.create_referral(session, vault, ngo, yana, {
        "to": "health-centre", "asked": ["story"], "interpreter_language": "ro",
        "reason": "Baby of 6 weeks needs a first check and vaccinations; the mother speaks "
                  "Romanian.",
    }, begun + timedelta(hours=1))["id"]
    day = now - timedelta(days=4)
    referrals.act_on_referral(session, vault, coord, ref, Act.ACCEPT,
                              {"contact_worker": "nurse1"}, day)
    referrals.book_appointment(session, vault, nurse, ref, {
        "at": _at(now + timedelta(days=2), 10), "place": "Health centre, room 3",
        "interpreter_language": "ro", "accompanied_by": "a Harbour volunteer"}, day)
    referrals.create_referral(session, vault, ngo, yana, {
        "to": "health-centre", "asked": ["story"], "urgency": "soon",
        "interpreter_language": "ro",
        "reason": "The mother asks for her own check six weeks after the birth, with a woman "
                  "doctor if possible.",
    }, now - timedelta(days=1))
    return yana
