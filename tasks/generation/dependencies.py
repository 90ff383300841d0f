"""Generation order of columns, from the names their templates (and subcategory parents) read.

The reads themselves are collected by :func:`tasks.generation.plan.build_plan` from the compiled templates.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from tasks.generation.errors import ConfigError


def order_columns(names: Sequence[str], deps: Mapping[str, Sequence[str]]) -> list[str]:
    """A topological order of ``names`` in which every column comes after what it reads.

    Ties keep config order, so the order (and with it the data) does not depend on set iteration.

    Raises:
        ConfigError: a column reads a name that is not a column (all listed), or columns form a cycle.
    """
    position = {name: i for i, name in enumerate(names)}
    unknown = [
        f"column {name!r} reads {ref!r}, which is not a column"
        for name in names
        for ref in deps.get(name, ())
        if ref not in position
    ]
    self_refs = [f"column {name!r} reads itself" for name in names if name in deps.get(name, ())]
    if unknown or self_refs:
        raise ConfigError(unknown + self_refs)
    indegree = {name: len(set(deps.get(name, ()))) for name in names}
    readers: dict[str, list[str]] = {name: [] for name in names}
    for name in names:
        for ref in set(deps.get(name, ())):
            readers[ref].append(name)
    ready = [position[n] for n in names if indegree[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for reader in readers[name]:
            indegree[reader] -= 1
            if indegree[reader] == 0:
                heapq.heappush(ready, position[reader])
    if len(order) != len(names):
        raise ConfigError(f"columns depend on each other in a cycle: {_find_cycle(names, deps, set(order))}")
    return order


def _find_cycle(names: Sequence[str], deps: Mapping[str, Sequence[str]], done: set[str]) -> str:
    remaining = [n for n in names if n not in done]
    # Walk dependencies from a remaining node until a node repeats: that loop is a cycle.
    path: list[str] = []
    node = remaining[0]
    while node not in path:
        path.append(node)
        node = next(ref for ref in sorted(set(deps.get(node, ()))) if ref not in done)
    cycle = [*path[path.index(node) :], node]
    return " -> ".join(cycle)
