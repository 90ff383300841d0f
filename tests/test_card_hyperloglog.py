"""The HyperLogLog sketch and hashes behind estimated unique counts (tasks.card.hyperloglog)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from tasks.card.hyperloglog import HyperLogLog, digest128, hash64, hash64_from_digest128

ROOT = Path(__file__).resolve().parent.parent


def test_registers_equal_a_plain_python_reference() -> None:
    rng = random.Random(7)
    p, q = 14, 50
    hashes = [rng.getrandbits(64) for _ in range(20_000)]
    # the low 50 bits at and around every power of two, where float log2 would round the wrong way, and zero
    for k in range(q):
        for delta in (-1, 0, 1):
            low = (1 << k) + delta
            if 0 <= low < 1 << q:
                hashes.append((rng.getrandbits(p) << q) | low)
    hashes += [0, 5 << q, (1 << 64) - 1]
    sketch = HyperLogLog(p)
    sketch.add_hashes(pa.array(hashes, pa.uint64()))
    expected = bytearray(1 << p)
    for h in hashes:
        index, low = h >> q, h & ((1 << q) - 1)
        rank = q - low.bit_length() + 1  # leading zeros of the 50-bit remainder, plus one
        expected[index] = max(expected[index], rank)
    assert sketch.registers == expected


@pytest.mark.parametrize("n", [0, 1, 2, 10, 100, 1_000, 10_000, 200_000])
def test_estimates_are_within_four_standard_errors(n: int) -> None:
    ints = HyperLogLog()
    ints.add(pa.array(range(n), pa.int64()))
    strings = HyperLogLog()
    strings.add(pa.array([f"value {i}" for i in range(n)]))
    for sketch in (ints, strings):
        if n <= 100:  # small range: like linear counting, off only by the odd register collision
            assert round(sketch.estimate()) == pytest.approx(n, abs=max(1, n // 20))
        else:
            assert abs(sketch.estimate() - n) <= 4 * sketch.relative_error * n


def test_duplicates_do_not_count_and_sketches_merge() -> None:
    a, b = HyperLogLog(), HyperLogLog()
    a.add(pa.array(list(range(5_000)) * 3))
    b.add(pa.array(range(2_500, 7_500)))
    a.merge(b)
    assert abs(a.estimate() - 7_500) <= 4 * a.relative_error * 7_500
    with pytest.raises(ValueError):
        a.merge(HyperLogLog(10))


def test_hashes_are_deterministic_across_processes() -> None:
    """The card of an unchanged dataset must not change: no per-process hash seed (PYTHONHASHSEED) is involved."""
    code = (
        "import pyarrow as pa; from tasks.card.hyperloglog import hash64;"
        "print(hash64(pa.array(['a', 'b', 'é'])).to_pylist(), hash64(pa.array([1, 2, 3])).to_pylist(),"
        " hash64(pa.array([0.5, -0.0])).to_pylist())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_equal_values_hash_equal_and_types_are_covered() -> None:
    assert hash64(pa.array([0.0])).to_pylist() == hash64(pa.array([-0.0])).to_pylist()
    assert len(set(hash64(pa.array([1, 2, 3, 1])).to_pylist())) == 3
    assert hash64(pa.array(["x", None])).to_pylist() == hash64(pa.array(["x"])).to_pylist()
    assert len(hash64(pa.array([b"ab"], pa.binary(2)))) == 1
    digests = digest128(pa.array(["a", "b", "a"]))
    assert digests.type == pa.binary(16) and digests[0] == digests[2] != digests[1]
    assert hash64_from_digest128(digests.slice(1)).to_pylist() == hash64_from_digest128(digests).to_pylist()[1:]
    with pytest.raises(TypeError):
        hash64(pa.array([[1]]))
    with pytest.raises(ValueError):
        HyperLogLog(3)
