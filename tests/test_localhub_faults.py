"""Fault injection: the real client's retries ride over injected faults; drops behave as documented.

The client backs off 1, 2, 4, 8 s between retries, so each test injects one or two faults only.
"""

from __future__ import annotations

import os
import threading
import time

import httpx
import httpx2
import pytest
from conftest import ALICE_TOKEN
from huggingface_hub import HfApi

from localhub import LocalHub


def statuses(hub: LocalHub, route: str) -> list[int]:
    return [r.status for r in hub.requests if r.route == route]


def test_client_retries_over_a_503_on_preupload(api: HfApi, repo: str, hub: LocalHub) -> None:
    fault = hub.faults.add("preupload", status=503, repo=repo)
    hub.clear_requests()
    api.upload_file(path_or_fileobj=b"survives", path_in_repo="a.txt", repo_id=repo, repo_type="dataset")
    assert statuses(hub, "preupload") == [503, 200]
    assert [r.fault for r in hub.requests if r.route == "preupload"] == [fault, None]
    assert "a.txt" in api.list_repo_files(repo, repo_type="dataset")
    [rule] = hub.faults.list()
    assert rule["applied"] == 1 and rule["remaining"] == 0


def test_client_honours_429_retry_after_on_lfs_batch(api: HfApi, repo: str, hub: LocalHub) -> None:
    hub.faults.add("lfs-batch", status=429, retry_after=0, method="POST")
    hub.clear_requests()
    api.upload_file(path_or_fileobj=b"\0lfs" * 100, path_in_repo="a.bin", repo_id=repo, repo_type="dataset")
    assert statuses(hub, "lfs-batch") == [429, 200]
    assert api.get_paths_info(repo, ["a.bin"], repo_type="dataset")[0].lfs is not None  # type: ignore[union-attr]


def test_429_headers(hub: LocalHub) -> None:
    hub.faults.add("whoami", status=429, retry_after=3)
    response = httpx.get(f"{hub.url}/api/whoami-v2", headers={"authorization": f"Bearer {ALICE_TOKEN}"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.headers["ratelimit"] == '"api";r=0;t=3'
    assert response.json()["error"].startswith("Injected fault")


def test_drop_before_is_retried_and_not_applied(api: HfApi, repo: str, hub: LocalHub) -> None:
    hub.faults.add("preupload", drop="before")
    hub.clear_requests()
    api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo, repo_type="dataset")
    records = [r for r in hub.requests if r.route == "preupload"]
    assert [(r.status, r.dropped) for r in records] == [(0, True), (200, False)]


def test_drop_after_applies_the_commit_but_loses_the_answer(api: HfApi, repo: str, hub: LocalHub) -> None:
    before = hub.commit_count(repo)
    hub.faults.add("commit", drop="after", repo=repo)
    # The commit endpoint is not retried by the client: the network error reaches the caller.
    with pytest.raises(httpx2.TransportError, match="disconnected without sending a response"):
        api.upload_file(path_or_fileobj=b"applied", path_in_repo="applied.txt", repo_id=repo, repo_type="dataset")
    assert hub.commit_count(repo) == before + 1
    assert "applied.txt" in api.list_repo_files(repo, repo_type="dataset")
    [record] = [r for r in hub.requests if r.route == "commit"][-1:]
    assert record.status == 200 and record.dropped


def test_latency_and_filters(hub: LocalHub) -> None:
    headers = {"authorization": f"Bearer {ALICE_TOKEN}"}
    hub.faults.add("whoami", latency=0.3, method="GET")
    hub.faults.add("whoami", status=500, method="POST")  # never matches a GET
    hub.faults.add("repo-info", status=500, repo="someone/else")
    start = time.monotonic()
    assert httpx.get(f"{hub.url}/api/whoami-v2", headers=headers).status_code == 200
    assert time.monotonic() - start >= 0.3
    assert httpx.get(f"{hub.url}/api/whoami-v2", headers=headers).status_code == 200
    assert httpx.get(f"{hub.url}/api/datasets/x/y", headers=headers).status_code == 404
    assert [f["applied"] for f in hub.faults.list()] == [1, 0, 0]


def test_skip_lets_the_first_matches_through(hub: LocalHub) -> None:
    hub.faults.add("whoami", status=503, skip=2, count=1)
    with httpx.Client(headers={"authorization": f"Bearer {ALICE_TOKEN}"}) as client:
        codes = [client.get(f"{hub.url}/api/whoami-v2").status_code for _ in range(4)]
    assert codes == [200, 200, 503, 200]
    [rule] = hub.faults.list()
    assert (rule["seen"], rule["applied"], rule["remaining"]) == (3, 1, 0)  # exhausted rules stop counting


def test_rate_is_deterministic_with_a_seed(hub: LocalHub) -> None:
    def run() -> list[int]:
        hub.faults.clear()
        hub.faults.add("whoami", status=503, rate=0.5, count=None, seed=42)
        with httpx.Client(headers={"authorization": f"Bearer {ALICE_TOKEN}"}) as client:
            return [client.get(f"{hub.url}/api/whoami-v2").status_code for _ in range(20)]

    first = run()
    assert first == run()
    assert 0 < first.count(503) < 20


def test_invalid_rules_are_rejected(hub: LocalHub) -> None:
    with pytest.raises(ValueError, match="Unknown route"):
        hub.faults.add("preuplod", status=503)
    with pytest.raises(ValueError):
        hub.faults.add("commit", status=200)
    with pytest.raises(ValueError):
        hub.faults.add("commit", drop="sometimes")  # type: ignore[arg-type]


def test_admin_routes(hub: LocalHub) -> None:
    admin = f"{hub.url}/_localhub"
    created = httpx.post(f"{admin}/faults", json={"route": "whoami", "status": 418, "count": 2})
    fault_id = created.json()["id"]
    assert [f["id"] for f in httpx.get(f"{admin}/faults").json()] == [fault_id]
    assert httpx.post(f"{admin}/faults", json={"route": "nope"}).status_code == 400

    httpx.delete(f"{admin}/requests")
    assert httpx.get(f"{hub.url}/api/whoami-v2").status_code == 418
    log = httpx.get(f"{admin}/requests").json()
    assert [(r["route"], r["status"], r["fault"]) for r in log] == [
        ("whoami", 418, fault_id)
    ]  # admin calls unlogged
    stats = httpx.get(f"{admin}/stats").json()
    assert stats["requests"] == 1 and stats["faults"] == 1
    assert httpx.put(f"{admin}/config", json={"page_size": 7}).json()["page_size"] == 7
    assert hub.page_size == 7
    httpx.put(f"{admin}/config", json={"page_size": 1000})
    assert httpx.delete(f"{admin}/faults").status_code == 200
    assert hub.faults.list() == []


def test_the_uplink_rate_is_shared_by_concurrent_uploads(hub: LocalHub, api: HfApi, repo: str) -> None:
    """``upload_bytes_per_s`` (set through the admin route) paces the request bodies of all connections together,
    as a client's uplink would: two concurrent uploads take as long as their bytes at that rate."""
    config_url = f"{hub.url}/_localhub/config"
    assert httpx.put(config_url, json={"upload_bytes_per_s": -1}).status_code == 400
    assert httpx.put(config_url, json={"upload_bytes_per_s": 200_000}).json()["upload_bytes_per_s"] == 200_000
    try:
        started = time.monotonic()
        threads = [
            threading.Thread(
                target=api.upload_file,
                kwargs={
                    "path_or_fileobj": os.urandom(60_000),
                    "path_in_repo": f"b{i}.bin",
                    "repo_id": repo,
                    "repo_type": "dataset",
                },
            )
            for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
    finally:
        httpx.put(config_url, json={"upload_bytes_per_s": 0})
    carried = sum(r.bytes_in for r in hub.requests if r.repo == repo)
    assert carried >= 120_000
    assert elapsed >= carried / 200_000 * 0.95, f"{carried} bytes in {elapsed:.2f} s: faster than the uplink"
    assert hub.config.upload_bytes_per_s == 0
