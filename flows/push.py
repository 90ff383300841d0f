"""The push flow: publish a dataset folder to a Hugging Face dataset repo in six stages.

Run it from Python (also as a subflow), from a deployment, or from the command line:

    python -m flows.push DATASET_DIR REPO_ID --description TEXT [--private] [--stages card,data,...] [--dry-run] ...

(``--help`` lists every option: the card's tags, license, languages and template, the revision, pull requests.)

Everything that can be checked without the network is checked first (repo id, description, the folder, the
token's presence); then the token is checked with the Hub; then the stages run in order, each its own commit.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import constants
from prefect import flow
from prefect.logging import get_run_logger
from prefect.runtime import flow_run as current_flow_run
from pydantic import BaseModel, Field, SecretStr

from flows.terminal_run import terminal_run
from tasks import artifacts
from tasks.card.options import CardOptions
from tasks.credentials import HuggingFaceCredentials, hide_token_parameter, resolve_token
from tasks.dataset_folder import DatasetFolder, scan_dataset_folder
from tasks.events import emit_dataset_pushed
from tasks.folder_lock import pushing
from tasks.generation.result import GeneratedDataset
from tasks.hub_commit import HubTarget
from tasks.hub_metadata import hub_metadata, json_bytes
from tasks.prepare_repo import prepare_repo
from tasks.preupload import PreuploadResult, start_preuploads, wait_for_preupload
from tasks.redaction import redact_secrets
from tasks.retry_policy import describe_failure
from tasks.stage_cache import digest_files, fingerprint
from tasks.stage_plan import STAGES, StageName, check_commit_messages, parts, plan_files_stage
from tasks.stages import STAGE_TASKS, StageJob, StageResult, render_folder_card, table_row
from tasks.validation import (
    InvalidParameterError,
    validate_description,
    validate_languages,
    validate_license,
    validate_repo_id,
    validate_revision,
    validate_task_categories,
)


class PlannedStage(BaseModel):
    """One line of a dry run: what a stage would upload."""

    stage: StageName
    commits: int
    files: int
    bytes: int
    note: str = ""


class PushResult(BaseModel):
    """What a push did (or, with ``dry_run``, would do)."""

    repo_id: str
    url: str
    revision: str
    dry_run: bool = False
    stages: list[StageResult] = Field(default_factory=list)
    preuploads: list[PreuploadResult] = Field(default_factory=list)  # large files uploaded ahead of their stage
    plan: list[PlannedStage] = Field(default_factory=list)
    num_records: int = 0

    @property
    def commits(self) -> list[Any]:
        return [c for s in self.stages for c in s.commits]

    def table(self) -> list[dict[str, Any]]:
        """The stage table (one row per commit), as recorded in the run's table artifact."""
        if self.dry_run:
            return [p.model_dump() for p in self.plan]
        return [row for s in self.stages for row in s.rows()]


def unfinished_rows(failed: StageName, reason: str, not_run: list[StageName]) -> list[dict[str, Any]]:
    """Rows of the stage table for a failed stage and the stages after it."""
    return [table_row(failed, f"failed: {reason}"), *(table_row(stage, "not run") for stage in not_run)]


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table for the terminal."""
    if not rows:
        return "(no stages)"
    columns = list(rows[0])
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _select_stages(stages: list[str] | None) -> list[StageName]:
    if not stages:
        return list(STAGES)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise InvalidParameterError(f"stages {unknown} are unknown; choose among {', '.join(STAGES)}.")
    return [s for s in STAGES if s in stages]


def _content_keys(folder: DatasetFolder, card: CardOptions) -> dict[str, str]:
    """Per-stage content fingerprints (see tasks.stage_cache); the card covers the data it describes."""
    data = digest_files(folder.data_files)
    procs = {p.name: digest_files(p.files) for p in folder.processors}
    images = digest_files(folder.images)
    template = card.template.read_text(encoding="utf-8") if card.template else None
    return {
        "card": fingerprint(
            card.model_dump(mode="json"), template, data, procs, folder.builder_config, folder.metadata
        ),
        "data": fingerprint(data),
        "images": fingerprint(images),
        "processors": fingerprint(procs),
        "builder_config": fingerprint(folder.builder_config),
        "metadata": fingerprint(hub_metadata(folder), data, procs),
    }


def _dry_run_plan(
    folder: DatasetFolder, card: CardOptions, target: HubTarget, selected: list[StageName]
) -> list[PlannedStage]:
    plan: list[PlannedStage] = []
    for stage in selected:
        if stage == "card":
            text = render_folder_card(folder, card)
            plan.append(PlannedStage(stage=stage, commits=1, files=1, bytes=len(text.encode())))
        elif stage == "metadata":
            size = len(json_bytes(hub_metadata(folder)))
            plan.append(PlannedStage(stage=stage, commits=1, files=1, bytes=size))
        elif stage == "builder_config":
            if folder.builder_config is None:
                plan.append(
                    PlannedStage(
                        stage=stage,
                        commits=0,
                        files=0,
                        bytes=0,
                        note="none in the folder: deletes the Hub's, if any",
                    )
                )
            else:
                size = len(json_bytes(redact_secrets(folder.builder_config)))
                plan.append(PlannedStage(stage=stage, commits=1, files=1, bytes=size))
        else:
            commits = plan_files_stage(stage, folder)
            plan.append(
                PlannedStage(
                    stage=stage,
                    commits=sum(parts(len(c.files), target.max_files_per_commit) for c in commits),
                    files=sum(len(c.files) for c in commits),
                    bytes=sum(c.size for c in commits),
                    note="" if commits else "none in the folder: deletes what an earlier push left, if any",
                )
            )
    return plan


def check_push_parameters(
    repo_id: str,
    description: str,
    *,
    revision: str = "main",
    create_pr: bool = False,
    max_files_per_commit: int = 100,
    stages: list[StageName] | None = None,
    tags: list[str] | None = None,
    license: str | None = None,
    language: list[str] | None = None,
    task_categories: list[str] | None = None,
    pretty_name: str | None = None,
    card_template: str | None = None,
    commit_messages: Mapping[str, str] | None = None,
) -> tuple[HubTarget, CardOptions, list[StageName]]:
    """Check the push parameters that need no network (``push_dataset``'s, same names) and return the target,
    the card options and the stages to run.

    ``generate_and_push`` calls it before generating, so that a bad push parameter never costs a generation run.

    Raises:
        InvalidParameterError: naming the parameter and what to do.
    """
    if max_files_per_commit < 1:
        raise InvalidParameterError(
            f"max_files_per_commit must be at least 1 (got {max_files_per_commit}); the default is 100."
        )
    target = HubTarget(
        repo_id=validate_repo_id(repo_id),
        revision=validate_revision(revision),
        create_pr=create_pr,
        max_files_per_commit=max_files_per_commit,
    )
    check_commit_messages(commit_messages)
    if card_template and not Path(card_template).is_file():
        raise InvalidParameterError(
            f"card_template {card_template!r} is not a file: pass the path of a Jinja2 template."
        )
    if card_template:
        from tasks.card.render import check_template  # the renderer is imported only when a card is rendered

        try:
            check_template(Path(card_template))
        except ValueError as exc:
            raise InvalidParameterError(str(exc)) from None
    card = CardOptions(
        repo_id=repo_id,
        description=validate_description(description),
        tags=list(tags or []),
        license=validate_license(license),
        language=validate_languages(language),
        task_categories=validate_task_categories(task_categories),
        pretty_name=pretty_name,
        template=Path(card_template) if card_template else None,
        hub_url=constants.ENDPOINT,  # the Hub pushed to (HF_ENDPOINT): a self-hosted Hub's card cites itself
    )
    return target, card, _select_stages(list(stages) if stages else None)


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
        The repo URL and, per stage, its commits (or the plan, with ``dry_run``).

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
        if dry_run:
            planned = PushResult(
                repo_id=repo_id,
                url="",
                revision=revision,
                dry_run=True,
                plan=_dry_run_plan(folder, card, target, selected),
                num_records=folder.num_records,
            )
            print(format_table(planned.table()))
            return planned
        secret = SecretStr(resolve_token(token, credentials))

        # 2. The token, the repo, the branch (retried: huggingface_hub does not retry these calls).
        ready = prepare_repo(target, secret, private)
        url = ready.url
        logger.info("Pushing %s (%d records) to %s as %s.", folder.root, folder.num_records, url, ready.user)

        # 3. The stages, in order; each commits on its own and is cached for a retry of this run. The large files of
        # the data, images and processors stages upload in the background meanwhile (tasks.preupload).
        keys = _content_keys(folder, card)
        run_key = str(current_flow_run.root_flow_run_id)  # kept by a Retry, also of a parent flow

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
                stage_result = (
                    STAGE_TASKS[stage](stage_job, card) if stage == "card" else STAGE_TASKS[stage](stage_job)
                )
            except Exception as exc:  # the failed run is the one a user opens the table for
                rows = [row for r in results for row in r.rows()]
                later = selected[selected.index(stage) + 1 :]
                artifacts.record_stage_table(repo_id, rows + unfinished_rows(stage, describe_failure(exc), later))
                raise
            current_revision, current_head = stage_result.revision, stage_result.head or current_head
            results.append(stage_result)

        push = PushResult(
            repo_id=repo_id,
            url=url,
            revision=current_revision,
            stages=results,
            preuploads=preuploads,
            num_records=folder.num_records,
        )
        artifacts.record_stage_table(repo_id, push.table())
        # The commit the push left the branch at (the last stage's, or the head it found unchanged).
        emit_dataset_pushed(repo_id, current_revision, current_head, len(push.commits), folder.num_records, url)
        logger.info("Pushed %s in %.1f s: %d commit(s).", repo_id, time.monotonic() - started, len(push.commits))
        return push


def add_card_arguments(parser: argparse.ArgumentParser) -> None:
    """The card's command-line options (``--tag``, ``--license``, ...), shared with ``flows.generate_and_push``."""
    parser.add_argument(
        "--tag", action="append", default=[], dest="tags", metavar="TAG", help="card tag (repeatable)"
    )
    parser.add_argument("--license", metavar="ID", help="card license: a Hub identifier such as apache-2.0")
    parser.add_argument("--language", action="append", metavar="CODE", help="card language, ISO 639 (repeatable)")
    parser.add_argument(
        "--task-category", action="append", dest="task_categories", metavar="ID", help="card task (repeatable)"
    )
    parser.add_argument("--pretty-name", metavar="NAME", help="card pretty_name")


def card_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of ``push_dataset`` that :func:`add_card_arguments` parsed."""
    names = ("tags", "license", "language", "task_categories", "pretty_name")
    return {name: getattr(args, name) for name in names}


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
