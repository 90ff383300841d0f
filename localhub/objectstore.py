"""Content-addressed stores on disk: git loose objects (per repo) and LFS objects (shared).

Both are write-once: an object is written to a temp file beside its final place and renamed into it, so a
reader sees either nothing or the complete object, and concurrent writers of the same object are harmless.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import bad_request
from .gitobjects import (
    MAX_POINTER_SIZE,
    LfsPointer,
    TreeEntry,
    decode_tree,
    object_header,
    object_id,
    parse_lfs_pointer,
)

CHUNK = 1024 * 1024


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a partial file (temp file + ``os.replace``).

    Creates at most the last missing directory level: a write into a deleted repo fails instead of
    resurrecting part of its directory tree.
    """
    path.parent.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LooseObjectStore:
    """Git's ``objects/`` directory: zlib-compressed ``<kind> <size>\\0<body>`` files named by their sha1."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Objects are immutable, so parsed trees and blob metadata can be cached forever (bounded).
        self.read_tree = functools.lru_cache(maxsize=8192)(self._read_tree)
        self.tree_index = functools.lru_cache(maxsize=8192)(self._tree_index)
        self.blob_info = functools.lru_cache(maxsize=65536)(self._blob_info)

    def _path(self, oid: str) -> Path:
        return self.root / oid[:2] / oid[2:]

    def exists(self, oid: str) -> bool:
        """Whether object ``oid`` is stored (of any kind)."""
        return self._path(oid).is_file()

    def write(self, kind: str, body: bytes) -> str:
        """Store an object; returns its id. Idempotent."""
        oid = object_id(kind, body)
        path = self._path(oid)
        if not path.exists():
            write_atomic(path, zlib.compress(object_header(kind, len(body)) + body, 1))
        return oid

    def read(self, oid: str) -> tuple[str, bytes]:
        """(kind, body) of an object."""
        raw = zlib.decompress(self._path(oid).read_bytes())
        header, _, body = raw.partition(b"\0")
        return header.split(b" ", 1)[0].decode(), body

    def _read_tree(self, oid: str) -> tuple[TreeEntry, ...]:
        kind, body = self.read(oid)
        if kind != "tree":
            raise ValueError(f"{oid} is a {kind}, not a tree")
        return tuple(decode_tree(body))

    def _tree_index(self, oid: str) -> dict[str, TreeEntry]:
        """A tree's entries by name (path lookups)."""
        return {e.name: e for e in self.read_tree(oid)}

    def _blob_info(self, oid: str) -> tuple[int, LfsPointer | None]:
        """(size of the blob, the LFS pointer it holds if any), decompressing only what is needed."""
        with self._path(oid).open("rb") as f:
            d = zlib.decompressobj()
            head = b""
            while b"\0" not in head:
                chunk = f.read(64)
                if not chunk:
                    raise ValueError(f"corrupt object {oid}")
                head += d.decompress(chunk)
            header, _, rest = head.partition(b"\0")
            size = int(header.split(b" ", 1)[1])
            if size > MAX_POINTER_SIZE:
                return size, None
            rest += d.decompress(f.read())
            return size, parse_lfs_pointer(rest[:size])

    def iter_blob(self, oid: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream ``length`` bytes (all by default) of a blob's body from offset ``start``, inflating as it goes."""
        remaining = float("inf") if length is None else length
        to_skip: int | None = None  # set once the "<kind> <size>\\0" header has been passed
        pending = b""
        d = zlib.decompressobj()
        with self._path(oid).open("rb") as f:
            while remaining > 0:
                chunk = f.read(CHUNK)
                data = d.decompress(chunk) if chunk else d.flush()
                if to_skip is None:
                    pending += data
                    nul = pending.find(b"\0")
                    if nul < 0:
                        if not chunk:
                            return
                        continue
                    data, pending, to_skip = pending[nul + 1 :], b"", start
                if to_skip:
                    cut = min(to_skip, len(data))
                    data, to_skip = data[cut:], to_skip - cut
                if data:
                    data = data[: int(min(len(data), remaining))]
                    remaining -= len(data)
                    yield data
                if not chunk:
                    return


class LfsStore:
    """LFS objects, named by the sha256 of their content, shared by all repos (``lfs/ab/cd/<sha256>``)."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp

    def path(self, oid: str) -> Path:
        """Where object ``oid`` is (or would be) stored: ``<root>/ab/cd/<oid>``."""
        return self.root / oid[:2] / oid[2:4] / oid

    def has(self, oid: str) -> bool:
        """Whether object ``oid`` is stored (then complete: objects appear by rename)."""
        return self.path(oid).is_file()

    def size(self, oid: str) -> int | None:
        """Size in bytes of stored object ``oid``, or None when it is not stored."""
        try:
            return self.path(oid).stat().st_size
        except FileNotFoundError:
            return None

    def receive(self, chunks: Iterable[bytes], oid: str, size: int) -> None:
        """Stream ``chunks`` to disk, check sha256 and size against the expected ones, then store the object.

        Raises a 400 HubError (and keeps nothing) when the content does not match.
        """
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix="lfs-")
        try:
            digest = hashlib.sha256()
            received = 0
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    digest.update(chunk)
                    received += len(chunk)
                    f.write(chunk)
            if received != size:
                raise bad_request(f"Size mismatch: expected {size} bytes, received {received}")
            if digest.hexdigest() != oid:
                raise bad_request(f"Checksum mismatch: the uploaded content does not hash to {oid}")
            final = self.path(oid)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def iter_object(self, oid: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream ``length`` bytes (all by default) of an object from offset ``start``."""
        with self.path(oid).open("rb") as f:
            f.seek(start)
            remaining = float("inf") if length is None else length
            while remaining > 0:
                chunk = f.read(int(min(CHUNK, remaining)))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk
