"""Bad input is refused with an error that names the problem, before anything reaches the Hub.

Each case runs the real flow (``push_dataset``, ``generate_and_push``) or the config loader, and asserts the error
type, a fragment of the message, and which Hub requests were made: none where validation can catch the problem
without the network; only ``whoami`` (and ``repo-create``) where only the Hub can judge the token.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ALICE_TOKEN, BOB_TOKEN, HUB_URL
from factories import make_dataset_folder
from huggingface_hub.errors import HfHubHTTPError
from prefect.exceptions import ParameterTypeError
from pydantic import SecretStr
from reliability_support import (
    DESCRIPTION,
    record_figures,
    repo_files,
    seed_repo,
    titles,
)

from tasks.credentials import InvalidTokenError, MissingTokenError
from tasks.dataset_folder import DatasetFolderError
from tasks.generation.errors import ConfigError, TemplateSecurityError, UnsupportedConfigError
from tasks.generation.llm import MissingAPIKeyError
from tasks.validation import InvalidParameterError

pytestmark = pytest.mark.usefixtures("prefect_api", "hub")

REFUSED: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    record_figures("inputs", {"cases_refused": len(REFUSED), "cases": sorted(REFUSED)})


# ------------------------------------------------------------------------------------------------ folder builders

Builder = Callable[[Path], Path]


def good(root: Path) -> Path:
    return make_dataset_folder(root / "ds", batches=2, rows_per_batch=4, images=1)


def no_parquet_dir(root: Path) -> Path:
    (root / "ds").mkdir()
    (root / "ds" / "metadata.json").write_text("{}")
    return root / "ds"


def empty_parquet_dir(root: Path) -> Path:
    (root / "ds" / "parquet-files").mkdir(parents=True)
    return root / "ds"


def zero_byte_parquet(root: Path) -> Path:
    folder = good(root)
    (folder / "parquet-files" / "batch_00001.parquet").write_bytes(b"")
    return folder


def corrupt_parquet(root: Path) -> Path:
    folder = good(root)
    (folder / "parquet-files" / "batch_00001.parquet").write_bytes(b"PAR1 definitely not parquet PAR1")
    return folder


def no_columns_parquet(root: Path) -> Path:
    folder = good(root)
    pq.write_table(pa.table({}), folder / "parquet-files" / "batch_00001.parquet")
    return folder


def schema_mismatch(root: Path) -> Path:
    folder = good(root)
    table = pq.read_table(folder / "parquet-files" / "batch_00001.parquet")
    pq.write_table(
        table.set_column(0, "id", pa.array([str(v) for v in table["id"].to_pylist()])),
        folder / "parquet-files" / "batch_00001.parquet",
    )
    return folder


def processor_schema_mismatch(root: Path) -> Path:
    folder = good(root)
    pq.write_table(pa.table({"x": [1]}), folder / "processors-files" / "conversations" / "batch_00001.parquet")
    return folder


def write(name: str, content: bytes) -> Builder:
    def build(root: Path) -> Path:
        folder = good(root)
        (folder / name).write_bytes(content)
        return folder

    build.__name__ = f"write_{name}"
    return build


def escaping_symlink(kind: str) -> Builder:
    def build(root: Path) -> Path:
        folder = good(root)
        outside = root / "outside"
        outside.mkdir()
        (outside / "secret.png").write_bytes(b"private")
        pq.write_table(pa.table({"a": [1]}), outside / "batch_00000.parquet")
        if kind == "absolute file":
            os.symlink(outside / "secret.png", folder / "images" / "avatar" / "leak.png")
        elif kind == "dotdot file":
            os.symlink("../../../outside/secret.png", folder / "images" / "avatar" / "leak.png")
        elif kind == "folder":
            os.symlink(outside, folder / "processors-files" / "stolen")
        else:  # the data folder itself
            os.rename(folder / "parquet-files", outside / "parquet-files")
            os.symlink(outside / "parquet-files", folder / "parquet-files")
        return folder

    build.__name__ = f"symlink_{kind.replace(' ', '_')}"
    return build


def processor_named(name: str, single_file: bool) -> Builder:
    def build(root: Path) -> Path:
        folder = make_dataset_folder(
            root / "ds", batches=1, rows_per_batch=4, processor_dir=None, processor_file=None
        )
        procs = folder / "processors-files"
        procs.mkdir(exist_ok=True)
        if single_file:
            pq.write_table(pa.table({"a": [1]}), procs / f"{name}.parquet")
        else:
            (procs / name).mkdir()
            pq.write_table(pa.table({"a": [1]}), procs / name / "batch_00000.parquet")
        return folder

    build.__name__ = f"processor_{name}"
    return build


def non_utf8_name(root: Path) -> Path:
    folder = good(root)
    path = os.path.join(os.fsencode(folder / "images" / "avatar"), b"caf\xe9.png")
    with open(path, "wb") as fh:
        fh.write(b"x")
    return folder


def huge_name(root: Path) -> Path:
    folder = good(root)
    deep = folder / "images" / "avatar"
    for i in range(5):
        deep = deep / ("d" * 220 + str(i))
        deep.mkdir()
    (deep / "x.png").write_bytes(b"x")
    return folder


def image_under_a_cache_folder(root: Path) -> Path:
    # huggingface_hub refuses to commit any path with a '.cache' (or '.git') segment (its FORBIDDEN_FOLDERS).
    folder = good(root)
    (folder / "images" / "avatar" / ".cache").mkdir()
    (folder / "images" / "avatar" / ".cache" / "thumb.png").write_bytes(b"x")
    return folder


def a_file(root: Path) -> Path:
    (root / "ds.parquet").write_bytes(b"x")
    return root / "ds.parquet"


def missing(root: Path) -> Path:
    return root / "nowhere"


# ------------------------------------------------------------------------------------------------ push cases

NONE: frozenset[str] = frozenset()
PUSH_CASES: list[tuple[str, Builder, dict[str, Any], type[BaseException], str, frozenset[str]]] = [
    # (id, folder, push arguments, error type, message fragment, Hub routes allowed)
    ("repo id without slash", good, {"repo_id": "greetings"}, InvalidParameterError, "exactly one '/'", NONE),
    ("repo id with two slashes", good, {"repo_id": "alice/a/b"}, InvalidParameterError, "exactly one '/'", NONE),
    ("repo id with ..", good, {"repo_id": "alice/a..b"}, InvalidParameterError, "'..'", NONE),
    ("repo id with --", good, {"repo_id": "alice/a--b"}, InvalidParameterError, "'--'", NONE),
    ("repo id too long", good, {"repo_id": "alice/" + "x" * 97}, InvalidParameterError, "longer than 96", NONE),
    ("repo id empty", good, {"repo_id": ""}, InvalidParameterError, "repo_id is empty", NONE),
    ("repo id with a space", good, {"repo_id": "alice/my data"}, InvalidParameterError, "letters, digits", NONE),
    ("empty description", good, {"description": "  \n "}, InvalidParameterError, "description is empty", NONE),
    ("no token anywhere", good, {"token": None}, MissingTokenError, "No Hugging Face token found", NONE),
    (
        "token with a character no header may hold",
        good,
        {"token": SecretStr("hf_pasted\twith_a_tab")},
        InvalidTokenError,
        "holds characters a token cannot have",
        NONE,
    ),
    (
        "invalid token",
        good,
        {"token": SecretStr("hf_not_a_real_token_000000")},
        PermissionError,
        f"The Hub at {HUB_URL} rejected the token (401). Create a token with write access at the Hub that "
        "HF_ENDPOINT names",
        frozenset({"whoami"}),
    ),
    (
        "token without write access",
        good,
        {"token": SecretStr(BOB_TOKEN)},
        HfHubHTTPError,
        "don't have the rights to create a repo under the namespace 'alice'",
        frozenset({"whoami", "repo-create", "repo-info"}),
    ),
    ("missing folder", missing, {}, DatasetFolderError, "does not exist", NONE),
    ("file instead of folder", a_file, {}, DatasetFolderError, "is a file", NONE),
    ("no parquet-files folder", no_parquet_dir, {}, DatasetFolderError, "has no parquet-files/ folder", NONE),
    ("no parquet files", empty_parquet_dir, {}, DatasetFolderError, "holds no .parquet files", NONE),
    (
        "empty parquet file",
        zero_byte_parquet,
        {},
        DatasetFolderError,
        "batch_00001.parquet is not a readable parquet file",
        NONE,
    ),
    (
        "corrupt parquet file",
        corrupt_parquet,
        {},
        DatasetFolderError,
        "batch_00001.parquet is not a readable parquet file",
        NONE,
    ),
    ("parquet without columns", no_columns_parquet, {}, DatasetFolderError, "has no columns", NONE),
    ("schema mismatch between batches", schema_mismatch, {}, DatasetFolderError, "column 'id' is string", NONE),
    (
        "schema mismatch in a processor",
        processor_schema_mismatch,
        {},
        DatasetFolderError,
        "in processor 'conversations'",
        NONE,
    ),
    (
        "malformed metadata.json",
        write("metadata.json", b"{'single': 'quotes'}"),
        {},
        DatasetFolderError,
        "metadata.json is not valid JSON",
        NONE,
    ),
    (
        "metadata.json not an object",
        write("metadata.json", b"[1, 2, 3]"),
        {},
        DatasetFolderError,
        "metadata.json must hold a JSON object",
        NONE,
    ),
    (
        "malformed builder_config.json",
        write("builder_config.json", b'{"data_designer": '),
        {},
        DatasetFolderError,
        "builder_config.json is not valid JSON",
        NONE,
    ),
    (
        "builder_config.json not UTF-8",
        write("builder_config.json", b'{"x": "\xff\xfe"}'),
        {},
        DatasetFolderError,
        "builder_config.json is not valid JSON",
        NONE,
    ),
    (
        "symlink to an absolute path outside",
        escaping_symlink("absolute file"),
        {},
        DatasetFolderError,
        "points outside the dataset folder",
        NONE,
    ),
    (
        "symlink with .. outside",
        escaping_symlink("dotdot file"),
        {},
        DatasetFolderError,
        "points outside the dataset folder",
        NONE,
    ),
    (
        "symlinked folder outside",
        escaping_symlink("folder"),
        {},
        DatasetFolderError,
        "points outside the dataset folder",
        NONE,
    ),
    (
        "data folder linked outside",
        escaping_symlink("data folder"),
        {},
        DatasetFolderError,
        "points outside the dataset folder",
        NONE,
    ),
    (
        "processor named data",
        processor_named("data", single_file=True),
        {},
        DatasetFolderError,
        "reserved repo path 'data'",
        NONE,
    ),
    (
        "processor named README.md",
        processor_named("README.md", single_file=False),
        {},
        DatasetFolderError,
        "reserved repo path 'README.md'",
        NONE,
    ),
    (
        "processor named metadata.json",
        processor_named("metadata.json", single_file=False),
        {},
        DatasetFolderError,
        "reserved repo path 'metadata.json'",
        NONE,
    ),
    (
        "processor named .gitattributes",
        processor_named(".gitattributes", single_file=False),
        {},
        DatasetFolderError,
        "reserved repo path '.gitattributes'",
        NONE,
    ),
    (
        "processor name with a space",
        processor_named("my proc", single_file=True),
        {},
        DatasetFolderError,
        "names may only use letters",
        NONE,
    ),
    ("non-UTF-8 file name", non_utf8_name, {}, DatasetFolderError, "not valid UTF-8", NONE),
    ("huge file name", huge_name, {}, DatasetFolderError, "too long for the Hub", NONE),
    ("image under a .cache folder", image_under_a_cache_folder, {}, DatasetFolderError, "'.cache'", NONE),
    ("unknown stage", good, {"stages": ["data", "everything"]}, ParameterTypeError, "stages", NONE),
    ("tag revision", good, {"revision": "refs/tags/v1"}, InvalidParameterError, "push to a branch name", NONE),
    # Branch names git refuses: the Hub's 400 would come only after the repo was created.
    ("revision with ..", good, {"revision": "a..b"}, InvalidParameterError, "not a valid branch name", NONE),
    ("revision with ~", good, {"revision": "nightly~1"}, InvalidParameterError, "not a valid branch name", NONE),
    ("revision ending .lock", good, {"revision": "x.lock"}, InvalidParameterError, "not a valid branch name", NONE),
    (
        "pull request that does not exist",
        good,
        {"revision": "refs/pr/999"},
        InvalidParameterError,
        "has no pull request refs/pr/999",
        frozenset({"whoami", "repo-info"}),  # the token and the pull request are the Hub's to say; no repo made
    ),
    (
        "commit id revision",
        good,
        {"revision": "0123456789abcdef" * 2 + "01234567"},
        InvalidParameterError,
        "is a commit id",
        NONE,
    ),
    (
        "card template missing",
        good,
        {"card_template": "/nonexistent/card.j2"},
        InvalidParameterError,
        "card_template '/nonexistent/card.j2' is not a file",
        NONE,
    ),
    (
        "zero files per commit",
        good,
        {"max_files_per_commit": 0},
        InvalidParameterError,
        "max_files_per_commit must be at least 1",
        NONE,
    ),
]


@pytest.mark.parametrize(
    ("build", "arguments", "error", "fragment", "allowed"),
    [pytest.param(*case[1:], id=case[0]) for case in PUSH_CASES],
)
def test_push_refuses_bad_input(
    hub: Any,
    tmp_path: Path,
    repo_id: str,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    build: Builder,
    arguments: dict[str, Any],
    error: type[BaseException],
    fragment: str,
    allowed: frozenset[str],
) -> None:
    from flows.push import push_dataset

    monkeypatch.delenv("HF_TOKEN", raising=False)
    folder = build(tmp_path)
    kwargs: dict[str, Any] = {"repo_id": repo_id, "description": DESCRIPTION, "token": SecretStr(ALICE_TOKEN)}
    kwargs.update(arguments)
    hub.clear_requests()
    with pytest.raises(error) as info:
        push_dataset(folder, **kwargs)
    assert fragment in str(info.value), f"the message does not name the problem: {info.value}"
    routes = {r.route for r in hub.requests}
    assert routes <= allowed, f"the Hub was contacted although this could be refused first: {sorted(routes)}"
    assert not any(r.route in ("preupload", "lfs-upload", "commit") for r in hub.requests)
    REFUSED.append(request.node.callspec.id)


def test_a_credentials_block_that_is_not_saved_is_named_before_any_request(
    hub: Any, tmp_path: Path, repo_id: str
) -> None:
    """A deployment run naming a block nobody saved says which parameter is wrong and what to do, not only
    Prefect's "Unable to find block document", and contacts no Hub."""
    from deployments.entrypoints import push_folder
    from deployments.parameters import PushParameters

    params = PushParameters(
        dataset_dir=str(good(tmp_path)), repo_id=repo_id, description=DESCRIPTION, credentials_block="never-saved"
    )
    hub.clear_requests()
    with pytest.raises(InvalidParameterError) as info:
        push_folder(params)
    message = str(info.value)
    assert "credentials_block 'never-saved'" in message and "HF_TOKEN" in message, message
    assert not hub.requests


def test_cli_names_the_problem_in_its_one_line(
    hub: Any, tmp_path: Path, repo_id: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command line prints one line saying why; for a token without write access that line must carry the
    Hub's reason, not only a request id."""
    from flows.push import main

    folder = good(tmp_path)
    monkeypatch.setenv("HF_TOKEN", BOB_TOKEN)
    code = main([str(folder), repo_id, "--description", DESCRIPTION])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and line.startswith("push failed:")
    assert "403" in line or "rights" in line, (
        "BUG (flows/push.py main): the one-line error keeps only the first line of the exception, which for Hub "
        f"errors is '(Request ID: ...)': {line!r}"
    )
    REFUSED.append("cli: token without write access")


# ------------------------------------------------------------------------------------------------ generation cases

COLUMNS = [
    {"name": "language", "column_type": "sampler", "sampler_type": "category", "params": {"values": ["en", "fr"]}},
]


def _config(**designer: Any) -> dict[str, Any]:
    return {"data_designer": {"columns": list(COLUMNS), **designer}}


LLM_PROVIDER = [{"name": "p", "endpoint": "http://127.0.0.1:9/v1", "api_key_env": "RELIABILITY_MISSING_KEY"}]
GENERATE_CASES: list[tuple[str, Any, type[BaseException], str]] = [
    (
        "unsupported column type",
        _config(columns=[*COLUMNS, {"name": "j", "column_type": "llm-judge", "prompt": "x"}]),
        UnsupportedConfigError,
        "column_type 'llm-judge'",
    ),
    (
        "unsupported sampler type",
        _config(
            columns=[*COLUMNS, {"name": "p", "column_type": "sampler", "sampler_type": "person", "params": {}}]
        ),
        UnsupportedConfigError,
        "sampler_type 'person'",
    ),
    (
        "unsupported processor type",
        _config(processors=[{"name": "x", "processor_type": "jsonl_export"}]),
        UnsupportedConfigError,
        "processor_type 'jsonl_export'",
    ),
    ("file:// config URL", "file:///etc/passwd", ConfigError, "only http and https URLs are fetched, not 'file'"),
    ("ftp:// config URL", "ftp://example.com/builder_config.json", ConfigError, "not 'ftp'"),
    ("config that is not a mapping", "- just\n- a list\n", ConfigError, "must hold a mapping"),
    (
        "template reaching Python internals",
        _config(
            columns=[*COLUMNS, {"name": "e", "column_type": "expression", "expr": "{{ ''.__class__.__mro__ }}"}]
        ),
        TemplateSecurityError,
        "access to attribute '__class__' is not allowed",
    ),
    (
        "template reaching globals",
        _config(
            columns=[
                *COLUMNS,
                {"name": "e", "column_type": "expression", "expr": "{{ cycler.__init__.__globals__.os }}"},
            ]
        ),
        TemplateSecurityError,
        "is not allowed",
    ),
    (
        "processor template escape",
        _config(
            processors=[
                {"name": "t", "processor_type": "schema_transform", "template": {"x": "{{ language.mro() }}"}}
            ]
        ),
        TemplateSecurityError,
        "access to attribute 'mro' is not allowed",
    ),
    (
        "missing LLM API key",
        {
            **_config(
                columns=[
                    *COLUMNS,
                    {"name": "g", "column_type": "llm-text", "prompt": "hi {{ language }}", "model_alias": "m"},
                ],
                model_configs=[{"alias": "m", "model": "x", "provider": "p"}],
            ),
            "model_providers": LLM_PROVIDER,
        },
        MissingAPIKeyError,
        "environment variable RELIABILITY_MISSING_KEY is not set",
    ),
]


@pytest.mark.parametrize(
    ("config", "error", "fragment"), [pytest.param(*case[1:], id=case[0]) for case in GENERATE_CASES]
)
def test_generate_and_push_refuses_bad_config_before_the_hub(
    hub: Any,
    tmp_path: Path,
    repo_id: str,
    request: pytest.FixtureRequest,
    config: Any,
    error: type[BaseException],
    fragment: str,
) -> None:
    from flows.generate_and_push import generate_and_push

    hub.clear_requests()
    with pytest.raises(error) as info:
        generate_and_push(
            config, repo_id, DESCRIPTION, num_records=10, output_dir=tmp_path / "out", token=SecretStr(ALICE_TOKEN)
        )
    assert fragment in str(info.value), f"the message does not name the problem: {info.value}"
    assert hub.requests == [], f"the Hub was contacted: {sorted({r.route for r in hub.requests})}"
    assert not list((tmp_path / "out").glob("parquet-files/*")), "a batch was generated"
    REFUSED.append(request.node.callspec.id)


# ------------------------------------------------------------------------------------------------ URL configs


class _Server:
    """A local HTTP server for config URLs: a huge body, a slow answer, a huge declared length."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/slow.yaml":
                    time.sleep(1.5)
                    body = b"columns: []\n"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path == "/declared-huge.json":
                    self.send_response(200)
                    self.send_header("Content-Length", str(50 * 1024 * 1024))
                    self.end_headers()
                    self.wfile.write(b"{")
                else:  # /endless.yaml: no length, more than the cap
                    self.send_response(200)
                    self.end_headers()
                    chunk = b"# padding padding padding padding padding padding\n" * 1000
                    try:
                        for _ in range(300):  # ~15 MB
                            self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def config_server() -> Iterator[_Server]:
    server = _Server()
    yield server
    server.close()


@pytest.mark.parametrize(
    ("path", "options", "fragment"),
    [
        pytest.param("/endless.yaml", {}, "over the 10485760-byte limit", id="oversize body, no length"),
        pytest.param(
            "/declared-huge.json",
            {},
            "52428800 bytes, over the 10485760-byte limit",
            id="oversize declared length",
        ),
        pytest.param("/slow.yaml", {"timeout": 0.5}, "timed out after 0.5 s", id="config URL timeout"),
    ],
)
def test_config_url_limits(
    hub: Any,
    config_server: _Server,
    request: pytest.FixtureRequest,
    path: str,
    options: dict[str, Any],
    fragment: str,
) -> None:
    from tasks.generation.source import from_config

    hub.clear_requests()
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        from_config(config_server.url + path, **options)
    assert fragment in str(info.value), str(info.value)
    assert time.monotonic() - started < 5
    assert hub.requests == []
    REFUSED.append(request.node.callspec.id)


# ------------------------------------------------------------------------------------------------ hostile Hub content


def test_hostile_processor_names_in_the_hubs_metadata_delete_nothing(
    hub: Any, tmp_path: Path, repo_id: str
) -> None:
    """The previous ``metadata.json`` on the Hub names "processors" ``data``, ``README.md`` and ``../x``: the push
    must not take them for vanished processors and delete the data, the card or anything outside a folder."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from flows.push import push_dataset

    folder = make_dataset_folder(tmp_path / "ds", batches=2, rows_per_batch=4, processor_file=None, images=0)
    seed_repo(repo_id, folder)
    hostile = b'{"file_paths": {"processor-files": {"data": [], "README.md": [], "../x": [], "images": []}}}'
    HfApi(token=ALICE_TOKEN).create_commit(
        repo_id, [CommitOperationAdd("metadata.json", hostile)], commit_message="hostile", repo_type="dataset"
    )
    push_dataset(folder, repo_id, DESCRIPTION, token=SecretStr(ALICE_TOKEN))
    files = repo_files(repo_id)
    assert {"data/batch_00000.parquet", "data/batch_00001.parquet", "README.md"} <= set(files)
    assert not any(t.startswith("Remove outputs") for t in titles(repo_id))
