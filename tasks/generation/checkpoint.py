"""Checkpoints while generating: completed batches pushed to a Hub repo/branch in the background.

Unlike distilabel's checkpointer: files are complete (written atomically, fsynced, renamed) before they are
queued; all batches completed since the last checkpoint go in **one** commit, never more often than
``interval_seconds`` (the Hub allows about 128 commits per hour per repo), the first one interval after the start
or at the end of a shorter run; the commit is scheduled by a background thread and made (hashing, uploads,
commit request) by a small worker process, so generation only pays for appending to a list and does not share
its GIL with HTTP clients; a failed commit keeps its files queued for the next one instead of dropping them; with
a final flush, the commit that would complete the run waits (at most an interval) for the run's last files, so
that they go in the same commit; a commit that failed in transit is recognised on retry (the state file travels
in the same commit) instead of being made twice; the final flush retries a failed commit after a short back-off
(the run is ending), a periodic commit after the interval.
Each commit carries ``.generation-state.json``, which lets a run whose local folder is gone resume from the
checkpoint. Commits are made on the head the checkpointer last read (``parent_commit``), so two runs writing to one
branch at once cannot undo each other's commits: refused (412), a commit is rebuilt on the new head when the branch
still holds this run's checkpoint (or that of an identical run, both resuming), and the run stops checkpointing
(:class:`~tasks.generation.errors.CheckpointRefusedError`) when another run's checkpoint has replaced it.

This module is the run's side: where to checkpoint (:class:`CheckpointTarget`), and the :class:`Checkpointer`,
which queues completed batches, decides when to commit them (interval, final flush, back-off) and makes each
commit. What the branch holds and what the run may do there (resume, replace, rebuild after a 412, refuse) is
decided in :mod:`~tasks.generation.checkpoint_branch`; the commit worker process is driven through
:mod:`~tasks.generation.checkpoint_worker_client` and runs :mod:`~tasks.generation.checkpoint_worker`.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow.parquet as pq
from huggingface_hub import HfApi
from pydantic import BaseModel, Field, SecretStr, field_validator

from tasks.credentials import load_credentials, resolve_token
from tasks.generation import checkpoint_worker
from tasks.generation.checkpoint_branch import (
    read_branch,
    read_branch_state,
    reconcile,
    refusal,
    replaced_checkpoint,
    repo_path,
    resumed_checkpoint,
)
from tasks.generation.checkpoint_worker_client import (
    CommitWorker,
    commit_failure_message,
    commit_failure_rate_limit_wait,
    commit_failure_status,
)
from tasks.generation.errors import CheckpointRefusedError
from tasks.generation.listing import first_few
from tasks.generation.state import STATE_FILE, GenerationState, batch_files
from tasks.hub_client import IGNORE_NOTHING, hub_api
from tasks.hub_commit import HubTarget, commit_url, latest_commit
from tasks.prepare_repo import create_repo_and_branch
from tasks.retry_policy import describe_failure, max_rate_limit_wait
from tasks.validation import InvalidParameterError, validate_repo_id, validate_revision

_module_logger = logging.getLogger(__name__)
MAX_FINAL_ATTEMPTS = 3  # attempts of the final flush's commit
FINAL_RETRY_BACKOFF = 1.0  # seconds before the final flush's first retry; doubled at each one, at most 8 s
MAX_CONFLICT_RETRIES = 5  # commits rebuilt at once after a 412 (a branch moving each time is then a failure)


def retry_delays(failures: int, final_failures: int, rate_limit_wait: float | None) -> tuple[float, float]:
    """How long after a failed commit the next periodic commit waits, and the final flush's next attempt.

    A periodic commit is retried after the interval (the Hub allows about 128 commits per hour per repo), backing
    off on repeated failures (``failures`` in a row) even with a tiny interval (an outage must not become a busy
    loop); the final flush soon after the failure (see :meth:`Checkpointer.close`), backing off on its own attempts
    only (``final_failures``: periodic failures before close() must not make its first retry wait 8 s). Either
    waits as long as a rate limit asks (``rate_limit_wait``, at most ``HFDS_MAX_RATE_LIMIT_WAIT``).
    """
    pause = min(2.0**failures, 60.0)
    retry = min(FINAL_RETRY_BACKOFF * 2.0 ** max(final_failures - 1, 0), 8.0)
    if rate_limit_wait is not None:
        asked = min(rate_limit_wait, max_rate_limit_wait())
        pause, retry = max(pause, asked), max(retry, asked)
    return pause, retry


class CheckpointTarget(BaseModel):
    """Where and how often a generation run checkpoints.

    Attributes:
        repo_id: Dataset repo (``namespace/name``); created (private if ``private``) when missing.
        branch: Branch of the checkpoints, created from the default branch when missing. Keeping checkpoints off
            ``main`` leaves the published dataset untouched; ``"main"`` or a separate repo work too. Runs going
            at once need a branch each, unless they are the same run (same config, seed and sizes) and resume
            (a run without resume replaces the checkpoint: one of two such runs is refused): a run whose branch
            another run has taken over stops (``CheckpointRefusedError``).
        path_in_repo: Folder of the checkpoint inside the repo (default: the repo root).
        interval_seconds: Minimum time between two checkpoint commits, and from the start to the first periodic
            one (a final flush need not wait for it).
        private: ``True`` makes the repo private, also when it exists already (before the first checkpoint
            commit); otherwise a repo created for checkpoints gets the Hub's default visibility.
        token: Hugging Face token (else ``credentials_block``, ``HF_TOKEN``, the cached login).
        credentials_block: Name of a saved ``HuggingFaceCredentials`` block.
        final_flush: Commit what is left when the run ends (one interval after the previous commit at the
            earliest; a failed attempt is retried within seconds, see :meth:`Checkpointer.close`).
    """

    repo_id: str
    branch: str = "checkpoint"
    path_in_repo: str = ""
    interval_seconds: float = Field(default=60.0, ge=0)
    private: bool | None = None
    token: SecretStr | None = None
    credentials_block: str | None = None
    final_flush: bool = True

    @field_validator("repo_id")
    @classmethod
    def _repo_id(cls, value: str) -> str:
        return validate_repo_id(value)

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        # Checked here, before generating: the Hub refuses such a branch only at the first checkpoint.
        if value.startswith("refs/"):
            raise ValueError(
                f"branch {value!r}: checkpoints go to a branch name (created when missing), not a ref"
            )
        try:
            return validate_revision(value)
        except InvalidParameterError as exc:
            raise ValueError(f"branch: {exc}") from None

    @field_validator("path_in_repo")
    @classmethod
    def _folder(cls, value: str) -> str:
        value = value.strip("/")
        # huggingface_hub refuses to commit under '.git' or '.cache'; an empty or '.' part is no folder.
        if value and any(part in ("", ".", "..", ".git", ".cache") for part in value.split("/")):
            raise ValueError(
                f"path_in_repo must be a relative folder without empty, '.', '..', '.git' or '.cache' parts, "
                f"got {value!r}"
            )
        return value

    def resolved_token(self) -> str:
        """The token to use, in the project's lookup order."""
        credentials = load_credentials(self.credentials_block) if self.credentials_block else None
        return resolve_token(self.token, credentials)  # type: ignore[arg-type]


@dataclass
class CheckpointCommit:
    """A checkpoint commit that landed.

    Attributes:
        oid: Commit id.
        url: Commit URL.
        batches: Batch indices it added.
        files: Repo paths it added or updated.
        started: Monotonic time the commit started (for interval checks).
        created_at: Wall-clock time (UTC) the commit started.
        seconds: How long the commit took in the committer thread (hashing, uploads, commit request).
    """

    oid: str
    url: str
    batches: list[int]
    files: list[str]
    started: float
    created_at: datetime
    seconds: float = 0.0


@dataclass
class _Pending:
    files: dict[str, int | None] = field(default_factory=dict)  # relative path -> batch index (None: extra)

    def merge(self, other: _Pending) -> None:
        for rel, index in other.files.items():
            self.files.setdefault(rel, index)


class Checkpointer:
    """Pushes completed batches of one run to a checkpoint repo/branch, one commit per interval at most.

    Use: :meth:`prepare` (creates the repo/branch, reads the remote state), optionally :meth:`download`, then
    :meth:`start`, :meth:`add` per completed batch, and :meth:`close` at the end.
    """

    def __init__(
        self,
        target: CheckpointTarget,
        root: Path,
        state: GenerationState,
        *,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        api: HfApi | None = None,
    ) -> None:
        self.target = target
        self.root = root
        self.state = state
        self.logger = logger or _module_logger
        self.api = api or hub_api(token=target.resolved_token())
        self.commits: list[CheckpointCommit] = []
        self.error: str | None = None
        # A 401/403 answer to a commit, or the branch taken by another run: no later commit can (or may) be made.
        self.refused: str | None = None
        self.remote_batches: set[int] = set()
        self._stale: list[str] = []
        # The branch head that remote_batches and _stale describe, the parent of the next commit (None: unknown,
        # read again first).
        self._head: str | None = None
        # The checkpoints the branch may hold without another run writing there: the one prepare() read, and
        # this run's own (the nonce of every state it sent, landed or not).
        self._known_ids: set[str] = set()
        self._reuse = True  # whether this run takes a same run's checkpointed batches (see prepare)
        self._pending = _Pending()
        self._cond = threading.Condition()
        self._closing = False
        self._flush = target.final_flush  # whether close() commits what is queued (see close)
        self._next_allowed = 0.0  # spacing between commits (and back-off after a failure)
        self._rate_limit_wait: float | None = None  # what the Hub's last 429 asked for
        self._retry_at: float | None = None  # after a failed commit: when the final flush may try again
        self._first_due = 0.0  # the first periodic commit; a final flush need not wait for it
        self._thread: threading.Thread | None = None
        # Commits run in a worker process when this checkpointer made its own client (its endpoint and token
        # are then all the worker needs); a caller's HfApi is used in the committer thread.
        self._use_worker = api is None and os.environ.get("HFDS_CHECKPOINT_WORKER", "1") != "0"
        self._worker: CommitWorker | None = None

    # ------------------------------------------------------------------ remote state

    def _repo_path(self, rel: str) -> str:
        return repo_path(self.target.path_in_repo, rel)

    def _revision(self) -> str:
        return self.target.branch

    def read_remote_state(self, revision: str | None = None) -> GenerationState | None:
        """The state file on the checkpoint branch (or at commit ``revision``), or None when there is none.

        Raises:
            huggingface_hub.errors.LocalEntryNotFoundError: the Hub could not be reached. Not "no checkpoint":
                that would schedule the branch's batches for deletion.
        """
        return read_branch_state(
            self.api, self.target.repo_id, self._repo_path(STATE_FILE), revision or self._revision()
        )

    def prepare(self, *, reuse: bool = True) -> GenerationState | None:
        """Create the repo and branch if needed and read what the checkpoint holds.

        Args:
            reuse: Keep a checkpoint of this same run. False (a run that does not resume, and generates every
                batch again) replaces it as another run's: its batches would otherwise be claimed by this run's
                checkpoints until regenerated, and a resume after a crash would mix the two.

        Returns:
            The remote state when it is a checkpoint of this same run (and ``reuse``), else None (its files are
            then deleted by the first checkpoint commit, so the branch never mixes two runs).
        """
        # As the push does: private=True also makes an existing public repo private, before any batch is sent.
        hub = HubTarget(repo_id=self.target.repo_id, revision=self.target.branch)
        create_repo_and_branch(self.api, hub, bool(self.target.private), token=None)  # the client has the token
        # Files and state read at one commit, the parent of the first checkpoint commit: if the branch moves
        # before that commit (another run), the commit is refused instead of acting on what was read here.
        branch = read_branch(self.api, self.target.repo_id, self._revision(), self.target.path_in_repo)
        self._head = branch.head
        remote = branch.state
        if remote is not None and remote.checkpoint_id is not None:
            self._known_ids.add(remote.checkpoint_id)
        self._reuse = reuse
        if remote is not None and reuse and remote.same_run(self.state):
            self.remote_batches, self._stale = resumed_checkpoint(
                remote, branch.files, self.state, self.target.path_in_repo
            )
            return remote
        self._stale = replaced_checkpoint(branch.files, self.target.path_in_repo)
        if self._stale:
            # A run that does not resume replaces a checkpoint of its own parameters too (see reuse).
            earlier = remote is not None and remote.same_run(self.state)
            self.logger.info(
                "checkpoint %s@%s holds %s; its %d files go with the first checkpoint commit",
                self.target.repo_id,
                self.target.branch,
                "an earlier run of the same parameters, which this run (not resuming) replaces"
                if earlier
                else "another run",
                len(self._stale),
            )
        return None

    def download(self, indices: set[int]) -> set[int]:
        """Fetch checkpointed batches into the local folder (verified, then moved into place).

        Returns:
            The batch indices restored.
        """
        if not indices:
            return set()
        wanted = {index: batch_files(index, self.state.processors) for index in sorted(indices)}
        staging = Path(tempfile.mkdtemp(prefix=".checkpoint-download-", dir=self.root))
        restored: set[int] = set()
        try:
            try:
                self.api.snapshot_download(
                    self.target.repo_id,
                    repo_type="dataset",
                    revision=self._head or self._revision(),  # the commit prepare() read the batches from
                    local_dir=staging,
                    cache_dir=staging / ".hub-cache",  # not huggingface_hub's (HF_HOME may be read-only)
                    allow_patterns=[self._repo_path(rel) for rels in wanted.values() for rel in rels],
                )
            except Exception as exc:  # the batches can always be generated again
                self.logger.warning("could not download checkpointed batches (%s); generating them instead", exc)
                return set()
            for index, rels in wanted.items():
                sources = [staging / self._repo_path(rel) for rel in rels]
                try:
                    ok = all(pq.read_metadata(s).num_rows == self.state.rows_in(index) for s in sources)
                except (OSError, ValueError):
                    ok = False
                if not ok:
                    continue
                for rel, source in zip(rels, sources, strict=True):
                    (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(source), self.root / rel)
                restored.add(index)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return restored

    # ------------------------------------------------------------------ background commits

    def start(self) -> None:
        """Start the background committer, and its worker process when a commit is certain.

        The first periodic commit comes one interval after the start: a run shorter than the interval makes a
        single commit, its final flush at :meth:`close`, instead of one for its first batch and a final one that
        would have to wait for the interval. With the final flush there will be a commit, so the worker starts
        now and imports while generation starts; without it, a run shorter than the interval commits nothing,
        and the worker starts with the first commit.
        """
        self._first_due = time.monotonic() + self.target.interval_seconds
        if self._use_worker and self.target.final_flush:
            self._start_worker()
        self._thread = threading.Thread(target=self._run, name="checkpoint-committer", daemon=True)
        self._thread.start()

    def add(self, files: list[str], batch_index: int | None = None) -> None:
        """Queue files (relative to the dataset folder, complete on disk) for the next checkpoint commit.

        Raises:
            CheckpointRefusedError: the Hub refused a commit for good (401/403): the run should stop now.
        """
        with self._cond:
            # Under the lock: the committer stopping on a refusal counts what is queued under it, so files
            # queued after that would be in no account of what the checkpoint lacks.
            if self.refused is not None:
                raise CheckpointRefusedError(self.refused)
            for rel in files:
                self._pending.files.setdefault(rel, batch_index)
            self._cond.notify_all()

    def close(self, *, flush: bool | None = None) -> list[CheckpointCommit]:
        """Commit what is queued (when ``flush``; default: ``final_flush``) and stop the committer.

        The final commit respects the interval after the previous commit that was made; a final commit that
        fails is tried again after a short back-off (1 s, doubling up to 8 s; a 429's wait once),
        :data:`MAX_FINAL_ATTEMPTS` attempts in all: the run is ending, and a failed commit did not use up the
        Hub's commit budget. When they all fail, nothing is lost: the files stay in the run's folder (a rerun
        into it resumes from them and checkpoints them), ``error`` says why, and a warning says how many, names
        the first ones and the folder (so does the error logged when a commit is refused, see ``refused``). A
        failed run passes ``flush=True``: its completed batches are what a resume needs.
        """
        with self._cond:
            if flush is not None:
                self._flush = flush
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        self._stop_worker()
        return self.commits

    def _run(self) -> None:
        failures = 0  # consecutive failed commits
        final_failures = 0  # of them, attempts of the final flush (bounded by MAX_FINAL_ATTEMPTS)
        conflicts = 0  # consecutive commits rebuilt because the branch had moved (412)
        limited = False  # the last failure was a rate limit
        while True:
            with self._cond:
                while not self._pending.files and not self._closing:
                    self._cond.wait()
                if not self._pending.files or (self._closing and not self._flush):
                    return
                while (wait := self._earliest_commit() - time.monotonic()) > 0:
                    if self._closing and not self._flush:
                        return
                    self._cond.wait(timeout=wait)
                self._hold_for_final_files()
                if self._closing and not self._flush:  # interrupted while the commit was held: no commit
                    return
                pending, self._pending = self._pending, _Pending()
                final = self._closing
                started = time.monotonic()
                spacing, self._next_allowed = self._next_allowed, started + self.target.interval_seconds
            outcome = self._commit(pending, started)
            if outcome == "done":
                failures, final_failures, conflicts, limited = 0, 0, 0, False
                with self._cond:
                    self._retry_at = None
                continue
            if self.refused is not None:  # no later commit can succeed: stop, and let add() tell the run
                with self._cond:
                    pending.merge(self._pending)
                    self.logger.error("%s %s.", self.refused, self._left_out(pending))
                return
            if outcome == "moved" and conflicts < MAX_CONFLICT_RETRIES:
                # Rebuilt on the branch's new head: no commit was made, so it goes now, as it would have.
                conflicts += 1
                with self._cond:
                    pending.merge(self._pending)
                    self._pending = pending
                    self._next_allowed = spacing
                continue
            conflicts = 0
            failures += 1
            final_failures += final
            with self._cond:
                pending.merge(self._pending)
                self._pending = pending
                # The final commit waits out one rate limit at most: a run's end must not wait for the Hub's
                # hourly window to reopen more than once.
                again_limited = limited and self._rate_limit_wait is not None
                if self._closing and (final_failures >= MAX_FINAL_ATTEMPTS or again_limited):
                    self.error = self.error or "checkpoint commit failed"
                    self.logger.warning(
                        "giving up on the final checkpoint after %d attempts%s (%s): %s",
                        final_failures,
                        " (the Hub is rate limiting commits to this repo)" if again_limited else "",
                        self.error,
                        self._left_out(pending),
                    )
                    return
                pause, retry = retry_delays(failures, final_failures, self._rate_limit_wait)
                limited = self._rate_limit_wait is not None
                now = time.monotonic()
                self._next_allowed = max(self._next_allowed, now + pause)
                self._retry_at = now + retry
                self.logger.warning(
                    "checkpoint commit failed (%s)%s; next attempt in %.0f s",
                    self.error,
                    " (the Hub is rate limiting checkpoint commits)" if limited else "",
                    self._earliest_commit() - now,
                )

    def _left_out(self, pending: _Pending) -> str:
        """What a committer that stops leaves out of the checkpoint (``pending``), and where it is, for its log."""
        return (
            f"{len(pending.files)} files are not in the checkpoint ({first_few(sorted(pending.files))}): they are "
            f"in {self.root}, and a rerun into that folder resumes from them"
        )

    def _earliest_commit(self) -> float:
        """Monotonic time the next commit may start. Called with the lock held."""
        if self._closing and self._flush:
            return self._next_allowed if self._retry_at is None else self._retry_at
        return max(self._next_allowed, self._first_due)

    def _completes_run(self) -> bool:
        done = self.remote_batches | {i for i in self._pending.files.values() if i is not None}
        return all(i in done for i in range(self.state.total_batches))

    def _hold_for_final_files(self) -> None:
        """With a final flush, hold the commit that would complete the run until :meth:`close` (at most one more
        interval): the run's last files (``metadata.json``, ...) come right after its last batch, and would
        otherwise wait a whole interval for a commit of their own. Called with the lock held."""
        if not self.target.final_flush or self._closing or not self._completes_run():
            return
        until = time.monotonic() + self.target.interval_seconds
        while not self._closing and (wait := until - time.monotonic()) > 0:
            self._cond.wait(timeout=wait)

    # ------------------------------------------------------------------ one commit

    def _commit(self, pending: _Pending, started: float) -> Literal["done", "failed", "moved"]:
        """Commit ``pending`` on the head last read: ``"done"``, ``"failed"`` (``error`` or ``refused`` say why),
        or ``"moved"``: the branch had moved (412) and was read again, ``pending`` is to be committed again."""
        self._rate_limit_wait = None
        if self._head is None:  # the outcome of an earlier commit is unknown: read the branch first
            try:
                self._resync(pending)
            except Exception as exc:
                self.error = describe_failure(exc)
                return "failed"
            if self.refused is not None:
                return "failed"
        batches = sorted({i for i in pending.files.values() if i is not None})
        done = sorted(self.remote_batches | set(batches))
        # The nonce identifies this commit: after a failure in transit, the remote state tells whether it landed.
        state = self.state.model_copy(update={"completed_batches": done, "checkpoint_id": uuid.uuid4().hex})
        self._known_ids.add(str(state.checkpoint_id))
        added = {self._repo_path(rel) for rel in pending.files}
        keep = added | {self._repo_path(STATE_FILE)}
        message = f"Checkpoint: {len(done)} of {self.state.total_batches} batches" + (
            f" (+{len(batches)})" if batches else " (final files)"
        )
        request = {
            "endpoint": self.api.endpoint,
            "token": self.api.token,
            "repo_id": self.target.repo_id,
            "revision": self._revision(),
            # Refused (412) if another writer moved the branch since it was read: remote_batches and the deletes
            # describe that head, and a commit on a newer one could delete or contradict what that writer added.
            "parent_commit": self._head,
            "message": message,
            "files": [(self._repo_path(rel), str(self.root / rel)) for rel in sorted(pending.files)],
            "content": [(self._repo_path(STATE_FILE), base64.b64encode(state.to_bytes()).decode())],
            "deletes": [p for p in self._stale if p not in keep],
            "gitignore": IGNORE_NOTHING,
        }
        answer: dict[str, Any]
        head: str | None
        try:
            if self._use_worker:
                answer = self._commit_in_worker(request)
            else:
                answer = checkpoint_worker.commit(self.api, request)
            head = answer.get("oid") or None
        except Exception as exc:  # any failure keeps the files queued; the thread must not die
            status = commit_failure_status(exc)
            error = commit_failure_message(exc)
            if status == 412:  # refused, so not landed: rebuild the commit on the new head
                self.error = error
                try:
                    self._resync(pending)
                except Exception as read_exc:
                    self._head = None
                    self.error = describe_failure(read_exc)
                    return "failed"
                return "failed" if self.refused is not None else "moved"
            if status in (401, 403):  # refused (by the Hub, or Xet storage via hf_xet): not landed, no need to ask
                self.error = error
                self.refused = (
                    f"the Hub refused the checkpoint commit to {self.target.repo_id}@{self.target.branch} "
                    f"({status}: {self.error}): the token cannot write there. Use a token with write access to "
                    "that repo, or another checkpoint repo."
                )
                return "failed"
            if self._landed(state):
                self.logger.info("checkpoint commit failed in transit but landed; not committing it again")
                answer = self._latest_commit(message)
                head = None  # another writer may have committed on top of it since: read the branch first
            else:
                self.error = error
                # Not landed as far as can be told: a commit that did land unseen makes the next one a 412, which
                # reads the branch again (its deletions are then not asked for twice).
                self._rate_limit_wait = commit_failure_rate_limit_wait(exc)
                return "failed"
        self._head = head
        self._stale = []
        self.remote_batches = set(done)
        self.commits.append(
            CheckpointCommit(
                oid=answer.get("oid", ""),
                url=answer.get("url", ""),
                batches=batches,
                files=sorted(added),
                started=started,
                created_at=datetime.now(UTC),
                seconds=time.monotonic() - started,
            )
        )
        self.logger.info("checkpoint commit: %s (%d files)", message, len(added))
        return "done"

    def _start_worker(self) -> None:
        try:
            self._worker = CommitWorker()
        except OSError as exc:
            self.logger.info("no checkpoint worker process (%s); committing from this process", exc)
            self._use_worker = False

    def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()

    def _commit_in_worker(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one commit to the worker and wait for its answer; a dead worker is replaced next time."""
        if self._worker is None:
            self._start_worker()
        worker = self._worker
        if worker is None or worker.stdin is None:
            raise ConnectionError("checkpoint worker unavailable")
        try:
            return worker.commit(request)
        except ConnectionError:  # the worker is gone, and stopped
            self._worker = None
            raise

    def _resync(self, pending: _Pending) -> None:
        """Read the branch again after it moved under the run (a commit refused with 412, or one of unknown
        outcome), and base the next commit on its head (see :func:`reconcile`); batches of this run gone from the
        branch are queued again (into ``pending``). A branch another run has taken is refused (``refused``, see
        :func:`refusal`)."""
        branch = read_branch(self.api, self.target.repo_id, self._revision(), self.target.path_in_repo)
        conflict = refusal(
            branch,
            self.state,
            reuse=self._reuse,
            known_ids=self._known_ids,
            committed=bool(self.commits),
            where=f"{self.target.repo_id}@{self.target.branch}",
            root=self.root,
        )
        if conflict is not None:
            self.refused = conflict
            return
        found = reconcile(
            branch,
            self.state,
            remote_batches=self.remote_batches,
            stale=self._stale,
            reuse=self._reuse,
            folder=self.target.path_in_repo,
        )
        for index in found.lost:
            rels = batch_files(index, self.state.processors)
            if all((self.root / rel).is_file() for rel in rels):  # else the run has yet to generate it
                for rel in rels:
                    pending.files.setdefault(rel, index)
        self.remote_batches = found.batches
        self._stale = found.stale
        self._head = branch.head

    def _latest_commit(self, message: str) -> dict[str, Any]:
        """``oid`` and ``url`` of the branch's latest commit if it is ours (``message``); else empty."""
        try:
            latest = latest_commit(self.api, "dataset", self.target.repo_id, self._revision(), None)
        except Exception:
            return {}
        if not latest or latest.get("title") != message:
            return {}
        oid = str(latest["id"])
        return {"oid": oid, "url": commit_url(self.api, self.target.repo_id, oid)}

    def _landed(self, state: GenerationState) -> bool:
        try:
            remote = self.read_remote_state()
        except Exception:
            return False
        return remote is not None and remote.checkpoint_id == state.checkpoint_id
