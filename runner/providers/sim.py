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
The judge reads the request like a person would: the last user message must be the judgment prompt
rendered for one (scene, action) of the spec index (looked up exactly; the index is the one passed to
:func:`configure`, else ``$VAT_SPEC_DIR`` or ``spec/``). The intervention is read from the prompt:

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
large shifts a little: ``runner.validation`` therefore computes the planted values exactly, by simulating
this same model (:func:`simulate_states`, vectorised) on many scenes.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runner.errors import VatError

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


class JudgeConf(_Strict):
    """The judge's answer noise."""

    noise: float = Field(0.3, ge=0.0)
    spread: float = Field(0.7, gt=0.0)


class ValidationConf(_Strict):
    """The run that ``vat validate-metrics`` makes with this profile (each overridable)."""

    strategy: str = "fewshot_4"
    target: str = "security"
    direction: Literal["reinforce", "suppress"] = "reinforce"


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
    from runner.yamlio import YamlProblem, read_yaml

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


# ---------------------------------------------------------------------------------------------------
# Reading the request
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """What a rendered user message is about."""

    scene_id: str
    action_id: str
    value: str
    sign: int  # σ: +1 express, −1 suppress


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


def build_tables(index: Any) -> Tables:
    """Index every (prompt, scene, action) rendering, every judgment system text and strategy suffix."""
    from runner.strategies import Context, steer, user_message

    tables = Tables(list(index.value_ids), {v.id: v.circle_index for v in index.values})
    for prompt in index.prompts.values():
        tables.systems.append(prompt.system.strip())
        for scene in index.scenes.values():
            for a in scene.actions:
                item = Item(scene.id, a.id, a.value, 1 if a.polarity.value == "express" else -1)
                tables.items[user_message(prompt, scene.text, a.text)] = item
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


def _from_demonstrations(demos: list[Any], tables: Tables, profile: Profile) -> Intervention | None:
    """Target, direction and dose from few-shot demonstrations (user item, assistant rating) pairs."""
    seen: list[tuple[Item, int]] = []
    for user, answer in zip(demos[0::2], demos[1::2], strict=False):
        item = tables.items.get(_content(user))
        digits = [c for c in _content(answer) if c in "12345"]
        if item is not None and digits and _role(answer) == "assistant":
            seen.append((item, int(digits[0])))
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
    item = tables.items.get(_content(msgs[-1]))
    if item is None:
        raise ValueError(
            "sim judge: the last user message is not the judgment prompt rendered for a (scene, action) of "
            "the spec index; run from the project root or set VAT_SPEC_DIR to the spec folder"
        )
    system = _content(msgs[0]) if _role(msgs[0]) == "system" else ""
    demos = msgs[1 if system else 0 : -1]
    found = [_from_demonstrations(demos, tables, profile), _from_system(system, tables, profile)]
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

    def latent(self, profile: Profile, item: Item, interventions: Sequence[Intervention]) -> float:
        """λ[s, v] of the item's scene and value under the interventions."""
        seed, v = profile.doc.seed, self.tables.values.index(item.value)
        lam = profile.weights[v] + profile.doc.scenes.value_sd * _normal(
            seed, "value", item.scene_id, item.value
        )
        for iv in interventions:
            k = profile.shift(iv.target, iv.direction, iv.dose)
            lam += susceptibility(profile, item.scene_id) * k[v]
        return float(lam)

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
        mu = (
            3.0
            + 2.0 * item.sign * self.latent(profile, item, interventions)
            + scenes.action_sd * _normal(seed, "action", item.scene_id, item.action_id)
            + judge.noise * _normal(seed, "noise", prompt)
        )
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
    return f"{model}\x1f{item.scene_id}/{item.action_id}\x1f{condition}"


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
            from runner.load import load_index

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

_SIGN = np.array([1.0, -1.0])  # one express and one suppress action per value and scene


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
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Value states of ``reps`` simulated datasets of ``n_scenes`` new scenes: (pre, [post per shift]).

    Each array has shape (reps, n_scenes, values). Every post condition shares the scenes (value
    effects, wording, susceptibility) and the pre condition, and has its own prompt noise — as when
    several strategies are run on one scene set. ``rating="expected"`` uses r̂ from the logprobs (samples
    add nothing: a prompt's logprobs do not change); ``"text"`` averages ``samples`` digits drawn at
    ``temperature`` (0: the most likely digit). ``paired_noise`` reuses the pre condition's prompt noise
    in every post condition: mean shifts keep their expectation with far less Monte Carlo error (for
    population values; never for couplings, which the noise is part of).
    """
    n_values = len(profile.values)
    sc, jd = profile.doc.scenes, profile.doc.judge
    tau = sc.susceptibility_sd
    suscept = np.exp(tau * rng.standard_normal((reps, n_scenes)) - tau * tau / 2.0)[..., None]
    lam_pre = profile.weights + sc.value_sd * rng.standard_normal((reps, n_scenes, n_values))
    wording = sc.action_sd * rng.standard_normal((reps, n_scenes, n_values, 2))
    curve = expected_rating_curve(jd.spread) if rating == "expected" else None
    shared = jd.noise * rng.standard_normal(wording.shape) if paired_noise else None

    def states(lam: np.ndarray) -> np.ndarray:
        noise = shared if shared is not None else jd.noise * rng.standard_normal(wording.shape)
        mu = 3.0 + 2.0 * _SIGN * lam[..., None] + wording + noise
        if curve is not None:
            r = curve(mu)
        elif temperature <= 0:
            r = np.argmax(answer_probs(mu, jd.spread), axis=-1) + 1.0
        else:
            cdf = np.cumsum(answer_probs(mu, jd.spread, temperature), axis=-1)
            u = rng.random((*mu.shape, samples))
            r = 1.0 + (u[..., None] > cdf[..., None, :4]).sum(axis=-1).mean(axis=-1)
        return (_SIGN * (r - 3.0) / 2.0).mean(axis=-1)

    pre = states(lam_pre)
    return pre, [states(lam_pre + suscept * np.asarray(k)) for k in shifts]


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
