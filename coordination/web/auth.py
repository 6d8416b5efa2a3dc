"""Staff sign-in and sign-out: a password, or the agency's own OpenID
Connect provider (authorization code with PKCE), through authlib."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from marshmallow import fields, validate
from werkzeug.wrappers import Response as BaseResponse

from coordination import signin
from coordination.db import retry_on_conflict
from coordination.errors import NotAuthenticated, Throttled
from coordination.model import Agency
from coordination.runtime import current, request_db
from coordination.schemas import StrictSchema, text
from coordination.web import (
    STAFF_COOKIE,
    client_address,
    end_signed_in,
    home_for,
    parse,
    request_id,
    run_once,
    safe_next,
    staff_actor,
)

OIDC_STATE = "oidc_agency"


class SignInIn(StrictSchema):
    username = text(1, 64, required=True)
    password = text(1, 1024, required=True)
    next = text(1, 2000)


class AgencyArg(StrictSchema):
    agency = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]{1,64}$"))


def _start_session(token: str) -> None:
    # A fresh cookie at sign-in: nothing from before (fixation) carries over,
    # and whoever was signed in on this browser before is signed out.
    end_signed_in()
    session.permanent = True
    session[STAFF_COOKIE] = token


def _page(errors: dict[str, list[str]] | None = None, status: int = 200,
          username: str = "", message: str | None = None) -> tuple[str, int]:
    return render_template(
        "sign_in.html", errors=errors or {}, username=username, message=message,
        next=request.values.get("next", ""),
        providers=signin.oidc_agencies(request_db()),
    ), status


def _oauth_client(agency: Agency) -> Any:
    """The authlib client for an agency's provider, registered on first use
    (under a name that changes when the agency's configuration does)."""
    oauth = current_app.extensions["onestory.oauth"]
    issuer = str(agency.oidc_issuer).rstrip("/")
    config = f"{agency.id}|{issuer}|{agency.oidc_client_id}"
    name = "agency_" + hashlib.sha256(config.encode()).hexdigest()[:16]
    client = oauth.create_client(name)
    if client is None:
        secret = current().settings.oidc_client_secrets.get(agency.id)
        client = oauth.register(
            name,
            client_id=agency.oidc_client_id,
            client_secret=secret,
            server_metadata_url=f"{issuer}/.well-known/openid-configuration",
            client_kwargs={
                "scope": "openid",
                "code_challenge_method": "S256",
                "token_endpoint_auth_method": "client_secret_basic" if secret else "none",
            },
        )
    return client


def create_blueprint() -> Blueprint:
    bp = Blueprint("auth", __name__)

    @bp.get("/sign-in")
    def sign_in() -> Any:
        actor = staff_actor()
        if actor is not None:
            return redirect(safe_next(request.args.get("next"), home_for(actor)))
        return _page()

    @bp.post("/sign-in")
    def sign_in_post() -> Any:
        data, errors = parse(SignInIn(), {k: v for k, v in request.form.items()
                                          if k != "csrf_token" and (v or k != "next")})
        username = request.form.get("username", "")[:64]
        if errors:
            return _page(errors, 422, username)
        rt = current()
        try:
            token = signin.with_password(
                request_db(), data["username"], data["password"], client_address(), rt.now(),
                rt.settings.web_policy, request_id=request_id())
        except Throttled as exc:
            minutes = max(1, round(exc.retry_after / 60))
            return _page(status=429, username=username, message=(
                f"Too many failed sign-ins. Sign-in is locked for about {minutes} "
                f"minute{'s' if minutes != 1 else ''}; try again later or ask your "
                "administrator.")) + ({"Retry-After": str(exc.retry_after)},)
        except NotAuthenticated:
            return _page(status=401, username=username,
                         message="The username or password is not right.")
        _start_session(token)
        actor = staff_actor()
        assert actor is not None
        return redirect(safe_next(data.get("next"), home_for(actor)))

    @bp.post("/sign-out")
    def sign_out() -> BaseResponse:
        end_signed_in()
        flash("You are signed out.", "info")
        return redirect(url_for("auth.sign_in"))

    @bp.get("/sign-in/oidc/<agency>")
    def oidc_start(agency: str) -> Any:
        _values, errors = parse(AgencyArg(), {"agency": agency})
        found = None if errors else request_db().get(Agency, agency)
        if found is None or not found.oidc_issuer or not found.oidc_client_id:
            return _page(status=404, message="That agency does not offer sign-in here.")
        # No transaction stays open while the provider is asked (on SQLite it
        # would hold the server's turn: coordination.db.serve_in_turns).
        request_db().commit()
        session[OIDC_STATE] = found.id
        redirect_uri = url_for("auth.oidc_callback", agency=found.id, _external=True)
        try:
            return _oauth_client(found).authorize_redirect(redirect_uri)
        except Exception:  # noqa: BLE001 - an unreachable provider is the user's error page
            current_app.logger.warning("provider of %s unreachable", found.id)
            signin.oidc_failed(request_db(), found.id, "provider_unreachable", current().now(),
                               request_id=request_id())
            return _page(status=502, message=(
                "Your agency's sign-in service cannot be reached. Try again later, or "
                "sign in with a password if you have one."))

    @bp.get("/sign-in/oidc/<agency>/callback")
    @run_once
    def oidc_callback(agency: str) -> Any:
        rt = current()
        expected = session.pop(OIDC_STATE, None)
        found = request_db().get(Agency, agency) if expected == agency else None
        if found is None or not found.oidc_issuer or not found.oidc_client_id:
            return _page(status=400, message="That sign-in could not be completed; start again.")
        request_db().commit()  # none open across the provider's round trips (see oidc_start)
        issuer = str(found.oidc_issuer)
        try:
            # authlib checks state, exchanges the code with the PKCE verifier and
            # validates the ID token (signature, nonce, expiry); the issuer must
            # be the one configured for the agency, not merely the one the
            # provider's discovery document names, and the audience must be
            # OneStory's client id (authlib on its own compares only `azp`, so
            # a token for another client naming OneStory as `azp` would pass).
            token = _oauth_client(found).authorize_access_token(claims_options={
                "iss": {"essential": True, "value": issuer},
                "aud": {"essential": True, "value": str(found.oidc_client_id)}})
            claims = token.get("userinfo")
            if not claims:
                raise ValueError("no ID token")
        except Exception as exc:  # noqa: BLE001 - any failure here is a failed sign-in
            reason = getattr(exc, "error", None) or type(exc).__name__
            current_app.logger.warning("sign-in through %s failed: %s", found.id, reason)
            retry_on_conflict(request_db(), lambda: signin.oidc_failed(
                request_db(), found.id, f"provider:{reason}"[:64], rt.now(),
                request_id=request_id()))
            return _page(status=401, message="Your agency's sign-in did not succeed.")
        try:
            # Only this step runs again on a write conflict: the code above is
            # spent once used.
            web_token = retry_on_conflict(request_db(), lambda: signin.with_oidc(
                request_db(), found.id, claims.get("sub"), rt.now(), rt.settings.web_policy,
                request_id=request_id()))
        except NotAuthenticated:
            return _page(status=403, message=(
                "You signed in with your agency, but you have no OneStory account there. "
                "Ask your administrator to link your account."))
        _start_session(web_token)
        actor = staff_actor()
        assert actor is not None
        return redirect(home_for(actor))

    return bp
