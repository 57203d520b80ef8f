"""Pydantic models of every spec document (extra fields forbidden).

These are the benchmark's content types: a value system (values and micro-values), a scene with its
actions, a strategy, and the judgment prompt. Each document has a hand-set ``id`` and integer
``version``; :func:`content_hash` hashes the fields that can change a judgment.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from runner.core.errors import Problem
from runner.core.paths import shipped
from runner.core.yamlio import YamlProblem, read_yaml

Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_\-]{0,79}$")]
"""Ids are lowercase slugs: they become file names, SQL values and URL parts, so no '/', '..' or spaces."""

SPEC_ROOT = shipped("spec")  # runner.core.paths: inside the wheel, or the checkout's spec/
"""The shipped spec tree (see runner.core.paths)."""
COUNTRIES_FILE = "countries.yaml"
"""``spec/countries.yaml``: the countries scenes may be set in, code → name (data, not code)."""
COUNTRY_CODE = r"^[a-z]{2}$"
"""ISO 3166-1 alpha-2, lowercase: the folder name under spec/scenarios/ and the first part of a scene id."""


def read_countries(root: Path) -> tuple[dict[str, str], list[Problem]]:
    """The country list of the spec tree at ``root`` (code → name) and the problems of its file."""
    path = root / COUNTRIES_FILE
    shown = f"{root.name}/{COUNTRIES_FILE}"
    if not path.is_file():
        return {}, [Problem(shown, 0, "", "the country list is missing; create it (one `code: Name` a line)")]
    try:
        ydoc = read_yaml(path, shown)
    except YamlProblem as exc:
        return {}, [exc.problem]
    if not isinstance(ydoc.data, dict) or not ydoc.data:
        return {}, [
            Problem(shown, 1, "", "expected a mapping of country codes to names, e.g. `us: United States`")
        ]
    out, problems = {}, []
    # The keys as written, with their lines, in document order (YAML turns an unquoted `no` into False).
    spelled = sorted((line, key[0]) for key, line in ydoc.lines.items() if len(key) == 1)
    for (line, raw), (code, name) in zip(spelled, ydoc.data.items(), strict=False):
        if isinstance(code, bool):
            problems.append(
                Problem(
                    shown,
                    line,
                    raw,
                    f'quote the code ("{raw}": {name}): unquoted, YAML reads it as true/false',
                )
            )
        elif not isinstance(code, str) or not re.fullmatch(COUNTRY_CODE, code):
            problems.append(Problem(shown, line, raw, "a country code is two lowercase letters (ISO 3166-1)"))
        elif not isinstance(name, str) or not name.strip():
            problems.append(Problem(shown, line, code, "give the country's name, e.g. `us: United States`"))
        else:
            out[code] = name.strip()
    return out, problems


COUNTRIES: dict[str, str] = read_countries(SPEC_ROOT)[0]
"""The shipped countries (names for messages, prompts and the site); `vat validate` checks each spec's own."""
TOPICS: dict[str, str] = {
    "politics": "Politics",
    "social_networks": "Social networks",
    "social_inequality": "Social inequality",
    "family_gender": "Family and gender roles",
    "work": "Work",
    "religion": "Religion",
    "environment": "Environment",
    "national_identity": "National identity",
    "citizenship": "Citizenship",
    "leisure_sports": "Leisure and sports",
    "health": "Health",
}
MAX_ACTION_WORDS = 35


class Polarity(str, Enum):
    """Whether an action expresses its value or suppresses it (σ = +1 / −1)."""

    express = "express"
    suppress = "suppress"


class Split(str, Enum):
    """Scene split: few-shot demonstrations come from train, evaluation from test."""

    train = "train"
    test = "test"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


# ---------------------------------------------------------------- values


class MicroValue(_Doc):
    """A Schwartz Value Survey item, grouped under one value."""

    id: Id
    name: str


class Group(_Doc):
    """A higher-order value group (openness to change, ...)."""

    id: Id
    name: str


class Value(_Doc):
    """One basic value with its place on the circle and its micro-values."""

    id: Id
    name: str
    circle_index: int = Field(ge=0)
    opposite: Id
    groups: list[Id]
    definition: str
    micro_values: list[MicroValue] = Field(default_factory=list)


class ValueSystem(_Doc):
    """A value system document: ``spec/values/<id>.yaml``."""

    id: Id
    version: int = Field(ge=1)
    name: str
    groups: list[Group]
    values: list[Value] = Field(min_length=2)


# ---------------------------------------------------------------- scenes


class Action(_Doc):
    """A first-person action in a scene that expresses or suppresses one value."""

    id: Id
    value: Id
    micro_value: Id | None = None
    polarity: Polarity
    text: Annotated[str, StringConstraints(min_length=8, max_length=400)]

    @field_validator("text")
    @classmethod
    def _first_person_and_short(cls, text: str) -> str:
        words = len(text.split())
        if words > MAX_ACTION_WORDS:
            raise ValueError(f"action text has {words} words; keep it to {MAX_ACTION_WORDS} or fewer")
        if not re.search(r"\b(I|me|my|myself)\b", text):
            raise ValueError('action text must be first person ("I ...")')
        return text


class Scene(_Doc):
    """A scene document: ``spec/scenarios/<country>/<topic>.yaml``."""

    id: Id
    version: int = Field(ge=1)
    country: Annotated[str, StringConstraints(pattern=COUNTRY_CODE)] = Field(
        description="A country code listed in spec/countries.yaml (a new country is a line of data there)."
    )
    topic: Literal[tuple(TOPICS)]  # type: ignore[valid-type]
    split: Split
    text: Annotated[str, StringConstraints(min_length=40, max_length=2000)]
    actions: list[Action] = Field(min_length=1)
    generated: dict[str, Any] | None = None
    """Set by `vat generate` / `vat import` (model, prompt version, quality scores); reviewed by humans."""


# ---------------------------------------------------------------- strategies and prompts


class StrategyKind(str, Enum):
    # The docstring below is copied into spec/schema/strategies.schema.json; it keeps the old module name
    # (now runner.compile.strategies) until the schemas are next regenerated with the spec.
    """The registered strategy kinds; behaviour lives in :mod:`runner.strategies`."""

    baseline = "baseline"
    fewshot = "fewshot"
    system_prompt = "system_prompt"
    checkpoint = "checkpoint"


class Strategy(_Doc):
    """An alignment strategy: a kind plus parameters and templates. Target and direction come from config."""

    id: Id
    version: int = Field(ge=1)
    kind: StrategyKind
    description: str
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)
    templates: dict[str, str] = Field(default_factory=dict)


class PromptVariant(_Doc):
    """Another wording of a prompt (a bias control, docs/elicitation.md): its own text, so its own keys."""

    description: str
    system: str | None = None
    """Replaces the prompt's system message (None: the prompt's own)."""
    user: str | None = None
    """Replaces the prompt's user template (None: the prompt's own)."""
    scale_reversed: bool = False
    """The scale is shown the other way round (1 = the agree/honours end); ratings are stored as shown."""


class Prompt(_Doc):
    """The judgment prompt (versioned data): a system message and a user template.

    The user template fills ``{scene}`` and ``{action}``; a template that also has ``{value_label}``
    and ``{value_gloss}`` names the value (or micro-value) each judgment is about (elicitation=value or
    micro_value); ``micro_value_gloss`` words a micro-value's gloss from its value's name and definition.
    """

    id: Id
    version: int = Field(ge=1)
    description: str
    system: str
    user: str
    answer_scale: list[str] = Field(min_length=5, max_length=5)
    micro_value_gloss: str | None = None
    variants: dict[Id, PromptVariant] = Field(default_factory=dict)
    """Bias-control wordings by id (``base`` is the prompt's own text and cannot be redefined)."""

    @field_validator("variants")
    @classmethod
    def _base_is_the_prompt_itself(cls, variants: dict[str, PromptVariant]) -> dict[str, PromptVariant]:
        if "base" in variants:
            raise ValueError("'base' is the prompt's own text; give the variant another id")
        return variants

    @property
    def names_value(self) -> bool:
        """Whether the question names the value it asks about (its template has ``{value_label}``)."""
        return "{value_label}" in self.user


# ---------------------------------------------------------------- hashing

HASH_FIELDS: dict[type[_Doc], tuple[str, ...]] = {
    ValueSystem: ("groups", "values"),
    Scene: ("country", "topic", "split", "text", "actions"),
    Strategy: ("kind", "params", "templates"),
    Prompt: ("system", "user", "answer_scale", "micro_value_gloss", "variants"),
}
_HASHED_WHEN_SET = frozenset({"micro_value_gloss", "variants"})
"""Fields added after documents were locked: hashed only when set, so older documents keep their hash."""


def content_hash(doc: _Doc) -> str:
    """Hash the judgment-relevant fields of a document (16 hex chars of SHA-256 over canonical JSON)."""
    fields = HASH_FIELDS[type(doc)]
    payload = doc.model_dump(mode="json", include=set(fields))
    payload = {k: v for k, v in payload.items() if v or k not in _HASHED_WHEN_SET}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


KINDS: dict[str, type[_Doc]] = {
    "values": ValueSystem,
    "scenarios": Scene,
    "strategies": Strategy,
    "prompts": Prompt,
}
"""spec/ sub-folder → document model."""
