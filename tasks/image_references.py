"""The image files a config's rows point at, checked against the files the repo holds.

Data Designer writes generated images to ``images/<column>/<uuid>.<ext>`` and stores that path, relative to the
dataset folder, in the row (a list of paths for several images per row). The push uploads ``images/`` unchanged,
so the same relative path names the image in the repo. A column is taken for an image column when its first
non-empty value is such a path; every value of it that starts with ``images/`` must then be a repo file.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from tasks.repo_layout import IMAGES_FOLDER

IMAGE_PREFIX = f"{IMAGES_FOLDER}/"
MAX_EXAMPLES = 5  # missing paths kept to name in the report; the count covers all of them


def _strings(array: pa.Array) -> pa.Array | None:
    """A record batch column's strings, lists flattened (one level or more); None when it holds no strings."""
    while pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        array = pc.list_flatten(array)
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return None
    return array.drop_null()


class ImageReferences:
    """Counts the image paths in a config's record batches and the ones the repo does not have.

    Args:
        repo_images: Returns the repo paths of the files under ``images/`` at the commit being read; called once,
            when the first image column is found (a config without one never lists the folder).
    """

    def __init__(self, repo_images: Callable[[], frozenset[str]]) -> None:
        self._list_repo_images = repo_images
        self._repo_images: frozenset[str] | None = None
        self._kinds: dict[str, bool] = {}  # column name -> is an image column (decided at its first value)
        self.columns: list[str] = []
        self.referenced = 0
        self.missing = 0
        self.examples: list[str] = []

    def add(self, batch: pa.RecordBatch) -> None:
        """Count the image paths of ``batch``'s image columns, and the ones missing from the repo."""
        for name in batch.schema.names:
            if self._kinds.get(name) is False:
                continue
            strings = _strings(batch.column(name))
            if strings is None:
                self._kinds[name] = False
                continue
            if name not in self._kinds:
                values = strings.filter(pc.not_equal(strings, ""))
                if len(values) == 0:
                    continue  # undecided until a value shows up
                self._kinds[name] = str(values[0].as_py()).startswith(IMAGE_PREFIX)
                if not self._kinds[name]:
                    continue
                self.columns.append(name)
            self._count(strings.filter(pc.starts_with(strings, IMAGE_PREFIX)).to_pylist())

    def _count(self, paths: list[str]) -> None:
        if not paths:
            return
        if self._repo_images is None:
            self._repo_images = self._list_repo_images()
        self.referenced += len(paths)
        for path in paths:
            if path not in self._repo_images:
                self.missing += 1
                if len(self.examples) < MAX_EXAMPLES:
                    self.examples.append(path)
