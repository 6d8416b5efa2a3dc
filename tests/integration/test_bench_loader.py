"""bench/common.py's bulk loader (bench/ is not a package: the module is loaded
by path): rows written through the driver (COPY on PostgreSQL, the driver's
executemany on SQLite) must be stored exactly as a Core insert stores them, and
families loaded that way must read through the product's shared-record read."""

from __future__ import annotations

import importlib.util
import random
import sys
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType

from sqlalchemy import String, cast, insert, select

from coordination.casework.record import shared_record
from coordination.crypto import AESGCM_TAG
from coordination.model import Family
from tests.conftest import T0

PATH = Path(__file__).resolve().parents[2] / "bench" / "common.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_common", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


common = _load()


def _family(family_id: str) -> dict[str, object]:
    return {
        "id": family_id,
        "display_name": b"\x00Aylin Demir",
        "name_index": "n" * 64,
        "birth_date_index": None,
        "birth_date": None,
        "address": b"\x00Storgata 1",
        "national_id": None,
        "languages": b'\x00["nb"]',
        "recorded_by_agency": "health-centre",
        "created_at": T0 - timedelta(days=3, microseconds=250),
    }


def test_insert_through_the_driver_stores_what_a_core_insert_stores(
        db_url: str, keystore_url: str) -> None:
    store = common.open_store("encrypted", db_url, keystore_url, T0)
    try:
        table = Family.__table__
        with store.sessions() as session:
            common._insert(session, table, [_family("fam_driver")])
            session.execute(insert(table), [_family("fam_core")])
            session.commit()
        with store.engine.connect() as conn:
            stored = {row[0]: row[1:] for row in conn.execute(
                select(table.c.id, cast(table.c.created_at, String), table.c.display_name,
                       table.c.birth_date_index))}
        assert stored["fam_driver"] == stored["fam_core"]
        with store.sessions() as session:
            loaded = session.get(Family, "fam_driver")
            assert loaded is not None
            assert loaded.created_at == T0 - timedelta(days=3, microseconds=250)
            assert loaded.created_at.tzinfo is not None
    finally:
        store.dispose()


def test_bulk_loaded_families_read_through_shared_record(
        db_url: str, keystore_url: str) -> None:
    store = common.open_store("encrypted", db_url, keystore_url, T0)
    try:
        loader = common.Loader([store], T0, store.staff_ids, keep_ids=False)
        loader.grow_to(30)
        loader.grow_to(45)
        assert loader.loaded == 45
        assert len(loader.family_ids) == 15  # only the last chunk is kept
        assert store.key_rows == 45
        drawn = common.sample_ids(store.engine, 60, random.Random(1))
        assert len(drawn) == 60
        with store.sessions() as session:
            every = set(session.scalars(select(Family.id)))
        assert len(every) == 45 and set(drawn) <= every
        for family_id in set(drawn):
            with store.sessions() as session:
                body = shared_record(session, store.vault, store.actor, family_id, T0).body
            assert sorted(body["fields"]) == ["health", "involvement"]
            values = [e["value"] for e in body["fields"]["health"]]
            assert any(v.startswith("Motor assessment") for v in values), values
            assert date.fromisoformat(body["involvements"][0]["since"]) < T0.date()
        with store.sessions() as session:
            sealed = session.scalars(select(Family.display_name)).first()
        assert sealed is not None and sealed[:1] == AESGCM_TAG
    finally:
        store.dispose()
