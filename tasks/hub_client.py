"""The Hub client every task uses: ``HfApi`` (and ``HfFileSystem`` for the reader, `hub_filesystem`), with a
bound on how long one request may wait, and downloads of small files that need no writable ``HF_HOME``
(`downloaded`).

huggingface_hub 2.x creates its shared HTTP client with ``timeout=None``, and some of its calls pass
``timeout=None`` explicitly (``repo_info``, the paginated listings ``list_repo_tree``/``list_repo_commits``). A
request the Hub never answers (a stalled proxy, a TCP connection left half-open by a network blip) then holds the
push forever, and a nightly run never ends nor fails.

`hub_api` therefore gives huggingface_hub's client factory a request hook, once per process, so that every client
it creates (it creates a new one after a connection error) fills in each timeout a request leaves unset:
``HFDS_HTTP_TIMEOUT`` seconds to wait for an answer or to send a chunk (default 300, as long as the Hub may take
over a large commit), at most 30 s to connect. A timeout a request does set is kept: huggingface_hub's own 10 s
for file downloads, or the client timeout of a factory the user installed with ``huggingface_hub.set_client_factory``
(which is kept, hook added), except on the calls that pass ``timeout=None`` themselves. ``HFDS_HTTP_TIMEOUT=0``
leaves requests as huggingface_hub makes them.

A timed-out request is a transient failure (``tasks.retry_policy``): its stage retries, and a commit whose answer
never came is looked for on the Hub before it is sent again. Xet transfers (``hf_xet``, huggingface.co's storage
backend) run in their own client, with their own timeouts.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import HfApi, HfFileSystem, constants
from huggingface_hub.utils import _http, set_client_factory

logger = logging.getLogger(__name__)

# The .gitignore every preupload of the project sends (a comment: no rule). Without one, the Hub applies the repo's
# own .gitignore, and huggingface_hub leaves the files it matches out of the commit, silently.
IGNORE_NOTHING = "# hfds: every file of the commit is pushed\n"

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


def fill_timeouts(request: httpx2.Request) -> None:
    """Request hook: give each timeout the request leaves unset (connect, read, write, pool) the bound."""
    seconds = request_timeout()
    if seconds is None:
        return
    bound = httpx2.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT_S)).as_dict()
    given = request.extensions.get("timeout") or {}
    filled = {name: given[name] if given.get(name) is not None else value for name, value in bound.items()}
    request.extensions = {**request.extensions, "timeout": filled}


def _bounded(factory: Callable[[], httpx2.Client]) -> Callable[[], httpx2.Client]:
    """``factory``, whose clients run `fill_timeouts` on every request."""

    def make_client() -> httpx2.Client:
        client = factory()
        hooks = client.event_hooks
        if fill_timeouts not in hooks.get("request", []):  # a factory may hand out the same client again
            client.event_hooks = {**hooks, "request": [*hooks.get("request", []), fill_timeouts]}
        return client

    setattr(make_client, _BOUNDED, True)
    return make_client


@functools.cache  # once per process
def _warn_unbounded() -> None:
    logger.warning("This huggingface_hub has no client factory to extend: Hub requests have no timeout.")


def bound_hub_requests() -> None:
    """Make the requests of huggingface_hub's clients in this process time out (see the module docstring).

    Idempotent; installs again after the user replaced the factory with ``set_client_factory``.
    """
    with _install_lock:
        # The factory in use: huggingface_hub's default or one the user installed. The name is internal to
        # huggingface_hub; without it the client is left as it is, and said so.
        current = getattr(_http, "_GLOBAL_CLIENT_FACTORY", None)
        if current is None:
            _warn_unbounded()
            return
        if not getattr(current, _BOUNDED, False):
            set_client_factory(_bounded(current))  # also closes the current client: the next one has the hook


# huggingface.co's host names. A token of that Hub goes to these only; one of a self-hosted Hub only to its host.
HUGGINGFACE_CO_HOSTS = frozenset({"huggingface.co", "hf.co", "www.huggingface.co"})


def hub_endpoint() -> str:
    """The Hub huggingface_hub talks to: ``HF_ENDPOINT`` as it read it, else ``https://huggingface.co``."""
    return constants.ENDPOINT.rstrip("/")


def tokens_page(endpoint: str | None = None) -> str:
    """Where to create a token for ``endpoint`` (default: :func:`hub_endpoint`), as a message can say it: the
    settings page on huggingface.co; on a self-hosted Hub, that Hub (a huggingface.co token is not valid there)."""
    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    if urlsplit(endpoint).netloc.lower() in HUGGINGFACE_CO_HOSTS:
        return f"{endpoint}/settings/tokens"
    return f"the Hub that HF_ENDPOINT names ({endpoint}; a huggingface.co token is not valid there)"


def hub_api(endpoint: str | None = None, token: str | None = None) -> HfApi:
    """An ``HfApi`` whose requests time out (`bound_hub_requests`); arguments as ``HfApi``'s."""
    request_timeout()  # a bad HFDS_HTTP_TIMEOUT fails here, before any request
    bound_hub_requests()
    return HfApi(endpoint=endpoint, token=token)


def hub_filesystem(token: str | None) -> HfFileSystem:
    """An ``HfFileSystem`` whose requests time out (`bound_hub_requests`), for reading a repo's files.

    A fresh instance each time: a cached one may remember that a repo or revision did not exist a moment ago.
    """
    bound_hub_requests()  # its reads go through huggingface_hub's shared client
    return HfFileSystem(token=token if token else None, skip_instance_cache=True)


@contextmanager
def downloaded(
    api: HfApi, repo_id: str, filename: str, *, repo_type: str, revision: str, token: str | None
) -> Iterator[Path]:
    """A file of a repo at ``revision``, downloaded into a temporary folder that goes when the block ends.

    Not into huggingface_hub's cache: a container's ``HF_HOME`` may be read-only (a push failed there on its
    first download), and the push reads only small files once (``metadata.json``, the card, a checkpoint's state).

    Raises:
        huggingface_hub.errors.RemoteEntryNotFoundError: no such file (other errors as ``hf_hub_download``'s).
    """
    with tempfile.TemporaryDirectory(prefix="hfds-download-") as cache:
        yield Path(
            api.hf_hub_download(
                repo_id, filename, repo_type=repo_type, revision=revision, token=token, cache_dir=cache
            )
        )
