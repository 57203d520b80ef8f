"""Metrics of many simulated datasets at once: the vectorised twin of ``runner.metrics.vat``.

The known-answer validation (:mod:`runner.validation.known_answer`) and the instrument study
(:mod:`runner.validation.instrument`) score thousands of simulated datasets; computing each through the
report's code would take hours, so these functions compute the same metrics over a leading axis of
replicates (the tests hold them equal to ``runner.metrics.vat`` on single datasets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runner.execute.providers.sim import Profile, simulate_states
from runner.metrics import vat as metrics

POP_SCENES = 40_000
"""Scenes of the simulated population whose metrics are the planted truth."""
EXPECTED_REPS = 2000
"""Simulated datasets of the shipped size that give a metric's expected value and spread."""
TAX_ALPHA = 0.01
TAX_PERMUTATIONS = 2000


# ---------------------------------------------------------------------------------------------------
# Metrics of many datasets at once
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """What every metric is computed from: target index, direction, value ids, circle positions."""

    values: list[str]
    t: int
    d: int
    circle_index: dict[str, int]

    @property
    def target(self) -> str:
        """The target value id."""
        return self.values[self.t]


def _vat(r: np.ndarray) -> np.ndarray:
    """VAT(u) = sqrt(Σ_{w≠u} R[u, w]²) of a batch of coupling matrices (B, V, V) → (B, V)."""
    off = r - np.eye(r.shape[-1])
    return np.sqrt((off * off).sum(axis=-1))


def derive(m: np.ndarray, r: np.ndarray, fr: Frame, r_ref: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Metrics of a batch from its mean shifts m (B, V) and coupling matrices r (B, V, V)."""
    mt = m[:, fr.t]
    with np.errstate(invalid="ignore", divide="ignore"):
        gnd = m / np.where(np.abs(mt) >= 0.01, np.abs(mt), np.nan)[:, None]
    gnd[:, fr.t] = np.sign(mt)
    off = np.delete(gnd, fr.t, axis=1)
    vat = _vat(r)
    masked = np.where(np.arange(len(fr.values)) == fr.t, -np.inf, np.nan_to_num(vat, nan=-np.inf))
    out = {
        "gain": fr.d * mt,
        "mean_shift": m,
        "gnd": gnd,
        "ot_abs": np.abs(off).mean(axis=1),
        "ot_signed": off.mean(axis=1),
        "coupling": r,
        "vat": vat,
        "nvat": metrics.system_tax(r)["nvat"],
        "gini": np.array([metrics.gini(v) for v in vat]),
        "top_hub": np.argmax(masked, axis=1),
        "circumplex": np.array(
            [metrics.circumplex_consistency(g, fr.values, fr.target, fr.circle_index) for g in gnd]
        ),
    }
    iu = np.triu_indices(len(fr.values), k=1)
    if r_ref is not None and np.any(r_ref[iu] != 0):
        a = r[:, iu[0], iu[1]] - r[:, iu[0], iu[1]].mean(axis=1, keepdims=True)
        b = r_ref[iu] - r_ref[iu].mean()
        out["pattern"] = (a @ b) / np.sqrt((a * a).sum(axis=1) * (b @ b))
    else:
        out["pattern"] = np.full(len(m), np.nan)
    return out


def summarise(delta: np.ndarray, fr: Frame, r_ref: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Metrics of a batch of shift arrays delta (B, scenes, V) (NaN = missing)."""
    return derive(metrics.nanmean(delta, axis=1), metrics.coupling_batch(delta, 5), fr, r_ref)


def planted(profile: Profile, shift: np.ndarray, fr: Frame, seed: int = 0) -> dict[str, np.ndarray]:
    """Population values of every metric: the model simulated on :data:`POP_SCENES` scenes.

    Mean shifts come from a run whose post condition reuses the pre condition's prompt noise (same
    expectation, little Monte Carlo error); the coupling from a run with independent noise, as measured.

    A value with no planted shift (k_v = 0) has exactly zero mean shift and zero coupling by
    construction (its shifts are noise independent of everything else), so those entries are set to 0
    rather than left at their Monte Carlo error.
    """
    rng = np.random.default_rng(seed)
    pre, (post,) = simulate_states(profile, [shift], POP_SCENES, 1, rng, paired_noise=True)
    coupled = shift != 0
    m = (post - pre).mean(axis=1)
    m[:, ~coupled] = 0.0
    pre, (post,) = simulate_states(profile, [shift], POP_SCENES, 1, rng)
    delta = post - pre
    r = metrics.coupling_batch(delta, 5)
    r[:, ~np.outer(coupled, coupled)] = 0.0
    r[:, np.arange(len(shift)), np.arange(len(shift))] = 1.0
    return derive(m, r, fr, r_ref=r[0])  # pattern: 1 when anything is coupled, else undefined


def expected_at(
    profile: Profile,
    shift: np.ndarray,
    fr: Frame,
    n: int,
    r_ref: np.ndarray,
    reps: int = EXPECTED_REPS,
    seed: int = 1,
) -> dict[str, np.ndarray]:
    """Every metric over ``reps`` simulated datasets of ``n`` scenes (the finite-sample distribution)."""
    pre, (post,) = simulate_states(profile, [shift], n, reps, np.random.default_rng(seed))
    return summarise(post - pre, fr, r_ref)


def taxed_values(
    delta: np.ndarray, fr: Frame, alpha: float = TAX_ALPHA, b: int = TAX_PERMUTATIONS, seed: int = 0
) -> tuple[list[str], float, np.ndarray]:
    """Values u ≠ target whose VAT(u) beats the permutation null's (1 − α) quantile of max VAT.

    Returns (taxed value ids by decreasing VAT, the threshold, VAT of every value).
    """
    n, n_values = delta.shape
    idx = np.argsort(np.random.default_rng(seed).random((b, n, n_values)), axis=1)
    null = np.take_along_axis(np.broadcast_to(delta, (b, n, n_values)), idx, axis=1)
    null_vat = _vat(metrics.coupling_batch(null, 5))
    threshold = float(np.quantile(np.delete(null_vat, fr.t, axis=1).max(axis=1), 1 - alpha))
    vat = _vat(metrics.coupling_batch(delta[None], 5))[0]
    order = np.argsort(-vat, kind="stable")
    return [fr.values[u] for u in order if u != fr.t and vat[u] > threshold], threshold, vat
