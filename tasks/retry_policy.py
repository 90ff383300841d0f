"""Which Hub failures a stage retries, and how long it waits first (product.md §7).

Transient: 429 (after the wait the Hub asks for), 408, 425, 5xx but 501 and 505, timeouts and dropped connections, and the commit
conflicts 409/412 (the stage re-reads the branch and commits again). Everything else (401, 403, 404, bad
input) fails at once with the Hub's message: retrying cannot fix it. So do the settings that stop every request
before it leaves the process, although they raise network errors: ``HF_HUB_OFFLINE`` (``OfflineModeIsEnabled``, a
``ConnectionError``) and an ``HF_ENDPOINT`` without ``https://`` (``UnsupportedProtocol``, a ``TransportError``).

hf_xet, which uploads large files to huggingface.co's storage, reports every HTTP failure of its own requests (its
token from the Hub, the storage's answers) as a ``ConnectionError`` that names the status: a refusal among them
(4xx but 408/429, e.g. a Hub without Xet storage, or one refusing the upload) is classified as the Hub's 4xx is.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx
import httpx2
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import parse_ratelimit_headers

logger = logging.getLogger(__name__)

# 5xx are the server's and pass (a proxy's 520-524, an overloaded server's 529), except these two.
_PERMANENT_5XX = frozenset({501, 505})
# A commit refused because the branch moved since its parent (another writer): the stage plans it again.
_COMMIT_CONFLICT = 412
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    httpx2.TransportError,
    httpx.TransportError,
    ConnectionError,
    TimeoutError,
)
# How hf_xet 1.x words an HTTP failure in the ConnectionError it raises: "... HTTP status client error (403 Forbidden)".
_XET_HTTP_STATUS = re.compile(r"HTTP status (?:client|server) error \((\d{3})\b")
# Network errors raised before any request is sent, by a setting of this process (see the module docstring).
_SETTING_ERRORS: tuple[type[BaseException], ...] = (
    OfflineModeIsEnabled,
    httpx2.UnsupportedProtocol,
    httpx.UnsupportedProtocol,
)


def transient_status(status: int) -> bool:
    """Whether an HTTP answer with ``status`` may succeed when asked again later: 408, 409, 425, 429, and 5xx
    but 501 and 505. Shared by the Hub's tasks and the LLM client."""
    return status in (408, 409, 425, 429) or (500 <= status <= 599 and status not in _PERMANENT_5XX)


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a Hub error, if it has one."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return int(status) if isinstance(status, int) else None


def reported_status(exc: BaseException) -> int | None:
    """The HTTP status a failure reports: the Hub's answer, else the one an hf_xet ``ConnectionError`` in its chain
    names (None: no answer, e.g. a dropped connection)."""
    status = http_status(exc)
    if status is None:
        status = next((s for e in _causes(exc) if (s := _xet_http_status(e)) is not None), None)
    return status


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from (huggingface_hub wraps failed LFS uploads in RuntimeError)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same request later can succeed (judged by the first Hub or network error)."""
    for error in _causes(exc):
        if isinstance(error, HfHubHTTPError):
            status = http_status(error)
            return status is None or status == _COMMIT_CONFLICT or transient_status(status)
        if isinstance(error, _SETTING_ERRORS):
            return False
        if isinstance(error, _NETWORK_ERRORS):
            status = _xet_http_status(error)
            return status is None or transient_status(status)
    return False


def _xet_http_status(error: BaseException) -> int | None:
    """The HTTP status an hf_xet ``ConnectionError`` reports (see the module docstring), if it reports one."""
    if not isinstance(error, ConnectionError):
        return None
    found = _XET_HTTP_STATUS.search(str(error))
    return int(found.group(1)) if found else None


def one_line(message: str) -> str:
    """An error message on one line: whitespace collapsed, the Hub's request ids left out."""
    return re.sub(r"\(Request ID: [^)]*\)", "", " ".join(message.split())).strip()


def describe_failure(exc: BaseException) -> str:
    """One line saying why: each message of the cause chain, whitespace collapsed, request ids left out."""
    parts: list[str] = []
    for error in _causes(exc):
        text = one_line(str(error))
        if text and not any(text in p for p in parts):
            parts.append(text)
    return f"{type(exc).__name__}: " + " <- ".join(parts) if parts else type(exc).__name__


def may_have_landed(exc: BaseException) -> bool:
    """True when a request may have been applied although it failed: no answer, or a 5xx/timeout answer."""
    if isinstance(exc, HfHubHTTPError):
        status = http_status(exc)
        return status is None or status >= 500 or status == 408
    return is_transient(exc)


def timed_out(exc: BaseException) -> bool:
    """True when someone gave up waiting: the client (a timeout), or a gateway in front of the Hub (504, as
    huggingface.co answers a commit that takes longer than its limit). The Hub may still be working on it."""
    return any(
        isinstance(e, httpx2.TimeoutException | httpx.TimeoutException | TimeoutError) or http_status(e) == 504
        for e in _causes(exc)
    )


def retry_after_seconds(exc: BaseException) -> float | None:
    """The wait a 429 asks for, from ``RateLimit`` (``"api";r=0;t=N``) or ``Retry-After`` headers (of the first
    Hub answer in the cause chain: a stage wraps some failures)."""
    for error in _causes(exc):
        status = http_status(error)
        if status is not None:
            return rate_limit_wait(status, error.response.headers) if status == 429 else None  # type: ignore[attr-defined]
    return None


def rate_limit_wait(status: int | None, headers: Mapping[str, str]) -> float | None:
    """The wait a 429 answer with these headers asks for (None for another status, or no usable header)."""
    if status != 429:
        return None
    info = parse_ratelimit_headers(headers)
    if info is not None and info.remaining == 0:
        return float(info.reset_in_seconds)
    return parse_retry_after(next((v for k, v in headers.items() if k.lower() == "retry-after"), None))


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None  # not negative, not NaN
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def max_rate_limit_wait() -> float:
    """Upper bound on one rate-limit wait (``HFDS_MAX_RATE_LIMIT_WAIT`` seconds, default 300)."""
    return float(os.environ.get("HFDS_MAX_RATE_LIMIT_WAIT", "300"))


def wait_before_retry(exc: BaseException) -> None:
    """Sleep as long as a 429 asks (bounded), so the task's next attempt is not refused again."""
    wait = retry_after_seconds(exc)
    if wait:
        wait = min(wait, max_rate_limit_wait())
        logger.warning("The Hub is rate limiting; waiting %.0f s before the retry.", wait)
        time.sleep(wait)


def retry_options() -> dict[str, Any]:
    """Prefect task options of every task that calls the Hub: retries of transient failures only, with
    exponential back-off (``HFDS_STAGE_RETRY_DELAY`` seconds first, default 5; ``HFDS_STAGE_RETRIES``, default 4:
    5, 10, 20, 40 s; tests shrink them)."""
    base = float(os.environ.get("HFDS_STAGE_RETRY_DELAY", "5"))
    delays = [base * 2**i for i in range(int(os.environ.get("HFDS_STAGE_RETRIES", "4")))]
    return {
        "retries": len(delays),
        "retry_delay_seconds": delays,
        "retry_jitter_factor": 0.2,
        "retry_condition_fn": retry_transient_only,
    }


def retry_transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry a task only for transient Hub failures, after the wait a 429 asks.

    Prefect asks only while the task has retries left, so a 429 on the last attempt fails at once.
    """
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as read_error:  # a result that cannot be read is not worth a retry
        exc = read_error
    transient = isinstance(exc, BaseException) and is_transient(exc)
    if transient:
        wait_before_retry(exc)
    return transient
