"""The instrument study: bias, interval coverage and hub error rates over repeated simulated datasets.

Each statistic the report shows is validated here before users see it (``vat validate-metrics
instrument=fast|full``): its bias where nothing is coupled, the coverage of its interval, and the
error rates of the hub calls, at the shipped sizes (METRICS.md §8, docs/validation.md).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runner.execute.providers.sim import Profile, simulate_states
from runner.metrics import vat as metrics
from runner.validation.known_answer import Check, Prepared
from runner.validation.population import Frame, planted

# ---------------------------------------------------------------------------------------------------
# The instrument: bias, interval coverage, hub error rates over repeated simulated datasets
# ---------------------------------------------------------------------------------------------------

INSTRUMENT_STATS = ("nvat", "rho_rms", "gini")


@dataclass
class InstrumentResult:
    """How the calibrated tax statistics behave over ``reps`` simulated datasets of ``n`` scenes."""

    profile: str
    target: str
    n: int
    reps: int
    b: int
    planted: dict[str, float]
    coverage: dict[str, float]
    """Share of datasets whose interval covers the planted (population) value."""
    bias: dict[str, float]
    """Mean of the estimate minus the planted value: plug-in and corrected, on the row's scale."""
    rejection: dict[str, float]
    """Share of datasets with p < alpha per statistic (the size where nothing is coupled)."""
    false_hub: float
    """Share of datasets reporting a hub that is not planted-coupled to anything."""
    hub_found: dict[str, float] = field(default_factory=dict)
    """Per planted hub: share of datasets that report it."""


def _planted_tax(profile: Profile, shift: np.ndarray, fr: Frame) -> dict[str, float]:
    """Population nVAT, rho_rms and Gini of the model (coupling on :data:`POP_SCENES` scenes)."""
    pop = planted(profile, shift, fr)
    n_values = len(fr.values)
    nvat = float(pop["nvat"][0])
    return {"nvat": nvat, "rho_rms": nvat / math.sqrt(n_values - 1), "gini": float(pop["gini"][0])}


def instrument_study(
    profile: Profile,
    fr: Frame,
    shift: np.ndarray,
    n: int,
    reps: int,
    b: int = 500,
    seed: int = 0,
    alpha: float = 0.05,
) -> InstrumentResult:
    """Run :func:`runner.metrics.vat.vat_metrics` on ``reps`` simulated datasets of ``n`` scenes and score it.

    Each dataset is a fresh draw of the profile's generative model (:func:`simulate_states`), so the
    shares are honest frequencies: coverage of the planted value by ``*_ci``, bias of the plug-in and
    of the ``*_corrected`` estimates, the rejection rate of each null test and the hub error rates.
    """
    truth = _planted_tax(profile, shift, fr)
    pre, (post,) = simulate_states(profile, [shift], n, reps, np.random.default_rng(seed + 7919 * n))
    coupled = {fr.values[u] for u in range(len(shift)) if u != fr.t and shift[u] != 0}
    hubs = sorted(v for v, h in profile.doc.intervention.coupling.items() if h != 0 and v != fr.target)
    cover = {k: 0 for k in INSTRUMENT_STATS}
    plug: dict[str, list[float]] = {k: [] for k in INSTRUMENT_STATS}
    corr: dict[str, list[float]] = {k: [] for k in INSTRUMENT_STATS}
    reject = {k: 0 for k in INSTRUMENT_STATS}
    false_hub = 0
    found: Counter[str] = Counter()
    for i in range(reps):
        row: dict[str, Any] = dict(  # read by computed keys (``<stat>_ci``), so as a plain mapping
            metrics.vat_metrics(
                pre[i], post[i], fr.values, fr.target, fr.d, seed=i,
                null_b=b, bootstrap_b=100, stability_b=20, alpha=alpha,
            )
        )  # fmt: skip
        for k in INSTRUMENT_STATS:
            lo, hi = row[f"{k}_ci"]
            cover[k] += int(lo is not None and lo - 1e-12 <= truth[k] <= hi + 1e-12)
            plug[k].append(row[k])
            corr[k].append(row[f"{k}_corrected"])
            reject[k] += int(bool(row["signal"][k]))
        false_hub += int(any(h not in coupled for h in row["hubs"]))
        found.update(h for h in row["hubs"] if h in hubs)
    bias = {}
    for k in INSTRUMENT_STATS:
        bias[f"{k}_plugin"] = float(np.mean(plug[k]) - truth[k])
        bias[f"{k}_corrected"] = float(np.mean(corr[k]) - truth[k])
    for k in ("nvat", "rho_rms"):  # the corrected estimate is unbiased on the squared scale
        sq = np.sign(corr[k]) * np.square(corr[k])
        bias[f"{k}_corrected_squared"] = float(np.mean(sq) - truth[k] ** 2)
        bias[f"{k}_corrected_squared_se"] = float(np.std(sq, ddof=1) / math.sqrt(reps))
    return InstrumentResult(
        profile=profile.id,
        target=fr.target,
        n=n,
        reps=reps,
        b=b,
        planted=truth,
        coverage={k: cover[k] / reps for k in INSTRUMENT_STATS},
        bias=bias,
        rejection={k: reject[k] / reps for k in INSTRUMENT_STATS},
        false_hub=false_hub / reps,
        hub_found={h: found[h] / reps for h in hubs},
    )


INSTRUMENT_MODES = {"off": (0, 0), "fast": (60, 200), "full": (400, 500)}
"""instrument= mode → (simulated datasets per size, permutations per dataset)."""
COVERAGE_TARGET = 0.90
CHECK_ERROR = 0.01
"""Each instrument check fails by chance with probability ≤ 1 % when the property holds exactly."""


def _binomial_floor(reps: int, rate: float, error: float = CHECK_ERROR) -> int:
    """The smallest count k with P(Binomial(reps, rate) < k) ≤ ``error`` (exact, by summation)."""
    total, k = 0.0, 0
    while k <= reps:
        term = math.comb(reps, k) * rate**k * (1 - rate) ** (reps - k)
        if total + term > error:
            return k
        total += term
        k += 1
    return reps


def _binomial_ceiling(reps: int, rate: float, error: float = CHECK_ERROR) -> int:
    """The largest count k with P(Binomial(reps, rate) > k) ≤ ``error``."""
    return reps - _binomial_floor(reps, 1 - rate, error)


def instrument_checks(
    res: InstrumentResult, hub_alpha: float = 0.05, hub_power: float | None = None
) -> list[Check]:
    """Checks of one :func:`instrument_study`: coverage, unbiasedness under no coupling, hub error rates.

    Each passes unless the simulated frequencies reject the stated property at the 1 % level:
    coverage ≥ 90 % per statistic; with nothing coupled, the corrected nVAT² has mean 0 (|z| < 2.58)
    and hubs appear in at most ``hub_alpha`` of datasets (Holm's family-wise rate); with
    ``hub_power`` (given at the all-scenes size: the profile's ``validation.hub_power``, 0.8 by default
    where the measured power of a scene-coupled hub is ~95 %) a planted hub must be found in at least
    that share of datasets; otherwise its detection rate is shown, not checked.
    """
    tag = f"n={res.n}, {res.reps} datasets"
    floor = _binomial_floor(res.reps, COVERAGE_TARGET)
    checks = [
        Check(
            f"{k} interval coverage ({tag})",
            f"{res.planted[k]:.3f}",
            f"≥ {COVERAGE_TARGET:.0%} (≥ {floor}/{res.reps})",
            f"{res.coverage[k]:.1%}",
            round(res.coverage[k] * res.reps) >= floor,
        )
        for k in INSTRUMENT_STATS
    ]
    nothing = res.planted["nvat"] == 0
    if nothing:
        z = res.bias["nvat_corrected_squared"] / max(res.bias["nvat_corrected_squared_se"], 1e-300)
        checks.append(
            Check(
                f"corrected nVAT² unbiased, no coupling ({tag})",
                "0",
                "|z| < 2.58",
                f"{res.bias['nvat_corrected_squared']:+.4f} (z {z:+.2f}; plug-in nVAT "
                f"{res.bias['nvat_plugin']:+.3f})",
                abs(z) < 2.58,
            )
        )
    ceiling = _binomial_ceiling(res.reps, hub_alpha)
    checks.append(
        Check(
            f"false hubs ({tag})",
            "none" if nothing else "none outside the planted ones",
            f"≤ {hub_alpha:.0%} (≤ {ceiling}/{res.reps})",
            f"{res.false_hub:.1%}",
            round(res.false_hub * res.reps) <= ceiling,
        )
    )
    for hub, share in res.hub_found.items():
        checks.append(
            Check(
                f"planted hub {hub} found ({tag})",
                hub,
                f"≥ {hub_power:.0%}" if hub_power is not None else "shown (power grows with n)",
                f"{share:.1%}",
                share >= hub_power if hub_power is not None else None,
            )
        )
    return checks


def run_instrument(prep: Prepared, mode: str, seed: int = 0) -> list[Check]:
    """The instrument checks of one profile at the shipped sizes (test split and all scenes)."""
    reps, b = INSTRUMENT_MODES[mode]
    if reps == 0:
        return []
    sizes = sorted({len(prep.index.scenes_in("test")), len(prep.index.scenes)} - {0})
    checks: list[Check] = []
    for n in sizes:
        res = instrument_study(prep.profile, prep.fr, prep.shift, n, reps, b, seed)
        power = prep.profile.doc.validation.hub_power if n == max(sizes) else None
        checks += instrument_checks(res, hub_power=power)
    return checks
