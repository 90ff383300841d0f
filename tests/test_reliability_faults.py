from pathlib import Path
from typing import Any
import pytest
from conftest import ALICE_TOKEN
from factories import make_dataset_folder
from huggingface_hub import HfApi
from pydantic import SecretStr
from flows.push import push_dataset

pytestmark = pytest.mark.usefixtures("prefect_api", "hub")

@pytest.mark.parametrize("kind", ["500", "drop"])
def test_explore(tmp_path: Path, repo_id: str, hub: Any, kind) -> None:
    a = make_dataset_folder(tmp_path / "a", batches=2, rows_per_batch=5)
    b = make_dataset_folder(tmp_path / "b", batches=2, rows_per_batch=5, processor_file=None)
    push_dataset(a, repo_id, "x desc", token=SecretStr(ALICE_TOKEN))
    hub.clear_requests()
    if kind == "500":
        hub.faults.add("resolve", status=500, count=None)
    else:
        hub.faults.add("resolve", drop="before", count=None)
    push_dataset(b, repo_id, "x desc", token=SecretStr(ALICE_TOKEN))
    for r in hub.requests:
        if r.route in ("resolve", "commit"):
            print(r.method, r.route, r.status, r.path[:110], round(r.duration, 3))
    print(sorted(HfApi().list_repo_files(repo_id, repo_type="dataset")))
