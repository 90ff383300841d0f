"""Generation against the embedded Hub: checkpoint commits within the interval, resume from a checkpoint, and the
config round trip through a ``builder_config.json`` URL."""

from __future__ import annotations

import itertools
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import ALICE_TOKEN, HUB_URL
from factories import parquet_bytes
from huggingface_hub import HfApi
from huggingface_hub.errors import LocalEntryNotFoundError
from pydantic import SecretStr
from reliability_support import fast_client_backoff, wait_for

from flows.generate import generate_dataset
from tasks.generation import batch as batch_module
from tasks.generation.batch_writer import write_parquet_atomic
from tasks.generation.checkpoint import Checkpointer, CheckpointTarget
from tasks.generation.checkpoint_worker import NICENESS
from tasks.generation.source import from_config
from tasks.generation.state import STATE_FILE, GenerationState, batch_files

ROOT = Path(__file__).resolve().parents[1]
GREETINGS = ROOT / "examples" / "multilingual_greetings.yaml"


def test_checkpoint_commits_stay_within_the_interval(hub: object, repo_id: str, tmp_path: Path) -> None:
    import pyarrow as pa

    state = GenerationState(config_hash="h", seed=0, batch_size=1, num_records=12, processors=[])
    target = CheckpointTarget(repo_id=repo_id, branch="ckpt", interval_seconds=0.6, token=SecretStr(ALICE_TOKEN))
    checkpointer = Checkpointer(target, tmp_path, state)
    assert checkpointer.prepare() is None
    checkpointer.start()
    started = time.monotonic()
    for index in range(12):  # a batch every 0.1 s for 1.2 s
        rel = batch_files(index, [])[0]
        write_parquet_atomic(pa.table({"i": [index]}), tmp_path / rel)
        before = time.monotonic()
        checkpointer.add([rel], index)
        assert time.monotonic() - before < 0.05  # generation never waits for the Hub
        time.sleep(0.1)
    commits = checkpointer.close()
    elapsed = time.monotonic() - started
    starts = [c.started for c in commits]
    assert all(b - a >= 0.6 for a, b in itertools.pairwise(starts)), starts
    assert 2 <= len(commits) <= int(elapsed / 0.6) + 1
    assert sorted(i for c in commits for i in c.batches) == list(range(12))  # every batch, none twice

    api = HfApi(token=ALICE_TOKEN)
    files = set(api.list_repo_files(repo_id, repo_type="dataset", revision="ckpt"))
    assert {f"parquet-files/batch_{i:05d}.parquet" for i in range(12)} | {STATE_FILE} <= files
    history = api.list_repo_commits(repo_id, repo_type="dataset", revision="ckpt")
    assert sum(c.title.startswith("Checkpoint:") for c in history) == len(commits)
    remote = checkpointer.read_remote_state()
    assert remote is not None and remote.completed_batches == list(range(12))


def test_failed_checkpoint_commits_are_retried_and_never_duplicated(
    hub: Any, repo_id: str, tmp_path: Path
) -> None:
    import pyarrow as pa

    state = GenerationState(config_hash="h", seed=0, batch_size=1, num_records=2, processors=[])
    target = CheckpointTarget(repo_id=repo_id, branch="ckpt", interval_seconds=0.2, token=SecretStr(ALICE_TOKEN))
    checkpointer = Checkpointer(target, tmp_path, state)
    checkpointer.prepare()
    for index in range(2):
        write_parquet_atomic(pa.table({"i": [index]}), tmp_path / batch_files(index, [])[0])
    hub.faults.add("commit", drop="after", repo=repo_id)  # the commit lands, its answer is lost
    checkpointer.start()
    checkpointer.add(batch_files(0, []), 0)
    deadline = time.monotonic() + 10
    while not checkpointer.commits and time.monotonic() < deadline:
        time.sleep(0.05)
    hub.faults.add("commit", status=500, repo=repo_id)  # the next commit fails outright, then succeeds
    checkpointer.add(batch_files(1, []), 1)
    commits = checkpointer.close()
    assert [c.batches for c in commits] == [[0], [1]]
    history = HfApi(token=ALICE_TOKEN).list_repo_commits(repo_id, repo_type="dataset", revision="ckpt")
    assert sum(c.title.startswith("Checkpoint:") for c in history) == 2  # no duplicate of the lost answer
    # The commit whose answer was lost is still recorded with its id (the run's result and event carry it).
    assert [c.oid for c in commits] == [c.commit_id for c in history if c.title.startswith("Checkpoint:")][::-1]
    remote = checkpointer.read_remote_state()
    assert remote is not None and remote.completed_batches == [0, 1]


def test_a_commit_that_landed_unseen_does_not_block_the_later_ones(hub: Any, repo_id: str, tmp_path: Path) -> None:
    """The first commit of a new run deletes the earlier run's files. It lands, but its answer is lost and the
    landed check cannot read the state file (503s): the retry must not ask to delete those files again, which
    the Hub refuses (404) at every attempt, leaving the run without any checkpoint."""
    import pyarrow as pa

    def run(root: Path, config_hash: str, batches: int, interval: float) -> Checkpointer:
        state = GenerationState(config_hash=config_hash, seed=0, batch_size=1, num_records=batches, processors=[])
        target = CheckpointTarget(
            repo_id=repo_id, branch="ckpt", interval_seconds=interval, token=SecretStr(ALICE_TOKEN)
        )
        checkpointer = Checkpointer(target, root, state)
        checkpointer.prepare()
        for index in range(batches):
            write_parquet_atomic(pa.table({"i": [index]}), root / batch_files(index, [])[0])
        return checkpointer

    earlier = run(tmp_path / "a", "a", 4, 0)
    earlier.start()
    for index in range(4):
        earlier.add(batch_files(index, []), index)
    assert earlier.close()
    later = run(tmp_path / "b", "b", 2, 0.2)
    hub.faults.add("commit", drop="after", repo=repo_id)  # lands; the answer is lost
    hub.faults.add("resolve", status=503, count=8, repo=repo_id)  # the landed check cannot read the state
    with fast_client_backoff():  # in this process: the committer's landed check (the worker commits)
        later.start()
        later.add(batch_files(0, []), 0)
        time.sleep(1.0)
        later.add(batch_files(1, []), 1)
        later.close()
    remote = later.read_remote_state()
    assert remote is not None and remote.config_hash == "b" and remote.completed_batches == [0, 1], later.error
    files = HfApi(token=ALICE_TOKEN).list_repo_files(repo_id, repo_type="dataset", revision="ckpt")
    assert sorted(f for f in files if f.startswith("parquet-files/")) == [batch_files(i, [])[0] for i in range(2)]


def _checkpoint_one_batch_to_main(repo_id: str, tmp_path: Path) -> list[Any]:
    """A one-batch run checkpointed to ``repo_id``'s main branch; its commits."""
    import pyarrow as pa

    state = GenerationState(config_hash="h", seed=0, batch_size=1, num_records=1, processors=[])
    target = CheckpointTarget(repo_id=repo_id, branch="main", interval_seconds=0, token=SecretStr(ALICE_TOKEN))
    checkpointer = Checkpointer(target, tmp_path, state)
    checkpointer.prepare()
    write_parquet_atomic(pa.table({"i": [0]}), tmp_path / batch_files(0, [])[0])
    checkpointer.start()
    checkpointer.add(batch_files(0, []), 0)
    return checkpointer.close()


def test_checkpoints_to_a_published_datasets_main_keep_its_files(hub: Any, repo_id: str, tmp_path: Path) -> None:
    """A published dataset's metadata.json and builder_config.json are not a checkpoint's (no state file beside
    them): checkpointing to its main branch must not delete them."""
    api = HfApi(token=ALICE_TOKEN)
    api.create_repo(repo_id, repo_type="dataset")
    for name in ("metadata.json", "builder_config.json"):
        api.upload_file(path_or_fileobj=b"{}", path_in_repo=name, repo_id=repo_id, repo_type="dataset")
    assert _checkpoint_one_batch_to_main(repo_id, tmp_path)
    files = api.list_repo_files(repo_id, repo_type="dataset")
    assert {"metadata.json", "builder_config.json", batch_files(0, [])[0]} <= set(files)


@pytest.mark.parametrize("worker", ["1", "0"])
def test_a_gitignore_in_the_checkpoint_repo_does_not_drop_batches(
    hub: Any, repo_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker: str
) -> None:
    """The Hub tells preupload which paths its .gitignore matches, and huggingface_hub leaves them out of the
    commit: the checkpoint recorded batches the branch did not hold, and a resumed run found nothing to restore."""
    monkeypatch.setenv("HFDS_CHECKPOINT_WORKER", worker)
    api = HfApi(token=ALICE_TOKEN)
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_file(
        path_or_fileobj=b"*.parquet\n", path_in_repo=".gitignore", repo_id=repo_id, repo_type="dataset"
    )
    assert _checkpoint_one_batch_to_main(repo_id, tmp_path)
    assert batch_files(0, [])[0] in api.list_repo_files(repo_id, repo_type="dataset")


def test_an_interruption_while_the_last_batches_are_held_commits_nothing(
    hub: Any, repo_id: str, tmp_path: Path
) -> None:
    """With a final flush, the commit completing the run waits for the run's last files; an interruption then
    (close without flush: Ctrl-C, cancellation) must not commit it."""
    import pyarrow as pa

    state = GenerationState(config_hash="h", seed=0, batch_size=1, num_records=2, processors=[])
    target = CheckpointTarget(repo_id=repo_id, branch="ckpt", interval_seconds=0, token=SecretStr(ALICE_TOKEN))
    checkpointer = Checkpointer(target, tmp_path, state)
    checkpointer.prepare()
    checkpointer.start()  # interval 0: the first commit is due at once
    checkpointer.target = target.model_copy(update={"interval_seconds": 3.0})  # and its hold lasts 3 s
    for index in range(2):
        write_parquet_atomic(pa.table({"i": [index]}), tmp_path / batch_files(index, [])[0])
    with checkpointer._cond:  # both batches queued before the committer looks: together they complete the run
        for index in range(2):
            checkpointer.add(batch_files(index, []), index)
    time.sleep(0.5)  # the committer is holding the commit for the final files
    assert checkpointer.close(flush=False) == []
    files = HfApi(token=ALICE_TOKEN).list_repo_files(repo_id, repo_type="dataset", revision="ckpt")
    assert not [f for f in files if f.startswith("parquet-files/")]


@pytest.mark.parametrize("worker", ["1", "0"], ids=["worker-process", "thread"])
def test_a_rate_limited_checkpoint_waits_as_long_as_the_hub_asks(
    hub: Any, repo_id: str, tmp_path: Path, worker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Hub allows about 128 commits per hour per repo. A 429 names the wait; trying again sooner (the 2 s of
    the usual back-off) would only be refused again."""
    monkeypatch.setenv("HFDS_CHECKPOINT_WORKER", worker)
    checkpointer = _started(tmp_path, repo_id, num_records=1, interval=0.1)
    hub.faults.add("commit", status=429, retry_after=4, repo=repo_id)
    checkpointer.add([_batch(tmp_path, 0)], 0)
    commits = checkpointer.close()
    assert [c.batches for c in commits] == [[0]]
    refused, landed = [r for r in hub.requests if r.route == "commit" and r.repo == repo_id]
    assert (refused.status, landed.status) == (429, 200)
    assert landed.time - refused.time >= 4


def test_the_final_checkpoint_waits_out_one_rate_limit_at_most(
    hub: Any, repo_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's end must not wait for the Hub's hourly window several times over: refused again after one wait,
    the final checkpoint gives up (the batches stay in the folder, from which a rerun resumes)."""
    monkeypatch.setenv("HFDS_MAX_RATE_LIMIT_WAIT", "1")
    checkpointer = _started(tmp_path, repo_id, num_records=1, interval=0.1)
    hub.faults.add("commit", status=429, retry_after=3600, repo=repo_id, count=None)
    checkpointer.add([_batch(tmp_path, 0)], 0)
    assert checkpointer.close() == []
    assert [r.status for r in hub.requests if r.route == "commit" and r.repo == repo_id] == [429, 429]
    assert "429" in str(checkpointer.error) and "Request ID" not in str(checkpointer.error)


def test_run_resumes_from_its_checkpoint_when_the_folder_is_gone(
    prefect_api: None, hub: object, repo_id: str, tmp_path: Path
) -> None:
    target = CheckpointTarget(repo_id=repo_id, branch="ckpt", interval_seconds=0.3, token=SecretStr(ALICE_TOKEN))
    out = tmp_path / "run"
    first = generate_dataset(GREETINGS, 1200, out, batch_size=100, seed=4, checkpoint=target)
    assert first.checkpoint_commits and first.resumed_batches == 0
    files = set(HfApi(token=ALICE_TOKEN).list_repo_files(repo_id, repo_type="dataset", revision="ckpt"))
    assert {
        "metadata.json",
        "builder_config.json",
        "parquet-files/batch_00011.parquet",
        "processors-files/conversations/batch_00011.parquet",
    } <= files  # final flush
    expected = parquet_bytes(out)

    shutil.rmtree(out)
    again = generate_dataset(GREETINGS, 1200, out, batch_size=100, seed=4, checkpoint=target)
    assert again.resumed_batches == 12  # nothing regenerated: all batches came from the checkpoint
    assert parquet_bytes(out) == expected

    # The Hub unreachable while the resume reads the checkpoint's state: the run fails, and the checkpoint stays
    # (taken for "no checkpoint", its batches would have gone with the first commit).
    shutil.rmtree(out)
    hub.faults.add("resolve", status=503, count=None, repo=repo_id)  # type: ignore[attr-defined]
    with fast_client_backoff(), pytest.raises(LocalEntryNotFoundError):
        generate_dataset(GREETINGS, 1200, out, batch_size=100, seed=4, checkpoint=target)
    hub.faults.clear()  # type: ignore[attr-defined]
    assert files <= set(HfApi(token=ALICE_TOKEN).list_repo_files(repo_id, repo_type="dataset", revision="ckpt"))
    shutil.rmtree(out, ignore_errors=True)
    assert generate_dataset(GREETINGS, 1200, out, batch_size=100, seed=4, checkpoint=target).resumed_batches == 12

    # A different run on the same branch replaces the checkpoint instead of mixing with it.
    other = generate_dataset(GREETINGS, 300, tmp_path / "other", batch_size=100, seed=9, checkpoint=target)
    assert other.resumed_batches == 0
    files = set(HfApi(token=ALICE_TOKEN).list_repo_files(repo_id, repo_type="dataset", revision="ckpt"))
    assert "parquet-files/batch_00003.parquet" not in files and "parquet-files/batch_00002.parquet" in files


@pytest.mark.parametrize("page", ["resolve", "blob"])
def test_config_round_trips_through_its_builder_config_url(
    prefect_api: None, hub: object, repo_id: str, tmp_path: Path, page: str
) -> None:
    first = generate_dataset(GREETINGS, 200, tmp_path / "first", batch_size=100, seed=1)
    api = HfApi(token=ALICE_TOKEN)
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    api.upload_file(
        path_or_fileobj=str(first.path / "builder_config.json"),
        path_in_repo="builder_config.json",
        repo_id=repo_id,
        repo_type="dataset",
        token=ALICE_TOKEN,
    )
    url = f"{HUB_URL}/datasets/{repo_id}/{page}/main/builder_config.json"
    assert from_config(url).to_builder_dict() == from_config(GREETINGS).to_builder_dict()

    second = generate_dataset(url, 150, tmp_path / "second", batch_size=100, seed=2)
    assert second.columns == first.columns and second.processors == first.processors
    for folder in ("parquet-files", "processors-files/conversations"):
        a = pq.read_schema(first.path / folder / "batch_00000.parquet")
        b = pq.read_schema(second.path / folder / "batch_00000.parquet")
        assert a.equals(b), (a, b)


def _batch(folder: Path, index: int) -> str:
    import pyarrow as pa

    rel = batch_files(index, [])[0]
    write_parquet_atomic(pa.table({"i": [index]}), folder / rel)
    return rel


def _started(
    folder: Path, repo_id: str, num_records: int, interval: float, api: HfApi | None = None, **options: Any
) -> Checkpointer:
    """A started checkpointer of a run of ``num_records`` one-record batches, to the branch ``ckpt``."""
    state = GenerationState(config_hash="h", seed=0, batch_size=1, num_records=num_records, processors=[])
    target = CheckpointTarget(
        repo_id=repo_id, branch="ckpt", interval_seconds=interval, token=SecretStr(ALICE_TOKEN), **options
    )
    checkpointer = Checkpointer(target, folder, state, api=api)
    checkpointer.prepare()
    checkpointer.start()
    return checkpointer


def test_without_final_flush_the_worker_starts_with_the_first_commit(
    hub: object, repo_id: str, tmp_path: Path
) -> None:
    """No final flush: a run shorter than the interval commits nothing, so no worker process is started for it;
    a commit that comes due starts the worker and is made by it."""
    short = _started(tmp_path, repo_id, 3, interval=30, final_flush=False)
    short.add([_batch(tmp_path, 0)], 0)
    assert short._worker is None
    assert short.close() == [] and short._worker is None

    due = _started(tmp_path, repo_id, 3, interval=0, final_flush=False)
    assert due._worker is None
    due.add([_batch(tmp_path, 1)], 1)
    assert wait_for(lambda: len(due.commits) == 1, 10)
    assert due._worker is not None and due._worker.poll() is None
    due.close()


def test_checkpoint_commits_are_made_by_a_worker_process_that_is_replaced_when_it_dies(
    hub: object, repo_id: str, tmp_path: Path
) -> None:
    import os
    import signal

    checkpointer = _started(tmp_path, repo_id, 3, interval=0)
    worker = checkpointer._worker
    assert worker is not None and worker.pid != os.getpid()
    checkpointer.add([_batch(tmp_path, 0)], 0)
    assert wait_for(lambda: len(checkpointer.commits) == 1, 10)

    os.kill(worker.pid, signal.SIGKILL)  # the worker dies between two commits: the next one gets a new worker
    worker.wait()
    checkpointer.add([_batch(tmp_path, 1)], 1)
    assert wait_for(lambda: len(checkpointer.commits) == 2, 10)
    assert checkpointer._worker is not None and checkpointer._worker.pid != worker.pid
    checkpointer.add([_batch(tmp_path, 2)], 2)
    commits = checkpointer.close()
    assert [c.batches for c in commits] == [[0], [1], [2]]
    assert all(len(c.oid) == 40 and c.url for c in commits)
    remote = checkpointer.read_remote_state()
    assert remote is not None and remote.completed_batches == [0, 1, 2]
    files = set(HfApi(token=ALICE_TOKEN).list_repo_files(repo_id, repo_type="dataset", revision="ckpt"))
    assert {batch_files(i, [])[0] for i in range(3)} <= files


def test_the_worker_runs_at_a_lower_priority_than_the_generation(
    hub: object, repo_id: str, tmp_path: Path
) -> None:
    """Checkpoints are background work: on a busy machine the worker's hashing and HTTP wait for the generation."""
    checkpointer = _started(tmp_path, repo_id, 1, interval=0)
    worker = checkpointer._worker
    assert worker is not None
    checkpointer.add([_batch(tmp_path, 0)], 0)
    assert wait_for(lambda: len(checkpointer.commits) == 1, 10)  # the worker has answered: it set its priority
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, worker.pid) == min(ours + NICENESS, 19)
    checkpointer.close()


def test_the_worker_draws_no_upload_bars_on_the_runs_terminal(
    hub: object, repo_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The worker shares the run's stderr: huggingface_hub's per-file upload bars (on by default) would interleave
    with the run's log lines at every background commit."""
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS")
    checkpointer = _started(tmp_path, repo_id, 2, interval=0)
    for index in range(2):
        checkpointer.add([_batch(tmp_path, index)], index)
    commits = checkpointer.close()  # the worker has answered for every commit: its output is written
    assert sorted(i for c in commits for i in c.batches) == [0, 1]
    err = capfd.readouterr().err
    assert "batch_0000" not in err and "%|" not in err, err[-2000:]  # e.g. "batch_00000.parquet: 100%|###|"


def test_a_callers_client_commits_from_the_committer_thread(hub: object, repo_id: str, tmp_path: Path) -> None:
    checkpointer = _started(tmp_path, repo_id, 1, interval=0, api=HfApi(token=ALICE_TOKEN))
    assert checkpointer._worker is None
    checkpointer.add([_batch(tmp_path, 0)], 0)
    commits = checkpointer.close()
    assert [c.batches for c in commits] == [[0]] and len(commits[0].oid) == 40


@pytest.mark.parametrize("final_flush", [True, False])
def test_the_last_batches_wait_for_the_final_files_of_a_final_flush(
    hub: object, repo_id: str, tmp_path: Path, final_flush: bool
) -> None:
    # Bounds leave a slow machine 1 s for a commit; an interval wait or a hold kept past close() would take longer.
    checkpointer = _started(tmp_path, repo_id, 2, interval=1.5, final_flush=final_flush)
    checkpointer.add([_batch(tmp_path, 0)], 0)
    assert wait_for(lambda: len(checkpointer.commits) == 1, 10)
    time.sleep(1.6)  # the interval has elapsed: a commit may start at once
    checkpointer.add([_batch(tmp_path, 1)], 1)  # the last batch: the run is complete
    if final_flush:
        time.sleep(0.3)
        assert len(checkpointer.commits) == 1  # held for the final files, at most one interval
        (tmp_path / "metadata.json").write_text("{}")
        checkpointer.add(["metadata.json"])
        started = time.monotonic()
        commits = checkpointer.close()
        assert time.monotonic() - started < 1.0  # released by close(): the held commit carries everything
        assert [c.batches for c in commits] == [[0], [1]]
        assert "metadata.json" in commits[1].files
    else:
        assert wait_for(lambda: len(checkpointer.commits) == 2, 1.0)  # nothing to wait for without a flush
        assert [c.batches for c in checkpointer.close()] == [[0], [1]]
    remote = checkpointer.read_remote_state()
    assert remote is not None and remote.completed_batches == [0, 1]


def test_a_run_shorter_than_the_interval_makes_one_commit_at_close_without_waiting(
    hub: object, repo_id: str, tmp_path: Path
) -> None:
    checkpointer = _started(tmp_path, repo_id, 2, interval=30)
    checkpointer.add([_batch(tmp_path, 0)], 0)
    time.sleep(0.3)
    assert checkpointer.commits == []  # the first periodic commit is one interval away
    checkpointer.add([_batch(tmp_path, 1)], 1)
    (tmp_path / "metadata.json").write_text("{}")
    checkpointer.add(["metadata.json"])
    started = time.monotonic()
    commits = checkpointer.close()
    assert time.monotonic() - started < 10  # the final flush did not wait for the 30 s interval
    assert [c.batches for c in commits] == [[0, 1]] and "metadata.json" in commits[0].files
    remote = checkpointer.read_remote_state()
    assert remote is not None and remote.completed_batches == [0, 1]


def test_a_held_commit_goes_after_one_interval_without_close(hub: object, repo_id: str, tmp_path: Path) -> None:
    checkpointer = _started(tmp_path, repo_id, 1, interval=0.3)
    started = time.monotonic()
    checkpointer.add([_batch(tmp_path, 0)], 0)
    assert wait_for(lambda: bool(checkpointer.commits), 10)
    assert checkpointer.commits[0].started - started >= 0.3  # held one interval for final files that never came
    assert [c.batches for c in checkpointer.close()] == [[0]]


def test_a_failed_run_checkpoints_its_completed_batches_even_without_final_flush(
    prefect_api: None, hub: object, repo_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """generate_and_push checkpoints without the final flush (the push follows); a run that fails must still
    commit the batches it completed, or a resume elsewhere finds none of the work since the last commit."""
    real = batch_module.write_batch

    def failing_at_batch_5(plan: Any, root: Path, *, seed: int, batch_index: int, num_rows: int) -> Any:
        if batch_index == 5:
            raise RuntimeError("batch 5 failed")
        return real(plan, root, seed=seed, batch_index=batch_index, num_rows=num_rows)

    monkeypatch.setattr(batch_module, "write_batch", failing_at_batch_5)
    target = CheckpointTarget(
        repo_id=repo_id, branch="ckpt", interval_seconds=60, token=SecretStr(ALICE_TOKEN), final_flush=False
    )
    with pytest.raises(RuntimeError, match="batch 5 failed"):
        generate_dataset(GREETINGS, 1000, tmp_path / "out", batch_size=100, checkpoint=target, max_in_flight=1)
    files = HfApi(token=ALICE_TOKEN).list_repo_files(repo_id, repo_type="dataset", revision="ckpt")
    assert sorted(f for f in files if f.startswith("parquet-files/")) == [
        f"parquet-files/batch_{i:05d}.parquet" for i in range(5)
    ]


def test_a_run_failing_after_its_batches_still_checkpoints_them_and_stops_its_committer(
    prefect_api: None, hub: object, repo_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the batch loop (here: the disk fills while the metadata is written) still sends the
    completed batches to the checkpoint, and leaves no committer thread or worker process behind."""
    import threading

    import flows.generate as generate_module

    def disk_full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(generate_module, "write_metadata", disk_full)
    target = CheckpointTarget(
        repo_id=repo_id, branch="ckpt", interval_seconds=60, token=SecretStr(ALICE_TOKEN), final_flush=False
    )
    with pytest.raises(OSError, match="No space left"):
        generate_dataset(GREETINGS, 300, tmp_path / "out", batch_size=100, checkpoint=target)
    files = HfApi(token=ALICE_TOKEN).list_repo_files(repo_id, repo_type="dataset", revision="ckpt")
    assert sorted(f for f in files if f.startswith("parquet-files/")) == [
        f"parquet-files/batch_{i:05d}.parquet" for i in range(3)
    ]
    assert not any(t.name == "checkpoint-committer" and t.is_alive() for t in threading.enumerate())


def test_a_run_killed_right_after_restoring_from_a_checkpoint_leaves_its_own_state(
    prefect_api: None, hub: object, repo_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run Y restores its batches from the checkpoint into a folder that held run X, and is killed at once: the
    folder's state file must say Y, or a later run of X takes Y's batches (same row counts) as its own."""
    out = tmp_path / "out"
    generate_dataset(GREETINGS, 300, tmp_path / "clean-x", batch_size=100, seed=1)
    generate_dataset(GREETINGS, 300, out, batch_size=100, seed=1)  # the folder holds run X
    target = CheckpointTarget(repo_id=repo_id, branch="ckpt", interval_seconds=0, token=SecretStr(ALICE_TOKEN))
    # run Y, checkpointed
    generate_dataset(GREETINGS, 300, tmp_path / "y", batch_size=100, seed=2, checkpoint=target)

    real_download = Checkpointer.download

    def download_then_killed(self: Checkpointer, indices: set[int]) -> set[int]:
        real_download(self, indices)
        raise RuntimeError("killed right after the download")

    with monkeypatch.context() as patched:
        patched.setattr(Checkpointer, "download", download_then_killed)
        with pytest.raises(RuntimeError, match="killed"):
            generate_dataset(GREETINGS, 300, out, batch_size=100, seed=2, checkpoint=target)
    again = generate_dataset(GREETINGS, 300, out, batch_size=100, seed=1)  # run X again, resuming
    assert again.resumed_batches == 0
    batches = [batch_files(i, [])[0] for i in range(3)]
    assert [(out / b).read_bytes() for b in batches] == [(tmp_path / "clean-x" / b).read_bytes() for b in batches]


def test_a_checkpoint_the_token_cannot_write_fails_the_run_instead_of_retrying(
    prefect_api: None, hub: object, repo_id: str, tmp_path: Path
) -> None:
    """Another user's public repo passes the repo and branch checks (it exists, its main branch too), but every
    commit is refused (403): the run fails, saying so, instead of retrying each interval and ending Completed."""
    from conftest import BOB_TOKEN

    from tasks.generation.errors import CheckpointRefusedError

    theirs = repo_id.replace("alice/", "bob/")
    HfApi(token=BOB_TOKEN).create_repo(theirs, repo_type="dataset")
    target = CheckpointTarget(repo_id=theirs, branch="main", interval_seconds=0, token=SecretStr(ALICE_TOKEN))
    with pytest.raises(CheckpointRefusedError, match=rf"refused the checkpoint commit to {theirs}@main \(403"):
        generate_dataset(GREETINGS, 2000, tmp_path / "out", batch_size=100, checkpoint=target, max_in_flight=1)
    assert (tmp_path / "out" / STATE_FILE).is_file()  # what was generated stays, for a rerun to resume from


def test_an_interrupted_generation_stops_without_a_final_checkpoint(
    prefect_api: None, hub: Any, repo_id: str, tmp_path: Path
) -> None:
    """Ctrl-C stops the run at once: no final checkpoint commit (which could wait for the interval or a rate
    limit); the completed batches stay in the folder, from which a rerun resumes."""
    import signal
    import subprocess
    import sys

    import yaml
    from fake_llm import FakeLLM, llm_example_config
    from reliability_support import child_env

    with FakeLLM(latency=0.05) as llm:
        config_file = tmp_path / "config.yaml"
        config_file.write_text(yaml.safe_dump(llm_example_config(llm.endpoint, parallel=2)))
        out = tmp_path / "run"
        command = [sys.executable, "-m", "flows.generate", str(config_file), "--num-records", "200"]
        command += ["--output", str(out), "--batch-size", "8", "--max-in-flight", "2"]
        command += ["--checkpoint-repo", repo_id, "--checkpoint-branch", "ckpt", "--checkpoint-interval", "600"]
        env = child_env(FAKE_LLM_API_KEY="k", HF_ENDPOINT=HUB_URL)
        child = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        try:
            assert wait_for(lambda: len(list((out / "parquet-files").glob("batch_*.parquet"))) >= 2, 60)
            child.send_signal(signal.SIGINT)
            child.wait(timeout=60)
        finally:
            child.kill()
    assert child.returncode != 0
    history = HfApi(token=ALICE_TOKEN).list_repo_commits(repo_id, repo_type="dataset", revision="ckpt")
    assert not [c.title for c in history if c.title.startswith("Checkpoint:")]
    assert len(list((out / "parquet-files").glob("batch_*.parquet"))) >= 2  # kept for the rerun


def test_private_checkpoints_make_an_existing_public_repo_private_before_any_batch(
    hub: object, repo_id: str, tmp_path: Path
) -> None:
    # A repo created public by an earlier push: private=True must hold before the first batch is sent.
    api = HfApi(token=ALICE_TOKEN)
    api.create_repo(repo_id, repo_type="dataset", private=False)
    state = GenerationState(config_hash="h", seed=0, batch_size=1, num_records=1, processors=[])
    target = CheckpointTarget(repo_id=repo_id, branch="ckpt", private=True, token=SecretStr(ALICE_TOKEN))
    Checkpointer(target, tmp_path, state).prepare()
    assert api.repo_info(repo_id, repo_type="dataset").private
    assert "ckpt" in {b.name for b in api.list_repo_refs(repo_id, repo_type="dataset").branches}


def test_a_private_repos_config_url_is_fetched_with_the_saved_login(
    hub: object, repo_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    from tasks.generation.errors import ConfigError

    api = HfApi(token=ALICE_TOKEN)
    api.create_repo(repo_id, repo_type="dataset", private=True)
    api.upload_file(
        path_or_fileobj=GREETINGS.read_bytes(), path_in_repo="config.yaml", repo_id=repo_id, repo_type="dataset"
    )
    url = f"{HUB_URL}/datasets/{repo_id}/resolve/main/config.yaml"
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login"))
    with pytest.raises(ConfigError):  # anonymous: the private repo is not found
        from_config(url)
    (tmp_path / "token").write_text(ALICE_TOKEN + "\n")  # what `hf auth login` saves
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
    assert from_config(url).to_builder_dict() == from_config(GREETINGS).to_builder_dict()
