"""The storage interface services use, without a database."""

from __future__ import annotations

import pytest

from coordination.crypto import PlaintextVault, VaultError, normalise


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Aylin  Demir", "aylin demir"),
        ("AYLIN\tDEMIR ", "aylin demir"),
        ("ﬁona", "fiona"),  # NFKC folds the ligature
        ("Straße", "STRASSE"),  # case-folding, not lower-casing
        ("Ａｙｌｉｎ", "aylin"),  # full-width letters
    ],
)
def test_search_form_matches_variants(a: str, b: str) -> None:
    assert normalise(a) == normalise(b)
    vault = PlaintextVault()
    assert vault.blind_index("name", a) == vault.blind_index("name", b)


def test_index_separates_purposes_and_values() -> None:
    vault = PlaintextVault()
    assert vault.blind_index("name", "mira") != vault.blind_index("birth_date", "mira")
    assert vault.blind_index("name", "mira") != vault.blind_index("name", "mila")
    assert "mira" not in vault.blind_index("name", "mira")


def test_seal_and_open_round_trip() -> None:
    cipher = PlaintextVault().for_family("fam_1")
    blob = cipher.seal("entries", "value", "ent_1", "Ünïcode ✓")
    assert isinstance(blob, bytes)
    assert cipher.open("entries", "value", "ent_1", blob) == "Ünïcode ✓"


@pytest.mark.parametrize("blob", [b"no tag", b"\x00\xff\xfe"])
def test_damaged_values_fail_closed(blob: bytes) -> None:
    with pytest.raises(VaultError):
        PlaintextVault().for_family("fam_1").open("entries", "value", "ent_1", blob)
