"""An OpenAI-compatible chat-completions client: bounded parallelism, retries with back-off, keys by reference.

One client per (provider, model alias) per process, shared by every batch running there, so
``max_parallel_requests`` bounds the requests in flight however many batches run at once. Requests carry a
``seed`` derived from the run seed, the batch, the column and the row, and answers are placed by row index, so
the output does not depend on the order in which answers arrive. API keys are read where the batch runs (from an
environment variable or a Prefect ``Secret`` block) and are never logged, put in errors, or written anywhere.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from tasks.generation.config import ModelConfig, ModelProvider
from tasks.generation.errors import ConfigError
from tasks.retry_policy import parse_retry_after

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 300.0


class LLMError(RuntimeError):
    """A chat-completions request failed for good (a 4xx other than 408/409/425/429, or retries exhausted)."""


class MissingAPIKeyError(ConfigError):
    """The API key a provider refers to is not available where the batch runs."""

    header = "Missing API key"


def resolve_api_key(provider: ModelProvider) -> str | None:
    """The provider's key: Prefect ``Secret`` block, then environment variable, then a literal key; else None.

    Raises:
        MissingAPIKeyError: a referenced block or variable does not exist.
    """
    if provider.api_key_secret:
        from prefect.blocks.system import Secret

        try:
            value = Secret.load(provider.api_key_secret).get()  # type: ignore[union-attr]
        except ValueError as exc:
            raise MissingAPIKeyError(
                f"provider {provider.name!r}: Prefect Secret block {provider.api_key_secret!r} not found ({exc})"
            ) from None
        return str(value)
    env = provider.key_env_var
    if env:
        value = os.environ.get(env)
        if not value:
            raise MissingAPIKeyError(
                f"provider {provider.name!r}: environment variable {env} is not set (export {env}=... where the "
                "batches run, or use api_key_secret with a Prefect Secret block)"
            )
        return value
    return provider.literal_api_key


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between attempts."""

    max_retries: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry ``attempt`` (0-based): the server's ``Retry-After`` when given."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER_SECONDS)
        base = min(self.backoff_seconds * (2**attempt), self.max_backoff_seconds)
        return base * random.uniform(0.8, 1.2)  # jitter spreads retries of parallel requests


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    return str(error or body)[:300]


class ChatCompletionsClient:
    """``POST {endpoint}/chat/completions`` with retries; :meth:`complete_many` runs a list in parallel, in order.

    Args:
        endpoint: Base URL (``https://api.openai.com/v1``) or the full ``.../chat/completions`` URL.
        api_key: Sent as ``Authorization: Bearer``; None sends no auth header.
        max_parallel_requests: Requests in flight at once, across all callers of this client.
        timeout: Seconds per request (connect, read, write, pool).
        retry: Retry policy for 408/409/425/429/5xx, timeouts and connection errors.
        extra_headers: Added to every request.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        api_key: str | None = None,
        max_parallel_requests: int = 4,
        timeout: float | None = 60.0,
        retry: RetryPolicy | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        endpoint = endpoint.rstrip("/")
        self.url = endpoint if endpoint.endswith("/chat/completions") else f"{endpoint}/chat/completions"
        self.retry = retry or RetryPolicy()
        headers = {"Content-Type": "application/json", **(extra_headers or {})}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_parallel_requests, max_keepalive_connections=max_parallel_requests
            ),
        )
        self._pool = ThreadPoolExecutor(max_workers=max_parallel_requests, thread_name_prefix="llm")

    def complete(self, body: dict[str, Any]) -> str:
        """One chat completion; returns ``choices[0].message.content``.

        Raises:
            LLMError: a non-retryable status, an unusable answer after the retries, or retries exhausted.
        """
        last = ""
        for attempt in range(self.retry.max_retries + 1):
            retry_after: float | None = None
            try:
                response = self._http.post(self.url, json=body)
            except httpx.TimeoutException:
                last = "timed out"
            except httpx.TransportError as exc:
                last = f"connection error ({type(exc).__name__})"
            else:
                if response.status_code == 200:
                    content = self._content(response)
                    if content is not None:
                        return content
                    last = "answer without choices[0].message.content"
                elif response.status_code in RETRY_STATUS:
                    last = f"HTTP {response.status_code}: {_server_message(response)}"
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                else:
                    raise LLMError(
                        f"{self.url} answered HTTP {response.status_code} for model {body.get('model')!r}: "
                        f"{_server_message(response)}"
                    )
            if attempt == self.retry.max_retries:
                break
            delay = self.retry.delay(attempt, retry_after)
            logger.warning(
                "chat completion %s (attempt %d of %d); retrying in %.2fs",
                last,
                attempt + 1,
                self.retry.max_retries + 1,
                delay,
            )
            time.sleep(delay)
        raise LLMError(f"{self.url}: gave up after {self.retry.max_retries + 1} attempts; last error: {last}")

    @staticmethod
    def _content(response: httpx.Response) -> str | None:
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        return content if isinstance(content, str) else None

    def complete_many(self, bodies: Sequence[dict[str, Any]]) -> list[str]:
        """Complete every body, at most ``max_parallel_requests`` at a time; answers in input order."""
        return list(self._pool.map(self.complete, bodies))

    def close(self) -> None:
        """Close connections and worker threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()


_clients: dict[tuple[Any, ...], ChatCompletionsClient] = {}
_clients_lock = threading.Lock()


def get_client(provider: ModelProvider, model: ModelConfig) -> ChatCompletionsClient:
    """The process-wide client for a provider, model alias and API key (the key is resolved on every call, so a
    rotated key reaches a long-lived worker)."""
    params = model.inference_parameters
    api_key = resolve_api_key(provider)
    key = (
        provider.name,
        provider.endpoint,
        hashlib.sha256(api_key.encode()).hexdigest() if api_key else None,  # the value, not where it is kept
        model.alias,
        params.max_parallel_requests,
        params.timeout,
        provider.max_retries,
        provider.retry_backoff_seconds,
        provider.max_backoff_seconds,
        tuple(sorted((provider.extra_headers or {}).items())),
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = ChatCompletionsClient(
                provider.endpoint,
                api_key=api_key,
                max_parallel_requests=params.max_parallel_requests,
                timeout=params.timeout if params.timeout is not None else 120.0,
                retry=RetryPolicy(
                    provider.max_retries, provider.retry_backoff_seconds, provider.max_backoff_seconds
                ),
                extra_headers=provider.extra_headers,
            )
            _clients[key] = client
        return client


def request_body(
    model: ModelConfig,
    provider: ModelProvider,
    *,
    prompt: str,
    system_prompt: str | None,
    seed: int,
) -> dict[str, Any]:
    """The JSON body of one row's request: messages, model, inference parameters, ``seed``, extra body."""
    params = model.inference_parameters
    messages = []
    if system_prompt is not None:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": prompt})
    body: dict[str, Any] = {"model": model.model, "messages": messages, "seed": seed}
    for name in ("temperature", "top_p", "max_tokens"):
        value = getattr(params, name)
        if value is not None:
            body[name] = value
    body.update(provider.extra_body or {})
    body.update(params.extra_body or {})
    return body
