"""localhub: an embedded, Hugging Face Hub-compatible HTTP server for tests, demos and benchmarks.

It speaks the protocol of ``shared/hub-protocol.md`` to the unmodified ``huggingface_hub`` and ``datasets``
clients (LFS, not Xet: set ``HF_HUB_DISABLE_XET=1`` before importing them), stores real git objects on disk,
and can inject faults (errors, latency, dropped connections) per route::

    from localhub import LocalHub

    with LocalHub(data_dir, users={"alice": "hf_alice"}) as hub:   # port=0: any free port
        os.environ["HF_ENDPOINT"] = hub.url                        # before importing huggingface_hub
        hub.faults.add("preupload", status=503)                     # the next preupload fails once
        ...
        hub.requests, hub.stats()

Users and tokens: ``users`` maps names to tokens. When none are given (Python API or CLI), there is one user
``local`` with token ``hf_local_token``. Each user writes to its own namespace, reads public repos and its own
private ones; anonymous callers read public repos only.

Run standalone with ``python -m localhub --port 8000 --data-dir DIR [--user NAME:TOKEN ...]``.
Module map (follow a request in this order): ``server`` (HTTP, faults, log) -> ``routes`` -> ``api`` (endpoints)
-> ``storage`` (repos, refs, commits) -> ``objectstore`` / ``gitobjects``; ``lfs`` (upload tickets, multipart),
``attributes`` (.gitattributes/.gitignore), ``cards`` (README front matter), ``faults``, ``errors``.
"""

from .faults import ROUTES, FaultRule, RequestRecord
from .hub import DEFAULT_TOKEN, DEFAULT_USER, LocalHub

__all__ = ["DEFAULT_TOKEN", "DEFAULT_USER", "ROUTES", "FaultRule", "LocalHub", "RequestRecord"]
