"""Scale-out: the generation batches run on Dask workers, against a real Prefect server.

Dask worker processes report their task runs to the Prefect API, so they need a server (``PREFECT_API_URL``), not
the ephemeral mode; the flows run in child processes whose environment has it (the pytest process's must not).
Each Dask worker gets a small preload that prefixes the Prefect task-run log lines it emits with
``[dask worker <name>]``, so the server's logs show which worker ran which batch.

- ``generate_dataset`` with ``prefect_dask.DaskTaskRunner(cluster_kwargs=...)``: a local cluster of two worker
  processes, created and closed by the task runner;
- the served ``generate-then-push/scheduled`` deployment with ``task_runner="dask"`` and the ``dask_address`` of a
  running cluster (the way it runs on a remote one): generated on that cluster's workers, pushed to the Hub;
- a batch with LLM columns failing on a worker process: the answers it had received, kept in its journal by that
  worker, are not requested again by the rerun.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest
from conftest import ALICE_TOKEN

if TYPE_CHECKING:
    from prefect_server import PrefectServer, ServedDeployments

pytest_plugins = ["prefect_server"]
pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "multilingual_greetings.yaml"

WORKER_PRELOAD = '''
"""Dask worker preload: prefix the Prefect task-run log lines of this worker with its name."""
import logging


class WorkerName(logging.Filter):
    def __init__(self, name):
        super().__init__()
        self.prefix = f"[dask worker {name}] "

    def filter(self, record):
        if not str(record.msg).startswith(self.prefix):
            record.msg = self.prefix + str(record.msg)
        return True


def dask_setup(worker):
    logging.getLogger("prefect.task_runs").addFilter(WorkerName(worker.name))
'''

GENERATE_ON_LOCAL_CLUSTER = """
import json, sys
from prefect_dask import DaskTaskRunner
from flows.generate import generate_dataset

if __name__ == "__main__":  # Dask starts its worker processes with spawn
    config, output_dir, preload = sys.argv[1:4]
    runner = DaskTaskRunner(
        cluster_kwargs={
            "n_workers": 2,
            "processes": True,
            "threads_per_worker": 1,
            "dashboard_address": None,
            "preload": [preload],
        }
    )
    state = generate_dataset.with_options(task_runner=runner)(
        config, 60, output_dir, batch_size=10, seed=3, return_state=True
    )
    print(json.dumps({"flow_run_id": str(state.state_details.flow_run_id), "completed": state.is_completed()}))
"""

CLUSTER = """
import json, sys
from distributed import Client, LocalCluster

if __name__ == "__main__":  # Dask starts its worker processes with spawn
    cluster = LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, preload=[sys.argv[1]]
    )
    client = Client(cluster)
    client.wait_for_workers(2)
    workers = {addr: str(info["name"]) for addr, info in client.scheduler_info()["workers"].items()}
    print(json.dumps({"scheduler": cluster.scheduler_address, "workers": workers}), flush=True)
    sys.stdin.read()  # until the test closes our stdin
    client.close()
    cluster.close()
"""


GENERATE_ON_A_CLUSTER = """
import json, sys
from flows.generate import generate_dataset

config, output_dir, address = sys.argv[1:4]
state = generate_dataset(
    config, 40, output_dir, batch_size=10, seed=8, task_runner="dask", dask_address=address, max_in_flight=1,
    return_state=True,
)
print(json.dumps({"completed": state.is_completed()}))
"""


@pytest.fixture(scope="module")
def preload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dask") / "worker_names.py"
    path.write_text(WORKER_PRELOAD)
    return path


def batch_workers(server: PrefectServer, flow_run_id: UUID) -> dict[str, str]:
    """Batch task-run name → the Dask worker named in its logs."""
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    with server.client() as client:
        task_runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run_id]))
        )
    names = {t.id: t.name for t in task_runs if t.name.startswith("generate-batch-")}
    assert names and all(t.state.is_completed() for t in task_runs if t.id in names)
    # Workers ship their logs to the API in the background: wait until every batch's line has arrived.
    found: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while set(found) != set(names.values()) and time.monotonic() < deadline:
        for log in server.logs(flow_run_id):
            if log.task_run_id in names and log.message.startswith("[dask worker "):
                found[names[log.task_run_id]] = log.message.split("]", 1)[0].removeprefix("[dask worker ")
        if set(found) != set(names.values()):
            time.sleep(1)
    assert set(found) == set(names.values()), "every batch task run logs from a Dask worker"
    return found


def test_generation_batches_run_on_a_local_dask_cluster(
    prefect_server: PrefectServer, preload: Path, tmp_path: Path
) -> None:
    script = tmp_path / "generate_on_dask.py"
    script.write_text(GENERATE_ON_LOCAL_CLUSTER)
    env = prefect_server.base_env(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(tmp_path / "results"),
        PYTHONPATH=str(ROOT),
    )
    output = tmp_path / "greetings"
    result = subprocess.run(
        [sys.executable, str(script), str(CONFIG), str(output), str(preload)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["completed"]

    workers = batch_workers(prefect_server, UUID(outcome["flow_run_id"]))
    assert sorted(workers) == [f"generate-batch-{i:05d}" for i in range(6)]
    assert set(workers.values()) == {"0", "1"}, workers  # both worker processes of the cluster took batches
    assert sorted(p.name for p in (output / "parquet-files").iterdir()) == [
        f"batch_{i:05d}.parquet" for i in range(6)
    ]
    assert json.loads((output / "metadata.json").read_text())["actual_num_records"] == 60


@pytest.fixture(scope="module")
def dask_cluster(
    prefect_server: PrefectServer, preload: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A running Dask cluster (scheduler + two worker processes) whose workers talk to the test server."""
    work = tmp_path_factory.mktemp("dask-cluster")
    script = work / "cluster.py"
    script.write_text(CLUSTER)
    env = prefect_server.base_env(
        PREFECT_HOME=str(work / "prefect-home"),
        PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(work / "results"),
        PYTHONPATH=str(ROOT),  # the workers run this checkout's code, not the one the venv installed
    )
    process = subprocess.Popen(
        [sys.executable, str(script), str(preload)],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, "the Dask cluster did not start"
        yield json.loads(line)
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_generate_then_push_deployment_runs_its_batches_on_a_dask_cluster(
    served_deployments: ServedDeployments, prefect_server: PrefectServer, dask_cluster: dict[str, Any]
) -> None:
    from tasks.read_dataset import read_dataset

    repo_id = f"alice/dask-{uuid.uuid4().hex[:8]}"
    run_id = prefect_server.run_deployment(
        "generate-then-push/scheduled",
        {
            "config": str(CONFIG),
            "records": 50,
            "batch_size": 10,
            "repo": repo_id,
            "description": "Greetings generated on a Dask cluster.",
            "task_runner": "dask",
            "dask_address": dask_cluster["scheduler"],
        },
    )
    final = prefect_server.wait_for_final_state(run_id, timeout=180)
    assert final.state.is_completed(), served_deployments.log_tail()

    # The generation is a subflow of the deployment's run; its batches ran on the cluster's workers.
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with prefect_server.client() as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id]))
        )
        generation = next(r for r in children if client.read_flow(r.flow_id).name == "generate-dataset")
    workers = batch_workers(prefect_server, generation.id)
    assert len(workers) == 5
    assert set(workers.values()) <= set(dask_cluster["workers"].values())
    assert read_dataset(repo_id, "data", token=ALICE_TOKEN).num_rows == 50


def test_a_batch_failing_on_a_dask_worker_keeps_its_answers_for_the_rerun(
    prefect_server: PrefectServer, dask_cluster: dict[str, Any], tmp_path: Path
) -> None:
    import yaml
    from fake_llm import FakeLLM, llm_example_config
    from reliability_support import wait_for

    from tasks.generation.answer_journal import JOURNAL_DIR, journal_path
    from tasks.generation.batch import generate_tables
    from tasks.generation.plan import get_plan
    from tasks.generation.source import from_config

    with FakeLLM() as llm:
        raw = llm_example_config(llm.endpoint)
        del raw["model_providers"][0][
            "api_key_env"
        ]  # the fake needs none, and the workers have no variable for it
        config = tmp_path / "llm.yaml"
        config.write_text(yaml.safe_dump(raw))
        main, _ = generate_tables(get_plan(from_config(raw)), seed=8, batch_index=2, num_rows=10)
        last = main.column("greeting")[9].as_py()
        llm.fail_next(
            400,
            message="context length exceeded",
            prompt=f"Translate into English, answer with the translation only: {last}",
        )
        llm.requests.clear()
        out = tmp_path / "out"
        script = tmp_path / "generate.py"
        script.write_text(GENERATE_ON_A_CLUSTER)
        env = prefect_server.base_env(
            PREFECT_HOME=str(tmp_path / "prefect-home"),
            PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(tmp_path / "results"),
            PYTHONPATH=str(ROOT),
        )
        command = [sys.executable, str(script), str(config), str(out), dask_cluster["scheduler"]]

        failed = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert failed.returncode == 0 and json.loads(failed.stdout.splitlines()[-1]) == {"completed": False}
        answered = {json.dumps(r.body, sort_keys=True) for r in llm.chat_requests if r.status == 200}
        assert len(answered) == 59  # batches 0 and 1, and batch 2 but its last translation
        # Written by the worker process that ran the batch (answers still in flight when it failed land later).
        assert wait_for(lambda: len(journal_path(out, 2).read_text().splitlines()) == 19, 10)

        llm.requests.clear()
        rerun = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert rerun.returncode == 0 and json.loads(rerun.stdout.splitlines()[-1]) == {"completed": True}, (
            rerun.stderr[-3000:]
        )
        sent = [json.dumps(r.body, sort_keys=True) for r in llm.chat_requests]
    assert len(sent) == 21 and not answered & set(sent)  # batch 2's refused request and batch 3's 20
    assert json.loads((out / "metadata.json").read_text())["actual_num_records"] == 40
    assert not (out / JOURNAL_DIR).exists()
