"""Families, the shared record, entries and involvements."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for

from coordination import erasure
from coordination.api import actor, allow, body, db, load, runtime
from coordination.api.answers import (
    EntryWritten,
    FamilyCreated,
    FamilyRef,
    InvolvementEnded,
    InvolvementOut,
    SharedRecord,
)
from coordination.api.openapi import document
from coordination.casework import common, entries, families, involvements, record
from coordination.roles import Role
from coordination.schemas import (
    EmptyIn,
    EndInvolvementIn,
    EntryIn,
    ErasureIn,
    FamilyIn,
    InvolvementPatch,
    ReferralIn,
    SearchArgs,
)

CASEWORK = (Role.PRACTITIONER, Role.COORDINATOR)
# The schemas of the busiest routes, made once (a schema keeps nothing of a load).
SEARCH_ARGS, ENTRY_IN = SearchArgs(), EntryIn()


def register(bp: Blueprint) -> None:
    @bp.post("/families")
    @document("Record a family; the caller's agency becomes involved. With "
              "`refuse_duplicate`, a 409 naming the families the agency can already see "
              "with this name and birth date, and nothing recorded", body=FamilyIn,
              answer=FamilyCreated, status=201, headers=("Location",), conflicts=True)
    @allow(*CASEWORK)
    def create_family() -> tuple[Response, int, dict[str, str]]:
        rt = runtime()
        data = load(FamilyIn(), body(),
                    also=lambda: families.family_errors(actor(), body(), rt.now(), db()))
        created = families.create_family(db(), rt.vault, actor(), data, rt.now())
        location = url_for("api.family", family_id=created["id"])
        return jsonify(created), 201, {"Location": location}

    @bp.get("/families")
    @document("Find visible families by whole words of a name (the family's or a "
              "member's) and/or a birth date (the family's or a member's)", query=SearchArgs,
              answer=FamilyRef, many=True)
    @allow(*CASEWORK)
    def search() -> Response:
        args = load(SEARCH_ARGS, request.args.to_dict())
        rt = runtime()
        found = families.search_families(
            db(), rt.vault, actor(), args.get("name"), args.get("birth_date"), rt.now()
        )
        return jsonify(found)

    @bp.get("/families/<id:family_id>")
    @document("The shared record, as the caller's agency may see it",
              answer=SharedRecord)
    @allow(*CASEWORK)
    def family(family_id: str) -> Response:
        rt = runtime()
        shared = record.shared_record(db(), rt.vault, actor(), family_id, rt.now())
        return jsonify(shared.body)

    @bp.post("/families/<id:family_id>/entries")
    @document("Write an entry", body=EntryIn, answer=EntryWritten, status=201)
    @allow(*CASEWORK)
    def write_entry(family_id: str) -> tuple[Response, int]:
        rt = runtime()
        codes = rt.settings.needs_codes
        data = load(ENTRY_IN, body(), checks_first=lambda: common.check_access(
            db(), rt.vault, actor(), family_id, rt.now(), involved=True),
            also=lambda: entries.entry_errors(db(), actor(), body().get("field"),
                                              body().get("kind", "text"), body().get("data"),
                                              codes))
        entry = entries.write_entry(
            db(), rt.vault, actor(), family_id, data["field"], data.get("value"), rt.now(),
            kind=data.get("kind", "text"), data=data.get("data"), needs_codes=codes,
        )
        return jsonify(entry), 201

    @bp.post("/families/<id:family_id>/involvements")
    @document("Refer the family to another agency", body=ReferralIn,
              answer=InvolvementOut, status=201, conflicts=True)
    @allow(Role.COORDINATOR)
    def refer(family_id: str) -> tuple[Response, int]:
        rt = runtime()
        data = load(ReferralIn(), body(), checks_first=lambda: common.check_access(
            db(), rt.vault, actor(), family_id, rt.now(), involved=True),
            also=lambda: {**common.reference_errors(db(), body().get("agency")),
                          **involvements.contact_worker_errors(db(), actor(), body().get("agency"),
                                                               body().get("contact_worker"))})
        involvement = involvements.refer(
            db(), rt.vault, actor(), family_id, data["agency"], data.get("contact_worker"),
            rt.now(),
        )
        return jsonify(involvement), 201

    @bp.patch("/families/<id:family_id>/involvements/<id:agency_id>")
    @document("Close, or name the contact worker of, the caller's agency's involvement",
              body=InvolvementPatch, answer=InvolvementOut, conflicts=True)
    @allow(Role.COORDINATOR)
    def update_involvement(family_id: str, agency_id: str) -> Response:
        rt = runtime()
        data = load(InvolvementPatch(), body(), checks_first=lambda: common.check_access(
            db(), rt.vault, actor(), family_id, rt.now(), own_agency=agency_id),
            also=lambda: involvements.contact_worker_errors(db(), actor(), agency_id,
                                                            body().get("contact_worker")))
        involvement = involvements.update_involvement(
            db(), rt.vault, actor(), family_id, agency_id, data, rt.now()
        )
        return jsonify(involvement)

    @bp.delete("/families/<id:family_id>/involvements/<id:agency_id>")
    @document("End an agency's part: close its involvement and revoke its column in one "
              "new version (the family; or a coordinator recording the family's wish)",
              body=(EmptyIn, EndInvolvementIn), answer=InvolvementEnded, conflicts=True)
    @allow(Role.COORDINATOR, family=True)
    def end_involvement(family_id: str, agency_id: str) -> Response:
        rt = runtime()
        who = actor()
        # The family acts itself (an empty body); a coordinator records the
        # family's wish and says who expressed it and how.
        schema = EmptyIn() if who.is_family else EndInvolvementIn()
        data = load(schema, body(), checks_first=lambda: involvements.check_end_involvement(
            db(), rt.vault, who, family_id, agency_id, rt.now()),
            also=lambda: common.reference_errors(db(), agency_id))
        ended = involvements.end_involvement(db(), rt.vault, who, family_id, agency_id,
                                             None if who.is_family else data, rt.now())
        return jsonify(ended)

    @bp.delete("/families/<id:family_id>")
    @document("Erase a family by destroying its key", body=ErasureIn, status=204,
              conflicts=True)
    @allow(Role.ADMIN)
    def erase(family_id: str) -> tuple[str, int]:
        data = load(ErasureIn(), body(),
                    checks_first=lambda: erasure.check_exists(db(), family_id))
        rt = runtime()
        who = actor()
        erasure.erase_family(db(), rt.keystore, family_id, data["reason"], who.label,
                             rt.now(), agency_id=who.agency_id, request_id=who.request_id)
        return "", 204
