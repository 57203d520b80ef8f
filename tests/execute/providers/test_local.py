"""The embedded model provider, with the real SmolLM2-135M model (about 0.1–0.5 s per judgment)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402

from runner.execute.providers import local  # noqa: E402

SYSTEM = (
    "You judge whether an action is appropriate in the situation described. Answer with a single digit "
    "from 1 (completely unacceptable) to 5 (completely acceptable) and nothing else."
)
SCENE = "Scene: a neighbour's fence was damaged by a storm and the family cannot afford the repair."
ACTIONS = [
    "Action: you organise the other neighbours to pay for the repair together.",
    "Action: you report the family to the council for breaking the fence rules.",
    "Action: you ignore it because it is not your problem.",
]


def _messages(action: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{SCENE}\n{action}\nRating:"}]


@pytest.fixture(scope="module")
def judgments() -> list[Any]:
    """Three real judgments of one scene, sent together (the provider runs them one after another)."""
    local.register()

    async def judge_all() -> list[Any]:
        calls = [
            litellm.acompletion(
                model=local.DEFAULT_MODEL,
                messages=_messages(action),
                max_tokens=3,
                temperature=0,
                logprobs=True,
                top_logprobs=5,
            )
            for action in ACTIONS
        ]
        return list(await asyncio.gather(*calls))

    return asyncio.run(judge_all())


def test_register_is_idempotent_and_keeps_other_providers() -> None:
    other = {"provider": "someone-else", "custom_handler": object()}
    litellm.custom_provider_map.append(other)  # type: ignore[arg-type]
    try:
        local.register()
        local.register()
        ours = [e for e in litellm.custom_provider_map if e["provider"] == local.PROVIDER]
        assert len(ours) == 1
        assert isinstance(ours[0]["custom_handler"], local.LocalLLM)
        assert other in litellm.custom_provider_map
        assert local.PROVIDER in litellm.provider_list
    finally:
        litellm.custom_provider_map.remove(other)  # type: ignore[arg-type]


def test_judgments_return_text_usage_and_logprobs(judgments: list[Any]) -> None:
    for response in judgments:
        assert response.model == local.DEFAULT_MODEL
        assert response.choices[0].message.content.strip()
        assert response.usage.prompt_tokens > 40
        assert 1 <= response.usage.completion_tokens <= 3
        tokens = response.choices[0].logprobs.content
        assert 1 <= len(tokens) <= 3
        top = tokens[0].top_logprobs
        assert len(top) == 5
        assert all(t.logprob <= 0 for t in top)
        assert tokens[0].token == top[0].token  # greedy decoding picks the most likely token


def test_shared_prefix_is_reused(judgments: list[Any]) -> None:
    # The system prompt and scene come first, so every action after the first one the single slot
    # runs reuses llama.cpp's cache. Which request runs first depends on the event loop (they are
    # gathered while the model loads), so count the reusers instead of naming one.
    cached = sorted(r.usage.prompt_tokens_details.cached_tokens for r in judgments)
    assert cached[0] < 40 and cached[1] > 40 and cached[2] > 40, cached


def test_completion_cost_is_zero(judgments: list[Any]) -> None:
    assert litellm.completion_cost(completion_response=judgments[0]) == 0.0
    local.register_model_name("local//models/any.gguf")
    assert litellm.cost_per_token(model="local//models/any.gguf", prompt_tokens=100, completion_tokens=5) == (
        0.0,
        0.0,
    )


def test_sync_completion_is_silent(capfd: pytest.CaptureFixture[str]) -> None:
    local.register()
    local.warmup(local.DEFAULT_MODEL)
    capfd.readouterr()
    response = litellm.completion(model=local.DEFAULT_MODEL, messages=_messages(ACTIONS[0]), max_tokens=2)
    assert response.usage.completion_tokens >= 1
    err = capfd.readouterr().err  # file-descriptor level: llama.cpp writes to fd 2 directly
    assert "slot" not in err and "print_timing" not in err


def test_bad_gguf_path_names_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a model")
    with pytest.raises(local.LocalModelError, match=str(bad)):
        local.warmup(f"local/{bad}")
    missing = tmp_path / "missing.gguf"
    with pytest.raises(local.LocalModelError, match=str(missing)):
        local.warmup(f"local/{missing}")


def test_bad_gguf_path_through_litellm_is_not_retryable(tmp_path: Path) -> None:
    # A readable header but no model: llama.cpp itself refuses it.
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF" + bytes(64))
    local.register()
    call = litellm.acompletion(model=f"local/{truncated}", messages=_messages(ACTIONS[0]), max_tokens=1)
    with pytest.raises(local.LocalModelError, match=str(truncated)) as caught:
        asyncio.run(call)
    assert isinstance(caught.value, litellm.BadRequestError)  # LiteLLM passed it through, not retried


def test_unknown_name_and_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(local.LocalModelError, match="local/nonsense"):
        local.resolve_model_path("local/nonsense")
    monkeypatch.setitem(local._PACKAGED, "smollm2-135m", ("no-such-distribution", "model.gguf"))
    local._resolve_name.cache_clear()
    try:
        with pytest.raises(local.LocalModelError, match="make install"):
            local.resolve_model_path(local.DEFAULT_MODEL)
    finally:
        monkeypatch.undo()
        local._resolve_name.cache_clear()


def test_request_passes_generation_parameters() -> None:
    params = {
        "max_tokens": 3,
        "temperature": 0,
        "seed": 7,
        "logprobs": True,
        "top_logprobs": 5,
        "top_p": None,
    }
    body = local._request_body([litellm.Message(role="user", content="hi")], params)
    assert body == {
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
        "temperature": 0,
        "seed": 7,
        "logprobs": True,
        "top_logprobs": 5,
    }
    assert local._request_body([], {"max_completion_tokens": 4})["max_tokens"] == 4


def test_thread_count_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(local.THREADS_ENV, "1")
    assert local._thread_count() == 1
    monkeypatch.setenv(local.THREADS_ENV, "two")
    with pytest.raises(local.LocalModelError, match=local.THREADS_ENV):
        local._thread_count()
    monkeypatch.delenv(local.THREADS_ENV)
    assert 1 <= local._thread_count() <= local.MAX_THREADS
