"""The planted model of the simulated judge (``sim/``): its profiles, answer distribution and draws.

What :mod:`runner.execute.providers.sim` answers with, and the same model vectorised over many scenes
(:func:`simulate_states`, :func:`simulate_pair_states`) for the known-answer validation and the power
analysis. The model itself is described in that module's docstring.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
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
        doses: dict[str, float] = {str(k): v for k, v in self.doc.intervention.dose.items()}
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


def unit_draw(*parts: Any) -> float:
    """A uniform number in (0, 1) from a hash of ``parts``."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2.0**64


def normal_draw(*parts: Any) -> float:
    """A standard normal number from a hash of ``parts``."""
    return _NORMAL.inv_cdf(unit_draw(*parts))


def susceptibility(profile: Profile, scene_id: str) -> float:
    """S_s = exp(τ·z_s − τ²/2) of one scene."""
    tau = profile.doc.scenes.susceptibility_sd
    return math.exp(tau * normal_draw(profile.doc.seed, "susceptibility", scene_id) - tau * tau / 2.0)


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
