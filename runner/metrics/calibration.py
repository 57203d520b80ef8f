"""Calibration (METRICS.md §8) and resampling (§3, §5).

The permutation null, the bias-corrected tax, intervals, hubs by test and the scenes a tax needs; the
paired bootstrap of mean shifts and the nVAT subsamples.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from runner.metrics.coupling import _chunks, average_ranks, coupling_batch, nanmean, system_tax

_NORMAL = NormalDist()


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
    return system_tax(coupling_batch(delta[idx], min_scenes))["nvat"]


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
    count, sa, sb, saa, sbb, sab = (t[None] - h for t, h in zip(total, held, strict=True))
    r = _corr_from_sums(count, sa, sb, saa, sbb, sab, min_scenes)
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


def _set_diagonal(r: np.ndarray, mask: np.ndarray, min_scenes: int) -> np.ndarray:
    """Diagonal 1 where a column has ≥ ``min_scenes`` entries (NaN otherwise), in place; returns ``r``."""
    cols = np.arange(r.shape[-1])
    r[..., cols, cols] = np.where(mask.sum(axis=-1) >= min_scenes, 1.0, np.nan)
    return r


def _observed_coupling(delta: np.ndarray, min_scenes: int) -> np.ndarray:
    """The coupling matrix the null is matched to: Spearman when complete, else :func:`_masked_corr`."""
    x, mask = _unit_ranks(delta)
    if mask.all():
        return coupling_batch(delta[None], min_scenes)[0]
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
    null_r2, null_d = nanmean(joint * joint, axis=0), nanmean((1.0 - joint * joint) ** 2, axis=0)
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
