"""Child side of the peers: what users would pick instead of this project, each run in its own process.

    python -m bench.peers upload-folder DIR REPO   # HfApi.upload_folder of the whole folder, one call
    python -m bench.peers upload-folder-flow DIR REPO  # the same call as the one task of a Prefect flow
    python -m bench.peers datasets DIR REPO        # datasets: Dataset.from_parquet(parquet-files/*).push_to_hub
    python -m bench.peers dd-push DIR REPO         # Data Designer: push_to_hub_from_folder (in its own venv)
    python -m bench.peers dd-generate CONFIG N OUT # Data Designer: DataDesigner.create on a builder config

``dd-*`` run with the Python of the Data Designer venv (``bench.dd_venv``): Data Designer pins
``huggingface_hub<2`` and ``pyarrow<25``. This module imports only the standard library at the top, so any of
the venvs can run it from the project root. The parent sets the Hub variables before the process starts.
Each command writes a JSON result with ``import_s`` (imports) and ``op_s`` (the call itself).
"""

from __future__ import annotations

import argparse
import glob
import os
import time
from pathlib import Path
from typing import Any

from bench.measure import write_result

DESCRIPTION = "Greetings in six languages, generated without an LLM (benchmark)."
# Files of the folder that are not part of the dataset (our generator's resume state): not uploaded.
IGNORE = [".generation-state.json"]


def upload_folder(folder: str, repo: str) -> dict[str, Any]:
    started = time.perf_counter()
    from huggingface_hub import HfApi

    imported = time.perf_counter()
    api = HfApi()
    api.create_repo(repo, repo_type="dataset", exist_ok=True)
    info = api.upload_folder(
        repo_id=repo, folder_path=folder, repo_type="dataset", ignore_patterns=IGNORE, commit_message="Upload"
    )
    done = time.perf_counter()
    return {"import_s": imported - started, "op_s": done - imported, "oid": getattr(info, "oid", None)}


def upload_folder_flow(folder: str, repo: str) -> dict[str, Any]:
    """``upload_folder`` as a Prefect user would schedule it: one task in a flow, run the way our CLI runs its
    flow (same Prefect API, heartbeats off), so both sides pay the same orchestration cost."""
    started = time.perf_counter()
    from huggingface_hub import HfApi
    from prefect import flow, task

    from flows.terminal_run import terminal_run

    @task(name="upload-folder")
    def upload(folder: str, repo: str) -> str:
        api = HfApi()
        api.create_repo(repo, repo_type="dataset", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo, folder_path=folder, repo_type="dataset", ignore_patterns=IGNORE, commit_message="Upload"
        )
        return str(getattr(info, "oid", ""))

    @flow(name="bench-upload-folder")
    def upload_flow(folder: str, repo: str) -> str:
        return upload(folder, repo)

    imported = time.perf_counter()
    with terminal_run():
        oid = upload_flow(folder, repo)
    done = time.perf_counter()
    return {"import_s": imported - started, "op_s": done - imported, "oid": oid}


def datasets_push(folder: str, repo: str) -> dict[str, Any]:
    started = time.perf_counter()
    from datasets import Dataset

    imported = time.perf_counter()
    files = sorted(glob.glob(os.path.join(folder, "parquet-files", "*.parquet")))
    ds = Dataset.from_parquet(files)
    loaded = time.perf_counter()
    ds.push_to_hub(repo)
    done = time.perf_counter()
    return {
        "import_s": imported - started,
        "op_s": done - imported,
        "load_s": loaded - imported,
        "records": len(ds),
    }


def _validate_cards_at_endpoint() -> None:
    """huggingface_hub 1.x (Data Designer's pin) validates a card by POSTing to the hard-coded
    ``https://huggingface.co/api/validate-yaml``, whatever ``HF_ENDPOINT`` says; offline that fails. Send the
    same request to ``HF_ENDPOINT`` instead (the embedded Hub answers it): one request, as against the real Hub."""
    from huggingface_hub import constants, repocard
    from huggingface_hub.utils import get_session, hf_raise_for_status

    def validate(self: Any, repo_type: str | None = None) -> None:
        body = {"repoType": repo_type or self.repo_type, "content": str(self)}
        response = get_session().post(f"{constants.ENDPOINT}/api/validate-yaml", json=body)
        if response.status_code == 400:
            raise ValueError(response.text)
        hf_raise_for_status(response)

    repocard.RepoCard.validate = validate  # type: ignore[method-assign]


def dd_push(folder: str, repo: str) -> dict[str, Any]:
    started = time.perf_counter()
    from data_designer.integrations.huggingface.client import HuggingFaceHubClient

    _validate_cards_at_endpoint()
    imported = time.perf_counter()
    HuggingFaceHubClient.push_to_hub_from_folder(folder, repo, DESCRIPTION, token=os.environ["HF_TOKEN"])
    done = time.perf_counter()
    return {"import_s": imported - started, "op_s": done - imported}


def dd_generate(config: str, num_records: int, out: str) -> dict[str, Any]:
    """``DataDesigner.create`` on the no-LLM example (its YAML is Data Designer's own builder-config format).

    No LLM column, so no model is called: Data Designer only warns that the default providers' keys are
    missing. ``create`` includes its profiling step (column statistics), as a user's call does.
    """
    import logging

    started = time.perf_counter()
    from data_designer.config.config_builder import DataDesignerConfigBuilder
    from data_designer.interface.data_designer import DataDesigner

    imported = time.perf_counter()
    builder = DataDesignerConfigBuilder.from_config(config)
    designer = DataDesigner(artifact_path=out)
    logging.getLogger().setLevel(logging.WARNING)  # per-column INFO lines would only cost terminal time
    ready = time.perf_counter()
    result = designer.create(builder, num_records=num_records, dataset_name="greetings")
    done = time.perf_counter()
    path = Path(result.artifact_storage.base_dataset_path)
    records = sum(1 for _ in path.glob("parquet-files/*.parquet"))
    return {
        "import_s": imported - started,
        "setup_s": ready - imported,
        "op_s": done - ready,
        "batch_files": records,
        "records_per_s": num_records / (done - ready),
        "path": str(path),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("upload-folder", "upload-folder-flow", "datasets", "dd-push"):
        p = sub.add_parser(name)
        p.add_argument("dir")
        p.add_argument("repo")
    p = sub.add_parser("dd-generate")
    p.add_argument("config")
    p.add_argument("num_records", type=int)
    p.add_argument("out")
    args = parser.parse_args(argv)
    if args.command == "dd-generate":
        result = dd_generate(args.config, args.num_records, args.out)
    else:
        fn = {
            "upload-folder": upload_folder,
            "upload-folder-flow": upload_folder_flow,
            "datasets": datasets_push,
            "dd-push": dd_push,
        }[args.command]
        result = fn(args.dir, args.repo)
    write_result(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
