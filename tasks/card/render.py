"""Render the dataset card (``README.md``) of a pushed dataset (product.md §5).

The card is the YAML front matter (:mod:`tasks.card.front_matter`, always written by this module) followed by a
body rendered from a Jinja2 template. The default template is ``templates/dataset_card.md.j2``; a user's template
(``CardOptions.template``) replaces it and may ``{% extends "dataset_card.md.j2" %}`` to override single blocks.
Templates render the body only: whatever a template does, the front matter and its ``configs`` stay correct.

Every user-supplied string (description, tags, names) reaches the template as data, never as template source, so
``{{ }}`` in a description is printed as it is. Autoescape is off (the output is Markdown). Values that go into
tables and code spans are escaped by the filters ``md_code`` and ``md_cell``; the description is printed verbatim.
Templates run in Jinja2's sandbox with ``StrictUndefined``: a misspelt variable is an error, not an empty string.

Numbers come from the parquet files (:func:`tasks.card.statistics.compute_statistics`). ``metadata.json`` adds
only what the files cannot tell: completion against the target record count, and LLM token usage of
``column_statistics`` (``input_tokens_mean`` / ``output_tokens_mean`` ...). A statistic that fails renders as
``n/a`` (the reason is logged) and the card is still produced.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import jinja2
import pyarrow.parquet as pq
from jinja2 import meta as jinja2_meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel

from tasks.card.front_matter import build_configs, build_front_matter, dump_front_matter, size_category
from tasks.card.options import CardOptions
from tasks.card.statistics import ColumnStatistics, DatasetStatistics, compute_statistics
from tasks.card.template_sources import TEMPLATES_DIR

__all__ = ["DEFAULT_TEMPLATE", "NA", "NOT_APPLICABLE", "CardOptions", "RenderedCard", "render_card"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TEMPLATE = TEMPLATES_DIR / "dataset_card.md.j2"
NA = "n/a"  # a statistic that could not be computed
NOT_APPLICABLE = "—"  # a statistic that does not apply (e.g. a percentage of zero values)

_LLM_TOKEN_FIELDS = (
    "input_tokens_mean",
    "input_tokens_median",
    "input_tokens_stddev",
    "output_tokens_mean",
    "output_tokens_median",
    "output_tokens_stddev",
)


class RenderedCard(BaseModel):
    """A rendered dataset card: the README text, its front matter, its configs and the statistics shown."""

    text: str  # the full README.md
    front_matter: dict[str, Any]  # the data dumped as YAML at the top of ``text``
    configs: list[str]  # config names in order: "data", then processors
    statistics: DatasetStatistics


# ---------------------------------------------------------------------------------------------------------------
# formatting


def fmt_int(value: int | None) -> str:
    return NA if value is None else f"{value:,}"


def fmt_float(value: float | None, digits: int = 1) -> str:
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return NA
    return f"{value:,.{digits}f}"


def _fmt_reported(value: float | None) -> str:
    """A number taken from metadata.json: ``—`` when it does not report it."""
    return NOT_APPLICABLE if value is None else fmt_float(value)


def fmt_pct(part: int | None, whole: int | None) -> str:
    """``part / whole`` as a percentage with one decimal; ``<0.1%`` / ``>99.9%`` rather than a misleading 0.0/100.0."""
    if part is None or whole is None:
        return NA
    if whole <= 0:
        return NOT_APPLICABLE
    pct = 100.0 * part / whole
    if 0 < pct < 0.05:
        return "<0.1%"
    if 99.95 <= pct < 100:
        return ">99.9%"
    return f"{pct:.1f}%"


def md_code(value: Any, table: bool = True) -> str:
    """``value`` as an inline code span on one line; ``table``: safe in a Markdown table cell (``|`` escaped, which
    only a table reads as a pipe; elsewhere the backslash would show)."""
    text = " ".join(str(value).split("\n")).replace("\r", " ")
    if table:
        text = text.replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_cell(value: Any) -> str:
    """Plain text safe in a Markdown table cell (one line, pipes and HTML escaped)."""
    text = " ".join(str(value).splitlines())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def py_str(value: str) -> str:
    """A Python string literal (double-quoted) for code snippets."""
    return json.dumps(value, ensure_ascii=False)


def _bibtex_escape(value: str) -> str:
    out = []
    for ch in " ".join(value.split()):
        if ch in "{}&%$#_":
            out.append("\\" + ch)
        elif ch == "\\":
            out.append("\\textbackslash{}")
        elif ch == "~":
            out.append("\\textasciitilde{}")
        elif ch == "^":
            out.append("\\textasciicircum{}")
        else:
            out.append(ch)
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------------
# inputs from builder_config.json and metadata.json (any shape tolerated)


def _enum_value(value: Any) -> Any:
    """Data Designer may serialise enums as ``{"value": ...}``."""
    if isinstance(value, Mapping):
        return value.get("value")
    return value


def _guarded(what: str, read: Callable[[Any], T], source: Any, default: T) -> T:
    """``read(source)``, or ``default`` (logged) when the JSON has a shape nobody expected."""
    try:
        return read(source)
    except Exception as exc:
        logger.warning("dataset card: %s unreadable, left out: %s: %s", what, type(exc).__name__, exc)
        return default


def _designer(builder_config: Any) -> Mapping[str, Any]:
    if not isinstance(builder_config, Mapping):
        return {}
    designer = builder_config.get("data_designer", builder_config)
    return designer if isinstance(designer, Mapping) else {}


def _library_version(builder_config: Any) -> str | None:
    if isinstance(builder_config, Mapping) and isinstance(
        builder_config.get("library_version"), str | int | float
    ):
        return str(builder_config["library_version"])
    return None


def _config_columns(builder_config: Any) -> list[Mapping[str, Any]]:
    columns = _designer(builder_config).get("columns")
    if not isinstance(columns, list):
        return []
    return [c for c in columns if isinstance(c, Mapping) and isinstance(c.get("name"), str)]


def _column_kind(config: Mapping[str, Any]) -> str:
    kind = _enum_value(config.get("column_type"))
    kind = str(kind) if kind not in (None, "") else "unknown"
    sampler = _enum_value(config.get("sampler_type"))
    if kind == "sampler" and sampler not in (None, ""):
        return f"sampler ({sampler})"
    return kind


def _models(builder_config: Any) -> list[dict[str, str]]:
    """Model aliases and names only (never keys or endpoints)."""
    configs = _designer(builder_config).get("model_configs")
    if not isinstance(configs, list):
        return []
    models = []
    for entry in configs:
        if isinstance(entry, Mapping) and isinstance(entry.get("model"), str):
            models.append(
                {
                    "alias": str(entry.get("alias") or ""),
                    "model": entry["model"],
                    "provider": str(_enum_value(entry.get("provider")) or ""),
                }
            )
    return models


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _completion(metadata: Any) -> dict[str, Any] | None:
    if not isinstance(metadata, Mapping):
        return None
    actual, target = _int(metadata.get("actual_num_records")), _int(metadata.get("target_num_records"))
    if actual is None or target is None or actual == target or target <= 0 or actual < 0:
        return None
    return {"actual": actual, "target": target, "percent": fmt_pct(actual, target)}


def _llm_token_stats(metadata: Any) -> dict[str, dict[str, float]]:
    """``column name -> {field: value}`` for the token fields of ``metadata.column_statistics``."""
    if not isinstance(metadata, Mapping):
        return {}
    raw = metadata.get("column_statistics")
    if isinstance(raw, Mapping):
        entries = [dict(v, column_name=k) if isinstance(v, Mapping) else v for k, v in raw.items()]
    elif isinstance(raw, list):
        entries = raw
    else:
        return {}
    found: dict[str, dict[str, float]] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("column_name"), str):
            continue
        values = {
            f: float(entry[f])
            for f in _LLM_TOKEN_FIELDS
            if isinstance(entry.get(f), int | float)
            and not isinstance(entry.get(f), bool)
            and math.isfinite(entry[f])
        }
        if values:
            found[entry["column_name"]] = values
    return found


def _processor_summary(name: str, files: Sequence[Path]) -> dict[str, Any]:
    """Records and columns of a processor's output, from the parquet footers."""
    summary: dict[str, Any] = {"name": name, "files": len(files), "records": NA, "columns": NA}
    try:
        records = 0
        columns: dict[str, None] = {}
        for path in files:
            footer = pq.read_metadata(path)
            records += footer.num_rows
            columns.update(dict.fromkeys(footer.schema.to_arrow_schema().names))
    except Exception as exc:
        logger.warning("dataset card: processor %r output unreadable: %s: %s", name, type(exc).__name__, exc)
        return summary
    summary.update(records=fmt_int(records), columns=fmt_int(len(columns)))
    return summary


# ---------------------------------------------------------------------------------------------------------------
# the table rows


def _column_row(col: ColumnStatistics, num_records: int | None, kind: str) -> dict[str, Any]:
    nulls = NA if col.null_count is None else f"{fmt_int(col.null_count)} ({fmt_pct(col.null_count, num_records)})"
    if col.unique_count is None:
        unique = NA
    else:
        non_null = None if col.null_count is None or num_records is None else num_records - col.null_count
        approx = "" if col.unique_exact else "≈ "
        unique = f"{approx}{fmt_int(col.unique_count)} ({fmt_pct(col.unique_count, non_null)})"
    words = tokens = NOT_APPLICABLE
    if col.is_text:
        t = col.tokens
        if t is None:
            words = tokens = NA
        elif t.values == 0:
            words = tokens = NOT_APPLICABLE
        else:
            words = f"{fmt_float(t.words_mean)} / {fmt_int(t.words_min)} / {fmt_int(t.words_max)}"
            tokens = f"{fmt_float(t.tokens_mean)} / {fmt_int(t.tokens_min)} / {fmt_int(t.tokens_max)}"
    return {
        "name": col.name,
        "arrow_type": col.arrow_type,
        "column_type": kind,
        "unique": unique,
        "nulls": nulls,
        "words": words,
        "tokens": tokens,
        "error": col.error,
        "stats": col,
    }


def _safe_statistics(parquet_files: Sequence[Path]) -> DatasetStatistics:
    try:
        return compute_statistics(parquet_files)
    except Exception as exc:  # compute_statistics guards itself; this is the last line of defence
        logger.warning("dataset card: statistics failed: %s: %s", type(exc).__name__, exc, exc_info=True)
        return DatasetStatistics(num_records=None, columns=[], num_files=len(parquet_files), error=str(exc))


def _environment(user_template: Path | None) -> SandboxedEnvironment:
    # the shipped directory first, so that ``{% extends "dataset_card.md.j2" %}`` always means the shipped card;
    # then the user template's directory, for its own includes
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(TEMPLATES_DIR))]
    if user_template is not None:
        loaders.append(jinja2.FileSystemLoader(str(Path(user_template).resolve().parent)))
    env = SandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=False,  # Markdown output; user text is data, escaped where it lands in tables
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        fmt_int=fmt_int, fmt_float=fmt_float, fmt_pct=fmt_pct, md_code=md_code, md_cell=md_cell, py_str=py_str
    )
    return env


# What a card template can use (render_card's context).
CONTEXT_NAMES = frozenset(
    {"repo_id", "revision", "title", "description", "options", "front_matter", "configs", "summary", "columns",
     "llm_columns", "generation", "processors", "statistics", "notes", "citation", "year", "NA"}
)  # fmt: skip


def check_template(user_template: Path) -> None:
    """Check a user's card template without rendering it: its syntax, and that every variable it reads is one
    the card provides (a misspelt name would only fail at render time, after the repo was created).

    Raises:
        ValueError: naming the problem (line for a syntax error; the unknown names and the available ones).
    """
    env = _environment(user_template)
    try:
        tree = env.parse(Path(user_template).read_text(encoding="utf-8"))
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"card_template {str(user_template)!r}, line {exc.lineno}: {exc.message}") from None
    unknown = sorted(jinja2_meta.find_undeclared_variables(tree) - CONTEXT_NAMES - set(env.globals))
    if unknown:
        raise ValueError(
            f"card_template {str(user_template)!r} uses {unknown}, which the card does not provide; "
            f"available: {', '.join(sorted(CONTEXT_NAMES))}."
        )


def _template(env: SandboxedEnvironment, user_template: Path | None) -> jinja2.Template:
    if user_template is None:
        return env.get_template(DEFAULT_TEMPLATE.name)
    return env.from_string(Path(user_template).read_text(encoding="utf-8"))


def render_card(
    parquet_files: Sequence[Path],
    processors: Mapping[str, Sequence[Path]],
    options: CardOptions,
    builder_config: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    year: int | None = None,
) -> RenderedCard:
    """Render ``README.md`` for the dataset made of ``parquet_files`` plus its processor outputs.

    ``processors`` maps a processor name to its parquet files; a processor without files gets no config.
    ``builder_config`` / ``metadata`` are the parsed JSON files, or ``None`` when absent (then the card does not
    link to them). ``year`` (default: the current year) is used in the citation.

    Raises ``ValueError`` for an unusable processor name and ``jinja2.TemplateError`` for a broken user
    template; data problems never raise (they show as ``n/a``).
    """
    present = [name for name, files in processors.items() if len(files) > 0]
    configs = build_configs(present)
    statistics = _safe_statistics([Path(p) for p in parquet_files])
    records = statistics.num_records

    front_matter = build_front_matter(
        configs=configs,
        tags=options.tags,
        num_records=records,
        license=options.license,
        language=options.language,
        task_categories=options.task_categories,
        pretty_name=options.pretty_name,
    )
    yaml_text = dump_front_matter(front_matter)

    no_columns: list[Mapping[str, Any]] = []
    config_columns = _guarded("builder_config.json columns", _config_columns, builder_config, no_columns)
    kinds: dict[str, str] = {c["name"]: _column_kind(c) for c in config_columns}
    rows = [_column_row(c, records, kinds.get(c.name, NOT_APPLICABLE)) for c in statistics.columns]
    type_counts = Counter(str(_enum_value(c.get("column_type")) or "unknown") for c in config_columns)
    no_stats: dict[str, dict[str, float]] = {}
    llm_stats = _guarded("metadata.json column_statistics", _llm_token_stats, metadata, no_stats)
    llm_rows = [
        {
            "name": name,
            "input_mean": _fmt_reported(values.get("input_tokens_mean")),
            "output_mean": _fmt_reported(values.get("output_tokens_mean")),
            "output_median": _fmt_reported(values.get("output_tokens_median")),
            "output_stddev": _fmt_reported(values.get("output_tokens_stddev")),
        }
        for name, values in llm_stats.items()
    ]
    year = year if year is not None else _dt.datetime.now(_dt.UTC).year
    namespace, name = options.repo_id.split("/")
    title = " ".join((options.pretty_name or name).split())
    url = f"{options.hub_url.rstrip('/')}/datasets/{options.repo_id}"
    key = re.sub(r"[^A-Za-z0-9]+", "_", options.repo_id).strip("_") + f"_{year}"
    citation = (
        f"@misc{{{key},\n"
        f"  title        = {{{_bibtex_escape(title)}}},\n"
        f"  author       = {{{_bibtex_escape(namespace)}}},\n"
        f"  year         = {{{year}}},\n"
        f"  publisher    = {{Hugging Face}},\n"
        f"  howpublished = {{\\url{{{url}}}}},\n"
        f"  note         = {{Synthetic dataset generated with NeMo Data Designer}}\n"
        f"}}"
    )
    library_version = _guarded("builder_config.json library_version", _library_version, builder_config, None)

    no_models: list[dict[str, str]] = []
    context: dict[str, Any] = {
        "repo_id": options.repo_id,
        "revision": options.revision,
        "title": title,
        "description": options.description,
        "options": options,
        "front_matter": front_matter,
        "configs": [
            {"name": c["config_name"], "path": c["data_files"][0]["path"], "default": bool(c.get("default"))}
            for c in configs
        ],
        "summary": {
            "records": fmt_int(records),
            "columns": fmt_int(statistics.num_columns),
            "files": statistics.num_files,
            "size_category": size_category(records) if records is not None else NA,
            "completion": _guarded("metadata.json record counts", _completion, metadata, None),
        },
        "columns": rows,
        "llm_columns": llm_rows,
        "generation": {
            "library_version": library_version,
            "column_types": sorted(type_counts.items(), key=lambda kv: (-kv[1], kv[0])),
            "configured_columns": len(config_columns),
            "models": _guarded("builder_config.json model_configs", _models, builder_config, no_models),
            "has_builder_config": builder_config is not None,
            "has_metadata": metadata is not None,
        },
        "processors": [_processor_summary(p, [Path(f) for f in processors[p]]) for p in present],
        "statistics": statistics,
        "notes": {
            "exact_limit": fmt_int(statistics.exact_distinct_limit),
            "hll_error": f"{statistics.hll_relative_error:.2%}",
            "token_method": statistics.token_method,
            "error": statistics.error,
        },
        "citation": citation,
        "year": year,
        "NA": NA,
    }

    assert context.keys() == CONTEXT_NAMES  # what check_template accepts
    body = _template(_environment(options.template), options.template).render(context)
    if body.lstrip().startswith("---"):
        logger.warning("dataset card: the template output starts with '---'; templates render the body only")
    text = f"---\n{yaml_text}---\n\n{body.lstrip()}"
    if not text.endswith("\n"):
        text += "\n"
    return RenderedCard(
        text=text,
        front_matter=front_matter,
        configs=[c["config_name"] for c in configs],
        statistics=statistics,
    )
