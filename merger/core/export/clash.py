"""Clash.Meta (mihomo) config export.

Each proxy is written as one JSON object per line (`  - {"name": ...}`). JSON is valid YAML 1.2
and mihomo reads it, and orjson writes it about 70 times faster than PyYAML's dumper, which
matters for subscriptions of 100k nodes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

import orjson

from ..bulk import paused_gc
from ..clash import node_to_clash
from ..errors import UnsupportedNode
from ..node import Node
from .names import unique_names

TEST_URL = "http://www.gstatic.com/generate_204"
TEST_INTERVAL = 300  # seconds between latency checks of the url-test and fallback groups

# Private networks go direct. IP-CIDR rules are used rather than GEOIP,private because GEOIP makes
# mihomo download a GeoIP database at start.
_PRIVATE_RULES = tuple(
    f"IP-CIDR,{cidr},DIRECT,no-resolve"
    for cidr in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)

# Names that mihomo gives its built-in policies; a proxy or group with one of them is rejected.
_BUILTIN_NAMES = frozenset(("DIRECT", "REJECT", "REJECT-DROP", "PASS", "COMPATIBLE", "GLOBAL"))

# Characters that orjson writes raw but YAML 1.1 readers (PyYAML) reject or read as line
# breaks: DEL, the C1 controls (NEL among them), U+2028/U+2029 and the non-characters U+FFFE/F.
# JSON strings may spell them as \uXXXX escapes, which YAML double-quoted scalars also accept.
_YAML_ESCAPES = {code: f"\\u{code:04x}" for code in (*range(0x7F, 0xA0), 0x2028, 0x2029, 0xFFFE, 0xFFFF)}
# The same characters as UTF-8 bytes, so that chunks are checked before any decoding.
_YAML_UNSAFE_BYTES_RE = re.compile(b"\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]|\xef\xbf[\xbe\xbf]")


def _group_names(taken: set[str]) -> tuple[str, str, str]:
    """Return names for the select, url-test and fallback groups that no proxy already uses."""
    result = []
    for base in ("🚀 Proxy", "⚡ Auto", "🛟 Fallback"):
        name = base
        count = 1
        while name in taken:
            count += 1
            name = f"{base} {count}"
        taken.add(name)
        result.append(name)
    return result[0], result[1], result[2]


def _avoid_builtin_names(names: list[str]) -> list[str]:
    taken = set(names)
    for index, name in enumerate(names):
        if name.upper() in _BUILTIN_NAMES:
            count = 1
            candidate = name
            while candidate in taken or candidate.upper() in _BUILTIN_NAMES:
                count += 1
                candidate = f"{name} {count}"
            taken.add(candidate)
            names[index] = candidate
    return names


def _dump_line(indent: bytes, value: object) -> bytes:
    return indent + orjson.dumps(value) + b"\n"


def render_clash(nodes: Iterable[Node]) -> tuple[str, Counter[str]]:
    """Return a complete Clash.Meta config for the nodes and a Counter of skip reasons.

    Nodes that mihomo cannot express (see `node_to_clash`) are left out and counted by reason.
    Proxy names are made unique and kept clear of built-in policy and group names.
    """
    chunks: list[bytes] = []
    skipped = write_clash(nodes, chunks.append)
    text = b"".join(chunks).decode("utf-8")
    return text, skipped


def write_clash(nodes: Iterable[Node], write: Callable[[bytes], object]) -> Counter[str]:
    """Pass the config of `render_clash` to `write` as UTF-8 chunks and return the skip reasons."""
    # The cyclic garbage collector would run dozens of times while 100k dicts are built, none of
    # which can form cycles, and that costs about a third of the run time.
    with paused_gc():
        return _render(nodes, write)


# Proxy lines are written in batches of this many, which keeps the writes large and the
# YAML-unsafe character check on bytes.
_BATCH = 4096
_NAME_PLACEHOLDER = b'{"name":""'


def _render(nodes: Iterable[Node], write: Callable[[bytes], object]) -> Counter[str]:
    skipped: Counter[str] = Counter()
    kept: list[Node] = []
    # Each proxy is kept as its JSON text after the name, which takes a fraction of the memory of
    # the dict. The real name is put in front once all names are known. `node_to_clash` puts
    # "name" first, so the text of a proxy named "" starts with _NAME_PLACEHOLDER. None marks a
    # proxy whose text is not valid Unicode (lone surrogates from broken \u escapes in a source).
    bodies: list[bytes | None] = []
    for node in nodes:
        try:
            proxy = node_to_clash(node, "")
        except UnsupportedNode as error:
            skipped[str(error)] += 1
            continue
        kept.append(node)
        try:
            # The slice is a new, exactly sized object. orjson's own result keeps its larger
            # output buffer, about 3.5 KB a proxy in total (orjson 3.13, measured with RSS).
            bodies.append(orjson.dumps(proxy)[len(_NAME_PLACEHOLDER) :])
        except orjson.JSONEncodeError:
            bodies.append(None)

    names = _avoid_builtin_names(unique_names(kept))
    del kept
    select_name, auto_name, fallback_name = _group_names(set(names))

    header = b"mixed-port: 7890\nallow-lan: false\nmode: rule\nlog-level: info\nipv6: true\n"
    kept_names: list[str] = []
    batch: list[bytes] = []
    for body, name in zip(bodies, names, strict=True):
        if body is not None:
            try:
                encoded_name = orjson.dumps(name)
            except orjson.JSONEncodeError:
                body = None
        if body is None:
            skipped["text that is not valid Unicode"] += 1
            continue
        if not kept_names:
            write(header + b"proxies:\n")
        batch.append(b'  - {"name":' + encoded_name + body + b"\n")
        kept_names.append(name)
        if len(batch) >= _BATCH:
            write(_yaml_safe(b"".join(batch)))
            batch.clear()
    del bodies
    if batch:
        write(_yaml_safe(b"".join(batch)))
    if not kept_names:
        write(header + b"proxies: []\n")

    # url-test and fallback groups need at least one member, so an empty export falls back to
    # DIRECT there.
    members = kept_names or ["DIRECT"]
    lines = [b"proxy-groups:\n"]
    select_group = {
        "name": select_name,
        "type": "select",
        "proxies": [auto_name, fallback_name, *kept_names, "DIRECT"],
    }
    lines.append(_dump_line(b"  - ", select_group))
    for group_name, group_type in ((auto_name, "url-test"), (fallback_name, "fallback")):
        group = {
            "name": group_name,
            "type": group_type,
            "url": TEST_URL,
            "interval": TEST_INTERVAL,
            "proxies": members,
        }
        if group_type == "url-test":
            group["tolerance"] = 50
        lines.append(_dump_line(b"  - ", group))
    lines.append(b"rules:\n")
    for rule in (*_PRIVATE_RULES, f"MATCH,{select_name}"):
        lines.append(_dump_line(b"  - ", rule))
    write(_yaml_safe(b"".join(lines)))
    return skipped


def _yaml_safe(chunk: bytes) -> bytes:
    """Escape the YAML-unsafe characters in a chunk of whole UTF-8 lines."""
    if _YAML_UNSAFE_BYTES_RE.search(chunk):
        return chunk.decode("utf-8").translate(_YAML_ESCAPES).encode("utf-8")
    return chunk
