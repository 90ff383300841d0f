"""The HTTP layer: a threading HTTP/1.1 server whose handler routes, applies faults, calls the API and logs.

Request path, in order (:meth:`HubRequestHandler.serve`):

1. ``/_localhub/...`` admin routes are answered directly (never logged, never faulted, loopback callers only).
2. :func:`localhub.routes.match` names the route from the raw path.
3. A fault rule may fire (:mod:`localhub.faults`): latency, drop before, or an error status.
4. The caller is authenticated from ``Authorization: Bearer``, and :class:`localhub.api.HubApi` handles it.
5. The response is written (or, for ``drop="after"``, the connection is cut instead) and the request logged.

The standard library server is used on purpose: it gives the raw undecoded path, exact ``Content-Length`` on
HEAD, streaming request bodies, and a socket that can be closed mid-exchange.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

from . import routes
from .api import HubApi, Request, error_response
from .errors import HubError
from .faults import FaultInjector, FaultRule, RequestLog, RequestRecord
from .httputil import BodyReader, Response
from .lfs import UploadTickets

logger = logging.getLogger("localhub")

# What ``PUT /_localhub/config`` may change (``HubConfig`` fields).
SETTINGS = ("page_size", "lfs_multipart_threshold", "lfs_chunk_size", "upload_bytes_per_s")

# After an early answer (error, fault), a request body at most this large is read and discarded so the
# connection can be reused; a larger one is left unread and the connection closed.
_DRAIN_LIMIT = 1024 * 1024


class Uplink:
    """The client's uplink, shared by all connections: request bodies arrive no faster than ``bytes_per_s``
    together (``HubConfig.upload_bytes_per_s``; 0 lets them through as fast as they come). For benchmarks of a
    push over a slow link: concurrent uploads then share the bandwidth as they would on a real one."""

    SLICE = 16 * 1024  # connections take turns at this granularity, as packets of concurrent streams interleave

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free_at = 0.0  # when the link has carried everything admitted so far

    def carry(self, nbytes: int, bytes_per_s: int) -> None:
        """Wait until ``nbytes`` more would have crossed the link."""
        if bytes_per_s <= 0:
            return
        while nbytes > 0:
            piece = min(nbytes, self.SLICE)
            nbytes -= piece
            with self._lock:
                now = time.monotonic()
                self._free_at = max(now, self._free_at) + piece / bytes_per_s
                wait = self._free_at - now
            time.sleep(wait)


@dataclass
class ServerState:
    """What every request handler thread shares."""

    api: HubApi
    faults: FaultInjector
    log: RequestLog
    uplink: Uplink = field(default_factory=Uplink)


class HubHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its open connections, so that stopping it really disconnects clients
    (idle keep-alive connections would otherwise keep being served by a stopped hub)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: ServerState) -> None:
        self.state = state
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, HubRequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Remember the connection (for :meth:`close_connections`), then serve it on its thread."""
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection, then close it."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection (both ways): clients idle or mid-request see the hub go away."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class HubRequestHandler(BaseHTTPRequestHandler):
    """One connection; ``serve`` runs once per request on it (keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "localhub"
    timeout = 300  # seconds a connection may stay idle or stall mid-body
    error_content_type = "application/json"  # malformed requests rejected by http.server itself
    error_message_format = '{"error": "%(code)d %(message)s"}'
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid the 40 ms delayed-ACK stall
    server: HubHTTPServer

    def do_GET(self) -> None:
        """Every method goes to :meth:`serve`; the router answers 405 where a path does not take it."""
        self.serve()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """``http.server``'s access and error lines go to the ``localhub`` logger at DEBUG, not stderr."""
        logger.debug("%s - %s", self.address_string(), format % args)

    # --- the request path ------------------------------------------------------------------------------------

    def serve(self) -> None:
        """Serve one request: admin route, or route, fault, API call, response, log (see the module docstring)."""
        state = self.server.state
        started = time.time()
        raw_path, _, query = self.path.partition("?")
        if raw_path == "/_localhub" or raw_path.startswith("/_localhub/"):
            self._serve_admin(raw_path)
            return
        request_id = uuid.uuid4().hex
        config = state.api.config
        body = self._open_body(request_id, pace=lambda n: state.uplink.carry(n, config.upload_bytes_per_s))
        if body is None:
            return
        route = routes.match(self.command, raw_path, self.headers.get("Host", ""))
        repo = self._repo_label(route)
        fault = state.faults.pick(route.name, self.command, repo)

        def log(status: int, bytes_out: int, dropped: bool = False) -> tuple[int, int]:
            return state.log.append(
                RequestRecord(
                    method=self.command,
                    route=route.name,
                    repo=repo,
                    path=unquote(raw_path),
                    status=status,
                    bytes_in=body.bytes_read,
                    bytes_out=bytes_out,
                    time=started,
                    duration=time.time() - started,
                    fault=fault.id if fault else None,
                    dropped=dropped,
                    request_id=request_id,
                )
            )

        if fault is not None and fault.latency:
            time.sleep(fault.latency)
        if fault is not None and fault.drop == "before":
            log(0, 0, dropped=True)
            self._cut_connection()
            return
        response = self._fault_response(fault) if fault and fault.status else self._handle(route, query, body)
        if response is None:  # the connection broke while reading the request
            log(0, 0)
            self._cut_connection()
            return
        if fault is not None and fault.drop == "after":
            log(response.status, 0, dropped=True)
            self._cut_connection()
            return
        # Logged before sending, so that a client holding the answer always finds its record; then completed.
        handle = log(response.status, 0 if self.command == "HEAD" else response.content_length)
        bytes_out = self._send(response, body, request_id)
        state.log.finish(handle, bytes_out=bytes_out, bytes_in=body.bytes_read, duration=time.time() - started)

    @staticmethod
    def _repo_label(route: routes.RouteMatch) -> str | None:
        """The repo a request is about, for fault matching and the log (LFS upload URLs carry it in the ticket)."""
        if route.repo_id:
            return route.repo_id
        if "ticket" in route.params and (ticket := UploadTickets.peek(route.params["ticket"])):
            return ticket.repo_id
        return None

    def _handle(self, route: routes.RouteMatch, query: str, body: BodyReader) -> Response | None:
        api = self.server.state.api
        try:
            # LFS transfer URLs are authorised by their ticket; the client sends no token there.
            user = None if route.name == "lfs-upload" else api.authenticate(self.headers.get("Authorization"))
            request = Request(
                method=self.command,
                route=route,
                query=parse_qs(query, keep_blank_values=True),
                headers=self.headers,
                body=body,
                user=user,
                base_url=f"http://{self.headers.get('Host') or self._local_address()}",
            )
            return api.handle(request)
        except HubError as e:
            return error_response(e)
        except (ConnectionError, TimeoutError):
            return None
        except Exception:
            logger.exception("localhub: unexpected error on %s %s", self.command, self.path)
            return error_response(HubError(500, "Internal server error (see the localhub log)"))

    def _local_address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    @staticmethod
    def _fault_response(fault: FaultRule) -> Response:
        assert fault.status is not None
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(fault.retry_after))  # the client parses delay-seconds only
        if fault.status == 429:
            wait = math.ceil(fault.retry_after) if fault.retry_after is not None else 1
            headers["RateLimit"] = f'"api";r=0;t={wait}'
            headers["RateLimit-Policy"] = '"fixed window";"api";q=500;w=300'
        return error_response(HubError(fault.status, f"Injected fault {fault.id} (localhub)", headers=headers))

    def _send(self, response: Response, body: BodyReader, request_id: str) -> int:
        """Write the response; returns the number of body bytes sent."""
        if not body.drain(_DRAIN_LIMIT):
            self.close_connection = True
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("X-Request-Id", request_id)
            self.send_header("Content-Length", str(response.content_length))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return 0
            if response.stream is None:
                self.wfile.write(response.body)
                return len(response.body)
            sent = 0
            for chunk in response.stream():
                self.wfile.write(chunk)
                sent += len(chunk)
            return sent
        except OSError:  # the client went away
            self.close_connection = True
            return 0

    def _cut_connection(self) -> None:
        """Close the connection without (further) response: the client sees a network error."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # --- admin -------------------------------------------------------------------------------------------------

    def _open_body(self, request_id: str, pace: Callable[[int], None] | None = None) -> BodyReader | None:
        """The request body's reader; None after answering 400 and closing, when its framing is unusable (a body
        that cannot be read cannot be skipped either)."""
        try:
            return BodyReader(self.rfile, self.headers, pace=pace)  # type: ignore[arg-type]
        except HubError as e:
            self.close_connection = True
            self._send(error_response(e), BodyReader.empty(), request_id)
            return None

    def _serve_admin(self, raw_path: str) -> None:
        """``/_localhub/{faults,requests,stats,config}``: the HTTP twin of the ``LocalHub`` Python API."""
        state = self.server.state
        body = self._open_body(uuid.uuid4().hex)
        if body is None:
            return
        host = self.client_address[0] if isinstance(self.client_address, tuple) else ""
        what = raw_path.removeprefix("/_localhub").strip("/")
        result: Any
        try:
            if not (host.startswith("127.") or host in ("::1", "localhost")):
                raise HubError(403, "Admin routes are only served to loopback clients")
            if what == "faults" and self.command == "GET":
                result = state.faults.list()
            elif what == "faults" and self.command == "POST":
                result = {"id": state.faults.add_from_dict(body.json())}
            elif what == "faults" and self.command == "DELETE":
                state.faults.clear()
                result = {}
            elif what.startswith("faults/") and self.command == "DELETE":
                if not state.faults.remove(what.removeprefix("faults/")):
                    raise HubError(404, "No such fault")
                result = {}
            elif what == "requests" and self.command == "GET":
                result = [r.to_dict() for r in state.log.snapshot()]
            elif what == "requests" and self.command == "DELETE":
                state.log.clear()
                result = {}
            elif what == "stats" and self.command == "GET":
                result = state.log.stats()
            elif what == "config" and self.command in ("GET", "PUT"):
                result = self._admin_config(body.json() if self.command == "PUT" else {})
            else:
                raise HubError(404, f"Unknown admin route {self.command} {raw_path}")
            response = Response.json(result)
        except ValueError as e:
            response = error_response(HubError(400, str(e)))
        except HubError as e:
            response = error_response(e)
        self._send(response, body, uuid.uuid4().hex)

    def _admin_config(self, changes: Any) -> dict[str, int]:
        config = self.server.state.api.config
        if not isinstance(changes, dict):
            raise ValueError("Expected a JSON object")
        for key, value in changes.items():  # all checked before any is applied: a refused change changes nothing
            if key not in SETTINGS:
                raise ValueError(f"Unknown setting {key!r}")
            least = 0 if key == "upload_bytes_per_s" else 1  # 0: no limit
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{key} must be an integer >= {least}")
        for key, value in changes.items():
            setattr(config, key, value)
        return {key: getattr(config, key) for key in SETTINGS}
