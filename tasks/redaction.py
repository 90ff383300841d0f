"""Removing secrets from configs and metadata before they leave the machine (product.md §3)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

REDACTED = "<redacted>"

# Keys whose values are credentials are told apart by their words (``X-API-Key`` → x, api, key;
# ``aws_secret_access_key`` → aws, secret, access, key; ``hfToken`` → hf, token), so that any spelling matches.
_KEY_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SECRET_WORDS = frozenset(
    {"secret", "secrets", "password", "passwords", "passwd", "passphrase", "credential", "credentials",
     "authorization", "apikey", "apikeys"}
)  # fmt: skip
# "...key(s)" after one of these words: api_key, access-key, private_key; but not sort_key or primary_key.
_KEY_QUALIFIERS = frozenset({"api", "access", "private", "auth", "signing", "encryption", "client", "account"})
# "...token" is a credential (hf_token, access_token, token) unless a tokenizer's token (eos_token) or a count.
_TOKENIZER_WORDS = frozenset({"bos", "eos", "pad", "unk", "sep", "cls", "mask", "special", "start", "end", "stop"})
_TOKEN_QUALIFIERS = frozenset({"api", "access", "auth", "hf", "bearer", "refresh", "id", "session"})
# Token-shaped values, wherever they appear: Hugging Face, OpenAI-style and NVIDIA keys, bearer headers.
_SECRET_VALUE = re.compile(
    r"\b(hf_[A-Za-z0-9]{16,}|sk-[A-Za-z0-9_\-]{16,}|nvapi-[A-Za-z0-9_\-]{16,})\b|Bearer\s+\S+"
)
# URLs, alone or inside text (less the punctuation that ends a sentence): an endpoint may carry a key in its query
# (``?api-key=``) or a password before its host.
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>]*[^\s\"'<>.,;:!?)\]}]")
# An environment variable *name* (Data Designer's `api_key: NVIDIA_API_KEY`) is a reference, not a secret. A
# name has an underscore (or is set here); an all-caps key such as `PK1A2B3C4D5E6F7G8H9J` does not.
ENV_VAR_NAME = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$")


def is_secret_key(key: str) -> bool:
    """True for keys that hold credentials (``api_key``, ``X-API-Key``, ``hf_token``, ``aws_secret_access_key``,
    ``api_keys``...), False for ``max_tokens``, ``eos_token``, ``sort_key`` and the like."""
    words = [w.lower() for w in _KEY_WORD.findall(key)]
    if not words:
        return False
    if _SECRET_WORDS.intersection(words):
        return True
    last, before = words[-1], words[-2] if len(words) > 1 else ""
    if last in ("key", "keys"):
        return before in _KEY_QUALIFIERS
    if last == "token":
        return before not in _TOKENIZER_WORDS and before not in ("max", "min", "num")
    if last == "tokens":
        return before in _TOKEN_QUALIFIERS
    return False


# Header names are few and free-form (``Ocp-Apim-Subscription-Key``, ``Cookie``, ``X-Auth``, ``xauthtoken``): any of
# these fragments marks a credential. A false positive only hides a harmless value from logs and written configs.
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|passw|passphrase|credential", re.IGNORECASE)
# Dict keys whose values map header names to values: their entries are judged by :func:`is_secret_header`.
_HEADER_MAPS = frozenset({"headers", "extra_headers", "default_headers", "http_headers"})


def is_secret_header(name: str) -> bool:
    """True for HTTP header names that carry credentials (``Authorization``, ``X-API-Key``,
    ``Ocp-Apim-Subscription-Key``, ``Cookie``, ``X-Auth``...). The one rule for headers: what is scrubbed from
    errors and logs, redacted from written configs, and left out of ``config_hash``."""
    return bool(_SECRET_HEADER.search(name)) or is_secret_key(name)


def _is_env_reference(value: str) -> bool:
    return bool(ENV_VAR_NAME.match(value)) or (value.isupper() and value in os.environ)


def redact_secrets(value: Any, known_secrets: Iterable[str] = ()) -> Any:
    """Return a copy of ``value`` with credentials replaced by ``"<redacted>"``.

    Redacts: values of credential keys, judged by :func:`is_secret_header` inside a ``headers`` or
    ``extra_headers`` mapping (except environment-variable names, which are references); passwords and
    credential query parameters of URLs anywhere (:func:`redact_url`); token-shaped strings anywhere; and every
    occurrence of a ``known_secrets`` string (the token in use).
    """
    secrets = sorted({s for s in known_secrets if s and len(s) >= 6}, key=len, reverse=True)

    def scrub_text(text: str) -> str:
        # URLs first: a known secret replaced inside one would cut it short (``<`` ends a URL).
        text = _URL.sub(lambda m: _redact_url_or_all(m.group()), text)
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        return _SECRET_VALUE.sub(REDACTED, text)

    def walk(node: Any, key: str | None, headers: bool = False) -> Any:
        if isinstance(node, dict):
            inner = key is not None and key.lower() in _HEADER_MAPS
            return {k: walk(v, str(k), inner) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [walk(v, key, headers) for v in node]
        if isinstance(node, str):
            secret = key is not None and (is_secret_header(key) if headers else is_secret_key(key))
            if secret and node and not _is_env_reference(node):
                return REDACTED
            return scrub_text(node)
        return node

    return walk(value, None)


# In a URL's query, a bare ``key`` (Google's APIs), ``sig`` (Azure SAS) or ``code`` (Azure Functions) is a credential.
_URL_SECRET_PARAMS = frozenset({"key", "sig", "signature", "code"})


def redact_url(url: str) -> str:
    """``url`` with its password and the values of credential-named query parameters (``?api-key=``) redacted;
    the rest as written (a URL without credentials is returned unchanged).

    Raises:
        ValueError: ``url`` cannot be parsed (an unbalanced ``[`` in its host, say).
    """

    def secret(name: str) -> bool:
        name = unquote_plus(name)
        return is_secret_key(name) or name.lower() in _URL_SECRET_PARAMS

    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}:{REDACTED}@{host}"
    # Pair by pair, untouched pairs kept byte for byte: re-encoding them would rewrite what is not a secret.
    pairs = [pair.partition("=") for pair in parts.query.split("&")] if parts.query else []
    query = "&".join(f"{k}={REDACTED}" if sep and secret(k) else k + sep + v for k, sep, v in pairs)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _redact_url_or_all(url: str) -> str:
    # A URL that does not parse may still hold a credential: none of it is kept.
    try:
        return redact_url(url)
    except ValueError:
        return REDACTED
