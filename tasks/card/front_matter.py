"""The dataset card's YAML front matter: built as data, dumped with PyYAML, never pasted together as text.

- ``configs``: ``data`` (repo path ``data/*.parquet``, ``default: true``), then one config per processor that
  has output (``<name>/*.parquet``). Every config has ``data_files: [{split: train, path: ...}]``, the form that
  ``datasets.load_dataset(repo, config)`` reads.
- ``tags``: ``synthetic``, ``datadesigner``, then the user's tags, de-duplicated, first occurrence kept.
- ``size_categories``: the Hub's label for the record count (:data:`SIZE_CATEGORIES`).
- ``license``, ``language``, ``task_categories``, ``pretty_name``: only when given.

:func:`dump_front_matter` uses a :class:`yaml.SafeDumper` subclass (standard tags only, like ``yaml.safe_dump``)
with ``allow_unicode=True`` and ``sort_keys=False``. It adds one thing: strings that a YAML 1.2 parser would
read as something else are quoted. The Hub reads front matter with a YAML 1.2 parser, and PyYAML only quotes
what YAML 1.1 would misread, so without this a tag such as ``1e3`` would come back as a number. Strings with line
breaks (also U+0085, U+2028, U+2029, U+FEFF) are written double-quoted and escaped, so every value stays on one line.
The result is checked to load back (``yaml.safe_load``) to exactly the same data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from tasks.dataset_folder import check_processor_name

__all__ = [
    "DEFAULT_TAGS",
    "SIZE_CATEGORIES",
    "build_configs",
    "build_front_matter",
    "dump_front_matter",
    "merge_tags",
    "size_category",
    "validate_processor_name",
]

DEFAULT_TAGS: tuple[str, ...] = ("synthetic", "datadesigner")
MAIN_CONFIG = "data"

# (exclusive upper bound, label); n >= 10**12 is "n>1T"
_SIZE_BOUNDS: tuple[tuple[int, str], ...] = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
    (100_000_000_000, "10B<n<100B"),
    (1_000_000_000_000, "100B<n<1T"),
)
SIZE_CATEGORIES: tuple[str, ...] = (*(label for _, label in _SIZE_BOUNDS), "n>1T")


def size_category(num_records: int) -> str:
    """The Hub's ``size_categories`` label for ``num_records`` rows (``n < 1000`` is ``n<1K``, and so on)."""
    if num_records < 0:
        raise ValueError("num_records must be >= 0")
    for bound, label in _SIZE_BOUNDS:
        if num_records < bound:
            return label
    return "n>1T"


def merge_tags(user_tags: Iterable[str] | None) -> list[str]:
    """The default tags, then the user's: stripped (as languages and task categories are), blank ones dropped,
    duplicates dropped (first one kept)."""
    return list(dict.fromkeys(t.strip() for t in (*DEFAULT_TAGS, *(user_tags or ())) if t.strip()))


def validate_processor_name(name: str) -> str:
    """A processor name usable as a config name and a repo folder (``<name>/*.parquet``), or ``ValueError``."""
    if not isinstance(name, str):
        raise ValueError(f"processor name {name!r} cannot be a dataset config: it must be a string")
    return check_processor_name(name)  # the push's rule: same characters, no reserved repo path


def build_configs(processor_names: Sequence[str]) -> list[dict[str, Any]]:
    """``configs`` entries: ``data`` first (default), then each processor in the order given."""
    configs: list[dict[str, Any]] = [
        {
            "config_name": MAIN_CONFIG,
            "data_files": [{"split": "train", "path": f"{MAIN_CONFIG}/*.parquet"}],
            "default": True,
        }
    ]
    seen = {MAIN_CONFIG}
    for name in processor_names:
        validate_processor_name(name)
        if name in seen:
            raise ValueError(f"duplicate processor name {name!r}")
        seen.add(name)
        configs.append({"config_name": name, "data_files": [{"split": "train", "path": f"{name}/*.parquet"}]})
    return configs


def build_front_matter(
    *,
    configs: list[dict[str, Any]],
    tags: Iterable[str] | None,
    num_records: int | None,
    license: str | None = None,
    language: Sequence[str] | None = None,
    task_categories: Sequence[str] | None = None,
    pretty_name: str | None = None,
) -> dict[str, Any]:
    """The front matter as data, in the order it is written. Optional keys appear only when given."""
    data: dict[str, Any] = {}
    if pretty_name:
        data["pretty_name"] = pretty_name
    if license:
        data["license"] = license
    if language:
        data["language"] = list(language)
    if task_categories:
        data["task_categories"] = list(task_categories)
    data["tags"] = merge_tags(tags)
    if num_records is not None:
        data["size_categories"] = [size_category(num_records)]
    data["configs"] = configs
    return data


# plain scalars that a YAML 1.2 (core schema) parser resolves to null, bool, int or float
_YAML12_NON_STRING = re.compile(
    r"""(?x)
    ~ | null | Null | NULL
    | true | True | TRUE | false | False | FALSE
    | [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+
    | [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
    | [-+]?\.(inf|Inf|INF) | \.nan | \.NaN | \.NAN
    """
)


class CardDumper(yaml.SafeDumper):
    """``SafeDumper`` that also quotes strings a YAML 1.2 parser would not read back as strings."""


# characters that some tools take for line breaks: such strings are double-quoted, where PyYAML escapes them
_BREAKS = frozenset("\n\r\x85\u2028\u2029\ufeff")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style: str | None = None
    if not _BREAKS.isdisjoint(value):
        style = '"'  # one line, escaped: a value never spans lines (and never puts "---" on a line of its own)
    elif _YAML12_NON_STRING.fullmatch(value):
        style = "'"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


CardDumper.add_representer(str, _represent_str)


def dump_front_matter(data: dict[str, Any]) -> str:
    """YAML text for ``data`` (no ``---`` markers); raises ``ValueError`` if it would not load back equal."""
    text = yaml.dump(
        data,
        Dumper=CardDumper,
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=False,
        width=1 << 30,  # no folding of long strings
    )
    if yaml.safe_load(text) != data:  # cannot happen with standard types; a card with broken YAML must not ship
        raise ValueError("front matter does not round-trip through YAML")
    return text
