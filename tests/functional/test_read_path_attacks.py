"""Attacks on the fast read path (issue 13): the family, its form, duty
grants and the caller's emergency access now load in one statement, and the
shared record's content in another. The decision must get exactly what the
per-table queries give, whatever the family holds; on both databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

import audit.services as audit_services
import consent.services as consent_store
from audit.model import AuditEntry
from consent.tables import ConsentCellRow, ConsentFormRow
from coordination import db, migrate
from coordination.actors import Actor
from coordination.app import create_app
from coordination.casework.common import _load, _load_read, duty_grant_of
from coordination.config import Settings
from coordination.db import make_engine
from coordination.model import DutyGrantRow, EmergencyAccess, Involvement, Staff
from coordination.roles import Role
from tests.conftest import AUDIT_KEY, INDEX_KEY, Api, Clock
from tests.functional.test_database_down import _api


def _actor(session: Session, username: str) -> Actor:
    staff = session.scalars(select(Staff).where(Staff.username == username)).one()
    return Actor(username=username, staff_id=staff.id, agency_id=staff.agency_id,
                 role=Role(staff.role))


def _reference(session: Session, family_id: str, actor: Actor, now: datetime) -> Any:
    """What the per-table queries (the code before the one statement) give."""
    involvements = [(i.id, i.agency_id, i.status) for i in session.scalars(
        select(Involvement).where(Involvement.family_id == family_id)
        .order_by(Involvement.since, Involvement.id))]
    forms = session.scalars(select(ConsentFormRow).where(ConsentFormRow.family_id == family_id)
                            .order_by(ConsentFormRow.version.desc()).limit(1)).all()
    row = forms[0] if forms else None
    form = None if row is None else consent_store.form_of(row, session.execute(
        select(ConsentCellRow.agency_id, ConsentCellRow.field_id)
        .where(ConsentCellRow.form_id == row.id)).tuples())
    duty = tuple(duty_grant_of(r) for r in session.scalars(
        select(DutyGrantRow).where(DutyGrantRow.family_id == family_id)
        .order_by(DutyGrantRow.created_at, DutyGrantRow.id)))
    emergency = session.scalar(
        select(EmergencyAccess.id)
        .where(EmergencyAccess.family_id == family_id, EmergencyAccess.staff_id == actor.staff_id,
               EmergencyAccess.opened_at <= now, EmergencyAccess.expires_at > now)
        .order_by(EmergencyAccess.expires_at.desc()).limit(1))
    return (involvements, None if row is None else row.id, form, duty, emergency)


def _loaded(app: Flask, session: Session, family_id: str, actor: Actor, now: datetime) -> Any:
    view = _load(session, app.extensions["onestory"].vault, family_id, actor, now)
    assert view is not None
    return ([(i.id, i.agency_id, i.status) for i in view.involvements],
            None if view.form_row is None else view.form_row.id, view.form, view.duty,
            view.emergency)


def _read(app: Flask, session: Session, family_id: str, actor: Actor, now: datetime) -> Any:
    """`_loaded` of the read's plain copy (`_load_read`), and the facts it
    holds beside the decision's, as the tracked objects give them."""
    vault = app.extensions["onestory"].vault
    plain = _load_read(session, vault, family_id, actor, now)
    assert plain is not None and not session.identity_map  # nothing entered the session
    view = _load(session, vault, family_id, actor, now)
    assert view is not None
    family = view.family
    facts = (tuple(getattr(family, f) for f in plain.family._fields),
             None if view.form_row is None else tuple(
                 getattr(view.form_row, f) for f in plain.form_row._fields if f != "statistics")
             + (bool(view.form_row.statistics),),
             [(i.id, i.agency_id, i.status, i.since,
               i.contact_worker.username if i.contact_worker else None)
              for i in view.involvements],
             view.recorded_minimal)
    got = (tuple(plain.family), None if plain.form_row is None else tuple(plain.form_row),
           [tuple(i) for i in plain.involvements], plain.recorded_minimal)
    assert got == facts, (family_id, got, facts)
    return ([(i.id, i.agency_id, i.status) for i in plain.involvements],
            None if plain.form_row is None else plain.form_row.id, plain.form, plain.duty,
            plain.emergency)


def _grant(session: Session, family_id: str, gid: str, agency: str, fields: str, state: str,
           until: date, created: datetime) -> None:
    session.add(DutyGrantRow(
        id=gid, family_id=family_id, agency_id=agency, fields=fields,
        legal_basis="legal_obligation", justification=b"x", until=until, state=state,
        proposed_by="coord1", proposer_agency="health-centre", created_at=created))


def _glass(session: Session, family_id: str | None, eid: str, staff: str, opened: datetime,
           expires: datetime | None) -> None:
    staff_row = session.scalars(select(Staff).where(Staff.username == staff)).one()
    session.add(EmergencyAccess(
        id=eid, family_id=family_id, staff_id=staff_row.id, agency_id=staff_row.agency_id,
        legal_basis="vital_interest", reason=None, opened_at=opened, expires_at=expires))


def test_the_one_statement_gives_the_decision_what_the_per_table_queries_give(
        app: Flask, api: Api, clock: Clock) -> None:
    """Families with no form, with several versions (the newest counts), an
    expired one, a revoked cell; duty grants in every state, ending in the
    past, today and later, created in one microsecond and across seconds;
    emergency accesses of the caller, of a colleague, expired, not yet
    open, ending exactly now, of another family: compared at moments on
    every boundary, for several callers; and the read's plain copy of the
    same statement (`_load_read`) gives the same, with the same facts as
    the tracked objects."""
    bare = api.new_family("nurse1")
    rich = api.new_family("nurse1", members=[{"name": "A", "relation": "child"}])
    other = api.new_family("nurse1")
    api.sign(rich, {"physio": ["health", "story"]})
    api.sign(rich, {"physio": ["health", "involvement"], "ecec": ["education", "social"]})
    revoked = api.post(f"/api/v1/families/{rich}/consent/revoke", "coord1",
                       json={"agency": "ecec", "field": "social"})
    assert revoked.status_code < 300, revoked.get_json()
    # A second involvement, without a contact worker.
    involved = api.post(f"/api/v1/families/{rich}/involvements", "coord1",
                        json={"agency": "physio"})
    assert involved.status_code < 300, involved.get_json()
    api.sign(other, {"physio": ["health"]}, valid_until=(clock().date() + timedelta(days=1))
             .isoformat())
    t0 = clock()
    today = t0.date()
    rt = app.extensions["onestory"]
    if rt.engine.dialect.name == "postgresql":
        # A server whose sessions do not run in UTC changes nothing.
        def far_east(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'Pacific/Kiritimati'")
            dbapi_connection.commit()

        event.listen(rt.engine, "checkout", far_east)
        with rt.sessions() as session:
            assert session.scalar(text("SHOW TIME ZONE")) == "Pacific/Kiritimati"
    with rt.sessions() as session:
        created = [t0, t0, t0 + timedelta(microseconds=1), t0 + timedelta(seconds=1),
                   t0 + timedelta(seconds=1, microseconds=500000), t0 - timedelta(days=2)]
        for n, (state, until) in enumerate([
                ("approved", today), ("approved", today - timedelta(days=1)),
                ("pending_approval", today + timedelta(days=5)),
                ("rejected", today + timedelta(days=5)),
                ("approved", today + timedelta(days=30)), ("approved", today + timedelta(days=1))]):
            _grant(session, rich, f"dg_{5 - n}", ["physio", "ecec", "cps"][n % 3],
                   "involvement,health,story" if n % 2 else "involvement", state, until,
                   created[n])
        _grant(session, other, "dg_other", "physio", "involvement,health", "approved",
               today + timedelta(days=3), t0)
        _glass(session, rich, "ea_mine", "physio1", t0, t0 + timedelta(hours=2))
        _glass(session, rich, "ea_old", "physio1", t0 - timedelta(hours=5),
                t0 - timedelta(hours=3))
        _glass(session, rich, "ea_later", "physio1", t0 + timedelta(hours=3),
               t0 + timedelta(hours=5))
        _glass(session, rich, "ea_colleague", "physiocoord", t0 - timedelta(hours=1),
               t0 + timedelta(hours=8))
        _glass(session, other, "ea_other", "physio1", t0 - timedelta(hours=1),
               t0 + timedelta(hours=8))
        _glass(session, None, "ea_nobody", "physio1", t0 - timedelta(hours=1), None)
        session.commit()
    moments = [t0 - timedelta(hours=4), t0 - timedelta(microseconds=1), t0,
               t0 + timedelta(hours=2) - timedelta(microseconds=1), t0 + timedelta(hours=2),
               t0 + timedelta(hours=3), t0 + timedelta(hours=9),
               datetime.combine(today, datetime.max.time(), UTC),
               datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC),
               t0 + timedelta(days=2), t0 + timedelta(days=400),
               # the same instant in another time zone
               (t0 + timedelta(hours=1)).astimezone(ZoneInfo("Pacific/Kiritimati"))]
    opened = set()
    for who in ("physio1", "physiocoord", "ecec1", "nurse1", "cps1"):
        for family in (bare, rich, other):
            for now in moments:
                with rt.sessions() as session:
                    actor = _actor(session, who)
                    want = _reference(session, family, actor, now)
                with rt.sessions() as session:
                    got = _loaded(app, session, family, actor, now)
                assert got == want, (who, family, now)
                with rt.sessions() as session:
                    read = _read(app, session, family, actor, now)
                assert read == want, (who, family, now)
                opened.add(want[4])
    assert opened == {None, "ea_mine", "ea_old", "ea_colleague", "ea_later", "ea_other"}


WAIT = 10.0  # seconds a step may take before the test fails (never reached when it works)


@pytest.fixture
def served_app(tmp_path: Path, keyring_file: Path, clock: Clock,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The application as `onestory serve` runs it on SQLite: its
    transactions take turns (`coordination.db.serve_in_turns`)."""
    urls = [f"sqlite:///{tmp_path / 'data.db'}", f"sqlite:///{tmp_path / 'keys.db'}"]
    for url, keystore in zip(urls, (False, True), strict=True):
        engine = make_engine(url)
        migrate.upgrade(engine, keystore=keystore)
        engine.dispose()
    settings = Settings(env="production", instance=tmp_path, database_url=urls[0],
                        keystore_url=urls[1], keyring_file=keyring_file,
                        index_key_text=INDEX_KEY, audit_key_text=AUDIT_KEY,
                        secret_key="test-secret-key")
    monkeypatch.setattr(db, "_serving_in_turns", False)
    db.serve_in_turns()
    app = create_app(settings, clock=clock)
    app.extensions["onestory"].keystore  # noqa: B018 - its engine made in turns too
    monkeypatch.setattr(db, "_serving_in_turns", False)
    assert db.turns_of(app.extensions["onestory"].engine) is not None
    try:
        yield app
    finally:
        app.extensions["onestory"].dispose()


def test_a_verification_walking_the_log_holds_up_no_request(
        served_app: Flask, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """An auditor verifies the chain (on a long log, seconds to minutes of
    walking) on the embedded default: the walk only reads, on its own
    snapshot, so it must not hold the server's turn; meanwhile a read and a
    write are answered, and the verification still finds the chain whole."""
    api = _api(served_app, clock)
    family = api.new_family("nurse1")
    walking, release = threading.Event(), threading.Event()
    walk = audit_services.verify_rows

    def slow_walk(*args: Any, **kwargs: Any) -> Any:
        walking.set()
        release.wait(WAIT)
        return walk(*args, **kwargs)

    monkeypatch.setattr(audit_services, "verify_rows", slow_walk)
    verified: list[Any] = []
    auditor = threading.Thread(target=lambda: verified.append(
        Api(served_app.test_client(), api.tokens).get("/api/v1/audit/verify", "auditor1")))
    auditor.start()
    try:
        assert walking.wait(WAIT)
        answered: list[int] = []

        def casework() -> None:
            other = Api(served_app.test_client(), api.tokens)
            answered.append(other.get(f"/api/v1/families/{family}", "nurse1").status_code)
            answered.append(other.post(f"/api/v1/families/{family}/entries", "nurse1", json={
                "field": "health", "value": "during the walk"}).status_code)

        worker = threading.Thread(target=casework)
        worker.start()
        worker.join(WAIT)
        assert answered == [200, 201], "a request waited for the verification's walk"
    finally:
        release.set()
        auditor.join(WAIT * 4)
    assert verified[0].status_code == 200, verified[0].get_json()
    assert verified[0].get_json()["ok"] is True


def test_the_record_content_in_one_statement_is_what_the_per_table_queries_give(
        app: Flask, api: Api) -> None:
    """Each family's entries (never another's) with their authors, in order;
    minimal-data authorship as the agencies say; members in their order,
    with and without birth dates; a family with nothing in it; every
    catalogue field whether or not it has entries, as its row says it."""
    from coordination.casework.common import catalogue
    from coordination.casework.record import _content, _members
    from coordination.model import Agency, Entry, Member

    families = [
        api.new_family("nurse1", members=[
            {"name": f"Child {i}", "relation": "child", **(
                {"birth_date": "2020-01-0" + str(i % 9 + 1)} if i % 2 else {})}
            for i in range(12)]),
        api.new_family("nurse1"),
        api.new_family("physio1", members=[{"name": "Only", "relation": "parent"}])]
    for n in range(9):
        family, who = (families[0], "nurse1") if n % 3 else (families[2], "physio1")
        api.write(family, ["health", "story", "social"][n % 3], f"note {n}", who=who)
    rt = app.extensions["onestory"]
    with rt.sessions() as session:  # the health centre keeps minimal data (the NGO does)
        session.get(Agency, "health-centre").minimal_data = True  # type: ignore[union-attr]
        session.commit()
    for family in families:
        with rt.sessions() as session:
            cipher = rt.vault.for_family(family)
            want_entries = [(e.id, e.field_id, author) for e, author in session.execute(
                select(Entry, Staff.username).join(Staff, Staff.id == Entry.author_id)
                .where(Entry.family_id == family).order_by(Entry.written_at, Entry.id))]
            minimal = set(session.scalars(select(Agency.id).where(Agency.minimal_data)))
            want_members = [
                {"name": cipher.open("family_members", "name", m.id, m.name),
                 "relation": cipher.open("family_members", "relation", m.id, m.relation),
                 **({} if m.birth_date is None else {"birth_date": cipher.open(
                     "family_members", "birth_date", m.id, m.birth_date)})}
                for m in session.scalars(select(Member).where(Member.family_id == family)
                                         .order_by(Member.position))]
            fields = [(f.id, f.label, f.description, f.position, f.kinds, f.kind_list)
                      for f in catalogue(session)]
            entry_agencies = {e.id: e.agency_id for e in session.scalars(
                select(Entry).where(Entry.family_id == family))}
        with rt.sessions() as session:
            # As physio reads it; the areas come with it (none listed here).
            content = _content(session, family, "physio", "health-centre")
            assert content.areas == []
            for fid, es in content.by_field.items():  # each field's, in the same order
                assert [(e.id, e.field_id, a) for e, a in es] == [
                    w for w in want_entries if w[1] == fid]
            assert sum(len(es) for es in content.by_field.values()) == len(want_entries)
            assert [(*f, f.kind_list) for f in content.catalogue] == fields
            assert not session.identity_map  # plain values: nothing entered the session
            assert {a for a in entry_agencies.values() if a in minimal} == \
                set(content.minimal_authors)
            assert _members(cipher, content.members) == want_members
    assert {"ngo", "health-centre"} <= minimal


@pytest.mark.parametrize("attempt", ["unknown code", "real code", "staff password"])
def test_a_pin_being_checked_holds_up_no_request(
        served_app: Flask, clock: Clock, monkeypatch: pytest.MonkeyPatch, attempt: str) -> None:
    """Someone tries receipt codes and PINs (or a staff password) on the
    embedded default; while one is being checked (argon2, deliberately
    slow), a read of a family's record by staff is answered: the check runs
    outside any transaction (`coordination.accounts.attempt_in_turn`), so it
    does not hold the server's one turn. The guess still fails and counts."""
    from coordination import signin
    from tests.web import csrf_token, set_passwords

    api = _api(served_app, clock)
    family = api.new_family("nurse1")
    checking, release = threading.Event(), threading.Event()

    def held(check: Any) -> Any:
        def slow(*args: Any) -> Any:
            checking.set()
            release.wait(WAIT)
            return check(*args)
        return slow

    if attempt == "staff password":
        set_passwords(served_app)
        monkeypatch.setattr(signin, "_check_password", held(signin._check_password))
        client = served_app.test_client()
        form = {"username": "nurse1", "password": "wrong",
                "csrf_token": csrf_token(client.get("/sign-in").get_data(as_text=True))}

        def guess() -> int:
            return client.post("/sign-in", data=form).status_code
    else:
        code = "AAAA-BBBB"
        if attempt == "real code":
            code = api.sign(family, {"physio": ["health"]})["receipt"]["code"]
        monkeypatch.setattr(consent_store, "_verify", held(consent_store._verify))

        def guess() -> int:
            return served_app.test_client().post("/api/v1/family/session", json={
                "receipt_code": code, "pin": "000000"}).status_code
    guesses: list[int] = []
    guesser = threading.Thread(target=lambda: guesses.append(guess()))
    guesser.start()
    try:
        assert checking.wait(WAIT)
        answered: list[int] = []
        reader = threading.Thread(target=lambda: answered.append(
            Api(served_app.test_client(), api.tokens).get(
                f"/api/v1/families/{family}", "nurse1").status_code))
        reader.start()
        reader.join(WAIT / 2)
        while_checking = list(answered)
    finally:
        release.set()
        guesser.join(WAIT * 4)
    reader.join(WAIT * 4)
    assert guesses == [401]
    assert while_checking == [200], "a read waited for a PIN check"
    with served_app.extensions["onestory"].sessions() as session:
        failed = session.scalars(select(AuditEntry.reason).where(
            AuditEntry.action == "login.failed")).all()
    assert failed == ["wrong_password" if attempt == "staff password" else "wrong_code_or_pin"]


def test_a_search_finds_exactly_the_families_the_caller_may_see(
        app: Flask, api: Api, clock: Clock) -> None:
    """The search's statement, built once per shape with bound parameters,
    answers what `_visible` decides of each family: families of one name and
    birth date, visible to physiotherapy by an involvement, a form, a duty
    grant ending today, physio1's own emergency access; and hidden by a
    revoked column, a form ended yesterday (one ending today: visible until
    the day is over), another agency's record only, a
    colleague's, a closed and a future emergency access (until it opens), a
    grant still pending. Name only, date only, both; at moments on each
    boundary, one of them given in a time zone whose date is another; for
    physio1 and for its colleague."""
    from coordination.casework import families as family_search
    from coordination.casework.common import _visible
    from coordination.errors import FamilyNotFound

    name, born = "Aylin Özgür-Demir", "2020-05-01"
    today = clock().date()
    made: dict[str, str] = {}
    for label in ("involved", "form", "revoked", "ends_today", "ngo", "duty", "pending",
                  "mine", "colleague", "closed", "future"):
        # (a minimal-data agency records no birth date)
        made[label] = (api.new_family("ngo1", display_name=name) if label == "ngo" else
                       api.new_family("nurse1", display_name=name, birth_date=born))
    # Referred on the family's consent, which is then revoked: the part stays.
    api.sign(made["involved"], {"physio": ["involvement"]})
    assert api.post(f"/api/v1/families/{made['involved']}/involvements", "coord1",
                    json={"agency": "physio"}).status_code < 300
    assert api.post(f"/api/v1/families/{made['involved']}/consent/revoke", "coord1",
                    json={"agency": "physio", "field": "involvement"}).status_code < 300
    api.sign(made["form"], {"physio": ["health"]})
    api.sign(made["revoked"], {"physio": ["health"]})
    assert api.post(f"/api/v1/families/{made['revoked']}/consent/revoke", "coord1",
                    json={"agency": "physio", "field": "health"}).status_code < 300
    api.sign(made["ends_today"], {"physio": ["health"]}, valid_until=today.isoformat())
    t0 = clock()
    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        _grant(session, made["duty"], "dg_edge", "physio", "involvement", "approved", today, t0)
        _grant(session, made["pending"], "dg_wait", "physio", "involvement",
               "pending_approval", today + timedelta(days=9), t0)
        _glass(session, made["mine"], "ea_mine", "physio1", t0, t0 + timedelta(hours=2))
        _glass(session, made["colleague"], "ea_col", "physiocoord", t0, t0 + timedelta(hours=2))
        _glass(session, made["closed"], "ea_closed", "physio1", t0 - timedelta(hours=3),
               t0 - timedelta(hours=1))
        _glass(session, made["future"], "ea_future", "physio1", t0 + timedelta(hours=3),
               t0 + timedelta(hours=5))
        session.commit()
    moments = [t0, t0 + timedelta(hours=2) - timedelta(microseconds=1), t0 + timedelta(hours=2),
               t0 + timedelta(hours=4),
               datetime.combine(today, datetime.max.time(), UTC),
               datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC),
               # 23:30 UTC today, tomorrow's date in Kiritimati (UTC+14)
               datetime.combine(today, datetime.min.time(), UTC).replace(hour=23, minute=30)
               .astimezone(ZoneInfo("Pacific/Kiritimati"))]
    vault = rt.vault
    answers = set()
    for who in ("physio1", "physiocoord"):
        for now in moments:
            with rt.sessions() as session:
                actor = _actor(session, who)
                want = set()
                for family in made.values():
                    try:
                        _visible(session, vault, actor, family, now)
                        want.add(family)
                    except FamilyNotFound:
                        pass
            for asked in ((name, None), (None, date.fromisoformat(born)),
                          (name, date.fromisoformat(born)), ("özgür demir aylin", None)):
                with rt.sessions() as session:
                    found = family_search.search_families(session, vault, actor, *asked, now)
                assert {f["id"] for f in found} == want, (who, now, asked)
            answers.add((who, frozenset(k for k, v in made.items() if v in want)))
    everything_today = {"involved", "form", "ends_today", "duty"}
    assert ("physio1", frozenset({*everything_today, "mine"})) in answers
    assert ("physiocoord", frozenset({*everything_today, "colleague"})) in answers
    assert ("physio1", frozenset({"involved", "form"})) in answers  # the next day
    assert ("physio1", frozenset({*everything_today, "future"})) in answers  # once opened
    assert all(not ({"revoked", "ngo", "pending", "closed"} & seen) for _, seen in answers)
    assert all("colleague" not in seen for who, seen in answers if who == "physio1")


def test_the_shared_record_from_plain_values_is_the_one_from_tracked_objects(
        app: Flask, api: Api, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """`shared_record` decides on `_visible_read`'s plain values: with the
    tracked `_visible` in its place, every reader gets the same answer (the
    same refusal, or the same body, shown, withheld, own contact worker):
    a family with everything (members, address, area, national id, typed and
    free entries of several agencies, an involvement with a contact worker),
    one recorded by a minimal-data agency with an area while counted, each
    under a form, the caller's own emergency access (minimal-data entries
    stay withheld), a colleague's, one ended; before, during and after."""
    from coordination.casework import areas, record
    from coordination.casework.common import _visible
    from coordination.errors import FamilyNotFound

    rt = app.extensions["onestory"]
    with rt.sessions() as session:
        for agency, listed in {"health-centre": {"A1": "North"}, "ngo": {"N1": "Old town"},
                               "cps": {"C1": "Centre"}}.items():
            areas.set_agency_areas(session, agency, listed, [], clock())
    full = api.new_family("nurse1", display_name="Aylin Demir", birth_date="2019-02-03",
                          address="Storgata 1", languages=["tr", "nb"], national_id="0101",
                          area="A1", members=[{"name": "Deniz", "relation": "child",
                                               "birth_date": "2021-01-01"}])
    api.write(full, "health", "check-up fine")
    api.sign(full, {"physio": ["involvement", "health", "household"], "ecec": ["story"]})
    # (the recorder, nurse1, is the health centre's contact worker)
    assert api.post(f"/api/v1/families/{full}/involvements", "coord1", json={
        "agency": "physio"}).status_code < 300
    api.write(full, "health", "exercises", who="physio1")
    minimal = api.new_family("ngo1", display_name="K.")
    api.sign(minimal, {"ngo": ["involvement", "story", "contact"], "physio": ["contact"]},
             who="ngocoord", statistics=True)
    assert api.put(f"/api/v1/families/{minimal}/area", "ngo1",
                   json={"area": "N1"}).status_code == 200
    api.write(minimal, "story", "met at the drop-in", who="ngo1")
    api.write(minimal, "contact", "ask for K.", who="ngo1")
    t0 = clock()
    with rt.sessions() as session:
        for family in (full, minimal):
            _glass(session, family, f"ea_cps_{family}", "cps1", t0, t0 + timedelta(hours=2))
            _glass(session, family, f"ea_old_{family}", "ecec1", t0 - timedelta(hours=3),
                   t0 - timedelta(hours=1))
        session.commit()

    def outcome(session: Session, who: str, family: str, now: datetime) -> Any:
        actor = _actor(session, who)
        try:
            shared = record.shared_record(session, rt.vault, actor, family, now)
        except FamilyNotFound as refused:
            session.rollback()
            return ("refused", refused.args)
        worker: Any = shared.contact_worker  # the tracked objects give the Staff row
        return (shared.body, shared.shown, shared.withheld, shared.involved,
                getattr(worker, "username", worker),
                [(f.id, f.label, f.position, f.kinds) for f in shared.catalogue])

    seen = set()
    for now in (t0, t0 + timedelta(hours=1), t0 + timedelta(hours=3), t0 + timedelta(days=400)):
        for who in ("nurse1", "physio1", "physiocoord", "ecec1", "cps1", "ngo1", "ngocoord"):
            for family in (full, minimal):
                with rt.sessions() as session:
                    plain = outcome(session, who, family, now)
                with monkeypatch.context() as patched:
                    patched.setattr(record, "_visible_read", _visible)
                    with rt.sessions() as session:
                        tracked = outcome(session, who, family, now)
                assert plain == tracked, (who, family, now)
                seen.add(plain[0] == "refused")
                if who == "cps1" and now == t0 and family == minimal:
                    assert plain[0] != "refused"  # by the emergency access
                    assert "story" in plain[0]["withheld"] or "story" in plain[0]["partial"]
                    assert "met at the drop-in" not in str(plain[0])
    assert seen == {True, False}
