"""The family's answer to "may we count you in anonymous statistics?" on its
own page: what it means in plain words (partial family/_counting.html) and
changing it after a confirmation step (`/family/counting/yes|no`), which
writes a new version of the form (`casework.counting.set_counting`). An
ended form counts no family, so its answer is not offered for change.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext

from consent.errors import NoConsentForm
from coordination.actors import Actor
from coordination.casework import consent_forms, counting
from coordination.errors import Conflict
from coordination.runtime import current, request_db
from coordination.web.family import family_page


def register(bp: Blueprint) -> None:
    @bp.route("/counting/<any(yes, no):answer>", methods=["GET", "POST"])
    @family_page
    def counting_answer(actor: Actor, answer: str) -> Any:
        counted = answer == "yes"
        rt = current()
        try:
            form = consent_forms.get_consent(request_db(), rt.vault, actor,
                                             str(actor.family_id), rt.now())
        except NoConsentForm:
            form = None
        if form is not None and not form["in_force"]:
            # Reports count only families whose form is in force: an ended
            # form's answer changes nothing, so it is not offered.
            flash(gettext("Your form has ended, so your family is not counted in any "
                          "numbers. To change this, ask one of the services for a new "
                          "form."), "info")
            return redirect(url_for("family.consent"))
        if request.method == "GET":
            return render_template("family/counting.html", counted=counted)
        if request.form.get("confirmed") != "1":
            return redirect(url_for("family.counting_answer", answer=answer))
        try:
            counting.set_counting(request_db(), rt.vault, actor, str(actor.family_id), counted,
                                  rt.now())
        except (NoConsentForm, Conflict):
            flash(gettext("Nothing was changed. Please look at your form again and try "
                          "once more."), "error")
            return redirect(url_for("family.consent"))
        flash(gettext("Saved: your family is counted in numbers without names.") if counted else
              gettext("Saved: your family is not counted in any numbers."), "success")
        return redirect(url_for("family.consent"))
