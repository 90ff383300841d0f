"""The push's parameter checks that need no network: the target, the card options and the stages to run.

``flows.push.push_dataset`` runs them first; the command lines (``python -m flows.push``,
``python -m flows.generate_and_push``) run them before a flow run exists, and ``generate_and_push`` before it
generates. So a bad parameter is named in one message before any request, and never costs a generation run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from huggingface_hub import constants

from tasks.card.options import CardOptions
from tasks.hub_commit import HubTarget
from tasks.stage_plan import STAGES, StageName, check_commit_messages
from tasks.validation import (
    InvalidParameterError,
    validate_description,
    validate_languages,
    validate_license,
    validate_repo_id,
    validate_revision,
    validate_task_categories,
)


def _select_stages(stages: list[str] | None) -> list[StageName]:
    if not stages:
        return list(STAGES)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise InvalidParameterError(f"stages {unknown} are unknown; choose among {', '.join(STAGES)}.")
    return [s for s in STAGES if s in stages]


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
        revision=target.revision,  # a pull request to a branch merges into it: named too
    )
    return target, card, _select_stages(list(stages) if stages else None)
