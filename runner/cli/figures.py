"""``vat figures``: print-size paper figures of the stored runs (runner.report.figures draws them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from runner.core.errors import VatError
from runner.report.figures import require_matplotlib


def figures_command(overrides: list[str]) -> int:
    """``vat figures``: every figure of the stored runs to ``out=`` (default results/figures); exit 1 if none."""
    from runner.cli.verbs import _compose, _report_arguments
    from runner.core import display
    from runner.pipeline import load_spec as _load
    from runner.report.tables import build_rows, families, filter_rows
    from runner.store.store import open_store

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
    from runner.report.figures import paper

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
