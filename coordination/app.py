"""The Flask application: `create_app` runs a list of register steps."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from flask import Flask, Response, g, jsonify
from sqlalchemy.exc import DBAPIError

from coordination.api import create_blueprint, db, record_denial
from coordination.api.problems import register_problems
from coordination.config import Settings, load_settings
from coordination.db import is_unavailable, retry_on_conflict
from coordination.runtime import Runtime, utc_now
from coordination.web import register_web


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], datetime] = utc_now
) -> Flask:
    settings = (settings or load_settings()).checked()
    app = Flask(__name__)
    app.config["SECRET_KEY"] = settings.require_secret_key()
    # One byte over the limit, so that a chunked body that reaches it is seen
    # to be too large rather than silently cut (see api._parse_body).
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    app.json.sort_keys = False  # type: ignore[attr-defined]
    register_runtime(app, settings, clock)
    # register_retry comes last: it wraps the views the steps before it added.
    for step in (register_api, register_web, register_health, register_problems,
                 register_retry):
        step(app)
    return app


def register_runtime(app: Flask, settings: Settings, clock: Callable[[], datetime]) -> None:
    runtime = Runtime.build(settings, clock)
    try:
        # Refuse to start without the keyring, the index key or the audit key.
        runtime.vault  # noqa: B018
        runtime.audit_key  # noqa: B018
    except BaseException:
        runtime.dispose()
        raise
    app.extensions["onestory"] = runtime

    @app.before_request
    def _heartbeat() -> None:
        # This node's keyring as the other nodes see it (coordination.nodes).
        runtime.heartbeat.maybe(runtime.now())

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db", None)
        if session is not None:
            try:
                session.close()
            except DBAPIError as exc:
                if not is_unavailable(exc):
                    raise
                # The connection went with its server before the request's
                # transaction (ended there with it) was rolled back: the
                # answer stands; the connection is discarded, not pooled.
                session.invalidate()
                logging.getLogger("onestory.db").warning(
                    "a connection was lost before the request ended (%s)", type(exc).__name__)


def register_api(app: Flask) -> None:
    app.register_blueprint(create_blueprint())
    app.extensions["onestory.on_denied"] = record_denial


def register_health(app: Flask) -> None:
    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})



def register_retry(app: Flask) -> None:
    """Run every view again, whole, when the database refuses its write
    because of other writers (`coordination.db.retry_on_conflict`); the
    request's session is rolled back first. Conflicts that outlast the
    retries end as 503 "busy, try again" (`coordination.api.problems`).

    Only the view runs again, not the request's before-request steps: what
    they settled (the caller's identity, the parsed body) still holds.
    """
    for endpoint, view in list(app.view_functions.items()):
        if not getattr(view, "run_once", False):  # see coordination.web.run_once
            app.view_functions[endpoint] = _retried(view)


def _retried(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def run(*args: Any, **kwargs: Any) -> Any:
        return retry_on_conflict(db(), lambda: view(*args, **kwargs))

    return run
