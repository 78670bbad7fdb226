"""Detect a subscription body's format by its content and parse it into nodes.

Formats: plain link lists, base64 bodies (nested too), Clash and Clash.Meta YAML, sing-box JSON,
SIP008 JSON, v2ray/Xray JSON configs and JSON documents whose string values are share links.
File names and Content-Type headers are not trusted, because free subscription hosts serve
everything as text/plain or application/octet-stream.
"""

from __future__ import annotations

import base64
import binascii
import operator
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import starmap
from typing import Any

import orjson
import yaml

from .bulk import ChildFailed, ForkedCall, can_fork, paused_gc
from .errors import DecodeError, LinkError
from .links import PARSERS
from .node import Node

# Nested base64 (a base64 body whose text is again base64) is seen in the wild, but more than a
# few levels means junk, not a subscription.
MAX_NESTING = 3
_LINK_START_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{1,15}://", re.MULTILINE)
_CLASH_RE = re.compile(r"^(proxies|Proxy)\s*:", re.MULTILINE)
_CLASH_KEYS = ("proxies", "Proxy")
_CLASH_LINE_KEYS = ("\nproxies", "\nProxy")
_HTML_RE = re.compile(r"^\s*(<!doctype html|<html|<head|<body|<\?xml|<!--)", re.IGNORECASE)
_BASE64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_\r\n\t ")
_COMMENT_PREFIXES = ("#", "//", ";")


@dataclass(slots=True)
class Rejected:
    """An entry that did not become a node: its 1-based line (or item) number and the reason."""

    line: int
    reason: str
    text: str = ""


@dataclass(slots=True)
class ParsedBody:
    """Result of parsing one subscription body."""

    format: str
    nodes: list[Node] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    # Entries that looked like proxies (links, Clash proxies, outbounds); comments, blank lines and
    # non-proxy outbounds are not counted.
    entries: int = 0
    # Rejection counts by reason, with the value named in the reason left out so that they group.
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def invalid(self) -> int:
        return sum(self.reasons.values())

    def reject(self, line: int, reason: str, text: str = "") -> None:
        self.reasons[_reason_key(reason)] += 1
        self.rejected.append(Rejected(line, reason, text[:200]))


def parse_body(data: bytes | str) -> ParsedBody:
    """Detect the format of a subscription body and parse every entry in it.

    Raises DecodeError when the body is empty, an HTML page, or in no known format: such a body
    must be reported, never read as a subscription with zero nodes.
    """
    if isinstance(data, bytes):
        lines = _split_link_bytes(data)
        if lines is not None:
            return _parse_line_list(lines, "links", decode=True)
    text = data.decode("utf-8-sig", errors="replace") if isinstance(data, bytes) else data.lstrip("\ufeff")
    return _parse_text(text, depth=0)


_LINK_START_BYTES_RE = re.compile(rb"^[A-Za-z][A-Za-z0-9+.-]{1,15}://", re.MULTILINE)
# Line breaks of str.splitlines that bytes.splitlines does not split on: VT, FF, FS, GS, RS, NEL,
# U+2028 and U+2029, as UTF-8. Eight substring searches scan 40 MB several times faster than one
# regex with these alternatives.
_OTHER_LINE_BREAKS = (
    b"\x0b",
    b"\x0c",
    b"\x1c",
    b"\x1d",
    b"\x1e",
    b"\xc2\x85",
    b"\xe2\x80\xa8",
    b"\xe2\x80\xa9",
)
_BYTE_CLASH_KEYS = (b"proxies", b"Proxy")
_BYTE_CLASH_LINE_KEYS = (b"\nproxies", b"\nProxy")


def _split_link_bytes(data: bytes) -> list[bytes] | None:
    """Split a plain link-list body into its lines without decoding it whole; None if unsure.

    Decoding a large body at once makes one string of 4 bytes per character as soon as a single
    emoji occurs, which for a million links is about a gigabyte. Returns lines only when
    `_parse_text` would take the link-list branch with the same lines: the body starts with a
    letter, has no Clash key line, has a `scheme://` line and no line break that only
    str.splitlines splits on. Lines decode one by one to the same text, because a newline byte never
    belongs to a UTF-8 sequence, so the replacement of invalid bytes stops at it either way.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    stripped = data.strip()
    if not stripped[:1].isalpha():
        return None
    if stripped.startswith(_BYTE_CLASH_KEYS) or any(key in stripped for key in _BYTE_CLASH_LINE_KEYS):
        return None
    if not _LINK_START_BYTES_RE.search(stripped) or any(brk in stripped for brk in _OTHER_LINE_BREAKS):
        return None
    return stripped.splitlines()


def _parse_text(text: str, depth: int) -> ParsedBody:
    stripped = text.strip()
    if not stripped:
        raise DecodeError("empty body")
    if _HTML_RE.match(stripped):
        raise DecodeError("HTML page, not a subscription (check the URL or whether the site needs a login)")

    first = stripped[0]
    if first in "{[":
        try:
            document = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            document = None
        if document is not None:
            return _parse_json(document)

    # The substring test skips the regex scan of the whole body (about 0.2 s for 40 MB of links)
    # when no line can start with a Clash key.
    maybe_clash = stripped.startswith(_CLASH_KEYS) or any(key in stripped for key in _CLASH_LINE_KEYS)
    if maybe_clash and _CLASH_RE.search(stripped):
        return _parse_clash_yaml(stripped)

    if _LINK_START_RE.search(stripped[:4096]) or _LINK_START_RE.search(stripped):
        return parse_lines(stripped.splitlines(), "links")

    decoded = _try_base64(stripped)
    if decoded is not None:
        if depth >= MAX_NESTING:
            raise DecodeError(f"base64 nested more than {MAX_NESTING} levels deep")
        result = _parse_text(decoded, depth + 1)
        if result.format == "links":
            result.format = "base64"
        return result

    preview = stripped[:40].replace("\n", " ")
    raise DecodeError(f"not a recognised subscription format (starts with {preview!r})")


def parse_lines(lines: Iterable[str], format_name: str) -> ParsedBody:
    """Parse a list of share links, one per line; blank and comment lines are skipped.

    A list of at least PARALLEL_MIN_LINES lines is split between this process and a forked
    child where the machine has a second core. The result is the same either way.
    """
    if isinstance(lines, list):
        return _parse_line_list(lines, format_name, decode=False)
    with paused_gc():
        result = ParsedBody(format_name)
        _parse_into(result, lines, 1)
        return result


def _parse_line_list(lines: list[str] | list[bytes], format_name: str, decode: bool) -> ParsedBody:
    """Parse a list of lines, decoding each from UTF-8 first when `decode` is set."""
    with paused_gc():
        if len(lines) >= PARALLEL_MIN_LINES and can_fork():
            return _parse_lines_forked(lines, format_name, decode)
        result = ParsedBody(format_name)
        _parse_into(result, _decoded(lines, 0, len(lines), decode), 1)
        return result


_decode_line = operator.methodcaller("decode", "utf-8", "replace")


def _decoded(lines: list[str] | list[bytes], start: int, stop: int, decode: bool) -> Iterable[str]:
    part = lines[start:stop] if start or stop < len(lines) else lines
    return map(_decode_line, part) if decode else part  # type: ignore[return-value]


# Line lists at least this long are parsed by two processes. Below it the fork and the transfer
# of the child's nodes cost more than they save.
PARALLEL_MIN_LINES = 20_000
# Share of the lines the parent parses itself. It is above one half because the child also
# pickles its nodes, while the parent only rebuilds them (about 1.5 us a node against 4 us).
PARENT_SHARE = 0.55


def _parse_lines_forked(lines: list[str] | list[bytes], format_name: str, decode: bool) -> ParsedBody:
    split = int(len(lines) * PARENT_SHARE)
    try:
        child = ForkedCall(_parse_compact, lines, split, decode)
    except OSError:
        child = None
    result = ParsedBody(format_name)
    _parse_into(result, _decoded(lines, 0, split, decode), 1)
    compact = None
    if child is not None:
        try:
            compact = child.result()
        except ChildFailed:
            compact = None
    if compact is None:
        _parse_into(result, _decoded(lines, split, len(lines), decode), split + 1)
        return result
    node_values, rejected, entries, reasons = compact
    result.nodes.extend(starmap(Node, node_values))
    result.rejected.extend(starmap(Rejected, rejected))
    result.entries += entries
    result.reasons.update(reasons)
    return result


def _parse_compact(
    lines: list[str] | list[bytes], start: int, decode: bool
) -> tuple[list[tuple], list[tuple], int, dict[str, int]]:
    """Parse lines[start:] in a forked child and return the result as plain tuples.

    Tuples of field values pickle several times faster than Node objects, whose pickled form is
    a dict of field names per node.
    """
    result = ParsedBody("")
    _parse_into(result, _decoded(lines, start, len(lines), decode), start + 1)
    node_values = list(map(_node_values, result.nodes))
    rejected = [(item.line, item.reason, item.text) for item in result.rejected]
    return node_values, rejected, result.entries, dict(result.reasons)


_node_values = operator.attrgetter(*Node.__slots__)  # type: ignore[attr-defined]


def _parse_into(result: ParsedBody, lines: Iterable[str], first_number: int) -> None:
    nodes = result.nodes
    parsers = PARSERS
    for number, raw_line in enumerate(lines, first_number):
        line = raw_line.strip()
        if not line or line.startswith(_COMMENT_PREFIXES):
            continue
        result.entries += 1
        # Databases reject NUL in text (PostgreSQL) and no client accepts it in a link.
        if "\x00" in line or "%00" in line:
            result.reject(number, "contains a NUL character", line.replace("\x00", ""))
            continue
        scheme, sep, _ = line.partition("://")
        parser = parsers.get(scheme) or parsers.get(scheme.lower()) if sep else None
        if parser is None:
            result.reject(number, _unparsable_line_reason(line, scheme, sep), line)
            continue
        try:
            nodes.append(parser(line))
        except LinkError as error:
            result.reject(number, str(error), line)


def _unparsable_line_reason(line: str, scheme: str, sep: str) -> str:
    if sep:
        return f"unsupported scheme {scheme[:20]!r}"
    return "not a share link"


_QUOTED_RE = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER_RE = re.compile(r"\d+")


def _reason_key(reason: str) -> str:
    """Group reasons that only differ in the values they name: "invalid port N: must be N-N"."""
    return _NUMBER_RE.sub("N", _QUOTED_RE.sub("'…'", reason))


def _try_base64(text: str) -> str | None:
    """Decode a whole body as base64 (standard or URL-safe, padded or not, wrapped); None if not."""
    compact = "".join(text.split())
    if len(compact) < 8:
        return None
    raw_bytes = compact.encode("ascii", errors="replace")
    if not set(raw_bytes) <= _BASE64_CHARS:
        return None
    compact = compact.rstrip("=")
    if "-" in compact or "_" in compact:
        compact = compact.replace("-", "+").replace("_", "/")
    # Some collectors concatenate several padded base64 chunks; decoding them one by one keeps
    # the text that a single decode would garble.
    chunks = [chunk for chunk in compact.split("=") if chunk] if "=" in compact else [compact]
    parts = []
    for chunk in chunks:
        chunk += "=" * (-len(chunk) % 4)
        try:
            parts.append(base64.b64decode(chunk, validate=True))
        except (binascii.Error, ValueError):
            return None
    try:
        decoded = b"".join(parts).decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not decoded.strip() or _has_control_characters(decoded[:4096]):
        return None
    return decoded


def _has_control_characters(text: str) -> bool:
    """True for binary junk. Format characters such as the zero-width joiner in emoji are text."""
    return any(ord(char) < 32 and char not in "\r\n\t" or char == "\x7f" for char in text)


# --- Clash YAML -------------------------------------------------------------------------------


def _parse_clash_yaml(text: str) -> ParsedBody:
    try:
        document = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise DecodeError(f"invalid YAML{where}: {getattr(error, 'problem', None) or error}") from None
    if not isinstance(document, dict):
        raise DecodeError("YAML document is not a mapping with a proxies list")
    proxies = document.get("proxies", document.get("Proxy"))
    if proxies is None:
        proxies = []
    if not isinstance(proxies, list):
        raise DecodeError("Clash 'proxies' is not a list")
    return _parse_clash_proxies(proxies)


def _parse_clash_proxies(proxies: list[Any]) -> ParsedBody:
    from .clash import node_from_clash

    result = ParsedBody("clash")
    for number, proxy in enumerate(proxies, 1):
        result.entries += 1
        if not isinstance(proxy, dict):
            # The type name, not repr(): a YAML alias bomb makes repr() expand billions of nodes.
            result.reject(number, f"Clash proxy entry is a {type(proxy).__name__}, not a mapping")
            continue
        proxy = _resolve_merge_keys(proxy)
        try:
            result.nodes.append(node_from_clash(proxy))
        except LinkError as error:
            name = proxy.get("name")
            result.reject(number, str(error), name if isinstance(name, str) else "")
    return result


def _resolve_merge_keys(mapping: dict[str, Any]) -> dict[str, Any]:
    """Apply `<<` merge keys that a YAML loader left in place (PyYAML resolves them itself)."""
    merged = mapping.get("<<")
    if merged is None:
        return mapping
    base: dict[str, Any] = {}
    for item in merged if isinstance(merged, list) else [merged]:
        if isinstance(item, dict):
            base.update(item)
    base.update({key: value for key, value in mapping.items() if key != "<<"})
    return base


# --- JSON documents ---------------------------------------------------------------------------


def _parse_json(document: Any) -> ParsedBody:
    if isinstance(document, dict):
        if "outbounds" in document or "endpoints" in document:
            outbounds = document.get("outbounds") or []
            if _looks_like_v2ray(outbounds):
                return _parse_v2ray(document)
            return _parse_singbox(outbounds, document.get("endpoints") or [])
        if isinstance(document.get("servers"), list) and _looks_like_sip008(document["servers"]):
            return _parse_sip008(document["servers"])
        if isinstance(document.get("proxies"), list):
            return _parse_clash_proxies(document["proxies"])
        if "type" in document and "server" in document:
            return _parse_singbox([document], [])
        if "protocol" in document and "settings" in document:
            return _parse_v2ray({"outbounds": [document]})
    if isinstance(document, list) and document:
        if all(isinstance(item, dict) for item in document):
            if _looks_like_sip008(document):
                return _parse_sip008(document)
            if _looks_like_v2ray(document):
                return _parse_v2ray({"outbounds": document})
            if all("type" in item for item in document):
                return _parse_singbox(document, [])
    # Other strings in such documents are dates, titles and counters, not entries.
    links = [text for text in _string_leaves(document) if "://" in text]
    if links:
        return parse_lines(links, "json-links")
    raise DecodeError("JSON document without proxies: no outbounds, servers, proxies or share links")


def _string_leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _string_leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _string_leaves(item)


def _looks_like_v2ray(outbounds: Any) -> bool:
    return isinstance(outbounds, list) and any(
        isinstance(item, dict) and "protocol" in item and "type" not in item for item in outbounds
    )


def _looks_like_sip008(servers: list[Any]) -> bool:
    return any(isinstance(item, dict) and "server" in item and "method" in item for item in servers)


def _parse_singbox(outbounds: list[Any], endpoints: list[Any]) -> ParsedBody:
    from .singbox import node_from_singbox

    result = ParsedBody("singbox")
    for number, outbound in enumerate([*outbounds, *endpoints], 1):
        if not isinstance(outbound, dict):
            result.entries += 1
            result.reject(number, f"sing-box outbound is a {type(outbound).__name__}, not an object")
            continue
        try:
            node = node_from_singbox(outbound)
        except LinkError as error:
            result.entries += 1
            result.reject(number, str(error), str(outbound.get("tag", "")))
            continue
        if node is not None:
            result.entries += 1
            result.nodes.append(node)
    return result


def _parse_v2ray(document: dict[str, Any]) -> ParsedBody:
    from .v2ray_json import nodes_from_v2ray_config

    nodes, reasons = nodes_from_v2ray_config(document)
    result = ParsedBody("v2ray", nodes=nodes, entries=len(nodes) + len(reasons))
    for number, reason in enumerate(reasons, 1):
        result.reject(number, reason)
    return result


def _parse_sip008(servers: list[Any]) -> ParsedBody:
    """SIP008 online configuration: {"version": 1, "servers": [{server, server_port, method, ...}]}."""
    from .links.common import check_host, check_port
    from .links.shadowsocks import check_ss_password, normalize_ss_cipher, parse_plugin

    result = ParsedBody("sip008")
    for number, server in enumerate(servers, 1):
        result.entries += 1
        if not isinstance(server, dict):
            result.reject(number, "SIP008 server is not an object")
            continue
        try:
            method = normalize_ss_cipher(str(server.get("method", "")))
            password = check_ss_password(method, str(server.get("password") or ""))
            node = Node(
                protocol="ss",
                host=check_host(str(server.get("server", ""))),
                port=check_port(server.get("server_port", "")),
                name=str(server.get("remarks") or "").strip(),
                password=password,
                method=method,
            )
            plugin = str(server.get("plugin") or "")
            if plugin:
                options = str(server.get("plugin_opts") or "")
                name, parsed_options = parse_plugin(f"{plugin};{options}" if options else plugin)
                node.extra["plugin"] = name
                node.extra["plugin_opts"] = parsed_options
        except LinkError as error:
            result.reject(number, str(error), str(server.get("remarks", "")))
            continue
        result.nodes.append(node)
    return result
