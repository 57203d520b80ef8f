"""Fold text for comparison: NFKC, case fold, and Unicode look-alikes mapped to the Latin letters they imitate.

Contributed text is compared against value names ("does this scene name its own value?") and against
other scenes (near duplicates). A contributor, or a generator, can defeat a plain comparison with
characters that look the same but are different code points: Cyrillic ``а`` (U+0430) for Latin ``a``,
Greek ``ο`` for ``o``, full-width ``ｓ`` for ``s``, a soft hyphen or a zero-width space inside a word.
:func:`fold` maps all of these to one plain form, so ``"ѕеcurіtу"`` folds to ``"security"``.

NFKC handles compatibility forms (full-width, ligatures, superscripts); ``casefold`` handles case; the
table below handles the cross-script confusables that NFKC leaves alone. The table is a hand-picked
subset of Unicode's confusables.txt (UTS #39): the Cyrillic, Greek and Armenian letters that render like
a Latin letter in common fonts. It is not the full 6,000-entry list; extend ``CONFUSABLES`` when a new
look-alike is found (the tests in ``tests/e2e/test_hostile_input.py`` show how).
"""

from __future__ import annotations

import unicodedata

CONFUSABLES: dict[str, str] = {
    # Cyrillic lowercase
    "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k",
    "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s",
    "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ӏ": "l", "ь": "b", "п": "n",
    # Cyrillic uppercase (casefold lowers them first; kept for fold_keep_case)
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W",
    # Greek
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "γ": "y", "ϲ": "c", "ϳ": "j",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Armenian and Latin look-alikes
    "օ": "o", "ս": "u", "ո": "n", "ց": "g", "ı": "i", "ȷ": "j", "ℓ": "l",
}  # fmt: skip
"""Look-alike code point → the Latin letter it imitates."""

_TABLE = str.maketrans(CONFUSABLES)

_INVISIBLE = dict.fromkeys(
    [0x00AD, 0x034F, 0x061C, 0x180E, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0x2061,
     0x2062, 0x2063, 0x2064, 0xFEFF],
)  # fmt: skip
"""Zero-width and formatting characters that a reader cannot see: dropped before comparing."""


def fold(text: str) -> str:
    """The comparison form of ``text``: NFKC, invisible characters dropped, look-alikes mapped, case-folded.

    Two strings that a reader cannot tell apart fold to the same string. Use the result only to
    compare, never to store or show.
    """
    out = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).translate(_TABLE)
    # Casefold can produce new compatibility forms (e.g. 'ß' -> 'ss' is fine, but some marks recombine).
    return unicodedata.normalize("NFKC", out.casefold())


def has_confusables(text: str) -> bool:
    """True when ``text`` contains a look-alike or invisible character that :func:`fold` would change."""
    nfkc = unicodedata.normalize("NFKC", text)
    return nfkc != text or any(ch in CONFUSABLES or ord(ch) in _INVISIBLE for ch in nfkc)
