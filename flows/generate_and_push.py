"""Generate a dataset from a config, then push it to the Hub in stages: one flow, one deployment.

    python -m flows.generate_and_push CONFIG REPO_ID --num-records N --description TEXT [--local-hub DIR] ...

(``--help`` lists every option: the generation's and the push's.)

``--local-hub DIR`` runs the whole job against the embedded Hub (``localhub``) keeping its repos in DIR: no
Hugging Face account needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from pydantic import SecretStr

from flows.card_arguments import add_card_arguments, card_arguments
from flows.generate import generate_dataset
from flows.push import push_dataset
from flows.push_result import PushResult, format_table
from flows.terminal_run import terminal_run
from tasks.artifacts import artifact_slug
from tasks.credentials import HuggingFaceCredentials, hide_token_parameter, resolve_token
from tasks.generation.checkpoint import CheckpointTarget
from tasks.generation.config import BuilderConfig
from tasks.generation.source import from_config
from tasks.local_dirs import work_dir
from tasks.push_parameters import check_push_parameters
from tasks.retry_guard import refuse_superseded_retry
from tasks.retry_policy import describe_failure
from tasks.stage_plan import StageName
from tasks.validation import InvalidParameterError, validate_revision


def default_output_dir(repo_id: str) -> Path:
    """Where a run writes its folder when none is given; stable per repo so a rerun resumes its batches."""
    return work_dir() / artifact_slug(repo_id)


@flow(name="generate-and-push")
def generate_and_push(
    config: BuilderConfig | dict[str, Any] | str | Path,
    repo_id: str,
    description: str,
    *,
    num_records: int,
    batch_size: int | None = None,
    seed: int = 0,
    output_dir: str | Path | None = None,
    checkpoint_branch: str | None = None,
    checkpoint_interval_seconds: float = 60.0,
    private: bool = False,
    tags: list[str] | None = None,
    token: SecretStr | None = None,
    credentials: HuggingFaceCredentials | None = None,
    revision: str = "main",
    create_pr: bool = False,
    commit_messages: dict[str, str] | None = None,
    stages: list[StageName] | None = None,
    max_files_per_commit: int = 100,
    license: str | None = None,
    language: list[str] | None = None,
    task_categories: list[str] | None = None,
    pretty_name: str | None = None,
    task_runner: str = "threads",
    dask_address: str | None = None,
) -> PushResult:
    """Generate ``num_records`` records from ``config`` and publish them to ``repo_id``, stage by stage.

    Everything that can be checked before generating is checked first (the push's parameters, the checkpoint
    branch, the token's presence, the config), so a bad parameter never costs a generation run. The generation result is
    passed straight to the push flow; both run as subflows, so a Retry of this run resumes generation from its
    completed batches and skips the stages that already committed.

    Args:
        config: A config model, dict, YAML/JSON text, local path or http(s) URL (see ``from_config``).
        repo_id: ``namespace/name`` of the dataset repo.
        description: The opening paragraph of the dataset card.
        num_records: Records to generate.
        batch_size: Records per batch (one parquet file and one task each); default: the generator's.
        seed: Seed of every random choice; the same seed gives byte-identical data.
        output_dir: The dataset folder; default: a per-repo folder under ``~/.cache/prefect-hf-datasets/runs``.
        checkpoint_branch: Push completed batches to this branch of ``repo_id`` while generating.
        checkpoint_interval_seconds: At most one checkpoint commit per this many seconds.
        private, tags, token, credentials, revision, create_pr, commit_messages, stages, max_files_per_commit,
        license, language, task_categories, pretty_name: as in ``push_dataset``.
        task_runner: ``"threads"`` or ``"dask"`` for the generation batches.
        dask_address: A running Dask scheduler for ``task_runner="dask"`` (a local cluster when None).

    Example:
        ```python
        from flows.generate_and_push import generate_and_push

        generate_and_push("examples/multilingual_greetings.yaml", "alice/greetings",
                          "Greetings in five languages.", num_records=1000)
        ```
    """
    logger = get_run_logger()
    hide_token_parameter()  # a plain-string token would be readable in the run's parameters
    target, _, _ = check_push_parameters(
        repo_id,
        description,
        revision=revision,
        create_pr=create_pr,
        max_files_per_commit=max_files_per_commit,
        stages=stages,
        tags=tags,
        license=license,
        language=language,
        task_categories=task_categories,
        pretty_name=pretty_name,
        commit_messages=commit_messages,
    )
    if checkpoint_branch is not None and validate_revision(checkpoint_branch) == revision:
        raise InvalidParameterError(
            f"checkpoint_branch {checkpoint_branch!r} is the branch the dataset is published to: the checkpoints "
            "(batch files, the generation state) would stay in the published dataset. Pick another branch, "
            "e.g. 'checkpoint'."
        )
    secret = SecretStr(resolve_token(token, credentials))
    # A Retry after a newer run pushed to the branch stops here, before its generation replaces the folder.
    refuse_superseded_retry(target, secret)
    builder = config if isinstance(config, BuilderConfig) else from_config(config)
    folder = Path(output_dir) if output_dir else default_output_dir(repo_id)

    options: dict[str, Any] = {"seed": seed, "task_runner": task_runner, "dask_address": dask_address}
    if batch_size:
        options["batch_size"] = batch_size
    if checkpoint_branch:
        options["checkpoint"] = CheckpointTarget(
            repo_id=repo_id,
            branch=checkpoint_branch,
            interval_seconds=checkpoint_interval_seconds,
            private=private or None,
            token=secret,
            final_flush=False,  # the push follows at once and uploads everything: no need to wait for the interval
        )
    generated = generate_dataset(builder, num_records, folder, **options)
    logger.info("Generated %d records in %s; pushing to %s.", generated.num_records, generated.path, repo_id)
    return push_dataset(
        generated,
        repo_id,
        description,
        private=private,
        tags=tags,
        token=secret,
        credentials=credentials,  # its token is ``secret``; the push names the block in hf.dataset.pushed
        revision=revision,
        create_pr=create_pr,
        commit_messages=commit_messages,
        stages=stages,
        max_files_per_commit=max_files_per_commit,
        license=license,
        language=language,
        task_categories=task_categories,
        pretty_name=pretty_name,
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (1 with a one-line reason on failure)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m flows.generate_and_push", description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("repo_id")
    parser.add_argument("--num-records", type=int, required=True)
    parser.add_argument("--description", required=True)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="dataset folder (default: a per-repo folder in the user cache)")
    parser.add_argument("--private", action="store_true")
    add_card_arguments(parser)
    parser.add_argument("--revision", default="main")
    parser.add_argument("--checkpoint-branch", help="push completed batches to this branch while generating")
    parser.add_argument(
        "--local-hub", metavar="DIR", help="run against the embedded Hub, keeping its repos in DIR"
    )
    args = parser.parse_args(argv)
    if args.local_hub:
        from flows.embedded_hub import run_with_embedded_hub

        i = argv.index("--local-hub")
        rest = argv[:i] + argv[i + 2 :] if i + 1 < len(argv) and argv[i + 1] == args.local_hub else argv
        rest = [a for a in rest if not a.startswith("--local-hub=")]
        return run_with_embedded_hub(Path(args.local_hub).resolve(), "flows.generate_and_push", rest)
    try:
        # A mistyped option is named in one line, before a flow run exists (whose failure Prefect would log
        # with a traceback).
        check_push_parameters(args.repo_id, args.description, revision=args.revision, **card_arguments(args))
        with terminal_run():
            result = generate_and_push(
                args.config,
                args.repo_id,
                args.description,
                num_records=args.num_records,
                batch_size=args.batch_size,
                seed=args.seed,
                output_dir=args.output,
                private=args.private,
                revision=args.revision,
                checkpoint_branch=args.checkpoint_branch,
                **card_arguments(args),
            )
    except Exception as exc:  # the CLI's contract: one line saying why, non-zero exit
        print(f"generate-and-push failed: {describe_failure(exc)}", file=sys.stderr)
        return 1
    print(result.url)
    print(format_table(result.table()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
