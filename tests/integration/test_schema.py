"""The schema comes from Alembic only, matches the models, and protects
what must not change."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

import consent.services as consent_store
from consent.errors import FormImmutable
from consent.tables import ConsentFormRow
from coordination import accounts, migrate
from coordination.crypto import PlaintextVault
from coordination.db import Base, make_engine, make_session_factory
from coordination.keystore import KeyBase
from coordination.model import FieldDef
from tests.pg import create_database

NOW = datetime(2026, 11, 22, 10, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/fresh.db"
    return create_database(request.getfixturevalue("pg_admin_url"))


def test_upgrade_head_builds_what_the_models_describe(fresh_url: str) -> None:
    engine = make_engine(fresh_url)
    try:
        assert not migrate.is_current(engine)
        migrate.upgrade(engine)
        migrate.upgrade(engine)  # idempotent
        assert migrate.is_current(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        tables = set(inspect(engine).get_table_names())
        assert {"agencies", "staff", "families", "family_members", "fields", "involvements",
                "entries", "consent_forms", "consent_cells", "consent_receipts",
                "api_tokens"} <= tables
        with make_session_factory(engine)() as session:
            rows = list(session.scalars(select(FieldDef.id).order_by(FieldDef.position)))
        assert rows == ["involvement", "contact", "household", "story", "health", "education",
                        "social", "protection"]
    finally:
        engine.dispose()


def test_key_store_upgrade_head_builds_what_its_models_describe(fresh_url: str) -> None:
    """The key store's own migrations (data keys, the active master version,
    node heartbeats) match `coordination.keystore`'s models."""
    engine = make_engine(fresh_url)
    try:
        assert not migrate.is_current(engine, keystore=True)
        migrate.upgrade(engine, keystore=True)
        migrate.upgrade(engine, keystore=True)  # idempotent
        assert migrate.is_current(engine, keystore=True)
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": "keystore_version"})
            assert compare_metadata(context, KeyBase.metadata) == []
        assert {"data_keys", "master_key_state", "key_nodes"} <= set(
            inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _form_meta() -> consent_store.FormMeta:
    return consent_store.FormMeta(
        signed_by=b"\x00x", signed_on=date(2026, 11, 22), method="paper", witness="w",
        interpreter_language=None, purpose=b"\x00p", legal_basis="consent",
        valid_until=date(2027, 11, 22))


def _family(db_url: str) -> str:
    from coordination.actors import Actor
    from coordination.casework import families
    from coordination.roles import Role

    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with factory() as session:
        accounts.add_agency(session, "hc", "HC", "health", False, NOW)
        staff = accounts.add_staff(session, "n1", "hc", "practitioner", None, NOW)
        actor = Actor(username="n1", staff_id=staff.id, agency_id="hc",
                      role=Role.PRACTITIONER)
        family_id = families.create_family(session, PlaintextVault(), actor,
                                           {"display_name": "F"}, NOW)["id"]
    engine.dispose()
    return family_id


def test_a_stored_form_version_cannot_be_changed(db_url: str) -> None:
    family_id = _family(db_url)
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    consent_store.install_guards(factory)
    try:
        with factory() as session:
            consent_store.write_version(session, family_id, 1, _form_meta(),
                                        frozenset({("hc", "health")}), change="signed",
                                        changed_by="c", now=NOW)
            session.commit()
        with factory() as session:
            row = session.scalars(select(ConsentFormRow)).one()
            row.valid_until = date(2030, 1, 1)
            with pytest.raises(FormImmutable):
                session.flush()
        with factory() as session:
            row = session.scalars(select(ConsentFormRow)).one()
            session.delete(row)
            with pytest.raises(FormImmutable):
                session.flush()
            session.rollback()
            assert session.scalars(select(ConsentFormRow)).one().valid_until == date(2027, 11,
                                                                                     22)
    finally:
        engine.dispose()


def test_concurrent_versions_conflict_instead_of_forking(db_url: str) -> None:
    """Two writers that both read version 1 cannot both write version 2."""
    family_id = _family(db_url)
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    results: list[str] = []
    barrier = threading.Barrier(2)

    def writer(field: str) -> None:
        with factory() as session:
            barrier.wait()
            try:
                consent_store.write_version(session, family_id, 2, _form_meta(),
                                            frozenset({("hc", field)}), change="re-signed",
                                            changed_by=field, now=NOW)
                session.commit()
                results.append("ok")
            except Exception as exc:  # noqa: BLE001 - the loser's error is the point
                session.rollback()
                results.append(type(exc).__name__)

    threads = [threading.Thread(target=writer, args=(f,)) for f in ("health", "story")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert sorted(results)[-1] == "ok"
        assert results.count("ok") == 1, results
        with factory() as session:
            assert len(session.scalars(select(ConsentFormRow)).all()) == 1
    finally:
        engine.dispose()
