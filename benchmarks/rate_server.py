"""A local OpenAI-compatible chat server that admits a fixed number of requests per second.

``python benchmarks/rate_server.py --rps 40`` prints ``PORT <n>`` and serves ``POST /v1/chat/completions``
on 127.0.0.1. Admission is a token bucket (``rps`` tokens per second, room for ``burst`` of them):
beyond it the server answers 429 with ``Retry-After`` (whole seconds, rounded up) and ``retry-after-ms``
(the exact wait), as OpenAI does. ``GET /_stats`` gives the counts of answers and 429s. The answer is
a digit derived from a hash of the prompt, so nothing is random.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Bucket:
    """Token bucket: ``rate`` tokens per second, at most ``burst`` saved."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()
        self.lock = threading.Lock()
        self.answered = self.limited = 0

    def take(self) -> float:
        """0 when a token was taken; else the seconds until the next token."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                self.answered += 1
                return 0.0
            self.limited += 1
            return (1.0 - self.tokens) / self.rate


class Handler(BaseHTTPRequestHandler):
    """Chat completions under the bucket; keep-alive (HTTP/1.1), as real providers allow."""

    protocol_version = "HTTP/1.1"
    bucket: Bucket

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Silent."""

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """``/_stats``: answered and 429 counts."""
        self._send(200, {"answered": self.bucket.answered, "limited": self.bucket.limited})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        """One chat completion, or a 429 beyond the rate."""
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        wait = self.bucket.take()
        if wait > 0:
            headers = {"Retry-After": str(math.ceil(wait)), "retry-after-ms": f"{wait * 1000:.0f}"}
            self._send(429, {"error": {"message": "rate limit", "type": "rate_limit_error"}}, headers)
            return
        text = json.dumps(body.get("messages", []), sort_keys=True)
        rating = 1 + hashlib.blake2b(text.encode(), digest_size=2).digest()[0] % 5
        self._send(
            200,
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "bench"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": str(rating)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101},
            },
        )


def main() -> None:
    """Serve until killed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rps", type=float, default=40.0)
    ap.add_argument("--burst", type=float, default=None, help="bucket size (default: rps / 10, at least 1)")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    Handler.bucket = Bucket(a.rps, a.burst if a.burst is not None else max(1.0, a.rps / 10))
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
