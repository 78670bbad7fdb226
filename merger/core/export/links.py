"""Raw link list and base64 subscription exports, the formats v2rayN-family clients poll."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Sequence

from ..errors import LinkError, UnsupportedNode
from ..links import SERIALIZERS
from ..node import Node


def serialize_links(nodes: Sequence[Node]) -> tuple[list[str], Counter[str]]:
    """Return each node's canonical share link ('' where it has none) and the skip reasons."""
    skipped: Counter[str] = Counter()
    links = []
    for node in nodes:
        serializer = SERIALIZERS.get(node.protocol)
        if serializer is None:
            skipped[f"no share-link form for {node.protocol}"] += 1
            links.append("")
            continue
        try:
            links.append(serializer(node))
        except (LinkError, UnsupportedNode) as error:
            skipped[str(error)] += 1
            links.append("")
    return links, skipped


def render_raw(links: Sequence[str]) -> str:
    """Return the non-empty links one per line, with a final newline."""
    kept = [link for link in links if link]
    return "\n".join(kept) + "\n" if kept else ""


def render_base64(raw: str) -> str:
    """Encode a raw link list as one line of standard padded base64, as v2rayN expects."""
    return base64.b64encode(raw.encode("utf-8")).decode("ascii")
