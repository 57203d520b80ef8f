"""`vat figures`: the paper's figures as print-size PDF and PNG (matplotlib, the optional ``figures`` extra).

``vat figures store.path=<store> out=<folder>`` reads the report's rows (the same filters as ``vat report``:
``target=``, ``strategy=``, ``direction=``, ``report.model=``) and writes, per condition pair, the
coupling heatmap, the VAT(u) radar with nVAT and the GND bars with intervals, and per family of
conditions (shot counts, checkpoints) the gain–nVAT trajectory with its Pareto marks, and per condition
run on several models the cross-model panel (runner.figures.paper). The web SVGs of ``vat report report.plots=true`` need no extra (runner.plots).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.errors import VatError

MISSING = (
    "vat figures needs matplotlib, which is not installed here: run `pip install 'vat-bench[figures]'` "
    "(or `make install-figures` in a checkout)"
)


def require_matplotlib() -> Any:
    """Import matplotlib with a headless backend, or stop with one line naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise VatError(MISSING, 2) from None
    matplotlib.use("Agg")  # files only: no display, the same pixels everywhere
    return matplotlib


def figures_command(overrides: list[str]) -> int:
    """``vat figures``: every figure of the stored runs to ``out=`` (default results/figures); exit 1 if none."""
    from runner import display
    from runner.commands import _compose, _load, _report_arguments
    from runner.report import build_rows, families, filter_rows
    from runner.store import open_store

    out = Path("results/figures")
    rest = []
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key == "out":
            out = Path(value)
        else:
            rest.append(o)
    rest, raw_filters, _ = _report_arguments(rest)
    filters: dict[str, Sequence[str]] = dict(raw_filters)
    require_matplotlib()
    from runner.figures import paper

    cfg = _compose(rest)
    index = _load(cfg)
    if cfg.report.model:
        filters["model"] = [cfg.report.model]
    params = dict(cfg.metrics)
    circle = {v.id: v.circle_index for v in index.values}
    with open_store(cfg.store.path, read_only=True) as store:
        rows = filter_rows(
            build_rows(store, index.value_ids, params, model=cfg.report.model, circle_index=circle), filters
        )
    if not rows:
        raise VatError(f"no report rows in {cfg.store.path} for these filters; run `vat run` first", 1)
    names = {v.id: v.name for v in index.values}
    written = paper.write_all(rows, families(rows), index.value_ids, names, out)
    if cfg.format.value == "json":
        display.emit_json({"out": str(out), "files": [str(p) for p in written]})
    else:
        display.note(f"wrote {len(written)} files ({len(written) // 2} figures, PDF and PNG) to {out}/")
    return 0
