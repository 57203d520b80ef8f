"""Power analysis (`vat power`): how many scenes it takes to see a given gain or nVAT difference.

The simulated judge's generative model (``runner/providers/sim.py``) is simulated directly, vectorised
in numpy — thousands of replicate datasets, no LiteLLM. For a planted on-target gain G and the profile's
off-target structure it measures, over replicate datasets of n scenes:

- the 95 % CI width of the gain, 2·z·sd(Ĝ), and the power to detect G: P(the 95 % CI excludes 0) ≈
  Φ(G/sd(Ĝ) − z) (normal approximation; z = z_{1−α/2});
- the standard deviation of nVAT, and of the difference of the nVATs of two strategies judged on the
  same scenes against the same pre condition (each with its own prompt noise), and the power to detect
  a difference δ: Φ(δ/sd(nVAT_A − nVAT_B) − z) (the sd under equal taxes stands for the sd under a
  small difference);
- the same with repeated samples per item at temperature > 0 (text answers averaged), next to the
  logprob path (expected rating), which samples cannot improve.

The scenes needed are where (z_{1−α/2} + z_{power})·sd(n) = effect, with sd(n) = c·n^b fitted on the
simulated grid (b ≈ −½), so sizes beyond the grid are extrapolated. Replicates reuse the first n scenes
of one larger simulated set (common random numbers), so curves are smooth in n.

``nvat=X`` also gives the scenes needed to tell an nVAT of X from no coupling at all (the permutation
null of every report row) by :func:`tax_scenes_needed`, a closed-form non-central χ² approximation that
every report row uses for its ``scenes_needed`` field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from runner.core.errors import VatError
from runner.execute.providers.sim import Profile, simulate_states
from runner.metrics import vat as metrics

_N = NormalDist()
DEFAULT_GRID = (10, 20, 40, 80, 160, 320, 640)
DEFAULT_SAMPLES = (1, 2, 4, 8, 16)
POP_SCENES = 40_000
"""Scenes of the one large simulated set that gives population (planted) values."""


@dataclass(frozen=True)
class PowerConfig:
    """The planted effect and the precision asked for."""

    profile: str = "circle"
    gain: float = 0.05
    """Planted on-target gain (value-state units) and the gain to detect."""
    nvat_diff: float = 0.03
    nvat: float | None = None
    """A (bias-corrected) nVAT to tell from the no-coupling null: `scenes needed` for it is printed."""
    nvat_gain: float | None = None
    """Planted gain of the two strategies whose nVATs are compared (default: ``gain``)."""
    amplitude: float | None = None
    """Off-target amplitude a (default: the profile's)."""
    noise: float | None = None
    """Prompt-level noise (default: the profile's)."""
    alpha: float = 0.05
    power: float = 0.8
    reps: int = 500
    seed: int = 0
    grid: tuple[int, ...] = DEFAULT_GRID
    samples: tuple[int, ...] = DEFAULT_SAMPLES
    target: str | None = None
    direction: int = 1


@dataclass
class PowerResult:
    """Everything `vat power` prints (also its JSON)."""

    config: dict[str, Any]
    planted: dict[str, float]
    by_scenes: list[dict[str, float]] = field(default_factory=list)
    by_samples: list[dict[str, Any]] = field(default_factory=list)
    needed: dict[str, Any] = field(default_factory=dict)
    shipped: dict[str, Any] = field(default_factory=dict)


def with_overrides(profile: Profile, amplitude: float | None, noise: float | None) -> Profile:
    """A copy of ``profile`` with another off-target amplitude or judge noise."""
    doc = profile.doc
    if amplitude is not None:
        iv = doc.intervention.model_copy(
            update={
                "amplitude": amplitude,
                "offtarget": "circle" if amplitude > 0 else doc.intervention.offtarget,
            }
        )
        doc = doc.model_copy(update={"intervention": iv})
    if noise is not None:
        doc = doc.model_copy(update={"judge": doc.judge.model_copy(update={"noise": noise})})
    return replace(profile, doc=doc)


def population_gain(profile: Profile, shift: np.ndarray, t: int, direction: int, seed: int) -> float:
    """The planted (population) directed gain of a latent shift: simulated on many scenes."""
    rng = np.random.default_rng(seed)
    pre, (post,) = simulate_states(profile, [shift], POP_SCENES, 1, rng, paired_noise=True)
    return float(direction * (post - pre)[0, :, t].mean())


def calibrated_shift(profile: Profile, target: str, direction: int, gain: float, seed: int) -> np.ndarray:
    """The latent shift k whose population gain is ``gain`` (r̂ flattens near the scale's ends)."""
    t = profile.values.index(target)
    g = gain
    for _ in range(2):  # r̂ is nearly linear here: two rescalings reach ~0.1 % of the asked gain
        measured = population_gain(profile, profile.shift(target, direction, 1.0, g), t, direction, seed)
        g *= gain / measured if measured else 1.0
    return profile.shift(target, direction, 1.0, g)


def _gain_sd(delta: np.ndarray, t: int) -> float:
    """Across-replicate sd of the gain estimate (the mean shift of the target)."""
    return float(delta[:, :, t].mean(axis=1).std(ddof=1))


def _nvat(delta: np.ndarray) -> np.ndarray:
    """The nVAT of each replicate: delta (reps, n, V) → (reps,)."""
    return metrics.system_tax(metrics.coupling_batch(delta, 5))["nvat"]


def _detect(effect: float, sd: float, alpha: float) -> float:
    """P(a two-sided (1 − α) CI excludes 0) for a normal estimate with mean ``effect`` and sd ``sd``."""
    if not sd > 0:
        return math.nan
    return _N.cdf(abs(effect) / sd - _N.inv_cdf(1 - alpha / 2))


def scenes_needed(
    ns: Sequence[int], sds: Sequence[float], effect: float, alpha: float, power: float
) -> dict[str, float]:
    """Smallest n with (z_{1−α/2} + z_power)·sd(n) ≤ effect, for sd(n) = c·n^b fitted on (ns, sds)."""
    b, a = np.polyfit(np.log(ns), np.log(sds), 1)
    need = abs(effect) / (_N.inv_cdf(1 - alpha / 2) + _N.inv_cdf(power))
    n = math.exp((math.log(need) - a) / b) if b < 0 else math.inf
    return {
        "scenes": math.ceil(n) if math.isfinite(n) else math.inf,
        "exponent": float(b),
        "sd_at_1": math.exp(a),
    }


def _simulate(
    profile: Profile, shift: np.ndarray, nvat_shift: np.ndarray, n: int, reps: int, seed: int, *path: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shifts (reps, n, V) for the gain, and for strategies A and B (same scenes and pre condition)."""
    rng = np.random.default_rng(seed)
    pre, (post_a, post_b) = simulate_states(profile, [nvat_shift, nvat_shift], n, reps, rng, *path)
    if nvat_shift is shift:
        return post_a - pre, post_a - pre, post_b - pre
    gpre, (gpost,) = simulate_states(profile, [shift], n, reps, rng, *path)
    return gpost - gpre, post_a - pre, post_b - pre


def _precision(
    cfg: PowerConfig, gain_delta: np.ndarray, da: np.ndarray, db: np.ndarray, t: int
) -> dict[str, float]:
    """Gain CI width and power, nVAT mean and sd, and the sd and power of an nVAT difference."""
    z = _N.inv_cdf(1 - cfg.alpha / 2)
    sd_g = _gain_sd(gain_delta, t)
    nv_a, nv_b = _nvat(da), _nvat(db)
    sd_diff = float((nv_a - nv_b).std(ddof=1))
    return {
        "gain_sd": sd_g,
        "gain_ci_width": 2 * z * sd_g,
        "gain_power": _detect(cfg.gain, sd_g, cfg.alpha),
        "nvat_mean": float(nv_a.mean()),
        "nvat_sd": float(nv_a.std(ddof=1)),
        "nvat_diff_sd": sd_diff,
        "nvat_diff_power": _detect(cfg.nvat_diff, sd_diff, cfg.alpha),
    }


def _by_scenes(
    profile: Profile, cfg: PowerConfig, shift: np.ndarray, nvat_shift: np.ndarray, grid: list[int], t: int
) -> list[dict[str, float]]:
    """Precision for each n of the grid (logprob path), on the first n scenes of one simulated set."""
    g, da, db = _simulate(profile, shift, nvat_shift, max(grid), cfg.reps, cfg.seed)
    return [{"scenes": n, **_precision(cfg, g[:, :n], da[:, :n], db[:, :n], t)} for n in grid]


def _by_samples(
    profile: Profile, cfg: PowerConfig, shift: np.ndarray, nvat_shift: np.ndarray, n: int, t: int
) -> list[dict[str, Any]]:
    """Precision at ``n`` scenes by rating path and samples per item (same scenes and noise for each)."""
    paths: list[tuple[str, str, int, float]] = [("logprobs (expected rating)", "expected", 1, 1.0)]
    paths.append(("text, temperature 0", "text", 1, 0.0))
    paths += [(f"text, T=1, {m} sample{'s' if m > 1 else ''}", "text", m, 1.0) for m in cfg.samples]
    rows = []
    for label, rating, m, temp in paths:
        deltas = _simulate(profile, shift, nvat_shift, n, cfg.reps, cfg.seed + 1, rating, m, temp)
        rows.append({"path": label, "samples": m, "temperature": temp, **_precision(cfg, *deltas, t)})
    return rows


def analyse(profile: Profile, cfg: PowerConfig, shipped: dict[str, int]) -> PowerResult:
    """Run the power analysis for ``profile`` (see the module docstring); ``shipped``: split → scenes."""
    profile = with_overrides(profile, cfg.amplitude, cfg.noise)
    target = cfg.target or profile.doc.validation.target
    if target not in profile.values:
        raise VatError(f"target={target!r} is not a value; choose one of: {', '.join(profile.values)}", 2)
    t = profile.values.index(target)
    shift = calibrated_shift(profile, target, cfg.direction, cfg.gain, cfg.seed)
    nvat_gain = cfg.gain if cfg.nvat_gain is None else cfg.nvat_gain
    same = nvat_gain == cfg.gain
    nvat_shift = shift if same else calibrated_shift(profile, target, cfg.direction, nvat_gain, cfg.seed)
    grid = sorted(set(cfg.grid) | {n for n in shipped.values() if n >= 5})
    result = PowerResult(
        config={**cfg.__dict__, "target": target, "nvat_gain": nvat_gain, "grid": grid},
        planted={
            "gain": cfg.gain,
            "amplitude": profile.doc.intervention.amplitude,
            "noise": profile.doc.judge.noise,
            "nvat_gain": nvat_gain,
            "shift": dict(zip(profile.values, shift.round(4).tolist(), strict=True)),
        },
    )
    result.by_scenes = _by_scenes(profile, cfg, shift, nvat_shift, grid, t)
    ns = [r["scenes"] for r in result.by_scenes]
    result.needed = {
        "gain": scenes_needed(ns, [r["gain_sd"] for r in result.by_scenes], cfg.gain, cfg.alpha, cfg.power),
        "nvat_diff": scenes_needed(
            ns, [r["nvat_diff_sd"] for r in result.by_scenes], cfg.nvat_diff, cfg.alpha, cfg.power
        ),
    }
    if cfg.nvat is not None:
        result.needed["nvat_vs_null"] = {
            "nvat": cfg.nvat,
            "scenes": tax_scenes_needed(cfg.nvat, len(profile.values), cfg.alpha, cfg.power),
        }
    mult = _N.inv_cdf(1 - cfg.alpha / 2) + _N.inv_cdf(cfg.power)
    for split, n in shipped.items():
        row = next((r for r in result.by_scenes if r["scenes"] == n), None)
        if row is not None:
            result.shipped[split] = {
                "scenes": n,
                "gain_power": row["gain_power"],
                "nvat_diff_power": row["nvat_diff_power"],
                "min_detectable_gain": mult * row["gain_sd"],
                "min_detectable_nvat_diff": mult * row["nvat_diff_sd"],
            }
    n_samples = shipped.get("test") or 40
    result.by_samples = _by_samples(profile, cfg, shift, nvat_shift, max(n_samples, 5), t)
    return result


def tax_scenes_needed(
    nvat: float | None, n_values: int, alpha: float = 0.05, power: float = 0.8, cap: int = 100_000
) -> int | None:
    """Scenes for the permutation test of nVAT (or rho_rms) to reject the null at ``alpha`` with ``power``.

    The closed-form approximation every report row uses (``scenes_needed``, see
    :func:`runner.metrics.vat.scenes_needed_for_tax`): fast, no simulation. None when ``nvat`` ≤ 0 or no n
    up to ``cap`` suffices.
    """
    return metrics.scenes_needed_for_tax(nvat, n_values, alpha, power, cap)
