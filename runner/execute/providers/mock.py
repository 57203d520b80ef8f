"""A zero-latency fake judge, LiteLLM provider ``mock/``: for tests, CI smoke runs and benchmarks.

``mock/<name>`` answers every judgment instantly with a digit derived from a hash of the request (so the
same request always gets the same answer, and different requests spread over 1–5), with OpenAI-shaped
logprobs when asked. It knows nothing about values: its metrics mean nothing. Never use it to measure.
Special names make faults for tests: ``mock/prose`` answers in words without a digit, ``mock/empty``
answers nothing. ``mock/generator`` serves ``vat generate``: it answers with the JSON object whose shape
the last message shows (its last ``{"key": ...}`` block), strings filled with hash-chosen everyday words
that start with "I" and integers (or ``<1-5>`` placeholders) with a hash-derived 1–5.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
from litellm.llms.custom_llm import CustomLLM  # noqa: E402
from litellm.types.utils import ModelResponse  # noqa: E402

PROVIDER = "mock"


def mock_rating(messages: list[Any]) -> int:
    """The deterministic rating (1–5) the mock gives a request."""
    text = "".join(str(m["content"] if isinstance(m, dict) else m.content) for m in messages)
    return 1 + hashlib.blake2b(text.encode(), digest_size=2).digest()[0] % 5


_WORDS_TEXT = (
    "ask call check choose cook cover drive finish help invite join keep leave lend meet move offer pay plan "
    "post read share sign skip spend stay suggest take visit wait walk write neighbour cousin aunt uncle "
    "colleague friend teacher landlord grocer nurse driver council office market bus train school clinic "
    "library mosque church temple park river field kitchen garden street shop bakery festival meeting "
    "wedding funeral exam shift rent loan fee ticket form letter phone message photo song dinner lunch "
    "breakfast tea coffee morning evening weekend holiday monday week month year early late quietly "
    "openly slowly together alone again first next small large new old local nearby extra spare cheap "
    "careful simple short long quiet busy"
)
_WORDS = _WORDS_TEXT.split()
_SHAPE_PAIR = re.compile(r'"(\w+)"\s*:\s*("(?:[^"\\]|\\.)*"|<[^>]*>|-?\d+(?:\.\d+)?|null|true|false)')


def _words_for(seed: bytes, n: int) -> str:
    """``n`` everyday words chosen by a hash of ``seed`` (different seeds share few words)."""
    digest = hashlib.blake2b(seed, digest_size=64).digest()
    words = [_WORDS[(digest[i % 64] * 7 + i * 31 + digest[(i * 5) % 64]) % len(_WORDS)] for i in range(n)]
    return " ".join(words)


def generator_answer(messages: list[Any]) -> str:
    """The JSON answer of ``mock/generator``: the shape shown last in the prompt, filled deterministically."""
    text = str(messages[-1]["content"] if isinstance(messages[-1], dict) else messages[-1].content)
    blocks = re.findall(r"\{[^{}]*\}", text)
    pairs = _SHAPE_PAIR.findall(blocks[-1]) if blocks else []
    seed = "".join(str(m["content"] if isinstance(m, dict) else m.content) for m in messages).encode()
    answer: dict[str, Any] = {}
    for key, example in pairs:
        key_seed = seed + key.encode()
        if example.startswith("<") and re.search(r"\d", example) or re.fullmatch(r"-?\d+(\.\d+)?", example):
            answer[key] = 1 + hashlib.blake2b(key_seed, digest_size=2).digest()[0] % 5
        elif example == "null":
            answer[key] = None
        else:
            answer[key] = f"I {_words_for(key_seed, 27)}."
    return json.dumps(answer or {"text": f"I {_words_for(seed, 27)}."})


def _logprobs(rating: int) -> dict[str, Any]:
    # A peaked distribution around the answer, normalised: p(answer) = 0.6, neighbours share the rest.
    weights = {k: 0.6 if k == rating else 0.4 / 4 for k in range(1, 6)}
    tops = [{"token": str(k), "logprob": math.log(p), "bytes": None} for k, p in weights.items()]
    return {
        "content": [{"token": str(rating), "logprob": math.log(0.6), "bytes": None, "top_logprobs": tops}]
    }


class MockLLM(CustomLLM):
    """Instant, deterministic answers (see the module docstring)."""

    def completion(
        self,
        *,
        model: str,
        messages: list[Any],
        model_response: ModelResponse,  # type: ignore[override]
        optional_params: dict[str, Any],
        **_: Any,
    ) -> ModelResponse:
        """Answer one request."""
        rating = mock_rating(messages)
        content = {"prose": "I think this is a reasonable choice.", "empty": ""}.get(model, str(rating))
        if model == "generator":
            content = generator_answer(messages)
        logprobs = (
            _logprobs(rating)
            if optional_params.get("logprobs") and model not in ("prose", "empty", "generator")
            else None
        )
        model_response.choices = [
            litellm.Choices(
                finish_reason="stop",
                index=0,
                message=litellm.Message(role="assistant", content=content),
                logprobs=logprobs,
            )
        ]
        model_response.usage = litellm.Usage(prompt_tokens=100, completion_tokens=1, total_tokens=101)  # type: ignore[attr-defined]
        model_response.model = f"{PROVIDER}/{model}"
        return model_response

    async def acompletion(self, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        """Answer one request (no I/O, so no awaiting)."""
        return self.completion(**kwargs)


_handler = MockLLM()


def register() -> None:
    """Make ``mock/...`` model strings work in LiteLLM (idempotent)."""
    entries = litellm.custom_provider_map
    if not any(e["provider"] == PROVIDER for e in entries):
        entries.append({"provider": PROVIDER, "custom_handler": _handler})
    litellm.utils.custom_llm_setup()
