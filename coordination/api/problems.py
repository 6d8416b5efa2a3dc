"""The one place where failures become HTTP: application/problem+json."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, json, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from audit.services import AuditUnavailable
from consent.errors import NoConsentForm
from coordination.crypto import KeyringError, VaultError
from coordination.errors import (
    Conflict,
    FamilyNotFound,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    NotPermitted,
    RoleNotPermitted,
    Throttled,
)

log = logging.getLogger("onestory.api")

PROBLEM = "application/problem+json"

# exception -> (status, type slug, title)
MAPPING: list[tuple[type[Exception], int, str, str]] = [
    (NotAuthenticated, 401, "unauthenticated", "Authentication required"),
    (RoleNotPermitted, 403, "role-not-permitted", "Your role may not do this"),
    (FamilyNotFound, 404, "not-found", "Not found"),
    (NoConsentForm, 404, "no-consent-form", "No consent form"),
    (NotFound, 404, "not-found", "Not found"),
    (NotPermitted, 403, "not-permitted", "Not permitted"),
    (InvalidInput, 422, "invalid-input", "Invalid input"),
    (Conflict, 409, "conflict", "Conflict"),
    (Throttled, 429, "throttled", "Too many attempts"),
]


class BadBody(Exception):
    """The body is not JSON, or not a JSON object."""


def problem(
    status: int, slug: str, title: str, detail: str, errors: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:onestory:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "errors": errors or {},
    }
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


DENIALS = (NotAuthenticated, RoleNotPermitted, FamilyNotFound, NotPermitted)


def to_problem(exc: Exception) -> Response:
    if isinstance(exc, DENIALS):
        hook = current_app.extensions.get("onestory.on_denied")
        if hook is not None:
            hook(exc)
    if isinstance(exc, BadBody):
        return problem(400, "bad-request", "Bad request", str(exc))
    for kind, status, slug, title in MAPPING:
        if isinstance(exc, kind):
            errors = exc.errors if isinstance(exc, InvalidInput) else None
            headers = {}
            if isinstance(exc, NotAuthenticated):
                headers["WWW-Authenticate"] = 'Bearer realm="onestory"'
            if isinstance(exc, Throttled):
                headers["Retry-After"] = str(exc.retry_after)
            return problem(status, slug, title, str(exc), errors, headers)
    if isinstance(exc, IntegrityError) and "audit_log" in str(exc.statement or ""):
        exc = AuditUnavailable("the chain's head is behind its entries")
    if isinstance(exc, AuditUnavailable):
        log.error("the audit log cannot be written: %s", type(exc).__name__)
        return problem(503, "audit-unavailable", "Audit log unavailable",
                       "the act could not be recorded, so it was not done; no data is returned")
    if isinstance(exc, VaultError | KeyringError):
        # Fail closed: say that stored data could not be opened, show none of it.
        log.error("stored data could not be opened: %s", type(exc).__name__)
        return problem(503, "data-unavailable", "Data unavailable",
                       "stored data could not be opened; no data is returned")
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        if code == 413:
            return problem(413, "too-large", "Request body too large",
                           "the body is over 64 KiB")
        return problem(code, exc.name.lower().replace(" ", "-"), exc.name,
                       exc.description or exc.name)
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem(500, "internal", "Internal error", "something went wrong; nothing was changed")


def register_problems(app: Flask) -> None:
    app.register_error_handler(Exception, to_problem)
