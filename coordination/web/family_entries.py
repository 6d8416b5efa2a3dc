"""The family page's section of needs and attendance in the page's language
(`on_page`); the words are the family's own (translated), not the API's."""

from __future__ import annotations

from datetime import date
from typing import Any

from babel.lists import format_list
from flask_babel import get_locale, gettext, lazy_gettext, ngettext

from coordination.actors import Actor
from coordination.casework import entry_kinds, family_entries
from coordination.runtime import current, request_db

# The De Sloep reception questions in the family's words (a configured code
# without a translation reads as the code with spaces).
NEEDS = {
    "income": lazy_gettext("income"),
    "housing": lazy_gettext("housing"),
    "health": lazy_gettext("health"),
    "material_help": lazy_gettext("material help"),
    "child_benefit": lazy_gettext("child benefit"),
    "childcare": lazy_gettext("childcare"),
    "family": lazy_gettext("family"),
    "education": lazy_gettext("education"),
    "parenting": lazy_gettext("parenting"),
    "pregnancy": lazy_gettext("pregnancy"),
    "training": lazy_gettext("training"),
    "other": lazy_gettext("other"),
}


def in_words(kind: str, data: dict[str, Any]) -> str:
    """A typed entry as the family reads it, in the page's language."""
    from coordination.web.family import written_date

    if kind == entry_kinds.ATTENDANCE:
        return ngettext(
            "Attended %(attended)s of %(num)d session offered, from %(start)s to %(end)s.",
            "Attended %(attended)s of %(num)d sessions offered, from %(start)s to %(end)s.",
            data["offered"], attended=data["attended"],
            start=written_date(date.fromisoformat(data["from"])),
            end=written_date(date.fromisoformat(data["to"])))
    needs = [str(NEEDS[c]) if c in NEEDS else entry_kinds.need_label(c) for c in data["codes"]]
    return gettext("Needs: %(needs)s.", needs=format_list(needs, locale=get_locale()))


def on_page(actor: Actor) -> list[dict[str, str]]:
    """The family's needs and attendance entries, newest first, each with
    the agency that wrote it and the day, in the page's language."""
    from coordination.web.family import _names, isolate, written_date

    rt = current()
    names = _names()
    return [{"agency": isolate(names.get(e.agency, e.agency)),
             "day": written_date(e.written_at.date()),
             "words": in_words(e.kind, e.data)}
            for e in family_entries.typed_entries(request_db(), rt.vault, actor,
                                                   str(actor.family_id), rt.now())]
