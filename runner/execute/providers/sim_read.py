"""How the simulated judge (``sim/``) reads a request: the judgment item and the intervention in it.

A person reading the prompt would see which scene, action and value it asks about, and which
demonstrations or system text steer it; this module recovers exactly that from the spec index
(:func:`build_tables`, :func:`read_request`). The reading rules are in
:mod:`runner.execute.providers.sim`'s docstring.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from runner.execute.providers.sim_model import PROVIDER, Profile, normal_draw

# ---------------------------------------------------------------------------------------------------
# Reading the request
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """What a rendered user message is about: the (scene, action), and what the question asks."""

    scene_id: str
    action_id: str
    value: str
    sign: int  # σ: +1 express, −1 suppress
    micro_value: str | None = None
    asked_value: str | None = None
    """The value the question names (None: "How much do you agree with this action?")."""
    asked_micro_value: str | None = None
    variant: str = "base"
    scale_reversed: bool = False

    def asking(self, wording: _Wording, asked: tuple[str, str | None] | None) -> Item:
        """The same (scene, action) as asked in ``wording`` about ``asked`` (value, micro-value)."""
        value, micro = asked if asked is not None else (None, None)
        return replace(
            self,
            asked_value=value,
            asked_micro_value=micro,
            variant=wording.variant,
            scale_reversed=wording.scale_reversed,
        )


@dataclass(frozen=True)
class _Wording:
    """One (prompt, variant) user template, as a pattern that recovers its scene, action and value."""

    variant: str
    scale_reversed: bool
    pattern: re.Pattern[str]


_FIELDS = ("scene", "action", "value_label", "value_gloss")


def _template_pattern(template: str) -> re.Pattern[str]:
    """A regex matching ``template`` rendered, with a named group per placeholder (repeats must agree)."""
    parts = re.split(r"\{(" + "|".join(_FIELDS) + r")\}", template)
    out, seen = [], set()
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(re.escape(part))
        elif part in seen:
            out.append(f"(?P={part})")
        else:
            seen.add(part)
            out.append(f"(?P<{part}>.+?)")
    return re.compile("".join(out), re.DOTALL)


@dataclass(frozen=True)
class Intervention:
    """An intervention read from a request: target, direction (±1), dose, and where it was read."""

    target: str
    direction: int
    dose: float
    source: str
    key: str = ""
    """What identifies the condition for the noise draw (item identities, strategy id), not its wording."""


@dataclass
class Tables:
    """Lookups built once from the spec index: item texts, judgment system prompts, strategy suffixes."""

    values: list[str]
    circle_index: dict[str, int]
    items: dict[str, Item] = field(default_factory=dict)
    systems: list[str] = field(default_factory=list)
    suffixes: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    valued: list[_Wording] = field(default_factory=list)
    """Wordings of value-naming prompts: matched by pattern (rendering each for 56 micro-values would not fit)."""
    pairs: dict[tuple[str, str], Item] = field(default_factory=dict)
    """(scene text, action text) → the item, for :attr:`valued` matches."""
    asked: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)
    """(label, gloss) as a question names it → (value, micro-value)."""

    def item_of(self, text: str) -> Item | None:
        """The item a rendered user message asks about (None when no prompt of the index renders it)."""
        found = self.items.get(text)
        if found is not None:
            return found
        for wording in self.valued:
            m = wording.pattern.fullmatch(text)
            if m is None:
                continue
            item = self.pairs.get((m["scene"], m["action"]))
            asked = self.asked.get((m["value_label"], m["value_gloss"]))
            if item is not None and asked is not None:
                return item.asking(wording, asked)
        return None


def _wordings(prompt: Any) -> list[tuple[Any, str, bool]]:
    """(prompt as shown, variant id, scale reversed) for the base text and every variant."""
    from runner.compile.plan import wording

    shown = [wording(prompt, v) for v in ("base", *prompt.variants)]
    return [(w.prompt, w.variant, w.scale_reversed) for w in shown]


def build_tables(index: Any) -> Tables:
    """Index every (prompt, scene, action) rendering, every judgment system text and strategy suffix."""
    from runner.compile.plan import asked_values
    from runner.compile.strategies import Context, steer, user_message

    tables = Tables(list(index.value_ids), {v.id: v.circle_index for v in index.values})
    for scene in index.scenes.values():
        for a in scene.actions:
            sign = 1 if a.polarity.value == "express" else -1
            tables.pairs[(scene.text.strip(), a.text.strip())] = Item(
                scene.id, a.id, a.value, sign, a.micro_value
            )
    for prompt in index.prompts.values():
        if prompt.names_value:  # every value and micro-value, named as runner.compile.plan names them
            any_scene = next(iter(index.scenes.values()))  # "all" micro-values do not depend on it
            for ask in ("value", "micro_value"):
                for q in asked_values(index, prompt, ask, "all", any_scene):
                    if q.value is not None:  # None only for elicitation=action, which names no value
                        tables.asked[(q.label, q.gloss)] = (q.value, q.micro_value)
        for shown, variant, flipped in _wordings(prompt):
            tables.systems.append(shown.system.strip())
            w = _Wording(variant, flipped, _template_pattern(shown.user))
            if prompt.names_value:
                tables.valued.append(w)
                continue
            for scene in index.scenes.values():
                for a in scene.actions:
                    item = tables.pairs[(scene.text.strip(), a.text.strip())]
                    tables.items[user_message(shown, scene.text, a.text)] = item.asking(w, None)
        for strategy in index.strategies.values():
            if strategy.kind.value != "system_prompt":
                continue
            for target in tables.values:
                for direction in (1, -1):
                    ctx = Context(index=index, prompt=prompt, target=target, direction=direction)
                    suffix = steer(strategy, ctx).system_suffix.strip()
                    tables.suffixes[suffix] = (target, direction, strategy.id)
    tables.systems.sort(key=len, reverse=True)  # match the longest known system text first
    return tables


def content_of(message: Any) -> str:
    """A chat message's text, from a dict or a LiteLLM message object."""
    return str(message["content"] if isinstance(message, dict) else message.content)


def _role(message: Any) -> str:
    return str(message["role"] if isinstance(message, dict) else message.role)


def _from_demonstrations(
    demos: list[Any], tables: Tables, profile: Profile, scale_reversed: bool = False
) -> Intervention | None:
    """Target, direction and dose from few-shot demonstrations (user item, assistant rating) pairs.

    On a reversed scale (the item's wording says so) a demonstrated digit d means 6 − d.
    """
    seen: list[tuple[Item, int]] = []
    for user, answer in zip(demos[0::2], demos[1::2], strict=False):
        item = tables.item_of(content_of(user))
        digits = [c for c in content_of(answer) if c in "12345"]
        if item is not None and digits and _role(answer) == "assistant":
            d = int(digits[0])
            seen.append((item, 6 - d if scale_reversed else d))
    if not seen:
        if demos:
            raise ValueError(
                "sim judge: the demonstrations before the item are not rendered (scene, action) pairs of "
                "the spec index; the simulated judge only reads demonstrations made by the fewshot strategy"
            )
        return None
    target = Counter(item.value for item, _ in seen).most_common(1)[0][0]
    signal = sum(item.sign * (r - 3) for item, r in seen if item.value == target)
    if signal == 0:
        return None  # demonstrations that point nowhere steer nothing
    k = len(seen)
    key = "fewshot:" + ",".join(f"{i.scene_id}/{i.action_id}={r}" for i, r in seen)
    return Intervention(target, 1 if signal > 0 else -1, profile.dose("fewshot", k), f"fewshot k={k}", key)


def _from_system(system: str, tables: Tables, profile: Profile) -> Intervention | None:
    """Target and direction from an instruction appended to a known judgment system prompt."""
    text = system.strip()
    if not text or text in tables.systems:
        return None
    base = next((s for s in tables.systems if text.startswith(s)), None)
    suffix = text[len(base) :].strip() if base is not None else text
    hit = tables.suffixes.get(suffix)
    if hit is None:
        raise ValueError(
            "sim judge: the system message carries an instruction that no system_prompt strategy of the "
            "spec renders; the simulated judge only reads spec strategies"
        )
    key = f"system_prompt:{hit[2]}:{hit[0]}:{hit[1]}"
    return Intervention(hit[0], hit[1], profile.dose("system_prompt"), "system_prompt", key)


def parse_model(model: str) -> tuple[str, Intervention | None]:
    """``<profile>`` or ``<profile>:<target>:<reinforce|suppress>[:<dose>]`` → (profile, checkpoint)."""
    parts = model.removeprefix(f"{PROVIDER}/").split(":")
    if len(parts) == 1:
        return parts[0], None
    if len(parts) not in (3, 4) or parts[2] not in ("reinforce", "suppress"):
        raise ValueError(
            f"sim judge: model {model!r} must be sim/<profile> or sim/<profile>:<target>:<reinforce|suppress>[:<dose>]"
        )
    dose = float(parts[3]) if len(parts) == 4 else math.nan
    return parts[0], Intervention(parts[1], 1 if parts[2] == "reinforce" else -1, dose, "checkpoint")


def read_request(
    messages: Sequence[Any], tables: Tables, profile: Profile, checkpoint: Intervention | None = None
) -> tuple[Item, list[Intervention]]:
    """The item a request asks about and the interventions it carries (see the module docstring)."""
    msgs = list(messages)
    if not msgs or _role(msgs[-1]) != "user":
        raise ValueError("sim judge: the request must end with the user message of the item")
    item = tables.item_of(content_of(msgs[-1]))
    if item is None:
        raise ValueError(
            "sim judge: the last user message is not the judgment prompt rendered for a (scene, action) of "
            "the spec index; run from the project root or set VAT_SPEC_DIR to the spec folder"
        )
    system = content_of(msgs[0]) if _role(msgs[0]) == "system" else ""
    demos = msgs[1 if system else 0 : -1]
    found = [
        _from_demonstrations(demos, tables, profile, item.scale_reversed),
        _from_system(system, tables, profile),
    ]
    if checkpoint is not None:
        if checkpoint.target not in tables.values:
            raise ValueError(f"sim judge: unknown target {checkpoint.target!r} in the model string")
        dose = checkpoint.dose if math.isfinite(checkpoint.dose) else profile.dose("checkpoint")
        key = f"checkpoint:{checkpoint.target}:{checkpoint.direction}:{dose}"
        found.append(Intervention(checkpoint.target, checkpoint.direction, dose, "checkpoint", key))
    return item, [f for f in found if f is not None]


def pair_susceptibility(profile: Profile, item: Item) -> float:
    """S_{s,a} / S_s = exp(τ_p·z_{s,a} − τ_p²/2) of one (scene, action); 1 when τ_p = 0 (the default)."""
    tau = profile.doc.scenes.pair_susceptibility_sd
    if tau == 0:
        return 1.0
    z = normal_draw(profile.doc.seed, "pair_susceptibility", item.scene_id, item.action_id)
    return math.exp(tau * z - tau * tau / 2.0)
