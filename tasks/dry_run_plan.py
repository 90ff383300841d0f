"""The plan of a dry run (``push_dataset(..., dry_run=True)``, ``--dry-run``): per stage, the commits, files
and bytes it would push, computed from the folder alone, without any request to the Hub.
"""

from __future__ import annotations

from pydantic import BaseModel

from tasks.card.options import CardOptions
from tasks.dataset_folder import DatasetFolder
from tasks.hub_commit import HubTarget
from tasks.hub_metadata import hub_metadata, json_bytes
from tasks.redaction import redact_secrets
from tasks.stage_plan import StageName, parts, plan_files_stage
from tasks.stages import render_folder_card


class PlannedStage(BaseModel):
    """One line of a dry run: what a stage would upload."""

    stage: StageName
    commits: int
    files: int
    bytes: int
    note: str = ""


def dry_run_plan(
    folder: DatasetFolder, card: CardOptions, target: HubTarget, selected: list[StageName]
) -> list[PlannedStage]:
    """What each of the ``selected`` stages would push to ``target``: one ``PlannedStage`` per stage, in order.

    The card and ``metadata.json`` are rendered to count their bytes; a stage with nothing in the folder is
    planned with no commit and a note (the push would delete what an earlier push left).
    """
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
