"""Operating the project in Prefect, end to end: a real ``prefect server start`` on 127.0.0.1 (own home dir), the
deployments served by ``python -m deployments.serve`` in a child process, and the embedded Hub.

- the served deployments register with their schedule, parameter schemas and trigger, and the server enforces
  the pydantic parameter models;
- a run the server's scheduler created from the cron schedule generates and pushes its dataset;
- a push that fails at the processors stage is retried exactly as the UI's Retry does (``set_state``
  AwaitingRetry, same run id): the committed stages are ``Cached``, the repo equals a clean push, and the run's
  artifacts show every stage's commit; no token in parameters, logs or artifacts;
- a completed push starts the chained verify deployment (``hf.dataset.pushed`` trigger), which succeeds;
- ``deployments/prefect.yaml`` deploys to a ``process`` work pool and a worker runs a push from it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import ALICE_TOKEN
from factories import make_dataset_folder
from huggingface_hub import HfApi, hf_hub_download
from pydantic import SecretStr
from reliability_support import repo_files, titles

from tasks.credentials import HuggingFaceCredentials

if TYPE_CHECKING:
    from prefect_server import PrefectServer, ServedDeployments

pytest_plugins = ["prefect_server"]  # the session's `prefect server start` and `python -m deployments.serve`
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(300)

DESCRIPTION = "Greetings in five languages, for tests."


def nightly_params(repo_id: str) -> dict[str, Any]:
    """The scheduled deployment's parameters for a small night: the example config, a new seed per run."""
    return {
        "config": str(ROOT / "examples/multilingual_greetings.yaml"),
        "records": 30,
        "repo": repo_id,
        "description": DESCRIPTION,
        "seed": "per-run",
    }


STAGE_TASKS = ["push-card", "push-data", "push-images", "push-processors", "push-builder-config", "push-metadata"]


def readme(repo_id: str) -> str:
    return Path(hf_hub_download(repo_id, "README.md", repo_type="dataset", token=ALICE_TOKEN)).read_text()


def assert_same_content(repo_id: str, clean_repo: str) -> None:
    """The repo equals a clean push of the same folder: same files, same commits (the card names its repo)."""
    files, clean = repo_files(repo_id), repo_files(clean_repo)
    assert files.pop("README.md") and clean.pop("README.md")
    assert files == clean
    name, clean_name = repo_id.split("/")[1], clean_repo.split("/")[1]
    clean_card = readme(clean_repo).replace(clean_name, name)
    clean_card = clean_card.replace(clean_name.replace("-", "_"), name.replace("-", "_"))  # the citation key
    assert readme(repo_id) == clean_card
    assert titles(repo_id) == titles(clean_repo)


def push_params(folder: Path, repo_id: str) -> dict[str, Any]:
    return {"dataset_dir": str(folder), "repo_id": repo_id, "description": DESCRIPTION}


def test_served_deployments_register_with_schedule_schema_and_trigger(
    served_deployments: ServedDeployments, prefect_server: PrefectServer
) -> None:
    from prefect.exceptions import PrefectHTTPStatusError

    deployments = served_deployments.deployments
    scheduled = deployments["generate-then-push/scheduled"]
    assert [s.schedule.cron for s in scheduled.schedules] == [served_deployments.SCHEDULE_CRON]
    assert scheduled.schedules[0].schedule.timezone == "UTC" and scheduled.schedules[0].active
    assert scheduled.global_concurrency_limit is not None and scheduled.global_concurrency_limit.limit == 1
    params = scheduled.parameters["params"]
    assert (
        params["repo"] == served_deployments.scheduled_repo
        and params["records"] == served_deployments.SCHEDULED_RECORDS
    )
    assert params["config"].endswith("examples/multilingual_greetings.yaml") and Path(params["config"]).is_file()
    assert params["description"]
    assert params["seed"] == "per-run"  # each scheduled run publishes new data

    for name, model in (
        ("generate-then-push/scheduled", "GenerateAndPushParameters"),
        ("push-folder/push-only", "PushParameters"),
        ("verify-after-push/on-push", "VerifyParameters"),
    ):
        deployment = deployments[name]
        schema = deployment.parameter_openapi_schema
        assert deployment.enforce_parameter_schema, name
        assert schema["required"] == ["params"], name
        assert model in schema["definitions"], name
        fields = {f for d in schema["definitions"].values() for f in d.get("properties", {})}
        assert not any("token" in f for f in fields), name  # tokens come from the environment, never parameters
        if name != "verify-after-push/on-push":  # both push deployments choose stages, branch, pull request
            assert {"stages", "revision", "create_pr", "max_files_per_commit"} <= fields, name
            assert {"license", "language", "task_categories", "pretty_name"} <= fields, name
    scheduled_fields = deployments["generate-then-push/scheduled"].parameter_openapi_schema["definitions"]
    assert {"checkpoint_branch", "checkpoint_interval_seconds"} <= set(
        scheduled_fields["GenerateAndPushParameters"]["properties"]
    )

    # The server validates parameters against the pydantic model: bad values are refused, naming the field.
    bad = [
        {"dataset_dir": "/data", "repo_id": "not-a-repo-id", "description": DESCRIPTION},
        {"dataset_dir": "/data", "repo_id": "alice/ok", "description": ""},
        {"dataset_dir": "/data", "repo_id": "alice/ok", "description": DESCRIPTION, "token": "hf_x"},
        {"dataset_dir": "/data", "repo_id": "alice/ok", "description": DESCRIPTION, "stages": ["nope"]},
        {"dataset_dir": "/data", "repo_id": "alice/ok", "description": DESCRIPTION, "license": "Apache 2.0"},
        {"dataset_dir": "/data", "repo_id": "alice/ok", "description": DESCRIPTION, "language": ["English"]},
    ]
    for params in bad:
        with pytest.raises(PrefectHTTPStatusError) as excinfo:
            prefect_server.run_deployment("push-folder/push-only", params)
        assert excinfo.value.response.status_code == 409, params
        assert "Validation failed" in excinfo.value.response.text, params

    # The chained deployment's trigger: hf.dataset.pushed, parameters templated from the event.
    verify = deployments["verify-after-push/on-push"]
    with prefect_server.client() as client:
        automations = client.read_automations_by_name("verify-on-push")
    assert len(automations) == 1
    trigger, action = automations[0].trigger, automations[0].actions[0]
    assert trigger.expect == {"hf.dataset.pushed"}
    assert trigger.match.root == {"prefect.resource.id": f"hf.dataset.{served_deployments.CHAIN_PREFIX}*"}
    assert action.deployment_id == verify.id
    assert action.parameters == {
        "params": {
            "repo_id": "{{ event.payload.repo_id }}",
            "revision": "{{ (event.payload.commit or event.payload.revision) }}",
            "expected_records": "{{ event.payload.records }}",
            "credentials_block": "{{ event.payload.credentials_block }}",
        }
    }


def test_scheduled_generate_then_push_run_completes(
    served_deployments: ServedDeployments, prefect_server: PrefectServer
) -> None:
    from prefect.states import Scheduled

    from deployments.entrypoints import run_seed
    from flows.generate_and_push import default_output_dir
    from tasks.read_dataset import read_dataset

    scheduled = served_deployments.deployments["generate-then-push/scheduled"]

    # The server's scheduler creates the upcoming runs of the cron schedule (03:00 UTC), with its parameters.
    def upcoming() -> list[Any]:
        return [r for r in prefect_server.runs_of(scheduled.id) if r.state and r.state.is_scheduled()]

    runs = prefect_server.wait_for(upcoming, timeout=60, what="the scheduler to create runs of the cron schedule")
    times = sorted(r.expected_start_time.astimezone(UTC) for r in runs)
    assert all((t.hour, t.minute) == (3, 0) for t in times)
    assert all("auto-scheduled" in r.tags for r in runs)
    run = min(runs, key=lambda r: r.expected_start_time)
    assert run.parameters["params"]["repo"] == served_deployments.scheduled_repo

    # Bring the next scheduled run forward to now (instead of waiting for 03:00); the served runner starts it.
    with prefect_server.client() as client:
        client.set_flow_run_state(run.id, Scheduled(scheduled_time=datetime.now(UTC)), force=True)
    final = prefect_server.wait_for_final_state(run.id, timeout=180)
    assert final.state.is_completed(), served_deployments.log_tail()

    table = read_dataset(served_deployments.scheduled_repo, "data", token=ALICE_TOKEN)
    assert table.num_rows == served_deployments.SCHEDULED_RECORDS
    # The run generated with the seed drawn from its own id ("per-run"), as its generation event says.
    folder = default_output_dir(served_deployments.scheduled_repo).name  # under the served process's work dir

    def seeds() -> list[int]:  # events are stored a moment after they are emitted
        with prefect_server.client() as client:
            response = client._client.post(
                "/events/filter", json={"filter": {"event": {"name": ["hf.dataset.generated"]}}, "limit": 50}
            )
        events = response.json()["events"]
        return [e["payload"]["seed"] for e in events if Path(e["payload"]["path"]).name == folder]

    assert prefect_server.wait_for(seeds, timeout=30, what="the generation event") == [
        run_seed("per-run", str(run.id))
    ]
    files = repo_files(served_deployments.scheduled_repo)
    assert {"README.md", "metadata.json", "builder_config.json"} <= set(files)
    assert any(p.startswith("data/") and p.endswith(".parquet") for p in files)


def test_push_failing_mid_stage_is_resumed_by_ui_retry(
    served_deployments: ServedDeployments, prefect_server: PrefectServer, hub: Any, tmp_path: Path
) -> None:
    from prefect.states import AwaitingRetry
    from prefect_server import RETRIED_FROM_PROCESSORS  # here, not at collection (assertion rewriting)

    folder = make_dataset_folder(tmp_path / "ds", batches=3)
    repo_id = f"alice/retry-{uuid.uuid4().hex[:8]}"
    clean_repo = f"{repo_id}-clean"
    # Card, data and images commit; every later commit of this repo fails (503: retried once, then the run fails).
    hub.faults.add("commit", status=503, skip=3, count=None, repo=repo_id)
    faulted = prefect_server.run_deployment("push-folder/push-only", push_params(folder, repo_id))
    clean = prefect_server.run_deployment("push-folder/push-only", push_params(folder, clean_repo))

    failed = prefect_server.wait_for_final_state(faulted)
    assert failed.state.is_failed(), served_deployments.log_tail()
    states = prefect_server.task_run_states(faulted)
    assert states == {
        "prepare-repo": "Completed",
        "preupload-data": "Completed",
        "preupload-images": "Completed",
        "preupload-processors": "Completed",
        "push-card": "Completed",
        "push-data": "Completed",
        "push-images": "Completed",
        "push-processors": "Failed",
    }
    assert prefect_server.wait_for_final_state(clean).state.is_completed()

    # Exactly what the UI's Retry button sends; the served runner picks the run up again under the same id.
    hub.faults.clear()
    with prefect_server.client() as client:
        client.set_flow_run_state(faulted, AwaitingRetry(message="Retry from the UI"), force=True)
    retried = prefect_server.wait_for_final_state(faulted)
    assert retried.state.is_completed(), served_deployments.log_tail()
    assert retried.id == faulted and retried.run_count == 2
    assert prefect_server.task_run_states(faulted) == RETRIED_FROM_PROCESSORS
    assert_same_content(repo_id, clean_repo)

    # The run's artifacts show every stage's commit: a link per commit (both attempts) and the stage table.
    slug = repo_id.replace("/", "-")
    artifacts = prefect_server.artifacts(faulted)
    keys = {a.key for a in artifacts}
    for label in (
        "card",
        "data",
        "images",
        "processors-conversations",
        "processors-summary",
        "builder-config",
        "metadata",
    ):
        assert f"{slug}-{label}-commit" in keys, label
    # Each attempt records the table (the failed one too); the retry's is the newest.
    table = max((a for a in artifacts if a.key == f"{slug}-push-summary"), key=lambda a: a.created)
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    commits = HfApi().list_repo_commits(repo_id, repo_type="dataset", token=ALICE_TOKEN)
    assert [r["commit"] for r in rows] == [c.commit_id for c in reversed(commits)][1:]  # all but "initial commit"

    # The token is nowhere in the run's parameters, logs or artifacts.
    with prefect_server.client() as client:
        run = client.read_flow_run(faulted)
    everything = json.dumps(run.parameters) + json.dumps([a.model_dump(mode="json") for a in artifacts])
    everything += "\n".join(log.message for log in prefect_server.logs(faulted))
    assert "Pushing" in everything and ALICE_TOKEN not in everything


def test_ui_retry_of_last_nights_failed_run_after_tonights_push_changes_nothing(
    served_deployments: ServedDeployments, prefect_server: PrefectServer, hub: Any, session_dir: Path
) -> None:
    """Last night's scheduled run failed after its card and data commits; tonight's run pushed a new dataset; then
    last night's run is retried from the UI. The Retry must not resume: its cached stages are no longer what the
    branch holds, and its remaining stages would publish last night's processors and metadata.json over tonight's
    card and data (what it did before: a repo mixing two generations). It fails at once, naming tonight's run,
    before generating: the repo and the output folder stay tonight's."""
    from prefect.states import AwaitingRetry

    from deployments.entrypoints import run_seed
    from tasks.artifacts import artifact_slug
    from tasks.generation.state import read_state

    repo_id = f"alice/nightly-retry-{uuid.uuid4().hex[:8]}"
    params = nightly_params(repo_id)
    folder = session_dir / "served" / "generated" / artifact_slug(repo_id)  # the served runs' HFDS_WORK_DIR
    # Last night: the card and data commits land, then the Hub refuses the processors commit (403: not retried).
    hub.faults.add("commit", status=403, skip=2, count=None, repo=repo_id)
    last_night = prefect_server.run_deployment("generate-then-push/scheduled", params)
    failed = prefect_server.wait_for_final_state(last_night, timeout=180)
    assert failed.state.is_failed(), served_deployments.log_tail()
    hub.faults.clear()
    assert titles(repo_id)[-2:] == ["Upload dataset card", "Upload main dataset files"]

    tonight = prefect_server.run_deployment("generate-then-push/scheduled", params)
    assert prefect_server.wait_for_final_state(tonight, timeout=180).state.is_completed(), (
        served_deployments.log_tail()
    )
    published, history = repo_files(repo_id), titles(repo_id)
    state = read_state(folder)
    assert state is not None and state.seed == run_seed("per-run", str(tonight))

    with prefect_server.client() as client:
        client.set_flow_run_state(last_night, AwaitingRetry(message="Retry from the UI"), force=True)
    retried = prefect_server.wait_for_final_state(last_night, timeout=180, after=failed.state.id)
    assert retried.run_count == 2 and retried.state.is_failed(), served_deployments.log_tail()
    message = retried.state.message or ""
    assert "SupersededRetryError" in message and f"flow run {tonight}" in message, message
    assert repo_files(repo_id) == published and titles(repo_id) == history  # tonight's dataset, untouched
    state = read_state(folder)
    assert state is not None and state.seed == run_seed("per-run", str(tonight))  # not generated again


def test_of_the_scheduled_runs_due_at_once_only_the_latest_generates(
    served_deployments: ServedDeployments, prefect_server: PrefectServer
) -> None:
    """The serve process (or the worker) was down for nights: the schedule's runs of those nights are all due
    when it comes back. Each would generate and publish a whole dataset over the last one (three LLM bills for
    one dataset), and they start in any order, so an earlier night's could be the one left published (measured
    before the check). Only the latest generates and pushes; the others end Cancelled, naming it, at once."""
    from prefect.states import Scheduled

    scheduled = served_deployments.deployments["generate-then-push/scheduled"]
    repo_id = f"alice/missed-nights-{uuid.uuid4().hex[:8]}"
    params = nightly_params(repo_id)
    now = datetime.now(UTC)
    with prefect_server.client() as client:  # as the server's scheduler creates them (its tag), nights ago
        nights = [
            client.create_flow_run_from_deployment(
                scheduled.id,
                parameters={"params": params},
                state=Scheduled(scheduled_time=now - timedelta(days=days)),
                tags=["auto-scheduled"],
            ).id
            for days in (2, 1)  # two nights show it (a third only adds a run of the same check)
        ]
    finals = [prefect_server.wait_for_final_state(run, timeout=240) for run in nights]
    assert finals[-1].state.is_completed(), served_deployments.log_tail()
    for skipped in finals[:-1]:
        assert skipped.state.is_cancelled(), (skipped.state, served_deployments.log_tail())
        assert f"later scheduled run {nights[-1]} (due" in (skipped.state.message or "")
    messages = {c.message for c in HfApi().list_repo_commits(repo_id, repo_type="dataset", token=ALICE_TOKEN)}
    assert messages - {""} == {f"Prefect-Flow-Run: {nights[-1]}"}  # one night's push, the latest's


def test_a_cancelled_later_scheduled_run_leaves_the_night_to_the_earlier_one(
    served_deployments: ServedDeployments, prefect_server: PrefectServer
) -> None:
    """A later run of the schedule that someone cancelled (or that crashed) publishes nothing: the earlier due
    run must not cancel itself for it, or the night ends with nothing published."""
    from prefect.states import Cancelled, Scheduled

    scheduled = served_deployments.deployments["generate-then-push/scheduled"]
    repo_id = f"alice/cancelled-night-{uuid.uuid4().hex[:8]}"
    params = {"params": nightly_params(repo_id)}
    now = datetime.now(UTC)
    with prefect_server.client() as client:
        # The later night's run, due an hour ago and cancelled by hand (created scheduled, so that it has the
        # expected start the scheduler gives; if the runner picks it up first, the cancel stops it anyway).
        later = client.create_flow_run_from_deployment(
            scheduled.id, parameters=params, state=Scheduled(scheduled_time=now - timedelta(hours=1)),
            tags=["auto-scheduled"],
        )  # fmt: skip
        client.set_flow_run_state(later.id, Cancelled(message="cancelled by hand"), force=True)
        earlier = client.create_flow_run_from_deployment(
            scheduled.id, parameters=params, state=Scheduled(scheduled_time=now - timedelta(days=1)),
            tags=["auto-scheduled"],
        ).id  # fmt: skip
    final = prefect_server.wait_for_final_state(earlier, timeout=240)
    assert final.state.is_completed(), (final.state, served_deployments.log_tail())
    messages = {c.message for c in HfApi().list_repo_commits(repo_id, repo_type="dataset", token=ALICE_TOKEN)}
    assert messages - {""} == {f"Prefect-Flow-Run: {earlier}"}


def test_push_event_starts_the_chained_verify_deployment(
    served_deployments: ServedDeployments, prefect_server: PrefectServer, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    folder = make_dataset_folder(tmp_path / "ds", batches=2, rows_per_batch=15)
    repo_id = f"{served_deployments.CHAIN_PREFIX}{uuid.uuid4().hex[:8]}"
    block = f"chain-{uuid.uuid4().hex[:8]}"  # the push's credentials reach the chained run by name
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        HuggingFaceCredentials(token=SecretStr(ALICE_TOKEN)).save(block)
    push = prefect_server.run_deployment(
        "push-folder/push-only", {**push_params(folder, repo_id), "credentials_block": block}
    )
    assert prefect_server.wait_for_final_state(push).state.is_completed(), served_deployments.log_tail()

    verify = served_deployments.deployments["verify-after-push/on-push"]

    def chained_run() -> Any:
        runs = [r for r in prefect_server.runs_of(verify.id) if r.parameters["params"]["repo_id"] == repo_id]
        return runs[0] if runs else None

    run = prefect_server.wait_for(
        chained_run, timeout=90, what=f"the verify run triggered by the push of {repo_id}"
    )
    # It reads the commit the push left, not the branch (which a later push may have moved).
    head = HfApi().repo_info(repo_id, repo_type="dataset", token=ALICE_TOKEN).sha
    assert run.parameters == {
        "params": {"repo_id": repo_id, "revision": head, "expected_records": 30, "credentials_block": block}
    }
    final = prefect_server.wait_for_final_state(run.id)
    assert final.state.is_completed(), served_deployments.log_tail()
    table = next(a for a in prefect_server.artifacts(run.id) if a.key.endswith("-verification"))
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert {r["config"]: r["rows"] for r in rows} == {"data": 30, "conversations": 30, "summary": 30}


def test_prefect_yaml_deploys_to_a_process_pool_and_a_worker_runs_it(tmp_path: Path, hub: Any) -> None:
    """``prefect deploy --all --prefect-file deployments/prefect.yaml``, then a worker runs a push.

    A server of its own: deploying creates deployments with the served ones' names, which would take them over.
    """
    from conftest import HUB_URL
    from prefect_server import PrefectServer

    server = PrefectServer(tmp_path / "server")
    server.start()
    try:
        env = server.base_env(
            PREFECT_HOME=str(tmp_path / "client-home"),
            PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(tmp_path / "results"),
            HF_ENDPOINT=HUB_URL,
            HF_HUB_DISABLE_XET="1",
            HF_TOKEN=ALICE_TOKEN,
            PREFECT_WORKER_QUERY_SECONDS="1",
        )

        def prefect(*args: str) -> None:
            result = subprocess.run(
                [sys.executable, "-m", "prefect", *args], env=env, cwd=ROOT, capture_output=True, text=True
            )
            assert result.returncode == 0, result.stdout + result.stderr

        prefect("work-pool", "create", "hfds-process", "--type", "process")
        prefect("--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml")
        with server.client() as client:
            deployments = {f"{d.name}": d for d in client.read_deployments()}
            automations = client.read_automations_by_name("verify-on-push")
        assert set(deployments) == {"scheduled", "push-only", "on-push"}
        assert all(d.work_pool_name == "hfds-process" for d in deployments.values())
        assert [s.schedule.cron for s in deployments["scheduled"].schedules] == ["0 3 * * *"]
        limit = deployments["scheduled"].global_concurrency_limit
        assert limit is not None and limit.limit == 1  # one scheduled run at a time
        assert deployments["scheduled"].parameters["params"]["records"] == 1000
        assert deployments["scheduled"].parameters["params"]["seed"] == "per-run"
        assert automations and automations[0].actions[0].deployment_id == deployments["on-push"].id

        folder = make_dataset_folder(tmp_path / "ds", batches=1, images=0, processor_file=None)
        repo_id = f"alice/pool-{uuid.uuid4().hex[:8]}"
        run_id = server.run_deployment("push-folder/push-only", push_params(folder, repo_id))
        worker = subprocess.run(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", "hfds-process", "--run-once"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
        final = server.wait_for_final_state(run_id, timeout=30)
        assert final.state.is_completed(), worker.stdout[-3000:] + worker.stderr[-3000:]
        assert "data/batch_00000.parquet" in repo_files(repo_id)
    finally:
        server.stop()
