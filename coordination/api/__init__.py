"""JSON API, version 1: `create_blueprint()` builds it inside `create_app`.

Each request is checked in the contract's order: body (400/413), token
(401), role (403), then the service decides visibility (404), entitlement
(403), values (422) and state (409).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, g, request
from flask.blueprints import BlueprintSetupState
from marshmallow import Schema, ValidationError
from werkzeug.routing import BaseConverter

import audit.services as audit_log
from audit.model import Action, Outcome
from audit.services import Event
from coordination import accounts
from coordination.actors import Actor
from coordination.api.openapi import doc_of
from coordination.api.problems import BadBody
from coordination.errors import (
    FamilyNotFound,
    InvalidInput,
    NotAuthenticated,
    RoleNotPermitted,
)
from coordination.roles import Role
from coordination.runtime import current, request_db, request_id
from coordination.schemas import flatten_errors

F = TypeVar("F", bound=Callable[..., Any])
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
NO_TOKEN_ENDPOINTS = {"api.family_session", "api.openapi_document"}
# No body the API takes is nested more than a few levels (a member inside the
# members list; a column of the consent grid): anything deeper is refused
# before code that walks values recursively ever sees it.
MAX_DEPTH = 32
# Where refused requests are put on record (the family's pages record their own).
DENIAL_BLUEPRINTS = {"api", "staff", "auditor", "admin"}


runtime = current
db = request_db


def actor() -> Actor:
    current: Actor = g.actor
    return current


def body() -> Any:
    return g.body


def allow(*roles: Role, family: bool = False) -> Callable[[F], F]:
    """Which callers may use a route at all; anyone else gets 403."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            who = actor()
            permitted = family if who.is_family else who.role in roles
            if not permitted:
                raise RoleNotPermitted("your role may not use this route")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def load(
    schema: Schema,
    data: Any,
    *,
    checks_first: Callable[[], None] | None = None,
    also: Callable[[], dict[str, list[str]]] | None = None,
) -> Any:
    """Validate `data`. On failure, run the visibility/entitlement checks that
    come before 422 in the contract's order, add what `also` finds (checks
    against stored data, which the service repeats on valid input), and
    raise `InvalidInput` naming every bad key at once.

    On a documented route `schema` must be the one its document names
    (`coordination.api.openapi.document`): the document describes exactly
    what is validated."""
    doc = doc_of(current_app.view_functions.get(request.endpoint or ""))
    if doc is not None and not doc.validates_with(schema):
        raise RuntimeError(f"{request.endpoint} validates with {type(schema).__name__}, "
                           "which its OpenAPI document does not name")
    try:
        return schema.load(data)
    except ValidationError as err:
        errors = flatten_errors(err.messages)
    if checks_first is not None:
        checks_first()
    if also is not None:
        for key, messages in also().items():
            errors.setdefault(key, []).extend(m for m in messages if m not in errors.get(key, []))
    raise InvalidInput(errors)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth_over(data: Any, limit: int) -> bool:
    """Whether `data` nests lists and objects more than `limit` deep (walked
    without recursion, so any depth is measured safely)."""
    level: list[tuple[Any, int]] = [(data, 1)]
    while level:
        value, depth = level.pop()
        children = (value.values() if isinstance(value, dict)
                    else value if isinstance(value, list) else None)
        if children is None:
            continue
        if depth > limit:
            return True
        level.extend((child, depth + 1) for child in children)
    return False


def _parse_body(max_bytes: int) -> Any:
    too_deep = f"the body is nested too deeply (more than {MAX_DEPTH} levels)"
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        from werkzeug.exceptions import RequestEntityTooLarge

        raise RequestEntityTooLarge()
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except ValueError as exc:
        raise BadBody("the body is not valid JSON") from exc
    except RecursionError as exc:
        raise BadBody(too_deep) from exc
    if _depth_over(data, MAX_DEPTH):
        raise BadBody(too_deep)
    try:
        # Escapes such as "\ud800" decode to strings no database can store.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except ValueError as exc:
        raise BadBody("the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise BadBody("the body must be a JSON object")
    return data


def _authenticate() -> Actor:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated()
    found = accounts.authenticate(db(), token.strip(), runtime().now())
    return dataclasses.replace(found, request_id=g.request_id)


def record_denial(exc: Exception) -> None:
    """Put a refused request (401, 403, 404, 409) on record, in a transaction
    of its own (the act's was rolled back). Failing to record a refusal
    still refuses.

    A refusal of an act on a family carries the id asked for as its family
    id, whatever refused it (role, visibility, entitlement, state), so that
    the log filtered by family shows every one; the caller's answer stays
    the same whether or not a family has that id. Only a caller without a
    valid credential (401) keeps the id in the detail: anyone could send
    those, and they would otherwise reach the family's "who looked"."""
    if request.blueprint not in DENIAL_BLUEPRINTS or request.endpoint in NO_TOKEN_ENDPOINTS:
        return  # the family's sign-in records its own failures
    who: Actor | None = g.get("actor")
    reason = {NotAuthenticated: "unauthenticated", RoleNotPermitted: "role"}.get(
        type(exc), getattr(exc, "reason", "not_permitted"))
    asked = (request.view_args or {}).get("family_id")
    if isinstance(exc, FamilyNotFound) and exc.family_id:
        asked = exc.family_id
    family_id = asked if who is not None else None
    session = db()
    try:
        session.rollback()
        audit_log.record(session, Event(
            action=Action.REQUEST_DENIED, outcome=Outcome.DENIED,
            actor=who.label if who else None, agency_id=who.agency_id if who else None,
            role=who.role_name if who else None, family_id=family_id, reason=reason,
            detail={"route": request.endpoint or "", "method": request.method,
                    **({"path_family": asked} if asked and family_id is None else {})},
            request_id=g.get("request_id")), runtime().now())
        session.commit()
    except Exception:  # noqa: BLE001 - the refusal stands either way
        session.rollback()
        logging.getLogger("onestory.audit").exception("a refusal could not be recorded")


class IdConverter(BaseConverter):
    """Ids in paths: anything else is simply not a route (404)."""

    regex = r"[A-Za-z0-9_.:-]{1,64}"


def create_blueprint() -> Blueprint:
    from coordination.api import (
        access_requests,
        areas,
        audit,
        catalogue,
        consent,
        duty_grants,
        emergency,
        families,
        openapi,
        protection_holds,
        referrals,
        reports,
        worklist,
    )

    bp = Blueprint("api", __name__, url_prefix="/api/v1")

    def _add_converter(state: BlueprintSetupState) -> None:
        state.app.url_map.converters["id"] = IdConverter

    bp.record_once(_add_converter)

    @bp.before_request
    def _prepare() -> None:
        request_id()
        max_bytes = runtime().settings.max_body_bytes
        if request.content_length is not None and request.content_length > max_bytes:
            from werkzeug.exceptions import RequestEntityTooLarge

            raise RequestEntityTooLarge()
        g.body = _parse_body(max_bytes) if request.method in BODY_METHODS else None
        if request.endpoint not in NO_TOKEN_ENDPOINTS:
            g.actor = _authenticate()

    @bp.after_request
    def _tag(response: Response) -> Response:
        if "request_id" in g:
            response.headers["X-Request-ID"] = g.request_id
        if request.endpoint != "api.openapi_document":
            # Answers hold tokens, PINs and personal data (refusals name
            # ids): never kept by a browser or a proxy.
            response.headers["Cache-Control"] = "no-store"
        return response

    catalogue.register(bp)
    families.register(bp)
    consent.register(bp)
    audit.register(bp)
    referrals.register(bp)
    access_requests.register(bp)
    duty_grants.register(bp)
    worklist.register(bp)
    protection_holds.register(bp)
    emergency.register(bp)
    areas.register(bp)
    reports.register(bp)
    openapi.register(bp)
    return bp
