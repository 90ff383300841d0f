"""Rendered dataset cards, kept by content: an unchanged dataset does not have its statistics computed again.

The card stage reads every parquet file to compute statistics (seconds per million rows). Its content key (see
``tasks.stage_cache``) already covers what the card depends on: the digests of the data and processor files,
the card options and template, the builder config and metadata. So the rendered text is stored under that key
(with the year, which the citation shows, and a digest of the renderer's code and templates, so an upgrade
renders again) and reused by a later push of the same content.

A nightly run with a new seed adds a card each night: the cache keeps the ``MAX_CARDS`` cards used last (a hit
counts as a use) and deletes the others when it stores one.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from tasks.local_dirs import cache_dir, keep_most_recent

MAX_CARDS = 64
CARD_PACKAGE = Path(__file__).resolve().parent / "card"


@functools.cache
def renderer_fingerprint() -> str:
    """Digest of the renderer's code and default templates: a changed renderer never serves an older card."""
    digest = hashlib.sha256()
    for path in sorted([*CARD_PACKAGE.glob("*.py"), *(CARD_PACKAGE / "templates").rglob("*")]):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _path(content_key: str) -> Path:
    year = datetime.datetime.now(datetime.UTC).year
    name = hashlib.sha256(f"{renderer_fingerprint()}:{year}:{content_key}".encode()).hexdigest()
    return cache_dir() / "cards" / f"{name}.md"


def cached_card(content_key: str, render: Callable[[], str]) -> str:
    """The card text for ``content_key``: from the cache, or rendered by ``render()`` and stored."""
    path = _path(content_key)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        pass
    else:
        with contextlib.suppress(OSError):
            os.utime(path)  # used now: the last to go when the cache is pruned
        return text
    text = render()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp"
        ) as fh:
            fh.write(text)
        os.replace(fh.name, path)  # atomic: a concurrent push never reads half a card
    except OSError:
        return text  # a read-only cache only costs a re-render next time
    keep_most_recent(path.parent, MAX_CARDS)
    return text
