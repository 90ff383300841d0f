"""The dataset card (README.md) of a pushed dataset: statistics, YAML front matter and the rendered Markdown.

- :mod:`tasks.card.options`: :class:`CardOptions`, what the user says about the dataset;
- :mod:`tasks.card.statistics`: :func:`compute_statistics`, the numbers, streamed from the parquet files;
- :mod:`tasks.card.front_matter`: the YAML front matter (``configs``, size category, tags);
- :mod:`tasks.card.render`: :func:`render_card`, the card itself.

Usage::

    from tasks.card.options import CardOptions
    from tasks.card.render import render_card

    card = render_card(parquet_files, {"conversations": files}, CardOptions(repo_id=..., description=...),
                       builder_config=..., metadata=...)
    card.text  # README.md

This package imports none of them: the renderer pulls in Jinja2 and pyarrow's compute functions (which import
pandas), and a push whose card is cached needs neither.
"""
