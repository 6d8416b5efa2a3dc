"""The staff entry form's kinds (free text, attendance, needs): what it
offers and what a posted form asks, as the API body it stands for."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from flask import request

from coordination.casework import entry_kinds
from coordination.casework.common import FieldFacts
from coordination.model import FieldDef

KIND_NAMES = {entry_kinds.TEXT: "Free text",
              entry_kinds.ATTENDANCE: "Attendance (sessions attended of sessions offered)",
              entry_kinds.NEEDS: "Needs"}
WHOLE = re.compile(r"[0-9]{1,9}")
FRACTION = re.compile(r"[0-9]{0,9}[.,][0-9]{1,9}")


def form_context(catalogue: Sequence[FieldDef | FieldFacts], writable: Sequence[str],
                 needs_codes: Sequence[str]) -> dict[str, Any]:
    """`kind_choices`: each kind some writable field takes, with those fields'
    labels (only when a field takes more than free text); `kind_fields`:
    each kind's field ids (the page offers only the chosen field's kinds);
    `need_choices`: each configured needs code with its words."""
    takes: dict[str, list[str]] = {}
    ids: dict[str, list[str]] = {}
    for field_def in catalogue:
        if field_def.id in writable:
            for kind in field_def.kind_list:
                takes.setdefault(kind, []).append(field_def.label)
                ids.setdefault(kind, []).append(field_def.id)
    several = any(kind != entry_kinds.TEXT for kind in takes)
    choices = [(k, KIND_NAMES.get(k, k), takes[k]) for k in entry_kinds.KINDS if k in takes]
    return {"kind_choices": choices if several else [], "kind_fields": ids,
            "need_choices": [(c, entry_kinds.need_label(c)) for c in needs_codes]}


def _count(raw: str) -> Any:
    # A whole number as one, a fraction ("0.8", "0,8") as one too, anything
    # else ("80%", "forty") as typed: the kind's check refuses all but the
    # first, a fraction or percentage with what to send (counts).
    if WHOLE.fullmatch(raw):
        return int(raw)
    if FRACTION.fullmatch(raw):
        return float(raw.replace(",", "."))
    return raw


def posted() -> tuple[dict[str, Any], dict[str, Any]]:
    """(the form as posted, to show again; the body it stands for, as the
    API's `EntryIn` takes it)."""
    form: dict[str, Any] = {k: request.form.get(k, "").strip()
                            for k in ("field", "value", "kind", "attended", "offered",
                                      "from", "to")}
    form["codes"] = request.form.getlist("codes")
    body: dict[str, Any] = {"field": form["field"]} if form["field"] else {}
    kind = form["kind"] or entry_kinds.TEXT
    if kind == entry_kinds.TEXT:
        if form["value"]:
            body["value"] = form["value"]
    elif kind == entry_kinds.ATTENDANCE:
        body["kind"] = kind
        body["data"] = {key: (_count(form[key]) if key in ("attended", "offered") else form[key])
                        for key in ("attended", "offered", "from", "to") if form[key]}
    else:
        body["kind"] = kind
        body["data"] = {"codes": form["codes"]}
    return form, body
