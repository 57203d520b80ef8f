"""runner.core.textfold: look-alike text folds to the plain Latin form it imitates."""

from __future__ import annotations

import pytest

from runner.core.textfold import fold, has_confusables


@pytest.mark.parametrize(
    "shown",
    [
        "ѕеcurіtу",  # Cyrillic dze, ie, byelorussian i, u
        "sеcurity",  # one Cyrillic ie
        "ｓｅｃｕｒｉｔｙ",  # full-width
        "SECURITY",
        "secu\u200brity",  # zero-width space
        "secu\u00adrity",  # soft hyphen
        "sеcurιty",  # Greek iota
    ],
)
def test_look_alikes_fold_to_the_latin_word(shown):
    assert fold(shown) == "security"
    assert shown == "SECURITY" or has_confusables(shown)


def test_plain_text_is_unchanged_apart_from_case():
    text = "A nurse tells the patient the truth about the diagnosis."
    assert fold(text) == text.casefold()
    assert not has_confusables(text)


def test_real_cyrillic_words_stay_distinct_from_latin_ones():
    # Folding maps look-alike letters only; a Cyrillic word with letters that have no Latin twin stays.
    assert fold("безопасность") != fold("security")
