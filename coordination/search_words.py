"""The words search matches on: a pure function, the same for what is
indexed and for what is asked.

A name is cut into words at anything that is not a letter or a digit (white
space, hyphens, apostrophes, dots). Each word is put in one form, so that
case, diacritics and the Turkish dotted and dotless i do not matter: Unicode
NFKC, "İ" and "ı" read as "i", case-folded, combining marks dropped, and the
few letters whose stroke is not a combining mark (ø, ł, đ, ħ, ŧ) read
without it. Matching is on whole words only: a prefix of a word is another
word, and never matches.
"""

from __future__ import annotations

import re
import unicodedata

# Letters no decomposition separates from their stroke.
_STROKES = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ħ": "h", "ŧ": "t", "ƀ": "b"})
# Both Turkish i's read as the Latin i (their case pairs are I and i).
_TURKISH_I = str.maketrans({"İ": "i", "ı": "i"})
_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """`text` in the one form search compares (see the module)."""
    folded = unicodedata.normalize("NFKC", text).translate(_TURKISH_I).casefold()
    bare = "".join(c for c in unicodedata.normalize("NFKD", folded)
                   if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", bare.translate(_STROKES))


def name_words(text: str) -> list[str]:
    """The distinct words of a name, in the form search compares, in order."""
    return list(dict.fromkeys(_WORD.findall(fold(text))))
