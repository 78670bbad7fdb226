"""Reading proxy nodes out of v2ray / Xray JSON configs.

A subscription sometimes serves a whole client config (or a list of them, or one outbound object)
instead of share links. `nodes_from_v2ray_config` turns every proxy outbound in it into a `Node`.
Field names follow the Xray documentation at xtls.github.io (the outbound protocol pages and the
`streamSettings` transport pages). Older names such as `tcpSettings`, `splithttpSettings` and
`xtlsSettings` are read too, because v2ray-core and older Xray configs still use them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .errors import LinkError
from .links.common import check_host, check_port, check_uuid, normalize_network, split_host_port, truthy
from .links.shadowsocks import check_ss_password, normalize_ss_cipher
from .links.simple import parse_local_address, parse_reserved
from .node import Node
from .singbox import normalize_fields

# Outbound protocols that do not name a proxy server; they are skipped without a reason.
IGNORED_PROTOCOLS = frozenset(("freedom", "blackhole", "dns", "loopback", "direct", "block"))

_STREAM_PROTOCOLS = frozenset(("vmess", "vless", "trojan"))


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list, bool)):
        return ""
    return str(value).strip()


def _first_text(value: Any) -> str:
    if isinstance(value, list):
        for item in value:
            text = _text(item)
            if text:
                return text
        return ""
    return _text(value)


def _header(headers: Any, name: str) -> str:
    if not isinstance(headers, dict):
        return ""
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == name:
            return _first_text(value)
    return ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _port(value: Any) -> int:
    if value is None or value == "" or isinstance(value, bool):
        raise LinkError("missing port")
    return check_port(value)


def _alter_id(value: Any) -> int:
    if value is None or value == "":
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        raise LinkError(f"invalid vmess alterId {value!r}: not a number") from None


def _alpn(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list):
        return tuple(text for text in (_text(item) for item in value) if text)
    return ()


# ---------------------------------------------------------------------------------------------
# streamSettings


def _read_stream(node: Node, stream: dict[str, Any]) -> None:
    """Copy transport and security settings from `streamSettings` into the node."""
    network_name = _text(stream.get("network")).lower()
    node.network = "kcp" if network_name == "mkcp" else normalize_network(network_name)
    _read_transport(node, stream)
    _read_security(node, stream)


def _read_transport(node: Node, stream: dict[str, Any]) -> None:
    network = node.network
    if network == "tcp":
        settings = _dict(stream.get("rawSettings") or stream.get("tcpSettings"))
        header = _dict(settings.get("header"))
        header_type = _text(header.get("type")).lower()
        if header_type and header_type != "none":
            node.extra["header_type"] = header_type
        if header_type == "http":
            request = _dict(header.get("request"))
            node.path = _first_text(request.get("path"))
            node.host_header = _header(request.get("headers"), "host")
    elif network == "ws":
        settings = _dict(stream.get("wsSettings"))
        node.path = _text(settings.get("path"))
        # Xray 24.9 added a `host` field; older configs only have the Host header.
        node.host_header = _text(settings.get("host")) or _header(settings.get("headers"), "host")
    elif network == "httpupgrade":
        settings = _dict(stream.get("httpupgradeSettings"))
        node.path = _text(settings.get("path"))
        node.host_header = _text(settings.get("host")) or _header(settings.get("headers"), "host")
    elif network == "h2":
        settings = _dict(stream.get("httpSettings") or stream.get("h2Settings"))
        node.path = _text(settings.get("path"))
        node.host_header = ",".join(_alpn(settings.get("host")))
    elif network == "grpc":
        settings = _dict(stream.get("grpcSettings"))
        node.service_name = _text(settings.get("serviceName"))
        if truthy(settings.get("multiMode", False)):
            node.mode = "multi"
    elif network == "xhttp":
        settings = _dict(stream.get("xhttpSettings") or stream.get("splithttpSettings"))
        node.path = _text(settings.get("path"))
        node.host_header = _text(settings.get("host"))
        node.mode = _text(settings.get("mode"))
        extra_json = settings.get("extra")
        if isinstance(extra_json, dict) and extra_json:
            node.extra["extra_json"] = extra_json
    elif network == "kcp":
        settings = _dict(stream.get("kcpSettings"))
        header_type = _text(_dict(settings.get("header")).get("type")).lower()
        if header_type and header_type != "none":
            node.extra["header_type"] = header_type
        seed = _text(settings.get("seed"))
        if seed:
            node.extra["seed"] = seed


def _read_security(node: Node, stream: dict[str, Any]) -> None:
    security = _text(stream.get("security")).lower() or "none"
    if security == "none":
        node.security = "none"
        return
    if security in ("tls", "xtls"):
        # `xtls` is the pre-2023 Xray security; its settings have the same names as tlsSettings.
        settings = _dict(stream.get("tlsSettings") or stream.get("xtlsSettings"))
        node.security = "tls"
        node.sni = _text(settings.get("serverName"))
        node.insecure = truthy(settings.get("allowInsecure", False))
        node.alpn = _alpn(settings.get("alpn"))
        node.client_fingerprint = _text(settings.get("fingerprint")).lower()
        return
    if security == "reality":
        settings = _dict(stream.get("realitySettings"))
        # Xray 25 renamed publicKey to password in client configs; both are read.
        public_key = _text(settings.get("publicKey")) or _text(settings.get("password"))
        if not public_key:
            raise LinkError("missing reality publicKey")
        node.security = "reality"
        node.sni = _text(settings.get("serverName"))
        node.client_fingerprint = _text(settings.get("fingerprint")).lower()
        node.reality_public_key = public_key
        node.reality_short_id = _text(settings.get("shortId"))
        node.reality_spider_x = _text(settings.get("spiderX"))
        return
    raise LinkError(f"unsupported security {security[:20]!r}")


# ---------------------------------------------------------------------------------------------
# Protocol settings. Each reader yields one node per server (and user) in the outbound.


def _vnext_users(settings: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield (server, user) pairs of `vnext`, or the flat single-server form of Xray 25."""
    vnext = settings.get("vnext")
    if isinstance(vnext, list) and vnext:
        for server in vnext:
            server = _dict(server)
            users = server.get("users")
            if not isinstance(users, list) or not users:
                users = [{}]
            for user in users:
                yield server, _dict(user)
    elif "address" in settings:
        yield settings, settings
    else:
        raise LinkError("missing settings.vnext")


def _servers(settings: dict[str, Any]) -> list[dict[str, Any]]:
    servers = settings.get("servers")
    if isinstance(servers, list) and servers:
        return [_dict(server) for server in servers]
    if "address" in settings:
        return [settings]
    raise LinkError("missing settings.servers")


def _base(server: dict[str, Any], name: str) -> dict[str, Any]:
    return {"host": check_host(_text(server.get("address"))), "port": _port(server.get("port")), "name": name}


def _read_vmess(settings: dict[str, Any], name: str) -> Iterator[Node]:
    for server, user in _vnext_users(settings):
        yield Node(
            protocol="vmess",
            uuid=check_uuid(_text(user.get("id")), "vmess"),
            alter_id=_alter_id(user.get("alterId")),
            method=_text(user.get("security")).lower() or "auto",
            **_base(server, name),
        )


def _read_vless(settings: dict[str, Any], name: str) -> Iterator[Node]:
    for server, user in _vnext_users(settings):
        encryption = _text(user.get("encryption") or settings.get("encryption")).lower()
        if encryption not in ("", "none"):
            raise LinkError(f"unsupported vless encryption {encryption[:30]!r}")
        yield Node(
            protocol="vless",
            uuid=check_uuid(_text(user.get("id")), "vless"),
            flow=_text(user.get("flow")),
            **_base(server, name),
        )


def _read_trojan(settings: dict[str, Any], name: str) -> Iterator[Node]:
    for server in _servers(settings):
        password = _text(server.get("password"))
        if not password:
            raise LinkError("missing trojan password")
        yield Node(protocol="trojan", password=password, **_base(server, name))


def _read_shadowsocks(settings: dict[str, Any], name: str) -> Iterator[Node]:
    for server in _servers(settings):
        raw_method = _text(server.get("method"))
        if not raw_method:
            raise LinkError("missing ss cipher (method)")
        method = normalize_ss_cipher(raw_method)
        password = check_ss_password(method, _text(server.get("password")))
        node = Node(protocol="ss", method=method, password=password, **_base(server, name))
        if truthy(server.get("uot", server.get("UoT", False))):
            node.extra["udp_over_tcp"] = True
        yield node


def _read_proxy_with_users(settings: dict[str, Any], name: str, protocol: str) -> Iterator[Node]:
    for server in _servers(settings):
        users = server.get("users")
        user = _dict(users[0]) if isinstance(users, list) and users else server
        yield Node(
            protocol=protocol,
            username=_text(user.get("user")),
            password=_text(user.get("pass")),
            **_base(server, name),
        )


def _read_socks(settings: dict[str, Any], name: str) -> Iterator[Node]:
    # Xray's socks outbound speaks SOCKS5 only; the version is stored as the other readers do.
    for node in _read_proxy_with_users(settings, name, "socks"):
        node.extra["version"] = "5"
        yield node


def _read_http(settings: dict[str, Any], name: str) -> Iterator[Node]:
    return _read_proxy_with_users(settings, name, "http")


def _read_wireguard(settings: dict[str, Any], name: str) -> Iterator[Node]:
    peers = settings.get("peers")
    if not isinstance(peers, list) or not peers:
        raise LinkError("missing wireguard peers")
    # NOTE: only the first peer is read, as in the sing-box reader.
    peer = _dict(peers[0])
    endpoint = _text(peer.get("endpoint"))
    if not endpoint:
        raise LinkError("missing wireguard peer endpoint")
    host, port = split_host_port(endpoint)
    node = Node(protocol="wireguard", host=check_host(host), port=_port(port), name=name)

    private_key = _text(settings.get("secretKey"))
    public_key = _text(peer.get("publicKey"))
    if not private_key:
        raise LinkError("missing wireguard secretKey")
    if not public_key:
        raise LinkError("missing wireguard peer publicKey")
    extra = node.extra
    extra["private_key"] = private_key
    extra["public_key"] = public_key

    pre_shared_key = _text(peer.get("preSharedKey"))
    if pre_shared_key:
        extra["pre_shared_key"] = pre_shared_key
    reserved = settings.get("reserved")
    if reserved:
        extra["reserved"] = parse_reserved(reserved)
    address = settings.get("address")
    if address:
        extra["local_address"] = parse_local_address(address)
    mtu = settings.get("mtu")
    if isinstance(mtu, int) and not isinstance(mtu, bool) and mtu > 0:
        extra["mtu"] = mtu
    yield node


_READERS: dict[str, Callable[[dict[str, Any], str], Iterator[Node]]] = {
    "vmess": _read_vmess,
    "vless": _read_vless,
    "trojan": _read_trojan,
    "shadowsocks": _read_shadowsocks,
    "socks": _read_socks,
    "http": _read_http,
    "wireguard": _read_wireguard,
}


def nodes_from_v2ray_outbound(outbound: dict[str, Any]) -> list[Node]:
    """Convert one outbound object to its nodes (one per server and user).

    Returns [] for freedom, blackhole, dns and loopback outbounds. Raises LinkError with a short
    reason when the outbound is broken or of a protocol this project cannot represent.
    """
    if not isinstance(outbound, dict):
        raise LinkError("outbound is not a JSON object")
    protocol = _text(outbound.get("protocol")).lower()
    if protocol in IGNORED_PROTOCOLS:
        return []
    reader = _READERS.get(protocol)
    if reader is None:
        if not protocol:
            raise LinkError("missing outbound protocol")
        raise LinkError(f"unsupported outbound protocol {protocol[:30]!r}")
    name = _text(outbound.get("tag"))
    nodes = list(reader(_dict(outbound.get("settings")), name))
    stream = outbound.get("streamSettings")
    if isinstance(stream, dict) and protocol != "wireguard":
        for node in nodes:
            if protocol in _STREAM_PROTOCOLS:
                _read_stream(node, stream)
            else:
                # ss, socks and http only take the security layer (e.g. http over TLS).
                _read_security(node, stream)
    return [normalize_fields(node) for node in nodes]


def _outbounds_of(item: Any) -> list[Any]:
    """Return the outbound objects of one config, or [item] when it is itself an outbound."""
    if not isinstance(item, dict):
        return [item]
    if "outbounds" in item:
        outbounds = item["outbounds"]
        return outbounds if isinstance(outbounds, list) else [outbounds]
    if "protocol" in item:
        return [item]
    # v2ray-core 4.x and older wrote the main outbound and the others in two keys.
    if "outbound" in item or "outboundDetour" in item:
        detour = item.get("outboundDetour")
        return [item.get("outbound"), *(detour if isinstance(detour, list) else [])]
    return []


def nodes_from_v2ray_config(config: dict[str, Any] | list[Any]) -> tuple[list[Node], list[str]]:
    """Return the proxy nodes in a v2ray/Xray config and one reason per rejected outbound.

    `config` is a full config with `outbounds`, a single outbound object, or a list of either.
    Each reason reads "outbound N ('tag'): reason", N counting from 1 across the whole input.
    """
    items = config if isinstance(config, list) else [config]
    nodes: list[Node] = []
    rejected: list[str] = []
    index = 0
    for item in items:
        for outbound in _outbounds_of(item):
            if outbound is None:
                continue
            index += 1
            try:
                nodes.extend(nodes_from_v2ray_outbound(outbound))
            except LinkError as error:
                tag = _text(outbound.get("tag")) if isinstance(outbound, dict) else ""
                label = f"outbound {index} ({tag[:40]!r})" if tag else f"outbound {index}"
                rejected.append(f"{label}: {error}")
    return nodes, rejected
