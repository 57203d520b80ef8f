"""``vat validate-metrics``: run each simulated profile, compare planted with measured, print the verdict.

The argument handling and the tables live here; the simulation and the checks are
:mod:`runner.validation.known_answer` and :mod:`runner.validation.bias_checks`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from runner.core import display
from runner.core.errors import VatError
from runner.metrics import vat as metrics
from runner.validation import bias_checks
from runner.validation.instrument import INSTRUMENT_MODES, run_instrument
from runner.validation.known_answer import (
    EXPECTED_REPS,
    RANGE_LEVEL,
    SHIFT_LEVEL,
    ProfileResult,
    fmt_number,
    prepare,
    run_profile,
)

_OWN_KEYS = ("profile", "profiles", "reps", "instrument")


def _split_args(args: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    own, rest = {}, []
    for a in args:
        key, sep, value = a.partition("=")
        if sep and key in _OWN_KEYS:
            own[key] = value
        else:
            rest.append(a)
    return own, rest


def validate_metrics(args: Sequence[str]) -> int:
    """``vat validate-metrics``: planted vs measured for each profile; exit 1 when a check fails."""
    from runner.execute.providers.sim import profile_names

    own, rest = _split_args(args)
    names = [
        p for p in (own.get("profiles") or own.get("profile") or ",".join(profile_names())).split(",") if p
    ]
    try:
        reps = int(own.get("reps", EXPECTED_REPS))
    except ValueError:
        raise VatError(f"reps={own['reps']!r} is not a whole number; e.g. reps=2000", 2) from None
    if reps < 100:
        raise VatError("reps= must be at least 100 simulated datasets for the expected ranges", 2)
    mode = own.get("instrument", "fast")
    if mode not in INSTRUMENT_MODES:
        raise VatError(f"instrument={mode!r} is not a mode; use one of: {', '.join(INSTRUMENT_MODES)}", 2)
    base = ["selection.split=all", "execution.concurrency=32"] + rest
    fmt = "json" if "format=json" in rest else "table"
    explicit = next((o.split("=", 1)[1] for o in rest if o.startswith("store.path=")), None)
    results = []
    with tempfile.TemporaryDirectory(prefix="vat-validate-") as tmp:
        store = explicit or str(Path(tmp) / "validation.duckdb")
        for name in names:
            result = run_profile(name, base, store, reps)
            result.checks += run_instrument(prepare(name, base, store), mode)
            results.append(result)
        # Issue 16: the acquiescence index and the scene–action unit (runner/bias_checks.py).
        results.append(bias_checks.profile_result(store, [(r.profile, r.run_id) for r in results]))
    if fmt == "json":
        display.emit_json(
            metrics.to_json(
                [
                    {**r.__dict__, "checks": [c.__dict__ for c in r.checks], "passed": r.passed}
                    for r in results
                ]
            )
        )
    else:
        print_results(results)
    failed = [r.profile for r in results if not r.passed]
    if failed:
        display.error(f"the metrics did not recover the planted structure of: {', '.join(failed)}")
        return 1
    display.note(
        f"all {sum(len(r.checks) for r in results)} checks of {len(results)} profile(s) recovered the planted structure"
    )
    return 0


def print_results(results: Sequence[ProfileResult]) -> None:
    """Rich tables: planted vs measured per profile, then per-value detail."""
    from rich.table import Table

    for r in results:
        table = Table(
            title=f"{r.model} · {r.strategy} (dose {r.dose:.2f}) · {r.target} {r.direction} · {r.n_scenes} scenes",
            title_justify="left",
        )
        for col in (
            "quantity",
            "planted",
            f"expected at n={r.n_scenes} ({RANGE_LEVEL:.1%} range)",
            "measured [95% CI]",
            "recovered",
        ):
            table.add_column(col)
        for c in r.checks:
            mark = "–" if c.ok is None else ("[green]yes[/green]" if c.ok else "[red]NO[/red]")
            table.add_row(c.quantity, c.planted, c.expected, c.measured, mark)
        display.out.print(table)
        detail = Table(title=f"{r.model} per value", title_justify="left")
        for col in (
            "value",
            "planted shift",
            f"measured shift [simult. {SHIFT_LEVEL:.1%} CI]",
            "planted GND",
            "measured GND",
            "planted VAT",
            "measured VAT",
        ):
            detail.add_column(col, justify="left" if col == "value" else "right")
        for v in r.values:
            name = f"[bold]{v['value']}[/bold] (target)" if v["value"] == r.target else v["value"]
            ok = "" if v["within"] else " [red]✗[/red]"
            detail.add_row(
                name,
                fmt_number(v["planted_shift"]),
                f"{fmt_number(v['measured_shift'])} [{fmt_number(v['ci'][0])}, {fmt_number(v['ci'][1])}]{ok}",
                fmt_number(v["planted_gnd"], 2),
                fmt_number(v["measured_gnd"], 2),
                f"{v['planted_vat']:.3f}",
                f"{v['measured_vat']:.3f}",
            )
        display.out.print(detail)
