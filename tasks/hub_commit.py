"""Making one stage's commit(s) on the Hub: compare with the repo, upload what changed, commit once.

The steps, for a ``CommitPlan``:

1. read the branch head (or take the one the previous stage left), and list the files the plan owns at that head;
2. drop files whose content is already there (sha256 for LFS files, git blob sha1 for regular files);
   files under the plan's folder that the push does not have become deletions;
3. nothing left: no commit (an identical re-push makes none);
4. pre-upload large files, then one ``create_commit`` with ``parent_commit`` = the head read in step 1, so a
   concurrent change is a 412 (retried from step 1) instead of a lost update; above ``max_files_per_commit``
   the changes are split into ``(part i of n)`` commits, deletions in the last part;
5. if the commit request fails without a clear answer, the branch is read again: when the new head is a
   commit with our title and our files, it landed and is recorded; the commit is never sent twice.

A head handed over by the previous stage (``head_hint``) saves step 1's request. It is only a hint: if the
branch moved since, the Hub refuses the first commit (412) and the plan is compared again at the actual head;
a plan that finds nothing to change reads the head anyway, since "unchanged" must hold where the branch is.

``preupload_plan`` does steps 1, 2 and the uploads of step 4 alone, without committing: the push flow uses it to
upload a stage's large files ahead of the stage's turn (see ``tasks.preupload``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import build_hf_headers, paginate
from pydantic import BaseModel, Field

from tasks.file_digest import FileDigest, bytes_digest, shared_digest_cache
from tasks.hub_client import IGNORE_NOTHING
from tasks.retry_policy import http_status, may_have_landed, timed_out
from tasks.stage_plan import CommitPlan, PlannedFile

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
# Large files go to the Hub in groups, and progress is reported between groups. A group is as large as this, so
# that huggingface_hub's upload threads stay busy and its per-call requests (upload modes, LFS batch) are few;
# 256 files is its own batch limit.
GROUP_MAX_FILES = 256
GROUP_MAX_BYTES = 512 * 1024 * 1024
# The Hub answers 413 to a paths-info request for more than 1,000 paths; huggingface_hub asks for 500 at a time.
PATHS_INFO_CHUNK = 500
# After a commit request timed out, the Hub may still apply it: look for it at once and again after these waits
# (15 s in all) before deciding it did not land (a retry would then open a second pull request).
LANDED_RECHECK_WAITS = (1.0, 2.0, 4.0, 8.0)


def preupload_groups(
    additions: list[CommitOperationAdd], max_files: int = GROUP_MAX_FILES, max_bytes: int = GROUP_MAX_BYTES
) -> list[list[CommitOperationAdd]]:
    """Split ``additions`` in order into groups of at most ``max_files``, each closed once it holds ``max_bytes``."""
    groups: list[list[CommitOperationAdd]] = []
    current: list[CommitOperationAdd] = []
    size = 0
    for op in additions:
        current.append(op)
        size += op.upload_info.size
        if len(current) >= max_files or size >= max_bytes:
            groups.append(current)
            current, size = [], 0
    return [*groups, current] if current else groups


class HubTarget(BaseModel):
    """Where a push goes. Holds no credentials.

    Attributes:
        repo_id: ``namespace/name``.
        revision: Branch to commit to.
        create_pr: Open a pull request with the push instead of committing to ``revision``.
        max_files_per_commit: Changed files above which a commit is split into ``(part i of n)`` commits.
    """

    repo_id: str
    repo_type: Literal["dataset"] = "dataset"
    revision: str = "main"
    create_pr: bool = False
    max_files_per_commit: int = Field(default=100, ge=1)


class CommitRecord(BaseModel):
    """One commit made on the Hub."""

    oid: str
    url: str
    message: str
    files_added: int
    files_deleted: int
    bytes_sent: int
    recovered: bool = False  # the answer was lost; the commit was found on the Hub afterwards
    pr_revision: str | None = None


class CommitOutcome(BaseModel):
    """What a plan did on the Hub: its commits (none when everything was already there)."""

    label: str
    commits: list[CommitRecord] = Field(default_factory=list)
    files_added: int = 0
    files_deleted: int = 0
    files_unchanged: int = 0
    bytes_sent: int = 0
    head: str = ""


def _digests(files: tuple[PlannedFile, ...]) -> dict[str, FileDigest]:
    """Content ids of the planned files: local files through the digest cache, generated content directly."""
    local = [(f.path_in_repo, f.local_path) for f in files if f.local_path is not None]
    from_disk = shared_digest_cache().digest_many([path for _, path in local])
    digests = {repo_path: d for (repo_path, _), d in zip(local, from_disk, strict=True)}
    digests.update({f.path_in_repo: bytes_digest(f.content) for f in files if f.content is not None})
    return digests


def _is_same(remote: RepoFile, digest: FileDigest) -> bool:
    if remote.lfs is not None:
        return str(remote.lfs.sha256) == digest.sha256
    return str(remote.blob_id) == digest.git_sha1


def paths_info(api: HfApi, target: HubTarget, head: str, paths: list[str], token: str) -> dict[str, RepoFile]:
    """The files among ``paths`` at ``head``, by path (asked for in chunks the Hub accepts)."""
    found: dict[str, RepoFile] = {}
    for start in range(0, len(paths), PATHS_INFO_CHUNK):
        for entry in api.get_paths_info(
            target.repo_id,
            paths[start : start + PATHS_INFO_CHUNK],
            revision=head,
            repo_type=target.repo_type,
            token=token,
        ):
            if isinstance(entry, RepoFile):
                found[entry.path] = entry
    return found


def remote_files(api: HfApi, target: HubTarget, head: str, plan: CommitPlan, token: str) -> dict[str, RepoFile]:
    """Files the plan owns, as they are at ``head``: everything under its folder, or its exact paths."""
    if plan.scope is None:
        return paths_info(api, target, head, [*(f.path_in_repo for f in plan.files), *plan.removes], token)
    try:
        entries = list(
            api.list_repo_tree(
                target.repo_id,
                path_in_repo=plan.scope,
                recursive=True,
                revision=head,
                repo_type=target.repo_type,
                token=token,
            )
        )
    except EntryNotFoundError:
        entries = []
    return {entry.path: entry for entry in entries if isinstance(entry, RepoFile)}


def parquet_files_at(api: HfApi, target: HubTarget, head: str, folder: str, token: str) -> list[str]:
    """Repo paths of the parquet files directly under ``folder`` at ``head`` (empty if it does not exist)."""
    try:
        entries = api.list_repo_tree(
            target.repo_id, path_in_repo=folder, revision=head, repo_type=target.repo_type, token=token
        )
        return sorted(e.path for e in entries if isinstance(e, RepoFile) and e.path.endswith(".parquet"))
    except EntryNotFoundError:
        return []


def folder_exists(api: HfApi, target: HubTarget, head: str, folder: str, token: str) -> bool:
    """Whether ``folder`` holds anything at ``head``."""
    info = api.get_paths_info(target.repo_id, [folder], revision=head, repo_type=target.repo_type, token=token)
    return bool(info)


def commit_url(api: HfApi, repo_id: str, oid: str) -> str:
    """The Hub page of dataset commit ``oid`` (what the Hub answers as ``commitUrl``)."""
    return f"{api.endpoint.rstrip('/')}/datasets/{repo_id}/commit/{oid}"


def history(
    api: HfApi, repo_type: str, repo_id: str, revision: str, token: str | None
) -> Iterator[dict[str, Any]]:
    """The commits of ``revision``, newest first (``id``, ``title``, ``message``: the description, ``date``),
    read a page at a time as the caller goes on (``list_repo_commits`` reads every page first).
    ``token=None``: the client's own."""
    url = f"{api.endpoint}/api/{repo_type}s/{repo_id}/commits/{quote(revision, safe='')}"
    headers = build_hf_headers(token=token if token is not None else api.token)
    return iter(paginate(url, params={}, headers=headers))


def latest_commit(
    api: HfApi, repo_type: str, repo_id: str, revision: str, token: str | None
) -> dict[str, Any] | None:
    """The commit ``revision`` points at (``id``, ``title``, ...), or None: the first item of its history only.
    ``token=None``: the client's own."""
    return next(history(api, repo_type, repo_id, revision, token), None)


def _is_our_commit(
    api: HfApi,
    target: HubTarget,
    oid: str,
    message: str,
    added: dict[str, FileDigest],
    deleted: list[str],
    token: str,
) -> bool:
    """Whether commit ``oid`` is the one we asked for: our title, our files, none of the deleted paths. (Not the
    description: the files are what must have landed; the description only names the run, see
    ``tasks.retry_guard``.)"""
    commit = latest_commit(api, target.repo_type, target.repo_id, oid, token)
    if commit is None or commit["title"] != message:
        return False
    present = paths_info(api, target, oid, list(added) + deleted, token)
    if any(p in present for p in deleted):
        return False
    return all(p in present and _is_same(present[p], d) for p, d in added.items())


def _landed_commit(
    api: HfApi,
    target: HubTarget,
    revision: str,
    old_head: str,
    message: str,
    added: dict[str, FileDigest],
    deleted: list[str],
    token: str,
) -> str | None:
    """After a commit request failed without an answer: the oid of our commit if the Hub applied it."""
    new_head = branch_head(api, target, revision, token)
    if new_head == old_head:
        return None
    return new_head if _is_our_commit(api, target, new_head, message, added, deleted, token) else None


def _pull_requests(api: HfApi, target: HubTarget, token: str) -> dict[str, str]:
    """The repo's pull requests: ``refs/pr/N`` → the commit it points to."""
    refs = api.list_repo_refs(target.repo_id, repo_type=target.repo_type, include_pull_requests=True, token=token)
    return {ref.ref: ref.target_commit for ref in refs.pull_requests or []}


def _opened_pull_request(
    api: HfApi,
    target: HubTarget,
    before: dict[str, str],
    message: str,
    added: dict[str, FileDigest],
    deleted: list[str],
    token: str,
) -> tuple[str, str] | None:
    """After a request to open a pull request failed without an answer: ``(refs/pr/N, oid)`` of the pull request
    it opened, if the Hub applied it (a pull request that was not there ``before``, holding our commit)."""
    for ref, oid in sorted(_pull_requests(api, target, token).items()):
        if ref not in before and _is_our_commit(api, target, oid, message, added, deleted, token):
            return ref, oid
    return None


@dataclass(frozen=True)
class _Comparison:
    """A plan compared with the repo at one head: the files to upload and the paths to delete."""

    head: str
    digests: dict[str, FileDigest]
    changed: list[PlannedFile]
    deletions: list[str]


def opens_pr(target: HubTarget, revision: str) -> bool:
    """Whether a commit to ``revision`` opens a pull request (once open, later commits go to ``refs/pr/N``)."""
    return target.create_pr and not revision.startswith("refs/pr/")


def branch_head(api: HfApi, target: HubTarget, revision: str, token: str) -> str:
    """The commit ``revision`` (a branch, or ``refs/pr/N``) of the target repo points at."""
    head = api.repo_info(target.repo_id, revision=revision, repo_type=target.repo_type, token=token).sha
    assert head is not None
    return head


def _compare(
    api: HfApi, target: HubTarget, plan: CommitPlan, token: str, revision: str, head: str | None
) -> _Comparison:
    """Read the head (unless given) and the files the plan owns there; keep the files whose content differs."""
    head = head or branch_head(api, target, revision, token)
    remote = remote_files(api, target, head, plan, token)
    digests = _digests(plan.files)
    changed = [
        f
        for f in plan.files
        if f.path_in_repo not in remote or not _is_same(remote[f.path_in_repo], digests[f.path_in_repo])
    ]
    owned = remote if plan.scope is not None else {p: remote[p] for p in plan.removes if p in remote}
    deletions = sorted(p for p in owned if p not in digests)
    return _Comparison(head=head, digests=digests, changed=changed, deletions=deletions)


def _addition(planned: PlannedFile, digest: FileDigest) -> CommitOperationAdd:
    if planned.content is not None:
        return CommitOperationAdd(path_in_repo=planned.path_in_repo, path_or_fileobj=planned.content)
    operation = CommitOperationAdd(path_in_repo=planned.path_in_repo, path_or_fileobj=str(planned.local_path))
    # The digest cache knows the sha256: huggingface_hub need not read the file to hash it (it hashes lazily, once
    # per operation, and a file uploaded ahead of its stage gets a second operation at the commit).
    operation.upload_info.sha256 = bytes.fromhex(digest.sha256)
    return operation


def _upload_large_files(
    api: HfApi,
    target: HubTarget,
    additions: list[CommitOperationAdd],
    revision: str,
    create_pr: bool,
    token: str,
    progress: ProgressFn | None,
    done_bytes: int,
    total_bytes: int,
) -> int:
    """Upload the large files among ``additions`` group by group (the Hub skips content it already has), reporting
    progress between groups; returns ``done_bytes`` plus the bytes of ``additions``."""
    for group in preupload_groups(additions):
        # Also fetches every addition's upload mode, which ``create_commit`` then reuses, and with them whether the
        # Hub would ignore it: never (see ``IGNORE_NOTHING``).
        api.preupload_lfs_files(
            target.repo_id,
            group,
            revision=revision,
            repo_type=target.repo_type,
            create_pr=create_pr,
            token=token,
            gitignore_content=IGNORE_NOTHING,
        )
        done_bytes += sum(op.upload_info.size for op in group)
        if progress is not None:
            progress(done_bytes, total_bytes)
    return done_bytes


def preupload_plan(
    api: HfApi,
    target: HubTarget,
    plan: CommitPlan,
    token: str,
    *,
    revision: str | None = None,
    progress: ProgressFn | None = None,
) -> int:
    """Upload the large files of ``plan`` that the repo does not hold yet, without committing them.

    The Hub stores large files by content (sha256), so this may run before the plan's turn to commit;
    ``commit_plan`` later finds their content stored and only references it. An upload that is never committed
    changes nothing in the repo.

    Args:
        api: The client (its endpoint is the Hub pushed to).
        target: Repo, branch and PR mode.
        plan: The stage commit whose files to upload.
        token: The token every request uses.
        revision: Branch or ``refs/pr/N`` the files are for (default ``target.revision``).
        progress: Called with (bytes done, bytes total) while large files upload.

    Returns:
        The bytes of the files that differ from the repo (uploaded now, or found stored already).
    """
    revision = revision or target.revision
    create_pr = opens_pr(target, revision)
    compared = _compare(api, target, plan, token, revision, None)
    total = sum(compared.digests[f.path_in_repo].size for f in compared.changed)
    additions = [_addition(f, compared.digests[f.path_in_repo]) for f in compared.changed]
    return _upload_large_files(api, target, additions, revision, create_pr, token, progress, 0, total)


def commit_plan(
    api: HfApi,
    target: HubTarget,
    plan: CommitPlan,
    token: str,
    *,
    revision: str | None = None,
    head: str | None = None,
    head_hint: str | None = None,
    delete_folders: Iterable[str] = (),
    progress: ProgressFn | None = None,
    description: str = "",
    on_pull_request: Callable[[str], None] | None = None,
) -> CommitOutcome:
    """Make the Hub hold exactly what ``plan`` says, in as few commits as the limit allows.

    Args:
        api: The client (its endpoint is the Hub pushed to).
        target: Repo, branch, PR mode and the files-per-commit limit.
        plan: The stage commit to make.
        token: The token every request uses.
        revision: Branch or ``refs/pr/N`` to commit to (default ``target.revision``). With ``target.create_pr``
            and a branch here, the first commit opens the pull request.
        head: The commit the plan was made against, when the caller read the repo to make it; the commit is
            then refused (412, retried) if the branch moved since. Default: the branch head, read here.
        head_hint: Where the branch probably is (the commit the previous stage made), used instead of reading
            it. If the branch moved since, the first commit is refused (412) and the plan is compared again at
            the branch head, read then. Ignored when ``head`` is given or the commit opens a pull request.
        delete_folders: Extra repo folders to delete in this commit (outputs of processors that vanished).
        progress: Called with (bytes done, bytes total) while large files upload.
        description: The commits' description (the stages name the flow run that made them).
        on_pull_request: Called with ``refs/pr/N`` as soon as a commit opened the pull request (before the
            plan's later parts, which may fail).

    Returns:
        The commits made, and counts of files added, deleted and unchanged.
    """
    revision = revision or target.revision
    # A pull request opens on the head read here, never on a hint.
    if head is None and head_hint is not None and not opens_pr(target, revision):
        try:
            return _commit_plan_at(
                api,
                target,
                plan,
                token,
                revision,
                head_hint,
                delete_folders,
                progress,
                description,
                on_pull_request,
                hinted=True,
            )
        except _StaleHint:
            logger.info("%s: the branch moved since %s; comparing again at its head.", plan.label, head_hint[:8])
    return _commit_plan_at(
        api, target, plan, token, revision, head, delete_folders, progress, description, on_pull_request
    )


class _StaleHint(Exception):
    """A plan compared at a hinted head found the branch elsewhere before committing anything."""


def _commit_plan_at(
    api: HfApi,
    target: HubTarget,
    plan: CommitPlan,
    token: str,
    revision: str,
    head: str | None,
    delete_folders: Iterable[str],
    progress: ProgressFn | None,
    description: str,
    on_pull_request: Callable[[str], None] | None,
    *,
    hinted: bool = False,
) -> CommitOutcome:
    """``commit_plan`` at ``head`` (read if ``None``). With ``hinted``, ``_StaleHint`` when the branch is found
    elsewhere before anything was committed: the first commit refused (412), or nothing to do at ``head``."""
    create_pr = opens_pr(target, revision)
    compared = _compare(api, target, plan, token, revision, head)
    head, digests, changed, deletions = compared.head, compared.digests, compared.changed, compared.deletions
    folder_deletions = [d for d in delete_folders if folder_exists(api, target, head, d, token)]
    outcome = CommitOutcome(label=plan.label, files_unchanged=len(plan.files) - len(changed), head=head)
    if not changed and not deletions and not folder_deletions:
        if hinted and branch_head(api, target, revision, token) != head:  # "unchanged" holds at the head only
            raise _StaleHint
        logger.info("%s: the Hub already has these %d files; no commit.", plan.label, len(plan.files))
        return outcome

    chunks = [
        changed[i : i + target.max_files_per_commit] for i in range(0, len(changed), target.max_files_per_commit)
    ]
    chunks = chunks or [[]]
    total_bytes = sum(digests[f.path_in_repo].size for f in changed)
    done_bytes = 0
    for index, chunk in enumerate(chunks, start=1):
        last = index == len(chunks)
        message = plan.message if len(chunks) == 1 else f"{plan.message} (part {index} of {len(chunks)})"
        additions = [_addition(f, digests[f.path_in_repo]) for f in chunk]
        done_bytes = _upload_large_files(
            api, target, additions, revision, create_pr, token, progress, done_bytes, total_bytes
        )
        removals: list[str] = deletions if last else []
        removed_folders: list[str] = folder_deletions if last else []
        operations: list[CommitOperationAdd | CommitOperationDelete] = [
            *(CommitOperationDelete(path_in_repo=p) for p in removals),
            *(CommitOperationDelete(path_in_repo=d.rstrip("/") + "/") for d in removed_folders),
            *additions,
        ]
        try:
            record = _commit_once(
                api,
                target,
                revision,
                head,
                message,
                operations,
                create_pr,
                added={f.path_in_repo: digests[f.path_in_repo] for f in chunk},
                deleted=removals,
                token=token,
                description=description,
            )
        except HfHubHTTPError as exc:
            if hinted and index == 1 and http_status(exc) == 412:  # nothing committed yet: compare again
                raise _StaleHint from exc
            raise
        record.files_deleted += len(removed_folders)
        outcome.commits.append(record)
        outcome.files_added += record.files_added
        outcome.files_deleted += record.files_deleted
        outcome.bytes_sent += record.bytes_sent
        head = record.oid
        if record.pr_revision:  # later parts go to the pull request the first part opened
            revision, create_pr = record.pr_revision, False
            if on_pull_request is not None:
                on_pull_request(record.pr_revision)
    outcome.head = head
    return outcome


def _commit_once(
    api: HfApi,
    target: HubTarget,
    revision: str,
    head: str,
    message: str,
    operations: list[CommitOperationAdd | CommitOperationDelete],
    create_pr: bool,
    *,
    added: dict[str, FileDigest],
    deleted: list[str],
    token: str,
    description: str = "",
) -> CommitRecord:
    bytes_sent = sum(d.size for d in added.values())
    # Opening a pull request: note the open ones, so that a lost answer can tell whether ours was opened (a retry
    # would open a second one).
    pull_requests = _pull_requests(api, target, token) if create_pr else {}
    started = time.monotonic()
    try:
        info = api.create_commit(
            target.repo_id,
            operations,
            commit_message=message,
            commit_description=description or None,
            revision=revision,
            repo_type=target.repo_type,
            create_pr=create_pr,
            parent_commit=head,
            token=token,
        )
    except Exception as exc:
        if not may_have_landed(exc):
            raise
        pr_revision: str | None = None
        for wait in (0.0, *LANDED_RECHECK_WAITS) if timed_out(exc) else (0.0,):
            time.sleep(wait)
            if create_pr:
                opened = _opened_pull_request(api, target, pull_requests, message, added, deleted, token)
                pr_revision, landed = opened if opened else (None, None)
            else:
                landed = _landed_commit(api, target, revision, head, message, added, deleted, token)
            if landed is not None:
                break
        if landed is None:
            raise
        logger.warning("%s: the commit answer was lost, but the commit is on the Hub (%s).", message, landed)
        return CommitRecord(
            oid=landed,
            url=commit_url(api, target.repo_id, landed),
            message=message,
            files_added=len(added),
            files_deleted=len(deleted),
            bytes_sent=bytes_sent,
            recovered=True,
            pr_revision=pr_revision,
        )
    logger.info("%s: committed %s in %.1f s.", message, info.oid, time.monotonic() - started)
    return CommitRecord(
        oid=info.oid,
        url=info.commit_url,
        message=message,
        files_added=len(added),
        files_deleted=len(deleted),
        bytes_sent=bytes_sent,
        pr_revision=info.pr_revision,
    )
