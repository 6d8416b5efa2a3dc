"""Staff pages: find a family, read its shared record, write an entry,
refer, record a signed joint consent form (a grid: agencies as columns,
fields as rows), revoke on the family's behalf, and consent history."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_babel import force_locale, format_date
from werkzeug.wrappers import Response as BaseResponse

from consent.errors import NoConsentForm
from coordination.actors import Actor
from coordination.api import record_denial
from coordination.casework import access_log as who_looked
from coordination.casework import common, consent_forms, entries, families, involvements, record
from coordination.casework.common import FieldFacts
from coordination.errors import Conflict, InvalidInput
from coordination.model import FieldDef
from coordination.roles import Role
from coordination.runtime import current, request_db
from coordination.schemas import (
    ConsentIn,
    EndInvolvementIn,
    EntryIn,
    FamilyIn,
    InvolvementPatch,
    SearchArgs,
)
from coordination.web import LANGUAGES, RTL, entry_form, parse, staff_page, text_fields, worklist
from coordination.web import referrals as referral_pages
from coordination.web.words import can_see

CASEWORK = (Role.PRACTITIONER, Role.COORDINATOR)
METHODS = [("paper", "On paper"), ("in_person", "In person, on a screen"),
           ("family_portal", "On the family page")]
TOLD = [("in_person", "In person"), ("paper", "On paper")]


def me() -> Actor:
    actor: Actor = g.actor
    return actor


def _names() -> dict[str, str]:
    return {a.id: a.name for a in common.agencies(request_db())}


def _labels() -> dict[str, str]:
    return {f.id: f.label for f in common.catalogue(request_db())}


FORM_KEYS = "consent_form_keys"


def _new_form_key() -> str:
    """A key that lets one copy of the consent form be recorded once."""
    key = secrets.token_urlsafe(16)
    session[FORM_KEYS] = [*session.get(FORM_KEYS, [])[-4:], key]
    return key


def _kinds(catalogue: Sequence[FieldDef | FieldFacts] | None = None) -> dict[str, Any]:
    """The entry form's kinds and needs codes (`entry_form.form_context`)."""
    rows = catalogue or common.catalogue(request_db())
    return entry_form.form_context(rows, [f for f, _ in _entry_fields(rows)],
                                   current().settings.needs_codes)


def _entry_fields(catalogue: Sequence[FieldDef | FieldFacts] | None = None
                  ) -> list[tuple[str, str]]:
    """The fields this actor may write under (a minimal-data agency: two)."""
    return [(f.id, f.label) for f in catalogue or common.catalogue(request_db())
            if f.id != common.INVOLVEMENT
            and (not me().minimal_data or f.id in entries.MINIMAL_ENTRY_FIELDS)]


def _split_list(value: str) -> list[str]:
    return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]


def create_blueprint() -> Blueprint:
    bp = Blueprint("staff", __name__, url_prefix="/staff")

    from coordination.web import staff_areas, staff_emergency, staff_requests

    staff_areas.register(bp)
    staff_requests.register(bp)
    staff_emergency.register(bp)

    @bp.get("/")
    @staff_page(*CASEWORK, Role.ADMIN)
    def home() -> Any:
        if me().role == Role.ADMIN:
            return redirect(url_for("admin.people"))
        args = {k: v for k, v in request.args.items() if v.strip()}
        if not args:
            return worklist.home_page(me())
        values, errors = parse(SearchArgs(), args)
        if errors:
            return render_template("staff/search.html", errors=errors, args=args,
                                   results=None), 422
        rt = current()
        results = families.search_families(request_db(), rt.vault, me(), values.get("name"),
                                           values.get("birth_date"), rt.now())
        return render_template("staff/search.html", errors={}, args=args, results=results,
                               emergency_allowed=staff_emergency.emergency.allowed(
                                   request_db(), me()))

    @bp.route("/families/new", methods=["GET", "POST"])
    @staff_page(*CASEWORK)
    def new_family() -> Any:
        if request.method == "GET":
            return render_template("staff/new_family.html", errors={}, form={})
        form = text_fields("display_name", "birth_date", "address", "national_id",
                           "languages", "area")
        data: dict[str, Any] = dict(form)
        if "languages" in data:
            data["languages"] = _split_list(data["languages"])
        rt = current()
        values, errors = parse(FamilyIn(), data)
        for key, messages in families.family_errors(me(), data, rt.now(),
                                                    request_db()).items():
            errors.setdefault(key, []).extend(messages)
        if errors:
            return render_template("staff/new_family.html", errors=errors, form=form), 422
        # Warned first: recording a family the agency can already see is
        # confirmed on a second submission ("record anyway"), for the very
        # families shown then: a changed name that meets another warns again.
        values["refuse_duplicate"] = True
        confirmed = frozenset(request.form.get("record_anyway", "").split())
        try:
            created = families.create_family(request_db(), rt.vault, me(), values, rt.now(),
                                             confirmed=confirmed)
        except families.PossibleDuplicate as warned:
            return render_template("staff/new_family.html", errors={}, form=form,
                                   matches=warned.matches)
        flash(f"Recorded {created['display_name']}.", "success")
        return redirect(url_for("staff.family", family_id=created["id"]))

    @bp.get("/families/<id:family_id>")
    @staff_page(*CASEWORK)
    def family(family_id: str) -> Any:
        rt = current()
        shared = record.shared_record(request_db(), rt.vault, me(), family_id, rt.now())
        colleagues = ([(u, u) for u in involvements.colleagues(request_db(), me())]
                      if me().role == Role.COORDINATOR and shared.involved else [])
        readers = (entries.entry_readers(request_db(), rt.vault, me(), family_id, rt.now())
                   if shared.involved else None)
        return render_template("staff/record.html", record=shared.body, readers=readers,
                               involved=shared.involved, fields=shared.catalogue,
                               names=_names(), entry_fields=_entry_fields(shared.catalogue),
                               **_kinds(shared.catalogue),
                               contact_worker=shared.contact_worker, colleagues=colleagues,
                               may_refer=consent_forms.may_refer(request_db(), rt.vault, me(),
                                                                 family_id, rt.now()),
                               errors={}, form={},
                               **staff_emergency.record_context(
                                   family_id, bool(shared.withheld)))

    def _entry_page(family_id: str, errors: dict[str, list[str]], form: dict[str, str],
                    status: int) -> Any:
        rt = current()
        readers = entries.entry_readers(request_db(), rt.vault, me(), family_id, rt.now())
        return render_template("staff/entry.html", family_id=family_id, errors=errors,
                               form=form, entry_fields=_entry_fields(), readers=readers,
                               names=_names(), **_kinds()), status

    @bp.post("/families/<id:family_id>/entries")
    @staff_page(*CASEWORK)
    def write_entry(family_id: str) -> Any:
        form, posted = entry_form.posted()
        values, errors = parse(EntryIn(), posted)
        rt = current()
        if errors:
            common.check_access(request_db(), rt.vault, me(), family_id, rt.now(),
                                involved=True)
            return _entry_page(family_id, errors, form, 422)
        try:
            entries.write_entry(request_db(), rt.vault, me(), family_id, values["field"],
                                values.get("value"), rt.now(),
                                kind=values.get("kind", "text"), data=values.get("data"),
                                needs_codes=rt.settings.needs_codes)
        except InvalidInput as exc:
            return _entry_page(family_id, exc.errors, form, 422)
        flash("The entry is saved.", "success")
        return redirect(url_for("staff.family", family_id=family_id))

    @bp.post("/families/<id:family_id>/contact-worker")
    @staff_page(Role.COORDINATOR)
    def contact_worker(family_id: str) -> Any:
        """Name (from the agency's active staff) or clear the own agency's
        contact worker for this family."""
        chosen = request.form.get("contact_worker", "").strip() or None
        rt = current()
        agency = str(me().agency_id)
        values, errors = parse(InvolvementPatch(), {"contact_worker": chosen})
        if not errors:
            try:
                involvements.update_involvement(request_db(), rt.vault, me(), family_id, agency,
                                                values, rt.now())
            except InvalidInput as exc:
                errors = exc.errors
            except Conflict as exc:
                errors = {"contact_worker": [str(exc)]}
        if errors:
            common.check_access(request_db(), rt.vault, me(), family_id, rt.now(),
                                own_agency=agency)
            flash("The contact worker was not changed: "
                  + "; ".join(m for ms in errors.values() for m in ms), "error")
        elif chosen:
            flash(f"{chosen} is now your agency's contact worker for this family.", "success")
        else:
            flash("Your agency has no contact worker for this family now.", "success")
        return redirect(url_for("staff.family", family_id=family_id))

    @bp.get("/families/<id:family_id>/consent")
    @staff_page(*CASEWORK)
    def consent(family_id: str) -> Any:
        rt = current()
        try:
            form = consent_forms.get_consent(request_db(), rt.vault, me(), family_id, rt.now())
        except NoConsentForm:
            form = None
        return render_template("staff/consent.html", family_id=family_id, form=form,
                               names=_names(), fields=common.catalogue(request_db()))

    def _grid_page(family_id: str, errors: dict[str, list[str]], form: dict[str, Any],
                   ticked: set[tuple[str, str]], status: int = 200, *,
                   blank: bool = False) -> Any:
        form.setdefault("once", _new_form_key())
        return render_template(
            "staff/consent_form.html", family_id=family_id, errors=errors, form=form,
            ticked=ticked, blank=blank, agencies=common.agencies(request_db()),
            fields=common.catalogue(request_db()), methods=METHODS, languages=LANGUAGES), status

    @bp.get("/families/<id:family_id>/consent/new")
    @staff_page(Role.COORDINATOR)
    def new_consent(family_id: str) -> Any:
        rt = current()
        today = rt.now().date()
        form: dict[str, Any] = {"signed_on": today.isoformat(), "method": "paper",
                                "witness": me().username,
                                "valid_until": (today + timedelta(days=365)).isoformat(),
                                "receipt_language": "en"}
        ticked: set[tuple[str, str]] = set()
        try:
            current_form = consent_forms.get_consent(request_db(), rt.vault, me(), family_id,
                                                 rt.now())
        except NoConsentForm:
            current_form = None
        # Pre-filled only for a reader of the whole form: anyone else states
        # the whole grid the family signed, on a blank form, never a copy of
        # what it may not see.
        if current_form is not None and current_form["view"] == "full":
            ticked = {(a, f) for a, fs in current_form["grants"].items() for f in fs}
            form["purpose"] = current_form["purpose"]
        return _grid_page(family_id, {}, form, ticked,
                          blank=current_form is not None and current_form["view"] != "full")

    @bp.post("/families/<id:family_id>/consent/new")
    @staff_page(Role.COORDINATOR)
    def record_consent(family_id: str) -> Any:
        form: dict[str, Any] = text_fields(
            "signed_by", "signed_on", "method", "witness", "interpreter_language", "purpose",
            "valid_until", "receipt_language")
        ticked = set()
        grants: dict[str, list[str]] = {}
        for cell in request.form.getlist("cell"):
            agency, _, field_id = cell.partition(":")
            ticked.add((agency, field_id))
            grants.setdefault(agency, []).append(field_id)
        once = request.form.get("once", "")
        if once not in session.get(FORM_KEYS, []):
            # Sent before (a reload, a second click): recording it again would
            # make another version and void the PIN just printed.
            flash("That form was already sent. Here is the consent form as it stands.",
                  "info")
            return redirect(url_for("staff.consent", family_id=family_id))
        lang = form.pop("receipt_language", "en")
        data: dict[str, Any] = {**form, "grants": grants}
        if request.form.get("reissue_pin"):
            data["reissue_pin"] = True
        if request.form.get("statistics"):
            data["statistics"] = form["statistics"] = True
        rt = current()
        values, errors = parse(ConsentIn(), data)
        if lang not in LANGUAGES:
            errors["receipt_language"] = ["choose one of the listed languages"]
        for key, messages in consent_forms.consent_errors(request_db(), data, rt.now()).items():
            errors.setdefault(key, []).extend(m for m in messages
                                              if m not in errors.get(key, []))
        form["receipt_language"] = lang
        form["once"] = once  # kept, so the corrected form can still be sent once
        if errors:
            common.check_access(request_db(), rt.vault, me(), family_id, rt.now(),
                                involved=True)
            return _grid_page(family_id, errors, form, ticked, 422)
        try:
            recorded = consent_forms.record_consent(request_db(), rt.vault, me(), family_id,
                                                    values, rt.now())
        except InvalidInput as exc:
            return _grid_page(family_id, exc.errors, form, ticked, 422)
        except Conflict as exc:
            record_denial(exc)
            return _grid_page(family_id, {"signed_on": [str(exc)]}, form, ticked, 409)
        session[FORM_KEYS] = [k for k in session.get(FORM_KEYS, []) if k != once]
        receipt = recorded.get("receipt")
        if receipt is None:
            flash(f"Version {recorded['version']} of the consent form is recorded.", "success")
            return redirect(url_for("staff.consent", family_id=family_id))
        return _receipt(recorded, lang)

    def _receipt(recorded: dict[str, Any], lang: str) -> Any:
        """The family's receipt, shown once (the PIN is never stored in clear)."""
        names, labels = _names(), _labels()
        with force_locale(lang):
            sentences = [can_see(names.get(a, a), fs, labels)
                         for a, fs in recorded["grants"].items() if fs]
            signed_on = format_date(date.fromisoformat(recorded["signed_on"]), "d MMMM y")
            valid_until = format_date(date.fromisoformat(recorded["valid_until"]), "d MMMM y")
            page = render_template(
                "staff/receipt.html", form=recorded, sentences=sentences,
                signed_on=signed_on, valid_until=valid_until,
                receipt=recorded["receipt"], page_lang=lang,
                page_dir="rtl" if lang in RTL else "ltr",
                family_url=url_for("family.sign_in", _external=True))
        return page, 201, {"Cache-Control": "no-store"}

    @bp.route("/families/<id:family_id>/consent/revoke", methods=["GET", "POST"])
    @staff_page(Role.COORDINATOR)
    def revoke(family_id: str) -> Any:
        agency = request.values.get("agency") or None
        field_id = request.values.get("field") or None
        rt = current()
        if request.method == "GET" or not request.form.get("confirmed"):
            common.check_access(request_db(), rt.vault, me(), family_id, rt.now(),
                                involved=True)
            return render_template("staff/revoke.html", family_id=family_id, agency=agency,
                                   field=field_id, names=_names(), labels=_labels())
        try:
            form = consent_forms.revoke_consent(request_db(), rt.vault, me(), family_id, agency,
                                                field_id, rt.now())
        except (InvalidInput, Conflict) as exc:
            if isinstance(exc, Conflict):
                record_denial(exc)
            flash(str(exc) if isinstance(exc, Conflict) else
                  "; ".join(m for ms in exc.errors.values() for m in ms), "error")
            return redirect(url_for("staff.consent", family_id=family_id))
        flash(f"Recorded: version {form['version']} of the form is now in force.", "success")
        return redirect(url_for("staff.consent", family_id=family_id))

    @bp.route("/families/<id:family_id>/involvements/<id:agency>/end",
              methods=["GET", "POST"])
    @staff_page(Role.COORDINATOR)
    def end_part(family_id: str, agency: str) -> Any:
        """Record the family's wish that an agency's part ends."""
        rt = current()
        involvements.check_end_involvement(request_db(), rt.vault, me(), family_id, agency,
                                           rt.now())
        form = text_fields("signed_by", "method")
        errors: dict[str, list[str]] = {}
        if request.method == "POST":
            values, errors = parse(EndInvolvementIn(), form)
            errors.update(common.reference_errors(request_db(), agency))
            if not errors:
                try:
                    involvements.end_involvement(request_db(), rt.vault, me(), family_id, agency,
                                                 values, rt.now())
                except Conflict as exc:
                    flash(str(exc), "error")
                    return redirect(url_for("staff.consent", family_id=family_id))
                flash(f"Recorded: {_names().get(agency, agency)} no longer takes part in this "
                      "family's record.", "success")
                if agency == me().agency_id:  # the family no longer exists for us
                    return redirect(url_for("staff.home"))
                return redirect(url_for("staff.consent", family_id=family_id))
        return render_template("staff/end.html", family_id=family_id, agency=agency,
                               names=_names(), form=form, errors=errors,
                               methods=TOLD), 422 if errors else 200

    @bp.get("/families/<id:family_id>/consent/history")
    @staff_page(Role.COORDINATOR)
    def history(family_id: str) -> Any:
        rt = current()
        versions = consent_forms.consent_history(request_db(), rt.vault, me(), family_id, rt.now())
        return render_template("staff/history.html", family_id=family_id,
                               versions=list(reversed(versions)), names=_names(),
                               labels=_labels())

    @bp.get("/families/<id:family_id>/access-log")
    @staff_page(Role.COORDINATOR)
    def access_log(family_id: str) -> Any:
        rt = current()
        rows = who_looked.access_log(request_db(), rt.vault, me(), family_id, rt.now())
        own_only = not consent_forms.sees_whole_form(request_db(), rt.vault, me(), family_id,
                                                     rt.now())
        return render_template("staff/access_log.html", family_id=family_id, rows=rows,
                               own_only=own_only)

    @bp.post("/families/<id:family_id>/access-log/<int:seq>/hide")
    @staff_page(Role.COORDINATOR)
    def hide(family_id: str, seq: int) -> BaseResponse:
        rt = current()
        try:
            who_looked.hide_from_family(request_db(), rt.vault, me(), family_id, seq, rt.now())
        except InvalidInput as exc:
            flash("; ".join(m for ms in exc.errors.values() for m in ms), "error")
        else:
            flash("That entry is no longer shown to the family.", "success")
        return redirect(url_for("staff.access_log", family_id=family_id))

    referral_pages.register(bp)
    return bp
