"""Conversion between sing-box outbound/endpoint objects and `Node`.

`node_from_singbox` reads one entry of a sing-box config's `outbounds` (or `endpoints`) list;
`node_to_singbox` writes a node as the object that sing-box 1.11/1.12 accepts. Field names follow
the sing-box documentation pages for each outbound type, `shared/tls`, `shared/v2ray-transport`
and `endpoint/wireguard`.

WireGuard is the one protocol that current sing-box only accepts as an *endpoint*: the wireguard
outbound was deprecated in 1.11 and removed in 1.13. So `node_to_singbox` returns the endpoint
shape (`address`, `private_key`, `peers[].address/port`) for wireguard nodes, and a config writer
must put every node whose protocol is in `ENDPOINT_PROTOCOLS` under the top-level `endpoints` list
instead of `outbounds`. `node_from_singbox` reads both the endpoint and the old outbound shape.

`normalize_fields` applies the project's normalisation rules (dropping transport and TLS fields
that the chosen network or security does not use) and is shared with the v2ray JSON reader.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from .errors import LinkError, UnsupportedNode
from .links.common import check_host, check_port, check_uuid, split_alpn, truthy
from .links.shadowsocks import (
    SSR_CIPHERS,
    SSR_OBFS,
    SSR_PROTOCOLS,
    check_ss_password,
    format_plugin,
    normalize_ss_cipher,
    parse_plugin,
)
from .links.simple import parse_local_address, parse_reserved
from .node import Node

# Protocols that `node_to_singbox` writes in the `endpoints` shape.
ENDPOINT_PROTOCOLS = frozenset(("wireguard",))

# Outbound types that route or terminate traffic instead of naming a proxy server. They are
# skipped without a reason. `tor` and `ssh` are absent on purpose: they are servers this project
# cannot represent, so they are reported as unsupported instead.
NON_PROXY_TYPES = frozenset(("selector", "urltest", "direct", "block", "dns", "loopback", "freedom"))

# The methods listed on sing-box's shadowsocks outbound page (1.11/1.12).
SINGBOX_SS_CIPHERS = frozenset(
    (
        "2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm", "2022-blake3-chacha20-poly1305", "none",
        "aes-128-gcm", "aes-192-gcm", "aes-256-gcm", "chacha20-ietf-poly1305", "xchacha20-ietf-poly1305",
        "aes-128-ctr", "aes-192-ctr", "aes-256-ctr", "aes-128-cfb", "aes-192-cfb", "aes-256-cfb",
        "rc4-md5", "chacha20-ietf", "xchacha20",
    )
)  # fmt: skip

# vmess `security` values that sing-box's vmess outbound implements.
SINGBOX_VMESS_SECURITIES = frozenset(
    ("auto", "none", "zero", "aes-128-gcm", "chacha20-poly1305", "aes-128-ctr")
)

# uTLS fingerprints that sing-box accepts in `tls.utls.fingerprint`. Other names (Xray's
# "randomizednoalpn", "unsafe") would make sing-box refuse the whole config.
SINGBOX_UTLS_FINGERPRINTS = frozenset(
    ("chrome", "firefox", "edge", "safari", "360", "qq", "ios", "android", "random", "randomized")
)

_TRANSPORT_PROTOCOLS = frozenset(("vmess", "vless", "trojan"))
_TLS_ONLY_PROTOCOLS = frozenset(("hysteria", "hysteria2", "tuic", "anytls"))
_TLS_CAPABLE_PROTOCOLS = _TRANSPORT_PROTOCOLS | {"http"}
_PATH_NETWORKS = frozenset(("ws", "h2", "httpupgrade", "xhttp"))
_WS_EARLY_DATA_HEADER = "Sec-WebSocket-Protocol"


# ---------------------------------------------------------------------------------------------
# Normalisation shared by the JSON converters.


def normalize_fields(node: Node) -> Node:
    """Drop the fields that the node's protocol, network and security do not use; return the node.

    Junk values in unused fields would otherwise make copies of one server look different.
    For ws, h2, httpupgrade and xhttp an empty path becomes "/".
    """
    extra = node.extra
    if node.protocol not in _TRANSPORT_PROTOCOLS:
        node.network = "tcp"
    network = node.network

    header_type = extra.get("header_type")
    if header_type is not None:
        header_type = str(header_type).strip().lower()
        tcp_http = network == "tcp" and header_type == "http"
        if tcp_http or (network == "kcp" and header_type not in ("", "none")):
            extra["header_type"] = header_type
        else:
            del extra["header_type"]

    if network in _PATH_NETWORKS:
        if not node.path:
            node.path = "/"
    elif not (network == "tcp" and extra.get("header_type") == "http"):
        node.path = ""
        node.host_header = ""
    if network != "grpc":
        node.service_name = ""
    if network not in ("grpc", "xhttp"):
        node.mode = ""
    if network != "kcp":
        extra.pop("seed", None)
    if network != "xhttp":
        extra.pop("extra_json", None)

    if node.protocol in _TLS_ONLY_PROTOCOLS:
        node.security = "tls"
    elif node.protocol not in _TLS_CAPABLE_PROTOCOLS:
        node.security = "none"
    elif node.protocol == "http" and node.security == "reality":
        node.security = "tls"
    if node.security == "none":
        node.sni = ""
        node.alpn = ()
        node.client_fingerprint = ""
        node.insecure = False
    if node.security != "reality":
        node.reality_public_key = ""
        node.reality_short_id = ""
        node.reality_spider_x = ""
    return node


# ---------------------------------------------------------------------------------------------
# Small readers for loosely typed JSON values.


def _text(value: Any) -> str:
    """Return a JSON scalar as stripped text ('' for null); numbers become their decimal form."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "true" if value else ""
    return str(value).strip()


def _first_text(value: Any) -> str:
    """Return the first non-empty string of a string-or-list value."""
    if isinstance(value, list):
        for item in value:
            text = _text(item)
            if text:
                return text
        return ""
    return _text(value)


def _string_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return split_alpn(value)
    if isinstance(value, list):
        return tuple(text for text in (_text(item) for item in value) if text)
    return ()


def _header(headers: Any, name: str) -> str:
    """Return one header's value from a headers object, matching the name case-insensitively."""
    if not isinstance(headers, dict):
        return ""
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == name:
            return _first_text(value)
    return ""


def _int(value: Any, what: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise LinkError(f"invalid {what} {value!r}: not a number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise LinkError(f"invalid {what} {value!r}: not a number") from None


def _mbps(value: Any) -> int:
    """Read a bandwidth in Mbps from a number or a string such as '100' or '100 Mbps'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    text = _text(value)
    if not text:
        return 0
    digits = text.split()[0] if " " in text else text.lower().removesuffix("mbps")
    try:
        return int(float(digits))
    except ValueError:
        return 0


def _server_port(value: Any, key: str = "server_port") -> int:
    if value is None or value == "":
        raise LinkError(f"missing {key}")
    if isinstance(value, bool):
        raise LinkError(f"invalid port {value!r}: not a number")
    return check_port(value)


# ---------------------------------------------------------------------------------------------
# Port hopping.


def ports_from_singbox(value: Any) -> str:
    """Turn sing-box `server_ports` (["1000:2000", "443:443"]) into the "1000-2000,443" form.

    Dash ranges and comma lists are accepted too, because hand-written configs mix the styles.
    """
    if isinstance(value, (str, int)):
        items = [value]
    elif isinstance(value, list):
        items = value
    else:
        items = []
    parts: list[str] = []
    for item in items:
        for piece in str(item).split(","):
            piece = piece.strip()
            if not piece:
                continue
            if ":" in piece:
                separator = ":"
            elif "-" in piece:
                separator = "-"
            else:
                parts.append(str(check_port(piece)))
                continue
            start_text, _, end_text = piece.partition(separator)
            start = check_port(start_text.strip())
            # sing-box reads "1000:" as "1000 up to 65535".
            end = check_port(end_text.strip() or 65535)
            if end < start:
                raise LinkError(f"invalid port range {piece!r}: start is after end")
            parts.append(str(start) if start == end else f"{start}-{end}")
    return ",".join(parts)


def ports_to_singbox(ports: str) -> list[str]:
    """Turn "443,1000-2000" into sing-box `server_ports`, which needs "start:end" for every entry."""
    result = []
    for piece in ports.split(","):
        piece = piece.strip()
        if not piece:
            continue
        start, _, end = piece.partition("-")
        result.append(f"{start}:{end or start}")
    return result


# ---------------------------------------------------------------------------------------------
# sing-box -> Node


def _read_server(node_kwargs: dict[str, Any], outbound: dict[str, Any]) -> None:
    node_kwargs["host"] = check_host(_text(outbound.get("server")))
    node_kwargs["port"] = _server_port(outbound.get("server_port"))


def _read_tls(node: Node, outbound: dict[str, Any]) -> None:
    tls = outbound.get("tls")
    if not isinstance(tls, dict) or not truthy(tls.get("enabled", False)):
        return
    node.security = "tls"
    node.sni = _text(tls.get("server_name"))
    node.insecure = truthy(tls.get("insecure", False))
    node.alpn = _string_tuple(tls.get("alpn"))
    utls = tls.get("utls")
    if isinstance(utls, dict) and truthy(utls.get("enabled", False)):
        node.client_fingerprint = _text(utls.get("fingerprint")).lower()
    reality = tls.get("reality")
    if isinstance(reality, dict) and truthy(reality.get("enabled", False)):
        public_key = _text(reality.get("public_key"))
        if not public_key:
            raise LinkError("missing reality public_key")
        node.security = "reality"
        node.reality_public_key = public_key
        node.reality_short_id = _text(reality.get("short_id"))


def _read_transport(node: Node, outbound: dict[str, Any]) -> None:
    transport = outbound.get("transport")
    if not transport:
        return
    if not isinstance(transport, dict):
        raise LinkError("invalid transport: not a JSON object")
    kind = _text(transport.get("type")).lower()
    if kind == "ws":
        node.network = "ws"
        path = _text(transport.get("path"))
        node.host_header = _header(transport.get("headers"), "host")
        early_data = _int(transport.get("max_early_data"), "max_early_data")
        header_name = _text(transport.get("early_data_header_name"))
        # Xray requests early data with "?ed=N" in the path and sends it in this header, while
        # sing-box spells the same setting as two fields. Share links carry the path form.
        wants_early_data = early_data > 0 and header_name.lower() == _WS_EARLY_DATA_HEADER.lower()
        if wants_early_data and "ed=" not in path:
            path = f"{path or '/'}{'&' if '?' in path else '?'}ed={early_data}"
        node.path = path
    elif kind == "httpupgrade":
        node.network = "httpupgrade"
        node.path = _text(transport.get("path"))
        node.host_header = _text(transport.get("host")) or _header(transport.get("headers"), "host")
    elif kind == "http":
        node.network = "h2"
        node.path = _text(transport.get("path"))
        hosts = _string_tuple(transport.get("host"))
        node.host_header = ",".join(hosts) or _header(transport.get("headers"), "host")
    elif kind == "grpc":
        node.network = "grpc"
        node.service_name = _text(transport.get("service_name"))
    elif kind == "quic":
        node.network = "quic"
    else:
        raise LinkError(f"unsupported sing-box transport {kind[:30]!r}")


def _need_password(outbound: dict[str, Any], protocol: str) -> str:
    password = outbound.get("password")
    if password is None or password == "":
        raise LinkError(f"missing {protocol} password")
    return str(password)


def _from_vmess(outbound: dict[str, Any], base: dict[str, Any]) -> Node:
    node = Node(
        protocol="vmess",
        uuid=check_uuid(_text(outbound.get("uuid")), "vmess"),
        method=_text(outbound.get("security")).lower() or "auto",
        alter_id=_int(outbound.get("alter_id"), "alter_id"),
        **base,
    )
    _read_tls(node, outbound)
    _read_transport(node, outbound)
    return node


def _from_vless(outbound: dict[str, Any], base: dict[str, Any]) -> Node:
    node = Node(
        protocol="vless",
        uuid=check_uuid(_text(outbound.get("uuid")), "vless"),
        flow=_text(outbound.get("flow")),
        **base,
    )
    _read_tls(node, outbound)
    _read_transport(node, outbound)
    return node


def _from_trojan(outbound: dict[str, Any], base: dict[str, Any]) -> Node:
    node = Node(protocol="trojan", password=_need_password(outbound, "trojan"), **base)
    _read_tls(node, outbound)
    _read_transport(node, outbound)
    return node


def _from_shadowsocks(outbound: dict[str, Any], base: dict[str, Any]) -> Node:
    raw_method = _text(outbound.get("method"))
    if not raw_method:
        raise LinkError("missing ss cipher (method)")
    method = normalize_ss_cipher(raw_method)
    password = check_ss_password(method, str(outbound.get("password") or ""))
    node = Node(protocol="ss", method=method, password=password, **base)
    plugin = _text(outbound.get("plugin"))
    if plugin:
        options_text = _text(outbound.get("plugin_opts"))
        name, options = parse_plugin(f"{plugin};{options_text}" if options_text else plugin)
        node.extra["plugin"] = name
        if options:
            node.extra["plugin_opts"] = options
    udp_over_tcp = outbound.get("udp_over_tcp")
    if isinstance(udp_over_tcp, dict):
        udp_over_tcp = udp_over_tcp.get("enabled", False)
    if udp_over_tcp and truthy(udp_over_tcp):
        node.extra["udp_over_tcp"] = True
    return node


def _from_shadowsocksr(outbound: dict[str, Any], base: dict[str, Any]) -> Node:
    method = _text(outbound.get("method")).lower()
    if method not in SSR_CIPHERS:
        raise LinkError(f"unknown ssr cipher {method[:40]!r}")
    protocol = _text(outbound.get("protocol")).lower() or "origin"
    if protocol not in SSR_PROTOCOLS:
        raise LinkError(f"unknown ssr protocol {protocol[:40]!r}")
    obfs = _text(outbound.get("obfs")).lower() or "plain"
    if obfs not in SSR_OBFS:
        raise LinkError(f"unknown ssr obfs {obfs[:40]!r}")
    password = str(outbound.get("password") or "")
    if not password and method != "none":
        raise LinkError("missing ssr password")
    node = Node(protocol="ssr", method=method, password=password, **base)
    node.extra["protocol"] = protocol
    node.extra["obfs"] = obfs
    # The `origin` protocol and the `plain` obfs ignore their parameter, so it is not stored.
    protocol_param = _text(outbound.get("protocol_param"))
    if protocol_param and protocol != "origin":
        node.extra["protocol_param"] = protocol_param
    obfs_param = _text(outbound.get("obfs_param"))
    if obfs_param and obfs != "plain":
        node.extra["obfs_param"] = obfs_param
    return node


def _from_socks(outbound: dict[str, Any], base: dict[str, Any]) -> Node:
    version = _text(outbound.get("version")).lower() or "5"
    if version not in ("4", "4a", "5"):
        raise LinkError(f"invalid socks version {version!r}: must be 4, 4a or 5")
    node = Node(
        protocol="socks",
        username=_text(outbound.get("username")),
        password=str(outbound.get("password") or ""),
        **base,
    )
    # The version is always stored, "5" included, as the link and Clash readers do.
    node.extra["version"] = version
    return node


def _from_http(outbound: dict[str, Any], base: dict[str, Any]) -> Node:
    node = Node(
        protocol="http",
        username=_text(outbound.get("username")),
        password=str(outbound.get("password") or ""),
        **base,
    )
    _read_tls(node, outbound)
    return node


def _read_port_hopping(node: Node, outbound: dict[str, Any]) -> None:
    ports = ports_from_singbox(outbound.get("server_ports"))
    # A hopping list that is only the main port hops nowhere; the link reader drops it too.
    if ports and ports != str(node.port):
        node.extra["ports"] = ports
    for key in ("up_mbps", "down_mbps"):
        value = _mbps(outbound.get(key))
        if not value and key == "up_mbps":
            value = _mbps(outbound.get("up"))
        elif not value:
            value = _mbps(outbound.get("down"))
        if value:
            node.extra[key] = value


def _hopping_base(outbound: dict[str, Any], name: str) -> dict[str, Any]:
    """Return name, host and port of a hysteria outbound, where server_ports may replace server_port."""
    host = check_host(_text(outbound.get("server")))
    raw_port = outbound.get("server_port")
    if raw_port is None or raw_port == "":
        ports = ports_from_singbox(outbound.get("server_ports"))
        if not ports:
            raise LinkError("missing server_port")
        port = int(ports.split(",")[0].split("-")[0])
    else:
        port = _server_port(raw_port)
    return {"name": name, "host": host, "port": port}


def _from_hysteria(outbound: dict[str, Any], name: str) -> Node:
    base = _hopping_base(outbound, name)
    auth = _text(outbound.get("auth_str"))
    if not auth and outbound.get("auth"):
        try:
            auth = base64.b64decode(_text(outbound.get("auth")), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise LinkError("invalid hysteria auth: not base64 of UTF-8 text") from None
    node = Node(protocol="hysteria", password=auth, **base)
    obfs = _text(outbound.get("obfs"))
    if obfs:
        node.extra["obfs_password"] = obfs
    _read_port_hopping(node, outbound)
    _read_tls(node, outbound)
    return node


def _from_hysteria2(outbound: dict[str, Any], name: str) -> Node:
    base = _hopping_base(outbound, name)
    node = Node(protocol="hysteria2", password=str(outbound.get("password") or ""), **base)
    obfs = outbound.get("obfs")
    if isinstance(obfs, dict) and (obfs.get("type") or obfs.get("password")):
        obfs_type = _text(obfs.get("type")).lower() or "salamander"
        node.extra["obfs"] = obfs_type
        obfs_password = _text(obfs.get("password"))
        if not obfs_password:
            raise LinkError(f"missing hysteria2 obfs password for obfs {obfs_type!r}")
        node.extra["obfs_password"] = obfs_password
    _read_port_hopping(node, outbound)
    _read_tls(node, outbound)
    return node


def _from_tuic(outbound: dict[str, Any], base: dict[str, Any]) -> Node:
    node = Node(
        protocol="tuic",
        uuid=check_uuid(_text(outbound.get("uuid")), "tuic"),
        password=_need_password(outbound, "tuic"),
        **base,
    )
    # sing-box only speaks TUIC v5. The link and Clash readers store the version the same way.
    node.extra["version"] = 5
    congestion = _text(outbound.get("congestion_control")).lower()
    if congestion:
        node.extra["congestion_control"] = congestion
    relay_mode = _text(outbound.get("udp_relay_mode")).lower()
    if relay_mode:
        node.extra["udp_relay_mode"] = relay_mode
    if truthy(outbound.get("zero_rtt_handshake", False)):
        node.extra["reduce_rtt"] = True
    _read_tls(node, outbound)
    return node


def _from_anytls(outbound: dict[str, Any], base: dict[str, Any]) -> Node:
    node = Node(protocol="anytls", password=_need_password(outbound, "anytls"), **base)
    _read_tls(node, outbound)
    return node


def _from_wireguard(outbound: dict[str, Any], name: str) -> Node:
    """Read the 1.11+ endpoint shape or the old outbound shape (single peer or `peers`)."""
    peers = outbound.get("peers")
    peer = peers[0] if isinstance(peers, list) and peers and isinstance(peers[0], dict) else {}
    # NOTE: only the first peer is kept, because this project's node has one server.
    host = _text(peer.get("server")) or _text(peer.get("address")) or _text(outbound.get("server"))
    raw_port = peer.get("server_port", peer.get("port"))
    if raw_port is None or raw_port == "":
        raw_port = outbound.get("server_port")
    node = Node(protocol="wireguard", host=check_host(host), port=_server_port(raw_port), name=name)

    private_key = _text(outbound.get("private_key"))
    if not private_key:
        raise LinkError("missing wireguard private_key")
    public_key = _text(peer.get("public_key")) or _text(outbound.get("peer_public_key"))
    if not public_key:
        raise LinkError("missing wireguard peer public_key")
    extra = node.extra
    extra["private_key"] = private_key
    extra["public_key"] = public_key

    pre_shared_key = _text(peer.get("pre_shared_key")) or _text(outbound.get("pre_shared_key"))
    if pre_shared_key:
        extra["pre_shared_key"] = pre_shared_key
    reserved = peer.get("reserved") or outbound.get("reserved")
    if reserved:
        extra["reserved"] = parse_reserved(reserved)

    local_address = outbound.get("local_address")
    if local_address is None:
        local_address = outbound.get("address")
    addresses = parse_local_address(local_address) if local_address else []
    if not addresses:
        raise LinkError("missing wireguard local address")
    extra["local_address"] = addresses
    mtu = _int(outbound.get("mtu"), "wireguard mtu")
    if mtu:
        extra["mtu"] = mtu
    return node


_SIMPLE_READERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Node]] = {
    "vmess": _from_vmess,
    "vless": _from_vless,
    "trojan": _from_trojan,
    "shadowsocks": _from_shadowsocks,
    "shadowsocksr": _from_shadowsocksr,
    "socks": _from_socks,
    "http": _from_http,
    "tuic": _from_tuic,
    "anytls": _from_anytls,
}
# These read host and port themselves, because their port may live somewhere else.
_OWN_SERVER_READERS: dict[str, Callable[[dict[str, Any], str], Node]] = {
    "hysteria": _from_hysteria,
    "hysteria2": _from_hysteria2,
    "wireguard": _from_wireguard,
}


def node_from_singbox(outbound: dict[str, Any]) -> Node | None:
    """Convert one sing-box outbound or endpoint object to a node.

    Returns None for types that are not proxy servers (selector, urltest, direct, block, dns).
    Raises LinkError with a short reason for a proxy entry that is broken or of a type this
    project cannot represent.
    """
    if not isinstance(outbound, dict):
        raise LinkError("outbound is not a JSON object")
    kind = _text(outbound.get("type")).lower()
    name = _text(outbound.get("tag"))
    simple_reader = _SIMPLE_READERS.get(kind)
    if simple_reader is not None:
        base: dict[str, Any] = {"name": name}
        _read_server(base, outbound)
        node = simple_reader(outbound, base)
    else:
        own_reader = _OWN_SERVER_READERS.get(kind)
        if own_reader is None:
            if kind in NON_PROXY_TYPES:
                return None
            if not kind:
                raise LinkError("missing outbound type")
            raise LinkError(f"unsupported sing-box outbound type {kind[:30]!r}")
        node = own_reader(outbound, name)
    return normalize_fields(node)


def nodes_from_singbox_config(config: dict[str, Any]) -> tuple[list[Node], list[str]]:
    """Read every proxy of a sing-box config's `outbounds` and `endpoints` lists.

    Returns the nodes and one "<tag or type>: <reason>" string per rejected entry.
    """
    nodes: list[Node] = []
    rejected: list[str] = []
    for key in ("outbounds", "endpoints"):
        entries = config.get(key)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            try:
                node = node_from_singbox(entry)
            except LinkError as error:
                label = entry.get("tag") or entry.get("type") if isinstance(entry, dict) else key
                rejected.append(f"{str(label)[:60]}: {error}")
                continue
            if node is not None:
                nodes.append(node)
    return nodes, rejected


# ---------------------------------------------------------------------------------------------
# Node -> sing-box


def _tls_to_singbox(node: Node, required: bool = False) -> dict[str, Any] | None:
    """Build the outbound `tls` object. With `required`, a node without TLS settings still gets one."""
    if node.security == "none" and not required:
        return None
    tls: dict[str, Any] = {"enabled": True}
    if node.sni:
        tls["server_name"] = node.sni
    if node.insecure:
        tls["insecure"] = True
    if node.alpn:
        tls["alpn"] = list(node.alpn)
    fingerprint = node.client_fingerprint.lower()
    if fingerprint not in SINGBOX_UTLS_FINGERPRINTS:
        fingerprint = ""
    if node.security == "reality":
        # sing-box fails with "uTLS is required by reality client" without one, so chrome is the default.
        fingerprint = fingerprint or "chrome"
        reality = {"enabled": True, "public_key": node.reality_public_key}
        if node.reality_short_id:
            reality["short_id"] = node.reality_short_id
        tls["reality"] = reality
    if fingerprint:
        tls["utls"] = {"enabled": True, "fingerprint": fingerprint}
    return tls


def _split_early_data(path: str) -> tuple[str, int]:
    """Split Xray's "?ed=N" early-data request off a ws path when it is the last query parameter.

    Only the last parameter is taken, so that reading the result back appends it at the same
    place and the path compares equal.
    """
    before, separator, value = path.rpartition("ed=")
    if not separator or not value.isdigit():
        return path, 0
    stripped = before[:-1]
    # `_read_transport` joins with "&" when the rest of the path already has a "?".
    if before[-1:] != ("&" if "?" in stripped else "?"):
        return path, 0
    return stripped, int(value)


def _transport_to_singbox(node: Node) -> dict[str, Any] | None:
    network = node.network
    if network == "tcp":
        if node.extra.get("header_type") == "http":
            raise UnsupportedNode("tcp transport with http header obfuscation is not supported by sing-box")
        return None
    if network == "ws":
        path, early_data = _split_early_data(node.path)
        transport: dict[str, Any] = {"type": "ws", "path": path or "/"}
        if node.host_header:
            transport["headers"] = {"Host": node.host_header}
        if early_data:
            transport["max_early_data"] = early_data
            transport["early_data_header_name"] = _WS_EARLY_DATA_HEADER
        return transport
    if network == "httpupgrade":
        transport = {"type": "httpupgrade", "path": node.path or "/"}
        if node.host_header:
            transport["host"] = node.host_header
        return transport
    if network == "h2":
        transport = {"type": "http", "path": node.path or "/"}
        hosts = split_alpn(node.host_header)
        if hosts:
            transport["host"] = list(hosts)
        return transport
    if network == "grpc":
        # NOTE: sing-box has no gRPC "multi" mode, so such nodes are written in the default mode.
        return {"type": "grpc", "service_name": node.service_name}
    if network == "quic":
        return {"type": "quic"}
    raise UnsupportedNode(f"{network} transport is not supported by sing-box")


def _base(node: Node, kind: str, tag: str) -> dict[str, Any]:
    return {"type": kind, "tag": tag, "server": node.host, "server_port": node.port}


def _to_vmess(node: Node, tag: str) -> dict[str, Any]:
    security = node.method.lower() or "auto"
    if security not in SINGBOX_VMESS_SECURITIES:
        raise UnsupportedNode(f"vmess security {security!r} is not supported by sing-box")
    outbound = _base(node, "vmess", tag)
    outbound["uuid"] = node.uuid
    outbound["security"] = security
    if node.alter_id:
        outbound["alter_id"] = node.alter_id
    return outbound


def _to_vless(node: Node, tag: str) -> dict[str, Any]:
    if node.flow not in ("", "xtls-rprx-vision"):
        raise UnsupportedNode(f"vless flow {node.flow!r} is not supported by sing-box")
    outbound = _base(node, "vless", tag)
    outbound["uuid"] = node.uuid
    if node.flow:
        outbound["flow"] = node.flow
    return outbound


def _to_trojan(node: Node, tag: str) -> dict[str, Any]:
    outbound = _base(node, "trojan", tag)
    outbound["password"] = node.password
    return outbound


def _to_shadowsocks(node: Node, tag: str) -> dict[str, Any]:
    method = node.method.lower()
    if method not in SINGBOX_SS_CIPHERS:
        raise UnsupportedNode(f"ss cipher {method!r} is not supported by sing-box")
    outbound = _base(node, "shadowsocks", tag)
    outbound["method"] = method
    outbound["password"] = node.password
    plugin = node.extra.get("plugin")
    if plugin:
        if plugin not in ("obfs-local", "v2ray-plugin"):
            raise UnsupportedNode(f"ss plugin {plugin!r} is not supported by sing-box")
        outbound["plugin"] = plugin
        options = node.extra.get("plugin_opts") or {}
        if options:
            # format_plugin writes "name;options"; sing-box wants the two in separate fields.
            outbound["plugin_opts"] = format_plugin(plugin, options).partition(";")[2]
    if node.extra.get("udp_over_tcp"):
        outbound["udp_over_tcp"] = True
    return outbound


def _to_socks(node: Node, tag: str) -> dict[str, Any]:
    outbound = _base(node, "socks", tag)
    outbound["version"] = str(node.extra.get("version") or "5")
    if node.username:
        outbound["username"] = node.username
    if node.password:
        outbound["password"] = node.password
    return outbound


def _to_http(node: Node, tag: str) -> dict[str, Any]:
    outbound = _base(node, "http", tag)
    if node.username:
        outbound["username"] = node.username
    if node.password:
        outbound["password"] = node.password
    return outbound


def _add_port_hopping(outbound: dict[str, Any], node: Node) -> None:
    ports = node.extra.get("ports")
    if ports:
        outbound["server_ports"] = ports_to_singbox(str(ports))
    for key in ("up_mbps", "down_mbps"):
        if node.extra.get(key):
            outbound[key] = int(node.extra[key])


def _to_hysteria(node: Node, tag: str) -> dict[str, Any]:
    transport = node.extra.get("hysteria_protocol") or "udp"
    if transport != "udp":
        raise UnsupportedNode(f"hysteria protocol {transport!r} is not supported by sing-box")
    outbound = _base(node, "hysteria", tag)
    _add_port_hopping(outbound, node)
    # sing-box requires both bandwidths for hysteria v1.
    # NOTE: 10/50 Mbps is a guess for nodes whose source gave no bandwidth.
    outbound.setdefault("up_mbps", 10)
    outbound.setdefault("down_mbps", 50)
    if node.password:
        outbound["auth_str"] = node.password
    if node.extra.get("obfs_password"):
        outbound["obfs"] = node.extra["obfs_password"]
    return outbound


def _to_hysteria2(node: Node, tag: str) -> dict[str, Any]:
    outbound = _base(node, "hysteria2", tag)
    _add_port_hopping(outbound, node)
    obfs = node.extra.get("obfs")
    if obfs or node.extra.get("obfs_password"):
        obfs = obfs or "salamander"
        if obfs != "salamander":
            raise UnsupportedNode(f"hysteria2 obfs {obfs!r} is not supported by sing-box")
        outbound["obfs"] = {"type": "salamander", "password": node.extra.get("obfs_password", "")}
    outbound["password"] = node.password
    return outbound


def _to_tuic(node: Node, tag: str) -> dict[str, Any]:
    version = str(node.extra.get("version") or "5")
    if version != "5":
        raise UnsupportedNode(f"tuic version {version} is not supported by sing-box (only v5)")
    outbound = _base(node, "tuic", tag)
    outbound["uuid"] = node.uuid
    outbound["password"] = node.password
    for key in ("congestion_control", "udp_relay_mode"):
        if node.extra.get(key):
            outbound[key] = node.extra[key]
    if node.extra.get("reduce_rtt"):
        outbound["zero_rtt_handshake"] = True
    return outbound


def _to_anytls(node: Node, tag: str) -> dict[str, Any]:
    outbound = _base(node, "anytls", tag)
    outbound["password"] = node.password
    return outbound


def node_to_singbox_endpoint(node: Node, tag: str) -> dict[str, Any]:
    """Write a wireguard node as a sing-box 1.11+ `endpoints` entry."""
    extra = node.extra
    addresses = extra.get("local_address") or []
    if not addresses:
        raise UnsupportedNode("wireguard node without a local address cannot be written for sing-box")
    peer: dict[str, Any] = {
        "address": node.host,
        "port": node.port,
        "public_key": extra.get("public_key", ""),
        "allowed_ips": ["0.0.0.0/0", "::/0"],
    }
    if extra.get("pre_shared_key"):
        peer["pre_shared_key"] = extra["pre_shared_key"]
    if extra.get("reserved"):
        peer["reserved"] = list(extra["reserved"])
    endpoint: dict[str, Any] = {
        "type": "wireguard",
        "tag": tag,
        "address": list(addresses),
        "private_key": extra.get("private_key", ""),
        "peers": [peer],
    }
    if extra.get("mtu"):
        endpoint["mtu"] = int(extra["mtu"])
    return endpoint


_WRITERS: dict[str, Callable[[Node, str], dict[str, Any]]] = {
    "vmess": _to_vmess,
    "vless": _to_vless,
    "trojan": _to_trojan,
    "ss": _to_shadowsocks,
    "socks": _to_socks,
    "http": _to_http,
    "hysteria": _to_hysteria,
    "hysteria2": _to_hysteria2,
    "tuic": _to_tuic,
    "anytls": _to_anytls,
}


def node_to_singbox(node: Node, tag: str) -> dict[str, Any]:
    """Write a node as a sing-box object tagged `tag`.

    Wireguard nodes come back in the endpoint shape (see `ENDPOINT_PROTOCOLS`); everything else is
    an outbound. Raises UnsupportedNode with the reason for nodes that sing-box cannot express,
    such as ssr, the xhttp and kcp transports or tcp http-header obfuscation.
    """
    protocol = node.protocol
    if protocol == "wireguard":
        return node_to_singbox_endpoint(node, tag)
    if protocol == "ssr":
        raise UnsupportedNode("ssr is not supported by sing-box (removed in 1.6.0)")
    writer = _WRITERS.get(protocol)
    if writer is None:
        raise UnsupportedNode(f"protocol {protocol!r} is not supported by sing-box")
    outbound = writer(node, tag)
    if protocol in _TRANSPORT_PROTOCOLS:
        transport = _transport_to_singbox(node)
        if transport is not None:
            outbound["transport"] = transport
    if protocol in _TLS_CAPABLE_PROTOCOLS or protocol in _TLS_ONLY_PROTOCOLS:
        tls = _tls_to_singbox(node, required=protocol in _TLS_ONLY_PROTOCOLS)
        if tls is not None:
            outbound["tls"] = tls
    return outbound
