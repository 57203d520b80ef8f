"""Noise floor and planted-coupling recovery of the two sample units, on the simulated judge.

Scene unit (elicitation=action: one question per action, 41 scenes) against the scene-action unit
(elicitation=value: every action asked about every value, 41 × 20 = 820 pairs), with the vectorised
twins of the provider (runner.execute.providers.sim.simulate_states / simulate_pair_states). Prints, per
profile: mean nVAT and its 95th percentile over simulated datasets, the gain, and how often the
planted hub has the largest VAT(u) (VAT(u) = mean |coupling| of u with the other values, as a plain
proxy: h1 owns the hub rule). Usage:

    python benchmarks/elicitation_noise_floor.py [reps]
"""

from __future__ import annotations

import sys

import numpy as np

from runner.execute.providers import sim
from runner.metrics import vat as metrics
from runner.spec.load import load_index

N_SCENES = 41


def _summary(delta: np.ndarray, target: int, hub: int | None) -> dict[str, float]:
    """nVAT mean and 95th percentile, mean gain and hub hit rate over datasets delta[rep, sample, value]."""
    r = metrics.coupling_batch(delta, 5)
    nvat = metrics.system_tax(r)["nvat"]
    off = np.abs(r - np.eye(r.shape[-1]))
    vat_u = off.sum(axis=-1) / (r.shape[-1] - 1)
    vat_u[:, target] = -1  # the target is not a candidate hub
    hits = float(np.mean(vat_u.argmax(axis=1) == hub)) if hub is not None else float("nan")
    return {
        "nvat": float(nvat.mean()),
        "nvat_p95": float(np.quantile(nvat, 0.95)),
        "gain": float(delta[..., target].mean()),
        "hub_top": hits,
    }


def main(reps: int = 400) -> None:
    """Print the table (one line per profile × unit)."""
    index = load_index("spec", check_lock=False)
    judge = sim.SimJudge(index)
    runs = (
        ("no_offtarget", "hedonism", 0.8, None),  # nothing coupled: the noise floor
        ("hub_security", "achievement", 0.8, "security"),
        ("pair_hub", "achievement", 0.8, "security"),
        ("circle", "security", 4 / 6, None),
    )
    print(f"{'profile':14} {'unit':13} {'samples':>7} {'nVAT':>6} {'p95':>6} {'gain':>6} {'hub top':>7}")
    for name, target, dose, hub in runs:
        p = judge.profile(name)
        k = p.shift(target, 1, dose)
        t = p.values.index(target)
        h = p.values.index(hub) if hub else None
        pre, (post,) = sim.simulate_states(p, [k], N_SCENES, reps, np.random.default_rng(1))
        ppre, (ppost,), _ = sim.simulate_pair_states(p, [k], N_SCENES, reps, np.random.default_rng(2))
        for unit, d in (("scene", post - pre), ("scene_action", ppost - ppre)):
            s = _summary(d, t, h)
            hub_txt = f"{s['hub_top']:.2f}" if hub else "-"
            print(
                f"{name:14} {unit:13} {d.shape[1]:>7} {s['nvat']:6.3f} {s['nvat_p95']:6.3f} "
                f"{s['gain']:6.3f} {hub_txt:>7}"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
