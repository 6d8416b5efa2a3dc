"""The admin's page: the staff of the admin's own agency, adding staff,
changing a role, resetting a password, revoking API tokens, deactivating
(with a hand-over to a colleague). Each act is one `coordination.accounts`
use case, the same the command line runs, with the admin as `by`: on the
audit log, only within the admin's agency (another agency's staff member
answers like one who does not exist), never leaving the agency without an
admin.

New passwords are made by OneStory and shown once, never chosen by the
admin: a chosen one tends to be short or reused, and would be typed into a
form a browser may remember; this one has about 99 random bits, stored only as an
argon2 hash, on a page that is never cached.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from marshmallow import fields, validate
from werkzeug.wrappers import Response as BaseResponse

from coordination import accounts
from coordination.actors import Actor
from coordination.errors import Conflict, InvalidInput, NotFound
from coordination.model import Agency
from coordination.roles import Role
from coordination.runtime import current, request_db
from coordination.schemas import StrictSchema, text
from coordination.web import parse, staff_page, text_fields

ROLES = [(r.value, r.value) for r in Role]
PASSWORDS = [("generated", "Make a password to give them (shown once)"),
             ("none", "No password: they sign in through the agency's own sign-in service")]


class StaffIn(StrictSchema):
    username = text(1, 64, required=True)
    display_name = text(1, 200)
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))
    sign_in = fields.String(required=True,
                            validate=validate.OneOf([value for value, _ in PASSWORDS]))


class RoleIn(StrictSchema):
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))


class NameIn(StrictSchema):
    display_name = text(1, 200)


class DeactivateIn(StrictSchema):
    hand_over_to = text(1, 64)


def me() -> Actor:
    actor: Actor = g.actor
    return actor


def _member(username: str) -> Any:
    """The staff member of the admin's agency with that name, or `NotFound`
    (also for another agency's)."""
    for staff in accounts.list_staff(request_db(), str(me().agency_id)):
        if staff.username == username:
            return staff
    raise NotFound(f"no user '{username}'")


def _errors(exc: InvalidInput | Conflict | NotFound, key: str) -> dict[str, list[str]]:
    if isinstance(exc, InvalidInput):
        return exc.errors
    return {key: [str(exc)]}


def _row_errors(errors: dict[str, list[str]], username: str) -> dict[str, list[str]]:
    """Errors of a form in one person's row, keyed by that row's field
    (`role-nurse1`), so that the summary links to it."""
    return {f"{key}-{username}": messages for key, messages in errors.items()}


def create_blueprint() -> Blueprint:
    bp = Blueprint("admin", __name__, url_prefix="/admin")

    def _page(errors: dict[str, list[str]] | None = None, form: dict[str, str] | None = None,
              status: int = 200) -> Any:
        agency = request_db().get(Agency, me().agency_id)
        return render_template(
            "staff/admin.html", staff=accounts.list_staff(request_db(), str(me().agency_id)),
            agency=agency, roles=ROLES, passwords=PASSWORDS, errors=errors or {},
            form=form or {"role": Role.PRACTITIONER.value, "sign_in": "generated"}), status

    def _password_page(username: str, password: str, added: bool) -> Any:
        return render_template("staff/admin_password.html", username=username,
                               password=password, added=added), 200

    @bp.get("/staff")
    @staff_page(Role.ADMIN)
    def people() -> Any:
        return _page()

    @bp.post("/staff")
    @staff_page(Role.ADMIN)
    def add() -> Any:
        form = text_fields("username", "display_name", "role", "sign_in")
        values, errors = parse(StaffIn(), form)
        if errors:
            return _page(errors, form, 422)
        rt = current()
        made = values["sign_in"] == "generated"
        password = accounts.new_password() if made else None
        try:
            accounts.add_staff(request_db(), values["username"], str(me().agency_id),
                               values["role"], password, rt.now(),
                               values.get("display_name"), by=me())
        except (InvalidInput, Conflict) as exc:
            request_db().rollback()
            return _page(_errors(exc, "username"), form,
                         409 if isinstance(exc, Conflict) else 422)
        if password is None:
            flash(f"{values['username']} is added; they sign in through the agency's "
                  "sign-in service once linked (onestory user link).", "success")
            return redirect(url_for("admin.people"))
        return _password_page(values["username"], password, added=True)

    @bp.post("/staff/<username>/role")
    @staff_page(Role.ADMIN)
    def role(username: str) -> Any:
        _member(username)
        values, errors = parse(RoleIn(), text_fields("role"))
        status = 422
        if not errors:
            try:
                accounts.change_role(request_db(), username, values["role"], current().now(),
                                     by=me())
            except (InvalidInput, Conflict) as exc:
                request_db().rollback()
                errors = _errors(exc, "role")
                status = 409 if isinstance(exc, Conflict) else 422
        if errors:
            return _page(_row_errors(errors, username), status=status)
        flash(f"{username} is now {values['role']}.", "success")
        return redirect(url_for("admin.people"))

    @bp.post("/staff/<username>/name")
    @staff_page(Role.ADMIN)
    def name(username: str) -> Any:
        _member(username)
        values, errors = parse(NameIn(), text_fields("display_name"))
        if not errors:
            try:
                accounts.set_display_name(request_db(), username, values.get("display_name"),
                                          current().now(), by=me())
            except InvalidInput as exc:
                request_db().rollback()
                errors = exc.errors
        if errors:
            return _page(_row_errors(errors, username), status=422)
        flash(f"{username} is now named {values['display_name']} to families."
              if values.get("display_name") else
              f"{username} is named by their username to families.", "success")
        return redirect(url_for("admin.people"))

    @bp.post("/staff/<username>/password")
    @staff_page(Role.ADMIN)
    def password(username: str) -> Any:
        _member(username)
        try:
            new = accounts.reset_password(request_db(), username, current().now(), by=me())
        except Conflict as exc:
            request_db().rollback()
            return _page({"password": [str(exc)]}, status=409)
        return _password_page(username, new, added=False)

    @bp.post("/staff/<username>/tokens/revoke")
    @staff_page(Role.ADMIN)
    def revoke_tokens(username: str) -> BaseResponse:
        _member(username)
        revoked = accounts.revoke_tokens(request_db(), username, current().now(), by=me())
        flash(f"{revoked} API token{'s' if revoked != 1 else ''} of {username} revoked.",
              "success")
        return redirect(url_for("admin.people"))

    @bp.route("/staff/<username>/deactivate", methods=["GET", "POST"])
    @staff_page(Role.ADMIN)
    def deactivate(username: str) -> Any:
        staff = _member(username)
        colleagues = [(s.username, f"{accounts.staff_name(s)} ({s.username})")
                      for s in accounts.list_staff(request_db(), str(me().agency_id))
                      if s.active and s.username != username]
        form = text_fields("hand_over_to")
        errors: dict[str, list[str]] = {}
        if request.method == "POST":
            values, errors = parse(DeactivateIn(), form)
            if not errors:
                try:
                    done = accounts.deactivate_staff(request_db(), username,
                                                     values.get("hand_over_to"),
                                                     current().now(), by=me())
                except (InvalidInput, Conflict, NotFound) as exc:
                    request_db().rollback()
                    errors = _errors(exc, "user" if isinstance(exc, Conflict)
                                     else "hand_over_to")
                else:
                    if username == me().username:  # their own session has just ended
                        return redirect(url_for("auth.sign_in"))
                    handed = (f"{values['hand_over_to']} is now contact worker"
                              if values.get("hand_over_to") else "no contact worker is named")
                    flash(f"{username} is deactivated: {done.sessions_ended} sessions ended, "
                          f"{done.tokens_revoked} API tokens revoked; {handed} for "
                          f"{done.contact_worker_changes} families.", "success")
                    return redirect(url_for("admin.people"))
        status = 200 if not errors else (409 if "user" in errors else 422)
        return render_template("staff/admin_deactivate.html", member=staff,
                               colleagues=colleagues, form=form, errors=errors), status

    return bp
