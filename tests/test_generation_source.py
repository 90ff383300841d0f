"""``from_config``: dicts, YAML/JSON text, files, http(s) URLs (blob rewriting, timeout, size cap, schemes)."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import pytest
import yaml

from tasks.generation.errors import ConfigError
from tasks.generation.source import from_config, raw_url

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multilingual_greetings.yaml"
LLM_EXAMPLE = EXAMPLE.with_name("llm_greetings.yaml")


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/unsized"):  # no Content-Length: the cap must apply while streaming
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"#" * 5000)
            return
        if self.path.startswith("/trickle"):  # every read returns in time, the whole body does not
            body = b'{"columns": [{"name": "n", "column_type": "sampler", "sampler_type": "poisson"}]}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(0, len(body), 10):
                self.wfile.write(body[i : i + 10])
                self.wfile.flush()
                time.sleep(0.2)
            return
        if self.path.startswith("/slow"):
            time.sleep(2)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/builder_config.json")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hang up on purpose here (size cap, timeout)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    server = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


def test_dict_yaml_json_and_path() -> None:
    text = EXAMPLE.read_text()
    data = yaml.safe_load(text)
    expected = from_config(data).to_builder_dict()
    assert from_config(text).to_builder_dict() == expected
    assert from_config(json.dumps(data)).to_builder_dict() == expected
    assert from_config(EXAMPLE).to_builder_dict() == expected
    assert from_config(str(EXAMPLE)).to_builder_dict() == expected
    config = from_config(data)
    assert from_config(config) is config


def test_a_one_line_json_config_with_an_endpoint_url_is_text_not_a_path() -> None:
    # Every LLM config holds a '/' (its endpoint), which made a one-line JSON config look like a missing file.
    data = yaml.safe_load(LLM_EXAMPLE.read_text())
    assert from_config(json.dumps(data)).to_builder_dict() == from_config(data).to_builder_dict()
    flow_style = "{data_designer: {columns: [{name: n, column_type: sampler, sampler_type: uuid, params: {}}]}}"
    assert from_config(flow_style).columns[0].name == "n"


def test_missing_file_and_bad_text() -> None:
    with pytest.raises(ConfigError, match="not found") as info:
        from_config("does/not/exist.yaml")
    # A deployment run resolves a relative path where its worker runs: the message says where it looked.
    assert f"does/not/exist.yaml (looked for in {Path.cwd()})" in str(info.value)
    with pytest.raises(ConfigError, match="mapping"):
        from_config("- just\n- a list\n")


def test_only_http_and_https() -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/x.yaml", "gopher://x/y"):
        with pytest.raises(ConfigError, match="only http and https"):
            from_config(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://huggingface.co/datasets/alice/greet/blob/main/builder_config.json",
            "https://huggingface.co/datasets/alice/greet/resolve/main/builder_config.json",
        ),
        (
            "https://huggingface.co/datasets/alice/greet/blob/refs%2Fpr%2F1/sub/builder_config.json",
            "https://huggingface.co/datasets/alice/greet/resolve/refs%2Fpr%2F1/sub/builder_config.json",
        ),
        ("https://hf.co/alice/model/blob/main/c.yaml", "https://hf.co/alice/model/resolve/main/c.yaml"),
        (
            "https://github.com/owner/repo/blob/main/examples/c.yaml",
            "https://raw.githubusercontent.com/owner/repo/main/examples/c.yaml",
        ),
        ("https://example.com/a/b/blob/main/c.yaml", "https://example.com/a/b/blob/main/c.yaml"),
        (
            "https://huggingface.co/datasets/alice/greet/resolve/main/builder_config.json",
            "https://huggingface.co/datasets/alice/greet/resolve/main/builder_config.json",
        ),
    ],
)
def test_blob_urls_are_rewritten_to_raw(url: str, expected: str) -> None:
    assert raw_url(url) == expected


def test_hf_endpoint_host_counts_as_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:5555")  # HF_ENDPOINT, as huggingface_hub read it
    assert raw_url("http://127.0.0.1:5555/datasets/a/b/blob/main/x.json") == (
        "http://127.0.0.1:5555/datasets/a/b/resolve/main/x.json"
    )


class _ProxyHandler(SimpleHTTPRequestHandler):
    """A forward proxy that answers every request itself, noting the URL and the Authorization it was sent."""

    seen: ClassVar[list[tuple[str, str | None]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        body = EXAMPLE.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str | None]]]:
    """Every plain-http request goes through a local proxy (as behind a corporate one): what reached it."""
    server = _Server(("127.0.0.1", 0), _ProxyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _ProxyHandler.seen = []
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield _ProxyHandler.seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_hubs_token_goes_to_the_hub_only(
    monkeypatch: pytest.MonkeyPatch, proxy: list[tuple[str, str | None]]
) -> None:
    # HF_TOKEN is the token of the Hub huggingface_hub talks to (HF_ENDPOINT: here the embedded one, as a company's
    # own Hub would be). A config on huggingface.co, or on any other host, must not receive it.
    from huggingface_hub import constants

    monkeypatch.setenv("HF_TOKEN", "hf_token_of_the_endpoint")
    endpoint = urlsplit(constants.ENDPOINT).netloc
    for url in ("http://huggingface.co/datasets/a/b/resolve/main/x.yaml", "http://hf.co/a/b/resolve/main/x.yaml",
                f"http://{endpoint}/datasets/a/b/resolve/main/x.yaml"):  # fmt: skip
        from_config(url)
    assert [(urlsplit(u).netloc, auth) for u, auth in proxy] == [
        ("huggingface.co", None),
        ("hf.co", None),
        (endpoint, "Bearer hf_token_of_the_endpoint"),
    ]


def test_url_fetch_redirect_size_cap_timeout_and_errors(served: tuple[str, Path]) -> None:
    base, folder = served
    config = from_config(EXAMPLE)
    (folder / "builder_config.json").write_text(config.to_json())
    assert from_config(f"{base}/builder_config.json").to_builder_dict() == config.to_builder_dict()
    assert from_config(f"{base}/redirect").to_builder_dict() == config.to_builder_dict()
    with pytest.raises(ConfigError, match="byte limit"):
        from_config(f"{base}/builder_config.json", max_bytes=100)
    with pytest.raises(ConfigError, match="byte limit"):
        from_config(f"{base}/unsized", max_bytes=1000)
    with pytest.raises(ConfigError, match="HTTP 404"):
        from_config(f"{base}/missing.json")
    (folder / "slow").write_text("{}")
    with pytest.raises(ConfigError, match="timed out"):
        from_config(f"{base}/slow", timeout=0.3)


def test_url_fetch_timeout_bounds_the_whole_body_not_each_read(served: tuple[str, Path]) -> None:
    base, _ = served
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"timed out after 0\.5 s"):
        from_config(f"{base}/trickle", timeout=0.5)
    assert time.monotonic() - started < 1.2  # the body takes 1.8 s; at most one more read may wait
