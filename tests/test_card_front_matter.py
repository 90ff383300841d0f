"""YAML front matter of the dataset card (tasks.card.front_matter)."""

from __future__ import annotations

import pytest
import yaml

from tasks.card.front_matter import (
    SIZE_CATEGORIES,
    build_configs,
    build_front_matter,
    dump_front_matter,
    merge_tags,
    size_category,
)

HOSTILE_TAGS = [
    "#x",
    "a: b",
    "- y",
    "東京",
    "émoji 🎉",
    "{{ not jinja }}",
    "{% raw %}",
    "---",
    "...",
    "1e3",
    "0o17",
    ".inf",
    "null",
    "no",
    "yes",
    "true",
    "2024",
    "[list]",
    "{map: 1}",
    "&anchor",
    "*alias",
    "!tag",
    "%directive",
    "@at",
    "`tick`",
    "'single'",
    '"double"',
    "trailing ",
    " leading",
    "tab\there",
    "line\nbreak\n---\nstill tag",
    "u2028\u2028sep",
    "nel\x85x",
    "bom\ufeff",
    "back\\slash",
    "a # comment",
    "key: value: more",
    "? question",
    "| pipe",
    "> folded",
]


def test_size_categories_cover_every_hub_label() -> None:
    cases = [
        (0, "n<1K"),
        (999, "n<1K"),
        (1_000, "1K<n<10K"),
        (9_999, "1K<n<10K"),
        (10_000, "10K<n<100K"),
        (100_000, "100K<n<1M"),
        (999_999, "100K<n<1M"),
        (1_000_000, "1M<n<10M"),
        (10_000_000, "10M<n<100M"),
        (100_000_000, "100M<n<1B"),
        (1_000_000_000, "1B<n<10B"),
        (10_000_000_000, "10B<n<100B"),
        (100_000_000_000, "100B<n<1T"),
        (999_999_999_999, "100B<n<1T"),
        (1_000_000_000_000, "n>1T"),
        (10**15, "n>1T"),
    ]
    for n, label in cases:
        assert size_category(n) == label, n
    assert {label for _, label in cases} == set(SIZE_CATEGORIES)
    assert len(SIZE_CATEGORIES) == 11
    with pytest.raises(ValueError):
        size_category(-1)


def test_tags_defaults_first_deduplicated_order_kept() -> None:
    assert merge_tags(None) == ["synthetic", "datadesigner"]
    assert merge_tags(["b", "synthetic", "a", "b", "", "  ", "A"]) == ["synthetic", "datadesigner", "b", "a", "A"]
    assert merge_tags(["chat", " chat", "chat ", " synthetic"]) == ["synthetic", "datadesigner", "chat"]


def test_configs_are_exactly_what_load_dataset_reads() -> None:
    assert build_configs(["conversations", "summary"]) == [
        {"config_name": "data", "data_files": [{"split": "train", "path": "data/*.parquet"}], "default": True},
        {"config_name": "conversations", "data_files": [{"split": "train", "path": "conversations/*.parquet"}]},
        {"config_name": "summary", "data_files": [{"split": "train", "path": "summary/*.parquet"}]},
    ]
    assert build_configs([]) == build_configs([])[:1]


@pytest.mark.parametrize("name", ["data", "images", "README.md", "a/b", "../x", "", "*", "x*", "-x", ".."])
def test_unusable_processor_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        build_configs([name])


def test_duplicate_processor_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        build_configs(["a", "a"])


def test_optional_keys_only_when_given() -> None:
    plain = build_front_matter(configs=build_configs([]), tags=[], num_records=5)
    assert list(plain) == ["tags", "size_categories", "configs"]
    full = build_front_matter(
        configs=build_configs([]),
        tags=["x"],
        num_records=None,
        license="cc-by-4.0",
        language=["en", "fr"],
        task_categories=["text-generation"],
        pretty_name="Greetings",
    )
    assert full["license"] == "cc-by-4.0" and full["language"] == ["en", "fr"]
    assert full["task_categories"] == ["text-generation"] and full["pretty_name"] == "Greetings"
    assert "size_categories" not in full  # unknown record count: no guess


def test_hostile_strings_round_trip_and_never_break_the_block() -> None:
    data = build_front_matter(
        configs=build_configs(["conversations"]),
        tags=HOSTILE_TAGS,
        num_records=12,
        pretty_name="Name: with --- and\n---\nlines",
        license="other",
    )
    text = dump_front_matter(data)
    assert yaml.safe_load(text) == data
    stripped = dict.fromkeys(t.strip() for t in HOSTILE_TAGS if t.strip())  # surrounding spaces are dropped
    assert yaml.safe_load(text)["tags"] == ["synthetic", "datadesigner", *stripped]
    # every value on one line, so no line can close the front matter
    assert all(line.strip() not in ("---", "...") for line in text.splitlines())
    assert len(text.splitlines()) == len(text.split("\n")) - 1


def test_yaml_1_2_parsers_read_the_same_strings() -> None:
    """The Hub parses front matter as YAML 1.2: '1e3', '0o17', '.inf' must stay strings there too."""
    from ruamel import yaml as ruamel
    data = build_front_matter(configs=build_configs([]), tags=HOSTILE_TAGS, num_records=1)
    loaded = ruamel.YAML(typ="safe", pure=True).load(dump_front_matter(data))
    assert loaded == data
