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

# The layout folder is the path's first segment: a layout folder's name further in is part of a file's name
# (``images/parquet-files/a.png`` is an image), and a URL or another folder's path is no file of the dataset.
_LOCAL = re.compile(r"^(parquet-files|processors-files|images)/(.+)$")


def repo_path(local_relative: str) -> str | None:
    """The repo path for a file given by its path relative to the dataset folder, or None if it is not pushed.

    ``\\`` separators (a path written on Windows) are read as ``/``. Absolute paths are not accepted: strip the
    dataset folder first (``hub_metadata`` does).

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
