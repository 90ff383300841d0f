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


def keep_most_recent(folder: Path, keep: int) -> int:
    """Delete all but the ``keep`` most recently modified files of ``folder`` (a cache that a nightly run adds a
    file to each time); returns how many went. Files that vanish meanwhile (another run pruning) are skipped."""
    try:
        entries = [(p.stat().st_mtime, p) for p in folder.iterdir() if p.is_file()]
    except OSError:
        return 0
    if len(entries) <= keep:
        return 0
    entries.sort(key=lambda entry: entry[0], reverse=True)
    removed = 0
    for _, path in entries[keep:]:
        try:
            path.unlink()
            removed += 1
        except OSError:
            pass
    return removed
