"""Staff pages through the web UI: what each shows, what each refuses."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from consent.tables import ConsentFormRow
from coordination.model import Entry, Family, Involvement
from tests.conftest import T0, Api
from tests.unchanged import nothing_stored
from tests.web import csrf_token, post_form, set_passwords, signed_in

NORWAY = {
    "health-centre": ["involvement", "contact", "health"],
    "physio": ["involvement", "health"],
    "ecec": ["involvement", "education"],
}


@pytest.fixture
def web(app: Flask, api: Api) -> Api:
    set_passwords(app)
    return api


@pytest.fixture
def norway(web: Api) -> str:
    family_id = web.new_family(display_name="Aylin Demir", birth_date="2024-03-14")
    web.write(family_id, "health", "Growth on track; physiotherapy advised.")
    web.write(family_id, "contact", "Mother's mobile 400 00 000")
    web.sign(family_id, NORWAY)
    return family_id


def page(response: Any) -> str:
    text_: str = response.get_data(as_text=True)
    return text_


def count(app: Flask, model: Any, *where: Any) -> int:
    with app.extensions["onestory"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def last_audit(app: Flask) -> Any:
    with app.extensions["onestory"].engine.connect() as conn:
        return conn.execute(text("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1")).one()


# --- search ---------------------------------------------------------------------------


def test_search_finds_only_visible_families(app: Flask, norway: str, web: Api) -> None:
    web.new_family(who="cps1", display_name="Aylin Demir")  # not shared with physio
    client = signed_in(app, "physio1")
    response = client.get("/staff/?name=aylin+demir&birth_date=2024-03-14")
    assert response.status_code == 200
    links = re.findall(r'href="/staff/families/(fam_[^"]+)"', page(response))
    assert links == [norway]
    assert last_audit(app).action == "family.search"


def test_search_form_errors(app: Flask, web: Api) -> None:
    client = signed_in(app, "physio1")
    response = client.get("/staff/?name=x&birth_date=2024-13-45")
    assert response.status_code == 422
    assert 'aria-invalid="true"' in page(response) and "birth date" in page(response)


def test_no_result_explains_itself(app: Flask, web: Api) -> None:
    response = signed_in(app, "physio1").get("/staff/?name=nobody")
    html = page(response)
    assert "Nothing matched" in html and "No family shared with your agency matched" in html
    # It suggests other searches, not recording the family again.
    assert "a single word of the name" in html and "the birth date of the family" in html
    assert "/staff/families/new" not in html.split('id="nothing-matched"')[1]


# --- the shared record ------------------------------------------------------------------


def test_record_shows_granted_fields_with_author_and_marks_the_rest(
        app: Flask, norway: str) -> None:
    response = signed_in(app, "physio1").get(f"/staff/families/{norway}")
    assert response.status_code == 200
    html = page(response)
    assert "Growth on track" in html
    assert "Written by nurse1 (Health centre) on 2026-11-22 at 10:00 UTC" in html
    assert "400 00 000" not in html  # contact details are not shared with physio
    contact = html[html.index('id="field-contact"'):html.index('id="field-household"')]
    assert "Not shared with your agency" in contact and "Ask the family" in contact
    # Physio holds cells but is not involved: it may read, not write.
    assert "Your agency is not involved with this family" in html
    assert f'action="/staff/families/{norway}/entries"' not in html
    row = last_audit(app)
    assert row.action == "record.read" and row.actor == "physio1"
    assert "contact" in row.withheld and "health" in row.shown


def test_record_lists_involved_agencies_and_contact_workers(app: Flask, norway: str,
                                                            web: Api) -> None:
    client = signed_in(app, "physio1")
    html = page(client.get(f"/staff/families/{norway}"))
    assert "Agencies involved" in html and "nurse1" in html


# --- entries --------------------------------------------------------------------------


def test_add_an_entry(app: Flask, norway: str, web: Api) -> None:
    client = signed_in(app, "nurse1")
    response = post_form(client, f"/staff/families/{norway}", f"/staff/families/{norway}/entries",
                         {"field": "story", "value": "Told once, here."})
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert "Told once, here." in page(client.get(f"/staff/families/{norway}"))


@pytest.mark.parametrize(("data", "key"), [
    ({"field": "health", "value": ""}, "value"),
    ({"field": "nonsense", "value": "x"}, "field"),
    ({"field": "involvement", "value": "x"}, "field"),
    ({"value": "x"}, "field"),
])
def test_bad_entry_is_a_form_error_and_changes_nothing(app: Flask, norway: str, web: Api,
                                                       data: dict[str, str], key: str) -> None:
    client = signed_in(app, "nurse1")
    before = count(app, Entry)
    response = post_form(client, f"/staff/families/{norway}",
                         f"/staff/families/{norway}/entries", data)
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert f'href="#f-{key}"' in page(response)
    assert count(app, Entry) == before


def test_entry_by_an_agency_that_may_not_see_the_family(app: Flask, norway: str,
                                                        web: Api) -> None:
    client = signed_in(app, "cps1")
    token = csrf_token(page(client.get("/staff/")))
    response = client.post(f"/staff/families/{norway}/entries",
                           data={"field": "health", "value": "x", "csrf_token": token})
    assert response.status_code == 404
    assert count(app, Entry) == 2


# --- minimal-data mode (Belgium) ----------------------------------------------------------


def test_minimal_data_agency_records_a_first_name_and_is_refused_a_birth_date(
        app: Flask, web: Api) -> None:
    client = signed_in(app, "ngo1")
    form_page = page(client.get("/staff/families/new"))
    assert "minimal-data mode" in form_page
    refused = post_form(client, "/staff/families/new", "/staff/families/new",
                        {"display_name": "Mira", "birth_date": "2026-07-01"})
    assert refused.status_code == 422  # type: ignore[attr-defined]
    assert "birth_date" in page(refused) or "birth date" in page(refused)
    assert "minimal-data agency records only display_name and languages" in page(refused)
    assert count(app, Family) == 0
    created = post_form(client, "/staff/families/new", "/staff/families/new",
                        {"display_name": "Mira", "languages": "bg"})
    assert created.status_code == 302  # type: ignore[attr-defined]
    family_id = created.headers["Location"].rsplit("/", 1)[1]  # type: ignore[attr-defined]
    ok = post_form(client, f"/staff/families/{family_id}", f"/staff/families/{family_id}/entries",
                   {"field": "contact", "value": "Aunt's phone +32 470"})
    assert ok.status_code == 302  # type: ignore[attr-defined]
    health = post_form(client, f"/staff/families/{family_id}",
                       f"/staff/families/{family_id}/entries",
                       {"field": "health", "value": "x"})
    assert health.status_code == 422  # type: ignore[attr-defined]
    assert "minimal-data agency writes only contact and story" in page(health)
    # No statutory agency finds the family.
    for user in ("nurse1", "cps1"):
        found = signed_in(app, user).get("/staff/?name=Mira")
        assert family_id not in page(found)


# --- referral -------------------------------------------------------------------------


def test_a_referral_from_the_record_page_asks_the_family_first_and_involves_no_one(
        app: Flask, norway: str, web: Api) -> None:
    """One referral flow: the record page's form makes a referral, which
    waits for the family when its form does not let the agency know of it;
    nobody becomes involved until the receiving agency accepts."""
    client = signed_in(app, "coord1")
    record = page(client.get(f"/staff/families/{norway}"))
    assert f"/staff/families/{norway}/referrals/new" in record
    before = count(app, Involvement)
    ok = post_form(client, f"/staff/families/{norway}/referrals/new",
                   f"/staff/families/{norway}/referrals",
                   {"to": "cps", "reason": "Worried about bruises.", "urgency": "soon"})
    assert ok.status_code == 302  # type: ignore[attr-defined]
    [ref] = web.get("/api/v1/referrals?direction=out", "coord1").get_json()
    assert ref["to"] == "cps" and ref["state"] == "awaiting_family"
    assert count(app, Involvement) == before


def test_an_agency_not_involved_cannot_refer(app: Flask, norway: str) -> None:
    client = signed_in(app, "physio1")
    token = csrf_token(page(client.get(f"/staff/families/{norway}")))
    with nothing_stored(app):
        response = client.post(f"/staff/families/{norway}/referrals",
                               data={"to": "ecec", "reason": "x", "csrf_token": token})
    assert response.status_code == 403  # type: ignore[attr-defined]


# --- the consent grid ---------------------------------------------------------------------


def grid_form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "cell": ["physio:involvement", "physio:health", "ecec:involvement", "ecec:education",
                 "health-centre:involvement"],
        "signed_by": "Aylin Demir", "signed_on": T0.date().isoformat(), "method": "paper",
        "witness": "coord1", "interpreter_language": "tr", "purpose": "coordinated support",
        "valid_until": "2027-11-22", "receipt_language": "en",
    }
    data.update(overrides)
    return data


def first_family(web: Api) -> str:
    family_id = web.new_family(display_name="Aylin Demir")
    return family_id


def test_grid_has_agencies_as_columns_and_fields_as_rows(app: Flask, web: Api) -> None:
    family_id = first_family(web)
    html = page(signed_in(app, "coord1").get(f"/staff/families/{family_id}/consent/new"))
    header = html[html.index("<thead>"):html.index("</thead>")]
    assert re.findall(r'<th scope="col" id="col-([^"]+)"', header) == [
        "cps", "ecec", "health-centre", "ngo", "oversight", "physio"]
    assert re.findall(r'<th scope="row" id="row-([^"]+)"', html) == [
        "involvement", "contact", "household", "story", "health", "education", "social",
        "protection"]
    assert 'aria-label="Physiotherapy may see Health"' in html


def test_recording_a_form_prints_the_receipt(app: Flask, web: Api) -> None:
    family_id = first_family(web)
    client = signed_in(app, "coord1")
    response = post_form(client, f"/staff/families/{family_id}/consent/new",
                         f"/staff/families/{family_id}/consent/new", grid_form())
    assert response.status_code == 201  # type: ignore[attr-defined]
    html = page(response)
    assert re.search(r"Physiotherapy can see: [^<]*health notes", html)
    assert "valid until 22 November 2027" in html
    code = re.search(r'id="receipt-code">([^<]+)<', html)
    pin = re.search(r'id="receipt-pin">(\d{6})<', html)
    assert code and pin
    assert 'href="/static/print.css" media="print"' in html
    assert "How to change your mind" in html
    # The receipt works on the family's side.
    opened = web.post("/api/v1/family/session", json={"receipt_code": code.group(1),
                                                       "pin": pin.group(1)})
    assert opened.status_code == 201
    form = web.get(f"/api/v1/families/{family_id}/consent", "coord1").get_json()
    assert form["grants"] == {"ecec": ["education", "involvement"],
                              "health-centre": ["involvement"],
                              "physio": ["health", "involvement"]}
    assert form["interpreter_language"] == "tr" and form["witness"] == "coord1"


def test_receipt_in_the_familys_language(app: Flask, web: Api) -> None:
    family_id = first_family(web)
    client = signed_in(app, "coord1")
    response = post_form(client, f"/staff/families/{family_id}/consent/new",
                         f"/staff/families/{family_id}/consent/new",
                         grid_form(receipt_language="ar"))
    html = page(response)
    assert '<html lang="ar" dir="rtl">' in html


def test_a_second_form_has_no_new_pin_unless_asked(app: Flask, norway: str) -> None:
    client = signed_in(app, "coord1")
    response = post_form(client, f"/staff/families/{norway}/consent/new",
                         f"/staff/families/{norway}/consent/new", grid_form())
    assert response.status_code == 302  # type: ignore[attr-defined]
    again = post_form(client, f"/staff/families/{norway}/consent/new",
                      f"/staff/families/{norway}/consent/new", grid_form(reissue_pin="1"))
    assert again.status_code == 201 and 'id="receipt-pin"' in page(again)  # type: ignore


@pytest.mark.parametrize(("overrides", "key"), [
    ({"signed_by": ""}, "signed_by"),
    ({"valid_until": "2020-01-01"}, "valid_until"),
    ({"signed_on": "2030-01-01"}, "signed_on"),
    ({"method": "telepathy"}, "method"),
    ({"witness": "no-such-user"}, "witness"),
    ({"cell": ["nowhere:health"]}, "grants-nowhere"),
    ({"cell": ["physio:nonsense"]}, "grants-physio"),
    ({"receipt_language": "xx"}, "receipt_language"),
])
def test_bad_form_is_refused_and_nothing_recorded(app: Flask, norway: str,
                                                  overrides: dict[str, Any], key: str) -> None:
    client = signed_in(app, "coord1")
    before = count(app, ConsentFormRow)
    response = post_form(client, f"/staff/families/{norway}/consent/new",
                         f"/staff/families/{norway}/consent/new", grid_form(**overrides))
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert f'href="#f-{key}"' in page(response)
    assert count(app, ConsentFormRow) == before
    # What was typed and ticked is kept on the page.
    assert 'value="physio:health"' in page(response)


def test_only_coordinators_record_forms(app: Flask, norway: str) -> None:
    client = signed_in(app, "nurse1")
    assert client.get(f"/staff/families/{norway}/consent/new").status_code == 403
    token = csrf_token(page(client.get(f"/staff/families/{norway}")))
    with nothing_stored(app):
        refused = client.post(f"/staff/families/{norway}/consent/new",
                              data={**grid_form(), "csrf_token": token})
    assert refused.status_code == 403


# --- revoking on the family's behalf, history --------------------------------------------


def test_revoke_asks_to_confirm_then_takes_effect(app: Flask, norway: str, web: Api) -> None:
    client = signed_in(app, "coord1")
    confirm = client.get(f"/staff/families/{norway}/consent/revoke?agency=physio")
    assert ("Physiotherapy will no longer see anything other agencies share about this family. "
            "If it still works with the family, it keeps seeing what it wrote itself"
            in page(confirm))
    token = csrf_token(page(confirm))
    unconfirmed = client.post(f"/staff/families/{norway}/consent/revoke",
                              data={"agency": "physio", "csrf_token": token})
    assert unconfirmed.status_code == 200 and count(app, ConsentFormRow) == 1
    done = client.post(f"/staff/families/{norway}/consent/revoke",
                       data={"agency": "physio", "confirmed": "1", "csrf_token": token})
    assert done.status_code == 302
    assert count(app, ConsentFormRow) == 2
    assert web.get(f"/api/v1/families/{norway}", "physio1").status_code in {200, 404}
    grants = web.get(f"/api/v1/families/{norway}/consent", "coord1").get_json()["grants"]
    assert "physio" not in grants


def test_history_lists_every_version(app: Flask, norway: str, web: Api) -> None:
    web.post(f"/api/v1/families/{norway}/consent/revoke", "coord1",
             json={"agency": "ecec", "field": "education"})
    html = page(signed_in(app, "coord1").get(f"/staff/families/{norway}/consent/history"))
    assert "Version 2" in html and "Version 1" in html
    assert html.index("Version 2") < html.index("Version 1")


def test_who_looked_and_hiding_an_entry(app: Flask, norway: str, web: Api) -> None:
    web.get(f"/api/v1/families/{norway}", "physio1")
    client: FlaskClient = signed_in(app, "coord1")
    html = page(client.get(f"/staff/families/{norway}/access-log"))
    assert "Physiotherapy (practitioner)" in html
    seq = re.search(r'/access-log/(\d+)/hide', html)
    assert seq
    response = post_form(client, f"/staff/families/{norway}/access-log",
                         f"/staff/families/{norway}/access-log/{seq.group(1)}/hide", {})
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert ">hidden<" in page(client.get(f"/staff/families/{norway}/access-log"))


def test_a_form_sent_twice_is_recorded_once(app: Flask, web: Api) -> None:
    """A reload of the receipt (or a second click) must not record another
    version and void the PIN just printed."""
    family_id = first_family(web)
    client = signed_in(app, "coord1")
    page_html = page(client.get(f"/staff/families/{family_id}/consent/new"))
    once = re.search(r'name="once" value="([^"]+)"', page_html)
    assert once
    data = {**grid_form(), "once": once.group(1), "csrf_token": csrf_token(page_html)}
    first = client.post(f"/staff/families/{family_id}/consent/new", data=data)
    assert first.status_code == 201
    again = client.post(f"/staff/families/{family_id}/consent/new", data=data)
    assert again.status_code == 302
    assert again.headers["Location"].endswith(f"/staff/families/{family_id}/consent")
    assert count(app, ConsentFormRow) == 1
    forged = client.post(f"/staff/families/{family_id}/consent/new",
                         data={**data, "once": "made-up"})
    assert forged.status_code == 302 and count(app, ConsentFormRow) == 1


# --- the form as an agency without the full view reads it ---------------------------


@pytest.fixture
def referred(web: Api) -> str:
    """Physiotherapy involved through a referral, then the family stops sharing
    with it: it keeps working with the family and sees only its own column."""
    family_id = web.new_family(display_name="Aylin Demir", birth_date="2024-03-14")
    web.write(family_id, "health", "Growth on track; physiotherapy advised.")
    receipt = web.sign(family_id, {**NORWAY, "cps": ["protection"]})["receipt"]
    web.post(f"/api/v1/families/{family_id}/involvements", "coord1", json={"agency": "physio"})
    web.write(family_id, "health", "Physio: walks with support.", who="physiocoord")
    token = web.post("/api/v1/family/session", json={"receipt_code": receipt["code"],
                                                      "pin": receipt["pin"]}).get_json()["token"]
    web.post(f"/api/v1/families/{family_id}/consent/revoke", token, json={"agency": "physio"})
    web.get(f"/api/v1/families/{family_id}", "nurse1")
    return family_id


# ("Child protection" is also a row of the form, so its column is checked by header.)
NOT_FOR_PHYSIO = ("Health centre", "Kindergarten", "Guardian Name", "coord1", "nurse1",
                  "Growth on track")


def _main(html: str) -> str:
    return html.split("<main", 1)[1].split("</main>", 1)[0]


@pytest.mark.parametrize(("route", "own"), [
    ("/consent", "you see your agency's own column only"),
    ("/consent/history", "Your agency sees its own column of this version only."),
    ("/access-log", "Physiotherapy (coordinator)"),
    ("", "Physio: walks with support."),
])
def test_pages_show_an_agency_without_the_full_view_only_its_own(
        app: Flask, referred: str, route: str, own: str) -> None:
    client = signed_in(app, "physiocoord")
    response = client.get(f"/staff/families/{referred}{route}")
    assert response.status_code == 200
    main = _main(page(response))
    if route == "":  # the record page offers a referral to any agency: leave the list out
        main = main.split('id="ref-title"', 1)[0]
    if route == "/consent/history":
        # Version 1 granted physiotherapy `involvement`: it reads that one in
        # full. Version 2 (the newest, first) is its own column only.
        assert "Guardian Name" in main.split('id="v1"', 1)[1]
        main = main.split('id="v1"', 1)[0]
    for other in NOT_FOR_PHYSIO:
        assert other not in main, (route, other)
    assert set(re.findall(r'<th scope="col">([^<]*)</th>', main)) <= {
        "Information", "When (UTC)", "Who", "What", "Fields", "Family sees it",
        "Physiotherapy", "Field", "Read by"}  # the last two: the entry form's readers table
    assert own in main


def test_an_agency_without_the_full_view_sees_its_own_column_even_when_empty(
        app: Flask, referred: str) -> None:
    """The family revoked physiotherapy's whole column: its grid still has
    that one column, every row of it unticked, and no other."""
    client = signed_in(app, "physiocoord")
    main = _main(page(client.get(f"/staff/families/{referred}/consent")))
    grid = main.split('<table class="grid">', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'<th scope="col">([^<]*)</th>', grid) == ["Information", "Physiotherapy"]
    assert 'class="yes"' not in grid
    assert grid.count('class="no"') == len(re.findall(r'<th scope="row">', grid)) > 0


def test_the_full_view_shows_everyone(app: Flask, referred: str) -> None:
    client = signed_in(app, "coord1")
    consent = _main(page(client.get(f"/staff/families/{referred}/consent")))
    assert "Guardian Name" in consent and "Child protection" in consent
    log = _main(page(client.get(f"/staff/families/{referred}/access-log")))
    assert "Physiotherapy (coordinator)" in log and "Health centre (practitioner)" in log


def test_a_new_form_starts_blank_without_the_full_view(app: Flask, referred: str) -> None:
    html = page(signed_in(app, "physiocoord").get(f"/staff/families/{referred}/consent/new"))
    assert " checked" not in html.split("<table", 1)[1].split("</table>", 1)[0]
    assert "coordinated support" not in html
    assert "The grid starts blank" in html
    # Every agency is a column: the coordinator states the whole grid the family signed.
    for slug, name in (("health-centre", "Health centre"), ("physio", "Physiotherapy"),
                       ("ecec", "Kindergarten"), ("cps", "Child protection")):
        assert f'<th scope="col" id="col-{slug}">{name}</th>' in html
    full = page(signed_in(app, "coord1").get(f"/staff/families/{referred}/consent/new"))
    assert 'value="health-centre:health" id="cell-health-centre-health" ' in full
    assert "coordinated support" in full and "The grid starts blank" not in full


def test_a_coordinator_hides_only_its_own_agencys_looks(app: Flask, referred: str) -> None:
    html = page(signed_in(app, "coord1").get(f"/staff/families/{referred}/access-log"))
    rows = re.findall(r"<tr class=\"[^\"]*\">(.*?)</tr>", html, re.S)
    for row in rows:
        hide = "Hide from the family" in row
        assert hide == ("Health centre" in row), row


def test_a_coordinator_records_the_familys_wish_to_end_a_part(app: Flask, referred: str,
                                                              web: Api) -> None:
    client = signed_in(app, "coord1")
    record = page(client.get(f"/staff/families/{referred}"))
    assert f"/staff/families/{referred}/involvements/physio/end" in record
    confirm = f"/staff/families/{referred}/involvements/physio/end"
    assert "Physiotherapy will no longer work with this family" in page(client.get(confirm))
    bad = post_form(client, confirm, confirm, {"signed_by": "", "method": "family_portal"})
    assert bad.status_code == 422  # type: ignore[attr-defined]
    assert count(app, ConsentFormRow) == 2
    done = post_form(client, confirm, confirm, {"signed_by": "Aylin Demir", "method": "paper"})
    assert done.status_code == 302  # type: ignore[attr-defined]
    assert count(app, ConsentFormRow) == 3
    assert web.get(f"/api/v1/families/{referred}", "physio1").status_code == 404
    last = web.get(f"/api/v1/families/{referred}/consent/history", "coord1").get_json()[-1]
    assert (last["change"], last["changed_by"], last["signed_by"]) == (
        "end part physio", "coord1", "Aylin Demir")


def test_without_the_involvement_cell_a_coordinator_ends_only_its_own_part(
        app: Flask, referred: str, web: Api) -> None:
    client = signed_in(app, "physiocoord")
    consent = page(client.get(f"/staff/families/{referred}/consent"))
    assert "/involvements/physio/end" in consent and "/involvements/ecec/end" not in consent
    other = f"/staff/families/{referred}/involvements/ecec/end"
    assert client.get(other).status_code == 403
    html = page(client.get(f"/staff/families/{referred}/involvements/physio/end"))
    response = client.post(other, data={"signed_by": "A", "method": "paper",
                                        "csrf_token": csrf_token(html)})
    assert response.status_code == 403
    assert count(app, ConsentFormRow) == 2


def test_ending_a_part_needs_the_csrf_token_and_a_coordinator(app: Flask, referred: str,
                                                             web: Api) -> None:
    path = f"/staff/families/{referred}/involvements/physio/end"
    client = signed_in(app, "coord1")
    assert client.post(path, data={"signed_by": "A", "method": "paper"}).status_code == 400
    assert signed_in(app, "nurse1").get(path).status_code == 403
    assert count(app, ConsentFormRow) == 2
    assert web.get(f"/api/v1/families/{referred}", "physio1").status_code == 200


def test_without_the_full_view_a_coordinator_is_not_offered_a_referral(
        app: Flask, referred: str, web: Api) -> None:
    """Physiotherapy reads its own column only: a referral's answer would
    tell it what the other columns hold, so the record page offers none and
    one sent anyway is refused, nothing stored."""
    client = signed_in(app, "physiocoord")
    record = page(client.get(f"/staff/families/{referred}"))
    assert "Refer to another agency" not in record
    assert f"/staff/families/{referred}/referrals/new" not in record
    before = count(app, ConsentFormRow)
    html = page(client.get(f"/staff/families/{referred}/consent"))
    with nothing_stored(app):
        response = client.post(f"/staff/families/{referred}/referrals",
                               data={"to": "ecec", "reason": "x", "csrf_token": csrf_token(html)})
    assert response.status_code == 403
    assert count(app, ConsentFormRow) == before
    # The recorder, who sees the whole form, still may.
    assert "Refer to another agency" in page(
        signed_in(app, "coord1").get(f"/staff/families/{referred}"))


# --- the entry form says who will read an entry ---------------------------------------


def _readers(html: str) -> dict[str, str]:
    """The entry form's readers table: field id -> its cell, in words."""
    rows = re.findall(r'<tr id="readers-([a-z]+)">(.*?)</tr>', html, re.S)
    return {f: " ".join(re.sub(r"<[^>]+>", " ", cell).split()) for f, cell in rows}


def test_entry_form_lists_the_agencies_that_will_read_each_field(app: Flask,
                                                                 norway: str) -> None:
    html = page(signed_in(app, "coord1").get(f"/staff/families/{norway}"))
    readers = _readers(html)
    assert set(readers) == {"contact", "household", "story", "health", "education", "social",
                            "protection"}
    assert readers["health"] == "Health Your agency, Physiotherapy"
    assert readers["education"] == "Education and care Your agency, Kindergarten"
    alone = "Only your agency: the family shares this field with no other agency."
    for field_id in ("contact", "household", "story", "social", "protection"):
        assert readers[field_id].endswith(alone), field_id
    # The first field the writer's agency may see is chosen.
    assert '<option value="contact" selected>' in html


def test_entry_form_follows_the_current_form(app: Flask, norway: str, web: Api) -> None:
    web.sign(norway, {**NORWAY, "physio": ["involvement"], "cps": ["contact"]})
    readers = _readers(page(signed_in(app, "coord1").get(f"/staff/families/{norway}")))
    assert readers["health"].endswith("Only your agency: the family shares this field with "
                                      "no other agency.")
    assert readers["contact"] == "Contact details Your agency, Child protection"


def test_entry_form_with_an_ended_form_warns_for_every_field(app: Flask, norway: str,
                                                             clock: Any) -> None:
    clock.advance(days=400)  # past the form's last day: nothing is shared
    html = page(signed_in(app, "nurse1").get(f"/staff/families/{norway}"))
    assert all("shares this field with no other agency" in cell
               for cell in _readers(html).values())
    assert '<option value="contact" selected>' in html  # no field granted: the first one


def test_entry_form_names_no_agency_to_a_reader_of_its_own_column_only(
        app: Flask, referred: str) -> None:
    html = page(signed_in(app, "physiocoord").get(f"/staff/families/{referred}"))
    readers = _readers(html)
    assert readers["health"].startswith("Health Your agency (what it wrote itself).")
    assert all("is not told which other agencies read this field" in c for c in readers.values())
    # that too would tell what others' columns hold
    assert "shares this field with no other agency" not in html


def test_an_entry_refused_shows_the_readers_again(app: Flask, norway: str) -> None:
    client = signed_in(app, "nurse1")
    response = post_form(client, f"/staff/families/{norway}",
                         f"/staff/families/{norway}/entries", {"field": "health", "value": ""})
    assert response.status_code == 422  # type: ignore[attr-defined]
    html = page(response)
    assert _readers(html)["health"] == "Health Your agency, Physiotherapy"
    assert '<option value="health" selected>' in html
