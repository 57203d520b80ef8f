"""The inspect_ai side of benchmarks/bench_throughput.py: VAT's compiled prompts, one ``generate()`` each.

Runs in its own venv (``.venv-peers/inspect``, from ``benchmarks/peers/inspect.lock``)::

    inspect eval benchmarks/peers/inspect_task.py -T prompts=prompts.jsonl --model openai/gpt-4o-mini \
        --model-base-url http://127.0.0.1:PORT/v1 --max-connections 64 --max-tokens 3 --temperature 0

Each JSONL line is ``{"id": <request key>, "messages": [{"role", "content"}, ...]}``, the exact
messages ``vat run`` sends. No scorer: VAT's run does not score either (ratings are parsed later by
``vat report``), so both do the same work, send and record.
"""

from __future__ import annotations

from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import Sample, json_dataset
from inspect_ai.model import ChatMessage, ChatMessageAssistant, ChatMessageSystem, ChatMessageUser
from inspect_ai.solver import generate

_ROLES = {"system": ChatMessageSystem, "user": ChatMessageUser, "assistant": ChatMessageAssistant}


def record_to_sample(record: dict[str, Any]) -> Sample:
    """One JSONL line → one sample whose input is the whole chat."""
    messages: list[ChatMessage] = [_ROLES[m["role"]](content=m["content"]) for m in record["messages"]]
    return Sample(id=record["id"], input=messages)


@task
def vat_throughput(prompts: str = "prompts.jsonl") -> Task:
    """VAT's prompts, answered by ``generate()`` with the generation config given on the command line."""
    return Task(dataset=json_dataset(prompts, sample_fields=record_to_sample), solver=generate())
