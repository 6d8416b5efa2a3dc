"""Typed entries through the web pages, on both databases: the staff entry
form offers the kinds a field takes and shows form errors (never a 500),
the record page shows typed entries in words, and the family page shows
its needs and attendance in its language — leaving out, without a trace,
an agency a protection hold conceals."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from tests.conftest import Api, Clock
from tests.functional.test_protection_holds import CPS_GRID, _allow_holds, place
from tests.functional.test_web_family import _signed_in, _text
from tests.unchanged import nothing_stored
from tests.web import post_form, set_passwords, signed_in

ATTENDANCE = {"attended": 40, "offered": 50, "from": "2026-09-01", "to": "2026-11-30"}
ATTENDANCE_WORDS = "Attended 40 of 50 sessions offered, 1 Sep 2026 to 30 Nov 2026"


@pytest.fixture
def web(app: Flask, api: Api) -> Api:
    set_passwords(app)
    return api


def html(response: Any) -> str:
    text: str = response.get_data(as_text=True)
    return text


def entry_form(app: Flask, who: str, family: str, data: dict[str, Any]) -> Any:
    client = signed_in(app, who)
    return client, post_form(client, f"/staff/families/{family}",
                             f"/staff/families/{family}/entries", data)


def test_the_form_offers_the_kinds_and_each_code(app: Flask, web: Api) -> None:
    family = web.new_family()
    page = html(signed_in(app, "nurse1").get(f"/staff/families/{family}"))
    for kind in ("text", "attendance", "needs"):
        assert f'name="kind" value="{kind}"' in page
    assert "(under Health, Education and care)" in _text_of(page)
    for code in ("income", "material_help", "child_benefit", "other"):
        assert f'name="codes" value="{code}"' in page
    assert "residence" not in page
    for key in ("attended", "offered", "from", "to"):
        assert f'id="f-data-{key}" name="{key}"' in page


def test_a_minimal_data_agency_is_offered_needs_under_story_only(app: Flask, web: Api) -> None:
    family = web.new_family("ngo1", display_name="Mira")
    page = html(signed_in(app, "ngo1").get(f"/staff/families/{family}"))
    assert 'name="kind" value="needs"' in page and "(under The family's story)" in _text_of(page)
    assert 'name="kind" value="attendance"' not in page
    client, ok = entry_form(app, "ngo1", family, {"field": "story", "kind": "needs",
                                                  "codes": ["income", "childcare"]})
    assert ok.status_code == 302
    assert "Needs: income, childcare" in _text(client.get(f"/staff/families/{family}"))


def test_attendance_and_needs_written_through_the_form_read_in_words(app: Flask,
                                                                      web: Api) -> None:
    family = web.new_family()
    client, written = entry_form(app, "nurse1", family, {
        "field": "education", "kind": "attendance", "attended": "40", "offered": "50",
        "from": "2026-09-01", "to": "2026-11-30", "value": "ignored"})
    assert written.status_code == 302
    _, needs = entry_form(app, "nurse1", family, {"field": "social", "kind": "needs",
                                                  "codes": ["housing", "income"]})
    assert needs.status_code == 302
    record = _text(client.get(f"/staff/families/{family}"))
    assert ATTENDANCE_WORDS in record and "Needs: housing, income" in record
    api_record = web.get(f"/api/v1/families/{family}", "nurse1").get_json()
    assert api_record["fields"]["education"][0]["data"] == ATTENDANCE


@pytest.mark.parametrize(("data", "key", "says"), [
    ({"field": "education", "kind": "attendance", "attended": "80%", "offered": "100",
      "from": "2026-09-01", "to": "2026-11-30"}, "data", "not a percentage"),
    ({"field": "education", "kind": "attendance", "attended": "0.8", "offered": "1",
      "from": "2026-09-01", "to": "2026-11-30"}, "data", "not a percentage"),
    ({"field": "education", "kind": "attendance", "attended": "51", "offered": "50",
      "from": "2026-09-01", "to": "2026-11-30"}, "data-attended", "more than"),
    ({"field": "education", "kind": "attendance", "attended": "4", "offered": "5",
      "from": "2026-09-01"}, "data-to", "required"),
    ({"field": "education", "kind": "attendance", "attended": "4", "offered": "5",
      "from": "2026-09-01", "to": "2027-12-01"}, "data-to", "school year"),
    ({"field": "education", "kind": "attendance", "attended": "forty", "offered": "5",
      "from": "2026-09-01", "to": "2026-11-30"}, "data-attended", "whole number"),
    ({"field": "social", "kind": "needs"}, "data-codes", "at least one"),
    ({"field": "social", "kind": "needs", "codes": ["residence_documents"]}, "data-codes",
     "unknown code"),
    ({"field": "social", "kind": "attendance", "attended": "4", "offered": "5",
      "from": "2026-09-01", "to": "2026-11-30"}, "kind", "takes 'text' or 'needs'"),
    ({"field": "contact", "kind": "needs", "codes": ["housing"]}, "kind", "takes 'text'"),
    ({"field": "social", "kind": "rate", "codes": ["housing"]}, "kind", "Must be one of"),
    ({"field": "social", "kind": "text"}, "value", "text"),
])
def test_a_bad_typed_entry_is_a_form_error_that_stores_nothing(
        app: Flask, web: Api, data: dict[str, Any], key: str, says: str) -> None:
    family = web.new_family()
    client = signed_in(app, "nurse1")
    with nothing_stored(app, reads=("record.read",)):
        response = post_form(client, f"/staff/families/{family}",
                             f"/staff/families/{family}/entries", data)
    assert response.status_code == 422  # type: ignore[attr-defined]
    page = html(response)
    assert f'href="#f-{key}"' in page
    assert says in _text_of(page)
    # What was typed is shown again.
    for name, value in data.items():
        if name in ("attended", "offered", "from", "to"):
            assert f'value="{value}"' in page


def _text_of(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).replace("&#39;", "'").split())


# --- the family page ------------------------------------------------------------------


def _section(response: Any) -> str:
    found = re.search(r'<section aria-labelledby="entries-title".*?</section>', html(response),
                      re.S)
    return found.group(0) if found else ""


@pytest.mark.parametrize(("lang", "attendance", "needs"), [
    ("en", "Attended 40 of 50 sessions offered, from", "Needs: housing and income."),
    ("nb", "Møtte 40 av 50 tilbudte timer, fra", "Behov: bolig og inntekt."),
    ("tr", "sunulan 50 oturumun 40 tanesine katıldı.", "İhtiyaçlar: konut ve gelir."),
    ("ar", "حضر 40 من أصل 50 من الجلسات المقدّمة", "الاحتياجات: السكن والدخل."),
])
def test_the_family_reads_its_needs_and_attendance_in_its_language(
        app: Flask, web: Api, lang: str, attendance: str, needs: str) -> None:
    family = web.new_family()
    web.post(f"/api/v1/families/{family}/entries", "nurse1",
             json={"field": "education", "kind": "attendance", "data": ATTENDANCE})
    web.post(f"/api/v1/families/{family}/entries", "nurse1",
             json={"field": "social", "kind": "needs", "data": {"codes": ["housing", "income"]}})
    web.write(family, "story", "Free text stays off the family page section.")
    receipt = web.sign(family, {"health-centre": ["involvement", "social"]})["receipt"]
    client = _signed_in(app, receipt)
    section = " ".join(re.sub(r"<[^>]+>", " ", _section(
        client.get(f"/family/consent?lang={lang}"))).split())
    assert attendance in section and needs in section, section
    assert "Free text" not in section


def _typed_case(web: Api, with_cps: bool) -> tuple[str, dict[str, str]]:
    family = web.new_family("nurse1", display_name="Aylin Demir")
    receipt: dict[str, str] = web.sign(family, CPS_GRID)["receipt"]
    assert web.post(f"/api/v1/families/{family}/involvements", "coord1",
                    json={"agency": "cps"}).status_code == 201
    web.post(f"/api/v1/families/{family}/entries", "nurse1",
             json={"field": "health", "kind": "attendance", "data": ATTENDANCE})
    if with_cps:
        written = web.post(f"/api/v1/families/{family}/entries", "cps1",
                           json={"field": "social", "kind": "needs",
                                 "data": {"codes": ["parenting"]}})
        assert written.status_code == 201, written.get_json()
    return family, receipt


@pytest.mark.parametrize("conceal", [["entries"], ["involvement"]])
def test_a_hold_leaves_no_trace_of_the_concealed_agencys_typed_entries(
        app: Flask, web: Api, clock: Clock, conceal: list[str]) -> None:
    _allow_holds(app, clock, web)
    held, held_receipt = _typed_case(web, with_cps=True)
    _, plain_receipt = _typed_case(web, with_cps=False)
    held_client = _signed_in(app, held_receipt)
    before = _section(held_client.get("/family/consent"))
    assert "parenting" in before and "Child protection" in before
    hold = place(web, held, conceal=conceal).get_json()
    clock.advance(minutes=5)
    with_hold = _section(held_client.get("/family/consent"))
    without_cps = _section(_signed_in(app, plain_receipt).get("/family/consent"))
    assert with_hold == without_cps
    assert "parenting" not in with_hold and "Child protection" not in with_hold
    assert "Attended 40 of 50" in with_hold
    web.call("DELETE", f"/api/v1/families/{held}/protection-holds/{hold['id']}", "cpscoord",
             json={})
    assert "parenting" in _section(held_client.get("/family/consent"))
