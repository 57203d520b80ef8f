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

from runner.errors import VatError


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
    api_base: str | None = None
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
    api_base: str | None = None


@dataclass
class SelectionConf:
    """Which scenes a run judges."""

    split: str = "test"
    max_scenes: int | None = None
    countries: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)


@dataclass
class ExecutionConf:
    """How requests are sent."""

    concurrency: int = 8
    max_retries: int = 4
    timeout_s: float = 60.0
    backoff_s: float = 1.0
    """First retry delay; doubles per attempt (with jitter) unless the provider sends Retry-After."""
    budget_usd: float | None = None
    flush_every: int = 256
    """Responses per store write (one transaction each)."""
    progress: bool = True


@dataclass
class StoreConf:
    """Where judgments live."""

    path: str = "results/vat.duckdb"


@dataclass
class MetricsConf:
    """Every metric parameter of METRICS.md (echoed in each report's ``params``)."""

    epsilon: float = 0.01
    hub_k: int = 3
    hub_lambda: float = 0.0
    bootstrap_b: int = 1000
    ci_level: float = 0.95
    stability_b: int = 200
    subsample_frac: float = 0.8
    seed: int = 0
    min_scenes: int = 5
    rating: str = "auto"
    """auto: expected rating from logprobs when stored, else the parsed digit; or `text` / `expected`."""


@dataclass
class ReportConf:
    """What `vat report` shows."""

    plots: bool = False
    dir: str = "results/report"
    model: str | None = None
    """Only runs of this model (default: all runs in the store)."""


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
    format: OutputFormat = OutputFormat.table
    spec_dir: str = "spec"
    prompt: str = "judgment"


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (called before composing)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="vat_schema", node=VatConf)
    cs.store(group="model", name="model_schema", node=ModelConf)
    cs.store(group="execution", name="execution_schema", node=ExecutionConf)
    cs.store(group="store", name="store_schema", node=StoreConf)
    cs.store(group="selection", name="selection_schema", node=SelectionConf)


def conf_dir() -> Path:
    """The project's ``conf/`` folder (next to ``runner/``), unless VAT_CONF_DIR points elsewhere."""
    import os

    return Path(os.environ.get("VAT_CONF_DIR") or Path(__file__).resolve().parent.parent / "conf")


def compose(overrides: list[str]) -> DictConfig:
    """Compose the config from ``conf/`` with command-line style overrides; bad keys fail clearly."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import ConfigCompositionException, HydraException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=overrides)
    except OverrideParseException as exc:
        raise VatError(
            f"invalid override: {str(exc).splitlines()[0]}; write key=value (see `vat --help`)", 2
        ) from None
    except (ConfigCompositionException, HydraException, OmegaConfBaseException) as exc:
        raise VatError(f"config error: {_first_line(exc)}", 2) from None
    return cfg


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = str(cause).strip().splitlines()
    msg = text[0] if text else type(cause).__name__
    if "Key '" in msg and "not in struct" in msg or "Could not override" in msg:
        msg += "; check the spelling (`vat plan --cfg` prints every key)"
    return msg


def check_against_spec(cfg: DictConfig, value_ids: list[str], strategy_ids: list[str]) -> None:
    """Fail with a did-you-mean when ``target`` or ``strategy`` names no spec document."""
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
