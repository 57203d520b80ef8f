"""Judge bias indices (METRICS.md §2): acquiescence per condition, and prompt sensitivity across wordings.

Pure numpy on value-state arrays (see :mod:`runner.store.states` for how they are read from a store).

*Acquiescence.* For each (scene, value) the mean φ of the value's express items and the mean φ of its
suppress items are averaged, each polarity weighing the same; the index is the mean over scenes, then
over values, with a percentile bootstrap over scenes. A judge that reads the actions agrees with one
polarity and disagrees with the other, so it sits near 0; one that says "agree" to everything sits
near +1 (φ(5) = 1), one that disagrees with everything near −1.

*Prompt sensitivity.* The same condition pair judged under several wordings (``variant``): each
variant's directed gain and nVAT, their difference from a reference wording with a cluster bootstrap
interval (scenes resampled jointly for all variants, so the differences are paired), and the range
across variants. A difference whose interval covers 0 is within sampling noise; the range is never
below 0 and is biased upward under noise, so read it with its interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from runner.metrics import vat as metrics

ACQUIESCENCE_TOLERANCE = 0.25
"""A condition is flagged as biased when its acquiescence interval lies wholly beyond ±this (φ units,
i.e. half a rating point): small leanings of a reading judge pass, "agree to everything" does not."""

SENSITIVITY_B = 200
"""Bootstrap resamples for the prompt-sensitivity intervals (each needs one coupling matrix per variant)."""


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    ok = np.isfinite(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok.any(axis=axis), np.where(ok, x, 0.0).sum(axis=axis) / ok.sum(axis=axis), np.nan)


def _index(arr: np.ndarray) -> np.ndarray:
    """Mean over values of the mean over scenes (axis −2), for a batch (…, scenes, values)."""
    return _nanmean(_nanmean(arr, axis=-2), axis=-1)


def _bootstrap_index(rows: np.ndarray, b: int, seed: int) -> np.ndarray:
    """The index of ``b`` resamples of the scenes (rows), as counts-weighted means: one matrix product.

    Resample i takes scene s W[i, s] times, so its per-value mean is Σ_s W·a / Σ_s W·[a finite].
    """
    n = len(rows)
    idx = np.random.default_rng(seed).integers(0, n, size=(b, n))
    counts = np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)
    counts = counts.astype(float)  # a float matrix product goes through BLAS; int @ float does not
    ok = np.isfinite(rows)
    num = counts @ np.where(ok, rows, 0.0)
    den = counts @ ok.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _nanmean(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan), axis=-1)


def acquiescence_index(acq: np.ndarray, b: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Acquiescence index of one condition from its (scenes × values) balanced mean-φ array.

    Returns {"index", "ci": [lo, hi], "n_scenes", "biased"}; ``biased`` is True when the interval lies
    wholly beyond ±:data:`ACQUIESCENCE_TOLERANCE`. NaN cells (a value without both polarities in a
    scene) are left out; with no finite cell every number is None.
    """
    a = np.asarray(acq, dtype=float)
    rows = a[np.isfinite(a).any(axis=1)] if a.ndim == 2 else np.zeros((0, 0))
    n = len(rows)
    if n == 0:
        return {"index": None, "ci": [None, None], "n_scenes": 0, "biased": False}
    boot = _bootstrap_index(rows, b, seed)
    alpha = (1.0 - level) / 2.0
    lo, hi = (float(x) for x in np.quantile(boot, [alpha, 1.0 - alpha]))
    biased = lo > ACQUIESCENCE_TOLERANCE or hi < -ACQUIESCENCE_TOLERANCE
    return {"index": float(_index(rows)), "ci": [lo, hi], "n_scenes": n, "biased": bool(biased)}


def acquiescence(
    by_condition: Mapping[str, np.ndarray], b: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, dict[str, Any]]:
    """The ``acquiescence`` report field: {condition: :func:`acquiescence_index`} for pre and post."""
    return {cond: acquiescence_index(arr, b, seed, level) for cond, arr in by_condition.items()}


def _gain_nvat(delta: np.ndarray, t: int, d: int, min_scenes: int) -> tuple[float, float]:
    """Directed gain d·mean Δ[:, t] and nVAT of one shift array."""
    col = delta[:, t]
    col = col[np.isfinite(col)]
    gain = d * float(col.mean()) if col.size else math.nan
    r, _ = metrics.coupling_matrix(delta, min_scenes)
    return gain, float(metrics.system_tax(r)["nvat"])


def _cluster_rows(clusters: np.ndarray) -> list[np.ndarray]:
    """Row indices of each cluster, in cluster-id order."""
    order = np.argsort(clusters, kind="stable")
    _, starts = np.unique(clusters[order], return_index=True)
    return np.split(order, starts[1:])


def prompt_sensitivity(
    deltas: Mapping[str, np.ndarray],
    clusters: Sequence[int] | np.ndarray,
    target: int,
    direction: int,
    reference: str | None = None,
    b: int = SENSITIVITY_B,
    seed: int = 0,
    level: float = 0.95,
    min_scenes: int = 5,
) -> dict[str, Any] | None:
    """How far gain and nVAT move across wordings of the same condition pair; None for < 2 variants.

    ``deltas`` maps a variant id to its (samples × values) shift array, all aligned on the same
    samples; ``clusters`` gives each sample's scene (resampled whole). ``reference`` defaults to
    "base" when present, else the first variant in sorted order.
    """
    names = sorted(deltas)
    if len(names) < 2:
        return None
    ref = reference if reference in deltas else ("base" if "base" in deltas else names[0])
    cl = np.asarray(clusters)
    point = {v: _gain_nvat(np.asarray(deltas[v], dtype=float), target, direction, min_scenes) for v in names}
    groups = _cluster_rows(cl)
    rng = np.random.default_rng(seed)
    boot = np.full((b, len(names), 2), np.nan)
    for i in range(b):
        rows = np.concatenate([groups[j] for j in rng.integers(0, len(groups), size=len(groups))])
        for k, v in enumerate(names):
            boot[i, k] = _gain_nvat(np.asarray(deltas[v], dtype=float)[rows], target, direction, min_scenes)
    alpha = (1.0 - level) / 2.0

    def interval(x: np.ndarray) -> list[float | None]:
        x = x[np.isfinite(x)]
        return [float(q) for q in np.quantile(x, [alpha, 1.0 - alpha])] if x.size else [None, None]

    out: dict[str, Any] = {
        "variants": names,
        "reference": ref,
        "b": b,
        "seed": seed,
        "method": "cluster bootstrap",
    }
    ri = names.index(ref)
    for j, stat in enumerate(("gain", "nvat")):
        values = np.array([point[v][j] for v in names])
        out[stat] = dict(zip(names, values.tolist(), strict=True))
        out[f"{stat}_diff"] = {v: float(values[k] - values[ri]) for k, v in enumerate(names) if k != ri}
        out[f"{stat}_diff_ci"] = {
            v: interval(boot[:, k, j] - boot[:, ri, j]) for k, v in enumerate(names) if k != ri
        }
        out[f"{stat}_range"] = float(np.nanmax(values) - np.nanmin(values))
        out[f"{stat}_range_ci"] = interval(
            np.nanmax(boot[:, :, j], axis=1) - np.nanmin(boot[:, :, j], axis=1)
        )
    out["sensitive"] = {
        stat: any(ci[0] is not None and (ci[0] > 0 or ci[1] < 0) for ci in out[f"{stat}_diff_ci"].values())
        for stat in ("gain", "nvat")
    }
    return metrics.to_json(out)
