"""``vat power``: ``key=value`` arguments → :mod:`runner.validation.power`'s simulation → tables or JSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from runner.core import display
from runner.core.errors import VatError
from runner.metrics import vat as metrics
from runner.validation.power import PowerConfig, PowerResult, analyse

_KEYS = {
    "profile": str,
    "gain": float,
    "nvat_diff": float,
    "nvat": float,
    "nvat_gain": float,
    "amplitude": float,
    "noise": float,
    "alpha": float,
    "power": float,
    "reps": int,
    "seed": int,
    "target": str,
    "direction": str,
    "grid": str,
    "samples": str,
    "spec_dir": str,
    "format": str,
}


def parse_args(args: Sequence[str]) -> dict[str, Any]:
    """``key=value`` arguments of `vat power` → typed values; unknown keys and bad values fail clearly."""
    out: dict[str, Any] = {}
    for arg in args:
        key, sep, raw = arg.partition("=")
        if not sep or key not in _KEYS:
            raise VatError(
                f"unknown argument {arg!r} for `vat power`; use key=value with key in: {', '.join(_KEYS)}", 2
            )
        try:
            out[key] = _KEYS[key](raw)
        except ValueError:
            raise VatError(
                f"{key}={raw!r} is not a valid {_KEYS[key].__name__}; e.g. {key}=0.05", 2
            ) from None
    for key in ("grid", "samples"):
        if key in out:
            try:
                out[key] = tuple(int(x) for x in out[key].strip("[]() ").split(",") if x.strip())
            except ValueError:
                raise VatError(
                    f"{key}= takes whole numbers separated by commas, e.g. {key}=10,20,40", 2
                ) from None
    if "direction" in out:
        if out["direction"] not in ("reinforce", "suppress"):
            raise VatError("direction= must be reinforce or suppress", 2)
        out["direction"] = 1 if out["direction"] == "reinforce" else -1
    for key, lo, hi in (("alpha", 0.0, 0.5), ("power", 0.5, 1.0)):
        if key in out and not lo < out[key] < hi:
            raise VatError(f"{key}={out[key]} must lie strictly between {lo} and {hi}", 2)
    if out.get("reps", 300) < 20:
        raise VatError("reps= must be at least 20 for a usable standard deviation", 2)
    if any(n < 5 for n in out.get("grid", ())):
        raise VatError("grid= sizes must be at least 5 scenes (coupling needs 5)", 2)
    return out


def power_command(args: Sequence[str]) -> int:
    """``vat power``: print the power tables and the scenes needed (see the module docstring)."""
    from runner.execute.providers.sim import load_profile
    from runner.spec.load import load_index

    opts = parse_args(args)
    fmt = opts.pop("format", "table")
    index = load_index(opts.pop("spec_dir", "spec"), check_lock=False)
    circle = {v.id: v.circle_index for v in index.values}
    profile = load_profile(opts.get("profile", "circle"), index.value_ids, circle)
    cfg = PowerConfig(**opts)
    shipped = {"test": len(index.scenes_in("test")), "all": len(index.scenes)}
    with display.err.status("simulating replicate datasets…"):
        result = analyse(profile, cfg, shipped)
    if fmt == "json":
        display.emit_json(metrics.to_json(result.__dict__))
    else:
        print_result(result)
    return 0


def _pct(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{100 * x:.0f} %"


def print_result(res: PowerResult) -> None:
    """Rich tables: precision by scenes, by samples per item, and the scenes needed."""
    from rich.table import Table

    out, c = display.out, res.config
    direction = "reinforce" if c["direction"] > 0 else "suppress"
    title = (
        f"Power by number of scenes · {c['profile']} profile · target {c['target']} {direction} · "
        f"planted gain {c['gain']} · off-target amplitude {res.planted['amplitude']} · noise {res.planted['noise']} · "
        f"{c['reps']} replicates"
    )
    t1 = Table(title=title, title_justify="left")
    for col in (
        "scenes",
        "gain 95% CI width",
        f"power: gain {c['gain']}",
        f"nVAT (gain {c['nvat_gain']:.2f})",
        "nVAT sd",
        "sd of nVAT difference",
        f"power: ΔnVAT {c['nvat_diff']}",
    ):
        t1.add_column(col, justify="right")
    marks = {v["scenes"]: k for k, v in res.shipped.items()}
    for r in res.by_scenes:
        mark = f" ({marks[r['scenes']]} split)" if r["scenes"] in marks else ""
        t1.add_row(
            f"{r['scenes']}{mark}",
            f"{r['gain_ci_width']:.3f}",
            _pct(r["gain_power"]),
            f"{r['nvat_mean']:.3f}",
            f"{r['nvat_sd']:.3f}",
            f"{r['nvat_diff_sd']:.3f}",
            _pct(r["nvat_diff_power"]),
        )
    out.print(t1)
    n = res.shipped.get("test", {}).get("scenes", "")
    t2 = Table(title=f"Repeated samples per item at {n} scenes (test split)", title_justify="left")
    for col in (
        "rating path",
        "gain 95% CI width",
        f"power: gain {c['gain']}",
        "nVAT sd",
        "sd of nVAT difference",
    ):
        t2.add_column(col, justify="right" if col != "rating path" else "left")
    for r in res.by_samples:
        t2.add_row(
            r["path"],
            f"{r['gain_ci_width']:.3f}",
            _pct(r["gain_power"]),
            f"{r['nvat_sd']:.3f}",
            f"{r['nvat_diff_sd']:.3f}",
        )
    out.print(t2)
    conf, pw = 100 * (1 - c["alpha"]), 100 * c["power"]
    for key, label, effect in (
        ("gain", "a gain of", c["gain"]),
        ("nvat_diff", "an nVAT difference of", c["nvat_diff"]),
    ):
        need = res.needed[key]
        out.print(
            f"scenes needed to detect {label} {effect} at {conf:.0f} % confidence with {pw:.0f} % power: "
            f"[bold]{need['scenes']}[/bold] (sd ∝ n^{need['exponent']:.2f})"
        )
    if "nvat_vs_null" in res.needed:
        need = res.needed["nvat_vs_null"]
        out.print(
            f"scenes needed to tell an nVAT of {need['nvat']} from no coupling (permutation test, "
            f"α = {c['alpha']}, {pw:.0f} % power): [bold]{need['scenes'] or 'more than 100000'}[/bold]"
        )
    for split, s in res.shipped.items():
        out.print(
            f"shipped {split} split, {s['scenes']} scenes: power {_pct(s['gain_power'])} for gain {c['gain']}, "
            f"{_pct(s['nvat_diff_power'])} for ΔnVAT {c['nvat_diff']}; smallest detectable gain "
            f"{s['min_detectable_gain']:.3f}, nVAT difference {s['min_detectable_nvat_diff']:.3f}"
        )
    display.note(
        "normal approximation on simulated standard deviations; the answer scales with the judge's noise "
        "(noise=…): calibrate it on a pilot run of your judge"
    )
