"""A downstream flow: verify a pushed dataset by loading every config of it back from the Hub.

It is what the chained deployment runs when a push completes (the ``hf.dataset.pushed`` event), and it works as
a plain flow or subflow too:

    python -m flows.verify REPO_ID [--revision main] [--expected-records N]

Every config the dataset card declares (``data`` and one per processor) is read back by a retried task
(``read-config-back``: the project's reader, streaming record batch by record batch), all at the one commit the
revision pointed to when the flow started. The flow fails when a config does not load or is empty, when the main
config does not hold ``expected_records`` rows, or when the pushed ``metadata.json`` counts a different number of
records than the data holds, or when rows name image files (``images/<column>/<file>``, as Data Designer writes
them) that the repo does not have at that commit. A table artifact records each config's files, rows, expected
rows, columns, image references and verdict, also when the verification fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from huggingface_hub.errors import RemoteEntryNotFoundError
from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field, SecretStr

from flows.terminal_run import terminal_run
from tasks.artifacts import artifact_key
from tasks.credentials import HuggingFaceCredentials, optional_token
from tasks.dataset_configs import commit_of, configs_at, image_files, resolve_config
from tasks.hub_client import downloaded, hub_api
from tasks.image_references import ImageReferences
from tasks.read_dataset import iter_record_batches
from tasks.retry_policy import describe_failure, retry_transient_only
from tasks.validation import InvalidParameterError, validate_repo_id

MAIN_CONFIG = "data"


class DatasetVerificationError(AssertionError):
    """The pushed dataset does not load, or does not hold what was pushed."""


class ConfigCheck(BaseModel):
    """One config of the pushed dataset, as read back."""

    config: str
    files: int
    rows: int
    columns: list[str]
    record_batches: int
    image_columns: list[str] = Field(default_factory=list)
    images_referenced: int = 0
    images_missing: int = 0
    missing_images: list[str] = Field(default_factory=list, description="The first few missing image paths.")


class VerificationResult(BaseModel):
    """What ``verify_pushed_dataset`` read back."""

    repo_id: str
    revision: str
    commit: str
    configs: list[ConfigCheck] = Field(default_factory=list)
    expected_records: int | None = None

    @property
    def records(self) -> int:
        """Rows of the main config (``data``)."""
        return next((c.rows for c in self.configs if c.config == MAIN_CONFIG), 0)


# The verify flow's tasks read from the Hub: transient failures are retried, nothing is cached ("main" moves).
_READ_TASK_OPTIONS: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "retries": 2,
    "retry_delay_seconds": [1, 5],
    "retry_condition_fn": retry_transient_only,
}


@task(name="resolve-pushed-revision", **_READ_TASK_OPTIONS)
def resolve_revision(repo_id: str, revision: str, token: SecretStr | None) -> tuple[str, list[str], Any]:
    """The commit ``revision`` points to now, the configs its card declares, and its ``metadata.json`` (or None).

    Everything afterwards is read at that commit, so a push landing meanwhile cannot mix two versions.
    """
    secret = token.get_secret_value() if token else None
    commit = commit_of(repo_id, revision, secret)
    configs = configs_at(repo_id, commit, secret)  # at the commit read once: list_configs would read it again
    try:
        with downloaded(
            hub_api(), repo_id, "metadata.json", repo_type="dataset", revision=commit, token=secret
        ) as path:
            metadata = json.loads(path.read_text(encoding="utf-8"))
    except RemoteEntryNotFoundError:  # no metadata.json; an outage is raised, not taken for "none"
        metadata = None
    return commit, configs, metadata


@task(name="read-config-back", **_READ_TASK_OPTIONS)
def read_config_back(repo_id: str, config: str, commit: str, token: SecretStr | None) -> ConfigCheck:
    """Read one config back at ``commit``, record batch by record batch (bounded memory), and check that the image
    paths its rows hold name files of the repo; a 429/5xx or a dropped connection while reading the rows retries
    the whole read."""
    secret = token.get_secret_value() if token else None
    resolved = resolve_config(repo_id, config, revision=commit, token=secret)
    # Listed at the commit already resolved, without reading the card again (only once an image path shows up).
    images = ImageReferences(lambda: frozenset(image_files(repo_id, commit, secret)))
    rows = batches = 0
    columns: list[str] = []
    for batch in iter_record_batches(resolved, token=secret):
        rows += batch.num_rows
        batches += 1
        columns = columns or list(batch.schema.names)
        images.add(batch)
    return ConfigCheck(
        config=config,
        files=len(resolved.files),
        rows=rows,
        columns=columns,
        record_batches=batches,
        image_columns=images.columns,
        images_referenced=images.referenced,
        images_missing=images.missing,
        missing_images=images.examples,
    )


@flow(name="verify-pushed-dataset")
def verify_pushed_dataset(
    repo_id: str,
    revision: str = "main",
    expected_records: int | None = None,
    *,
    credentials: HuggingFaceCredentials | None = None,
) -> VerificationResult:
    """Load every config of a pushed dataset back from the Hub and check it holds what was pushed.

    Args:
        repo_id: ``namespace/name`` of the dataset repo.
        revision: Branch, tag, ``refs/pr/N`` or commit sha to verify.
        expected_records: Rows the main config (``data``) must have; None: only check that it loads.
        credentials: A saved ``HuggingFaceCredentials`` block. Default: ``HF_TOKEN``, then ``hf auth login``,
            then anonymous (public repos).

    Returns:
        The commit that was read and, per config, its rows and columns.

    Raises:
        DatasetVerificationError: a config does not load (after its retries) or is empty, the main config has
            the wrong number of rows, ``metadata.json`` disagrees with the data, or rows name image files the repo
            does not have; every config is read and reported first.

    Example:
        ```python
        from flows.verify import verify_pushed_dataset

        result = verify_pushed_dataset("alice/greetings", expected_records=1000)
        print(result.commit, [(c.config, c.rows) for c in result.configs])
        ```
    """
    logger = get_run_logger()
    validate_repo_id(repo_id)
    if not revision.strip() or revision != revision.strip():  # any ref the Hub resolves (tags, refs/heads/...)
        raise InvalidParameterError(f"revision {revision!r} is not a revision: pass a branch, tag, ref or commit.")
    found = optional_token(None, credentials)  # none: anonymous, enough for a public repo
    token = SecretStr(found) if found else None
    commit, configs, metadata = resolve_revision(repo_id, revision, token)
    logger.info("Verifying %s@%s (commit %s): configs %s.", repo_id, revision, commit[:12], ", ".join(configs))

    checks: list[ConfigCheck] = []
    problems: list[str] = []
    failed: dict[str, str] = {}
    for config in configs:  # every config is read and reported, also after one fails
        try:
            checks.append(read_config_back(repo_id, config, commit, token))
        except Exception as exc:
            failed[config] = describe_failure(exc)
            problems.append(f"config {config!r} does not load ({failed[config]})")
    result = VerificationResult(
        repo_id=repo_id, revision=revision, commit=commit, configs=checks, expected_records=expected_records
    )
    if MAIN_CONFIG not in configs:
        problems.append(f"the card declares no {MAIN_CONFIG!r} config (configs: {', '.join(configs) or 'none'})")
    problems += [f"config {c.config!r} is empty" for c in checks if c.rows == 0]
    problems += [
        f"config {c.config!r} names {c.images_missing} image file(s) the repo does not have "
        f"(e.g. {', '.join(c.missing_images)}): check that the dataset folder has them and push it again"
        for c in checks
        if c.images_missing
    ]
    main_read = any(c.config == MAIN_CONFIG for c in checks)
    if expected_records is not None and main_read and result.records != expected_records:
        problems.append(f"config {MAIN_CONFIG!r} has {result.records} rows, {expected_records} were pushed")
    declared = metadata.get("actual_num_records") if isinstance(metadata, dict) else None
    if isinstance(declared, int) and main_read and declared != result.records:
        problems.append(f"metadata.json says {declared} records, config {MAIN_CONFIG!r} has {result.records}")
    create_table_artifact(table=_report_rows(result, failed), key=artifact_key(repo_id, "verification"),
                          description=f"{repo_id}@{revision} read back at commit {commit}")  # fmt: skip
    if problems:
        raise DatasetVerificationError(f"{repo_id}@{commit[:12]}: " + "; ".join(problems) + ".")
    logger.info(
        "Verified %s@%s: %s.", repo_id, commit[:12], ", ".join(f"{c.config} {c.rows} rows" for c in checks)
    )
    return result


def _report_rows(result: VerificationResult, failed: dict[str, str]) -> list[dict[str, Any]]:
    """The verification table: per config, what was read, what was expected, and the verdict."""
    rows: list[dict[str, Any]] = []
    for check in result.configs:
        expected = result.expected_records if check.config == MAIN_CONFIG else None
        verdict = "empty" if check.rows == 0 else "ok"
        if expected is not None and check.rows != expected:
            verdict = f"{check.rows} rows, {expected} expected"
        elif check.images_missing:
            verdict = f"{check.images_missing} image(s) missing"
        images = f"{check.images_referenced} named, {check.images_missing} missing" if check.image_columns else ""
        rows.append({"config": check.config, "files": check.files, "rows": check.rows,
                     "expected": "" if expected is None else expected, "images": images, "verdict": verdict,
                     "columns": ", ".join(check.columns), "commit": result.commit})  # fmt: skip
    rows += [{"config": config, "files": "", "rows": "", "expected": "", "images": "",
              "verdict": f"does not load: {reason}", "columns": "", "commit": result.commit}
             for config, reason in failed.items()]  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.verify``: run :func:`verify_pushed_dataset` once and print each config's rows, columns and
    image paths.

    Returns:
        0 when the dataset verified; 1 when it did not, with the reason on stderr.
    """
    parser = argparse.ArgumentParser(
        prog="python -m flows.verify", description="Load every config of a pushed dataset back from the Hub."
    )
    parser.add_argument("repo_id")
    parser.add_argument("--revision", default="main")
    parser.add_argument("--expected-records", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        with terminal_run():
            result = verify_pushed_dataset(args.repo_id, args.revision, args.expected_records)
    except Exception as exc:
        print(f"verification failed: {describe_failure(exc)}", file=sys.stderr)
        return 1
    for check in result.configs:
        images = f", {check.images_referenced} image paths (all in the repo)" if check.image_columns else ""
        print(f"{check.config}: {check.rows} rows, columns {', '.join(check.columns)}{images}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
