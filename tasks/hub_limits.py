"""The Hub's advice on the shape of a repo, checked on the files a push would put there, before any request.

huggingface.co advises under 100k files per repo and under 10k entries (files and subfolders) per folder
(https://huggingface.co/docs/hub/repositories-recommendations). The Hub still takes a push past either, but the
repo gets slow to list, browse, clone and load, and every later commit to it slower. A Data Designer folder gets
there through its images: one file per image, all of a column's in ``images/<column>/``, which the rows name. So
the push does not refuse (the rows' paths must stay what they are); it warns, once per folder, with the count and
what to change, and the dry run shows the same lines.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

FILES_PER_REPO = 100_000
ENTRIES_PER_FOLDER = 10_000
_ADVICE_URL = "https://huggingface.co/docs/hub/repositories-recommendations"


def repo_shape_advice(
    repo_paths: Iterable[str],
    *,
    files_per_repo: int = FILES_PER_REPO,
    entries_per_folder: int = ENTRIES_PER_FOLDER,
) -> list[str]:
    """Warnings for the Hub's advice that a repo made of ``repo_paths`` would go past; empty when it keeps it.

    Args:
        repo_paths: The repo paths of every file the push uploads (``data/batch_00000.parquet``, ...).
        files_per_repo: Files the Hub advises a repo to stay under.
        entries_per_folder: Entries (files and subfolders) the Hub advises a folder to stay under.

    Returns:
        One line per folder with too many entries, sorted by path, then one for the whole repo when it has too
        many files; each gives the count, the advice and what to do.

    Example:
        >>> repo_shape_advice([f"images/a/{i}.png" for i in range(3)], entries_per_folder=3)[0][:40]
        'images/a/ would hold 3 entries: the Hub '
    """
    files = set(repo_paths)
    entries: defaultdict[str, set[str]] = defaultdict(set)
    for path in files:
        parts = path.split("/")
        for depth, name in enumerate(parts):
            entries["/".join(parts[:depth])].add(name)
    advice = [
        f"{folder + '/' if folder else 'The repo root'} would hold {len(names):,} entries: the Hub advises fewer "
        f"than {entries_per_folder:,} per folder ({_ADVICE_URL}), past which the repo is slow to list, browse and "
        "load. Spread the files over subfolders (for images: when they are generated, since the rows name them)."
        for folder, names in sorted(entries.items())
        if len(names) >= entries_per_folder
    ]
    if len(files) >= files_per_repo:
        advice.append(
            f"The push puts {len(files):,} files in the repo: the Hub advises fewer than {files_per_repo:,} per "
            f"repo ({_ADVICE_URL}). Merge small files into fewer, larger ones (for images: store them in the "
            "parquet rows instead of one file each)."
        )
    return advice
