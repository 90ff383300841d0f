"""Config models: Data Designer's format in and out, every unsupported item listed, checks before generation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.generation.config import BuilderConfig, parse_config
from tasks.generation.dependencies import order_columns
from tasks.generation.errors import ConfigError, TemplateSecurityError, UnsupportedConfigError
from tasks.generation.plan import build_plan

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# As Data Designer writes it: params carry their own sampler_type, every optional field present.
DD_CONFIG: dict[str, Any] = {
    "data_designer": {
        "columns": [
            {
                "name": "topic",
                "drop": False,
                "allow_resize": False,
                "column_type": "sampler",
                "sampler_type": "category",
                "params": {"sampler_type": "category", "values": ["a", "b"], "weights": [0.25, 0.75]},
                "conditional_params": {},
                "convert_to": None,
            },
            {
                "name": "sub",
                "drop": False,
                "column_type": "sampler",
                "sampler_type": "subcategory",
                "params": {"sampler_type": "subcategory", "category": "topic", "values": {"a": [1, 2], "b": [3]}},
            },
            {
                "name": "day",
                "column_type": "sampler",
                "sampler_type": "datetime",
                "params": {"start": "2024-01-01", "end": "2024-02-01", "unit": "D"},
                "convert_to": "%Y-%m-%d",
            },
            {
                "name": "x",
                "column_type": "sampler",
                "sampler_type": "gaussian",
                "params": {"mean": 0, "stddev": 1},
            },
            {"name": "label", "column_type": "expression", "expr": "{{ topic }}-{{ sub }}", "dtype": "str"},
            {
                "name": "answer",
                "column_type": "llm-text",
                "prompt": "Say {{ label }}",
                "system_prompt": "Be brief about {{ topic }}.",
                "model_alias": "writer",
                "multi_modal_context": None,
                "tool_alias": None,
                "with_trace": "none",
                "extract_reasoning_content": False,
            },
        ],
        "model_configs": [
            {
                "alias": "writer",
                "model": "m",
                "provider": "local",
                "inference_parameters": {
                    "generation_type": "chat-completion",
                    "temperature": 0.5,
                    "max_parallel_requests": 2,
                    "timeout": 10,
                },
                "skip_health_check": False,
            }
        ],
        "processors": [
            {"name": "chat", "processor_type": "schema_transform", "template": {"text": "{{ answer }}"}},
            {"name": "trim", "processor_type": "drop_columns", "column_names": ["x"]},
        ],
        "some_future_key": {"kept": True},
    },
    "library_version": "0.9.6",
    "model_providers": [
        {"name": "local", "endpoint": "http://127.0.0.1:9/v1", "api_key": "sk-literal-secret-123"},
    ],
}


def test_reads_data_designer_format_and_writes_it_back_without_secrets() -> None:
    config = parse_config(copy.deepcopy(DD_CONFIG))
    out = config.to_builder_dict()
    assert out["library_version"] == "0.9.6"
    assert out["data_designer"]["some_future_key"] == {"kept": True}
    col = out["data_designer"]["columns"][0]
    assert col["params"] == {"sampler_type": "category", "values": ["a", "b"], "weights": [0.25, 0.75]}
    assert col["allow_resize"] is False and col["conditional_params"] == {}  # unknown-but-harmless keys kept
    assert "sk-literal-secret-123" not in config.to_json()
    assert "api_key" not in out["model_providers"][0]
    # What was written reads back to the same config.
    again = parse_config(json.loads(config.to_json()))
    assert again.to_builder_dict() == out
    assert again.config_hash() == config.config_hash()
    # The literal key is still usable in memory.
    assert config.model_providers is not None
    assert config.model_providers[0].literal_api_key == "sk-literal-secret-123"


def test_env_var_reference_is_kept_and_secret_headers_redacted() -> None:
    raw = copy.deepcopy(DD_CONFIG)
    raw["model_providers"] = [
        {
            "name": "local",
            "endpoint": "http://h/v1",
            "api_key": "OPENAI_API_KEY",
            "extra_headers": {"X-Api-Key": "hidden-value", "X-Team": "data"},
        }
    ]
    out = parse_config(raw).to_builder_dict()
    assert out["model_providers"][0]["api_key"] == "OPENAI_API_KEY"
    assert out["model_providers"][0]["extra_headers"] == {"X-Api-Key": "<redacted>", "X-Team": "data"}


def test_credentials_in_extra_body_and_endpoint_urls_are_not_written() -> None:
    # builder_config.json goes to the checkpoint branch as written: it must hold no credential a config passes
    # in a request body or in the endpoint's URL.
    raw = copy.deepcopy(DD_CONFIG)
    raw["model_providers"] = [
        {
            "name": "local",
            "endpoint": "https://proxy:pa55word-xyz@gw.example/v1?api-key=qs-secret-123&region=eu",
            "extra_body": {"api_key": "body-secret-456", "user": "dd"},
        }
    ]
    raw["data_designer"]["model_configs"][0]["inference_parameters"] = {"extra_body": {"auth_token": "tok-789xyz"}}
    config = parse_config(raw)
    written = config.to_json()
    for secret in ("pa55word-xyz", "qs-secret-123", "body-secret-456", "tok-789xyz"):
        assert secret not in written
    provider = json.loads(written)["model_providers"][0]
    assert provider["endpoint"] == "https://proxy:<redacted>@gw.example/v1?api-key=<redacted>&region=eu"
    assert provider["extra_body"] == {"api_key": "<redacted>", "user": "dd"}
    assert config.model_providers is not None and "body-secret-456" in str(config.model_providers[0].extra_body)


def test_config_hash_ignores_how_requests_are_sent_but_not_what_is_generated() -> None:
    def changed(edit: Any) -> str:
        raw = copy.deepcopy(DD_CONFIG)
        edit(raw["data_designer"]["model_configs"][0], raw["model_providers"][0], raw)
        return parse_config(raw).config_hash()

    base = parse_config(copy.deepcopy(DD_CONFIG)).config_hash()
    # Lowering parallelism after 429s, or rotating how the key is given, must not discard finished batches.
    transport = [
        lambda m, p, r: m["inference_parameters"].update(max_parallel_requests=1, timeout=300),
        lambda m, p, r: p.update(max_retries=9, retry_backoff_seconds=5, max_backoff_seconds=99),
        lambda m, p, r: p.update(api_key="OTHER_KEY_VAR", api_key_secret="block"),
        lambda m, p, r: p.update(extra_headers={"Authorization": "Bearer x"}),
        lambda m, p, r: m.update(skip_health_check=True),
        lambda m, p, r: r.update(library_version="0.9.7"),
    ]
    assert {changed(edit) for edit in transport} == {base}
    data = [
        lambda m, p, r: m["inference_parameters"].update(temperature=0.9),
        lambda m, p, r: m.update(model="other"),
        lambda m, p, r: p.update(endpoint="http://127.0.0.1:10/v1"),
        lambda m, p, r: p.update(extra_headers={"X-Model-Version": "2"}),
        lambda m, p, r: r["data_designer"]["columns"][4].update(expr="{{ topic }}"),
    ]
    assert len({changed(edit) for edit in data} | {base}) == len(data) + 1


def test_shorthand_without_data_designer_key() -> None:
    config = parse_config({"columns": DD_CONFIG["data_designer"]["columns"][:1]})
    assert [c.name for c in config.columns] == ["topic"]


def test_every_unsupported_item_is_listed_before_generation() -> None:
    raw = copy.deepcopy(DD_CONFIG)
    raw["data_designer"]["columns"] += [
        {"name": "who", "column_type": "sampler", "sampler_type": "person", "params": {}},
        {"name": "code", "column_type": "llm-code", "prompt": "x", "model_alias": "writer", "code_lang": "python"},
        {"name": "j", "column_type": "llm-judge", "prompt": "x", "model_alias": "writer", "scores": []},
        {
            "name": "t",
            "column_type": "llm-text",
            "prompt": "x",
            "model_alias": "writer",
            "with_trace": "all_messages",
        },
    ]
    raw["data_designer"]["processors"].append({"name": "p", "processor_type": "json_document_score"})
    raw["data_designer"]["seed_config"] = {"source": {"path": "x.parquet"}}
    raw["data_designer"]["model_configs"][0]["inference_parameters"]["temperature"] = {
        "distribution_type": "uniform",
        "params": {"low": 0, "high": 1},
    }
    with pytest.raises(UnsupportedConfigError) as info:
        parse_config(raw)
    problems = info.value.problems
    assert len(problems) == 7, problems
    message = str(info.value)
    for needle in (
        "'person'",
        "'llm-code'",
        "'llm-judge'",
        "with_trace",
        "'json_document_score'",
        "seed_config",
        "temperature as a distribution",
    ):
        assert needle in message


def test_field_errors_name_the_column() -> None:
    raw = {
        "columns": [
            {
                "name": "w",
                "column_type": "sampler",
                "sampler_type": "category",
                "params": {"values": ["a"], "weights": [1, 2]},
            },
            {"name": "u", "column_type": "sampler", "sampler_type": "uniform", "params": {"low": 2, "high": 1}},
            {"name": "b", "column_type": "sampler", "sampler_type": "bernoulli", "params": {"p": 2}},
        ]
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    text = str(info.value)
    assert "column 'w'" in text and "column 'u'" in text and "column 'b'" in text


def test_conversions_that_could_only_fail_while_generating_are_refused() -> None:
    def sampler(name: str, sampler_type: str, params: dict[str, Any], convert_to: str) -> dict[str, Any]:
        return {"name": name, "column_type": "sampler", "sampler_type": sampler_type, "params": params,
                "convert_to": convert_to}  # fmt: skip

    dates = {"start": "2024-01-01", "end": "2024-12-31"}
    raw = {
        "columns": [
            sampler("lang", "category", {"values": ["fr", "3"]}, "int"),
            sampler("t", "datetime", dates, "float"),
            sampler("id", "uuid", {}, "int"),
            sampler("zone", "datetime", dates, "%Y %Z"),
            sampler("fine", "category", {"values": ["1", "2.5", 3]}, "float"),  # numbers as text are fine
        ]
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    text = str(info.value)
    assert "column 'lang'" in text and "['fr'] are not numbers" in text
    assert "column 't'" in text and "does not apply to datetimes" in text
    assert "column 'id'" in text and "uuid values are not numbers" in text
    assert "column 'zone'" in text and "not a usable strftime format" in text
    assert "column 'fine'" not in text


def test_plan_reports_every_semantic_problem() -> None:
    raw = {
        "columns": [
            {"name": "a", "column_type": "expression", "expr": "{{ missing }}"},
            {"name": "b", "column_type": "llm-text", "prompt": "hi", "model_alias": "nope"},
            {
                "name": "sub",
                "column_type": "sampler",
                "sampler_type": "subcategory",
                "params": {"category": "a", "values": {"x": ["y"]}},
            },
            {
                "name": "cat",
                "column_type": "sampler",
                "sampler_type": "category",
                "params": {"values": ["p", "q"]},
            },
            {
                "name": "sub2",
                "column_type": "sampler",
                "sampler_type": "subcategory",
                "params": {"category": "cat", "values": {"p": ["y"]}},
            },
        ],
        "processors": [
            {"name": "data", "processor_type": "schema_transform", "template": {"t": "{{ nothing }}"}},
            {"name": "d", "processor_type": "drop_columns", "column_names": ["zzz"]},
        ],
    }
    with pytest.raises(ConfigError) as info:
        build_plan(parse_config(raw))
    text = str(info.value)
    for needle in (
        "'missing'",
        "'nope'",
        "must be a category sampler",
        "['q']",
        "reserved repo path",
        "['nothing']",
        "cannot drop ['zzz']",
    ):
        assert needle in text, (needle, text)


def test_columns_ordered_from_template_references() -> None:
    config = parse_config(
        {
            "columns": [
                {"name": "c", "column_type": "expression", "expr": "{{ b }}!"},
                {"name": "b", "column_type": "expression", "expr": "{{ a }}?"},
                {"name": "a", "column_type": "sampler", "sampler_type": "poisson", "params": {"mean": 1}},
                {"name": "z", "column_type": "sampler", "sampler_type": "poisson", "params": {"mean": 1}},
            ]
        }
    )
    assert [c.name for c in build_plan(config).columns] == ["a", "b", "c", "z"]  # earliest ready first
    assert order_columns(["x", "y"], {"x": [], "y": []}) == ["x", "y"]


def test_dependency_cycle_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        order_columns(["a", "b", "c"], {"a": ["b"], "b": ["a"], "c": []})
    with pytest.raises(ConfigError, match="reads itself"):
        order_columns(["a"], {"a": ["a"]})


@pytest.mark.parametrize(
    "template",
    [
        "{{ name.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__ }}",
        "{{ name['__class__'] }}",
        "{{ name|attr('__class__') }}",
        "{{ cycler.__init__.__globals__ }}",
        "{% include '/etc/passwd' %}",
    ],
)
def test_sandbox_escape_fails_before_generation_with_the_column_named(template: str) -> None:
    config = parse_config(
        {
            "columns": [
                {
                    "name": "name",
                    "column_type": "sampler",
                    "sampler_type": "category",
                    "params": {"values": ["a"]},
                },
                {"name": "evil", "column_type": "expression", "expr": template},
            ]
        }
    )
    with pytest.raises(TemplateSecurityError) as info:
        build_plan(config)
    assert "column 'evil'" in str(info.value)
    assert "not allowed" in str(info.value)


def test_sandbox_blocks_dynamic_escape_at_render_time() -> None:
    from tasks.generation.templates import compile_template

    template = compile_template("{{ name|attr(key) }}", "column 'evil'")
    with pytest.raises(TemplateSecurityError, match=r"column 'evil'.*unsafe"):
        template.render({"name": "x", "key": "__class__"})
    fmt = compile_template("{{ '{0.__class__.__base__}'.format(name) }}", "column 'fmt'")
    with pytest.raises(TemplateSecurityError, match="column 'fmt'"):
        fmt.render({"name": "x"})


def test_processor_template_escape_is_rejected() -> None:
    config = parse_config(
        {
            "columns": [{"name": "a", "column_type": "sampler", "sampler_type": "uuid", "params": {}}],
            "processors": [
                {
                    "name": "p",
                    "processor_type": "schema_transform",
                    "template": {"m": [{"content": "{{ a.__class__ }}"}]},
                }
            ],
        }
    )
    with pytest.raises(TemplateSecurityError, match="processor 'p'"):
        build_plan(config)


def test_examples_are_valid() -> None:
    for name in ("multilingual_greetings.yaml", "llm_greetings.yaml"):
        config = BuilderConfig.model_validate(yaml.safe_load((EXAMPLES / name).read_text()))
        plan = build_plan(config)
        assert plan.output_columns
    greetings = build_plan(parse_config(yaml.safe_load((EXAMPLES / "multilingual_greetings.yaml").read_text())))
    assert "user_prompt" not in greetings.output_columns  # drop_columns processor
    assert "formal" not in greetings.output_columns  # drop: true
    messages = greetings.processor_schemas["conversations"].field("messages").type
    assert str(messages) == "list<item: struct<role: string, content: string>>"


def test_sandbox_limits_loops_and_huge_values() -> None:
    from tasks.generation.templates import compile_template

    with pytest.raises(TemplateSecurityError, match="nested for loops"):
        compile_template("{% for a in range(9) %}{% for b in range(9) %}x{% endfor %}{% endfor %}", "column 'n'")
    with pytest.raises(TemplateSecurityError, match="over the limit"):
        compile_template("{{ 'x' * n }}", "column 'big'").render({"n": 10**9})
    with pytest.raises(TemplateSecurityError, match="over the limit"):
        compile_template("{{ 9 ** n }}", "column 'pow'").render({"n": 10**8})
    assert compile_template("{{ '!' * n }}", "column 'ok'").render({"n": 3}) == "!!!"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        # a loop calling a macro that loops: 1,000,000 turns, no output
        (
            "{% macro m() %}{% for i in range(1000) %}{% endfor %}{% endmacro %}"
            "{% for j in range(1000) %}{{ m() }}{% endfor %}",
            "turn more than 100,000 times",
        ),
        # a large value built on every turn and thrown away: 20,000,000 characters, no output
        ("{% for i in range(200) %}{% set s = 'x' * 100000 %}{% endfor %}", "builds more than 10,000,000"),
        ("{% for i in range(200) %}{% set s = 'x'|center(width) %}{% endfor %}", "builds more than 10,000,000"),
    ],
)
def test_sandbox_bounds_the_work_of_one_render(template: str, reason: str) -> None:
    """Work without output (the rendered text's limit never trips) is bounded per render, so a config from
    someone else's repo cannot keep a nightly run busy for hours."""
    from tasks.generation.templates import compile_template

    compiled = compile_template(template, "column 'busy'")
    with pytest.raises(TemplateSecurityError, match=rf"column 'busy'.*{reason}"):
        compiled.render({"width": 100_000})
    with pytest.raises(TemplateSecurityError, match=rf"column 'busy'.*{reason}"):
        compiled.render_rows([{"width": 100_000}])


def test_the_render_budget_is_per_row_and_leaves_loops_alone() -> None:
    from tasks.generation.templates import compile_template

    # 60,000 turns per row: within the budget of each row, over it for the three rows together
    counting = compile_template("{% for i in range(60000) %}{% endfor %}{{ n }}", "column 'rows'")
    assert counting.render_rows([{"n": 1}, {"n": 2}, {"n": 3}]) == ["1", "2", "3"]
    listing = compile_template(
        "{% for item in items %}{{ item }}{{ ',' if not loop.last }}{% else %}none{% endfor %} ({{ items|length }})",
        "column 'list'",
    )
    assert listing.render_rows([{"items": ["a", "b", "c"]}, {"items": []}]) == ["a,b,c (3)", "none (0)"]
    assert (
        compile_template("{% for x in xs %}{{ loop.index }}/{{ loop.length }} {% endfor %}", "c").render(
            {"xs": "ab"}
        )
        == "1/2 2/2 "
    )
    with pytest.raises(TemplateSecurityError, match="recursive loops are not allowed"):
        compile_template("{% for x in tree recursive %}{{ loop(x.children) }}{% endfor %}", "column 'tree'")


@pytest.mark.parametrize(
    "template",
    [
        "{{ ('a' * 5000)|replace('a', 'a' * 5000) }}",
        "{{ 'x'|center(30000000) }}",
        "{{ 'a b'|indent(10000000) }}",
        "{{ ('a' * 10)|wordwrap(1, wrapstring='y' * 200000) }}",
        "{{ '%09999999d'|format(1) }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ 'x'.ljust(n) }}",
        "{{ range(1000)|map('string')|join('x' * 5000) }}",
        "{{ ['a' * 1000] * 2000 }}",
        "{{ ('a' * 900000) + ('b' * 900000) }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
    ],
)
def test_sandbox_bounds_what_filters_methods_and_concatenation_produce(template: str) -> None:
    from tasks.generation.templates import compile_template

    with pytest.raises(TemplateSecurityError, match=r"column 'big'.*over the limit"):
        compile_template(template, "column 'big'").render({"n": 10**9})


def test_sandbox_limits_leave_ordinary_templates_alone() -> None:
    from tasks.generation.templates import compile_template

    cases = {
        "{{ 'a-b'|replace('-', ' ') }}|{{ 'x'|center(5) }}|{{ 'a\nb'|indent(2) }}": "a b|  x  |a\n  b",
        "{{ '%.2f %5s'|format(1.234, 'ab') }}|{{ '%d' % 7 }}|{{ '{:08.3f}'.format(3.14159) }}": "1.23    ab|7|0003.142",
        "{{ [1, 2]|join(', ') }}|{{ 'x' ~ 1 }}|{{ 1 + 2 }}|{{ [1] + [2] }}|{{ 'ab'.zfill(4) }}": "1, 2|x1|3|[1, 2]|00ab",
    }
    for template, expected in cases.items():
        assert compile_template(template, "column 'ok'").render({}) == expected


def _expression_plan(expr: str, **extra: Any) -> Any:
    return build_plan(
        parse_config(
            {
                "columns": [
                    {"name": "n", "column_type": "sampler", "sampler_type": "poisson", "params": {"mean": 3}},
                    {"name": "pick", "column_type": "expression", "expr": expr},
                    *extra.get("columns", []),
                ],
                "processors": [{"name": "p", "processor_type": "schema_transform", "template": {"x": expr}}],
            }
        )
    )


def test_the_random_filter_is_seeded_by_the_run_not_by_python() -> None:
    import random

    from tasks.generation.batch import generate_tables

    plan = _expression_plan("{{ range(1000)|random }}-{{ range(1000)|random }}")

    def batch(index: int, python_seed: int) -> list[Any]:
        random.seed(python_seed)  # the global generator must not matter
        main, outputs = generate_tables(plan, seed=7, batch_index=index, num_rows=20)
        return main["pick"].to_pylist() + outputs["p"]["x"].to_pylist()

    first = batch(0, python_seed=1)
    assert batch(0, python_seed=2) == first
    assert batch(1, python_seed=1) != first
    assert len(set(first)) > 15  # still random across rows and draws


def test_lipsum_is_refused_at_config_check_time() -> None:
    with pytest.raises(ConfigError, match=r"column 'pick': lipsum\(\).*use a sampler column for randomness"):
        _expression_plan("{{ lipsum(1) }}")


@pytest.mark.parametrize("name", ["namespace", "range", "dict", "lipsum", "cycler", "joiner"])
def test_a_column_named_like_a_jinja_global_is_read_as_that_column(name: str) -> None:
    from tasks.generation.batch import generate_tables

    column = {"name": name, "column_type": "sampler", "sampler_type": "category", "params": {"values": ["team"]}}
    plan = _expression_plan(f"Hello from {{{{ {name} }}}}", columns=[column])
    assert [c.name for c in plan.columns].index(name) < [c.name for c in plan.columns].index("pick")
    main, outputs = generate_tables(plan, seed=0, batch_index=0, num_rows=2)
    assert main["pick"].to_pylist() == outputs["p"]["x"].to_pylist() == ["Hello from team"] * 2
    # Without such a column, the name is Jinja's global again, not a missing column.
    assert build_plan(
        parse_config({"columns": [{"name": "r", "column_type": "expression", "expr": "{{ range(2)|list }}"}]})
    )


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("processors-files", "folder of the dataset layout"),
        ("README.md", "reserved repo path"),
        (".git", "reserved repo path"),
        ("-dash", "names may only use letters"),
        ("two words", "names may only use letters"),
    ],
)
def test_processor_names_follow_the_pushs_rule(name: str, reason: str) -> None:
    # What the push would refuse is refused before any batch is generated.
    raw = {
        "columns": [{"name": "a", "column_type": "expression", "expr": "x"}],
        "processors": [{"name": name, "processor_type": "schema_transform", "template": {"t": "{{ a }}"}}],
    }
    with pytest.raises(ConfigError, match=reason):
        build_plan(parse_config(raw))
