"""Odd input on web routes gets a clear answer and changes nothing — never a 500."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.conftest import Api
from tests.web import csrf_token, set_passwords, sign_in, signed_in

HUGE = "9" * 30


@pytest.fixture
def web(app: Flask, api: Api) -> Api:
    set_passwords(app)
    return api


def test_hiding_an_entry_number_no_database_holds(app: Flask, web: Api) -> None:
    family_id = web.new_family(who="coord1")
    client = signed_in(app, "coord1")
    token = csrf_token(client.get(f"/staff/families/{family_id}/access-log").get_data(
        as_text=True))
    response = client.post(f"/staff/families/{family_id}/access-log/{HUGE}/hide",
                           data={"csrf_token": token})
    assert response.status_code == 302  # back to the log, with the error shown
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"no entry {HUGE} in this family" in shown
    api_answer = web.post(f"/api/v1/families/{family_id}/access-log/{HUGE}/hide", "coord1",
                          json={})
    assert api_answer.status_code == 422


@pytest.mark.parametrize("query", [f"cursor={HUGE}", "family=a%00b", "user=%00",
                                   "agency=x%00"])
def test_audit_filters_no_database_can_hold(app: Flask, web: Api, query: str) -> None:
    client = signed_in(app, "auditor1")
    assert client.get(f"/audit/?{query}").status_code == 422
    # The export takes no cursor (it exports every match) and says so by ignoring it.
    export = client.get(f"/audit/export.csv?{query}").status_code
    assert export == (200 if query.startswith("cursor") else 422)
    assert web.get(f"/api/v1/audit?{query}", "auditor1").status_code == 422


@pytest.mark.parametrize("target", ["/staff/\r\nSet-Cookie: x=1", "/staff/\x00", "/\t/evil"])
def test_control_characters_in_next(app: Flask, web: Api, target: str) -> None:
    client = app.test_client()
    assert client.get("/sign-in", query_string={"next": target}).status_code == 200
    response = sign_in(client, "nurse1", next=target)
    if "\x00" in target:  # refused as a form value like every NUL
        assert response.status_code == 422  # type: ignore[attr-defined]
        return
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert response.headers["Location"] == "/staff/"  # type: ignore[attr-defined]


# Date bounds at the ends of the calendar: the "to" date counts its whole day,
# and the day after 9999-12-31 does not exist.
EDGE_DATES = [
    ("until=9999-12-31", 422, 200),
    ("since=0001-01-01&until=9999-12-31", 422, 200),
    ("since=9999-12-31", 200, 200),
    ("since=0001-01-01", 200, 200),
    ("until=0001-01-01", 200, 200),
    ("until=9999-12-31T23:59:59Z", 200, 200),
    ("since=0001-01-01T00:00:00Z", 200, 200),
    ("since=2026-01-01T00:00:00+14:00Z", 422, 422),  # a UTC time ends in Z, with no offset
]


@pytest.mark.parametrize(("query", "page", "api_status"), EDGE_DATES)
def test_audit_dates_at_the_ends_of_the_calendar(app: Flask, web: Api, query: str, page: int,
                                                 api_status: int) -> None:
    client = signed_in(app, "auditor1")
    quoted = query.replace("+", "%2B")
    shown = client.get(f"/audit/?{quoted}")
    assert shown.status_code == page, shown.get_data(as_text=True)[-500:]
    assert client.get(f"/audit/export.csv?{quoted}").status_code == page
    if page == 422 and "until=9999-12-31" in query:
        assert "9999-12-30" in shown.get_data(as_text=True)  # says what it takes
    answer = web.get(f"/api/v1/audit?{quoted}", "auditor1")
    assert answer.status_code == api_status, answer.get_json()


@pytest.mark.parametrize("since", ["0001-01-01", "0999-06-01", "0999-06-01T00:00:00Z"])
def test_audit_since_an_early_year_finds_every_entry(app: Flask, web: Api, since: str) -> None:
    """Years before 1000 are compared as four digits, like the entries' own times."""
    everything = web.get("/api/v1/audit?limit=500", "auditor1").get_json()["items"]
    assert everything
    found = web.get(f"/api/v1/audit?limit=500&since={since}", "auditor1").get_json()["items"]
    assert {i["seq"] for i in found} >= {i["seq"] for i in everything}
    client = signed_in(app, "auditor1")
    export = client.get(f"/audit/export.csv?since={since}").get_data(as_text=True)
    assert len(export.splitlines()) > len(everything)
