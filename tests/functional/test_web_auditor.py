"""The auditor's pages: the log (filters, paging, refused and unusual entries
marked), its verification, and CSV export.

Only auditors get in (others: 403, on record; nobody signed in: sent to sign
in). Every read, verification and export is itself on record, committed
before anything is shown. No page and no export carries family content:
names, birth dates, addresses and entry values never appear, only ids.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select, text

import audit.services as audit_log
from audit.model import Action, AuditEntry, Outcome
from audit.services import AuditUnavailable, Event
from coordination import auditing
from coordination.web import CSP
from coordination.web.auditor import CSV_COLUMNS, safe_cell
from tests.conftest import Api, Clock
from tests.web import set_passwords, signed_in

NAME = "Quokka Marker-Family"
OTHER_NAME = "Okapi Marker-Other"
BIRTH_DATE = "2019-03-14"
ADDRESS = "Pangolinveien 7, 0155 Oslo"
MEMBER = "Axolotl Marker-Child"
NOTE = "marker note: narwhal asthma"
OTHER_NOTE = "marker note: tapir kindergarten"
CONTENT = (NAME, OTHER_NAME, BIRTH_DATE, ADDRESS, MEMBER, NOTE, OTHER_NOTE, "Quokka",
           "Okapi", "Axolotl", "narwhal", "tapir", "Pangolinveien", "Guardian Name")
DAY2 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PAGES = ["/audit/", "/audit/verify", "/audit/export.csv"]
ROW = re.compile(r'<tr id="seq-(\d+)" class="([^"]*)">(.*?)</tr>', re.S)


@dataclass
class Case:
    family: str
    other: str


@pytest.fixture
def case(app: Flask, api: Api, clock: Clock) -> Case:
    """Two families over two days, a refusal and a wrong PIN; staff passwords set."""
    # Day 1, 10:00: the health centre records a family and its form.
    family = api.new_family("nurse1", display_name=NAME, birth_date=BIRTH_DATE,
                            address=ADDRESS, members=[{"name": MEMBER, "relation": "child"}])
    api.write(family, "health", NOTE)
    receipt = api.sign(family, {"physio": ["involvement", "health"]})["receipt"]
    # 11:00: physio looks, the kindergarten is refused, someone guesses the PIN.
    clock.advance(hours=1)
    assert api.get(f"/api/v1/families/{family}", "physio1").status_code == 200
    assert api.get(f"/api/v1/families/{family}", "ecec1").status_code == 404
    wrong = "000000" if receipt["pin"] != "000000" else "111111"
    assert api.post("/api/v1/family/session", json={
        "receipt_code": receipt["code"], "pin": wrong}).status_code == 401
    # Day 2, 09:00: the kindergarten records another family.
    clock.now = DAY2
    other = api.new_family("ecec1", display_name=OTHER_NAME)
    api.write(other, "education", OTHER_NOTE, who="ecec1")
    set_passwords(app)
    return Case(family, other)


@pytest.fixture
def auditor(app: Flask, case: Case) -> FlaskClient:
    return signed_in(app, "auditor1")


def db_rows(app: Flask) -> list[AuditEntry]:
    with app.extensions["onestory"].sessions() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def page(client: FlaskClient, path: str = "/audit/", status: int = 200,
         **query: Any) -> str:
    response = client.get(path, query_string=query or None)
    assert response.status_code == status, response.get_data(as_text=True)
    body: str = response.get_data(as_text=True)
    return body


def shown(body: str) -> list[tuple[int, set[str], str]]:
    """(seq, classes, cells) of each entry in the table, in page order."""
    return [(int(seq), set(classes.split()), cells) for seq, classes, cells in ROW.findall(body)]


def seqs(body: str) -> list[int]:
    return [seq for seq, _, _ in shown(body)]


def link(body: str, label: str) -> str | None:
    found = re.search(rf'<a [^>]*href="([^"]+)"[^>]*>{label}</a>', body)
    return html.unescape(found.group(1)) if found else None


def assert_no_content(body: str) -> None:
    for value in CONTENT:
        assert value.casefold() not in body.casefold(), value


@contextmanager
def counting(app: Flask) -> Iterator[list[str]]:
    """The SQL statements run meanwhile."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = app.extensions["onestory"].engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def last_entry(app: Flask) -> AuditEntry:
    return db_rows(app)[-1]


def export(client: FlaskClient, **query: Any) -> tuple[Any, list[list[str]]]:
    response = client.get("/audit/export.csv", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    lines = [line for line in response.get_data(as_text=True).splitlines(keepends=True)
             if not line.startswith("#")]
    return response, list(csv.reader(io.StringIO("".join(lines))))


# --- who gets in --------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_nobody_signed_in_is_sent_to_sign_in(app: Flask, case: Case, path: str) -> None:
    before = len(db_rows(app))
    response = app.test_client().get(path, query_string={"user": "nurse1"})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in?next=")
    assert "/audit/" in html.unescape(response.headers["Location"])
    assert len(db_rows(app)) == before  # nothing was read, so nothing to record


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize(("who", "role"), [("nurse1", "practitioner"),
                                           ("coord1", "coordinator"), ("admin1", "admin")])
def test_other_roles_are_refused_on_record(app: Flask, case: Case, path: str, who: str,
                                           role: str) -> None:
    client = signed_in(app, who)
    body = page(client, path, 403)
    assert "<h1>" in body and "<table" not in body
    assert "text/html" in client.get(path).content_type
    denied = last_entry(app)
    assert (denied.action, denied.outcome, denied.actor, denied.role, denied.reason) == (
        Action.REQUEST_DENIED, Outcome.DENIED, who, role, "role")
    assert json.loads(denied.detail or "{}")["route"].startswith("auditor.")
    assert not any(r.action in (Action.AUDIT_READ, Action.AUDIT_VERIFY, Action.AUDIT_EXPORT)
                   for r in db_rows(app))


# --- the log ------------------------------------------------------------------------------


def test_the_log_shows_every_entry_newest_first(app: Flask, auditor: FlaskClient) -> None:
    before = db_rows(app)
    response = auditor.get("/audit/")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["Cache-Control"] == "no-store"
    assert seqs(body) == [r.seq for r in reversed(before)]
    cells = {seq: row for seq, _, row in shown(body)}
    for r in before:
        for value in (r.action, r.actor, r.role, r.agency_id, r.family_id, r.reason,
                      r.request_id, r.at[:19].replace("T", " ")):
            if value:
                assert value in cells[r.seq], (r.seq, value)
    health = next(r for r in before if r.action == Action.ENTRY_WRITE)
    assert "shown: health" in cells[health.seq]
    assert_no_content(body)


def test_reasons_are_in_words_beside_their_codes(app: Flask, auditor: FlaskClient,
                                                case: Case) -> None:
    body = page(auditor)
    cells = {seq: row for seq, _, row in shown(body)}
    words = {"not_visible": "the family is not shared with this agency",
             "wrong_code_or_pin": "wrong receipt code or PIN"}
    for r in db_rows(app):
        if r.reason in words:
            assert words[r.reason] in html.unescape(cells[r.seq]), r.reason
            assert r.reason in cells[r.seq]
    assert {r.reason for r in db_rows(app)} >= set(words)
    _, rows = export(auditor)
    by_name = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert {(r["reason"], r["reason_in_words"]) for r in by_name if r["reason"]} >= set(
        words.items())


@pytest.mark.parametrize(("action", "reason", "words"), [
    ("request.denied", "unauthenticated", "no valid sign-in or token"),
    ("request.denied", "role", "the person's role may not do this"),
    ("request.denied", "absent", "no family has this id"),
    ("request.denied", "expired", "the family's consent form has expired"),
    ("request.denied", "not_permitted", "this agency is not involved, or may not do this"),
    ("request.denied", "not_agreed", "the family has not agreed to it on its consent form"),
    ("request.denied", "conflict", "it did not fit the family's current state"),
    ("login.failed", "inactive", "the account is deactivated"),
    ("login.failed", "provider:invalid_claim",
     "the agency's sign-in service gave an answer that was refused (invalid_claim)"),
    ("logout", "expired", "the session reached its time limit"),
    ("logout", "idle", "the session ended after being idle"),
    ("request.denied", "some_new_code", "some_new_code"),  # unknown: the code itself
])
def test_reason_words(action: str, reason: str, words: str) -> None:
    from coordination.web.auditor import reason_words

    assert reason_words(action, reason) == words
    assert reason_words(action, None) is None


def test_reading_the_log_is_on_record_in_its_own_words(app: Flask, auditor: FlaskClient,
                                                       case: Case) -> None:
    page(auditor, family=case.family, outcome="denied", cursor="999")
    read = last_entry(app)
    assert (read.action, read.outcome, read.actor, read.role, read.agency_id) == (
        Action.AUDIT_READ, Outcome.OK, "auditor1", "auditor", "oversight")
    assert json.loads(read.detail or "{}") == {"family": case.family, "outcome": "denied",
                                               "channel": "web"}


def test_the_page_explains_and_links_what_an_auditor_needs(auditor: FlaskClient) -> None:
    body = page(auditor)
    for control in ("family", "agency", "user", "action", "outcome", "since", "until"):
        assert f'<label for="f-{control}">' in body
        assert f'id="f-{control}" name="{control}"' in body
    assert '<option value="health-centre">' in body
    assert '<option value="audit.export">' in body
    assert '<option value="denied">' in body
    assert 'type="date"' in body
    assert "No checkpoint has been signed yet" in body
    assert link(body, "Verify the whole log now") == "/audit/verify"
    assert link(body, "Export these entries as CSV") == "/audit/export.csv"
    for rule in ("before 07:00 or after 19:00 UTC", "more than 20 different families",
                 "refused 3 or more times", "too many wrong codes, PINs or passwords"):
        assert rule in body


def test_the_latest_checkpoint_is_shown(app: Flask, auditor: FlaskClient,
                                        clock: Clock) -> None:
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        audit_log.make_checkpoint(session, rt.audit_key, clock())
        audit_log.make_checkpoint(session, rt.audit_key, clock())
        session.commit()
    head = last_entry(app).seq
    body = page(auditor)
    assert (f"The latest signed checkpoint vouches for entries up to #{head}; it was signed "
            f"{clock():%Y-%m-%d %H:%M:%S} UTC") in body


# (query, which entries it keeps); "{family}" and "{other}" name the case's families.
FILTERS: list[tuple[dict[str, str], Any]] = [
    ({"family": "{family}"}, lambda r, c: r.family_id == c.family),
    ({"family": "{other}"}, lambda r, c: r.family_id == c.other),
    ({"agency": "physio"}, lambda r, c: r.agency_id == "physio"),
    ({"user": "nurse1"}, lambda r, c: r.actor == "nurse1"),
    ({"user": "family"}, lambda r, c: r.actor == "family"),
    ({"action": "record.read"}, lambda r, c: r.action == "record.read"),
    ({"action": "login.failed"}, lambda r, c: r.action == "login.failed"),
    ({"outcome": "denied"}, lambda r, c: r.outcome == "denied"),
    ({"outcome": "ok"}, lambda r, c: r.outcome == "ok"),
    ({"since": "2026-11-23"}, lambda r, c: r.at >= "2026-11-23"),
    ({"until": "2026-11-22"}, lambda r, c: r.at < "2026-11-23"),  # that whole day
    ({"since": "2026-11-22", "until": "2026-11-22"}, lambda r, c: r.at < "2026-11-23"),
    ({"agency": "health-centre", "action": "entry.write", "user": "nurse1"},
     lambda r, c: (r.agency_id, r.action, r.actor) == ("health-centre", "entry.write",
                                                        "nurse1")),
]


@pytest.mark.parametrize(("template", "keep"), FILTERS,
                         ids=["&".join(f"{k}={v}" for k, v in q.items()) for q, _ in FILTERS])
def test_each_filter_narrows_the_entries(app: Flask, auditor: FlaskClient, case: Case,
                                         template: dict[str, str], keep: Any) -> None:
    query: dict[str, Any] = {key: value.format(family=case.family, other=case.other)
                             for key, value in template.items()}
    before = db_rows(app)
    body = page(auditor, **query)
    expected = [r.seq for r in reversed(before) if keep(r, case)]
    assert 0 < len(expected) < len(before)
    assert seqs(body) == expected
    for key, value in query.items():  # the form keeps what was asked
        assert (f'name="{key}" type="date" value="{value}"' in body
                or f'name="{key}" type="text" value="{value}"' in body
                or f'<option value="{value}" selected>' in body), key
    exported = urlsplit(link(body, "Export these entries as CSV") or "")
    assert exported.path == "/audit/export.csv"
    assert dict(parse_qsl(exported.query)) == query


def test_a_filter_that_matches_nothing_says_so(auditor: FlaskClient) -> None:
    body = page(auditor, family="fam_nobody")
    assert seqs(body) == []
    assert "No entries match these filters." in body


@pytest.mark.parametrize(("query", "key", "message"), [
    ({"action": "record.steal"}, "action", "Must be one of"),
    ({"outcome": "maybe"}, "outcome", "Must be one of"),
    ({"since": "22/11/2026"}, "since", "a date YYYY-MM-DD"),
    ({"until": "2026-02-30"}, "until", "a date YYYY-MM-DD"),
    ({"since": "2026-11-23", "until": "2026-11-22"}, "until", "must not be before"),
    ({"family": "f" * 65}, "family", "Length must be between"),
    ({"cursor": "abc"}, "cursor", "Not a valid integer"),
    ({"cursor": "0"}, "cursor", "greater than or equal to 1"),
    ({"limit": "501"}, "limit", "less than or equal to 500"),
])
@pytest.mark.parametrize("path", ["/audit/", "/audit/export.csv"])
def test_a_bad_filter_is_a_422_page_naming_it(app: Flask, auditor: FlaskClient,
                                              query: dict[str, str], key: str, message: str,
                                              path: str) -> None:
    if path.endswith(".csv") and key in ("cursor", "limit"):
        query = {**query, "action": "record.steal"}  # the export takes no paging
        key, message = "action", "Must be one of"
    before = len(db_rows(app))
    response = auditor.get(path, query_string=query)
    body = response.get_data(as_text=True)
    assert response.status_code == 422, body
    assert response.mimetype == "text/html"
    assert 'class="error-summary" role="alert"' in body
    assert f'href="#f-{key}"' in body and message in body
    assert seqs(body) == []
    assert len(db_rows(app)) == before  # nothing read, nothing recorded


def test_paging_walks_the_whole_log_keeping_the_filters(app: Flask, api: Api,
                                                        case: Case) -> None:
    for _ in range(60):
        api.get("/api/v1/families", "nurse1", query_string={"name": "nobody"})
    searches = [r.seq for r in reversed(db_rows(app)) if r.action == "family.search"]
    client = signed_in(app, "auditor1")
    first = page(client, user="nurse1", action="family.search")
    assert seqs(first) == searches[:50]
    assert link(first, "Newest entries") is None
    older = link(first, "Older entries")
    assert older is not None
    assert "user=nurse1" in older and "action=family.search" in older
    assert f"cursor={searches[49]}" in older
    second = page(client, older)
    assert seqs(second) == searches[50:]
    assert link(second, "Older entries") is None
    assert link(second, "Newest entries") == "/audit/?user=nurse1&action=family.search"


def test_a_smaller_page_size_is_kept_across_pages(auditor: FlaskClient, app: Flask) -> None:
    everything = [r.seq for r in reversed(db_rows(app))]
    body = page(auditor, limit="4")
    assert seqs(body) == everything[:4]
    older = link(body, "Older entries")
    assert older is not None and "limit=4" in older
    assert seqs(page(auditor, older)) == everything[4:8]


def test_refused_entries_are_marked_in_words_not_only_colour(app: Flask,
                                                             auditor: FlaskClient) -> None:
    outcomes = {r.seq: r.outcome for r in db_rows(app)}
    rows = shown(page(auditor))
    assert {seq for seq, _, _ in rows if outcomes[seq] == "denied"}  # a refusal and a PIN
    for seq, classes, cells in rows:
        refused = outcomes[seq] == "denied"
        assert ("denied" in classes) is refused, seq
        assert ('<span class="tag tag-bad">refused</span>' in cells) is refused, seq


def test_unusual_entries_are_marked_with_the_reason(app: Flask, api: Api, case: Case,
                                                    clock: Clock) -> None:
    clock.now = DAY2.replace(hour=21, minute=30)
    assert api.get(f"/api/v1/families/{case.family}", "physio1").status_code == 200
    for _ in range(3):
        assert api.get(f"/api/v1/families/{case.other}", "cps1").status_code == 404
    rows = db_rows(app)
    night_read = next(r.seq for r in rows if r.actor == "physio1" and r.at > "2026-11-23")
    refusals = [r.seq for r in rows if r.actor == "cps1" and r.outcome == "denied"]
    clock.advance(minutes=1)
    by_seq = {seq: (classes, cells) for seq, classes, cells in shown(
        page(signed_in(app, "auditor1")))}
    classes, cells = by_seq[night_read]
    assert "unusual" in classes and "denied" not in classes
    assert '<span class="tag tag-warn">unusual: out of hours (21:30 UTC)</span>' in cells
    for seq in refusals[:2]:
        assert "refusals in an hour" not in by_seq[seq][1]
    classes, cells = by_seq[refusals[2]]
    assert {"unusual", "denied"} <= classes
    assert "unusual: 3 refusals in an hour" in cells
    assert "unusual: out of hours (21:30 UTC)" in cells
    ordinary = next(r.seq for r in rows if r.action == "family.create")
    assert "unusual" not in by_seq[ordinary][0]


def test_many_families_are_counted_beyond_the_entries_shown(app: Flask, api: Api,
                                                            case: Case, clock: Clock) -> None:
    families = [api.new_family("nurse1", display_name=f"Family {i}") for i in range(21)]
    for family in families:
        clock.advance(seconds=30)
        assert api.get(f"/api/v1/families/{family}", "nurse1").status_code == 200
    client = signed_in(app, "auditor1")
    # Only the last read is on the page; the other twenty come from the look-back.
    body = page(client, family=families[-1], action="record.read")
    [(_, classes, cells)] = shown(body)
    assert "unusual" in classes
    assert "unusual: 21 families in an hour" in cells
    [(_, classes, _)] = shown(page(client, family=families[-2], action="record.read"))
    assert "unusual" not in classes


def test_the_log_page_costs_the_same_queries_for_few_or_many_entries(
        app: Flask, api: Api, case: Case) -> None:
    for who in ("physio1", "ecec1", "cps1", "nurse1"):
        for _ in range(10):
            api.get(f"/api/v1/families/{case.family}", who)
    client = signed_in(app, "auditor1")
    counts = []
    for limit in ("2", "50"):
        with counting(app) as statements:
            page(client, limit=limit)
        counts.append(len(statements))
    assert counts[0] == counts[1]


# --- verification --------------------------------------------------------------------------


def test_an_untouched_log_is_intact(app: Flask, auditor: FlaskClient) -> None:
    before = db_rows(app)
    response = auditor.get("/audit/verify")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == CSP
    assert (f"The log is intact: {len(before)} entries, head {before[-1].hash}."
            in body)
    assert 'role="alert"' not in body
    verified = last_entry(app)
    assert (verified.action, verified.actor) == (Action.AUDIT_VERIFY, "auditor1")
    assert json.loads(verified.detail or "{}") == {"ok": True, "first_bad": None,
                                                   "channel": "web"}


def test_an_altered_entry_is_named(app: Flask, auditor: FlaskClient) -> None:
    with app.extensions["onestory"].engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET reason = 'x' WHERE seq = 3"))
    body = page(auditor, "/audit/verify")
    assert re.search(r'role="alert">\s*<p><strong>The log has been altered: first bad entry '
                     r"#3: entry 3 was altered\.</strong>", body), body
    assert "The log is intact" not in body
    assert link(body, "See the log from entry #3 back") == "/audit/?cursor=4"
    verified = last_entry(app)
    assert verified.action == Action.AUDIT_VERIFY
    assert json.loads(verified.detail or "{}") == {"ok": False, "first_bad": 3,
                                                   "channel": "web"}


# --- CSV export ----------------------------------------------------------------------------


def test_the_export_is_the_filtered_log_as_csv(app: Flask, auditor: FlaskClient,
                                               case: Case) -> None:
    before = db_rows(app)
    response, rows = export(auditor, family=case.family)
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="onestory-audit-2026-11-23.csv"')
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Security-Policy"] == CSP
    assert tuple(rows[0]) == CSV_COLUMNS
    expected = [r for r in reversed(before) if r.family_id == case.family]
    assert [int(row[0]) for row in rows[1:]] == [r.seq for r in expected]
    by_name = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    for got, entry in zip(by_name, expected, strict=True):
        assert (got["time_utc"], got["action"], got["outcome"], got["actor"], got["role"],
                got["agency"], got["family"], got["reason"], got["request_id"]) == (
            entry.at, entry.action, entry.outcome, entry.actor or "", entry.role or "",
            entry.agency_id or "", entry.family_id or "", entry.reason or "",
            entry.request_id or "")
        assert got["fields_shown"] == (entry.shown or "")
        assert got["fields_withheld"] == (entry.withheld or "")
        assert ("refused" in got["notes"]) is (entry.outcome == "denied")
        assert (json.loads(got["detail"]) if got["detail"] else {}) == json.loads(
            entry.detail or "{}")


def test_the_export_is_on_record_before_it_is_handed_out(app: Flask,
                                                         auditor: FlaskClient) -> None:
    count = len(db_rows(app))
    _, rows = export(auditor, outcome="denied", since="2026-11-22")
    recorded = last_entry(app)
    assert (recorded.action, recorded.outcome, recorded.actor) == (
        Action.AUDIT_EXPORT, Outcome.OK, "auditor1")
    assert json.loads(recorded.detail or "{}") == {
        "outcome": "denied", "since": "2026-11-22", "rows": len(rows) - 1, "capped": False,
        "channel": "web"}
    assert len(rows) - 1 == sum(1 for r in db_rows(app)[:count] if r.outcome == "denied")


def test_no_export_when_it_cannot_be_recorded(app: Flask, auditor: FlaskClient,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*_args: Any, **_kw: Any) -> None:
        raise AuditUnavailable("down")

    before = len(db_rows(app))
    monkeypatch.setattr(audit_log, "record", unavailable)
    response = auditor.get("/audit/export.csv")
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert "Content-Disposition" not in response.headers
    assert "seq,time_utc" not in response.get_data(as_text=True)
    assert len(db_rows(app)) == before


def test_a_capped_export_says_so(app: Flask, auditor: FlaskClient,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auditing, "EXPORT_CAP", 5)
    monkeypatch.setattr(auditing, "_BATCH", 2)
    newest = [r.seq for r in reversed(db_rows(app))][:5]
    response, rows = export(auditor)
    first_line = response.get_data(as_text=True).splitlines()[0]
    assert first_line.startswith("# Only the newest 5 matching entries are in this file")
    assert [int(row[0]) for row in rows[1:]] == newest
    assert json.loads(last_entry(app).detail or "{}") == {"rows": 5, "capped": True,
                                                          "channel": "web"}


def test_an_export_of_exactly_the_cap_is_not_capped(app: Flask, auditor: FlaskClient,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auditing, "EXPORT_CAP", len(db_rows(app)))
    monkeypatch.setattr(auditing, "_BATCH", 3)
    response, rows = export(auditor)
    assert not response.get_data(as_text=True).startswith("#")
    assert len(rows) - 1 == auditing.EXPORT_CAP


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_that_a_spreadsheet_would_run_is_made_text(start: str) -> None:
    assert safe_cell(f"{start}HYPERLINK(\"http://x\")") == f"'{start}HYPERLINK(\"http://x\")"
    assert safe_cell(f"a{start}b") == f"a{start}b"
    assert safe_cell(None) == ""
    assert safe_cell(12) == "12"


def test_formulas_in_the_log_are_exported_as_text(app: Flask, auditor: FlaskClient,
                                                  clock: Clock) -> None:
    with app.extensions["onestory"].sessions() as session:
        audit_log.record(session, Event(
            action=Action.LOGIN_FAILED, outcome=Outcome.DENIED, actor="=1+1",
            agency_id="+cmd", role="-2", reason="@SUM(A1)", request_id="\tx"), clock())
        session.commit()
    _, rows = export(auditor, action="login.failed", outcome="denied", since="2026-11-23")
    got = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert (got["actor"], got["agency"], got["role"], got["reason"], got["request_id"]) == (
        "'=1+1", "'+cmd", "'-2", "'@SUM(A1)", "'\tx")


# --- never family content ------------------------------------------------------------------


def test_no_family_content_on_any_auditor_page_or_export(app: Flask, api: Api, case: Case,
                                                         auditor: FlaskClient) -> None:
    # The family's own looks and searches by name are in the log too.
    api.get("/api/v1/families", "nurse1", query_string={"name": NAME})
    bodies = [page(auditor), page(auditor, family=case.family), page(auditor, "/audit/verify"),
              auditor.get("/audit/export.csv").get_data(as_text=True),
              page(auditor, action="family.search"), page(auditor, "/audit/", 422, since="x")]
    for body in bodies:
        assert_no_content(body)
    assert case.family in bodies[0] and case.other in bodies[3]


@pytest.mark.parametrize("path", ["/audit/", "/audit/?action=bad", "/audit/verify",
                                  "/audit/export.csv"])
def test_every_auditor_answer_sends_the_security_headers(auditor: FlaskClient,
                                                         path: str) -> None:
    response = auditor.get(path)
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_an_idle_auditor_is_sent_to_sign_in_again(auditor: FlaskClient,
                                                   clock: Clock) -> None:
    clock.advance(hours=1)
    response = auditor.get("/audit/export.csv")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in")
