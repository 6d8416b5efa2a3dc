"""The words search compares (`coordination.search_words`): case, diacritics
and the Turkish i's do not matter, hyphens and other punctuation split words,
and a word is whole (its prefix is another word)."""

from __future__ import annotations

import pytest

from coordination.search_words import fold, name_words


@pytest.mark.parametrize(("given", "words"), [
    ("Aylin Demir", ["aylin", "demir"]),
    ("  AYLIN   DEMIR ", ["aylin", "demir"]),
    ("aylin\tdemir\n", ["aylin", "demir"]),
    # Hyphens, apostrophes, dots and commas split words.
    ("Ayşe-Nur Öztürk", ["ayse", "nur", "ozturk"]),
    ("Anne–Marie O'Brien", ["anne", "marie", "o", "brien"]),
    ("Demir, A.", ["demir", "a"]),
    ("snake_case", ["snake", "case"]),
    # A word said twice is one word.
    ("Demir Demir", ["demir"]),
    ("", []),
    ("- ' . ,", []),
    # Digits are words too (a pseudonym such as "Family 12").
    ("Family 12", ["family", "12"]),
])
def test_words_of_a_name(given: str, words: list[str]) -> None:
    assert name_words(given) == words


@pytest.mark.parametrize(("one", "other"), [
    # Case.
    ("DEMIR", "demir"),
    ("Straße", "STRASSE"),
    # Diacritics, precomposed or combining.
    ("Zoë", "Zoe"),
    ("Zoe\u0308", "Zoë"),
    ("Öztürk", "Ozturk"),
    ("Şahin", "Sahin"),
    ("Çelik", "celik"),
    ("Ğ", "g"),
    ("François", "Francois"),
    ("Łukasz", "Lukasz"),
    ("Søren", "Soren"),
    ("Åse", "ase"),
    ("محمّد", "محمد"),  # Arabic vowel marks
    # The Turkish i in every form: İ, ı, I, i.
    ("İsmail", "ismail"),
    ("İSMAİL", "Ismail"),
    ("ısmaıl", "ISMAIL"),
    ("Aylın", "Aylin"),
    ("AYLIN", "aylın"),
    ("Yıldız", "YILDIZ"),
    ("yildiz", "YİLDİZ"),
    # Compatibility forms (full-width letters).
    ("Ａｙｌｉｎ", "Aylin"),
])
def test_forms_that_do_not_matter(one: str, other: str) -> None:
    assert name_words(one) == name_words(other)
    assert fold(one) == fold(other)


@pytest.mark.parametrize(("one", "other"), [
    ("Aylin", "Ayli"),  # a prefix is another word
    ("Demir", "Demirci"),
    ("Demir", "emir"),  # so is a suffix
    ("Emir", "Emre"),
    ("Ali", "Ala"),
])
def test_other_words_stay_other(one: str, other: str) -> None:
    assert name_words(one) != name_words(other)


def test_folding_is_stable() -> None:
    """Folding a folded word changes nothing: what is indexed and what is
    asked meet in one form, whichever was folded more often."""
    for text in ["İSMAİL Öztürk-Çelik", "Zoe\u0308 Straße", "ＡＹＬＩＮ", "Søren Łukasz", "محمّد"]:
        once = fold(text)
        assert fold(once) == once
        assert name_words(" ".join(name_words(text))) == name_words(text)


def test_the_terms_of_a_family_are_keyed_per_word_and_per_date() -> None:
    """One term per distinct word of each name and per birth date, with
    whose it is; the same word in two names is a term of each; nothing but
    keyed digests."""
    from coordination.casework.search_index import BIRTH_DATE, WORD, Person, terms
    from coordination.crypto import EnvelopeVault, Keyring, new_keyring_document

    # The index key alone: making terms reads no data key.
    vault = EnvelopeVault(Keyring(new_keyring_document()), None, b"k" * 32)  # type: ignore[arg-type]
    found = terms(vault, [Person("fam_1", "Aylin DEMİR-Demir", "2024-03-14"),
                          Person("mem_1", "Emir Demir", "2021-02-17"),
                          Person("mem_2", "Ayşe", None)])
    word, date = (lambda w: vault.blind_index(WORD, w)), (lambda d: vault.blind_index(
        BIRTH_DATE, d))
    assert found == {("fam_1", word("aylin")), ("fam_1", word("demir")),
                     ("fam_1", date("2024-03-14")), ("mem_1", word("emir")),
                     ("mem_1", word("demir")), ("mem_1", date("2021-02-17")),
                     ("mem_2", word("ayse"))}
    assert all(len(term) == 64 and "demir" not in term for _, term in found)
