"""localhub against the real, unmodified ``huggingface_hub`` client: the operations of hub-protocol §7 and §10."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ALICE, ALICE_TOKEN
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationCopy,
    CommitOperationDelete,
    HfApi,
    HfFileSystem,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import HfHubHTTPError

from localhub import LocalHub

HELLO_OID = "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"  # git hash-object of b"hello world\n"
MiB = 1024 * 1024


@pytest.fixture
def small_pages(hub: LocalHub) -> Iterator[None]:
    """Tree/commit pages of 2 entries, so every listing below paginates."""
    previous = hub.page_size
    hub.page_size = 2
    try:
        yield
    finally:
        hub.page_size = previous


def tree(api: HfApi, repo_id: str, revision: str | None = None) -> dict[str, object]:
    return {e.path: e for e in api.list_repo_tree(repo_id, repo_type="dataset", recursive=True, revision=revision)}


def commits(api: HfApi, repo_id: str) -> list[str]:
    return [c.commit_id for c in api.list_repo_commits(repo_id, repo_type="dataset")]


def test_whoami(api: HfApi) -> None:
    me = api.whoami()
    assert me["name"] == ALICE
    assert me["auth"]["accessToken"]["role"] == "write"


def test_create_repo_private_twice_gives_fresh_repo(api: HfApi, repo_id: str) -> None:
    url = api.create_repo(repo_id, repo_type="dataset", private=True, exist_ok=True)
    again = api.create_repo(repo_id, repo_type="dataset", private=True, exist_ok=True)
    assert url == again
    assert url.repo_id == repo_id and url.repo_type == "dataset"

    info = api.dataset_info(repo_id)
    assert info.private is True
    assert len(info.sha) == 40 and info.sha == info.sha.lower()
    assert [s.rfilename for s in info.siblings] == [".gitattributes"]
    [initial] = api.list_repo_commits(repo_id, repo_type="dataset")
    assert initial.title == "initial commit" and initial.authors == ["system"]
    gitattributes = Path(hf_hub_download(repo_id, ".gitattributes", repo_type="dataset", token=ALICE_TOKEN))
    lines = gitattributes.read_text().splitlines()
    assert "*.parquet filter=lfs diff=lfs merge=lfs -text" in lines
    assert "*.png filter=lfs diff=lfs merge=lfs -text" in lines  # the dataset variant adds media types


def test_upload_file_blob_oid(api: HfApi, repo: str) -> None:
    info = api.upload_file(
        path_or_fileobj=b"hello world\n", path_in_repo="hello.txt", repo_id=repo, repo_type="dataset"
    )
    assert info.oid == api.dataset_info(repo).sha
    entry = tree(api, repo)["hello.txt"]
    assert entry.blob_id == HELLO_OID  # type: ignore[attr-defined]
    sibling = next(s for s in api.dataset_info(repo, files_metadata=True).siblings if s.rfilename == "hello.txt")
    assert sibling.blob_id == HELLO_OID and sibling.size == 12 and sibling.lfs is None


def _make_folder(root: Path) -> dict[str, bytes]:
    files = {
        "README.md": b"---\nlicense: mit\npretty_name: Folder\n---\n# A dataset\n",
        "notes.txt": b"plain text\n",
        "data/train-00000-of-00001.parquet": os.urandom(3000),  # LFS through .gitattributes
        "big/corpus.txt": b"0123456789abcdef" * (11 * MiB // 16),  # LFS by size (>= 10 MiB) and multipart
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def test_upload_folder_regular_lfs_and_multipart(api: HfApi, repo: str, hub: LocalHub, tmp_path: Path) -> None:
    files = _make_folder(tmp_path)
    hub.clear_requests()
    api.upload_folder(folder_path=tmp_path, repo_id=repo, repo_type="dataset")

    # The 11 MiB file went up in parts (5 MiB chunks by default) plus a completion POST; the parquet in one PUT.
    uploads = [r for r in hub.requests if r.route == "lfs-upload"]
    assert sum(1 for r in uploads if "/part/" in r.path) == 3
    assert sum(1 for r in uploads if r.method == "POST") == 1
    assert hub.stats()["lfs_bytes_in"] >= len(files["big/corpus.txt"])

    entries = tree(api, repo)
    assert {"data", "big"} <= set(entries)  # recursive listings include directories
    for name in ("data/train-00000-of-00001.parquet", "big/corpus.txt"):
        lfs = entries[name].lfs  # type: ignore[attr-defined]
        assert lfs.sha256 == hashlib.sha256(files[name]).hexdigest()
        assert lfs.size == len(files[name])
        assert lfs.pointer_size == 125 + len(str(len(files[name])))
    assert entries["notes.txt"].lfs is None  # type: ignore[attr-defined]

    big = hf_hub_download(repo, "big/corpus.txt", repo_type="dataset", token=ALICE_TOKEN)
    assert (
        hashlib.sha256(Path(big).read_bytes()).hexdigest() == hashlib.sha256(files["big/corpus.txt"]).hexdigest()
    )
    assert api.dataset_info(repo).card_data["pretty_name"] == "Folder"

    # The same folder again: the batch asks for no upload, and no commit is made.
    count = hub.commit_count(repo)
    hub.clear_requests()
    api.upload_folder(folder_path=tmp_path, repo_id=repo, repo_type="dataset")
    assert hub.commit_count(repo) == count
    routes = [r.route for r in hub.requests]
    assert "lfs-upload" not in routes and "commit" not in routes


def test_identical_upload_file_makes_no_commit(api: HfApi, repo: str, hub: LocalHub) -> None:
    for _ in range(2):
        api.upload_file(path_or_fileobj=b"same\n", path_in_repo="same.txt", repo_id=repo, repo_type="dataset")
        api.upload_file(path_or_fileobj=b"\0bin" * 10, path_in_repo="same.bin", repo_id=repo, repo_type="dataset")
    assert hub.commit_count(repo) == 3  # initial + one per file


def test_gitignore_is_honoured(api: HfApi, repo: str, hub: LocalHub, tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.log\nscratch/\n")
    (tmp_path / "keep.txt").write_text("keep")
    (tmp_path / "debug.log").write_text("noise")
    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch" / "tmp.txt").write_text("tmp")
    api.upload_folder(folder_path=tmp_path, repo_id=repo, repo_type="dataset")
    assert sorted(api.list_repo_files(repo, repo_type="dataset")) == [".gitattributes", ".gitignore", "keep.txt"]
    # Re-uploading sends a header-only commit (the ignored files stay in the client's list): accepted.
    count = hub.commit_count(repo)
    api.upload_folder(folder_path=tmp_path, repo_id=repo, repo_type="dataset")
    assert hub.commit_count(repo) == count + 1  # a new commit with the same tree, as the real Hub
    assert sorted(api.list_repo_files(repo, repo_type="dataset")) == [".gitattributes", ".gitignore", "keep.txt"]


def test_repo_info_expand_and_blobs(api: HfApi, repo: str) -> None:
    api.upload_file(
        path_or_fileobj=b"---\nlicense: mit\n---\n", path_in_repo="README.md", repo_id=repo, repo_type="dataset"
    )
    info = api.dataset_info(repo, expand=["sha", "cardData", "lastModified"])
    assert info.sha and info.card_data["license"] == "mit" and info.last_modified is not None
    assert info.siblings is None and info.private is None  # only what was asked for
    full = api.dataset_info(repo, files_metadata=True)
    readme = next(s for s in full.siblings if s.rfilename == "README.md")
    assert readme.size == 21 and len(readme.blob_id) == 40
    assert full.created_at is not None and full.created_at <= full.last_modified


def test_create_commit_add_delete_copy(api: HfApi, repo: str, hub: LocalHub) -> None:
    api.create_commit(
        repo,
        repo_type="dataset",
        commit_message="seed",
        operations=[
            CommitOperationAdd("hello.txt", b"hello world\n"),
            CommitOperationAdd("weights.bin", b"\x00\x01" * 500),
            CommitOperationAdd("old/a.txt", b"a"),
            CommitOperationAdd("old/b.txt", b"b"),
            CommitOperationAdd("gone.txt", b"bye"),
        ],
    )
    info = api.create_commit(
        repo,
        repo_type="dataset",
        commit_message="mixed",
        commit_description="add, delete and copy",
        operations=[
            CommitOperationAdd("blob.dat", io.BytesIO(b"\x00binary payload")),  # LFS by binary sniffing
            CommitOperationCopy("weights.bin", "copies/weights.bin"),  # LFS copy: lfsFile without size
            CommitOperationCopy("hello.txt", "copies/hello.txt"),  # regular copy: content re-sent
            CommitOperationDelete("gone.txt"),
            CommitOperationDelete("old/"),
        ],
    )
    entries = tree(api, repo)
    assert "gone.txt" not in entries and "old" not in entries and "old/a.txt" not in entries
    assert entries["copies/hello.txt"].blob_id == HELLO_OID  # type: ignore[attr-defined]
    assert entries["copies/weights.bin"].lfs.sha256 == entries["weights.bin"].lfs.sha256  # type: ignore[attr-defined]
    assert entries["blob.dat"].lfs is not None  # type: ignore[attr-defined]

    # .bin is tracked by the default .gitattributes; blob.dat was not, so the commit tracked it.
    attributes = Path(
        hf_hub_download(repo, ".gitattributes", repo_type="dataset", revision=info.oid, token=ALICE_TOKEN)
    )
    lines = attributes.read_text().splitlines()
    assert lines[-1] == "blob.dat filter=lfs diff=lfs merge=lfs -text"
    assert not any(line.startswith("weights.bin") for line in lines)

    head = api.list_repo_commits(repo, repo_type="dataset")[0]
    assert (head.title, head.message, head.authors) == ("mixed", "add, delete and copy", [ALICE])


def test_listings_paginate(api: HfApi, repo: str, hub: LocalHub, small_pages: None) -> None:
    for i in range(3):
        api.upload_file(
            path_or_fileobj=f"{i}".encode(), path_in_repo=f"d{i}/f{i}.txt", repo_id=repo, repo_type="dataset"
        )
    hub.clear_requests()
    expected = [".gitattributes", "d0/f0.txt", "d1/f1.txt", "d2/f2.txt"]
    assert sorted(api.list_repo_files(repo, repo_type="dataset")) == expected
    assert len(tree(api, repo)) == 7  # 4 files + 3 directories
    assert len(commits(api, repo)) == 4
    pages = [r for r in hub.requests if r.route in ("tree", "commits")]
    assert len(pages) >= 4 + 4 + 2  # every listing needed several pages
    top = api.list_repo_tree(repo, repo_type="dataset", expand=True)
    assert [e.path for e in top] == ["d0", "d1", "d2", ".gitattributes"]
    assert all(e.last_commit is not None for e in top)


def test_get_paths_info(api: HfApi, repo: str) -> None:
    api.upload_file(
        path_or_fileobj=b"hello world\n", path_in_repo="dir/hello.txt", repo_id=repo, repo_type="dataset"
    )
    infos = api.get_paths_info(repo, ["dir/hello.txt", "missing.txt", "dir"], repo_type="dataset", expand=True)
    assert [i.path for i in infos] == ["dir/hello.txt", "dir"]
    assert infos[0].blob_id == HELLO_OID and infos[0].size == 12  # type: ignore[union-attr]
    assert infos[0].last_commit.title == "Upload dir/hello.txt with huggingface_hub"  # type: ignore[union-attr]
    assert len(infos[1].tree_id) == 40  # type: ignore[union-attr]
    as_json = httpx.post(  # JSON bodies are accepted as well as the client's form encoding
        f"{os.environ['HF_ENDPOINT']}/api/datasets/{repo}/paths-info/main",
        json={"paths": ["dir", "dir/hello.txt", "nope"]},
        headers={"authorization": f"Bearer {ALICE_TOKEN}"},
    ).json()
    assert [(e["type"], e["path"]) for e in as_json] == [("directory", "dir"), ("file", "dir/hello.txt")]


def test_get_paths_info_takes_at_most_1000_paths(api: HfApi, repo: str) -> None:
    # The real Hub answers 413 "too many parameters" above 1,000 paths (huggingface_hub issue #1503).
    assert api.get_paths_info(repo, [f"f{i}" for i in range(1000)], repo_type="dataset") == []
    with pytest.raises(HfHubHTTPError) as raised:
        api.get_paths_info(repo, [f"f{i}" for i in range(1001)], repo_type="dataset")
    assert raised.value.response.status_code == 413


def test_branches_tags_and_pull_requests(api: HfApi, repo: str, hub: LocalHub) -> None:
    api.upload_file(path_or_fileobj=b"main\n", path_in_repo="f.txt", repo_id=repo, repo_type="dataset")
    api.create_branch(repo, branch="feature/x", repo_type="dataset")
    api.create_branch(repo, branch="feature/x", repo_type="dataset", exist_ok=True)
    api.upload_file(
        path_or_fileobj=b"feature\n", path_in_repo="f.txt", repo_id=repo, repo_type="dataset", revision="feature/x"
    )
    pr = api.upload_file(
        path_or_fileobj=b"pr\n", path_in_repo="f.txt", repo_id=repo, repo_type="dataset", create_pr=True
    )
    assert pr.pr_revision == "refs/pr/1" and pr.pr_num == 1
    api.create_tag(repo, tag="v1.0", repo_type="dataset")

    def read(revision: str) -> bytes:
        return Path(
            hf_hub_download(repo, "f.txt", repo_type="dataset", revision=revision, token=ALICE_TOKEN)
        ).read_bytes()

    assert read("main") == b"main\n"
    assert read("feature/x") == b"feature\n"
    assert read("refs/pr/1") == b"pr\n"
    assert read("v1.0") == b"main\n"
    head = api.dataset_info(repo).sha
    assert api.dataset_info(repo, revision=head[:7]).sha == head  # short oids resolve

    refs = api.list_repo_refs(repo, repo_type="dataset", include_pull_requests=True)
    assert [b.name for b in refs.branches] == ["main", "feature/x"]
    assert [t.name for t in refs.tags] == ["v1.0"]
    assert [(p.ref, p.target_commit) for p in refs.pull_requests] == [("refs/pr/1", pr.oid)]
    assert hub.commit_count(repo) == 2  # the PR did not move main

    api.delete_tag(repo, tag="v1.0", repo_type="dataset")
    api.delete_branch(repo, branch="feature/x", repo_type="dataset")
    refs = api.list_repo_refs(repo, repo_type="dataset")
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []


def test_snapshot_download_allow_patterns(api: HfApi, repo: str, tmp_path: Path) -> None:
    api.create_commit(
        repo,
        repo_type="dataset",
        commit_message="files",
        operations=[
            CommitOperationAdd("data/a.parquet", b"PAR1 a"),
            CommitOperationAdd("data/b.parquet", b"PAR1 b"),
            CommitOperationAdd("notes.txt", b"notes"),
        ],
    )
    local = snapshot_download(
        repo, repo_type="dataset", allow_patterns=["data/*"], token=ALICE_TOKEN, local_dir=tmp_path
    )
    found = sorted(
        str(p.relative_to(local)) for p in Path(local).rglob("*") if p.is_file() and ".cache" not in p.parts
    )
    assert found == ["data/a.parquet", "data/b.parquet"]
    assert (Path(local) / "data/b.parquet").read_bytes() == b"PAR1 b"


def test_hffilesystem_glob_open_and_ranged_read(api: HfApi, repo: str) -> None:
    payload = bytes(range(256)) * 100
    api.upload_file(path_or_fileobj=payload, path_in_repo="data/x.bin", repo_id=repo, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"y", path_in_repo="data/y.txt", repo_id=repo, repo_type="dataset")
    fs = HfFileSystem(token=ALICE_TOKEN)
    assert fs.glob(f"datasets/{repo}/data/*.bin") == [f"datasets/{repo}/data/x.bin"]
    assert fs.info(f"datasets/{repo}/data/x.bin")["size"] == len(payload)
    assert sorted(fs.ls(f"datasets/{repo}/data", detail=False)) == [
        f"datasets/{repo}/data/x.bin",
        f"datasets/{repo}/data/y.txt",
    ]
    with fs.open(f"datasets/{repo}/data/x.bin", "rb", block_size=1000) as f:
        f.seek(1000)
        assert f.read(300) == payload[1000:1300]
        f.seek(len(payload) - 10)
        assert f.read(100) == payload[-10:]  # reads past EOF are clamped
    assert fs.cat_file(f"datasets/{repo}/data/x.bin", start=5, end=9) == payload[5:9]
    assert fs.read_bytes(f"datasets/{repo}/data/x.bin") == payload


def test_pandas_read_parquet(api: HfApi, repo: str) -> None:
    import pandas as pd

    frame = pd.DataFrame({"id": range(1000), "text": [f"row {i}" for i in range(1000)]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    api.upload_file(
        path_or_fileobj=buffer.getvalue(), path_in_repo="data/train.parquet", repo_id=repo, repo_type="dataset"
    )
    read = pd.read_parquet(f"hf://datasets/{repo}/data/train.parquet", storage_options={"token": ALICE_TOKEN})
    pd.testing.assert_frame_equal(read, frame)


def test_update_repo_settings_private(api: HfApi, repo: str) -> None:
    assert api.dataset_info(repo).private is False
    api.update_repo_settings(repo, repo_type="dataset", private=True)
    assert api.dataset_info(repo).private is True
    api.update_repo_settings(repo, repo_type="dataset", private=False)
    assert HfApi(token=False).dataset_info(repo).private is False  # readable anonymously again


def test_delete_repo(api: HfApi, repo: str) -> None:
    api.delete_repo(repo, repo_type="dataset")
    assert not api.repo_exists(repo, repo_type="dataset")
    api.delete_repo(repo, repo_type="dataset", missing_ok=True)
    api.create_repo(repo, repo_type="dataset")  # the name is free again
    assert [s.rfilename for s in api.dataset_info(repo).siblings] == [".gitattributes"]


def test_model_repos_have_no_url_prefix(api: HfApi) -> None:
    repo = f"{ALICE}/model-{os.urandom(4).hex()}"
    url = api.create_repo(repo)
    assert url == f"{os.environ['HF_ENDPOINT']}/{repo}"
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo)
    assert Path(hf_hub_download(repo, "config.json", token=ALICE_TOKEN)).read_bytes() == b"{}"
    assert api.model_info(repo).id == repo
    assert api.repo_exists(repo.upper())  # case-insensitive lookup
    assert api.model_info(repo.upper()).id == repo  # canonical case in answers


def test_resolve_headers_and_ranges(api: HfApi, repo: str, hub: LocalHub) -> None:
    data = os.urandom(5000)
    api.upload_file(path_or_fileobj=data, path_in_repo="r.bin", repo_id=repo, repo_type="dataset")
    api.upload_file(
        path_or_fileobj=b"hello world\n", path_in_repo="dir/hello world.txt", repo_id=repo, repo_type="dataset"
    )
    sha = hashlib.sha256(data).hexdigest()
    base = f"{hub.url}/datasets/{repo}/resolve/main"
    with httpx.Client(headers={"authorization": f"Bearer {ALICE_TOKEN}"}) as client:
        head = client.head(f"{base}/r.bin")
        assert head.status_code == 200
        assert head.headers["content-length"] == "5000"  # the real size, also on HEAD
        assert head.headers["x-linked-etag"] == f'"{sha}"' and head.headers["etag"] == f'"{sha}"'
        assert head.headers["x-linked-size"] == "5000"
        assert head.headers["x-repo-commit"] == api.dataset_info(repo).sha
        assert head.headers["accept-ranges"] == "bytes" and head.headers["x-request-id"]

        ranged = client.get(f"{base}/r.bin", headers={"Range": "bytes=100-5242999"})  # asks past EOF
        assert ranged.status_code == 206 and ranged.content == data[100:]
        assert ranged.headers["content-range"] == "bytes 100-4999/5000"
        assert client.get(f"{base}/r.bin", headers={"Range": "bytes=-10"}).content == data[-10:]
        assert client.get(f"{base}/r.bin", headers={"Range": "bytes=10-19"}).content == data[10:20]
        beyond = client.get(f"{base}/r.bin", headers={"Range": "bytes=5000-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == "bytes */5000"

        regular = client.get(f"{base}/dir/hello%20world.txt")
        assert regular.content == b"hello world\n" and regular.headers["etag"] == f'"{HELLO_OID}"'
        assert "x-linked-etag" not in regular.headers
        missing = client.head(f"{base}/nope.txt")
        assert missing.status_code == 404 and missing.headers["x-error-code"] == "EntryNotFound"
        assert missing.headers["x-repo-commit"] == head.headers["x-repo-commit"]
        pr_style = client.get(f"{hub.url}/datasets/{repo}/resolve/{head.headers['x-repo-commit']}/r.bin")
        assert pr_style.content == data


def test_repos_on_disk_are_git_repositories(api: HfApi, repo: str, hub: LocalHub) -> None:
    api.upload_file(
        path_or_fileobj=b"hello world\n", path_in_repo="a/hello.txt", repo_id=repo, repo_type="dataset"
    )
    api.upload_file(path_or_fileobj=b"\0" * 100, path_in_repo="b.bin", repo_id=repo, repo_type="dataset")
    git_dir = hub.data_dir / "repos" / "datasets" / repo.lower()
    subprocess.run(["git", "--git-dir", str(git_dir), "fsck", "--strict"], check=True, capture_output=True)
    log = subprocess.run(
        ["git", "--git-dir", str(git_dir), "log", "--format=%H %s", "main"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in log] == commits(api, repo)
    shown = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", "main:a/hello.txt"], check=True, capture_output=True
    ).stdout
    assert shown == b"hello world\n"
    pointer = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", "main:b.bin"], check=True, capture_output=True
    )
    assert pointer.stdout.startswith(b"version https://git-lfs.github.com/spec/v1\noid sha256:")
