"""The Hub's error model (hub-protocol §3): one exception type, rendered by the server as a JSON error.

The client classifies errors by the ``X-Error-Code`` header (RepoNotFound, RevisionNotFound, EntryNotFound),
so those three MUST always carry it; everything else is told apart by status code and message.
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """An HTTP error answer: ``{"error": message}`` with ``X-Error-Message`` (and ``X-Error-Code`` if given)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})
        self.body = body if body is not None else {"error": message}


def repo_not_found(anonymous: bool = False) -> HubError:
    """RepoNotFound: 401 for an anonymous caller, as the real Hub, else 404 (also for others' private repos)."""
    # Anonymous callers get 401 like the real Hub; both map to RepositoryNotFoundError through the header.
    return HubError(401 if anonymous else 404, "Repository not found", code="RepoNotFound")


def revision_not_found(rev: str) -> HubError:
    """RevisionNotFound (404): ``rev`` names no branch, tag, pull request or commit."""
    return HubError(404, f"Invalid rev id: {rev}", code="RevisionNotFound")


def entry_not_found(message: str, headers: dict[str, str] | None = None) -> HubError:
    """EntryNotFound (404): no such file or directory; ``headers`` usually carry ``X-Repo-Commit``."""
    return HubError(404, message, code="EntryNotFound", headers=headers)


def bad_request(message: str) -> HubError:
    """A 400 (no ``X-Error-Code``): a malformed request or body."""
    return HubError(400, message)


def unauthorized(message: str = "Invalid credentials in Authorization header") -> HubError:
    """A 401 without error code; the default message is the Hub's for an unknown token.

    ``huggingface_hub`` reads a 401 on a repo URL as RepoNotFound unless it carries exactly that default message.
    """
    return HubError(401, message)


def forbidden(message: str) -> HubError:
    """A 403: authenticated, but not allowed (e.g. writing outside one's namespace)."""
    return HubError(403, message)


def conflict(message: str, **extra: Any) -> HubError:
    """A 409; ``extra`` keys (such as the existing repo's ``url``) join ``error`` in the JSON body."""
    return HubError(409, message, body={"error": message, **extra})
