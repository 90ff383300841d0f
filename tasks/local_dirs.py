"""Where the project keeps files on this machine: its cache, and the folders generate-then-push writes."""

from __future__ import annotations

import os
from pathlib import Path


def _user_cache_root() -> Path:
    """``prefect-hf-datasets`` in the user cache directory (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "prefect-hf-datasets"


def cache_dir() -> Path:
    """The project's cache of file digests and rendered cards (``HFDS_CACHE_DIR``, else the user cache root)."""
    return Path(os.environ.get("HFDS_CACHE_DIR") or _user_cache_root())


def work_dir() -> Path:
    """Where generate-then-push writes its dataset folders (``HFDS_WORK_DIR``, else ``runs`` in the cache root)."""
    return Path(os.environ.get("HFDS_WORK_DIR") or _user_cache_root() / "runs")
