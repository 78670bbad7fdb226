"""Share links of the protocols with a flat URL form: WireGuard, SOCKS, HTTP(S) proxies and AnyTLS.

wireguard://PRIVATE_KEY@host:port?publickey=..&reserved=1,2,3&address=10.0.0.2/32&mtu=1280#name
socks5://user:pass@host:port#name         (also socks://BASE64(user:pass)@host:port, v2rayN style)
https://user:pass@host:port?sni=..#name   (http:// without TLS)
anytls://password@host:port?sni=..&insecure=1#name
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from urllib.parse import unquote

from ..errors import LinkError
from ..node import Node
from .common import (
    b64decode_text,
    build_query,
    check_host,
    check_port,
    decode_name,
    encode_component,
    encode_name,
    parse_query,
    split_alpn,
    split_link,
    truthy,
)

# Query keys seen in the wild for each WireGuard value, in order of preference. parse_query has
# already lower-cased the keys, so `publicKey` arrives as `publickey`.
_WG_PUBLIC_KEY = ("publickey", "public_key", "peer_public_key", "pbk")
_WG_PRIVATE_KEY = ("privatekey", "private_key", "secretkey", "secret_key")
_WG_PRE_SHARED_KEY = ("presharedkey", "pre_shared_key", "preshared_key", "psk")
_WG_ADDRESS = ("address", "ip", "local_address", "localaddress")

_SOCKS_VERSIONS = {"socks": "5", "socks5": "5", "socks5h": "5", "socks4": "4", "socks4a": "4a"}
_SOCKS_SCHEMES = {"5": "socks5", "4": "socks4", "4a": "socks4a"}


def _first(query: dict[str, str], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = query.get(key)
        if value:
            return value
    return ""


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _name_suffix(name: str) -> str:
    return f"#{encode_name(name)}" if name else ""


# --- WireGuard -------------------------------------------------------------------------------


def parse_reserved(value: object) -> list[int]:
    """Return WireGuard reserved bytes from `[1, 2, 3]`, "1,2,3" or the base64 of three bytes."""
    if isinstance(value, (list, tuple)):
        parts: list[object] = list(value)
    else:
        text = str(value).strip().strip("[]")
        if "," in text or text.isdigit():
            parts = [part.strip() for part in text.split(",")]
        else:
            padded = text.replace("-", "+").replace("_", "/")
            padded += "=" * (-len(padded) % 4)
            try:
                parts = list(base64.b64decode(padded, validate=True))
            except (binascii.Error, ValueError):
                raise LinkError(f"invalid wireguard reserved {text!r}: expected 'a,b,c' or base64") from None
    try:
        numbers = [int(part) for part in parts]  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise LinkError(f"invalid wireguard reserved {value!r}: expected three numbers 0-255") from None
    if len(numbers) != 3 or not all(0 <= number <= 255 for number in numbers):
        raise LinkError(f"invalid wireguard reserved {value!r}: expected three numbers 0-255")
    return numbers


def parse_local_address(value: object) -> list[str]:
    """Return interface addresses as CIDR strings; a bare IPv4 gets /32 and a bare IPv6 /128.

    Accepts a list or a comma-separated string. Each address is checked but kept as written, as
    the sing-box reader does, so both formats give equal nodes.
    """
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    result: list[str] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            ipaddress.ip_interface(text)
        except ValueError:
            raise LinkError(f"invalid wireguard address {text!r}: expected an IP or CIDR") from None
        if "/" not in text:
            text += "/128" if ":" in text else "/32"
        result.append(text)
    return result


def parse_wireguard(text: str) -> Node:
    parts = split_link(text)
    query = parse_query(parts.query)
    private_key = unquote(parts.userinfo) if parts.userinfo else _first(query, _WG_PRIVATE_KEY)
    if not private_key:
        raise LinkError("missing wireguard private key")
    public_key = _first(query, _WG_PUBLIC_KEY)
    if not public_key:
        raise LinkError("missing wireguard peer public key (publickey=)")

    extra: dict[str, object] = {"private_key": private_key, "public_key": public_key}
    pre_shared_key = _first(query, _WG_PRE_SHARED_KEY)
    if pre_shared_key:
        extra["pre_shared_key"] = pre_shared_key
    reserved = query.get("reserved")
    if reserved:
        extra["reserved"] = parse_reserved(reserved)
    address = _first(query, _WG_ADDRESS)
    if address:
        local_address = parse_local_address(address)
        if local_address:
            extra["local_address"] = local_address
    mtu = query.get("mtu")
    if mtu:
        try:
            extra["mtu"] = int(mtu)
        except ValueError:
            raise LinkError(f"invalid wireguard mtu {mtu!r}: not a number") from None
    return Node(
        protocol="wireguard",
        host=check_host(parts.host),
        port=check_port(parts.port),
        name=decode_name(parts.fragment),
        extra=extra,
    )


def serialize_wireguard(node: Node) -> str:
    extra = node.extra
    reserved = extra.get("reserved")
    local_address = extra.get("local_address")
    query = build_query(
        {
            "publickey": extra.get("public_key", ""),
            "presharedkey": extra.get("pre_shared_key", ""),
            "reserved": ",".join(str(number) for number in reserved) if reserved else "",
            "address": ",".join(local_address) if local_address else "",
            "mtu": extra.get("mtu", ""),
        }
    )
    private_key = encode_component(extra.get("private_key", ""))
    return f"wireguard://{private_key}@{_format_host(node.host)}:{node.port}?{query}{_name_suffix(node.name)}"


# --- SOCKS and HTTP proxies ------------------------------------------------------------------


def split_credentials(userinfo: str) -> tuple[str, str]:
    """Return (username, password) from `user:pass` (percent-encoded) or base64 of `user:pass`.

    Base64 never contains ':', so userinfo with a colon is the plain form. Without one it is
    taken as base64 only when it decodes to text containing ':'; otherwise it is a bare username.
    """
    if not userinfo:
        return "", ""
    if ":" in userinfo:
        username, _, password = userinfo.partition(":")
        return unquote(username), unquote(password)
    decoded_userinfo = unquote(userinfo)
    try:
        decoded = b64decode_text(decoded_userinfo)
    except LinkError:
        return decoded_userinfo, ""
    if ":" in decoded:
        username, _, password = decoded.partition(":")
        return username, password
    return decoded_userinfo, ""


def _join_credentials(node: Node) -> str:
    # The colon is written even when the password is empty, so that a username which happens to
    # be valid base64 of "x:y" is not read back as the v2rayN form.
    if not node.username and not node.password:
        return ""
    return f"{encode_component(node.username)}:{encode_component(node.password)}@"


def _read_tls(node: Node, query: dict[str, str]) -> None:
    """Fill sni, alpn, fingerprint and insecure of a TLS node from link query parameters."""
    node.sni = query.get("sni") or query.get("peer") or query.get("servername") or ""
    node.alpn = split_alpn(query.get("alpn", ""))
    node.client_fingerprint = query.get("fp", "")
    node.insecure = truthy(query.get("insecure") or query.get("allowinsecure") or "")


def _tls_query(node: Node) -> dict[str, object]:
    return {
        "sni": node.sni,
        "alpn": ",".join(node.alpn),
        "fp": node.client_fingerprint,
        "insecure": node.insecure,
    }


def _parse_proxy(text: str, protocol: str, tls: bool) -> Node:
    parts = split_link(text)
    if parts.path not in ("", "/"):
        raise LinkError(f"{parts.scheme} link with path {parts.path[:40]!r} is a web address, not a proxy")
    if not parts.port:
        raise LinkError(f"missing port in {parts.scheme} proxy link")
    username, password = split_credentials(parts.userinfo)
    query = parse_query(parts.query)
    node = Node(
        protocol=protocol,
        host=check_host(parts.host),
        port=check_port(parts.port),
        name=decode_name(parts.fragment),
        username=username,
        password=password,
    )
    if tls or query.get("security") == "tls" or truthy(query.get("tls", "")):
        node.security = "tls"
        _read_tls(node, query)
    return node


def parse_socks(text: str) -> Node:
    scheme = text[: text.find("://")].lower()
    node = _parse_proxy(text, "socks", tls=False)
    # The version is always stored, "5" included, as the Clash and sing-box readers do.
    node.extra = {"version": _SOCKS_VERSIONS.get(scheme, "5")}
    return node


def serialize_socks(node: Node) -> str:
    version = str(node.extra.get("version") or "5")
    scheme = _SOCKS_SCHEMES.get(version)
    if scheme is None:
        raise LinkError(f"unknown socks version {version!r}: expected 5, 4 or 4a")
    query = build_query({"security": "tls", **_tls_query(node)}) if node.security == "tls" else ""
    return (
        f"{scheme}://{_join_credentials(node)}{_format_host(node.host)}:{node.port}"
        f"{'?' + query if query else ''}{_name_suffix(node.name)}"
    )


def parse_http(text: str) -> Node:
    return _parse_proxy(text, "http", tls=False)


def parse_https(text: str) -> Node:
    return _parse_proxy(text, "http", tls=True)


def serialize_http(node: Node) -> str:
    tls = node.security == "tls"
    query = build_query(_tls_query(node)) if tls else ""
    return (
        f"{'https' if tls else 'http'}://{_join_credentials(node)}{_format_host(node.host)}:{node.port}"
        f"{'?' + query if query else ''}{_name_suffix(node.name)}"
    )


# --- AnyTLS ----------------------------------------------------------------------------------


def parse_anytls(text: str) -> Node:
    parts = split_link(text)
    password = unquote(parts.userinfo)
    if not password:
        raise LinkError("missing anytls password")
    query = parse_query(parts.query)
    node = Node(
        protocol="anytls",
        host=check_host(parts.host),
        port=check_port(parts.port),
        name=decode_name(parts.fragment),
        password=password,
        security="tls",
    )
    _read_tls(node, query)
    return node


def serialize_anytls(node: Node) -> str:
    query = build_query(_tls_query(node))
    return (
        f"anytls://{encode_component(node.password)}@{_format_host(node.host)}:{node.port}"
        f"{'?' + query if query else ''}{_name_suffix(node.name)}"
    )


PARSERS = {
    "wireguard": parse_wireguard,
    "wg": parse_wireguard,
    "socks": parse_socks,
    "socks5": parse_socks,
    "socks5h": parse_socks,
    "socks4": parse_socks,
    "socks4a": parse_socks,
    "http": parse_http,
    "https": parse_https,
    "anytls": parse_anytls,
}
SERIALIZERS = {
    "wireguard": serialize_wireguard,
    "socks": serialize_socks,
    "http": serialize_http,
    "anytls": serialize_anytls,
}
