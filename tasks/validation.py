"""Checks on push parameters that need no network: they run before anything reaches the Hub."""

from __future__ import annotations

import re

# The Hub's own rules for each half of a repo id (huggingface_hub's validate_repo_id, and the server's).
_REPO_PART = re.compile(r"^[A-Za-z0-9_.\-]{1,96}$")
_COMMIT_ID = re.compile(r"[0-9a-f]{40}")  # what huggingface_hub takes for a commit (its REGEX_COMMIT_HASH)


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
    """Return the stripped dataset description, refusing an empty one (the card needs it) and one that opens a
    Markdown block it does not close (the rest of the card would disappear into it)."""
    if description is None or not str(description).strip():
        raise InvalidParameterError(
            "description is empty: pass a sentence or more describing the dataset; it opens the dataset card."
        )
    text = str(description).strip()
    unclosed = _unclosed_block(text)
    if unclosed:
        raise InvalidParameterError(
            f"description opens {unclosed} and does not close it: the rest of the dataset card would be hidden "
            "in it. Close it in the description."
        )
    return text


# Markdown blocks that run to their closing line, or to the end of the document (CommonMark: fenced code, and the
# HTML blocks that end at a closing tag or at '-->').
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HTML_BLOCKS = (
    (re.compile(r"^ {0,3}<!--"), "-->", "an HTML comment (<!--)"),
    *(
        (re.compile(rf"^ {{0,3}}<{tag}(?:[\s>]|$)", re.IGNORECASE), f"</{tag}>", f"a <{tag}> block")
        for tag in ("pre", "script", "style", "textarea")
    ),
)


def _unclosed_block(text: str) -> str | None:
    """What ``text`` opens and leaves open at its end (a code fence, an HTML comment or raw block), or None."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            mark = fence.group(1)
            closing = re.compile(rf"^ {{0,3}}{re.escape(mark[0])}{{{len(mark)},}}\s*$")
            end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), None)
            if end is None:
                return f"a code block ({mark})"
            i = end + 1
            continue
        for start, end_mark, what in _HTML_BLOCKS:
            if start.match(line):
                rest = "\n".join(lines[i:])[line.index("<") + 4 :]
                if end_mark.lower() not in rest.lower():
                    return what
                break
        i += 1
    return None


# What ``git check-ref-format --branch`` refuses inside a name: the Hub refuses such a branch with a 400, but only
# once the push has created the repo.
_BAD_BRANCH_TEXT = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def validate_dask_address(task_runner: str, dask_address: str | None) -> None:
    """Refuse a Dask scheduler address given without ``task_runner="dask"``: it would be ignored, and the batches
    would run on threads.

    Raises:
        InvalidParameterError: naming both fields and the two ways out.
    """
    if dask_address and task_runner != "dask":
        raise InvalidParameterError(
            f"dask_address {dask_address!r} is used only with task_runner='dask', and task_runner is "
            f"{task_runner!r}: set task_runner to 'dask' to run the batches on that cluster, or leave dask_address "
            "empty."
        )


def validate_revision(revision: str) -> str:
    """Refuse revisions the Hub cannot commit to: empty, tag-looking refs, commit ids, names git refuses as a
    branch.

    Raises:
        InvalidParameterError: naming the revision and the rule it breaks.
    """
    if not revision or revision != revision.strip() or " " in revision:
        raise InvalidParameterError(f"revision {revision!r} is not a valid branch name.")
    if revision.startswith("refs/"):
        if not re.fullmatch(r"refs/pr/\d+", revision):
            raise InvalidParameterError(f"revision {revision!r}: push to a branch name or to 'refs/pr/N'.")
        return revision
    # The push would create a branch of that name. huggingface_hub takes a 40-hex revision for a commit, which
    # never changes, and serves it from its cache without asking the Hub: readers would keep the first push.
    if _COMMIT_ID.fullmatch(revision):
        raise InvalidParameterError(
            f"revision {revision!r} is a commit id, which cannot be pushed to: push to a branch name or to 'refs/pr/N'."
        )
    parts = revision.split("/")
    if (
        _BAD_BRANCH_TEXT.search(revision)
        or revision in ("@", "HEAD")
        or revision.startswith("-")
        or revision.endswith(".")
        or any(not part or part.startswith(".") or part.endswith(".lock") for part in parts)
    ):
        raise InvalidParameterError(
            f"revision {revision!r} is not a valid branch name: git (and so the Hub) refuses '..', '//', '@{{', "
            "spaces, control characters and any of ~ ^ : ? * [ \\, a name that starts with '-' or ends with '.', "
            "'@' and 'HEAD', and a '/'-separated part that is empty, starts with '.' or ends with '.lock'. "
            "Use letters, digits, '-', '_', '.' and '/', e.g. 'nightly' or 'runs/2026-11-22'."
        )
    return revision


# Shapes of the card's Hub vocabulary. Which identifiers exist is the Hub's to say (it refuses an unknown license
# at the card commit and warns about unknown task categories); these catch what can never be right, such as a
# license written as its full name or a language written out.
# The patterns are also the deployments' JSON-schema patterns, which the Prefect server checks.
LICENSE_PATTERN = r"^[a-z0-9][a-z0-9.+-]*$"
# An ISO 639 code (2 or 3 letters), optionally with BCP-47 subtags (zh-Hans, en-US); "multilingual" and "code"
# (programming languages) are card values too. A name written out ("english") is not a code.
LANGUAGE_PATTERN = r"^(?:multilingual|code|[a-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*)$"
TASK_ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
_LICENSE_ID, _LANGUAGE_CODE, _TASK_ID = (
    re.compile(p) for p in (LICENSE_PATTERN, LANGUAGE_PATTERN, TASK_ID_PATTERN)
)
LICENSES_URL = "https://huggingface.co/docs/hub/repositories-licenses"


def validate_license(license: str | None) -> str | None:
    """Return the stripped card ``license`` (None when empty), refusing what is not a Hub license identifier.

    Raises:
        InvalidParameterError: e.g. ``"MIT"`` or ``"Apache 2.0"`` (the identifiers are ``mit``, ``apache-2.0``).
    """
    value = (license or "").strip()
    if value and not _LICENSE_ID.fullmatch(value):
        raise InvalidParameterError(
            f"license {license!r} is not a Hub license identifier: identifiers are lowercase, with '-' for spaces "
            f"(e.g. 'mit', 'apache-2.0', 'cc-by-4.0'); see {LICENSES_URL}, or pass 'other'."
        )
    return value or None


def validate_languages(language: list[str] | None) -> list[str] | None:
    """Return the card ``language`` codes, stripped and de-duplicated (None when empty), refusing names.

    Raises:
        InvalidParameterError: e.g. ``"English"`` (the code is ``en``).
    """
    codes = _stripped_unique(language)
    for code in codes:
        if not _LANGUAGE_CODE.fullmatch(code):
            raise InvalidParameterError(
                f"language {code!r} is not a language code: pass ISO 639 codes such as 'en', 'fr' or 'zh'."
            )
    return codes or None


def validate_task_categories(task_categories: list[str] | None) -> list[str] | None:
    """Return the card ``task_categories``, stripped and de-duplicated (None when empty), refusing what is not a
    Hub task id.

    Raises:
        InvalidParameterError: e.g. ``"Text Generation"`` (the id is ``text-generation``).
    """
    categories = _stripped_unique(task_categories)
    for category in categories:
        if not _TASK_ID.fullmatch(category):
            hint = "-".join(re.findall(r"[a-z0-9]+", category.lower()))
            raise InvalidParameterError(
                f"task category {category!r} is not a Hub task id: ids are lowercase words joined by '-'"
                + (f" (perhaps {hint!r})." if hint else ".")
            )
    return categories or None


def _stripped_unique(values: list[str] | None) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values or [] if v.strip()))
