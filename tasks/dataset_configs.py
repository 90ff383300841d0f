"""Which files make a config of a pushed dataset, and at which commit: what a reader resolves before it reads.

A config's files are the ones its dataset card declares: ``README.md`` is downloaded, its YAML front matter's
``configs`` entry gives the ``data_files`` glob(s) of the config, and the glob is resolved with ``HfFileSystem``.
Everything is pinned to one commit: the requested revision (branch, tag or ``refs/pr/N``) is resolved to its
commit sha first (`commit_of`), so a push landing while a read runs cannot mix files of two commits. The image
files under ``images/`` are not a card config; ``images`` resolves to them.

``tasks.read_dataset`` reads the rows of a `ResolvedConfig`; ``flows.verify`` pins the commit and lists the
configs with `commit_of` and `configs_at`. Works against huggingface.co and any Hub-compatible server named by
``HF_ENDPOINT``; public repos are read anonymously when no token is found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from huggingface_hub import HfFileSystem
from huggingface_hub.errors import RemoteEntryNotFoundError
from huggingface_hub.repocard import metadata_load
from pydantic import SecretStr

from tasks.credentials import HuggingFaceCredentials, optional_token
from tasks.hub_client import downloaded, hub_api, hub_filesystem

IMAGES_CONFIG = "images"


class DatasetCardError(ValueError):
    """The repo's dataset card (README.md) is missing or does not declare its configs in a usable way."""


class ConfigNotFoundError(KeyError):
    """The dataset card does not declare the requested config (or split); the message lists those it does."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ResolvedConfig:
    """A config of a pushed dataset, pinned to one commit.

    Attributes:
        repo_id: ``namespace/name`` of the dataset repo.
        config: The config name, as declared in the card.
        split: The split that was resolved.
        revision: The revision that was asked for (branch, tag, ``refs/pr/N`` or sha).
        commit: The commit sha that ``revision`` pointed to; every file is read at this commit.
        files: Repo paths of the config's data files, sorted.
        configs: Every config name the card declares.
        kind: ``"parquet"`` for the card's configs; ``"images"`` for the image files under ``images/``.
    """

    repo_id: str
    config: str
    split: str
    revision: str
    commit: str
    files: tuple[str, ...]
    configs: tuple[str, ...] = field(default=())
    kind: Literal["parquet", "images"] = "parquet"

    def fs_paths(self) -> list[str]:
        """``HfFileSystem`` paths of the files, pinned to the commit (``datasets/<repo>@<sha>/<path>``)."""
        return [f"datasets/{self.repo_id}@{self.commit}/{path}" for path in self.files]

    def urls(self) -> list[str]:
        """``hf://`` URLs of the files, pinned to the commit (for ``datasets``, pandas, dask, DuckDB)."""
        return [f"hf://{path}" for path in self.fs_paths()]


def _card_configs(repo_id: str, commit: str, token: str | None) -> list[dict[str, Any]]:
    try:
        with downloaded(
            hub_api(), repo_id, "README.md", repo_type="dataset", revision=commit, token=token
        ) as readme:
            metadata = metadata_load(readme) or {}
    except RemoteEntryNotFoundError:  # the file is missing; an outage (LocalEntryNotFoundError) is raised as is
        raise DatasetCardError(
            f"{repo_id}@{commit[:12]} has no README.md: the configs of a pushed dataset are declared in its "
            "dataset card. Push the card stage (stages=['card']) and read again."
        ) from None
    configs = metadata.get("configs")
    if not configs:
        raise DatasetCardError(
            f"The dataset card of {repo_id}@{commit[:12]} declares no `configs` in its YAML front matter; "
            "push the card stage again to declare them."
        )
    if not isinstance(configs, list) or not all(isinstance(c, dict) and "config_name" in c for c in configs):
        raise DatasetCardError(
            f"The dataset card of {repo_id}@{commit[:12]} has a malformed `configs` list: every item must be a "
            "mapping with a `config_name`."
        )
    return configs


def _split_patterns(entry: dict[str, Any], split: str, repo_id: str) -> list[str]:
    """The glob patterns of one split of a card ``configs`` item (``data_files``: str | list | list of splits)."""
    name = entry["config_name"]
    data_files = entry.get("data_files")
    if data_files is None:
        raise DatasetCardError(f"Config {name!r} of {repo_id} declares no data_files.")
    if isinstance(data_files, str):
        by_split: dict[str, list[str]] = {"train": [data_files]}
    elif isinstance(data_files, list) and all(isinstance(p, str) for p in data_files):
        by_split = {"train": list(data_files)}
    elif isinstance(data_files, list) and all(isinstance(p, dict) for p in data_files):
        by_split = {}
        for item in data_files:
            path = item.get("path")
            paths = [path] if isinstance(path, str) else list(path or [])
            by_split.setdefault(str(item.get("split", "train")), []).extend(paths)
    else:
        raise DatasetCardError(f"Config {name!r} of {repo_id} has data_files of an unknown form: {data_files!r}.")
    if split not in by_split:
        raise ConfigNotFoundError(
            f"Config {name!r} of {repo_id} has no split {split!r}; its splits: {', '.join(sorted(by_split))}."
        )
    return by_split[split]


def _hidden(path_in_repo: str, pattern: str) -> bool:
    """Hidden (``.x``) or special (``__x``) files and folders are ignored unless the pattern names them."""
    parts = path_in_repo.split("/")
    pattern_parts = pattern.split("/")
    for i, part in enumerate(parts):
        if part.startswith((".", "__")):
            asked = i < len(pattern_parts) and pattern_parts[i].startswith(
                part[:2] if part.startswith("__") else "."
            )
            if not asked:
                return True
    return False


def _resolve_globs(fs: HfFileSystem, repo_id: str, commit: str, patterns: Sequence[str]) -> list[str]:
    """Repo paths of the files matching ``patterns`` at ``commit`` (``*`` stops at ``/``, ``**`` does not)."""
    marker = f"{repo_id}@{commit}/"
    found: set[str] = set()
    for pattern in patterns:
        # detail=True returns {path: info}; expand_info=False skips the costly last-commit lookups.
        matches: dict[str, dict[str, Any]] = fs.glob(  # type: ignore[assignment]
            f"datasets/{marker}{pattern.lstrip('/')}", detail=True, expand_info=False
        )
        for path, info in matches.items():
            if info.get("type") != "file" or marker not in path:
                continue
            in_repo = path.split(marker, 1)[1]
            if not _hidden(in_repo, pattern):
                found.add(in_repo)
    return sorted(found)


def list_configs(
    repo_id: str,
    *,
    revision: str = "main",
    token: str | SecretStr | None = None,
    credentials: HuggingFaceCredentials | None = None,
) -> list[str]:
    """The config names that the dataset card of ``repo_id`` declares, in card order."""
    secret = optional_token(token, credentials)
    return configs_at(repo_id, commit_of(repo_id, revision, secret), secret)


def commit_of(repo_id: str, revision: str, token: str | None) -> str:
    """The commit ``revision`` of dataset ``repo_id`` points at: what a reader pins, so that a push landing
    meanwhile cannot mix two versions."""
    commit = hub_api().dataset_info(repo_id, revision=revision, token=token).sha
    if commit is None:
        raise DatasetCardError(f"The Hub did not tell the commit of {repo_id}@{revision}.")
    return commit


def configs_at(repo_id: str, commit: str, token: str | None) -> list[str]:
    """The config names the dataset card declares at ``commit``, in card order."""
    return [str(c["config_name"]) for c in _card_configs(repo_id, commit, token)]


def image_files(repo_id: str, commit: str, token: str | None) -> list[str]:
    """Repo paths of the files under ``images/`` at ``commit`` (sorted; none when the repo has no such folder)."""
    return _resolve_globs(hub_filesystem(token), repo_id, commit, [f"{IMAGES_CONFIG}/**"])


def resolve_config(
    repo_id: str,
    config: str = "data",
    *,
    split: str = "train",
    revision: str = "main",
    token: str | SecretStr | None = None,
    credentials: HuggingFaceCredentials | None = None,
) -> ResolvedConfig:
    """Pin ``revision`` to its commit and list the data files of ``config`` (and ``split``) at that commit.

    Raises:
        ConfigNotFoundError: the card does not declare ``config`` (the message lists the configs it does), or the
            config has no ``split``.
        DatasetCardError: no README.md, no ``configs`` in it, or a config that matches no file.
        huggingface_hub.errors.RepositoryNotFoundError: no such repo, or a private one without a valid token.
        huggingface_hub.errors.RevisionNotFoundError: no such revision.
    """
    secret = optional_token(token, credentials)
    commit = commit_of(repo_id, revision, secret)
    configs = _card_configs(repo_id, commit, secret)
    names = tuple(str(c["config_name"]) for c in configs)
    entry = next((c for c in configs if c["config_name"] == config), None)
    if entry is None and config == IMAGES_CONFIG:
        # Image files are not a card config (one repo, one packaged builder: `datasets` would read them as
        # parquet); they are read from the images/ folder itself.
        images = image_files(repo_id, commit, secret)
        if images and split != "train":
            raise ConfigNotFoundError(
                f"The {IMAGES_CONFIG!r} config of {repo_id} has one split, 'train'; not {split!r}."
            )
        if images:
            return ResolvedConfig(repo_id, config, split, revision, commit, tuple(images), names, kind="images")
    if entry is None:
        raise ConfigNotFoundError(
            f"The dataset card of {repo_id} declares no config {config!r}; its configs: {', '.join(names)} "
            f"(and {IMAGES_CONFIG!r} for the image files, when the dataset has any)."
        )
    patterns = _split_patterns(entry, split, repo_id)
    files = _resolve_globs(hub_filesystem(secret), repo_id, commit, patterns)
    if not files:
        raise DatasetCardError(
            f"Config {config!r} of {repo_id}@{commit[:12]} matches no file ({', '.join(patterns)})."
        )
    not_parquet = [f for f in files if not f.endswith(".parquet")]
    if not_parquet:
        raise DatasetCardError(
            f"Config {config!r} of {repo_id} has files that are not parquet ({', '.join(not_parquet[:3])}); "
            "this reader reads parquet configs, as the push writes them."
        )
    return ResolvedConfig(repo_id, config, split, revision, commit, tuple(files), names)
