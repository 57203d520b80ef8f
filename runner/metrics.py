"""VAT metrics: pure functions on numpy arrays, exactly as ``METRICS.md``.

Two layers. :func:`evidence`, :func:`expected_rating` and :func:`value_states` turn judgments into value
states E[scene, value] (§2). :func:`vat_metrics` turns a paired pre/post pair of value-state arrays into
one report row (§3–§5, §7); :func:`family_metrics` summarises several rows (§5). No I/O, no pandas, and
no scipy (it is a test-only dependency): ranks, Spearman and Kendall τ_b are implemented here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

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
}
"""Every tunable choice of METRICS.md with its default; :func:`vat_metrics` echoes the ones it used."""

# Upper bound on elements of one batched temporary; bounds memory of bootstrap and stability batches.
_CHUNK_ELEMENTS = 2_000_000

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


def expected_rating(top_logprobs: Mapping[str, float]) -> float | None:
    """Return the expected rating r̂ = Σ k·p(k) / Σ p(k) over the tokens "1".."5" of top logprobs.

    Logprobs are natural logarithms. Tokens are compared after stripping whitespace, so " 4" and "4"
    both count for 4 (their probabilities add). Returns None when no rating token has probability.
    """
    mass = np.zeros(5)
    for token, logprob in top_logprobs.items():
        key = str(token).strip()
        if key in {"1", "2", "3", "4", "5"} and logprob is not None and not math.isnan(logprob):
            mass[int(key) - 1] += math.exp(logprob)
    total = float(mass.sum())
    if total <= 0.0:
        return None
    return float(np.dot(np.arange(1, 6), mass) / total)


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


def bootstrap_mean_shifts(delta: np.ndarray, b: int, seed: int) -> np.ndarray:
    """Paired bootstrap over scenes: mean shift of every value in each of ``b`` resamples, shape (b, V).

    All index sets are drawn at once with ``numpy.random.default_rng(seed)``; the means come from fancy
    indexing, in chunks only to bound memory.
    """
    n, n_values = delta.shape
    if n == 0:
        return np.full((b, n_values), np.nan)
    idx = np.random.default_rng(seed).integers(0, n, size=(b, n))
    step = max(1, _CHUNK_ELEMENTS // max(1, n * n_values))
    return np.concatenate([_nanmean(delta[idx[lo : lo + step]], axis=1) for lo in range(0, b, step)])


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


def vat_metrics(
    e_pre: np.ndarray,
    e_post: np.ndarray,
    values: Sequence[str],
    target: str,
    direction: Direction,
    circle_index: Mapping[str, int] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Every metric of one condition pair (METRICS §3–§5), as one JSON-serialisable report row (§7).

    ``e_pre`` and ``e_post`` are (scenes × values) value states with NaN for missing, paired by row;
    ``values`` the ordered value ids; ``target`` a value id; ``direction`` +1/−1 or
    "reinforce"/"suppress". ``params`` override :data:`DEFAULT_PARAMS`. NaN is returned as None.
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
    t = values.index(target)

    delta_all = post - pre
    finite_all = np.isfinite(delta_all)
    # A scene with no finite shift carries no information; dropping it leaves every statistic unchanged.
    delta = delta_all[finite_all.any(axis=1)]
    counts = np.isfinite(delta).sum(axis=0)
    flags = [f"missing_values:{v}" for v, c in zip(values, counts, strict=True) if c < len(delta_all)]

    m = _nanmean(delta, axis=0)
    gain = _gain_block(m, _nanmean(np.abs(delta), axis=0), t, d, p["epsilon"])
    if not gain["gain_ok"]:
        flags.append("gain_too_small")
    boot = bootstrap_mean_shifts(delta, p["bootstrap_b"], p["seed"])
    shift_ci = _interval(boot, p["ci_level"])  # (2, V)
    gain_ci = np.sort(d * shift_ci[:, t])  # suppressing flips the interval's ends

    r, coupling_flags = coupling_matrix(delta, p["min_scenes"], values)
    flags += coupling_flags
    vat = vat_from_coupling(r)
    tax = {k: float(x) for k, x in system_tax(r).items()}
    hubs, hubs_above = _hubs(vat, values, t, p["hub_k"], p["hub_lambda"])
    conc, conc_dir = concentration(vat, values, circle_index, p["circle_size"])
    stab = subsample_nvat(delta, p["stability_b"], p["subsample_frac"], p["seed"], p["min_scenes"])
    stab = stab[np.isfinite(stab)]

    def by_value(x: np.ndarray) -> dict[str, Any]:
        return dict(zip(values, x.tolist(), strict=True))

    with np.errstate(invalid="ignore", divide="ignore"):
        profile = vat / tax["nvat"] if tax["nvat"] > 0 else np.full(len(values), np.nan)
    row: dict[str, Any] = {
        "target": target,
        "direction": d,
        "gain": gain["gain"],
        "gain_raw": gain["gain_raw"],
        "gain_ci": gain_ci,
        "mean_shift": by_value(m),
        "mean_shift_ci": by_value(shift_ci.T),
        "gnd": by_value(gain["gnd"]),
        "ot_abs": gain["ot_abs"],
        "ot_signed": gain["ot_signed"],
        "ot_l2": gain["ot_l2"],
        "coupling": r,
        "vat": by_value(vat),
        "vat_profile": by_value(profile),
        **tax,
        "gini": gini(vat),
        "hubs": hubs,
        "hubs_above_mean": hubs_above,
        "amplification": by_value(gain["amplification"]),
        "nvat_std": float(stab.std(ddof=1)) if stab.size > 1 else math.nan,
        "nvat_interval": _interval(stab, p["ci_level"]) if stab.size > 1 else [math.nan, math.nan],
        "circumplex_consistency": circumplex_consistency(
            gain["gnd"], values, target, circle_index, p["circle_size"]
        ),
        "concentration": conc,
        "concentration_direction_deg": conc_dir,
        "n_scenes": len(delta),
        "n_scenes_by_value": by_value(counts),
        "flags": list(dict.fromkeys(flags)),
        "params": {**p, "circle_index": dict(circle_index) if circle_index is not None else None},
    }
    return to_json(row)


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
