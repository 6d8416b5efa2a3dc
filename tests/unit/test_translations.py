"""The family page's message catalogues: the template is up to date with the
sources, every language translates every message, and the committed
compiled catalogues are what their .po files compile to (`make translations`)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "coordination" / "translations"
LANGUAGES = ["nb", "tr", "ar"]
MessageId = str | tuple[str, ...]


def _read_po(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=locale)


def _po(lang: str) -> Path:
    return TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"


def _ids(catalog: Catalog) -> set[MessageId]:
    return {m.id for m in catalog if m.id}


def _strings(catalog: Catalog) -> dict[MessageId, MessageId]:
    """Message -> translation; plurals as tuples (a .mo reads them as lists)."""
    def plain(value: object) -> MessageId:
        return tuple(value) if isinstance(value, list | tuple) else str(value)

    return {plain(m.id): plain(m.string) for m in catalog if m.id and not m.fuzzy}


def test_the_template_is_up_to_date_with_the_sources() -> None:
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None}
    extracted: set[MessageId] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords):
        extracted.add(message if isinstance(message, str) else tuple(message))
    template = _ids(_read_po(TRANSLATIONS / "messages.pot"))
    assert extracted, "nothing extracted: is babel.cfg right?"
    assert not extracted - template, "new strings: run `make translations`"
    assert not template - extracted, "strings no longer used: run `make translations`"
    # What the family page must say is in it.
    assert {"Receipt code", "PIN", "Sign in", "%(agency)s can see: %(things)s."} <= template


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_is_translated(lang: str) -> None:
    template = _ids(_read_po(TRANSLATIONS / "messages.pot"))
    catalog = _read_po(_po(lang), locale=lang)
    assert _ids(catalog) == template, "run `make translations`"
    assert not catalog.obsolete
    for message in catalog:
        if not message.id:
            continue
        assert not message.fuzzy, f"{lang}: fuzzy: {message.id!r}"
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert len(strings) == (catalog.num_plurals if message.pluralizable else 1)
        assert all(s.strip() for s in strings), f"{lang}: untranslated: {message.id!r}"
    problems = [(m.id, errors) for m, errors in catalog.check() if m.id]
    assert problems == [], f"{lang}: placeholders do not match"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_translations_are_marked_for_native_review(lang: str) -> None:
    assert "NEEDS REVIEW BY A NATIVE SPEAKER" in _read_po(_po(lang)).header_comment


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_compiled_catalogue_matches_its_source(lang: str) -> None:
    catalog = _read_po(_po(lang), locale=lang)
    fresh = BytesIO()
    write_mo(fresh, catalog)
    fresh.seek(0)
    with (_po(lang).with_suffix(".mo")).open("rb") as f:
        committed = read_mo(f)
    assert _strings(committed) == _strings(read_mo(fresh)), "run `make translations`"
    assert _strings(committed) == _strings(catalog)
