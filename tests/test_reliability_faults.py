"""The fault matrix: a re-push under injected Hub faults ends exactly like a clean push, or fails clearly and a
rerun completes it. And commits whose answer is lost are never made twice.

Scenario of every cell: the repo holds an earlier push of folder A (3 batches, processors ``conversations`` and
``summary``, 3 images); folder B (2 batches, ``conversations`` only, 2 images, a builder config) is pushed over
it while ``localhub`` injects faults on one route. The reference is the same re-push without faults. A cell
passes when the repo ends with the reference's files and ids (so ``data/batch_00002.parquet``, ``images/...2.png``
and ``summary/`` are gone: nothing stale), the same card, and the same commit titles (no duplicate commit).

Per route (preupload, lfs-upload, commit, repo-info, resolve):

- single faults: 500, 503, 429 with ``Retry-After: 1``, a dropped connection, latency beyond the client timeout;
  each at a different position (``skip``) so that every stage meets some fault;
- 30 % of the route's requests failing (``rate=0.3``, seeded), and all five routes at 30 % at once;
- an outage (503 on every request from some stage on): past the retry budget the push must fail with the Hub's
  status in its message and the failed stage visible in Prefect, and a rerun without faults must complete it.

Uploads ahead of the stages (``tasks.preupload``) run in a background task, so their requests interleave with the
stages' in no fixed order. The cells that pick a request by its position (``skip``) therefore push with
``HFDS_UPLOAD_AHEAD=0`` (``stage_uploads_only``), where requests come in stage order; the 30 % cells and
``test_a_failed_upload_ahead_is_taken_over_by_its_stage`` push as users do, uploads ahead included.

Test-speed scaling: stage retries 2 × 0.1/0.2 s (conftest); huggingface_hub's own back-off (1, 2, 4, 8, 8 s) is
scaled to 0.05 … 0.2 s here (``fast_client_backoff``); ``Retry-After`` is kept (the client sleeps it + 1 s).

Timeouts: huggingface_hub 2.4's HTTP client has *no* timeout by default (``timeout=None``), and ``repo_info``
passes ``timeout=None`` explicitly; the project bounds both (``HFDS_HTTP_TIMEOUT``, ``tasks/hub_client.py``). The
latency cells set that bound to 1 s (and the HEAD of ``hf_hub_download``, ``HF_HUB_ETAG_TIMEOUT``, to 1 s), then
inject 2 s of latency: the request times out and is retried.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from factories import make_dataset_folder
from prefect import get_client
from prefect_server import final_task_runs, task_run_base_name
from reliability_support import (
    assert_same_as_reference,
    client_timeout,
    fast_client_backoff,
    first_line,
    push,
    record_figures,
    repo_files,
    seed_repo,
    titles,
    wait_for,
)

from tasks.file_digest import compute_digest

pytestmark = pytest.mark.usefixtures("prefect_api", "hub")

ROUTES = ("preupload", "lfs-upload", "commit", "repo-info", "resolve")
# How many requests of each route the re-push makes (see the module docstring); a fault's ``skip`` picks its stage.
# preupload/commit: card, data, images, conversations, builder_config, metadata; repo-info: card, metadata (the
# stages between take the head the previous stage left); lfs-upload: data ×2, images ×2, conversations ×2;
# resolve: HEAD then GET of the old metadata.json.
SINGLE_SKIPS = {
    "preupload": {"500": 0, "503": 1, "429": 2, "drop": 3, "timeout": 5},
    "lfs-upload": {"500": 0, "503": 2, "429": 4, "drop": 1, "timeout": 3},
    "commit": {"500": 0, "503": 1, "429": 3, "drop": 4, "timeout": 5},
    "repo-info": {"500": 0, "503": 1, "429": 0, "drop": 1, "timeout": 0},
    "resolve": {"500": 0, "503": 1, "429": 0, "drop": 1, "timeout": 0},
}
KINDS: dict[str, dict[str, Any]] = {
    "500": {"status": 500},
    "503": {"status": 503},
    "429": {"status": 429, "retry_after": 1},
    "drop": {"drop": "before"},
    "timeout": {"latency": 2.0},
}
RATE_KINDS: dict[str, dict[str, Any]] = {
    "preupload": {"status": 503},
    "lfs-upload": {"drop": "before"},
    "commit": {"drop": "after"},  # 30 % of the commits land but their answer is lost
    "repo-info": {"status": 500},
    "resolve": {"status": 503},
}
STAGE_ATTEMPTS = 1 + int(os.environ["HFDS_STAGE_RETRIES"])  # conftest: 2 retries
OUTAGE_SKIPS = {"preupload": 2, "lfs-upload": 2, "commit": 3, "repo-info": 1}
STAGE_OF_OUTAGE = {
    "preupload": "push-images",
    "lfs-upload": "push-images",
    "commit": "push-processors",
    "repo-info": "push-metadata",
}


@dataclass
class Tally:
    cells: int = 0
    completed: int = 0
    failed_then_completed_by_rerun: int = 0
    faults_injected: int = 0
    by_route: dict[str, int] = field(default_factory=dict)
    by_effect: dict[str, int] = field(default_factory=dict)
    lost_commit_answers: int = 0  # in the dedicated tests below (the matrix's commit cells count above)


TALLY = Tally()


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    record_figures(
        "faults",
        {
            "cells": TALLY.cells,
            "completed_first_time": TALLY.completed,
            "failed_then_completed_by_rerun": TALLY.failed_then_completed_by_rerun,
            "faults_injected": TALLY.faults_injected,
            "faults_by_route": TALLY.by_route,
            "faults_by_effect": TALLY.by_effect,
            "lost_commit_answers_in_dedicated_tests": TALLY.lost_commit_answers,
        },
    )


@dataclass(frozen=True)
class Scenario:
    earlier: Path  # folder A, already on the Hub
    folder: Path  # folder B, pushed under faults
    reference: str  # A seeded, then B pushed without faults
    clean_requests: dict[str, int]  # requests per route of the re-push without faults


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, hub: Any) -> Scenario:
    root = tmp_path_factory.mktemp("fault-matrix")
    earlier = make_dataset_folder(root / "a", batches=3, rows_per_batch=5, seed=1)
    folder = make_dataset_folder(root / "b", batches=2, rows_per_batch=5, processor_file=None, images=2, seed=2)
    reference = "alice/fault-matrix-reference"
    seed_repo(reference, earlier)
    hub.clear_requests()
    with pytest.MonkeyPatch.context() as env:  # the request counts the position-picked cells compare with
        env.setenv("HFDS_UPLOAD_AHEAD", "0")
        push(folder, reference)
    clean: dict[str, int] = {}
    for record in hub.requests:
        clean[record.route] = clean.get(record.route, 0) + 1
    files = repo_files(reference)
    assert "data/batch_00002.parquet" not in files and not any(p.startswith("summary/") for p in files)
    return Scenario(earlier=earlier, folder=folder, reference=reference, clean_requests=clean)


@pytest.fixture
def stage_uploads_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Push without uploads ahead of the stages, so that requests come in stage order (see the module docstring)."""
    monkeypatch.setenv("HFDS_UPLOAD_AHEAD", "0")


@pytest.fixture(autouse=True)
def _fast_client() -> Iterator[None]:
    with fast_client_backoff():
        yield


def _effect(rule: dict[str, Any]) -> str:
    if rule["status"]:
        return str(rule["status"])
    if rule["drop"] != "none":
        return f"connection dropped {rule['drop']} applying"
    return "latency"


def _settle(hub: Any, rule_ids: list[str], timeout: float = 10) -> int:
    """Wait until every request a rule fired on has been answered (a delayed request may still be applied);
    return how many times the rules fired."""
    applied = {r["id"]: r["applied"] for r in hub.faults.list() if r["id"] in rule_ids}
    wait_for(lambda: sum(1 for r in hub.requests if r.fault in applied) >= sum(applied.values()), timeout)
    return sum(applied.values())


def _failed_stage_tasks(flow_run_id: Any) -> list[tuple[str, int]]:
    """(stage task name, attempts) of the failed task runs of a flow run."""
    with get_client(sync_client=True) as client:
        runs = final_task_runs(client, [flow_run_id])
    return sorted(
        (task_run_base_name(r), r.run_count) for r in runs if r.state is not None and r.state.is_failed()
    )


def _run_cell(
    hub: Any, scenario: Scenario, repo_id: str, rules: list[dict[str, Any]], *, timeout: float | None = None
) -> tuple[Any, str | None]:
    """Seed, inject ``rules`` (on this repo only), push; on failure check the message, rerun without faults.

    Returns the first push's final state and its failure line (None when it completed)."""
    seed_repo(repo_id, scenario.earlier)
    ids = [hub.faults.add(rule.pop("route"), repo=repo_id, **rule) for rule in rules]
    hub.clear_requests()
    timing = client_timeout(timeout) if timeout else contextlib.nullcontext()
    with timing:
        state = push(scenario.folder, repo_id, return_state=True)
    fired = _settle(hub, ids)
    effects = {r["id"]: _effect(r) for r in hub.faults.list() if r["id"] in ids}
    hub.faults.clear()
    TALLY.cells += 1
    TALLY.faults_injected += fired
    for record in hub.requests:
        if record.fault in ids:
            TALLY.by_route[record.route] = TALLY.by_route.get(record.route, 0) + 1
            TALLY.by_effect[effects[record.fault]] = TALLY.by_effect.get(effects[record.fault], 0) + 1
    assert fired >= 1, "the injected fault never fired: this cell tested nothing"
    failure = None
    if state.is_completed():
        TALLY.completed += 1
    else:
        try:
            state.result()
        except Exception as exc:
            failure = first_line(exc)
        assert failure, "a failed push must say why"
        push(scenario.folder, repo_id)  # the documented recovery: re-run the same push
        TALLY.failed_then_completed_by_rerun += 1
    assert_same_as_reference(repo_id, scenario.reference)
    return state, failure


# ------------------------------------------------------------------------------------------------ single faults


@pytest.mark.usefixtures("stage_uploads_only")
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("route", ROUTES)
def test_single_fault_is_survived(hub: Any, scenario: Scenario, repo_id: str, route: str, kind: str) -> None:
    rule: dict[str, Any] = {"route": route, "count": 1, "skip": SINGLE_SKIPS[route][kind], **KINDS[kind]}
    started = time.monotonic()
    state, failure = _run_cell(hub, scenario, repo_id, [rule], timeout=1.0 if kind == "timeout" else None)
    assert failure is None, f"one {kind} on {route} made the push fail: {failure}"
    if (route, kind) == ("commit", "timeout"):
        # The Hub applied the commit after the client gave up: found on the Hub, not sent again.
        assert [c.message for c in state.result().commits if c.recovered] == ["Upload metadata.json"]
    else:  # the failed request was sent again (for a latency: it timed out first)
        sent = sum(1 for r in hub.requests if r.route == route and r.repo == repo_id)
        assert sent > scenario.clean_requests[route], f"no retry of {route}: {sent} requests"
    if kind == "429" and route != "resolve":
        # (hf_hub_download answers a failed HEAD by asking again at once, without the retry policy; the
        # second HEAD is not refused here.)
        assert time.monotonic() - started >= 1.0, "Retry-After was not honoured"


# ------------------------------------------------------------------------------------------------ 30 % of requests


# Seeds chosen so that the rule fires on this scenario's few requests (resolve: 2 per push, 30 % of them).
RATE_SEEDS = {"preupload": 100, "lfs-upload": 101, "commit": 102, "repo-info": 109, "resolve": 114}


@pytest.mark.parametrize(("route", "seed"), list(RATE_SEEDS.items()))
def test_thirty_percent_of_a_route_failing(
    hub: Any, scenario: Scenario, repo_id: str, route: str, seed: int
) -> None:
    rule = {"route": route, "count": None, "rate": 0.3, "seed": seed, **RATE_KINDS[route]}
    _, failure = _run_cell(hub, scenario, repo_id, [rule])
    if failure is not None:  # past the retry budget: allowed, if it says why (and the rerun completed it)
        assert any(s in failure for s in ("503", "500", "disconnected", "Server")), failure


def test_thirty_percent_on_every_route_at_once(hub: Any, scenario: Scenario, repo_id: str) -> None:
    rules = [
        {"route": route, "count": None, "rate": 0.3, "seed": 7 + i, **RATE_KINDS[route]}
        for i, route in enumerate(ROUTES)
    ]
    _, failure = _run_cell(hub, scenario, repo_id, rules)
    if failure is not None:
        assert any(s in failure for s in ("503", "500", "disconnected", "Server")), failure


# ------------------------------------------------------------------------------------------------ outages


@pytest.mark.usefixtures("stage_uploads_only")
@pytest.mark.parametrize("route", [r for r in ROUTES if r != "resolve"])  # resolve: the test below
def test_outage_fails_clearly_and_a_rerun_completes(
    hub: Any, scenario: Scenario, repo_id: str, route: str
) -> None:
    rule = {"route": route, "count": None, "skip": OUTAGE_SKIPS[route], "status": 503}
    state, failure = _run_cell(hub, scenario, repo_id, [rule])
    assert failure is not None, (
        f"503 on every {route} request from {STAGE_OF_OUTAGE[route]} on, yet the push reported success "
        "(see the stale-file check above when it passed)"
    )
    failed = _failed_stage_tasks(state.state_details.flow_run_id)
    assert [name for name, _ in failed] == [STAGE_OF_OUTAGE[route]], (
        f"the failed stage is not in Prefect: {failed}"
    )
    attempts = failed[0][1]
    assert attempts == STAGE_ATTEMPTS, (
        f"BUG (tasks/retry_policy.py, is_transient): the {STAGE_OF_OUTAGE[route]} stage ran {attempts} time(s), "
        f"not {STAGE_ATTEMPTS}: a 503 from the Hub is transient, but huggingface_hub reports failed LFS uploads "
        f"as RuntimeError('Error while uploading ...') from HfHubHTTPError(503), and only network errors are "
        f"looked for in the cause. Failure: {failure}"
    )
    assert "503" in failure, f"the failure does not name the Hub's answer: {failure}"


def test_a_failed_upload_ahead_is_taken_over_by_its_stage(hub: Any, scenario: Scenario, repo_id: str) -> None:
    """The data files' upload ahead of their stage fails (the Hub refuses its LFS batch request): the run shows no
    failed task, the result says why the head start stopped, and the data stage uploads the files itself and
    commits them, with the same end as a clean push."""
    # The first LFS batch requests are the data pre-upload's (the card has no large file, the data stage waits for
    # it): refuse as many as huggingface_hub tries (1 + its retries), so that the pre-upload gives up.
    from huggingface_hub.utils import _http

    attempts = 1 + int(_http.http_backoff.__kwdefaults__["max_retries"])
    state, failure = _run_cell(hub, scenario, repo_id, [{"route": "lfs-batch", "count": attempts, "status": 503}])
    assert failure is None, failure
    errors = {p.stage: p.error for p in state.result().preuploads}
    assert errors.keys() == {"data", "images", "processors"}
    assert errors["data"] is not None and "503" in errors["data"], errors
    assert errors["images"] is None and errors["processors"] is None, errors
    assert _failed_stage_tasks(state.state_details.flow_run_id) == []
    uploads = [r.path for r in hub.requests if r.route == "lfs-upload"]  # /lfs-upload/{oid}/...
    data_oids = [compute_digest(p).sha256 for p in (scenario.folder / "parquet-files").glob("*.parquet")]
    assert data_oids and all(any(oid in path for path in uploads) for oid in data_oids), (
        "the data stage did not upload the files its pre-upload could not"
    )


def test_resolve_outage_is_not_mistaken_for_no_previous_push(hub: Any, scenario: Scenario, repo_id: str) -> None:
    """The processors stage reads the previous ``metadata.json`` to delete outputs of vanished processors. When the
    Hub cannot serve it (HEAD /resolve 503 on every try), the stage must fail (and be retried), not proceed as if
    there had been no earlier push: that leaves ``summary/`` behind while the card no longer lists it."""
    seed_repo(repo_id, scenario.earlier)
    rule = hub.faults.add("resolve", status=503, count=None, repo=repo_id)
    hub.clear_requests()
    state = push(scenario.folder, repo_id, return_state=True)
    fired = _settle(hub, [rule])
    hub.faults.clear()
    TALLY.cells += 1
    TALLY.faults_injected += fired
    TALLY.by_route["resolve"] = TALLY.by_route.get("resolve", 0) + fired
    TALLY.by_effect["503"] = TALLY.by_effect.get("503", 0) + fired
    stale = sorted(p for p in repo_files(repo_id) if p.startswith("summary/"))
    assert not (state.is_completed() and stale), (
        "BUG (tasks/stages.py, previous_processors): a 503 outage on /resolve was taken for 'no metadata.json on "
        f"the Hub' (LocalEntryNotFoundError is an EntryNotFoundError); the push succeeded and left {stale} behind"
    )
    assert not state.is_completed()
    assert _failed_stage_tasks(state.state_details.flow_run_id) == [("push-processors", STAGE_ATTEMPTS)]
    failure = ""
    try:
        state.result()
    except Exception as exc:
        failure = first_line(exc)
    push(scenario.folder, repo_id)  # the rerun completes it
    TALLY.failed_then_completed_by_rerun += 1
    assert_same_as_reference(repo_id, scenario.reference)
    assert "503" in failure, (
        "BUG (tasks/stages.py, push_processors/previous_processors): the failure does not say that the Hub answered "
        f"503; huggingface_hub's LocalEntryNotFoundError ('check your Internet connection') reaches the user: {failure}"
    )


# ------------------------------------------------------------------------------------------------ lost answers


def test_every_commit_answer_lost(hub: Any, scenario: Scenario, repo_id: str) -> None:
    """Every commit of the re-push lands but its answer never arrives: each is found on the Hub, none is repeated."""
    seed_repo(repo_id, scenario.earlier)
    hub.faults.add("commit", drop="after", count=None, repo=repo_id)
    hub.clear_requests()
    result = push(scenario.folder, repo_id)
    hub.faults.clear()
    commits = [c for s in result.stages for c in s.commits]
    assert len(commits) == 6 and all(c.recovered for c in commits), [(c.message, c.recovered) for c in commits]
    posts = [r for r in hub.requests if r.route == "commit" and r.repo == repo_id]
    assert len(posts) == 6 and all(r.dropped and r.status == 200 for r in posts), "a commit was sent twice"
    TALLY.lost_commit_answers += len(posts)
    assert_same_as_reference(repo_id, scenario.reference)


@pytest.mark.usefixtures("stage_uploads_only")
def test_lost_answer_then_failed_check_is_not_committed_twice(hub: Any, scenario: Scenario, repo_id: str) -> None:
    """The data commit lands, its answer is lost, and the check that looks for it fails too (503 on repo-info):
    the stage is retried, finds its files on the Hub and makes no second commit."""
    seed_repo(repo_id, scenario.earlier)
    hub.faults.add("commit", drop="after", skip=1, count=1, repo=repo_id)
    # repo-info: card head (0), then the landed check of the data commit (1); the data stage took the card's head.
    check = hub.faults.add("repo-info", status=503, skip=1, count=1, repo=repo_id)
    hub.clear_requests()
    push(scenario.folder, repo_id)
    hub.faults.clear()
    fired = [r for r in hub.requests if r.fault == check]
    assert len(fired) == 1
    before = [r.route for r in hub.requests if r.repo == repo_id and r.time < fired[0].time]
    assert before.count("commit") == 2 and before[-1] == "commit", "the check failed is the lost commit's"
    data_posts = [r for r in hub.requests if r.route == "commit" and r.repo == repo_id]
    assert sum(1 for r in data_posts if r.status == 200) == 6, "one commit per stage, none twice"
    TALLY.lost_commit_answers += 1
    assert_same_as_reference(repo_id, scenario.reference)


@pytest.mark.usefixtures("stage_uploads_only")
def test_lost_answer_of_one_part_of_a_split_commit(hub: Any, repo_id: str, tmp_path: Path) -> None:
    """A stage split into ``(part i of n)`` commits loses the answer of part 2: parts are neither repeated nor
    skipped."""
    folder = make_dataset_folder(tmp_path / "ds", batches=3, rows_per_batch=4, processor_file=None, images=0)
    clean = repo_id + "-clean"
    push(folder, clean, max_files_per_commit=1, stages=["data"])
    hub.faults.add("commit", drop="after", skip=1, count=1, repo=repo_id)
    result = push(folder, repo_id, max_files_per_commit=1, stages=["data"])
    hub.faults.clear()
    assert titles(repo_id)[1:] == [f"Upload main dataset files (part {i} of 3)" for i in (1, 2, 3)]
    assert repo_files(repo_id) == repo_files(clean)
    assert [c.recovered for c in result.commits] == [False, True, False]
    TALLY.lost_commit_answers += 1
