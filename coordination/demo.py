"""The demo: both scenarios of DOMAIN.md, one login per role.

Norway: a family centre where the health centre, physiotherapy and the
kindergarten (ECEC) share under one joint form. Belgium: a low-threshold NGO
in minimal-data mode that records a family by first name and a relative's
phone number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coordination import accounts
from coordination.casework import consent_forms, entries, families
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
    ("cps1", "child-protection", "practitioner"),
    ("ngo1", "harbour", "practitioner"),
    ("ngocoord1", "harbour", "coordinator"),
    ("auditor1", "oversight", "auditor"),
    ("admin1", "oversight", "admin"),
    ("hcadmin1", "health-centre", "admin"),
]
# How families are told their contact person's name.
DISPLAY_NAMES = {
    "nurse1": "Kari Nordmann", "nurse2": "Sigrid Haugen", "coord1": "Ingrid Berg",
    "physio1": "Ola Hansen", "ecec1": "Nora Lie", "cps1": "Per Olsen",
    "ngo1": "Lotte Peeters", "ngocoord1": "Jan Claes", "auditor1": "Eva Strand",
    "admin1": "Tor Bakke", "hcadmin1": "Marit Dahl",
}


def demo_password(username: str) -> str:
    return f"{username}-demo"


@dataclass
class DemoData:
    logins: list[tuple[str, str, str, str]] = field(default_factory=list)
    families: dict[str, str] = field(default_factory=dict)
    receipt: dict[str, str] = field(default_factory=dict)


def is_seeded(session: Session) -> bool:
    return session.scalars(select(Agency.id).limit(1)).first() is not None


def seed(session: Session, vault: Vault, now: datetime) -> DemoData:
    """Load the demo; refuses (`Conflict`) if the database has agencies already."""
    if is_seeded(session):
        raise Conflict("the database already has agencies; the demo loads only into an empty one")
    out = DemoData()
    for slug, name, kind, minimal in AGENCIES:
        accounts.add_agency(session, slug, name, kind, minimal, now)
    for slug, names in AGENCY_NAMES.items():
        accounts.set_agency_names(session, slug, dict(names), now)
    for username, agency, role in USERS:
        accounts.add_staff(session, username, agency, role, demo_password(username), now,
                           DISPLAY_NAMES.get(username))
        out.logins.append((username, role, agency, demo_password(username)))

    def as_user(username: str) -> Any:
        token = accounts.create_token(session, username, timedelta(minutes=5), now)
        return accounts.authenticate(session, token, now)

    nurse, coord, ngo = as_user("nurse1"), as_user("coord1"), as_user("ngo1")
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
    out.families["norway"] = fid
    out.receipt = form["receipt"]
    # Belgium: the NGO knows a first name and a relative's phone number.
    belgium = families.create_family(session, vault, ngo, {
        "display_name": "Mira", "languages": ["bg"],
    }, now)
    entries.write_entry(session, vault, ngo, belgium["id"], "contact",
                        "Aunt's phone: +32 470 00 00 00", now)
    entries.write_entry(session, vault, ngo, belgium["id"], "story",
                        "Baby of 4 months; asked us to book a health-centre appointment.", now)
    out.families["belgium"] = belgium["id"]
    return out
