"""``LocalHub``: the embeddable server object (lifecycle, users, faults, request log, stats)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from .api import HubApi, HubConfig
from .faults import FaultInjector, RequestLog, RequestRecord
from .server import HubHTTPServer, ServerState
from .storage import DEFAULT_BRANCH, Storage

DEFAULT_USER = "local"
DEFAULT_TOKEN = "hf_local_token"  # noqa: S105 - documented default for local use


class LocalHub:
    """A Hugging Face Hub-compatible server on ``host:port``, storing everything under ``data_dir``.

    ``users`` maps user names to tokens (default: ``{"local": "hf_local_token"}``); each user owns the namespace
    of its name. ``port=0`` picks a free port (read ``hub.port``/``hub.url`` after ``start()``).
    ``page_size`` is the tree/commits page size (small values exercise the clients' pagination).
    """

    def __init__(
        self,
        data_dir: Path | str,
        port: int = 0,
        users: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        page_size: int = 1000,
        *,
        lfs_multipart_threshold: int | None = None,
        lfs_chunk_size: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.users: dict[str, str] = dict(users) if users else {DEFAULT_USER: DEFAULT_TOKEN}
        self.config = HubConfig(page_size=page_size)
        if lfs_multipart_threshold is not None:
            self.config.lfs_multipart_threshold = lfs_multipart_threshold
        if lfs_chunk_size is not None:
            self.config.lfs_chunk_size = lfs_chunk_size
        self.faults = FaultInjector()
        self._log = RequestLog()
        self._port = port
        self._server: HubHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._storage: Storage | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> LocalHub:
        """Serve in a background (daemon) thread; returns self."""
        if self._server is not None:
            raise RuntimeError("LocalHub already started")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._storage = Storage(self.data_dir)
        state = ServerState(HubApi(self._storage, self.users, self.config), self.faults, self._log)
        self._server = HubHTTPServer((self.host, self._port), state)
        self._port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"localhub-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and disconnect every client (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> LocalHub:
        return self.start() if self._server is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the hub is serving: between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The port served; with ``port=0``, the one the system picked, known after :meth:`start`."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL for clients (``HF_ENDPOINT``): ``http://host:port``, 127.0.0.1 for a wildcard host."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self._port}"

    # --- tunables ----------------------------------------------------------------------------------------------

    @property
    def page_size(self) -> int:
        """Page size of tree and commit listings; settable while serving (at least 1)."""
        return self.config.page_size

    @page_size.setter
    def page_size(self, value: int) -> None:
        if value < 1:
            raise ValueError("page_size must be >= 1")
        self.config.page_size = value

    # --- observation -------------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """Snapshot of the request log (admin routes excluded)."""
        return self._log.snapshot()

    def clear_requests(self) -> None:
        """Empty the request log (and so reset :meth:`stats`)."""
        self._log.clear()

    def stats(self) -> dict[str, Any]:
        """Totals since start or the last ``clear_requests``: requests, bytes_in/out, lfs_bytes_in, commits..."""
        return self._log.stats()

    def commit_count(self, repo_id: str, repo_type: str = "dataset", revision: str = DEFAULT_BRANCH) -> int:
        """Number of commits in the first-parent history of ``revision`` (the initial commit included)."""
        storage = self._storage or Storage(self.data_dir)
        repo = storage.get(repo_type, repo_id)
        if repo is None:
            raise KeyError(f"No {repo_type} repo {repo_id}")
        return sum(1 for _ in repo.history(repo.resolve(revision)))
