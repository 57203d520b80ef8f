"""Secrets: which names hold them, which values to blank out, and which fields a config may never set.

LiteLLM reads a provider's key from the environment by the provider's own name (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``, ``AWS_SECRET_ACCESS_KEY``, ``HF_TOKEN`` ...), so the run's config may not know
which variable holds the key: :func:`redact` blanks every key-like variable's value, whatever the
config says. A provider that echoes a rejected key in a 401 would otherwise have it stored in
``errors.message``.

The same naming rule decides which fields are secrets: a key-like field (``api_key``, ``token``,
``extra_headers`` ...) may name an environment variable (``api_key_env``) but never hold a value, so a
key never reaches ``runs.config``, Hydra's ``.hydra/*.yaml`` or a bundle.
"""

from __future__ import annotations

import os
import re

_SECRET_WORDS = r"api_?key|apikey|key|token|secret|password|passwd|passphrase|credentials?|authorization|auth|bearer|cookie|headers?"
SECRET_FIELD = re.compile(rf"(?:^|[_.-])(?:{_SECRET_WORDS})(?:$|[_.-])", re.IGNORECASE)
"""A field or variable name that holds a secret (``api_key``, ``extra_headers``, ``HF_TOKEN``)."""

ENDPOINT_FIELDS = frozenset({"api_base", "base_url", "api_url", "endpoint", "url", "proxy", "http_proxy"})
"""Fields that choose where a request (and the key that goes with it) is sent."""

_KEY_SHAPES = re.compile(
    r"(?:sk|pk|rk|ak)-[A-Za-z0-9_\-]{12,}"  # OpenAI, Anthropic (sk-ant-...), and look-alikes
    r"|(?:Bearer|Basic)\s+[A-Za-z0-9._~+/\-]{8,}=*"  # an Authorization header echoed back
    r"|hf_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{30,}|gsk_[A-Za-z0-9]{20,}",
)
"""Shapes of keys that are blanked even when no variable holds them (an echoed header, a pasted key)."""

MIN_SECRET_CHARS = 8
"""Shorter values are not blanked: replacing "1" or "true" everywhere would garble every message."""

MASK = "***"


def is_secret_field(name: str) -> bool:
    """True when ``name`` (a config key or variable name) holds a secret; ``*_env`` names only point to one."""
    last = name.rsplit(".", 1)[-1]
    return not last.lower().endswith("_env") and bool(SECRET_FIELD.search(last))


def secret_values(extra: tuple[str | None, ...] = ()) -> list[str]:
    """Values of every key-like environment variable (and ``extra``), longest first, at least 8 characters."""
    found = {v for k, v in os.environ.items() if is_secret_field(k) and len(v) >= MIN_SECRET_CHARS}
    found |= {v for v in extra if v and len(v) >= MIN_SECRET_CHARS}
    return sorted(found, key=len, reverse=True)  # a key that contains another is blanked whole


def redact(text: str, extra: tuple[str | None, ...] = ()) -> str:
    """``text`` with every secret value of the environment (and ``extra``) and every key-shaped token blanked."""
    if not text:
        return text
    for value in secret_values(extra):
        text = text.replace(value, MASK)
    return _KEY_SHAPES.sub(MASK, text)


def secret_override(override: str) -> str | None:
    """The key of a command-line override that would put a secret into the config, else None.

    ``model.api_key=sk-...``, ``+model.api_key=``, ``++model.extra.api_key=``, ``model.extra={api_key: x}``,
    ``model.extra.extra_headers=...``: each would be written to ``runs.config`` and ``.hydra/``.
    """
    key, sep, value = override.lstrip("+~").partition("=")
    if not sep:
        return None
    if any(is_secret_field(part) for part in key.split(".")):
        return key
    # A dict value can carry a secret field too: model.extra={api_key: sk-...}.
    if "{" in value and any(is_secret_field(word) for word in re.findall(r"[A-Za-z_][\w-]*(?=\s*:)", value)):
        return key
    return None
