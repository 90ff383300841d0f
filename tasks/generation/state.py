"""The dataset folder layout (product.md §2) and the run state that lets a crashed run resume.

``.generation-state.json`` records what a run is (config hash, seed, batch size, record count); a batch is done
when all its files exist and read back with the expected row count. Batch files are written atomically, main
file last, so "the main file is there and reads" means "the batch is complete". An incomplete batch may have an
answers journal (:mod:`tasks.generation.answer_journal`), kept for the batch's next attempt in the same run only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from tasks.dataset_folder import DATA_DIR, IMAGES_DIR, PROCESSORS_DIR
from tasks.generation.answer_journal import prune_journals
from tasks.generation.batch_writer import write_bytes_atomic

logger = logging.getLogger(__name__)

STATE_FILE = ".generation-state.json"
_BATCH_FILE = re.compile(r"batch_\d{5,}\.parquet")  # what batch_name writes


def batch_name(index: int) -> str:
    """``batch_00007.parquet``."""
    return f"batch_{index:05d}.parquet"


def batch_files(index: int, processors: list[str]) -> list[str]:
    """Relative paths of one batch's files: processor outputs first, the main file last (the write order)."""
    name = batch_name(index)
    return [f"{PROCESSORS_DIR}/{p}/{name}" for p in processors] + [f"{DATA_DIR}/{name}"]


class GenerationState(BaseModel):
    """What a run generates; two runs with equal identities produce the same files.

    Attributes:
        config_hash: Hash of the config (secrets excluded).
        seed: The run seed.
        batch_size: Records per batch (the last batch may hold fewer).
        num_records: Records requested.
        processors: Names of the processors that write files.
        completed_batches: Batch indices known to be complete (informational; files are the truth).
        checkpoint_id: Nonce of the checkpoint commit that wrote this state (remote copies only).
    """

    version: int = 1
    config_hash: str
    seed: int
    batch_size: int
    num_records: int
    processors: list[str] = Field(default_factory=list)
    completed_batches: list[int] = Field(default_factory=list)
    checkpoint_id: str | None = None

    @property
    def total_batches(self) -> int:
        """Number of batches of the run."""
        return -(-self.num_records // self.batch_size)

    def rows_in(self, index: int) -> int:
        """Records in batch ``index``."""
        return min(self.batch_size, self.num_records - index * self.batch_size)

    def same_run(self, other: GenerationState) -> bool:
        """Whether ``other`` generates the same batches (its complete batches can be reused).

        ``num_records`` is not compared: batch ``i`` depends on (config, seed, i, batch size) and its own row
        count, so a run asking for more (or fewer) records reuses every batch whose row count still matches.
        """
        fields = ("version", "config_hash", "seed", "batch_size", "processors")
        return all(getattr(self, f) == getattr(other, f) for f in fields)

    def reusable_from(self, other: GenerationState) -> set[int]:
        """Completed batches of ``other`` (same run) that this run would generate identically."""
        if not self.same_run(other):
            return set()
        return {
            i
            for i in other.completed_batches
            if 0 <= i < self.total_batches and other.rows_in(i) == self.rows_in(i)
        }

    def to_bytes(self) -> bytes:
        """JSON content of the state file."""
        return (self.model_dump_json(indent=2) + "\n").encode()


class UnreadableStateError(ValueError):
    """The folder has a state file that cannot be read as one (truncated, edited, or written by another version)."""


def read_state(root: Path) -> GenerationState | None:
    """The state file of ``root``; None when there is none.

    Raises:
        UnreadableStateError: the file is there but cannot be read as a run state; the message says why.
    """
    path = root / STATE_FILE
    try:
        return GenerationState.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # a pydantic ValidationError is a ValueError, over several lines
        raise UnreadableStateError(
            f"{STATE_FILE} cannot be read: {'; '.join(str(exc).splitlines()[:2])}"
        ) from None


def write_state(root: Path, state: GenerationState) -> None:
    """Write the state file atomically."""
    write_bytes_atomic(root / STATE_FILE, state.to_bytes())


def batch_is_complete(root: Path, state: GenerationState, index: int) -> bool:
    """Whether every file of batch ``index`` exists and holds the expected number of rows."""
    expected = state.rows_in(index)
    for rel in batch_files(index, state.processors):
        try:
            if pq.read_metadata(root / rel).num_rows != expected:
                return False
        except (OSError, ValueError) as exc:  # missing, truncated, not parquet
            if (root / rel).exists():
                logger.warning("batch file %s is unreadable (%s); it will be regenerated", rel, exc)
            return False
    return True


def generated_files(root: Path) -> list[Path]:
    """Files of a previous generation in ``root``: batches, processor outputs, metadata, config, state."""
    found: list[Path] = []
    if (root / DATA_DIR).is_dir():
        found += sorted((root / DATA_DIR).glob("batch_*.parquet"))
    if (root / PROCESSORS_DIR).is_dir():
        found += sorted((root / PROCESSORS_DIR).glob("*/batch_*.parquet"))
    found += [p for p in (root / "metadata.json", root / "builder_config.json", root / STATE_FILE) if p.exists()]
    return found


def foreign_files(root: Path) -> list[Path]:
    """Files in ``root`` that a push would publish but this generator never writes: images, single-file
    processor outputs, parquet files other than ``batch_NNNNN.parquet``."""
    images = root / IMAGES_DIR
    found = sorted(p for p in images.rglob("*") if p.is_file()) if images.is_dir() else []
    for folder, depth in ((root / DATA_DIR, 0), (root / PROCESSORS_DIR, 1)):
        if folder.is_dir():
            found += sorted(
                p
                for p in folder.rglob("*.parquet")
                if not (_BATCH_FILE.fullmatch(p.name) and len(p.relative_to(folder).parts) == depth + 1)
            )
    return found


def remove_stale_files(
    root: Path, state: GenerationState, keep: set[int], answers: Collection[int] = ()
) -> list[Path]:
    """Delete generated files that do not belong to batches ``keep`` of this run (old runs, other configs), and
    the answers journals of batches other than ``answers``.

    A journal is only for the next attempt of an incomplete batch of the same run (resumed): one of another
    config, seed or batch size, of a run that starts over (``resume=False``) or of a complete batch goes like
    the batch files. (Its answers are keyed by their requests, so it could not answer a changed one anyway.)

    Returns:
        The deleted paths.
    """
    wanted = {root / rel for index in keep for rel in batch_files(index, state.processors)}
    removed = []
    for path in generated_files(root):
        if path.suffix == ".parquet" and path not in wanted:
            path.unlink(missing_ok=True)
            removed.append(path)
        elif path.name in ("metadata.json", "builder_config.json"):
            path.unlink(missing_ok=True)  # rewritten at the end of the run
            removed.append(path)
    if (root / PROCESSORS_DIR).is_dir():
        for folder in (root / PROCESSORS_DIR).iterdir():
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    removed += prune_journals(root, keep=set(answers) - keep)
    return removed
