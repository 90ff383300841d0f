"""Checks on push parameters that need no network: they run before anything reaches the Hub."""

from __future__ import annotations

import re

# The Hub's own rules for each half of a repo id (huggingface_hub's validate_repo_id, and the server's).
_REPO_PART = re.compile(r"^[A-Za-z0-9_.\-]{1,96}$")


class InvalidParameterError(ValueError):
    """A push parameter is malformed; the message names the parameter and what to do."""


def validate_repo_id(repo_id: str) -> str:
    """Check that ``repo_id`` is ``namespace/name`` under the Hub's character rules and return it.

    Raises:
        InvalidParameterError: naming what is wrong (slashes, characters, ``--``/``..``, length).
    """
    if not isinstance(repo_id, str) or not repo_id.strip():
        raise InvalidParameterError("repo_id is empty: pass it as 'namespace/name', e.g. 'alice/greetings'.")
    if repo_id.count("/") != 1:
        raise InvalidParameterError(
            f"repo_id {repo_id!r} must contain exactly one '/', as 'namespace/name' (e.g. 'alice/greetings')."
        )
    if "--" in repo_id or ".." in repo_id:
        raise InvalidParameterError(f"repo_id {repo_id!r} must not contain '--' or '..'.")
    for part_name, part in zip(("namespace", "name"), repo_id.split("/"), strict=True):
        if not part:
            raise InvalidParameterError(f"repo_id {repo_id!r} has an empty {part_name}.")
        if len(part) > 96:
            raise InvalidParameterError(f"repo_id {repo_id!r}: the {part_name} is longer than 96 characters.")
        if not _REPO_PART.match(part):
            raise InvalidParameterError(
                f"repo_id {repo_id!r}: the {part_name} {part!r} may only use letters, digits, '-', '_' and '.'."
            )
        if part.startswith(("-", ".")) or part.endswith(("-", ".")):
            raise InvalidParameterError(
                f"repo_id {repo_id!r}: the {part_name} {part!r} must not start or end with '-' or '.'."
            )
    if repo_id.endswith(".git"):
        raise InvalidParameterError(f"repo_id {repo_id!r} must not end with '.git'.")
    return repo_id


def validate_description(description: str | None) -> str:
    """Return the stripped dataset description, refusing an empty one (the card needs it)."""
    if description is None or not str(description).strip():
        raise InvalidParameterError(
            "description is empty: pass a sentence or more describing the dataset; it opens the dataset card."
        )
    return str(description).strip()


def validate_revision(revision: str) -> str:
    """Refuse revisions the Hub cannot commit to (empty, tags-looking refs, whitespace)."""
    if not revision or revision != revision.strip() or " " in revision:
        raise InvalidParameterError(f"revision {revision!r} is not a valid branch name.")
    if revision.startswith("refs/") and not re.fullmatch(r"refs/pr/\d+", revision):
        raise InvalidParameterError(f"revision {revision!r}: push to a branch name or to 'refs/pr/N'.")
    return revision
