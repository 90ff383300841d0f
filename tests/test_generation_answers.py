"""LLM answers a failed batch had received are kept in its answers journal and not paid for again by its next attempt.

The endpoint is the fake of ``fake_llm.py`` over HTTP; its requests are counted to see what a rerun sends.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import ALICE_TOKEN
from factories import parquet_bytes
from fake_llm import FakeLLM, llm_example_config
from huggingface_hub import HfApi
from pydantic import SecretStr
from reliability_support import wait_for

from flows.generate import generate_dataset
from tasks.generation.answer_journal import JOURNAL_DIR, AnswerJournal, journal_path
from tasks.generation.batch import generate_tables, write_batch
from tasks.generation.checkpoint import CheckpointTarget
from tasks.generation.llm import LLMError
from tasks.generation.plan import get_plan
from tasks.generation.source import from_config

TRANSLATE = "Translate into English, answer with the translation only: "


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    monkeypatch.setenv("FAKE_LLM_API_KEY", "sk-journal-test-key")
    with FakeLLM() as server:
        yield server


def _sent(llm: FakeLLM, status: int | None = None) -> Counter[str]:
    """The chat requests the fake received (those it answered with ``status``), by body."""
    return Counter(
        json.dumps(r.body, sort_keys=True) for r in llm.chat_requests if status is None or r.status == status
    )


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


def _fail_last_translation(llm: FakeLLM, greetings: list[str]) -> None:
    """The translation of a batch's last greeting is refused for good (HTTP 400): the batch fails at its last row.
    (At the last row, no request of the batch is left to go out after the failure: the counts are exact.)"""
    llm.fail_next(400, message="context length exceeded", prompt=TRANSLATE + greetings[-1])


def _settled(llm: FakeLLM, requests: int) -> bool:
    """Whether the fake received ``requests`` chat requests and answered them all (waits up to 10 s)."""
    return wait_for(lambda: llm.idle and _sent(llm).total() == requests, 10)


def _greetings(folder: Path, batch: int) -> list[str]:
    return pq.read_table(folder / "parquet-files" / f"batch_{batch:05d}.parquet").column("greeting").to_pylist()


def test_a_rerun_sends_only_the_requests_the_failed_batch_had_no_answer_for(
    prefect_api: None, llm: FakeLLM, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A batch failing at row 990 of 1,000 used to pay for its 990 answers again on the rerun.
    config = llm_example_config(llm.endpoint, parallel=4)
    whole = tmp_path / "whole"
    generate_dataset(config, 40, whole, batch_size=10, seed=4)
    every = _sent(llm)
    assert every.total() == 80 and not (whole / JOURNAL_DIR).exists()

    llm.requests.clear()
    out = tmp_path / "out"
    _fail_last_translation(llm, _greetings(whole, 2))
    with pytest.raises(LLMError, match=r"column 'translation' .*batch 2, row 9: .*context length exceeded"):
        generate_dataset(config, 40, out, batch_size=10, seed=4, max_in_flight=1)
    assert _settled(llm, 60)  # batches 0 to 2; batch 3 was not started
    answered = _sent(llm, 200)
    assert answered.total() == 59
    # Every answer batch 2 received is in its journal (also those of requests still in flight when it failed);
    # batches 0 and 1 completed, and deleted theirs.
    assert wait_for(lambda: len(_lines(journal_path(out, 2))) == 19, 10)
    assert sorted(p.name for p in (out / JOURNAL_DIR).iterdir()) == ["batch_00002.jsonl"]

    llm.requests.clear()
    caplog.set_level(logging.INFO, logger="prefect.task_runs")  # the tests' Prefect logs at WARNING
    generate_dataset(config, 40, out, batch_size=10, seed=4)
    assert _sent(llm) == every - answered  # batch 2's refused request, and batch 3's
    assert _sent(llm).total() == 21
    assert parquet_bytes(out) == parquet_bytes(whole)
    assert not (out / JOURNAL_DIR).exists()

    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "prefect.task_runs")  # the run's log
    assert "column 'greeting' (model 'writer'), batch 2: 10 of 10 answers reused from an earlier attempt" in text
    assert "column 'translation' (model 'writer'), batch 2: 9 of 10 answers reused" in text
    assert text.count("answers reused from an earlier attempt") == 2  # batch 3 had no journal


def test_answers_received_before_an_interruption_are_not_paid_for_again(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C (or a cancellation's SIGTERM) stops the run's batches: the answers they had received are kept.
    import signal

    import yaml
    from reliability_support import child_env, start_child

    monkeypatch.setenv("FAKE_LLM_API_KEY", "sk-interrupted-key")
    with FakeLLM(latency=0.1) as server:
        raw = llm_example_config(server.endpoint, parallel=2)
        generate_dataset(raw, 40, tmp_path / "whole", batch_size=20, seed=6)
        every = _sent(server)
        server.requests.clear()
        config = tmp_path / "llm.yaml"
        config.write_text(yaml.safe_dump(raw))
        out = tmp_path / "out"
        args = [str(config), "--num-records", "40", "--batch-size", "20", "--seed", "6", "--output", str(out)]
        child = start_child("flows.generate", args, child_env(FAKE_LLM_API_KEY="sk-interrupted-key"))
        try:
            assert wait_for(lambda: len(server.chat_requests) >= 30 or child.poll() is not None, 120)
            child.send_signal(signal.SIGINT)
            _, stderr = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        assert child.returncode != 0 and "interrupted" in stderr
        answered = _sent(server, 200)  # the child has exited: every answer it received is written
        assert 30 <= answered.total() < 80 and (out / JOURNAL_DIR).is_dir()

        server.requests.clear()
        generate_dataset(raw, 40, out, batch_size=20, seed=6)
        assert _sent(server) == every - answered
    assert parquet_bytes(out) == parquet_bytes(tmp_path / "whole")
    assert not (out / JOURNAL_DIR).exists()


def test_a_changed_prompt_reuses_no_answer(prefect_api: None, llm: FakeLLM, tmp_path: Path) -> None:
    config = llm_example_config(llm.endpoint)
    whole = generate_dataset(config, 10, tmp_path / "whole", batch_size=10, seed=1).path
    llm.requests.clear()
    _fail_last_translation(llm, _greetings(whole, 0))
    out = tmp_path / "out"
    with pytest.raises(LLMError):
        generate_dataset(config, 10, out, batch_size=10, seed=1)
    assert _settled(llm, 20) and wait_for(lambda: len(_lines(journal_path(out, 0))) == 19, 10)

    columns = config["data_designer"]["columns"]
    next(c for c in columns if c["name"] == "greeting")["prompt"] = "{{ user_prompt }} Keep it short."
    llm.requests.clear()
    generate_dataset(config, 10, out, batch_size=10, seed=1)
    assert _sent(llm).total() == 20  # every request sent again: the journal was of another config
    assert not (out / JOURNAL_DIR).exists()


def _failed_batch(llm: FakeLLM, raw: dict[str, Any], root: Path) -> dict[str, Any]:
    """Run batch 0 of ``raw`` (8 rows) into ``root`` until the translation of its last row fails: 15 answers in
    its journal. Returns what the batch gives when nothing fails (the reference)."""
    plan = get_plan(from_config(raw))
    main, _ = generate_tables(plan, seed=0, batch_index=0, num_rows=8)
    llm.requests.clear()
    _fail_last_translation(llm, main.column("greeting").to_pylist())
    with pytest.raises(LLMError, match="batch 0, row 7:"):
        write_batch(plan, root, seed=0, batch_index=0, num_rows=8)
    assert _settled(llm, 16) and wait_for(lambda: len(_lines(journal_path(root, 0))) == 15, 10)
    llm.requests.clear()
    return main.to_pydict()


@pytest.mark.parametrize(
    ("change", "reused"),
    [
        ("nothing", 15),
        ("translation prompt", 8),  # the greetings' requests are the same
        ("temperature", 0),
        ("model", 0),
        ("system prompt", 0),
        ("seed", 0),
    ],
)
def test_an_answer_is_reused_only_for_the_very_same_request(
    llm: FakeLLM, tmp_path: Path, change: str, reused: int, caplog: pytest.LogCaptureFixture
) -> None:
    # The key is the whole request body: the flow drops the journal of a changed config anyway, but a journal
    # must never answer a request it was not written for.
    raw = llm_example_config(llm.endpoint)
    _failed_batch(llm, raw, tmp_path)
    model = raw["data_designer"]["model_configs"][0]
    columns = {c["name"]: c for c in raw["data_designer"]["columns"]}
    if change == "translation prompt":
        columns["translation"]["prompt"] = "Translate into plain English: {{ greeting }}"
    elif change == "temperature":
        model["inference_parameters"]["temperature"] = 0.2
    elif change == "model":
        model["model"] = "gpt-4.1-mini"
    elif change == "system prompt":
        columns["greeting"]["system_prompt"] += " Be brief."
    with caplog.at_level(logging.INFO, logger="tasks.generation.batch"):
        seed = 1 if change == "seed" else 0
        write_batch(get_plan(from_config(raw)), tmp_path, seed=seed, batch_index=0, num_rows=8)
    assert f"column 'greeting' (model 'writer'), batch 0: {min(reused, 8)} of 8 answers reused" in caplog.text
    assert _sent(llm).total() == 16 - reused
    assert not journal_path(tmp_path, 0).exists()


def test_a_torn_last_line_is_ignored_and_the_journal_goes_on_after_it(llm: FakeLLM, tmp_path: Path) -> None:
    # A crash while an answer is written leaves half a line; the next attempt must neither fail on it nor glue
    # its first answer to it.
    raw = llm_example_config(llm.endpoint)
    expected = _failed_batch(llm, raw, tmp_path)  # 8 greetings, translations 0-6
    path = journal_path(tmp_path, 0)
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last + (len(data) - last) // 2])  # translation 6 cut in the middle

    journal = AnswerJournal(path)
    assert len(journal) == 14 and path.read_bytes() == data[:last]  # the torn part is cut off
    _fail_last_translation(llm, expected["greeting"])
    with pytest.raises(LLMError, match="batch 0, row 7:"):
        write_batch(get_plan(from_config(raw)), tmp_path, seed=0, batch_index=0, num_rows=8)
    assert _settled(llm, 2)  # translation 6 asked again, translation 7 refused again
    assert wait_for(lambda: path.read_bytes() == data, 10)  # its answer follows the cut, on a line of its own

    llm.requests.clear()
    main = write_batch(get_plan(from_config(raw)), tmp_path, seed=0, batch_index=0, num_rows=8)
    assert _sent(llm).total() == 1
    assert pq.read_table(tmp_path / main.files[-1]).to_pydict() == expected


def test_the_journal_is_neither_checkpointed_nor_pushed(
    prefect_api: None, hub: object, repo_id: str, llm: FakeLLM, tmp_path: Path
) -> None:
    from flows.push import push_dataset

    config = llm_example_config(llm.endpoint)
    whole = generate_dataset(config, 20, tmp_path / "whole", batch_size=10, seed=2).path
    _fail_last_translation(llm, _greetings(whole, 1))
    out = tmp_path / "out"
    target = CheckpointTarget(repo_id=repo_id, branch="ckpt", interval_seconds=60, token=SecretStr(ALICE_TOKEN))
    with pytest.raises(LLMError):
        generate_dataset(config, 20, out, batch_size=10, seed=2, checkpoint=target, max_in_flight=1)
    assert journal_path(out, 1).exists()
    api = HfApi(token=ALICE_TOKEN)
    checkpointed = api.list_repo_files(repo_id, repo_type="dataset", revision="ckpt")
    assert "parquet-files/batch_00000.parquet" in checkpointed
    assert not [f for f in checkpointed if "llm-answers" in f]

    push_dataset(out, repo_id, "Half a dataset, with a journal beside it.", token=SecretStr(ALICE_TOKEN))
    pushed = api.list_repo_files(repo_id, repo_type="dataset")
    assert "data/batch_00000.parquet" in pushed and not [f for f in pushed if "llm-answers" in f]
    assert journal_path(out, 1).exists()  # the push leaves it for the rerun


def test_a_run_that_starts_over_drops_the_journals(prefect_api: None, llm: FakeLLM, tmp_path: Path) -> None:
    config = llm_example_config(llm.endpoint)
    whole = generate_dataset(config, 10, tmp_path / "whole", batch_size=10, seed=3).path
    llm.requests.clear()
    _fail_last_translation(llm, _greetings(whole, 0))
    out = tmp_path / "out"
    with pytest.raises(LLMError):
        generate_dataset(config, 10, out, batch_size=10, seed=3)
    assert _settled(llm, 20) and journal_path(out, 0).exists()
    llm.requests.clear()
    generate_dataset(config, 10, out, batch_size=10, seed=3, resume=False)
    assert _sent(llm).total() == 20 and not (out / JOURNAL_DIR).exists()


def test_an_unwritable_journal_does_not_fail_the_batch(
    llm: FakeLLM, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / JOURNAL_DIR).write_text("not a folder")
    plan = get_plan(from_config(llm_example_config(llm.endpoint)))
    with caplog.at_level(logging.WARNING):
        result = write_batch(plan, tmp_path, seed=0, batch_index=0, num_rows=4)
    assert result.num_records == 4 and "cannot be written" in caplog.text
    assert caplog.text.count("cannot be written") == 1  # once per batch, not per answer


def test_a_batch_without_llm_columns_opens_no_journal(prefect_api: None, tmp_path: Path) -> None:
    greetings = Path(__file__).resolve().parents[1] / "examples" / "multilingual_greetings.yaml"
    generate_dataset(greetings, 20, tmp_path / "out", batch_size=10)
    assert not (tmp_path / "out" / JOURNAL_DIR).exists()
