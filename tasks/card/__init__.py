"""The dataset card (README.md) of a pushed dataset: statistics, YAML front matter and the rendered Markdown.

Usage::

    card = render_card(parquet_files, {"conversations": files}, CardOptions(repo_id=..., description=...),
                       builder_config=..., metadata=...)
    card.text  # README.md
"""

from tasks.card.front_matter import SIZE_CATEGORIES, build_configs, dump_front_matter, merge_tags, size_category
from tasks.card.render import DEFAULT_TEMPLATE, CardOptions, RenderedCard, render_card
from tasks.card.statistics import (
    EXACT_DISTINCT_LIMIT,
    TEXT_STATS_METHOD,
    ColumnStatistics,
    DatasetStatistics,
    TokenStatistics,
    compute_statistics,
)

__all__ = [
    "DEFAULT_TEMPLATE",
    "EXACT_DISTINCT_LIMIT",
    "SIZE_CATEGORIES",
    "TEXT_STATS_METHOD",
    "CardOptions",
    "ColumnStatistics",
    "DatasetStatistics",
    "RenderedCard",
    "TokenStatistics",
    "build_configs",
    "compute_statistics",
    "dump_front_matter",
    "merge_tags",
    "render_card",
    "size_category",
]
