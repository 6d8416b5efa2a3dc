"""The family's own page (being built)."""

from __future__ import annotations

from flask import Blueprint


def create_blueprint() -> Blueprint:
    bp = Blueprint("family", __name__, url_prefix="/family")

    @bp.get("/")
    def sign_in() -> str:
        return "family page"

    return bp
