"""Bad input on every /api/v1 route that takes a body or a query, on both databases.

For each route: bodies that are not JSON or not an object (400), too large
(413), and JSON objects with wrong types, unknown keys, unknown agency or
field ids and out-of-range values (422, `errors` naming the key). Every
answer is `application/problem+json` with type/title/status/detail/errors,
never a 500, and nothing is stored. The contract's check order is checked
with invalid bodies: 400/413 before 401, 401 before 403, 403 (role) before
404, 404 before 403 (entitlement), and all of those before 422; 422 before 409.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest
from flask import Flask
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from consent.tables import ConsentCellRow, ConsentFormRow, ConsentReceipt
from coordination.model import (
    Agency,
    ApiToken,
    Entry,
    Family,
    Involvement,
    Member,
    Staff,
)
from tests.conftest import Api, consent_body

PROBLEM = "application/problem+json"
PROBLEM_KEYS = {"type", "title", "status", "detail", "errors"}
LIMIT = 64 * 1024
GRANTS = {
    "health-centre": ["involvement", "contact", "health", "household"],
    "physio": ["involvement", "health"],
}
NO_SUCH_FAMILY = "fam_00000000000000000000"
MODELS: tuple[Any, ...] = (Agency, Staff, ApiToken, Family, Member, Involvement, Entry,
                           ConsentFormRow, ConsentCellRow, ConsentReceipt)


# --- arranging ------------------------------------------------------------------------


@dataclass
class World:
    """A family recorded by nurse1 (health centre, involved) whose form grants
    physiotherapy `involvement` and `health`: physio sees the family but is not
    involved; ecec, cps and the NGO cannot see it."""

    family: str
    receipt: dict[str, str]


@pytest.fixture
def world(api: Api) -> World:
    family = api.new_family("nurse1", display_name="Test Family", birth_date="2020-05-01",
                            address="Storgata 1", languages=["tr"])
    form = api.sign(family, GRANTS)
    return World(family, form["receipt"])


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # "{family}" is replaced by the world's family id
    who: str | None  # a caller who may use the route with a valid body


ROUTES: dict[str, Route] = {
    "create": Route("POST", "/api/v1/families", "nurse1"),
    "entry": Route("POST", "/api/v1/families/{family}/entries", "nurse1"),
    "refer": Route("POST", "/api/v1/families/{family}/involvements", "coord1"),
    "close": Route("PATCH", "/api/v1/families/{family}/involvements/health-centre", "coord1"),
    "consent": Route("PUT", "/api/v1/families/{family}/consent", "coord1"),
    "revoke": Route("POST", "/api/v1/families/{family}/consent/revoke", "coord1"),
    "session": Route("POST", "/api/v1/family/session", None),
}
FAMILY_ROUTES = ["entry", "refer", "close", "consent", "revoke"]


def valid_body(route: str, world: World) -> dict[str, Any]:
    """A body the route accepts (see test_valid_bodies_are_accepted)."""
    bodies: dict[str, dict[str, Any]] = {
        "create": {"display_name": "New Family", "birth_date": "2021-01-02",
                   "address": "Kirkeveien 2", "national_id": "01012112345",
                   "languages": ["ar", "nb"],
                   "members": [{"name": "Sara", "relation": "mother",
                                "birth_date": "1990-03-04"}]},
        "entry": {"field": "health", "value": "Growth on track."},
        "refer": {"agency": "physio"},
        "close": {"status": "closed"},
        "consent": consent_body({"health-centre": ["involvement", "health"]},
                                interpreter_language="tr", witness="coord1"),
        "revoke": {"agency": "physio"},
        "session": {"receipt_code": world.receipt["code"], "pin": world.receipt["pin"]},
    }
    return bodies[route]


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()


def mutate(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def send(api: Api, method: str, path: str, who: str | None, raw: bytes) -> TestResponse:
    headers = {}
    if who is not None:
        headers["Authorization"] = f"Bearer {api.tokens.get(who, who)}"
    response: TestResponse = api.client.open(path, method=method, data=raw, headers=headers,
                                             content_type="application/json")
    return response


def send_route(api: Api, world: World, route: str, raw: bytes, who: Any = DROP,
               family: str | None = None) -> TestResponse:
    spec = ROUTES[route]
    path = spec.path.format(family=family or world.family)
    return send(api, spec.method, path, spec.who if who is DROP else who, raw)


def snapshot(app: Flask) -> dict[str, Any]:
    """Row counts of every table, and the rows a bad request might change in place."""
    with app.extensions["onestory"].sessions() as session:
        state: dict[str, Any] = {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in MODELS
        }
        state["involvement rows"] = sorted(
            tuple(row) for row in session.execute(select(
                Involvement.family_id, Involvement.agency_id, Involvement.status,
                Involvement.contact_worker_id, Involvement.since, Involvement.updated_at))
        )
        state["receipt rows"] = sorted(
            tuple(row) for row in session.execute(select(
                ConsentReceipt.family_id, ConsentReceipt.code_hash, ConsentReceipt.pin_hash,
                ConsentReceipt.failed_attempts, ConsentReceipt.not_before))
        )
        state["newest form"] = session.scalar(select(func.max(ConsentFormRow.version)))
    return state


def named(errors: dict[str, list[str]], key: str) -> bool:
    """`errors` names `key` itself or something inside it (`members.0.name`)."""
    return any(k == key or k.startswith(key + ".") for k in errors)


def assert_problem(response: TestResponse, status: int,
                   keys: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    text = response.get_data(as_text=True)
    assert response.status_code == status, f"{response.status_code}: {text[:500]}"
    assert response.mimetype == PROBLEM, response.mimetype
    body: dict[str, Any] = json.loads(text)
    assert set(body) >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["errors"], dict)
    for key in keys:
        assert named(body["errors"], key), f"{key!r} not named in {body['errors']}"
    return body


# --- controls: the valid bodies the bad ones are made from --------------------------


@pytest.mark.parametrize("route", list(ROUTES))
def test_valid_bodies_are_accepted(api: Api, world: World, route: str) -> None:
    response = send_route(api, world, route, encode(valid_body(route, world)))
    assert response.status_code in (200, 201), response.get_json()


# --- 400: not JSON, not an object; NaN and Infinity are not JSON ---------------------

NOT_JSON: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("open-brace", b"{"),
    ("nul", b"nul"),
    ("invalid-utf8", b"\xff\xfe{}"),
    ("invalid-utf8-in-string", b'{"display_name": "\xc3"}'),
    ("nul-byte", b"\x00"),
    ("form-encoded", b"display_name=A&languages=tr"),
    ("single-quotes", b"{'display_name': 'A'}"),
    ("trailing-comma", b'{"display_name": "A",}'),
    ("key-without-value", b'{"display_name"}'),
    ("two-documents", b'{"display_name": "A"} {}'),
    ("truncated", b'{"display_name": "A"'),
    ("deep-unclosed-nesting", b"[" * 60000),
    ("NaN", b'{"display_name": NaN}'),
    ("Infinity", b'{"display_name": Infinity}'),
    ("-Infinity", b'{"display_name": -Infinity}'),
    ("nested-NaN", b'{"value": [1, NaN]}'),
]
NOT_OBJECT: list[tuple[str, bytes]] = [
    ("empty-list", b"[]"),
    ("list-of-object", b'[{"display_name": "A"}]'),
    ("string", b'"display_name"'),
    ("number", b"42"),
    ("float", b"-1.5e3"),
    ("null", b"null"),
    ("true", b"true"),
]


@pytest.mark.parametrize("route", list(ROUTES))
def test_not_json_or_not_object_is_400(api: Api, world: World, subtests: pytest.Subtests,
                                       route: str) -> None:
    for name, raw in NOT_JSON + NOT_OBJECT:
        with subtests.test(msg=name):
            before = snapshot(api.client.application)
            assert_problem(send_route(api, world, route, raw), 400)
            assert snapshot(api.client.application) == before


UNPARSEABLE_JSON: list[tuple[str, bytes]] = [
    # a JSON object nested deeper than the parser's recursion limit (still < 64 KiB)
    ("deep-nesting", b'{"x": ' + b"[" * 20000 + b"]" * 20000 + b"}"),
    # an integer with more digits than Python converts by default
    ("5000-digit-number", b'{"x": 1' + b"0" * 5000 + b"}"),
]


@pytest.mark.parametrize("route", list(ROUTES))
def test_json_the_parser_cannot_hold_is_refused_not_500(
    api: Api, world: World, subtests: pytest.Subtests, route: str,
) -> None:
    """Valid JSON objects the parser cannot represent: 400 (or 422), never 500."""
    for name, raw in UNPARSEABLE_JSON:
        with subtests.test(msg=name):
            before = snapshot(api.client.application)
            response = send_route(api, world, route, raw)
            assert response.status_code in (400, 422), response.get_data(as_text=True)[:300]
            assert_problem(response, response.status_code)
            assert snapshot(api.client.application) == before


def _nested(depth: int) -> list[tuple[str, bytes]]:
    return [
        ("lists", b'{"x": ' + b"[" * depth + b"]" * depth + b"}"),
        ("objects", b'{"x": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"),
        ("mixed", b'{"x": ' + b'[{"a": ' * (depth // 2) + b"1" + b"}]" * (depth // 2) + b"}"),
    ]


@pytest.mark.parametrize("depth", [40, 500, 700, 990])
@pytest.mark.parametrize("route", list(ROUTES))
def test_deeply_nested_json_is_400_without_a_traceback(
    api: Api, world: World, subtests: pytest.Subtests, caplog: pytest.LogCaptureFixture,
    route: str, depth: int,
) -> None:
    """JSON nested deeper than any body OneStory takes is refused as a bad body
    (400, before the token is even looked at), never a 500 with a RecursionError
    logged at length."""
    for name, raw in _nested(depth):
        with subtests.test(msg=name):
            caplog.clear()
            before = snapshot(api.client.application)
            for who in (DROP, None):  # with the route's caller, and with no token
                body = assert_problem(send_route(api, world, route, raw, who=who), 400)
                assert body["type"] == "urn:onestory:problem:bad-request"
                assert "deep" in body["detail"]
            assert snapshot(api.client.application) == before
            assert not [r for r in caplog.records if r.exc_info or r.levelno >= 40], \
                [r.getMessage()[:200] for r in caplog.records]


def test_json_of_a_sane_depth_is_still_read(api: Api, world: World) -> None:
    """The depth limit leaves room for every body the API takes (members'
    lists of objects, the consent grid)."""
    response = send_route(api, world, "create", encode(
        {"display_name": "Deep Enough", "members": [{"name": "A", "relation": "child"}]}))
    assert response.status_code == 201, response.get_json()


def test_deeply_nested_json_on_web_forms_is_not_500(app: Flask, api: Api,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The web pages take forms, not JSON: a deep JSON body sent to them is
    refused like any other post without a form token, never a 500."""
    client = app.test_client()
    for path in ("/family/", "/sign-in"):
        for _name, raw in _nested(990):
            response = client.post(path, data=raw, content_type="application/json")
            assert response.status_code in (400, 422), (path, response.status_code)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= 40]


# --- 413: over 64 KiB ----------------------------------------------------------------


def padded(size: int, key: str = "display_name") -> bytes:
    """A JSON object of exactly `size` bytes."""
    head, tail = b'{"' + key.encode() + b'": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize("route", list(ROUTES))
def test_body_over_64_kib_is_413(api: Api, world: World, route: str) -> None:
    raw = padded(LIMIT + 1)
    assert len(raw) == LIMIT + 1
    before = snapshot(api.client.application)
    assert_problem(send_route(api, world, route, raw), 413)
    assert_problem(send_route(api, world, route, b"[" + b"1," * LIMIT + b"1]"), 413)
    assert_problem(send_route(api, world, route, b"{" * (LIMIT + 1)), 413)
    assert snapshot(api.client.application) == before


@pytest.mark.parametrize("route", ["create", "session"])
def test_chunked_body_over_64_kib_is_413(api: Api, world: World, route: str) -> None:
    """Without a Content-Length (chunked upload behind a server that terminates the input)
    the limit still holds."""
    spec = ROUTES[route]
    before = snapshot(api.client.application)
    headers = {"Authorization": f"Bearer {api.tokens['nurse1']}"} if spec.who else {}
    response = api.client.open(
        spec.path, method=spec.method, headers=headers, content_type="application/json",
        input_stream=io.BytesIO(padded(LIMIT + 1)),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_problem(response, 413)
    assert snapshot(api.client.application) == before


def test_body_of_exactly_64_kib_is_read(api: Api, world: World) -> None:
    """The limit is "over 64 KiB": a body of exactly 65 536 bytes is parsed (and here
    refused for its over-long value, not for its size)."""
    raw = padded(LIMIT)
    assert len(raw) == LIMIT
    before = snapshot(api.client.application)
    response = send_route(api, world, "create", raw)
    assert_problem(response, 422, ["display_name"])
    assert snapshot(api.client.application) == before


# --- 422: wrong types, unknown keys and ids, values out of range ----------------------

LONG = "x" * 201


class Case(NamedTuple):
    route: str
    changes: dict[str, Any]
    keys: tuple[str, ...]
    name: str


def case(route: str, changes: dict[str, Any], *keys: str, id: str) -> Case:  # noqa: A002
    return Case(route, changes, keys, f"{route}-{id}")


def members(n: int) -> list[dict[str, str]]:
    return [{"name": f"Child {i}", "relation": "child"} for i in range(n)]


INVALID = [
    # POST /families
    case("create", {"display_name": DROP}, "display_name", id="name-missing"),
    case("create", {"display_name": 5}, "display_name", id="name-number"),
    case("create", {"display_name": None}, "display_name", id="name-null"),
    case("create", {"display_name": ["A"]}, "display_name", id="name-list"),
    case("create", {"display_name": {"first": "A"}}, "display_name", id="name-object"),
    case("create", {"display_name": True}, "display_name", id="name-bool"),
    case("create", {"display_name": ""}, "display_name", id="name-empty"),
    case("create", {"display_name": " \t\n"}, "display_name", id="name-blank"),
    case("create", {"display_name": LONG}, "display_name", id="name-201"),
    case("create", {"birth_date": "2026-13-01"}, "birth_date", id="birth-month-13"),
    case("create", {"birth_date": "2026-02-30"}, "birth_date", id="birth-feb-30"),
    case("create", {"birth_date": "22/11/2026"}, "birth_date", id="birth-dmy"),
    case("create", {"birth_date": "2021-1-5"}, "birth_date", id="birth-no-zero-pad"),
    case("create", {"birth_date": "2021-01-05\n"}, "birth_date", id="birth-newline"),
    case("create", {"birth_date": "2021-01-05T00:00:00Z"}, "birth_date", id="birth-datetime"),
    case("create", {"birth_date": "\u0662\u0660\u0662\u0661-\u0660\u0661-\u0660\u0665"},
         "birth_date", id="birth-arabic-digits"),
    case("create", {"birth_date": ""}, "birth_date", id="birth-empty"),
    case("create", {"birth_date": 20210105}, "birth_date", id="birth-number"),
    case("create", {"birth_date": None}, "birth_date", id="birth-null"),
    case("create", {"birth_date": "2999-01-01"}, "birth_date", id="birth-future"),
    case("create", {"address": 5}, "address", id="address-number"),
    case("create", {"address": ""}, "address", id="address-empty"),
    case("create", {"address": "x" * 501}, "address", id="address-501"),
    case("create", {"national_id": 1234567}, "national_id", id="national-id-number"),
    case("create", {"national_id": ""}, "national_id", id="national-id-empty"),
    case("create", {"national_id": "1" * 65}, "national_id", id="national-id-65"),
    case("create", {"languages": "tr"}, "languages", id="languages-string"),
    case("create", {"languages": {"tr": True}}, "languages", id="languages-object"),
    case("create", {"languages": [1]}, "languages", id="languages-number"),
    case("create", {"languages": ["TR"]}, "languages", id="languages-upper"),
    case("create", {"languages": ["turkish"]}, "languages", id="languages-word"),
    case("create", {"languages": [""]}, "languages", id="languages-empty-code"),
    case("create", {"languages": ["tr\n"]}, "languages", id="languages-newline"),
    case("create", {"languages": ["tr"] * 21}, "languages", id="languages-21"),
    case("create", {"members": "Sara"}, "members", id="members-string"),
    case("create", {"members": {"name": "Sara"}}, "members", id="members-object"),
    case("create", {"members": [1]}, "members", id="members-number"),
    case("create", {"members": [None]}, "members", id="members-null-item"),
    case("create", {"members": [{"name": "Sara"}]}, "members.0.relation",
         id="member-relation-missing"),
    case("create", {"members": [{"name": "", "relation": "mother"}]}, "members.0.name",
         id="member-name-empty"),
    case("create", {"members": [{"name": 5, "relation": "mother"}]}, "members.0.name",
         id="member-name-number"),
    case("create", {"members": [{"name": "Sara", "relation": "x" * 51}]},
         "members.0.relation", id="member-relation-51"),
    case("create", {"members": [{"name": "Sara", "relation": "mother",
                                 "birth_date": "2026-13-01"}]},
         "members.0.birth_date", id="member-birth-month-13"),
    case("create", {"members": [{"name": "Sara", "relation": "mother",
                                 "birth_date": "2999-01-01"}]},
         "members.0.birth_date", id="member-birth-future"),
    case("create", {"members": [{"name": "Sara", "relation": "mother", "age": 30}]},
         "members.0.age", id="member-unknown-key"),
    case("create", {"members": members(31)}, "members", id="members-31"),
    case("create", {"nickname": "A"}, "nickname", id="unknown-key"),
    case("create", {"id": "fam_0123"}, "id", id="unknown-key-id"),
    case("create", {"residence_status": "asylum seeker"}, "residence_status",
         id="residence-status"),
    case("create", {"immigration_status": "undocumented"}, "immigration_status",
         id="immigration-status"),
    # POST /families/{id}/entries
    case("entry", {"field": DROP}, "field", id="field-missing"),
    case("entry", {"value": DROP}, "value", id="value-missing"),
    case("entry", {"field": 5}, "field", id="field-number"),
    case("entry", {"field": ["health"]}, "field", id="field-list"),
    case("entry", {"field": None}, "field", id="field-null"),
    case("entry", {"field": ""}, "field", id="field-empty"),
    case("entry", {"field": "x" * 65}, "field", id="field-65"),
    case("entry", {"field": "nope"}, "field", id="field-unknown"),
    case("entry", {"field": "Health"}, "field", id="field-wrong-case"),
    case("entry", {"field": "involvement"}, "field", id="field-involvement"),
    case("entry", {"value": 5}, "value", id="value-number"),
    case("entry", {"value": ["a"]}, "value", id="value-list"),
    case("entry", {"value": {"text": "a"}}, "value", id="value-object"),
    case("entry", {"value": None}, "value", id="value-null"),
    case("entry", {"value": True}, "value", id="value-bool"),
    case("entry", {"value": ""}, "value", id="value-empty"),
    case("entry", {"value": "x" * 10001}, "value", id="value-10001"),
    case("entry", {"author": "someone"}, "author", id="unknown-key"),
    case("entry", {"agency": "physio"}, "agency", id="unknown-key-agency"),
    case("entry", {"residence_status": "x"}, "residence_status", id="residence-status"),
    # POST /families/{id}/involvements
    case("refer", {"agency": DROP}, "agency", id="agency-missing"),
    case("refer", {"agency": 5}, "agency", id="agency-number"),
    case("refer", {"agency": ["physio"]}, "agency", id="agency-list"),
    case("refer", {"agency": None}, "agency", id="agency-null"),
    case("refer", {"agency": ""}, "agency", id="agency-empty"),
    case("refer", {"agency": "x" * 65}, "agency", id="agency-65"),
    case("refer", {"agency": "nope"}, "agency", id="agency-unknown"),
    case("refer", {"agency": "Physio"}, "agency", id="agency-wrong-case"),
    case("refer", {"contact_worker": 5}, "contact_worker", id="worker-number"),
    case("refer", {"contact_worker": ""}, "contact_worker", id="worker-empty"),
    case("refer", {"contact_worker": LONG}, "contact_worker", id="worker-201"),
    # only the referred agency names its contact worker, even one of its own staff
    case("refer", {"contact_worker": "physio1"}, "contact_worker", id="worker-of-that-agency"),
    case("refer", {"contact_worker": "coord1"}, "contact_worker", id="worker-of-the-referrer"),
    case("refer", {"status": "active"}, "status", id="unknown-key-status"),
    case("refer", {"since": "2026-01-01"}, "since", id="unknown-key-since"),
    case("refer", {"immigration_status": "x"}, "immigration_status", id="immigration-status"),
    # PATCH /families/{id}/involvements/{agency}
    case("close", {"status": DROP}, "status", id="empty-body"),
    case("close", {"status": "open"}, "status", id="status-open"),
    case("close", {"status": "active"}, "status", id="status-active"),
    case("close", {"status": "Closed"}, "status", id="status-capital"),
    case("close", {"status": ""}, "status", id="status-empty"),
    case("close", {"status": 0}, "status", id="status-number"),
    case("close", {"status": True}, "status", id="status-bool"),
    case("close", {"status": None}, "status", id="status-null"),
    case("close", {"status": ["closed"]}, "status", id="status-list"),
    case("close", {"contact_worker": 5}, "contact_worker", id="worker-number"),
    case("close", {"contact_worker": ""}, "contact_worker", id="worker-empty"),
    case("close", {"contact_worker": LONG}, "contact_worker", id="worker-201"),
    case("close", {"contact_worker": "physio1"}, "contact_worker", id="worker-of-another-agency"),
    case("close", {"contact_worker": "nobody"}, "contact_worker", id="worker-unknown"),
    case("close", {"contact_worker": "Nurse1"}, "contact_worker", id="worker-wrong-case"),
    case("close", {"agency": "physio"}, "agency", id="unknown-key-agency"),
    case("close", {"since": "2026-01-01"}, "since", id="unknown-key-since"),
    case("close", {"residence_status": "x"}, "residence_status", id="residence-status"),
    # PUT /families/{id}/consent
    case("consent", {"signed_by": DROP}, "signed_by", id="signed-by-missing"),
    case("consent", {"signed_by": 5}, "signed_by", id="signed-by-number"),
    case("consent", {"signed_by": ""}, "signed_by", id="signed-by-empty"),
    case("consent", {"signed_by": LONG}, "signed_by", id="signed-by-201"),
    case("consent", {"signed_on": DROP}, "signed_on", id="signed-on-missing"),
    case("consent", {"signed_on": "2026-13-01"}, "signed_on", id="signed-on-month-13"),
    case("consent", {"signed_on": "22/11/2026"}, "signed_on", id="signed-on-dmy"),
    case("consent", {"signed_on": "2026-11-2"}, "signed_on", id="signed-on-no-zero-pad"),
    case("consent", {"signed_on": 20261122}, "signed_on", id="signed-on-number"),
    case("consent", {"signed_on": "2026-11-23"}, "signed_on", id="signed-on-future"),
    case("consent", {"method": DROP}, "method", id="method-missing"),
    case("consent", {"method": "fax"}, "method", id="method-unknown"),
    case("consent", {"method": "Paper"}, "method", id="method-capital"),
    case("consent", {"method": 1}, "method", id="method-number"),
    case("consent", {"method": ["paper"]}, "method", id="method-list"),
    case("consent", {"witness": 5}, "witness", id="witness-number"),
    case("consent", {"witness": ""}, "witness", id="witness-empty"),
    case("consent", {"witness": "x" * 65}, "witness", id="witness-65"),
    case("consent", {"interpreter_language": "turkish"}, "interpreter_language",
         id="interpreter-word"),
    case("consent", {"interpreter_language": 5}, "interpreter_language",
         id="interpreter-number"),
    case("consent", {"interpreter_language": ""}, "interpreter_language",
         id="interpreter-empty"),
    case("consent", {"interpreter_language": "tr\n"}, "interpreter_language",
         id="interpreter-newline"),
    case("consent", {"purpose": DROP}, "purpose", id="purpose-missing"),
    case("consent", {"purpose": ""}, "purpose", id="purpose-empty"),
    case("consent", {"purpose": "x" * 501}, "purpose", id="purpose-501"),
    case("consent", {"purpose": ["support"]}, "purpose", id="purpose-list"),
    case("consent", {"legal_basis": ""}, "legal_basis", id="legal-basis-empty"),
    case("consent", {"legal_basis": "x" * 65}, "legal_basis", id="legal-basis-65"),
    case("consent", {"legal_basis": None}, "legal_basis", id="legal-basis-null"),
    # a consent form's legal basis is consent; the other GDPR bases are duty grants
    case("consent", {"legal_basis": "vital_interest"}, "legal_basis", id="legal-basis-vital"),
    case("consent", {"legal_basis": "legal_obligation"}, "legal_basis", id="legal-basis-duty"),
    case("consent", {"legal_basis": "Consent"}, "legal_basis", id="legal-basis-capital"),
    case("consent", {"valid_until": DROP}, "valid_until", id="valid-until-missing"),
    case("consent", {"valid_until": "2027-13-01"}, "valid_until", id="valid-until-month-13"),
    case("consent", {"valid_until": "22/11/2027"}, "valid_until", id="valid-until-dmy"),
    case("consent", {"valid_until": "2027-11-22\n"}, "valid_until", id="valid-until-newline"),
    case("consent", {"valid_until": "2020-01-01"}, "valid_until", id="valid-until-past"),
    case("consent", {"valid_until": None}, "valid_until", id="valid-until-null"),
    case("consent", {"grants": DROP}, "grants", id="grants-missing"),
    case("consent", {"grants": None}, "grants", id="grants-null"),
    case("consent", {"grants": []}, "grants", id="grants-list"),
    case("consent", {"grants": "physio"}, "grants", id="grants-string"),
    case("consent", {"grants": {"physio": "health"}}, "grants", id="grants-string-column"),
    case("consent", {"grants": {"physio": [1]}}, "grants", id="grants-number-field"),
    case("consent", {"grants": {"physio": [None]}}, "grants", id="grants-null-field"),
    case("consent", {"grants": {"physio": {"health": True}}}, "grants",
         id="grants-object-column"),
    case("consent", {"grants": {"": ["health"]}}, "grants", id="grants-empty-agency"),
    case("consent", {"grants": {"physio": [""]}}, "grants", id="grants-empty-field"),
    case("consent", {"grants": {"nope": ["health"]}}, "grants.nope", id="grants-unknown-agency"),
    case("consent", {"grants": {"physio": ["health", "nope"]}}, "grants.physio",
         id="grants-unknown-field"),
    case("consent", {"grants": {"Physio": ["health"]}}, "grants.Physio",
         id="grants-agency-wrong-case"),
    case("consent", {"reissue_pin": "yes"}, "reissue_pin", id="reissue-yes"),
    case("consent", {"reissue_pin": "true"}, "reissue_pin", id="reissue-string-true"),
    case("consent", {"reissue_pin": 1}, "reissue_pin", id="reissue-one"),
    case("consent", {"reissue_pin": 0}, "reissue_pin", id="reissue-zero"),
    case("consent", {"reissue_pin": None}, "reissue_pin", id="reissue-null"),
    case("consent", {"version": 7}, "version", id="unknown-key-version"),
    case("consent", {"recorded_at": "2026-11-22T10:00:00Z"}, "recorded_at",
         id="unknown-key-recorded-at"),
    case("consent", {"receipt": {"code": "AAAA-BBBB", "pin": "123456"}}, "receipt",
         id="unknown-key-receipt"),
    case("consent", {"immigration_status": "x"}, "immigration_status",
         id="immigration-status"),
    # POST /families/{id}/consent/revoke
    case("revoke", {"agency": 5}, "agency", id="agency-number"),
    case("revoke", {"agency": ["physio"]}, "agency", id="agency-list"),
    case("revoke", {"agency": ""}, "agency", id="agency-empty"),
    case("revoke", {"agency": "x" * 65}, "agency", id="agency-65"),
    case("revoke", {"agency": "nope"}, "agency", id="agency-unknown"),
    case("revoke", {"field": 5}, "field", id="field-number"),
    case("revoke", {"field": ""}, "field", id="field-empty"),
    case("revoke", {"field": "nope"}, "field", id="field-unknown"),
    case("revoke", {"field": "x" * 65}, "field", id="field-65"),
    case("revoke", {"agency": DROP, "field": "nope"}, "field", id="row-unknown"),
    case("revoke", {"cell": "physio/health"}, "cell", id="unknown-key"),
    case("revoke", {"residence_status": "x"}, "residence_status", id="residence-status"),
    # POST /family/session
    case("session", {"receipt_code": DROP}, "receipt_code", id="code-missing"),
    case("session", {"pin": DROP}, "pin", id="pin-missing"),
    case("session", {"receipt_code": 12345678}, "receipt_code", id="code-number"),
    case("session", {"pin": 482913}, "pin", id="pin-number"),
    case("session", {"pin": None}, "pin", id="pin-null"),
    case("session", {"pin": [4, 8, 2]}, "pin", id="pin-list"),
    case("session", {"receipt_code": ""}, "receipt_code", id="code-empty"),
    case("session", {"pin": ""}, "pin", id="pin-empty"),
    case("session", {"receipt_code": "x" * 33}, "receipt_code", id="code-33"),
    case("session", {"pin": "1" * 33}, "pin", id="pin-33"),
    case("session", {"family_id": NO_SUCH_FAMILY}, "family_id", id="unknown-key"),
    case("session", {"residence_status": "x"}, "residence_status", id="residence-status"),
]


@pytest.mark.parametrize("route", list(ROUTES))
def test_invalid_values_are_422_naming_the_key_and_store_nothing(
    api: Api, world: World, subtests: pytest.Subtests, route: str,
) -> None:
    """One subtest per case of INVALID: the route's valid body with one change."""
    cases = [c for c in INVALID if c.route == route]
    assert cases
    for c in cases:
        with subtests.test(msg=c.name):
            body = mutate(valid_body(route, world), c.changes)
            if route == "session" and isinstance(c.changes.get("pin"), int):
                body["pin"] = int(world.receipt["pin"])  # the right PIN, as a number
            before = snapshot(api.client.application)
            response = send_route(api, world, route, encode(body))
            assert_problem(response, 422, c.keys)
            assert snapshot(api.client.application) == before


def test_unknown_keys_are_each_named(api: Api, world: World,
                                     subtests: pytest.Subtests) -> None:
    for route in ROUTES:
        with subtests.test(msg=route):
            before = snapshot(api.client.application)
            body = mutate(valid_body(route, world), {"colour": "red", "size": 3})
            assert_problem(send_route(api, world, route, encode(body)), 422, ["colour", "size"])
            assert snapshot(api.client.application) == before


EVERY_KEY = [
    pytest.param("create", "nurse1", {"display_name": "", "birth_date": "2999-01-01"},
                 ("display_name", "birth_date"), id="create-schema-and-future-date"),
    pytest.param("create", "ngo1", {"display_name": "", "address": "Rue 1"},
                 ("display_name", "address"), id="create-minimal-data-and-schema"),
    pytest.param("entry", "nurse1", {"field": "nope", "value": ""},
                 ("field", "value"), id="entry-unknown-field-and-empty-value"),
    pytest.param("refer", "coord1", {"agency": "nope", "contact_worker": ""},
                 ("agency", "contact_worker"), id="refer-unknown-agency-and-empty-worker"),
    pytest.param("consent", "coord1", {"method": "fax", "grants": {"nope": ["health"]}},
                 ("method", "grants.nope"), id="consent-method-and-unknown-agency"),
    pytest.param("consent", "coord1", {"valid_until": "2020-01-01",
                                       "grants": {"physio": ["nope"]}},
                 ("valid_until", "grants.physio"), id="consent-past-and-unknown-field"),
    pytest.param("revoke", "coord1", {"agency": "nope", "field": ""},
                 ("agency", "field"), id="revoke-unknown-agency-and-empty-field"),
]


@pytest.mark.parametrize(("route", "who", "changes", "keys"), EVERY_KEY)
def test_422_names_every_offending_key_at_once(
    api: Api, world: World, route: str, who: str, changes: dict[str, Any],
    keys: tuple[str, ...],
) -> None:
    """"422 — a value is invalid or a key is unknown; `errors` names each one": also when
    one problem is found by the schema and another by a check against stored data."""
    base = {"display_name": "Mira"} if who == "ngo1" else valid_body(route, world)
    before = snapshot(api.client.application)
    response = send_route(api, world, route, encode(mutate(base, changes)), who=who)
    assert_problem(response, 422, keys)
    assert snapshot(api.client.application) == before


# --- values a database cannot hold: never a 500 --------------------------------------

PLACEHOLDER = "@@value@@"
UNSTORABLE: list[tuple[str, str, str, bytes, bool]] = [
    # lone surrogates cannot be encoded as UTF-8 at all: refused
    ("create-name-surrogate", "create", "display_name", b'"A\\ud800"', True),
    ("create-member-surrogate", "create", "members",
     b'[{"name": "\\udfff", "relation": "child"}]', True),
    ("entry-value-surrogate", "entry", "value", b'"\\ud83d"', True),
    ("consent-signed-by-surrogate", "consent", "signed_by", b'"Guardian \\udc00"', True),
    ("consent-purpose-surrogate", "consent", "purpose", b'"support \\ud800"', True),
    ("refer-worker-surrogate", "refer", "contact_worker", b'"\\ud800"', True),
    ("close-worker-surrogate", "close", "contact_worker", b'"\\ud800"', True),
    ("revoke-agency-surrogate", "revoke", "agency", b'"\\ud800"', True),
    ("consent-grants-surrogate", "consent", "grants", b'{"\\ud800": ["health"]}', True),
    ("session-code-surrogate", "session", "receipt_code", b'"\\ud800"', True),
    ("session-pin-surrogate", "session", "pin", b'"\\ud800"', True),
    # NUL characters, and values longer than their column: stored alike on both
    # databases, or refused alike
    ("create-name-nul", "create", "display_name", b'"a\\u0000b"', False),
    ("entry-value-nul", "entry", "value", b'"a\\u0000b"', False),
    # Refused at the boundary; the service, which looks the field up in the
    # database, also takes it for no field (test_entry_field_with_nul_is_no_field).
    ("entry-field-nul", "entry", "field", b'"health\\u0000"', True),
    ("consent-purpose-nul", "consent", "purpose", b'"a\\u0000b"', False),
    ("consent-legal-basis-nul", "consent", "legal_basis", b'"consent\\u0000"', False),
    ("consent-witness-nul", "consent", "witness", b'"coord\\u00001"', False),
    ("consent-interpreter-20-chars", "consent", "interpreter_language",
     b'"tr-abcdefgh-abcdefgh"', False),
    ("refer-worker-nul", "refer", "contact_worker", b'"a\\u0000b"', False),
    ("close-worker-nul", "close", "contact_worker", b'"a\\u0000b"', False),
]


@pytest.mark.parametrize("route", sorted({case[1] for case in UNSTORABLE}))
def test_unstorable_strings_are_refused_or_stored_never_500(
    api: Api, world: World, subtests: pytest.Subtests, route: str,
) -> None:
    """Lone surrogates cannot be encoded at all: 400 or 422. NUL characters and values
    longer than their column cannot be kept by PostgreSQL: the answer must be the same
    on both databases, 422 naming the key or stored, and never a 500."""
    for name, case_route, key, literal, must_refuse in UNSTORABLE:
        if case_route != route:
            continue
        with subtests.test(msg=name):
            body = {**valid_body(route, world), key: PLACEHOLDER}
            raw = encode(body).replace(b'"' + PLACEHOLDER.encode() + b'"', literal)
            before = snapshot(api.client.application)
            response = send_route(api, world, route, raw)
            text = response.get_data(as_text=True)[:300]
            assert response.status_code != 500, text
            if must_refuse or response.status_code >= 400:
                assert response.status_code in (400, 422), text
                assert_problem(response, response.status_code)
                assert snapshot(api.client.application) == before
            else:
                assert response.status_code in (200, 201), text


@pytest.mark.parametrize("field_id", ["health\x00", "health\ud800", "\udfff", "h" * 100_000,
                                      "health ", "Health", "heal%", "health' OR '1'='1"])
def test_entry_field_with_nul_is_no_field(app: Flask, api: Api, world: World,
                                          field_id: str) -> None:
    """`write_entry` looks its field up in the database (with the family's
    lock): a field id holding a NUL, which no database can compare, or a lone
    surrogate, which cannot even be sent to one, is an unknown field on both,
    as are one longer than any column, one differing by case or a trailing
    space, and one holding quotes; nothing is stored."""
    from coordination import accounts
    from coordination.casework import entries
    from coordination.errors import InvalidInput
    from tests.conftest import T0

    rt = app.extensions["onestory"]
    before = snapshot(app)
    with rt.sessions() as session:
        nurse = accounts.authenticate(session, api.tokens["nurse1"], T0)
        with pytest.raises(InvalidInput) as refused:
            entries.write_entry(session, rt.vault, nurse, world.family, field_id,
                                "a note", T0)
        session.rollback()
    assert refused.value.errors == {"field": [f"unknown field '{field_id}'"]}
    assert snapshot(app) == before


# --- GET /families?name=&birth_date= --------------------------------------------------

BAD_QUERIES: list[tuple[str, dict[str, str], str]] = [
    ("name-missing", {}, "name"),
    ("name-empty", {"name": ""}, "name"),
    ("name-without-a-word", {"name": " - ' . "}, "name"),
    ("name-empty-with-date", {"name": "", "birth_date": "2020-05-01"}, "name"),
    ("only-a-bad-date", {"birth_date": "2020-02-30"}, "birth_date"),
    ("name-201", {"name": LONG}, "name"),
    ("birth-month-13", {"name": "Test Family", "birth_date": "2026-13-01"}, "birth_date"),
    ("birth-dmy", {"name": "Test Family", "birth_date": "22/11/2026"}, "birth_date"),
    ("birth-no-zero-pad", {"name": "Test Family", "birth_date": "2020-5-1"}, "birth_date"),
    ("birth-empty", {"name": "Test Family", "birth_date": ""}, "birth_date"),
    ("unknown-param", {"name": "Test Family", "nickname": "x"}, "nickname"),
    ("residence-status", {"name": "Test Family", "residence_status": "x"}, "residence_status"),
]


def test_search_with_bad_query_is_422(api: Api, world: World,
                                      subtests: pytest.Subtests) -> None:
    ok = api.get("/api/v1/families", "nurse1", query_string={"name": "Test Family"})
    assert ok.status_code == 200 and len(ok.get_json()) == 1
    for name, query, key in BAD_QUERIES:
        with subtests.test(msg=name):
            before = snapshot(api.client.application)
            response = api.get("/api/v1/families", "nurse1", query_string=query)
            assert_problem(response, 422, [key])
            assert snapshot(api.client.application) == before


def test_search_token_and_role_come_before_a_bad_query(api: Api,
                                                       subtests: pytest.Subtests) -> None:
    for who, status in [(None, 401), ("not-a-token", 401), ("auditor1", 403),
                        ("admin1", 403)]:
        with subtests.test(msg=str(who)):
            response = api.get("/api/v1/families", who,
                               query_string={"birth_date": "2026-13-01"})
            assert_problem(response, status)


def test_search_name_with_control_characters_is_not_500(api: Api, world: World) -> None:
    response = api.get("/api/v1/families", "nurse1", query_string={"name": "Test\x00Family"})
    assert response.status_code in (200, 422), response.get_data(as_text=True)[:300]


# --- check order with an invalid body ------------------------------------------------

INVALID_OBJECT = encode({"nonsense": True})


@pytest.mark.parametrize("route", list(ROUTES))
def test_bad_body_answers_before_the_token_is_checked(api: Api, world: World,
                                                      subtests: pytest.Subtests,
                                                      route: str) -> None:
    for who in (None, "not-a-token", "auditor1"):
        with subtests.test(msg=f"token {who}"):
            before = snapshot(api.client.application)
            assert_problem(send_route(api, world, route, b"{", who=who), 400)
            assert_problem(send_route(api, world, route, b"[1, 2]", who=who), 400)
            assert_problem(send_route(api, world, route, b'{"a": NaN}', who=who), 400)
            assert_problem(send_route(api, world, route, padded(LIMIT + 1), who=who), 413)
            assert snapshot(api.client.application) == before


@pytest.mark.parametrize("route", [r for r in ROUTES if r != "session"])
def test_token_is_checked_before_an_invalid_body(api: Api, world: World,
                                                 subtests: pytest.Subtests, route: str) -> None:
    for who in (None, "not-a-token", "os_" + "A" * 43):
        for family in (world.family, NO_SUCH_FAMILY):
            with subtests.test(msg=f"token {who}, family {family}"):
                before = snapshot(api.client.application)
                response = send_route(api, world, route, INVALID_OBJECT, who=who,
                                      family=family)
                body = assert_problem(response, 401)
                assert body["errors"] == {}
                assert snapshot(api.client.application) == before


def test_session_route_needs_no_token_even_with_a_bad_one(api: Api, world: World) -> None:
    """POST /family/session takes no token: a stale one must not turn a 422 into a 401."""
    response = send_route(api, world, "session", INVALID_OBJECT, who="not-a-token")
    assert_problem(response, 422, ["nonsense"])


ROLE_REFUSED = [
    ("create", "auditor1"), ("create", "admin1"),
    ("entry", "auditor1"), ("entry", "admin1"),
    ("refer", "nurse1"), ("refer", "auditor1"),
    ("close", "nurse1"), ("close", "admin1"),
    ("consent", "nurse1"), ("consent", "auditor1"),
    ("revoke", "nurse1"), ("revoke", "admin1"),
]


@pytest.mark.parametrize("route", sorted({route for route, _ in ROLE_REFUSED}))
def test_role_is_checked_before_family_and_body(api: Api, world: World,
                                                subtests: pytest.Subtests, route: str) -> None:
    for who in [w for r, w in ROLE_REFUSED if r == route]:
        for family in (world.family, NO_SUCH_FAMILY):
            with subtests.test(msg=f"{who}, family {family}"):
                before = snapshot(api.client.application)
                response = send_route(api, world, route, INVALID_OBJECT, who=who,
                                      family=family)
                assert_problem(response, 403)
                # ... but after the body: a bad body is still a 400.
                assert_problem(send_route(api, world, route, b"{", who=who, family=family),
                               400)
                assert snapshot(api.client.application) == before


# caller who cannot see the family, per route (the PATCH path names the caller's agency)
INVISIBLE_TO = {
    "entry": ("cps1", None),
    "refer": ("ngocoord", None),
    "close": ("ngocoord", "/api/v1/families/{family}/involvements/ngo"),
    "consent": ("ngocoord", None),
    "revoke": ("ngocoord", None),
}


@pytest.mark.parametrize("route", FAMILY_ROUTES)
def test_invisible_family_is_404_before_an_invalid_body(api: Api, world: World,
                                                        route: str) -> None:
    who, path = INVISIBLE_TO[route]
    spec = ROUTES[route]
    path = path or spec.path
    before = snapshot(api.client.application)
    answers = []
    for family in (world.family, NO_SUCH_FAMILY):
        for raw in (INVALID_OBJECT, encode({})):
            response = send(api, spec.method, path.format(family=family), who, raw)
            answers.append(assert_problem(response, 404))
    # the family's existence does not leak: the answers are identical
    assert all(a == answers[0] for a in answers), answers
    # and the caller's own valid body gets the same 404
    response = send(api, spec.method, path.format(family=world.family), who,
                    encode(valid_body(route, world) if route != "close" else {"status": "closed"}))
    assert assert_problem(response, 404) == answers[0]
    assert snapshot(api.client.application) == before


NOT_INVOLVED = [
    # physiotherapy sees the family through the form but is not involved
    pytest.param("entry", "physio1", None, id="entry-physio"),
    pytest.param("refer", "physiocoord", None, id="refer-physio"),
    pytest.param("consent", "physiocoord", None, id="consent-physio"),
    pytest.param("revoke", "physiocoord", None, id="revoke-physio"),
    # only that agency's coordinator may change its involvement
    pytest.param("close", "coord1", "/api/v1/families/{family}/involvements/physio",
                 id="close-other-agency"),
    pytest.param("close", "physiocoord", "/api/v1/families/{family}/involvements/health-centre",
                 id="close-from-other-agency"),
    pytest.param("close", "coord1", "/api/v1/families/{family}/involvements/nope",
                 id="close-unknown-agency"),
]


@pytest.mark.parametrize(("route", "who", "path"), NOT_INVOLVED)
def test_visible_but_not_entitled_is_403_before_an_invalid_body(
    api: Api, world: World, route: str, who: str, path: str | None,
) -> None:
    spec = ROUTES[route]
    url = (path or spec.path).format(family=world.family)
    assert api.get(f"/api/v1/families/{world.family}", who).status_code == 200
    before = snapshot(api.client.application)
    for raw in (INVALID_OBJECT, encode({}), encode({"agency": 5, "field": 5, "status": 5})):
        assert_problem(send(api, spec.method, url, who, raw), 403)
    assert snapshot(api.client.application) == before


@pytest.mark.parametrize("route", FAMILY_ROUTES)
def test_oversized_body_is_413_before_404(api: Api, world: World, route: str) -> None:
    who, _ = INVISIBLE_TO[route]
    response = send_route(api, world, route, padded(LIMIT + 1), who=who, family=NO_SUCH_FAMILY)
    assert_problem(response, 413)
    response = send_route(api, world, route, b"nul", who=who, family=NO_SUCH_FAMILY)
    assert_problem(response, 400)


def test_invalid_body_is_422_before_a_conflict(api: Api, world: World) -> None:
    """422 comes before 409: an invalid body on an act that would also conflict."""
    other = api.new_family("nurse1", display_name="No Form Family")
    before = snapshot(api.client.application)
    # revoking on a family with no form is a 409; with an unknown agency, a 422 first
    response = api.post(f"/api/v1/families/{other}/consent/revoke", "coord1",
                        json={"agency": "nope"})
    assert_problem(response, 422, ["agency"])
    # referring an agency the form does not grant `involvement` is a 409
    response = api.post(f"/api/v1/families/{other}/involvements", "coord1",
                        json={"agency": "ecec", "contact_worker": LONG})
    assert_problem(response, 422, ["contact_worker"])
    # referring an agency that is already involved is a 409
    response = api.post(f"/api/v1/families/{world.family}/involvements", "coord1",
                        json={"agency": "health-centre", "colour": "red"})
    assert_problem(response, 422, ["colour"])
    assert snapshot(api.client.application) == before
    # the conflicts themselves, with valid bodies
    conflict = api.post(f"/api/v1/families/{other}/consent/revoke", "coord1", json={})
    assert_problem(conflict, 409)


def test_family_session_token_order(api: Api, world: World) -> None:
    """The family's own token: invalid body on its own family is 422, on another 404,
    and a route it may not use at all is 403 whatever the body."""
    second = api.new_family("nurse1", display_name="Second Family")
    api.sign(second, GRANTS)
    opened = api.post("/api/v1/family/session", json={
        "receipt_code": world.receipt["code"], "pin": world.receipt["pin"]})
    assert opened.status_code == 201, opened.get_json()
    token = opened.get_json()["token"]
    before = snapshot(api.client.application)
    own = send_route(api, world, "revoke", encode({"agency": "nope"}), who=token)
    assert_problem(own, 422, ["agency"])
    other = send_route(api, world, "revoke", encode({"agency": "nope"}), who=token,
                       family=second)
    missing = send_route(api, world, "revoke", encode({"agency": "nope"}), who=token,
                         family=NO_SUCH_FAMILY)
    assert assert_problem(other, 404) == assert_problem(missing, 404)
    for route in ("create", "entry", "refer", "close", "consent"):
        assert_problem(send_route(api, world, route, INVALID_OBJECT, who=token), 403)
    assert_problem(send_route(api, world, "revoke", b"{", who=token), 400)
    assert snapshot(api.client.application) == before


def test_family_session_422_does_not_count_as_a_failed_attempt(api: Api, world: World) -> None:
    before = snapshot(api.client.application)
    for _ in range(5):
        response = send_route(api, world, "session", encode(
            {"receipt_code": world.receipt["code"], "pin": int(world.receipt["pin"])}))
        assert_problem(response, 422, ["pin"])
    assert snapshot(api.client.application) == before
    ok = send_route(api, world, "session", encode(valid_body("session", world)))
    assert ok.status_code == 201, ok.get_json()


# --- minimal-data agencies, and what OneStory never stores ---------------------------

MINIMAL_REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("birth_date", {"birth_date": "2025-07-01"}),
    ("address", {"address": "Rue Haute 1, Bruxelles"}),
    ("national_id", {"national_id": "25070112345"}),
    ("members", {"members": [{"name": "Aunt", "relation": "aunt"}]}),
    ("members-empty", {"members": []}),
    ("all-four", {"birth_date": "2025-07-01", "address": "Rue Haute 1",
                  "national_id": "25070112345",
                  "members": [{"name": "Aunt", "relation": "aunt"}]}),
]


@pytest.mark.parametrize("who", ["ngo1", "ngocoord"])
def test_minimal_data_agency_may_send_only_name_and_languages(
    api: Api, subtests: pytest.Subtests, who: str,
) -> None:
    for name, extra in MINIMAL_REFUSED:
        with subtests.test(msg=name):
            before = snapshot(api.client.application)
            body = {"display_name": "Mira", "languages": ["bg"], **extra}
            response = api.post("/api/v1/families", who, json=body)
            assert_problem(response, 422, list(extra))
            assert snapshot(api.client.application) == before
            nothing = api.get("/api/v1/families", who, query_string={"name": "Mira"})
            assert nothing.get_json() == []
    # the same family by name and languages alone is fine
    assert api.post("/api/v1/families", who,
                    json={"display_name": "Mira", "languages": ["bg"]}).status_code == 201


def test_minimal_data_agency_writes_only_contact_and_story(api: Api,
                                                          subtests: pytest.Subtests) -> None:
    family = api.new_family("ngo1", display_name="Mira")
    for field_id in ("health", "household", "education", "social", "involvement"):
        with subtests.test(msg=field_id):
            before = snapshot(api.client.application)
            response = api.post(f"/api/v1/families/{family}/entries", "ngo1",
                                json={"field": field_id, "value": "born 2025-07-01"})
            assert_problem(response, 422, ["field"])
            assert snapshot(api.client.application) == before
    api.write(family, "story", "Came by on Tuesday.", who="ngo1")


NEVER_STORED_KEYS = ["residence_status", "immigration_status"]


@pytest.mark.parametrize("key", NEVER_STORED_KEYS)
def test_residence_or_immigration_status_is_refused_for_anyone(
    api: Api, subtests: pytest.Subtests, key: str,
) -> None:
    for who in ("nurse1", "coord1", "ngo1", "ngocoord"):
        with subtests.test(msg=who):
            before = snapshot(api.client.application)
            for value in ("refugee", "", None, True, {"status": "x"}):
                response = api.post("/api/v1/families", who,
                                    json={"display_name": "A", key: value})
                assert_problem(response, 422, [key])
            member = {"name": "Sara", "relation": "mother", key: "x"}
            response = api.post("/api/v1/families", who,
                                json={"display_name": "A", "members": [member]})
            assert_problem(response, 422, ["members"])
            assert snapshot(api.client.application) == before


@pytest.mark.parametrize("key", NEVER_STORED_KEYS)
def test_residence_or_immigration_status_is_refused_on_every_route(
    api: Api, world: World, subtests: pytest.Subtests, key: str,
) -> None:
    for route in ROUTES:
        with subtests.test(msg=route):
            before = snapshot(api.client.application)
            body = {**valid_body(route, world), key: "asylum seeker"}
            assert_problem(send_route(api, world, route, encode(body)), 422, [key])
            assert snapshot(api.client.application) == before
