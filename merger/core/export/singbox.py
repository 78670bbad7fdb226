"""Complete sing-box client config export.

The config has a `mixed` (HTTP + SOCKS) inbound on 127.0.0.1:2080, one outbound per node, a
`urltest` group that picks the fastest node, a `selector` group that is the route's default and
lets the user pick by hand, and `direct`. WireGuard nodes go under `endpoints`, the only place
sing-box 1.11+ accepts them. Legacy special outbounds (block, dns) are left out because sing-box
1.11 deprecated them in favour of rule actions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

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
    skipped: Counter[str] = Counter()
    # The group tags take part in name de-duplication, so that a node called "auto" or "direct"
    # is renamed instead of clashing with a group.
    group_tags = (SELECTOR_TAG, URLTEST_TAG, DIRECT_TAG)
    reserved = [Node(protocol="", host="", port=0, name=tag) for tag in group_tags]
    names = unique_names([*reserved, *nodes])[len(reserved) :]

    proxies: list[dict[str, Any]] = []
    endpoints: list[dict[str, Any]] = []
    tags: list[str] = []
    for node, name in zip(nodes, names, strict=True):
        try:
            entry = node_to_singbox(node, name)
        except UnsupportedNode as error:
            skipped[str(error)] += 1
            continue
        if node.protocol in ENDPOINT_PROTOCOLS:
            endpoints.append(entry)
        else:
            proxies.append(entry)
        tags.append(name)

    outbounds: list[dict[str, Any]] = []
    if tags:
        outbounds.append(
            {
                "type": "selector",
                "tag": SELECTOR_TAG,
                "outbounds": [URLTEST_TAG, *tags, DIRECT_TAG],
                "default": URLTEST_TAG,
            }
        )
        # sing-box's default test URL and interval apply; they are not repeated here.
        outbounds.append({"type": "urltest", "tag": URLTEST_TAG, "outbounds": tags})
    else:
        # A urltest group with no members is rejected by sing-box, so an empty export only
        # offers the direct route.
        outbounds.append({"type": "selector", "tag": SELECTOR_TAG, "outbounds": [DIRECT_TAG]})
    outbounds.extend(proxies)
    outbounds.append({"type": "direct", "tag": DIRECT_TAG})

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
    return config, skipped


def render_singbox(nodes: Sequence[Node]) -> tuple[str, Counter[str]]:
    """Return the sing-box config as indented JSON text and the skip reasons with their counts."""
    config, skipped = build_singbox_config(nodes)
    return orjson.dumps(config, option=orjson.OPT_INDENT_2).decode("utf-8") + "\n", skipped
