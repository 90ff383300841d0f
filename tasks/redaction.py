"""Removing secrets from configs and metadata before they leave the machine (product.md §3)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "<redacted>"

# Keys whose values are credentials. Counters such as `max_tokens` or `num_tokens` are not.
_SECRET_KEY = re.compile(
    r"(^|_|-)(api_?key|apikey|access_?token|auth_?token|hf_?token|token|secret|client_?secret|password|passwd"
    r"|authorization|private_?key|credentials?)$",
    re.IGNORECASE,
)
# Token-shaped values, wherever they appear: Hugging Face, OpenAI-style and NVIDIA keys, bearer headers.
_SECRET_VALUE = re.compile(
    r"\b(hf_[A-Za-z0-9]{16,}|sk-[A-Za-z0-9_\-]{16,}|nvapi-[A-Za-z0-9_\-]{16,})\b|Bearer\s+\S+"
)
# An environment variable *name* (Data Designer's `api_key: NVIDIA_API_KEY`) is a reference, not a secret.
_ENV_VAR_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def is_secret_key(key: str) -> bool:
    """True for keys that hold credentials (``api_key``, ``hf_token``...), False for ``max_tokens`` and the like."""
    return bool(_SECRET_KEY.search(key))


def redact_secrets(value: Any, known_secrets: Iterable[str] = ()) -> Any:
    """Return a copy of ``value`` with credentials replaced by ``"<redacted>"``.

    Redacts: values of credential keys (except environment-variable names, which are references);
    token-shaped strings anywhere; and every occurrence of a ``known_secrets`` string (the token in use).
    """
    secrets = sorted({s for s in known_secrets if s and len(s) >= 6}, key=len, reverse=True)

    def scrub_text(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        return _SECRET_VALUE.sub(REDACTED, text)

    def walk(node: Any, key: str | None) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, str(k)) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [walk(v, key) for v in node]
        if isinstance(node, str):
            if key is not None and is_secret_key(key) and node and not _ENV_VAR_NAME.match(node):
                return REDACTED
            return scrub_text(node)
        return node

    return walk(value, None)
