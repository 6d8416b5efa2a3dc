"""Finding a family (issue 10, point 6), on SQLite and PostgreSQL, through the
API and the staff pages: by whole words of any name of the family or of a
member, by any birth date, or both; only among families the caller may know
exist; through keyed terms only; `onestory search reindex`; and the warning
before recording a family the agency can already see."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from coordination.casework import search_index
from coordination.crypto import PlaintextVault, VaultError
from coordination.model import Family, SearchIndexed, SearchTerm
from coordination.search_words import fold
from tests.cli import assert_ok, run
from tests.conftest import INDEX_KEY, Api
from tests.functional.test_encryption import stored_bytes
from tests.functional.test_query_budget import counting
from tests.web import csrf_token, set_passwords, signed_in

PROBLEM = "application/problem+json"


@dataclass
class People:
    """Families of several agencies, by what each is called here."""

    ids: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return self.ids[key]


@pytest.fixture
def people(api: Api) -> People:
    ids = {
        # The health centre's family, shared with physio (its `involvement`).
        "demir": api.new_family(
            "nurse1", display_name="Aylin Demir", birth_date="2024-03-14",
            members=[{"name": "Emir Demir", "relation": "child", "birth_date": "2021-02-17"},
                     {"name": "Ayşe-Nur Yıldız", "relation": "parent"}]),
        # The health centre's own, shared with nobody.
        "demirci": api.new_family("nurse1", display_name="Demirci Family",
                                  birth_date="2019-01-01"),
        # Child protection's family of the same name and birth date, shared with nobody.
        "cps": api.new_family("cps1", display_name="Aylin Demir", birth_date="2024-03-14"),
        # The minimal-data NGO's family: a first name only.
        "ngo": api.new_family("ngo1", display_name="Aylin"),
    }
    api.sign(ids["demir"], {"physio": ["involvement"]})
    return People(ids)


# who, query, the families found (names in `people`)
SHAPES: list[tuple[str, dict[str, str], list[str]]] = [
    # A word of the family's own name, in any case.
    ("nurse1", {"name": "Aylin"}, ["demir"]),
    ("nurse1", {"name": "demir"}, ["demir"]),
    ("nurse1", {"name": "AYLIN DEMIR"}, ["demir"]),
    ("nurse1", {"name": "Demir Aylin"}, ["demir"]),  # the order of words does not matter
    # A member's name, word by word; the Turkish i's and diacritics do not matter.
    ("nurse1", {"name": "Emir Demir"}, ["demir"]),
    ("nurse1", {"name": "EMİR demır"}, ["demir"]),
    ("nurse1", {"name": "ayse"}, ["demir"]),
    ("nurse1", {"name": "Nur"}, ["demir"]),  # hyphens split words
    ("nurse1", {"name": "Ayşe-Nur YILDIZ"}, ["demir"]),
    ("nurse1", {"name": "yildiz"}, ["demir"]),
    # Never a prefix, never a part of a word.
    ("nurse1", {"name": "Ayl"}, []),
    ("nurse1", {"name": "Demi"}, []),
    ("nurse1", {"name": "Demirci"}, ["demirci"]),
    # Every word in one name: words of two different names find nothing.
    ("nurse1", {"name": "Aylin Emir"}, []),
    ("nurse1", {"name": "Aylin Yıldız"}, []),
    ("nurse1", {"name": "Aylin Nobody"}, []),
    # A birth date alone: the family's, or a member's.
    ("nurse1", {"birth_date": "2024-03-14"}, ["demir"]),
    ("nurse1", {"birth_date": "2021-02-17"}, ["demir"]),
    ("nurse1", {"birth_date": "2019-01-01"}, ["demirci"]),
    ("nurse1", {"birth_date": "2020-01-01"}, []),
    # Both: the family matches each.
    ("nurse1", {"name": "Aylin", "birth_date": "2024-03-14"}, ["demir"]),
    ("nurse1", {"name": "Emir", "birth_date": "2021-02-17"}, ["demir"]),
    ("nurse1", {"name": "Emir", "birth_date": "2024-03-14"}, ["demir"]),
    ("nurse1", {"name": "Aylin", "birth_date": "2019-01-01"}, []),
    ("nurse1", {"name": "Demirci", "birth_date": "2024-03-14"}, []),
    # Another agency finds only what is shared with it ...
    ("physio1", {"name": "Aylin"}, ["demir"]),
    ("physio1", {"name": "Emir"}, ["demir"]),
    ("physio1", {"birth_date": "2024-03-14"}, ["demir"]),
    ("physio1", {"name": "Demirci"}, []),
    ("physio1", {"birth_date": "2019-01-01"}, []),
    ("ecec1", {"name": "Aylin"}, []),
    ("ecec1", {"birth_date": "2024-03-14"}, []),
    # ... child protection its own family only ...
    ("cps1", {"name": "Aylin Demir", "birth_date": "2024-03-14"}, ["cps"]),
    ("cps1", {"name": "Emir"}, []),
    # ... and the minimal-data NGO's family exists for nobody else.
    ("ngo1", {"name": "aylın"}, ["ngo"]),
    ("ngo1", {"name": "Demir"}, []),
]


def api_found(api: Api, who: str, query: dict[str, str]) -> list[str]:
    response = api.get("/api/v1/families", who, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [f["id"] for f in response.get_json()]


def test_every_shape_of_search_over_the_api(api: Api, people: People,
                                            subtests: pytest.Subtests) -> None:
    for who, query, expected in SHAPES:
        with subtests.test(msg=f"{who} {query}"):
            assert api_found(api, who, query) == [people[k] for k in expected]


def test_every_shape_of_search_on_the_staff_page(app: Flask, api: Api, people: People,
                                                 subtests: pytest.Subtests) -> None:
    set_passwords(app)
    clients: dict[str, Any] = {}
    for who, query, expected in SHAPES:
        with subtests.test(msg=f"{who} {query}"):
            client = clients.setdefault(who, signed_in(app, who))
            response = client.get("/staff/", query_string=query)
            assert response.status_code == 200
            html = response.get_data(as_text=True)
            found = re.findall(r'<li><a href="/staff/families/(fam_[0-9a-f]+)"', html)
            assert found == [people[k] for k in expected]
            assert ("Nothing matched" in html) == (not expected)


def test_the_answer_names_each_family_once_with_its_display_name(
        api: Api, people: People) -> None:
    """A family whose several names hold the words is found once."""
    response = api.get("/api/v1/families", "nurse1", query_string={"name": "Demir"})
    assert response.get_json() == [{"id": people["demir"], "display_name": "Aylin Demir"}]


# --- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "key"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "- ' ."}, "name"),
    ({"birth_date": ""}, "birth_date"),
    ({"birth_date": "2024-02-30"}, "birth_date"),
    ({"birth_date": "14.03.2024"}, "birth_date"),
    ({"name": "Aylin", "birth_date": "2024-3-14"}, "birth_date"),
    ({"name": "Aylin", "born": "2024-03-14"}, "born"),
])
def test_a_bad_search_is_a_problem_naming_the_field(api: Api, people: People,
                                                    query: dict[str, str], key: str) -> None:
    response = api.get("/api/v1/families", "nurse1", query_string=query)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert list(response.get_json()["errors"]) == [key]


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_the_extreme_dates_are_searched_not_refused(api: Api, people: People,
                                                    day: str) -> None:
    assert api_found(api, "nurse1", {"birth_date": day}) == []
    assert api_found(api, "nurse1", {"name": "Aylin", "birth_date": day}) == []


@pytest.mark.parametrize(("query", "key", "label"), [
    ("name=+-+", "name", "must hold a word"),
    ("birth_date=2024-02-30", "birth_date", "Not a valid date"),
    ("name=Aylin&birth_date=2024-13-01", "birth_date", "Not a valid date"),
])
def test_a_bad_search_on_the_page_is_a_form_error(app: Flask, api: Api, query: str, key: str,
                                                  label: str) -> None:
    set_passwords(app)
    response = signed_in(app, "nurse1").get(f"/staff/?{query}")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert re.search(rf'id="f-{key}" name="{key}"[^>]*aria-invalid="true"', html), html
    assert label in html


# --- recording a family the agency can already see --------------------------------------


def page_of(response: Any) -> str:
    html: str = response.get_data(as_text=True)
    return html


def family_count(app: Flask) -> int:
    with app.extensions["onestory"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Family)) or 0)


def audit_rows(app: Flask, after: int) -> list[Any]:
    with app.extensions["onestory"].engine.connect() as conn:
        return list(conn.execute(text("SELECT action, outcome, family_id, detail FROM audit_log "
                                      "WHERE seq > :s ORDER BY seq"), {"s": after}))


def last_seq(app: Flask) -> int:
    with app.extensions["onestory"].engine.connect() as conn:
        return int(conn.scalar(text("SELECT coalesce(max(seq), 0) FROM audit_log")) or 0)


def test_the_api_names_possible_duplicates_and_refuses_them_when_asked(
        app: Flask, api: Api, people: People) -> None:
    same = {"display_name": "aylın DEMİR", "birth_date": "2024-03-14"}
    # Asked to refuse: a 409 naming the visible match only, and nothing stored.
    before, seq = family_count(app), last_seq(app)
    refused = api.post("/api/v1/families", "nurse1", json={**same, "refuse_duplicate": True})
    assert refused.status_code == 409 and refused.mimetype == PROBLEM
    detail = refused.get_json()["detail"]
    assert people["demir"] in detail and people["cps"] not in detail
    assert family_count(app) == before
    logged = audit_rows(app, seq)
    assert [(r.action, r.outcome) for r in logged] == [("family.search", "ok"),
                                                       ("request.denied", "denied")]
    assert people["demir"] in logged[0].detail and "aylin" not in logged[0].detail.lower()
    # A member's name and birth date match too.
    member = api.post("/api/v1/families", "nurse1", json={
        "display_name": "Emir Demir", "birth_date": "2021-02-17", "refuse_duplicate": True})
    assert member.status_code == 409 and people["demir"] in member.get_json()["detail"]

    # Not asked: recorded as before, the answer names the match, and so does the log.
    seq = last_seq(app)
    created = api.post("/api/v1/families", "nurse1", json=same)
    assert created.status_code == 201
    assert created.get_json()["possible_duplicates"] == [people["demir"]]
    (logged_create,) = audit_rows(app, seq)
    assert logged_create.action == "family.create"
    assert logged_create.family_id == created.get_json()["id"]
    assert people["demir"] in logged_create.detail and "refuse_duplicate" not in str(
        logged_create)
    assert family_count(app) == before + 1
    # Another birth date, or none: no match, recorded even when refusing.
    for body in ({"display_name": "Aylin Demir", "birth_date": "2024-03-15"},
                 {"display_name": "Aylin Demir"}):
        other = api.post("/api/v1/families", "nurse1", json={**body, "refuse_duplicate": True})
        assert other.status_code == 201, other.get_json()
        assert other.get_json()["possible_duplicates"] == []
    # Child protection sees only its own family; the NGO (no birth dates) never matches.
    cps = api.post("/api/v1/families", "cps1", json={**same, "refuse_duplicate": True})
    assert cps.status_code == 409 and people["cps"] in cps.get_json()["detail"]
    assert people["demir"] not in cps.get_json()["detail"]
    ngo = api.post("/api/v1/families", "ngo1", json={"display_name": "Aylin",
                                                     "refuse_duplicate": True})
    assert ngo.status_code == 201 and ngo.get_json()["possible_duplicates"] == []


def test_refuse_duplicate_must_be_a_boolean(api: Api) -> None:
    response = api.post("/api/v1/families", "nurse1",
                        json={"display_name": "X", "refuse_duplicate": "yes"})
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["refuse_duplicate"]


def test_the_new_family_form_warns_first_and_records_anyway_when_confirmed(
        app: Flask, api: Api, people: People) -> None:
    set_passwords(app)
    client = signed_in(app, "nurse1")
    form = {"display_name": "Aylin DEMİR", "birth_date": "2024-03-14", "languages": "tr"}
    token = csrf_token(client.get("/staff/families/new").get_data(as_text=True))
    elsewhere = api.new_family("nurse1", display_name="Emir Kaya", birth_date="2021-02-17")
    before = family_count(app)
    warned = client.post("/staff/families/new", data={**form, "csrf_token": token})
    assert warned.status_code == 200
    html = warned.get_data(as_text=True)
    assert 'id="possible-duplicate"' in html and "already see a family" in html
    assert f'href="/staff/families/{people["demir"]}"' in html
    assert people["cps"] not in html  # not visible to the health centre
    assert f'name="record_anyway" value="{people["demir"]}"' in html
    assert "Record a new family anyway" in html
    # What was typed is kept, and nothing was recorded.
    assert 'value="Aylin DEMİR"' in html and 'value="2024-03-14"' in html
    assert family_count(app) == before

    # Confirming for one family does not pass another: changed to the
    # child's name and birth date, it meets another family and warns again ...
    again = client.post("/staff/families/new", data={
        "display_name": "Emir", "birth_date": "2021-02-17",
        "record_anyway": people["demir"], "csrf_token": csrf_token(html)})
    assert again.status_code == 200 and 'id="possible-duplicate"' in page_of(again)
    assert elsewhere in page_of(again) and family_count(app) == before
    # ... while the confirmed families are recorded anyway.
    confirmed = client.post("/staff/families/new", data={
        **form, "record_anyway": people["demir"], "csrf_token": csrf_token(html)})
    assert confirmed.status_code == 302
    assert family_count(app) == before + 1
    new_id = confirmed.headers["Location"].rsplit("/", 1)[1]
    assert new_id not in people.ids.values()
    # Without a match the form records at once, as before.
    other = client.post("/staff/families/new", data={
        "display_name": "Aylin Demir", "birth_date": "2024-03-15", "csrf_token": token})
    assert other.status_code == 302
    assert family_count(app) == before + 2


# --- what is stored ---------------------------------------------------------------------

WORDS = ["Zyxwquor", "Plimbtastic", "Vexnorb", "Quillimp", "Özgürtakım"]
DATES = ["2017-05-29", "2018-08-03"]


def test_no_word_or_date_is_stored_in_the_clear(app: Flask, api: Api, db_url: str) -> None:
    family = api.new_family(
        "nurse1", display_name=f"{WORDS[0]} {WORDS[1]}", birth_date=DATES[0],
        members=[{"name": f"{WORDS[2]}-{WORDS[3]} {WORDS[4]}", "relation": "child",
                  "birth_date": DATES[1]}])
    assert api_found(api, "nurse1", {"name": WORDS[2]}) == [family]
    assert api_found(api, "nurse1", {"birth_date": DATES[1]}) == [family]
    vault = app.extensions["onestory"].vault
    unkeyed = PlaintextVault()
    data = stored_bytes(db_url)
    assert family.encode() in data  # the scan sees the rows
    for value in [*WORDS, *DATES]:
        forms = {value, value.lower(), value.upper(), fold(value)}
        for form in forms:
            assert form.encode() not in data, form
            assert form.encode().hex().encode() not in data.lower(), form
            # Nor an unkeyed digest that a dictionary would reverse.
            for digest in (hashlib.sha256(form.encode()).hexdigest(),
                           unkeyed.blind_index(search_index.WORD, form),
                           unkeyed.blind_index(search_index.BIRTH_DATE, form)):
                assert digest.encode() not in data, form
    # The terms are the keyed ones: one per word and date, nothing else.
    with app.extensions["onestory"].sessions() as session:
        stored = set(session.scalars(select(SearchTerm.term)
                                     .where(SearchTerm.family_id == family)))
    expected = {vault.blind_index(search_index.WORD, fold(w)) for w in WORDS} | {
        vault.blind_index(search_index.BIRTH_DATE, d) for d in DATES}
    assert stored == expected


# --- one query per table, whatever matches ----------------------------------------------


def test_search_statements_do_not_grow_with_matches_or_members(app: Flask, api: Api) -> None:
    query = {"name": "Emir", "birth_date": "2021-02-17"}
    members = [{"name": "Emir Kaya", "relation": "child", "birth_date": "2021-02-17"}]
    first = api.new_family("nurse1", display_name="Kaya", members=members)
    api.sign(first, {"physio": ["involvement"]})
    with counting(app) as few:
        assert len(api_found(api, "physio1", query)) == 1
    for i in range(12):
        family = api.new_family("nurse1", display_name=f"Kaya {i}", members=[
            *members, *({"name": f"Emir Other{j}", "relation": "child"} for j in range(5))])
        api.sign(family, {"physio": ["involvement"]})
    with counting(app) as many:
        assert len(api_found(api, "physio1", query)) == 13
    assert len(many) == len(few)
    # token, the search (one statement), the audit append (head locked and
    # read, entry, head) and SQLite's BEGIN.
    searches = [s for s in many if "search_terms" in s]
    assert len(searches) == 1, searches
    assert len(many) <= 8, many


# --- onestory search reindex -----------------------------------------------------------


def terms_and_marks(app: Flask) -> tuple[list[tuple[str, str, str]], list[str]]:
    with app.extensions["onestory"].sessions() as session:
        terms = sorted(tuple(r) for r in session.execute(
            select(SearchTerm.family_id, SearchTerm.owner, SearchTerm.term)))
        marks = sorted(session.scalars(select(SearchIndexed.family_id)))
    return terms, marks  # type: ignore[return-value]


def as_before_the_index(app: Flask) -> None:
    """The families as an upgrade to 0008 finds them: no term, no mark."""
    with app.extensions["onestory"].engine.begin() as conn:
        conn.execute(text("DELETE FROM search_terms"))
        conn.execute(text("DELETE FROM search_indexed"))


def test_reindex_indexes_what_is_left_resumes_after_an_interruption_and_is_idempotent(
        app: Flask, api: Api, people: People, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    indexed = terms_and_marks(app)
    assert len(indexed[1]) == 4
    as_before_the_index(app)
    # Before reindexing, a family is found by its whole name and its own
    # birth date only, as before this version.
    assert api_found(api, "nurse1", {"name": "Emir"}) == []
    assert api_found(api, "nurse1", {"name": "aylin demir"}) == [people["demir"]]
    assert api_found(api, "nurse1", {"birth_date": "2024-03-14"}) == [people["demir"]]
    assert api_found(api, "nurse1", {"birth_date": "2021-02-17"}) == []
    # `onestory init` (run at every upgrade) says what is left to do.
    init = run(capsys, "init")
    assert_ok(init)
    assert init.out.splitlines()[-1] == ("4 families are not yet in the search index under "
                                         "this index key: run `onestory search reindex`")

    # A run stopped after its first batch (a data key that does not open).
    real = search_index.reindex_batch
    calls = []

    def stops_on_the_second_batch(*args: Any, **kw: Any) -> list[str]:
        calls.append(1)
        if len(calls) == 2:
            raise VaultError("a family's data key is missing (erased, or never made)")
        return real(*args, **kw)

    cli_env.setattr(search_index, "reindex_batch", stops_on_the_second_batch)
    stopped = run(capsys, "search", "reindex", "--batch", "1")
    assert stopped.code == 1 and "Traceback" not in stopped.err
    lines = stopped.err.strip().splitlines()
    assert lines[:2] == ["search reindex: 4 families to index",
                         "search reindex: 1 of 4 families indexed"]
    assert lines[-1] == ("onestory: search reindex stopped after 1 of 4 families: a family's "
                         "data key is missing (erased, or never made); what was indexed is "
                         "kept, run it again to go on")
    assert len(terms_and_marks(app)[1]) == 1
    cli_env.setattr(search_index, "reindex_batch", real)

    # Run again: it goes on with the three left.
    resumed = run(capsys, "search", "reindex", "--batch", "2")
    assert_ok(resumed)
    assert resumed.err.splitlines() == ["search reindex: 3 families to index",
                                        "search reindex: 2 of 3 families indexed",
                                        "search reindex: 3 of 3 families indexed"]
    assert resumed.out.strip() == "search index is current: 3 families indexed now"
    assert terms_and_marks(app)[0] == indexed[0]
    assert api_found(api, "nurse1", {"name": "Emir"}) == [people["demir"]]
    assert api_found(api, "nurse1", {"birth_date": "2021-02-17"}) == [people["demir"]]

    # Once more: nothing left, nothing changed.
    again = run(capsys, "search", "reindex")
    assert_ok(again)
    assert again.err.splitlines() == ["search reindex: 0 families to index"]
    assert again.out.strip() == "search index is current: 0 families indexed now"
    assert terms_and_marks(app)[0] == indexed[0]
    assert len(run(capsys, "init").out.splitlines()) == 1  # nothing left to say


def test_a_new_index_key_makes_every_family_due_again(
        app: Flask, api: Api, people: People, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Terms made under another index key (a restored backup, a new key)
    are not current: reindex makes them again under the key in use."""
    import base64

    cli_env.setenv("ONESTORY_INDEX_KEY", base64.b64encode(b"n" * 32).decode())
    other = run(capsys, "search", "reindex")
    assert_ok(other)
    assert other.err.splitlines()[0] == "search reindex: 4 families to index"
    # This app's key no longer meets the terms: the words are not found ...
    assert api_found(api, "nurse1", {"name": "Emir"}) == []
    cli_env.setenv("ONESTORY_INDEX_KEY", INDEX_KEY)
    back = run(capsys, "search", "reindex")
    assert_ok(back)
    assert back.err.splitlines()[0] == "search reindex: 4 families to index"
    # ... until they are made again under it.
    assert api_found(api, "nurse1", {"name": "Emir"}) == [people["demir"]]


def test_reindex_needs_a_current_schema_and_says_so_in_one_line(
        app: Flask, api: Api, cli_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with app.extensions["onestory"].engine.begin() as conn:
        version = conn.scalar(text("SELECT version_num FROM alembic_version"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0006'"))
    try:
        result = run(capsys, "search", "reindex")
    finally:
        with app.extensions["onestory"].engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": version})
    assert result.code == 1
    assert result.err.strip() == ("onestory: the database schema is not current: "
                                  "run `onestory init`")


def test_an_erased_family_leaves_the_index(app: Flask, api: Api, people: People) -> None:
    response = api.call("DELETE", f"/api/v1/families/{people['demir']}", "admin1",
                        json={"reason": "asked by the family"})
    assert response.status_code == 204
    assert api_found(api, "nurse1", {"name": "Emir"}) == []
    terms, marks = terms_and_marks(app)
    assert people["demir"] not in {t[0] for t in terms} | set(marks)
