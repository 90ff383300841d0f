"""Content digests of local files, remembered across runs by file identity (like git's index).

A re-push of an unchanged folder should cost a stat per file, not a read: the sha256 (LFS id) and git blob
sha1 (regular-file id) of each file are kept in a small SQLite table keyed by path, size, mtime and inode. An
entry written less than two seconds after the file's mtime is not trusted later ("racy" timestamps: a write in
the same clock tick would keep size and mtime), so a same-size edit is never missed.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from pathlib import Path

from pydantic import BaseModel

from tasks.local_dirs import cache_dir

_RACY_SECONDS = 2.0
_CHUNK = 1 << 20


class FileDigest(BaseModel):
    """The two ids the Hub uses for a file's content."""

    sha256: str
    git_sha1: str
    size: int


def _default_db_path() -> Path:
    return cache_dir() / "digests.sqlite"


def compute_digest(path: Path) -> FileDigest:
    """Read ``path`` once and compute its sha256 and git blob sha1."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha256.update(chunk)
            git.update(chunk)
    return FileDigest(sha256=sha256.hexdigest(), git_sha1=git.hexdigest(), size=size)


def bytes_digest(data: bytes) -> FileDigest:
    """Digest of in-memory content (the rendered card, the rewritten metadata)."""
    git = hashlib.sha1(f"blob {len(data)}\0".encode() + data, usedforsecurity=False)
    return FileDigest(sha256=hashlib.sha256(data).hexdigest(), git_sha1=git.hexdigest(), size=len(data))


class DigestCache:
    """Digests of files by identity, persisted in SQLite; safe to share between threads and processes."""

    def __init__(self, db_path: Path | None = None) -> None:
        self.db_path = db_path or _default_db_path()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        # Files written seconds ago are not stored in the table (racy mtime); remembering them for this process
        # keeps the content key and the commit of one push from hashing them twice.
        self._memo: dict[tuple[str, int, int, int, int], FileDigest] = {}

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is None:
            try:
                self.db_path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.db_path, timeout=10, check_same_thread=False)
                # ctime too, as git's index does: a copy that keeps the mtime (cp -p, rsync -t) changes it.
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS file_digests (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
                    "ctime_ns INTEGER, ino INTEGER, sha256 TEXT, git_sha1 TEXT)"
                )
                self._conn = conn
            except (sqlite3.Error, OSError):  # OSError: a cache folder that cannot be made (read-only home)
                return None  # digests are then computed every time, nothing breaks
        return self._conn

    def digest(self, path: Path) -> FileDigest:
        """The digest of ``path``, from the table when the file is unchanged, else computed and stored."""
        return self.digest_many([path])[0]

    def digest_many(self, paths: list[Path]) -> list[FileDigest]:
        """Digests of ``paths``, in order; new entries are stored in one transaction."""
        results: list[FileDigest] = []
        fresh: list[tuple[str, int, int, int, int, str, str]] = []
        now = time.time()
        with self._lock:
            conn = self._connect()
            for path in paths:
                # As given, not resolved (a system call per path segment, most of a re-push's time per file): the
                # stat below follows a link, so the identity is the target's all the same.
                real = os.path.abspath(path)
                st = os.stat(real)
                identity = (real, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                if identity in self._memo:
                    results.append(self._memo[identity])
                    continue
                row = None
                if conn is not None:
                    row = conn.execute(
                        "SELECT sha256, git_sha1 FROM file_digests "
                        "WHERE path=? AND size=? AND mtime_ns=? AND ctime_ns=? AND ino=?",
                        identity,
                    ).fetchone()
                if row:
                    results.append(FileDigest(sha256=row[0], git_sha1=row[1], size=st.st_size))
                    continue
                digest = compute_digest(Path(real))
                results.append(digest)
                if now - max(st.st_mtime_ns, st.st_ctime_ns) / 1e9 > _RACY_SECONDS:
                    fresh.append((*identity, digest.sha256, digest.git_sha1))
                else:
                    self._memo[identity] = digest  # too fresh for the table; kept for this process only
            if fresh and conn is not None:
                try:
                    conn.executemany("INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?, ?, ?, ?, ?)", fresh)
                    conn.commit()
                except sqlite3.Error:
                    pass  # caching is an optimisation; a locked or full database only costs a re-read
        return results


_shared: DigestCache | None = None


def shared_digest_cache() -> DigestCache:
    """The process-wide digest cache."""
    global _shared
    if _shared is None:
        _shared = DigestCache()
    return _shared
