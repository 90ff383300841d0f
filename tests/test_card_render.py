"""The rendered dataset card (tasks.card.render.render_card): front matter, sections, numbers, hostile input, templates."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import jinja2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from factories import make_dataset_folder
from pydantic import ValidationError

import tasks.card.statistics as statistics_module
from tasks.card.options import CardOptions
from tasks.card.render import RenderedCard, check_template, render_card

HOSTILE_TAGS = ["#x", "a: b", "- y", "東京", "émoji 🎉", "{{ tag }}", "1e3", "no", "---", "x\n---\ny"]
HOSTILE_DESCRIPTION = """A *synthetic* dataset of **greetings** — with `code`, [a link](https://example.com) and:

- a list item
key: value
tags: [not, yaml, here]
---
{{ not_a_variable }} {% if true %}not a block{% endif %} {# not a comment #}
<b>html stays</b> | pipes | too
東京 🎉"""


# ---------------------------------------------------------------------------------------------------------------
# helpers: read a card back


def split_card(text: str) -> tuple[dict[str, Any], str]:
    match = re.match(r"\A---\n(.*?)\n---\n\n", text, re.DOTALL)
    assert match, "the card must start with a front matter block"
    return yaml.safe_load(match.group(1)), text[match.end() :]


def section(body: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", body, re.DOTALL | re.MULTILINE)
    assert match, f"section {title!r} missing"
    return match.group(1)


def table_rows(text: str) -> dict[str, list[str]]:
    """Rows of Markdown tables whose first cell is a code span: name -> cells (unescaped pipes split)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows[cells[0].strip("`").strip()] = cells
    return rows


def bullet(body: str, label: str) -> str:
    match = re.search(rf"^- \*\*{re.escape(label)}\*\*: (.*)$", body, re.MULTILINE)
    assert match, label
    return match.group(1)


# independent expectations, computed with plain Python from the files


def pct(part: int, whole: int) -> str:
    if whole == 0:
        return "—"
    value = 100 * part / whole
    if 0 < value < 0.05:
        return "<0.1%"
    if 99.95 <= value < 100:
        return ">99.9%"
    return f"{value:.1f}%"


def expected_columns(paths: list[Path]) -> tuple[int, dict[str, dict[str, str]]]:
    rows = [row for p in paths for row in pq.read_table(p).to_pylist()]
    records = len(rows)
    out: dict[str, dict[str, str]] = {}
    for name in rows[0]:
        values = [r[name] for r in rows]
        present = [v for v in values if v is not None]
        nulls = records - len(present)
        unique = len({json.dumps(v, sort_keys=True) for v in present})
        cells = {
            "nulls": f"{nulls:,} ({pct(nulls, records)})",
            "unique": f"{unique:,} ({pct(unique, len(present))})",
        }
        if present and isinstance(present[0], str):
            words = [len(v.split()) for v in present]
            tokens = [-(-len(v.encode()) // 4) for v in present]
            cells["words"] = f"{sum(words) / len(words):,.1f} / {min(words):,} / {max(words):,}"
            cells["tokens"] = f"{sum(tokens) / len(tokens):,.1f} / {min(tokens):,} / {max(tokens):,}"
        else:
            cells["words"] = cells["tokens"] = "—"
        out[name] = cells
    return records, out


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_dataset_folder(tmp_path / "ds", batches=3, rows_per_batch=70)


def inputs(root: Path) -> dict[str, Any]:
    return {
        "parquet_files": sorted((root / "parquet-files").glob("*.parquet")),
        "processors": {
            "conversations": sorted((root / "processors-files" / "conversations").glob("*.parquet")),
            "summary": [root / "processors-files" / "summary.parquet"],
        },
        "builder_config": json.loads((root / "builder_config.json").read_text()),
        "metadata": json.loads((root / "metadata.json").read_text()),
    }


def render(root: Path, **options: Any) -> RenderedCard:
    args = inputs(root)
    metadata = options.pop("metadata", args["metadata"])
    builder_config = options.pop("builder_config", args["builder_config"])
    processors = options.pop("processors", args["processors"])
    opts = CardOptions(**{"repo_id": "alice/greetings", "description": "Greetings.", **options})
    return render_card(args["parquet_files"], processors, opts, builder_config, metadata, year=2030)


# ---------------------------------------------------------------------------------------------------------------


def test_every_number_equals_an_independent_computation(folder: Path) -> None:
    card = render(folder)
    front, body = split_card(card.text)
    assert front == card.front_matter
    paths = inputs(folder)["parquet_files"]
    records, columns = expected_columns(paths)

    assert bullet(body, "Records") == f"{records:,}"
    assert bullet(body, "Columns") == str(len(columns)) == "5"  # the reference tool printed 0 here
    assert front["size_categories"] == ["n<1K"]

    rows = table_rows(section(body, "Schema & Statistics"))
    assert list(rows) == list(columns)
    builder = {c["name"]: c for c in inputs(folder)["builder_config"]["data_designer"]["columns"]}
    arrow_types = {f.name: str(f.type) for f in pq.read_schema(paths[0])}
    for name, cells in rows.items():
        _, arrow_type, column_type, unique, nulls, words, tokens = cells
        assert arrow_type == f"`{arrow_types[name]}`"
        kind = builder[name]["column_type"]
        if kind == "sampler":
            kind = f"sampler ({builder[name]['sampler_type']})"
        assert column_type == kind
        assert unique == columns[name]["unique"], name
        assert nulls == columns[name]["nulls"], name
        assert words == columns[name]["words"], name
        assert tokens == columns[name]["tokens"], name
    assert any(c["nulls"] != "0 (0.0%)" for c in columns.values())  # the data does exercise nulls

    # processor outputs, from their own files
    processors = table_rows(section(body, "Generation Details"))
    for name, files in inputs(folder)["processors"].items():
        tables = [pq.read_table(f) for f in files]
        assert processors[name][2] == f"{sum(t.num_rows for t in tables):,}"
        assert processors[name][3] == str(tables[0].num_columns)
    # columns per config type, from the builder config
    details = section(body, "Generation Details")
    assert "- sampler: 4\n" in details and "- expression: 1\n" in details


def test_front_matter_configs_tags_and_options(folder: Path) -> None:
    card = render(
        folder,
        tags=["custom", "synthetic"],
        license="cc-by-4.0",
        language=["en", "fr"],
        task_categories=["text-generation"],
        pretty_name="Multilingual Greetings",
    )
    front, _ = split_card(card.text)
    assert front == card.front_matter
    assert front["configs"] == [
        {"config_name": "data", "data_files": [{"split": "train", "path": "data/*.parquet"}], "default": True},
        {"config_name": "conversations", "data_files": [{"split": "train", "path": "conversations/*.parquet"}]},
        {"config_name": "summary", "data_files": [{"split": "train", "path": "summary/*.parquet"}]},
    ]
    assert card.configs == ["data", "conversations", "summary"]
    assert front["tags"] == ["synthetic", "datadesigner", "custom"]
    assert front["license"] == "cc-by-4.0"
    assert front["language"] == ["en", "fr"]
    assert front["task_categories"] == ["text-generation"]
    assert front["pretty_name"] == "Multilingual Greetings"


def test_quick_start_has_one_snippet_per_config(folder: Path) -> None:
    card = render(folder)
    quick = section(split_card(card.text)[1], "Quick Start")
    calls = re.findall(r'load_dataset\("alice/greetings", "([^"]+)", split="train"\)', quick)
    assert calls == ["data", "conversations", "summary"]
    assert quick.count("```python") == 3


def test_quick_start_names_the_branch_the_card_is_pushed_to(folder: Path) -> None:
    quick = section(split_card(render(folder, revision="nightly/v2").text)[1], "Quick Start")
    calls = re.findall(r'load_dataset\("alice/greetings", "([^"]+)", split="train", revision="nightly/v2"\)', quick)
    assert calls == ["data", "conversations", "summary"]
    # main, and a pull request (its card is main's once merged), need no revision in the snippet
    for revision in ("main", "refs/pr/3", None):
        assert CardOptions(repo_id="alice/x", description="d", revision=revision).revision is None
        assert "revision=" not in section(split_card(render(folder, revision=revision).text)[1], "Quick Start")


def test_hostile_tags_and_description_come_out_intact(folder: Path) -> None:
    card = render(folder, tags=HOSTILE_TAGS, description=HOSTILE_DESCRIPTION, pretty_name="Name: {{ x }} # ---")
    front, body = split_card(card.text)
    assert front["tags"] == ["synthetic", "datadesigner", *HOSTILE_TAGS]
    assert front["pretty_name"] == "Name: {{ x }} # ---"
    assert HOSTILE_DESCRIPTION in body  # verbatim: no template evaluation, no escaping
    assert body.startswith("# Name: {{ x }} # ---\n\n" + HOSTILE_DESCRIPTION + "\n")
    assert "## Quick Start" in body  # the description's "---" did not end anything


def test_description_and_options_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="description"):
        CardOptions(repo_id="alice/x", description="  \n ")
    with pytest.raises(ValidationError, match="repo_id"):
        CardOptions(repo_id="no-namespace", description="d")
    with pytest.raises(ValidationError, match="repo_id"):
        CardOptions(repo_id="a/b/c", description="d")
    with pytest.raises(ValidationError, match="template"):
        CardOptions(repo_id="alice/x", description="d", template=tmp_path / "missing.j2")
    with pytest.raises(ValidationError, match="revision"):
        CardOptions(repo_id="alice/x", description="d", revision="a..b")
    assert CardOptions(repo_id="alice/x", description="  text \n").description == "text"


def test_a_failing_statistic_renders_na_and_the_card_is_produced(
    folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = statistics_module._canonical_keys

    def broken(values: pa.Array) -> pa.Array:
        if pa.types.is_floating(values.type):
            raise ArithmeticError("cannot hash this")
        return real(values)

    monkeypatch.setattr(statistics_module, "_canonical_keys", broken)
    with caplog.at_level(logging.WARNING):
        card = render(folder)
    rows = table_rows(section(split_card(card.text)[1], "Schema & Statistics"))
    assert rows["score"][3] == "n/a"
    assert rows["score"][4] == "0 (0.0%)"  # the column's other statistics are still there
    assert all(row[3] != "n/a" for name, row in rows.items() if name != "score")
    assert "cannot hash this" in caplog.text
    assert card.statistics.column("score").errors == {"unique": "ArithmeticError: cannot hash this"}  # type: ignore[union-attr]


def test_odd_columns_all_null_nested_and_hostile_names(tmp_path: Path) -> None:
    path = tmp_path / "batch_00000.parquet"
    pq.write_table(
        pa.table(
            {
                "empty": pa.array([None, None, None], pa.string()),
                "nothing": pa.nulls(3),
                "messages": pa.array([[{"role": "user"}], [{"role": "user"}], None]),
                "a|b `c`": pa.array([1, 2, 2]),
            }
        ),
        path,
    )
    card = render_card([path], {}, CardOptions(repo_id="alice/odd", description="Odd."))
    rows = table_rows(section(split_card(card.text)[1], "Schema & Statistics"))
    assert rows["empty"][3:] == ["0 (—)", "3 (100.0%)", "—", "—"]
    assert rows["nothing"][3:] == ["0 (—)", "3 (100.0%)", "—", "—"]
    assert rows["messages"][3:5] == ["1 (50.0%)", "1 (33.3%)"]
    name_row = next(row for name, row in rows.items() if "a|b" in name)
    assert len(name_row) == 7  # the pipe in the name did not add a cell
    assert name_row[3] == "2 (66.7%)"


def test_unreadable_file_still_gives_a_card(tmp_path: Path) -> None:
    good, bad = tmp_path / "batch_00000.parquet", tmp_path / "batch_00001.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), good)
    bad.write_bytes(b"garbage")
    card = render_card([good, bad], {}, CardOptions(repo_id="alice/bad", description="Bad."))
    front, body = split_card(card.text)
    assert bullet(body, "Records") == "n/a"
    assert "size_categories" not in front
    assert table_rows(section(body, "Schema & Statistics"))["x"][3:5] == ["n/a", "n/a"]
    assert "batch_00001.parquet" in body


def test_no_processors_and_empty_processor_get_no_config(folder: Path) -> None:
    for processors in ({}, {"conversations": []}):
        card = render(folder, processors=processors)
        front, body = split_card(card.text)
        assert card.configs == ["data"]
        assert [c["config_name"] for c in front["configs"]] == ["data"]
        assert "Processor outputs" not in body
        assert section(body, "Quick Start").count("load_dataset(") == 1


def test_completion_only_when_actual_differs_from_target(folder: Path) -> None:
    metadata = inputs(folder)["metadata"]
    body = split_card(render(folder).text)[1]
    assert "Completion" not in body
    metadata.update(actual_num_records=210, target_num_records=300)
    body = split_card(render(folder, metadata=metadata).text)[1]
    assert bullet(body, "Completion") == "70.0% (210 of 300 target records)"


def test_links_only_to_files_that_exist(folder: Path) -> None:
    body = split_card(render(folder).text)[1]
    assert "[`builder_config.json`](builder_config.json)" in body and "[`metadata.json`](metadata.json)" in body
    body = split_card(render(folder, builder_config=None, metadata=None).text)[1]
    assert "builder_config.json" not in body and "metadata.json" not in body
    assert table_rows(section(body, "Schema & Statistics"))["score"][2] == "—"  # no column type without config


def test_metadata_adds_llm_tokens_and_garbage_is_ignored(folder: Path) -> None:
    metadata = inputs(folder)["metadata"]
    metadata["column_statistics"] = [
        {
            "column_name": "greeting",
            "column_type": "llm-text",
            "input_tokens_mean": 41.25,
            "output_tokens_mean": 7,
        },
        {"column_name": "language", "input_tokens_mean": "lots"},
        "not a dict",
        {"no_name": 1},
    ]
    metadata["actual_num_records"] = "many"
    metadata["unknown"] = {"nested": [1, 2]}
    body = split_card(render(folder, metadata=metadata).text)[1]
    llm = table_rows(body.split("LLM token usage", 1)[1].split("##", 1)[0])
    assert list(llm) == ["greeting"]
    assert llm["greeting"][1:3] == ["41.2", "7.0"]
    assert "Completion" not in body
    for junk in ({"column_statistics": {"greeting": {"output_tokens_mean": 3}}}, {"column_statistics": 5}, {}, []):
        render(folder, metadata=junk)  # never raises
    odd_configs: list[Any] = [
        {"data_designer": {"columns": "x", "model_configs": [1, {"model": 5}, {"alias": "a", "model": "m"}]}},
        {
            "data_designer": {
                "columns": [{"name": "score", "column_type": {"value": "sampler"}, "sampler_type": None}]
            }
        },
        {"data_designer": "nope", "library_version": {"x": 1}},
        [],
    ]
    for builder_config in odd_configs:
        body = split_card(render(folder, builder_config=builder_config).text)[1]
        assert "## Generation Details" in body
    assert table_rows(section(body, "Schema & Statistics"))["id"][2] == "—"
    body = split_card(render(folder, builder_config=odd_configs[1]).text)[1]
    assert table_rows(section(body, "Schema & Statistics"))["score"][2] == "sampler"


def test_user_template_standalone_and_extending(folder: Path, tmp_path: Path) -> None:
    own = tmp_path / "mine.md.j2"
    own.write_text(
        "# {{ title }}\n\n{{ description }}\n\nRows: {{ summary.records }}; tags {{ front_matter.tags | length }}\n"
    )
    card = render(folder, template=own, description="Mine {{ x }}", tags=["t"])
    front, body = split_card(card.text)
    assert body == "# greetings\n\nMine {{ x }}\n\nRows: 210; tags 3\n"
    assert [c["config_name"] for c in front["configs"]] == ["data", "conversations", "summary"]

    child = tmp_path / "child.md.j2"
    child.write_text(
        '{% extends "dataset_card.md.j2" %}{% block citation %}## Citation\n\nPlease cite us.\n{% endblock %}'
    )
    body = split_card(render(folder, template=child).text)[1]
    assert "## Schema & Statistics" in body and body.endswith("## Citation\n\nPlease cite us.\n")

    typo = tmp_path / "typo.md.j2"
    typo.write_text("{{ summmary.records }}")
    with pytest.raises(jinja2.UndefinedError):
        render(folder, template=typo)
    escape = tmp_path / "escape.md.j2"
    escape.write_text("{{ description.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(jinja2.exceptions.SecurityError):
        render(folder, template=escape)


def test_a_template_is_checked_without_rendering(tmp_path: Path) -> None:
    good = tmp_path / "good.md.j2"
    good.write_text(
        "{% set n = summary.records %}# {{ title }}\n{% for c in columns %}{{ c.name }} {{ n }}{% endfor %}"
    )
    check_template(good)
    child = tmp_path / "child.md.j2"
    child.write_text('{% extends "dataset_card.md.j2" %}{% block citation %}{{ citation }}{% endblock %}')
    check_template(child)
    typo = tmp_path / "typo.md.j2"
    typo.write_text("{{ descripton }} {{ summary.records }}")
    with pytest.raises(ValueError, match=r"uses \['descripton'\], which the card does not provide; available: NA"):
        check_template(typo)
    broken = tmp_path / "broken.md.j2"
    broken.write_text("# title\n{% for c in columns %}")
    with pytest.raises(ValueError, match=r"line 2: Unexpected end of template"):
        check_template(broken)


def test_citation_and_determinism(folder: Path) -> None:
    first = render(folder, pretty_name="Greetings & {friends} 100%")
    second = render(folder, pretty_name="Greetings & {friends} 100%")
    assert first.text == second.text  # an unchanged dataset gives an unchanged README (no new commit)
    citation = section(split_card(first.text)[1], "Citation")
    assert "@misc{alice_greetings_2030," in citation
    assert r"title        = {Greetings \& \{friends\} 100\%}," in citation
    assert "year         = {2030}" in citation
    assert r"\url{https://huggingface.co/datasets/alice/greetings}" in citation


def test_reserved_processor_name_is_refused(folder: Path) -> None:
    with pytest.raises(ValueError, match="reserved"):
        render(folder, processors={"data": inputs(folder)["processors"]["summary"]})


def test_code_spans_escape_pipes_only_inside_tables() -> None:
    from tasks.card.render import md_code

    assert md_code("m|x") == "`m\\|x`"  # in a table cell, an unescaped pipe would end the cell
    assert md_code("m|x", table=False) == "`m|x`"  # elsewhere the backslash would show
    assert md_code("a`b\nc", table=False) == "``a`b c``"
