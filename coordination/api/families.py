"""Families, the shared record, entries and involvements."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for

from coordination import erasure, services
from coordination.api import actor, allow, body, db, load, runtime
from coordination.roles import Role
from coordination.schemas import (
    EntryIn,
    ErasureIn,
    FamilyIn,
    InvolvementPatch,
    ReferralIn,
    SearchArgs,
)

CASEWORK = (Role.PRACTITIONER, Role.COORDINATOR)


def register(bp: Blueprint) -> None:
    @bp.post("/families")
    @allow(*CASEWORK)
    def create_family() -> tuple[Response, int, dict[str, str]]:
        rt = runtime()
        data = load(FamilyIn(), body(),
                    also=lambda: services.family_errors(actor(), body(), rt.now()))
        created = services.create_family(db(), rt.vault, actor(), data, rt.now())
        location = url_for("api.family", family_id=created["id"])
        return jsonify(created), 201, {"Location": location}

    @bp.get("/families")
    @allow(*CASEWORK)
    def search() -> Response:
        args = load(SearchArgs(), request.args.to_dict())
        rt = runtime()
        found = services.search_families(
            db(), rt.vault, actor(), args["name"], args.get("birth_date"), rt.now()
        )
        return jsonify(found)

    @bp.get("/families/<id:family_id>")
    @allow(*CASEWORK)
    def family(family_id: str) -> Response:
        rt = runtime()
        record = services.shared_record(db(), rt.vault, actor(), family_id, rt.now())
        return jsonify(record.body)

    @bp.post("/families/<id:family_id>/entries")
    @allow(*CASEWORK)
    def write_entry(family_id: str) -> tuple[Response, int]:
        rt = runtime()
        data = load(EntryIn(), body(), checks_first=lambda: services.check_access(
            db(), rt.vault, actor(), family_id, rt.now(), involved=True),
            also=lambda: services.entry_errors(db(), actor(), body().get("field")))
        entry = services.write_entry(
            db(), rt.vault, actor(), family_id, data["field"], data["value"], rt.now()
        )
        return jsonify(entry), 201

    @bp.post("/families/<id:family_id>/involvements")
    @allow(Role.COORDINATOR)
    def refer(family_id: str) -> tuple[Response, int]:
        rt = runtime()
        data = load(ReferralIn(), body(), checks_first=lambda: services.check_access(
            db(), rt.vault, actor(), family_id, rt.now(), involved=True),
            also=lambda: {**services.reference_errors(db(), body().get("agency")),
                          **services.contact_worker_errors(db(), actor(), body().get("agency"),
                                                           body().get("contact_worker"))})
        involvement = services.refer(
            db(), rt.vault, actor(), family_id, data["agency"], data.get("contact_worker"),
            rt.now(),
        )
        return jsonify(involvement), 201

    @bp.patch("/families/<id:family_id>/involvements/<id:agency_id>")
    @allow(Role.COORDINATOR)
    def update_involvement(family_id: str, agency_id: str) -> Response:
        rt = runtime()
        data = load(InvolvementPatch(), body(), checks_first=lambda: services.check_access(
            db(), rt.vault, actor(), family_id, rt.now(), own_agency=agency_id),
            also=lambda: services.contact_worker_errors(db(), actor(), agency_id,
                                                        body().get("contact_worker")))
        involvement = services.update_involvement(
            db(), rt.vault, actor(), family_id, agency_id, data, rt.now()
        )
        return jsonify(involvement)

    @bp.delete("/families/<id:family_id>")
    @allow(Role.ADMIN)
    def erase(family_id: str) -> tuple[str, int]:
        data = load(ErasureIn(), body(),
                    checks_first=lambda: erasure.check_exists(db(), family_id))
        rt = runtime()
        who = actor()
        erasure.erase_family(db(), rt.keystore, family_id, data["reason"], who.label,
                             rt.now(), agency_id=who.agency_id, request_id=who.request_id)
        return "", 204
