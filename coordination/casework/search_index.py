"""The keyed search index: what it holds, how a family is (re)indexed, and
the condition a search puts on families.

Each name of a family (its own, each member's) is cut into words
(`coordination.search_words`); each word, and each birth date, is stored as
an HMAC under the index key (`Vault.blind_index`), with the family and
whose name or date it is (`SearchTerm`). Nothing else: no word, no name, no
date, no order of words. A search asks for families with one name holding
every word asked, and for those with the birth date asked.

A migration holds no key, so families recorded before the index existed (or
indexed under another index key) are indexed by `reindex_batch`, which
`onestory search reindex` runs until nothing is left; new families are
indexed as they are recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    bindparam,
    delete,
    distinct,
    exists,
    func,
    insert,
    or_,
    select,
    union,
)
from sqlalchemy.orm import Session

from coordination.crypto import Vault
from coordination.model import Erasure, Family, Member, SearchIndexed, SearchTerm
from coordination.search_words import name_words

WORD = "name_word"
# The same purpose as `Family.birth_date_index`: a date's term is one value.
BIRTH_DATE = "birth_date"
# Raised when what is indexed, or how, changes: every family is then indexed again.
SCHEME_VERSION = "words-1"


@dataclass(frozen=True)
class Person:
    """One name of a family and its birth date, as `owner` (the family's
    id for its own, a member's id for theirs)."""

    owner: str
    name: str
    birth_date: str | None = None


def scheme(vault: Vault) -> str:
    """This scheme under this index key, as stored in `SearchIndexed`: a
    keyed fingerprint, so that a mark made under another key is not current."""
    return vault.blind_index("search_scheme", SCHEME_VERSION)


def terms(vault: Vault, people: Iterable[Person]) -> set[tuple[str, str]]:
    """(owner, term) for every word of every name and every birth date."""
    found: set[tuple[str, str]] = set()
    for person in people:
        found.update((person.owner, vault.blind_index(WORD, word))
                     for word in name_words(person.name))
        if person.birth_date:
            found.add((person.owner, vault.blind_index(BIRTH_DATE, person.birth_date)))
    return found


def write(session: Session, vault: Vault, people_by_family: dict[str, list[Person]],
          now: datetime) -> None:
    """Replace these families' terms and mark them current (the caller commits)."""
    if not people_by_family:
        return
    ids = list(people_by_family)
    session.execute(delete(SearchTerm).where(SearchTerm.family_id.in_(ids)))
    session.execute(delete(SearchIndexed).where(SearchIndexed.family_id.in_(ids)))
    rows = [{"family_id": family_id, "owner": owner, "term": term}
            for family_id, people in people_by_family.items()
            for owner, term in sorted(terms(vault, people))]
    if rows:
        session.execute(insert(SearchTerm), rows)
    current = scheme(vault)
    session.execute(insert(SearchIndexed),
                    [{"family_id": family_id, "scheme": current, "indexed_at": now}
                     for family_id in ids])


def forget(session: Session, family_id: str) -> None:
    """Take a family out of the index (an erasure; the caller commits)."""
    session.execute(delete(SearchTerm).where(SearchTerm.family_id == family_id))
    session.execute(delete(SearchIndexed).where(SearchIndexed.family_id == family_id))


def _left(vault: Vault) -> ColumnElement[bool]:
    """Families without a current mark, that are not being erased."""
    current = select(SearchIndexed.family_id).where(SearchIndexed.scheme == scheme(vault))
    erasing = select(Erasure.family_id)
    return Family.id.not_in(current) & Family.id.not_in(erasing)


def any_family(session: Session) -> bool:
    return session.scalar(select(Family.id).limit(1)) is not None


def left_to_index(session: Session, vault: Vault) -> int:
    """How many families `reindex_batch` has still to index."""
    return session.scalar(select(func.count()).select_from(Family).where(_left(vault))) or 0


def reindex_batch(session: Session, vault: Vault, now: datetime, batch: int) -> list[str]:
    """Index up to `batch` families not yet current under this scheme and
    key, in one transaction, and return their ids (none: all are current).

    Reads each family's names and birth dates through its data key (one key
    store query per batch); raises `VaultError` when one does not open, and
    that batch is not written. Idempotent: a family is indexed again only
    when its mark is missing or was made under another scheme or key."""
    families = session.execute(
        select(Family.id, Family.display_name, Family.birth_date)
        .where(_left(vault)).order_by(Family.id).limit(batch)).all()
    if not families:
        return []
    ids = [row.id for row in families]
    members = session.execute(
        select(Member.id, Member.family_id, Member.name, Member.birth_date)
        .where(Member.family_id.in_(ids)).order_by(Member.family_id, Member.position)).all()
    ciphers = vault.for_families(ids)
    people: dict[str, list[Person]] = {}
    for row in families:
        cipher = ciphers[row.id]
        born = (cipher.open("families", "birth_date", row.id, row.birth_date)
                if row.birth_date is not None else None)
        people[row.id] = [Person(row.id, cipher.open("families", "display_name", row.id,
                                                     row.display_name), born)]
    for m in members:
        cipher = ciphers[m.family_id]
        born = (cipher.open("family_members", "birth_date", m.id, m.birth_date)
                if m.birth_date is not None else None)
        people[m.family_id].append(
            Person(m.id, cipher.open("family_members", "name", m.id, m.name), born))
    write(session, vault, people, now)
    session.commit()
    return ids


def matching(name: bool, birth_date: bool) -> list[ColumnElement[bool]]:
    """The conditions on `Family` of a search asking a name (`name`) and/or
    a birth date (`birth_date`), with bound parameters (`parameters` gives
    their values), so that the statement is built once: one name of the
    family (its own or a member's) holds every word of the name; the family
    or a member was born on the date. A family not yet indexed (recorded
    before the index, `reindex_batch` not yet run) is found, as before, by
    its whole name and its own birth date."""
    conditions: list[ColumnElement[bool]] = []
    if name:
        asked: Any = bindparam("words", expanding=True)
        held = func.count(distinct(SearchTerm.term)) == bindparam("word_count")
        whole_name = bindparam("whole_name", type_=String)
        if not birth_date:
            # The name alone: the families some one name of which holds every
            # word, found through the terms' index.
            one_name = (select(SearchTerm.family_id).where(SearchTerm.term.in_(asked))
                        .group_by(SearchTerm.family_id, SearchTerm.owner).having(held))
            whole = select(Family.id).where(Family.name_index == whole_name)
            conditions.append(Family.id.in_(union(one_name, whole)))
        else:
            # With a birth date, the few families born that day are found
            # first; the name is then asked of each of them alone (a common
            # word matches thousands of families, a birth date a handful).
            one_name = (select(SearchTerm.owner)
                        .where(SearchTerm.family_id == Family.id, SearchTerm.term.in_(asked))
                        .group_by(SearchTerm.owner).having(held).correlate(Family))
            conditions.append(or_(exists(one_name), Family.name_index == whole_name))
    if birth_date:
        term = bindparam("birth_term", type_=String)
        born = select(SearchTerm.family_id).where(SearchTerm.term == term)
        own = select(Family.id).where(Family.birth_date_index == term)
        conditions.append(Family.id.in_(union(born, own)))
    # Each a set of ids made through an index (terms, `name_index`), which
    # the families are then looked up by: no scan of the families.
    return conditions


def parameters(vault: Vault, name: str | None, birth_date: date | None) -> dict[str, Any]:
    """The values of `matching(name is not None, birth_date is not None)`'s
    parameters: the keyed terms of the name's words, their number, the whole
    name's and the date's blind indexes."""
    values: dict[str, Any] = {}
    if name is not None:
        words = sorted({vault.blind_index(WORD, word) for word in name_words(name)})
        values.update(words=words, word_count=len(words),
                      whole_name=vault.blind_index("name", name))
    if birth_date is not None:
        values["birth_term"] = vault.blind_index(BIRTH_DATE, birth_date.isoformat())
    return values


def people_of(family_id: str, name: str, birth_date: date | None,
              members: Sequence[tuple[str, str, date | None]]) -> list[Person]:
    """The names and birth dates of a family being recorded: its own, then
    each member's as (member id, name, birth date)."""
    return [Person(family_id, name, birth_date.isoformat() if birth_date else None),
            *(Person(mid, mname, born.isoformat() if born else None)
              for mid, mname, born in members)]
