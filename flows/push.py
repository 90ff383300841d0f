"""The push flow: publish a dataset folder to a Hugging Face dataset repo in six stages.

Run it from Python (also as a subflow), from a deployment, or from the command line:

    python -m flows.push DATASET_DIR REPO_ID --description TEXT [--private] [--stages card,data,...] [--dry-run] ...

(``--help`` lists every option: the card's tags, license, languages and template, the revision, pull requests.)

Everything that can be checked without the network is checked first (the parameters, ``tasks.push_parameters``;
the folder; the token's presence); then the token is checked with the Hub; then the stages run in order, each its
own commit. ``flows.push_result`` holds what the flow returns and its stage table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, cast

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.logging import get_run_logger
from pydantic import SecretStr

from flows.card_arguments import add_card_arguments, card_arguments
from flows.push_result import PushResult, format_table, unfinished_rows
from flows.terminal_run import terminal_run
from tasks import artifacts
from tasks.credentials import HuggingFaceCredentials, hide_token_parameter, resolve_token
from tasks.dataset_folder import scan_dataset_folder
from tasks.dry_run_plan import dry_run_plan
from tasks.events import emit_dataset_pushed
from tasks.folder_lock import pushing
from tasks.generation.result import GeneratedDataset
from tasks.hub_client import hub_api
from tasks.hub_commit import HubTarget, branch_head
from tasks.hub_limits import repo_shape_advice
from tasks.prepare_repo import prepare_repo
from tasks.preupload import PreuploadResult, start_preuploads, wait_for_preupload
from tasks.push_parameters import check_push_parameters
from tasks.push_run_key import calling_runs, push_run_key
from tasks.retry_guard import refuse_superseded_retry
from tasks.retry_policy import describe_failure
from tasks.stage_cache import content_keys
from tasks.stage_plan import STAGES, StageName, planned_repo_paths
from tasks.stages import STAGE_TASKS, StageJob, StageResult


@flow(name="push-dataset")
def push_dataset(
    dataset: Path | str | GeneratedDataset,
    repo_id: str,
    description: str,
    *,
    private: bool = False,
    tags: list[str] | None = None,
    token: SecretStr | None = None,
    credentials: HuggingFaceCredentials | None = None,
    revision: str = "main",
    create_pr: bool = False,
    commit_messages: dict[str, str] | None = None,
    stages: list[StageName] | None = None,
    max_files_per_commit: int = 100,
    dry_run: bool = False,
    license: str | None = None,
    language: list[str] | None = None,
    task_categories: list[str] | None = None,
    pretty_name: str | None = None,
    card_template: str | None = None,
) -> PushResult:
    """Publish a dataset folder (Data Designer layout) to a Hub dataset repo, one commit per stage.

    Args:
        dataset: The dataset folder, or the result of the generation flow.
        repo_id: ``namespace/name`` of the dataset repo; created if missing.
        description: The opening paragraph of the dataset card (required).
        private: Make the repo private, also when it already exists.
        tags: Card tags, after ``synthetic`` and ``datadesigner``.
        token: A Hub token with write access. Default: ``credentials``, then ``HF_TOKEN``, then ``hf auth login``.
        credentials: A saved ``HuggingFaceCredentials`` block.
        revision: The branch to push to (created from ``main`` if missing).
        create_pr: Open a pull request with the push instead of committing to ``revision``.
        commit_messages: Commit titles by stage name (``{name}`` is the processor name for ``processors``).
        stages: Run only these stages (e.g. ``["metadata"]``); default: all six in order.
        max_files_per_commit: A stage with more changed files is split into ``(part i of n)`` commits.
        dry_run: Print the plan (stage, files, bytes, commits) and stop; no network call.
        license: Card ``license``. language: Card ``language``. task_categories: Card ``task_categories``.
        pretty_name: Card ``pretty_name``. card_template: Path of a Jinja2 template to render the card with.

    Returns:
        The repo URL and, per stage, its commits (or the plan, with ``dry_run``); ``advice`` names what goes past
        the Hub's advice on repo shape (files per folder, per repo), also logged as warnings.

    Raises:
        InvalidParameterError: a bad parameter, named, before any request.
        DatasetFolderError: a folder the push cannot publish (the file and the problem named), before any request.
        FolderInUseError: a generation is still writing the folder (tasks.folder_lock), before any request.

    Example:
        ```python
        from flows.push import push_dataset

        result = push_dataset("artifacts/greetings", "alice/greetings", "Greetings in five languages.")
        print(result.url)
        ```
    """
    logger = get_run_logger()
    hide_token_parameter()  # a plain-string token would be readable in the run's parameters
    # 1. Everything checkable without the network.
    target, card, selected = check_push_parameters(
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
        card_template=card_template,
        commit_messages=commit_messages,
    )
    root = Path(dataset.path if isinstance(dataset, GeneratedDataset) else dataset).expanduser()
    with pushing(root):  # not while a generation writes the folder (tasks.folder_lock)
        folder = scan_dataset_folder(root)
        advice = repo_shape_advice(planned_repo_paths(folder))  # a repo shape past the Hub's advice: a warning
        for line in advice:
            logger.warning(line)
        if dry_run:
            planned = PushResult(
                repo_id=repo_id,
                url="",
                revision=revision,
                dry_run=True,
                plan=dry_run_plan(folder, card, target, selected),
                num_records=folder.num_records,
                advice=advice,
            )
            print(format_table(planned.table()))
            return planned
        secret = SecretStr(resolve_token(token, credentials))

        # 2. The token, the repo, the branch (retried: huggingface_hub does not retry these calls).
        ready = prepare_repo(target, secret, private)
        url = ready.url
        chain = calling_runs()  # this run and its callers: which Retry this is, which push
        refuse_superseded_retry(target, secret, chain)  # a Retry after a newer run's push would mix the two
        logger.info("Pushing %s (%d records) to %s as %s.", folder.root, folder.num_records, url, ready.user)

        # 3. The stages, in order; each commits on its own and is cached for a retry of this run. The large files of
        # the data, images and processors stages upload in the background meanwhile (tasks.preupload).
        keys = content_keys(folder, card)
        # Kept by a Retry, also of a parent flow; two pushes in one parent run differ.
        run_key = push_run_key(chain)

        def job(stage: StageName, revision: str, preuploaded: bool = False, head: str | None = None) -> StageJob:
            return StageJob(
                target=target,
                folder=folder,
                token=secret,
                revision=revision,
                messages=commit_messages,
                content_key=keys[stage],
                run_key=run_key,
                preuploaded=preuploaded,
                head=head,
            )

        ahead = start_preuploads(selected, lambda stage: job(stage, target.revision))
        current_revision, current_head = target.revision, None  # each stage hands the branch head to the next
        results: list[StageResult] = []
        preuploads: list[PreuploadResult] = []
        started = time.monotonic()
        for stage in selected:
            head_start = wait_for_preupload(ahead.get(stage), stage)
            preuploads += [head_start] if head_start else []
            stage_job = job(
                stage, current_revision, head_start is not None and head_start.error is None, current_head
            )
            try:
                arguments = (stage_job, card) if stage == "card" else (stage_job,)
                state = cast("State[StageResult]", STAGE_TASKS[stage](*arguments, return_state=True))
                stage_result = state.result()  # raises the stage's error when it failed
                if state.name == "Cached":  # a Retry: an earlier attempt committed it; the table must not claim it
                    stage_result = stage_result.model_copy(update={"cached": True})
            except Exception as exc:  # the failed run is the one a user opens the table for
                rows = [row for r in results for row in r.rows()]
                later = selected[selected.index(stage) + 1 :]
                artifacts.record_stage_table(repo_id, rows + unfinished_rows(stage, describe_failure(exc), later))
                raise
            current_revision, current_head = stage_result.revision, stage_result.head or current_head
            results.append(stage_result)
        if current_head is None:  # every selected stage was skipped: the event still names the commit
            current_head = _head_or_none(target, current_revision, secret)

        push = PushResult(
            repo_id=repo_id,
            url=url,
            revision=current_revision,
            stages=results,
            preuploads=preuploads,
            num_records=folder.num_records,
            advice=advice,
        )
        artifacts.record_stage_table(repo_id, push.table())
        # The commit the push left the branch at (the last stage's, or the head it found unchanged).
        block = getattr(credentials, "_block_document_name", None) if credentials is not None else None
        emit_dataset_pushed(
            repo_id,
            current_revision,
            current_head,
            len(push.commits),
            folder.num_records,
            url,
            credentials_block=block,
        )
        earlier = sum(len(r.commits) for r in results if r.cached)
        logger.info(
            "Pushed %s in %.1f s: %d commit(s)%s.",
            repo_id,
            time.monotonic() - started,
            len(push.commits),
            f", {earlier} of them by an earlier attempt (Cached)" if earlier else "",
        )
        return push


def _head_or_none(target: HubTarget, revision: str, token: SecretStr) -> str | None:
    """The commit ``revision`` points at, or None when the Hub cannot say now (the push itself is done)."""
    try:
        return branch_head(hub_api(), target, revision, token.get_secret_value())
    except Exception:
        return None


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.push", description="Push a dataset folder to the Hub in stages."
    )
    parser.add_argument("dataset_dir")
    parser.add_argument("repo_id")
    parser.add_argument("--description", required=True)
    parser.add_argument("--private", action="store_true")
    add_card_arguments(parser)
    parser.add_argument(
        "--card-template", metavar="PATH", help="path of a Jinja2 template to render the card with"
    )
    parser.add_argument("--stages", help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--revision", default="main")
    parser.add_argument("--create-pr", action="store_true")
    parser.add_argument("--max-files-per-commit", type=int, default=100)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {
        "stages": args.stages.split(",") if args.stages else None,
        "revision": args.revision,
        "create_pr": args.create_pr,
        "max_files_per_commit": args.max_files_per_commit,
        "card_template": args.card_template,
        **card_arguments(args),
    }
    try:
        # A mistyped option is named in one line, before a flow run exists (whose failure Prefect would log
        # with a traceback).
        check_push_parameters(args.repo_id, args.description, **options)
        with terminal_run():
            result = push_dataset(
                args.dataset_dir,
                args.repo_id,
                args.description,
                private=args.private,
                dry_run=args.dry_run,
                **options,
            )
    except Exception as exc:  # the CLI's contract: one line saying why, non-zero exit
        print(f"push failed: {describe_failure(exc)}", file=sys.stderr)
        return 1
    if not result.dry_run:
        print(result.url)
        print(format_table(result.table()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
