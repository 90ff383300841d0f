"""Durability and process-level behaviour: restart on the same data dir, concurrent commits, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from conftest import ALICE, ALICE_TOKEN, BOB, BOB_TOKEN
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download

from localhub import DEFAULT_TOKEN, DEFAULT_USER, LocalHub

PROJECT_ROOT = Path(__file__).resolve().parents[1]
USERS = {ALICE: ALICE_TOKEN, BOB: BOB_TOKEN}


def test_restart_keeps_repos_files_history_and_flags(tmp_path: Path, repo_id: str) -> None:
    data_dir = tmp_path / "data"
    big = os.urandom(3 * 1024 * 1024)
    with LocalHub(data_dir, users=USERS) as hub:
        api = HfApi(endpoint=hub.url, token=ALICE_TOKEN)
        api.create_repo(repo_id, repo_type="dataset", private=True)
        api.upload_file(
            path_or_fileobj=b"hello world\n", path_in_repo="hello.txt", repo_id=repo_id, repo_type="dataset"
        )
        api.upload_file(path_or_fileobj=big, path_in_repo="data/big.bin", repo_id=repo_id, repo_type="dataset")
        api.create_branch(repo_id, branch="dev", repo_type="dataset")
        api.create_tag(repo_id, tag="v1", repo_type="dataset")
        public = f"{ALICE}/public-{os.urandom(4).hex()}"
        api.create_repo(public)
        before = {
            "info": api.dataset_info(repo_id, files_metadata=True),
            "commits": api.list_repo_commits(repo_id, repo_type="dataset"),
            "refs": api.list_repo_refs(repo_id, repo_type="dataset"),
        }
        port = hub.port

    with LocalHub(data_dir, port=port, users=USERS) as hub:  # same URL, new process state
        api = HfApi(endpoint=hub.url, token=ALICE_TOKEN)
        info = api.dataset_info(repo_id, files_metadata=True)
        assert info.private is True and info.sha == before["info"].sha
        assert [(s.rfilename, s.blob_id, s.size) for s in info.siblings] == [
            (s.rfilename, s.blob_id, s.size) for s in before["info"].siblings
        ]
        assert api.list_repo_commits(repo_id, repo_type="dataset") == before["commits"]
        assert api.list_repo_refs(repo_id, repo_type="dataset") == before["refs"]
        assert api.repo_exists(public) and not api.model_info(public).private
        with pytest.raises(Exception, match="Repository Not Found"):
            HfApi(endpoint=hub.url, token=BOB_TOKEN).dataset_info(repo_id)
        downloaded = hf_hub_download(
            repo_id,
            "data/big.bin",
            repo_type="dataset",
            endpoint=hub.url,
            token=ALICE_TOKEN,
            cache_dir=tmp_path / "c",
        )
        assert Path(downloaded).read_bytes() == big
        # Writing still works after the restart, and LFS objects from before are still deduplicated.
        hub.clear_requests()
        api.upload_file(path_or_fileobj=big, path_in_repo="data/again.bin", repo_id=repo_id, repo_type="dataset")
        assert "lfs-upload" not in [r.route for r in hub.requests]


def test_stop_disconnects_clients(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path, users=USERS).start()
    with httpx.Client() as client:
        assert client.get(f"{hub.url}/api/agent-harnesses").status_code == 200  # a keep-alive connection
        hub.stop()
        with pytest.raises(httpx.TransportError):
            client.get(f"{hub.url}/api/agent-harnesses")


def test_concurrent_commits_all_land_linearly(hub: LocalHub, repo_id: str) -> None:
    api = HfApi(token=ALICE_TOKEN)
    api.create_repo(repo_id, repo_type="dataset")
    writers = 6
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            barrier.wait()
            content = os.urandom(2000) if i % 2 else f"file {i}\n".encode()  # half LFS (binary), half regular
            api.create_commit(
                repo_id,
                repo_type="dataset",
                commit_message=f"writer {i}",
                operations=[CommitOperationAdd(f"w/{i}.dat", content)],
            )
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    history = api.list_repo_commits(repo_id, repo_type="dataset")
    assert len(history) == writers + 1
    assert sorted(c.title for c in history[:-1]) == sorted(f"writer {i}" for i in range(writers))
    # Linear: every commit contains everything of the commits below it, plus its own file.
    for depth, commit in enumerate(reversed(history)):
        files = api.list_repo_files(repo_id, repo_type="dataset", revision=commit.commit_id)
        assert len(files) == depth + 1
    assert hub.commit_count(repo_id) == writers + 1


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "localhub", "--port", "0", "--data-dir", str(tmp_path), *args],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        url = next(word for word in line.split() if word.startswith("http://"))
        return process, url

    process, url = start("--user", "carol:hf_carol", "--page-size", "1")
    try:
        me = httpx.get(f"{url}/api/whoami-v2", headers={"authorization": "Bearer hf_carol"})
        assert me.json()["name"] == "carol"
        created = httpx.post(
            f"{url}/api/repos/create",
            json={"name": "cli", "type": "dataset"},
            headers={"authorization": "Bearer hf_carol"},
        )
        assert created.json()["url"] == f"{url}/datasets/carol/cli"
        tree = httpx.get(f"{url}/api/datasets/carol/cli/tree/main")
        assert tree.status_code == 200 and "link" not in tree.headers  # one entry, page size 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0

    process, url = start()  # default user, same data dir
    try:
        me = httpx.get(f"{url}/api/whoami-v2", headers={"authorization": f"Bearer {DEFAULT_TOKEN}"})
        assert me.json()["name"] == DEFAULT_USER
        assert httpx.get(f"{url}/api/datasets/carol/cli").json()["id"] == "carol/cli"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
