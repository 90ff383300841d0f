"""The pull request a push run opened (``create_pr``), remembered for the rest of the run.

A stage that opened the pull request may run again: a task retry after a later part of a split commit failed,
or a Retry of the run after the stage's content changed. It then commits into that pull request instead of
opening a second one. Remembered in this process and in a small file of the project's cache (a Retry may run in
another process on this machine); a Retry on another machine opens a new pull request. The notes of the last
``MAX_NOTES`` pull requests opened are kept (a run with ``create_pr`` adds one).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from pathlib import Path

from huggingface_hub import constants

from tasks.hub_commit import HubTarget
from tasks.local_dirs import cache_dir, keep_most_recent

MAX_NOTES = 256
_PR_REF = re.compile(r"refs/pr/[1-9][0-9]*")
_opened: dict[str, str] = {}


def _key(run_key: str, target: HubTarget) -> str:
    ident = [constants.ENDPOINT, target.repo_type, target.repo_id, target.revision, run_key]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:32]


def _file(key: str) -> Path:
    return cache_dir() / "pull-requests" / key


def remember_pull_request(run_key: str, target: HubTarget, pr_revision: str) -> None:
    """Note that this run opened ``pr_revision`` (``refs/pr/N``) for ``target``."""
    key = _key(run_key, target)
    _opened[key] = pr_revision
    try:
        _file(key).parent.mkdir(parents=True, exist_ok=True)
        _file(key).write_text(pr_revision, encoding="utf-8")
        keep_most_recent(_file(key).parent, MAX_NOTES)
    except OSError as exc:  # a read-only cache: remembered in this process only
        logging.getLogger(__name__).warning("Could not note the pull request %s: %s", pr_revision, exc)


def opened_pull_request(run_key: str, target: HubTarget) -> str | None:
    """The pull request this run opened for ``target``, if it opened one."""
    key = _key(run_key, target)
    if key not in _opened:
        try:
            noted = _file(key).read_text(encoding="utf-8").strip()
        except OSError:
            return None
        if not _PR_REF.fullmatch(noted):
            return None
        with contextlib.suppress(OSError):
            os.utime(_file(key))  # used now: the last to go when the notes are pruned
        _opened[key] = noted
    return _opened[key]
