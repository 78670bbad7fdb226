"""CSV export and the JSON report with run statistics and every node's fields."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

import orjson

from ..node import Node
from .singbox import write_indented_items

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
    write_csv(nodes, links, buffer)
    return buffer.getvalue()


def write_csv(nodes: Sequence[Node], links: Sequence[str], stream: TextIO) -> None:
    """Write the table of `render_csv` to a text stream."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(
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
        for node, link in zip(nodes, links, strict=True)
    )


_REPORT_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS


def render_report(stats: dict[str, Any], nodes: Sequence[Node], links: Sequence[str]) -> bytes:
    """Return the JSON report: `stats` as given plus a `nodes` list with every node's fields."""
    if "nodes" in stats:
        # The report's own list replaces the value but keeps the key's place, which the
        # streaming writer cannot do, so such stats take the whole-document path.
        return orjson.dumps({**stats, "nodes": list(_report_rows(nodes, links))}, option=_REPORT_OPTIONS)
    chunks: list[bytes] = []
    write_report(stats, nodes, links, chunks.append)
    return b"".join(chunks)


def write_report(
    stats: dict[str, Any], nodes: Sequence[Node], links: Sequence[str], write: Callable[[bytes], object]
) -> None:
    """Pass the bytes of `render_report` to `write` in chunks, one batch of node rows at a time."""
    if "nodes" in stats:
        write(render_report(stats, nodes, links))
        return
    frame = orjson.dumps({**stats, "nodes": []}, option=_REPORT_OPTIONS)
    if not nodes:
        write(frame)
        return
    # "nodes" is the frame's last key, so its empty list closes the document: `[]\n}`.
    cut = len(frame) - len(b"]\n}")
    write(frame[:cut] + b"\n")
    write_indented_items(_report_rows(nodes, links), write, orjson.OPT_NON_STR_KEYS)
    write(b"\n  " + frame[cut:])


def _report_rows(nodes: Sequence[Node], links: Sequence[str]) -> Iterator[dict[str, Any]]:
    for node, link in zip(nodes, links, strict=True):
        row = node.as_dict()
        row["fingerprint"] = node.fingerprint
        row["link"] = link
        yield row
