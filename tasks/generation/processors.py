"""Processors that run after each batch: ``schema_transform`` (a new table from templates) and ``drop_columns``.

A ``schema_transform`` template is compiled once into a tree whose Arrow type is known from the template alone
(strings that are templates render to strings; objects become structs; lists become lists), so every batch of a
processor output has the same schema, even an empty or resumed one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from tasks.generation.config import SchemaTransformProcessor
from tasks.generation.errors import ConfigError, TemplateSecurityError
from tasks.generation.templates import CompiledTemplate, compile_template, is_template


class _Node:
    type: pa.DataType
    references: frozenset[str]

    def values(self, rows: Sequence[dict[str, Any]], stream: tuple[int, int]) -> list[Any]:
        raise NotImplementedError


@dataclass
class _Const(_Node):
    value: Any
    type: pa.DataType
    references: frozenset[str] = frozenset()

    def values(self, rows: Sequence[dict[str, Any]], stream: tuple[int, int]) -> list[Any]:
        return [self.value] * len(rows)


@dataclass
class _Template(_Node):
    template: CompiledTemplate
    type: pa.DataType = field(default_factory=pa.string)

    @property
    def references(self) -> frozenset[str]:  # type: ignore[override]
        return self.template.references

    def values(self, rows: Sequence[dict[str, Any]], stream: tuple[int, int]) -> list[Any]:
        return self.template.render_rows(list(rows), stream)


@dataclass
class _Struct(_Node):
    fields: list[tuple[str, _Node]]
    type: pa.DataType
    references: frozenset[str]

    def values(self, rows: Sequence[dict[str, Any]], stream: tuple[int, int]) -> list[Any]:
        keys = [k for k, _ in self.fields]
        columns = [node.values(rows, stream) for _, node in self.fields]
        return (
            [dict(zip(keys, vals, strict=True)) for vals in zip(*columns, strict=True)]
            if columns
            else [{} for _ in rows]
        )


@dataclass
class _List(_Node):
    items: list[_Node]
    type: pa.DataType
    references: frozenset[str]

    def values(self, rows: Sequence[dict[str, Any]], stream: tuple[int, int]) -> list[Any]:
        if not self.items:
            return [[] for _ in rows]
        columns = [node.values(rows, stream) for node in self.items]
        return [list(vals) for vals in zip(*columns, strict=True)]


def _compile(value: Any, where: str) -> _Node:
    if isinstance(value, str):
        if is_template(value):
            return _Template(compile_template(value, where))
        return _Const(value, pa.string())
    if value is None:
        return _Const(None, pa.string())
    if isinstance(value, bool):
        return _Const(value, pa.bool_())
    if isinstance(value, int):
        return _Const(value, pa.int64())
    if isinstance(value, float):
        return _Const(value, pa.float64())
    if isinstance(value, dict):
        if not value:
            raise ConfigError(f"{where}: an empty object has no columns; give it keys or drop it")
        fields = [(str(k), _compile(v, f"{where}.{k}")) for k, v in value.items()]
        struct = pa.struct([(k, node.type) for k, node in fields])
        refs = frozenset().union(*(node.references for _, node in fields))
        return _Struct(fields, struct, refs)
    if isinstance(value, list):
        items = [_compile(v, f"{where}[{i}]") for i, v in enumerate(value)]
        types = {node.type for node in items}
        if len(types) > 1:
            raise ConfigError(
                f"{where}: list items must share one structure (found {', '.join(sorted(map(str, types)))})"
            )
        item_type = items[0].type if items else pa.string()
        refs = frozenset().union(*(node.references for node in items)) if items else frozenset()
        return _List(items, pa.list_(item_type), refs)
    raise ConfigError(f"{where}: unsupported template value {value!r}")


class SchemaTransform:
    """A compiled ``schema_transform`` processor.

    Attributes:
        name: The processor name (its output folder under ``processors-files/``).
        schema: The Arrow schema of its output.
        references: Columns its templates read.
    """

    def __init__(self, config: SchemaTransformProcessor) -> None:
        self.name = config.name
        problems: list[str] = []
        insecure = False
        self._columns: list[tuple[str, _Node]] = []
        for key, value in config.template.items():
            try:
                self._columns.append((key, _compile(value, f"processor {config.name!r}, template[{key!r}]")))
            except ConfigError as exc:
                insecure = insecure or isinstance(exc, TemplateSecurityError)
                problems.extend(exc.problems)
        if problems:
            raise (TemplateSecurityError if insecure else ConfigError)(problems)
        self.schema = pa.schema([(key, node.type) for key, node in self._columns])
        self.references = frozenset().union(*(node.references for _, node in self._columns))

    def run(self, rows: Sequence[dict[str, Any]], stream: tuple[int, int] = (0, 0)) -> pa.Table:
        """The processor output for a batch, one output row per input row (``stream``: run seed, batch index)."""
        arrays = [pa.array(node.values(rows, stream), type=node.type) for _, node in self._columns]
        return pa.Table.from_arrays(arrays, schema=self.schema)
