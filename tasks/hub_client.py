"""The Hub client every task uses: ``HfApi``, with a bound on how long one request may wait.

huggingface_hub 2.x creates its shared HTTP client with ``timeout=None``, and ``repo_info`` passes
``timeout=None`` explicitly. A request the Hub never answers (a stalled proxy, a TCP connection left half-open by
a network blip) then holds the push forever, and a nightly run never ends nor fails. So:

- `hub_api` gives huggingface_hub's client factory a timeout, once per process, so that every client it creates
  has one (it creates a new one after a connection error): ``HFDS_HTTP_TIMEOUT`` seconds to wait for an answer or
  to send a chunk (default 300, as long as the Hub may take over a large commit), at most 30 s to connect.
  ``HFDS_HTTP_TIMEOUT=0`` leaves the client as huggingface_hub makes it;
- calls that take a ``timeout`` argument get `request_timeout` from the caller (``repo_info``).

A timed-out request is a transient failure (``tasks.retry_policy``): its stage retries, and a commit whose answer
never came is looked for on the Hub before it is sent again. A client that already has a timeout (from a factory
the user installed with ``huggingface_hub.set_client_factory``) keeps its own.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable

import httpx2
from huggingface_hub import HfApi
from huggingface_hub.utils import _http, set_client_factory

TIMEOUT_ENV = "HFDS_HTTP_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0
CONNECT_TIMEOUT_S = 30.0

_install_lock = threading.Lock()
_BOUNDED = "_hfds_bounded"  # marks the factory this module installed (each process installs it once)


def request_timeout() -> float | None:
    """How long one Hub request may wait, in seconds (``HFDS_HTTP_TIMEOUT``, default 300); None: no bound.

    Raises:
        ValueError: The variable is not a number of seconds ≥ 0.
    """
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(
            f"{TIMEOUT_ENV}={raw!r} is not a number of seconds: set it to how long one Hub request may wait "
            f"(default {DEFAULT_TIMEOUT_S:.0f}), or to 0 for no limit."
        )
    return seconds or None


def _bounded(factory: Callable[[], httpx2.Client]) -> Callable[[], httpx2.Client]:
    """``factory``, whose clients get `request_timeout` unless they have a timeout of their own."""

    def make_client() -> httpx2.Client:
        client = factory()
        seconds = request_timeout()
        if seconds is not None and client.timeout == httpx2.Timeout(None):
            client.timeout = httpx2.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT_S))
        return client

    setattr(make_client, _BOUNDED, True)
    return make_client


def bound_hub_requests() -> None:
    """Make huggingface_hub's clients in this process time out (see the module docstring); idempotent."""
    with _install_lock:
        # The factory in use: huggingface_hub's default or one the user installed. The name is internal to
        # huggingface_hub, so without it the client is left as it is rather than replaced.
        current = getattr(_http, "_GLOBAL_CLIENT_FACTORY", None)
        if current is None or getattr(current, _BOUNDED, False):
            return
        set_client_factory(_bounded(current))  # also closes the current client, so the next request gets a bound


def hub_api(endpoint: str | None = None, token: str | None = None) -> HfApi:
    """An ``HfApi`` whose requests time out (`bound_hub_requests`); arguments as ``HfApi``'s."""
    request_timeout()  # a bad HFDS_HTTP_TIMEOUT fails here, before any request
    bound_hub_requests()
    return HfApi(endpoint=endpoint, token=token)
