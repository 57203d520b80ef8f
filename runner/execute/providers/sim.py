"""A SIMULATED judge with planted value structure, LiteLLM provider ``sim/``: for validating the metrics.

No judge-grade model runs on this machine, so the metrics are validated another way: a judge whose value
structure is *planted* answers through the ordinary pipeline, and the measured metrics are compared with
what the planted parameters imply (``vat validate-metrics``, ``runner/validation.py``). It is never a
default, and every report labels ``sim/`` models as simulated.

Model strings: ``sim/<profile>`` (a profile is ``conf/sim/<profile>.yaml``), or, as a post model of the
``checkpoint`` strategy, ``sim/<profile>:<target>:<reinforce|suppress>[:<dose>]`` (a "fine-tuned"
simulated checkpoint with the intervention built in).

How a request is answered
-------------------------
The judge reads the request like a person would: the last user message must be a judgment prompt of
the spec index, in one of its wordings (variants), rendered for one (scene, action) — looked up exactly,
or for a prompt that names a value, matched against its template to recover the scene, the action and
the value or micro-value asked about (the index is the one passed to :func:`configure`, else
``$VAT_SPEC_DIR`` or ``spec/``). The wording tells whether the scale is shown reversed; demonstrated
digits are then read as 6 − d. The intervention is read from the prompt:

- few-shot demonstrations (user/assistant pairs before the item): each demonstration is looked up; the
  target t is the value most of them belong to, the direction d = sign(Σ σ_i·(r_i − 3)) over their
  polarities σ_i and demonstrated ratings r_i, and the dose D = k / (k + k_half) for k demonstrations;
- a system message longer than a known judgment prompt: the extra text is matched exactly against every
  ``system_prompt``-kind strategy rendered for every value and direction; D = ``dose.system_prompt``;
- a checkpoint model string (above): D = its dose, else ``dose.checkpoint``;
- the judgment prompt alone (baseline): no intervention. Several interventions add up.

The generative model (every random effect is a standard normal drawn from a hash of the profile seed
and the names it depends on, so answers are deterministic per request)
--------------------------------------------------------------------------------------------------------
Values v on the circle at θ_v = 2π·index/10; scene s; action a with value v(a) and polarity σ_a (±1).

- latent value state before:  λ_pre[s, v] = w[v] + scene_sd·b[s, v]
- intervention (t, d, D):     λ_post[s, v] = λ_pre[s, v] + S_s·k_v, where
      k_t = d·D·g,
      k_u = d·D·g·(a·c(u, t) + h_u) for u ≠ t,   c(u, t) = cos(θ_u − θ_t) for shape ``circle``
      (neighbours of t move with it, opposites against), c = 0 for shape ``none``; h_u is a value's
      extra ``coupling`` (a hub moves by h_u·gain whatever the target);
      S_s = exp(τ·z_s − τ²/2) is the scene's susceptibility (log-normal, mean 1, τ = susceptibility_sd),
      shared by every value of the scene, so off-target shifts co-vary with the on-target shift.
- the judge's mean answer to a prompt: μ = 3 + 2·σ_a·λ[s, v(a)] + action_sd·β[s, a] + noise·ε, where β is
  the wording's fixed agreeableness (the same before and after) and ε is drawn from a hash of the model,
  the item and the condition (:func:`condition_key`: no intervention, or the demonstrations' items and
  ratings, the system_prompt strategy with its target and direction, the checkpoint), so the pre and
  post answers of an item get independent noise, and rewording a prompt does not redraw it.
- a question that names a value u (elicitation=value / micro_value, docs/elicitation.md) asks how far
  the action honours or goes against u, so its answer carries its own sign:
      μ = 3 + 2·(read·ρ(a, u) + lens·(λ[s, u] − w[u])) + action_sd·β[s, a, u] + noise·ε,
  where ρ(a, u) = σ_a for u = v(a) (σ_a·micro_relevance for another micro-value of v(a)) and
  σ_a·relevance·cos(θ_u − θ_v(a)) otherwise: a judge that reads the action says how it bears on u, and
  a change of its valuation of u (scene deviation, intervention) moves every answer about u. So the
  evidence e = φ(r) ≈ read·ρ + λ − w, and the shift of (s, a) for u is S_{s,a}·k_u + noise: every
  scene–action pair carries evidence for every value. S_{s,a} = S_s·exp(τ_p·z_{s,a} − τ_p²/2)
  (τ_p = ``pair_susceptibility_sd``, default 0) lets shifts vary between the actions of a scene.
- bias terms (every question): μ ← 3 + attention·(μ − 3 content) + acquiescence (towards "agree" /
  "honours"); a variant other than base adds wording_sd·ω[variant, s, a, u]; on a reversed scale the
  digit shown is μ ← 6 − μ; digit_bias then moves towards the digit 5 whatever it means. An "always
  agree" judge (conf/sim/acquiescent.yaml) has low attention and high acquiescence.
- answer distribution: p(k) ∝ exp(−(k − μ)² / (2·spread²)), k = 1..5. Logprobs are log p (the top
  ``top_logprobs`` tokens). The text answer is the most likely digit at temperature 0; at temperature
  T > 0 it is a draw from p^(1/T), seeded by the condition key and by how many times this process has
  been asked the same request (so repeated samples of one item differ, and a run's set of answers is reproducible).

What the metrics should be. With the expected rating r̂ = Σ k·p(k) ≈ μ (away from the ends of the scale),
the evidence of an item is e = σ·(r̂ − 3)/2 ≈ λ + σ·(action_sd·β + noise·ε)/2, so the value state is
E[s, v] ≈ λ[s, v] + noise and the shift Δ[s, v] ≈ S_s·k_v + η with Var η = noise²/4 (two items per value
and condition). Hence mean shift m(v) ≈ k_v, directed gain G ≈ D·g, GND(u) ≈ a·c(u, t) + h_u, and the
Pearson coupling ≈ k_u·k_w·V / √((k_u²V + noise²/4)(k_w²V + noise²/4)) with V = exp(τ²) − 1 (Spearman
≈ (6/π)·asin(ρ/2)); a value with k_u = 0 is exactly uncoupled. r̂ flattens near 1 and 5, which shrinks
large shifts a little: ``runner.validation.known_answer`` therefore computes the planted values exactly, by simulating
this same model (:func:`simulate_states`, vectorised) on many scenes.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runner.core.errors import VatError

PROVIDER = "sim"
SCALE = np.arange(1.0, 6.0)
_NORMAL = NormalDist()

# ---------------------------------------------------------------------------------------------------
# Profiles (data: conf/sim/<id>.yaml)
# ---------------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InterventionConf(_Strict):
    """How an intervention shifts the latent value states."""

    gain: float = Field(0.5, description="g: on-target latent shift at dose 1")
    offtarget: Literal["none", "circle"] = "circle"
    amplitude: float = Field(0.5, ge=0.0, description="a: off-target shift per unit gain at cos = 1")
    coupling: dict[str, float] = Field(default_factory=dict, description="h_u: hub shift per unit gain")
    dose: dict[Literal["fewshot_k_half", "system_prompt", "checkpoint"], float] = Field(default_factory=dict)


class ScenesConf(_Strict):
    """Scene-level random effects."""

    susceptibility_sd: float = Field(0.5, ge=0.0)
    value_sd: float = Field(0.2, ge=0.0)
    action_sd: float = Field(0.3, ge=0.0)
    pair_susceptibility_sd: float = Field(
        0.0, ge=0.0, description="τ_p: log-normal factor per (scene, action) on top of S_s (0: none)"
    )


class JudgeConf(_Strict):
    """The judge's answer noise, and how it reads a question that names a value (docs/elicitation.md)."""

    noise: float = Field(0.3, ge=0.0)
    spread: float = Field(0.7, gt=0.0)
    read: float = Field(
        0.6, ge=0.0, description="value-named question: φ of an action asked about its own value"
    )
    relevance: float = Field(0.3, ge=0.0, description="ρ of an action for another value at cos = 1")
    micro_relevance: float = Field(0.7, ge=0.0, description="ρ for another micro-value of the action's value")
    lens: float = Field(1.0, ge=0.0, description="how far a change in λ[s, u] moves answers about u")
    attention: float = Field(1.0, ge=0.0, description="weight of the item's content in μ (0: ignores it)")
    acquiescence: float = Field(0.0, description="rating points towards 'agree / honours' on any item")
    digit_bias: float = Field(0.0, description="rating points towards the digit 5, whatever it means")
    wording_sd: float = Field(0.0, ge=0.0, description="sd of a variant's fixed effect per item (0: none)")


class ValidationConf(_Strict):
    """The run that ``vat validate-metrics`` makes with this profile (each overridable)."""

    strategy: str = "fewshot_4"
    target: str = "security"
    direction: Literal["reinforce", "suppress"] = "reinforce"
    hub_power: float = Field(0.8, ge=0.0, le=1.0)
    """Share of simulated all-scenes datasets (scene unit) that must report each planted hub.

    0.8 suits a hub coupled over scenes (measured ≈ 95 %). Coupling planted over scene–action pairs is
    diluted at the scene unit by design, so such a profile states its own, lower, floor.
    """


class ProfileDoc(_Strict):
    """One simulated judge profile (``conf/sim/<id>.yaml``)."""

    id: str
    description: str
    seed: int = 0
    weights: dict[str, float]
    intervention: InterventionConf = InterventionConf()
    scenes: ScenesConf = ScenesConf()
    judge: JudgeConf = JudgeConf()
    validation: ValidationConf = ValidationConf()


@dataclass(frozen=True)
class Profile:
    """A validated profile with its value weights aligned to the circle order of ``values``."""

    doc: ProfileDoc
    values: tuple[str, ...]
    weights: np.ndarray
    angles: np.ndarray
    path: str = ""

    @property
    def id(self) -> str:
        """The profile id."""
        return self.doc.id

    def dose(self, kind: str, k: int = 0) -> float:
        """The dose D of an intervention: k/(k + k_half) for k demonstrations, else the profile's constant."""
        doses = self.doc.intervention.dose
        if kind == "fewshot":
            half = doses.get("fewshot_k_half", 2.0)
            return k / (k + half) if k > 0 else 0.0
        return float(doses.get(kind, 1.0))

    def shift(self, target: str, direction: int, dose: float, gain: float | None = None) -> np.ndarray:
        """The planted latent shift per unit susceptibility, k_v, for every value (module docstring)."""
        iv = self.doc.intervention
        g = iv.gain if gain is None else gain
        t = self.values.index(target)
        spill = (
            np.cos(self.angles - self.angles[t]) if iv.offtarget == "circle" else np.zeros(len(self.values))
        )
        hub = np.array([iv.coupling.get(v, 0.0) for v in self.values])
        k = direction * dose * g * (iv.amplitude * spill + hub)
        k[t] = direction * dose * g
        return k


def profiles_dir() -> Path:
    """The folder of profile files: ``conf/sim`` (``$VAT_CONF_DIR/sim`` when set)."""
    from runner.config import conf_dir

    return conf_dir() / "sim"


def profile_names() -> list[str]:
    """The shipped profile ids (file stems in :func:`profiles_dir`)."""
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def load_profile(name: str, values: Sequence[str], circle_index: dict[str, int] | None = None) -> Profile:
    """Read and validate ``conf/sim/<name>.yaml``; errors name the file, line and field."""
    from runner.core.yamlio import YamlProblem, read_yaml

    path = profiles_dir() / f"{name}.yaml"
    shown = f"conf/sim/{name}.yaml"
    if not path.is_file():
        raise VatError(f"no simulated judge profile {name!r}; choose one of: {', '.join(profile_names())}", 2)
    try:
        ydoc = read_yaml(path, shown)
        doc = ProfileDoc.model_validate(ydoc.data)
    except YamlProblem as exc:
        raise VatError(str(exc.problem)) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        raise VatError(
            f"{shown}:{ydoc.line_of(loc)}: {'.'.join(map(str, loc))}: {err['msg']}; fix the profile"
        ) from None
    unknown = sorted((set(doc.weights) | set(doc.intervention.coupling)) - set(values))
    if unknown:
        raise VatError(f"{shown}: unknown value(s) {', '.join(unknown)}; use the ids of spec/values/")
    missing = sorted(set(values) - set(doc.weights))
    if missing:
        raise VatError(f"{shown}: weights has no entry for {', '.join(missing)}; give every value a weight")
    index = circle_index or {v: i for i, v in enumerate(values)}
    return Profile(
        doc=doc,
        values=tuple(values),
        weights=np.array([doc.weights[v] for v in values], dtype=float),
        angles=np.array([2.0 * math.pi * index[v] / len(values) for v in values]),
        path=shown,
    )


# ---------------------------------------------------------------------------------------------------
# The answer distribution
# ---------------------------------------------------------------------------------------------------


def answer_probs(mu: np.ndarray | float, spread: float, temperature: float = 1.0) -> np.ndarray:
    """p(k) ∝ exp(−(k − μ)²/(2·spread²)/T) over k = 1..5, along a new last axis."""
    m = np.asarray(mu, dtype=float)[..., None]
    logits = -((SCALE - m) ** 2) / (2.0 * spread * spread) / max(temperature, 1e-9)
    logits -= logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class _Curve:
    """r̂(μ) on a uniform grid: the expected rating as a function of μ, for fast vectorised lookups."""

    lo: float
    step: float
    values: np.ndarray

    def __call__(self, mu: np.ndarray) -> np.ndarray:
        # Linear interpolation by index arithmetic: several times faster than np.interp's search.
        x = np.clip((np.asarray(mu, dtype=float) - self.lo) / self.step, 0.0, len(self.values) - 1.000001)
        i = x.astype(np.intp)
        f = x - i
        return self.values[i] * (1.0 - f) + self.values[i + 1] * f


def expected_rating_curve(spread: float) -> _Curve:
    """The expected rating r̂ = Σ k·p(k) as a function of μ (exact on a 0.002 grid, interpolated)."""
    grid = np.linspace(-6.0, 12.0, 9001)
    return _Curve(float(grid[0]), float(grid[1] - grid[0]), answer_probs(grid, spread) @ SCALE)


# ---------------------------------------------------------------------------------------------------
# Deterministic draws for the provider
# ---------------------------------------------------------------------------------------------------


def _unit(*parts: Any) -> float:
    """A uniform number in (0, 1) from a hash of ``parts``."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2.0**64


def _normal(*parts: Any) -> float:
    """A standard normal number from a hash of ``parts``."""
    return _NORMAL.inv_cdf(_unit(*parts))


def susceptibility(profile: Profile, scene_id: str) -> float:
    """S_s = exp(τ·z_s − τ²/2) of one scene."""
    tau = profile.doc.scenes.susceptibility_sd
    return math.exp(tau * _normal(profile.doc.seed, "susceptibility", scene_id) - tau * tau / 2.0)


def pair_susceptibility(profile: Profile, item: Item) -> float:
    """S_{s,a} / S_s = exp(τ_p·z_{s,a} − τ_p²/2) of one (scene, action); 1 when τ_p = 0 (the default)."""
    tau = profile.doc.scenes.pair_susceptibility_sd
    if tau == 0:
        return 1.0
    z = _normal(profile.doc.seed, "pair_susceptibility", item.scene_id, item.action_id)
    return math.exp(tau * z - tau * tau / 2.0)


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


def _content(message: Any) -> str:
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
        item = tables.item_of(_content(user))
        digits = [c for c in _content(answer) if c in "12345"]
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
    item = tables.item_of(_content(msgs[-1]))
    if item is None:
        raise ValueError(
            "sim judge: the last user message is not the judgment prompt rendered for a (scene, action) of "
            "the spec index; run from the project root or set VAT_SPEC_DIR to the spec folder"
        )
    system = _content(msgs[0]) if _role(msgs[0]) == "system" else ""
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


# ---------------------------------------------------------------------------------------------------
# The judge
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One simulated judgment: the digit, the answer distribution, and what it was computed from."""

    rating: int
    probs: np.ndarray
    mu: float
    item: Item
    interventions: tuple[Intervention, ...]


class SimJudge:
    """Answers requests from the generative model of the module docstring, for one spec index."""

    def __init__(self, index: Any) -> None:
        self.tables = build_tables(index)
        self._profiles: dict[str, Profile] = {}
        self._asked: Counter[str] = Counter()

    def profile(self, name: str) -> Profile:
        """Load (once) the profile ``name``."""
        if name not in self._profiles:
            self._profiles[name] = load_profile(name, self.tables.values, self.tables.circle_index)
        return self._profiles[name]

    def latent(
        self, profile: Profile, item: Item, interventions: Sequence[Intervention], value: str | None = None
    ) -> float:
        """λ[s, v] of the item's scene and value (or ``value``) under the interventions."""
        value = value or item.value
        seed, v = profile.doc.seed, self.tables.values.index(value)
        lam = profile.weights[v] + profile.doc.scenes.value_sd * _normal(seed, "value", item.scene_id, value)
        if interventions:
            s = susceptibility(profile, item.scene_id) * pair_susceptibility(profile, item)
            for iv in interventions:
                lam += s * profile.shift(iv.target, iv.direction, iv.dose)[v]
        return float(lam)

    def relevance(self, profile: Profile, item: Item) -> float:
        """ρ(a, u): how far the item's action honours (+) or goes against (−) the asked value u."""
        jd = profile.doc.judge
        u = item.asked_value
        if u == item.value:
            same_micro = item.asked_micro_value is None or item.asked_micro_value == item.micro_value
            return item.sign * (1.0 if same_micro else jd.micro_relevance)
        index = self.tables.circle_index
        angle = 2.0 * math.pi * (index[str(u)] - index[item.value]) / len(self.tables.values)
        return item.sign * jd.relevance * math.cos(angle)

    def content(self, profile: Profile, item: Item, interventions: Sequence[Intervention]) -> float:
        """The item's content term of μ (rating points, canonical scale; module docstring)."""
        if item.asked_value is None:
            return 2.0 * item.sign * self.latent(profile, item, interventions)
        jd = profile.doc.judge
        u = self.tables.values.index(item.asked_value)
        moved = self.latent(profile, item, interventions, item.asked_value) - profile.weights[u]
        return 2.0 * (jd.read * self.relevance(profile, item) + jd.lens * moved)

    def answer(self, model: str, messages: Sequence[Any], temperature: float = 0.0) -> Answer:
        """Judge one request deterministically (see the module docstring for the sampling rule)."""
        name, checkpoint = parse_model(model)
        try:
            profile = self.profile(name)
        except VatError as exc:
            raise ValueError(f"sim judge: {exc}") from None
        item, interventions = read_request(messages, self.tables, profile, checkpoint)
        seed, scenes, judge = profile.doc.seed, profile.doc.scenes, profile.doc.judge
        prompt = condition_key(model, item, interventions)
        wording = (item.scene_id, item.action_id) + ((item_asked(item),) if item.asked_value else ())
        mu = (
            3.0
            + judge.attention * self.content(profile, item, interventions)
            + judge.acquiescence
            + scenes.action_sd * _normal(seed, "action", *wording)
            + judge.noise * _normal(seed, "noise", prompt)
        )
        if item.variant != "base" and judge.wording_sd > 0:
            mu += judge.wording_sd * _normal(seed, "wording", item.variant, *wording)
        if item.scale_reversed:
            mu = 6.0 - mu  # the scale as shown: the agree / honours end is the digit 1
        mu += judge.digit_bias
        probs = answer_probs(mu, judge.spread)
        if temperature > 0:
            draw_key = f"{temperature}\x1f{prompt}"
            u = _unit(seed, "sample", draw_key, self._asked[draw_key])
            self._asked[draw_key] += 1
            cdf = np.cumsum(answer_probs(mu, judge.spread, temperature))
            rating = int(min(np.searchsorted(cdf, u * cdf[-1]), 4)) + 1
        else:
            rating = int(np.argmax(probs)) + 1
        return Answer(rating, probs, float(mu), item, tuple(interventions))


def condition_key(model: str, item: Item, interventions: Sequence[Intervention]) -> str:
    """The identity an answer's noise is drawn from: model, item, and the condition it is asked under.

    Identities, not text: rewording the judgment prompt or a strategy template does not redraw the
    noise, while the pre and post conditions of an item (and different strategies) draw independently.
    """
    condition = "|".join(sorted(iv.key for iv in interventions)) or "baseline"
    asked = f"@{item_asked(item)}" if item.asked_value else ""
    return f"{model}\x1f{item.scene_id}/{item.action_id}{asked}\x1f{condition}"


def item_asked(item: Item) -> str:
    """The asked value's identity in noise draws: ``value`` or ``value/micro-value``."""
    micro = f"/{item.asked_micro_value}" if item.asked_micro_value else ""
    return f"{item.asked_value}{micro}"


_index: Any = None
_judge: SimJudge | None = None


def configure(index: Any) -> None:
    """Use this spec index to recognise prompts (else ``$VAT_SPEC_DIR`` or ``spec/`` is loaded lazily)."""
    global _index, _judge
    _index, _judge = index, None


def judge() -> SimJudge:
    """The process's simulated judge (built on first use)."""
    global _judge
    if _judge is None:
        index = _index
        if index is None:
            from runner.spec.load import load_index

            index = load_index(os.environ.get("VAT_SPEC_DIR", "spec"), check_lock=False)
        _judge = SimJudge(index)
    return _judge


def logprobs_payload(answer: Answer, top: int) -> dict[str, Any]:
    """OpenAI-shaped logprobs of the answer token: the ``top`` most likely digits with log p."""
    logp = np.log(np.maximum(answer.probs, 1e-300))
    order = np.argsort(-logp, kind="stable")[: max(1, min(top, 5))]
    tops = [{"token": str(int(i) + 1), "logprob": float(logp[i]), "bytes": None} for i in order]
    chosen = answer.rating - 1
    return {
        "content": [
            {"token": str(answer.rating), "logprob": float(logp[chosen]), "bytes": None, "top_logprobs": tops}
        ]
    }


# ---------------------------------------------------------------------------------------------------
# Vectorised simulation of the same model (validation and power analysis)
# ---------------------------------------------------------------------------------------------------

_SIGN = np.array([1.0, -1.0])  # an express and a suppress action (per micro-value of a value in a scene)
ITEMS_PER_VALUE = 4
"""Actions per value and scene in the shipped scenes (two micro-values, each with an express and a suppress action; a test keeps this in step with spec/)."""


def simulate_states(
    profile: Profile,
    shifts: Sequence[np.ndarray],
    n_scenes: int,
    reps: int,
    rng: np.random.Generator,
    rating: Literal["expected", "text"] = "expected",
    samples: int = 1,
    temperature: float = 1.0,
    paired_noise: bool = False,
    items_per_value: int = ITEMS_PER_VALUE,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Value states of ``reps`` simulated datasets of ``n_scenes`` new scenes: (pre, [post per shift]).

    Each array has shape (reps, n_scenes, values). Every post condition shares the scenes (value
    effects, wording, susceptibility) and the pre condition, and has its own prompt noise — as when
    several strategies are run on one scene set. ``rating="expected"`` uses r̂ from the logprobs (samples
    add nothing: a prompt's logprobs do not change); ``"text"`` averages ``samples`` digits drawn at
    ``temperature`` (0: the most likely digit). ``paired_noise`` reuses the pre condition's prompt noise
    in every post condition: mean shifts keep their expectation with far less Monte Carlo error (for
    population values; never for couplings, which the noise is part of). ``items_per_value`` is the
    number of actions per value and scene (alternately express and suppress; equal micro-value groups
    average like all items), as in the shipped scenes by default.
    """
    n_values = len(profile.values)
    sign = np.tile(_SIGN, max(1, items_per_value // 2))
    sc, jd = profile.doc.scenes, profile.doc.judge
    tau = sc.susceptibility_sd
    suscept = np.exp(tau * rng.standard_normal((reps, n_scenes)) - tau * tau / 2.0)[..., None]
    lam_pre = profile.weights + sc.value_sd * rng.standard_normal((reps, n_scenes, n_values))
    wording = sc.action_sd * rng.standard_normal((reps, n_scenes, n_values, sign.size))
    curve = expected_rating_curve(jd.spread) if rating == "expected" else None
    shared = jd.noise * rng.standard_normal(wording.shape) if paired_noise else None
    tau_p = sc.pair_susceptibility_sd  # drawn only when set, so other profiles keep their random stream
    pair = np.exp(tau_p * rng.standard_normal(wording.shape) - tau_p * tau_p / 2.0) if tau_p > 0 else None

    def states(lam: np.ndarray) -> np.ndarray:
        """States from latent values per (…, value) or per (…, value, action)."""
        noise = shared if shared is not None else jd.noise * rng.standard_normal(wording.shape)
        content = jd.attention * 2.0 * sign * (lam if lam.ndim == wording.ndim else lam[..., None])
        mu = 3.0 + content + jd.acquiescence + wording + noise + jd.digit_bias
        if curve is not None:
            r = curve(mu)
        elif temperature <= 0:
            r = np.argmax(answer_probs(mu, jd.spread), axis=-1) + 1.0
        else:
            cdf = np.cumsum(answer_probs(mu, jd.spread, temperature), axis=-1)
            u = rng.random((*mu.shape, samples))
            r = 1.0 + (u[..., None] > cdf[..., None, :4]).sum(axis=-1).mean(axis=-1)
        return (sign * (r - 3.0) / 2.0).mean(axis=-1)

    pre = states(lam_pre)
    if pair is None:
        return pre, [states(lam_pre + suscept * np.asarray(k)) for k in shifts]
    per_action = suscept[..., None] * pair  # S_s · S_{s,a}/S_s for each of a value's actions
    return pre, [states(lam_pre[..., None] + per_action * np.asarray(k)[:, None]) for k in shifts]


def simulate_pair_states(
    profile: Profile,
    shifts: Sequence[np.ndarray],
    n_scenes: int,
    reps: int,
    rng: np.random.Generator,
    items_per_value: int = ITEMS_PER_VALUE,
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """States of ``reps`` simulated datasets under elicitation=value: (pre, [post per shift], scene of each pair).

    The twin of the provider's value-named questions (module docstring), vectorised and on the base
    scale: each scene has ``items_per_value`` actions per value, alternately express and suppress (as the
    shipped scenes), and every action is asked about every value, so each (scene, action) pair is a sample
    with a state for every value: e = φ(r̂) with r̂ the expected rating. Arrays have shape
    (reps, n_scenes·items_per_value·values, values);
    the last return value gives each pair's scene index (for cluster-aware statistics).
    """
    v = len(profile.values)
    sc, jd = profile.doc.scenes, profile.doc.judge
    per = items_per_value
    # pairs of a scene: (value 0 express, value 0 suppress, ... × per, value 1 express, ...)
    sign = np.tile(_SIGN, v * max(1, per // 2))
    own = np.repeat(np.arange(v), per)
    cos = np.cos(profile.angles[None, :] - profile.angles[own][:, None])  # (pair, asked value)
    rho = sign[:, None] * np.where(own[:, None] == np.arange(v)[None, :], 1.0, jd.relevance * cos)
    tau, tau_p = sc.susceptibility_sd, sc.pair_susceptibility_sd
    suscept = np.exp(tau * rng.standard_normal((reps, n_scenes, 1, 1)) - tau * tau / 2.0)
    pair = np.exp(tau_p * rng.standard_normal((reps, n_scenes, per * v, 1)) - tau_p * tau_p / 2.0)
    moved = sc.value_sd * rng.standard_normal((reps, n_scenes, 1, v))  # λ − w before any intervention
    wording = sc.action_sd * rng.standard_normal((reps, n_scenes, per * v, v))
    curve = expected_rating_curve(jd.spread)

    def states(lam_moved: np.ndarray) -> np.ndarray:
        noise = jd.noise * rng.standard_normal(wording.shape)
        content = 2.0 * (jd.read * rho + jd.lens * lam_moved)
        mu = 3.0 + jd.attention * content + jd.acquiescence + wording + noise + jd.digit_bias
        return ((curve(mu) - 3.0) / 2.0).reshape(reps, n_scenes * per * v, v)

    pre = states(moved)
    posts = [states(moved + suscept * pair * np.asarray(k)) for k in shifts]
    return pre, posts, np.repeat(np.arange(n_scenes), per * v)


# ---------------------------------------------------------------------------------------------------
# LiteLLM registration
# ---------------------------------------------------------------------------------------------------

_handler: Any = None


def _make_handler() -> Any:
    """Build the LiteLLM custom handler (imports litellm, so only when a ``sim/`` model is used)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from litellm.llms.custom_llm import CustomLLM

    class SimLLM(CustomLLM):  # type: ignore[misc]
        """LiteLLM face of :class:`SimJudge`."""

        def completion(
            self,
            *,
            model: str,
            messages: list[Any],
            model_response: Any,
            optional_params: dict[str, Any],
            **_: Any,
        ) -> Any:  # type: ignore[override]
            """Answer one request."""
            temperature = float(optional_params.get("temperature") or 0.0)
            ans = judge().answer(model, messages, temperature)
            logprobs = (
                logprobs_payload(ans, int(optional_params.get("top_logprobs") or 5))
                if optional_params.get("logprobs")
                else None
            )
            model_response.choices = [
                litellm.Choices(
                    finish_reason="stop",
                    index=0,
                    message=litellm.Message(role="assistant", content=str(ans.rating)),
                    logprobs=logprobs,
                )
            ]
            tokens = sum(len(_content(m)) for m in messages) // 4
            model_response.usage = litellm.Usage(
                prompt_tokens=tokens, completion_tokens=1, total_tokens=tokens + 1
            )
            model_response.model = f"{PROVIDER}/{model}"
            return model_response

        async def acompletion(self, **kwargs: Any) -> Any:  # type: ignore[override]
            """Answer one request (no I/O, so no awaiting)."""
            return self.completion(**kwargs)

    return SimLLM()


def register() -> None:
    """Make ``sim/...`` model strings work in LiteLLM (idempotent)."""
    global _handler
    import litellm

    if _handler is None:
        _handler = _make_handler()
    entries = litellm.custom_provider_map
    if not any(e["provider"] == PROVIDER for e in entries):
        entries.append({"provider": PROVIDER, "custom_handler": _handler})
    litellm.utils.custom_llm_setup()
