"""Agencies and the consent form's rows: readable by every staff role but the
evaluator's."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from coordination.api import allow, db
from coordination.api.answers import AgencyOut, FieldOut
from coordination.api.openapi import document
from coordination.casework import common
from coordination.roles import Role

# Evaluators read reports only (coordination.reports): no other route.
STAFF = tuple(r for r in Role if r is not Role.EVALUATOR)


def register(bp: Blueprint) -> None:
    @bp.get("/agencies")
    @document("The agencies", answer=AgencyOut, many=True)
    @allow(*STAFF)
    def agencies() -> Response:
        return jsonify([
            {"id": a.id, "name": a.name, "kind": a.kind, "minimal_data": a.minimal_data}
            for a in common.agencies(db())
        ])

    @bp.get("/fields")
    @document("The consent form's rows (kinds of information)", answer=FieldOut, many=True)
    @allow(*STAFF)
    def fields() -> Response:
        return jsonify([
            {"id": f.id, "label": f.label, "description": f.description, "kinds": f.kind_list}
            for f in common.catalogue(db())
        ])
