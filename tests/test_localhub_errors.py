"""localhub's error model (hub-protocol §3) as the real client sees it, plus raw-HTTP edge cases of §5."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import httpx
import pytest
from conftest import ALICE, ALICE_TOKEN, BOB, BOB_TOKEN
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from localhub import LocalHub


@pytest.fixture
def repo(api: HfApi, repo_id: str) -> str:
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"content\n", path_in_repo="file.txt", repo_id=repo_id, repo_type="dataset")
    return repo_id


@pytest.fixture
def private_repo(api: HfApi, repo_id: str) -> str:
    api.create_repo(repo_id, repo_type="dataset", private=True)
    api.upload_file(path_or_fileobj=b"secret\n", path_in_repo="file.txt", repo_id=repo_id, repo_type="dataset")
    return repo_id


def _commit(
    hub: LocalHub, repo: str, *lines: dict[str, object], token: str | None = ALICE_TOKEN
) -> httpx.Response:
    """POST a raw NDJSON commit (to test what the client validates away before sending)."""
    body = "".join(json.dumps(line) + "\n" for line in [{"key": "header", "value": {"summary": "raw"}}, *lines])
    headers = {"content-type": "application/x-ndjson"} | ({"authorization": f"Bearer {token}"} if token else {})
    return httpx.post(f"{hub.url}/api/datasets/{repo}/commit/main", content=body.encode(), headers=headers)


def test_bad_token_is_401_without_error_code(hub: LocalHub, repo: str) -> None:
    with pytest.raises(HfHubHTTPError) as raised:
        HfApi(token="hf_not_a_token").whoami()
    assert raised.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as raised:
        HfApi(token="hf_not_a_token").dataset_info(repo)
    assert not isinstance(raised.value, RepositoryNotFoundError)
    assert raised.value.response.headers["x-error-message"] == "Invalid credentials in Authorization header"
    assert "x-error-code" not in raised.value.response.headers


def test_missing_repo(api: HfApi) -> None:
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info(f"{ALICE}/does-not-exist")
    assert not api.repo_exists(f"{ALICE}/does-not-exist", repo_type="dataset")


@pytest.mark.parametrize("token", [BOB_TOKEN, False], ids=["bob", "anonymous"])
def test_private_repo_is_invisible_to_others(private_repo: str, token: str | bool) -> None:
    other = HfApi(token=token)
    with pytest.raises(RepositoryNotFoundError):
        other.dataset_info(private_repo)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(private_repo, "file.txt", repo_type="dataset", token=token)
    with pytest.raises(RepositoryNotFoundError):
        other.list_repo_files(private_repo, repo_type="dataset")
    assert HfApi(token=ALICE_TOKEN).dataset_info(private_repo).private is True


def test_writing_to_another_users_repo_is_403(repo: str) -> None:
    bob = HfApi(token=BOB_TOKEN)
    assert bob.dataset_info(repo).id == repo  # public: bob can read
    with pytest.raises(HfHubHTTPError) as raised:
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="bob.txt", repo_id=repo, repo_type="dataset")
    assert raised.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as raised:
        bob.delete_repo(repo, repo_type="dataset")
    assert raised.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as raised:
        bob.create_repo(f"{ALICE}/by-bob", repo_type="dataset")
    assert raised.value.response.status_code == 403


def test_anonymous_cannot_write(hub: LocalHub, repo: str) -> None:
    response = _commit(hub, repo, token=None)
    assert response.status_code == 401
    created = httpx.post(f"{hub.url}/api/repos/create", json={"name": "x", "type": "dataset"})
    assert created.status_code == 401


def test_bob_can_open_a_pull_request_on_a_public_repo(repo: str) -> None:
    pr = HfApi(token=BOB_TOKEN).upload_file(
        path_or_fileobj=b"suggestion", path_in_repo="bob.txt", repo_id=repo, repo_type="dataset", create_pr=True
    )
    assert pr.pr_revision == "refs/pr/1"
    assert "bob.txt" not in HfApi(token=ALICE_TOKEN).list_repo_files(repo, repo_type="dataset")


def test_the_author_of_a_pull_request_pushes_more_commits_to_it(repo: str) -> None:
    bob = HfApi(token=BOB_TOKEN)
    bob.upload_file(
        path_or_fileobj=b"one", path_in_repo="a.txt", repo_id=repo, repo_type="dataset", create_pr=True
    )
    bob.upload_file(  # an LFS file too: the LFS batch names the PR's ref
        path_or_fileobj=b"\0" * 2048, path_in_repo="b.bin", repo_id=repo, repo_type="dataset", revision="refs/pr/1"
    )
    assert {"a.txt", "b.bin"} <= set(bob.list_repo_files(repo, repo_type="dataset", revision="refs/pr/1"))
    alice_pr = HfApi(token=ALICE_TOKEN).upload_file(
        path_or_fileobj=b"two", path_in_repo="c.txt", repo_id=repo, repo_type="dataset", create_pr=True
    )
    for revision in ("main", alice_pr.pr_revision):  # not the branch, nor another user's pull request
        with pytest.raises(HfHubHTTPError) as raised:
            bob.upload_file(
                path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo, repo_type="dataset", revision=revision
            )
        assert raised.value.response.status_code == 403


def test_missing_revision(api: HfApi, repo: str) -> None:
    with pytest.raises(RevisionNotFoundError):
        api.dataset_info(repo, revision="nope")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, "file.txt", repo_type="dataset", revision="nope", token=ALICE_TOKEN)
    with pytest.raises(RevisionNotFoundError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id=repo, repo_type="dataset", revision="nope")
    assert not api.revision_exists(repo, "nope", repo_type="dataset")


def test_missing_file(api: HfApi, repo: str) -> None:
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "missing.txt", repo_type="dataset", token=ALICE_TOKEN)
    assert not api.file_exists(repo, "missing.txt", repo_type="dataset")
    assert api.file_exists(repo, "file.txt", repo_type="dataset")
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(repo, path_in_repo="no-such-dir", repo_type="dataset"))


def test_deleting_a_missing_file(api: HfApi, repo: str) -> None:
    with pytest.raises(EntryNotFoundError, match="A file with this name doesn't exist"):
        api.delete_file("missing.txt", repo_id=repo, repo_type="dataset")


def test_stale_parent_commit_is_412(api: HfApi, repo: str) -> None:
    stale = api.dataset_info(repo).sha
    api.upload_file(path_or_fileobj=b"newer", path_in_repo="newer.txt", repo_id=repo, repo_type="dataset")
    with pytest.raises(HfHubHTTPError) as raised:
        api.create_commit(
            repo,
            repo_type="dataset",
            commit_message="late",
            operations=[CommitOperationAdd("late.txt", b"late")],
            parent_commit=stale,
        )
    assert raised.value.response.status_code == 412
    api.create_commit(  # the right parent is accepted
        repo,
        repo_type="dataset",
        commit_message="on time",
        operations=[CommitOperationDelete("newer.txt")],
        parent_commit=api.dataset_info(repo).sha,
    )


def test_invalid_readme_yaml(api: HfApi, repo: str) -> None:
    with pytest.raises(ValueError, match=r"Invalid metadata in README\.md"):
        api.upload_file(
            path_or_fileobj=b"---\nconfigs: [unclosed\n---\n",
            path_in_repo="README.md",
            repo_id=repo,
            repo_type="dataset",
        )
    with pytest.raises(ValueError, match="config_name"):
        api.upload_file(
            path_or_fileobj=b"---\nconfigs:\n- data_files: x.csv\n---\n",
            path_in_repo="README.md",
            repo_id=repo,
            repo_type="dataset",
        )


def test_commit_payload_validation(hub: LocalHub, repo: str) -> None:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    for bad in ["../x", "/abs", "a//b", "a/.git/config", "dir\\file", "a/./b"]:
        response = _commit(
            hub, repo, {"key": "file", "value": {"path": bad, "content": b64(b"x"), "encoding": "base64"}}
        )
        assert response.status_code == 422, bad
    missing_lfs = _commit(
        hub, repo, {"key": "lfsFile", "value": {"path": "x.bin", "algo": "sha256", "oid": "a" * 64, "size": 1}}
    )
    assert missing_lfs.status_code == 400 and "does not exist" in missing_lfs.json()["error"]
    missing = _commit(hub, repo, {"key": "deletedFolder", "value": {"path": "nope/"}})
    assert missing.status_code == 404 and missing.headers["x-error-code"] == "EntryNotFound"
    unknown_branch = httpx.post(
        f"{hub.url}/api/datasets/{repo}/commit/nope",
        content=b'{"key":"header","value":{"summary":"x"}}\n',
        headers={"authorization": f"Bearer {ALICE_TOKEN}"},
    )
    assert unknown_branch.headers["x-error-code"] == "RevisionNotFound"

    # A header-only commit succeeds and creates a commit with the same tree.
    before = hub.commit_count(repo)
    empty = _commit(hub, repo)
    assert empty.status_code == 200 and len(empty.json()["commitOid"]) == 40
    assert empty.json()["commitUrl"].endswith(f"/datasets/{repo}/commit/{empty.json()['commitOid']}")
    assert hub.commit_count(repo) == before + 1

    # Chunked request bodies are accepted.
    chunked = httpx.post(
        f"{hub.url}/api/datasets/{repo}/commit/main",
        content=iter(
            [
                b'{"key":"header","value":{"summary":"chunked"}}\n{"key":"file","value":',
                b'{"path":"c.txt","content":"Yw=="}}\n',
            ]
        ),
        headers={"authorization": f"Bearer {ALICE_TOKEN}"},
    )
    assert chunked.status_code == 200, chunked.text
    assert Path(hf_hub_download(repo, "c.txt", repo_type="dataset", token=ALICE_TOKEN)).read_bytes() == b"c"


def test_refs_errors(api: HfApi, repo: str) -> None:
    with pytest.raises(HfHubHTTPError) as raised:
        api.create_branch(repo, branch="main", repo_type="dataset")
    assert raised.value.response.status_code == 409
    with pytest.raises(HfHubHTTPError) as raised:
        api.delete_branch(repo, branch="main", repo_type="dataset")
    assert raised.value.response.status_code == 403
    with pytest.raises(RevisionNotFoundError):
        api.delete_branch(repo, branch="nope", repo_type="dataset")
    with pytest.raises(RevisionNotFoundError):
        api.create_branch(repo, branch="b", revision="nope", repo_type="dataset")
    with pytest.raises(HfHubHTTPError) as raised:
        api.create_branch(repo, branch="refs/pr/5", repo_type="dataset")
    assert raised.value.response.status_code == 400
    api.create_tag(repo, tag="v1", repo_type="dataset")
    api.create_tag(repo, tag="v1", repo_type="dataset", exist_ok=True)
    with pytest.raises(HfHubHTTPError) as raised:
        api.create_tag(repo, tag="with space", repo_type="dataset")
    assert raised.value.response.status_code == 400
    with pytest.raises(RevisionNotFoundError):
        api.delete_tag(repo, tag="v2", repo_type="dataset")


def test_misc_endpoints(hub: LocalHub) -> None:
    xet = httpx.get(
        f"{hub.url}/api/datasets/{ALICE}/x/xet-write-token/main",
        headers={"authorization": f"Bearer {ALICE_TOKEN}"},
    )
    assert xet.status_code == 400 and "HF_HUB_DISABLE_XET" in xet.json()["error"]
    assert httpx.get(f"{hub.url}/api/agent-harnesses").json() == {"standardEnvVars": [], "harnesses": {}}
    probe = httpx.get(f"{hub.url}/info?dataset=a/b", headers={"Host": f"datasets-server.127.0.0.1:{hub.port}"})
    assert probe.status_code == 404
    unknown = httpx.get(f"{hub.url}/nothing/here")
    assert unknown.status_code == 404 and unknown.json()["error"] and unknown.headers["x-request-id"]
    whoami = httpx.get(f"{hub.url}/api/whoami-v2", headers={"authorization": f"Bearer {BOB_TOKEN}"})
    assert whoami.json()["name"] == BOB
    assert httpx.post(f"{hub.url}/api/validate-yaml", json={"content": "# no yaml"}).json()["warnings"]


def test_lfs_upload_urls_are_bound_to_their_object(hub: LocalHub, repo: str) -> None:
    import hashlib

    data = b"some lfs content"
    oid = hashlib.sha256(data).hexdigest()
    batch = httpx.post(
        f"{hub.url}/datasets/{repo}.git/info/lfs/objects/batch",
        json={
            "operation": "upload",
            "transfers": ["basic"],
            "objects": [{"oid": oid, "size": len(data)}],
            "ref": {"name": "main"},
        },
        headers={"authorization": f"Bearer {ALICE_TOKEN}"},
    ).json()
    href = batch["objects"][0]["actions"]["upload"]["href"]
    assert httpx.put(href, content=b"other content!!!").status_code == 400  # wrong sha256
    assert httpx.put(href.replace(oid, "b" * 64), content=data).status_code == 403  # ticket is for another oid
    assert httpx.put(href[:-3] + "xyz", content=data).status_code == 403  # tampered signature
    assert httpx.put(href, content=data).status_code == 200
    verify = batch["objects"][0]["actions"]["verify"]["href"]
    ok = httpx.post(
        verify, json={"oid": oid, "size": len(data)}, headers={"authorization": f"Bearer {ALICE_TOKEN}"}
    )
    assert ok.status_code == 200


def _raw_exchange(hub: LocalHub, request: bytes) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes it (10 s at most)."""
    with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_broken_framing_is_answered_400_and_the_connection_closed(hub: LocalHub) -> None:
    """A chunk size that is not hex, or a Content-Length that is not a number (also on the admin routes): a 400
    and a closed connection, not a dead handler thread and a client left waiting."""
    for request in (
        b"POST /api/validate-yaml HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n",
        b"PUT /_localhub/config HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n{}",
    ):
        status_line, _, rest = _raw_exchange(hub, request).partition(b"\r\n")
        assert status_line.split()[1] == b"400", (request, status_line)
        assert b"Connection: close" in rest


def test_json_bodies_must_be_objects_and_fields_well_typed(hub: LocalHub, repo: str) -> None:
    auth = {"authorization": f"Bearer {ALICE_TOKEN}"}
    paths_info = f"{hub.url}/api/datasets/{repo}/paths-info/main"
    for body in ([1], "file.txt", {"paths": 5}):
        answer = httpx.post(paths_info, json=body, headers=auth)
        assert answer.status_code == 400, (body, answer.text)
    assert httpx.post(paths_info, json={"paths": "file.txt"}, headers=auth).json()[0]["path"] == "file.txt"
    create = f"{hub.url}/api/repos/create"
    refused = httpx.post(
        create, json={"name": "bogus-vis", "type": "dataset", "visibility": "bogus"}, headers=auth
    )
    assert refused.status_code == 400 and "visibility" in refused.json()["error"]
    assert httpx.post(create, json=["name"], headers=auth).status_code == 400


def test_a_refused_config_change_changes_nothing(hub: LocalHub) -> None:
    config_url = f"{hub.url}/_localhub/config"
    before = httpx.get(config_url).json()
    assert httpx.put(config_url, json={"page_size": 7, "bogus": 1}).status_code == 400
    assert httpx.get(config_url).json() == before
