"""Raw link list and base64 subscription exports, the formats v2rayN-family clients poll."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Sequence

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


def write_raw_and_base64(
    links: Sequence[str], write_raw: Callable[[bytes], object], write_base64: Callable[[bytes], object]
) -> None:
    """Write the texts of `render_raw` and `render_base64` in chunks, without holding either whole.

    Base64 turns every 3 input bytes into 4 output characters, so encoding chunks cut at a
    multiple of 3 bytes and joining the results gives the same text as one encoding of the whole.
    """
    pending = b""
    kept = [link for link in links if link]
    for start in range(0, len(kept), _BATCH):
        chunk = ("\n".join(kept[start : start + _BATCH]) + "\n").encode("utf-8")
        write_raw(chunk)
        data = pending + chunk
        cut = len(data) - len(data) % 3
        write_base64(base64.b64encode(data[:cut]))
        pending = data[cut:]
    if pending:
        write_base64(base64.b64encode(pending))


# Links are encoded in batches of this many.
_BATCH = 8192
