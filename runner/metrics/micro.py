"""The 56-D vs 10-D check (METRICS.md §9): value profiles from micro-values against those from values."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from runner.metrics.calibration import _masked_corr, _summary, _unit_ranks, permutation_index
from runner.metrics.coupling import coupling_batch, spearman

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
    r10 = coupling_batch(d10, min_scenes)
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
