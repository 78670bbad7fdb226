"""Complete sing-box client config export.

The config has a `mixed` (HTTP + SOCKS) inbound on 127.0.0.1:2080, one outbound per node, a
`urltest` group that picks the fastest node, a `selector` group that is the route's default and
lets the user pick by hand, and `direct`. WireGuard nodes go under `endpoints`, the only place
sing-box 1.11+ accepts them. Legacy special outbounds (block, dns) are left out because sing-box
1.11 deprecated them in favour of rule actions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from ..bulk import paused_gc
from ..errors import UnsupportedNode
from ..node import Node
from ..singbox import ENDPOINT_PROTOCOLS, node_to_singbox
from .names import unique_names

SELECTOR_TAG = "select"
URLTEST_TAG = "auto"
DIRECT_TAG = "direct"
INBOUND_LISTEN = "127.0.0.1"
INBOUND_PORT = 2080


def build_singbox_config(nodes: Sequence[Node]) -> tuple[dict[str, Any], Counter[str]]:
    """Build the sing-box config as a dict; also return how many nodes were skipped, by reason."""
    proxies: list[dict[str, Any]] = []
    endpoints: list[dict[str, Any]] = []
    tags: list[str] = []
    skipped = _convert(nodes, proxies.append, endpoints.append, tags)
    outbounds = [*_leading_groups(tags), *proxies, _DIRECT_OUTBOUND]
    return _config(outbounds, endpoints), skipped


def _convert(
    nodes: Sequence[Node],
    add_proxy: Callable[[dict[str, Any]], object],
    add_endpoint: Callable[[dict[str, Any]], object],
    tags: list[str],
) -> Counter[str]:
    """Convert every node, passing outbounds and endpoints on; append the tags of converted nodes."""
    skipped: Counter[str] = Counter()
    # The group tags take part in name de-duplication, so that a node called "auto" or "direct"
    # is renamed instead of clashing with a group.
    group_tags = (SELECTOR_TAG, URLTEST_TAG, DIRECT_TAG)
    reserved = [Node(protocol="", host="", port=0, name=tag) for tag in group_tags]
    names = unique_names([*reserved, *nodes])[len(reserved) :]
    for node, name in zip(nodes, names, strict=True):
        try:
            entry = node_to_singbox(node, name)
        except UnsupportedNode as error:
            skipped[str(error)] += 1
            continue
        if node.protocol in ENDPOINT_PROTOCOLS:
            add_endpoint(entry)
        else:
            add_proxy(entry)
        tags.append(name)
    return skipped


def _leading_groups(tags: list[str]) -> list[dict[str, Any]]:
    """Return the group outbounds that come before the nodes' outbounds."""
    if not tags:
        # A urltest group with no members is rejected by sing-box, so an empty export only
        # offers the direct route.
        return [{"type": "selector", "tag": SELECTOR_TAG, "outbounds": [DIRECT_TAG]}]
    return [
        {
            "type": "selector",
            "tag": SELECTOR_TAG,
            "outbounds": [URLTEST_TAG, *tags, DIRECT_TAG],
            "default": URLTEST_TAG,
        },
        # sing-box's default test URL and interval apply; they are not repeated here.
        {"type": "urltest", "tag": URLTEST_TAG, "outbounds": tags},
    ]


_DIRECT_OUTBOUND = {"type": "direct", "tag": DIRECT_TAG}


def _config(outbounds: list[Any], endpoints: list[Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "log": {"level": "warn", "timestamp": True},
        "inbounds": [
            {"type": "mixed", "tag": "mixed-in", "listen": INBOUND_LISTEN, "listen_port": INBOUND_PORT}
        ],
        "outbounds": outbounds,
    }
    if endpoints:
        config["endpoints"] = endpoints
    config["route"] = {"final": SELECTOR_TAG}
    return config


def render_singbox(nodes: Sequence[Node]) -> tuple[str, Counter[str]]:
    """Return the sing-box config as indented JSON text and the skip reasons with their counts."""
    config, skipped = build_singbox_config(nodes)
    return orjson.dumps(config, option=orjson.OPT_INDENT_2).decode("utf-8") + "\n", skipped


def write_singbox(nodes: Sequence[Node], write: Callable[[bytes], object]) -> Counter[str]:
    """Pass the text of `render_singbox` to `write` as UTF-8 chunks and return the skip reasons.

    Each outbound is kept as its encoded text rather than a dict until the group outbounds,
    which list every tag and come first, are known. That takes a fraction of the memory.
    """
    with paused_gc():
        proxies: list[bytes] = []
        endpoints: list[dict[str, Any]] = []
        tags: list[str] = []
        skipped = _convert(nodes, lambda entry: proxies.append(_indented(entry)), endpoints.append, tags)
        # An empty list stands in for each long list in the frame; orjson writes it as `[]`.
        frame = orjson.dumps(_config([], []), option=orjson.OPT_INDENT_2) + b"\n"
        marker = b'\n  "outbounds": []'
        cut = frame.index(marker) + len(marker) - 1
        write(frame[:cut] + b"\n")
        write_indented_items(_leading_groups(tags), write)
        for start in range(0, len(proxies), _BATCH):
            write(b",\n" + b",\n".join(proxies[start : start + _BATCH]))
        write(b",\n" + _indented(_DIRECT_OUTBOUND) + b"\n  ]")
        rest = frame[cut + 1 :]
        if endpoints:
            # The frame has no endpoints, so they go between the outbounds and the route.
            write(b',\n  "endpoints": [\n')
            write_indented_items(endpoints, write)
            write(b"\n  ]")
        write(rest)
    return skipped


def _indented(item: Any, option: int = 0) -> bytes:
    """Encode an item as orjson's OPT_INDENT_2 writes it two levels deep, without a separator.

    JSON strings cannot hold a raw newline, so every newline in the encoded item is a line break.
    """
    return b"    " + orjson.dumps(item, option=orjson.OPT_INDENT_2 | option).replace(b"\n", b"\n    ")


# Items are written in batches of this many.
_BATCH = 2048


def write_indented_items(items: Iterable[Any], write: Callable[[bytes], object], option: int = 0) -> None:
    """Write list items as orjson's OPT_INDENT_2 writes them two levels deep, comma-separated.

    Each item is encoded on its own by `_indented`. `option` adds orjson options to OPT_INDENT_2.
    """
    batch: list[bytes] = []
    first = True
    for item in items:
        batch.append(_indented(item, option))
        if len(batch) >= _BATCH:
            write((b"" if first else b",\n") + b",\n".join(batch))
            batch.clear()
            first = False
    if batch:
        write((b"" if first else b",\n") + b",\n".join(batch))
