"""The instrument tables of docs/validation.md: coverage, bias and error rates of the calibrated tax.

For every shipped simulated-judge profile (conf/sim/*.yaml; no_offtarget is the no-coupling one) and
the shipped sizes (41 test scenes, 132 scenes), ``--reps`` datasets are drawn from the generative model
and scored by ``runner.validation.instrument.instrument_study`` (each through ``runner.metrics.vat.vat_metrics`` with
``--b`` permutations). Prints one Markdown table row per profile and size.

    python benchmarks/instrument.py --reps 400 --b 500
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.execute.providers import sim  # noqa: E402
from runner.validation import instrument
from runner.validation import known_answer as validation  # noqa: E402

HEADER = (
    "| profile | scenes | planted nVAT / Gini | coverage nVAT · rho_rms · Gini | mean nVAT plug-in → corrected "
    "| corrected nVAT² − planted (± se) | p < 0.05: nVAT · Gini | false hub | planted hub found |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def row(res: instrument.InstrumentResult) -> str:
    """One Markdown table row of an instrument study."""
    b, pl, cov, rej = res.bias, res.planted, res.coverage, res.rejection
    hub = ", ".join(f"{h} {s:.0%}" for h, s in res.hub_found.items()) or "–"
    return (
        f"| {res.profile} | {res.n} | {pl['nvat']:.3f} / {pl['gini']:.2f} "
        f"| {cov['nvat']:.1%} · {cov['rho_rms']:.1%} · {cov['gini']:.1%} "
        f"| {pl['nvat'] + b['nvat_plugin']:.3f} → {pl['nvat'] + b['nvat_corrected']:.3f} "
        f"| {b['nvat_corrected_squared']:+.4f} (± {b['nvat_corrected_squared_se']:.4f}) "
        f"| {rej['nvat']:.1%} · {rej['gini']:.1%} | {res.false_hub:.1%} | {hub} |"
    )


def main() -> None:
    """Print the tables (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--b", type=int, default=500)
    ap.add_argument("--profiles", default=",".join(sim.profile_names()))
    a = ap.parse_args()
    print(f"{a.reps} simulated datasets per row, B = {a.b} permutations each\n")
    print(HEADER, flush=True)
    started = time.perf_counter()
    for name in a.profiles.split(","):
        prep = validation.prepare(name, ["selection.split=all"], "unused.duckdb")
        for n in sorted({len(prep.index.scenes_in("test")), len(prep.index.scenes)}):
            res = instrument.instrument_study(prep.profile, prep.fr, prep.shift, n, a.reps, a.b)
            print(row(res), flush=True)
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
