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
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tasks.generation.config import ModelConfig, ModelProvider
from tasks.generation.errors import ConfigError
from tasks.redaction import is_secret_header, redact_secrets, redact_url
from tasks.retry_policy import parse_retry_after, transient_status

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 300.0


def _with_advice(message: str, advice: str) -> str:
    """``message``, then ``advice`` as a sentence of its own (``message`` alone when there is no advice)."""
    if not advice:
        return message
    ends = (".", "?", "!")
    advice = advice[0].upper() + advice[1:] + ("" if advice.endswith(ends) else ".")
    return f"{message}{' ' if message.endswith(ends) else '. '}{advice}"


class LLMError(RuntimeError):
    """A chat-completions request failed for good (a 4xx other than 408/409/425/429, a 429 for a used-up quota
    (``insufficient_quota``), a 501 or 505, an answer withheld by a content filter or cut at ``max_tokens`` before
    any text, or retries exhausted).

    Its text is ``message`` followed by ``advice``.

    Attributes:
        message: What failed, without the advice.
        advice: What to do about it, where the cause is known (a used-up quota, an endpoint missing ``/v1``, a
            content filter, ``max_tokens``); empty otherwise, so that a caller with more context adds its own.
        exhausted: True when every attempt failed transiently (the endpoint down or overloaded): a later rerun
            may succeed; False when the request itself was refused (retrying it cannot help).
        row: Index of the failed request in a :meth:`ChatCompletionsClient.complete_many` call.
    """

    def __init__(self, message: str, *, advice: str = "", exhausted: bool = False, row: int | None = None) -> None:
        super().__init__(_with_advice(message, advice))
        self.message = message
        self.advice = advice
        self.exhausted = exhausted
        self.row = row


class RequestsStopped(LLMError):
    """The run was interrupted: its requests not yet sent were dropped (see :mod:`tasks.generation.stop_signal`)."""


@dataclass(frozen=True)
class Completion:
    """One answer: its text and why the model stopped (``"length"``: cut at ``max_tokens``)."""

    content: str
    finish_reason: str | None = None


@dataclass
class CallStats:
    """What happened to the requests of one :meth:`ChatCompletionsClient.complete_many` call, for its log lines.

    Attributes:
        retries: Retried attempts, by reason (``"HTTP 429"``, ``"timed out"``, ``"connection error"``,
            ``"malformed answer"``).
        on_first_retry: Called once, with the first retry's description, when a request is first retried (so a
            run waiting on a struggling endpoint says so while it waits).
    """

    retries: Counter[str] = field(default_factory=Counter)
    on_first_retry: Callable[[str], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def retried(self, reason: str, description: str) -> None:
        """Count a retry; the first one is reported through ``on_first_retry``."""
        with self._lock:
            first = not self.retries
            self.retries[reason] += 1
        if first and self.on_first_retry is not None:
            self.on_first_retry(description)


class _BadAnswer(Exception):
    """A 200 whose body is no usable completion; ``final`` when asking again cannot change it (then ``advice``
    says what can)."""

    def __init__(self, message: str, *, final: bool = False, advice: str = "") -> None:
        super().__init__(message)
        self.final = final
        self.advice = advice


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

    @classmethod
    def for_provider(cls, provider: ModelProvider) -> RetryPolicy:
        """The policy a provider's ``max_retries``, ``retry_backoff_seconds`` and ``max_backoff_seconds`` set."""
        return cls(provider.max_retries, provider.retry_backoff_seconds, provider.max_backoff_seconds)

    def backoff(self, attempt: int) -> float:
        """The back-off before retry ``attempt`` (0-based), without jitter: doubling from ``backoff_seconds``, capped
        at ``max_backoff_seconds``."""
        return min(self.backoff_seconds * (2**attempt), self.max_backoff_seconds)

    def total_backoff(self) -> float:
        """Seconds all retries of one request wait, without jitter, when the server asks for no longer."""
        return sum(self.backoff(attempt) for attempt in range(self.max_retries))

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry ``attempt`` (0-based): the back-off, or the server's ``Retry-After`` when
        longer (bounded by :data:`MAX_RETRY_AFTER_SECONDS`).

        A shorter ``Retry-After`` does not shorten the wait: an overloaded server that answers ``Retry-After: 0``
        to everything would otherwise use up every attempt in a second, while the back-off is what the config
        promises to wait out.
        """
        backoff = self.backoff(attempt) * random.uniform(0.8, 1.2)  # jitter spreads retries of parallel requests
        if retry_after is None:
            return backoff
        return max(min(retry_after, MAX_RETRY_AFTER_SECONDS), backoff)


def _text_parts(parts: list[Any]) -> str | None:
    """The text of a content given as parts (``[{"type": "text", "text": ...}]``, as some servers answer, with
    reasoning models' ``thinking`` parts left out); None when no part is text."""
    texts = [
        p["text"]
        for p in parts
        if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
    ]
    return "".join(texts) if texts else None


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return (text[:200] + "...") if len(text) > 200 else text or "(empty body)"


def _quota_exhausted(response: httpx.Response) -> bool:
    """A 429 that says the account is out of credit (OpenAI's ``insufficient_quota``): no wait brings it back."""
    if response.status_code != 429:
        return False
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and "insufficient_quota" in (str(error.get("code")), str(error.get("type")))


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return _snippet(response)
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
        # The path is extended, the query kept: Azure-style endpoints carry ``?api-version=...``.
        parts = urlsplit(endpoint)
        path = parts.path.rstrip("/")
        path = path if path.endswith("/chat/completions") else f"{path}/chat/completions"
        self._url = urlunsplit(parts._replace(path=path))
        self.url = redact_url(self._url)  # the one shown in logs and errors
        self.retry = retry or RetryPolicy()
        headers = {"Content-Type": "application/json", **(extra_headers or {})}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # What a server may echo back in an error (some proxies quote the key they refused): scrubbed from every
        # message this client logs or raises, since those reach the Prefect UI.
        self._secrets = [api_key or ""] + [v for k, v in (extra_headers or {}).items() if is_secret_header(k)]
        self._http = httpx.Client(
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_parallel_requests, max_keepalive_connections=max_parallel_requests
            ),
        )
        self._pool = ThreadPoolExecutor(max_workers=max_parallel_requests, thread_name_prefix="llm")

    def _scrub(self, text: str) -> str:
        return str(redact_secrets(text, self._secrets))

    def complete(self, body: dict[str, Any]) -> str:
        """A convenience for one request outside a batch: :meth:`request`'s text alone (batches use
        :meth:`complete_many`)."""
        return self.request(body).content

    def request(
        self, body: dict[str, Any], stats: CallStats | None = None, stop: threading.Event | None = None
    ) -> Completion:
        """One chat completion, retried on 408/409/425/429/5xx (not a 429 for a used-up quota), timeouts, dropped
        connections and malformed answers, with exponential back-off (``Retry-After`` honoured); none sent (or
        retried) once ``stop`` is set.

        Raises:
            LLMError: a non-retryable status (a 429 for a used-up quota, ``insufficient_quota``, among them), an
                answer withheld by a content filter or cut at ``max_tokens`` before any text, or retries
                exhausted.
            RequestsStopped: ``stop`` was set.
        """
        last = ""
        for attempt in range(self.retry.max_retries + 1):
            if stop is not None and stop.is_set():
                raise RequestsStopped("stopped: the run was interrupted")
            retry_after: float | None = None
            try:
                response = self._http.post(self._url, json=body)
            except httpx.TimeoutException:
                reason = last = "timed out"
            except httpx.TransportError as exc:
                reason, last = "connection error", f"connection error ({type(exc).__name__})"
            else:
                if response.status_code == 200:
                    try:
                        return self._answer(response)
                    except _BadAnswer as exc:
                        if exc.final:
                            raise LLMError(
                                self._scrub(f"{self.url}, model {body.get('model')!r}: {exc}"), advice=exc.advice
                            ) from None
                        reason, last = "malformed answer", str(exc)
                elif transient_status(response.status_code) and not _quota_exhausted(response):
                    reason = f"HTTP {response.status_code}"
                    last = f"HTTP {response.status_code}: {_server_message(response)}"
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                else:
                    raise self._refused(response, body) from None
            if attempt == self.retry.max_retries:
                break
            delay = self.retry.delay(attempt, retry_after)
            message = self._scrub(
                f"chat completion {last} (attempt {attempt + 1} of {self.retry.max_retries + 1}); "
                f"retrying in {delay:.2f}s"
            )
            logger.warning("%s", message)
            if stats is not None:
                stats.retried(reason, message)
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)
        raise LLMError(
            self._scrub(f"{self.url}: gave up after {self.retry.max_retries + 1} attempts; last error: {last}"),
            exhausted=True,
        )

    def _refused(self, response: httpx.Response, body: dict[str, Any]) -> LLMError:
        message = (
            f"{self.url} answered HTTP {response.status_code} for model {body.get('model')!r}: "
            f"{_server_message(response)}"
        )
        advice = ""
        if _quota_exhausted(response):
            advice = "the account's quota is used up: add credit or raise its limits, then rerun"
        elif response.status_code == 404 and "/v1/" not in urlsplit(self._url).path:
            # vLLM, llama.cpp, Ollama, LiteLLM... serve under /v1; a base URL without it is the usual cause.
            advice = "OpenAI-compatible servers usually serve under /v1: is the endpoint missing /v1?"
        return LLMError(self._scrub(message), advice=advice)

    @staticmethod
    def _answer(response: httpx.Response) -> Completion:
        try:
            data = response.json()
        except ValueError:
            raise _BadAnswer(f"answer is not JSON: {_snippet(response)}") from None
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content, choice = None, None
        finish_reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        if finish_reason == "content_filter":
            # The provider withholds (or cuts) the answer to this prompt; the same request gets the same verdict.
            raise _BadAnswer(
                "the provider's content filter withheld the answer (finish_reason 'content_filter')",
                final=True,
                advice="change the prompt, or the run's seed",
            )
        if isinstance(content, list):
            content = _text_parts(content)
        if content is None and finish_reason == "length":
            # A reasoning model spent max_tokens before writing any answer: the same request does it again.
            raise _BadAnswer(
                "the answer was cut at max_tokens before any text (finish_reason 'length', content null; a reasoning "
                "model may spend its tokens thinking)",
                final=True,
                advice="raise inference_parameters.max_tokens",
            )
        if not isinstance(content, str):
            raise _BadAnswer(f"answer without choices[0].message.content: {_snippet(response)}")
        return Completion(content, finish_reason if isinstance(finish_reason, str) else None)

    def complete_many(
        self,
        bodies: Sequence[dict[str, Any]],
        stats: CallStats | None = None,
        stop: threading.Event | None = None,
        on_answer: Callable[[int, Completion], None] | None = None,
    ) -> list[Completion]:
        """Complete every body, at most ``max_parallel_requests`` at a time; answers in input order.

        The first request that fails for good cancels the ones not yet sent: their answers would be thrown away.
        So does ``stop``, at once: requests already sent are left to finish in the background.

        Args:
            bodies: The request bodies.
            stats: Counts retries, for the caller's log lines.
            stop: Set when the run is interrupted.
            on_answer: Called with a body's index and its answer as soon as it arrives, in the request's thread
                (also for requests that finish after this call raised), so the caller can keep answers that a
                failed call would drop (:mod:`tasks.generation.answer_journal`). An exception it raises is the
                request's error.

        Raises:
            LLMError: with ``row`` set to the failed body's index.
            RequestsStopped: ``stop`` was set.
        """

        def one(index: int, body: dict[str, Any]) -> Completion:
            answer = self.request(body, stats, stop)
            if on_answer is not None:
                on_answer(index, answer)
            return answer

        futures: list[Future[Completion]] = [self._pool.submit(one, i, body) for i, body in enumerate(bodies)]
        try:
            while wait(futures, timeout=None if stop is None else 0.2, return_when=FIRST_EXCEPTION).not_done:
                if stop is not None and stop.is_set():
                    raise RequestsStopped("stopped: the run was interrupted")
                if any(f.done() and f.exception() is not None for f in futures):
                    break
            for row, future in enumerate(futures):
                if future.done() and not future.cancelled() and future.exception() is not None:
                    exc = future.exception()
                    if isinstance(exc, RequestsStopped):
                        raise exc
                    if isinstance(exc, LLMError):
                        raise LLMError(exc.message, advice=exc.advice, exhausted=exc.exhausted, row=row) from None
                    raise exc  # type: ignore[misc]
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()

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
                retry=RetryPolicy.for_provider(provider),
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
