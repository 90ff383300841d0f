"""A validated, compiled config: columns in generation order with their templates, output schemas, processors.

:func:`build_plan` is where a config is checked as a whole; it reports every problem it finds in one error,
before any batch runs. Batches then only execute the plan.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field

import pyarrow as pa

from tasks.dataset_folder import DATA_DIR, PROCESSORS_DIR, DatasetFolderError, check_processor_name
from tasks.generation.config import (
    BuilderConfig,
    CategoryParams,
    DropColumnsProcessor,
    ExpressionColumn,
    LLMTextColumn,
    ModelConfig,
    ModelProvider,
    SamplerColumn,
    SubcategoryParams,
)
from tasks.generation.dependencies import order_columns
from tasks.generation.errors import ConfigError, TemplateSecurityError
from tasks.generation.processors import SchemaTransform
from tasks.generation.samplers import category_keys, sampler_type
from tasks.generation.templates import CompiledTemplate, column_references, compile_template

EXPRESSION_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
}
# Besides the names the push refuses (repo paths of the other stages), the folders of the local layout.
_LOCAL_LAYOUT_NAMES = frozenset({DATA_DIR, PROCESSORS_DIR})


@dataclass
class PlannedColumn:
    """A column ready to generate.

    Attributes:
        index: Position in the config (part of its random stream's seed, so reordering nothing changes data).
        config: The column config.
        type: Its Arrow type.
        template: The expression or prompt template.
        system_template: The system prompt template of an ``llm-text`` column.
        model: The model config of an ``llm-text`` column.
        provider: The provider of that model.
    """

    index: int
    config: SamplerColumn | ExpressionColumn | LLMTextColumn
    type: pa.DataType
    template: CompiledTemplate | None = None
    system_template: CompiledTemplate | None = None
    model: ModelConfig | None = None
    provider: ModelProvider | None = None

    @property
    def name(self) -> str:
        """The column name."""
        return self.config.name


@dataclass
class Plan:
    """What a batch executes.

    Attributes:
        config: The config it was built from.
        config_hash: :meth:`BuilderConfig.config_hash`.
        columns: Columns in generation order (every column after the ones it reads).
        steps: Processors in run order (``SchemaTransform`` or ``DropColumnsProcessor``).
        output_columns: Columns of the main dataset, in config order.
        schema: Arrow schema of the main dataset.
        processor_schemas: Arrow schema of each ``schema_transform`` output, by processor name.
    """

    config: BuilderConfig
    config_hash: str
    columns: list[PlannedColumn]
    steps: list[SchemaTransform | DropColumnsProcessor]
    output_columns: list[str]
    schema: pa.Schema
    processor_schemas: dict[str, pa.Schema] = field(default_factory=dict)

    @property
    def processor_names(self) -> list[str]:
        """Names of the processors that write files (``schema_transform``), in run order."""
        return list(self.processor_schemas)

    @property
    def needs_rows(self) -> bool:
        """Whether any template runs (then batches build per-row mappings)."""
        return any(c.template is not None for c in self.columns) or bool(self.processor_schemas)

    def providers(self) -> list[ModelProvider]:
        """The providers that ``llm-text`` columns use, without duplicates."""
        seen: dict[str, ModelProvider] = {}
        for column in self.columns:
            if column.provider is not None:
                seen.setdefault(column.provider.name, column.provider)
        return list(seen.values())


def _compile(source: str, where: str, problems: list[str], security: list[str]) -> CompiledTemplate | None:
    try:
        return compile_template(source, where)
    except TemplateSecurityError as exc:
        security.extend(exc.problems)
    except ConfigError as exc:
        problems.extend(exc.problems)
    return None


def build_plan(config: BuilderConfig) -> Plan:
    """Check a config as a whole and compile it.

    Raises:
        TemplateSecurityError: a template reaches for Python internals (all such templates listed).
        ConfigError: every other problem: duplicate names, unknown model aliases or providers, references to
            columns that do not exist, dependency cycles, subcategories without a category parent,
            processors that read dropped columns or use reserved names.
    """
    problems: list[str] = []
    security: list[str] = []
    columns = config.columns
    names = [c.name for c in columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(f"duplicate column names: {duplicates}")
    by_name = {c.name: c for c in columns}

    planned: dict[str, PlannedColumn] = {}
    deps: dict[str, list[str]] = {}
    for index, column in enumerate(columns):
        label = f"column {column.name!r}"
        item = PlannedColumn(index=index, config=column, type=pa.string())
        refs: set[str] = set()
        if isinstance(column, SamplerColumn):
            if isinstance(column.params, SubcategoryParams):
                parent_name = column.params.category
                refs.add(parent_name)
                parent = by_name.get(parent_name)
                if parent is not None and not (
                    isinstance(parent, SamplerColumn) and isinstance(parent.params, CategoryParams)
                ):
                    problems.append(f"{label}: subcategory parent {parent_name!r} must be a category sampler")
                elif parent is not None and isinstance(parent, SamplerColumn):
                    expected = category_keys(parent)  # what the sampler looks up: the same key function
                    missing = [k for k in dict.fromkeys(expected) if k not in column.params.values]
                    if missing:
                        problems.append(f"{label}: no subcategory values for {parent_name!r} keys {missing}")
            item.type = sampler_type(column)
        elif isinstance(column, ExpressionColumn):
            item.template = _compile(column.expr, label, problems, security)
            item.type = EXPRESSION_TYPES[column.dtype]
        else:
            item.template = _compile(column.prompt, f"{label} prompt", problems, security)
            if column.system_prompt is not None:
                item.system_template = _compile(column.system_prompt, f"{label} system_prompt", problems, security)
            try:
                item.model = config.model(column.model_alias)
                item.provider = config.provider(item.model)
            except ConfigError as exc:
                problems.extend(f"{label}: {p}" for p in exc.problems)
        for template in (item.template, item.system_template):
            if template is not None:
                refs |= column_references(template.references, by_name)
        planned[column.name] = item
        deps[column.name] = sorted(refs)

    steps: list[SchemaTransform | DropColumnsProcessor] = []
    processor_schemas: dict[str, pa.Schema] = {}
    visible = set(names)
    dropped_by_processors: list[str] = []
    processor_names: list[str] = []
    for processor in config.processors:
        label = f"processor {processor.name!r}"
        try:  # the push's own rule, so that what is generated can be pushed
            check_processor_name(processor.name)
            if processor.name.lower() in _LOCAL_LAYOUT_NAMES:
                problems.append(
                    f"{label}: {processor.name!r} is a folder of the dataset layout; rename the processor"
                )
        except DatasetFolderError as exc:
            problems.append(str(exc))
        if processor.name in processor_names:
            problems.append(f"{label}: duplicate processor name")
        processor_names.append(processor.name)
        if isinstance(processor, DropColumnsProcessor):
            unknown = [n for n in processor.column_names if n not in visible]
            if unknown:
                problems.append(f"{label}: cannot drop {unknown}: not columns (or dropped already)")
            visible -= set(processor.column_names)
            dropped_by_processors.extend(n for n in processor.column_names if n not in dropped_by_processors)
            steps.append(processor)
            continue
        try:
            transform = SchemaTransform(processor)
        except TemplateSecurityError as exc:
            security.extend(exc.problems)
            continue
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        unknown = sorted(column_references(transform.references, by_name) - visible)
        if unknown:
            problems.append(f"{label}: template reads {unknown}, which are not columns (or were dropped)")
        steps.append(transform)
        processor_schemas[processor.name] = transform.schema

    order: list[str] = []
    if not duplicates:
        try:
            order = order_columns(names, deps)
        except ConfigError as exc:
            problems.extend(exc.problems)
    output_columns = [c.name for c in columns if not c.drop and c.name not in dropped_by_processors]
    if not output_columns:
        problems.append("every column is dropped: the main dataset would have no columns")
    if security:
        raise TemplateSecurityError(security + problems)
    if problems:
        raise ConfigError(problems)
    schema = pa.schema([(name, planned[name].type) for name in output_columns])
    return Plan(
        config=config,
        config_hash=config.config_hash(),
        columns=[planned[name] for name in order],
        steps=steps,
        output_columns=output_columns,
        schema=schema,
        processor_schemas=processor_schemas,
    )


_plans: dict[str, Plan] = {}
_plans_lock = threading.Lock()


def _cache_key(config: BuilderConfig) -> str:
    # Everything, secrets included: config_hash leaves out transport settings and redacts auth headers, and
    # the cached plan carries the providers requests are sent with. Kept in memory only, never logged.
    secrets = [(p.literal_api_key, p.extra_headers) for p in config.model_providers or []]
    canonical = json.dumps([config.to_builder_dict(), secrets], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def get_plan(config: BuilderConfig) -> Plan:
    """:func:`build_plan`, memoised per process (batches of one run share the compiled templates)."""
    key = _cache_key(config)
    with _plans_lock:
        plan = _plans.get(key)
    if plan is None:
        plan = build_plan(config)
        with _plans_lock:
            _plans[key] = plan
    return plan
