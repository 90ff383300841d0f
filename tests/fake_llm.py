"""A real HTTP server speaking OpenAI's ``POST /v1/chat/completions``, for tests.

Answers are deterministic (a function of the model, the messages and the ``seed``), faults can be injected
(``fail_next(429, retry_after=0.1)``, ``fail_next(500)``, ``answer_next(None, finish_reason="content_filter")``,
``drop_next()``, ``outage(2.0)``), latency added, an API key required; every request is
recorded, with the highest number of requests seen in flight at once.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

LLM_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "llm_greetings.yaml"


def llm_example_config(endpoint: str, *, parallel: int = 4) -> dict[str, Any]:
    """The documented LLM example, pointed at a fake endpoint (``FAKE_LLM_API_KEY``) with fast retries."""
    config = yaml.safe_load(LLM_EXAMPLE.read_text())
    config["model_providers"] = [
        {"name": "openai", "endpoint": endpoint, "api_key_env": "FAKE_LLM_API_KEY", "retry_backoff_seconds": 0.05}
    ]
    config["data_designer"]["model_configs"][0]["inference_parameters"]["max_parallel_requests"] = parallel
    return config


def answer_for(model: str, messages: list[dict[str, Any]], seed: Any) -> str:
    """The answer the fake gives: the last user message, tagged with a digest of the whole request."""
    user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    digest = hashlib.sha256(json.dumps([model, messages, seed], sort_keys=True).encode()).hexdigest()[:8]
    return f"[{model}] re: {user} #{digest}"


@dataclass
class RecordedRequest:
    path: str
    body: dict[str, Any] | None
    authorization: str | None
    status: int
    query: str = ""


@dataclass
class _Fault:
    status: int
    headers: dict[str, str]
    body: bytes
    drop: bool = False  # close the connection without an answer
    prompt: str | None = None  # only for requests whose last user message is this
    echo_header: str | None = None  # quote this request header's value in the error message, as some proxies do


@dataclass
class FakeLLM:
    """``with FakeLLM() as llm: ... llm.endpoint`` → ``http://127.0.0.1:<port>/v1``."""

    latency: float = 0.0
    api_key: str | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    max_in_flight: int = 0
    _faults: deque[_Fault] = field(default_factory=deque)
    _outage: tuple[float, _Fault] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _in_flight: int = 0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def fail_next(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        count: int = 1,
        message: str = "",
        prompt: str | None = None,
        code: str | None = None,
        echo_header: str | None = None,
    ) -> None:
        """The next ``count`` chat requests (with ``prompt`` as last user message, when given) get ``status``
        (with ``Retry-After`` when given), and OpenAI's error body with ``message`` and ``code`` (followed by the
        value the request sent in header ``echo_header``, when given)."""
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        error = {"message": message or f"injected {status}", "type": code or "injected", "code": code}
        body = json.dumps({"error": error}).encode()
        with self._lock:
            self._faults.extend(
                _Fault(status, headers, body, prompt=prompt, echo_header=echo_header) for _ in range(count)
            )

    def outage(self, seconds: float, status: int = 503, *, retry_after: float | None = None) -> None:
        """Every chat request in the next ``seconds`` gets ``status`` (an overloaded or restarting server)."""
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        body = json.dumps({"error": {"message": f"unavailable ({status})", "type": "outage"}}).encode()
        with self._lock:
            self._outage = (time.monotonic() + seconds, _Fault(status, headers, body))

    def _take_fault(self, body: Any) -> _Fault | None:
        if self._outage is not None and time.monotonic() < self._outage[0]:
            return self._outage[1]
        messages = body.get("messages") if isinstance(body, dict) else None
        users = [m.get("content") for m in messages or [] if isinstance(m, dict) and m.get("role") == "user"]
        for fault in self._faults:
            if fault.prompt is None or (users and users[-1] == fault.prompt):
                self._faults.remove(fault)
                return fault
        return None

    def answer_next(
        self,
        content: str | list[Any] | None = "",
        *,
        finish_reason: str = "stop",
        count: int = 1,
        raw: bytes | None = None,
    ) -> None:
        """The next ``count`` chat requests get a 200 with this ``content`` and ``finish_reason`` (``raw``: these
        exact bytes as the body instead, e.g. HTML from a proxy or invalid UTF-8)."""
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
        body = raw if raw is not None else json.dumps({"id": "chatcmpl-fake", "choices": [choice]}).encode()
        with self._lock:
            self._faults.extend(_Fault(200, {}, body) for _ in range(count))

    def drop_next(self, count: int = 1) -> None:
        """The next ``count`` chat requests are read, then the connection is closed without an answer."""
        with self._lock:
            self._faults.extend(_Fault(0, {}, b"", drop=True) for _ in range(count))

    @property
    def idle(self) -> bool:
        """No request in flight (every one received has been answered and recorded)."""
        with self._lock:
            return self._in_flight == 0

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def start(self) -> FakeLLM:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                auth = self.headers.get("Authorization")
                with fake._lock:
                    fake._in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake._in_flight)
                    path, _, query = self.path.partition("?")
                    fault = fake._take_fault(body) if path.endswith("/chat/completions") else None
                try:
                    if fake.latency:
                        time.sleep(fake.latency)
                    status, payload, headers = fake._respond(path, body, auth, fault)
                    if fault is not None and fault.echo_header is not None:
                        error = json.loads(payload)["error"]
                        error["message"] += f" ({fault.echo_header}: {self.headers.get(fault.echo_header)})"
                        payload = json.dumps({"error": error}).encode()
                finally:
                    with fake._lock:
                        fake._in_flight -= 1
                        fake.requests.append(RecordedRequest(path, body, auth, status, query))
                if fault is not None and fault.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._send(status, payload, headers)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _respond(
        self, path: str, body: dict[str, Any] | None, auth: str | None, fault: _Fault | None
    ) -> tuple[int, bytes, dict[str, str]]:
        if not path.endswith("/v1/chat/completions"):
            return 404, b'{"error": {"message": "not found"}}', {}
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            return 401, b'{"error": {"message": "invalid api key"}}', {}
        if fault is not None:
            return fault.status, fault.body, fault.headers
        if not isinstance(body, dict) or "model" not in body or not isinstance(body.get("messages"), list):
            return 400, b'{"error": {"message": "model and messages are required"}}', {}
        content = answer_for(body["model"], body["messages"], body.get("seed"))
        response = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return 200, json.dumps(response).encode(), {}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
