"""Shared helpers of the benchmarks: machine notes, medians, timed subprocesses with peak RSS.

Every benchmark prints one line per figure (``name: value``) and returns a dict of its figures, so
``run_all.py`` can print them side by side. Timings are wall-clock medians of repeated runs; each
figure is printed with the load average at the time, because other jobs may share the machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VAT = [sys.executable, "-m", "runner.cli.app"]


def machine() -> str:
    """Cores and load average now (a busy machine makes every figure slower)."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, load average {load}"


def median(xs: Sequence[float]) -> float:
    """Median of repeated measurements."""
    return float(statistics.median(xs))


def env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this one, quiet LiteLLM, plus ``extra``."""
    out = dict(os.environ)
    out.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    out.update(extra)
    return out


def timed_rss(cmd: Sequence[str], extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` in the repository root: wall seconds, the child's own peak RSS (MB, from ``wait4``), CPU, output."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(**(extra_env or {})),
    )
    # Read the pipes in threads so a chatty child never blocks, then reap it with wait4 for its rusage.
    chunks: dict[str, bytes] = {}

    def pump(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    threads = [
        threading.Thread(target=pump, args=(n, s)) for n, s in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    rc = proc.returncode
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {rc}: {chunks.get('err', b'').decode()[-2000:]}")
    return {
        "wall_s": wall,
        "rss_mb": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "stdout": chunks.get("out", b"").decode(),
        "stderr": chunks.get("err", b"").decode(),
    }


def vat(*args: str, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``vat <args>`` as a child process (timed, with its peak RSS)."""
    return timed_rss([*VAT, *args], extra_env)


def last_json(text: str) -> dict[str, Any]:
    """The JSON object a ``format=json`` verb printed on stdout."""
    return json.loads(text[text.index("{") :])


def show(name: str, value: Any, unit: str = "") -> None:
    """Print one figure, with the load average now."""
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    print(f"{name}: {text}{(' ' + unit) if unit else ''}   [{machine()}]", flush=True)
