"""Breaking the glass in the web UI: the record page offers it (and says what
it costs) only to staff of an allowed agency reading withheld fields; the
banner with the time left; the family's page and "who looked" in its
language; the auditor's queue, verdict, log highlight and counts."""

from __future__ import annotations

from flask import Flask

from coordination.model import EmergencyAccess
from tests.conftest import Api, Clock
from tests.functional.test_emergency_access import BODY, REASON, allow_agency, open_glass
from tests.functional.test_revocation_truth import count
from tests.functional.test_web_family import _signed_in, _text
from tests.web import post_form, set_passwords, signed_in

GRID = {"physio": ["involvement", "health"], "health-centre": ["involvement", "contact"]}


def _case(app: Flask, api: Api, clock: Clock) -> tuple[str, dict[str, str]]:
    allow_agency(app, clock, "health-centre")
    family = api.new_family("physio1", display_name="Aylin Demir", birth_date="2024-03-14")
    api.write(family, "health", "Allergic to penicillin.", who="physio1")
    receipt: dict[str, str] = api.sign(family, GRID, who="physiocoord")["receipt"]
    set_passwords(app)
    return family, receipt


def test_the_record_offers_emergency_access_only_to_allowed_agencies(
        app: Flask, api: Api, clock: Clock) -> None:
    family, _ = _case(app, api, clock)
    nurse = signed_in(app, "nurse1")
    page = _text(nurse.get(f"/staff/families/{family}"))
    assert "Emergency access" in page and "an auditor reviews it" in page
    assert "the family sees it on its page" in page
    assert "Emergency access open" not in page
    # The physiotherapy agency is not allowed: no offer, and the page refuses.
    found = nurse.get("/staff/?name=Nobody").get_data(as_text=True)
    assert 'id="emergency-search"' in found
    physio = signed_in(app, "physio1")
    assert 'id="emergency-search"' not in physio.get("/staff/?name=Nobody").get_data(
        as_text=True)
    assert "Open emergency access" not in _text(physio.get(f"/staff/families/{family}"))
    assert physio.get("/staff/emergency-access").status_code == 403


def test_opening_it_shows_the_banner_with_the_time_left(
        app: Flask, api: Api, clock: Clock) -> None:
    family, _ = _case(app, api, clock)
    nurse = signed_in(app, "nurse1")
    short = post_form(nurse, "/staff/emergency-access", "/staff/emergency-access",
                      {**BODY, "reason": "urgent"})
    assert short.status_code == 422  # type: ignore[attr-defined]
    assert count(app, EmergencyAccess) == 0
    missing = post_form(nurse, "/staff/emergency-access", "/staff/emergency-access",
                        {**BODY, "name": "Nobody Known"})
    assert missing.status_code == 404  # type: ignore[attr-defined]
    assert "No single person" in _text(missing)
    opened = post_form(nurse, "/staff/emergency-access", "/staff/emergency-access", BODY)
    assert opened.status_code == 302  # type: ignore[attr-defined]
    location = opened.headers["Location"]  # type: ignore[attr-defined]
    assert location == f"/staff/families/{family}"
    clock.advance(minutes=25)
    page = _text(nurse.get(f"/staff/families/{family}"))
    assert "Emergency access open: 1 h 35 min left" in page
    assert "Allergic to penicillin." in page
    # Not "your agency already sees everything": it sees it by emergency only.
    assert "You see this record through emergency access" in page
    assert "already sees every part" not in page
    clock.advance(hours=2)
    # Over: the form's own cells again (contact), the health note withheld.
    after = _text(signed_in(app, "nurse1").get(f"/staff/families/{family}"))
    assert "Emergency access open" not in after and "Allergic" not in after


def test_the_family_reads_it_in_its_language(app: Flask, api: Api, clock: Clock) -> None:
    family, receipt = _case(app, api, clock)
    assert open_glass(api).status_code == 201
    client = _signed_in(app, receipt)
    page = _text(client.get("/family/consent"))
    assert "Opened in an emergency" in page
    assert "Health centre opened your whole record in an emergency on" in page
    assert "It said a life or someone's health was at risk." in page
    assert "An auditor will check whether it was right to do so." in page
    assert "Health centre (practitioner) opened your whole record in an emergency." in _text(
        client.get("/family/access-log"))
    for lang, words in (("nb", "Åpnet i en nødsituasjon"), ("tr", "Acil durumda açıldı"),
                        ("ar", "فُتح في حالة طارئة")):
        assert words in _text(client.get(f"/family/consent?lang={lang}")), lang


def test_the_auditor_reviews_it_and_an_unjustified_one_is_highlighted(
        app: Flask, api: Api, clock: Clock) -> None:
    family, _ = _case(app, api, clock)
    opened = open_glass(api).get_json()
    api.get(f"/api/v1/families/{family}", "nurse1")
    auditor = signed_in(app, "auditor1")
    home = _text(auditor.get("/audit/"))
    assert "1 waiting for review · 0 found unjustified" in home
    queue = auditor.get("/audit/emergency-access")
    assert REASON in _text(queue) and "health" in _text(queue)
    bad = post_form(auditor, "/audit/emergency-access",
                    f"/audit/emergency-access/{opened['id']}/review", {"verdict": "maybe"})
    assert bad.status_code == 422  # type: ignore[attr-defined]
    done = post_form(auditor, "/audit/emergency-access",
                     f"/audit/emergency-access/{opened['id']}/review",
                     {"verdict": "unjustified", "note": "The family could have been asked."})
    assert done.status_code == 302  # type: ignore[attr-defined]
    home = auditor.get("/audit/").get_data(as_text=True)
    assert "0</strong> waiting for review" in home and "1</strong> found unjustified" in home
    assert home.count("unjustified emergency access</span>") >= 3  # open, read, review
    reviewed = _text(auditor.get("/audit/emergency-access?reviewed=true"))
    assert "The family could have been asked." in reviewed
    assert signed_in(app, "nurse1").get("/audit/emergency-access").status_code == 403
