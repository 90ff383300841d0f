"""HyperLogLog distinct-value estimate, vectorised with ``pyarrow.compute``, with no numpy.

Used by :mod:`tasks.card.statistics` once a column has more distinct values than the exact bound.

- **Hashes.** :func:`hash64` maps an Arrow array to 64-bit hashes that do not change between runs or machines
  (no ``hash()``, no per-process seed), so the same dataset always gives the same card. Fixed-width values
  (integers, floats, booleans, dates, times, timestamps, durations) are taken as their 64-bit pattern ``x``
  (:func:`as_uint64`) and hashed as SplitMix64 does its ``x``-th output: ``(x + 1) * 0x9E3779B97F4A7C15`` then
  its finaliser, all in Arrow arithmetic that wraps on overflow. Variable-length values (strings, binary,
  decimals) are hashed with BLAKE2b, one call per value; callers only hash values that are distinct within a
  batch. :func:`digest128` gives the 128-bit BLAKE2b digests that the exact counter keeps for variable-length
  values; :func:`hash64_from_digest128` takes their first 8 bytes, so a column that moves from the exact counter
  to the sketch is not hashed again.
- **Sketch.** ``2**p`` one-byte registers (default ``p = 14``: 16 KiB, relative standard error
  ``1.04 / sqrt(2**14)``, about 0.81 %). A register's index is the top ``p`` bits of the hash; its rank is
  1 plus the number of leading zeros in the other ``64 - p`` bits.
- **Estimate.** Ertl's improved raw estimator ("New cardinality estimation algorithms for HyperLogLog
  sketches", 2017, algorithm 6). It has no empirical bias tables and no separate linear-counting range, and
  stays unbiased from 0 up to far beyond 2**50 distinct values.
"""

from __future__ import annotations

import hashlib
import math

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "DEFAULT_PRECISION",
    "SLICE_ROWS",
    "HyperLogLog",
    "as_uint64",
    "digest128",
    "hash64",
    "hash64_from_digest128",
    "is_fixed_width_hashable",
]

DEFAULT_PRECISION = 14
SLICE_ROWS = 1 << 16  # hash and register this many values at a time

_U64 = pa.uint64()
_MASK64 = (1 << 64) - 1
_SPLITMIX_GAMMA = 0x9E3779B97F4A7C15
_SPLITMIX_M1 = 0xBF58476D1CE4E5B9
_SPLITMIX_M2 = 0x94D049BB133111EB


def _u64(value: int) -> pa.Scalar:
    return pa.scalar(value & _MASK64, _U64)


def is_fixed_width_hashable(type_: pa.DataType) -> bool:
    """Whether :func:`hash64` hashes values of ``type_`` with SplitMix64 rather than BLAKE2b."""
    return (
        pa.types.is_integer(type_)
        or pa.types.is_floating(type_)
        or pa.types.is_boolean(type_)
        or pa.types.is_date(type_)
        or pa.types.is_time(type_)
        or pa.types.is_timestamp(type_)
        or pa.types.is_duration(type_)
    )


def as_uint64(arr: pa.Array) -> pa.Array:
    """The 64-bit pattern of each fixed-width value (no nulls), as uint64. Equal values give equal patterns."""
    type_ = arr.type
    if pa.types.is_boolean(type_):
        return pc.cast(arr, _U64)
    if pa.types.is_floating(type_):
        arr = pc.cast(arr, pa.float64())
        # one bit pattern per value: -0.0 becomes 0.0, every NaN the same NaN
        arr = pc.add(arr, pa.scalar(0.0))
        arr = pc.if_else(pc.is_nan(arr), pa.scalar(math.nan), arr)
        return arr.view(pa.int64()).view(_U64)
    if (
        pa.types.is_date(type_)
        or pa.types.is_time(type_)
        or pa.types.is_timestamp(type_)
        or pa.types.is_duration(type_)
    ):
        arr = arr.view(pa.int32() if type_.bit_width == 32 else pa.int64())
        type_ = arr.type
    if type_ == _U64:
        return arr
    if pa.types.is_unsigned_integer(type_):
        return pc.cast(arr, _U64)
    return pc.cast(arr, pa.int64()).view(_U64)


def _splitmix64(x: pa.Array) -> pa.Array:
    """SplitMix64's finaliser over a uint64 array (a bijection; Arrow's unchecked arithmetic wraps)."""
    z = pc.multiply(pc.add(x, _u64(1)), _u64(_SPLITMIX_GAMMA))  # the generator's state for index x
    z = pc.multiply(pc.bit_wise_xor(z, pc.shift_right(z, _u64(30))), _u64(_SPLITMIX_M1))
    z = pc.multiply(pc.bit_wise_xor(z, pc.shift_right(z, _u64(27))), _u64(_SPLITMIX_M2))
    return pc.bit_wise_xor(z, pc.shift_right(z, _u64(31)))


def _digests(arr: pa.Array, size: int) -> bytes:
    """BLAKE2b digests of ``size`` bytes of each value of a string/binary array (no nulls), concatenated."""
    if pa.types.is_decimal(arr.type):
        arr = pc.cast(arr, pa.large_string())
    if not pa.types.is_large_binary(arr.type):
        arr = pc.cast(arr, pa.large_binary())
    blake2b = hashlib.blake2b
    return b"".join([blake2b(value, digest_size=size).digest() for value in arr.to_pylist()])


def digest128(arr: pa.Array) -> pa.FixedSizeBinaryArray:
    """128-bit BLAKE2b digest of every value of a string/binary array without nulls."""
    raw = _digests(arr, 16)
    return pa.Array.from_buffers(pa.binary(16), len(arr), [None, pa.py_buffer(raw)])  # type: ignore[return-value]


def hash64_from_digest128(digests: pa.FixedSizeBinaryArray) -> pa.Array:
    """The first 8 bytes of each 128-bit digest, as uint64 (the digest is already uniformly distributed)."""
    n = len(digests)
    if n == 0:
        return pa.array([], _U64)
    buf = digests.buffers()[1]
    words = memoryview(buf).cast("B")[digests.offset * 16 : (digests.offset + n) * 16].cast("Q")  # type: ignore[arg-type]
    return pa.Array.from_buffers(_U64, n, [None, pa.py_buffer(words[::2].tobytes())])


def hash64(arr: pa.Array) -> pa.Array:
    """Deterministic 64-bit hash of every value of ``arr`` (nulls dropped), as a uint64 array.

    Fixed-width types go through SplitMix64; strings, binary, fixed-size binary and decimals through BLAKE2b.
    Nested types must be encoded first (see ``statistics.canonical_keys``); they raise ``TypeError``.
    """
    if arr.null_count:
        arr = arr.drop_null()
    type_ = arr.type
    if is_fixed_width_hashable(type_):
        return _splitmix64(as_uint64(arr))
    if (
        pa.types.is_string(type_)
        or pa.types.is_large_string(type_)
        or pa.types.is_binary(type_)
        or pa.types.is_large_binary(type_)
        or pa.types.is_fixed_size_binary(type_)
        or pa.types.is_decimal(type_)
        or type_ in (pa.string_view(), pa.binary_view())
    ):
        raw = _digests(arr, 8)
        return pa.Array.from_buffers(_U64, len(arr), [None, pa.py_buffer(raw)])
    raise TypeError(f"no 64-bit hash for Arrow type {type_}")


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if z == previous:
            return z


def _tau(x: float) -> float:
    if x in (0.0, 1.0):
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z == previous:
            return z / 3.0


class HyperLogLog:
    """A HyperLogLog sketch over 64-bit hashes (see the module docstring)."""

    def __init__(self, precision: int = DEFAULT_PRECISION) -> None:
        if not 4 <= precision <= 18:
            raise ValueError(f"precision must be within 4..18, got {precision}")
        self.precision = precision
        self.m = 1 << precision
        self.q = 64 - precision
        self.registers = bytearray(self.m)

    @property
    def relative_error(self) -> float:
        """The relative standard error of :meth:`estimate`, ``1.04 / sqrt(m)``."""
        return 1.04 / math.sqrt(self.m)

    def add_hashes(self, hashes: pa.Array) -> None:
        """Add uint64 hashes (nulls ignored) to the sketch, :data:`SLICE_ROWS` at a time (bounded temporaries)."""
        if hashes.type != _U64:
            raise TypeError(f"expected uint64 hashes, got {hashes.type}")
        for offset in range(0, len(hashes), SLICE_ROWS):
            self._add_slice(hashes.slice(offset, SLICE_ROWS))

    def _add_slice(self, hashes: pa.Array) -> None:
        if hashes.null_count:
            hashes = hashes.drop_null()
        if len(hashes) == 0:
            return
        q = self.q
        index = pc.shift_right(hashes, _u64(q))
        low = pc.bit_wise_and(hashes, _u64((1 << q) - 1))  # < 2**50: exact as float64
        low_f = pc.cast(low, pa.float64())
        # k = floor(log2(low)), corrected so that 2**k <= low < 2**(k+1) holds exactly (log2 may round up)
        k = pc.floor(pc.log2(low_f))
        k = pc.subtract(k, pc.cast(pc.greater(pc.power(2.0, k), low_f), pa.float64()))
        k = pc.add(k, pc.cast(pc.less_equal(pc.power(2.0, pc.add(k, 1.0)), low_f), pa.float64()))
        rank = pc.if_else(pc.equal(low, _u64(0)), float(q + 1), pc.subtract(float(q), k))
        table = pa.table({"i": index, "r": pc.cast(rank, pa.uint8())})
        best = table.group_by("i").aggregate([("r", "max")])
        registers = self.registers
        for i, r in zip(best["i"].to_pylist(), best["r_max"].to_pylist(), strict=True):
            if r > registers[i]:
                registers[i] = r

    def add(self, values: pa.Array) -> None:
        """Hash ``values`` with :func:`hash64` and add them, :data:`SLICE_ROWS` at a time."""
        for offset in range(0, len(values), SLICE_ROWS):
            self.add_hashes(hash64(values.slice(offset, SLICE_ROWS)))

    def merge(self, other: HyperLogLog) -> None:
        """Fold ``other`` in (register-wise max): the sketch then estimates the union of both inputs.

        Raises:
            ValueError: the sketches differ in precision.
        """
        if other.precision != self.precision:
            raise ValueError("cannot merge sketches of different precision")
        self.registers = bytearray(max(a, b) for a, b in zip(self.registers, other.registers, strict=True))

    def histogram(self) -> list[int]:
        """``C[k]``: how many registers hold rank ``k``, for ``k`` in ``0..q+1``."""
        return [self.registers.count(k) for k in range(self.q + 2)]

    def estimate(self) -> float:
        """Distinct values added so far, by Ertl's improved raw estimator (unrounded; 0.0 for an empty sketch)."""
        m, q = self.m, self.q
        counts = self.histogram()
        z = m * _tau(1.0 - counts[q + 1] / m)
        for k in range(q, 0, -1):
            z = 0.5 * (z + counts[k])
        z += m * _sigma(counts[0] / m)
        if math.isinf(z):
            return 0.0
        return m * m / (2.0 * math.log(2.0)) / z
