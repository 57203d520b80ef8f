"""Families of conditions (METRICS.md §5): hub persistence, profile stability, Pareto efficiency."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from runner.metrics.coupling import _aligned, kendall_tau_b
from runner.metrics.row import to_json


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
