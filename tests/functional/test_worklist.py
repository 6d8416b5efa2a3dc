"""The worklist (CONTRACT.md, "Worklist"): every kind made by the use cases
at a controlled time, who sees which item, visibility, roles, audit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from tests.conftest import T0, Api, Clock
from tests.functional.test_referrals import GRID, ask
from tests.functional.test_revocation_truth import audit_rows, family_token


def items(api: Api, who: str) -> list[dict[str, Any]]:
    response = api.get("/api/v1/worklist", who)
    assert response.status_code == 200, response.get_json()
    found: list[dict[str, Any]] = response.get_json()
    return found


def kinds(api: Api, who: str) -> list[tuple[str, str]]:
    return [(i["kind"], i["ref"]) for i in items(api, who)]


@pytest.fixture
def case(api: Api) -> tuple[str, str]:
    """A family recorded by the health centre, its form signed (a year),
    and the family's session token."""
    family = api.new_family("nurse1", display_name="Aylin Demir")
    receipt = api.sign(family, GRID)["receipt"]
    return family, family_token(api, receipt)


def accepted(api: Api, family: str) -> str:
    ref: str = ask(api, family).get_json()["id"]
    response = api.post(f"/api/v1/referrals/{ref}/accept", "physiocoord",
                        json={"contact_worker": "physio1"})
    assert response.status_code == 200, response.get_json()
    return ref


def book(api: Api, ref: str, at: str, who: str = "physio1") -> str:
    response = api.post(f"/api/v1/referrals/{ref}/appointments", who,
                        json={"at": at, "place": "Room 2", "interpreter_language": "tr"})
    assert response.status_code == 201, response.get_json()
    apt: str = response.get_json()["id"]
    return apt


def test_an_empty_worklist(api: Api, case: tuple[str, str]) -> None:
    assert items(api, "nurse1") == []
    assert items(api, "physio1") == []


def test_a_referral_to_answer_then_overdue(app: Flask, api: Api, clock: Clock,
                                          case: tuple[str, str]) -> None:
    family, _ = case
    ref = ask(api, family).get_json()["id"]  # routine: answer by T0 + 10 days
    [item] = items(api, "physio1")
    assert item == {"kind": "referral.to_answer", "family_id": family, "due": "2026-12-02",
                    "ref": ref, "at": None, "referral_id": ref, "agency": "health-centre",
                    "direction": "in", "display_name": "Aylin Demir",
                    "href": f"/staff/referrals/{ref}"}
    assert items(api, "physiocoord") == [item]  # the agency's list, for every role
    assert items(api, "nurse1") == []  # the referrer waits: nothing to do yet
    assert items(api, "cps1") == []  # sees the family, not the referral
    clock.advance(days=10)
    assert kinds(api, "physio1") == [("referral.to_answer", ref)]  # the day itself counts
    clock.advance(days=1)
    assert kinds(api, "physio1") == [("referral.overdue", ref)]
    [chase] = items(api, "coord1")
    assert (chase["kind"], chase["direction"], chase["agency"]) == (
        "referral.overdue", "out", "physio")
    # Answered: gone for both.
    accepted_now = api.post(f"/api/v1/referrals/{ref}/accept", "physiocoord", json={})
    assert accepted_now.status_code == 200
    assert items(api, "physio1") == [] and items(api, "coord1") == []
    # Each read is on record, naming the families it showed.
    reads = audit_rows(app, "worklist.read")
    assert [json.loads(r.detail)["families"] for r in reads][:2] == [[family], [family]]
    assert {r.outcome for r in reads} == {"ok"}
    assert [r.family_id for r in reads] == [None] * len(reads)


def test_a_referral_awaiting_the_family_is_no_item_for_the_receiver(
        api: Api, clock: Clock, case: tuple[str, str]) -> None:
    family, _ = case
    ask(api, family, fields=["health", "contact"])  # awaiting the family
    clock.advance(days=20)
    assert items(api, "physio1") == []
    assert items(api, "nurse1") == []


def test_appointments_upcoming_and_missed(api: Api, clock: Clock,
                                         case: tuple[str, str]) -> None:
    family, _ = case
    ref = accepted(api, family)
    apt = book(api, ref, "2026-12-02T09:30:00Z")  # ten days ahead: not this week
    assert items(api, "physio1") == [] and items(api, "nurse1") == []
    clock.advance(days=4)
    [item] = items(api, "physio1")
    assert (item["kind"], item["ref"], item["at"], item["due"], item["referral_id"]) == (
        "appointment.upcoming", apt, "2026-12-02T09:30:00Z", "2026-12-02", ref)
    [theirs] = items(api, "nurse1")  # the referrer follows it too
    assert (theirs["kind"], theirs["direction"], theirs["agency"]) == (
        "appointment.upcoming", "out", "physio")
    clock.advance(days=6, hours=1)  # past it, nothing recorded: no longer upcoming
    assert items(api, "physio1") == []
    assert api.patch(f"/api/v1/referrals/{ref}/appointments/{apt}", "physio1",
                     json={"outcome": "missed"}).status_code == 200
    for who in ("physio1", "coord1"):
        [missed] = items(api, who)
        assert (missed["kind"], missed["ref"], missed["due"]) == (
            "appointment.missed", apt, "2026-12-02")
    # Booked again: the miss is dealt with, the new one comes up.
    again = book(api, ref, "2026-12-05T09:30:00Z")
    assert kinds(api, "physio1") == [("appointment.upcoming", again)]
    clock.advance(days=3)
    assert api.patch(f"/api/v1/referrals/{ref}/appointments/{again}", "physio1",
                     json={"outcome": "missed"}).status_code == 200
    assert kinds(api, "physio1") == [("appointment.missed", again)]  # the last miss only
    assert api.post(f"/api/v1/referrals/{ref}/close", "physio1",
                    json={"outcome_note": "Did not come twice."}).status_code == 200
    assert items(api, "physio1") == [] and items(api, "nurse1") == []


def test_a_withdrawn_referral_has_no_upcoming_appointment(
        api: Api, clock: Clock, case: tuple[str, str]) -> None:
    family, _ = case
    ref = accepted(api, family)
    book(api, ref, "2026-11-24T09:00:00Z")
    assert len(items(api, "physio1")) == 1
    assert api.post(f"/api/v1/referrals/{ref}/withdraw", "coord1",
                    json={"reason": "The family moved away."}).status_code == 200
    assert items(api, "physio1") == [] and items(api, "coord1") == []


def test_forms_to_renew(api: Api, clock: Clock) -> None:
    family = api.new_family("nurse1", display_name="Short Form")
    api.sign(family, GRID, valid_until="2026-12-20")  # 28 days
    [item] = items(api, "coord1")
    assert item == {"kind": "consent.renew", "family_id": family, "due": "2026-12-20",
                    "ref": "v1", "at": None, "referral_id": None, "agency": None,
                    "direction": None, "display_name": "Short Form",
                    "href": f"/staff/families/{family}/consent"}
    # Only for agencies involved with the family, not for those that only hold cells.
    assert items(api, "physio1") == []
    other = api.new_family("nurse1", display_name="Long Form")
    api.sign(other, GRID, valid_until="2027-01-05")  # 44 days: not yet
    assert kinds(api, "nurse1") == [("consent.renew", "v1")]
    clock.advance(days=30)  # the first has ended, the second ends within 30 days
    assert [(i["family_id"], i["due"]) for i in items(api, "nurse1")] == [
        (family, "2026-12-20"), (other, "2027-01-05")]
    # A newly signed form takes the first off the list.
    clock.now = T0
    api.sign(family, GRID)
    clock.advance(days=30)
    assert [i["family_id"] for i in items(api, "nurse1")] == [other]


def test_a_family_ends_an_agencys_part(app: Flask, api: Api, clock: Clock,
                                       case: tuple[str, str]) -> None:
    family, token = case
    ref = accepted(api, family)
    book(api, ref, "2026-11-25T09:00:00Z")
    assert kinds(api, "physio1")[0][0] == "appointment.upcoming"
    clock.advance(minutes=5)
    ended = api.call("DELETE", f"/api/v1/families/{family}/involvements/physio", token,
                     json={})
    assert ended.status_code == 200, ended.get_json()
    # The family no longer exists for physiotherapy: its worklist says so, and
    # no more than that (no name, no link, nothing else about the family).
    [item] = items(api, "physiocoord")
    assert item == {"kind": "involvement.ended", "family_id": family, "due": "2026-11-22",
                    "ref": "physio", "at": "2026-11-22T10:05:00Z", "referral_id": None,
                    "agency": None, "direction": None, "display_name": None, "href": None}
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404
    # The other agencies are not told of it as theirs.
    assert [i["kind"] for i in items(api, "nurse1")] == ["appointment.upcoming"]
    clock.advance(days=31)
    assert items(api, "physio1") == []


def test_an_ending_is_no_item_once_the_family_is_visible_again(
        api: Api, clock: Clock, case: tuple[str, str]) -> None:
    family, token = case
    accepted(api, family)
    assert api.call("DELETE", f"/api/v1/families/{family}/involvements/physio", token,
                    json={}).status_code == 200
    assert kinds(api, "physio1") == [("involvement.ended", "physio")]
    api.sign(family, GRID)  # the family signs physiotherapy in again
    assert items(api, "physio1") == []


def test_what_the_family_revoked_leaves_the_worklist(
        api: Api, case: tuple[str, str]) -> None:
    family, token = case
    ask(api, family)
    assert len(items(api, "physio1")) == 1
    assert api.post(f"/api/v1/families/{family}/consent/revoke", token,
                    json={"agency": "physio"}).status_code == 200
    assert items(api, "physio1") == []  # the family does not exist for it any more


def test_another_agencys_families_never_appear(api: Api, clock: Clock) -> None:
    mine = api.new_family("ngo1", display_name="Mira")
    api.sign(mine, {"ngo": ["involvement", "contact", "story"]}, who="ngocoord",
             valid_until="2026-12-01")
    theirs = api.new_family("nurse1", display_name="Aylin")
    api.sign(theirs, GRID, valid_until="2026-12-01")
    ask(api, theirs)
    assert [i["family_id"] for i in items(api, "ngo1")] == [mine]
    assert {i["family_id"] for i in items(api, "nurse1")} == {theirs}
    assert {i["family_id"] for i in items(api, "physio1")} == {theirs}
    assert items(api, "ecec1") == [] and items(api, "cps1") == []


def test_most_urgent_first(api: Api, clock: Clock) -> None:
    early = api.new_family("nurse1", display_name="Early")
    api.sign(early, GRID, valid_until="2026-12-10")
    late = api.new_family("nurse1", display_name="Late")
    api.sign(late, GRID, valid_until="2026-12-01")
    overdue = ask(api, early, urgency="urgent").get_json()["id"]
    waiting = ask(api, late).get_json()["id"]
    ref = accepted(api, late)
    apt = book(api, ref, "2026-11-25T08:00:00Z")
    clock.advance(days=2)
    assert kinds(api, "physio1") == [
        ("referral.overdue", overdue), ("referral.to_answer", waiting),
        ("appointment.upcoming", apt), ("consent.renew", "v1")]  # involved with Late
    assert kinds(api, "coord1") == [
        ("referral.overdue", overdue), ("appointment.upcoming", apt),
        ("consent.renew", "v1"), ("consent.renew", "v1")]
    assert [i["family_id"] for i in items(api, "coord1")][2:] == [late, early]


@pytest.mark.parametrize("who", ["auditor1", "admin1"])
def test_roles_without_a_worklist(api: Api, who: str) -> None:
    response = api.get("/api/v1/worklist", who)
    assert response.status_code == 403
    assert response.headers["Content-Type"].startswith("application/problem+json")


def test_the_family_has_no_worklist(api: Api, case: tuple[str, str]) -> None:
    _, token = case
    assert api.get("/api/v1/worklist", token).status_code == 403


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_no_token(app: Flask, api: Api, token: str | None) -> None:
    response = api.get("/api/v1/worklist", token)
    assert response.status_code == 401
    assert audit_rows(app, "worklist.read") == []


def _statements(app: Flask, api: Api, who: str) -> int:
    from tests.functional.test_query_budget import counting

    with counting(app) as statements:
        assert api.get("/api/v1/worklist", who).status_code == 200
    return len(statements)


def test_the_query_count_does_not_grow_with_the_items(app: Flask, api: Api) -> None:
    """One query per source and one for the names, however many items (no N+1)."""
    one = api.new_family("nurse1", display_name="One")
    api.sign(one, GRID, valid_until="2026-12-01")
    ask(api, one)
    few = _statements(app, api, "physio1")
    for n in range(6):
        family = api.new_family("nurse1", display_name=f"Family {n}")
        api.sign(family, GRID, valid_until="2026-12-01")
        book(api, accepted(api, family), "2026-11-24T09:00:00Z")
        ask(api, family)
    assert len(items(api, "physio1")) == 1 + 6 * 3
    assert _statements(app, api, "physio1") == few


def test_the_familys_answer_to_an_access_request(api: Api, clock: Clock) -> None:
    """`access_request.answered`: the asking agency (every role of it) learns
    the family approved or declined, newest first, for 14 days; nobody else."""
    family = api.new_family("nurse1", display_name="Aylin Demir")
    receipt = api.sign(family, GRID)["receipt"]
    approved = ask_access(api, family, ["contact"])
    clock.advance(hours=1)
    assert items(api, "physio1") == []  # pending: nothing to act on yet
    assert api.post(f"/api/v1/families/{family}/access-requests/{approved}/approve",
                    family_token(api, receipt), json={}).status_code == 200
    [item] = items(api, "physio1")
    assert item == {"kind": "access_request.answered", "family_id": family,
                    "due": "2026-11-22", "ref": approved, "at": "2026-11-22T11:00:00Z",
                    "referral_id": None, "agency": None, "direction": None,
                    "display_name": "Aylin Demir", "href": f"/staff/families/{family}"}
    clock.advance(hours=1)
    declined = ask_access(api, family, ["story"])
    assert api.post(f"/api/v1/families/{family}/access-requests/{declined}/decline",
                    family_token(api, receipt), json={}).status_code == 200
    listed = items(api, "physiocoord")
    assert [(i["kind"], i["ref"]) for i in listed] == [
        ("access_request.answered", declined), ("access_request.answered", approved)]
    assert listed[0]["href"] == f"/staff/families/{family}/access-requests"
    assert items(api, "nurse1") == [] and items(api, "cps1") == []
    clock.advance(days=14, minutes=-30)
    assert [i["ref"] for i in items(api, "physio1")] == [declined]
    clock.advance(minutes=31)
    assert items(api, "physio1") == []


def ask_access(api: Api, family: str, fields: list[str]) -> str:
    response = api.post(f"/api/v1/families/{family}/access-requests", "physio1",
                        json={"fields": fields, "reason": "To reach the mother."})
    assert response.status_code == 201, response.get_json()
    request_id: str = response.get_json()["id"]
    return request_id
