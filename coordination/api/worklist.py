"""The worklist: what the caller's agency has to act on."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, url_for

from coordination.api import actor, allow, db, runtime
from coordination.api.answers import WorklistItem
from coordination.api.openapi import document
from coordination.casework import worklist
from coordination.roles import Role


def href(item: worklist.Item) -> str | None:
    """The staff page where to act on `item`, or None."""
    if item.link is None:
        return None
    args: dict[str, Any] = dict(item.link.args)
    return url_for(item.link.endpoint, **args)


def register(bp: Blueprint) -> None:
    @bp.get("/worklist")
    @document("What the caller's agency has to act on, most urgent first: referrals to "
              "answer or overdue, appointments this week or missed, forms to renew, "
              "families that ended its part", answer=WorklistItem, many=True)
    @allow(Role.PRACTITIONER, Role.COORDINATOR)
    def worklist_items() -> Response:
        rt = runtime()
        items = worklist.worklist(db(), rt.vault, actor(), rt.now())
        return jsonify([item.out(href(item)) for item in items])
