"""The metric parameters of METRICS.md, defined once: the ``metrics`` config group and entry files use them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MetricsConf:
    """Every metric parameter of METRICS.md (echoed in each report's ``params``)."""

    epsilon: float = 0.01
    hub_k: int = 3
    hub_lambda: float = 0.0
    bootstrap_b: int = 1000
    ci_level: float = 0.95
    stability_b: int = 200
    subsample_frac: float = 0.8
    seed: int = 0
    min_scenes: int = 5
    rating: str = "auto"
    """auto: expected rating from logprobs when stored, else the parsed digit; or `text` / `expected`."""
