"""A fake OpenAI Files + Batch API on 127.0.0.1 for the batch-mode tests (stdlib only).

Implements, in OpenAI's shapes: ``POST /v1/files`` (multipart upload), ``POST /v1/batches``,
``GET /v1/batches/{id}`` and ``GET /v1/files/{id}/content``. LiteLLM reaches it as ``openai/<name>``
with ``model.api_base=http://127.0.0.1:<port>/v1``. Every call must carry ``Authorization: Bearer
<key>`` with the key it was started with (else 401), so a test proves the key travels to the provider.

Behaviour is set by :class:`FakeConfig` (the rules in force when a batch is created decide how it ends): ``polls_to_complete`` (GETs of a batch before it ends),
``fail_keys`` and ``fail_every`` (custom ids, or every n-th line, answered with a per-request error in
the error file), ``expire`` (the batch
ends ``expired`` after answering only its first ``expire_after`` lines; the rest are left unanswered,
as OpenAI does). The answer to a request is a pure function of its messages (:func:`rating_for`), with
OpenAI-shaped logprobs. The server counts what it receives: ``received`` lists every custom id of every
submitted batch, ``batches`` holds every batch object.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeConfig:
    """How the fake behaves (mutable between runs of one test)."""

    api_key: str = "sk-fake-batch-key-0123456789"
    polls_to_complete: int = 1
    fail_keys: set[str] = field(default_factory=set)
    fail_every: int = 0
    """Also fail every line whose index in its batch is a multiple of this (0: none)."""
    expire: bool = False
    fail_batch: bool = False
    """End the batch ``failed`` (validation error), answering nothing."""
    expire_after: int = 0


def rating_for(messages: list[dict[str, Any]]) -> int:
    """The rating this fake answers for a prompt: 1..5 from a hash of the messages."""
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
    return 1 + int(digest, 16) % 5


def _completion(body: dict[str, Any], n: int) -> dict[str, Any]:
    """A chat.completion body answering ``body`` (with logprobs when asked for)."""
    rating = str(rating_for(body["messages"]))
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": rating},
        "finish_reason": "stop",
        "logprobs": None,
    }
    if body.get("logprobs"):
        others = [str(k) for k in range(1, 6) if str(k) != rating][
            : max(0, int(body.get("top_logprobs", 0)) - 1)
        ]
        tops = [{"token": rating, "logprob": -0.05, "bytes": None}]
        tops += [{"token": t, "logprob": -9.0, "bytes": None} for t in others]
        choice["logprobs"] = {
            "content": [{"token": rating, "logprob": -0.05, "bytes": None, "top_logprobs": tops}]
        }
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "system_fingerprint": "fp_fake",
        "choices": [choice],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
    }


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-request (a cancelled poll) is normal here: no traceback on stderr."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeBatchServer:
    """The server and its state; use as a context manager (serves in a daemon thread)."""

    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = config or FakeConfig()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.rules: dict[str, FakeConfig] = {}
        self.received: list[str] = []
        self.unauthorized = 0
        self.lock = threading.RLock()
        self.httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        """The ``model.api_base`` to give LiteLLM."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeBatchServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------ endpoints

    def upload(self, content: bytes) -> dict[str, Any]:
        """POST /v1/files: keep the file, return an OpenAI file object."""
        with self.lock:
            fid = f"file-{len(self.files) + 1}"
            self.files[fid] = content
        return {
            "id": fid,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": "batch.jsonl",
            "purpose": "batch",
            "status": "processed",
        }

    def create_batch(self, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST /v1/batches: validate the input file, count its custom ids, start the batch."""
        content = self.files.get(req.get("input_file_id", ""))
        if content is None:
            return 404, {"error": {"message": "No such File object", "type": "invalid_request_error"}}
        lines = [json.loads(x) for x in content.decode().splitlines() if x.strip()]
        with self.lock:
            bid = f"batch_{len(self.batches) + 1}"
            self.received.extend(line["custom_id"] for line in lines)
            self.batches[bid] = {
                "id": bid,
                "object": "batch",
                "endpoint": req["endpoint"],
                "errors": None,
                "input_file_id": req["input_file_id"],
                "completion_window": req["completion_window"],
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": int(time.time()),
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": req.get("metadata"),
            }
            self.polls[bid] = 0
            # The rules in force when a batch is created decide how it ends (a test may change them later).
            self.rules[bid] = FakeConfig(**{**vars(self.config), "fail_keys": set(self.config.fail_keys)})
            return 200, dict(self.batches[bid])

    def retrieve(self, bid: str) -> tuple[int, dict[str, Any]]:
        """GET /v1/batches/{id}: advance the batch one step per poll; finish after ``polls_to_complete``."""
        with self.lock:
            batch = self.batches.get(bid)
            if batch is None:
                return 404, {"error": {"message": "No such batch", "type": "invalid_request_error"}}
            if batch["status"] in {"validating", "in_progress"}:
                self.polls[bid] += 1
                if self.polls[bid] >= self.rules[bid].polls_to_complete:
                    self._finish(batch)
                else:
                    batch["status"] = "in_progress"
            return 200, dict(batch)

    def _finish(self, batch: dict[str, Any]) -> None:
        """Answer the batch's lines into an output file and an error file (both may be absent)."""
        rules = self.rules[batch["id"]]
        if rules.fail_batch:
            error = {
                "code": "invalid_request",
                "message": "Model not available for batch.",
                "line": None,
                "param": None,
            }
            batch.update(status="failed", errors={"object": "list", "data": [error]})
            return
        lines = [json.loads(x) for x in self.files[batch["input_file_id"]].decode().splitlines() if x.strip()]
        if rules.expire:
            lines = lines[: rules.expire_after]
        out, err = [], []
        for n, line in enumerate(lines):
            cid = line["custom_id"]
            every = rules.fail_every
            if cid in rules.fail_keys or (every and n % every == 0):
                body = {"error": {"message": "The model produced invalid content.", "type": "server_error"}}
                err.append(
                    {"id": f"req_{n}", "custom_id": cid, "response": {"status_code": 500, "body": body}}
                )
            else:
                resp = {"status_code": 200, "request_id": f"r{n}", "body": _completion(line["body"], n)}
                out.append({"id": f"req_{n}", "custom_id": cid, "response": resp, "error": None})
        for name, rows in (("output_file_id", out), ("error_file_id", err)):
            if rows:
                batch[name] = self.upload("".join(json.dumps(r) + "\n" for r in rows).encode())["id"]
        batch["status"] = "expired" if rules.expire else "completed"
        batch["request_counts"] = {
            "total": batch["request_counts"]["total"],
            "completed": len(out),
            "failed": len(err),
        }


def _handler(server: FakeBatchServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet: tests read counters, not logs
            pass

        def _send(self, status: int, payload: dict[str, Any] | bytes) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            ctype = "application/octet-stream" if isinstance(payload, bytes) else "application/json"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {server.config.api_key}":
                return True
            server.unauthorized += 1
            self._send(
                401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
            )
            return False

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self._body()
            if not self._authorized():
                return
            if self.path.rstrip("/") == "/v1/files":
                self._send(200, server.upload(_multipart_file(self.headers["Content-Type"], body)))
            elif self.path.rstrip("/") == "/v1/batches":
                self._send(*server.create_batch(json.loads(body)))
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if not self._authorized():
                return
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[:2] == ["v1", "batches"] and len(parts) == 3:
                self._send(*server.retrieve(parts[2]))
            elif parts[:2] == ["v1", "files"] and len(parts) == 4 and parts[3] == "content":
                content = server.files.get(parts[2])
                self._send(200, content) if content is not None else self._send(
                    404, {"error": {"message": "no file"}}
                )
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

    return Handler


def _multipart_file(content_type: str, body: bytes) -> bytes:
    """The ``file`` field of a multipart/form-data body."""
    msg = email.parser.BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in msg.get_payload():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_payload(decode=True)
    raise ValueError("no file field in the upload")


if (
    __name__ == "__main__"
):  # try batch mode by hand: python tests/support/fake_batch_server.py [polls_to_complete]
    import sys

    with FakeBatchServer(FakeConfig(polls_to_complete=int(sys.argv[1]) if len(sys.argv) > 1 else 3)) as srv:
        print(f"model.api_base={srv.api_base}  OPENAI_API_KEY={srv.config.api_key}", flush=True)
        srv.thread.join()
