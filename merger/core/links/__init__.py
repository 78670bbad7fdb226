"""Share-link parsers and serializers, one module per protocol family.

`parse_link` turns one `scheme://...` line into a `Node` or raises `LinkError` with a short
reason; `to_link` writes a node back as a canonical link that `parse_link` reads to an equal node.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import LinkError
from ..node import Node
from . import hysteria, shadowsocks, simple, v2ray

Parser = Callable[[str], Node]
Serializer = Callable[[Node], str]

# Scheme (lower case, without "://") to parser. Each module exports PARSERS and SERIALIZERS.
PARSERS: dict[str, Parser] = {}
# Node.protocol to serializer.
SERIALIZERS: dict[str, Serializer] = {}
for _module in (v2ray, shadowsocks, hysteria, simple):
    PARSERS.update(_module.PARSERS)
    SERIALIZERS.update(_module.SERIALIZERS)


def parse_link(text: str) -> Node:
    """Parse one share link; raise LinkError with the reason when it is not a valid node."""
    text = text.strip()
    scheme, sep, _ = text.partition("://")
    if not sep:
        raise LinkError("not a share link: missing scheme://")
    parser = PARSERS.get(scheme.lower())
    if parser is None:
        raise LinkError(f"unsupported scheme {scheme[:20]!r}")
    return parser(text)


def to_link(node: Node) -> str:
    """Write a node as its canonical share link."""
    serializer = SERIALIZERS.get(node.protocol)
    if serializer is None:
        raise LinkError(f"no share-link form for protocol {node.protocol!r}")
    return serializer(node)
