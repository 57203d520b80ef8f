"""`vat figures`: the paper's figures as print-size PDF and PNG (matplotlib, the optional ``figures`` extra).

``vat figures store.path=<store> out=<folder>`` reads the report's rows (the same filters as ``vat report``:
``target=``, ``strategy=``, ``direction=``, ``report.model=``) and writes, per condition pair, the
coupling heatmap, the VAT(u) radar with nVAT and the GND bars with intervals, and per family of
conditions (shot counts, checkpoints) the gain–nVAT trajectory with its Pareto marks, and per condition
run on several models the cross-model panel (runner.report.figures.paper), and per model and strategy run on
several targets the target × value panel (runner.report.figures.panels). The web SVGs of ``vat report report.plots=true`` need no extra (runner.plots).
"""

from __future__ import annotations

from typing import Any

from runner.core.errors import VatError

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
