"""Model providers that LiteLLM does not ship, registered as LiteLLM custom providers.

``runner.providers.local`` serves GGUF models in-process (the embedded default, ``local/smollm2-135m``).
It imports ``litellm`` and ``xllamacpp``, so it is not imported here: importing this package stays cheap.
"""

import importlib
from collections.abc import Iterable

PROVIDER_MODULES: dict[str, str] = {
    "local": "runner.providers.local",
    "sim": "runner.providers.sim",
    "mock": "runner.providers.mock",
}
"""Model-string prefix → module whose ``register()`` makes LiteLLM serve it (imported only when used)."""


def register_for(models: Iterable[str]) -> None:
    """Register the custom providers that the given model strings need (``local/...``, ``sim/...``)."""
    for prefix in sorted({m.split("/", 1)[0] for m in models}):
        module = PROVIDER_MODULES.get(prefix)
        if module:
            importlib.import_module(module).register()
