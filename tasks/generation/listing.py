"""Short listings of files for log lines and messages (shared by the checkpointer and the generate flow)."""

from __future__ import annotations

from collections.abc import Sequence


def first_few(items: Sequence[str], most: int = 3) -> str:
    """The first ``most`` of ``items``, comma-separated, and how many more there are.

    Args:
        items: What to list (file paths, usually).
        most: How many to name.

    Returns:
        For example ``"a, b, c, ... (2 more)"``.
    """
    return ", ".join(items[:most]) + (f", ... ({len(items) - most} more)" if len(items) > most else "")
