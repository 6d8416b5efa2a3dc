"""Access requests on the web pages: the family reads who asks to see what
and why, in its language, and approves or declines after a page saying
exactly what will change (CSRF-protected); staff ask from the record page,
and a coordinator of another involved agency records an answer given in
person."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from coordination.model import AccessRequest
from tests.conftest import Api, Clock
from tests.functional.test_access_requests import GRID, REASON, ask, grants, listed
from tests.functional.test_revocation_truth import count
from tests.functional.test_web_family import _signed_in, _text
from tests.unchanged import nothing_stored
from tests.web import csrf_token, post_form, set_passwords, signed_in


@pytest.fixture
def case(api: Api) -> tuple[str, dict[str, str], str]:
    """The family with its form, its receipt, and physiotherapy's pending
    request to see how to reach the family."""
    family = api.new_family("nurse1", display_name="Aylin Demir")
    api.write(family, "contact", "Mother: +47 400 00 000")
    receipt: dict[str, str] = api.sign(family, GRID)["receipt"]
    req = ask(api, family, fields=["contact"])
    assert req.status_code == 201, req.get_json()
    return family, receipt, str(req.get_json()["id"])


def _confirm(client: Any, req: str, act: str) -> Any:
    page = client.get(f"/family/access-requests/{req}/{act}")
    assert page.status_code == 200, _text(page)
    return page


def test_the_family_page_shows_who_asks_what_and_why(
        app: Flask, case: tuple[str, dict[str, str], str]) -> None:
    _family, receipt, req = case
    client = _signed_in(app, receipt)
    text = _text(client.get("/family/consent?lang=en"))
    assert "A service asks to see more" in text
    assert "Physiotherapy asks to see: how to reach you." in text
    assert f"Why, in their words: {REASON}" in text
    assert "If you do not answer before 22 December 2026, nothing changes." in text
    html = client.get("/family/consent").get_data(as_text=True)
    assert f'href="/family/access-requests/{req}/approve"' in html
    assert f'href="/family/access-requests/{req}/decline"' in html
    turkish = _text(client.get("/family/consent?lang=tr"))
    assert "Physiotherapy şunları görmek istiyor:" in turkish
    arabic = _text(client.get("/family/consent?lang=ar"))
    assert "تطلب \u2068Physiotherapy\u2069 رؤية:" in arabic
    norwegian = _text(client.get("/family/consent?lang=nb"))
    assert "Physiotherapy ber om å få se:" in norwegian


def test_approving_after_confirming_does_what_the_page_said(
        app: Flask, api: Api, case: tuple[str, dict[str, str], str]) -> None:
    family, receipt, req = case
    before = grants(api, family)
    client = _signed_in(app, receipt)
    ask_page = _confirm(client, req, "approve")
    said = _text(ask_page)
    assert "Are you sure?" in said
    assert "If you say yes, Physiotherapy will then be able to see: how to reach you." in said
    assert "Your form stays valid until 22 November 2027." in said
    assert "Nothing else changes." in said
    assert grants(api, family) == before  # not yet
    done = client.post(f"/family/access-requests/{req}/approve", data={
        "confirmed": "1", "csrf_token": csrf_token(ask_page.get_data(as_text=True))})
    assert done.status_code == 302 and done.headers["Location"] == "/family/consent"
    # What the page said is so: physiotherapy sees how to reach the family, and nothing
    # else changed.
    assert grants(api, family) == {**before, "physio": ["contact", "health", "involvement"]}
    record = api.get(f"/api/v1/families/{family}", "physio1").get_json()
    assert [e["value"] for e in record["fields"]["contact"]] == ["Mother: +47 400 00 000"]
    page = _text(client.get("/family/consent"))
    assert "Physiotherapy can now see: how to reach you." in page
    assert "Physiotherapy asks to see" not in page
    assert listed(api, family, "physio1")[0]["state"] == "approved"


def test_declining_after_confirming_changes_no_sharing(
        app: Flask, api: Api, case: tuple[str, dict[str, str], str]) -> None:
    family, receipt, req = case
    before = grants(api, family)
    client = _signed_in(app, receipt)
    ask_page = _confirm(client, req, "decline")
    said = _text(ask_page)
    assert "If you say no, Physiotherapy will not see: how to reach you." in said
    assert "cannot ask for the same again for 30 days" in said
    done = client.post(f"/family/access-requests/{req}/decline", data={
        "confirmed": "1", "csrf_token": csrf_token(ask_page.get_data(as_text=True))})
    assert done.status_code == 302
    assert grants(api, family) == before
    assert "You said no. Physiotherapy will not see: how to reach you." in _text(
        client.get("/family/consent"))
    assert listed(api, family, "physio1")[0]["state"] == "declined"
    # Physiotherapy may not ask for it again for now (the rule the page told).
    assert ask(api, family, fields=["contact"]).status_code == 409
    again = _text(client.get(f"/family/access-requests/{req}/approve"))
    assert "You said no to this already." in again and "Yes, let them see it" not in again


@pytest.mark.parametrize("token", [None, "", "not-the-token"])
def test_answers_need_the_csrf_token_and_the_yes(
        app: Flask, api: Api, case: tuple[str, dict[str, str], str], token: str | None) -> None:
    family, receipt, req = case
    client = _signed_in(app, receipt)
    real = csrf_token(client.get("/family/consent").get_data(as_text=True))
    with nothing_stored(app):
        for act in ("approve", "decline"):
            data = {"confirmed": "1"}
            if token is not None:
                data["csrf_token"] = token
            refused = client.post(f"/family/access-requests/{req}/{act}", data=data)
            assert refused.status_code == 400
            assert "nothing was changed" in _text(refused)
            # With the token but without the yes: only asked again.
            asked = client.post(f"/family/access-requests/{req}/{act}",
                                data={"csrf_token": real})
            assert asked.status_code == 302
            assert asked.headers["Location"] == f"/family/access-requests/{req}/{act}"
    assert listed(api, family, "physio1")[0]["state"] == "pending"


def test_unknown_lapsed_and_other_families_requests(
        app: Flask, api: Api, clock: Clock, case: tuple[str, dict[str, str], str]) -> None:
    family, receipt, req = case
    other = api.new_family("coord1", display_name="Other Family")
    other_receipt = api.sign(other, {"health-centre": ["health"], "physio": ["health"]})[
        "receipt"]
    other_req = ask(api, other, fields=["contact"]).get_json()["id"]
    client = _signed_in(app, receipt)
    assert client.get("/family/access-requests/req_0000/approve").status_code == 404
    assert client.get(f"/family/access-requests/{other_req}/approve").status_code == 404
    token = csrf_token(client.get("/family/consent").get_data(as_text=True))
    with nothing_stored(app):
        assert client.post(f"/family/access-requests/{other_req}/approve",
                           data={"confirmed": "1", "csrf_token": token}).status_code == 404
    assert client.get("/family/access-requests/x/maybe").status_code == 404
    assert listed(api, other, "physio1")[0]["state"] == "pending"
    clock.advance(days=30)
    client = _signed_in(app, receipt)
    page = _text(client.get("/family/consent"))
    assert "asks to see" not in page
    late = _text(client.get(f"/family/access-requests/{req}/approve"))
    assert "This question ended without an answer, so nothing changed." in late
    token = csrf_token(client.get("/family/consent").get_data(as_text=True))
    with nothing_stored(app):
        done = client.post(f"/family/access-requests/{req}/approve",
                           data={"confirmed": "1", "csrf_token": token})
        assert done.status_code == 302
    assert "Nothing was changed." in _text(client.get("/family/consent"))
    assert other_receipt


def test_with_the_form_ended_approving_promises_nothing(
        app: Flask, api: Api, clock: Clock) -> None:
    family = api.new_family("nurse1", display_name="Aylin Demir")
    receipt = api.sign(family, GRID)["receipt"]
    clock.advance(days=366)
    req = ask(api, family, who="nurse1", fields=["health"]).get_json()["id"]
    client = _signed_in(app, receipt)
    said = _text(client.get(f"/family/access-requests/{req}/approve"))
    assert "Your consent form has ended, so nothing can be added to it." in said
    assert "will then be able to see" not in said and "Yes, let them see it" not in said


# --- staff ----------------------------------------------------------------------


@pytest.fixture
def web(app: Flask, api: Api) -> Api:
    set_passwords(app)
    return api


def test_staff_ask_from_the_record_page(
        app: Flask, web: Api, case: tuple[str, dict[str, str], str]) -> None:
    family, _receipt, _req = case
    client = signed_in(app, "cps1")
    record = client.get(f"/staff/families/{family}").get_data(as_text=True)
    assert "Ask the family to see more" in record
    # What is withheld points to the form, not to "the next consent form".
    assert '<strong>Not shared with your agency.</strong> <a href="#ask-title">' in record
    assert "next consent form" not in record
    assert 'name="field" value="health"' in record
    assert 'name="field" value="protection"' not in record  # it sees that already
    done = post_form(client, f"/staff/families/{family}",
                     f"/staff/families/{family}/access-requests",
                     {"field": ["health", "household"], "reason": "Bruises seen at school."})
    assert done.status_code == 302, _text(done)  # type: ignore[attr-defined]
    [mine] = listed(web, family, "cps1")
    assert mine["fields"] == ["household", "health"] and mine["state"] == "pending"
    assert mine["reason"] == "Bruises seen at school."
    html = client.get(f"/staff/families/{family}/access-requests").get_data(as_text=True)
    page = " ".join(html.split())
    assert "Bruises seen at school." in page and "pending (lapses 2026-12-22)" in page
    # Its form offers only what the agency cannot see.
    assert 'name="field" value="contact"' in html
    assert 'name="field" value="protection"' not in html


def test_staff_asking_badly_or_twice_stores_nothing(
        app: Flask, web: Api, case: tuple[str, dict[str, str], str]) -> None:
    family, _receipt, _req = case
    client = signed_in(app, "cps1")
    form = f"/staff/families/{family}"
    action = f"/staff/families/{family}/access-requests"
    token = csrf_token(client.get(form).get_data(as_text=True))

    def post(data: dict[str, Any]) -> Any:
        return client.post(action, data={**data, "csrf_token": token})

    with nothing_stored(app):
        bad = post({"reason": " "})
        assert bad.status_code == 422
        said = _text(bad)
        assert "fields:" in said and "reason:" in said
        unknown = post({"field": ["shoe_size"], "reason": "x"})
        assert "unknown field 'shoe_size'" in _text(unknown)
        granted = post({"field": ["protection"], "reason": "x"})
        assert granted.status_code == 409
        assert "may already see protection" in _text(granted)
        assert client.post(action, data={"field": "health", "reason": "x"}).status_code == 400
    assert count(app, AccessRequest, AccessRequest.agency_id == "cps") == 0
    # A family not visible to the agency does not exist for it.
    assert signed_in(app, "ecec1").get(form).status_code == 404


def test_another_agencys_coordinator_records_an_answer_given_in_person(
        app: Flask, web: Api, case: tuple[str, dict[str, str], str]) -> None:
    family, receipt, req = case
    client = signed_in(app, "coord1")
    page = _text(client.get(f"/staff/families/{family}/access-requests"))
    assert "Other agencies' requests waiting for the family" in page
    assert f"Physiotherapy asks to see Contact details: “{REASON}”" in page
    answer_page = f"/staff/families/{family}/access-requests/{req}/answer"
    before = grants(web, family)
    bad = post_form(client, answer_page, answer_page, {"signed_by": "", "method": "fax"})
    assert bad.status_code == 422  # type: ignore[attr-defined]
    said = _text(bad)
    assert "answer:" in said and "signed by:" in said and "method:" in said
    assert grants(web, family) == before
    assert listed(web, family, "physio1")[0]["state"] == "pending"
    done = post_form(client, answer_page, answer_page,
                     {"answer": "approve", "signed_by": "Elif Demir", "method": "in_person"})
    assert done.status_code == 302  # type: ignore[attr-defined]
    assert grants(web, family)["physio"] == ["contact", "health", "involvement"]
    form = web.get(f"/api/v1/families/{family}/consent", "coord1").get_json()
    assert form["witness"] == "coord1" and form["method"] == "in_person"
    assert form["signed_by"] == "Elif Demir"
    assert listed(web, family, "physio1")[0]["answered_by"] == "coord1"
    # The family is told, among who looked and what they did.
    said = _text(_signed_in(app, receipt).get("/family/access-log?lang=en"))
    assert ("Health centre (coordinator) wrote down that you said yes to Physiotherapy "
            "asking to see more.") in said


def test_the_asking_agencys_coordinator_may_not_record_the_answer(
        app: Flask, web: Api, case: tuple[str, dict[str, str], str]) -> None:
    family, _receipt, _req = case
    own = ask(web, family, who="nurse1", fields=["social"]).get_json()["id"]
    client = signed_in(app, "coord1")
    page = f"/staff/families/{family}/access-requests/{own}/answer"
    assert client.get(page).status_code == 403
    token = csrf_token(client.get(f"/staff/families/{family}").get_data(as_text=True))
    with nothing_stored(app):
        refused = client.post(page, data={"answer": "approve", "signed_by": "Elif Demir",
                                          "method": "in_person", "csrf_token": token})
        assert refused.status_code == 403
    assert "social" not in grants(web, family)["health-centre"]
    # A practitioner records no answers at all.
    assert signed_in(app, "physio1").get(page).status_code == 403
