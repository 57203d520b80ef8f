"""Throughput over HTTP: bare LiteLLM, ``vat run`` with 1 and 2 workers, inspect_ai and lm-eval, side by side.

One local OpenAI-compatible server (benchmarks/openai_server.py: aiohttp, TCP_NODELAY, backlog 1024,
keep-alive, its own process) answers every tool. The prompts are VAT's: the plan ``vat run`` would
send (``selection.split=all``, ``model.samples`` chosen to reach ``--requests`` distinct request keys),
compiled once and written to a JSONL file that the peers read. Every tool runs in a fresh process at
the same concurrency, end to end (interpreter start, imports, config, sending, writing results), and
the table gives wall seconds and requests per second of the whole process:

- ``bare``: benchmarks/bare_loop.py, one process of ``litellm.acompletion`` and nothing else;
- ``vat1`` / ``vat2``: ``vat run execution.workers=1|2 execution.concurrency=C`` into a fresh store;
- ``inspect``: ``inspect eval`` of benchmarks/peers/inspect_task.py (``--max-connections C``);
- ``lmeval``: ``lm-eval run`` of benchmarks/peers/lmeval_task (``local-chat-completions``,
  ``num_concurrent=C``).

The peers live in their own venvs (``make bench-peers`` creates them from benchmarks/peers/*.lock);
a missing one is skipped with a note. The server counts what it received: every tool must send
exactly the plan's prompts (same count, same order-independent fingerprint), else the run fails. Its
clock also gives each tool's send-phase rate (first to last request) the same way for all.
Targets (issue 11): ``vat1`` >= 0.85 x bare, ``vat2`` >= 1.7 x bare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, env, last_json, machine, median, show, timed_rss  # noqa: E402

TOOLS = ("bare", "vat1", "vat2", "inspect", "lmeval")
PEERS = ROOT / ".venv-peers"
MODEL = "openai/gpt-4o-mini"  # in LiteLLM's price map: an unknown name costs ~1.6 ms more per call
KEY = "sk-bench"  # a fake key: the local server ignores it


def plan_overrides(requests: int, api_base: str, logprobs: bool) -> list[str]:
    """The plan of ``requests`` distinct keys: scenes of all splits x 20 actions x pre/post x samples."""
    samples = max(1, -(-requests // 5280))  # 132 scenes x 20 actions x 2 conditions = 5,280 per sample
    scenes = max(1, min(132, -(-requests // (40 * samples))))
    return [
        "model=openai_gpt4o_mini",
        f"model.name={MODEL}",
        f"model.api_base={api_base}",
        f"model.logprobs={str(logprobs).lower()}",
        "selection.split=all",
        f"selection.max_scenes={scenes}",
        f"model.samples={samples}",
    ]


def dump_prompts(overrides: list[str], path: Path) -> tuple[int, str, dict[str, Any]]:
    """Compile the plan as ``vat run`` does; write one JSONL line per distinct request; its fingerprint."""
    from benchmarks.openai_server import prompt_digest
    from runner.compile.plan import compile_plan, gen_params
    from runner.config import compose
    from runner.spec.load import load_index

    cfg = compose(overrides)
    plan = compile_plan(load_index(cfg.spec_dir), cfg)
    seen: set[str] = set()
    total = 0
    with path.open("w", encoding="utf-8") as f:
        for r in plan.requests:
            if r.key in seen:
                continue
            seen.add(r.key)
            messages = [dict(m) for m in r.messages]
            total += int.from_bytes(prompt_digest(messages)[:8], "little")
            f.write(json.dumps({"id": r.key, "messages": messages}, ensure_ascii=False) + "\n")
    return len(seen), f"{total & ((1 << 64) - 1):016x}", gen_params(cfg.model)


def start_server() -> tuple[subprocess.Popen[str], str]:
    """benchmarks/openai_server.py in its own process; its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "benchmarks/openai_server.py", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=env(),
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"benchmarks/openai_server.py did not start (printed {line!r})")
    return proc, f"http://127.0.0.1:{line.split()[1]}"


def server_call(base: str, path: str, post: bool = False) -> dict[str, Any]:
    """GET (or POST) one of the server's bookkeeping routes."""
    req = urllib.request.Request(
        f"{base}{path}", data=b"" if post else None, method="POST" if post else "GET"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def peer_python(name: str) -> Path:
    """The interpreter of a peer's venv."""
    return PEERS / name / "bin" / "python"


def version(python: Path | str, dist: str) -> str:
    """``dist``'s installed version in the venv of ``python`` (not timed)."""
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


def command(
    tool: str, base: str, prompts: Path, ov: list[str], conc: int, params: dict[str, Any], tmp: Path
) -> list[str]:
    """The command line of one tool (each a fresh process)."""
    if tool == "bare":
        return [sys.executable, "benchmarks/bare_loop.py", str(conc), *ov]
    if tool in ("vat1", "vat2"):
        return [
            sys.executable,
            "-m",
            "runner.cli.app",
            "run",
            *ov,
            f"execution.workers={tool[-1]}",
            f"execution.concurrency={conc}",
            f"store.path={tmp}/{tool}.duckdb",
            "format=json",
        ]
    if tool == "inspect":
        cmd = [
            str(PEERS / "inspect" / "bin" / "inspect"),
            "eval",
            "benchmarks/peers/inspect_task.py",  # inspect wants a path relative to its working directory
            "-T",
            f"prompts={prompts}",
            "--model",
            MODEL,
            "--model-base-url",
            f"{base}/v1",
            "--max-connections",
            str(conc),
            "--max-tokens",
            str(params["max_tokens"]),
            "--temperature",
            str(params["temperature"]),
            "--display",
            "none",
            "--log-level",
            "warning",
            "--log-dir",
            str(tmp / "inspect-logs"),
        ]
        if params.get("logprobs"):
            cmd += ["--logprobs", "--top-logprobs", str(params["top_logprobs"])]
        return cmd
    if tool == "lmeval":
        margs = f"model={MODEL.split('/', 1)[1]},base_url={base}/v1/chat/completions,num_concurrent={conc},max_retries=3,tokenized_requests=False"
        return [
            str(PEERS / "lmeval" / "bin" / "lm-eval"),
            "run",
            "--model",
            "local-chat-completions",
            "--model_args",
            margs,
            "--tasks",
            "vat_throughput",
            "--include_path",
            str(lmeval_task_dir(prompts, tmp)),
            "--apply_chat_template",
            "--gen_kwargs",
            f"max_gen_toks={params['max_tokens']},temperature={params['temperature']}",
        ]
    raise ValueError(f"unknown tool {tool!r}; choose from {', '.join(TOOLS)}")


def tool_version(tool: str) -> str:
    """What each row ran."""
    if tool == "bare":
        return "litellm " + version(sys.executable, "litellm")
    if tool.startswith("vat"):
        return "litellm " + version(sys.executable, "litellm")
    if tool == "inspect":
        return "inspect-ai " + version(peer_python("inspect"), "inspect-ai")
    return "lm-eval " + version(peer_python("lmeval"), "lm-eval")


def available(tool: str) -> bool:
    """A peer is run only when its venv exists (``make bench-peers`` creates it)."""
    if tool in ("inspect", "lmeval") and not peer_python(tool).exists():
        print(f"  {tool}: skipped, no {PEERS.name}/{tool} (make bench-peers creates it)", flush=True)
        return False
    return True


def run_one(
    tool: str, base: str, prompts: Path, ov: list[str], conc: int, params: dict[str, Any]
) -> dict[str, Any]:
    """One fresh process of ``tool``: wall, requests the server saw, the server-side send rate."""
    server_call(base, "/_reset", post=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = command(tool, base, prompts, ov, conc, params, Path(tmp))
        extra = {"OPENAI_API_KEY": KEY, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
        r = timed_rss(cmd, extra)
    stats = server_call(base, "/_stats")
    out = {"wall_s": r["wall_s"], "rss_mb": r["rss_mb"], "cpu_s": r["cpu_s"], "server": stats}
    if tool == "bare":
        out["tool_send_per_s"] = last_json(r["stdout"])["judgments"] / last_json(r["stdout"])["loop_s"]
    elif tool.startswith("vat"):
        s = last_json(r["stdout"])
        out["tool_send_per_s"] = s.get("judgments_per_s")
        out["answered"], out["failed"] = s.get("answered"), s.get("failed")
    return out


def lmeval_task_dir(prompts: Path, tmp: Path) -> Path:
    """benchmarks/peers/lmeval_task with the prompts' absolute path in the yaml (datasets reads it)."""
    src = ROOT / "benchmarks" / "peers" / "lmeval_task"
    out = tmp / "lmeval_task"
    out.mkdir()
    yaml = (src / "vat_throughput.yaml").read_text(encoding="utf-8")
    (out / "vat_throughput.yaml").write_text(
        yaml.replace("test: prompts.jsonl", f"test: {prompts}"), encoding="utf-8"
    )
    shutil.copy(src / "vat_chat.py", out / "vat_chat.py")
    return out


def run(
    requests: int = 20_000,
    concurrency: int = 64,
    only: str = "",
    repeats: int = 1,
    logprobs: bool = False,
) -> dict[str, Any]:
    """Every tool, ``repeats`` times in turn against one server; the medians, the table and the targets."""
    tools = [t for t in (only.split(",") if only else TOOLS) if t]
    for t in tools:
        if t not in TOOLS:
            raise SystemExit(f"--only: unknown tool {t!r}; choose from {', '.join(TOOLS)}")
    tools = [t for t in tools if available(t)]
    proc, base = start_server()
    results: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prompts = Path(tmp) / "prompts.jsonl"
            ov = plan_overrides(requests, f"{base}/v1", logprobs)
            n, fingerprint, params = dump_prompts(ov, prompts)
            print(
                f"  {n} distinct requests, concurrency {concurrency}, params {params}  [{machine()}]",
                flush=True,
            )
            for i in range(repeats):
                for t in tools:
                    try:
                        r = run_one(t, base, prompts, ov, concurrency, params)
                    except RuntimeError as exc:
                        print(f"  repeat {i + 1} {t}: FAILED {str(exc)[-600:]}", flush=True)
                        continue
                    got, fp = r["server"]["requests"], r["server"]["fingerprint"]
                    r["same_prompts"] = got == n and fp == fingerprint
                    results[t].append(r)
                    print(
                        f"  repeat {i + 1} {t}: {r['wall_s']:.1f} s, {n / r['wall_s']:.0f} req/s end to end, "
                        f"server saw {got} (same prompts: {r['same_prompts']}), "
                        f"send phase {r['server']['per_s'] or 0:.0f}/s  [{machine()}]",
                        flush=True,
                    )
    finally:
        proc.terminate()
        proc.wait()
    return summarize(results, n, concurrency)


def summarize(results: dict[str, list[dict[str, Any]]], n: int, concurrency: int) -> dict[str, Any]:
    """Median per tool, the table, ratios to bare, the targets."""
    rows: dict[str, Any] = {}
    for t, rs in results.items():
        if not rs:
            continue
        rows[t] = {
            "version": tool_version(t),
            "wall_s": median([r["wall_s"] for r in rs]),
            "per_s": median([n / r["wall_s"] for r in rs]),
            "server_send_per_s": median([r["server"]["per_s"] or 0.0 for r in rs]),
            "tool_send_per_s": median(
                [r["tool_send_per_s"] for r in rs if r.get("tool_send_per_s")] or [0.0]
            ),
            "rss_mb": max(r["rss_mb"] for r in rs),
            "same_prompts": all(r["same_prompts"] for r in rs),
            "runs": len(rs),
        }
    bare = rows.get("bare", {}).get("per_s")
    print(f"\n{n} requests, concurrency {concurrency}, {machine()}")
    print(
        "| tool | version | wall s | req/s end to end | ratio to bare | send phase req/s (server) | same prompts |"
    )
    print("|---|---|---|---|---|---|---|")
    for t, row in rows.items():
        row["ratio"] = row["per_s"] / bare if bare else None
        ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "-"
        print(
            f"| {t} | {row['version']} | {row['wall_s']:.1f} | {row['per_s']:.0f} | {ratio} | "
            f"{row['server_send_per_s']:.0f} | {row['same_prompts']} |"
        )
    for t in rows:
        show(f"throughput.{t}", rows[t]["per_s"], "requests/s end to end")
    for t, target in (("vat1", 0.85), ("vat2", 1.7)):
        if t in rows and bare:
            met = "yes" if rows[t]["ratio"] >= target else "NO"
            show(f"throughput.{t}_over_bare (target >= {target})", rows[t]["ratio"], f"met: {met}")
    return {"requests": n, "concurrency": concurrency, "rows": rows}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--only", default="", help="comma-separated: " + ",".join(TOOLS))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument(
        "--logprobs", action="store_true", help="ask for logprobs (VAT's default; lm-eval cannot)"
    )
    a = ap.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    run(a.requests, a.concurrency, a.only, a.repeats, a.logprobs)
