"""The floor of bench/load.py: the least a server can do for a shared-record
read, served the way `onestory serve` serves OneStory.

A minimal Flask application on plain SQLAlchemy Core. `GET
/api/v1/families/<id>` reads, in one transaction, the rows the shared-record
read touches (the family, its involvements with their contact worker's
username, its current consent form and the form's cells, its entries with
their author's username, the field catalogue) and returns them as JSON, the
sealed values as base64: no token, no consent decision, no key, no
decryption. In the same transaction it appends one row of the same size as the
read's audit entry (the values of a real `record.read` entry, given as
--audit-row, with this family, time and a new request id) to a plain table with
audit_log's columns and indexes and no chain (`common.plain_log_table`, numbered
by the database), and commits. `GET /healthz` answers as OneStory's does.

It runs under `coordination.serving.serve`, the same gunicorn set-up as
`onestory serve` (worker class, threads, limits, access log), with --workers
workers. bench/load.py starts it; `python bench/floor_app.py --help` for the
options.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# As in the other benchmarks: the project root before bench/ on the module path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import plain_log_table
from flask import Flask, Response, jsonify
from sqlalchemy import Table, create_engine, insert, select

from audit.chain import audit_time
from consent.tables import ConsentCellRow, ConsentFormRow
from coordination.config import Settings
from coordination.model import Entry, Family, FieldDef, Involvement, Staff
from coordination.serving import serve

FLOOR_LOG = "floor_log"


def _t(mapped: Any) -> Table:
    table: Table = mapped.__table__
    return table


FAMILIES, INVOLVEMENTS, ENTRIES = _t(Family), _t(Involvement), _t(Entry)
FORMS, CELLS, STAFF, FIELDS = _t(ConsentFormRow), _t(ConsentCellRow), _t(Staff), _t(FieldDef)


def log_table() -> Table:
    """The floor's plain log table (bench/load.py creates it before the floor starts)."""
    return plain_log_table(FLOOR_LOG, numbered_by_database=True)


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode()


def create_floor_app(database_url: str, audit_row: dict[str, Any]) -> Flask:
    """The floor application: its own engine (SQLAlchemy's defaults), made in
    each worker. `audit_row`: audit_log's columns but `seq`, as a real entry."""
    engine = create_engine(database_url)
    log = log_table()
    app = Flask("floor")

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/api/v1/families/<family_id>")
    def family(family_id: str) -> Response | tuple[Response, int]:
        with engine.begin() as conn:
            row = conn.execute(select(FAMILIES).where(FAMILIES.c.id == family_id)).first()
            if row is None:
                return jsonify({"status": 404, "title": "Not found"}), 404
            involvements = conn.execute(
                select(INVOLVEMENTS.c.agency_id, INVOLVEMENTS.c.status, INVOLVEMENTS.c.since,
                       STAFF.c.username)
                .outerjoin(STAFF, STAFF.c.id == INVOLVEMENTS.c.contact_worker_id)
                .where(INVOLVEMENTS.c.family_id == family_id)
                .order_by(INVOLVEMENTS.c.since, INVOLVEMENTS.c.id)).all()
            form = conn.execute(
                select(FORMS.c.id, FORMS.c.version, FORMS.c.valid_until)
                .where(FORMS.c.family_id == family_id)
                .order_by(FORMS.c.version.desc()).limit(1)).first()
            grid = [] if form is None else conn.execute(
                select(CELLS.c.agency_id, CELLS.c.field_id)
                .where(CELLS.c.form_id == form.id)).all()
            entries = conn.execute(
                select(ENTRIES.c.id, ENTRIES.c.field_id, ENTRIES.c.agency_id,
                       ENTRIES.c.written_at, ENTRIES.c.value, STAFF.c.username)
                .join(STAFF, STAFF.c.id == ENTRIES.c.author_id)
                .where(ENTRIES.c.family_id == family_id)
                .order_by(ENTRIES.c.written_at, ENTRIES.c.id)).all()
            fields: dict[str, list[dict[str, Any]]] = {
                field_id: [] for field_id in conn.execute(
                    select(FIELDS.c.id).order_by(FIELDS.c.position, FIELDS.c.id)).scalars()}
            conn.execute(insert(log), {**audit_row, "family_id": family_id,
                                       "at": audit_time(datetime.now(UTC)),
                                       "request_id": uuid.uuid4().hex})
        for e in entries:
            fields.setdefault(e.field_id, []).append({
                "id": e.id, "agency": e.agency_id, "author": e.username,
                "written_at": e.written_at.isoformat(), "value": _b64(e.value)})
        return jsonify({
            "id": row.id,
            "display_name": _b64(row.display_name),
            "fields": fields,
            "grid": sorted([a, f] for a, f in grid),
            "form": None if form is None else {"version": form.version,
                                               "valid_until": form.valid_until.isoformat()},
            "involvements": [{"agency": i.agency_id, "status": i.status,
                              "since": i.since.isoformat(), "contact_worker": i.username}
                             for i in involvements],
        })

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--audit-row", type=Path, required=True,
                        help="a JSON file: audit_log's columns but seq, from a real entry")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    row = json.loads(args.audit_row.read_text())
    if not isinstance(row, dict) or "seq" in row:
        parser.error("--audit-row must be an object of audit_log's columns without seq")
    url = args.database_url
    serve(args.host, args.port, args.workers, Settings.max_body_bytes,
          application=lambda: create_floor_app(url, row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
