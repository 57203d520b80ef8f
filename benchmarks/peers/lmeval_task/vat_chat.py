"""The lm-evaluation-harness side of benchmarks/bench_throughput.py: VAT's compiled chats, as they are.

lm-eval builds a chat from a task's description, few-shot split and ``doc_to_text``; VAT's prompts are
already whole chats (system prompt, few-shot turns, the item), one per JSONL line. This task class
keeps lm-eval's whole pipeline (CLI, task index, dataset loading through ``datasets``, request
building, the ``local-chat-completions`` API model with ``num_concurrent``, filters, metrics, results
table) and replaces only the prompt builder: the doc's messages go to the model's chat template
unchanged. Needs ``--apply_chat_template``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lm_eval.api.task import ConfigurableTask


class VatChat(ConfigurableTask):
    """A generate_until task whose prompt is the doc's ``messages``."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """The yaml's config, less the ``class`` key that names this class (TaskConfig has no such field)."""
        super().__init__(config={k: v for k, v in (config or {}).items() if k != "class"}, **kwargs)

    def fewshot_context(
        self,
        doc: dict[str, Any],
        num_fewshot: int,
        system_instruction: str | None = None,
        apply_chat_template: bool = False,
        fewshot_as_multiturn: bool = False,
        chat_template: Callable[..., str] | None = None,
        gen_prefix: str | None = None,
    ) -> str:
        """The doc's chat through the model's chat template (for API models: the JSON of the messages)."""
        if not (apply_chat_template and chat_template):
            raise ValueError("vat_throughput needs --apply_chat_template (its prompts are chats)")
        return chat_template([dict(m) for m in doc["messages"]])
