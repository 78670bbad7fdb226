"""Helpers shared by the share-link parsers: URL splitting, query decoding and validation.

`urllib.parse` is avoided on the hot path because real links break its assumptions (raw spaces,
`&amp;` separators, a `/` before `?`) and because splitting by hand is several times faster, which
matters at a million links per merge.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote

from ..errors import LinkError

_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$"
)
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")


@dataclass(slots=True)
class SplitLink:
    """The parts of `scheme://userinfo@host:port/path?query#fragment`, still percent-encoded."""

    scheme: str
    userinfo: str
    host: str
    port: str
    path: str
    query: str
    fragment: str


def split_link(text: str) -> SplitLink:
    """Split a share link into its parts without decoding them.

    Tolerates what real subscriptions contain: a missing path before `?`, a `/` before `?`,
    `&amp;` instead of `&` (left in the query for `parse_query`), and raw non-ASCII text.
    Raises LinkError when there is no `scheme://`.
    """
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme:
        raise LinkError("missing scheme:// prefix")
    fragment = ""
    hash_index = rest.find("#")
    if hash_index >= 0:
        fragment = rest[hash_index + 1 :]
        rest = rest[:hash_index]
    query = ""
    query_index = rest.find("?")
    if query_index >= 0:
        query = rest[query_index + 1 :]
        rest = rest[:query_index]
    path = ""
    slash_index = rest.find("/")
    if slash_index >= 0:
        path = rest[slash_index:]
        rest = rest[:slash_index]
    userinfo = ""
    at_index = rest.rfind("@")
    if at_index >= 0:
        userinfo = rest[:at_index]
        rest = rest[at_index + 1 :]
    host, port = split_host_port(rest)
    return SplitLink(scheme.lower(), userinfo, host, port, path, query, fragment)


def split_body(text: str) -> tuple[str, str, str]:
    """Split a link after its `scheme://` into (body, query, fragment), all still encoded.

    Parsers use this instead of `split_link` when the body itself may contain '/' or '@', as ss
    and hysteria2 credentials do, and find the host themselves.
    """
    body = text.partition("://")[2]
    fragment = ""
    hash_index = body.find("#")
    if hash_index >= 0:
        fragment = body[hash_index + 1 :]
        body = body[:hash_index]
    query = ""
    query_index = body.find("?")
    if query_index >= 0:
        query = body[query_index + 1 :]
        body = body[:query_index]
    return body, query, fragment


def split_host_port(hostport: str) -> tuple[str, str]:
    """Split `host:port` or `[v6]:port`; the port is '' when absent. Brackets are removed."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise LinkError(f"invalid IPv6 host {hostport!r}: missing ']'")
        host = hostport[1:end]
        rest = hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise LinkError(f"invalid text {rest!r} after IPv6 host")
        return host, rest[1:]
    host, sep, port = hostport.rpartition(":")
    if not sep:
        return port, ""
    return host, port


# Escapes of ASCII characters, upper and lower case hex, to their character.
_ASCII_ESCAPES = {
    high + low: chr(int(high + low, 16)) for high in "01234567" for low in "0123456789abcdefABCDEF"
}


def percent_decode(value: str) -> str:
    """Decode `%XX` escapes exactly as `urllib.parse.unquote` does, but faster.

    Escapes of ASCII characters (`%2F`, `%3D`...) are looked up in a table, which took a third of
    unquote's time on short query values (Python 3.11). Text with any other escape (UTF-8
    sequences, invalid `%zz`) goes to `unquote`, which decodes UTF-8 with errors="replace" and
    keeps invalid escapes as they are.
    """
    if "%" not in value:
        return value
    parts = value.split("%")
    result = [parts[0]]
    for part in parts[1:]:
        char = _ASCII_ESCAPES.get(part[:2])
        if char is None:
            return unquote(value)
        result.append(char)
        result.append(part[2:])
    return "".join(result)


def parse_query(query: str) -> dict[str, str]:
    """Decode a query string into a dict with lower-cased keys.

    `&amp;` separators (HTML-escaped links copied from web pages) count as `&`. A key without a
    value maps to ''. When a key repeats, the first value wins, as in v2rayN. `+` stays a plus,
    because share links percent-encode spaces and base64 values contain `+`.
    """
    if not query:
        return {}
    if "&amp;" in query:
        query = query.replace("&amp;", "&")
    result: dict[str, str] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if "%" in key:
            key = percent_decode(key)
        key = key.strip().lower()
        if key and key not in result:
            result[key] = percent_decode(value) if "%" in value else value
    return result


def decode_name(fragment: str) -> str:
    """Decode a `#fragment` remark: percent-decoding as UTF-8 with raw UTF-8 left as it is."""
    if "%" in fragment:
        fragment = unquote(fragment, errors="replace")
    return fragment.strip()


def encode_name(name: str) -> str:
    """Percent-encode a remark for a `#fragment`, keeping emoji readable by clients as UTF-8."""
    return percent_encode(name, "")


def encode_component(value: str) -> str:
    return percent_encode(value, "")


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_ENCODE_TABLES: dict[str, dict[int, str]] = {}


def percent_encode(value: str, safe: str = "/") -> str:
    """Return `urllib.parse.quote(value, safe=safe)` for a str, computed with str.translate.

    The UTF-8 bytes are viewed as Latin-1 text, so that one translate call maps every byte to
    itself or to its `%XX` escape. Like quote, it raises UnicodeEncodeError for lone surrogates.
    """
    table = _ENCODE_TABLES.get(safe)
    if table is None:
        kept = _UNRESERVED | frozenset(safe.encode("ascii"))
        table = {byte: f"%{byte:02X}" for byte in range(256) if byte not in kept}
        _ENCODE_TABLES[safe] = table
    if value.isascii():
        return value.translate(table)
    return value.encode("utf-8").decode("latin-1").translate(table)


def build_query(params: dict[str, object]) -> str:
    """Encode query parameters in the given order, leaving out empty values."""
    parts = []
    for key, value in params.items():
        if value is None or value == "" or value is False:
            continue
        if value is True:
            value = "1"
        parts.append(f"{key}={percent_encode(str(value), ',')}")
    return "&".join(parts)


def check_host(host: str) -> str:
    """Return the host when it is an IP address or a valid DNS name; raise LinkError otherwise."""
    if not host:
        raise LinkError("missing host")
    if _HOSTNAME_RE.match(host):
        return host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise LinkError(f"invalid host {host!r}") from None
    return host


def check_port(port: str | int) -> int:
    """Return the port as an int in 1-65535; raise LinkError naming the value otherwise.

    Booleans, fractions and non-ASCII digits are rejected although Python's int() accepts them,
    because `port: true` in YAML or a fullwidth digit is a broken entry, not port 1.
    """
    if isinstance(port, bool) or isinstance(port, float) and not port.is_integer():
        raise LinkError(f"invalid port {port!r}: not a whole number")
    if isinstance(port, str) and not (port.isascii() and port.strip().isdigit()):
        raise LinkError(f"invalid port {port[:20]!r}: not a number")
    try:
        number = int(port)
    except (TypeError, ValueError, OverflowError):
        raise LinkError(f"invalid port {str(port)[:20]!r}: not a number") from None
    if not 1 <= number <= 65535:
        raise LinkError(f"invalid port {number}: must be 1-65535")
    return number


def check_uuid(value: str, protocol: str) -> str:
    """Return a vmess/vless/tuic user id.

    A standard UUID is lower-cased, and 32 hex digits without dashes get the dashes added. Xray
    also accepts any other string of 1-30 characters and maps it to a UUIDv5, so such ids are kept
    as they are. Anything else raises LinkError.
    """
    if _UUID_RE.match(value):
        return value.lower()
    # Xray and v2ray-core also parse the 32 hex digits without dashes as the same UUID.
    if len(value) == 32 and _HEX_RE.match(value):
        value = value.lower()
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    if value and len(value) <= 30 and value.isprintable() and " " not in value:
        return value
    if not value:
        raise LinkError(f"missing {protocol} user id (UUID)")
    raise LinkError(f"invalid {protocol} user id {value[:40]!r}: not a UUID")


def b64decode_text(data: str) -> str:
    """Decode standard or URL-safe base64, padded or not, into UTF-8 text.

    Raises LinkError when the data is not base64 or not UTF-8.
    """
    data = data.strip().replace("\r", "").replace("\n", "")
    if "-" in data or "_" in data:
        data = data.replace("-", "+").replace("_", "/")
    data += "=" * (-len(data) % 4)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise LinkError("invalid base64 payload") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LinkError("base64 payload is not UTF-8 text") from None


def b64encode_text(text: str, urlsafe: bool = False, padding: bool = True) -> str:
    raw = text.encode("utf-8")
    encoded = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
    result = encoded.decode("ascii")
    return result if padding else result.rstrip("=")


def truthy(value: object) -> bool:
    """Interpret the boolean spellings seen in links: 1, true, yes, on (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def split_alpn(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def normalize_network(value: str) -> str:
    """Map transport spellings to the names in `node.NETWORKS`; raise LinkError for unknown ones."""
    network = (value or "tcp").strip().lower()
    network = _NETWORK_ALIASES.get(network, network)
    if network not in _KNOWN_NETWORKS:
        raise LinkError(f"unsupported transport {value!r}")
    return network


_NETWORK_ALIASES = {
    "raw": "tcp",
    "http": "h2",
    "splithttp": "xhttp",
    "": "tcp",
    "none": "tcp",
    "websocket": "ws",
    "gun": "grpc",
}
_KNOWN_NETWORKS = frozenset(("tcp", "ws", "grpc", "h2", "httpupgrade", "xhttp", "kcp", "quic"))
