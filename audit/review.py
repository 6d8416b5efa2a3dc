"""Reviewing the log: which entries deserve an auditor's second look.

`unusual` is a pure function of entries (no database, no clock). It sees
the entries on screen and, for the rules that look back over an hour,
`context`: the one bounded query that fetches the same staff members'
earlier reads and refusals. `latest_checkpoint` is the chain's newest
signed statement, shown next to the log.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from audit.chain import audit_time
from audit.model import Action, AuditCheckpoint, AuditEntry, Outcome

# Looking at a family's record, consent, access log or referrals (their reasons
# and notes): what "read a family" means.
READS = frozenset({Action.RECORD_READ.value, Action.CONSENT_READ.value,
                   Action.CONSENT_HISTORY.value, Action.ACCESS_LOG_READ.value,
                   Action.REFERRAL_LIST.value, Action.REFERRAL_READ.value})
# Sign-in refusals because of earlier failures: a family's code slowed down,
# a staff member's name or address locked out.
THROTTLED = {"slowed_down": "sign-in slowed down", "locked_out": "sign-in locked"}
CONTEXT_CAP = 10_000  # rows at most in the look-back query


@dataclass(frozen=True)
class Rules:
    day_starts: int = 7  # hour, UTC, inclusive
    day_ends: int = 19  # hour, UTC, exclusive
    window: timedelta = timedelta(hours=1)
    many_families: int = 20  # more than this many distinct families in `window`
    refusals: int = 3  # at least this many refusals in `window`


class Entry(Protocol):
    """What the rules read of an entry (an `AuditEntry`, or a row of its columns)."""

    @property
    def seq(self) -> int: ...
    @property
    def at(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def actor(self) -> str | None: ...
    @property
    def role(self) -> str | None: ...
    @property
    def family_id(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...


def moment(at: str) -> datetime:
    """An entry's stored time text as a UTC datetime."""
    return datetime.fromisoformat(at.removesuffix("Z")).replace(tzinfo=UTC)


def _by_staff(entry: Entry) -> bool:
    # Families all act as "family", and failed sign-ins under unknown names
    # carry no actor: neither is one person whose habits mean anything.
    return entry.actor is not None and entry.role not in (None, "family")


def _family_read(entry: Entry) -> bool:
    return (entry.action in READS and entry.outcome == Outcome.OK.value
            and entry.family_id is not None)


def _looked_back(entry: Entry) -> bool:
    """Whether the one-hour rules count this entry."""
    return _by_staff(entry) and (_family_read(entry) or entry.outcome == Outcome.DENIED.value)


def unusual(shown: Sequence[Entry], context: Iterable[Entry] = (),
            rules: Rules = Rules()) -> dict[int, list[str]]:
    """Why each of `shown` is unusual, by seq (entries with no reason are absent).

    1. a staff member's act on a family outside the working day (UTC);
    2. a staff member's read of a family when they had read more than
       `many_families` distinct families in the `window` up to it;
    3. a staff member's refusal when they had at least `refusals` in the
       `window` up to it (this one included);
    4. a sign-in refused because earlier failures slowed it down or locked it.

    `context` holds earlier entries the look-back rules need (duplicates of
    `shown` are fine); only `shown` entries are ever flagged.
    """
    flags: dict[int, list[str]] = {}
    for entry in shown:
        reasons = []
        if _by_staff(entry) and entry.family_id is not None:
            hour = moment(entry.at)
            if not rules.day_starts <= hour.hour < rules.day_ends:
                reasons.append(f"out of hours ({hour:%H:%M} UTC)")
        if entry.action == Action.LOGIN_FAILED.value and entry.reason in THROTTLED:
            reasons.append(THROTTLED[entry.reason])
        if reasons:
            flags[entry.seq] = reasons

    wanted = {entry.seq for entry in shown if _looked_back(entry)}
    acts: dict[str, dict[int, Entry]] = defaultdict(dict)
    for entry in (*shown, *context):
        if _looked_back(entry):
            acts[str(entry.actor)][entry.seq] = entry
    for by_one in acts.values():
        _look_back(sorted(by_one.values(), key=lambda e: (e.at, e.seq)), wanted, rules, flags)
    return flags


def _look_back(ordered: list[Entry], wanted: set[int], rules: Rules,
               flags: dict[int, list[str]]) -> None:
    """Slide a `window`-long window over one person's acts, oldest first."""
    window: deque[tuple[datetime, Entry]] = deque()
    families: Counter[str] = Counter()
    refused = 0
    for entry in ordered:
        now = moment(entry.at)
        window.append((now, entry))
        if _family_read(entry):
            families[str(entry.family_id)] += 1
        else:
            refused += 1
        while window[0][0] < now - rules.window:
            _, gone = window.popleft()
            if _family_read(gone):
                families[str(gone.family_id)] -= 1
                if not families[str(gone.family_id)]:
                    del families[str(gone.family_id)]
            else:
                refused -= 1
        if entry.seq not in wanted:
            continue
        if _family_read(entry) and len(families) > rules.many_families:
            flags.setdefault(entry.seq, []).append(f"{len(families)} families in an hour")
        elif not _family_read(entry) and refused >= rules.refusals:
            flags.setdefault(entry.seq, []).append(f"{refused} refusals in an hour")


# --- queries ----------------------------------------------------------------------


def context(session: Session, shown: Sequence[Entry], rules: Rules = Rules(),
            cap: int = CONTEXT_CAP) -> list[Any]:
    """The reads and refusals `unusual` needs to look back from `shown`: one
    query, by the same staff members, from one window before the oldest of
    them to the newest; at most `cap` rows (the newest), so a page spanning
    months stays cheap and may then under-report, never over-report."""
    counted = [entry for entry in shown if _looked_back(entry)]
    if not counted:
        return []
    start = audit_time(min(moment(e.at) for e in counted) - rules.window)
    end = max(e.at for e in counted)
    table = AuditEntry.__table__.c
    query = (
        select(table.seq, table.at, table.action, table.outcome, table.actor, table.role,
               table.family_id, table.reason)
        .where(table.actor.in_(sorted({str(e.actor) for e in counted})),
               table.at >= start, table.at <= end,
               or_(table.outcome == Outcome.DENIED.value,
                   and_(table.action.in_(sorted(READS)), table.family_id.is_not(None))))
        .order_by(table.seq.desc()).limit(cap))
    return list(session.execute(query))


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    """The newest signed checkpoint stored, or None."""
    found: AuditCheckpoint | None = session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc(),
                                         AuditCheckpoint.id.desc()).limit(1)).first()
    return found
