"""Hydra structured-config schemas: a typo in any key fails at composition, not mid-run.

The YAML in ``conf/`` supplies defaults and named options; these dataclasses supply the types. The
``target`` and ``strategy`` keys name spec documents (``spec/values``, ``spec/strategies``) and are
checked against the spec index by :func:`check_against_spec`, so spec/ stays the one source of truth.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from runner.core import display
from runner.core.errors import VatError
from runner.core.paths import conf_dir
from runner.spec.params import MetricsConf


class Direction(str, Enum):
    """The intended direction of the intervention on the target value."""

    reinforce = "reinforce"
    suppress = "suppress"


class OutputFormat(str, Enum):
    """Terminal tables for people, or JSON on stdout for programs."""

    table = "table"
    json = "json"


@dataclass
class ModelConf:
    """The judged model: any LiteLLM model string, plus generation parameters (all part of the request key)."""

    name: str = "local/smollm2-135m"
    api_base: Any = None
    """Where the model is served: one URL, or a list of URLs of replicas serving the same model (requests
    are spread over them; runner.execute.replicas). Typed Any because OmegaConf has no ``str | list``."""
    api_key_env: str | None = None
    """Name of the environment variable holding the key (the key itself is never stored or printed)."""
    display_name: str | None = None
    temperature: float = 0.0
    max_tokens: int = 3
    logprobs: bool = True
    top_logprobs: int = 5
    samples: int = 1
    """Repeated samples per item (useful with temperature > 0); the sample index is part of the key."""
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Extra provider parameters passed to litellm.acompletion (part of the request key)."""


@dataclass
class CheckpointConf:
    """One post-condition model of the ``checkpoint`` strategy."""

    name: str = MISSING
    step: int | None = None
    api_base: Any = None
    """One URL, or a list of replicas serving this checkpoint (a pool, as ``model.api_base``)."""


@dataclass
class SelectionConf:
    """Which scenes a run judges."""

    split: str = "test"
    max_scenes: int | None = None
    countries: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)
    train_scenes: list[str] = field(default_factory=list)
    """Few-shot demonstrations come only from these train scenes (a release pins them); empty: every one."""


@dataclass
class ExecutionConf:
    """How requests are sent."""

    concurrency: int = 8
    """Requests in flight at once, across all workers. In a sweep, the whole sweep's: the driver shares it out."""
    requests_per_minute: float | None = None
    """Most requests sent per minute, across all workers (a provider's published limit); null: no ceiling,
    the pace is learnt from the provider's 429s. In a sweep, the whole sweep's: the driver shares it out."""
    workers: int | None = None
    """Worker processes sending requests (docs/throughput.md). null: one per core for remote providers,
    at most one per 1,000 requests to send; always 1 for the in-process embedded model."""
    max_retries: int = 4
    timeout_s: float = 60.0
    backoff_s: float = 1.0
    """First retry delay; doubles per attempt (with jitter) unless the provider sends Retry-After."""
    max_retry_after_s: float = 60.0
    """Longest wait honoured when a provider sends Retry-After (a 429 asking for a day would freeze the run)."""
    budget_usd: float | None = None
    """Stop cleanly before spending more (USD). In a sweep, the whole sweep's: the driver shares it out."""
    flush_every: int = 256
    """Responses per store write (one transaction each)."""
    progress: bool = True
    mode: str = "online"
    """online: one request per call; batch: the provider's Batch API (docs/batch.md), about half the price."""
    batch_poll_s: float = 30.0
    """batch mode: seconds between polls of the in-flight batches."""
    completion_window: str = "24h"
    """batch mode: the provider's completion window (OpenAI accepts only 24h)."""
    batch_max_requests: int = 50000
    batch_max_mb: float = 190.0
    """batch mode: split a plan into batch files of at most this many requests and MB (OpenAI: 50,000, 200 MB)."""
    batch_wait_s: float | None = None
    """batch mode: stop polling after this many seconds, leaving batches in flight for the next run (null: wait)."""
    forward_env: list[str] = field(default_factory=list)
    """Sweeps: names of environment variables (API keys, AWS_*) the driver forwards to the launcher's
    workers (Ray: an in-memory runtime_env); only the names are recorded, never the values."""


@dataclass
class StoreConf:
    """Where judgments live."""

    path: str = "results/vat.duckdb"
    shards: str = "auto"
    """auto: parallel sweep jobs (joblib, ray, submitit launchers) write shards; `always` / `never`."""
    shard_dir: str | None = None
    """Sweeps: where jobs write their shards, a local folder or any fsspec URL (s3://bucket/sweep); null:
    each job's own folder. The driver ingests them at the end; `vat ingest URL` does it by hand."""
    stored_keys: str | None = None
    """Set by the sweep driver: the list of keys already stored, which a job reads instead of the store."""


@dataclass
class ReportConf:
    """What `vat report` shows."""

    plots: bool = False
    dir: str = "results/report"
    model: str | None = None
    """Only runs of this model (default: all runs in the store)."""


@dataclass
class GenerateConf:
    """`vat generate scenes|actions` (docs/dataset.md); bare keys like ``countries=[us]`` land here."""

    countries: list[str] = field(default_factory=list)
    """Country codes (or names) of the cells to write; empty: all 12."""
    topics: list[str] = field(default_factory=list)
    """Topic ids (or names); empty: all 11."""
    per_cell: int = 1
    values: list[str] = field(default_factory=list)
    """Only these values' actions (empty: all ten; a partial scene is reported incomplete)."""
    granularity: str = "value"
    """value: one action per (value, polarity); micro_value: one per (micro-value, polarity)."""
    scenes: list[str] = field(default_factory=list)
    """`generate actions`: ids of the scenes to write actions for (empty: those of countries × topics)."""
    source: str | None = None
    """`generate actions`: a folder of scene YAML (default: the spec's scenarios)."""
    out: str = "results/generated"
    prompts: str = "generation/prompts"
    judge: bool = True
    judge_model: str | None = None
    """The quality judge's LiteLLM model string (default: model.name)."""
    temperature: float = 0.7
    judge_temperature: float = 0.0
    json_mode: bool = True
    """Ask the provider for a JSON object (response_format); dropped where unsupported."""
    attempts: int = 2
    """Tries per item when the answer is unparseable or invalid (retries of provider faults are separate)."""
    split: str = "auto"
    """Split of new scenes: auto (about 30 % test, by a hash of the id), train or test."""
    overwrite: bool = False
    """Rewrite output files that exist (default: skip them, so a stopped run resumes)."""


@dataclass
class ImportConf:
    """`vat import` (docs/dataset.md); bare keys like ``source=data.csv`` land here."""

    source: str | None = None
    """A local .csv/.json/.jsonl/.parquet file or Hub-layout folder, or a Hugging Face Hub id (needs network)."""
    revision: str | None = None
    """For a Hub id: the commit, tag or branch to read (pin a commit so the import can be repeated)."""
    mapping: str | None = None
    """A YAML file holding these keys (command-line keys win over it)."""
    subset: str | None = None
    split: str = "train"
    """The dataset split to read."""
    columns: dict[str, str] = field(default_factory=dict)
    """Our field → its column (``meta.value``: key ``value`` inside the JSON-encoded column ``meta``)."""
    polarity_labels: dict[str, str] = field(default_factory=dict)
    """Dataset label → express|suppress (case-insensitive); express/suppress map to themselves."""
    country_names: dict[str, str] = field(default_factory=dict)
    topic_names: dict[str, str] = field(default_factory=dict)
    value_names: dict[str, str] = field(default_factory=dict)
    """Extra aliases → our ids, on top of the ids and names in spec/."""
    scene_split: str = "auto"
    out: str = "results/imported"
    max_rows: int | None = None
    strict_names: bool = False
    """Fail (exit 1, nothing written) when a country or topic name does not map, instead of dropping its rows."""


@dataclass
class ElicitationConf:
    """What each judgment asks (docs/elicitation.md); every choice has its own request keys.

    Chosen with ``elicitation=action|value|micro_value`` (conf/elicitation/, which also sets ``prompt``).
    """

    ask: str = "action"
    """action: one question per action, naming no value (the paper's v0.1 wording); value: each action
    judged with respect to each value (×10); micro_value: with respect to each micro-value."""
    micro_values: str = "scene"
    """ask=micro_value: the micro-values the scene's actions name (scene), or all of spec/values (all)."""
    variant: str = "base"
    """The prompt's wording: base, or a bias-control variant of the prompt spec (para1, reversed, ...)."""


@dataclass
class VatConf:
    """The root config of every verb."""

    model: ModelConf = field(default_factory=ModelConf)
    strategy: str = "fewshot_4"
    target: str = "security"
    direction: Direction = Direction.reinforce
    checkpoints: list[CheckpointConf] = field(default_factory=list)
    selection: SelectionConf = field(default_factory=SelectionConf)
    execution: ExecutionConf = field(default_factory=ExecutionConf)
    store: StoreConf = field(default_factory=StoreConf)
    metrics: MetricsConf = field(default_factory=MetricsConf)
    report: ReportConf = field(default_factory=ReportConf)
    generate: GenerateConf = field(default_factory=GenerateConf)
    importer: ImportConf = field(default_factory=ImportConf)
    format: OutputFormat = OutputFormat.table
    spec_dir: str = "spec"
    prompt: str = "judgment"
    elicitation: ElicitationConf = field(default_factory=ElicitationConf)


def register_configs() -> dict[str, Any]:
    """Register the schemas and the leaderboard entries with Hydra's ConfigStore (called before composing).

    Each valid ``leaderboard/entries/<id>.yaml`` becomes the ``model`` option ``<id>`` (so
    ``vat run model=openai__gpt-4o-mini`` works); returns the invalid entries' problems by id.
    """
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="vat_schema", node=VatConf)
    cs.store(group="model", name="model_schema", node=ModelConf)
    cs.store(group="execution", name="execution_schema", node=ExecutionConf)
    cs.store(group="store", name="store_schema", node=StoreConf)
    cs.store(group="selection", name="selection_schema", node=SelectionConf)
    return register_entries()


def register_entries(root: Path | None = None) -> dict[str, Any]:
    """Register every valid entry as a Hydra ``model`` option named by its id; return the invalid ones.

    ``vat run model=<entry id>`` then selects the entry exactly as ``model=smollm2`` selects
    ``conf/model/smollm2.yaml``; ``model.<key>=...`` overrides still apply on top.
    """
    from hydra.core.config_store import ConfigStore

    from runner.spec.entries import load_entries

    entries, problems = load_entries(root)
    cs = ConfigStore.instance()
    for entry in entries.values():
        cs.store(group="model", name=entry.id, node=ModelConf(**entry.model_conf()))
    bad = {}
    for p in problems:
        bad.setdefault(Path(p.path).stem, p)
    return bad


RENAMED_GROUPS = {"condition": "target_direction"}
"""Old Hydra group name → its new name. The old one still works in 0.1.x, with a warning; it goes in 0.2."""


def renamed_groups(overrides: list[str]) -> list[str]:
    """``+condition=x`` → ``+target_direction=x`` (any ``+``/``~`` prefix, sweeps too), warning once per name."""
    out = []
    for override in overrides:
        body = override.lstrip("+~")
        prefix = override[: len(override) - len(body)]
        key, sep, value = body.partition("=")
        if key in RENAMED_GROUPS:
            new = RENAMED_GROUPS[key]
            display.warn(
                f"`{prefix}{key}=` is deprecated: the (target, direction) group is now `{new}` "
                f'("condition" means pre/post); write `{prefix}{new}{sep}{value}` — the old name goes in 0.2'
            )
            override = f"{prefix}{new}{sep}{value}"
        out.append(override)
    return out


def compose(overrides: list[str], hydra: bool = False) -> DictConfig:
    """Compose the config from ``conf/`` with command-line style overrides; bad keys fail clearly.

    ``hydra=True`` keeps the ``hydra`` node (sweeper params, launcher) in the result.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException, HydraException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    overrides = renamed_groups(overrides)
    refuse_secret_overrides(overrides)
    invalid_entries = register_configs()
    for o in overrides:
        name = o.split("=", 1)[1] if o.startswith("model=") else None
        if name in invalid_entries:
            raise VatError(f"model={name} names an invalid entry: {invalid_entries[name]}", 2)
    _check_experiment(overrides)
    try:
        if GlobalHydra.instance().is_initialized():  # inside `vat run` (a Hydra app): same conf/
            cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=hydra)
        else:
            with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
                cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=hydra)
    except OverrideParseException as exc:
        raise VatError(
            f"invalid override: {str(exc).splitlines()[0]}; write key=value (see `vat --help`)", 2
        ) from None
    except (ConfigCompositionException, HydraException, OmegaConfBaseException) as exc:
        raise VatError(f"config error: {_first_line(exc)}", 2) from None
    return cfg


def refuse_secret_overrides(overrides: list[str]) -> None:
    """Refuse an override that would put a key into the config (and so into ``runs.config`` and ``.hydra/``)."""
    from runner.core.secrets import secret_override

    for o in overrides:
        key = secret_override(o)
        if key is not None:
            raise VatError(
                f"override {key}=... would write a secret into the run's config, the store and .hydra/; "
                "put the key in an environment variable and name it with model.api_key_env=",
                2,
            )


def _check_experiment(overrides: list[str]) -> None:
    """Refuse a group option with no file, naming the choices.

    ``experiment`` is an *optional* Hydra group, so Hydra silently ignores such a name; for
    ``elicitation`` its own message names no choice.
    """
    for o in overrides:
        key, _, name = o.lstrip("+").partition("=")
        if key not in ("experiment", "elicitation") or not name or name == "null" or "," in name:
            continue
        options = sorted(p.stem for p in (conf_dir() / key).glob("*.yaml"))
        if name not in options:
            close = difflib.get_close_matches(name, options, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise VatError(
                f"{key}={name!r} names no file in conf/{key}/; {hint}choose one of: {', '.join(options)}",
                2,
            )


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = str(cause).strip().splitlines()
    msg = text[0] if text else type(cause).__name__
    full_key = next((t.split(":", 1)[1].strip() for t in text if t.strip().startswith("full_key:")), "")
    if full_key and full_key not in msg:
        msg = f"{full_key}: {msg}"  # name the field: "Key 'nme' not in 'ModelConf'" alone does not
    if "Key '" in msg and ("not in struct" in msg or "not in '" in msg) or "Could not override" in msg:
        msg += "; check the spelling (`vat plan --cfg job` prints every key)"
    elif "Ambiguous value" in msg:
        msg += "; add -m to sweep over the values, or write key=[a,b] for a list"
    return msg


_MINIMUM: tuple[tuple[str, float, bool], ...] = (
    # (key, bound, strict): a value past the bound would silently skip work (max_retries=-1 sends
    # nothing, max_scenes=-1 drops a scene) or fail every request (timeout_s=0).
    ("selection.max_scenes", 1, False),
    ("execution.concurrency", 1, False),
    ("execution.workers", 1, False),
    ("execution.max_retries", 0, False),
    ("execution.timeout_s", 0, True),
    ("execution.backoff_s", 0, False),
    ("execution.flush_every", 1, False),
    ("execution.budget_usd", 0, False),
    ("execution.requests_per_minute", 0, True),
    ("model.samples", 1, False),
    ("execution.max_retry_after_s", 0, False),
    ("model.max_tokens", 1, False),
    ("model.temperature", 0, False),
    ("model.top_logprobs", 0, False),
)


def check_ranges(cfg: DictConfig) -> None:
    """Reject numeric settings outside their meaningful range, naming the key and the bound."""
    for key, bound, strict in _MINIMUM:
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        if value < bound or (strict and value == bound):
            op = ">" if strict else "≥"
            raise VatError(f"{key}={value} is out of range; set {key} to a number {op} {bound}", 2)


def api_base_pool(value: Any, key: str = "model.api_base") -> str | tuple[str, ...] | None:
    """``model.api_base`` as a request carries it: None, one URL (a string, as given), or a tuple of URLs.

    A one-URL list is that URL, so its requests are exactly those of the string. Raises VatError (one
    sentence naming ``key``) on an empty list or an entry that is not an http(s) URL.
    """
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list | tuple) and not OmegaConf.is_list(value):
        raise VatError(
            f"{key}={value!r} is neither a URL nor a list of URLs; write {key}=http://host:8000/v1", 2
        )
    bases = tuple(value)
    if not bases:
        raise VatError(
            f"{key}=[] lists no server; give one URL, a list such as {key}=[http://host1:8000/v1,"
            f"http://host2:8000/v1], or drop {key} for the provider's default",
            2,
        )
    for i, base in enumerate(bases):
        if not isinstance(base, str) or not base.startswith(("http://", "https://")):
            raise VatError(f"{key}[{i}]={base!r} is not a URL; write each replica as http://host:port/v1", 2)
    return bases[0] if len(bases) == 1 else bases


def check_against_spec(cfg: DictConfig, value_ids: list[str], strategy_ids: list[str]) -> None:
    """Fail with a did-you-mean when ``target`` or ``strategy`` names no spec document (and on bad ranges)."""
    check_ranges(cfg)  # here because every verb that compiles a plan passes through this check
    for key, options in (("target", value_ids), ("strategy", strategy_ids)):
        got = str(cfg[key])
        if got not in options:
            close = difflib.get_close_matches(got, options, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise VatError(
                f"{key}={got!r} is not defined in spec/; {hint}choose one of: {', '.join(options)}", 2
            )


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """A plain, JSON-serialisable dict of the resolved config."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # type: ignore[return-value]
