"""The OpenAPI 3.1 document of every /api/v1 route, built with apispec from
the very marshmallow schemas that validate each request.

**Documenting a route** (a route without it fails
tests/functional/test_openapi.py): put `@document(...)` right under its
`@bp.<method>(...)` line, naming

- `body=` / `query=`: the schema class its view passes to `load()` (the same
  class: `load()` refuses any other on a documented route, so the document
  cannot drift from the validation);
- `answer=`: the schema of its 2xx body (`coordination.api.answers`) and
  `status=` (default 200; 204 with no answer);
- `conflicts=True` when its service can answer 409; `signs_in=True` for a
  route that checks credentials in its body (401 for wrong ones, 429 when
  slowed down).

Everything else follows from the route itself: 413 for every route (a body
over the limit), 401 and 403 for one that takes a token, 404 for one with ids
in its path, 400 for one that reads a body, 422 for one that validates a body
or a query, 503 for every route that uses the database. Then put its
operationId in the schemathesis run of each role that may use it
(tests/functional/test_schemathesis.py) and, when valid input can still be
refused, say so in tests/functional/schemathesis.toml.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app, jsonify
from marshmallow import Schema

from coordination.api.answers import Problem

F = TypeVar("F", bound=Callable[..., Any])
OPENAPI_VERSION = "3.1.0"
PREFIX = "/api/v1"
PROBLEM = "application/problem+json"
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Path converters (coordination.api.IdConverter and werkzeug's int) as schemas.
CONVERTERS: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
    "int": {"type": "integer", "minimum": 0},
}
RULE_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")

WHY = {
    400: "The body is not JSON, or not a JSON object.",
    401: "No token, or an unknown, expired or revoked one.",
    403: "The caller's role may not use this route, or the caller may not do this act.",
    404: "Not found: the family does not exist or is not visible to the caller "
         "(the two answers are identical).",
    409: "The act conflicts with the current state; `detail` says how.",
    413: "The body is over 64 KiB.",
    422: "A value is invalid or a key is unknown; `errors` names each one.",
    429: "Too many attempts: try again after `Retry-After` seconds.",
    503: "The database stayed busy (with `Retry-After`), or the audit log or stored "
         "data could not be used: nothing was done and no data is returned.",
}
SIGN_IN_REFUSED = ("The credentials do not match (a real and an unknown receipt code "
                   "answer alike).")
RETRY_AFTER = {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 0}}


@dataclass(frozen=True)
class Doc:
    """How one route is documented (see the module docstring)."""

    summary: str
    body: type[Schema] | tuple[type[Schema], ...] | None = None
    query: type[Schema] | None = None
    answer: type[Schema] | dict[str, Any] | None = None
    many: bool = False
    status: int = 200
    conflicts: bool = False
    signs_in: bool = False
    throttled: bool = False  # limited per user: 429 after too many attempts
    not_found: str | None = None  # why a route without ids in its path answers 404
    token: bool = True
    database: bool = True
    headers: tuple[str, ...] = ()

    def validates_with(self, schema: Schema) -> bool:
        bodies = self.body if isinstance(self.body, tuple) else (self.body,)
        return type(schema) in (*bodies, self.query)


def document(summary: str, **how: Any) -> Callable[[F], F]:
    """Attach a route's documentation to its view (`Doc`'s fields)."""

    def mark(view: F) -> F:
        view.openapi = Doc(summary, **how)  # type: ignore[attr-defined]
        return view

    return mark


def doc_of(view: Callable[..., Any] | None) -> Doc | None:
    found: Doc | None = getattr(view, "openapi", None)
    return found


def api_rules(app: Flask) -> list[tuple[str, str, str]]:
    """Every (method, rule, endpoint) under /api/v1."""
    return sorted(
        (method, rule.rule, rule.endpoint)
        for rule in app.url_map.iter_rules() if rule.rule.startswith(PREFIX)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    )


def openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """A werkzeug rule as an OpenAPI path and its path parameters."""
    parameters = [
        {"in": "path", "name": m["name"], "required": True,
         "schema": dict(CONVERTERS[m["converter"] or "id"])}
        for m in RULE_ARGUMENT.finditer(rule)
    ]
    return RULE_ARGUMENT.sub(lambda m: "{" + m["name"] + "}", rule), parameters


def _failures(doc: Doc, method: str, has_path_ids: bool) -> list[int]:
    statuses = {413}  # any request, whatever its method, with a body over the limit
    if method in BODY_METHODS:
        statuses.add(400)
    if doc.token:
        statuses |= {401, 403}
    if has_path_ids or doc.not_found:
        statuses.add(404)
    if doc.body or doc.query:
        statuses.add(422)
    if doc.conflicts:
        statuses.add(409)
    if doc.signs_in:
        statuses |= {401, 429}
    if doc.throttled:
        statuses.add(429)
    if doc.database:
        statuses.add(503)
    return sorted(statuses)


def _operation(doc: Doc, method: str, endpoint: str, path_parameters: list[dict[str, Any]]
               ) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": endpoint.removeprefix("api."),
                                 "summary": doc.summary, "parameters": list(path_parameters)}
    if not doc.token:
        operation["security"] = []
    if doc.query:
        operation["parameters"].append({"in": "query", "schema": doc.query})
    if doc.body:
        # A route whose body depends on the caller (the family or staff acting
        # for it) takes exactly one of its schemas.
        body: Any = {"oneOf": list(doc.body)} if isinstance(doc.body, tuple) else doc.body
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": body}}}
    elif method in BODY_METHODS:
        operation["requestBody"] = {"required": False, "content": {"application/json": {
            "schema": {"type": "object", "additionalProperties": False}}}}
    answer: dict[str, Any] = {"description": doc.summary}
    if doc.answer is not None:
        schema: Any = doc.answer
        if doc.many:
            schema = {"type": "array", "items": doc.answer}
        answer["content"] = {"application/json": {"schema": schema}}
    if doc.headers:
        answer["headers"] = {name: {"required": True, "schema": {"type": "string"}}
                             for name in doc.headers}
    responses: dict[str, Any] = {str(doc.status): answer}
    for status in _failures(doc, method, bool(path_parameters)):
        why = SIGN_IN_REFUSED if status == 401 and doc.signs_in else WHY[status]
        if status == 404 and doc.not_found and not path_parameters:
            why = doc.not_found
        failure: dict[str, Any] = {"description": why,
                                   "content": {PROBLEM: {"schema": "Problem"}}}
        if status == 401:
            failure["headers"] = {"WWW-Authenticate": {"required": True,
                                                       "schema": {"type": "string"}}}
        elif status == 429:
            failure["headers"] = {"Retry-After": {**RETRY_AFTER, "required": True}}
        elif status == 503:
            failure["headers"] = {"Retry-After": RETRY_AFTER}
        responses[str(status)] = failure
    operation["responses"] = responses
    return operation


def build(app: Flask) -> dict[str, Any]:
    """The document of every documented /api/v1 rule of `app`."""
    spec = APISpec(
        title="OneStory API", version="1", openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={"description": "Case coordination around one joint consent form per family. "
                             "Every failure is application/problem+json."},
        security=[{"bearer": []}],
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Problem", schema=Problem)
    operations: dict[str, dict[str, Any]] = {}
    for method, rule, endpoint in api_rules(app):
        doc = doc_of(app.view_functions[endpoint])
        if doc is None:
            continue
        path, path_parameters = openapi_path(rule)
        operations.setdefault(path, {})[method.lower()] = _operation(
            doc, method, endpoint, path_parameters)
    for path in sorted(operations):
        spec.path(path=path, operations=operations[path])
    return spec.to_dict()


def register(bp: Blueprint) -> None:
    @bp.get("/openapi.json")
    @document("This document", answer={"type": "object"}, token=False, database=False)
    def openapi_document() -> Response:
        # Built once per application, on first request: the routes are fixed by then.
        built = current_app.extensions.get("onestory.openapi")
        if built is None:
            built = current_app.extensions["onestory.openapi"] = build(current_app)
        return jsonify(built)
