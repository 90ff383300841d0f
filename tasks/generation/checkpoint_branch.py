"""A checkpoint branch as a run finds it, and what the run may do there.

The checkpointer reads the branch (:func:`read_branch`: its head, and its files and state file at that commit)
when it prepares, and again when the branch moved under it (a commit refused with 412, or one whose outcome is
unknown). Everything else here decides from what was read, without I/O:

- on preparing, a checkpoint of this same run is resumed (:func:`resumed_checkpoint`: the batches the run takes,
  the files its first commit deletes); any other is replaced (:func:`replaced_checkpoint`: all its files go);
- after the branch moved, :func:`refusal` says whether another run has taken the branch (the run must stop
  checkpointing), else :func:`reconcile` rebuilds the next commit on the new head, merging with an identical run
  that resumes there too (:func:`identical_run`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import (
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tasks.generation.state import DATA_DIR, PROCESSORS_DIR, STATE_FILE, GenerationState, batch_files
from tasks.hub_client import downloaded


def repo_path(folder: str, rel: str) -> str:
    """The repo path of ``rel`` (relative to the dataset folder) in the checkpoint's ``folder`` ("": the root)."""
    return f"{folder}/{rel}" if folder else rel


@dataclass(frozen=True)
class BranchSnapshot:
    """What a checkpoint branch holds at one commit.

    Attributes:
        head: The commit read (the branch's head when it was read).
        files: Every file of the repo at ``head``.
        state: The checkpoint's state file at ``head``; None when there is none.
    """

    head: str
    files: set[str]
    state: GenerationState | None


@dataclass(frozen=True)
class Reconciled:
    """The next commit rebuilt on a branch that moved.

    Attributes:
        batches: This run's batches (and an identical run's) whose files the branch holds: the state claims them.
        lost: Batches this run had committed that are gone from the branch: to be queued again.
        stale: The files still to delete, of those planned.
    """

    batches: set[int]
    lost: list[int]
    stale: list[str]


def read_branch_state(api: HfApi, repo_id: str, path: str, revision: str) -> GenerationState | None:
    """The state file ``path`` of the checkpoint at ``revision``, or None when there is none.

    Raises:
        huggingface_hub.errors.LocalEntryNotFoundError: the Hub could not be reached. Not "no checkpoint":
            that would schedule the branch's batches for deletion.
    """
    try:
        with downloaded(
            api,
            repo_id,
            path,
            repo_type="dataset",
            revision=revision,
            token=None,  # the checkpointer's client has it
        ) as local:
            return GenerationState.model_validate_json(local.read_text())
    except (RemoteEntryNotFoundError, RevisionNotFoundError, RepositoryNotFoundError, ValueError):
        return None


def read_branch(api: HfApi, repo_id: str, branch: str, folder: str) -> BranchSnapshot:
    """Read ``branch``'s head, then its files and the checkpoint's state (in ``folder``) at that commit: what
    was read then describes one commit, also when another writer moves the branch meanwhile."""
    head = api.repo_info(repo_id, repo_type="dataset", revision=branch).sha
    assert head is not None  # a branch's info always names its commit
    files = set(api.list_repo_files(repo_id, repo_type="dataset", revision=head))
    return BranchSnapshot(head, files, read_branch_state(api, repo_id, repo_path(folder, STATE_FILE), head))


def resumed_checkpoint(
    remote: GenerationState, files: set[str], state: GenerationState, folder: str
) -> tuple[set[int], list[str]]:
    """A checkpoint of this same run (``remote``, with ``files``), resumed: the batches the run takes (those whose
    files are there), and the files its first commit deletes."""
    batches = {
        index
        for index in state.reusable_from(remote)
        if all(repo_path(folder, rel) in files for rel in batch_files(index, state.processors))
    }
    # Batches of a larger run (or a last batch of another size) must not linger on the branch.
    stale = [
        repo_path(folder, rel)
        for index in sorted(set(remote.completed_batches) - batches)
        for rel in batch_files(index, remote.processors)
    ]
    if remote.num_records != state.num_records:
        stale += [repo_path(folder, name) for name in ("metadata.json", "builder_config.json")]
    return batches, [p for p in stale if p in files]


def replaced_checkpoint(files: set[str], folder: str) -> list[str]:
    """The files of a checkpoint in ``folder`` that this run replaces (another run's, or none): the first
    checkpoint commit deletes them all, so the branch never mixes two runs."""
    prefix = repo_path(folder, "")
    ours = (DATA_DIR + "/", PROCESSORS_DIR + "/")
    # metadata.json and builder_config.json are a checkpoint's only next to its state file: without one they
    # are a published dataset's (checkpoints to a dataset's own main branch), and stay.
    has_state = repo_path(folder, STATE_FILE) in files
    extras = (STATE_FILE, "metadata.json", "builder_config.json") if has_state else ()
    return sorted(
        f
        for f in files
        if f.startswith(prefix) and (f[len(prefix) :].startswith(ours) or f[len(prefix) :] in extras)
    )


def identical_run(remote: GenerationState, state: GenerationState, reuse: bool) -> bool:
    """Whether ``remote`` is the state of a run writing the same files as this one (``state``; its batches, and
    its final files once it ends), whose batches this run takes (when it resumes: ``reuse``)."""
    return reuse and remote.same_run(state) and remote.num_records == state.num_records


def refusal(
    branch: BranchSnapshot,
    state: GenerationState,
    *,
    reuse: bool,
    known_ids: set[str],
    committed: bool,
    where: str,
    root: Path,
) -> str | None:
    """Why the run (``state``) must not commit on ``branch`` (None: it may).

    A branch holding another run's checkpoint now (not one of ``known_ids``: the one the run prepared on, and the
    nonces of the states it sent; that run is writing there too), or no checkpoint after this run's commits
    (``committed``), is refused: committing would delete that run's batches, or mix the two runs' files under one
    state. ``where`` names the branch and ``root`` the run's folder, for the message.
    """
    remote, head = branch.state, branch.head
    advice = (
        f"This run stops checkpointing so as not to overwrite the other's batches; its completed batches are "
        f"in {root}, from which a rerun resumes. Give runs that go at once another checkpoint branch "
        "(CheckpointTarget.branch) or repo."
    )
    if remote is None:
        if not committed:
            return None
        return (
            f"the checkpoint branch {where} no longer holds this run's checkpoint (commit {head[:12]} removed "
            f"its state file): something else is writing to it. {advice}"
        )
    # An identical run's checkpoint, this run's own, or the one prepare() read (not written to since).
    if remote.checkpoint_id in known_ids or identical_run(remote, state, reuse):
        return None
    return (
        f"the checkpoint branch {where} now holds another run's checkpoint (config {remote.config_hash[:12]}, "
        f"seed {remote.seed}, {remote.num_records} records in batches of {remote.batch_size}; commit "
        f"{head[:12]}): another run is checkpointing to it at the same time. {advice}"
    )


def reconcile(
    branch: BranchSnapshot,
    state: GenerationState,
    *,
    remote_batches: set[int],
    stale: list[str],
    reuse: bool,
    folder: str,
) -> Reconciled:
    """Base the next commit on ``branch`` (which :func:`refusal` allows): the batches whose files are there (this
    run's, ``remote_batches``, and, for an identical run also checkpointing here, that run's: their files are
    the same), the files of ``stale`` still there that no such batch owns, and this run's batches gone from it."""
    remote, files = branch.state, branch.files
    reusable = state.reusable_from(remote) if remote is not None and reuse else set()
    claimed = remote_batches | reusable
    present = {
        index
        for index in claimed
        if all(repo_path(folder, rel) in files for rel in batch_files(index, state.processors))
    }
    # The files the next state claims stay, also when this run planned to delete an old checkpoint's file of
    # the same name (an identical run has replaced it since); so do an identical run's final files.
    keep = {repo_path(folder, rel) for index in present for rel in batch_files(index, state.processors)}
    if remote is not None and identical_run(remote, state, reuse):
        keep |= {repo_path(folder, name) for name in ("metadata.json", "builder_config.json")}
    return Reconciled(
        batches=present,
        lost=sorted(remote_batches - present),
        stale=[p for p in stale if p in files and p not in keep],
    )
