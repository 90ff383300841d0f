"""Where each file of a dataset folder lives in the Hub repo (product.md §3–§4).

``parquet-files/batch_00000.parquet``              → ``data/batch_00000.parquet``
``processors-files/<name>/batch_00000.parquet``    → ``<name>/batch_00000.parquet``
``processors-files/<name>.parquet`` (single file)  → ``<name>/<name>.parquet``
``images/<column>/<file>``                         → ``images/<column>/<file>``
"""

from __future__ import annotations

import re

README = "README.md"
DATA_FOLDER = "data"
IMAGES_FOLDER = "images"
BUILDER_CONFIG = "builder_config.json"
METADATA = "metadata.json"

# Matches the folder layout inside any path string, absolute or relative (Data Designer may write either).
_LOCAL = re.compile(r"(?:^|.*/)(parquet-files|processors-files|images)/(.+)$")


def repo_path(local_relative: str) -> str | None:
    """The repo path for a file given by its path in the dataset folder, or None if it is not pushed.

    Also accepts absolute paths or paths with a prefix, as found in ``metadata.json``.

    Examples:
        >>> repo_path("parquet-files/batch_00001.parquet")
        'data/batch_00001.parquet'
        >>> repo_path("processors-files/summary.parquet")
        'summary/summary.parquet'
    """
    match = _LOCAL.match(local_relative.replace("\\", "/"))
    if not match:
        return None
    kind, rest = match.groups()
    if kind == "parquet-files":
        return f"{DATA_FOLDER}/{rest}"
    if kind == "images":
        return f"{IMAGES_FOLDER}/{rest}"
    if "/" in rest:
        return rest  # <name>/<batch>
    if rest.endswith(".parquet"):
        name = rest[: -len(".parquet")]
        return f"{name}/{rest}"
    return None
