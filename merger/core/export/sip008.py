"""SIP008 online configuration export for Shadowsocks clients.

SIP008 (shadowsocks.org, "SIP008 Online Configuration Delivery") is a JSON document
`{"version": 1, "servers": [...]}` where each server has id, remarks, server, server_port,
password, method and optionally plugin and plugin_opts (the SIP003 option string without the
plugin name). Only ss nodes can be written; others are counted as skipped.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

from ..links.shadowsocks import format_plugin
from ..node import Node
from .names import unique_names

# Server ids are derived from the fingerprint so that a client sees the same id for the same
# server in every download, as SIP008 asks ("a UUID ... to identify the server").
_ID_NAMESPACE = uuid.UUID("5b6c8f3e-9d2a-4c71-8e0f-2a4b6c8d0e1f")


def build_sip008(
    nodes: Sequence[Node], userinfo: dict[str, int] | None = None
) -> tuple[dict[str, Any], Counter[str]]:
    """Build the SIP008 document as a dict; also return the skipped nodes counted by reason.

    `userinfo` (upload, download, total) fills the optional bytes_used and bytes_remaining.
    """
    skipped: Counter[str] = Counter()
    kept = []
    for node in nodes:
        if node.protocol != "ss":
            skipped[f"SIP008 holds only ss servers, not {node.protocol}"] += 1
            continue
        kept.append(node)

    servers = []
    for node, name in zip(kept, unique_names(kept), strict=True):
        server: dict[str, Any] = {
            "id": str(uuid.uuid5(_ID_NAMESPACE, node.fingerprint)),
            "remarks": name,
            "server": node.host,
            "server_port": node.port,
            "password": node.password,
            "method": node.method,
        }
        plugin = node.extra.get("plugin")
        if plugin:
            server["plugin"] = plugin
            # format_plugin writes "name;options"; SIP008 keeps the name and options apart. The
            # real name is passed so that v2ray-plugin's tls is written as a bare flag.
            spec = format_plugin(plugin, node.extra.get("plugin_opts") or {})
            server["plugin_opts"] = spec[len(format_plugin(plugin, {})) + 1 :]
        servers.append(server)

    document: dict[str, Any] = {"version": 1, "servers": servers}
    if userinfo:
        used = int(userinfo.get("upload", 0)) + int(userinfo.get("download", 0))
        document["bytes_used"] = used
        if userinfo.get("total"):
            document["bytes_remaining"] = max(0, int(userinfo["total"]) - used)
    return document, skipped


def render_sip008(nodes: Sequence[Node], userinfo: dict[str, int] | None = None) -> tuple[str, Counter[str]]:
    """Return the SIP008 document as indented JSON text and the skip reasons with their counts."""
    document, skipped = build_sip008(nodes, userinfo)
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode("utf-8") + "\n", skipped
