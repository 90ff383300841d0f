"""Generate-then-push as one flow, and the README's main command (the embedded Hub, no account)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import datasets
import pytest
from conftest import ALICE_TOKEN
from huggingface_hub import HfApi
from pydantic import SecretStr

from flows.generate_and_push import generate_and_push
from tasks.validation import InvalidParameterError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multilingual_greetings.yaml"
datasets.config.USE_PARQUET_EXPORT = False


@pytest.mark.usefixtures("prefect_api", "hub")
def test_generate_then_push_in_one_flow(tmp_path: Path, repo_id: str) -> None:
    from prefect_server import events_named  # here: test_prefect_ops registers the module as a plugin later

    result = generate_and_push(
        EXAMPLE,
        repo_id,
        "Greetings in six languages.",
        num_records=300,
        batch_size=100,
        seed=3,
        output_dir=tmp_path / "out",
        token=SecretStr(ALICE_TOKEN),
    )
    assert result.num_records == 300
    assert {s.stage for s in result.stages} == {
        "card",
        "data",
        "images",
        "processors",
        "builder_config",
        "metadata",
    }
    files = HfApi().list_repo_files(repo_id, repo_type="dataset", token=ALICE_TOKEN)
    assert sorted(f for f in files if f.startswith("data/")) == [f"data/batch_{i:05d}.parquet" for i in range(3)]
    data = datasets.load_dataset(repo_id, "data", split="train", token=ALICE_TOKEN)
    conversations = datasets.load_dataset(repo_id, "conversations", split="train", token=ALICE_TOKEN)
    assert data.num_rows == conversations.num_rows == 300
    assert {m["role"] for m in conversations[0]["messages"]} >= {"user", "assistant"}

    deadline = time.monotonic() + 30
    pushed: list[dict[str, Any]] = []
    while not pushed and time.monotonic() < deadline:
        pushed = [e for e in events_named("hf.dataset.pushed") if e["payload"].get("repo_id") == repo_id]
        time.sleep(0.5)
    generated = [e for e in events_named("hf.dataset.generated") if str(tmp_path / "out") in str(e["payload"])]
    assert pushed and generated
    assert generated[0]["occurred"] <= pushed[0]["occurred"]


@pytest.mark.usefixtures("prefect_api", "hub")
def test_the_pushed_event_names_the_credentials_block_of_generate_then_push(tmp_path: Path, repo_id: str) -> None:
    # README: the event's credentials_block is the saved block the push used, and the shipped verify trigger passes
    # it on (a private repo is read with it). Generate-then-push (the scheduled deployment's flow) resolves the
    # block's token first; its push must still report the block.
    from prefect_server import events_named  # here: test_prefect_ops registers the module as a plugin later

    from tasks.credentials import HuggingFaceCredentials

    HuggingFaceCredentials(token=SecretStr(ALICE_TOKEN)).save("alice-generate-writer", overwrite=True)
    generate_and_push(
        EXAMPLE,
        repo_id,
        "Greetings in six languages.",
        num_records=100,
        output_dir=tmp_path / "out",
        private=True,
        credentials=HuggingFaceCredentials.load("alice-generate-writer"),
    )
    deadline = time.monotonic() + 30
    pushed: list[dict[str, Any]] = []
    while not pushed and time.monotonic() < deadline:
        pushed = [e for e in events_named("hf.dataset.pushed") if e["payload"].get("repo_id") == repo_id]
        time.sleep(0.5)
    assert pushed and pushed[0]["payload"]["credentials_block"] == "alice-generate-writer", pushed


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize(
    ("repo", "description", "extra", "fragment"),
    [
        ("no-slash", "A dataset.", {}, "repo_id"),
        ("alice/ok", "  ", {}, "description"),
        # push-side parameters, which the push would only meet after the whole generation
        ("alice/ok", "A dataset.", {"max_files_per_commit": 0}, "max_files_per_commit must be at least 1"),
        # checkpoints on the published branch would leave batch files and the state in the dataset
        ("alice/ok", "A dataset.", {"checkpoint_branch": "main"}, "checkpoint_branch 'main' is the branch"),
        ("alice/ok", "A dataset.", {"checkpoint_branch": "ckpt", "revision": "ckpt"}, "checkpoint_branch"),
        ("alice/ok", "A dataset.", {"checkpoint_branch": "refs/heads/x"}, "refs/heads/x"),
    ],
)
def test_bad_parameters_fail_before_generating(
    tmp_path: Path, hub: Any, repo: str, description: str, extra: dict[str, Any], fragment: str
) -> None:
    hub.clear_requests()
    with pytest.raises(InvalidParameterError, match=fragment):
        generate_and_push(
            EXAMPLE,
            repo,
            description,
            num_records=100,
            output_dir=tmp_path / "out",
            token=SecretStr(ALICE_TOKEN),
            **extra,
        )
    assert not (tmp_path / "out").exists()
    assert hub.requests == []


@pytest.mark.usefixtures("prefect_api")
def test_the_command_line_refuses_a_bad_card_option_before_a_flow_run(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from prefect_server import flow_run_count  # here: test_prefect_ops registers the module as a plugin later

    from flows.generate_and_push import main

    before = flow_run_count("generate-and-push")
    command = [str(EXAMPLE), "alice/ok", "--num-records", "10", "--description", "d", "--output", str(tmp_path)]
    assert main([*command, "--task-category", "Text Generation"]) == 1
    assert "perhaps 'text-generation'" in capfd.readouterr().err
    assert flow_run_count("generate-and-push") == before and not list(tmp_path.iterdir())


def test_readme_main_command_runs_on_the_embedded_hub(tmp_path: Path) -> None:
    """`make demo`'s command, as written, with a smaller record count: no account, no HF_ENDPOINT given. Run
    again, it finds everything on the Hub: no commit, not even of the card (whose citation names the Hub's URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PREFECT_API"))}
    env.update(
        {
            "HOME": str(tmp_path / "home"),
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "HFDS_WORK_DIR": str(tmp_path / "work"),
        }
    )

    def demo() -> str:
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "flows.generate_and_push",
                str(EXAMPLE),
                "local/multilingual-greetings",
                "--num-records",
                "200",
                "--description",
                "Multilingual greetings.",
                "--local-hub",
                str(tmp_path / "hub"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        return completed.stdout

    first = demo()
    assert "/datasets/local/multilingual-greetings" in first
    for stage in ("card", "data", "processors-conversations", "builder-config", "metadata"):
        assert f"\n{stage} " in first
    assert (tmp_path / "hub").is_dir()
    again = demo()
    rows = [line.split()[:2] for line in again.splitlines() if line.startswith(("card ", "data ", "metadata "))]
    assert rows == [["card", "unchanged"], ["data", "unchanged"], ["metadata", "unchanged"]], again
