"""The one place where failures become HTTP: application/problem+json."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, json, request
from flask.globals import request_ctx
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from audit.services import AuditUnavailable
from consent.errors import NoConsentForm
from coordination.crypto import KeyringError, MasterKeyMissing, VaultError
from coordination.db import is_unavailable, is_write_conflict
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
BUSY_RETRY_AFTER = 1  # seconds, when the database stayed busy
UNAVAILABLE_RETRY_AFTER = 10  # seconds, when the database cannot be reached

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


def problem_body(status: int, slug: str, title: str, detail: str,
                 errors: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The contract's problem+json object."""
    return {
        "type": f"urn:onestory:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "errors": errors or {},
    }


def problem(
    status: int, slug: str, title: str, detail: str, errors: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = problem_body(status, slug, title, detail, errors)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


# Refusals put on record (`coordination.api.record_denial`): 409s included.
DENIALS = (NotAuthenticated, RoleNotPermitted, FamilyNotFound, NotPermitted, Conflict)


def describe(exc: Exception) -> tuple[int, str, str, dict[str, str]]:
    """(status, title, detail, headers) for a failure; `slug` via `_classify`."""
    status, _slug, title, detail, _errors, headers = _classify(exc)
    return status, title, detail, headers


def _classify(exc: Exception
              ) -> tuple[int, str, str, str, dict[str, list[str]] | None, dict[str, str]]:
    if isinstance(exc, BadBody):
        return 400, "bad-request", "Bad request", str(exc), None, {}
    for kind, status, slug, title in MAPPING:
        if isinstance(exc, kind):
            errors = exc.errors if isinstance(exc, InvalidInput) else None
            headers = {}
            if isinstance(exc, NotAuthenticated):
                headers["WWW-Authenticate"] = 'Bearer realm="onestory"'
            if isinstance(exc, Throttled):
                headers["Retry-After"] = str(exc.retry_after)
            return status, slug, title, str(exc), errors, headers
    if is_write_conflict(exc):
        # Other requests kept the database busy for longer than the view's
        # retries (`register_retry`): nothing of this one was kept.
        log.warning("gave up on %s %s: the database stayed busy", request.method, request.path)
        return (503, "busy", "Busy, try again",
                "the service is busy with other changes; nothing was changed, "
                "try again in a moment", None, {"Retry-After": str(BUSY_RETRY_AFTER)})
    if is_unavailable(exc):
        # Not the caller's fault and nothing to debug here: one line, no traceback.
        log.error("the database cannot be used (%s) on %s %s", type(exc).__name__,
                  request.method, request.path)
        return (503, "unavailable", "Service unavailable",
                "the database cannot be reached; nothing was changed, try again in a moment",
                None, {"Retry-After": str(UNAVAILABLE_RETRY_AFTER)})
    if isinstance(exc, IntegrityError) and "audit_log" in str(exc.statement or ""):
        exc = AuditUnavailable("the chain's head is behind its entries")
    if isinstance(exc, AuditUnavailable):
        log.error("the audit log cannot be written: %s", type(exc).__name__)
        return (503, "audit-unavailable", "Audit log unavailable",
                "the act could not be recorded, so it was not done; no data is returned",
                None, {})
    if isinstance(exc, MasterKeyMissing):
        # One line naming the version, for whoever copies the keyring file.
        log.error("%s", exc)
        return (503, "data-unavailable", "Data unavailable",
                "this server does not hold a master key it needs; nothing was changed "
                "and no data is returned", None, {})
    if isinstance(exc, VaultError | KeyringError):
        # Fail closed: say that stored data could not be opened, show none of it.
        log.error("stored data could not be opened: %s", type(exc).__name__)
        return (503, "data-unavailable", "Data unavailable",
                "stored data could not be opened; no data is returned", None, {})
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        if code == 413:
            return 413, "too-large", "Request body too large", "the body is over 64 KiB", None, {}
        # Keep what the answer owes its client: a 405's `Allow` (RFC 9110).
        kept = {k: v for k, v in exc.get_headers() if k == "Allow"}
        return (code, exc.name.lower().replace(" ", "-"), exc.name,
                exc.description or exc.name, None, kept)
    log.exception("unhandled error on %s %s", request.method, request.path)
    return 500, "internal", "Internal error", "something went wrong; nothing was changed", None, {}


def to_problem(exc: Exception) -> Any:
    if isinstance(exc, DENIALS):
        hook = current_app.extensions.get("onestory.on_denied")
        if hook is not None:
            hook(exc)
    web = current_app.extensions.get("onestory.web_errors")
    # A request refused before it could be routed (an untrusted Host) has no
    # way to build a page's links: it gets the plain problem answer.
    can_link = request_ctx.url_adapter is not None
    if web is not None and can_link and not request.path.startswith("/api/"):
        return web(exc)
    status, slug, title, detail, errors, headers = _classify(exc)
    return problem(status, slug, title, detail, errors, headers)


def register_problems(app: Flask) -> None:
    app.register_error_handler(Exception, to_problem)
