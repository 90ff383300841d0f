"""Unit tests of localhub's pure parts: git hashing, attribute/ignore matching, ranges, tickets, bodies."""

from __future__ import annotations

import hashlib
import io
import subprocess
from email.message import Message
from pathlib import Path

import pytest

import localhub.lfs as lfs_module
from localhub.attributes import GitAttributes, GitIgnore, default_gitattributes, lfs_attributes_line
from localhub.cards import card_data, validate_card
from localhub.errors import HubError
from localhub.gitobjects import (
    MODE_DIR,
    MODE_FILE,
    Commit,
    LfsPointer,
    TreeEntry,
    blob_oid,
    decode_commit,
    decode_tree,
    encode_tree,
    object_id,
    parse_lfs_pointer,
)
from localhub.httputil import BodyReader, parse_range
from localhub.lfs import MultipartUploads, Ticket, UploadTickets
from localhub.objectstore import LfsStore
from localhub.routes import match


def test_blob_oid() -> None:
    assert blob_oid(b"hello world\n") == "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"
    assert blob_oid(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_lfs_pointer() -> None:
    pointer = LfsPointer("a" * 64, 10810000)
    assert pointer.pointer_size == 125 + len("10810000") == len(pointer.encode())
    assert parse_lfs_pointer(pointer.encode()) == pointer
    assert parse_lfs_pointer(b"hello") is None


def test_tree_and_commit_ids_match_git(tmp_path: Path) -> None:
    git = ["git", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    blob = blob_oid(b"x\n")
    sub = object_id("tree", encode_tree([TreeEntry("f", MODE_FILE, blob)]))
    # "a.b" sorts before the directory "a" (compared as "a/") in git's order.
    entries = [TreeEntry("a", MODE_DIR, sub), TreeEntry("a.b", MODE_FILE, blob), TreeEntry("a-", MODE_FILE, blob)]
    body = encode_tree(entries)
    assert [e.name for e in decode_tree(body)] == ["a-", "a.b", "a"]
    for kind, data in (("blob", b"x\n"), ("tree", encode_tree([TreeEntry("f", MODE_FILE, blob)])), ("tree", body)):
        written = subprocess.run(
            [*git, "hash-object", "-w", "--stdin", "-t", kind], input=data, capture_output=True, check=True
        )
        assert written.stdout.decode().strip() == object_id(kind, data)
    commit = Commit(object_id("tree", body), (), "alice", "alice@x", 1700000000, "title", "line 1\nline 2")
    assert decode_commit(commit.encode()) == commit
    hashed = subprocess.run(
        [*git, "hash-object", "-t", "commit", "--stdin"], input=commit.encode(), capture_output=True, check=True
    )
    assert hashed.stdout.decode().strip() == object_id("commit", commit.encode())


@pytest.mark.parametrize(
    ("path", "lfs"),
    [
        ("model.safetensors", True),
        ("deep/dir/x.parquet", True),
        ("saved_model/a/b/variables.data", True),
        ("other/saved_model/x", False),  # the pattern has a slash: anchored at the root
        ("logs/events.out.tfevents.123", True),
        ("archive.tar.gz", True),
        ("notes.txt", False),
        ("image.png", True),  # dataset variant
    ],
)
def test_default_gitattributes(path: str, lfs: bool) -> None:
    assert GitAttributes(default_gitattributes("dataset")).is_lfs(path) is lfs


def test_gitattributes_rules() -> None:
    attrs = GitAttributes(
        "*.txt filter=lfs\nkeep/*.txt -filter\ndocs/**/*.md filter=lfs\n"
        + lfs_attributes_line("odd [name]*.dat")
        + "\n"
        + lfs_attributes_line("with space.csv")
    )
    assert attrs.is_lfs("a/b.txt") and not attrs.is_lfs("keep/b.txt")  # last matching line wins
    assert attrs.is_lfs("docs/x.md") and attrs.is_lfs("docs/a/b/x.md") and not attrs.is_lfs("x.md")
    assert attrs.is_lfs("odd [name]*.dat") and not attrs.is_lfs("odd n.dat")
    assert attrs.is_lfs("with space.csv")
    assert not GitAttributes(default_gitattributes("model")).is_lfs("image.png")


def test_gitignore_rules() -> None:
    ignore = GitIgnore("*.log\n!keep.log\nbuild/\n/root-only.txt\nnested/*\n# comment\n")
    assert ignore.is_ignored("debug.log") and ignore.is_ignored("a/b/debug.log")
    assert not ignore.is_ignored("keep.log")
    assert ignore.is_ignored("build/x.bin") and ignore.is_ignored("src/build/x.bin")
    assert not ignore.is_ignored("build")  # a file named like the directory pattern
    assert ignore.is_ignored("root-only.txt") and not ignore.is_ignored("sub/root-only.txt")
    assert ignore.is_ignored("nested/file") and ignore.is_ignored("nested/deeper/file")
    assert not ignore.is_ignored("readme.md")


def test_parse_range() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-5242999", 100) == (90, 99)
    assert parse_range("bytes=95-", 100) == (95, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=-1000", 100) == (0, 99)
    assert parse_range("bytes=5-1", 100) is None  # invalid: ignored
    assert parse_range("bytes=0-1,5-6", 100) is None  # multi-range: ignored
    assert parse_range("items=0-1", 100) is None
    for unsatisfiable in ("bytes=100-", "bytes=100-200", "bytes=-0"):
        with pytest.raises(HubError) as raised:
            parse_range(unsatisfiable, 100)
        assert raised.value.status == 416 and raised.value.headers["Content-Range"] == "bytes */100"


def test_chunked_body_reader() -> None:
    raw = b"5\r\nhello\r\n7;ext=1\r\n world\n\r\n3\r\nabc\r\n0\r\nTrailer: x\r\n\r\nNEXT REQUEST"
    headers = Message()
    headers["Transfer-Encoding"] = "chunked"
    stream = io.BytesIO(raw)
    body = BodyReader(stream, headers)
    assert body.readline() == b"hello world\n"  # a line spanning two chunks
    assert body.read() == b"abc"
    assert body.read() == b"" and body.exhausted
    assert body.bytes_read == 15
    assert stream.read() == b"NEXT REQUEST"  # nothing of the next request was consumed


@pytest.mark.parametrize("size_line", [b"zz", b"-5", b""])
def test_chunked_body_with_broken_framing_is_400_and_not_skipped(size_line: bytes) -> None:
    """A chunk size that is not one (or a body cut short) is a 400; the rest of the body cannot be found, so
    ``drain`` says the connection must close instead of reading on (or raising) while the answer waits."""
    headers = Message()
    headers["Transfer-Encoding"] = "chunked"
    body = BodyReader(io.BytesIO(size_line + (b"\r\nhello\r\n0\r\n\r\n" if size_line else b"")), headers)
    with pytest.raises(HubError) as raised:
        body.read()
    assert raised.value.status == 400
    assert body.drain(1 << 20) is False


def test_a_part_stored_again_is_never_left_with_the_etag_of_other_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash while storing a part again (here: the rename fails) leaves it "not uploaded", not with an ETag of
    bytes that are not the part's."""
    uploads = MultipartUploads(tmp_path / "multipart", LfsStore(tmp_path / "lfs", tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    first, second = b"a" * 8, b"b" * 8
    ticket = Ticket("dataset", "alice/ds", hashlib.sha256(second).hexdigest(), 8, 8, 2**40)
    uploads.put_part("token", ticket, 1, [first])

    def crash(*args: object) -> None:
        raise OSError("disk gone")

    with monkeypatch.context() as patched:
        patched.setattr(lfs_module.os, "replace", crash)
        with pytest.raises(OSError):
            uploads.put_part("token", ticket, 1, [second])
    etag = f'"{hashlib.sha256(second).hexdigest()}"'
    with pytest.raises(HubError, match="Part 1 was not uploaded"):
        uploads.complete("token", ticket, {"parts": [{"partNumber": 1, "etag": etag}]})
    assert uploads.put_part("token", ticket, 1, [second]) == etag  # sent again, it completes
    uploads.complete("token", ticket, {"parts": [{"partNumber": 1, "etag": etag}]})


def test_upload_tickets(tmp_path: Path) -> None:
    tickets = UploadTickets(tmp_path / "secret")
    token = tickets.issue("dataset", "alice/ds", "a" * 64, 10, 0)
    assert "/" not in token
    assert tickets.verify(token, "a" * 64).repo_id == "alice/ds"
    assert UploadTickets(tmp_path / "secret").verify(token, "a" * 64).size == 10  # survives a restart
    with pytest.raises(HubError):
        tickets.verify(token, "b" * 64)
    with pytest.raises(HubError):
        UploadTickets(tmp_path / "other-secret").verify(token, "a" * 64)


def test_routing_on_raw_paths() -> None:
    tree = match("GET", "/api/datasets/alice/ds/tree/refs%2Fpr%2F1/data%2Fx")
    assert (tree.name, tree.repo_id, tree.params) == ("tree", "alice/ds", {"rev": "refs/pr/1", "path": "data/x"})
    resolve = match("HEAD", "/datasets/alice/ds/resolve/refs/pr/1/data/a%20b.parquet")
    assert (resolve.name, resolve.endpoint, resolve.params) == (
        "resolve",
        "resolve",
        {"rev": "refs/pr/1", "path": "data/a b.parquet"},
    )
    model = match("GET", "/alice/m/resolve/main/config.json")
    assert (model.repo_type, model.repo_id) == ("model", "alice/m")
    assert match("POST", "/datasets/alice/ds.git/info/lfs/objects/batch").name == "lfs-batch"
    assert match("POST", "/api/datasets/alice/ds/branch/feature%2Fx").params == {"rev": "feature/x"}
    assert match("DELETE", "/api/datasets/alice/ds/commit/main").endpoint == "method_not_allowed"
    assert match("GET", "/info", host="datasets-server.127.0.0.1:1").name == "other"


def test_cards() -> None:
    assert card_data("---\nlicense: mit\n---\n# x") == {"license": "mit"}
    assert card_data("# no front matter") is None
    assert validate_card("---\na: [b\n---\n")[0]
    assert validate_card("---\n- a list\n---\n")[0]
    assert validate_card("no yaml") == ([], ["Empty or missing yaml metadata in repo card"])
    assert validate_card("---\nconfigs:\n- config_name: a\n  data_files: x.csv\n---\n") == ([], [])
    assert validate_card("---\nlicense: cc-by-4.0\n---\n") == ([], [])
    assert validate_card("---\nlicense: [mit, apache-2.0]\n---\n") == ([], [])
    [error] = validate_card("---\nlicense: [mit, my-own-license]\n---\n")[0]
    assert error.startswith('"license" must be one of [afl-3.0, agpl-3.0,')
    assert error.endswith("got 'my-own-license'")
    assert validate_card("---\nlicense: {name: mine}\n---\n")[0]  # refused, not a crash
