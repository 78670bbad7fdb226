"""CSV export and the JSON report with run statistics and every node's fields."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import orjson

from ..node import Node

CSV_COLUMNS = (
    "name",
    "protocol",
    "host",
    "port",
    "network",
    "security",
    "sni",
    "fingerprint",
    "sources",
    "link",
)


def render_csv(nodes: Sequence[Node], links: Sequence[str]) -> str:
    """Return a CSV table with a header row; `links` holds each node's share link ('' if none)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for node, link in zip(nodes, links, strict=True):
        writer.writerow(
            (
                node.name,
                node.protocol,
                node.host,
                node.port,
                node.network,
                node.security,
                node.sni,
                node.fingerprint,
                ";".join(node.sources),
                link,
            )
        )
    return buffer.getvalue()


def render_report(stats: dict[str, Any], nodes: Sequence[Node], links: Sequence[str]) -> bytes:
    """Return the JSON report: `stats` as given plus a `nodes` list with every node's fields."""
    node_rows = []
    for node, link in zip(nodes, links, strict=True):
        row = node.as_dict()
        row["fingerprint"] = node.fingerprint
        row["link"] = link
        node_rows.append(row)
    return orjson.dumps({**stats, "nodes": node_rows}, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
