"""VAT metrics, exactly as ``METRICS.md``: :func:`vat_metrics` turns paired value states into one report row.

The functions live by job, and this module is their front door (``from runner.metrics import vat``):

- :mod:`runner.metrics.coupling`: judgments → value states (§2), ranks and correlations, the coupling
  matrix, VAT(u), nVAT, Gini, the circle (§3–§4);
- :mod:`runner.metrics.calibration`: the permutation null, the bias-corrected tax and its intervals,
  hubs by test, the scenes a tax needs (§8), the bootstrap and subsample resampling (§3, §5);
- :mod:`runner.metrics.family`: several conditions of one family (§5);
- :mod:`runner.metrics.micro`: the 56-D vs 10-D check (§9).

:func:`vat_metrics` runs them on one condition pair, with its gain block and hubs. No I/O, no pandas,
and no scipy (a test-only dependency): ranks, Spearman, Kendall τ_b and the t quantile are ours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from runner.metrics.calibration import (
    HUB_METHODS,
    TAX_STATS,
    _interval,
    _settle_corrected,
    bootstrap_mean_shifts,
    hub_test,
    scenes_needed_for_tax,
    subsample_nvat,
    tax_calibration,
)
from runner.metrics.coupling import (  # noqa: F401  (the front door: re-exported for callers)
    average_ranks,
    circle_angles,
    circumplex_consistency,
    concentration,
    coupling_batch,
    coupling_matrix,
    evidence,
    gini,
    kendall_tau_b,
    nanmean,
    spearman,
    system_tax,
    value_states,
    vat_from_coupling,
)
from runner.metrics.family import family_metrics, hub_persistence, pareto_efficient, profile_stability  # noqa: F401
from runner.metrics.micro import MICRO_MIN_DEFINED, MICRO_NULL_B, micro_consistency  # noqa: F401
from runner.metrics.row import VatMetrics, to_json

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

    m = nanmean(delta, axis=0)
    gain = _gain_block(m, nanmean(np.abs(delta), axis=0), t, d, p["epsilon"])
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
