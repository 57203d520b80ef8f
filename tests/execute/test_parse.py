"""Answer parsing: digits from text, expected rating from logprobs."""

from __future__ import annotations

import math

import pytest

from runner.execute.parse import expected_rating, parse_rating, top_logprobs_of_answer


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("4", 4),
        (" 4.", 4),
        ("**4**", 4),
        ("4 - agree", 4),
        ("I'd say 4", 4),
        ("Rating: 2", 2),
        ("4/5", 4),
        ("3 out of 5", 3),
        ("7", None),
        ("", None),
        (None, None),
        ("1 to 5: 3", None),
        ("I agree with this.", None),
        ("4.5", None),
        ("10", None),
    ],
)
def test_parse_rating(text, rating):
    assert parse_rating(text) == rating


def test_expected_rating_from_logprobs():
    lp = {
        "content": [
            {"token": " ", "logprob": 0.0, "top_logprobs": []},
            {
                "token": "4",
                "logprob": math.log(0.5),
                "top_logprobs": [
                    {"token": "4", "logprob": math.log(0.5)},
                    {"token": " 5", "logprob": math.log(0.25)},
                    {"token": "2", "logprob": math.log(0.25)},
                    {"token": "hello", "logprob": math.log(0.1)},
                ],
            },
        ]
    }
    top = top_logprobs_of_answer(lp)
    assert top is not None and set(top) >= {"4", "5", "2"}
    assert expected_rating(top) == pytest.approx((4 * 0.5 + 5 * 0.25 + 2 * 0.25) / 1.0)
    assert expected_rating({"yes": -0.1}) is None
    # A sentence that starts with "I": the little digit mass at that token is not a rating.
    assert expected_rating({"I": math.log(0.6), "1": math.log(0.2), "2": math.log(0.05)}) is None
    assert top_logprobs_of_answer(None) is None
