"""Git object encoding and hashing (hub-protocol §4.1).

Pure functions, no I/O: blob, tree and commit objects are serialised exactly as git does, so their ids are the
ones ``git hash-object`` would print and the on-disk repos are real (bare) git repositories.
LFS pointer files are handled here too, since an LFS file *is* a git blob holding a pointer.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MODE_FILE = "100644"
MODE_DIR = "40000"

LFS_POINTER_VERSION = "https://git-lfs.github.com/spec/v1"
_POINTER_RE = re.compile(
    rb"\Aversion https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize ([0-9]+)\n\Z"
)
# A pointer is small; anything larger is certainly a regular blob (saves decompressing big blobs to check).
MAX_POINTER_SIZE = 200


def object_header(kind: str, size: int) -> bytes:
    """The ``<kind> <size>\\0`` prefix git hashes and stores before an object's body."""
    return f"{kind} {size}\0".encode()


def object_id(kind: str, body: bytes) -> str:
    """Git object id (lowercase 40-hex sha1) of an object of ``kind`` with ``body``."""
    return hashlib.sha1(object_header(kind, len(body)) + body, usedforsecurity=False).hexdigest()


def blob_oid(data: bytes) -> str:
    """``git hash-object`` of ``data``: b"hello world\\n" -> 3b18e512dba79e4c8300dd08aeb37f8e728b8dad."""
    return object_id("blob", data)


# --- LFS pointers --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LfsPointer:
    """The content of an LFS pointer blob: which sha256 object it stands for, and that object's size."""

    oid: str
    size: int

    def encode(self) -> bytes:
        """The pointer file's bytes, exactly as git-lfs writes them (version, oid and size lines)."""
        return f"version {LFS_POINTER_VERSION}\noid sha256:{self.oid}\nsize {self.size}\n".encode()

    @property
    def pointer_size(self) -> int:
        """Length of the pointer file: 125 + len(str(size))."""
        return len(self.encode())


def parse_lfs_pointer(data: bytes) -> LfsPointer | None:
    """The pointer encoded in ``data``, or None when ``data`` is an ordinary blob."""
    if len(data) > MAX_POINTER_SIZE:
        return None
    m = _POINTER_RE.match(data)
    return LfsPointer(m.group(1).decode(), int(m.group(2))) if m else None


# --- Trees -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeEntry:
    """One line of a git tree: a file (mode 100644) or a subdirectory (mode 40000)."""

    name: str
    mode: str
    oid: str

    @property
    def is_dir(self) -> bool:
        """Whether the entry is a subdirectory (mode 40000)."""
        return self.mode == MODE_DIR


def _tree_sort_key(entry: TreeEntry) -> bytes:
    # git compares names bytewise, with directories compared as if they had a trailing "/".
    return entry.name.encode() + (b"/" if entry.is_dir else b"")


def encode_tree(entries: list[TreeEntry]) -> bytes:
    """Body of a tree object: ``<mode> <name>\\0<20-byte oid>`` per entry, in git's order."""
    return b"".join(
        f"{e.mode} {e.name}".encode() + b"\0" + bytes.fromhex(e.oid) for e in sorted(entries, key=_tree_sort_key)
    )


def decode_tree(body: bytes) -> list[TreeEntry]:
    """Inverse of :func:`encode_tree`."""
    entries: list[TreeEntry] = []
    pos = 0
    while pos < len(body):
        nul = body.index(b"\0", pos)
        mode, _, name = body[pos:nul].decode().partition(" ")
        entries.append(TreeEntry(name=name, mode=mode, oid=body[nul + 1 : nul + 21].hex()))
        pos = nul + 21
    return entries


# --- Commits ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Commit:
    """A git commit. ``title``/``description`` are the Hub's summary and description."""

    tree: str
    parents: tuple[str, ...]
    author: str
    email: str
    timestamp: int
    title: str
    description: str = ""

    @property
    def message(self) -> str:
        """The git message: title, then a blank line and the description if any; newline-terminated."""
        # Hub convention (§4.1): summary, then a blank line and the description if any, then a newline.
        return self.title + (f"\n\n{self.description}" if self.description else "") + "\n"

    def encode(self) -> bytes:
        """The commit object's body; author and committer are the same identity, in UTC (``+0000``)."""
        ident = f"{self.author} <{self.email}> {self.timestamp} +0000"
        lines = [
            f"tree {self.tree}",
            *(f"parent {p}" for p in self.parents),
            f"author {ident}",
            f"committer {ident}",
        ]
        return ("\n".join(lines) + "\n\n" + self.message).encode()


_IDENT_RE = re.compile(r"^(.*) <(.*)> (\d+) [+-]\d{4}$")


def decode_commit(body: bytes) -> Commit:
    """Inverse of :meth:`Commit.encode` (for commits this package wrote)."""
    text = body.decode()
    head, _, message = text.partition("\n\n")
    tree, parents, author, email, timestamp = "", [], "", "", 0
    for line in head.split("\n"):
        key, _, value = line.partition(" ")
        if key == "tree":
            tree = value
        elif key == "parent":
            parents.append(value)
        elif key == "author" and (m := _IDENT_RE.match(value)):
            author, email, timestamp = m.group(1), m.group(2), int(m.group(3))
    message = message.removesuffix("\n")
    title, _, description = message.partition("\n\n")
    return Commit(tree, tuple(parents), author, email, timestamp, title, description)
