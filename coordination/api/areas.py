"""Areas: the caller's agency's list, and a family's one area."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from coordination.api import actor, allow, body, db, load, runtime
from coordination.api.answers import AreaOut, FamilyArea
from coordination.api.openapi import document
from coordination.casework import areas, common
from coordination.roles import Role
from coordination.schemas import FamilyAreaIn

CASEWORK = (Role.PRACTITIONER, Role.COORDINATOR)


def register(bp: Blueprint) -> None:
    @bp.get("/areas")
    @document("The areas (district codes and names) the caller's agency may give a family",
              answer=AreaOut, many=True)
    @allow(*CASEWORK)
    def areas_list() -> Response:
        return jsonify([{"code": a.code, "name": a.name}
                        for a in areas.agency_areas(db(), str(actor().agency_id))])

    @bp.put("/families/<id:family_id>/area")
    @document("Give the family one of the caller's agency's areas, or none (null); a "
              "family recorded by a minimal-data agency only while its form in force says "
              "`statistics: true`", body=FamilyAreaIn, answer=FamilyArea)
    @allow(*CASEWORK)
    def set_family_area(family_id: str) -> Response:
        rt = runtime()
        data = load(FamilyAreaIn(), body(), checks_first=lambda: common.check_access(
            db(), rt.vault, actor(), family_id, rt.now(), involved=True),
            also=lambda: areas.area_errors(db(), actor(), body().get("area")))
        return jsonify(areas.set_family_area(db(), rt.vault, actor(), family_id,
                                             data["area"], rt.now()))
