"""Vectorised samplers: a whole batch column at a time, from a generator seeded by (seed, batch, column).

Each column draws from its own ``numpy.random.Generator(PCG64(SeedSequence([seed, batch_index, column_index])))``,
so a batch's values depend only on the config, the seed and the batch index: any task runner, any order, a
resumed run, all produce the same bytes.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.generation.config import (
    BernoulliParams,
    CategoryParams,
    DatetimeParams,
    GaussianParams,
    PoissonParams,
    SamplerColumn,
    Scalar,
    SubcategoryParams,
    UniformParams,
    UUIDParams,
    parse_datetime,
)
from tasks.generation.errors import TemplateRenderError


def column_rng(seed: int, batch_index: int, column_index: int) -> np.random.Generator:
    """The generator of one column of one batch."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, batch_index, column_index])))


def values_type(values: list[Scalar]) -> pa.DataType:
    """The Arrow type of a list of config values: bool, int64, float64, or string when they are mixed."""
    kinds = {type(v) for v in values}
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    return pa.string()


def _values_array(values: list[Scalar]) -> pa.Array:
    vtype = values_type(values)
    if vtype == pa.string():
        return pa.array([v if isinstance(v, str) else scalar_text(v) for v in values], pa.string())
    return pa.array(values, vtype)


def scalar_text(value: Scalar) -> str:
    """A value as text, as JSON writes it (``True`` is ``"true"``, ``1.0`` is ``"1.0"``): also the key a parent
    value has in a subcategory's ``values`` (a JSON object: its keys are strings), the one rule for both the config
    check and the sampler."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def category_keys(column: SamplerColumn) -> list[str]:
    """The subcategory keys of a ``category`` column's values, as generated (after its ``convert_to``)."""
    assert isinstance(column.params, CategoryParams)
    values = convert(_values_array(column.params.values), column.convert_to, column.name)
    return [scalar_text(v) for v in values.to_pylist()]


# How a datetime sampler's values are written without a ``convert_to`` format: text, as Data Designer does
# (``2024-01-15T09:30:00``), so templates and the output see the same values as there.
ISO_DATETIME = "%Y-%m-%dT%H:%M:%S"


def sampler_type(column: SamplerColumn, parent_type: pa.DataType | None = None) -> pa.DataType:
    """The Arrow type a sampler column has after ``convert_to``, known before any value is drawn."""
    params = column.params
    base: pa.DataType
    if isinstance(params, CategoryParams):
        base = values_type(params.values)
    elif isinstance(params, SubcategoryParams):
        base = values_type(params.all_values)
    elif isinstance(params, UniformParams | GaussianParams):
        base = pa.float64()
    elif isinstance(params, BernoulliParams | PoissonParams):
        base = pa.int64()
    elif isinstance(params, UUIDParams):
        base = pa.string()
    else:
        base = pa.timestamp("us")
    conv = column.convert_to or (ISO_DATETIME if isinstance(params, DatetimeParams) else None)
    if conv is None:
        return base
    return {"int": pa.int64(), "float": pa.float64()}.get(conv, pa.string())


def sample_column(
    column: SamplerColumn, rng: np.random.Generator, n: int, parent: pa.Array | None = None
) -> pa.Array:
    """Draw ``n`` values of a sampler column (``parent``: the category column of a subcategory sampler)."""
    params = column.params
    values: pa.Array
    if isinstance(params, CategoryParams):
        p = None
        if params.weights is not None:
            w = np.asarray(params.weights, dtype=np.float64)
            p = w / w.sum()
        idx = rng.choice(len(params.values), size=n, p=p)
        values = _values_array(params.values).take(pa.array(idx))
    elif isinstance(params, SubcategoryParams):
        if parent is None:
            raise ValueError(f"column {column.name!r}: subcategory sampler needs its parent column")
        values = _subcategory(column.name, params, rng, n, parent)
    elif isinstance(params, UniformParams | GaussianParams):
        drawn = (
            rng.uniform(params.low, params.high, n)
            if isinstance(params, UniformParams)
            else rng.normal(params.mean, params.stddev, n)
        )
        if column.convert_to == "int":  # Data Designer makes the int before applying decimal_places
            drawn = np.round(drawn)
        values = pa.array(_round(drawn, params.decimal_places))
    elif isinstance(params, BernoulliParams):
        values = pa.array((rng.random(n) < params.p).astype(np.int64))
    elif isinstance(params, PoissonParams):
        values = pa.array(rng.poisson(params.mean, n).astype(np.int64))
    elif isinstance(params, UUIDParams):
        values = pa.array(_uuids(params, rng, n), pa.string())
    else:
        stamps = _datetimes(params, rng, n)
        if column.convert_to == "int":  # the time in units of the sampler's unit since 1970
            return pa.array(stamps.astype(np.int64))
        values = pa.array(stamps.astype("datetime64[us]"), pa.timestamp("us"))
        return convert(values, column.convert_to or ISO_DATETIME, column.name)  # text, as Data Designer writes
    return convert(values, column.convert_to, column.name)


def _round(values: np.ndarray, decimal_places: int | None) -> np.ndarray:
    return values if decimal_places is None else np.round(values, decimal_places)


def _subcategory(
    name: str, params: SubcategoryParams, rng: np.random.Generator, n: int, parent: pa.Array
) -> pa.Array:
    keys = list(params.values)
    position = {key: i for i, key in enumerate(keys)}
    # Keys are looked up once per distinct parent value, with the same rule as the config check.
    distinct = pc.unique(parent)
    groups = [position.get(scalar_text(v)) for v in distinct.to_pylist()]
    missing = sorted((v for v, g in zip(distinct.to_pylist(), groups, strict=True) if g is None), key=str)
    if missing:
        raise TemplateRenderError(f"column {name!r}: no subcategories for parent value(s) {missing}")
    flat: list[Scalar] = [v for k in keys for v in params.values[k]]
    sizes = np.array([len(params.values[k]) for k in keys], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    which = pc.index_in(parent, value_set=distinct).to_numpy(zero_copy_only=False)
    g = np.asarray(groups, dtype=np.int64)[which]
    idx = offsets[g] + np.floor(rng.random(n) * sizes[g]).astype(np.int64)
    return _values_array(flat).take(pa.array(idx))


def _uuids(params: UUIDParams, rng: np.random.Generator, n: int) -> list[str]:
    """As Data Designer: ``uuid4().hex`` (32 characters, or the first 8 in short form), unique within the batch
    (a repeat is drawn again, from the same generator, so reruns still reproduce it)."""
    unique: dict[str, None] = {}
    while len(unique) < n:
        unique.update(dict.fromkeys(_uuid_draws(params, rng, n - len(unique))))
    return list(unique)


def _uuid_draws(params: UUIDParams, rng: np.random.Generator, n: int) -> list[str]:
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    hexes = raw.tobytes().hex()
    if params.uppercase:
        hexes = hexes.upper()
    prefix = params.prefix or ""
    width = 8 if params.short_form else 32
    return [prefix + hexes[i : i + width] for i in range(0, 32 * n, 32)]


def _datetimes(params: DatetimeParams, rng: np.random.Generator, n: int) -> np.ndarray:
    unit = params.unit
    start = np.datetime64(parse_datetime(params.start), "us").astype(f"datetime64[{unit}]")
    end = np.datetime64(parse_datetime(params.end), "us").astype(f"datetime64[{unit}]")
    span = max(int((end - start).astype(np.int64)), 1)  # end is exclusive
    return start + rng.integers(0, span, n)


def convert(values: pa.Array, convert_to: str | None, name: str) -> pa.Array:
    """Apply a sampler's ``convert_to``: ``int`` (rounds half to even, as Data Designer's ``round().astype(int)``),
    ``float``, ``str``, or a ``strftime`` format."""
    if convert_to is None:
        return values
    try:
        return _convert(values, convert_to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:  # the config check should have caught it
        raise TemplateRenderError(f"column {name!r}: cannot convert to {convert_to}: {exc}") from None


def _convert(values: pa.Array, convert_to: str) -> pa.Array:
    if "%" in convert_to:  # in whole seconds (the finest unit), so that %S is two digits, as in Python
        return pc.strftime(pc.cast(values, pa.timestamp("s"), safe=False), format=convert_to)
    target = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}[convert_to]
    if values.type == target:
        return values
    if pa.types.is_string(values.type) and target != pa.string():
        values = pc.cast(values, pa.float64())
    if pa.types.is_floating(values.type) and target == pa.int64():
        values = pc.round(values)  # half to even, like numpy and pandas
    if pa.types.is_timestamp(values.type) and target == pa.string():
        return pa.array([str(v) for v in values.to_pylist()], pa.string())
    if pa.types.is_floating(values.type) and target == pa.string():
        return pa.array([repr(v) for v in values.to_pylist()], pa.string())
    if pa.types.is_boolean(values.type) and target == pa.string():
        return pa.array([scalar_text(v) for v in values.to_pylist()], pa.string())
    return pc.cast(values, target, safe=False)
