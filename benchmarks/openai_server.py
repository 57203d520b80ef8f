"""A fast local OpenAI-compatible server for the throughput benchmark (benchmarks/bench_throughput.py).

``python benchmarks/openai_server.py --port 0`` prints ``PORT <n>`` as its first line on stdout and
serves on 127.0.0.1 (aiohttp, one process, one event loop; TCP_NODELAY on, listen backlog 1024,
HTTP/1.1 keep-alive):

- ``POST /v1/chat/completions``: an OpenAI-shaped chat completion whose answer is one digit (1–5)
  derived from a hash of the messages, so nothing is random; ``logprobs``/``top_logprobs`` are answered
  in OpenAI's shape when asked.
- ``POST /v1/completions``: the legacy text completion (lm-eval's ``local-completions``), same digit.
- ``GET /v1/models``: the one model it serves, under whatever name the client asks for.
- ``GET /_stats``: counts per endpoint, the first and last request times (server clock, so a tool's
  send phase can be measured the same way for every tool) and an order-independent fingerprint of
  the prompts received (so two tools can be checked to have sent the same prompts).
- ``POST /_reset``: zero the counts.

The answer costs the server ~0.1 ms of CPU: the client, not the server, is what gets measured.
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import time
from typing import Any

from aiohttp import web

_DIGITS = "12345"
_MASK = (1 << 64) - 1


class Stats:
    """What the server saw since the last reset."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Zero every count."""
        self.counts: dict[str, int] = {}
        self.first: float | None = None
        self.last: float | None = None
        self.fingerprint = 0
        self.models: set[str] = set()

    def see(self, endpoint: str, model: str, digest: bytes) -> None:
        """Count one request and fold its prompt hash into the fingerprint (a sum: order does not matter)."""
        now = time.time()
        if self.first is None:
            self.first = now
        self.last = now
        self.counts[endpoint] = self.counts.get(endpoint, 0) + 1
        self.models.add(model)
        self.fingerprint = (self.fingerprint + int.from_bytes(digest[:8], "little")) & _MASK

    def as_dict(self) -> dict[str, Any]:
        """The counts as JSON."""
        total = sum(self.counts.values())
        span = (self.last - self.first) if self.first is not None and self.last is not None else 0.0
        return {
            "requests": total,
            "by_endpoint": self.counts,
            "first_at": self.first,
            "last_at": self.last,
            "span_s": span,
            "per_s": (total - 1) / span if span > 0 else None,
            "fingerprint": f"{self.fingerprint:016x}",
            "models": sorted(self.models),
        }


STATS = Stats()


def prompt_digest(messages: Any) -> bytes:
    """Hash of the roles and texts of the messages (not of the other request fields, which differ by tool)."""
    h = hashlib.blake2b(digest_size=16)
    for m in messages if isinstance(messages, list) else [{"role": "user", "content": messages}]:
        content = m.get("content") if isinstance(m, dict) else m
        if isinstance(content, list):  # OpenAI content parts: keep the text parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        h.update(str(m.get("role", "user") if isinstance(m, dict) else "user").encode())
        h.update(b"\x00")
        h.update(str(content).strip().encode())
        h.update(b"\x01")
    return h.digest()


def _logprobs(digit: str, top: int) -> dict[str, Any]:
    """OpenAI's chat ``logprobs`` for a one-token answer: the digit first, then the other digits."""
    others = [d for d in _DIGITS if d != digit][: max(0, top - 1)]
    tops = [{"token": digit, "logprob": -0.05, "bytes": list(digit.encode())}]
    tops += [{"token": d, "logprob": -3.0 - i, "bytes": list(d.encode())} for i, d in enumerate(others)]
    return {
        "content": [
            {"token": digit, "logprob": -0.05, "bytes": list(digit.encode()), "top_logprobs": tops[:top]}
        ],
        "refusal": None,
    }


def _usage(prompt_chars: int) -> dict[str, int]:
    """Token counts of the usual rough size (4 characters a token)."""
    prompt = max(1, prompt_chars // 4)
    return {"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1}


async def chat(request: web.Request) -> web.Response:
    """One chat completion: a digit from the prompt's hash."""
    body = await request.json()
    messages = body.get("messages") or []
    digest = prompt_digest(messages)
    model = str(body.get("model", "bench"))
    STATS.see("chat", model, digest)
    digit = _DIGITS[digest[0] % 5]
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": digit, "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }
    if body.get("logprobs"):
        choice["logprobs"] = _logprobs(digit, int(body.get("top_logprobs") or 1))
    chars = sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
    return web.json_response(
        {
            "id": "chatcmpl-" + digest.hex()[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [choice],
            "usage": _usage(chars),
        }
    )


async def completions(request: web.Request) -> web.Response:
    """The legacy text completion (one choice per prompt in ``prompt``)."""
    body = await request.json()
    prompts = body.get("prompt")
    prompts = prompts if isinstance(prompts, list) else [prompts]
    model = str(body.get("model", "bench"))
    choices = []
    for i, prompt in enumerate(prompts):
        digest = prompt_digest(str(prompt))
        STATS.see("completions", model, digest)
        digit = _DIGITS[digest[0] % 5]
        choice: dict[str, Any] = {"index": i, "text": digit, "logprobs": None, "finish_reason": "stop"}
        if body.get("logprobs") is not None:
            n = int(body.get("logprobs") or 1)
            ranked = [digit, *(d for d in _DIGITS if d != digit)][: max(n, 1)]
            top = {d: (-0.05 if d == digit else -3.0 - i) for i, d in enumerate(ranked)}
            choice["logprobs"] = {
                "tokens": [digit],
                "token_logprobs": [-0.05],
                "top_logprobs": [top],
                "text_offset": [0],
            }
        choices.append(choice)
    chars = sum(len(str(p)) for p in prompts)
    return web.json_response(
        {
            "id": "cmpl-bench",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": _usage(chars),
        }
    )


async def models(request: web.Request) -> web.Response:
    """The model list OpenAI clients may ask for."""
    return web.json_response(
        {"object": "list", "data": [{"id": "bench", "object": "model", "created": 0, "owned_by": "bench"}]}
    )


async def stats(request: web.Request) -> web.Response:
    """The counts since the last reset."""
    return web.json_response(STATS.as_dict())


async def reset(request: web.Request) -> web.Response:
    """Zero the counts (between two tools)."""
    STATS.reset()
    return web.json_response({"ok": True})


def app() -> web.Application:
    """The routes."""
    application = web.Application(client_max_size=16 * 1024 * 1024)
    application.add_routes(
        [
            web.post("/v1/chat/completions", chat),
            web.post("/chat/completions", chat),
            web.post("/v1/completions", completions),
            web.get("/v1/models", models),
            web.get("/_stats", stats),
            web.post("/_reset", reset),
        ]
    )
    return application


def listening_socket(port: int, backlog: int) -> socket.socket:
    """A 127.0.0.1 socket with TCP_NODELAY (inherited by accepted connections on Linux) and a deep backlog."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def main() -> None:
    """Serve until killed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--backlog", type=int, default=1024)
    a = ap.parse_args()
    sock = listening_socket(a.port, a.backlog)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    # aiohttp also sets TCP_NODELAY on every accepted connection; keep-alive is its default (75 s).
    web.run_app(app(), sock=sock, backlog=a.backlog, print=None, access_log=None, handle_signals=True)


if __name__ == "__main__":
    main()
