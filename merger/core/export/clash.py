"""Clash.Meta (mihomo) config export.

Each proxy is written as one JSON object per line (`  - {"name": ...}`). JSON is valid YAML 1.2
and mihomo reads it, and orjson writes it about 70 times faster than PyYAML's dumper, which
matters for subscriptions of 100k nodes.
"""

from __future__ import annotations

import gc
import re
from collections import Counter
from collections.abc import Iterable

import orjson

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
_YAML_UNSAFE_RE = re.compile("[\x7f-\x9f\u2028\u2029\ufffe\uffff]")
_YAML_ESCAPES = {code: f"\\u{code:04x}" for code in (*range(0x7F, 0xA0), 0x2028, 0x2029, 0xFFFE, 0xFFFF)}


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
    # The cyclic garbage collector would run dozens of times while 100k dicts are built, none of
    # which can form cycles, and that costs about a third of the run time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _render(nodes)
    finally:
        if gc_was_enabled:
            gc.enable()


def _render(nodes: Iterable[Node]) -> tuple[str, Counter[str]]:
    skipped: Counter[str] = Counter()
    kept: list[Node] = []
    proxies: list[dict] = []
    for node in nodes:
        try:
            proxies.append(node_to_clash(node, ""))
        except UnsupportedNode as error:
            skipped[str(error)] += 1
            continue
        kept.append(node)

    names = _avoid_builtin_names(unique_names(kept))
    select_name, auto_name, fallback_name = _group_names(set(names))

    lines: list[bytes] = [
        b"mixed-port: 7890\n",
        b"allow-lan: false\n",
        b"mode: rule\n",
        b"log-level: info\n",
        b"ipv6: true\n",
        b"proxies:\n",
    ]
    proxy_lines: list[bytes] = []
    kept_names: list[str] = []
    for proxy, name in zip(proxies, names, strict=True):
        proxy["name"] = name
        try:
            proxy_lines.append(b"  - " + orjson.dumps(proxy) + b"\n")
        except orjson.JSONEncodeError:
            # Lone surrogates (from broken \u escapes in a source) cannot be written as UTF-8.
            skipped["text that is not valid Unicode"] += 1
            continue
        kept_names.append(name)
    if proxy_lines:
        lines.extend(proxy_lines)
    else:
        lines[-1] = b"proxies: []\n"

    # url-test and fallback groups need at least one member, so an empty export falls back to
    # DIRECT there.
    members = kept_names or ["DIRECT"]
    lines.append(b"proxy-groups:\n")
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

    text = b"".join(lines).decode("utf-8")
    if _YAML_UNSAFE_RE.search(text):
        text = text.translate(_YAML_ESCAPES)
    return text, skipped
