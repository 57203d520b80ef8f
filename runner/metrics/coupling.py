"""Value states and the coupling between values (METRICS.md §2–§4): ranks, correlations, VAT(u), nVAT, Gini.

Pure numpy; ranks, Spearman and Kendall τ_b are implemented here (scipy is a test-only dependency).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

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


def coupling_batch(delta: np.ndarray, min_scenes: int) -> np.ndarray:
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
    r = coupling_batch(d[None], min_scenes)[0]
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


def system_tax(r: np.ndarray) -> dict[str, np.ndarray]:
    """System tax from a coupling matrix: ``nvat`` = ‖R − I‖_F/√|V|, ``nvat_lit``, ``rho_rms``.

    ``nvat_lit`` = ‖R‖_F/√|V| is the paper's printed formula; ``rho_rms`` = ‖R − I‖_F/√(|V|(|V|−1)).
    Works on a batch (…, V, V) too: each value is then an array over the batch (a 0-d array for one R).
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


def nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """Mean over finite entries along ``axis``; NaN where there are none (without numpy's warning)."""
    ok = np.isfinite(x)
    count = ok.sum(axis=axis)
    total = np.where(ok, x, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _chunks(b: int, per_item: int) -> list[slice]:
    """Slices of range(b) whose temporaries of ``per_item`` elements each stay under the chunk bound."""
    step = max(1, _CHUNK_ELEMENTS // max(1, per_item))
    return [slice(lo, min(b, lo + step)) for lo in range(0, b, step)]
