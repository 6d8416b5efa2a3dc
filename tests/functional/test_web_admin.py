"""The admin's page (an agency's staff) and what a hand-over tells the
family, on both databases: every act, and every way one is refused (no
session, another role, another agency's staff member, no CSRF token, bad
input, the last admin), each changing nothing."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from coordination import accounts
from coordination.actors import Actor
from coordination.db import retry_on_conflict
from coordination.errors import Conflict
from coordination.model import Involvement, Staff
from coordination.roles import Role
from tests.cli import assert_ok, assert_one_line_failure, run
from tests.conftest import Api, Clock
from tests.web import csrf_token, set_passwords, sign_in, signed_in

GRID = {"health-centre": ["involvement", "contact", "health"],
        "physio": ["involvement", "health"]}
STAFF = "/admin/staff"


@pytest.fixture
def web(app: Flask, api: Api, clock: Clock) -> Api:
    """The usual agencies and staff, plus a second nurse and an admin of the
    health centre; everyone has a password."""
    with app.extensions["onestory"].sessions() as session:
        accounts.add_staff(session, "nurse2", "health-centre", "practitioner", None, clock(),
                           "Sigrid Haugen")
        accounts.add_staff(session, "hcadmin", "health-centre", "admin", None, clock())
        api.tokens["nurse2"] = accounts.create_token(session, "nurse2", timedelta(days=30),
                                                     clock())
    set_passwords(app)
    return api


def _text(response: Any) -> str:
    html = re.sub(r"</?(?:bdi|span|strong|code)\b[^>]*>", "", response.get_data(as_text=True))
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).replace("\u2068", "")
                    .replace("\u2069", "").split())


def _staff(app: Flask, username: str) -> Staff:
    with app.extensions["onestory"].sessions() as session:
        found = session.scalars(select(Staff).where(Staff.username == username)).one()
        session.expunge(found)
        return found


def _audit(app: Flask, action: str) -> list[Any]:
    with app.extensions["onestory"].engine.connect() as conn:
        return list(conn.execute(text("SELECT * FROM audit_log WHERE action = :a ORDER BY seq"),
                                 {"a": action}))


def _post(client: FlaskClient, action: str, data: dict[str, str]) -> Any:
    token = csrf_token(client.get(STAFF).get_data(as_text=True))
    return client.post(action, data={**data, "csrf_token": token})


def _accounts(app: Flask) -> list[tuple[str, str, str, bool, str | None]]:
    """Everything the admin page may change, to show that a refusal changed nothing."""
    with app.extensions["onestory"].engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT username, agency_id, role, active, password_hash FROM staff "
            "ORDER BY username"))]


# --- what the page shows ----------------------------------------------------------


def test_admin_home_is_the_staff_of_its_own_agency(app: Flask, web: Api) -> None:
    client = signed_in(app, "hcadmin")
    assert client.get("/staff/").headers["Location"] == STAFF
    page = _text(client.get(STAFF))
    assert "Staff of Health centre" in page
    for own in ("nurse1", "nurse2", "coord1", "hcadmin"):
        assert own in page
    assert 'value="Sigrid Haugen"' in client.get(STAFF).get_data(as_text=True)
    for other in ("physio1", "admin1", "auditor1", "ngo1"):
        assert other not in page
    assert "use the command line" not in page.lower()


# --- adding staff -----------------------------------------------------------------


def test_adding_staff_shows_a_made_password_once_and_it_signs_in(app: Flask, web: Api) -> None:
    client = signed_in(app, "hcadmin")
    response = _post(client, STAFF, {"username": "nurse3", "display_name": "Anne Vik",
                                     "role": "practitioner", "sign_in": "generated"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    password = re.search(r'<code class="secret">([^<]+)</code>', response.get_data(as_text=True))
    assert password is not None and len(password.group(1)) >= 16
    added = _staff(app, "nurse3")
    assert (added.agency_id, added.role, added.display_name, added.active) == (
        "health-centre", "practitioner", "Anne Vik", True)
    assert added.password_hash and added.password_hash.startswith("$argon2")
    assert password.group(1) not in added.password_hash
    assert "only this once" in _text(response)
    assert "nurse3" in _text(client.get(STAFF)) and password.group(1) not in _text(
        client.get(STAFF))
    assert sign_in(app.test_client(), "nurse3", password.group(1)).status_code == 302  # type: ignore[attr-defined]
    [entry] = _audit(app, "user.add")
    assert (entry.actor, entry.agency_id, entry.role) == ("hcadmin", "health-centre", "admin")
    assert json.loads(entry.detail) == {"user": "nurse3", "role": "practitioner",
                                        "password": True}
    assert password.group(1) not in entry.detail


def test_adding_staff_without_a_password(app: Flask, web: Api) -> None:
    client = signed_in(app, "hcadmin")
    response = _post(client, STAFF, {"username": "nurse4", "role": "coordinator",
                                     "sign_in": "none"})
    assert response.status_code == 302
    assert _staff(app, "nurse4").password_hash is None
    assert "nurse4 is added" in _text(client.get(STAFF))


@pytest.mark.parametrize(("data", "field", "status"), [
    ({"username": "bad name!", "role": "practitioner", "sign_in": "generated"}, "username", 422),
    ({"username": "family", "role": "practitioner", "sign_in": "generated"}, "username", 422),
    ({"username": "physio1", "role": "practitioner", "sign_in": "generated"}, "username", 409),
    ({"username": "new1", "role": "boss", "sign_in": "generated"}, "role", 422),
    ({"username": "new1", "role": "practitioner"}, "sign_in", 422),
    ({"username": "new1", "role": "practitioner", "sign_in": "chosen"}, "sign_in", 422),
    ({"username": "new1", "role": "practitioner", "sign_in": "none",
      "display_name": "x" * 201}, "display_name", 422),
    ({"role": "practitioner", "sign_in": "none"}, "username", 422),
])
def test_adding_staff_refuses_bad_input_naming_the_field(
        app: Flask, web: Api, data: dict[str, str], field: str, status: int) -> None:
    client = signed_in(app, "hcadmin")
    before = _accounts(app)
    response = _post(client, STAFF, data)
    assert response.status_code == status
    html = response.get_data(as_text=True)
    assert f'href="#f-{field}"' in html and 'aria-invalid="true"' in html
    assert _accounts(app) == before
    assert _audit(app, "user.add") == []


# --- changing a role, resetting a password, revoking tokens -----------------------


def test_a_role_change_applies_at_the_very_next_request(app: Flask, web: Api) -> None:
    nurse = signed_in(app, "nurse1")
    family = web.new_family("nurse1")
    assert nurse.get(f"/staff/families/{family}/consent/history").status_code == 403
    client = signed_in(app, "hcadmin")
    response = _post(client, f"{STAFF}/nurse1/role", {"role": "coordinator"})
    assert response.status_code == 302
    assert "nurse1 is now coordinator" in _text(client.get(STAFF))
    assert nurse.get(f"/staff/families/{family}/consent/history").status_code == 200
    [entry] = _audit(app, "user.role")
    assert entry.actor == "hcadmin"
    assert json.loads(entry.detail) == {"user": "nurse1", "from": "practitioner",
                                        "to": "coordinator"}


def test_a_bad_role_names_the_field_and_changes_nothing(app: Flask, web: Api) -> None:
    client = signed_in(app, "hcadmin")
    before = _accounts(app)
    response = _post(client, f"{STAFF}/nurse1/role", {"role": "superuser"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and 'href="#f-role-nurse1"' in html
    assert 'id="f-role-nurse1" name="role" aria-invalid="true"' in html
    assert _accounts(app) == before and _audit(app, "user.role") == []


def test_resetting_a_password_ends_sessions_and_shows_the_new_one_once(
        app: Flask, web: Api) -> None:
    nurse = signed_in(app, "nurse1")
    client = signed_in(app, "hcadmin")
    response = _post(client, f"{STAFF}/nurse1/password", {})
    assert response.status_code == 200
    new = re.search(r'<code class="secret">([^<]+)</code>', response.get_data(as_text=True))
    assert new is not None
    # The very next request of the old session is sent to sign in.
    assert nurse.get("/staff/").headers["Location"].startswith("/sign-in")
    assert sign_in(app.test_client(), "nurse1").status_code == 401  # type: ignore[attr-defined]
    assert sign_in(app.test_client(), "nurse1", new.group(1)).status_code == 302  # type: ignore[attr-defined]
    # API tokens are left to their own revocation.
    assert web.get("/api/v1/fields", "nurse1").status_code == 200
    [entry] = _audit(app, "user.password_reset")
    assert entry.actor == "hcadmin"
    assert json.loads(entry.detail) == {"user": "nurse1", "sessions_ended": 1}


def test_revoking_tokens_refuses_the_very_next_api_request(app: Flask, web: Api) -> None:
    assert web.get("/api/v1/fields", "nurse1").status_code == 200
    nurse = signed_in(app, "nurse1")
    client = signed_in(app, "hcadmin")
    response = _post(client, f"{STAFF}/nurse1/tokens/revoke", {})
    assert response.status_code == 302
    assert "1 API token of nurse1 revoked" in _text(client.get(STAFF))
    assert web.get("/api/v1/fields", "nurse1").status_code == 401
    assert nurse.get("/staff/").status_code == 200  # the web session is another matter
    [entry] = _audit(app, "token.revoke")
    assert (entry.actor, entry.role) == ("hcadmin", "admin")


def test_naming_a_staff_member_tells_the_family(app: Flask, web: Api) -> None:
    family = web.new_family("nurse1")
    receipt = web.sign(family, GRID)["receipt"]
    client = signed_in(app, "hcadmin")
    response = _post(client, f"{STAFF}/nurse1/name", {"display_name": " Kari  Nordmann "})
    assert response.status_code == 302
    assert _staff(app, "nurse1").display_name == "Kari Nordmann"
    page = _text(_family_client(app, receipt, "en").get("/family/consent"))
    assert "Your contact person: Kari Nordmann" in page
    assert _post(client, f"{STAFF}/nurse1/name", {"display_name": ""}).status_code == 302
    assert _staff(app, "nurse1").display_name is None
    entries = _audit(app, "user.name")
    assert [json.loads(e.detail) for e in entries] == [{"user": "nurse1", "named": True},
                                                       {"user": "nurse1", "named": False}]
    assert all("Kari" not in e.detail for e in entries)


def test_a_bad_name_names_the_field_and_changes_nothing(app: Flask, web: Api) -> None:
    client = signed_in(app, "hcadmin")
    before = _accounts(app)
    response = _post(client, f"{STAFF}/nurse1/name", {"display_name": "x" * 201})
    assert response.status_code == 422
    assert 'href="#f-display_name-nurse1"' in response.get_data(as_text=True)
    assert _accounts(app) == before and _staff(app, "nurse1").display_name is None
    assert _audit(app, "user.name") == []


# --- deactivating and handing over --------------------------------------------------


def test_deactivation_ends_web_sessions_and_tokens_at_the_next_request_and_hands_over(
        app: Flask, web: Api) -> None:
    family = web.new_family("nurse1")  # nurse1 is its contact worker
    nurse = signed_in(app, "nurse1")
    assert nurse.get(f"/staff/families/{family}").status_code == 200
    client = signed_in(app, "hcadmin")
    confirm = client.get(f"{STAFF}/nurse1/deactivate")
    assert "Sigrid Haugen (nurse2)" in _text(confirm)
    response = client.post(f"{STAFF}/nurse1/deactivate", data={
        "hand_over_to": "nurse2", "csrf_token": csrf_token(confirm.get_data(as_text=True))})
    assert response.status_code == 302
    assert ("nurse1 is deactivated: 1 sessions ended, 1 API tokens revoked; nurse2 is now "
            "contact worker for 1 families") in _text(client.get(STAFF))
    # The very next request, by browser and by token, is refused.
    after = nurse.get(f"/staff/families/{family}")
    assert after.status_code == 302 and after.headers["Location"].startswith("/sign-in")
    assert web.get(f"/api/v1/families/{family}", "nurse1").status_code == 401
    assert sign_in(app.test_client(), "nurse1").status_code == 401  # type: ignore[attr-defined]
    with app.extensions["onestory"].sessions() as session:
        [worker] = session.scalars(select(Involvement.contact_worker_id)).all()
    assert worker == _staff(app, "nurse2").id
    [entry] = _audit(app, "user.deactivate")
    assert (entry.actor, entry.agency_id) == ("hcadmin", "health-centre")
    assert json.loads(entry.detail)["hand_over_to"] == "nurse2"


@pytest.mark.parametrize(("hand_over_to", "status"), [
    ("physio1", 422),   # another agency's: like one who does not exist
    ("nobody", 422),
    ("nurse1", 422),    # themselves
])
def test_a_hand_over_to_someone_who_cannot_take_over_changes_nothing(
        app: Flask, web: Api, hand_over_to: str, status: int) -> None:
    web.new_family("nurse1")
    client = signed_in(app, "hcadmin")
    before = _accounts(app)
    response = _post(client, f"{STAFF}/nurse1/deactivate", {"hand_over_to": hand_over_to})
    assert response.status_code == status
    assert 'href="#f-hand_over_to"' in response.get_data(as_text=True)
    assert _accounts(app) == before
    assert web.get("/api/v1/fields", "nurse1").status_code == 200
    assert _audit(app, "user.deactivate") == []


def test_deactivating_an_inactive_colleague_as_hand_over_is_refused(app: Flask, web: Api
                                                                    ) -> None:
    client = signed_in(app, "hcadmin")
    assert _post(client, f"{STAFF}/nurse2/deactivate", {}).status_code == 302
    response = _post(client, f"{STAFF}/nurse1/deactivate", {"hand_over_to": "nurse2"})
    assert response.status_code == 422
    assert _staff(app, "nurse1").active


# --- the last admin -------------------------------------------------------------------


@pytest.mark.parametrize(("action", "data"), [
    ("hcadmin/role", {"role": "coordinator"}),
    ("hcadmin/deactivate", {}),
])
def test_the_last_admin_cannot_demote_or_deactivate_themselves(
        app: Flask, web: Api, action: str, data: dict[str, str]) -> None:
    client = signed_in(app, "hcadmin")
    before = _accounts(app)
    response = _post(client, f"{STAFF}/{action}", data)
    assert response.status_code == 409
    assert "last active admin of health-centre" in _text(response)
    assert _accounts(app) == before
    assert client.get(STAFF).status_code == 200  # still signed in, still admin


def test_with_a_second_admin_an_admin_may_step_down(app: Flask, web: Api) -> None:
    client = signed_in(app, "hcadmin")
    assert _post(client, f"{STAFF}/coord1/role", {"role": "admin"}).status_code == 302
    assert _post(client, f"{STAFF}/hcadmin/role", {"role": "coordinator"}).status_code == 302
    assert _staff(app, "hcadmin").role == "coordinator"
    assert client.get(STAFF).status_code == 403  # from the very next request
    # and the one admin left cannot step down in turn
    other = signed_in(app, "coord1")
    assert _post(other, f"{STAFF}/coord1/role", {"role": "coordinator"}).status_code == 409


# --- who may do any of it ---------------------------------------------------------------


ACTS = [
    ("GET", STAFF, {}),
    ("POST", STAFF, {"username": "new1", "role": "admin", "sign_in": "generated"}),
    ("POST", f"{STAFF}/nurse1/role", {"role": "admin"}),
    ("POST", f"{STAFF}/nurse1/password", {}),
    ("POST", f"{STAFF}/nurse1/name", {"display_name": "Someone Else"}),
    ("POST", f"{STAFF}/nurse1/tokens/revoke", {}),
    ("GET", f"{STAFF}/nurse1/deactivate", {}),
    ("POST", f"{STAFF}/nurse1/deactivate", {"hand_over_to": "nurse2"}),
]


def _act(client: FlaskClient, method: str, url: str, data: dict[str, str],
         token: str | None) -> Any:
    if method == "GET":
        return client.get(url)
    return client.post(url, data={**data, **({"csrf_token": token} if token else {})})


@pytest.mark.parametrize(("method", "url", "data"), ACTS)
def test_without_a_session_every_act_goes_to_sign_in(app: Flask, web: Api, method: str,
                                                     url: str, data: dict[str, str]) -> None:
    client = app.test_client()
    token = csrf_token(client.get("/sign-in").get_data(as_text=True))
    before = _accounts(app)
    response = _act(client, method, url, data, token)
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]
    assert _accounts(app) == before


@pytest.mark.parametrize("who", ["coord1", "nurse1", "auditor1"])
@pytest.mark.parametrize(("method", "url", "data"), ACTS)
def test_other_roles_are_refused_on_record(app: Flask, web: Api, who: str, method: str,
                                           url: str, data: dict[str, str]) -> None:
    client = signed_in(app, who)
    home = client.get("/", follow_redirects=True)
    token = csrf_token(home.get_data(as_text=True))
    before = _accounts(app)
    response = _act(client, method, url, data, token)
    assert response.status_code == 403
    assert _accounts(app) == before
    denied = _audit(app, "request.denied")
    assert denied and denied[-1].actor == who


@pytest.mark.parametrize(("method", "url", "data"), ACTS[2:])
def test_another_agencys_staff_member_is_like_one_who_does_not_exist(
        app: Flask, web: Api, method: str, url: str, data: dict[str, str]) -> None:
    client = signed_in(app, "admin1")  # the oversight office's admin
    token = csrf_token(client.get(STAFF).get_data(as_text=True))
    before = _accounts(app)
    theirs = _act(client, method, url, data, token)
    absent = _act(client, method, url.replace("nurse1", "nobody"), data, token)
    assert theirs.status_code == absent.status_code == 404
    assert _text(theirs).replace("nurse1", "X") == _text(absent).replace("nobody", "X")
    assert _accounts(app) == before
    assert web.get("/api/v1/fields", "nurse1").status_code == 200


@pytest.mark.parametrize(("method", "url", "data"), [a for a in ACTS if a[0] == "POST"])
def test_a_post_without_the_csrf_token_changes_nothing(app: Flask, web: Api, method: str,
                                                       url: str, data: dict[str, str]) -> None:
    client = signed_in(app, "hcadmin")
    before = _accounts(app)
    response = _act(client, method, url, data, None)
    assert response.status_code == 400
    assert _accounts(app) == before
    assert web.get("/api/v1/fields", "nurse1").status_code == 200


# --- the family is told who its contact person is ------------------------------------


def _family_client(app: Flask, receipt: dict[str, str], lang: str) -> FlaskClient:
    client = app.test_client()
    token = csrf_token(client.get(f"/family/?lang={lang}").get_data(as_text=True))
    response = client.post("/family/", data={"receipt_code": receipt["code"],
                                             "pin": receipt["pin"], "csrf_token": token})
    assert response.status_code == 302
    return client


@pytest.mark.parametrize(("lang", "before", "after", "heading"), [
    ("en", "Your contact person: nurse1, since 22 November 2026",
     "Your contact person: Sigrid Haugen, since 30 November 2026", "Who is helping you"),
    ("tr", "İletişim kişiniz: nurse1, 22 Kasım 2026 tarihinden beri",
     "İletişim kişiniz: Sigrid Haugen, 30 Kasım 2026 tarihinden beri",
     "Size kimler yardım ediyor"),
])
def test_the_family_page_names_the_new_contact_person_after_a_hand_over(
        app: Flask, web: Api, clock: Clock, lang: str, before: str, after: str,
        heading: str) -> None:
    family = web.new_family("nurse1")
    receipt = web.sign(family, GRID)["receipt"]
    client = _family_client(app, receipt, lang)
    page = _text(client.get("/family/consent"))
    assert heading in page and before in page and "Health centre" in page
    clock.advance(days=8)
    admin = signed_in(app, "hcadmin")
    assert _post(admin, f"{STAFF}/nurse1/deactivate",
                 {"hand_over_to": "nurse2"}).status_code == 302
    page = _text(_family_client(app, receipt, lang).get("/family/consent"))
    assert after in page and "nurse1" not in page


def test_a_coordinator_naming_another_contact_worker_dates_it(app: Flask, web: Api,
                                                               clock: Clock) -> None:
    family = web.new_family("nurse1")
    receipt = web.sign(family, GRID)["receipt"]
    clock.advance(days=3)
    coordinator = signed_in(app, "coord1")
    response = coordinator.post(f"/staff/families/{family}/contact-worker", data={
        "contact_worker": "nurse2",
        "csrf_token": csrf_token(coordinator.get(f"/staff/families/{family}").get_data(
            as_text=True))})
    assert response.status_code == 302
    page = _text(_family_client(app, receipt, "en").get("/family/consent"))
    assert "Your contact person: Sigrid Haugen, since 25 November 2026" in page
    clock.advance(days=3)  # naming the same one again keeps its day
    coordinator = signed_in(app, "coord1")
    again = coordinator.post(f"/staff/families/{family}/contact-worker", data={
        "contact_worker": "nurse2",
        "csrf_token": csrf_token(coordinator.get(f"/staff/families/{family}").get_data(
            as_text=True))})
    assert again.status_code == 302
    page = _text(_family_client(app, receipt, "en").get("/family/consent"))
    assert "since 25 November 2026" in page


def test_without_a_hand_over_the_family_is_told_no_contact_person_is_named(
        app: Flask, web: Api) -> None:
    family = web.new_family("nurse1")
    receipt = web.sign(family, GRID)["receipt"]
    admin = signed_in(app, "hcadmin")
    assert _post(admin, f"{STAFF}/nurse1/deactivate", {}).status_code == 302
    page = _text(_family_client(app, receipt, "en").get("/family/consent"))
    assert "No contact person is named yet." in page and "nurse1" not in page
    with app.extensions["onestory"].sessions() as session:
        assert session.scalars(select(Involvement.contact_worker_id)).all() == [None]


# --- agencies' names in the family's language ----------------------------------------


def test_agency_names_per_language_on_the_family_page_with_fallback(
        app: Flask, web: Api, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "agency", "set", "health-centre", "--name-in", "tr=Sağlık ocağı",
                 "--name-in", "ar=المركز الصحي")
    assert_ok(result)
    assert result.out.strip() == ("agency health-centre names in other languages: "
                                  "ar: المركز الصحي; tr: Sağlık ocağı")
    family = web.new_family("nurse1")
    receipt = web.sign(family, GRID)["receipt"]
    turkish = _text(_family_client(app, receipt, "tr").get("/family/consent"))
    assert "Sağlık ocağı" in turkish and "Health centre" not in turkish
    assert "Physiotherapy" in turkish  # no Turkish name given: its own
    arabic = _text(_family_client(app, receipt, "ar").get("/family/consent"))
    assert "المركز الصحي" in arabic
    norwegian = _text(_family_client(app, receipt, "nb").get("/family/consent"))
    assert "Health centre" in norwegian  # no Norwegian name: the agency's own
    # Removing a name falls back again.
    assert_ok(run(capsys, "agency", "set", "health-centre", "--name-in", "tr="))
    turkish = _text(_family_client(app, receipt, "tr").get("/family/consent"))
    assert "Health centre" in turkish and "Sağlık ocağı" not in turkish
    assert len(_audit(app, "agency.names")) == 2


@pytest.mark.parametrize(("args", "says"), [
    (["agency", "set", "nowhere", "--name-in", "tr=X"], "no agency 'nowhere'"),
    (["agency", "set", "health-centre", "--name-in", "turkish=X"], "invalid language"),
    (["agency", "set", "health-centre", "--name-in", "trX"], "use LANG=NAME"),
    (["agency", "set", "health-centre", "--name-in", "tr=" + "x" * 201], "1-200"),
    (["agency", "set", "health-centre"], "nothing to change"),
])
def test_agency_set_refuses_in_one_line_and_changes_nothing(
        app: Flask, web: Api, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], args: list[str], says: str) -> None:
    message = assert_one_line_failure(run(capsys, *args))
    assert says in message
    with app.extensions["onestory"].engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM agency_names")).scalar() == 0


def test_user_add_takes_a_display_name(app: Flask, web: Api, cli_env: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert_ok(run(capsys, "user", "add", "nurse9", "--agency", "health-centre", "--role",
                  "practitioner", "--display-name", "  Berit   Ås "))
    assert _staff(app, "nurse9").display_name == "Berit Ås"


def test_the_demo_names_its_agencies_in_the_family_languages_and_its_staff_by_name(
        app: Flask, clock: Clock) -> None:
    from coordination import demo

    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        demo.seed(session, rt.vault, clock())
        turkish, arabic = accounts.names_in(session, "tr"), accounts.names_in(session, "ar")
        norwegian = accounts.names_in(session, "nb")
        assert turkish["health-centre"] == "Aile merkezi sağlık istasyonu"
        assert arabic["ecec"] == "روضة عباد الشمس"
        assert norwegian["child-protection"] == "Barnevernet"
        # The NGO keeps its own name in every language.
        assert turkish["harbour"] == norwegian["harbour"] == "Harbour drop-in (low-threshold NGO)"
        nurse = session.scalars(select(Staff).where(Staff.username == "nurse1")).one()
        assert accounts.staff_name(nurse) == "Kari Nordmann"
        admins = session.scalars(select(Staff.username).where(
            Staff.agency_id == "health-centre", Staff.role == "admin")).all()
        assert admins == ["hcadmin1"]


def test_two_admins_demoting_each_other_at_once_leave_one_admin(app: Flask, web: Api,
                                                                clock: Clock) -> None:
    """Each locks the agency's admins in one order first: one demotion
    goes through, the other then finds itself the last admin's and is
    refused (PostgreSQL waits on the lock; SQLite's stale write is run
    again on what the first left)."""
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        accounts.add_staff(session, "hcadmin2", "health-centre", "admin", None, clock())
        ids = dict(session.execute(select(Staff.username, Staff.id)).tuples().all())

    def admin(username: str) -> Actor:
        return Actor(username=username, staff_id=ids[username], agency_id="health-centre",
                     role=Role.ADMIN)

    start = threading.Barrier(2)

    def demote(by: str, whom: str) -> str:
        with rt.sessions() as session:
            start.wait()
            try:
                retry_on_conflict(session, lambda: accounts.change_role(
                    session, whom, "coordinator", clock(), by=admin(by)))
            except Conflict:
                return "refused"
            return "done"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(lambda pair: demote(*pair),
                                   [("hcadmin", "hcadmin2"), ("hcadmin2", "hcadmin")]))
    assert outcomes == ["done", "refused"]
    with rt.sessions() as session:
        left = session.scalars(select(Staff.username).where(
            Staff.agency_id == "health-centre", Staff.role == "admin", Staff.active)).all()
    assert len(left) == 1
