"""No secret leaks: a full generate-then-push with a Hub token and an LLM API key, then a scan of everything that
left the process or stayed behind for either secret.

The run: ``generate_and_push`` with an ``llm-text`` config against the fake OpenAI server (the key in an environment
variable the config names), the token passed as a ``SecretStr``, checkpoints on (so the token also reaches the
checkpointer), Prefect loggers at DEBUG so every log line reaches the API. Scanned:

- Prefect, through its API: logs of the flow run and its subflow runs, their parameters, task-run inputs and
  state messages, artifacts, and events emitted during the run;
- Prefect at rest: the API's database, and the result storage written during the run;
- every file uploaded (``snapshot_download`` of ``main`` and of the checkpoint branch);
- the local output folder (``metadata.json``, ``builder_config.json``, the generation state, the parquet files);
- the embedded Hub's data directory (git objects and LFS store), the Hugging Face cache and the digest cache;
- this process's stdout/stderr and every Python log record (root logger at DEBUG).

A second run holds the LLM key *literally* in the config (Data Designer's discouraged ``api_key: sk-...``): the key
must not be written back or uploaded; it is a flow parameter, so Prefect shows it in the run's parameters (the
documented ways are ``api_key_env`` and ``api_key_secret``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from conftest import ALICE_TOKEN
from fake_llm import FakeLLM
from huggingface_hub import snapshot_download
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from pydantic import SecretStr
from reliability_support import (
    DESCRIPTION,
    ROOT,
    record_figures,
)

pytestmark = pytest.mark.usefixtures("prefect_api", "hub")

LLM_KEY = "sk-reliability-llm-key-7f3c9a1e5d2b"
LITERAL_KEY = "sk-reliability-literal-key-0b8e4d"


def _config(endpoint: str, **provider: Any) -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "examples" / "llm_greetings.yaml").read_text())
    config["model_providers"] = [
        {"name": "openai", "endpoint": endpoint, "retry_backoff_seconds": 0.05, **provider}
    ]
    return config


@pytest.fixture
def debug_logging() -> Iterator[None]:
    """Every logger at DEBUG for the run: Prefect's run loggers then send everything to the API."""
    loggers = [logging.getLogger(), logging.getLogger("prefect")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _flow_runs(root_id: UUID) -> list[Any]:
    """The flow run and all its subflow runs, recursively."""
    found: list[Any] = []
    todo = [root_id]
    with get_client(sync_client=True) as client:
        while todo:
            run_id = todo.pop()
            found.append(client.read_flow_run(run_id))
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id]))
            )
            todo += [c.id for c in children]
    return found


def _read_all(read: Any, **filters: Any) -> list[Any]:
    """Every row of a paginated Prefect client read (the API caps a page at 200)."""
    rows: list[Any] = []
    while True:
        page = read(**filters, limit=200, offset=len(rows))
        rows += page
        if len(page) < 200:
            return rows


def _prefect_api_text(flow_runs: list[Any], since: float) -> dict[str, str]:
    """What Prefect holds about these runs, as text per place."""
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)  # logs are sent in batches: send what is queued
    ids = [r.id for r in flow_runs]
    with get_client(sync_client=True) as client:
        logs = _read_all(client.read_logs, log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        tasks = _read_all(
            client.read_task_runs, task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=ids))
        )
        artifacts = _read_all(
            client.read_artifacts, artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
        )
        # Events reach the API asynchronously; wait for the push's own event before reading them all.
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            since_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since - 5))
            page = client._client.post(
                "/events/filter", json={"filter": {"occurred": {"since": since_iso}}, "limit": 50}
            ).json()
            events = list(page["events"])
            while page.get("next_page"):
                page = client._client.get(page["next_page"]).json()
                events += page["events"]
            if any(e["event"] == "hf.dataset.pushed" for e in events):
                break
            time.sleep(0.3)
    assert len(logs) > 20, f"too few logs reached the API ({len(logs)}): the scan would prove little"
    assert any(e["event"] == "hf.dataset.pushed" for e in events), "the push's event never arrived"
    return {
        "logs": "\n".join(log.message for log in logs),
        "flow-run parameters": json.dumps([r.parameters for r in flow_runs], default=str),
        "flow runs": json.dumps([r.model_dump(mode="json") for r in flow_runs], default=str),
        "task runs": json.dumps([t.model_dump(mode="json") for t in tasks], default=str),
        "artifacts": json.dumps([a.model_dump(mode="json") for a in artifacts], default=str),
        "events": json.dumps(events),
    }


def _files_containing(folder: Path, secrets: dict[str, str], since: float | None = None) -> list[str]:
    hits = []
    for path in sorted(folder.rglob("*")) if folder.exists() else []:
        if not path.is_file() or (since is not None and path.stat().st_mtime < since):
            continue
        data = path.read_bytes()
        hits += [f"{name} in {path}" for name, secret in secrets.items() if secret.encode() in data]
    return hits


def _database_file() -> Path:
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value())
    assert url.startswith("sqlite"), url
    return Path(url.split("///", 1)[1])


def test_generate_then_push_leaks_no_secret(
    hub: Any,
    tmp_path: Path,
    repo_id: str,
    session_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    debug_logging: None,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from flows.generate_and_push import generate_and_push

    secrets = {"the Hub token": ALICE_TOKEN, "the LLM API key": LLM_KEY}
    monkeypatch.setenv("RELIABILITY_LLM_KEY", LLM_KEY)
    started = time.time()
    out = tmp_path / "out"
    with FakeLLM(api_key=LLM_KEY) as llm, caplog.at_level(logging.DEBUG):
        llm.fail_next(429, retry_after=0.05)  # a retried request: its log lines are scanned too
        state = generate_and_push(
            _config(llm.endpoint, api_key_env="RELIABILITY_LLM_KEY"),
            repo_id,
            DESCRIPTION,
            num_records=20,
            batch_size=10,
            seed=4,
            output_dir=out,
            checkpoint_branch="checkpoint",
            checkpoint_interval_seconds=0,
            token=SecretStr(ALICE_TOKEN),
            return_state=True,
        )
        assert state.is_completed(), state.message
        assert all(r.authorization == f"Bearer {LLM_KEY}" for r in llm.chat_requests if r.status == 200)
        assert not any(ALICE_TOKEN in (r.authorization or "") for r in llm.requests), (
            "the Hub token went to the LLM"
        )

    places: dict[str, str] = {}
    flow_runs = _flow_runs(state.state_details.flow_run_id)
    assert {r.name for r in flow_runs} and len(flow_runs) >= 3, [r.flow_id for r in flow_runs]  # + generate, push
    places.update(_prefect_api_text(flow_runs, started))
    captured = capfd.readouterr()
    places["stdout/stderr"] = captured.out + captured.err
    places["python log records"] = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    leaks = [f"{name} in {place}" for place, text in places.items() for name, s in secrets.items() if s in text]
    # Positive controls: the scans do see the run (its repo id is logged and is a parameter).
    assert repo_id in places["logs"] and repo_id in places["flow-run parameters"]

    uploaded = Path(
        snapshot_download(repo_id, repo_type="dataset", token=ALICE_TOKEN, local_dir=tmp_path / "main")
    )
    checkpoint = Path(
        snapshot_download(
            repo_id, repo_type="dataset", revision="checkpoint", token=ALICE_TOKEN, local_dir=tmp_path / "ckpt"
        )
    )
    assert (uploaded / "metadata.json").exists() and (uploaded / "builder_config.json").exists()
    assert any(checkpoint.rglob("*.parquet")), "nothing was checkpointed: the scan of the checkpoint proves little"
    assert "RELIABILITY_LLM_KEY" in (uploaded / "builder_config.json").read_text()  # the reference is kept
    leaks += _files_containing(uploaded, secrets)
    leaks += _files_containing(checkpoint, secrets)
    leaks += _files_containing(out, secrets)
    leaks += _files_containing(session_dir / "localhub-data", secrets)
    leaks += _files_containing(session_dir / "hf-home", secrets, since=started)
    leaks += _files_containing(session_dir / "hfds-cache", secrets, since=started)
    leaks += _files_containing(session_dir / "prefect-results", secrets, since=started)
    database = _database_file()
    leaks += _files_containing(database.parent, secrets)
    assert _files_containing(database.parent, {"the repo id": repo_id}), "the database scan sees nothing"
    scanned = {
        "api places": len(places),
        "uploaded files": sum(1 for p in uploaded.rglob("*") if p.is_file()),
        "checkpoint files": sum(1 for p in checkpoint.rglob("*") if p.is_file()),
        "local files": sum(1 for p in out.rglob("*") if p.is_file()),
    }
    record_figures("secrets", {"places_scanned": scanned, "leaks": leaks})
    assert not leaks, "secrets found:\n" + "\n".join(leaks)


def test_literal_llm_key_in_a_config_is_never_written_or_uploaded(
    hub: Any, tmp_path: Path, repo_id: str, debug_logging: None, caplog: pytest.LogCaptureFixture
) -> None:
    from flows.generate_and_push import generate_and_push

    out = tmp_path / "out"
    with FakeLLM(api_key=LITERAL_KEY) as llm, caplog.at_level(logging.DEBUG):
        state = generate_and_push(
            _config(llm.endpoint, api_key=LITERAL_KEY),
            repo_id,
            DESCRIPTION,
            num_records=10,
            batch_size=10,
            output_dir=out,
            token=SecretStr(ALICE_TOKEN),
            return_state=True,
        )
    assert state.is_completed(), state.message
    uploaded = Path(
        snapshot_download(repo_id, repo_type="dataset", token=ALICE_TOKEN, local_dir=tmp_path / "main")
    )
    secrets = {"the literal LLM key": LITERAL_KEY}
    leaks = _files_containing(uploaded, secrets) + _files_containing(out, secrets)
    flow_runs = _flow_runs(state.state_details.flow_run_id)
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        ids = [r.id for r in flow_runs]
        logs = _read_all(client.read_logs, log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        artifacts = _read_all(
            client.read_artifacts, artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
        )
    if LITERAL_KEY in "\n".join(log.message for log in logs) + "\n".join(r.getMessage() for r in caplog.records):
        leaks.append("the literal LLM key in the logs")
    if LITERAL_KEY in json.dumps([a.model_dump(mode="json") for a in artifacts], default=str):
        leaks.append("the literal LLM key in an artifact")
    # Children of the top flow get the parsed config (a model whose key is a SecretStr): nothing to see there.
    children = [r for r in flow_runs if r.parent_task_run_id is not None]
    if LITERAL_KEY in json.dumps([r.parameters for r in children], default=str):
        leaks.append("the literal LLM key in a subflow's parameters")
    assert not leaks, "\n".join(leaks)


def test_credentials_in_urls_and_headers_of_a_foreign_builder_config_are_not_pushed(
    tmp_path: Path, repo_id: str
) -> None:
    # A folder Data Designer wrote (its builder_config.json never went through BuilderConfig.to_json): the push's
    # own redaction is all that stands between a key in an endpoint URL or a header and a public repo.
    from factories import BUILDER_CONFIG, make_dataset_folder

    from flows.push import push_dataset

    folder = make_dataset_folder(tmp_path / "ds", batches=1, processor_dir=None, processor_file=None, images=0)
    secrets = {
        "a query key": "abcdef123456",
        "a userinfo password": "pa55word-xyz",
        "a key in a URL inside text": "qs-secret-0987",
        "a gateway's key header": "apim-secret-4321",
    }
    config = json.loads(json.dumps(BUILDER_CONFIG))
    config["model_providers"] = [
        {
            "name": "azure",
            "endpoint": "https://x.openai.azure.com/openai?api-version=1&api-key=abcdef123456",
            "extra_headers": {"Ocp-Apim-Subscription-Key": "apim-secret-4321", "X-Team": "data"},
        },
        {"name": "proxy", "endpoint": "https://proxy:pa55word-xyz@gw.example/v1"},
    ]
    config["notes"] = "mirrored from https://gw.example/v1?key=qs-secret-0987, see the wiki"
    (folder / "builder_config.json").write_text(json.dumps(config))
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["source_endpoint"] = "https://proxy:pa55word-xyz@gw.example/v1?region=eu&api-key=abcdef123456"
    (folder / "metadata.json").write_text(json.dumps(metadata))

    push_dataset(folder, repo_id, DESCRIPTION, token=SecretStr(ALICE_TOKEN))
    uploaded = Path(
        snapshot_download(repo_id, repo_type="dataset", token=ALICE_TOKEN, local_dir=tmp_path / "main")
    )
    assert not _files_containing(uploaded, secrets), _files_containing(uploaded, secrets)
    # What is not a credential stays: the endpoints still say where the data came from.
    pushed = json.loads((uploaded / "builder_config.json").read_text())
    assert pushed["model_providers"][0]["extra_headers"] == {
        "Ocp-Apim-Subscription-Key": "<redacted>",
        "X-Team": "data",
    }
    assert [p["endpoint"] for p in pushed["model_providers"]] == [
        "https://x.openai.azure.com/openai?api-version=1&api-key=<redacted>",
        "https://proxy:<redacted>@gw.example/v1",
    ]
    assert json.loads((uploaded / "metadata.json").read_text())["source_endpoint"] == (
        "https://proxy:<redacted>@gw.example/v1?region=eu&api-key=<redacted>"
    )
