"""Repositories on disk: metadata, refs, commits and tree queries.

Layout under ``data_dir`` (each repo directory is a valid bare git repository: ``git clone`` works on it)::

    repos/<type>s/<namespace>/<name>/   lower-cased, so lookups are case-insensitive
        HEAD, config                    for git
        objects/ab/cdef...              git loose objects (zlib), ids exactly as git computes them
        packed-refs                     every ref (branches, tags, refs/pr/N), rewritten atomically
        localhub.json                   repo metadata (canonical id, owner, private, created time, PR numbers and authors)
        lfs/<sha256>                    marker: this repo may reference that LFS object
    lfs/ab/cd/<sha256>                  LFS objects, shared by all repos
    tmp/                                uploads in progress (same filesystem, so completed ones are renamed)

Writes to one repo (commits, refs, settings) are serialised by a per-repo lock, so the read-modify-write of
``packed-refs`` is a compare-and-swap. Reads take no lock: objects are immutable and refs/metadata files are
replaced atomically.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import secrets
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from .attributes import GitAttributes, default_gitattributes, lfs_attributes_line
from .errors import HubError, bad_request, conflict, entry_not_found, forbidden, revision_not_found
from .gitobjects import MODE_DIR, MODE_FILE, Commit, LfsPointer, TreeEntry, decode_commit, encode_tree
from .objectstore import LfsStore, LooseObjectStore, write_atomic

DEFAULT_BRANCH = "main"
SYSTEM_AUTHOR = "system"

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX_PREFIX = re.compile(r"^[0-9a-f]{7,39}$")
_PR_REF = re.compile(r"^refs/pr/([1-9][0-9]*)$")
_REPO_PART = re.compile(r"^[\w\-.]{1,96}$")
# git check-ref-format, simplified: no control characters, spaces or ~^:?*[\ and no "..", "@{", "//".
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^/|/$|\.lock$|^\.|/\.|^@$")


def utc_iso(timestamp: float) -> str:
    """Hub date format (§2.5): always a trailing ``Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{int(timestamp * 1000) % 1000:03d}Z"


def validate_repo_id(namespace: str, name: str) -> None:
    """Client-side rules of ``validate_repo_id`` (§2.1), enforced server-side too."""
    for part in (namespace, name):
        if not _REPO_PART.match(part) or "--" in part or ".." in part:
            raise bad_request(f"Invalid repo id '{namespace}/{name}'")
    if name.endswith(".git"):
        raise bad_request(f"Invalid repo id '{namespace}/{name}': it cannot end with '.git'")


def validate_path(path: str) -> str:
    """A path in a repo: no leading ``/``, no ``\\``, no empty, ``.``, ``..`` or ``.git`` segment (422 otherwise)."""
    bad = (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\0" in path
        or any(seg in ("", ".", "..", ".git") for seg in path.split("/"))
    )
    if bad:
        raise HubError(422, f"Invalid path in repository: '{path}'")
    return path


def validate_ref_name(name: str, what: str) -> None:
    """Check a new branch or tag name (``git check-ref-format``, simplified); 400 when invalid.

    Full ref names (``refs/...``) and ``HEAD`` are refused; ``what`` (``branch``, ``tag``) names it in the message.
    """
    if not name or name.startswith("refs/") or name == "HEAD" or _BAD_REF.search(name):
        raise bad_request(f"Invalid reference for a {what}: '{name}'")


# --- Data types --------------------------------------------------------------------------------------------------


@dataclass
class RepoMeta:
    """What the Hub knows about a repo beyond git: stored as ``localhub.json``."""

    id: str  # canonical "namespace/name", as created
    type: str
    owner: str
    private: bool
    created_at: float
    uid: str = field(default_factory=lambda: secrets.token_hex(12))  # the Hub's 24-hex "_id"
    gated: str | bool = False
    next_pr: int = 1
    pr_authors: dict[str, str] = field(default_factory=dict)  # PR number → the user who opened it


@dataclass(frozen=True)
class Refs:
    """Every ref of a repo to its commit oid: branches and tags by short name, pull requests by number."""

    branches: dict[str, str]
    tags: dict[str, str]
    prs: dict[int, str]

    def as_packed(self) -> dict[str, str]:
        """The refs by full name (``refs/heads/main``, ``refs/pr/1``...), as ``packed-refs`` lists them."""
        return {
            **{f"refs/heads/{b}": o for b, o in self.branches.items()},
            **{f"refs/tags/{t}": o for t, o in self.tags.items()},
            **{f"refs/pr/{n}": o for n, o in self.prs.items()},
        }


@dataclass(frozen=True)
class Entry:
    """A file or directory at some commit, as listed by tree / paths-info."""

    path: str
    type: Literal["file", "directory"]
    oid: str  # blob oid (of the pointer for LFS files) or tree oid
    size: int  # real content size for LFS files, 0 for directories
    lfs: LfsPointer | None = None


# Commit operations, as parsed from the NDJSON payload. Regular file content is already stored as a blob.
@dataclass(frozen=True)
class AddFile:
    """Add or replace a regular (non-LFS) file whose content is already stored as blob ``blob``."""

    path: str
    blob: str


@dataclass(frozen=True)
class AddLfsFile:
    """Add or replace an LFS file: ``oid`` is the sha256 of an object uploaded through this repo."""

    path: str
    oid: str
    size: int | None  # None for copies: taken from the stored object


@dataclass(frozen=True)
class DeletePath:
    """Delete the file or folder at ``path``: ``deletedFile`` naming a folder deletes it, as on the real Hub."""

    path: str
    folder: bool  # deletedFolder (prefix) rather than deletedFile (file, or folder as on the real Hub)


Operation = AddFile | AddLfsFile | DeletePath


@dataclass(frozen=True)
class CommitResult:
    """A new commit's oid, and the number of the pull request it opened, if it opened one."""

    oid: str
    pr_num: int | None = None


# --- One repository ----------------------------------------------------------------------------------------------


class Repo:
    """A handle on one repository directory: read-only queries, plus the helpers :class:`Storage` writes with."""

    def __init__(self, path: Path, meta: RepoMeta, lfs: LfsStore) -> None:
        self.path = path
        self.meta = meta
        self.lfs = lfs
        self.objects = LooseObjectStore(path / "objects")
        self.lock = threading.RLock()
        self.deleted = False  # set (under the lock) when the repo is deleted: writers holding this handle stop
        self.read_commit = functools.lru_cache(maxsize=4096)(self._read_commit)
        self._last_commit = functools.lru_cache(maxsize=16384)(self._find_last_commit)

    @property
    def id(self) -> str:
        """The canonical ``namespace/name``, in the letter case it was created with."""
        return self.meta.id

    @property
    def type(self) -> str:
        """``model``, ``dataset`` or ``space``."""
        return self.meta.type

    # refs ------------------------------------------------------------------------------------------------------

    def refs(self) -> Refs:
        """The refs as ``packed-refs`` holds them now (read at every call: writers replace it)."""
        refs = Refs({}, {}, {})
        try:
            text = (self.path / "packed-refs").read_text()
        except FileNotFoundError:
            return refs
        for line in text.splitlines():
            if not line or line[0] in "#^":
                continue
            oid, _, name = line.partition(" ")
            if name.startswith("refs/heads/"):
                refs.branches[name.removeprefix("refs/heads/")] = oid
            elif name.startswith("refs/tags/"):
                refs.tags[name.removeprefix("refs/tags/")] = oid
            elif m := _PR_REF.match(name):
                refs.prs[int(m.group(1))] = oid
        return refs

    def write_refs(self, refs: Refs) -> None:
        """Replace all refs at once (caller holds the repo lock)."""
        packed = refs.as_packed()
        lines = ["# pack-refs with: peeled fully-peeled sorted"] + [f"{packed[n]} {n}" for n in sorted(packed)]
        write_atomic(self.path / "packed-refs", ("\n".join(lines) + "\n").encode())

    def pr_author(self, revision: str | None) -> str | None:
        """Who opened the pull request ``revision`` (``refs/pr/N``): its author may push more commits to it."""
        pr = _PR_REF.match(revision or "")
        return self.meta.pr_authors.get(pr.group(1)) if pr else None

    def resolve(self, rev: str) -> str:
        """Commit oid of ``rev`` (§2.3): branch, tag, refs/pr/N, full oid, then unique short oid."""
        refs = self.refs()
        for name in (rev, rev.removeprefix("refs/heads/")):
            if name in refs.branches:
                return refs.branches[name]
        for name in (rev, rev.removeprefix("refs/tags/")):
            if name in refs.tags:
                return refs.tags[name]
        if (m := _PR_REF.match(rev)) and int(m.group(1)) in refs.prs:
            return refs.prs[int(m.group(1))]
        if _HEX40.match(rev) and self.is_commit(rev):
            return rev
        if _HEX_PREFIX.match(rev):
            bucket = self.objects.root / rev[:2]
            candidates = [
                rev[:2] + p.name
                for p in (bucket.iterdir() if bucket.is_dir() else [])
                if p.name.startswith(rev[2:])
            ]
            commits = [c for c in candidates if self.is_commit(c)]
            if len(commits) == 1:
                return commits[0]
        raise revision_not_found(rev)

    # objects -----------------------------------------------------------------------------------------------------

    def is_commit(self, oid: str) -> bool:
        """Whether ``oid`` names a stored commit (False for a missing object or another kind)."""
        try:
            self.read_commit(oid)
            return True
        except (FileNotFoundError, ValueError):
            return False

    def _read_commit(self, oid: str) -> Commit:
        kind, body = self.objects.read(oid)
        if kind != "commit":
            raise ValueError(f"{oid} is a {kind}, not a commit")
        return decode_commit(body)

    def history(self, oid: str) -> Iterator[tuple[str, Commit]]:
        """``oid`` and its first-parent ancestors, newest first."""
        current: str | None = oid
        while current:
            commit = self.read_commit(current)
            yield current, commit
            current = commit.parents[0] if commit.parents else None

    def _file_entry(self, path: str, oid: str) -> Entry:
        size, pointer = self.objects.blob_info(oid)
        if pointer is not None:
            return Entry(path, "file", oid, pointer.size, pointer)
        return Entry(path, "file", oid, size)

    def _lookup(self, tree_oid: str, path: str) -> TreeEntry | None:
        """The tree entry at ``path`` below ``tree_oid`` ("" is the root itself)."""
        node: TreeEntry | None = TreeEntry("", MODE_DIR, tree_oid)
        for name in path.split("/") if path else []:
            if node is None or not node.is_dir:
                return None
            node = self.objects.tree_index(node.oid).get(name)
        return node

    def entry(self, commit_oid: str, path: str) -> Entry | None:
        """The file or directory at ``path`` in ``commit_oid``."""
        path = path.strip("/")
        node = self._lookup(self.read_commit(commit_oid).tree, path)
        if node is None:
            return None
        if node.is_dir:
            return Entry(path, "directory", node.oid, 0)
        return self._file_entry(path, node.oid)

    def list_dir(self, commit_oid: str, path: str = "", recursive: bool = False) -> list[Entry] | None:
        """Entries under directory ``path`` (all descendants, files and directories, if ``recursive``).

        None when ``path`` is not a directory. Directories first, then files, each sorted by path.
        """
        path = path.strip("/")
        node = self._lookup(self.read_commit(commit_oid).tree, path)
        if node is None or not node.is_dir:
            return None
        entries: list[Entry] = []

        def walk(tree_oid: str, prefix: str) -> None:
            for e in self.objects.read_tree(tree_oid):
                full = f"{prefix}{e.name}"
                if e.is_dir:
                    entries.append(Entry(full, "directory", e.oid, 0))
                    if recursive:
                        walk(e.oid, full + "/")
                else:
                    entries.append(self._file_entry(full, e.oid))

        walk(node.oid, f"{path}/" if path else "")
        entries.sort(key=lambda e: (e.type != "directory", e.path))
        return entries

    def files(self, commit_oid: str) -> list[Entry]:
        """Every file at ``commit_oid``, sorted by path."""
        return sorted(
            (e for e in self.list_dir(commit_oid, "", True) or [] if e.type == "file"), key=lambda e: e.path
        )

    def flatten(self, tree_oid: str, prefix: str = "") -> dict[str, str]:
        """{file path: blob oid} of a whole tree."""
        out: dict[str, str] = {}
        for e in self.objects.read_tree(tree_oid):
            if e.is_dir:
                out.update(self.flatten(e.oid, f"{prefix}{e.name}/"))
            else:
                out[f"{prefix}{e.name}"] = e.oid
        return out

    def write_tree(self, files: dict[str, str]) -> str:
        """Write the nested tree objects of ``{path: blob oid}``; returns the root tree oid."""
        root: dict[str, object] = {}
        for path, oid in files.items():
            *dirs, name = path.split("/")
            node = root
            for d in dirs:
                node = node.setdefault(d, {})  # type: ignore[assignment]
            node[name] = oid

        def write(node: dict[str, object]) -> str:
            entries = [
                TreeEntry(name, MODE_DIR, write(child))
                if isinstance(child, dict)
                else TreeEntry(name, MODE_FILE, str(child))
                for name, child in node.items()
            ]
            return self.objects.write("tree", encode_tree(entries))

        return write(root)

    def read_file(self, commit_oid: str, path: str, limit: int = 10 * 1024 * 1024) -> bytes | None:
        """Content of a (small) file at ``commit_oid``, following LFS pointers; None if missing or too big."""
        entry = self.entry(commit_oid, path)
        if entry is None or entry.type != "file" or entry.size > limit:
            return None
        if entry.lfs is not None:
            return b"".join(self.lfs.iter_object(entry.lfs.oid)) if self.lfs.has(entry.lfs.oid) else None
        return b"".join(self.objects.iter_blob(entry.oid))

    def iter_content(self, entry: Entry, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream a file's content (LFS object or blob) from ``start``."""
        if entry.lfs is not None:
            return self.lfs.iter_object(entry.lfs.oid, start, length)
        return self.objects.iter_blob(entry.oid, start, length)

    def last_commit(self, head: str, path: str) -> tuple[str, Commit]:
        """The newest first-parent commit from ``head`` that changed ``path`` (file or directory)."""
        return self._last_commit(head, path.strip("/"))

    def _find_last_commit(self, head: str, path: str) -> tuple[str, Commit]:
        previous: tuple[str, Commit] | None = None
        previous_node: TreeEntry | None = None
        for oid, commit in self.history(head):
            node = self._lookup(commit.tree, path)
            if previous is not None and (node is None or previous_node is None or node.oid != previous_node.oid):
                return previous
            previous, previous_node = (oid, commit), node
        assert previous is not None
        return previous

    # LFS links ---------------------------------------------------------------------------------------------------

    def lfs_linked(self, oid: str) -> bool:
        """Whether this repo may reference LFS object ``oid`` (it was uploaded through this repo) and it exists."""
        return (self.path / "lfs" / oid).exists() and self.lfs.has(oid)

    def link_lfs(self, oid: str) -> None:
        """Record that this repo may reference LFS object ``oid`` (it was uploaded through this repo)."""
        marker = self.path / "lfs" / oid
        marker.parent.mkdir(exist_ok=True)
        marker.touch()


# --- A commit being built ----------------------------------------------------------------------------------------


class _WorkTree:
    """A mutable ``{path: blob oid}`` view of a tree that rejects file/directory conflicts."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = dict(files)
        self._dirs: Counter[str] = Counter()
        for path in files:
            self._count(path, 1)

    def _count(self, path: str, delta: int) -> None:
        parts = path.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            self._dirs[d] += delta
            if self._dirs[d] <= 0:
                del self._dirs[d]

    def is_dir(self, path: str) -> bool:
        return path in self._dirs

    def add(self, path: str, oid: str) -> None:
        if self.is_dir(path):
            raise HubError(422, f"Cannot add '{path}': a directory with this name exists")
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in self.files:
                raise HubError(422, f"Cannot add '{path}': '{'/'.join(parts[:i])}' is a file")
        if path not in self.files:
            self._count(path, 1)
        self.files[path] = oid

    def remove(self, path: str) -> None:
        del self.files[path]
        self._count(path, -1)

    def remove_dir(self, path: str) -> int:
        doomed = [p for p in self.files if p.startswith(path + "/")]
        for p in doomed:
            self.remove(p)
        return len(doomed)


# --- All repositories --------------------------------------------------------------------------------------------


class Storage:
    """Every repository under ``root``, plus the shared LFS store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._clean_tmp()
        self.lfs = LfsStore(root / "lfs", self.tmp)
        self._handles: dict[tuple[str, str], Repo] = {}
        self._lock = threading.Lock()  # guards _handles and repo creation/deletion

    def _clean_tmp(self, max_age: float = 24 * 3600) -> None:
        """Remove leftovers of interrupted uploads, creations and deletions (old enough not to be in use)."""
        cutoff = time.time() - max_age
        for path in [*self.tmp.iterdir(), *(self.tmp / "multipart").glob("*")]:
            try:
                if path.name == "multipart" or path.stat().st_mtime >= cutoff:
                    continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError:
                pass

    def _dir(self, repo_type: str, repo_id: str) -> Path:
        namespace, _, name = repo_id.lower().partition("/")
        return self.root / "repos" / f"{repo_type}s" / namespace / name

    # lookup --------------------------------------------------------------------------------------------------------

    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        """The repo (case-insensitive id), or None."""
        namespace, _, name = repo_id.partition("/")
        if not (_REPO_PART.match(namespace) and _REPO_PART.match(name)) or ".." in repo_id:
            return None  # not a valid id (and never a path outside the data dir)
        key = (repo_type, repo_id.lower())
        with self._lock:
            handle = self._handles.get(key)
            if handle is not None:
                return handle
            path = self._dir(repo_type, repo_id)
            try:
                meta = RepoMeta(**json.loads((path / "localhub.json").read_text()))
            except (FileNotFoundError, NotADirectoryError):
                return None
            handle = self._handles[key] = Repo(path, meta, self.lfs)
            return handle

    # create / delete / settings ------------------------------------------------------------------------------------

    def create(self, repo_type: str, namespace: str, name: str, *, owner: str, private: bool) -> Repo:
        """Create a repo with the initial commit of §4.2; 409 if it exists (whatever the case)."""
        validate_repo_id(namespace, name)
        with self._lock:
            final = self._dir(repo_type, f"{namespace}/{name}")
            if final.exists():
                raise conflict(f"You already created this {repo_type} repo")
            # Build the repo in tmp/ and rename it into place, so it appears complete or not at all.
            staging = self.tmp / f"new-{uuid.uuid4().hex}"
            meta = RepoMeta(
                id=f"{namespace}/{name}",
                type=repo_type,
                owner=owner,
                private=private,
                created_at=float(int(time.time())),
            )
            repo = Repo(staging, meta, self.lfs)
            (staging / "objects").mkdir(parents=True)
            (staging / "refs" / "heads").mkdir(parents=True)
            (staging / "refs" / "tags").mkdir()
            (staging / "HEAD").write_text(f"ref: refs/heads/{DEFAULT_BRANCH}\n")
            (staging / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tbare = true\n")
            blob = repo.objects.write("blob", default_gitattributes(repo_type).encode())
            tree = repo.write_tree({".gitattributes": blob})
            initial = Commit(tree, (), SYSTEM_AUTHOR, "system@localhub", int(meta.created_at), "initial commit")
            repo.write_refs(Refs({DEFAULT_BRANCH: repo.objects.write("commit", initial.encode())}, {}, {}))
            self._write_meta(repo)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, final)  # fails if another process created it meanwhile
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
                raise conflict(f"You already created this {repo_type} repo") from None
            repo = Repo(final, meta, self.lfs)
            self._handles[(repo_type, meta.id.lower())] = repo
            return repo

    def delete(self, repo: Repo) -> None:
        """Delete ``repo``: it vanishes at once (renamed into ``tmp/``), its files are removed afterwards.

        Writers still holding its handle get RepoNotFound. Its LFS objects stay in the shared store.
        """
        trash = self.tmp / f"deleted-{uuid.uuid4().hex}"
        with self.writing(repo):
            with self._lock:
                self._handles.pop((repo.type, repo.id.lower()), None)
            repo.deleted = True
            os.rename(repo.path, trash)  # atomic disappearance, then the slow part
        shutil.rmtree(trash, ignore_errors=True)

    def _write_meta(self, repo: Repo) -> None:
        write_atomic(repo.path / "localhub.json", json.dumps(asdict(repo.meta), indent=1).encode())

    def update_settings(self, repo: Repo, *, private: bool | None = None, gated: str | bool | None = None) -> None:
        """Change visibility and/or gating (None leaves it), under the repo's write lock."""
        with self.writing(repo):
            if private is not None:
                repo.meta.private = private
            if gated is not None:
                repo.meta.gated = gated
            self._write_meta(repo)

    # commits -------------------------------------------------------------------------------------------------------

    def commit(
        self,
        repo: Repo,
        *,
        revision: str,
        operations: list[Operation],
        title: str,
        description: str,
        author: str,
        parent_commit: str | None = None,
        create_pr: bool = False,
    ) -> CommitResult:
        """Apply ``operations`` on top of branch (or ``refs/pr/N``) ``revision``, all or nothing (§5.10)."""
        with self.writing(repo):
            refs = repo.refs()
            branch = revision.removeprefix("refs/heads/")
            pr = _PR_REF.match(revision)
            if branch in refs.branches:
                head = refs.branches[branch]
            elif pr and int(pr.group(1)) in refs.prs and not create_pr:
                head = refs.prs[int(pr.group(1))]
            else:
                raise revision_not_found(revision)
            base = head
            if parent_commit is not None:
                if create_pr and repo.is_commit(parent_commit):
                    base = parent_commit  # a PR may start from an older commit of the branch
                elif parent_commit != head:
                    raise HubError(
                        412, "The branch was updated since you opened this page. Please refresh and try again."
                    )
            tree = self._apply(repo, repo.read_commit(base).tree, operations)
            commit = Commit(
                tree, (base,), author, f"{author}@users.noreply.localhub", int(time.time()), title, description
            )
            oid = repo.objects.write("commit", commit.encode())
            if create_pr:
                pr_num = repo.meta.next_pr
                repo.meta.next_pr += 1
                repo.meta.pr_authors[str(pr_num)] = author  # who may push more commits to it
                self._write_meta(repo)
                refs.prs[pr_num] = oid
                repo.write_refs(refs)
                return CommitResult(oid, pr_num)
            if pr and branch not in refs.branches:
                refs.prs[int(pr.group(1))] = oid
            else:
                refs.branches[branch] = oid
            repo.write_refs(refs)
            return CommitResult(oid)

    def _apply(self, repo: Repo, base_tree: str, operations: list[Operation]) -> str:
        """New root tree oid after applying ``operations`` in order to ``base_tree``."""
        work = _WorkTree(repo.flatten(base_tree))
        lfs_paths: list[str] = []
        for op in operations:
            if isinstance(op, AddFile):
                work.add(validate_path(op.path), op.blob)
            elif isinstance(op, AddLfsFile):
                validate_path(op.path)
                stored = self.lfs.size(op.oid) if repo.lfs_linked(op.oid) else None
                if stored is None:
                    raise bad_request(
                        "Your push was rejected because an LFS pointer pointed to a file that does not exist "
                        f"(oid {op.oid}, path '{op.path}')"
                    )
                if op.size is not None and op.size != stored:
                    raise bad_request(f"LFS object {op.oid} has size {stored}, not {op.size} ('{op.path}')")
                work.add(op.path, repo.objects.write("blob", LfsPointer(op.oid, stored).encode()))
                lfs_paths.append(op.path)
            else:
                path = op.path.rstrip("/") if op.folder else op.path
                validate_path(path)
                if path in work.files:
                    work.remove(path)
                elif not work.remove_dir(path):
                    kind = "folder" if op.folder else "file"
                    raise entry_not_found(f"A {kind} with this name doesn't exist: '{op.path}'")
        self._track_lfs_paths(repo, work, lfs_paths)
        return repo.write_tree(work.files)

    @staticmethod
    def _track_lfs_paths(repo: Repo, work: _WorkTree, lfs_paths: list[str]) -> None:
        """Append LFS lines to ``.gitattributes`` for committed LFS files it does not cover (real-Hub behaviour)."""
        if not lfs_paths:
            return
        blob = work.files.get(".gitattributes")
        text = repo.objects.read(blob)[1].decode(errors="replace") if blob else ""
        attributes = GitAttributes(text)
        missing = [p for p in dict.fromkeys(lfs_paths) if p in work.files and not attributes.is_lfs(p)]
        if missing:
            if text and not text.endswith("\n"):
                text += "\n"
            text += "".join(lfs_attributes_line(p) + "\n" for p in missing)
            work.add(".gitattributes", repo.objects.write("blob", text.encode()))

    # branches and tags ---------------------------------------------------------------------------------------------

    def create_branch(self, repo: Repo, name: str, start: str) -> None:
        """Branch ``name`` at revision ``start``; 400 (bad name), 409 (it exists), 404 (unknown ``start``)."""
        validate_ref_name(name, "branch")
        with self.writing(repo):
            refs = repo.refs()
            if name in refs.branches:
                raise conflict(f"Reference refs/heads/{name} already exists")
            refs.branches[name] = repo.resolve(start)
            repo.write_refs(refs)

    def delete_branch(self, repo: Repo, name: str) -> None:
        """Delete branch ``name``; 404 (RevisionNotFound) when absent, 403 for the default branch."""
        with self.writing(repo):
            refs = repo.refs()
            if name not in refs.branches:
                raise revision_not_found(name)
            if name == DEFAULT_BRANCH:
                raise forbidden(f"Cannot delete refs/heads/{name}")
            del refs.branches[name]
            repo.write_refs(refs)

    def create_tag(self, repo: Repo, name: str, revision: str) -> None:
        """Tag revision ``revision`` as ``name``; 400 for an invalid name, 409 when the tag exists."""
        validate_ref_name(name, "tag")
        with self.writing(repo):
            refs = repo.refs()
            if name in refs.tags:
                raise conflict(f"Tag {name} already exists")
            refs.tags[name] = repo.resolve(revision)
            repo.write_refs(refs)

    def delete_tag(self, repo: Repo, name: str) -> None:
        """Delete tag ``name``; 404 (RevisionNotFound) when absent."""
        with self.writing(repo):
            refs = repo.refs()
            if name not in refs.tags:
                raise revision_not_found(name)
            del refs.tags[name]
            repo.write_refs(refs)

    @contextmanager
    def writing(self, repo: Repo) -> Iterator[None]:
        """Hold ``repo``'s write lock; 404 if the repo was deleted meanwhile.

        The thread lock serialises this process; ``flock`` on ``localhub.lock`` also serialises another process
        serving the same data dir. Metadata is re-read under the lock, since that process may have changed it.
        """
        gone = HubError(404, "Repository not found", code="RepoNotFound")
        with repo.lock:
            try:
                fd = os.open(repo.path / "localhub.lock", os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                repo.deleted = True
                raise gone from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    repo.meta = RepoMeta(**json.loads((repo.path / "localhub.json").read_text()))
                except FileNotFoundError:
                    repo.deleted = True
                if repo.deleted:
                    raise gone
                yield
            finally:
                os.close(fd)  # releases the flock
