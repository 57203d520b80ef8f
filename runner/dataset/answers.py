"""Reading a generating model's answers: untrusted text to a JSON object of the asked shape, or :class:`Unusable`.

Models wrap JSON in prose or fences, or answer a bare string; what can be read is read, and anything
else raises :class:`Unusable` with the reason, which the pipeline records before asking again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

# ---------------------------------------------------------------- parsing model output


class Unusable(Exception):
    """A model answer that cannot be used; the message is the reason recorded for review."""


def extract_json(text: str, keys: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON object in a model's answer (code fences and surrounding prose ignored).

    With ``keys``, the first object holding any of them wins over earlier objects (a model may quote
    something else first); else the first object.
    """
    stripped = re.sub(r"```(?:json|JSON)?", "", text or "").strip()
    if not stripped:
        raise Unusable("empty answer")
    decoder = json.JSONDecoder()
    wanted = set(keys)
    first: dict[str, Any] | None = None
    for match in re.finditer(r"\{", stripped):
        try:
            obj, _ = decoder.raw_decode(stripped, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            if not wanted or wanted & set(obj):
                return obj
            first = first if first is not None else obj
    if first is not None:
        return first
    raise Unusable("no JSON object in the answer")


def _score(value: Any) -> int | None:
    """A 1–5 score from an int, an integral float or a digit string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*[1-5](\.0)?\s*", value):
        value = float(value)
    if isinstance(value, int | float) and float(value).is_integer() and 1 <= value <= 5:
        return int(value)
    return None


def lenient_fields(text: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """Fields pulled from almost-JSON (small models leave quotes unescaped or the object unclosed)."""
    found: dict[str, Any] = {}
    for key, kind in fields.items():
        if kind == "score":
            m = re.search(rf'"{key}"\s*:\s*"?([1-5])\b', text)
        else:
            m = re.search(rf'"{key}"\s*:\s*"(.*?)"\s*(?=,\s*"\w+"\s*:|}}|$)', text, re.DOTALL)
        if m:
            found[key] = m.group(1)
    return found


def _bare_string(text: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """A whole answer that is one JSON string, for a prompt that asks for one text (small models do that)."""
    required = [k for k, kind in fields.items() if kind == "text"]
    if len(required) != 1 or len(fields) - len(required) > 1 or any(v == "score" for v in fields.values()):
        return {}
    try:
        value = json.loads(text.strip())
    except json.JSONDecodeError:
        return {}
    return {required[0]: value} if isinstance(value, str) else {}


def parse_answer(text: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """The answer's JSON object checked against the prompt's ``fields``; :class:`Unusable` says why not.

    When the answer holds no valid JSON object, fields are pulled from almost-JSON
    (:func:`lenient_fields`), or a bare JSON string is taken as the one text asked for; the item's own
    checks still apply to what is found.
    """
    try:
        obj = extract_json(text, fields)
    except Unusable:
        obj = lenient_fields(text or "", fields) or _bare_string(text or "", fields)
        if not any(obj.get(k) for k, kind in fields.items() if kind != "optional_text"):
            raise
    out: dict[str, Any] = {}
    for key, kind in fields.items():
        value = obj.get(key)
        if kind == "score":
            score = _score(value)
            if score is None:
                raise Unusable(f"{key!r} is {value!r}, not a score from 1 to 5")
            out[key] = score
        elif isinstance(value, str) and value.strip() and value.strip().lower() not in ("null", "none"):
            out[key] = " ".join(value.split())
        elif kind == "text":
            raise Unusable(f"{key!r} is missing or not a text")
        else:
            out[key] = None
    return out
