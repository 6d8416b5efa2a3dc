"""Plain words for families: what each row of the consent form lets an
agency see, in short sentences, translated with the family page's
message catalogues (coordination/translations)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flask_babel import gettext, lazy_gettext

# One phrase per default row of the form; rows an installation adds use their label.
FIELD_WORDS = {
    "involvement": lazy_gettext("which services help you, and who your contact person is"),
    "contact": lazy_gettext("how to reach you"),
    "household": lazy_gettext("who is in your family"),
    "story": lazy_gettext("your story, as you told it"),
    "health": lazy_gettext("health notes"),
    "education": lazy_gettext("notes from kindergarten or school"),
    "social": lazy_gettext("notes from social services"),
    "protection": lazy_gettext("notes from child protection"),
}


def field_words(field_id: str, labels: Mapping[str, str] | None = None) -> str:
    if field_id in FIELD_WORDS:
        return str(FIELD_WORDS[field_id])
    return (labels or {}).get(field_id, field_id)


def can_see(agency_name: str, field_ids: Iterable[str],
            labels: Mapping[str, str] | None = None) -> str:
    """"Family centre physiotherapy can see: health notes." """
    order = list(FIELD_WORDS)
    ranked = sorted(field_ids, key=lambda f: (order.index(f) if f in order else len(order), f))
    # Translators: between the things a service can see; some of them hold a
    # comma themselves, so this is a stronger separator (Arabic: "؛ ").
    separator = gettext("; ")
    things = separator.join(field_words(f, labels) for f in ranked)
    return gettext("%(agency)s can see: %(things)s.", agency=agency_name, things=things)
