"""Simulation checks of the bias indices and of the scene–action unit (issue 16), for `vat validate-metrics`.

A small generative judge on numpy arrays, independent of the pipeline, so each check states what was
planted and what came back:

- every scene has 20 actions, an express and a suppress action for each of the 10 values;
- the judge reads action a of scene s with respect to value v as h[s, a, v]: σ·0.6 for the action's own
  value (σ = +1 express, −1 suppress), 0 for other values, plus reading noise; the intervention adds a
  shift δ[s, a, v] = g·[v = target] + τ·(√icc·η[s, v] + √(1 − icc)·ε[s, a, v]), with η and ε Gaussian
  with correlation ρ between two planted values (security, conformity) and 0 elsewhere;
- an answer is r = clip(round(3 + 2·h + bias + noise), 1, 5); "always agree" answers 5 (or 4);
- scene unit: each action judged once (no value named) as r = clip(round(3 + 2·σ·(0.6 + δ_own) + …)),
  e = σ·φ(r), the value state the mean over its two actions; scene–action unit: each action judged
  about every value, e = φ(r).

Run ``python -m runner.validation.bias_checks`` for the measured numbers (noise floors, flag rates, recovery), and
``python -m runner.validation.bias_checks pipeline`` for the noise floors through the pipeline with the sim judge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from runner.metrics import bias
from runner.metrics import vat as metrics

N_VALUES = 10
PLANTED = (5, 6)  # security, conformity in circumplex order (METRICS.md §1)
TARGET = 5
ON_LABEL = 0.6


@dataclass(frozen=True)
class Judge:
    """Answering habits of a simulated judge (rating points)."""

    name: str
    bias: float = 0.0
    noise: float = 0.5
    always_agree: bool = False


NEUTRAL = Judge("neutral")
LENIENT = Judge("lenient (+0.3 points)", bias=0.3)
ALWAYS_AGREE = Judge("always agree", always_agree=True)


def _labels(n_actions: int) -> tuple[np.ndarray, np.ndarray]:
    """Each action's own value and polarity sign: actions 2k and 2k+1 express and suppress value k."""
    a = np.arange(n_actions)
    return a // 2 % N_VALUES, np.where(a % 2 == 0, 1.0, -1.0)


def _shifts(
    rng: np.random.Generator, n_scenes: int, n_actions: int, rho: float, icc: float, tau: float, gain: float
) -> np.ndarray:
    """δ[s, a, v]: target gain plus scene-shared and action-level Gaussian shifts, coupled on PLANTED."""
    cov = np.eye(N_VALUES)
    u, w = PLANTED
    cov[u, w] = cov[w, u] = rho
    chol = np.linalg.cholesky(cov)
    eta = rng.standard_normal((n_scenes, 1, N_VALUES)) @ chol.T
    eps = rng.standard_normal((n_scenes, n_actions, N_VALUES)) @ chol.T
    delta = tau * (math.sqrt(icc) * eta + math.sqrt(1.0 - icc) * eps)
    delta[..., TARGET] += gain
    return delta


def _answer(rng: np.random.Generator, h: np.ndarray, judge: Judge) -> np.ndarray:
    """Likert answers to latent readings ``h`` (canonical scale)."""
    if judge.always_agree:
        return np.where(rng.random(h.shape) < 0.9, 5.0, 4.0)
    r = np.rint(3.0 + 2.0 * h + judge.bias + judge.noise * rng.standard_normal(h.shape))
    return np.clip(r, 1.0, 5.0)


def simulate(
    rng: np.random.Generator,
    judge: Judge,
    n_scenes: int = 41,
    n_actions: int = 20,
    rho: float = 0.0,
    icc: float = 0.0,
    tau: float = 0.3,
    gain: float = 0.2,
) -> dict[str, Any]:
    """One simulated dataset in both units: pre/post states, acquiescence arrays and sample clusters."""
    own, sigma = _labels(n_actions)
    delta = _shifts(rng, n_scenes, n_actions, rho, icc, tau, gain)
    phi = {}
    # Scene–action unit: every action judged about every value; the answer carries its own sign.
    h = np.zeros((n_scenes, n_actions, N_VALUES))
    h[:, np.arange(n_actions), own] = sigma * ON_LABEL
    for cond, hh in (("pre", h), ("post", h + delta)):
        phi[cond] = (_answer(rng, hh, judge) - 3.0) / 2.0
    sa = {c: phi[c].reshape(n_scenes * n_actions, N_VALUES) for c in phi}
    # Scene unit: each action judged once about its own value; e = σ·φ(r), mean of a value's two actions.
    own_shift = delta[:, np.arange(n_actions), own]
    scene_phi, scene = {}, {}
    for cond, shift in (("pre", np.zeros_like(own_shift)), ("post", own_shift)):
        scene_phi[cond] = (_answer(rng, sigma * (ON_LABEL + shift), judge) - 3.0) / 2.0
        e = sigma * scene_phi[cond]
        scene[cond] = np.stack([e[:, own == v].mean(axis=1) for v in range(N_VALUES)], axis=1)
    acq = {
        c: np.stack(
            [
                (
                    scene_phi[c][:, (own == v) & (sigma > 0)].mean(1)
                    + scene_phi[c][:, (own == v) & (sigma < 0)].mean(1)
                )
                / 2
                for v in range(N_VALUES)
            ],
            axis=1,
        )
        for c in scene_phi
    }
    return {
        "scene": scene,
        "scene_action": sa,
        "clusters": np.repeat(np.arange(n_scenes), n_actions),
        "acquiescence": acq,
    }


def _nvat(delta: np.ndarray) -> float:
    r, _ = metrics.coupling_matrix(delta, 5)
    return float(metrics.system_tax(r)["nvat"])


def noise_floor(
    n_scenes: int = 41, n_actions: int = 20, icc: float = 0.0, reps: int = 200, seed: int = 0
) -> dict[str, float]:
    """Mean nVAT with no coupling at all (the null mean) in the scene and the scene–action unit."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {"scene": [], "scene_action": []}
    for _ in range(reps):
        sim = simulate(rng, NEUTRAL, n_scenes, n_actions, rho=0.0, icc=icc)
        for unit in out:
            out[unit].append(_nvat(sim[unit]["post"] - sim[unit]["pre"]))
    return {unit: float(np.mean(x)) for unit, x in out.items()} | {
        f"{unit}_sd": float(np.std(x, ddof=1)) for unit, x in out.items()
    }


def acquiescence_flag_rate(
    judge: Judge, n_scenes: int = 41, reps: int = 100, seed: int = 0
) -> dict[str, float]:
    """Share of simulated datasets whose pre condition is flagged, and the mean index."""
    rng = np.random.default_rng(seed)
    flags, index = [], []
    for i in range(reps):
        res = bias.acquiescence_index(simulate(rng, judge, n_scenes)["acquiescence"]["pre"], b=200, seed=i)
        flags.append(res["biased"])
        index.append(res["index"])
    return {"flag_rate": float(np.mean(flags)), "mean_index": float(np.mean(index))}


def _block_permutation_null(
    x: np.ndarray, y: np.ndarray, clusters: np.ndarray, b: int, rng: np.random.Generator
) -> tuple[float, np.ndarray]:
    """Spearman R of x and y, and ``b`` values of it with y's equal-size clusters permuted whole.

    Permuting rows leaves y's ranks a permutation of themselves, so ranks are computed once and each
    null value is one dot product over an index array.
    """
    n_clusters = int(clusters.max()) + 1
    size = len(clusters) // n_clusters
    rx, ry = (metrics.average_ranks(v) - (len(v) + 1) / 2.0 for v in (x, y))
    scale = math.sqrt(float(rx @ rx) * float(ry @ ry))
    blocks = np.argsort(rng.random((b, n_clusters)), axis=1)
    idx = (blocks[:, :, None] * size + np.arange(size)).reshape(b, -1)
    return float(rx @ ry) / scale, (ry[idx] @ rx) / scale


def coupling_recovery(
    rho: float = 0.5, icc: float = 0.3, n_scenes: int = 41, reps: int = 50, b: int = 200, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Planted coupling ρ on (security, conformity): mean recovered R, and power, per unit.

    Power is the share of datasets where R beats its 95 % cluster-permutation null (whole scenes
    permuted in one column, so within-scene correlation cannot pass for coupling); ``power_row_null``
    the same against a null that permutes single rows (what an unclustered test would do).
    """
    rng = np.random.default_rng(seed)
    u, w = PLANTED
    res: dict[str, dict[str, list[float]]] = {
        k: {"r": [], "hit": [], "hit_rows": []} for k in ("scene", "scene_action")
    }
    for _ in range(reps):
        sim = simulate(rng, NEUTRAL, n_scenes, rho=rho, icc=icc)
        for unit in res:
            delta = sim[unit]["post"] - sim[unit]["pre"]
            clusters = sim["clusters"] if unit == "scene_action" else np.arange(n_scenes)
            obs, null = _block_permutation_null(delta[:, u], delta[:, w], clusters, b, rng)
            res[unit]["r"].append(obs)
            res[unit]["hit"].append(float(obs > np.quantile(null, 0.95)))
            # For contrast: permuting single rows ignores the scenes, as an unclustered null would.
            _, rows = _block_permutation_null(delta[:, u], delta[:, w], np.arange(len(delta)), b, rng)
            res[unit]["hit_rows"].append(float(obs > np.quantile(rows, 0.95)))
    return {
        unit: {
            "mean_r": float(np.mean(x["r"])),
            "power": float(np.mean(x["hit"])),
            "power_row_null": float(np.mean(x["hit_rows"])),
        }
        for unit, x in res.items()
    }


def checks(reps: int = 60, seed: int = 0) -> list[dict[str, Any]]:
    """The bias-control checks: (quantity, planted, expected, measured, ok) dicts."""
    neutral = acquiescence_flag_rate(NEUTRAL, reps=reps, seed=seed)
    agree = acquiescence_flag_rate(ALWAYS_AGREE, reps=reps, seed=seed + 1)
    rec = coupling_recovery(reps=max(20, reps // 3), seed=seed + 2)
    null = coupling_recovery(rho=0.0, reps=max(20, reps // 3), seed=seed + 3)
    return [
        {
            "quantity": "acquiescence flag, neutral judge",
            "planted": "none",
            "expected": "flagged in ≤ 5 % of datasets",
            "measured": f"{neutral['flag_rate']:.0%} (mean index {neutral['mean_index']:+.3f})",
            "ok": neutral["flag_rate"] <= 0.05,
        },
        {
            "quantity": "acquiescence flag, always-agree judge",
            "planted": "answers 5 (90 %) or 4",
            "expected": "flagged in ≥ 95 % of datasets",
            "measured": f"{agree['flag_rate']:.0%} (mean index {agree['mean_index']:+.3f})",
            "ok": agree["flag_rate"] >= 0.95,
        },
        {
            "quantity": "planted coupling over scene–action pairs",
            "planted": "ρ = 0.5 (security, conformity), icc 0.3",
            "expected": "beats its cluster-permutation null in ≥ 90 %",
            "measured": f"{rec['scene_action']['power']:.0%} (mean R {rec['scene_action']['mean_r']:+.2f}; "
            f"scene unit {rec['scene']['power']:.0%}, R {rec['scene']['mean_r']:+.2f})",
            "ok": rec["scene_action"]["power"] >= 0.9,
        },
        {
            "quantity": "no coupling over scene–action pairs",
            "planted": "ρ = 0, icc 0.3",
            "expected": "beats its null in ≤ 15 % (5 % nominal)",
            "measured": f"{null['scene_action']['power']:.0%}",
            "ok": null["scene_action"]["power"] <= 0.15,
        },
    ]


def pipeline_noise_floor(store_path: str, extra: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """The nVAT and its permutation-null mean through the whole pipeline, per unit (``sim/no_offtarget``).

    Runs the profile on the test split with ``elicitation=action`` (scene unit) and ``elicitation=value``
    (scene–action unit) into ``store_path`` and reads the report rows back; ``extra`` are more overrides.
    """
    from runner.execute.providers import sim
    from runner.pipeline import execute_run
    from runner.report import tables as report
    from runner.store.store import open_store
    from runner.validation.known_answer import prepare

    out = {}
    for unit, elicitation in (("scene", "action"), ("scene_action", "value")):
        base = ["selection.split=test", "execution.concurrency=32", f"elicitation={elicitation}", *extra]
        prep = prepare("no_offtarget", base, store_path)
        sim.configure(prep.index)
        compiled, stats = execute_run(prep.cfg, prep.overrides)
        if stats.failed:
            raise RuntimeError(f"{stats.failed} simulated request(s) failed")
        with open_store(store_path, read_only=True) as store:
            rows = report.build_rows(
                store, prep.fr.values, dict(prep.cfg.metrics), circle_index=prep.fr.circle_index
            )
        row = next(r for r in rows if r["run_id"] == compiled.run.run_id)
        out[unit] = {
            "n_scenes": row["n_scenes"],
            "n_samples": row["n_samples"],
            "nvat": row["nvat"],
            "null": (row.get("null") or {}).get("nvat"),
            "hubs": row["hubs"],
        }
    return out


def main(argv: Sequence[str] = ()) -> None:
    """Print the measured numbers quoted in METRICS.md §2; ``pipeline [overrides]`` runs the sim judge too."""
    if argv and argv[0] == "pipeline":
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory(prefix="vat-noise-floor-") as tmp:
            for unit, res in pipeline_noise_floor(str(Path(tmp) / "nf.duckdb"), argv[1:]).items():
                print(f"sim/no_offtarget, {unit} unit: {res}")
        return
    for icc in (0.0, 0.3):
        nf = noise_floor(icc=icc, reps=200)
        print(
            f"null mean nVAT, 41 scenes x 20 actions, icc {icc}: scene unit {nf['scene']:.3f} (sd {nf['scene_sd']:.3f}), "
            f"scene-action unit {nf['scene_action']:.3f} (sd {nf['scene_action_sd']:.3f})"
        )
    for judge in (NEUTRAL, LENIENT, ALWAYS_AGREE):
        fr = acquiescence_flag_rate(judge, reps=200)
        print(
            f"acquiescence, {judge.name}: flagged {fr['flag_rate']:.1%}, mean index {fr['mean_index']:+.3f}"
        )
    for rho in (0.0, 0.5):
        rec = coupling_recovery(rho=rho, reps=100)
        print(f"coupling rho={rho} icc=0.3: {rec}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])


def pipeline_checks(store_path: str, runs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """The acquiescence flag on rows `vat report` builds from the store, for the sim profiles just run.

    ``runs`` are (profile, run_id) pairs. The ``acquiescent`` profile must be flagged in both conditions,
    every other (reading) profile in neither.
    """
    from runner.config import compose
    from runner.report import tables as report
    from runner.spec.load import load_index
    from runner.store.store import open_store

    cfg = compose([])
    values = load_index(cfg.spec_dir, check_lock=False).value_ids
    params = dict(cfg.metrics)
    with open_store(store_path, read_only=True) as store:
        rows = {r["run_id"]: r for r in report.build_rows(store, values, params)}
    out = []
    for profile, run_id in runs:
        row = rows.get(run_id)
        acq = (row["acquiescence"] if row else None) or {}
        flagged = [c for c in ("pre", "post") if (acq.get(c) or {}).get("biased")]
        want = ["pre", "post"] if profile == "acquiescent" else []
        index = ", ".join(f"{c} {_fmt((acq.get(c) or {}).get('index'))}" for c in ("pre", "post"))
        out.append(
            {
                "quantity": f"acquiescence flag, sim/{profile} via the report",
                "planted": "always agree" if profile == "acquiescent" else "reads the items",
                "expected": "flagged pre and post" if want else "not flagged",
                "measured": f"index {index}; flagged: {', '.join(flagged) or 'none'}",
                "ok": row is not None and flagged == want,
            }
        )
    return out


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:+.3f}"


def profile_result(
    store_path: str | None = None, runs: Sequence[tuple[str, str]] = (), reps: int = 60
) -> Any:
    """All bias-control checks as one :class:`runner.validation.known_answer.ProfileResult` for `vat validate-metrics`."""
    from runner.validation.known_answer import Check, ProfileResult

    rows = checks(reps) + (pipeline_checks(store_path, runs) if store_path and runs else [])
    return ProfileResult(
        profile="bias_controls",
        model="simulated judges (runner.validation.bias_checks)",
        strategy="bias controls and the scene–action unit",
        target="–",
        direction="–",
        dose=0.0,
        n_scenes=41,
        run_id="",
        checks=[Check(**c) for c in rows],
    )
