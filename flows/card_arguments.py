"""The dataset card's command-line options (``--tag``, ``--license``, ``--language``, ``--task-category``,
``--pretty-name``), shared by ``python -m flows.push`` and ``python -m flows.generate_and_push``.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_card_arguments(parser: argparse.ArgumentParser) -> None:
    """The card's command-line options (``--tag``, ``--license``, ...), shared with ``flows.generate_and_push``."""
    parser.add_argument(
        "--tag", action="append", default=[], dest="tags", metavar="TAG", help="card tag (repeatable)"
    )
    parser.add_argument("--license", metavar="ID", help="card license: a Hub identifier such as apache-2.0")
    parser.add_argument("--language", action="append", metavar="CODE", help="card language, ISO 639 (repeatable)")
    parser.add_argument(
        "--task-category", action="append", dest="task_categories", metavar="ID", help="card task (repeatable)"
    )
    parser.add_argument("--pretty-name", metavar="NAME", help="card pretty_name")


def card_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of ``push_dataset`` that :func:`add_card_arguments` parsed."""
    names = ("tags", "license", "language", "task_categories", "pretty_name")
    return {name: getattr(args, name) for name in names}
