"""Unique display names for exports.

Clash rejects a config in which two proxies share a name, and sing-box rejects duplicate tags,
so every export that names nodes goes through `unique_names`.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..node import Node


def unique_names(nodes: Iterable[Node]) -> list[str]:
    """Return one name per node, in order, with repeats suffixed " 2", " 3"... and blanks filled.

    A node without a name gets "<protocol> <host>:<port>". The suffix skips numbers that would
    collide with a name already taken, so the result is unique even when the inputs contain
    names such as "x 2".
    """
    taken: set[str] = set()
    counters: dict[str, int] = {}
    result: list[str] = []
    for node in nodes:
        base = node.name.strip() or f"{node.protocol} {node.host}:{node.port}"
        name = base
        if name in taken:
            count = counters.get(base, 1)
            while name in taken:
                count += 1
                name = f"{base} {count}"
            counters[base] = count
        taken.add(name)
        result.append(name)
    return result
