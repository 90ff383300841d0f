"""URL routing (§2.2): map (method, raw path) to a route name, an endpoint and its decoded parameters.

Routing works on the **raw** path: it is split on ``/`` first and each segment percent-decoded afterwards, so
``refs%2Fpr%2F1`` stays one segment (a revision) and ``data%2Fx.parquet`` one tree path.

Route names are stable strings: fault rules select on them and the request log records them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

# "/api/{type}s/..." segment -> repo type; "/{prefix}{id}/..." segment -> repo type (models have no prefix).
API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX_TYPES = {"datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}

# /api/{type}s/{ns}/{name}/{op}/... : op -> (route name, {method: endpoint})
_REPO_OPS: dict[str, tuple[str, dict[str, str]]] = {
    "revision": ("repo-info", {"GET": "repo_info"}),
    "settings": ("repo-settings", {"PUT": "repo_settings"}),
    "preupload": ("preupload", {"POST": "preupload"}),
    "commit": ("commit", {"POST": "commit"}),
    "tree": ("tree", {"GET": "tree"}),
    "paths-info": ("paths-info", {"POST": "paths_info"}),
    "commits": ("commits", {"GET": "commits"}),
    "refs": ("refs", {"GET": "refs"}),
    "branch": ("branch", {"POST": "create_branch", "DELETE": "delete_branch"}),
    "tag": ("tag", {"POST": "create_tag", "DELETE": "delete_tag"}),
    "xet-write-token": ("other", {"GET": "xet_token"}),
    "xet-read-token": ("other", {"GET": "xet_token"}),
}

# /api/{...} routes that are not about one repo
_API_ROUTES: dict[str, tuple[str, dict[str, str]]] = {
    "whoami-v2": ("whoami", {"GET": "whoami"}),
    "repos/create": ("repo-create", {"POST": "repo_create"}),
    "repos/delete": ("repo-delete", {"DELETE": "repo_delete"}),
    "validate-yaml": ("validate-yaml", {"POST": "validate_yaml"}),
    "agent-harnesses": ("other", {"GET": "agent_harnesses"}),
}


@dataclass(frozen=True)
class RouteMatch:
    """Where a request goes. ``endpoint`` names a method of :class:`localhub.api.HubApi`."""

    name: str
    endpoint: str
    repo_type: str | None = None
    repo_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)


NOT_FOUND = RouteMatch("other", "not_found")


def _pick(name: str, methods: dict[str, str], method: str, **kwargs: object) -> RouteMatch:
    # HEAD is answered like GET without a body.
    endpoint = methods.get(method) or (methods.get("GET") if method == "HEAD" else None)
    return RouteMatch(name, endpoint or "method_not_allowed", **kwargs)  # type: ignore[arg-type]


def match(method: str, raw_path: str, host: str = "") -> RouteMatch:
    """Route a request. ``raw_path`` excludes the query string and is still percent-encoded."""
    if host.lower().startswith("datasets-server."):
        return NOT_FOUND  # the `datasets` parquet-export probe (§6.1 step 8)
    segments = [unquote(s) for s in raw_path.split("/")[1:]]
    if segments and segments[-1] == "" and len(segments) > 1:
        segments.pop()  # tolerate a trailing slash
    if not segments or not segments[0]:
        return NOT_FOUND
    if segments[0] == "api":
        return _match_api(method, segments[1:])
    if segments[0] == "lfs-upload":
        return _match_lfs_upload(method, segments[1:])
    return _match_repo_url(method, segments)


def _match_api(method: str, segs: list[str]) -> RouteMatch:
    joined = "/".join(segs)
    if joined in _API_ROUTES:
        return _pick(*_API_ROUTES[joined], method)
    if len(segs) < 3 or segs[0] not in API_TYPES:
        return NOT_FOUND
    repo = {"repo_type": API_TYPES[segs[0]], "repo_id": f"{segs[1]}/{segs[2]}"}
    if len(segs) == 3:
        return _pick("repo-info", {"GET": "repo_info"}, method, **repo)
    op, rest = segs[3], segs[4:]
    if op not in _REPO_OPS:
        return RouteMatch("other", "not_found", **repo)  # type: ignore[arg-type]
    name, methods = _REPO_OPS[op]
    if op == "tree":
        # /tree/{rev}[/{path}]: rev is one segment; path is one quoted segment, but accept literal slashes too
        params = {"rev": rest[0] if rest else "main", "path": "/".join(rest[1:])}
    else:
        # one quoted segment; joining keeps literal "refs/pr/1" working as well
        params = {"rev": "/".join(rest)}
    return _pick(name, methods, method, params=params, **repo)


def _match_lfs_upload(method: str, segs: list[str]) -> RouteMatch:
    # /lfs-upload/{oid}/{ticket}          PUT: basic upload; POST: multipart completion
    # /lfs-upload/{oid}/{ticket}/part/{n} PUT: one part
    if len(segs) == 2:
        params = {"oid": segs[0], "ticket": segs[1]}
        return _pick("lfs-upload", {"PUT": "lfs_upload", "POST": "lfs_complete"}, method, params=params)
    if len(segs) == 4 and segs[2] == "part":
        params = {"oid": segs[0], "ticket": segs[1], "part": segs[3]}
        return _pick("lfs-upload", {"PUT": "lfs_upload_part"}, method, params=params)
    return NOT_FOUND


def _match_repo_url(method: str, segs: list[str]) -> RouteMatch:
    repo_type = URL_PREFIX_TYPES.get(segs[0], "model")
    if repo_type != "model":
        segs = segs[1:]
    if len(segs) < 3:
        return NOT_FOUND
    namespace, name, rest = segs[0], segs[1], segs[2:]
    if name.endswith(".git") and rest[:3] == ["info", "lfs", "objects"] and len(rest) == 4:
        repo = {"repo_type": repo_type, "repo_id": f"{namespace}/{name.removesuffix('.git')}"}
        if rest[3] == "batch":
            return _pick("lfs-batch", {"POST": "lfs_batch"}, method, **repo)
        if rest[3] == "verify":
            return _pick("lfs-verify", {"POST": "lfs_verify"}, method, **repo)
        return NOT_FOUND
    if rest[0] == "resolve" and len(rest) >= 3:
        repo = {"repo_type": repo_type, "repo_id": f"{namespace}/{name}"}
        rev, path = rest[1], rest[2:]
        # also accept unencoded "refs/pr/N" and "refs/convert/<name>" revisions, occupying 3 segments
        if rev == "refs" and len(path) >= 3 and path[0] in ("pr", "convert"):
            rev, path = f"refs/{path[0]}/{path[1]}", path[2:]
        return _pick("resolve", {"GET": "resolve"}, method, params={"rev": rev, "path": "/".join(path)}, **repo)
    return NOT_FOUND
