"""Checkpoints against the embedded Hub: runs checkpointing to one branch at once, and the final flush's retries."""

from __future__ import annotations

import linecache
import logging
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ALICE_TOKEN
from huggingface_hub import HfApi, constants
from pydantic import SecretStr
from reliability_support import wait_for

from tasks.generation.batch_writer import write_parquet_atomic
from tasks.generation.checkpoint import MAX_FINAL_ATTEMPTS, Checkpointer, CheckpointTarget
from tasks.generation.errors import CheckpointRefusedError
from tasks.generation.state import STATE_FILE, GenerationState, batch_files

ROOT = Path(__file__).resolve().parents[1]
WAIT = 60.0  # bound of every wait for the committer (generous: the CI machines are shared)


def _prepared(
    folder: Path, repo_id: str, run: str, num_records: int, interval: float = 0.0, **options: Any
) -> Checkpointer:
    """A prepared checkpointer of run ``run`` (its config hash) of one-record batches, to the branch ``ckpt``;
    every batch is written to ``folder`` with the run's name in it (so files of two runs differ)."""
    state = GenerationState(config_hash=run, seed=0, batch_size=1, num_records=num_records, processors=[])
    target = CheckpointTarget(
        repo_id=repo_id, branch="ckpt", interval_seconds=interval, token=SecretStr(ALICE_TOKEN), **options
    )
    for index in range(num_records):
        write_parquet_atomic(pa.table({"run": [run], "i": [index]}), folder / batch_files(index, [])[0])
    checkpointer = Checkpointer(target, folder, state)
    checkpointer.prepare()
    return checkpointer


def _add(checkpointer: Checkpointer, *indices: int) -> None:
    """Queue batches together (one commit) and wait until a commit holds them or the checkpointer refused."""
    with checkpointer._cond:  # queued before the committer looks
        for index in indices:
            checkpointer.add(batch_files(index, []), index)

    def landed() -> bool:
        committed = {i for c in checkpointer.commits for i in c.batches}
        return checkpointer.refused is not None or set(indices) <= committed

    assert wait_for(landed, WAIT)


def _branch(repo_id: str) -> tuple[GenerationState, dict[int, str]]:
    """The branch's state, and the run written in each of its batch files."""
    api = HfApi(token=ALICE_TOKEN)
    state = GenerationState.model_validate_json(
        Path(api.hf_hub_download(repo_id, STATE_FILE, repo_type="dataset", revision="ckpt")).read_text()
    )
    runs = {}
    for path in api.list_repo_files(repo_id, repo_type="dataset", revision="ckpt"):
        if path.startswith("parquet-files/"):
            local = api.hf_hub_download(repo_id, path, repo_type="dataset", revision="ckpt")
            table = pq.read_table(local)
            runs[table["i"][0].as_py()] = table["run"][0].as_py()
    return state, runs


@pytest.mark.parametrize("worker", ["1", "0"], ids=["worker-process", "thread"])
def test_a_second_run_on_the_branch_refuses_instead_of_overwriting_the_first_ones_batches(
    hub: Any, repo_id: str, tmp_path: Path, worker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two different runs prepared on the same empty branch: the second one's commit, made on the head it saw
    before the first one committed, must not replace the first one's batch 0 (the first run's state would then
    claim a batch file holding the other run's records, which a resume would take as its own)."""
    monkeypatch.setenv("HFDS_CHECKPOINT_WORKER", worker)
    first = _prepared(tmp_path / "a", repo_id, "a", 3)
    second = _prepared(tmp_path / "b", repo_id, "b", 3)
    first.start()
    second.start()
    _add(first, 0)
    _add(second, 0)
    assert second.commits == [] and second.refused is not None
    assert "config a" in second.refused and "another checkpoint branch" in second.refused, second.refused
    with pytest.raises(CheckpointRefusedError):
        second.add(batch_files(1, []), 1)
    _add(first, 1)
    second.close()
    assert first.close() and first.refused is None
    state, runs = _branch(repo_id)
    assert (state.config_hash, state.completed_batches, runs) == ("a", [0, 1], {0: "a", 1: "a"})


def test_a_run_whose_checkpoint_another_run_replaced_stops_instead_of_mixing_with_it(
    hub: Any, repo_id: str, tmp_path: Path
) -> None:
    """A run that starts on a branch holding another run's checkpoint replaces it (it cannot tell a live run from
    a crashed one); the replaced run, still going, must not then add its batches and state next to the new
    run's files."""
    first = _prepared(tmp_path / "a", repo_id, "a", 3)
    first.start()
    _add(first, 0)
    # Prepared after the first run's commit: it sees that checkpoint, and takes the branch over.
    second = _prepared(tmp_path / "b", repo_id, "b", 2)
    second.start()
    _add(second, 0)
    assert second.refused is None
    _add(first, 1)
    assert first.refused is not None and "config b" in first.refused, first.refused
    _add(second, 1)
    first.close()
    assert second.close()
    state, runs = _branch(repo_id)
    assert (state.config_hash, state.completed_batches, runs) == ("b", [0, 1], {0: "b", 1: "b"})


def test_two_runs_of_one_config_checkpointing_at_once_keep_each_others_batches(
    hub: Any, repo_id: str, tmp_path: Path
) -> None:
    """The same run started twice (same config, seed, sizes) writes identical batches: each one's commit, made on
    a head the other moved, is rebuilt on the new head, and the state keeps the batches of both."""
    first = _prepared(tmp_path / "a", repo_id, "same", 4)
    second = _prepared(tmp_path / "b", repo_id, "same", 4)
    first.start()
    second.start()
    _add(first, 0, 1)
    _add(second, 2)
    _add(first, 3)
    assert first.close() and second.close()
    assert first.refused is None and second.refused is None
    state, runs = _branch(repo_id)
    assert (state.completed_batches, sorted(runs)) == ([0, 1, 2, 3], [0, 1, 2, 3])
    # A resume finds all of them.
    again = _prepared(tmp_path / "c", repo_id, "same", 4)
    assert again.remote_batches == {0, 1, 2, 3}


def test_a_failed_final_checkpoint_is_retried_soon_not_after_the_interval(
    hub: Any, repo_id: str, tmp_path: Path
) -> None:
    """The run is ending: a commit that failed (503) is tried again after a short back-off, not an interval."""
    checkpointer = _prepared(tmp_path, repo_id, "a", 1, interval=3600)
    checkpointer.start()
    hub.faults.add("commit", status=503, repo=repo_id)
    checkpointer.add(batch_files(0, []), 0)
    closing = threading.Thread(target=checkpointer.close, daemon=True)
    closing.start()
    closing.join(timeout=WAIT)
    assert not closing.is_alive(), "the final checkpoint waited for the interval"
    assert [c.batches for c in checkpointer.commits] == [[0]]
    assert [r.status for r in hub.requests if r.route == "commit" and r.repo == repo_id] == [503, 200]


def test_a_final_checkpoint_failing_for_good_gives_up_after_a_few_attempts_and_says_what_is_left(
    hub: Any, repo_id: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpointer = _prepared(tmp_path, repo_id, "a", 1, interval=3600)
    checkpointer.start()
    hub.faults.add("commit", status=503, repo=repo_id, count=None)
    checkpointer.add(batch_files(0, []), 0)
    closing = threading.Thread(target=checkpointer.close, daemon=True)
    with caplog.at_level(logging.WARNING, logger="tasks.generation.checkpoint"):
        closing.start()
        closing.join(timeout=WAIT)
    assert not closing.is_alive(), "the final checkpoint waited for the interval"
    assert checkpointer.commits == [] and "503" in str(checkpointer.error)
    statuses = [r.status for r in hub.requests if r.route == "commit" and r.repo == repo_id]
    assert statuses == [503] * MAX_FINAL_ATTEMPTS
    [gave_up] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("giving up")]
    assert f"1 files are not in the checkpoint ({batch_files(0, [])[0]})" in gave_up and str(tmp_path) in gave_up


def test_a_failed_periodic_checkpoint_still_waits_for_the_interval(hub: Any, repo_id: str, tmp_path: Path) -> None:
    """Only the final flush retries soon: while generating, the Hub's commit budget (about 128 per hour per repo)
    is shared by every retry."""
    checkpointer = _prepared(tmp_path, repo_id, "a", 2, interval=4)
    checkpointer.start()
    hub.faults.add("commit", status=503, repo=repo_id)
    checkpointer.add(batch_files(0, []), 0)
    assert wait_for(lambda: bool(checkpointer.commits), WAIT)
    checkpointer.close(flush=False)
    refused, landed = [r for r in hub.requests if r.route == "commit" and r.repo == repo_id]
    assert (refused.status, landed.status) == (503, 200)
    assert landed.time - refused.time >= 2  # not the final flush's 1 s back-off (the interval, less the upload)


def test_a_resume_restores_the_checkpoint_it_read_though_another_run_replaced_it_since(
    hub: Any, repo_id: str, tmp_path: Path
) -> None:
    """A resume reads the checkpoint's state, then downloads its batches: the batches must be those of the state
    it read, not those another run committed to the branch in between (same names and sizes, other records)."""
    first = _prepared(tmp_path / "a", repo_id, "a", 2)
    first.start()
    _add(first, 0)
    first.close(flush=False)
    resume = _prepared(tmp_path / "resume", repo_id, "a", 2)
    (tmp_path / "resume" / batch_files(0, [])[0]).unlink()  # the folder is gone: batch 0 comes from the checkpoint
    assert resume.remote_batches == {0}
    other = _prepared(tmp_path / "b", repo_id, "b", 2)  # takes the branch over before the resume downloads
    other.start()
    _add(other, 0)
    other.close(flush=False)
    assert resume.download({0}) == {0}
    restored = pq.read_table(tmp_path / "resume" / batch_files(0, [])[0])
    assert restored["run"].to_pylist() == ["a"]


def test_two_runs_of_one_config_replacing_an_old_checkpoint_at_once_keep_each_others_batches(
    hub: Any, repo_id: str, tmp_path: Path
) -> None:
    """Both runs plan to delete the old checkpoint's files; once one of them has committed its own batch under
    the same name, the other's rebuilt commit must not delete it (its state would claim a missing batch)."""
    old = _prepared(tmp_path / "old", repo_id, "old", 2)
    old.start()
    _add(old, 0, 1)
    old.close(flush=False)
    first = _prepared(tmp_path / "a", repo_id, "same", 3)
    second = _prepared(tmp_path / "b", repo_id, "same", 3)
    first.start()
    second.start()
    _add(first, 0)
    _add(second, 2)
    assert first.close() and second.close()
    state, runs = _branch(repo_id)
    assert (state.config_hash, state.completed_batches, runs) == ("same", [0, 2], {0: "same", 2: "same"})


def test_a_run_stopped_by_a_refused_checkpoint_lets_its_running_batches_finish_before_freeing_the_folder(
    prefect_api: None, hub: Any, repo_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal raised in the generation loop (here: a 403) stops the run. A batch still running must finish
    before the run releases the folder's lock: else it writes into a folder that the next run may own already
    (a different run's batch there is published with it, or taken for its own)."""
    import fcntl

    from conftest import BOB_TOKEN

    from flows.generate import generate_dataset
    from tasks.folder_lock import LOCK_FILE
    from tasks.generation import batch as batch_module

    theirs = repo_id.replace("alice/", "bob/")
    HfApi(token=BOB_TOKEN).create_repo(theirs, repo_type="dataset")
    target = CheckpointTarget(repo_id=theirs, branch="main", interval_seconds=0, token=SecretStr(ALICE_TOKEN))
    real = batch_module.write_batch
    release = threading.Event()
    locked: list[bool] = []  # whether the folder was still locked when the late batch had written

    def refused() -> bool:
        committers = [t for t in threading.enumerate() if t.name == "checkpoint-committer" and t.is_alive()]
        return not committers and any(r.repo == theirs and r.status == 403 for r in hub.requests)

    def gated(plan: Any, root: Path, *, seed: int, batch_index: int, num_rows: int) -> Any:
        if batch_index == 1:  # done once the committer has stopped on the 403: the loop's add() then raises
            assert wait_for(refused, WAIT)
        if batch_index == 2:  # still running then
            release.wait(timeout=5)
        result = real(plan, root, seed=seed, batch_index=batch_index, num_rows=num_rows)
        if batch_index == 2:
            with (root / LOCK_FILE).open("a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    locked.append(False)
                except BlockingIOError:
                    locked.append(True)
        return result

    monkeypatch.setattr(batch_module, "write_batch", gated)
    with pytest.raises(CheckpointRefusedError):
        generate_dataset(
            ROOT / "examples" / "multilingual_greetings.yaml",
            500,
            tmp_path / "out",
            batch_size=100,
            checkpoint=target,
            max_in_flight=2,
        )
    release.set()
    assert wait_for(lambda: bool(locked), WAIT)
    assert locked == [True]


def test_a_run_that_does_not_resume_does_not_claim_the_checkpoints_earlier_batches(
    hub: Any, repo_id: str, tmp_path: Path
) -> None:
    """``resume=False`` regenerates every batch (LLM answers may differ from the earlier run's): the checkpoint
    must then hold only batches of the new run, or a crash followed by a resume mixes the two."""
    earlier = _prepared(tmp_path / "earlier", repo_id, "same", 3)
    earlier.start()
    _add(earlier, 0, 1, 2)
    earlier.close(flush=False)
    state = GenerationState(config_hash="same", seed=0, batch_size=1, num_records=3, processors=[])
    target = CheckpointTarget(repo_id=repo_id, branch="ckpt", interval_seconds=0, token=SecretStr(ALICE_TOKEN))
    again = Checkpointer(target, tmp_path / "again", state)
    assert again.prepare(reuse=False) is None and again.remote_batches == set()
    write_parquet_atomic(pa.table({"run": ["again"], "i": [0]}), tmp_path / "again" / batch_files(0, [])[0])
    again.start()
    _add(again, 0)
    again.close(flush=False)
    remote, runs = _branch(repo_id)
    assert (remote.completed_batches, runs) == ([0], {0: "again"})


def test_a_generation_without_resume_that_fails_leaves_a_checkpoint_of_its_own_batches_only(
    prefect_api: None, hub: Any, repo_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.generate import generate_dataset
    from tasks.generation import batch as batch_module

    greetings = ROOT / "examples" / "multilingual_greetings.yaml"
    target = CheckpointTarget(repo_id=repo_id, branch="ckpt", interval_seconds=0, token=SecretStr(ALICE_TOKEN))
    generate_dataset(greetings, 500, tmp_path / "earlier", batch_size=100, checkpoint=target)
    real = batch_module.write_batch

    def failing_at_batch_2(plan: Any, root: Path, *, seed: int, batch_index: int, num_rows: int) -> Any:
        if batch_index == 2:
            raise RuntimeError("batch 2 failed")
        return real(plan, root, seed=seed, batch_index=batch_index, num_rows=num_rows)

    monkeypatch.setattr(batch_module, "write_batch", failing_at_batch_2)
    with pytest.raises(RuntimeError, match="batch 2 failed"):
        generate_dataset(
            greetings, 500, tmp_path / "again", batch_size=100, checkpoint=target, resume=False, max_in_flight=1
        )
    api = HfApi(token=ALICE_TOKEN)
    state = GenerationState.model_validate_json(
        Path(api.hf_hub_download(repo_id, STATE_FILE, repo_type="dataset", revision="ckpt")).read_text()
    )
    assert state.completed_batches == [0, 1]
    files = api.list_repo_files(repo_id, repo_type="dataset", revision="ckpt")
    assert sorted(f for f in files if f.startswith("parquet-files/")) == [batch_files(i, [])[0] for i in (0, 1)]


def test_the_final_flush_after_failed_periodic_commits_retries_after_its_own_short_back_off(
    hub: Any, repo_id: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The final flush's back-off counts its own attempts: periodic commits that failed before close() must not
    stretch its first retry from 1 s to the 4 s (8 s after more failures) of a long outage."""
    checkpointer = _prepared(tmp_path, repo_id, "a", 1)
    hub.faults.add("commit", status=503, repo=repo_id, count=3)  # two periodic attempts, then the final flush's
    checkpointer.start()

    def commits() -> list[Any]:
        return [r for r in hub.requests if r.route == "commit" and r.repo == repo_id]

    with caplog.at_level(logging.WARNING, logger="tasks.generation.checkpoint"):
        checkpointer.add(batch_files(0, []), 0)
        assert wait_for(lambda: len(commits()) == 2, WAIT)  # the next periodic attempt is 4 s away
        closing = threading.Thread(target=checkpointer.close, daemon=True)
        closing.start()
        closing.join(timeout=WAIT)
    assert not closing.is_alive()
    assert [r.status for r in commits()] == [503, 503, 503, 200]
    assert [c.batches for c in checkpointer.commits] == [[0]]
    # The wait the committer announces (and then keeps) after the final flush's first failure.
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("checkpoint commit failed")]
    assert len(failed) == 3 and failed[2].endswith("next attempt in 1 s"), failed
    final, retry = commits()[2:]
    assert retry.time - final.time >= 0.5  # a back-off, not at once


def test_a_commit_refused_for_good_is_not_looked_for_on_the_branch(
    hub: Any, repo_id: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401/403 commit was not made: no request asks the branch whether it landed. The committer says which
    files stay out of the checkpoint, and where they are."""
    checkpointer = _prepared(tmp_path, repo_id, "a", 2)
    hub.faults.add("commit", status=403, repo=repo_id)
    checkpointer.start()
    with caplog.at_level(logging.ERROR, logger="tasks.generation.checkpoint"):
        _add(checkpointer, 0)
        checkpointer.close()
    assert checkpointer.refused is not None and "403" in checkpointer.refused
    requests = [r for r in hub.requests if r.repo == repo_id]
    refused = [i for i, r in enumerate(requests) if r.route == "commit"]
    assert len(refused) == 1 and requests[refused[0]].status == 403
    assert [(r.route, r.path) for r in requests[refused[0] + 1 :]] == []
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"1 files are not in the checkpoint ({batch_files(0, [])[0]})" in error and str(tmp_path) in error


@pytest.mark.parametrize("worker", ["1", "0"], ids=["worker-process", "thread"])
def test_a_refusal_reported_by_hf_xet_stops_the_committer_at_once(
    hub: Any, repo_id: str, tmp_path: Path, worker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Xet storage (huggingface.co), a token that may not write can first be refused at the Xet token
    request, and hf_xet reports that 403 as a ``ConnectionError`` naming the status. Taken for a dropped
    connection, the commit was retried with back-off for the rest of the run."""
    monkeypatch.setenv("HFDS_CHECKPOINT_WORKER", worker)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "0")  # the commit worker reads it at its start
    checkpointer = _prepared(tmp_path, repo_id, "a", 2)
    hub.faults.add("other", status=403, repo=repo_id, count=None)  # the Xet write-token request is an "other"
    checkpointer.start()
    _add(checkpointer, 0)
    checkpointer.close()
    assert checkpointer.refused is not None and "403 Forbidden" in checkpointer.refused, checkpointer.refused
    assert "token cannot write there" in checkpointer.refused
    tokens = [r for r in hub.requests if r.repo == repo_id and "xet-write-token" in r.path]
    assert [r.status for r in tokens] == [403]  # one attempt, not one per back-off
    assert not [r for r in hub.requests if r.repo == repo_id and r.route == "commit"]


def test_files_queued_as_the_committer_stops_on_a_refusal_are_refused_to_the_caller(
    hub: Any, repo_id: str, tmp_path: Path
) -> None:
    """add() racing with the committer stopping on a refusal: its files must not be queued for a committer that
    is gone (they would be in no account of what the checkpoint lacks); add() raises instead. The race is made
    deterministic by holding add() just before it takes the lock until the committer has stopped."""
    checkpointer = _prepared(tmp_path, repo_id, "a", 2)
    hub.faults.add("commit", status=403, repo=repo_id)
    checkpointer.start()
    at_lock = threading.Event()

    def held(frame: FrameType, event: str, arg: Any) -> Any:
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
        if event == "line" and line == "with self._cond:":
            at_lock.set()
            assert checkpointer._thread is not None
            checkpointer._thread.join(WAIT)  # the committer commits, is refused (403) and stops meanwhile
        return held

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return held if frame.f_code is Checkpointer.add.__code__ else None

    outcome: list[str] = []

    def late_add() -> None:
        sys.settrace(tracer)
        try:
            checkpointer.add(batch_files(1, []), 1)
            outcome.append("queued")
        except CheckpointRefusedError:
            outcome.append("refused")
        finally:
            sys.settrace(None)

    late = threading.Thread(target=late_add, daemon=True)
    with checkpointer._cond:  # the committer cannot take batch 0 before add() of batch 1 is held
        checkpointer.add(batch_files(0, []), 0)
        late.start()
        assert at_lock.wait(WAIT)
    late.join(WAIT)
    checkpointer.close()
    assert checkpointer.refused is not None and outcome == ["refused"]


def test_a_run_that_does_not_resume_says_it_replaces_an_earlier_run_of_its_parameters(
    hub: Any, repo_id: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    earlier = _prepared(tmp_path / "earlier", repo_id, "same", 2)
    earlier.start()
    _add(earlier, 0)
    earlier.close(flush=False)
    state = GenerationState(config_hash="same", seed=0, batch_size=1, num_records=2, processors=[])
    target = CheckpointTarget(repo_id=repo_id, branch="ckpt", interval_seconds=0, token=SecretStr(ALICE_TOKEN))
    with caplog.at_level(logging.INFO, logger="tasks.generation.checkpoint"):
        Checkpointer(target, tmp_path / "again", state).prepare(reuse=False)
    [said] = [r.getMessage() for r in caplog.records if "go with the first checkpoint commit" in r.getMessage()]
    assert "another run" not in said and "earlier run of the same parameters" in said, said


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("branch", "a..b", "not a valid branch name"),
        ("branch", "x.lock", "not a valid branch name"),
        ("branch", "0123456789abcdef0123456789abcdef01234567", "commit id"),
        ("branch", "refs/pr/1", "not a ref"),
        ("branch", "refs/tags/v1", "not a ref"),
        ("path_in_repo", "runs//one", "empty"),
        ("path_in_repo", "runs/./one", "'.'"),
        ("path_in_repo", "../up", "'..'"),
        ("path_in_repo", ".cache/ckpt", ".cache"),
        ("path_in_repo", "runs/.git", ".git"),
    ],
)
def test_a_target_the_hub_would_refuse_is_refused_before_generating(field: str, value: str, named: str) -> None:
    # The Hub (or huggingface_hub) refuses these only at the first checkpoint commit, after batches were made.
    with pytest.raises(ValueError, match=field) as raised:
        CheckpointTarget(repo_id="alice/ckpt", **{field: value})
    assert named in str(raised.value)


def test_a_nested_checkpoint_folder_is_kept_without_its_slashes() -> None:
    assert CheckpointTarget(repo_id="alice/ckpt", path_in_repo="/runs/one/").path_in_repo == "runs/one"
    assert CheckpointTarget(repo_id="alice/ckpt", branch="runs/2026-11-23").branch == "runs/2026-11-23"
