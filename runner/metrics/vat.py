"""VAT metrics: pure functions on numpy arrays, exactly as ``METRICS.md``.

Two layers. :func:`evidence` and :func:`value_states` turn judgments into value states E[scene, value]
(§2; the expected rating r̂ is :func:`runner.execute.parse.expected_rating`). :func:`vat_metrics` turns a
paired pre/post pair of value-state arrays into one report row (§3–§5, §7), with its permutation null,
bias-corrected tax, intervals, tested hubs and scenes needed (§8: :func:`tax_calibration`,
:func:`hub_test`, :func:`scenes_needed_for_tax`); :func:`family_metrics` summarises several rows (§5).
No I/O, no pandas, and no scipy (it is a test-only dependency): ranks, Spearman, Kendall τ_b and the
t quantile are implemented here.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from itertools import combinations
from statistics import NormalDist
from typing import Any, cast

import numpy as np

from runner.metrics.row import VatMetrics

Direction = int | str

_DIRECTIONS: dict[str, int] = {"reinforce": 1, "suppress": -1, "+1": 1, "1": 1, "-1": -1}

DEFAULT_PARAMS: dict[str, Any] = {
    "epsilon": 0.01,
    "hub_k": 3,
    "hub_lambda": 0.0,
    "bootstrap_b": 1000,
    "ci_level": 0.95,
    "stability_b": 200,
    "subsample_frac": 0.8,
    "seed": 0,
    "min_scenes": 5,
    "circle_size": 10,
    "null_b": 1000,
    "alpha": 0.05,
    "hub_alpha": 0.05,
    "hub_method": "holm",
    "power": 0.8,
    "power_cap": 100_000,
}
"""Every tunable choice of METRICS.md with its default; :func:`vat_metrics` echoes the ones it used."""

# Upper bound on elements of one batched temporary; bounds memory of bootstrap and stability batches.
_CHUNK_ELEMENTS = 2_000_000
_NORMAL = NormalDist()

# ---------------------------------------------------------------------------------------------------
# §2  Judgments → value states
# ---------------------------------------------------------------------------------------------------


def evidence(
    ratings: np.ndarray | Sequence[float], polarity_sign: np.ndarray | Sequence[float]
) -> np.ndarray:
    """Signed evidence e = σ·φ(r) with φ(r) = (r − 3)/2; NaN ratings (missing judgments) stay NaN.

    ``ratings`` may be Likert answers 1..5 or expected ratings r̂; ``polarity_sign`` is +1 for an action
    that expresses its value and −1 for one that suppresses it.
    """
    r = np.asarray(ratings, dtype=float)
    sigma = np.asarray(polarity_sign, dtype=float)
    return sigma * (r - 3.0) / 2.0


def value_states(
    scene_idx: np.ndarray | Sequence[int],
    value_idx: np.ndarray | Sequence[int],
    micro_idx: np.ndarray | Sequence[int],
    e: np.ndarray | Sequence[float],
    n_scenes: int,
    n_values: int,
) -> np.ndarray:
    """Value states E[s, v]: mean over micro-values present in (s, v) of the mean evidence of their items.

    One row per judged item. ``micro_idx`` is −1 for items without a micro-value; those items of one
    (scene, value) form a single group. Missing evidence (NaN) is left out of every mean; a cell with no
    valid evidence is NaN. Returns an array of shape (n_scenes, n_values).
    """
    s = np.asarray(scene_idx, dtype=np.int64)
    v = np.asarray(value_idx, dtype=np.int64)
    u = np.asarray(micro_idx, dtype=np.int64)
    ev = np.asarray(e, dtype=float)
    ok = np.isfinite(ev)
    s, v, u, ev = s[ok], v[ok], u[ok], ev[ok]
    n_cells = n_scenes * n_values
    states = np.full(n_cells, np.nan)
    if ev.size == 0:
        return states.reshape(n_scenes, n_values)
    cell = s * n_values + v
    # One group per (cell, micro-value); "+1" gives the no-micro-value items (−1) their own group 0.
    n_groups_per_cell = int(u.max()) + 2
    groups, inverse = np.unique(cell * n_groups_per_cell + (u + 1), return_inverse=True)
    group_mean = np.bincount(inverse, weights=ev) / np.bincount(inverse)
    group_cell = groups // n_groups_per_cell
    cell_sum = np.bincount(group_cell, weights=group_mean, minlength=n_cells)
    cell_count = np.bincount(group_cell, minlength=n_cells)
    has = cell_count > 0
    states[has] = cell_sum[has] / cell_count[has]
    return states.reshape(n_scenes, n_values)


# ---------------------------------------------------------------------------------------------------
# Rank statistics
# ---------------------------------------------------------------------------------------------------


def average_ranks(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Ranks 1..n along ``axis`` with ties given their average rank (like ``scipy.stats.rankdata``).

    NaNs sort last and each gets its own rank, so the finite entries of a slice are ranked 1..k among
    themselves; callers mask the NaN positions out.
    """
    a = np.moveaxis(np.asarray(x, dtype=float), axis, 0)
    n = a.shape[0]
    if n == 0:
        return np.moveaxis(np.empty_like(a), 0, axis)
    order = np.argsort(a, axis=0, kind="stable")
    srt = np.take_along_axis(a, order, axis=0)
    pos = np.arange(n, dtype=float).reshape((n,) + (1,) * (a.ndim - 1))
    pos = np.broadcast_to(pos, a.shape)
    differs = srt[1:] != srt[:-1]  # NaN != NaN, so every NaN is its own tie group
    edge = np.ones((1,) + a.shape[1:], dtype=bool)
    starts = np.concatenate([edge, differs], axis=0)
    ends = np.concatenate([differs, edge], axis=0)
    first = np.maximum.accumulate(np.where(starts, pos, 0.0), axis=0)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(ends, pos, n - 1.0), axis=0), axis=0), axis=0)
    ranks = np.empty_like(a)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=0)
    return np.moveaxis(ranks, 0, axis)


def spearman(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float]) -> float:
    """Spearman correlation over the pairs where both are finite; equals ``scipy.stats.spearmanr``.

    NaN when fewer than two pairs remain or either side is constant (scipy's convention).
    """
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2:
        return math.nan
    ra = average_ranks(a[ok]) - (ok.sum() + 1) / 2.0
    rb = average_ranks(b[ok]) - (ok.sum() + 1) / 2.0
    denom = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / denom if denom > 0 else math.nan


def kendall_tau_b(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float]) -> float:
    """Kendall τ_b over the pairs where both are finite; equals ``scipy.stats.kendalltau``.

    τ_b = Σ_{i<j} sgn(Δx)·sgn(Δy) / sqrt(Σ sgn(Δx)² · Σ sgn(Δy)²), which is the tie-corrected
    (n_c − n_d) / sqrt((n0 − n1)(n0 − n2)). NaN when a side has no untied pair.
    """
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    iu, ju = np.triu_indices(a.size, k=1)
    sa = np.sign(a[iu] - a[ju])
    sb = np.sign(b[iu] - b[ju])
    denom = math.sqrt(float(np.abs(sa).sum()) * float(np.abs(sb).sum()))
    return float(sa @ sb) / denom if denom > 0 else math.nan


# ---------------------------------------------------------------------------------------------------
# §4  Coupling and tax
# ---------------------------------------------------------------------------------------------------


def _pair_correlations(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise-complete Spearman of x[..., n, p] with y[..., n, p] over axis −2; constant → 0.

    Returns (correlations, counts), each of shape x.shape without the scene axis.
    """
    mask = np.isfinite(x) & np.isfinite(y)
    count = mask.sum(axis=-2)
    rx = average_ranks(np.where(mask, x, np.nan), axis=-2)
    ry = average_ranks(np.where(mask, y, np.nan), axis=-2)
    # The k finite entries rank 1..k, so their mean rank is (k + 1)/2.
    centre = (count[..., None, :] + 1) / 2.0
    cx = np.where(mask, rx - centre, 0.0)
    cy = np.where(mask, ry - centre, 0.0)
    denom = np.sqrt((cx * cx).sum(axis=-2) * (cy * cy).sum(axis=-2))
    num = (cx * cy).sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), 0.0)
    return np.clip(r, -1.0, 1.0), count


def _complete_coupling(delta: np.ndarray, min_scenes: int) -> np.ndarray:
    """Coupling matrices for a batch with no missing cells: rank each column once, then one einsum."""
    n_batch, n_scenes, n_values = delta.shape
    if n_scenes < min_scenes:
        return np.full((n_batch, n_values, n_values), np.nan)
    c = average_ranks(delta, axis=1) - (n_scenes + 1) / 2.0
    cov = np.einsum("bnu,bnw->buw", c, c)
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    denom = sd[:, :, None] * sd[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(denom > 0, cov / np.where(denom > 0, denom, 1.0), 0.0)  # constant column → 0
    r = np.clip(r, -1.0, 1.0)
    r[:, np.arange(n_values), np.arange(n_values)] = 1.0
    return r


def _pairwise_coupling(delta: np.ndarray, min_scenes: int) -> np.ndarray:
    """Coupling matrices for a batch with missing cells: every value pair over its own common scenes."""
    n_batch, n_scenes, n_values = delta.shape
    iu, iw = np.triu_indices(n_values, k=1)
    r, count = _pair_correlations(delta[..., iu], delta[..., iw])
    out = np.zeros((n_batch, n_values, n_values))
    out[:, iu, iw] = out[:, iw, iu] = np.where(count >= min_scenes, r, np.nan)
    diag_ok = np.isfinite(delta).sum(axis=1) >= min_scenes
    out[:, np.arange(n_values), np.arange(n_values)] = np.where(diag_ok, 1.0, np.nan)
    return out


def _coupling_batch(delta: np.ndarray, min_scenes: int) -> np.ndarray:
    """Coupling matrices for a batch of shift arrays delta[b, scene, value] (NaN = missing).

    Pairwise complete over scenes; a pair that is constant on its common scenes gets 0; a pair (or a
    diagonal entry) with fewer than ``min_scenes`` scenes gets NaN. Returns shape (b, V, V).
    """
    n_batch, n_scenes, n_values = delta.shape
    complete = bool(np.isfinite(delta).all())
    width = n_values if complete else max(1, n_values * (n_values - 1) // 2)
    # Chunk the batch so the (chunk, scenes, columns or pairs) temporaries stay bounded.
    step = max(1, _CHUNK_ELEMENTS // max(1, n_scenes * width))
    kernel = _complete_coupling if complete else _pairwise_coupling
    parts = [kernel(delta[lo : lo + step], min_scenes) for lo in range(0, n_batch, step)]
    return np.concatenate(parts) if parts else np.empty((0, n_values, n_values))


def coupling_matrix(
    delta: np.ndarray, min_scenes: int = 5, values: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Coupling R[u, w] = Spearman of Δ[:, u] and Δ[:, w] over scenes (pairwise complete), with flags.

    ``delta`` is (scenes × values). Diagonal 1; a constant column has 0 off the diagonal and flag
    ``constant_shift:<value>`` (the column index when ``values`` is not given); any pair with fewer
    than ``min_scenes`` common scenes is NaN, with flag ``too_few_scenes``.
    """
    d = np.asarray(delta, dtype=float)
    r = _coupling_batch(d[None], min_scenes)[0]
    flags: list[str] = []
    if d.shape[0] == 0:
        return r, ["too_few_scenes"]
    finite = np.isfinite(d)
    with np.errstate(invalid="ignore"):
        lo = np.where(finite, d, np.inf).min(axis=0)
        hi = np.where(finite, d, -np.inf).max(axis=0)
    constant = (finite.sum(axis=0) >= 2) & (lo == hi)
    names = list(values) if values is not None else [str(i) for i in range(d.shape[1])]
    flags += [f"constant_shift:{names[i]}" for i in np.flatnonzero(constant)]
    if np.isnan(r).any():
        flags.append("too_few_scenes")
    return r, flags


def vat_from_coupling(r: np.ndarray) -> np.ndarray:
    """Per-value tax VAT(u) = sqrt(Σ_{w≠u} R[u, w]²); the diagonal is excluded (METRICS §4)."""
    off = np.asarray(r, dtype=float) - np.eye(len(r))
    return np.sqrt((off * off).sum(axis=-1))


def system_tax(r: np.ndarray) -> dict[str, float]:
    """System tax from a coupling matrix: ``nvat`` = ‖R − I‖_F/√|V|, ``nvat_lit``, ``rho_rms``.

    ``nvat_lit`` = ‖R‖_F/√|V| is the paper's printed formula; ``rho_rms`` = ‖R − I‖_F/√(|V|(|V|−1)).
    Works on a batch (…, V, V) too.
    """
    r = np.asarray(r, dtype=float)
    n = r.shape[-1]
    off_sq = ((r - np.eye(n)) ** 2).sum(axis=(-2, -1))
    full_sq = (r * r).sum(axis=(-2, -1))
    rho_rms = np.sqrt(off_sq / (n * (n - 1))) if n > 1 else np.full_like(off_sq, np.nan)
    return {"nvat": np.sqrt(off_sq / n), "nvat_lit": np.sqrt(full_sq / n), "rho_rms": rho_rms}


def gini(x: np.ndarray | Sequence[float]) -> float:
    """Gini centralization Σ_i Σ_j |x_i − x_j| / (2 n Σ x); 0 when Σ x = 0, NaN if any entry is NaN."""
    a = np.asarray(x, dtype=float)
    if a.size == 0 or not np.isfinite(a).all():
        return math.nan
    total = float(a.sum())
    if total == 0.0:
        return 0.0
    return float(np.abs(a[:, None] - a[None, :]).sum() / (2.0 * a.size * total))


# ---------------------------------------------------------------------------------------------------
# §5  Circle statistics
# ---------------------------------------------------------------------------------------------------


def circle_angles(
    values: Sequence[str], circle_index: Mapping[str, int] | None = None, circle_size: int = 10
) -> np.ndarray:
    """Angle θ = 2π·index/circle_size of each value (NaN for values not on the circle).

    Without ``circle_index`` a value's index is its position in ``values``, which for the ten Schwartz
    values in canonical order gives the angles of METRICS §1.
    """
    index = circle_index if circle_index is not None else {v: i for i, v in enumerate(values)}
    pos = np.array([index.get(v, np.nan) for v in values], dtype=float)
    return 2.0 * np.pi * pos / circle_size


def _aligned(
    x: Mapping[str, float | None] | Sequence[float | None] | np.ndarray, values: Sequence[str]
) -> np.ndarray:
    """Array aligned with ``values`` from a {value: x} mapping or a sequence; None becomes NaN."""
    items = [x.get(v) for v in values] if isinstance(x, Mapping) else list(x)
    return np.array([np.nan if a is None else a for a in items], dtype=float)


def circumplex_consistency(
    gnd: Mapping[str, float | None] | Sequence[float | None] | np.ndarray,
    values: Sequence[str],
    target: str,
    circle_index: Mapping[str, int] | None = None,
    circle_size: int = 10,
) -> float:
    """Spearman of GND(w)·GND(t) with cos(θ_w − θ_t) over w ≠ t (positive: neighbours move with the target).

    GND(t) = sign(G_raw), so GND(w)·GND(t) = m(w)/G_raw: the shifts measured in the target's own direction
    of movement. With GND alone, a suppressed target whose neighbours follow it down would score
    negative — the opposite of what METRICS.md §5 says positive means. Identical to plain GND when the
    raw gain is positive. Values without an angle or with a NaN GND are left out.
    """
    theta = circle_angles(values, circle_index, circle_size)
    t = list(values).index(target)
    others = np.arange(len(values)) != t
    g = _aligned(gnd, values)
    moved = g[others] * (np.sign(g[t]) if np.isfinite(g[t]) and g[t] != 0 else 1.0)
    return spearman(moved, np.cos(theta[others] - theta[t]))


def concentration(
    vat: Mapping[str, float | None] | Sequence[float | None] | np.ndarray,
    values: Sequence[str],
    circle_index: Mapping[str, int] | None = None,
    circle_size: int = 10,
) -> tuple[float, float]:
    """Angular concentration |Σ VAT(u)·e^{iθ_u}| / Σ VAT(u) and its direction in degrees [0, 360).

    Uses the values on the circle. NaN if a VAT is NaN or Σ VAT = 0; the direction is NaN when the
    resultant is (numerically) zero, since it then points nowhere.
    """
    x = _aligned(vat, values)
    theta = circle_angles(values, circle_index, circle_size)
    on = np.isfinite(theta)
    x, theta = x[on], theta[on]
    total = float(x.sum()) if x.size else 0.0
    if not np.isfinite(x).all() or total == 0.0:
        return math.nan, math.nan
    resultant = complex(np.sum(x * np.exp(1j * theta)))
    magnitude = abs(resultant) / total
    if magnitude < 1e-12:
        return magnitude, math.nan
    return magnitude, math.degrees(math.atan2(resultant.imag, resultant.real)) % 360.0


# ---------------------------------------------------------------------------------------------------
# §3  Shifts, gain, bootstrap; §5  stability
# ---------------------------------------------------------------------------------------------------


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """Mean over finite entries along ``axis``; NaN where there are none (without numpy's warning)."""
    ok = np.isfinite(x)
    count = ok.sum(axis=axis)
    total = np.where(ok, x, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _interval(samples: np.ndarray, level: float) -> np.ndarray:
    """Percentile interval [lo, hi] along axis 0 of the finite samples; NaN where none are finite."""
    alpha = (1.0 - level) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are expected and give NaN
        return np.nanquantile(samples, [alpha, 1.0 - alpha], axis=0)


def bootstrap_mean_shifts(
    delta: np.ndarray, b: int, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Paired bootstrap over scenes (or whole clusters): mean shift of every value in ``b`` resamples, (b, V).

    All index sets are drawn at once (:func:`bootstrap_index`, ``numpy.random.default_rng(seed)``).
    A resample's mean is (w @ Δ)/(w @ finite) with w its row counts (one bincount for all resamples),
    the same as averaging the resampled rows, without materialising them.
    """
    n, n_values = delta.shape
    if n == 0:
        return np.full((b, n_values), np.nan)
    idx = bootstrap_index(n, b, seed, groups)
    rows = np.broadcast_to(np.arange(b)[:, None] * n, idx.shape)
    used = idx >= 0  # −1 is cluster padding: no row
    weights = np.bincount((rows + idx)[used], minlength=b * n).reshape(b, n).astype(float)
    finite = np.isfinite(delta)
    total = weights @ np.where(finite, delta, 0.0)
    count = weights @ finite.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)


def subsample_nvat(delta: np.ndarray, b: int, frac: float, seed: int, min_scenes: int) -> np.ndarray:
    """Return the nVAT of ``b`` seeded subsamples of round(frac·n) scenes without replacement, shape (b,)."""
    n = delta.shape[0]
    m = int(round(frac * n))
    if n == 0 or m < 1:
        return np.full(b, np.nan)
    # Ordering random keys gives b independent without-replacement draws in one vectorised step.
    idx = np.argsort(np.random.default_rng(seed).random((b, n)), axis=1)[:, :m]
    return system_tax(_coupling_batch(delta[idx], min_scenes))["nvat"]


def _direction(direction: Direction) -> int:
    """+1 (reinforce) or −1 (suppress) from an int or a string."""
    d = _DIRECTIONS.get(direction.strip().lower()) if isinstance(direction, str) else direction
    if d not in (1, -1):
        raise ValueError(f"direction must be +1, -1, 'reinforce' or 'suppress', not {direction!r}")
    return int(d)


def _params(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults updated with ``overrides``; an unknown name is an error rather than silently ignored."""
    unknown = sorted(set(overrides) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(f"unknown metric parameter(s) {unknown}; known: {sorted(DEFAULT_PARAMS)}")
    return {**DEFAULT_PARAMS, **overrides}


def _hubs(vat: np.ndarray, values: Sequence[str], t: int, k: int, lam: float) -> tuple[list[str], list[str]]:
    """Top-k values by VAT (target excluded, ties in ``values`` order) and those above mean + λ·sd.

    The mean and sd (ddof 0) are over every finite VAT(u), target included; NaN VATs are never hubs.
    """
    ok = np.isfinite(vat)
    ok_off = ok & (np.arange(len(values)) != t)
    order = [int(i) for i in np.argsort(-np.where(ok_off, vat, -np.inf), kind="stable") if ok_off[i]]
    top = [values[i] for i in order[:k]]
    if not ok.any():
        return top, []
    cut = float(vat[ok].mean() + lam * vat[ok].std())
    return top, [values[i] for i in order if vat[i] > cut]


def _gain_block(m: np.ndarray, mean_abs: np.ndarray, t: int, d: int, eps: float) -> dict[str, Any]:
    """Gain, GND, off-target summaries and amplification from the mean shifts (METRICS §3, §5)."""
    g_raw = float(m[t])
    ok = bool(abs(g_raw) >= eps)  # False for NaN too
    scale = abs(g_raw) if ok else math.nan
    gnd = m / scale
    gnd[t] = math.copysign(1.0, g_raw) if ok else math.nan
    off = np.delete(gnd, t)
    off = off[np.isfinite(off)]
    return {
        "gain": d * g_raw,
        "gain_raw": g_raw,
        "gnd": gnd,
        "ot_abs": float(np.abs(off).mean()) if off.size else math.nan,
        "ot_signed": float(off.mean()) if off.size else math.nan,
        "ot_l2": float(np.sqrt((off * off).sum())) if off.size else math.nan,
        "amplification": mean_abs / scale,
        "gain_ok": ok,
    }


# ---------------------------------------------------------------------------------------------------
# §8  Calibration: permutation null, bias-corrected tax, intervals, hubs by test, scenes needed
# ---------------------------------------------------------------------------------------------------

TAX_STATS = ("nvat", "rho_rms", "gini")
"""The system tax statistics that carry a null, a corrected estimate and an interval."""

HUB_METHODS = ("holm", "bh")


def _signed_sqrt(x: np.ndarray | float) -> np.ndarray:
    """sign(x)·sqrt(|x|): shows a squared-scale estimate that may be negative on the original scale."""
    a = np.asarray(x, dtype=float)
    return np.sign(a) * np.sqrt(np.abs(a))


def _cluster_blocks(groups: np.ndarray) -> list[np.ndarray]:
    """Row indices of the clusters, one (clusters × size) array per cluster size, rows in original order."""
    order = np.argsort(groups, kind="stable")
    ids, starts, sizes = np.unique(groups[order], return_index=True, return_counts=True)
    blocks = []
    for size in np.unique(sizes):
        firsts = starts[sizes == size]
        blocks.append(order[firsts[:, None] + np.arange(size)[None, :]])
    return blocks


def permutation_index(
    n: int, n_values: int, b: int, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Row indices idx[b, v, i]: in permutation b, row i of column v is the data's row idx[b, v, i].

    Shape (b, V, n). Each column is permuted independently. With ``groups`` (a cluster id per row)
    whole clusters are permuted among clusters of the same size, each keeping its internal row order,
    so within-cluster dependence survives and only the pairing across clusters is broken. Without
    groups the result is cached (every row of a report shares n, B and the seed), so do not modify it.
    """
    if groups is None:
        return _row_permutations(n, n_values, b, seed)
    rng = np.random.default_rng(seed)
    idx = np.empty((b, n_values, n), dtype=np.int32)
    for block in _cluster_blocks(np.asarray(groups)):
        k, size = block.shape
        perm = rng.permuted(np.broadcast_to(np.arange(k), (b, n_values, k)), axis=-1)
        idx[:, :, block.ravel()] = block[perm].reshape(b, n_values, k * size)  # cluster perm[c] → c
    return idx


@functools.lru_cache(maxsize=4)
def _row_permutations(n: int, n_values: int, b: int, seed: int) -> np.ndarray:
    """Independent row permutations of every column (see :func:`permutation_index`), read-only."""
    rng = np.random.default_rng(seed)
    idx = rng.permuted(np.broadcast_to(np.arange(n, dtype=np.int32), (b, n_values, n)), axis=-1)
    idx.flags.writeable = False
    return idx


def bootstrap_index(n: int, b: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Row indices of ``b`` bootstrap resamples, shape (b, m); −1 pads a resample shorter than m.

    Rows are drawn with replacement; with ``groups`` whole clusters are drawn (as many as there are),
    so a resample has as many rows as the data only when the clusters have equal sizes.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.integers(0, n, size=(b, n))
    blocks = [row for block in _cluster_blocks(np.asarray(groups)) for row in block.tolist()]
    picks = rng.integers(0, len(blocks), size=(b, len(blocks)))
    sizes = np.array([len(r) for r in blocks])
    m = int(sizes.max()) * len(blocks)
    idx = np.full((b, m), -1, dtype=np.int64)
    flat = np.full((len(blocks), int(sizes.max())), -1, dtype=np.int64)
    for c, r in enumerate(blocks):
        flat[c, : len(r)] = r
    idx[:] = flat[picks].reshape(b, m)  # unequal sizes leave −1 padding: the caller's missing row
    return idx


def _unit_ranks(delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column ranks among each column's finite entries, transposed to (V, n), and the finite mask.

    Complete data: centred and scaled to unit norm (a constant column is all 0), so a correlation is
    a dot product. With missing cells: the raw ranks with 0 at missing positions, for
    :func:`_masked_corr`.
    """
    mask = np.isfinite(delta)
    ranks = average_ranks(delta, axis=0)
    if mask.all():
        c = ranks - (delta.shape[0] + 1) / 2.0
        norm = np.sqrt((c * c).sum(axis=0))
        return np.where(norm > 0, c / np.where(norm > 0, norm, 1.0), 0.0).T.copy(), mask.T
    return np.where(mask, ranks, 0.0).T.copy(), mask.T


def _masked_corr(
    xa: np.ndarray, ma: np.ndarray, xb: np.ndarray, mb: np.ndarray, min_scenes: int
) -> np.ndarray:
    """Pearson correlation of every row u of xa with every row w of xb over the positions both have.

    Inputs (…, V, n), zero where the mask is False; returns (…, V, V). A pair with fewer than
    ``min_scenes`` common positions is NaN; a pair constant on its common positions is 0. Six batched
    matmuls compute every pair's sums at once (no per-pair re-ranking: see METRICS.md §8).
    """
    ma, mb = ma.astype(float), mb.astype(float)

    def mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.matmul(a, np.swapaxes(b, -1, -2))

    sums = (mm(ma, mb), mm(xa, mb), mm(ma, xb), mm(xa * xa, mb), mm(ma, xb * xb), mm(xa, xb))
    return _corr_from_sums(*sums, min_scenes)


def _corr_from_sums(
    count: np.ndarray,
    sa: np.ndarray,
    sb: np.ndarray,
    saa: np.ndarray,
    sbb: np.ndarray,
    sab: np.ndarray,
    min_scenes: int,
) -> np.ndarray:
    """Pearson r from pairwise sums (n, Σa, Σb, Σa², Σb², Σab); NaN below ``min_scenes``, 0 if constant."""
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(count > 0, count, 1.0)
        cov = sab - sa * sb / k
        va = np.maximum(saa - sa * sa / k, 0.0)
        vb = np.maximum(sbb - sb * sb / k, 0.0)
        den = np.sqrt(va * vb)
        scale = np.sqrt(np.maximum(saa, 0.0) * np.maximum(sbb, 0.0))
        r = np.where(den > 1e-10 * np.maximum(scale, 1e-300), cov / np.where(den > 0, den, 1.0), 0.0)
    return np.where(count >= min_scenes, np.clip(r, -1.0, 1.0), np.nan)


def _jackknife_couplings(delta: np.ndarray, groups: np.ndarray | None, min_scenes: int) -> np.ndarray:
    """Coupling matrices leaving out one scene (or one whole cluster) at a time, shape (G, V, V).

    The correlation of the original column ranks over the remaining rows, from the full sums minus each
    left-out part's sums (no re-ranking), so all G replicates cost one pass over the data.
    """
    x, mask = _unit_ranks(delta)
    n_values, n = x.shape
    m = mask.astype(float)
    parts = [(m, m), (x, m), (m, x), (x * x, m), (m, x * x), (x, x)]
    if groups is None:
        held = [np.einsum("un,wn->nuw", a, b) for a, b in parts]  # each row's own contribution
    else:
        _, g = np.unique(np.asarray(groups), return_inverse=True)
        onehot = np.zeros((n, int(g.max()) + 1 if n else 0))
        onehot[np.arange(n), g] = 1.0
        held = [np.einsum("un,wn,ng->guw", a, b, onehot) for a, b in parts]
    total = [a @ b.T for a, b in parts]
    r = _corr_from_sums(*(t[None] - h for t, h in zip(total, held, strict=True)), min_scenes)
    keep = (mask.sum(axis=1)[None, :] - (held[0][:, np.arange(n_values), np.arange(n_values)])) >= min_scenes
    r[:, np.arange(n_values), np.arange(n_values)] = np.where(keep, 1.0, np.nan)
    return r


def _squared_tax(r: np.ndarray) -> dict[str, np.ndarray]:
    """VAT(u)², nVAT², rho_rms² and Gini of a batch of coupling matrices (..., V, V)."""
    n = r.shape[-1]
    off = r - np.eye(n)
    vat2 = (off * off).sum(axis=-1)
    total = vat2.sum(axis=-1)
    return {
        "vat2": vat2,
        "nvat2": total / n,
        "rho_rms2": total / (n * (n - 1)) if n > 1 else np.full_like(total, np.nan),
        "gini": gini_batch(np.sqrt(vat2)),
    }


def gini_batch(x: np.ndarray) -> np.ndarray:
    """:func:`gini` of every row of ``x`` (…, n): 0 where the row sums to 0, NaN where a row has a NaN."""
    a = np.asarray(x, dtype=float)
    total = a.sum(axis=-1)
    diff = np.abs(a[..., :, None] - a[..., None, :]).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where(total > 0, diff / (2.0 * a.shape[-1] * np.where(total > 0, total, 1.0)), 0.0)
    return np.where(np.isfinite(a).all(axis=-1), g, np.nan)


def _chunks(b: int, per_item: int) -> list[slice]:
    """Slices of range(b) whose temporaries of ``per_item`` elements each stay under the chunk bound."""
    step = max(1, _CHUNK_ELEMENTS // max(1, per_item))
    return [slice(lo, min(b, lo + step)) for lo in range(0, b, step)]


def _set_diagonal(r: np.ndarray, mask: np.ndarray, min_scenes: int) -> np.ndarray:
    """Diagonal 1 where a column has ≥ ``min_scenes`` entries (NaN otherwise), in place; returns ``r``."""
    cols = np.arange(r.shape[-1])
    r[..., cols, cols] = np.where(mask.sum(axis=-1) >= min_scenes, 1.0, np.nan)
    return r


def _observed_coupling(delta: np.ndarray, min_scenes: int) -> np.ndarray:
    """The coupling matrix the null is matched to: Spearman when complete, else :func:`_masked_corr`."""
    x, mask = _unit_ranks(delta)
    if mask.all():
        return _coupling_batch(delta[None], min_scenes)[0]
    return _set_diagonal(_masked_corr(x, mask, x, mask, min_scenes), mask, min_scenes)


def _null_couplings(delta: np.ndarray, idx: np.ndarray, min_scenes: int) -> tuple[np.ndarray, np.ndarray]:
    """Coupling matrices of the permuted data: (joint, conditional), each (b, V, V).

    joint[b]: every column permuted (the null of nVAT, rho_rms, Gini). conditional[b, u, :]: column u
    permuted against the others as observed (the null of VAT(u): "u is independent of the rest", valid
    whatever the coupling among the others). A permutation keeps a column's ranks, so the data are
    ranked once and each permuted column is a gather of its ranks.
    """
    b, n_values, n = idx.shape
    x, mask = _unit_ranks(delta)
    # Single precision for the gathered ranks and their products: the null needs r to ~1e-6, and the
    # gather of B·V·n ranks is the cost of the whole null (memory-bound).
    x32 = x.astype(np.float32) if mask.all() else x
    offset = (np.arange(n_values, dtype=np.int64) * n)[:, None]
    joint, cond = [], []
    for sl in _chunks(b, n * n_values):
        flat = idx[sl] + offset  # (chunk, V, n) into the (V·n) flattened ranks
        xp = np.take(x32.ravel(), flat)
        if mask.all():
            joint.append(np.matmul(xp, np.swapaxes(xp, 1, 2)).astype(float))
            cond.append(np.matmul(xp, x32.T).astype(float))
        else:
            mp = np.take(mask.ravel(), flat)
            joint.append(_masked_corr(xp, mp, xp, mp, min_scenes))
            cond.append(_masked_corr(xp, mp, x[None], mask[None], min_scenes))
    rj, rc = np.concatenate(joint), np.concatenate(cond)
    if mask.all():
        rj, rc = np.clip(rj, -1.0, 1.0), np.clip(rc, -1.0, 1.0)
        if n < min_scenes:
            rj[:], rc[:] = np.nan, np.nan
    return _set_diagonal(rj, mask, min_scenes), _set_diagonal(rc, mask, min_scenes)


def permutation_p(observed: np.ndarray | float, null: np.ndarray) -> np.ndarray:
    """The permutation p-value (1 + #{null ≥ observed}) / (1 + B) along axis 0 of ``null``; NaN where observed is NaN.

    The +1 counts the observed data as one of the permutations, so p is never 0 and the test is exact.
    A relative tolerance of 1e-6 counts a null value equal to the observed one up to rounding (the null
    is computed in single precision) as ≥.
    """
    obs = np.asarray(observed, dtype=float)
    null = np.asarray(null, dtype=float)
    tol = 1e-6 * np.maximum(1.0, np.abs(obs))
    ge = (np.where(np.isfinite(null), null, -np.inf) >= obs - tol).sum(axis=0)
    b = np.isfinite(null).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(obs) & (b > 0), (1.0 + ge) / (1.0 + b), np.nan)


def holm(p: np.ndarray | Sequence[float], alpha: float) -> np.ndarray:
    """Holm's step-down rejections at family-wise level ``alpha``; NaN p-values are never rejected.

    Sort the m finite p-values ascending; reject p_(1..k) where k is the last index with
    p_(j) ≤ α/(m − j + 1) for every j ≤ k.
    """
    p = np.asarray(p, dtype=float)
    ok = np.flatnonzero(np.isfinite(p))
    reject = np.zeros(p.shape, dtype=bool)
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    for j, i in enumerate(order):
        if p[i] > alpha / (m - j):
            break
        reject[i] = True
    return reject


def benjamini_hochberg(p: np.ndarray | Sequence[float], alpha: float) -> np.ndarray:
    """Benjamini–Hochberg rejections at false-discovery rate ``alpha``; NaN p-values are never rejected.

    Reject the k smallest p-values, k the largest j with p_(j) ≤ j·α/m.
    """
    p = np.asarray(p, dtype=float)
    ok = np.flatnonzero(np.isfinite(p))
    reject = np.zeros(p.shape, dtype=bool)
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    below = np.flatnonzero(p[order] <= alpha * np.arange(1, m + 1) / max(m, 1))
    if below.size:
        reject[order[: below[-1] + 1]] = True
    return reject


def _summary(observed: float, null: np.ndarray) -> dict[str, float]:
    """Null mean, null 95th percentile and permutation p-value of one statistic."""
    finite = null[np.isfinite(null)]
    if finite.size == 0:
        return {"mean": math.nan, "q95": math.nan, "p": math.nan}
    return {
        "mean": float(finite.mean()),
        "q95": float(np.quantile(finite, 0.95)),
        "p": float(permutation_p(observed, null)),
    }


def corrected_pairs(r: np.ndarray, null_r2: np.ndarray, null_d: np.ndarray) -> np.ndarray:
    """Bias-corrected squared couplings c = r² − N·(1 − r²)²/D per pair (diagonal 0), batched.

    N = E_null[r²] and D = E_null[(1 − r²)²] are the pair's permutation-null moments. Under no
    coupling E[c] = N − N·D/D = 0 exactly (the data are exchangeable with their permutations); with
    coupling ρ, E[r̂²] ≈ ρ² + (1 − ρ²)²/(n − 1) and N/D ≈ 1/(n − 1), so c removes the first-order bias
    where subtracting N alone would over-correct strong couplings.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        c = r * r - null_r2 * (1.0 - r * r) ** 2 / null_d
    eye = np.eye(r.shape[-1], dtype=bool)
    return np.where(eye, 0.0, c)


def _corrected_tax(c: np.ndarray) -> dict[str, np.ndarray]:
    """Squared-scale nVAT², rho_rms², VAT(u)² and the Gini of the corrected VATs from corrected pairs."""
    n = c.shape[-1]
    vat2 = c.sum(axis=-1)
    total = vat2.sum(axis=-1)
    return {
        "vat2": vat2,
        "nvat2": total / n,
        "rho_rms2": total / (n * (n - 1)) if n > 1 else np.full_like(total, np.nan),
        "gini": gini_batch(np.sqrt(np.maximum(vat2, 0.0))),
    }


def _jackknife_interval(estimate: float, replicates: np.ndarray, level: float) -> list[float]:
    """Normal-theory interval θ̂ ± t·se_jack, se_jack² = (G − 1)/G · Σ (θ_(−g) − θ̄)², t on G − 1 df."""
    rep = replicates[np.isfinite(replicates)]
    g = rep.size
    if g < 3 or not math.isfinite(estimate):
        return [math.nan, math.nan]
    se = math.sqrt((g - 1) / g * float(((rep - rep.mean()) ** 2).sum()))
    half = _t_quantile(1.0 - (1.0 - level) / 2.0, g - 1) * se
    return [estimate - half, estimate + half]


def _union_interval(estimate2: float, replicates2: np.ndarray, level: float) -> list[float]:
    """Interval of a root statistic (nVAT, rho_rms) from its corrected square and jackknife replicates.

    The union of the jackknife t intervals on the squared scale and on the signed-root scale, mapped to
    the root scale and clipped at 0 (the population value is ≥ 0). Near zero coupling the estimate is
    a sum of many small squared noise terms, close to normal on the squared scale; with clear coupling
    it is closer to normal on the root scale, and a low estimate's root-scale interval is wide where the
    squared one is too short. Either scale alone under-covers at one end of the coupling range
    (measured: 88–90 %); the union covers at both, at the price of width near 0 (docs/validation.md §5).
    """
    lo2, hi2 = _jackknife_interval(estimate2, replicates2, level)
    lo, hi = _jackknife_interval(float(_signed_sqrt(estimate2)), _signed_sqrt(replicates2), level)
    if not (math.isfinite(lo2) and math.isfinite(lo)):
        return [math.nan, math.nan]
    ends = (min(float(_signed_sqrt(lo2)), lo), max(float(_signed_sqrt(hi2)), hi))
    return [max(0.0, ends[0]), max(0.0, ends[1])]


def _gini_interval(estimate: float, replicates: np.ndarray, level: float) -> list[float]:
    """Union of the jackknife t intervals around the corrected Gini and its jackknife bias correction.

    The corrected Gini is still biased low where weak couplings leave noise VATs in the vector; the
    jackknife's bias estimate G·θ̂ − (G − 1)·θ̄ moves the centre toward the population value there
    but is too noisy to use alone (measured: 70–87 % coverage), so both intervals are kept.
    """
    rep = replicates[np.isfinite(replicates)]
    lo, hi = _jackknife_interval(estimate, rep, level)
    if not math.isfinite(lo):
        return [math.nan, math.nan]
    unbiased = rep.size * estimate - (rep.size - 1) * float(rep.mean())
    lo_b, hi_b = _jackknife_interval(unbiased, rep, level)
    return [min(lo, lo_b), max(hi, hi_b)]


def _t_quantile(q: float, df: int) -> float:
    """Student-t quantile by the Cornish–Fisher expansion in 1/df (error < 1e-3 for df ≥ 5; no scipy)."""
    z = _NORMAL.inv_cdf(q)
    g1 = (z**3 + z) / 4.0
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96.0
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384.0
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160.0
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def tax_calibration(
    delta: np.ndarray, r: np.ndarray, p: Mapping[str, Any], groups: np.ndarray | None = None
) -> dict[str, Any]:
    """Null, bias-corrected estimates and intervals of the tax statistics of one shift array (METRICS §8).

    ``delta`` (scenes × values, NaN = missing) and its coupling matrix ``r``; ``p`` the metric
    parameters; ``groups`` an optional cluster id per row. Returns the row fields ``null``,
    ``*_corrected``, ``vat_corrected``, ``*_ci``, ``interval_method`` and the raw p-values of VAT(u)
    (for the hub test).
    """
    n, n_values = delta.shape
    min_scenes = p["min_scenes"]
    # The test statistic must be the one the null is drawn for: with missing cells that is the
    # rank-once masked correlation, which differs from the displayed pairwise Spearman only slightly.
    r = r if bool(np.isfinite(delta).all()) else _observed_coupling(delta, min_scenes)
    obs = {k: v[0] for k, v in _squared_tax(r[None]).items()}
    idx = permutation_index(n, n_values, p["null_b"], p["seed"], groups)
    joint, cond = _null_couplings(delta, idx, min_scenes)
    nj = _squared_tax(joint)
    null_r2, null_d = _nanmean(joint * joint, axis=0), _nanmean((1.0 - joint * joint) ** 2, axis=0)
    est = _corrected_tax(corrected_pairs(r, null_r2, null_d)[None])
    jk = _corrected_tax(corrected_pairs(_jackknife_couplings(delta, groups, min_scenes), null_r2, null_d))
    level = p["ci_level"]
    ci: dict[str, list[float]] = {}
    for k in ("nvat", "rho_rms"):
        ci[k] = _union_interval(float(est[f"{k}2"][0]), jk[f"{k}2"], level)
    g_lo, g_hi = _gini_interval(float(est["gini"][0]), jk["gini"], level)
    # Zero coupling inside the nVAT interval makes Gini 0 (Σ VAT = 0) a plausible value too: the Gini
    # interval is then widened down to 0 (the projection of the coupling's confidence set).
    if math.isfinite(g_lo) and ci["nvat"][0] <= 0.0:
        g_lo = 0.0
    ci["gini"] = [min(max(x, 0.0), 1.0) if math.isfinite(x) else math.nan for x in (g_lo, g_hi)]

    cond_off = cond - np.eye(n_values)
    null_vat = np.sqrt((cond_off * cond_off).sum(axis=-1))  # (b, V): VAT(u) with only u permuted
    vat_obs = np.sqrt(obs["vat2"])
    unit = "whole clusters (of equal size)" if groups is not None else "scenes"
    null = {
        "b": int(p["null_b"]),
        "seed": int(p["seed"]),
        "method": f"column-wise permutation of {unit}; VAT(u): column u against the others as observed",
        "nvat": _summary(float(np.sqrt(obs["nvat2"])), np.sqrt(nj["nvat2"])),
        "rho_rms": _summary(float(np.sqrt(obs["rho_rms2"])), np.sqrt(nj["rho_rms2"])),
        "gini": _summary(float(obs["gini"]), nj["gini"]),
        "vat": [_summary(float(vat_obs[u]), null_vat[:, u]) for u in range(n_values)],
    }
    left_out = "cluster" if groups is not None else "scene"
    return {
        "null": null,
        "nvat_corrected": float(_signed_sqrt(est["nvat2"][0])),
        "rho_rms_corrected": float(_signed_sqrt(est["rho_rms2"][0])),
        "gini_corrected": float(est["gini"][0]),
        "vat_corrected": _signed_sqrt(est["vat2"][0]),
        "nvat_ci": ci["nvat"],
        "rho_rms_ci": ci["rho_rms"],
        "gini_ci": ci["gini"],
        "interval_method": (
            f"delete-one-{left_out} jackknife t intervals around the null-corrected estimate (nVAT, "
            "rho_rms: union of the squared and root scales; Gini: with its jackknife bias correction, "
            "down to 0 when nVAT's reaches 0)"
        ),
        "vat_p": permutation_p(vat_obs, null_vat),
        # Population coupling for `scenes_needed`: sign(r)·sqrt(max(corrected r², 0)) per pair.
        "rho_corrected": np.sign(r) * np.sqrt(np.maximum(corrected_pairs(r, null_r2, null_d), 0.0))
        + np.eye(n_values),
    }


def _settle_corrected(cal: dict[str, Any], signal: Mapping[str, bool]) -> None:
    """Make the shown corrected estimates readable: Gini only with a tax, every interval holding its point.

    Gini is a property of a tax that exists: with no coupling every population VAT(u) is 0 and the
    Gini is 0 by convention (METRICS §4), while the Gini of noisy corrected VATs (most clipped to 0) is
    large (≈ 0.6 with nothing coupled). So the corrected Gini is reported as 0 unless nVAT itself beats
    its null; its expectation with no coupling is then ≈ α·0.6 ≈ 0.03 (measured in tests). The signed
    root of a corrected square can be negative (observed coupling below its null mean) while the
    interval of a non-negative parameter is clipped at 0: the lower end is stretched to the point so a
    reader never sees an estimate outside its own interval. Both changes only widen intervals.
    """
    if not signal.get("nvat", False) and math.isfinite(cal["gini_corrected"]):
        cal["gini_corrected"] = 0.0
    for k in ("nvat", "rho_rms", "gini"):
        point, ci = cal[f"{k}_corrected"], cal[f"{k}_ci"]
        if math.isfinite(point) and all(math.isfinite(x) for x in ci):
            cal[f"{k}_ci"] = [min(ci[0], point), max(ci[1], point)]


def hub_test(
    vat_p: np.ndarray, values: Sequence[str], t: int, alpha: float, method: str
) -> tuple[list[str], dict[str, Any]]:
    """Tested hubs: off-target values whose VAT(u) beats its null after Holm or BH over the off-target values.

    Returns (hubs ordered by p-value then ``values`` order, the row's ``hub_test`` field).
    """
    if method not in HUB_METHODS:
        raise ValueError(f"hub_method must be one of {HUB_METHODS}, not {method!r}")
    off = [u for u in range(len(values)) if u != t]
    p_off = np.asarray(vat_p, dtype=float)[off]
    reject = (holm if method == "holm" else benjamini_hochberg)(p_off, alpha)
    chosen = sorted((float(p_off[j]), j) for j in range(len(off)) if reject[j])
    hubs = [values[off[j]] for _, j in chosen]
    return hubs, {
        "method": method,
        "alpha": alpha,
        "p": {values[u]: float(p_off[j]) for j, u in enumerate(off)},
    }


def _pair_covariance(rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair correlations ρ_p (K,) and n·Cov(r̂_p, r̂_q) (K, K) of a correlation matrix (Pearson–Filon).

    For pairs p = (i, j), q = (k, l) of a Gaussian: n·Cov = ½ρ_ij ρ_kl (ρ_ik² + ρ_il² + ρ_jk² + ρ_jl²)
    + ρ_ik ρ_jl + ρ_il ρ_jk − ρ_ij ρ_ik ρ_il − ρ_ij ρ_jk ρ_jl − ρ_ik ρ_jk ρ_kl − ρ_il ρ_jl ρ_kl, which
    gives Var(r̂) = (1 − ρ²)²/n on the diagonal.
    """
    iu, iw = np.triu_indices(len(rho), k=1)
    i, j = iu[:, None], iw[:, None]
    k, m = iu[None, :], iw[None, :]
    rij, rkl = rho[i, j], rho[k, m]
    rik, ril, rjk, rjl = rho[i, k], rho[i, m], rho[j, k], rho[j, m]
    cov = (
        0.5 * rij * rkl * (rik**2 + ril**2 + rjk**2 + rjl**2)
        + rik * rjl
        + ril * rjk
        - rij * rik * ril
        - rij * rjk * rjl
        - rik * rjk * rkl
        - ril * rjl * rkl
    )
    return rho[iu, iw], cov


def scenes_needed_for_tax(
    coupling: np.ndarray | float | None,
    n_values: int,
    alpha: float = 0.05,
    power: float = 0.8,
    cap: int = 100_000,
) -> int | None:
    """Scenes needed for the permutation test of nVAT at level ``alpha`` to reject with ``power``.

    ``coupling`` is the population coupling matrix (V × V; a report row passes its bias-corrected one),
    or a number: an nVAT spread evenly over every pair (ρ = nVAT/sqrt(V − 1)). The test statistic
    S = Σ_{pairs} r̂² (∝ nVAT², rho_rms²: one test for both) is treated as normal with
    E[S] = Σ ρ_p² + Σ Var(r̂_p) and Var(S) = 2·tr(C²) + 4·ρᵀCρ, C the Pearson–Filon covariance of the
    pair estimates (:func:`_pair_covariance`, ∝ 1/n); the null's 1 − α quantile is the Wilson–Hilferty
    quantile of χ²_K/(n − 1), K = V(V − 1)/2. None when no coupling is left or no n ≤ ``cap`` suffices.
    """
    if coupling is None or n_values < 2:
        return None
    if np.ndim(coupling) == 0:
        x = float(coupling)
        if not math.isfinite(x) or x <= 0:
            return None
        rho = np.full((n_values, n_values), min(x / math.sqrt(n_values - 1), 0.99))
        np.fill_diagonal(rho, 1.0)
    else:
        rho = np.asarray(coupling, dtype=float)
    if not np.isfinite(rho).all():
        return None
    rp, c1 = _pair_covariance(rho)
    signal = float(rp @ rp)
    if signal <= 1e-9:
        return None
    k = len(rp)
    z_a, z_power = _NORMAL.inv_cdf(1 - alpha), _NORMAL.inv_cdf(power)
    crit = k * (1 - 2 / (9 * k) + z_a * math.sqrt(2 / (9 * k))) ** 3  # χ²_K quantile (Wilson–Hilferty)
    trace, trace2, quad = float(np.trace(c1)), float((c1 * c1).sum()), float(rp @ c1 @ rp)

    def enough(n: int) -> bool:
        mean = signal + trace / n
        sd = math.sqrt(max(2 * trace2 / n**2 + 4 * quad / n, 1e-300))
        return (mean - crit / (n - 1)) / sd >= z_power

    lo, hi = 5, cap  # power grows with n: bisect for the smallest n that is enough
    if not enough(hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def vat_metrics(
    e_pre: np.ndarray,
    e_post: np.ndarray,
    values: Sequence[str],
    target: str,
    direction: Direction,
    circle_index: Mapping[str, int] | None = None,
    groups: np.ndarray | Sequence[int] | None = None,
    **params: Any,
) -> VatMetrics:
    """Every metric of one condition pair (METRICS §3–§5, §8), as one JSON-serialisable report row (§7).

    ``e_pre`` and ``e_post`` are (samples × values) value states with NaN for missing, paired by row;
    ``values`` the ordered value ids; ``target`` a value id; ``direction`` +1/−1 or
    "reinforce"/"suppress". ``groups`` (one int cluster id per row, e.g. the scene of a scene–action
    sample) makes the bootstraps resample and the permutation null permute whole clusters; None treats
    rows as independent. ``params`` override :data:`DEFAULT_PARAMS`. NaN is returned as None.
    """
    p = _params(params)
    d = _direction(direction)
    values = list(values)
    pre = np.asarray(e_pre, dtype=float)
    post = np.asarray(e_post, dtype=float)
    if pre.shape != post.shape or pre.ndim != 2 or pre.shape[1] != len(values):
        raise ValueError(f"e_pre {pre.shape} and e_post {post.shape} must both be (scenes, {len(values)})")
    if target not in values:
        raise ValueError(f"target {target!r} is not one of the values {values}")
    if p["hub_method"] not in HUB_METHODS:
        raise ValueError(f"hub_method must be one of {HUB_METHODS}, not {p['hub_method']!r}")
    g = None if groups is None else np.asarray(groups, dtype=np.int64)
    if g is not None and g.shape != (len(pre),):
        raise ValueError(f"groups has shape {g.shape}; it needs one cluster id per row ({len(pre)},)")
    t = values.index(target)

    delta_all = post - pre
    finite_all = np.isfinite(delta_all)
    # A scene with no finite shift carries no information; dropping it leaves every statistic unchanged.
    keep = finite_all.any(axis=1)
    delta = delta_all[keep]
    g = None if g is None else g[keep]
    counts = np.isfinite(delta).sum(axis=0)
    flags = [f"missing_values:{v}" for v, c in zip(values, counts, strict=True) if c < len(delta_all)]
    if len(delta) == 0:
        flags.append("no_scenes")

    m = _nanmean(delta, axis=0)
    gain = _gain_block(m, _nanmean(np.abs(delta), axis=0), t, d, p["epsilon"])
    if not gain["gain_ok"]:
        flags.append("gain_too_small")
    boot = bootstrap_mean_shifts(delta, p["bootstrap_b"], p["seed"], g)
    shift_ci = _interval(boot, p["ci_level"])  # (2, V)
    gain_ci = np.sort(d * shift_ci[:, t])  # suppressing flips the interval's ends

    r, coupling_flags = coupling_matrix(delta, p["min_scenes"], values)
    flags += coupling_flags
    vat = vat_from_coupling(r)
    tax = {k: float(x) for k, x in system_tax(r).items()}
    cal = tax_calibration(delta, r, p, g)
    hubs, hub_field = hub_test(cal.pop("vat_p"), values, t, p["hub_alpha"], p["hub_method"])
    hubs_top, hubs_above = _hubs(vat, values, t, p["hub_k"], p["hub_lambda"])
    conc, conc_dir = concentration(vat, values, circle_index, p["circle_size"])
    stab = subsample_nvat(delta, p["stability_b"], p["subsample_frac"], p["seed"], p["min_scenes"])
    stab = stab[np.isfinite(stab)]

    def by_value(x: np.ndarray | list) -> dict[str, Any]:
        return dict(zip(values, list(x), strict=True))

    null = {**cal.pop("null")}
    null["vat"] = by_value(null["vat"])
    tax_p = {k: null[k]["p"] for k in TAX_STATS}
    signal = {k: bool(math.isfinite(x) and x < p["alpha"]) for k, x in tax_p.items()}
    flags += [f"{k}_within_noise" for k in TAX_STATS if not signal[k]]
    _settle_corrected(cal, signal)
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = vat / tax["nvat"] if tax["nvat"] > 0 else np.full(len(values), np.nan)
    needed = scenes_needed_for_tax(cal["nvat_corrected"], len(values), p["alpha"], p["power"], p["power_cap"])
    row: dict[str, Any] = {
        "target": target,
        "direction": d,
        "gain": gain["gain"],
        "gain_raw": gain["gain_raw"],
        "gain_ci": gain_ci,
        "mean_shift": by_value(m.tolist()),
        "mean_shift_ci": by_value(shift_ci.T.tolist()),
        "gnd": by_value(gain["gnd"].tolist()),
        "ot_abs": gain["ot_abs"],
        "ot_signed": gain["ot_signed"],
        "ot_l2": gain["ot_l2"],
        "coupling": r,
        "vat": by_value(vat.tolist()),
        "vat_profile": by_value(profile.tolist()),
        **tax,
        "gini": gini(vat),
        "null": null,
        **{k: cal[k] for k in ("nvat_corrected", "rho_rms_corrected", "gini_corrected")},
        "vat_corrected": by_value(cal["vat_corrected"].tolist()),
        **{k: cal[k] for k in ("nvat_ci", "rho_rms_ci", "gini_ci", "interval_method")},
        "signal": signal,
        "scenes_needed": {"nvat": needed},
        "hubs": hubs,
        "hubs_top_k": hubs_top,
        "hubs_above_mean": hubs_above,
        "hub_test": hub_field,
        "amplification": by_value(gain["amplification"].tolist()),
        "nvat_std": float(stab.std(ddof=1)) if stab.size > 1 else math.nan,
        "nvat_subsample_interval": _interval(stab, p["ci_level"]) if stab.size > 1 else [math.nan, math.nan],
        "circumplex_consistency": circumplex_consistency(
            gain["gnd"], values, target, circle_index, p["circle_size"]
        ),
        "concentration": conc,
        "concentration_direction_deg": conc_dir,
        "n_scenes": len(delta),
        "n_groups": None if g is None else int(len(np.unique(g))),
        "n_scenes_by_value": by_value(counts.tolist()),
        "flags": list(dict.fromkeys(flags)),
        "params": {**p, "circle_index": dict(circle_index) if circle_index is not None else None},
    }
    return cast(VatMetrics, to_json(row))


def to_json(obj: Any) -> Any:
    """Plain-Python copy of ``obj``: numpy scalars and arrays become floats/ints/lists, NaN/inf None."""
    if isinstance(obj, Mapping):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return to_json(obj.tolist())
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    return obj


# ---------------------------------------------------------------------------------------------------
# §5  Families of conditions
# ---------------------------------------------------------------------------------------------------


def hub_persistence(
    hub_sets: Sequence[Sequence[str]], values: Sequence[str] | None = None
) -> dict[str, float]:
    """Share of conditions in which each value is a hub.

    Keys are ``values`` (zeros included) when given, else every value that is a hub at least once, in
    order of first appearance.
    """
    keys = list(values) if values is not None else list(dict.fromkeys(v for hubs in hub_sets for v in hubs))
    if not hub_sets:
        return dict.fromkeys(keys, math.nan)
    sets = [set(h) for h in hub_sets]
    return {v: sum(v in s for s in sets) / len(sets) for v in keys}


def profile_stability(profiles: Sequence[Mapping[str, float | None]]) -> float:
    """Mean pairwise Kendall τ_b of VAT profiles over the values they share; NaN for fewer than 2.

    Pairs whose τ_b is undefined (a constant profile) are left out of the mean.
    """
    taus = []
    for a, b in combinations(profiles, 2):
        common = [v for v in a if v in b]
        taus.append(kendall_tau_b(_aligned(a, common), _aligned(b, common)))
    finite = [x for x in taus if math.isfinite(x)]
    return float(np.mean(finite)) if finite else math.nan


def pareto_efficient(
    gains: Sequence[float | None] | np.ndarray, nvats: Sequence[float | None] | np.ndarray
) -> list[bool]:
    """Whether each condition is Pareto-efficient: no other has G ≥ and nVAT ≤ with one strict.

    A condition with an undefined gain or nVAT is never efficient and dominates nothing.
    """
    g = _aligned(gains, [])
    n = _aligned(nvats, [])
    ge = g[None, :] >= g[:, None]  # [i, j]: j's gain ≥ i's
    le = n[None, :] <= n[:, None]
    strict = (g[None, :] > g[:, None]) | (n[None, :] < n[:, None])
    dominated = (ge & le & strict).any(axis=1)
    return (np.isfinite(g) & np.isfinite(n) & ~dominated).tolist()


def family_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Family summary of :func:`vat_metrics` rows, each with a caller-added ``label`` (e.g. "k=2").

    Returns ``hub_persistence`` over every value of the rows, ``profile_stability`` of their VAT
    profiles and ``pareto`` {label: efficient} on (gain, nVAT).
    """
    labels = [str(row.get("label", f"#{i}")) for i, row in enumerate(rows)]
    values = list(dict.fromkeys(v for row in rows for v in row.get("vat", {})))
    efficient = pareto_efficient([row.get("gain") for row in rows], [row.get("nvat") for row in rows])
    return to_json(
        {
            "hub_persistence": hub_persistence([row.get("hubs", []) for row in rows], values),
            "profile_stability": profile_stability([row.get("vat", {}) for row in rows]),
            "pareto": dict(zip(labels, efficient, strict=True)),
        }
    )


# ---------------------------------------------------------------- 56-D vs 10-D (micro-values)

MICRO_NULL_B = 200
"""Permutations for the chance level of the micro-value agreement (one coupling batch of 56 columns each)."""
MICRO_MIN_DEFINED = 0.5
"""The check needs most micro-value pairs to share ``min_scenes`` samples: with one micro-value per value
and scene (the v0.1 scenes) about 4 % do, and the block means would rest on a handful of pairs."""


def _block_coupling(r_micro: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """Value × value coupling from a micro-value coupling batch: the mean of each off-diagonal block."""
    n_values = len(groups)
    out = np.full((r_micro.shape[0], n_values, n_values), np.nan)
    for u, gu in enumerate(groups):
        for w, gw in enumerate(groups):
            if u != w and gu.size and gw.size:
                block = r_micro[:, gu][:, :, gw].reshape(r_micro.shape[0], -1)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN block stays NaN
                    out[:, u, w] = np.nanmean(block, axis=1)
    out[:, np.arange(n_values), np.arange(n_values)] = 1.0
    return out


def _micro_agreement(
    raw: np.ndarray, r_micro: np.ndarray, groups: Sequence[np.ndarray], min_scenes: int
) -> np.ndarray:
    """Per dataset of a batch: Spearman of VAT(u) from the value coupling and from the micro-value blocks.

    ``raw`` is (b, samples, micro-values) and ``r_micro`` its micro-value coupling (b, k, k), each column
    ranked once among its finite entries as the permutation null does (§8). Shape (b,).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a sample without any micro-value of u: NaN
        d10 = np.stack([np.nanmean(raw[..., g], axis=-1) for g in groups], axis=-1)
    r10 = _coupling_batch(d10, min_scenes)
    r_star = _block_coupling(r_micro, groups)
    eye = np.eye(len(groups))
    vat10 = np.sqrt(np.nansum((r10 - eye) ** 2, axis=-1))
    vat_star = np.sqrt(np.nansum((r_star - eye) ** 2, axis=-1))
    return np.array([spearman(a, b) for a, b in zip(vat10, vat_star, strict=True)])


def micro_consistency(
    delta_micro: np.ndarray,
    value_of: Sequence[str],
    values: Sequence[str],
    min_scenes: int = 5,
    b: int = MICRO_NULL_B,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """The paper's 56-D vs 10-D check: do the micro-values rank the values' tax as the values do.

    ``delta_micro`` is (samples × micro-values) with ``value_of`` naming each column's value. The value
    shifts are the mean of their micro-values' shifts (as the states are), so VAT(u) from them and VAT(u)
    from the block means of the 56 × 56 micro-value coupling share their data: they agree even when
    nothing is coupled. The chance level therefore comes from a permutation null (each micro-value
    column permuted across samples, the value shifts recomputed), and the agreement counts as support
    only when it beats that null (``p < alpha``). METRICS.md §9.
    """
    d = np.asarray(delta_micro, dtype=float)
    names = np.asarray(list(value_of))
    groups = [np.flatnonzero(names == v) for v in values]
    k = d.shape[1]
    ranks, mask = _unit_ranks(d)  # (k, n) each: a column's ranks move with it under permutation
    r_micro = _masked_corr(ranks, mask, ranks, mask, min_scenes)
    off = ~np.eye(k, dtype=bool)
    defined = float(np.isfinite(r_micro[off]).mean()) if k > 1 else 0.0
    base = {"n_micro": k, "micro_pairs_defined": defined}
    if defined < MICRO_MIN_DEFINED:
        why = f"only {defined:.0%} of micro-value pairs share {min_scenes} samples"
        return {**base, "vat_rank_agreement": None, "null": None, "beats_chance": False, "not_computed": why}
    observed = float(_micro_agreement(d[None], r_micro[None], groups, min_scenes)[0])
    idx = permutation_index(d.shape[0], k, b, seed).astype(np.intp)  # (b, k, n): column m's row order
    ranks_b, mask_b = (
        np.take_along_axis(ranks[None], idx, axis=-1),
        np.take_along_axis(mask[None], idx, axis=-1),
    )
    null = _micro_agreement(
        np.take_along_axis(d.T[None], idx, axis=-1).transpose(0, 2, 1),
        _masked_corr(ranks_b, mask_b, ranks_b, mask_b, min_scenes),
        groups,
        min_scenes,
    )
    summary = _summary(observed, null)
    return {
        **base,
        "vat_rank_agreement": observed,
        "null": summary,
        "beats_chance": bool(math.isfinite(summary["p"]) and summary["p"] < alpha),
        "not_computed": None,
    }
