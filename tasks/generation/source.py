"""``from_config``: a generation config from a dict, a YAML/JSON string, a local file or an http(s) URL.

URLs of files shown on the Hub or on GitHub (``.../blob/...``) are rewritten to their raw form, so the
``builder_config.json`` link of a pushed dataset, copied from the browser, recreates the pipeline.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import yaml

from tasks.credentials import optional_token
from tasks.generation.config import BuilderConfig, parse_config
from tasks.generation.errors import ConfigError
from tasks.hub_client import HUGGINGFACE_CO_HOSTS, hub_endpoint

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# /{datasets|spaces|}/<owner>/<repo>/blob/<rev>/<path>: the Hub's file page; /resolve/ serves the file.
_HUB_BLOB = re.compile(r"^(/(?:datasets/|spaces/)?[^/]+/[^/]+)/blob/(.+)$")
_GITHUB_BLOB = re.compile(r"^/([^/]+)/([^/]+)/blob/(.+)$")


def _hub_hosts() -> set[str]:
    """huggingface.co's names and the host of the Hub huggingface_hub talks to (their file pages: /blob/)."""
    return {*HUGGINGFACE_CO_HOSTS, urlsplit(hub_endpoint()).netloc.lower()}


def _takes_the_token(url: str) -> bool:
    """Whether ``url`` is on the Hub whose token the push has: the one huggingface_hub talks to (``HF_ENDPOINT``),
    by the same scheme. huggingface.co's other names count only when that Hub is huggingface.co: the token of a
    self-hosted Hub must not reach huggingface.co with a config fetched from there, nor go out over plain http."""
    parts, endpoint = urlsplit(url), urlsplit(hub_endpoint())
    host, hub = parts.netloc.lower(), endpoint.netloc.lower()
    return parts.scheme.lower() == endpoint.scheme.lower() and (host == hub or {host, hub} <= HUGGINGFACE_CO_HOSTS)


def raw_url(url: str) -> str:
    """The raw-file URL of a Hub or GitHub file page URL; other URLs unchanged.

    ``https://huggingface.co/datasets/o/r/blob/main/builder_config.json`` →
    ``https://huggingface.co/datasets/o/r/resolve/main/builder_config.json``;
    ``https://github.com/o/r/blob/main/x.yaml`` → ``https://raw.githubusercontent.com/o/r/main/x.yaml``.
    The Hub rule also applies to the host of ``HF_ENDPOINT`` (a self-hosted Hub).
    """
    parts = urlsplit(url)
    host = parts.netloc.lower()
    if host in _hub_hosts():
        match = _HUB_BLOB.match(parts.path)
        if match:
            return urlunsplit(parts._replace(path=f"{match.group(1)}/resolve/{match.group(2)}"))
    if host in ("github.com", "www.github.com"):
        match = _GITHUB_BLOB.match(parts.path)
        if match:
            owner, repo, rest = match.groups()
            return urlunsplit(("https", "raw.githubusercontent.com", f"/{owner}/{repo}/{rest}", "", ""))
    return url


def fetch_text(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    token: str | None = None,
) -> str:
    """GET a text file over http(s), following redirects, within a timeout and a size cap.

    ``timeout`` bounds the whole fetch, not only each read: a server trickling bytes cannot hold a flow for
    longer (at most one more read timeout, for a read already waiting).

    ``token`` is sent only to the Hub huggingface_hub talks to (``HF_ENDPOINT``), by its scheme (httpx drops it on
    redirects to another host).

    Raises:
        ConfigError: another scheme, an HTTP error, a timeout, or a body larger than ``max_bytes``.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"only http and https URLs are fetched, not {scheme!r}: {url}")
    headers = {"Accept": "application/json, application/yaml, text/plain, */*"}
    if _takes_the_token(url):
        token = token if token is not None else optional_token(None, None)  # HF_TOKEN or the saved login
        if token:
            headers["Authorization"] = f"Bearer {token}"
    deadline = time.monotonic() + timeout
    try:
        with httpx.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as response:
            if response.status_code >= 400:
                raise ConfigError(f"GET {url} answered HTTP {response.status_code}")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ConfigError(f"{url} is {int(declared)} bytes, over the {max_bytes}-byte limit for configs")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise ConfigError(f"{url} is over the {max_bytes}-byte limit for configs")
                if time.monotonic() > deadline:
                    raise ConfigError(f"GET {url} timed out after {timeout} s")
                chunks.append(chunk)
    except httpx.TimeoutException:
        raise ConfigError(f"GET {url} timed out after {timeout} s") from None
    except httpx.HTTPError as exc:
        raise ConfigError(f"GET {url} failed: {type(exc).__name__}: {exc}") from None
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{url} is not UTF-8 text") from None


def parse_text(text: str, origin: str = "config") -> dict[str, Any]:
    """Parse YAML or JSON text into a mapping.

    Raises:
        ConfigError: not parseable, or not a mapping.
    """
    stripped = text.lstrip()
    try:
        data = json.loads(text) if stripped.startswith("{") else yaml.safe_load(text)
    except json.JSONDecodeError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{origin} is neither JSON nor YAML: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin} must hold a mapping, got {type(data).__name__}")
    return data


def _looks_like_path(text: str) -> bool:
    return (
        "\n" not in text and (text.endswith((".yaml", ".yml", ".json")) or os.sep in text) and ":" not in text[:2]
    )


def from_config(
    source: BuilderConfig | dict[str, Any] | str | Path,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    token: str | None = None,
) -> BuilderConfig:
    """Load a generation config in Data Designer's ``builder_config.json`` format.

    Args:
        source: A config model; a dict; a YAML or JSON string; a local path; or an http(s) URL (Hub and GitHub
            ``blob`` URLs are rewritten to raw files).
        timeout: Seconds for fetching a URL.
        max_bytes: Largest config fetched or read.
        token: Hugging Face token for private Hub repos (default: ``HF_TOKEN``); sent only to the Hub.

    Returns:
        The validated config.

    Raises:
        UnsupportedConfigError: it uses types this generator does not support (every one listed).
        ConfigError: it cannot be read or does not validate.

    Examples:
        ```python
        from tasks.generation.source import from_config

        config = from_config("examples/multilingual_greetings.yaml")
        config = from_config("https://huggingface.co/datasets/me/greetings/blob/main/builder_config.json")
        ```
    """
    if isinstance(source, BuilderConfig):
        return source
    if isinstance(source, dict):
        return parse_config(source)
    if isinstance(source, Path):
        return _from_file(source, max_bytes)
    if not isinstance(source, str):
        raise ConfigError(f"cannot read a config from {type(source).__name__}")
    text = source.strip()
    scheme = _SCHEME.match(text)
    if scheme:
        if scheme.group(1).lower() not in ("http", "https"):
            raise ConfigError(f"only http and https URLs are fetched, not {scheme.group(1)!r}: {text}")
        url = raw_url(text)
        return parse_config(parse_text(fetch_text(url, timeout=timeout, max_bytes=max_bytes, token=token), url))
    if text.startswith(("{", "[")):  # a JSON (or YAML flow) mapping or list, even with a '/' in it (a URL)
        return parse_config(parse_text(source))
    if _is_file(text):
        return _from_file(Path(text).expanduser(), max_bytes)
    if _looks_like_path(text):
        raise _not_found(text)
    return parse_config(parse_text(source))


def _not_found(text: str) -> ConfigError:
    """A missing config file; a relative path names the folder it was looked for in, since a deployment's run
    resolves it in the serve process's or worker's working directory, not where the run was started."""
    where = "" if Path(text).expanduser().is_absolute() else f" (looked for in {Path.cwd()})"
    return ConfigError(
        f"config file not found: {text}{where}; give a path on the machine that runs the flow, or an http(s) URL"
    )


def _is_file(text: str) -> bool:
    if "\n" in text or len(text) > 4096:
        return False
    try:
        return Path(text).expanduser().is_file()
    except OSError:  # e.g. a name too long for the filesystem: not a path
        return False


def _from_file(path: Path, max_bytes: int) -> BuilderConfig:
    try:
        size = path.stat().st_size
    except OSError:
        raise _not_found(str(path)) from None
    if size > max_bytes:
        raise ConfigError(f"{path} is {size} bytes, over the {max_bytes}-byte limit for configs")
    return parse_config(parse_text(path.read_text(encoding="utf-8"), str(path)))
