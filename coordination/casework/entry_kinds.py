"""The kinds of entry (CONTRACT.md, "Typed entries and counting consent"):
free text, `attendance` and `needs`; their data's one shape, checked at the
boundary, stored as canonical JSON, and the entry in words.

Pure: no database, no request. `data_errors` checks raw input of a kind
and says what to send; `canonical` is what `entries.value` seals; `in_words`
is the entry as English words (the API's and the staff pages' `value`).

- attendance: `{"attended", "offered", "from", "to"}`, the sessions attended
  of the sessions offered over a period: whole numbers (no fractions, no
  percentage or rate), 0 <= attended <= offered, 1 <= offered <= 100 000,
  `from` <= `to`, at most a school year (366 days, both days counted).
- needs: `{"codes": [...]}`, at least one code, none twice, each from the
  configured list (ONESTORY_NEEDS_CODES; default De Sloep's reception
  questions). There is no code for residence documents: it would tell a
  family's status.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import date
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

TEXT = "text"
ATTENDANCE = "attendance"
NEEDS = "needs"
KINDS = (TEXT, ATTENDANCE, NEEDS)
TYPED = (ATTENDANCE, NEEDS)

# De Sloep's reception questions (DOMAIN.md, "Evidence of need and impact"),
# in its order, with their words.
NEEDS_LABELS = {
    "income": "income",
    "housing": "housing",
    "health": "health",
    "material_help": "material help",
    "child_benefit": "child benefit",
    "childcare": "childcare",
    "family": "family",
    "education": "education",
    "parenting": "parenting",
    "pregnancy": "pregnancy",
    "training": "training",
    "other": "other",
}
DEFAULT_NEEDS_CODES = tuple(NEEDS_LABELS)
NEEDS_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")
# Words no needs code may hold, whatever the configuration (as NEVER_STORED
# in coordination.schemas): a family's residence status is never recorded.
FORBIDDEN_CODE_WORDS = ("residence", "immigration", "asylum", "permit", "documents")

MAX_SESSIONS = 100_000
MAX_PERIOD_DAYS = 366
ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

ATTENDANCE_EXAMPLE = '{"attended": 40, "offered": 50, "from": "2026-09-01", "to": "2026-11-30"}'
SEND_COUNTS = ("send counts, not a percentage or a rate: the number of sessions attended, the "
               "number of sessions offered and the period, as " + ATTENDANCE_EXAMPLE)
SEND_CODES = 'send the needs as codes, as {"codes": ["housing", "income"]}'
RATE_KEYS = frozenset({"rate", "percent", "percentage", "share", "ratio", "proportion"})


def needs_code_errors(codes: Sequence[str]) -> list[str]:
    """What is wrong with a configured list of needs codes (empty: nothing)."""
    problems = []
    if not codes:
        problems.append("at least one code is needed")
    for code in codes:
        if not NEEDS_CODE.fullmatch(code):
            problems.append(f"{code!r} is not a code (lower-case letters, digits and _, "
                            "at most 32)")
        elif any(word in code for word in FORBIDDEN_CODE_WORDS):
            problems.append(f"{code!r} would record a family's residence status, "
                            "which OneStory never stores")
    if len(set(codes)) != len(codes):
        problems.append("a code is listed twice")
    return problems


def need_label(code: str) -> str:
    """A needs code in English words (a configured code without its own: the
    code with spaces)."""
    return NEEDS_LABELS.get(code, code.replace("_", " "))


class Count(fields.Integer):
    """A whole JSON number: not a fraction (0.8, 40.0), not a boolean, not a
    string ("40", "80%")."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


class Day(fields.Date):
    """Exactly YYYY-MM-DD."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or not ISO_DAY.fullmatch(value):
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        return super()._deserialize(value, attr, data, **kwargs)


class AttendanceData(Schema):
    """Sessions attended of sessions offered over a period."""

    class Meta:
        unknown = RAISE

    attended = Count(required=True, validate=validate.Range(min=0, max=MAX_SESSIONS),
                     error_messages={"invalid": "a whole number of sessions attended"})
    offered = Count(required=True, validate=validate.Range(min=1, max=MAX_SESSIONS),
                    error_messages={"invalid": "a whole number of sessions offered"})
    from_ = Day(required=True, data_key="from")
    to = Day(required=True)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_kw: Any) -> None:
        if data["attended"] > data["offered"]:
            raise ValidationError("cannot be more than the sessions offered", "attended")
        start, end = data["from_"], data["to"]
        if start > end:
            raise ValidationError("the period ends before it starts", "to")
        if (end - start).days + 1 > MAX_PERIOD_DAYS:
            raise ValidationError(f"a period of at most a school year ({MAX_PERIOD_DAYS} "
                                  "days)", "to")


class NeedsData(Schema):
    """Needs as codes from the configured list."""

    class Meta:
        unknown = RAISE

    codes = fields.List(fields.String(), required=True,
                        validate=validate.Length(min=1, error="at least one code"))

    def __init__(self, allowed: Sequence[str], **kw: Any) -> None:
        super().__init__(**kw)
        self.allowed = tuple(allowed)

    @validates_schema
    def _known(self, data: dict[str, Any], **_kw: Any) -> None:
        codes = data["codes"]
        unknown = [c for c in codes if c not in self.allowed]
        if unknown:
            raise ValidationError(f"unknown code(s) {', '.join(map(repr, unknown))}; the codes "
                                  f"are: {', '.join(self.allowed)}", "codes")
        if len(set(codes)) != len(codes):
            raise ValidationError("each code once", "codes")


def kind_errors(field_id: str, takes: Sequence[str], kind: str) -> list[str]:
    """Why `kind` cannot be written under a field that takes `takes`."""
    if kind in takes:
        return []
    return [f"'{field_id}' takes {_either(takes)}, not '{kind}'"]


def _either(kinds: Sequence[str]) -> str:
    named = [f"'{k}'" for k in kinds]
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + " or " + named[-1]


def _looks_like_rate(value: Any) -> bool:
    return (isinstance(value, float)
            or (isinstance(value, str) and "%" in value)
            or (isinstance(value, dict) and (bool(RATE_KEYS & set(map(str, value)))
                                             or any(_looks_like_rate(v) for v in value.values()))))


def data_errors(kind: str, data: Any, needs_codes: Sequence[str]
                ) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """`data` of a typed `kind` checked: (its canonical form, {}) or (None,
    errors keyed "data" / "data.<key>"). A percentage or rate where counts
    are expected is refused with what to send (`SEND_COUNTS`)."""
    if kind == ATTENDANCE:
        if _looks_like_rate(data) or (isinstance(data, int | str)
                                      and not isinstance(data, bool)):
            return None, {"data": [SEND_COUNTS]}
        if not isinstance(data, dict):
            return None, {"data": [f"an object: {ATTENDANCE_EXAMPLE}"]}
        try:
            loaded = AttendanceData().load(data)
        except ValidationError as err:
            return None, _prefixed(err.messages)
        return {"attended": loaded["attended"], "offered": loaded["offered"],
                "from": loaded["from_"].isoformat(), "to": loaded["to"].isoformat()}, {}
    if kind == NEEDS:
        if not isinstance(data, dict):
            return None, {"data": [SEND_CODES]}
        try:
            loaded = NeedsData(needs_codes).load(data)
        except ValidationError as err:
            return None, _prefixed(err.messages)
        return {"codes": list(loaded["codes"])}, {}
    return None, {"kind": [f"one of {_either(TYPED)} with data ('{TEXT}' takes a value)"]}


def _prefixed(messages: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not isinstance(messages, dict):
        return {"data": [str(m) for m in messages]}
    for key, value in messages.items():
        name = "data" if key == "_schema" else f"data.{key}"
        if isinstance(value, dict):  # a list's items: {index: [messages]}
            for index, inner in value.items():
                out.setdefault(f"{name}.{index}", []).extend(map(str, inner))
        else:
            out.setdefault(name, []).extend(map(str, value))
    return out


def canonical(data: dict[str, Any]) -> str:
    """The JSON sealed in `entries.value` for typed data (one spelling for
    one value)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stored_data(kind: str, opened: str) -> dict[str, Any] | None:
    """An entry's data from its opened value (None for free text)."""
    if kind == TEXT:
        return None
    data: dict[str, Any] = json.loads(opened)
    return data


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day_words(day: str) -> str:
    """A stored day in English ("1 Sep 2026"), whatever the process's locale."""
    moment = date.fromisoformat(day)
    return f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}"


def in_words(kind: str, data: dict[str, Any] | None, text: str = "") -> str:
    """The entry in English words ("Attended 40 of 50 sessions offered, 1 Sep
    2026 to 30 Nov 2026", "Needs: housing, income"); free text as written."""
    if kind == ATTENDANCE and data is not None:
        sessions = "session" if data["offered"] == 1 else "sessions"
        return (f"Attended {data['attended']} of {data['offered']} {sessions} offered, "
                f"{day_words(data['from'])} to {day_words(data['to'])}")
    if kind == NEEDS and data is not None:
        return "Needs: " + ", ".join(need_label(c) for c in data["codes"])
    return text
