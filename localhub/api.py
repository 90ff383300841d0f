"""The Hub endpoints (§5): one method per endpoint, each turning a parsed :class:`Request` into a Response.

Every endpoint about a repo starts with :meth:`HubApi.repo_for`, which enforces the access rules:

- anyone (even anonymous) reads public repos; a user reads its own private repos; others get RepoNotFound
  (401 when anonymous, 404 otherwise), never 403, so existence does not leak;
- a user writes only to its own namespace (403 otherwise); anonymous callers cannot write (401);
- opening a pull request (``create_pr=1``) only needs read access and a token; the user who opened it may push
  more commits to its ``refs/pr/N``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from html import escape
from typing import Any
from urllib.parse import parse_qs, quote

from .attributes import GitAttributes, GitIgnore
from .cards import card_data, validate_card
from .errors import (
    HubError,
    bad_request,
    conflict,
    entry_not_found,
    forbidden,
    repo_not_found,
    revision_not_found,
    unauthorized,
)
from .gitobjects import blob_oid
from .httputil import BodyReader, Response, json_object, parse_range
from .lfs import SHA256_RE, MultipartUploads, Ticket, UploadTickets
from .routes import URL_PREFIXES, RouteMatch
from .storage import (
    DEFAULT_BRANCH,
    AddFile,
    AddLfsFile,
    DeletePath,
    Entry,
    Operation,
    Repo,
    Storage,
    utc_iso,
)

LFS_CONTENT_TYPE = "application/vnd.git-lfs+json"
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # §4.3: files of 10 MiB or more go to LFS
RESERVED_NAMESPACES = frozenset({"api", "datasets", "spaces", "models", "kernels", "lfs-upload", "_localhub"})
_DEFAULT_EXPAND_PAGE = 50  # the real Hub pages expanded trees by 50
PATHS_INFO_MAX = 1000  # paths per paths-info request on the real Hub (huggingface_hub issue #1503)


@dataclass
class HubConfig:
    """Tunables, changeable at runtime (``LocalHub`` attributes or ``PUT /_localhub/config``)."""

    page_size: int = 1000
    lfs_multipart_threshold: int = 8 * 1024 * 1024  # objects larger than this use multipart...
    lfs_chunk_size: int = 5 * 1024 * 1024  # ...in parts of this size
    # Request bodies arrive at most this fast, all connections together (a client's uplink); 0: as fast as sent.
    upload_bytes_per_s: int = 0


@dataclass
class Request:
    """A request as endpoints see it: routed, authenticated, body still unread."""

    method: str
    route: RouteMatch
    query: dict[str, list[str]]
    headers: Message
    body: BodyReader
    user: str | None
    base_url: str  # "http://<Host header>", so URLs handed back use the host the client used

    def arg(self, name: str, default: str | None = None) -> str | None:
        """Query parameter ``name`` (the last one when repeated), or ``default`` when absent."""
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        """Whether query parameter ``name`` is ``1``, ``true`` or ``yes`` (any case); False when absent."""
        return (self.arg(name) or "").lower() in ("1", "true", "yes")

    @property
    def params(self) -> dict[str, str]:
        """What the router decoded from the path: ``rev``, ``path``, or ``oid``/``ticket``/``part``."""
        return self.route.params


def _is_binary(sample: bytes, size: int) -> bool:
    """§4.3: a NUL byte, or invalid UTF-8 not explained by the 512-byte sample cutting a character."""
    if b"\0" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as e:
        truncated = len(sample) < size and e.reason == "unexpected end of data" and e.start >= len(sample) - 3
        return not truncated
    return False


def _sanitize_header(text: str) -> str:
    """Header-safe version of a message (latin-1, one line)."""
    return " ".join(text.split()).encode("latin-1", "replace").decode("latin-1")[:1000]


def error_response(error: HubError) -> Response:
    """The Hub's error answer: the error's JSON body and headers, ``X-Error-Message``, ``X-Error-Code`` when set.

    The header message is flattened to one latin-1 line of at most 1000 characters.
    """
    headers = {"X-Error-Message": _sanitize_header(error.message), **error.headers}
    if error.code:
        headers["X-Error-Code"] = error.code
    return Response.json(error.body, error.status, headers)


class HubApi:
    """All endpoints, over one :class:`Storage`."""

    def __init__(self, storage: Storage, users: dict[str, str], config: HubConfig) -> None:
        self.storage = storage
        self.users = dict(users)
        self._user_by_token = {token: name for name, token in users.items()}
        self.config = config
        self.tickets = UploadTickets(storage.root / "upload-secret")
        self.multipart = MultipartUploads(storage.tmp / "multipart", storage.lfs)

    # --- plumbing ----------------------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> str | None:
        """The user a ``Bearer`` token belongs to; None when anonymous; 401 for an unknown token."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        user = self._user_by_token.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise unauthorized()
        return user

    def handle(self, req: Request) -> Response:
        """Call the route's endpoint (``ep_<endpoint>``); a :class:`HubError` it raises becomes its error answer.

        Other exceptions propagate: the server answers them with a 500.
        """
        endpoint: Callable[[Request], Response] = getattr(self, f"ep_{req.route.endpoint}")
        try:
            return endpoint(req)
        except HubError as e:
            return error_response(e)

    def repo_for(
        self,
        req: Request,
        *,
        write: bool = False,
        create_pr: bool = False,
        revision: str | None = None,
        target: tuple[str, str] | None = None,
    ) -> Repo:
        """The routed repo (or ``target`` (type, id)), if the caller may read it (and write to it, if ``write``)."""
        repo_type, repo_id = target or (req.route.repo_type, req.route.repo_id)
        assert repo_type and repo_id
        if repo_id.partition("/")[0] in RESERVED_NAMESPACES:
            raise repo_not_found(req.user is None)
        repo = self.storage.get(repo_type, repo_id)
        if repo is None or (repo.meta.private and req.user != repo.meta.owner):
            raise repo_not_found(req.user is None)
        if write:
            if req.user is None:
                raise unauthorized("You must be authenticated to write to this repository")
            if req.user != repo.meta.owner and not create_pr and repo.pr_author(revision) != req.user:
                raise forbidden(f"You don't have the rights to write to {repo.type} {repo.id}")
        return repo

    def repo_url(self, req: Request, repo_type: str, repo_id: str) -> str:
        """The repo's web URL on the host the client used: ``<base>/<prefix><id>`` (no prefix for models)."""
        return f"{req.base_url}/{URL_PREFIXES[repo_type]}{repo_id}"

    def _require_user(self, req: Request) -> str:
        if req.user is None:
            raise unauthorized("You must be authenticated to do this")
        return req.user

    @staticmethod
    def _branch_head(repo: Repo, rev: str) -> str:
        """Head of a branch (or refs/pr/N): what preupload/commit may target."""
        refs = repo.refs()
        branch = rev.removeprefix("refs/heads/")
        if branch in refs.branches:
            return refs.branches[branch]
        if (m := re.fullmatch(r"refs/pr/(\d+)", rev)) and int(m.group(1)) in refs.prs:
            return refs.prs[int(m.group(1))]
        raise revision_not_found(rev)

    # --- misc --------------------------------------------------------------------------------------------------

    def ep_not_found(self, req: Request) -> Response:
        """Any path the router does not know (and the ``datasets-server.`` host): 404 ``Not Found``.

        Without ``X-Error-Code``, so a client cannot mistake it for a missing repo, revision or file.
        """
        return error_response(HubError(404, "Not Found"))

    def ep_method_not_allowed(self, req: Request) -> Response:
        """A known path with a method it does not serve: 405 (HEAD is served wherever GET is)."""
        return error_response(HubError(405, f"Method {req.method} not allowed here"))

    def ep_agent_harnesses(self, req: Request) -> Response:
        """``GET /api/agent-harnesses``: an empty registry (``huggingface_hub`` fetches it to detect AI agents)."""
        return Response.json({"standardEnvVars": [], "harnesses": {}})

    def ep_xet_token(self, req: Request) -> Response:
        """``GET /api/{type}s/{repo_id}/xet-{read,write}-token/{rev}``: always 400, with advice.

        localhub stores LFS objects only: clients must run with ``HF_HUB_DISABLE_XET=1``.
        """
        raise bad_request(
            "Xet storage is not supported by localhub: set HF_HUB_DISABLE_XET=1 before importing huggingface_hub"
        )

    def ep_whoami(self, req: Request) -> Response:
        """``GET /api/whoami-v2``: the caller's account, shaped as the Hub's answer for a write-role token.

        A stable 24-hex ``id`` derived from the name, no orgs, an ``@localhub.invalid`` e-mail. 401 when anonymous.
        """
        user = req.user
        if user is None:
            raise unauthorized()
        return Response.json(
            {
                "type": "user",
                "id": blob_oid(user.encode())[:24],
                "name": user,
                "fullname": user.capitalize(),
                "email": f"{user}@localhub.invalid",
                "emailVerified": True,
                "canPay": False,
                "periodEnd": None,
                "isPro": False,
                "avatarUrl": "",
                "orgs": [],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": "localhub", "role": "write", "createdAt": utc_iso(0)},
                },
            }
        )

    def ep_validate_yaml(self, req: Request) -> Response:
        """``POST /api/validate-yaml``: check a README's front matter (body ``{"content": <README text>}``).

        Answers ``{"errors": [...], "warnings": [...]}`` of ``{"message"}`` objects: 400 when there are errors (or
        ``content`` is not a string), 200 otherwise, as ``RepoCard.validate`` reads it. Checks what ``datasets``
        relies on (``configs``) and the Hub's license list.
        """
        body = req.body.json()
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str):
            return Response.json({"errors": [{"message": "'content' must be a string"}], "warnings": []}, 400)
        errors, warnings = validate_card(content)
        return Response.json(
            {"errors": [{"message": m} for m in errors], "warnings": [{"message": m} for m in warnings]},
            400 if errors else 200,
        )

    # --- repos -------------------------------------------------------------------------------------------------

    @staticmethod
    def _repo_spec(body: Any, user: str) -> tuple[str, str, str]:
        """(type, namespace, name) from a create/delete body: ``name`` (maybe "ns/name"), ``organization``, ``type``."""
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise bad_request("'name' is required")
        repo_type = body.get("type") or "model"
        if repo_type not in URL_PREFIXES:
            raise bad_request(f"Invalid repo type '{repo_type}'")
        namespace, _, name = body["name"].rpartition("/")
        namespace = body.get("organization") or namespace or user
        return repo_type, namespace, name

    def ep_repo_create(self, req: Request) -> Response:
        """``POST /api/repos/create``: create a repo with the Hub's initial commit (a ``.gitattributes``).

        The body has ``name`` (maybe ``ns/name``), optional ``organization``, ``type`` (default ``model``) and
        ``private`` or ``visibility`` (``public``, ``private`` or ``protected``; all but ``public`` are private).
        Answers ``{"url", "name", "id"}``. 401 when anonymous; 403 outside the caller's own namespace (no
        organisations) or in a reserved one; 400 for an invalid type, name or visibility; 409 when the repo exists
        in any letter case, with its ``url`` in the body.
        """
        user = self._require_user(req)
        body = req.body.json()
        repo_type, namespace, name = self._repo_spec(body, user)
        visibility = body.get("visibility", "private" if body.get("private") else "public")
        if visibility not in ("private", "public", "protected"):  # as the settings endpoint
            raise bad_request(f"Invalid visibility '{visibility}'")
        private = visibility != "public"
        if namespace != user or namespace in RESERVED_NAMESPACES:
            raise forbidden(f"You don't have the rights to create a repo under the namespace '{namespace}'")
        url = self.repo_url(req, repo_type, f"{namespace}/{name}")
        existing = self.storage.get(repo_type, f"{namespace}/{name}")
        if existing is not None:
            raise conflict(
                f"You already created this {repo_type} repo", url=self.repo_url(req, repo_type, existing.id)
            )
        try:
            repo = self.storage.create(repo_type, namespace, name, owner=user, private=private)
        except HubError as e:
            if e.status == 409:  # created concurrently
                e.body["url"] = url
            raise
        return Response.json({"url": url, "name": repo.id, "id": repo.meta.uid})

    def ep_repo_delete(self, req: Request) -> Response:
        """``DELETE /api/repos/delete``: delete the repo the body names (``name``, ``organization``, ``type``).

        Answers ``{}``. 401 when anonymous, RepoNotFound when it does not exist or is hidden, 403 when not the
        owner.
        """
        user = self._require_user(req)
        repo_type, namespace, name = self._repo_spec(req.body.json(), user)
        self.storage.delete(self.repo_for(req, write=True, target=(repo_type, f"{namespace}/{name}")))
        return Response.json({})

    def ep_repo_settings(self, req: Request) -> Response:
        """``PUT /api/{type}s/{repo_id}/settings``: change visibility and gating; answers ``{}``.

        Body: ``private`` (bool) or ``visibility`` (``public``, ``private``, ``protected``; wins over ``private``)
        and ``gated`` (false, ``"auto"``, ``"manual"``). Gating is stored and reported by repo info, never
        enforced. Owner only (403); 400 for an unknown value.
        """
        repo = self.repo_for(req, write=True)
        body = req.body.json()
        if not isinstance(body, dict):
            raise bad_request("Expected a JSON object")
        private = body.get("private")
        if "visibility" in body:
            if body["visibility"] not in ("private", "public", "protected"):
                raise bad_request(f"Invalid visibility '{body['visibility']}'")
            private = body["visibility"] != "public"
        gated = body.get("gated")
        if gated is not None and gated not in (False, "auto", "manual"):
            raise bad_request(f"Invalid gated value '{gated}'")
        self.storage.update_settings(repo, private=None if private is None else bool(private), gated=gated)
        return Response.json({})

    def ep_repo_info(self, req: Request) -> Response:
        """``GET /api/{type}s/{repo_id}[/revision/{rev}]``: repo info at ``rev`` (default ``main``).

        ``sha`` is the resolved commit; ``siblings`` lists every file (with ``blobId``, ``size`` and ``lfs`` when
        ``blobs=1``); ``cardData`` is the README's front matter when it parses. ``expand``/``expand[]`` keep only
        the keys named (plus ``_id`` and ``id``). Downloads and likes are always 0. RevisionNotFound for an unknown
        ``rev``. Read by ``HfApi.repo_info``.
        """
        repo = self.repo_for(req)
        rev = req.params.get("rev") or DEFAULT_BRANCH
        sha = repo.resolve(rev)
        head = repo.read_commit(sha)
        files = repo.files(sha)
        blobs = req.flag("blobs")

        def sibling(e: Entry) -> dict[str, Any]:
            if not blobs:
                return {"rfilename": e.path}
            item: dict[str, Any] = {"rfilename": e.path, "blobId": e.oid, "size": e.size}
            if e.lfs:
                item["lfs"] = {"sha256": e.lfs.oid, "size": e.lfs.size, "pointerSize": e.lfs.pointer_size}
            return item

        info: dict[str, Any] = {
            "_id": repo.meta.uid,
            "id": repo.id,
            "author": repo.id.split("/")[0],
            "sha": sha,
            "lastModified": utc_iso(head.timestamp),
            "createdAt": utc_iso(repo.meta.created_at),
            "private": repo.meta.private,
            "gated": repo.meta.gated,
            "disabled": False,
            "tags": [],
            "downloads": 0,
            "likes": 0,
            "siblings": [sibling(e) for e in files],
            "usedStorage": sum(e.size for e in files),
        }
        if repo.type == "model":
            info["modelId"] = repo.id
        readme = repo.read_file(sha, "README.md", limit=1024 * 1024)
        if readme is not None and (data := card_data(readme.decode("utf-8", "replace"))) is not None:
            info["cardData"] = data
        expand = req.query.get("expand", []) + req.query.get("expand[]", [])
        if expand:
            info = {k: v for k, v in info.items() if k in ("_id", "id") or k in expand}
        return Response.json(info)

    # --- uploads -----------------------------------------------------------------------------------------------

    def ep_preupload(self, req: Request) -> Response:
        """``POST /api/{type}s/{repo_id}/preupload/{rev}``: how the client must upload each file of ``files``.

        Per file: ``uploadMode`` ``lfs`` when ``.gitattributes`` tracks the path (the body's ``gitAttributes``,
        else the revision's file), the file is 10 MiB or more, or its base64 ``sample`` looks binary (§4.3),
        ``regular`` otherwise and always for empty files; ``shouldIgnore`` from ``.gitignore`` (same rule); and the
        current ``oid`` of a file already at that path (sha256 for LFS, git blob oid otherwise). ``commitOid`` is
        the head it was computed at.

        Write access needed (read access with ``create_pr=1``, where ``rev`` may be any revision; otherwise it must
        be a branch or ``refs/pr/N``: RevisionNotFound). 400 for a malformed ``files`` list.
        """
        create_pr = req.flag("create_pr")
        rev = req.params.get("rev") or DEFAULT_BRANCH
        repo = self.repo_for(req, write=True, create_pr=create_pr, revision=rev)
        head = repo.resolve(rev) if create_pr else self._branch_head(repo, rev)
        body = req.body.json()
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, list):
            raise bad_request("'files' must be a list")
        attributes_text = body.get("gitAttributes")
        if not isinstance(attributes_text, str):
            attributes_text = (repo.read_file(head, ".gitattributes") or b"").decode("utf-8", "replace")
        ignore_text = body.get("gitIgnore")
        if not isinstance(ignore_text, str):
            ignore_text = (repo.read_file(head, ".gitignore") or b"").decode("utf-8", "replace")
        attributes, ignore = GitAttributes(attributes_text), GitIgnore(ignore_text)
        answers = []
        for item in files:
            try:
                path, size = str(item["path"]), int(item.get("size", 0))
                sample = base64.b64decode(item.get("sample") or "")
            except (KeyError, TypeError, ValueError, binascii.Error):
                raise bad_request(f"Invalid file entry: {item!r}") from None
            lfs = attributes.is_lfs(path) or size >= LFS_SIZE_THRESHOLD or _is_binary(sample, size)
            answer: dict[str, Any] = {
                "path": path,
                "uploadMode": "lfs" if lfs and size > 0 else "regular",
                "shouldIgnore": ignore.is_ignored(path),
            }
            existing = repo.entry(head, path)
            if existing is not None and existing.type == "file":
                answer["oid"] = existing.lfs.oid if existing.lfs else existing.oid
            answers.append(answer)
        return Response.json({"files": answers, "commitOid": head})

    def ep_lfs_batch(self, req: Request) -> Response:
        """``POST /{prefix}{repo_id}.git/info/lfs/objects/batch``: git-lfs batch API (upload, basic transfer).

        Per object: no ``actions`` when this repo already has it (the client skips it); otherwise an ``upload``
        action whose ``href`` carries a signed ticket (it needs no token) and a ``verify`` action. Objects larger
        than ``lfs_multipart_threshold`` get one URL per part and ``chunk_size`` in the upload's ``header``. An
        invalid oid or size is a per-object 422 error. Without a ``ref`` (uploads for a new pull request), read
        access and a token suffice; with one, write access to that ref. 400 without an ``objects`` list or for a
        download.
        """
        body = req.body.json()
        if not isinstance(body, dict) or not isinstance(body.get("objects"), list):
            raise bad_request("Expected a git-lfs batch request with an 'objects' list")
        # Uploads for a pull request carry no ref: they only need read access (like the PR itself); uploads for
        # an open pull request carry its ref, which its author may write to.
        ref = body.get("ref")
        name = ref.get("name") if isinstance(ref, dict) else None
        repo = self.repo_for(req, write=True, create_pr=not ref, revision=name if isinstance(name, str) else None)
        if body.get("operation", "upload") != "upload":
            raise bad_request("Only the 'upload' operation is supported (download through /resolve)")
        prefix = f"{req.base_url}/{URL_PREFIXES[repo.type]}{repo.id}"
        objects = []
        for obj in body["objects"]:
            oid, size = (obj.get("oid"), obj.get("size")) if isinstance(obj, dict) else (None, None)
            if not isinstance(oid, str) or not SHA256_RE.match(oid) or not isinstance(size, int) or size < 0:
                objects.append(
                    {"oid": str(oid), "size": 0, "error": {"code": 422, "message": "Invalid oid or size"}}
                )
                continue
            if repo.lfs_linked(oid) and self.storage.lfs.size(oid) == size:
                objects.append({"oid": oid, "size": size})  # already stored: no actions, the client skips it
                continue
            multipart = size > self.config.lfs_multipart_threshold
            chunk = self.config.lfs_chunk_size if multipart else 0
            href = f"{req.base_url}/lfs-upload/{oid}/{self.tickets.issue(repo.type, repo.id, oid, size, chunk)}"
            upload: dict[str, Any] = {"href": href}
            if multipart:
                parts = -(-size // chunk)
                upload["header"] = {
                    "chunk_size": str(chunk),
                    **{str(n): f"{href}/part/{n}" for n in range(1, parts + 1)},
                }
            objects.append(
                {
                    "oid": oid,
                    "size": size,
                    "authenticated": True,
                    "actions": {"upload": upload, "verify": {"href": f"{prefix}.git/info/lfs/objects/verify"}},
                }
            )
        return Response.json({"transfer": "basic", "objects": objects}, content_type=LFS_CONTENT_TYPE)

    def _upload_target(self, req: Request) -> tuple[Repo, str, Ticket]:
        """The repo an upload URL's ticket is bound to (which must still exist), the ticket string and claims."""
        token = req.params["ticket"]
        ticket = self.tickets.verify(token, req.params["oid"])
        repo = self.storage.get(ticket.repo_type, ticket.repo_id)
        if repo is None:
            raise repo_not_found()
        return repo, token, ticket

    def ep_lfs_upload(self, req: Request) -> Response:
        """``PUT /lfs-upload/{oid}/{ticket}``: receive a whole LFS object and link it to the ticket's repo.

        The ticket authorises it (no token). Answers ``{}``. 403 for a forged or expired ticket, RepoNotFound when
        the repo is gone, 400 when the size or sha256 of the body does not match (nothing is kept).
        """
        repo, _, ticket = self._upload_target(req)
        self.storage.lfs.receive(req.body, ticket.oid, ticket.size)
        repo.link_lfs(ticket.oid)
        return Response.json({})

    def ep_lfs_upload_part(self, req: Request) -> Response:
        """``PUT /lfs-upload/{oid}/{ticket}/part/{n}``: stage part ``n`` (1-based) of a multipart upload.

        Answers 200 with an ``ETag`` header (the part's sha256, quoted) and no body. 400 for a part number out of
        range, a ticket of a basic upload, or a part of the wrong length.
        """
        _, token, ticket = self._upload_target(req)
        try:
            number = int(req.params["part"])
        except ValueError:
            raise bad_request("Invalid part number") from None
        etag = self.multipart.put_part(token, ticket, number, req.body)
        return Response(200, {"ETag": etag})

    def ep_lfs_complete(self, req: Request) -> Response:
        """``POST /lfs-upload/{oid}/{ticket}``: complete a multipart upload (assemble, check, store, link).

        Body ``{"parts": [{"partNumber", "etag"}, ...]}`` listing every part once. Answers ``{}``, also to a
        retried completion whose first attempt succeeded. 400 for a missing or mismatched part, or a wrong size or
        sha256.
        """
        repo, token, ticket = self._upload_target(req)
        self.multipart.complete(token, ticket, req.body.json())
        repo.link_lfs(ticket.oid)
        return Response.json({}, content_type=LFS_CONTENT_TYPE)

    def ep_lfs_verify(self, req: Request) -> Response:
        """``POST /{prefix}{repo_id}.git/info/lfs/objects/verify``: git-lfs' check after an upload.

        ``{}`` when this repo has object ``oid`` with exactly ``size`` bytes, 404 otherwise. Read access and a
        token needed (401 when anonymous).
        """
        repo = self.repo_for(req)
        self._require_user(req)
        body = req.body.json()
        oid, size = body.get("oid"), body.get("size")
        if not (isinstance(oid, str) and repo.lfs_linked(oid) and self.storage.lfs.size(oid) == size):
            raise HubError(404, f"LFS object {oid} of size {size} not found")
        return Response.json({}, content_type=LFS_CONTENT_TYPE)

    # --- commits -----------------------------------------------------------------------------------------------

    def ep_commit(self, req: Request) -> Response:
        """``POST /api/{type}s/{repo_id}/commit/{rev}``: one commit from an NDJSON payload (``create_commit``).

        Lines: a ``header`` (``summary``, ``description``, ``parentCommit``), then ``file`` (base64 content),
        ``lfsFile`` (an object uploaded through this repo), ``deletedFile`` and ``deletedFolder``; applied all or
        nothing. ``parentCommit``, when given, must be the branch head (412 otherwise). ``create_pr=1`` opens a
        pull request ``refs/pr/N`` instead (read access suffices; ``parentCommit`` may then be any commit to start
        from) and adds ``pullRequestUrl`` to the answer's ``commitOid`` and ``commitUrl``. A pull request's author
        may commit to its ``refs/pr/N``.

        400 for a malformed payload or an unknown LFS object, RevisionNotFound for an unknown branch, EntryNotFound
        for deleting a missing path, 422 for an invalid path or a file/directory clash.
        """
        create_pr = req.flag("create_pr")
        rev = req.params.get("rev") or DEFAULT_BRANCH
        repo = self.repo_for(req, write=True, create_pr=create_pr, revision=rev)
        assert req.user is not None
        self._branch_head(repo, rev)  # fail fast (before reading a large body) on an unknown branch
        header, operations = self._read_commit_payload(req.body, repo)
        summary = header.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise bad_request("The commit header needs a non-empty 'summary'")
        parent = header.get("parentCommit")
        result = self.storage.commit(
            repo,
            revision=rev,
            operations=operations,
            title=summary,
            description=str(header.get("description") or ""),
            author=req.user,
            parent_commit=str(parent) if parent else None,
            create_pr=create_pr,
        )
        url = self.repo_url(req, repo.type, repo.id)
        answer: dict[str, Any] = {
            "success": True,
            "commitOid": result.oid,
            "commitUrl": f"{url}/commit/{result.oid}",
            "hookOutput": "",
        }
        if result.pr_num is not None:
            answer["pullRequestUrl"] = f"{url}/discussions/{result.pr_num}"
        return Response.json(answer)

    @staticmethod
    def _read_commit_payload(body: BodyReader, repo: Repo) -> tuple[dict[str, Any], list[Operation]]:
        """Parse the NDJSON body line by line; regular file contents go straight to blobs, not to memory."""
        header: dict[str, Any] | None = None
        operations: list[Operation] = []
        while line := body.readline():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
            except (ValueError, KeyError, TypeError):
                raise bad_request("Each line of the commit payload must be a JSON {key, value} object") from None
            if not isinstance(value, dict):
                raise bad_request(f"Invalid value for '{key}'")
            if key == "header":
                header = value
                continue
            path = value.get("path")
            if not isinstance(path, str):
                raise HubError(422, f"Missing path in '{key}' operation")
            if key == "file":
                content = value.get("content", "")
                encoding = value.get("encoding", "base64")
                try:
                    data = (
                        base64.b64decode(content, validate=True) if encoding == "base64" else str(content).encode()
                    )
                except (binascii.Error, ValueError):
                    raise bad_request(f"Invalid base64 content for '{path}'") from None
                operations.append(AddFile(path, repo.objects.write("blob", data)))
            elif key == "lfsFile":
                oid, size = value.get("oid"), value.get("size")
                if value.get("algo", "sha256") != "sha256" or not isinstance(oid, str) or not SHA256_RE.match(oid):
                    raise bad_request(f"Invalid LFS oid for '{path}'")
                if size is not None and not isinstance(size, int):
                    raise bad_request(f"Invalid LFS size for '{path}'")
                operations.append(AddLfsFile(path, oid, size))
            elif key in ("deletedFile", "deletedFolder"):
                operations.append(DeletePath(path, folder=key == "deletedFolder"))
            else:
                raise bad_request(f"Unknown commit operation '{key}'")
        if header is None:
            raise bad_request("The commit payload must start with a 'header' line")
        return header, operations

    # --- listings ----------------------------------------------------------------------------------------------

    def _entry_json(self, repo: Repo, head: str, e: Entry, expand: bool) -> dict[str, Any]:
        item: dict[str, Any] = {"type": e.type, "oid": e.oid, "size": e.size, "path": e.path}
        if e.lfs:
            item["lfs"] = {"oid": e.lfs.oid, "size": e.lfs.size, "pointerSize": e.lfs.pointer_size}
        if expand:
            oid, commit = repo.last_commit(head, e.path)
            item["lastCommit"] = {"id": oid, "title": commit.title, "date": utc_iso(commit.timestamp)}
            if e.type == "file":
                item["securityFileStatus"] = {
                    "status": "safe",
                    "avScan": {"virusFound": False, "virusNames": None},
                    "pickleImportScan": None,
                }
        return item

    def _page(
        self, req: Request, items: list[Any], cursor_name: str, next_url: Callable[[int], str], size: int
    ) -> tuple[list[Any], dict[str, str]]:
        """Slice one page; a ``Link: <url>; rel="next"`` header when more remain (§5.11)."""
        try:
            start = max(0, int(req.arg(cursor_name) or 0))
        except ValueError:
            raise bad_request(f"Invalid {cursor_name}") from None
        size = max(1, size)
        page = items[start : start + size]
        headers = {"X-Total-Count": str(len(items))}
        if start + size < len(items):
            headers["Link"] = f'<{next_url(start + size)}>; rel="next"'
        return page, headers

    def ep_tree(self, req: Request) -> Response:
        """``GET /api/{type}s/{repo_id}/tree/{rev}[/{path}]``: a directory's entries (``list_repo_tree``).

        ``recursive=1`` lists all descendants. Directories first, then files, each by path; LFS files carry ``lfs``
        and their real size. ``expand=1`` adds each entry's ``lastCommit`` (and a scan status for files) and pages
        by at most 50. Paged by ``cursor``: ``Link: rel="next"`` names the resolved commit, so a branch moving
        between pages cannot shift the listing. EntryNotFound when ``path`` is not a directory.
        """
        repo = self.repo_for(req)
        head = repo.resolve(req.params["rev"])
        path = req.params["path"].strip("/")
        recursive, expand = req.flag("recursive"), req.flag("expand")
        entries = repo.list_dir(head, path, recursive)
        if entries is None:
            raise entry_not_found(f"Directory not found: '{path}'", headers={"X-Repo-Commit": head})
        # Next pages are addressed by commit oid, so a branch moving between pages cannot shift the listing.
        base = f"{req.base_url}/api/{repo.type}s/{repo.id}/tree/{head}" + (
            f"/{quote(path, safe='')}" if path else ""
        )
        query = f"recursive={str(recursive).lower()}&expand={str(expand).lower()}"
        size = min(self.config.page_size, _DEFAULT_EXPAND_PAGE) if expand else self.config.page_size
        page, headers = self._page(req, entries, "cursor", lambda n: f"{base}?{query}&cursor={n}", size)
        return Response.json([self._entry_json(repo, head, e, expand) for e in page], headers=headers)

    def ep_paths_info(self, req: Request) -> Response:
        """``POST /api/{type}s/{repo_id}/paths-info/{rev}``: entries of the listed paths (``get_paths_info``).

        Body: a form (``paths`` repeated, ``expand=true``) or JSON. Missing paths and duplicates are left out, and
        so is the repo root. 413 for more than 1000 paths, as the real Hub.
        """
        repo = self.repo_for(req)
        head = repo.resolve(req.params["rev"])
        raw = req.body.read_all(16 * 1024 * 1024)
        if "json" in (req.headers.get("Content-Type") or ""):
            body = json_object(raw)
            paths, expand = body.get("paths") or [], bool(body.get("expand"))
            if isinstance(paths, str):
                paths = [paths]
            if not isinstance(paths, list):
                raise bad_request("'paths' must be a path or a list of paths")
        else:
            form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
            paths, expand = form.get("paths", []), (form.get("expand", ["false"])[-1].lower() == "true")
        if len(paths) > PATHS_INFO_MAX:  # the real Hub: "413 Payload Too Large ... too many parameters"
            raise HubError(413, "too many parameters")
        entries = [
            e for p in dict.fromkeys(paths) if isinstance(p, str) and (e := repo.entry(head, p)) is not None
        ]
        return Response.json([self._entry_json(repo, head, e, expand) for e in entries if e.path])

    def ep_commits(self, req: Request) -> Response:
        """``GET /api/{type}s/{repo_id}/commits/{rev}``: first-parent history, newest first.

        As ``list_repo_commits`` reads it. Paged by ``p`` (``X-Total-Count``; ``Link: rel="next"`` names the
        resolved commit). ``expand[]=formatted`` adds an HTML-escaped ``formatted`` title and message.
        """
        repo = self.repo_for(req)
        head = repo.resolve(req.params["rev"])
        history = list(repo.history(head))
        formatted = "formatted" in req.query.get("expand[]", []) + req.query.get("expand", [])
        base = f"{req.base_url}/api/{repo.type}s/{repo.id}/commits/{head}"
        extra = "expand[]=formatted&" if formatted else ""
        page, headers = self._page(req, history, "p", lambda n: f"{base}?{extra}p={n}", self.config.page_size)
        items = []
        for oid, commit in page:
            item: dict[str, Any] = {
                "id": oid,
                "title": commit.title,
                "message": commit.description,
                "authors": [{"user": commit.author, "avatar": ""}],
                "date": utc_iso(commit.timestamp),
            }
            if formatted:
                item["formatted"] = {"title": escape(commit.title), "message": escape(commit.description)}
            items.append(item)
        return Response.json(items, headers=headers)

    def ep_refs(self, req: Request) -> Response:
        """``GET /api/{type}s/{repo_id}/refs``: branches (``main`` first), tags, pull requests (``include_prs=1``).

        As ``list_repo_refs`` reads it; ``converts`` is always empty.
        """
        repo = self.repo_for(req)
        refs = repo.refs()
        branches = sorted(refs.branches.items(), key=lambda kv: (kv[0] != DEFAULT_BRANCH, kv[0]))
        answer: dict[str, Any] = {
            "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": o} for b, o in branches],
            "converts": [],
            "tags": [
                {"name": t, "ref": f"refs/tags/{t}", "targetCommit": o} for t, o in sorted(refs.tags.items())
            ],
        }
        if req.flag("include_prs"):
            answer["pullRequests"] = [
                {"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": o}
                for n, o in sorted(refs.prs.items())
            ]
        return Response.json(answer)

    # --- branches and tags -------------------------------------------------------------------------------------

    def ep_create_branch(self, req: Request) -> Response:
        """``POST /api/{type}s/{repo_id}/branch/{branch}``: create a branch at the body's ``startingPoint``.

        ``startingPoint`` is any revision, ``main`` by default. Owner only. Answers ``{}``; 400 for an invalid
        name, 409 when it exists, RevisionNotFound for an unknown start.
        """
        repo = self.repo_for(req, write=True)
        body = req.body.json()
        start = body.get("startingPoint") if isinstance(body, dict) else None
        self.storage.create_branch(repo, req.params["rev"], start or DEFAULT_BRANCH)
        return Response.json({})

    def ep_delete_branch(self, req: Request) -> Response:
        """``DELETE /api/{type}s/{repo_id}/branch/{branch}``: owner only; 403 for ``main``, 404 if absent."""
        repo = self.repo_for(req, write=True)
        self.storage.delete_branch(repo, req.params["rev"])
        return Response.json({})

    def ep_create_tag(self, req: Request) -> Response:
        """``POST /api/{type}s/{repo_id}/tag/{rev}``: tag revision ``rev`` (``main`` if empty) as ``tag``.

        Owner only. Answers ``{}``; 400 without ``tag`` or for an invalid name, 409 when the tag exists.
        """
        repo = self.repo_for(req, write=True)
        body = req.body.json()
        tag = body.get("tag") if isinstance(body, dict) else None
        if not isinstance(tag, str):
            raise bad_request("'tag' is required")
        self.storage.create_tag(repo, tag, req.params.get("rev") or DEFAULT_BRANCH)
        return Response.json({})

    def ep_delete_tag(self, req: Request) -> Response:
        """``DELETE /api/{type}s/{repo_id}/tag/{tag}``: owner only; RevisionNotFound when the tag is absent."""
        repo = self.repo_for(req, write=True)
        self.storage.delete_tag(repo, req.params["rev"])
        return Response.json({})

    # --- downloads ---------------------------------------------------------------------------------------------

    def ep_resolve(self, req: Request) -> Response:
        """``GET``/``HEAD /{prefix}{repo_id}/resolve/{rev}/{path}``: a file's content (``hf_hub_download``).

        Streamed directly (no redirect), LFS files included, with the Hub's headers: ``X-Repo-Commit``, ``ETag``
        (sha256 for LFS files, git blob oid otherwise) and, for LFS files, ``X-Linked-Etag``/``X-Linked-Size``. One
        ``Range`` gets a 206 (416 when it starts past the end). EntryNotFound for a missing path or a directory.
        """
        repo = self.repo_for(req)
        head = repo.resolve(req.params["rev"])
        path = req.params["path"]
        entry = repo.entry(head, path) if path else None
        if entry is None or entry.type != "file":
            raise entry_not_found(f"Entry not found: '{path}'", headers={"X-Repo-Commit": head})
        etag = entry.lfs.oid if entry.lfs else entry.oid
        name = path.rsplit("/", 1)[-1]
        headers = {
            "X-Repo-Commit": head,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}; filename=\"{_sanitize_header(name)}\"",
        }
        if entry.lfs:
            headers["X-Linked-Etag"] = f'"{entry.lfs.oid}"'
            headers["X-Linked-Size"] = str(entry.size)
        byte_range = parse_range(req.headers.get("Range"), entry.size)
        if byte_range is None:
            return Response(200, headers, stream=lambda: repo.iter_content(entry), length=entry.size)
        start, end = byte_range
        headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        length = end - start + 1
        return Response(206, headers, stream=lambda: repo.iter_content(entry, start, length), length=length)
