"""Auditor pages (being built)."""

from __future__ import annotations

from flask import Blueprint


def create_blueprint() -> Blueprint:
    bp = Blueprint("auditor", __name__, url_prefix="/audit")

    @bp.get("/")
    def log() -> str:
        return "audit log"

    @bp.get("/verify")
    def verify() -> str:
        return "verify"

    return bp
