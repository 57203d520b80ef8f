"""The dataset card of a bundle: Hub metadata (licence, tags, configs, features) and prose saying what the rows are."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from runner.core.hub import BUNDLE_TAG, CARD_TAG, CITATION, render_card, size_category
from runner.leaderboard.bundle.files import JUDGMENTS, MANIFEST, SIDECAR, SPLIT
from runner.leaderboard.bundle.release import ReleasePlan

LICENSE = "apache-2.0"
"""The benchmark's licence, which covers the scenes and prompts every row repeats."""


def _plain(text: str) -> str:
    """Contributed text (an entry's display name or licence) as one line without Markdown or HTML."""
    return re.sub(r"\s+", " ", re.sub(r"[`*<>\[\]()#|\\!]", " ", text)).strip()


def _dtype(kind: pa.DataType) -> str | None:
    """The ``datasets`` dtype name of a primitive Arrow type (None for any other)."""
    if pa.types.is_string(kind) or pa.types.is_boolean(kind) or pa.types.is_integer(kind):
        return "bool" if pa.types.is_boolean(kind) else str(kind)
    if pa.types.is_floating(kind):
        return f"float{kind.bit_width}"
    if pa.types.is_timestamp(kind) and kind.tz is None:
        return f"timestamp[{kind.unit}]"
    return None


def features(schema: pa.Schema) -> list[dict[str, Any]]:
    """The card's ``dataset_info.features``: each column's name and dtype, as ``datasets`` writes them.

    Judgment columns are all primitive, and naming them here spares ``vat bundle`` the ~1.2 s import
    of ``datasets``; any other type is described by ``datasets`` itself.
    """
    names = [_dtype(f.type) for f in schema]
    if None not in names:
        return [{"name": f.name, "dtype": d} for f, d in zip(schema, names, strict=True)]
    from datasets import Features

    return list(Features.from_arrow_schema(schema)._to_yaml_list())


def card_metadata(rp: ReleasePlan, schema: pa.Schema, n_rows: int, n_bytes: int) -> dict[str, Any]:
    """The card's YAML metadata: what the Hub indexes, and the config ``datasets.load_dataset`` reads."""
    return {
        "license": LICENSE,
        "language": ["en"],
        "pretty_name": f"VAT Bench judgments: {_plain(rp.entry.display_name)}, release {rp.release.id}",
        "task_categories": ["text-classification"],
        "tags": [CARD_TAG, BUNDLE_TAG, "value-alignment", "schwartz-values", "llm-evaluation"],
        "size_categories": [size_category(n_rows)],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": SPLIT, "path": JUDGMENTS.replace("-00000-of-00001", "-*")}],
            }
        ],
        "dataset_info": {
            "features": features(schema),
            "splits": [{"name": SPLIT, "num_bytes": n_bytes, "num_examples": n_rows}],
        },
    }


def bundle_card(rp: ReleasePlan, table: pa.Table) -> str:
    """The whole card (``README.md``) of the bundle of ``rp`` holding ``table``."""
    entry, release = rp.entry, rp.release
    runs = "\n".join(
        f"| {c.strategy} | {c.target} | {c.direction} | {len(c.plan.requests):,} |" for c in rp.conditions
    )
    body = f"""# VAT Bench judgments: {_plain(entry.display_name)} on release {release.id}

A submission bundle of [VAT Bench](https://arxiv.org/abs/2602.12134), the Value Alignment Tax
benchmark: every judgment the model `{_plain(entry.model)}` (leaderboard entry `{entry.id}`) gave on release
`{release.id}`, {table.num_rows:,} rows over {len(rp.conditions)} conditions. In each condition an
alignment strategy pushes one Schwartz value (the target) in one direction; the model rates each
first-person action of a scene on a 1–5 scale before (`pre`, shared by all conditions) and after
(`post`) the intervention, and the paired shifts give the tax.

- **Rows** (split `{SPLIT}`): one per (run, condition, request key). The run (`run_id`, `strategy`,
  `target`, `direction`, `condition`, `step`); the request (`request_key`, `model`, `scene_id`,
  `scene_version`, `action_id`, `value`, `micro_value`, `polarity`, `sample`, the asked value and
  variant, `messages` as JSON); the provider's answer (`text`, the parsed `rating`, null when the
  answer has none, `expected_rating` from `logprobs` as JSON, tokens, cost, latency, attempts,
  `provider_model`, `fingerprint`, `created_at`). A `pre` judgment appears once per run that shares it.
- **`{MANIFEST}`** beside the data: the release and its hash, the entry, spec hashes, config, package
  versions, every request key, the SHA-256 of the data file and of this card, and the claimed metrics.
  `{SIDECAR}`, when present, is the maintainer's signed replay record.
- **Check it**: `vat verify <this folder>` recompiles the release, re-hashes every request key,
  re-parses every rating and recomputes every metric; `vat verify <folder> replay=N` asks the provider again.
- **Licence**: the scenes and prompts are the benchmark's ({LICENSE}); the answers are the model's
  outputs ({_plain(entry.licence)}).

| strategy | target | direction | judgments |
|---|---|---|---|
{runs}

## Citation

```bibtex
{CITATION}
```
"""
    return render_card(card_metadata(rp, table.schema, table.num_rows, table.nbytes), body)
