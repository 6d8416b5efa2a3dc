"""The Flask application: `create_app` runs a list of register steps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask, Response, g, jsonify

from coordination.api import create_blueprint, record_denial
from coordination.api.problems import register_problems
from coordination.config import Settings, load_settings
from coordination.runtime import Runtime, utc_now


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], datetime] = utc_now
) -> Flask:
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["SECRET_KEY"] = settings.require_secret_key()
    # One byte over the limit, so that a chunked body that reaches it is seen
    # to be too large rather than silently cut (see api._parse_body).
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    app.json.sort_keys = False  # type: ignore[attr-defined]
    register_runtime(app, settings, clock)
    for step in (register_api, register_health, register_problems):
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

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db", None)
        if session is not None:
            session.close()


def register_api(app: Flask) -> None:
    app.register_blueprint(create_blueprint())
    app.extensions["onestory.on_denied"] = record_denial


def register_health(app: Flask) -> None:
    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/")
    def index() -> tuple[str, int, dict[str, Any]]:
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>OneStory</title>"
            "<h1>OneStory</h1><p>The JSON API is served under <code>/api/v1</code>; "
            "see the README for the routes and the demo logins.</p></html>"
        )
        return page, 200, {"Content-Type": "text/html; charset=utf-8"}
