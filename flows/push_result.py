"""What a push returns, and its stage table: ``PushResult`` (the commits per stage, or a dry run's plan), the
rows recorded when a stage fails, and the plain-text table the command lines print.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tasks.dry_run_plan import PlannedStage
from tasks.preupload import PreuploadResult
from tasks.stage_plan import StageName
from tasks.stages import StageResult, table_row


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
    advice: list[str] = Field(default_factory=list)  # where it goes past the Hub's advice (tasks.hub_limits)

    @property
    def commits(self) -> list[Any]:
        """Every commit the push made, in stage order.

        Returns:
            The commits of all stages, one list (empty for a dry run, or when the Hub already had everything).
        """
        return [c for s in self.stages for c in s.commits]

    def table(self) -> list[dict[str, Any]]:
        """The stage table (one row per commit), as recorded in the run's table artifact."""
        if self.dry_run:
            return [p.model_dump() for p in self.plan]
        return [row for s in self.stages for row in s.rows()]


def unfinished_rows(failed: StageName, reason: str, not_run: list[StageName]) -> list[dict[str, Any]]:
    """Rows of the stage table for a failed stage (this attempt's) and the stages after it (no attempt's)."""
    return [
        table_row(failed, f"failed: {reason}"),
        *(table_row(stage, "not run", attempt="") for stage in not_run),
    ]


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
