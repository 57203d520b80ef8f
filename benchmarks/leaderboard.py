"""Leaderboard at full release size: judge release v0.1 with the instant mock judge, then time
`vat bundle`, `vat verify` (offline checks, and replay of 50) and `vat leaderboard build`, and print the
bundle's size. Usage: python benchmarks/leaderboard.py [workdir] (default: a temporary folder; reuse a
workdir to skip the judging on a second run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAT = [sys.executable, "-m", "runner.cli.app"]
ENTRY = """\
model: mock/bench
display_name: Mock (benchmark)
provider: benchmark
licence: none
link: https://example.org/bench
contact: nobody
"""


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([*VAT, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"vat {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start, proc.stdout


def main() -> None:
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="vat-bench-lb-"))
    board = work / "leaderboard"
    if not board.exists():
        shutil.copytree(ROOT / "leaderboard", board, ignore=shutil.ignore_patterns("template"))
    (board / "entries" / "bench__mock.yaml").write_text(ENTRY)
    env = {**os.environ, "VAT_LEADERBOARD_DIR": str(board), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    store = f"store.path={work / 'vat.duckdb'}"
    common = ["entry=bench__mock", "release=v0.1", store]
    t_run, out = timed(["leaderboard", "run", *common, "execution.progress=false", "format=json"], env)
    run = json.loads(out)
    print(f"judge release v0.1 (mock): {t_run:.1f} s, {run['sent']:,} sent ({run['conditions']} conditions)")
    folder, archive = work / "bundle", work / "bundle.tar.gz"
    shutil.rmtree(folder, ignore_errors=True)
    t_bundle, out = timed(["bundle", *common, f"out={folder}", "format=json"], env)
    b = json.loads(out)
    print(
        f"vat bundle (folder): {t_bundle:.1f} s, {b['judgments']:,} judgments, {b['request_keys']:,} keys, {b['bytes'] / 1e6:.2f} MB"
    )
    t_tar, out = timed(["bundle", *common, f"out={archive}", "format=json"], env)
    print(f"vat bundle (.tar.gz): {t_tar:.1f} s, {json.loads(out)['bytes'] / 1e6:.2f} MB")
    t_verify, _ = timed(["verify", str(folder), "format=json"], env)
    print(f"vat verify (offline checks): {t_verify:.1f} s")
    t_replay, out = timed(["verify", str(archive), "replay=50", "format=json"], env)
    print(f"vat verify replay=50: {t_replay:.1f} s, agreement {json.loads(out)['replay']['agreement']:.2f}")
    shutil.copytree(folder, board / "submissions" / "bench__mock__v0.1", dirs_exist_ok=True)
    t_site, _ = timed(["leaderboard", "build", f"out={work / 'site'}", store, "format=json"], env)
    size = sum(p.stat().st_size for p in (work / "site").rglob("*") if p.is_file())
    print(f"vat leaderboard build: {t_site:.1f} s, site {size / 1e6:.2f} MB ({work / 'site' / 'index.html'})")


if __name__ == "__main__":
    main()
