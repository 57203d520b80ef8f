"""A fault-injecting OpenAI-compatible chat-completions server for the reliability tests.

It runs in its own process (``python tests/support/fault_server.py --port 0`` prints ``PORT <n>``), so the
`vat` process under test shares nothing with it, and it survives when a test SIGKILLs the run. LiteLLM
reaches it as ``openai/<name>`` with ``model.api_base=http://127.0.0.1:<port>/v1``.

The right answer is a pure function of the prompt (:func:`correct_rating`), so a run with faults and a
run without them must end with the same stored ratings and the same metrics. Which prompts fault, and
how, is a pure function of ``(seed, prompt)`` (:func:`fault_for`), never of arrival order: the tests
can predict every fault from the plan alone. The server counts the requests it receives per prompt.

Fault kinds (``KINDS``):

- transport faults, which the runner must retry: ``429`` (with ``Retry-After``), ``500``, ``503``,
  ``slow`` (answers after ``slow_s``, past the client's timeout), ``drop`` (closes the connection without
  answering), ``malformed`` (HTTP 200 with truncated JSON), ``empty`` (HTTP 200, empty content);
- answer faults, which are answers and are stored as unparseable: ``out_of_range`` (answers "7") and
  ``prose`` (answers in words with no digit);
- permanent rejections, never retried: ``400``, ``401`` (whose message echoes the API key), ``403``
  (a valid key without access) and ``quota`` (a 429 whose message says the quota is exhausted);
- hostile answers: ``huge_logprob`` (a rating with logprob 710, which overflowed ``math.exp``) and
  ``huge_answer`` (the rating followed by ``huge_answer_chars`` characters).

A *transient* fault hits only the first ``transient_attempts`` attempts of a prompt; a *permanent* one
hits every attempt. Control endpoints: ``GET /_stats``, ``POST /_config`` (a :class:`FaultPlan` as
JSON), ``POST /_reset`` (clears the counters).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TRANSPORT_KINDS = ("429", "500", "503", "slow", "drop", "malformed", "empty")
ANSWER_KINDS = ("out_of_range", "prose")
HOSTILE_KINDS = ("huge_logprob", "huge_answer")
KINDS = (*TRANSPORT_KINDS, *ANSWER_KINDS, *HOSTILE_KINDS, "400", "401", "403", "quota")
"""Not transient, so never retried: ``400`` (a request the provider rejects) and ``401`` (a rejected key;
the error message echoes the key in full, as a careless provider might, to test that it is never stored)."""


@dataclass
class FaultPlan:
    """Which prompts fault, how and for how long; all draws are seeded by (seed, prompt)."""

    seed: int = 0
    transient_rate: float = 0.0
    """Share of prompts whose first ``transient_attempts`` attempts fault."""
    transient_attempts: int = 1
    transient_kinds: tuple[str, ...] = TRANSPORT_KINDS
    permanent_rate: float = 0.0
    """Share of prompts that fault on every attempt."""
    permanent_kinds: tuple[str, ...] = ("500",)
    retry_after_s: float = 0.05
    slow_s: float = 3.0
    delay_s: float = 0.0
    """Latency of every answer that is not a fault (to make a run last long enough to kill it)."""
    huge_answer_chars: int = 1_000_000

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultPlan:
        data = dict(data)
        for key in ("transient_kinds", "permanent_kinds"):
            if key in data:
                data[key] = tuple(data[key])
        plan = cls(**data)
        unknown = set(plan.transient_kinds + plan.permanent_kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}")
        return plan


def prompt_id(messages: list[dict[str, Any]]) -> str:
    """A stable id of a prompt: the hash of its (role, content) pairs."""
    pairs = [[m.get("role"), m.get("content")] for m in messages]
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest()[:24]


def correct_rating(messages: list[dict[str, Any]]) -> int:
    """The answer this server gives a prompt when it does not fault: 1..5 from the prompt's hash."""
    return 1 + int(prompt_id(messages), 16) % 5


def fault_for(plan: FaultPlan, pid: str, attempt: int) -> str | None:
    """The fault (a ``KINDS`` entry) for the ``attempt``-th request of prompt ``pid``, or None."""
    rng = random.Random(f"{plan.seed}:{pid}")
    draw = rng.random()
    if draw < plan.permanent_rate:
        return plan.permanent_kinds[rng.randrange(len(plan.permanent_kinds))]
    if draw < plan.permanent_rate + plan.transient_rate and attempt <= plan.transient_attempts:
        return plan.transient_kinds[rng.randrange(len(plan.transient_kinds))]
    return None


def _logprobs(rating: int) -> dict[str, Any]:
    """OpenAI-shaped logprobs peaked at ``rating`` (p = 0.6, the rest spread over the other digits)."""
    tops = [
        {"token": str(k), "logprob": math.log(0.6 if k == rating else 0.1), "bytes": None}
        for k in range(1, 6)
    ]
    return {
        "content": [{"token": str(rating), "logprob": math.log(0.6), "bytes": None, "top_logprobs": tops}]
    }


class _State:
    """Counters shared by the handler threads."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.per_prompt: dict[str, int] = {}
            self.faults: dict[str, int] = {}
            self.answered_prompts: set[str] = set()
            self.requests = 0
            self.answered = 0
            self.in_flight = 0
            self.arrivals: list[float] = []  # time.monotonic() of each request, for rate checks
            self.max_in_flight = 0

    def arrive(self, pid: str) -> tuple[int, str | None]:
        with self.lock:
            self.requests += 1
            self.arrivals.append(time.monotonic())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            attempt = self.per_prompt.get(pid, 0) + 1
            self.per_prompt[pid] = attempt
            fault = fault_for(self.plan, pid, attempt)
            if fault:
                self.faults[fault] = self.faults.get(fault, 0) + 1
            return attempt, fault

    def leave(self, pid: str, answered: bool) -> None:
        with self.lock:
            self.in_flight -= 1
            self.answered += int(answered)
            if answered:
                self.answered_prompts.add(pid)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "answered": self.answered,
                "answered_prompts": len(self.answered_prompts),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "faults": dict(self.faults),
                "per_prompt": dict(self.per_prompt),
                "arrivals": list(self.arrivals),
                "plan": asdict(self.plan),
            }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers do; httpx reuses connections
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Silence the per-request access log."""

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/_stats":
            self._send_json(200, self.server.state.snapshot())
        else:
            self._send_json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        try:
            body = self._body()
        except json.JSONDecodeError:
            self._send_json(400, {"error": {"message": "request body is not JSON"}})
            return
        if self.path == "/_config":
            self.server.state.plan = FaultPlan.from_json(body)
            self._send_json(200, {"ok": True})
        elif self.path == "/_reset":
            self.server.state.reset()
            self._send_json(200, {"ok": True})
        elif self.path.rstrip("/").endswith("/chat/completions"):
            self._chat(body)
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def _chat(self, body: dict[str, Any]) -> None:
        state = self.server.state
        messages = body.get("messages") or []
        pid = prompt_id(messages)
        _, fault = state.arrive(pid)
        answered = False
        try:
            answered = self._answer(body, messages, fault, state.plan)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) or was killed: nothing to answer
        finally:
            state.leave(pid, answered)

    def _answer(
        self, body: dict[str, Any], messages: list[dict[str, Any]], fault: str | None, plan: FaultPlan
    ) -> bool:
        """Send the answer or the fault; True when a correct answer went out."""
        error = {"error": {"message": f"injected {fault}", "type": "server_error", "code": fault}}
        if fault == "429":
            self._send_json(429, error, {"Retry-After": str(plan.retry_after_s)})
        elif fault in ("400", "500", "503"):
            self._send_json(int(fault), error)
        elif fault == "403":
            error["error"]["message"] = "Project does not have access to model fault-judge"
            self._send_json(403, error)
        elif fault == "quota":
            error["error"].update(
                message="You exceeded your current quota, please check your plan and billing details.",
                type="insufficient_quota",
                code="insufficient_quota",
            )
            self._send_json(429, error)
        elif fault == "401":
            key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            error["error"]["message"] = f"Incorrect API key provided: {key}"
            self._send_json(401, error)
        elif fault == "drop":
            self.close_connection = True
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault == "malformed":
            self._send_json(200, b'{"id": "chatcmpl-x", "object": "chat.completion", "choices": [{"ind')
        else:
            if fault == "slow":
                time.sleep(plan.slow_s)
            elif plan.delay_s:
                time.sleep(plan.delay_s)
            rating = correct_rating(messages)
            content = {
                "empty": "",
                "out_of_range": "7",
                "prose": "I think this is a reasonable choice.",
                "huge_answer": f"{rating} " + "x" * plan.huge_answer_chars,
            }.get(fault or "", str(rating))
            logprobs = _logprobs(rating) if body.get("logprobs") and fault in (None, "huge_logprob") else None
            if fault == "huge_logprob" and logprobs:
                logprobs["content"][0]["top_logprobs"][rating - 1]["logprob"] = 710.0
            self._send_json(200, _completion(body, content, logprobs))
            return fault is None
        return False


def _completion(body: dict[str, Any], content: str, logprobs: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fault"),
        "system_fingerprint": "fp_fault",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": logprobs,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101},
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int, plan: FaultPlan) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = _State(plan)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that vanish (timeouts, SIGKILL) are expected here: no tracebacks on stderr."""


# ------------------------------------------------------------------ test-side helper


class FaultServer:
    """Start the server in a child process; configure it and read its counters over HTTP."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan = plan or FaultPlan()
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> FaultServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--port",
                "0",
                "--plan",
                json.dumps(asdict(self.plan)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"fault server did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None

    def _call(self, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method="POST" if data else "GET"
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def configure(self, plan: FaultPlan) -> None:
        """Replace the fault plan (counters are kept; call :meth:`reset` to clear them)."""
        self.plan = plan
        self._call("/_config", asdict(plan))

    def reset(self) -> None:
        """Clear every counter."""
        self._call("/_reset", {})

    def stats(self) -> dict[str, Any]:
        """Requests received (total and per prompt id), faults sent, answers sent, in-flight high-water mark."""
        return self._call("/_stats")


def main() -> None:
    """Serve until killed; print ``PORT <n>`` once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--plan", default="{}", help="a FaultPlan as JSON")
    args = parser.parse_args()
    server = _Server(args.port, FaultPlan.from_json(json.loads(args.plan)))
    print(f"PORT {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()


# ------------------------------------------------------------------ helpers shared by the reliability tests

ROOT = Path(__file__).resolve().parents[2]
FAKE_KEY = "sk-test-SECRET123-do-not-log"
"""The API key every reliability run uses; the secrets test searches every output for it."""


def run_args(server: FaultServer, store_path: str | Path, *extra: str) -> list[str]:
    """`vat run` arguments for a run judged by the fault server through LiteLLM's ``openai/`` provider."""
    return [
        "run",
        "model.name=openai/fault-judge",
        f"model.api_base={server.api_base}",
        "model.api_key_env=OPENAI_API_KEY",
        f"store.path={store_path}",
        "execution.progress=false",
        f"hydra.run.dir={Path(store_path).parent / 'hydra-run'}",
        "format=json",
        *extra,
    ]


def vat_command(*args: str) -> list[str]:
    """The argv that runs `vat` in a child process with this interpreter."""
    return [sys.executable, "-m", "runner.cli.app", *args]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child `vat`: the fake key, no network look-ups."""
    import os

    env = dict(os.environ)
    env.update({"OPENAI_API_KEY": FAKE_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"})
    env.update(extra)
    return env


def store_check(store_path: str | Path) -> dict[str, Any]:
    """Open the store read-only, assert it is whole, and return what it holds.

    Whole means: one row per response key, every response belongs to a recorded request, every field
    a provider answer fills is present, and every rating is the one the fault server gives that prompt
    (so no answer was ever stored under the wrong key).
    """
    import duckdb

    con = duckdb.connect(str(store_path), read_only=True)
    try:
        n, distinct = con.execute("SELECT count(*), count(DISTINCT request_key) FROM responses").fetchone()
        assert n == distinct, f"{n - distinct} duplicate response keys"
        orphans = con.execute(
            "SELECT count(*) FROM responses WHERE request_key NOT IN (SELECT request_key FROM requests)"
        ).fetchone()[0]
        assert orphans == 0, f"{orphans} responses without a request"
        partial = con.execute(
            "SELECT count(*) FROM responses WHERE model IS NULL OR text IS NULL OR attempts IS NULL "
            "OR latency_s IS NULL OR created_at IS NULL OR prompt_tokens IS NULL OR provider_model IS NULL"
        ).fetchone()[0]
        assert partial == 0, f"{partial} partial response rows"
        rows = con.execute(
            "SELECT p.messages, r.rating, r.text FROM responses r JOIN requests q USING (request_key) "
            "JOIN prompts p USING (prompt_hash)"
        ).fetchall()
        wrong = [
            (text, rating)
            for messages, rating, text in rows
            if rating is not None and rating != correct_rating(json.loads(messages))
        ]
        assert not wrong, f"{len(wrong)} ratings differ from the server's answer, e.g. {wrong[:3]}"
        errors = con.execute("SELECT count(*), count(*) FILTER (WHERE final) FROM errors").fetchone()
        return {"responses": n, "errors": errors[0], "final_errors": errors[1], "rows": rows}
    finally:
        con.close()
