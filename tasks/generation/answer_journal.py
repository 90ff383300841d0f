"""A batch's LLM answers, kept as they arrive, so that the batch's next attempt does not pay for them again.

A batch whose request fails for good (after the client's retries), or whose run is interrupted or cancelled,
writes no file: without a journal its answers that had arrived were lost, and the next attempt (a rerun with
resume, a Retry from the Prefect UI) sent every request again. Each answer is appended, as it arrives, to
``<output_dir>/.llm-answers/batch_NNNNN.jsonl``, one JSON line per answer, keyed by the column and a digest of
the whole request body (model, messages, sampling parameters, ``seed``, extra body: everything sent except the
headers, which carry the credentials). The next attempt of the batch takes the answers it finds there and sends
only the other requests; a changed prompt, model or parameter changes the digest, so an old answer is never
taken for a new request. A batch deletes its journal once its files are written.

The folder is hidden and outside the folders the push reads (``parquet-files/``, ``processors-files/``,
``images/``), and checkpoints commit named batch files only, so a journal is never uploaded. Only digests,
column names and answers are stored: no key, no header, no prompt.

The journal is written by whichever process runs the batch (a thread of the flow's process, or a Dask worker)
into the output folder; a retry of the batch on another machine sees it only when the folder is on storage both
share.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Any

from tasks.generation.llm import Completion

logger = logging.getLogger(__name__)

JOURNAL_DIR = ".llm-answers"
_JOURNAL_FILE = re.compile(r"batch_(\d{5,})\.jsonl")


def journal_path(root: Path, batch_index: int) -> Path:
    """``<root>/.llm-answers/batch_00007.jsonl``."""
    return root / JOURNAL_DIR / f"batch_{batch_index:05d}.jsonl"


def request_digest(body: dict[str, Any]) -> str:
    """SHA-256 of a request body in canonical JSON: equal for equal requests, whatever the key order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _sync(fd: int) -> None:
    # fdatasync skips the metadata an append need not wait for (times); macOS has fsync only.
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:
        os.fsync(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AnswerJournal:
    """The answers journal of one batch: what an earlier attempt received, and an appender for this one.

    Opening reads the file (if any): lines that do not parse, such as the last one of an attempt killed while
    writing it, are skipped, and a torn last line is cut off so that the next answer starts a line of its own.
    Each answer is then appended with one ``write`` and synced (``fdatasync``) before :meth:`append` returns, so
    a crash, of the process or the machine, loses at most the line being written. The file is opened for each
    append, so the answers of requests still in flight when the batch failed are kept too.

    Args:
        path: The journal file (:func:`journal_path`).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._answers: dict[tuple[str, str], Completion] = {}
        self._lock = threading.Lock()
        self._broken = False
        self._created = path.exists()
        if self._created:
            self._load()

    @classmethod
    def for_batch(cls, root: Path, batch_index: int) -> AnswerJournal:
        """The journal of batch ``batch_index`` in the dataset folder ``root``."""
        return cls(journal_path(root, batch_index))

    def __len__(self) -> int:
        return len(self._answers)

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            logger.warning("answers journal %s is unreadable (%s); its requests are sent again", self.path, exc)
            return
        end = data.rfind(b"\n") + 1
        if end < len(data):  # torn last line: cut, else the next answer would be glued to it
            try:
                with open(self.path, "r+b") as f:
                    f.truncate(end)
            except OSError as exc:
                self._broken = True
                logger.warning("answers journal %s cannot be repaired (%s): answers are not kept", self.path, exc)
        skipped = 0
        for line in data[:end].splitlines():
            try:
                entry = json.loads(line)
                key = (entry["column"], entry["request"])
                completion = Completion(entry["content"], entry.get("finish_reason"))
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            if isinstance(completion.content, str) and isinstance(completion.finish_reason, str | None):
                self._answers[key] = completion
            else:
                skipped += 1
        if skipped:
            logger.warning("answers journal %s: %d unreadable lines skipped", self.path, skipped)

    def get(self, column: str, digest: str) -> Completion | None:
        """The answer an earlier attempt received for this request of ``column``, if any (answers appended by
        this attempt are not looked up: they are in its results)."""
        return self._answers.get((column, digest))

    def append(self, column: str, digest: str, completion: Completion) -> None:
        """Record an answer durably (thread-safe): one line, written in one call, synced to disk. A journal that
        cannot be written (a full disk, a read-only folder) is given up with a warning, not raised."""
        entry = {
            "column": column,
            "request": digest,
            "content": completion.content,
            "finish_reason": completion.finish_reason,
        }
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
        try:
            with self._lock:  # one writer at a time: no line is split by another
                if self._broken:
                    return
                fd = self._write(line)
            try:
                _sync(fd)  # outside the lock: the syncs of answers arriving together overlap
            finally:
                os.close(fd)
        except OSError as exc:
            with self._lock:
                first, self._broken = not self._broken, True
            if first:  # the journal only spares a later attempt requests: losing it must not fail this one
                logger.warning(
                    "answers journal %s cannot be written (%s): answers of this attempt are not kept",
                    self.path,
                    exc,
                )

    def _write(self, line: bytes) -> int:
        """Append ``line``; returns the open descriptor, to sync and close."""
        if not self._created:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = os.write(fd, line)
            while written < len(line):  # regular files take it in one call; a full disk may not
                written += os.write(fd, line[written:])
            if not self._created:
                _fsync_dir(self.path.parent)  # the new file's name survives a crash too
                self._created = True
        except BaseException:
            os.close(fd)
            raise
        return fd

    def delete(self) -> None:
        """Remove the journal (the batch's files are written: its answers are in them). One that cannot be
        removed is left with a warning: the next run's :func:`prune_journals` drops it, since its batch is complete."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("answers journal %s cannot be removed (%s)", self.path, exc)


def prune_journals(root: Path, keep: Collection[int] = ()) -> list[Path]:
    """Delete the answers journals of ``root`` except those of batches ``keep`` (the folder too, when empty).

    Returns:
        The deleted journals.
    """
    folder = root / JOURNAL_DIR
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        match = _JOURNAL_FILE.fullmatch(path.name)
        if match and int(match.group(1)) in keep:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    with contextlib.suppress(OSError):  # not empty: journals kept
        folder.rmdir()
    return removed
