"""The web UI: staff, family and auditor pages, rendered on the server.

`register_web(app)` runs inside `create_app`: cookie settings, CSRF on
every form (Flask-WTF; the JSON API uses bearer tokens instead), message
catalogues (Flask-Babel), security headers, the OpenID Connect client
registry, and the four blueprints:

- `web/auth.py`     staff sign-in (password, agency provider) and sign-out
- `web/staff.py`    search, shared record, entries, referrals, consent grid
- `web/family.py`   the family's own page (receipt code + PIN), translated
- `web/auditor.py`  the audit log, its verification and CSV export
- `web/admin.py`    the admin's page: the agency's staff and their accounts
- `web/reports.py`  the reports page (evaluators, auditors, coordinators)

Views parse a form with a marshmallow schema, call one service and render.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from authlib.integrations.flask_client import OAuth
from flask import (
    Flask,
    Response,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import Babel
from flask_wtf.csrf import CSRFError, CSRFProtect
from marshmallow import Schema, ValidationError
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response as BaseResponse

from coordination import accounts, signin
from coordination.actors import Actor
from coordination.errors import NotAuthenticated, RoleNotPermitted
from coordination.roles import Role
from coordination.runtime import current, request_db, request_id
from coordination.schemas import flatten_errors

F = TypeVar("F", bound=Callable[..., Any])

# Languages of the family page (and the receipt); English is the source.
LANGUAGES = {"en": "English", "nb": "Norsk", "tr": "Türkçe", "ar": "العربية"}
RTL = {"ar"}

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: CSRF checks over HTTPS compare the Referer.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
STAFF_COOKIE = "staff"
FAMILY_COOKIE = "family"


def register_web(app: Flask) -> None:
    settings = app.extensions["onestory"].settings
    app.config.update(
        SESSION_COOKIE_NAME="onestory",
        SESSION_COOKIE_HTTPONLY=True,
        # Lax, not Strict: the return from an agency's sign-in provider is a
        # cross-site navigation that must carry the sign-in state.
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        PERMANENT_SESSION_LIFETIME=settings.web_policy.lifetime,
        # The cookie is sent again only when its content changes: a response
        # for a stylesheet, sent before the page's new cookie arrived, would
        # otherwise put the old cookie back. Sessions end server-side anyway
        # (idle and absolute limits in coordination.signin).
        SESSION_REFRESH_EACH_REQUEST=False,
        TRUSTED_HOSTS=settings.trusted_hosts or None,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        BABEL_DEFAULT_LOCALE="en",
        BABEL_DEFAULT_TIMEZONE=settings.timezone,
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).resolve().parent.parent
                                          / "translations"),
    )
    if settings.trusted_proxies:
        # Behind a TLS-terminating proxy: the client's address (for lockout)
        # and https (for links such as the sign-in provider's return address).
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    csrf = CSRFProtect(app)
    if "api" in app.blueprints:
        csrf.exempt(app.blueprints["api"])  # bearer tokens, no cookies
    Babel(app, locale_selector=locale)
    app.extensions["onestory.oauth"] = OAuth(app)
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, current_locale=locale,
                                 text_direction=text_direction, Role=Role)

    from coordination.web import admin, auditor, auth, family, reports, staff

    for module in (auth, staff, family, auditor, admin, reports):
        app.register_blueprint(module.create_blueprint())

    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_failed)
    app.extensions["onestory.web_errors"] = render_error

    @app.get("/")
    def index() -> BaseResponse:
        return redirect(url_for("auth.sign_in"))


def locale() -> str:
    """The page's language: chosen on the page (kept in the session),
    else the browser's preference, else English."""
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        session["lang"] = chosen
        return chosen
    kept = session.get("lang")
    if kept in LANGUAGES:
        return str(kept)
    return request.accept_languages.best_match(list(LANGUAGES)) or "en"


def text_direction() -> str:
    return "rtl" if locale() in RTL else "ltr"


def _security_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if response.mimetype == "text/html":
        # Pages hold personal data: never kept by the browser or a proxy.
        response.headers["Cache-Control"] = "no-store"
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    return response



def client_address() -> str:
    return request.remote_addr or "unknown"


def safe_next(target: str | None, default: str) -> str:
    """Only a path on this site, never another host (no open redirect)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return default
    return target


def end_signed_in() -> None:
    """End, on record, whatever this browser is signed in as (a staff
    session, a family session) and clear its cookie but for the language.
    At sign-in (no fixation, no session left alive behind a new one) and
    sign-out. The cookie is cleared even if the ending fails."""
    rt = current()
    # Kept on g: a view run again after a write conflict still ends them.
    staff_token, family_token = g.setdefault(
        "ending", (session.get(STAFF_COOKIE), session.get(FAMILY_COOKIE)))
    try:
        if isinstance(staff_token, str):
            signin.sign_out(request_db(), staff_token, rt.now(), request_id=request_id())
        if isinstance(family_token, str):
            accounts.close_family_session(request_db(), family_token, rt.now(),
                                          request_id=request_id())
    finally:
        lang = session.get("lang")
        session.clear()
        if lang in LANGUAGES:
            session["lang"] = lang


def home_for(actor: Actor) -> str:
    if actor.role == Role.AUDITOR:
        return url_for("auditor.log")
    if actor.role == Role.ADMIN:
        return url_for("admin.people")
    if actor.role == Role.EVALUATOR:
        return url_for("reports.page")
    return url_for("staff.home")


def staff_actor() -> Actor | None:
    """The signed-in staff member, or None (the session cookie is cleared)."""
    if "actor" in g:
        found: Actor = g.actor
        return found
    token = session.get(STAFF_COOKIE)
    if not isinstance(token, str):
        return None
    rt = current()
    try:
        actor = signin.actor_for(request_db(), token, rt.now(), rt.settings.web_policy,
                                 request_id=request_id())
    except NotAuthenticated:
        session.pop(STAFF_COOKIE, None)
        flash("Your session has ended. Please sign in again.", "info")
        return None
    g.actor = dataclasses.replace(actor, request_id=request_id())
    return g.actor


def staff_page(*roles: Role) -> Callable[[F], F]:
    """A page for signed-in staff of these roles: others are sent to sign
    in (no session) or refused (403, on record)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            actor = staff_actor()
            if actor is None:
                return redirect(url_for("auth.sign_in", next=request.full_path.rstrip("?")))
            if actor.role not in roles:
                raise RoleNotPermitted("your role may not use this page")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def run_once(view: F) -> F:
    """Mark a view that must not be run again whole on a write conflict
    (`coordination.app.register_retry`): it spends something outside the
    database, and retries its own database steps instead."""
    view.run_once = True  # type: ignore[attr-defined]
    return view


def parse(schema: Schema, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Validate form input with the same schemas as the JSON API:
    (values, {}) or ({}, errors by key)."""
    try:
        return schema.load(data), {}
    except ValidationError as err:
        return {}, flatten_errors(err.messages)


def text_fields(*names: str) -> dict[str, str]:
    """Non-empty, stripped text fields of the posted form."""
    out = {}
    for name in names:
        value = request.form.get(name, "").strip()
        if value:
            out[name] = value
    return out


def _csrf_failed(exc: CSRFError) -> tuple[str, int]:
    template = "family/error.html" if request.blueprint == "family" else "error.html"
    return render_template(template, status=400, title="Please try again",
                           detail="This form had expired or did not come from this site, "
                                  "so nothing was changed. Reload the page and send it again."), \
        400


def render_error(exc: Exception) -> tuple[str, int, dict[str, str]] | BaseResponse:
    """An HTML page for a failure on a web page (the API answers problem+json)."""
    from coordination.api.problems import describe

    if isinstance(exc, NotAuthenticated) and request.blueprint in {"staff", "auditor"}:
        return redirect(url_for("auth.sign_in"))
    status, title, detail, headers = describe(exc)
    template = "family/error.html" if request.blueprint == "family" else "error.html"
    return render_template(template, status=status, title=title, detail=detail), status, headers
