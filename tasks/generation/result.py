"""What a generation run hands to the push: the folder it wrote and a summary of it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class GeneratedDataset(BaseModel):
    """The result of the generation flow; the push flow accepts it in place of a folder path.

    Attributes:
        path: The dataset folder in the Data Designer layout (``parquet-files/``, ``metadata.json``, ...).
        num_records: Records written to ``parquet-files/``.
        num_batches: Batch files written.
        columns: Column names of the main dataset, in order.
        processors: Names of the processor outputs written under ``processors-files/``.
        dataset_name: Name recorded in ``metadata.json`` (the folder name).
        config_hash: Hash of the generation config (secrets excluded), as in ``metadata.json``.
        resumed_batches: Batches taken from an earlier run (local folder or checkpoint) instead of generated.
        checkpoint_commits: Commit ids of the checkpoint commits this run made.
    """

    path: Path
    num_records: int = Field(ge=0)
    num_batches: int = Field(ge=0)
    columns: list[str] = Field(default_factory=list)
    processors: list[str] = Field(default_factory=list)
    dataset_name: str | None = None
    config_hash: str | None = None
    resumed_batches: int = Field(default=0, ge=0)
    checkpoint_commits: list[str] = Field(default_factory=list)
