"""Use cases of the auditor on the web: read the log, verify it, export it.

Each takes the session, the actor and `now`, puts the auditor's own act on
record in the same transaction as the read, and commits once before it
returns: a read that cannot be recorded fails, and shows nothing. Auditors
get ids, roles, field names and outcomes, never family content (the log
holds none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

import audit.services as audit_log
from audit import review
from audit.chain import Verification
from audit.model import Action, AuditCheckpoint, AuditEntry, Outcome
from audit.services import Event, Filters
from coordination.actors import Actor

EXPORT_CAP = 100_000  # entries in one CSV export, newest first
_BATCH = 5_000


@dataclass(frozen=True)
class Line:
    """One entry as the auditor is shown it (satisfies `audit.review.Entry`)."""

    seq: int
    at: str
    action: str
    outcome: str
    actor: str | None
    role: str | None
    agency_id: str | None
    family_id: str | None
    reason: str | None
    shown: tuple[str, ...]
    withheld: tuple[str, ...]
    detail: Mapping[str, Any]
    request_id: str | None
    hidden_from_family: bool = False
    unusual: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        return self.outcome == Outcome.DENIED.value


def _line(entry: AuditEntry, hidden: bool) -> Line:
    return Line(
        seq=entry.seq, at=entry.at, action=entry.action, outcome=entry.outcome,
        actor=entry.actor, role=entry.role, agency_id=entry.agency_id,
        family_id=entry.family_id, reason=entry.reason,
        shown=tuple(entry.shown.split(",")) if entry.shown else (),
        withheld=tuple(entry.withheld.split(",")) if entry.withheld else (),
        detail=json.loads(entry.detail) if entry.detail else {},
        request_id=entry.request_id, hidden_from_family=hidden)


def _flagged(session: Session, lines: Sequence[Line]) -> list[Line]:
    flags = review.unusual(lines, review.context(session, lines))
    return [replace(line, unusual=tuple(flags[line.seq])) if line.seq in flags else line
            for line in lines]


def _record(session: Session, actor: Actor, action: Action, now: datetime, /,
            **detail: Any) -> None:
    audit_log.record(session, Event(
        action=action, actor=actor.label, agency_id=actor.agency_id, role=actor.role_name,
        detail={**detail, "channel": "web"}, request_id=actor.request_id), now)


@dataclass(frozen=True)
class LogPage:
    lines: list[Line]
    next_cursor: int | None
    checkpoint: AuditCheckpoint | None


def read_log(session: Session, actor: Actor, filters: Filters, given: Mapping[str, str],
             limit: int, cursor: int | None, now: datetime) -> LogPage:
    """One page of the log, newest first, entries before `cursor`, with the
    unusual ones flagged (`audit.review.unusual`) and the latest signed
    checkpoint; recorded as `audit.read` with the filters as `given`.

    Raises `AuditUnavailable` (nothing shown) when the read cannot be recorded."""
    rows, next_cursor = audit_log.entries(session, filters, limit, cursor)
    hidden = audit_log.hidden_seqs(session, [row.seq for row in rows])
    lines = _flagged(session, [_line(row, row.seq in hidden) for row in rows])
    checkpoint = review.latest_checkpoint(session)
    _record(session, actor, Action.AUDIT_READ, now, **given)
    session.commit()
    return LogPage(lines, next_cursor, checkpoint)


def verify_log(session: Session, engine: Engine, public_key: Any, actor: Actor,
               now: datetime) -> Verification:
    """Walk the whole chain and hold it to its head and signed checkpoints
    (`audit.services.verify`); recorded as `audit.verify` with the result."""
    # End this request's transaction first: verification reads on a
    # connection of its own, and the append after a long walk should wait
    # its turn (SQLite), not find this transaction's earlier reads stale.
    session.commit()
    result = audit_log.verify(engine, public_key)
    _record(session, actor, Action.AUDIT_VERIFY, now, ok=result.ok,
            first_bad=result.first_bad)
    session.commit()
    return result


@dataclass(frozen=True)
class Export:
    lines: list[Line]
    capped: bool  # more entries matched than `EXPORT_CAP`


def export_log(session: Session, actor: Actor, filters: Filters, given: Mapping[str, str],
               now: datetime, cap: int | None = None) -> Export:
    """Every entry matching `filters`, newest first, at most `cap` (default
    `EXPORT_CAP`); recorded as `audit.export` with the filters and the number
    of entries, and committed before anything is handed out."""
    cap = EXPORT_CAP if cap is None else cap
    lines: list[Line] = []
    cursor: int | None = None
    capped = False
    while len(lines) < cap:
        rows, cursor = audit_log.entries(session, filters, min(_BATCH, cap - len(lines)),
                                         cursor)
        hidden = audit_log.hidden_seqs(session, [row.seq for row in rows])
        # Only the plain lines are kept: the identity map holds clean
        # entries weakly, so memory stays near the lines' own size.
        lines.extend(_line(row, row.seq in hidden) for row in rows)
        if cursor is None:
            break
    else:
        capped = cursor is not None
    lines = _flagged(session, lines)
    _record(session, actor, Action.AUDIT_EXPORT, now, **given, rows=len(lines), capped=capped)
    session.commit()
    return Export(lines, capped)
