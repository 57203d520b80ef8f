"""The typed report row: one condition pair's metrics, identity and provenance (METRICS.md §7).

A row travels as JSON (the results document, bundles, the site's data), so it stays a dict; these
``TypedDict`` classes give its keys and value types to the type checker. ``runner/results.schema.json``
describes the same row for readers outside Python: ``tests/metrics/test_row.py`` holds the three in
step (schema properties, these keys, and what :func:`runner.metrics.vat.vat_metrics` and the report
really produce), so a key added in one place and not the others fails the suite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypedDict

import numpy as np

Interval = list[float | None]  # [low, high]; None where undefined
ByValue = dict[str, float | None]  # value id → number


class VatMetrics(TypedDict):
    """What :func:`runner.metrics.vat.vat_metrics` returns for one pre/post pair of value states."""

    target: str
    direction: int | str  # vat_metrics: +1 reinforce, −1 suppress; a report row: the word
    gain: float | None
    gain_raw: float | None
    gain_ci: Interval
    mean_shift: ByValue
    mean_shift_ci: dict[str, Interval]
    gnd: ByValue
    ot_abs: float | None
    ot_signed: float | None
    ot_l2: float | None
    coupling: list[list[float | None]]
    vat: ByValue
    vat_profile: ByValue
    nvat: float | None
    nvat_lit: float | None
    rho_rms: float | None
    gini: float | None
    null: dict[str, Any] | None
    nvat_corrected: float | None
    rho_rms_corrected: float | None
    gini_corrected: float | None
    vat_corrected: ByValue
    nvat_ci: Interval
    rho_rms_ci: Interval
    gini_ci: Interval
    interval_method: str | None
    signal: dict[str, bool | None]
    scenes_needed: dict[str, float | None]
    hubs: list[str]
    hubs_top_k: list[str]
    hubs_above_mean: list[str]
    hub_test: dict[str, Any] | None
    amplification: ByValue
    nvat_std: float | None
    nvat_subsample_interval: Interval
    circumplex_consistency: float | None
    concentration: float | None
    concentration_direction_deg: float | None
    n_scenes: int
    n_groups: int | None
    n_scenes_by_value: dict[str, int]
    flags: list[str]
    params: dict[str, Any]


class ReportRow(VatMetrics):
    """A row of ``vat report``: the metrics plus who was judged, how, on what, and how well it parsed."""

    run_id: str
    model: str
    display_name: str
    strategy: str
    family: str
    k: int | None
    step: int | None
    label: str
    split: str
    scenes: list[str]
    n_samples: int | None
    unit: str
    unit_params: dict[str, Any]
    variants: list[str]
    variant: str | None
    elicitation: dict[str, Any] | None
    coverage: dict[str, int]
    coverage_by_value: dict[str, dict[str, int]]
    n_items_paired: int | None
    rating_source: str
    rating_fallback_share: float | None
    rating_rule: dict[str, Any] | None
    acquiescence: dict[str, Any] | None
    prompt_sensitivity: dict[str, Any] | None
    micro_consistency: dict[str, Any] | None
    caveat: str | None


def row_keys(kind: type) -> list[str]:
    """The keys of a row ``TypedDict``, its bases' included, in declaration order."""
    return list(kind.__annotations__)


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
