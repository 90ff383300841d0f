"""The checkpoint commit worker: makes the commits of ``tasks.generation.checkpoint.Checkpointer`` in its own process.

Protocol (JSON lines): it prints ``{"ready": true}`` once imported; then, per request line on stdin
(``endpoint``, ``token``, ``repo_id``, ``revision``, ``parent_commit`` (or null), ``message``, ``files`` as [repo
path, local path] pairs, ``content`` as [repo path, base64] pairs, ``deletes``, ``gitignore``: the rules the Hub is
to apply instead of the repo's ``.gitignore``), one answer line: ``{"oid", "url"}`` or ``{"error", "message"}``
(with ``status`` and ``headers`` when the Hub answered: a 412 means the branch moved since ``parent_commit``). It
exits when stdin closes (the parent closed it, or died). Run as a script by path (not as a module of this
package), so that it imports only huggingface_hub; it never logs the token it is given. It runs at a lower
priority (niceness +10 on Unix): its imports, hashing and HTTP take the CPU the generation leaves.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from huggingface_hub import HfApi

NICENESS = 10  # added to the worker's niceness (Unix) before it imports huggingface_hub (see main)


def commit(api: HfApi, request: Mapping[str, Any]) -> dict[str, str]:
    """Make the commit that ``request`` describes (see the module docstring); answer its ``oid`` and ``url``.

    The checkpointer calls this directly when it commits from its own thread, so both ways commit alike.
    """
    # imported here, not at the top: the worker lowers its priority before it imports huggingface_hub
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    additions = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=local) for path, local in request["files"]]
    additions += [
        CommitOperationAdd(path_in_repo=path, path_or_fileobj=base64.b64decode(data))
        for path, data in request["content"]
    ]
    # The Hub would apply the repo's .gitignore, and huggingface_hub leave the batches it matches out of the commit:
    # the upload modes are asked for here with the request's rules, and create_commit reuses them.
    api.preupload_lfs_files(
        request["repo_id"],
        additions,
        repo_type="dataset",
        revision=request["revision"],
        gitignore_content=request["gitignore"],
    )
    operations: list[CommitOperationAdd | CommitOperationDelete] = [
        *additions,
        *(CommitOperationDelete(path_in_repo=path) for path in request["deletes"]),
    ]
    info = api.create_commit(
        request["repo_id"],
        operations=operations,
        commit_message=request["message"],
        repo_type="dataset",
        revision=request["revision"],
        parent_commit=request.get("parent_commit"),  # a moved branch refuses the commit (412)
    )
    return {"oid": info.oid, "url": str(info.commit_url)}


def main() -> int:
    """Serve commit requests from stdin until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C stops the parent; the worker ends when stdin closes
    # Background work: where cores are scarce, the generation goes first. No niceness on Windows; a refusal
    # only costs the priority.
    with contextlib.suppress(AttributeError, OSError):
        os.nice(NICENESS)
    # The project's Hub client, whose requests time out (it imports only huggingface_hub). Loaded by path from
    # the parent's own copy of the project, whatever else is installed.
    spec = importlib.util.spec_from_file_location("hfds_hub_client", Path(__file__).parents[1] / "hub_client.py")
    assert spec is not None and spec.loader is not None
    hub_client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub_client)

    out, sys.stdout = sys.stdout, sys.stderr  # stdout carries the answers only
    apis: dict[tuple[str, str], HfApi] = {}
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        answer: dict[str, Any]
        try:
            request = json.loads(line)
            key = (request["endpoint"], request["token"])
            if key not in apis:
                apis[key] = hub_client.hub_api(endpoint=key[0], token=key[1])
            answer = commit(apis[key], request)
        except Exception as exc:  # the parent decides (retry after the interval, or landed in transit)
            answer = {"error": type(exc).__name__, "message": " ".join(str(exc).split())}
            response = getattr(exc, "response", None)
            if response is not None:  # a 429's headers say how long the parent should wait
                answer.update(status=response.status_code, headers=dict(response.headers))
        print(json.dumps(answer), file=out, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
