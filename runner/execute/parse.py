"""Parse a provider's answer into a Likert rating (text digit, and expected rating from logprobs)."""

from __future__ import annotations

import math
import re
from typing import Any

_STANDALONE = re.compile(r"(?<![0-9.])([1-5])(?![0-9]|\.[0-9])")
_OUT_OF_FIVE = re.compile(r"\s*(/\s*5|out of 5|of 5)\b", re.IGNORECASE)
SCALE = ("1", "2", "3", "4", "5")


def parse_rating(text: str | None) -> int | None:
    """The rating in an answer: its only standalone digit 1–5 (a trailing "/5" or "out of 5" ignored).

    "4", " 4.", "**4**", "4 - agree", "I'd say 4", "4/5" → 4. "1 to 5: 3" → None (several different
    digits: ambiguous, counted as unparseable rather than guessed). "7", "4.5", "", None → None.
    """
    if not text:
        return None
    found = set(_STANDALONE.findall(_OUT_OF_FIVE.sub("", text)))
    return int(found.pop()) if len(found) == 1 else None


def top_logprobs_of_answer(logprobs: Any) -> dict[str, float] | None:
    """The ``{token: logprob}`` alternatives at the first non-blank generated token, if any.

    Accepts the OpenAI shape (``{"content": [{"token", "logprob", "top_logprobs": [...]}, ...]}``) as a
    dict or as LiteLLM's objects.
    """
    if logprobs is None:
        return None
    content = logprobs.get("content") if isinstance(logprobs, dict) else getattr(logprobs, "content", None)
    for item in content or []:
        token = item.get("token") if isinstance(item, dict) else getattr(item, "token", "")
        if token is None or not str(token).strip():
            continue  # skip leading whitespace tokens: the rating is the first visible token
        tops = item.get("top_logprobs") if isinstance(item, dict) else getattr(item, "top_logprobs", None)
        out: dict[str, float] = {}
        for alt in tops or []:
            t = alt.get("token") if isinstance(alt, dict) else getattr(alt, "token", None)
            lp = alt.get("logprob") if isinstance(alt, dict) else getattr(alt, "logprob", None)
            lp = _logprob(lp)
            if t is not None and lp is not None:
                key = str(t).strip()
                out[key] = max(out.get(key, -math.inf), lp)  # " 4" and "4" are the same answer
        return out or None
    return None


def _logprob(value: Any) -> float | None:
    """A provider's logprob as a float ≤ 0, or None when it is not one (text, NaN, ±inf, positive).

    A log-probability is never above 0; a buggy or hostile provider sent 710, whose ``math.exp``
    overflowed and crashed the run, and every rerun at the same request. Tiny positive values are
    rounding (0.0000001) and count as 0.
    """
    try:
        lp = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if math.isnan(lp) or lp > 1e-3:
        return None
    return min(lp, 0.0)


MIN_DIGIT_MASS = 0.5
"""Below this probability on "1".."5" the answer's first token is not a rating (e.g. "I agree ..."),
and renormalising a few percent of digit mass would invent one; the parsed text decides instead."""


def expected_rating(top: dict[str, float] | None, min_mass: float = MIN_DIGIT_MASS) -> float | None:
    """r̂ = Σ k·p(k) / Σ p(k) over the tokens "1".."5" (METRICS.md §2).

    None when the digits carry less than ``min_mass`` of the probability at the answer's first token.
    """
    if not top:
        return None
    # Stored logprobs are checked again: a bundle or an old store may hold values this parser refuses.
    probs = {int(t): math.exp(lp) for t, v in top.items() if t in SCALE and (lp := _logprob(v)) is not None}
    total = sum(probs.values())
    if total <= 0 or total < min_mass:
        return None
    return sum(k * p for k, p in probs.items()) / total
