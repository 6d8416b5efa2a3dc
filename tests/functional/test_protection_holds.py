"""Protection holds over the API and the family page, on both databases
(CONTRACT.md, "Exceptional access"): who may place, renew and lift one and
every refusal in the contract's order; review dates at most 90 days ahead;
the lapse; the auditors' list, queue and page; and what the family sees
while a hold is in force — compared with the same history of acts without
the concealed agency."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from coordination import accounts
from coordination.casework import concealment
from coordination.model import ProtectionHold
from tests.conftest import T0, Api, Clock
from tests.functional.test_revocation_truth import audit_rows, count, family_token
from tests.functional.test_web_family import _signed_in, _text
from tests.unchanged import nothing_stored
from tests.web import set_passwords, signed_in

GRID = {
    "health-centre": ["involvement", "contact", "health", "protection"],
    "physio": ["involvement", "health"],
}
CPS_GRID = {**GRID, "cps": ["involvement", "protection", "health"]}
REASON = "Investigation of suspected neglect; telling the parents now would endanger the child."
REVIEW_ON = (T0.date() + timedelta(days=60)).isoformat()


def _allow_holds(app: Flask, clock: Clock, api: Api) -> None:
    """Child protection may place holds and has a coordinator; so does the
    health centre's coordinator (`coord1`), but physiotherapy may not."""
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        accounts.set_protection_holds(session, "cps", True, clock())
        accounts.set_protection_holds(session, "health-centre", True, clock())
        accounts.add_staff(session, "cpscoord", "cps", "coordinator", None, clock())
        api.tokens["cpscoord"] = accounts.create_token(session, "cpscoord",
                                                       timedelta(days=3650), clock())


@pytest.fixture
def cps_case(app: Flask, clock: Clock, api: Api) -> tuple[str, dict[str, str]]:
    """A family the health centre and child protection work with."""
    _allow_holds(app, clock, api)
    family = api.new_family("nurse1", display_name="Aylin Demir")
    receipt: dict[str, str] = api.sign(family, CPS_GRID)["receipt"]
    assert api.post(f"/api/v1/families/{family}/involvements", "coord1",
                    json={"agency": "cps"}).status_code == 201
    return family, receipt


def place(api: Api, family: str, who: str = "cpscoord", **body: Any) -> Any:
    body.setdefault("conceal", ["involvement", "entries", "access"])
    body.setdefault("reason", REASON)
    body.setdefault("review_on", REVIEW_ON)
    return api.post(f"/api/v1/families/{family}/protection-holds", who, json=body)


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    assert response.headers["Content-Type"].startswith("application/problem+json")
    found: dict[str, Any] = response.get_json()
    return found


# --- placing, renewing, lifting ----------------------------------------------------


def test_a_coordinator_of_an_allowed_agency_places_a_hold(
        app: Flask, api: Api, cps_case: tuple[str, dict[str, str]]) -> None:
    family, _ = cps_case
    made = place(api, family, conceal=["access", "involvement", "access"])
    assert made.status_code == 201, made.get_json()
    hold = made.get_json()
    assert hold["id"].startswith("hold_") and hold["family_id"] == family
    assert hold["agency"] == "cps" and hold["conceal"] == ["involvement", "access"]
    assert hold["reason"] == REASON and hold["review_on"] == REVIEW_ON
    assert hold["state"] == "in_force" and hold["set_by"] == "cpscoord"
    assert hold["set_at"] == "2026-11-22T10:00:00Z" and hold["lifted_at"] is None
    assert [e["act"] for e in hold["history"]] == ["set"]
    # The reason is sealed under the family's key, never stored in clear.
    with app.extensions["onestory"].sessions() as session:
        stored = session.scalars(select(ProtectionHold)).one()
        assert REASON.encode() not in stored.reason
    [row] = audit_rows(app, "protection_hold.set")
    detail = json.loads(row.detail)
    assert row.actor == "cpscoord" and row.family_id == family
    assert detail["conceal"] == ["involvement", "access"] and "reason" not in detail
    assert REASON not in str(tuple(row))


@pytest.mark.parametrize(("who", "status"), [
    ("cps1", 403),        # a practitioner: the role may not use the route
    ("auditor1", 403),
    ("admin1", 403),
    ("ecec1", 403),
    ("physiocoord", 403),  # visible (a cell) but the agency may not place holds
    ("ngocoord", 404),     # the family does not exist for the NGO
])
def test_who_may_not_place_a_hold(app: Flask, api: Api, cps_case: tuple[str, dict[str, str]],
                                  who: str, status: int) -> None:
    family, receipt = cps_case
    with nothing_stored(app):
        _problem(place(api, family, who), status)
        # The order of checks: a bad body does not change the answer.
        _problem(place(api, family, who, review_on="soon", conceal=["nothing"]), status)
    assert count(app, ProtectionHold) == 0


def test_the_family_may_not_place_a_hold(
        app: Flask, api: Api, cps_case: tuple[str, dict[str, str]]) -> None:
    family, receipt = cps_case
    token = family_token(api, receipt)
    _problem(place(api, family, token), 403)
    assert count(app, ProtectionHold) == 0


def test_an_absent_family_and_an_invisible_one_answer_alike(
        app: Flask, api: Api, cps_case: tuple[str, dict[str, str]]) -> None:
    family, _ = cps_case
    other = api.new_family("ngo1", display_name="Lea")
    absent = _problem(place(api, "fam_00000000000000000000"), 404)
    hidden = _problem(place(api, other), 404)
    assert absent == hidden
    assert count(app, ProtectionHold) == 0


@pytest.mark.parametrize(("body", "field"), [
    ({"review_on": (T0.date() + timedelta(days=91)).isoformat()}, "review_on"),
    ({"review_on": T0.date().isoformat()}, "review_on"),
    ({"review_on": "2026-13-01"}, "review_on"),
    ({"review_on": None}, "review_on"),
    ({"conceal": []}, "conceal"),
    ({"conceal": ["involvement", "status"]}, "conceal.1"),
    ({"conceal": "involvement"}, "conceal"),
    ({"reason": "   "}, "reason"),
    ({"reason": "x" * 2001}, "reason"),
    ({"why": "unknown key"}, "why"),
])
def test_bad_input_names_the_field_and_stores_nothing(
        app: Flask, api: Api, cps_case: tuple[str, dict[str, str]], body: dict[str, Any],
        field: str) -> None:
    family, _ = cps_case
    with nothing_stored(app):
        problem = _problem(place(api, family, **body), 422)
    assert field in problem["errors"], problem
    assert count(app, ProtectionHold) == 0


def test_ninety_days_is_the_longest_hold(
        api: Api, cps_case: tuple[str, dict[str, str]]) -> None:
    family, _ = cps_case
    last = (T0.date() + timedelta(days=90)).isoformat()
    assert place(api, family, review_on=last).status_code == 201


def test_renew_and_lift_and_their_refusals(
        app: Flask, api: Api, clock: Clock, cps_case: tuple[str, dict[str, str]]) -> None:
    family, _ = cps_case
    hold = place(api, family).get_json()
    base = f"/api/v1/families/{family}/protection-holds/{hold['id']}"
    # Only the hold's own agency's coordinator acts on it; to anyone else it
    # is a hold that does not exist.
    with nothing_stored(app):
        _problem(api.post(f"{base}/renew", "coord1", json={"review_on": REVIEW_ON}), 404)
        _problem(api.call("DELETE", base, "coord1", json={}), 404)
        _problem(api.post(f"{base}/renew", "cps1", json={"review_on": REVIEW_ON}), 403)
        _problem(api.call("DELETE", base, "auditor1", json={}), 403)
        _problem(api.post(f"/api/v1/families/{family}/protection-holds/hold_0000/renew",
                          "cpscoord", json={"review_on": REVIEW_ON}), 404)
        too_far = (T0.date() + timedelta(days=91)).isoformat()
        problem = _problem(api.post(f"{base}/renew", "cpscoord",
                                    json={"review_on": too_far}), 422)
        assert "review_on" in problem["errors"]
        _problem(api.post(f"{base}/renew", "cpscoord", json={}), 422)
        _problem(api.call("DELETE", base, "cpscoord", json={"now": True}), 422)
    clock.advance(days=50)
    later = (clock().date() + timedelta(days=90)).isoformat()  # 90 days from now
    renewed = api.post(f"{base}/renew", "cpscoord", json={"review_on": later})
    assert renewed.status_code == 200, renewed.get_json()
    out = renewed.get_json()
    assert out["review_on"] == later and out["renewed_by"] == "cpscoord"
    assert [e["act"] for e in out["history"]] == ["set", "renewed"]
    lifted = api.call("DELETE", base, "cpscoord", json={})
    assert lifted.status_code == 200, lifted.get_json()
    out = lifted.get_json()
    assert out["state"] == "lifted" and out["lifted_by"] == "cpscoord"
    assert [e["act"] for e in out["history"]] == ["set", "renewed", "lifted"]
    # Lifted: neither renewed nor lifted again.
    _problem(api.call("DELETE", base, "cpscoord", json={}), 409)
    _problem(api.post(f"{base}/renew", "cpscoord", json={"review_on": later}), 409)
    assert [len(audit_rows(app, a)) for a in (
        "protection_hold.set", "protection_hold.renew", "protection_hold.lift")] == [1, 1, 1]


def test_a_hold_lapses_past_its_review_date_unless_renewed(
        app: Flask, api: Api, clock: Clock, cps_case: tuple[str, dict[str, str]]) -> None:
    family, receipt = cps_case
    review_on = (T0.date() + timedelta(days=10)).isoformat()
    hold = place(api, family, review_on=review_on).get_json()
    rt = app.extensions["onestory"]
    clock.advance(days=10)  # the review day itself: still in force
    token = family_token(api, receipt)
    assert "cps" not in api.get(f"/api/v1/families/{family}/consent", token).get_json()["grants"]
    with rt.sessions() as session:
        assert concealment.concealed_from_family(session, family, clock()).involvement == {"cps"}
    clock.advance(days=1)
    token = family_token(api, receipt)
    assert "cps" in api.get(f"/api/v1/families/{family}/consent", token).get_json()["grants"]
    with rt.sessions() as session:
        assert not concealment.concealed_from_family(session, family, clock())
    base = f"/api/v1/families/{family}/protection-holds/{hold['id']}"
    later = (clock().date() + timedelta(days=30)).isoformat()
    problem = _problem(api.post(f"{base}/renew", "cpscoord", json={"review_on": later}), 409)
    assert "lapsed" in problem["detail"]
    listed = api.get("/api/v1/protection-holds", "auditor1").get_json()
    assert [h["state"] for h in listed] == ["lapsed"]


# --- the auditors -------------------------------------------------------------------


def test_auditors_list_every_hold_and_the_review_queue(
        app: Flask, api: Api, clock: Clock, cps_case: tuple[str, dict[str, str]]) -> None:
    family, _ = cps_case
    soon = place(api, family, review_on=(T0.date() + timedelta(days=7)).isoformat()).get_json()
    late = place(api, family, conceal=["access"]).get_json()
    by_coord = place(api, family, "coord1", conceal=["entries"],
                     review_on=(T0.date() + timedelta(days=14)).isoformat()).get_json()
    api.call("DELETE", f"/api/v1/families/{family}/protection-holds/{late['id']}",
             "cpscoord", json={})
    every = api.get("/api/v1/protection-holds", "auditor1")
    assert every.status_code == 200
    found = {h["id"]: h for h in every.get_json()}
    assert set(found) == {soon["id"], late["id"], by_coord["id"]}
    assert found[late["id"]]["state"] == "lifted"
    assert [e["act"] for e in found[late["id"]]["history"]] == ["set", "lifted"]
    assert found[soon["id"]]["reason"] == REASON
    queue = api.get("/api/v1/protection-holds/review-queue", "auditor1").get_json()
    assert [h["id"] for h in queue] == [soon["id"], by_coord["id"]]
    for who in ("cpscoord", "coord1", "cps1", "admin1"):
        _problem(api.get("/api/v1/protection-holds", who), 403)
        _problem(api.get("/api/v1/protection-holds/review-queue", who), 403)
    [listed, queued] = audit_rows(app, "protection_hold.list")
    assert json.loads(listed.detail)["families"] == [family]
    assert json.loads(queued.detail)["due_only"] is True


def test_the_auditor_page_lists_holds(
        app: Flask, api: Api, cps_case: tuple[str, dict[str, str]]) -> None:
    family, _ = cps_case
    hold = place(api, family, review_on=(T0.date() + timedelta(days=5)).isoformat()).get_json()
    set_passwords(app)
    client = signed_in(app, "auditor1")
    page = client.get("/audit/holds")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert hold["id"] in html and family in html and "Investigation of suspected" in html
    assert "set 2026-11-22T10:00:00Z by cpscoord" in html
    assert html.index("Due for review") < html.index(f'href="#{hold["id"]}"')
    assert len(audit_rows(app, "protection_hold.list")) == 1


# --- what the family sees -------------------------------------------------------------


def _strip(value: Any) -> Any:
    """A view without what differs between two families by construction
    (their ids, the log's sequence numbers)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()
                if k not in {"id", "family_id", "seq", "referral_id"}}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _family_views(api: Api, family: str, token: str) -> dict[str, Any]:
    base = f"/api/v1/families/{family}"
    out = {}
    for name in ("consent", "consent/history", "access-log", "referrals", "access-requests"):
        response = api.get(f"{base}/{name}", token)
        assert response.status_code == 200, (name, response.get_json())
        out[name] = _strip(response.get_json())
    return out


def _pages(app: Flask, receipt: dict[str, str], lang: str) -> dict[str, str]:
    client = _signed_in(app, receipt)
    out = {}
    for page in ("/family/consent", "/family/access-log", "/family/end?agency=cps"):
        response = client.get(f"{page}{'&' if '?' in page else '?'}lang={lang}")
        assert response.status_code == 200, page
        out[page] = re.sub(r"(fam|req|ref|hold)_[0-9a-f]{20}", "ID", _text(response))
    return out


CPS_NAMES = ("cps", "Child protection", "child-protection")


def _history_of_acts(api: Api, family: str, with_cps: bool) -> None:
    """The same acts on two families; child protection's only on the one
    `with_cps` (where it is involved and on the form)."""
    api.write(family, "health", "Growth on track.")
    api.get(f"/api/v1/families/{family}", "physio1")
    if with_cps:
        api.get(f"/api/v1/families/{family}", "cps1")
        api.write(family, "protection", "Home visit booked.", who="cps1")
        api.get(f"/api/v1/families/{family}/consent/history", "cps1")  # refused: a practitioner
        assert api.post(f"/api/v1/families/{family}/access-requests", "cps1", json={
            "fields": ["contact"], "reason": "To reach the mother."}).status_code == 201
        assert api.post(f"/api/v1/families/{family}/referrals", "cps1", json={
            "to": "physio", "reason": "Motor development check.",
            "fields": []}).status_code == 201
        # A coordinator changes only child protection's cells: a version the
        # family neither signed nor made.
        assert api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
                        json={"agency": "cps", "field": "health"}).status_code == 200
    api.get(f"/api/v1/families/{family}", "physio1")
    assert api.post(f"/api/v1/families/{family}/access-requests", "physio1", json={
        "fields": ["contact"], "reason": "To book the first session."}).status_code == 201


def test_the_family_sees_nothing_of_a_concealed_agency(
        app: Flask, api: Api, clock: Clock) -> None:
    _allow_holds(app, clock, api)
    held = api.new_family("nurse1", display_name="Aylin Demir")
    plain = api.new_family("nurse1", display_name="Aylin Demir")
    held_receipt = api.sign(held, CPS_GRID)["receipt"]
    plain_receipt = api.sign(plain, GRID)["receipt"]
    assert api.post(f"/api/v1/families/{held}/involvements", "coord1",
                    json={"agency": "cps"}).status_code == 201
    _history_of_acts(api, held, with_cps=True)
    _history_of_acts(api, plain, with_cps=False)
    held_token = family_token(api, held_receipt)
    plain_token = family_token(api, plain_receipt)
    before = _family_views(api, held, held_token)
    assert "cps" in json.dumps(before)  # without a hold the family sees child protection
    hold = place(api, held).get_json()
    clock.advance(minutes=5)
    with_hold = _family_views(api, held, held_token)
    without_cps = _family_views(api, plain, plain_token)
    assert with_hold == without_cps
    for name in CPS_NAMES:
        assert name not in json.dumps(with_hold)
    # Versions as the family reads them: numbered without a gap.
    assert [v["version"] for v in with_hold["consent/history"]] == [1]
    assert with_hold["consent"]["version"] == 1
    for lang in ("en", "tr"):
        held_pages, plain_pages = _pages(app, held_receipt, lang), _pages(app, plain_receipt, lang)
        # The end page for the agency the family names answers as for one with
        # no part (the same page as the other family's).
        assert held_pages == plain_pages
        for page in ("/family/consent", "/family/access-log"):
            text = held_pages[page]
            for name in (*CPS_NAMES, "Çocuk koruma"):
                assert name not in text
    # Staff and auditors still see all of it.
    staff = api.get(f"/api/v1/families/{held}/consent", "coord1").get_json()
    assert "cps" in staff["grants"]
    log = api.get(f"/api/v1/audit?family={held}&agency=cps", "auditor1").get_json()
    assert log["items"]
    # Lifted: the family sees again child protection's past looks.
    api.call("DELETE", f"/api/v1/families/{held}/protection-holds/{hold['id']}", "cpscoord",
             json={})
    after = _family_views(api, held, held_token)
    assert any(item["agency"] == "cps" for item in after["access-log"])
    assert "cps" in after["consent"]["grants"]
    assert len(after["consent/history"]) == 2


def test_concealing_only_looks_keeps_the_agency_on_the_form(
        app: Flask, api: Api, cps_case: tuple[str, dict[str, str]]) -> None:
    family, receipt = cps_case
    api.get(f"/api/v1/families/{family}", "cps1")
    api.write(family, "protection", "Note.", who="cps1")
    place(api, family, conceal=["access"])
    token = family_token(api, receipt)
    assert "cps" in api.get(f"/api/v1/families/{family}/consent", token).get_json()["grants"]
    log = api.get(f"/api/v1/families/{family}/access-log", token).get_json()
    assert all(item["agency"] != "cps" for item in log)
    assert any(item["agency"] == "health-centre" for item in log)


def test_concealing_entries_leaves_out_only_the_notes_written(
        app: Flask, api: Api, cps_case: tuple[str, dict[str, str]]) -> None:
    family, receipt = cps_case
    api.get(f"/api/v1/families/{family}", "cps1")
    api.write(family, "protection", "Note.", who="cps1")
    place(api, family, conceal=["entries"])
    token = family_token(api, receipt)
    log = api.get(f"/api/v1/families/{family}/access-log", token).get_json()
    cps_acts = [item["action"] for item in log if item["agency"] == "cps"]
    assert cps_acts == ["record.read"]


def test_the_family_cannot_end_or_revoke_a_concealed_agency(
        app: Flask, api: Api, cps_case: tuple[str, dict[str, str]]) -> None:
    family, receipt = cps_case
    place(api, family, conceal=["involvement"])
    token = family_token(api, receipt)
    # The same answers as for an agency with no part at all (the kindergarten).
    ended = api.call("DELETE", f"/api/v1/families/{family}/involvements/cps", token, json={})
    none = api.call("DELETE", f"/api/v1/families/{family}/involvements/ecec", token, json={})
    assert ended.status_code == none.status_code == 409
    assert ended.get_json()["detail"].replace("cps", "ecec") == none.get_json()["detail"]
    revoked = api.post(f"/api/v1/families/{family}/consent/revoke", token,
                       json={"agency": "cps"}).get_json()
    nothing = api.post(f"/api/v1/families/{family}/consent/revoke", token,
                       json={"agency": "ecec"}).get_json()
    assert revoked == nothing and revoked["version"] == 1
    # Child protection's part is untouched.
    staff = api.get(f"/api/v1/families/{family}/consent", "coord1").get_json()
    assert staff["version"] == 1 and "cps" in staff["grants"]
    record = api.get(f"/api/v1/families/{family}", "coord1").get_json()
    assert any(i["agency"] == "cps" and i["status"] == "active"
               for i in record["involvements"])


# --- the command line ---------------------------------------------------------------


def test_the_cli_allows_and_disallows_holds(
        app: Flask, api: Api, clock: Clock, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.functional.test_cli import assert_ok, assert_one_line_failure, run

    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        accounts.add_staff(session, "cpscoord", "cps", "coordinator", None, clock())
        api.tokens["cpscoord"] = accounts.create_token(session, "cpscoord",
                                                       timedelta(days=3650), clock())
    family = api.new_family("nurse1")
    api.sign(family, CPS_GRID)
    _problem(place(api, family), 403)  # not allowed yet
    result = run(capsys, "agency", "set", "cps", "--protection-holds", "on")
    assert_ok(result)
    assert result.out.strip() == "agency cps protection holds: on"
    assert place(api, family).status_code == 201
    assert_ok(run(capsys, "agency", "set", "cps", "--protection-holds", "off"))
    _problem(place(api, family), 403)
    assert_ok(run(capsys, "agency", "add", "teams", "--name", "Neighbourhood team",
                  "--kind", "social", "--protection-holds"))
    with rt.sessions() as session:
        from coordination.model import Agency

        assert session.get(Agency, "teams").protection_holds is True  # type: ignore[union-attr]
        assert session.get(Agency, "ecec").protection_holds is False  # type: ignore[union-attr]
    message = assert_one_line_failure(run(capsys, "agency", "set", "nowhere",
                                          "--protection-holds", "on"))
    assert "nowhere" in message
    assert_one_line_failure(run(capsys, "agency", "set", "cps", "--protection-holds", "maybe"))
    assert [json.loads(r.detail)["allowed"] for r in audit_rows(
        app, "agency.protection_holds")] == [True, False]


def test_erasing_the_family_erases_its_holds(
        app: Flask, api: Api, cps_case: tuple[str, dict[str, str]]) -> None:
    from coordination.model import ProtectionHoldEvent

    family, _ = cps_case
    hold = place(api, family).get_json()
    api.post(f"/api/v1/families/{family}/protection-holds/{hold['id']}/renew", "cpscoord",
             json={"review_on": (T0.date() + timedelta(days=80)).isoformat()})
    erased = api.call("DELETE", f"/api/v1/families/{family}", "admin1",
                      json={"reason": "the family asked"})
    assert erased.status_code == 204
    assert count(app, ProtectionHold) == 0 and count(app, ProtectionHoldEvent) == 0
    assert api.get("/api/v1/protection-holds", "auditor1").get_json() == []


def test_the_agency_worklist_says_when_a_hold_is_due_for_review(
        api: Api, clock: Clock, cps_case: tuple[str, dict[str, str]]) -> None:
    family, _ = cps_case
    review_on = (T0.date() + timedelta(days=20)).isoformat()
    hold = place(api, family, review_on=review_on).get_json()

    def kinds(who: str) -> list[tuple[str, str]]:
        items = api.get("/api/v1/worklist", who).get_json()
        return [(i["kind"], i["ref"]) for i in items if i["kind"] == "hold.review"]

    assert kinds("cpscoord") == []  # 20 days ahead: not yet
    clock.advance(days=7)
    assert kinds("cpscoord") == [("hold.review", hold["id"])]
    assert kinds("cps1") == [("hold.review", hold["id"])]
    assert kinds("coord1") == []  # another agency's hold
    clock.advance(days=14)  # past the review date: lapsed, nothing to review
    assert kinds("cpscoord") == []


def test_a_coordinator_lists_its_agency_holds_on_the_family(
        app: Flask, api: Api, cps_case: tuple[str, dict[str, str]]) -> None:
    family, _ = cps_case
    mine = place(api, family).get_json()
    place(api, family, "coord1", conceal=["access"])
    listed = api.get(f"/api/v1/families/{family}/protection-holds", "cpscoord")
    assert listed.status_code == 200
    assert [h["id"] for h in listed.get_json()] == [mine["id"]]
    _problem(api.get(f"/api/v1/families/{family}/protection-holds", "cps1"), 403)
    _problem(api.get(f"/api/v1/families/{family}/protection-holds", "physiocoord"), 403)
    _problem(api.get(f"/api/v1/families/{family}/protection-holds", "ngocoord"), 404)
    assert len(audit_rows(app, "protection_hold.list")) == 1


def test_the_family_meets_a_concealed_request_or_referral_as_an_absent_one(
        app: Flask, api: Api, cps_case: tuple[str, dict[str, str]]) -> None:
    family, receipt = cps_case
    asked = api.post(f"/api/v1/families/{family}/access-requests", "cps1", json={
        "fields": ["contact"], "reason": "To reach the mother."}).get_json()
    referred = api.post(f"/api/v1/families/{family}/referrals", "cps1", json={
        "to": "physio", "reason": "Motor development check.", "fields": []}).get_json()
    place(api, family, conceal=["involvement"])
    token = family_token(api, receipt)
    base = f"/api/v1/families/{family}"
    with nothing_stored(app):
        approve = _problem(api.post(f"{base}/access-requests/{asked['id']}/approve", token,
                                    json={}), 404)
        absent = _problem(api.post(f"{base}/access-requests/req_0000/approve", token,
                                   json={}), 404)
        assert approve == absent
        read = _problem(api.get(f"/api/v1/referrals/{referred['id']}", token), 404)
        assert read == _problem(api.get("/api/v1/referrals/ref_0000", token), 404)
    # Child protection's request still waits, for the family to answer once told.
    staff = api.get(f"{base}/access-requests", "cps1").get_json()
    assert [r["state"] for r in staff] == ["pending"]
