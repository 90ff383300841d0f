"""Crash and resume: the pushing (or generating) process is SIGKILLed at chosen points, and running the same
command again converges to what an uninterrupted run gives.

Push: ``python -m flows.push DIR REPO --description D`` runs in a child process (``HF_TOKEN`` in its
environment, the session's Prefect API), forked from a process that imported the CLI once
(``reliability_support.Launcher``: 19 interpreter starts and imports less). Each kill point is one child on its
own repo, killed

- *inside* a request: a ``localhub`` rule holds that request (latency, then the connection is dropped without
  applying it) and the child is killed as soon as the rule fires, so the process dies mid-request (mid-upload,
  mid-commit);
- *after* the k-th commit was answered;
- *between* a commit that landed and the answer that never came: the commit's answer is dropped and the check the
  push then makes (repo-info) is held, and the child is killed there;
- at a random moment (seeded) during the push.

Then the same push runs again (in this process, or with the same command line for some points) and the repo must
equal a clean push of the same folder: same files and ids, same card, same commit titles (nothing twice).

Generation: ``python -m flows.generate CONFIG ...`` with an ``llm-text`` column (fake OpenAI server with a little
latency, so there is time to kill it) is killed before any batch exists, right after the first batch file appears,
and inside a checkpoint commit (then the output folder is deleted: the rerun resumes from the checkpoint). The
rerun's files equal an uninterrupted run's, byte for byte.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ALICE_TOKEN
from factories import make_dataset_folder, parquet_bytes
from fake_llm import FakeLLM, llm_example_config
from pydantic import SecretStr
from reliability_support import (
    DESCRIPTION,
    Launcher,
    assert_same_as_reference,
    child_env,
    push,
    record_figures,
    repo_files,
    sigkill,
    start_child,
    titles,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("prefect_api", "hub")

HOLD = {"latency": 8.0, "drop": "before"}  # the child sits in this request until killed; never applied
FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    record_figures("crash", FIGURES)


# ------------------------------------------------------------------------------------------------ push kill points

Trigger = Callable[[Any, str, list[str], float], bool]


def fired(index: int = 0) -> Trigger:
    """The ``index``-th rule of the point has fired: the child is inside that request."""

    def check(hub: Any, repo_id: str, rule_ids: list[str], started: float) -> bool:
        return any(r["id"] == rule_ids[index] and r["applied"] for r in hub.faults.list())

    return check


def commits_answered(k: int) -> Trigger:
    def check(hub: Any, repo_id: str, rule_ids: list[str], started: float) -> bool:
        return sum(1 for r in hub.requests if r.repo == repo_id and r.route == "commit" and r.status == 200) >= k

    return check


def after(seconds: float) -> Trigger:
    def check(hub: Any, repo_id: str, rule_ids: list[str], started: float) -> bool:
        # counted from the child's first request about its repo (interpreter start-up excluded)
        first = next((r.time for r in hub.requests if r.repo == repo_id), None)
        return first is not None and time.time() - first >= seconds

    return check


@dataclass
class KillPoint:
    name: str
    rules: list[dict[str, Any]]
    trigger: Trigger
    cli_rerun: bool = False
    may_finish: bool = False  # random points may come after the push already finished
    # Its rule cannot be scoped to the repo (repo-create names the repo in the body): nothing else may run.
    unscoped: bool = False
    # Push with uploads ahead of the stages (the default). Off, requests come in the stage order below, which the
    # rules' ``skip`` counts rely on; on, the pre-uploads' requests interleave with the stages'.
    upload_ahead: bool = False


# The fresh push of the crash folder with HFDS_UPLOAD_AHEAD=0 makes, in order (request index per route in brackets):
# whoami, repo-create, card: repo-info[0] paths-info preupload[0] commit[0]; data: tree preupload[1] lfs-upload[0,1]
# commit[1]; images: ... lfs-upload[2,3] commit[2]; processors: resolve[0] (HEAD of the old metadata.json),
# conversations: ... lfs-upload[4,5] commit[3], summary: ... lfs-upload[6] commit[4]; builder config: preupload[5]
# commit[5]; metadata: repo-info[1] preupload[6] commit[6]. The stages between card and metadata take the head the
# previous stage left; a commit whose answer is lost reads the branch (repo-info) to find it.
_RANDOM = random.Random(20240611)
PUSH_POINTS = [
    KillPoint("in repo-create", [{"route": "repo-create", **HOLD}], fired(), unscoped=True),
    KillPoint("in the card commit", [{"route": "commit", "skip": 0, **HOLD}], fired(), cli_rerun=True),
    KillPoint("after the card commit", [], commits_answered(1)),
    KillPoint("mid data upload", [{"route": "lfs-upload", "skip": 0, **HOLD}], fired()),
    KillPoint("in the data commit", [{"route": "commit", "skip": 1, **HOLD}], fired()),
    KillPoint(
        "data commit landed, answer lost",
        [{"route": "commit", "skip": 1, "drop": "after"}, {"route": "repo-info", "skip": 1, **HOLD}],
        fired(1),
    ),
    KillPoint("mid images upload", [{"route": "lfs-upload", "skip": 2, **HOLD}], fired()),
    KillPoint("reading the old metadata.json", [{"route": "resolve", "skip": 0, **HOLD}], fired()),
    KillPoint("in the conversations commit", [{"route": "commit", "skip": 3, **HOLD}], fired()),
    KillPoint("after the summary commit", [], commits_answered(5)),
    KillPoint("in the builder_config preupload", [{"route": "preupload", "skip": 5, **HOLD}], fired()),
    KillPoint("in the metadata commit", [{"route": "commit", "skip": 6, **HOLD}], fired(), cli_rerun=True),
    KillPoint(
        "metadata commit landed, answer lost",
        [{"route": "commit", "skip": 6, "drop": "after"}, {"route": "repo-info", "skip": 2, **HOLD}],
        fired(1),
    ),
    *(
        KillPoint(f"at random, {t:.2f} s in", [], after(t), may_finish=True)
        for t in sorted(_RANDOM.uniform(0.1, 1.2) for _ in range(2))
    ),
    # The default push: the first large file uploaded is the data stage's, ahead of its turn (during the card).
    KillPoint(
        "mid upload ahead of the data stage",
        [{"route": "lfs-upload", "skip": 0, **HOLD}],
        fired(),
        upload_ahead=True,
    ),
    KillPoint(
        "in the card commit, uploads ahead", [{"route": "commit", "skip": 0, **HOLD}], fired(), upload_ahead=True
    ),
    *(
        KillPoint(f"at random, {t:.2f} s in, uploads ahead", [], after(t), may_finish=True, upload_ahead=True)
        for t in sorted(_RANDOM.uniform(0.1, 1.2) for _ in range(2))
    ),
]
# Local files behind each stage commit whose content goes through LFS (the rest is inline in the commit).
LFS_SOURCES = {
    "Upload main dataset files": "parquet-files",
    "Upload images": "images",
    "Upload conversations processor outputs": "processors-files/conversations",
    "Upload summary processor outputs": "processors-files/summary.parquet",
}


@dataclass(frozen=True)
class PushCase:
    folder: Path
    reference: str


@pytest.fixture(scope="module")
def push_case(tmp_path_factory: pytest.TempPathFactory) -> PushCase:
    folder = make_dataset_folder(tmp_path_factory.mktemp("crash") / "ds", batches=2, rows_per_batch=5, images=2)
    reference = "alice/crash-reference"
    push(folder, reference)
    return PushCase(folder=folder, reference=reference)


@pytest.fixture(scope="module")
def launcher(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    started = Launcher(["flows.push"], child_env(), tmp_path_factory.mktemp("children"))
    yield started
    started.close()


def _cli_args(folder: Path, repo_id: str) -> list[str]:
    return [str(folder), repo_id, "--description", DESCRIPTION]


def _lfs_bytes(folder: Path, rel: str) -> int:
    path = folder / rel
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


KILL_PHASE_SECONDS = 900


def test_push_killed_at_each_point_converges_on_rerun(hub: Any, push_case: PushCase, launcher: Launcher) -> None:
    envs = {True: child_env(), False: {**child_env(), "HFDS_UPLOAD_AHEAD": "0"}}
    points = PUSH_POINTS
    assert len(points) >= 10
    repos = {p.name: f"alice/crash-{i:02d}-{random.randrange(16**6):06x}" for i, p in enumerate(points)}
    reached: dict[str, bool] = {}
    pool = 5  # children running at once
    waiting = sorted(points, key=lambda p: not p.unscoped)  # an unscoped rule must fire before others start
    running: dict[str, tuple[KillPoint, Any, list[str], float]] = {}
    # A safeguard against a child that never reaches its point, not a speed limit: the whole test took 344 s of a
    # 2-core machine whose `import prefect` takes 2.8 s, with `make test`'s other worker beside it (children
    # started with `python -m`; they are forked from the launcher since).
    deadline = time.monotonic() + KILL_PHASE_SECONDS
    while (waiting or running) and time.monotonic() < deadline:
        blocked = any(p.unscoped for p, *_ in running.values())
        while waiting and len(running) < pool and not blocked:
            point = waiting.pop(0)
            repo_id = repos[point.name]
            scope = {} if point.unscoped else {"repo": repo_id}
            ids = [
                hub.faults.add(rule["route"], **scope, **{k: v for k, v in rule.items() if k != "route"})
                for rule in point.rules
            ]
            child = launcher.start("flows.push", _cli_args(push_case.folder, repo_id), envs[point.upload_ahead])
            running[point.name] = (point, child, ids, time.time())
            blocked = point.unscoped
        for name, (point, child, ids, started) in list(running.items()):
            if point.trigger(hub, repos[name], ids, started):
                sigkill(child)
                reached[name] = True
                del running[name]
            elif child.poll() is not None:
                _, err = child.communicate()
                reached[name] = False
                del running[name]
                assert point.may_finish, (
                    f"{name}: the push ended (rc {child.returncode}) before its kill point: {err[-2000:]}"
                )
        time.sleep(0.005)
    for _, child, _, _ in running.values():
        sigkill(child)
    assert not running and not waiting, f"kill points not reached within {KILL_PHASE_SECONDS} s: {sorted(running)}"
    hub.faults.clear()
    committed = {
        p.name: titles(repos[p.name]) if reached[p.name] and _exists(repos[p.name]) else [] for p in points
    }

    # The same push again: with the same command line for some points, in this process for the others.
    clis = [
        (p, start_child("flows.push", _cli_args(push_case.folder, repos[p.name]), envs[True]))
        for p in points
        if p.cli_rerun
    ]
    hub.clear_requests()
    for point in points:
        if not point.cli_rerun:
            push(push_case.folder, repos[point.name])
    for point, child in clis:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, f"{point.name}: the rerun failed: {err[-2000:]}"
        assert repos[point.name] in out  # the CLI prints the repo URL and the stage table

    failures = []
    for point in points:
        repo_id = repos[point.name]
        try:
            assert_same_as_reference(repo_id, push_case.reference)
            # Rerun without redoing: no LFS bytes of a stage that had committed before the kill are sent again.
            sent = sum(r.bytes_in for r in hub.requests if r.route == "lfs-upload" and r.repo == repo_id)
            missing = sum(
                _lfs_bytes(push_case.folder, rel)
                for t, rel in LFS_SOURCES.items()
                if t not in committed[point.name]
            )
            assert sent <= missing, f"the rerun sent {sent} LFS bytes; only {missing} were not on the Hub"
        except AssertionError as exc:
            failures.append(f"{point.name}: {exc}")
    FIGURES["push_kill_points"] = len(points)
    FIGURES["push_killed_mid_push"] = sum(reached.values())
    FIGURES["push_reruns_converged"] = len(points) - len(failures)
    assert not failures, "\n".join(failures)


def _exists(repo_id: str) -> bool:
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        repo_files(repo_id)
    except RepositoryNotFoundError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ generation


GEN_RECORDS, GEN_BATCH = 48, 8  # 6 batches


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM(latency=0.03, api_key="sk-crash-test-key") as server:
        yield server


@pytest.fixture(scope="module")
def generation_case(
    llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory, prefect_api: None
) -> tuple[Path, Path]:
    """The config file and an uninterrupted run's folder."""
    import os

    from flows.generate import generate_dataset

    root = tmp_path_factory.mktemp("gen-crash")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(llm_example_config(llm.endpoint, parallel=2)))
    os.environ["FAKE_LLM_API_KEY"] = "sk-crash-test-key"
    try:
        whole = generate_dataset(str(config), GEN_RECORDS, root / "whole", batch_size=GEN_BATCH, seed=9)
    finally:
        os.environ.pop("FAKE_LLM_API_KEY", None)
    assert whole.num_batches == GEN_RECORDS // GEN_BATCH
    return config, root / "whole"


def _gen_args(config: Path, out: Path, *extra: str) -> list[str]:
    return [
        str(config),
        "--num-records",
        str(GEN_RECORDS),
        "--output",
        str(out),
        "--batch-size",
        str(GEN_BATCH),
        "--seed",
        "9",
        "--max-in-flight",
        "2",
        *extra,
    ]


def _batches(out: Path) -> int:
    return len(list((out / "parquet-files").glob("batch_*.parquet"))) if (out / "parquet-files").is_dir() else 0


def _rerun_in_process(config: Path, out: Path, **options: Any) -> Any:
    """The same generation as the CLI command, run in this process (the kill needs a process; the rerun not)."""
    import os

    from flows.generate import generate_dataset

    os.environ["FAKE_LLM_API_KEY"] = "sk-crash-test-key"
    try:
        return generate_dataset(
            str(config), GEN_RECORDS, out, batch_size=GEN_BATCH, seed=9, max_in_flight=2, **options
        )
    finally:
        os.environ.pop("FAKE_LLM_API_KEY", None)


def test_generation_killed_twice_resumes_to_the_same_bytes(
    llm: FakeLLM, generation_case: tuple[Path, Path], tmp_path: Path
) -> None:
    """Killed before any batch exists, then (same command) right after the first batch file appears; the third
    run completes and its files equal an uninterrupted run's, byte for byte."""
    config, whole = generation_case
    env = child_env(FAKE_LLM_API_KEY="sk-crash-test-key")
    out = tmp_path / "out"

    seen = len(llm.requests)
    child = start_child("flows.generate", _gen_args(config, out), env)
    reached = wait_for(lambda: len(llm.requests) > seen or child.poll() is not None, 60)
    sigkill(child)
    assert reached and child.returncode == -9, "the child ended before its first LLM request"
    assert _batches(out) == 0 and not (out / "metadata.json").exists()

    child = start_child("flows.generate", _gen_args(config, out), env)
    reached = wait_for(lambda: _batches(out) >= 1 or child.poll() is not None, 60)
    sigkill(child)
    assert reached and 1 <= _batches(out) < GEN_RECORDS // GEN_BATCH, _batches(out)
    assert not (out / "metadata.json").exists()
    kept = _batches(out)

    requests_before = len(llm.chat_requests)
    result = _rerun_in_process(config, out)
    assert result.resumed_batches == kept
    assert (len(llm.chat_requests) - requests_before) // (2 * GEN_BATCH) <= GEN_RECORDS // GEN_BATCH - kept
    assert parquet_bytes(out) == parquet_bytes(whole)
    assert (out / "builder_config.json").read_bytes() == (whole / "builder_config.json").read_bytes()
    assert not list(out.rglob(".*.tmp-*")), "temporary files of the killed runs were left behind"
    FIGURES.setdefault("generation_kill_points", []).extend(["before any batch", "right after the first batch"])


def test_generation_killed_in_a_checkpoint_commit_resumes_from_the_checkpoint(
    hub: Any, llm: FakeLLM, generation_case: tuple[Path, Path], tmp_path: Path, repo_id: str
) -> None:
    """Checkpoints go to ``repo_id``@checkpoint after every batch; the child is killed inside the third checkpoint
    commit, the local folder is lost, and the same generation resumes from the checkpoint instead of starting
    over."""
    from tasks.generation.checkpoint import CheckpointTarget

    config, whole = generation_case
    env = child_env(FAKE_LLM_API_KEY="sk-crash-test-key")
    out = tmp_path / "out"
    args = _gen_args(config, out, "--checkpoint-repo", repo_id, "--checkpoint-interval", "0")
    hold = hub.faults.add("commit", repo=repo_id, skip=2, count=1, **HOLD)
    # Batches slower than commits. The commit worker (niceness +10) takes every batch finished meanwhile into one
    # commit; once in CI, with the other test worker beside it, a run ended after two commits, never reaching its
    # third (not reproduced alone, nor beside two busy loops). At 0.25 s per request a batch takes about 1 s.
    usual, llm.latency = llm.latency, 0.25
    try:
        child = start_child("flows.generate", args, env)
        reached = wait_for(
            lambda: any(r["id"] == hold and r["applied"] for r in hub.faults.list()) or child.poll() is not None, 90
        )
        sigkill(child)
    finally:
        llm.latency = usual
    assert reached and child.returncode == -9, "the child ended before its third checkpoint commit"
    hub.faults.clear()
    checkpointed = {p for p in repo_files(repo_id, "checkpoint") if p.startswith("parquet-files/")}
    assert checkpointed, "no batch reached the checkpoint before the kill"
    shutil.rmtree(out)  # the machine is gone: only the checkpoint is left

    requests_before = len(llm.chat_requests)
    target = CheckpointTarget(
        repo_id=repo_id, branch="checkpoint", interval_seconds=0, token=SecretStr(ALICE_TOKEN)
    )
    result = _rerun_in_process(config, out, checkpoint=target)
    assert result.resumed_batches >= len(checkpointed)
    regenerated = (len(llm.chat_requests) - requests_before) // (2 * GEN_BATCH)  # 2 llm-text columns per row
    assert regenerated <= GEN_RECORDS // GEN_BATCH - len(checkpointed), "checkpointed batches were generated again"
    assert parquet_bytes(out) == parquet_bytes(whole)
    final = {p for p in repo_files(repo_id, "checkpoint") if p.startswith("parquet-files/")}
    assert final == {f"parquet-files/{p.name}" for p in (whole / "parquet-files").iterdir()}
    FIGURES.setdefault("generation_kill_points", []).append("inside a checkpoint commit, folder lost")
