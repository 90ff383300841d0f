"""HTTP plumbing independent of the Hub: request bodies (Content-Length or chunked), responses, byte ranges."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, BinaryIO

from .errors import HubError, bad_request

CHUNK = 1024 * 1024


class BodyReader:
    """The request body, read lazily from the socket: never buffered whole unless asked (``read_all``).

    Handles ``Content-Length`` and ``Transfer-Encoding: chunked`` (httpx sends file objects of unknown length
    that way, §2.1). Counts the bytes read, for the request log.
    """

    def __init__(self, rfile: BinaryIO, headers: Message, pace: Callable[[int], None] | None = None) -> None:
        self._rfile = rfile
        self._pace = pace  # called with the size of every piece read (``Uplink.carry``)
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        length = (headers.get("Content-Length") or "0").strip()
        if not self.chunked and not length.isdigit():
            raise bad_request(f"Invalid Content-Length: {length!r}")
        self._remaining = 0 if self.chunked else int(length)
        self._eof = not self.chunked and self._remaining == 0
        self._broken = False  # the framing failed: the rest of the body cannot be found, nor skipped
        self.bytes_read = 0

    @classmethod
    def empty(cls) -> BodyReader:
        """A reader of no body at all."""
        return cls(io.BytesIO(), Message())

    @property
    def exhausted(self) -> bool:
        """Whether the whole body has been read (at once for an empty body)."""
        return self._eof

    def _next_chunk(self) -> None:
        """Chunked encoding: read the next chunk-size line (and the trailers after the last chunk)."""
        line = self._rfile.readline(1024)
        if not line:
            raise self._framing_error("Truncated chunked request body")
        try:
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        except ValueError:
            raise self._framing_error("Invalid chunk size in chunked request body") from None
        if size < 0:  # int() takes a sign; a chunk size has none
            raise self._framing_error("Invalid chunk size in chunked request body")
        if size == 0:
            while self._rfile.readline(1024).strip():  # trailers, up to the blank line
                pass
            self._eof = True
        self._remaining = size

    def _framing_error(self, message: str) -> HubError:
        """A 400 for a body whose framing failed; the body is then given up (``drain`` answers False)."""
        self._broken = True
        return bad_request(message)

    def _available(self) -> int:
        """Bytes readable without crossing a chunk boundary (0 at the end of the body)."""
        if self._eof:
            return 0
        if self._remaining == 0 and self.chunked:
            self._next_chunk()
        return self._remaining

    def _consumed(self, data: bytes) -> bytes:
        if self._pace is not None:
            self._pace(len(data))
        self._remaining -= len(data)
        self.bytes_read += len(data)
        if self._remaining == 0:
            if self.chunked:
                self._rfile.readline(16)  # the CRLF that ends each chunk
            else:
                self._eof = True
        return data

    def read(self, n: int = CHUNK) -> bytes:
        """Up to ``n`` bytes (fewer at a chunk boundary); b"" at the end of the body."""
        available = self._available()
        if available == 0:
            return b""
        data = self._rfile.read(min(n, available))
        if not data:
            raise self._framing_error("Truncated request body")
        return self._consumed(data)

    def readline(self) -> bytes:
        """One line, newline included (lines may span chunks); b"" at the end of the body."""
        parts: list[bytes] = []
        while (available := self._available()) > 0:
            data = self._rfile.readline(available)
            if not data:
                raise self._framing_error("Truncated request body")
            parts.append(self._consumed(data))
            if data.endswith(b"\n"):
                break
        return b"".join(parts)

    def __iter__(self) -> Iterator[bytes]:
        """The body as a stream of chunks."""
        while data := self.read():
            yield data

    def read_all(self, limit: int = 64 * 1024 * 1024) -> bytes:
        """The whole body (for small JSON/form bodies); 413 beyond ``limit``."""
        parts: list[bytes] = []
        total = 0
        for data in self:
            total += len(data)
            if total > limit:
                raise HubError(413, f"Request body larger than {limit} bytes")
            parts.append(data)
        return b"".join(parts)

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (every JSON endpoint takes one; ``{}`` when empty); 400 when it is invalid
        JSON or another JSON value, 413 beyond 64 MiB."""
        return json_object(self.read_all())

    def drain(self, limit: int) -> bool:
        """Discard the rest of the body if it is at most ``limit`` bytes; whether the body is now fully read.

        After an early error answer, the connection can be kept alive only if the unread body was consumed.
        """
        if self._eof:
            return True
        if self._broken or (not self.chunked and self._remaining > limit):
            return False
        seen = 0
        while seen <= limit:
            try:
                data = self.read()
            except HubError:  # the framing failed while skipping: the connection closes
                return False
            if not data:
                return True
            seen += len(data)
        return False


def json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object (``{}`` when empty); 400 when it is invalid JSON or another JSON value."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise bad_request(f"Invalid JSON body: {e}") from None
    if not isinstance(body, dict):
        raise bad_request(f"Invalid JSON body: expected an object, got {type(body).__name__}")
    return body


@dataclass
class Response:
    """An answer: a fixed ``body``, or ``length`` bytes produced lazily by ``stream`` (file downloads)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: Callable[[], Iterator[bytes]] | None = None
    length: int | None = None  # Content-Length of a streamed body

    @property
    def content_length(self) -> int:
        """The ``Content-Length`` to announce: ``length`` for a streamed body, else ``len(body)``."""
        return self.length if self.length is not None else len(self.body)

    @classmethod
    def json(
        cls,
        obj: Any,
        status: int = 200,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json; charset=utf-8",
    ) -> Response:
        """A JSON answer, UTF-8 with non-ASCII kept; values JSON cannot encode are written as ``str()``."""
        body = json.dumps(obj, default=str, ensure_ascii=False).encode()
        return cls(status, {"Content-Type": content_type, **(headers or {})}, body)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single ``Range: bytes=...`` over ``size`` bytes, or None to send everything.

    ``end`` is clamped to the last byte (readers ask past EOF); a start at or past EOF is a 416 carrying
    ``Content-Range: bytes */size``. Malformed or multi-range headers are ignored, as RFC 9110 allows.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    if not sep:
        return None
    try:
        if first == "":  # suffix: the last N bytes
            n = int(last)
            start, end = max(0, size - n), size - 1
            if n == 0 or size == 0:
                start = size
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
            if last and int(last) < start:
                return None
    except ValueError:
        return None
    if start >= size:
        raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    return start, end
