"""Fault injection and the request log: what reliability tests use to make the Hub misbehave and to observe it.

A fault rule matches requests by route name (plus optional method and repo). Rules are consulted in the order
they were added; the first rule that *fires* for a request applies to it, alone:

- ``skip``: let the first N matching requests through untouched; then ``count``: fire for the next N matching
  requests (None: every one); ``rate``: fire with this probability per matching request (deterministic with
  ``seed``). They combine: after ``skip``, up to ``count`` firings, each with probability ``rate``.
- effects, in order: sleep ``latency`` seconds; then ``drop="before"`` closes the connection without reading
  or applying the request; otherwise ``status`` answers that error without applying the request (429 adds
  ``Retry-After`` if given and a ``RateLimit`` header); otherwise the request is handled normally, and
  ``drop="after"`` then closes the connection instead of sending the response (the request *was* applied).
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

ROUTES = frozenset(
    {
        "whoami",
        "repo-create",
        "repo-delete",
        "repo-settings",
        "repo-info",
        "validate-yaml",
        "preupload",
        "lfs-batch",
        "lfs-upload",
        "lfs-verify",
        "commit",
        "tree",
        "paths-info",
        "commits",
        "refs",
        "branch",
        "tag",
        "resolve",
        "other",
    }
)
ANY_ROUTE = "*"

Drop = Literal["none", "before", "after"]


@dataclass
class FaultRule:
    """One injected fault; ``applied`` counts the requests it fired on."""

    id: str
    route: str
    status: int | None = None
    retry_after: float | None = None
    latency: float = 0.0
    drop: Drop = "none"
    count: int | None = 1
    rate: float | None = None
    method: str | None = None
    repo: str | None = None
    seed: int | None = None
    skip: int = 0
    applied: int = 0
    seen: int = 0  # matching requests while the rule was active (skipped ones included)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    @property
    def exhausted(self) -> bool:
        """Whether the rule has fired ``count`` times (never, for ``count=None``); it then matches nothing."""
        return self.count is not None and self.applied >= self.count

    def matches(self, route: str, method: str, repo: str | None) -> bool:
        """Whether the rule applies: same route (or ``*``), method and repo (any case) if set; not exhausted."""
        return (
            not self.exhausted
            and self.route in (route, ANY_ROUTE)
            and (self.method is None or self.method.upper() == method.upper())
            and (self.repo is None or (repo is not None and self.repo.lower() == repo.lower()))
        )

    def to_dict(self) -> dict[str, Any]:
        """The rule as JSON for the admin API, plus ``remaining`` firings (None: unlimited)."""
        data = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        data["remaining"] = None if self.count is None else max(0, self.count - self.applied)
        return data


class FaultInjector:
    """The set of fault rules of one hub (thread-safe)."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(
        self,
        route: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        latency: float = 0.0,
        drop: Drop = "none",
        count: int | None = 1,
        rate: float | None = None,
        method: str | None = None,
        repo: str | None = None,
        seed: int | None = None,
        skip: int = 0,
    ) -> str:
        """Add a rule (see the module docstring); returns its id."""
        if route not in ROUTES and route != ANY_ROUTE:
            raise ValueError(f"Unknown route {route!r}; expected one of {sorted(ROUTES)} or '*'")
        if status is not None and not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (4xx/5xx), got {status}")
        if drop not in ("none", "before", "after"):
            raise ValueError(f"drop must be 'none', 'before' or 'after', got {drop!r}")
        if status is not None and drop != "none":
            raise ValueError("status and drop are exclusive")
        if skip < 0:
            raise ValueError("skip must be >= 0")
        if count is not None and count < 1:
            raise ValueError("count must be >= 1 (or None for unlimited)")
        if rate is not None and not 0.0 < rate <= 1.0:
            raise ValueError("rate must be in (0, 1]")
        if latency < 0 or (retry_after is not None and retry_after < 0):
            raise ValueError("latency and retry_after must be >= 0")
        rule = FaultRule(
            id=uuid.uuid4().hex[:12],
            route=route,
            status=status,
            retry_after=retry_after,
            latency=latency,
            drop=drop,
            count=count,
            rate=rate,
            method=method,
            repo=repo,
            seed=seed,
            skip=skip,
            _rng=random.Random(seed),
        )
        with self._lock:
            self._rules.append(rule)
        return rule.id

    def add_from_dict(self, spec: dict[str, Any]) -> str:
        """``add`` from a JSON object (admin route); unknown keys are a ValueError."""
        spec = dict(spec)
        route = spec.pop("route", None)
        if not isinstance(route, str):
            raise ValueError("'route' is required")
        try:
            return self.add(route, **spec)
        except TypeError as e:
            raise ValueError(str(e)) from None

    def remove(self, rule_id: str) -> bool:
        """Remove rule ``rule_id``; whether there was one."""
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        """Remove every rule, fired or not."""
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict[str, Any]]:
        """Every rule in the order added, as :meth:`FaultRule.to_dict` (with ``applied``/``seen`` so far)."""
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def pick(self, route: str, method: str, repo: str | None) -> FaultRule | None:
        """The rule that fires for this request, if any (and count it as applied)."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(route, method, repo):
                    continue
                rule.seen += 1
                if rule.seen > rule.skip and (rule.rate is None or rule._rng.random() < rule.rate):
                    rule.applied += 1
                    return rule
        return None


@dataclass(frozen=True)
class RequestRecord:
    """One request as the hub saw it. ``status`` is 0 when no response was produced (``drop="before"``);
    with ``drop="after"`` it is the status the client never received."""

    method: str
    route: str
    repo: str | None
    path: str
    status: int
    bytes_in: int
    bytes_out: int
    time: float  # when the request arrived (epoch seconds)
    duration: float
    fault: str | None = None  # id of the fault rule that fired
    dropped: bool = False
    request_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (``GET /_localhub/requests``)."""
        return asdict(self)


class RequestLog:
    """Thread-safe log of the requests served (admin routes excluded).

    A request is logged *before* the last byte of its response leaves the server (so a client that got its answer
    always finds the record), then :meth:`finish` completes the record with the bytes actually sent.
    """

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
        self._generation = 0  # bumped by clear(), so finish() never touches a record of a cleared log
        self._lock = threading.Lock()

    def append(self, record: RequestRecord) -> tuple[int, int]:
        """Log ``record``; returns a handle for :meth:`finish`."""
        with self._lock:
            self._records.append(record)
            return self._generation, len(self._records) - 1

    def finish(self, handle: tuple[int, int], **changes: Any) -> None:
        """Update fields (bytes_out, duration) of a logged record, unless the log was cleared since."""
        with self._lock:
            generation, index = handle
            if generation == self._generation:
                self._records[index] = replace(self._records[index], **changes)

    def snapshot(self) -> list[RequestRecord]:
        """A copy of the records, in arrival order."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget every record; a request still being sent then leaves no record (see :meth:`finish`)."""
        with self._lock:
            self._records.clear()
            self._generation += 1

    def stats(self) -> dict[str, Any]:
        """Totals over the log: traffic, LFS upload bytes, commits created, faults applied, per-route counts."""
        records = self.snapshot()
        by_route: dict[str, int] = {}
        for r in records:
            by_route[r.route] = by_route.get(r.route, 0) + 1
        return {
            "requests": len(records),
            "bytes_in": sum(r.bytes_in for r in records),
            "bytes_out": sum(r.bytes_out for r in records),
            "lfs_bytes_in": sum(r.bytes_in for r in records if r.route == "lfs-upload"),
            "commits": sum(1 for r in records if r.route == "commit" and r.status == 200),
            "faults": sum(1 for r in records if r.fault is not None),
            "errors": sum(1 for r in records if r.status >= 400 or r.status == 0),
            "by_route": by_route,
        }
