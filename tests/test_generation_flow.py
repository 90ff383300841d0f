"""The generation flow on the Prefect engine: reproducibility, LLM columns over HTTP, killed-run resume, Dask.

Flow runs cost about a second each on the session harness; pure logic is tested in the other
``test_generation_*`` modules.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from factories import parquet_bytes
from fake_llm import FakeLLM, answer_for, llm_example_config
from reliability_support import child_env, wait_for

from flows import generate as generate_module
from flows.generate import DEFAULT_MAX_IN_FLIGHT, default_max_in_flight, generate_dataset
from tasks import events as events_module
from tasks.folder_lock import LOCK_FILE, FolderInUseError, generating_into, pushing
from tasks.generation.errors import OutputFolderError, UnsupportedConfigError
from tasks.generation.metadata import simple_dtype
from tasks.generation.plan import get_plan
from tasks.generation.source import from_config
from tasks.generation.state import STATE_FILE

ROOT = Path(__file__).resolve().parents[1]
GREETINGS = ROOT / "examples" / "multilingual_greetings.yaml"


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    captured: list[dict[str, Any]] = []
    real = events_module.emit_event

    def capture(**kwargs: Any) -> Any:
        captured.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(events_module, "emit_event", capture)
    return captured


def test_batches_without_llm_columns_run_one_at_a_time_on_threads() -> None:
    """Template-only batches hold the GIL, so a thread pool runs them one at a time unless told otherwise;
    batches that wait on LLM endpoints, or that run on another runner (a cluster), keep several in flight."""
    from prefect.task_runners import PrefectTaskRunner, ThreadPoolTaskRunner

    templates_only = get_plan(from_config(GREETINGS))
    with_llm = get_plan(from_config(llm_example_config("http://127.0.0.1:9/v1")))
    threads, other = ThreadPoolTaskRunner(), PrefectTaskRunner()
    assert default_max_in_flight(templates_only, threads) == 1
    assert default_max_in_flight(with_llm, threads) == DEFAULT_MAX_IN_FLIGHT > 1
    assert default_max_in_flight(templates_only, other) == DEFAULT_MAX_IN_FLIGHT
    assert default_max_in_flight(templates_only, None) == DEFAULT_MAX_IN_FLIGHT


def test_same_seed_gives_byte_identical_data(
    prefect_api: None, tmp_path: Path, events: list[dict[str, Any]]
) -> None:
    first = generate_dataset(str(GREETINGS), 2500, tmp_path / "a", batch_size=1000, seed=11)
    generate_dataset(GREETINGS, 2500, tmp_path / "b", batch_size=1000, seed=11, max_in_flight=4)
    assert first.num_records == 2500 and first.num_batches == 3
    assert first.processors == ["conversations"]
    assert "user_prompt" not in first.columns and "formal" not in first.columns
    a, b = parquet_bytes(tmp_path / "a"), parquet_bytes(tmp_path / "b")
    assert len(a) == 6 and a == b  # parquet-files/ and processors-files/conversations/, byte for byte
    assert (tmp_path / "a" / "builder_config.json").read_bytes() == (
        tmp_path / "b" / "builder_config.json"
    ).read_bytes()
    assert pq.read_metadata(tmp_path / "a" / "parquet-files" / "batch_00002.parquet").num_rows == 500

    metadata = json.loads((tmp_path / "a" / "metadata.json").read_text())
    for key in (
        "actual_num_records",
        "target_num_records",
        "original_target_num_records",
        "buffer_size",
        "total_num_batches",
        "num_completed_batches",
        "dataset_name",
        "config_hash",
        "file_paths",
        "column_statistics",
        "preserve_dropped_columns",
    ):
        assert key in metadata
    assert metadata["file_paths"]["processor-files"]["conversations"][0] == (
        "processors-files/conversations/batch_00000.parquet"
    )
    stats = {s["column_name"]: s for s in metadata["column_statistics"]}
    assert stats["reply_words"]["pyarrow_dtype"] == "int64" and stats["reply_words"]["num_records"] == 2500
    # The keys Data Designer's own dataset card reads (its push fails without them), with its values.
    frame = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "a" / "parquet-files").glob("*.parquet")))
    assert {name: s["num_unique"] for name, s in stats.items()} == frame.nunique().to_dict()
    simple = {n: stats[n]["simple_dtype"] for n in ("reply_words", "friendliness", "greeting", "sent_at")}
    assert simple == {"reply_words": "int", "friendliness": "float", "greeting": "string", "sent_at": "string"}

    assert [e["event"] for e in events] == ["hf.dataset.generated", "hf.dataset.generated"]
    assert events[0]["resource"]["prefect.resource.id"] == "hf.dataset.generation.a"
    assert events[0]["payload"]["records"] == 2500 and events[0]["payload"]["batches"] == 3

    # Asking for more records later reuses every batch that keeps its size and regenerates the rest.
    grown = generate_dataset(GREETINGS, 3200, tmp_path / "a", batch_size=1000, seed=11)
    assert grown.resumed_batches == 2 and grown.num_batches == 4
    after = parquet_bytes(tmp_path / "a")
    assert after["parquet-files/batch_00001.parquet"] == a["parquet-files/batch_00001.parquet"]
    assert pq.read_metadata(tmp_path / "a" / "parquet-files" / "batch_00002.parquet").num_rows == 1000
    assert pq.read_metadata(tmp_path / "a" / "parquet-files" / "batch_00003.parquet").num_rows == 200


def test_simple_dtype_labels_as_data_designer_prints_them() -> None:
    labels = {
        pa.uint8(): "int",
        pa.float32(): "float",
        pa.large_string(): "string",
        pa.date32(): "date",
        pa.time64("us"): "time",
        pa.bool_(): "bool",
        pa.list_(pa.list_(pa.int16())): "list[list[int]]",
        pa.struct([("a", pa.string())]): "dict",
    }
    assert {t: simple_dtype(t) for t in labels} == labels


def test_unsupported_config_fails_before_any_batch(prefect_api: None, tmp_path: Path) -> None:
    config = yaml.safe_load(GREETINGS.read_text())
    config["data_designer"]["columns"].append({"name": "p", "column_type": "sampler", "sampler_type": "person"})
    config["data_designer"]["columns"].append({"name": "j", "column_type": "llm-judge", "prompt": "x"})
    with pytest.raises(UnsupportedConfigError, match=r"'person'.*\n.*'llm-judge'"):
        generate_dataset(config, 100, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_llm_text_columns_over_http_with_retried_429_and_500(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLM_API_KEY", "sk-fake-secret-42")
    with FakeLLM(api_key="sk-fake-secret-42") as llm:
        llm.fail_next(429, retry_after=0.05)
        llm.fail_next(500)
        result = generate_dataset(llm_example_config(llm.endpoint), 30, tmp_path / "llm", batch_size=10, seed=3)
        statuses = [r.status for r in llm.chat_requests]
    assert statuses.count(429) == 1 and statuses.count(500) == 1
    assert statuses.count(200) == 60  # two llm-text columns x 30 rows, each answered once
    assert result.columns == ["language", "name", "occasion", "user_prompt", "greeting", "translation"]
    table = pq.read_table(tmp_path / "llm" / "parquet-files")
    for row in table.to_pylist():
        assert row["greeting"].startswith(f"[gpt-4o-mini] re: {row['user_prompt']} #")
        assert row["translation"].startswith(
            f"[gpt-4o-mini] re: Translate into English, answer with the translation only: {row['greeting']} #"
        )
    bodies = [r.body for r in llm.chat_requests if r.status == 200 and r.body is not None]
    first = next(b for b in bodies if b["messages"][-1]["content"] == table["user_prompt"][0].as_py())
    assert first["messages"][0]["role"] == "system" and first["temperature"] == 0.7 and first["max_tokens"] == 96
    answers = {answer_for(b["model"], b["messages"], b["seed"]) for b in bodies}
    assert set(table["greeting"].to_pylist()) | set(table["translation"].to_pylist()) <= answers
    assert len({b["seed"] for b in bodies}) > 50  # a seed per request, passed to the endpoint
    written = (tmp_path / "llm" / "builder_config.json").read_text() + (
        tmp_path / "llm" / "metadata.json"
    ).read_text()
    assert "sk-fake-secret-42" not in written and "FAKE_LLM_API_KEY" in written
    chat = pq.read_table(tmp_path / "llm" / "processors-files" / "conversations")
    assert chat.num_rows == 30


def test_a_folder_it_did_not_write_is_not_overwritten(prefect_api: None, tmp_path: Path) -> None:
    from factories import make_dataset_folder

    folder = make_dataset_folder(tmp_path / "data-designer-output", batches=2)
    before = parquet_bytes(folder)
    with pytest.raises(OutputFolderError, match="did not write"):
        generate_dataset(GREETINGS, 100, folder)
    assert parquet_bytes(folder) == before
    # Replacing it (resume=False) must not leave the images and the single-file processor output, which a push
    # would publish with the new dataset.
    with pytest.raises(OutputFolderError, match=r"holds 4 files this generator never writes \(images/avatar/"):
        generate_dataset(GREETINGS, 100, folder, resume=False)
    assert parquet_bytes(folder) == before
    shutil.rmtree(folder / "images")
    (folder / "processors-files" / "summary.parquet").unlink()
    result = generate_dataset(GREETINGS, 100, folder, resume=False)
    assert result.num_records == 100
    assert [p.name for p in sorted((folder / "parquet-files").iterdir())] == ["batch_00000.parquet"]  # replaced


def test_a_folder_whose_state_file_cannot_be_read_is_named_as_such(prefect_api: None, tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate_dataset(GREETINGS, 100, out)
    before = parquet_bytes(out)
    (out / STATE_FILE).write_text('{"config_hash": "')  # truncated (a full disk, a hand edit)
    # Not "a dataset that this generator did not write": the file is there, and what is wrong with it is said.
    with pytest.raises(OutputFolderError, match=r"whose \.generation-state\.json cannot be read: .*--no-resume"):
        generate_dataset(GREETINGS, 100, out)
    assert parquet_bytes(out) == before
    assert generate_dataset(GREETINGS, 100, out, resume=False).num_records == 100
    assert json.loads((out / STATE_FILE).read_text())["num_records"] == 100


def test_a_resumed_generation_does_not_say_it_removed_another_generations_files(
    prefect_api: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Run again with the same arguments (`make demo` twice), a generation resumes its own batches: its log must
    not say it removed files of an earlier, different generation (metadata.json and builder_config.json are
    rewritten by every run); a change of seed does remove the other generation's batches, and says how many."""
    folder = tmp_path / "out"
    generate_dataset(GREETINGS, 100, folder, batch_size=50)
    with caplog.at_level(logging.INFO, logger="prefect.flow_runs"):
        generate_dataset(GREETINGS, 100, folder, batch_size=50)
    assert "resuming: 2 of 2 batches" in caplog.text
    assert "removed" not in caplog.text, caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="prefect.flow_runs"):
        generate_dataset(GREETINGS, 100, folder, batch_size=50, seed=1)
    assert "removed 4 batch files of an earlier generation" in caplog.text, caplog.text


def test_a_second_generation_into_a_busy_folder_is_refused(prefect_api: None, tmp_path: Path) -> None:
    folder = tmp_path / "busy"
    folder.mkdir()
    with generating_into(folder), pytest.raises(FolderInUseError, match="generating into it or pushing it"):
        generate_dataset(GREETINGS, 100, folder)
    assert [p.name for p in folder.iterdir()] == [LOCK_FILE]  # nothing written, nothing removed
    assert generate_dataset(GREETINGS, 100, folder).num_records == 100  # and the lock is released after a run
    with generating_into(folder):
        pass


def test_the_lock_names_the_run_a_user_started_not_its_generation_subflow(
    prefect_api: None, tmp_path: Path
) -> None:
    from prefect import flow
    from prefect.runtime import flow_run

    @flow
    def nightly() -> str:
        generate_dataset(GREETINGS, 100, tmp_path / "out")  # a subflow, as in generate-then-push
        return str(flow_run.id)

    parent = nightly()
    holder = json.loads((tmp_path / "out" / LOCK_FILE).read_text())  # the last generation to hold the lock
    assert holder["flow_run_id"] == parent


def test_the_generated_event_finds_the_folder_free(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An automation on ``hf.dataset.generated`` may push the folder at once: the lock is released first."""
    free: list[bool] = []
    real = events_module.emit_event

    def emit(**kwargs: Any) -> Any:
        if kwargs["event"] == "hf.dataset.generated":
            with pushing(Path(kwargs["payload"]["path"])):  # FolderInUseError while the generation holds it
                free.append(True)
        return real(**kwargs)

    monkeypatch.setattr(events_module, "emit_event", emit)
    generate_dataset(GREETINGS, 100, tmp_path / "out")
    assert free == [True]


@pytest.fixture
def subprocess_env(prefect_api: None) -> dict[str, str]:
    """Environment for ``python -m flows.generate`` in a child process, on the session's Prefect API."""
    return child_env()


def test_killed_run_resumes_and_equals_an_uninterrupted_run(
    subprocess_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLM_API_KEY", "k")
    subprocess_env["FAKE_LLM_API_KEY"] = "k"
    with FakeLLM(latency=0.02) as llm:
        config_file = tmp_path / "config.yaml"
        config_file.write_text(yaml.safe_dump(llm_example_config(llm.endpoint, parallel=2)))
        out = tmp_path / "resumed"
        command = [
            sys.executable,
            "-m",
            "flows.generate",
            str(config_file),
            "--num-records",
            "96",
            "--output",
            str(out),
            "--batch-size",
            "8",
            "--seed",
            "5",
            "--max-in-flight",
            "2",
        ]
        child = subprocess.Popen(command, env=subprocess_env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        try:
            started = wait_for(lambda: len(list((out / "parquet-files").glob("batch_*.parquet"))) >= 3, 60)
            assert started, "no batch was written by the child run"
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
        done_before = len(list((out / "parquet-files").glob("batch_*.parquet")))
        assert 3 <= done_before < 12 and not (out / "metadata.json").exists()
        requests_before = len(llm.chat_requests)

        rerun = subprocess.run(command, env=subprocess_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        assert "wrote 96 records in 12 batches" in rerun.stdout
        # Only the missing batches were generated again (2 llm-text columns per row).
        assert len(llm.chat_requests) - requests_before <= (12 - done_before + 2) * 8 * 2
        state = json.loads((out / STATE_FILE).read_text())
        assert state["completed_batches"] == list(range(12))

        whole = generate_dataset(str(config_file), 96, tmp_path / "whole", batch_size=8, seed=5)
    assert whole.num_batches == 12
    assert parquet_bytes(out) == parquet_bytes(tmp_path / "whole")


@pytest.mark.parametrize(
    ("numbers", "message"),
    [
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"seed": -1}, "seed must be at least 0, got -1"),
        ({"max_in_flight": 0}, "max_in_flight must be at least 1"),
    ],
)
def test_bad_numbers_are_named_before_anything_is_written(
    prefect_api: None, tmp_path: Path, numbers: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        generate_dataset(GREETINGS, 100, tmp_path / "x", **numbers)  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()


def test_dask_runner_without_prefect_dask_fails_before_anything_is_written(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prefect_dask", None)  # what the import system sees when it is not installed
    with pytest.raises(ValueError, match=r"needs prefect-dask: install the project's dask extra"):
        generate_dataset(GREETINGS, 100, tmp_path / "x", task_runner="dask")
    assert not (tmp_path / "x").exists()


def test_a_dask_address_without_the_dask_runner_is_refused_before_anything_is_written(
    prefect_api: None, tmp_path: Path
) -> None:
    """Alone, dask_address would be ignored (the batches would run on threads): it must be said, not done."""
    with pytest.raises(ValueError, match=r"dask_address 'tcp://scheduler:8786' is used only with task_runner='dask'"):
        generate_dataset(GREETINGS, 100, tmp_path / "x", dask_address="tcp://scheduler:8786")
    assert not (tmp_path / "x").exists()


def test_cli_reports_errors_in_one_line(
    prefect_api: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "columns": [
                    {"name": "a", "column_type": "sampler", "sampler_type": "person", "params": {}},
                    {"name": "b", "column_type": "validation"},
                ]
            }
        )
    )
    code = generate_module.main([str(bad), "--num-records", "10", "--output", str(tmp_path / "o")])
    assert code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: Unsupported items") and "'person'" in last and "'validation'" in last


@pytest.fixture
def dask_cluster() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_dask_task_runner_gives_the_same_bytes(prefect_api: None, tmp_path: Path, dask_cluster: str) -> None:
    threads = generate_dataset(GREETINGS, 1200, tmp_path / "threads", batch_size=300, seed=2)
    dask = generate_dataset(
        GREETINGS, 1200, tmp_path / "dask", batch_size=300, seed=2, task_runner="dask", dask_address=dask_cluster
    )
    assert threads.num_batches == dask.num_batches == 4
    assert parquet_bytes(tmp_path / "threads") == parquet_bytes(tmp_path / "dask")
