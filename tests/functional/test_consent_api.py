"""Recording, reading, revoking and the history of the joint consent form;
referrals that depend on it; the family's receipt and session."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from consent.tables import ConsentFormRow, ConsentReceipt
from coordination.model import Involvement
from tests.conftest import Api, Clock, consent_body
from tests.unchanged import nothing_stored


def forms(app: Flask) -> int:
    with app.extensions["onestory"].sessions() as session:
        count: int = session.scalar(select(func.count()).select_from(ConsentFormRow))
        return count


class TestRecordAndRead:
    def test_put_stores_a_whole_new_version(self, api: Api) -> None:
        family = api.new_family("nurse1")
        assert api.get(f"/api/v1/families/{family}/consent", "coord1").status_code == 404
        first = api.sign(family, {"physio": ["involvement", "health"], "ecec": ["education"]},
                         interpreter_language="tr", witness="nurse1")
        assert first["version"] == 1
        assert first["signed_by"] == "Guardian Name"
        assert first["recorded_at"] == "2026-11-22T10:00:00Z"
        assert first["witness"] == "nurse1"
        assert first["interpreter_language"] == "tr"
        assert len(first["receipt"]["pin"]) == 6 and first["receipt"]["pin"].isdigit()
        second = api.sign(family, {"physio": ["health"]})
        assert second["version"] == 2
        assert second["grants"] == {"physio": ["health"]}  # ecec left out: revoked
        assert second["witness"] == "coord1"  # defaults to the caller
        assert "receipt" not in second
        current = api.get(f"/api/v1/families/{family}/consent", "nurse1").get_json()
        assert current["version"] == 2 and "receipt" not in current

    def test_reissue_pin_invalidates_the_old_one(self, api: Api) -> None:
        family = api.new_family("nurse1")
        old = api.sign(family, {"physio": ["health"]})["receipt"]
        new = api.sign(family, {"physio": ["health"]}, reissue_pin=True)["receipt"]
        assert api.post("/api/v1/family/session", json={
            "receipt_code": old["code"], "pin": old["pin"]}).status_code == 401
        assert api.post("/api/v1/family/session", json={
            "receipt_code": new["code"], "pin": new["pin"]}).status_code == 201

    def test_pin_is_stored_only_as_a_slow_hash(self, app: Flask, api: Api) -> None:
        family = api.new_family("nurse1")
        receipt = api.sign(family, {"physio": ["health"]})["receipt"]
        with app.extensions["onestory"].sessions() as session:
            row = session.get(ConsentReceipt, family)
        assert row is not None
        assert row.pin_hash.startswith("$argon2")
        assert receipt["pin"] not in row.pin_hash
        assert receipt["code"].replace("-", "") not in row.code_hash

    @pytest.mark.parametrize(
        ("change", "error_key"),
        [
            ({"grants": {"nowhere": ["health"]}}, "grants.nowhere"),
            ({"grants": {"physio": ["shoe-size"]}}, "grants.physio"),
            ({"valid_until": "2026-11-21"}, "valid_until"),
            ({"signed_on": "2026-11-23"}, "signed_on"),
            ({"method": "telepathy"}, "method"),
            ({"version": 4}, "version"),
        ],
    )
    def test_invalid_forms_are_refused_and_nothing_stored(
        self, app: Flask, api: Api, change: dict[str, Any], error_key: str
    ) -> None:
        family = api.new_family("nurse1")
        api.sign(family, {"ecec": ["education"]})
        body = {**consent_body({"physio": ["health"]}), **change}
        with nothing_stored(app):
            response = api.put(f"/api/v1/families/{family}/consent", "coord1", json=body)
        assert response.status_code == 422
        assert error_key in response.get_json()["errors"]
        assert forms(app) == 1

    def test_valid_until_today_is_accepted_and_counts_all_day(self, api: Api,
                                                               clock: Clock) -> None:
        family = api.new_family("nurse1")
        api.sign(family, {"physio": ["health"]}, valid_until="2026-11-22")
        clock.advance(hours=13, minutes=59)  # 23:59 UTC
        assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 200
        clock.advance(minutes=1)
        assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404

    def test_only_an_involved_agency_reads_or_records(self, app: Flask, api: Api) -> None:
        family = api.new_family("nurse1")
        api.sign(family, {"physio": ["health"]})
        with nothing_stored(app):
            # physio sees the family (it holds a cell) but is not involved
            assert api.get(f"/api/v1/families/{family}/consent", "physio1").status_code == 403
            assert api.put(f"/api/v1/families/{family}/consent", "physiocoord",
                           json=consent_body({"physio": ["contact"]},
                                             reissue_pin=True)).status_code == 403
            assert api.get(f"/api/v1/families/{family}/consent", "ecec1").status_code == 404
            assert api.put(f"/api/v1/families/{family}/consent", "cps1",
                           json=consent_body({"cps": ["contact"]})).status_code == 403


class TestRevoke:
    @pytest.mark.parametrize(
        ("body", "left", "change"),
        [
            ({"agency": "physio", "field": "health"},
             {"physio": ["involvement"], "ecec": ["education", "involvement"]},
             "revoke cell physio/health"),
            ({"agency": "physio"}, {"ecec": ["education", "involvement"]},
             "revoke column physio"),
            ({"field": "involvement"}, {"physio": ["health"], "ecec": ["education"]},
             "revoke row involvement"),
            ({}, {}, "revoke everything"),
        ],
    )
    def test_revoke_makes_a_new_version(
        self, api: Api, body: dict[str, str], left: dict[str, list[str]], change: str
    ) -> None:
        family = api.new_family("nurse1")
        api.sign(family, {"physio": ["involvement", "health"],
                          "ecec": ["involvement", "education"]})
        response = api.post(f"/api/v1/families/{family}/consent/revoke", "coord1", json=body)
        assert response.status_code == 200
        assert response.get_json()["version"] == 2
        assert response.get_json()["grants"] == left
        history = api.get(f"/api/v1/families/{family}/consent/history", "coord1").get_json()
        assert [(h["version"], h["change"], h["changed_by"]) for h in history] == [
            (1, "signed", "coord1"), (2, change, "coord1")]
        assert history[0]["grants"]["physio"] == ["health", "involvement"]  # kept

    def test_nothing_to_revoke_writes_no_version(self, app: Flask, api: Api) -> None:
        family = api.new_family("nurse1")
        api.sign(family, {"physio": ["health"]})
        response = api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
                            json={"agency": "ecec"})
        assert response.status_code == 200
        assert response.get_json()["version"] == 1
        assert forms(app) == 1

    def test_revoke_without_any_form_conflicts(self, app: Flask, api: Api) -> None:
        family = api.new_family("nurse1")
        with nothing_stored(app):
            response = api.post(f"/api/v1/families/{family}/consent/revoke", "coord1",
                                json={})
        assert response.status_code == 409

    @pytest.mark.parametrize(("who", "status"), [("physiocoord", 403), ("ecec1", 403),
                                                 ("ngocoord", 404)])
    def test_refused_revocations_change_nothing(self, app: Flask, api: Api, who: str,
                                                status: int) -> None:
        family = api.new_family("nurse1")
        api.sign(family, {"physio": ["health", "involvement"], "ecec": ["education"]})
        with nothing_stored(app):
            response = api.post(f"/api/v1/families/{family}/consent/revoke", who,
                                json={"agency": "physio"})
        assert response.status_code == status

    def test_revoke_then_regrant(self, api: Api) -> None:
        family = api.new_family("nurse1")
        api.write(family, "health", "h1")
        api.sign(family, {"physio": ["health"]})
        api.post(f"/api/v1/families/{family}/consent/revoke", "coord1", json={})
        assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 404
        api.sign(family, {"physio": ["health"]})
        body = api.get(f"/api/v1/families/{family}", "physio1").get_json()
        assert body["fields"]["health"][0]["value"] == "h1"


class TestReferral:
    def test_referral_needs_the_involvement_cell(self, app: Flask, api: Api) -> None:
        family = api.new_family("nurse1")
        path = f"/api/v1/families/{family}/involvements"
        with nothing_stored(app):
            no_form = api.post(path, "coord1", json={"agency": "physio"})
        assert no_form.status_code == 409
        api.sign(family, {"physio": ["health"]})
        with nothing_stored(app):
            refused = api.post(path, "coord1", json={"agency": "physio"})
        assert refused.status_code == 409
        api.sign(family, {"physio": ["involvement"]})
        made = api.post(path, "coord1", json={"agency": "physio"})
        assert made.status_code == 201
        assert made.get_json() == {"agency": "physio", "status": "active",
                                   "since": "2026-11-22", "contact_worker": None}
        with nothing_stored(app):
            assert api.post(path, "coord1", json={"agency": "physio"}).status_code == 409
        with app.extensions["onestory"].sessions() as session:
            assert session.scalar(select(func.count()).select_from(Involvement)) == 2

    def test_referred_agency_may_write_and_stays_visible_after_revocation(self,
                                                                         api: Api) -> None:
        family = api.new_family("nurse1")
        api.sign(family, {"physio": ["involvement"]})
        api.post(f"/api/v1/families/{family}/involvements", "coord1", json={"agency": "physio"})
        api.write(family, "health", "physio note", who="physio1")
        api.post(f"/api/v1/families/{family}/consent/revoke", "coord1", json={})
        body = api.get(f"/api/v1/families/{family}", "physio1").get_json()
        assert body["fields"]["health"][0]["value"] == "physio note"
        assert body["partial"] == ["health"]

    def test_only_an_involved_coordinator_refers(self, app: Flask, api: Api) -> None:
        family = api.new_family("nurse1")
        api.sign(family, {"physio": ["involvement"], "ecec": ["involvement"]})
        with nothing_stored(app):
            assert api.post(f"/api/v1/families/{family}/involvements", "physiocoord",
                            json={"agency": "ecec"}).status_code == 403
            assert api.post(f"/api/v1/families/{family}/involvements", "nurse1",
                            json={"agency": "ecec"}).status_code == 403
            assert api.post(f"/api/v1/families/{family}/involvements", "ngocoord",
                            json={"agency": "ecec"}).status_code == 404

    def test_closing_is_for_that_agency_only(self, app: Flask, api: Api) -> None:
        family = api.new_family("nurse1")
        api.sign(family, {"physio": ["involvement"]})
        api.post(f"/api/v1/families/{family}/involvements", "coord1", json={"agency": "physio"})
        with nothing_stored(app):
            assert api.patch(f"/api/v1/families/{family}/involvements/physio", "coord1",
                             json={"status": "closed"}).status_code == 403
            assert api.patch(f"/api/v1/families/{family}/involvements/ecec", "coord1",
                             json={"status": "closed"}).status_code == 403
        closed = api.patch(f"/api/v1/families/{family}/involvements/physio", "physiocoord",
                           json={"status": "closed"})
        assert closed.status_code == 200 and closed.get_json()["status"] == "closed"
        again = api.patch(f"/api/v1/families/{family}/involvements/physio", "physiocoord",
                          json={"status": "closed"})
        assert again.status_code == 200
        # a closed agency can be referred again
        assert api.post(f"/api/v1/families/{family}/involvements", "coord1",
                        json={"agency": "physio"}).status_code == 201


class TestFamilySession:
    def _receipt(self, api: Api) -> tuple[str, dict[str, str]]:
        family = api.new_family("nurse1")
        return family, api.sign(family, {"physio": ["health"]})["receipt"]

    def test_exchange_gives_a_short_lived_token(self, api: Api) -> None:
        family, receipt = self._receipt(api)
        response = api.post("/api/v1/family/session", json={
            "receipt_code": receipt["code"].lower().replace("-", " "), "pin": receipt["pin"]})
        assert response.status_code == 201
        body = response.get_json()
        assert body["family_id"] == family
        assert body["expires_at"] == "2026-11-22T10:15:00Z"
        assert body["token"]

    @pytest.mark.parametrize("wrong", [{"pin": "000000"}, {"receipt_code": "ZZZZ-ZZZZ"}])
    def test_wrong_code_or_pin_look_alike(self, api: Api, wrong: dict[str, str]) -> None:
        _, receipt = self._receipt(api)
        body = {"receipt_code": receipt["code"], "pin": receipt["pin"], **wrong}
        if body["pin"] == receipt["pin"] and "pin" in wrong:
            pytest.skip("the random PIN happened to be 000000")
        response = api.post("/api/v1/family/session", json=body)
        assert response.status_code == 401
        assert response.get_json()["detail"] == "a valid bearer token is required"

    def test_wrong_pins_slow_down_but_never_lock_out(self, api: Api, clock: Clock) -> None:
        _, receipt = self._receipt(api)
        wrong = "999999" if receipt["pin"] != "999999" else "888888"

        def attempt(pin: str) -> Any:
            return api.post("/api/v1/family/session",
                            json={"receipt_code": receipt["code"], "pin": pin})

        for _ in range(3):
            assert attempt(wrong).status_code == 401
        slowed = attempt(receipt["pin"])  # even the right PIN waits
        assert slowed.status_code == 429
        assert int(slowed.headers["Retry-After"]) >= 1
        clock.advance(seconds=2)
        for _ in range(5):
            attempt(wrong)
            clock.advance(minutes=20)
        # long after many failures, the right PIN still works
        assert attempt(receipt["pin"]).status_code == 201
        # and success resets the count: one wrong PIN is not slowed down
        assert attempt(wrong).status_code == 401
        assert attempt(receipt["pin"]).status_code == 201

    def test_delay_is_capped(self, api: Api, clock: Clock) -> None:
        _, receipt = self._receipt(api)
        wrong = "999999" if receipt["pin"] != "999999" else "888888"
        for _ in range(40):
            api.post("/api/v1/family/session", json={"receipt_code": receipt["code"],
                                                      "pin": wrong})
            clock.advance(hours=1)
        slowed = api.post("/api/v1/family/session",
                          json={"receipt_code": receipt["code"], "pin": wrong})
        assert slowed.status_code in {401, 429}
        clock.advance(minutes=15, seconds=1)
        assert api.post("/api/v1/family/session", json={
            "receipt_code": receipt["code"], "pin": receipt["pin"]}).status_code == 201

    def test_family_can_read_and_revoke(self, api: Api) -> None:
        family, receipt = self._receipt(api)
        token = api.post("/api/v1/family/session", json={
            "receipt_code": receipt["code"], "pin": receipt["pin"]}).get_json()["token"]
        assert api.get(f"/api/v1/families/{family}/consent", token).get_json()["version"] == 1
        log = api.get(f"/api/v1/families/{family}/access-log", token).get_json()
        assert [(e["action"], e["agency"]) for e in log] == [
            ("consent.sign", "health-centre"), ("family.create", "health-centre")]
        revoked = api.post(f"/api/v1/families/{family}/consent/revoke", token, json={})
        assert revoked.get_json()["grants"] == {}
        history = api.get(f"/api/v1/families/{family}/consent/history", token).get_json()
        assert history[-1]["changed_by"] == "family"
