"""Writing nodes as v2ray-core 4.34 outbounds, the version Debian 12 ships as the `v2ray` package.

This is the reverse of `merger.core.v2ray_json` for the subset that v2ray 4.34 can run. The URL
test (merger/coretest.py) feeds these outbounds to a local v2ray process. Field names follow the
v2fly 4.x configuration reference (outbound protocol pages and `streamSettings`). Limits of 4.34,
checked with `v2ray -test` against the Debian binary: no grpc, httpupgrade or xhttp transport, no
REALITY, no XTLS flows, and shadowsocks only with the AEAD ciphers aes-128-gcm, aes-256-gcm and
chacha20-poly1305 (or none). Nodes outside that subset raise `UnsupportedByCore` with the reason.
"""

from __future__ import annotations

from typing import Any

from ..errors import LinkError
from ..links.common import check_uuid
from ..node import Node

# ss ciphers accepted by v2ray 4.34: canonical name -> the name its config parser accepts.
_SS_METHODS = {
    "aes-128-gcm": "aes-128-gcm",
    "aes-256-gcm": "aes-256-gcm",
    "chacha20-ietf-poly1305": "chacha20-poly1305",
    "none": "none",
}
_TRANSPORTS = frozenset(("tcp", "ws", "h2", "kcp"))
_PROTOCOLS = frozenset(("vmess", "vless", "trojan", "ss", "socks", "http"))


class UnsupportedByCore(ValueError):
    """A node that v2ray 4.34 cannot express; the message is the short reason."""


def v2ray_outbound(node: Node, tag: str, *, force_insecure: bool = False) -> dict[str, Any]:
    """Return a v2ray 4.34 outbound for the node, or raise UnsupportedByCore with the reason.

    `force_insecure` turns certificate checking off whatever the node says, because the URL test
    has to reach servers with self-signed certificates.
    """
    if node.protocol not in _PROTOCOLS:
        raise UnsupportedByCore(f"v2ray 4.34 has no {node.protocol} outbound")
    if node.security == "reality":
        raise UnsupportedByCore("v2ray 4.34 does not support REALITY")
    if node.network not in _TRANSPORTS:
        raise UnsupportedByCore(f"v2ray 4.34 does not support the {node.network} transport")

    if node.protocol in ("vmess", "vless"):
        settings = _vnext_settings(node)
    elif node.protocol == "trojan":
        settings = {"servers": [{"address": node.host, "port": node.port, "password": node.password}]}
    elif node.protocol == "ss":
        settings = _shadowsocks_settings(node)
    else:
        settings = _proxy_user_settings(node)

    outbound: dict[str, Any] = {
        "tag": tag,
        "protocol": "shadowsocks" if node.protocol == "ss" else node.protocol,
        "settings": settings,
    }
    stream = _stream_settings(node, force_insecure)
    if stream:
        outbound["streamSettings"] = stream
    return outbound


def _vnext_settings(node: Node) -> dict[str, Any]:
    try:
        user_id = check_uuid(node.uuid, node.protocol)
    except LinkError as error:
        raise UnsupportedByCore(str(error)) from None
    # Xray maps a short non-UUID id to a UUIDv5; v2ray 4.34 predates that and rejects it.
    if len(user_id) != 36:
        raise UnsupportedByCore(f"v2ray 4.34 needs a UUID as {node.protocol} id, got {node.uuid[:40]!r}")
    user: dict[str, Any] = {"id": user_id}
    if node.protocol == "vmess":
        user["alterId"] = node.alter_id
        user["security"] = node.method or "auto"
    else:
        if node.flow:
            raise UnsupportedByCore(f"v2ray 4.34 does not support the vless flow {node.flow!r}")
        user["encryption"] = "none"
    return {"vnext": [{"address": node.host, "port": node.port, "users": [user]}]}


def _shadowsocks_settings(node: Node) -> dict[str, Any]:
    method = _SS_METHODS.get(node.method)
    if method is None:
        raise UnsupportedByCore(f"v2ray 4.34 does not support the ss cipher {node.method!r}")
    if node.extra.get("plugin"):
        raise UnsupportedByCore(f"v2ray 4.34 does not run the ss plugin {node.extra['plugin']!r}")
    server = {"address": node.host, "port": node.port, "method": method, "password": node.password}
    return {"servers": [server]}


def _proxy_user_settings(node: Node) -> dict[str, Any]:
    version = node.extra.get("version")
    if node.protocol == "socks" and version not in (None, "", "5"):
        raise UnsupportedByCore(f"v2ray 4.34 only speaks SOCKS5, not SOCKS{version}")
    server: dict[str, Any] = {"address": node.host, "port": node.port}
    if node.username or node.password:
        server["users"] = [{"user": node.username, "pass": node.password}]
    return {"servers": [server]}


def _stream_settings(node: Node, force_insecure: bool) -> dict[str, Any]:
    stream: dict[str, Any] = {}
    network = node.network
    if network != "tcp" or node.extra.get("header_type"):
        # v2ray 4.x calls the HTTP/2 transport "http".
        stream["network"] = "http" if network == "h2" else network
    if network == "tcp" and node.extra.get("header_type") == "http":
        request: dict[str, Any] = {"path": [node.path or "/"]}
        if node.host_header:
            request["headers"] = {"Host": [part.strip() for part in node.host_header.split(",")]}
        stream["tcpSettings"] = {"header": {"type": "http", "request": request}}
    elif network == "ws":
        ws: dict[str, Any] = {"path": node.path or "/"}
        if node.host_header:
            ws["headers"] = {"Host": node.host_header}
        stream["wsSettings"] = ws
    elif network == "h2":
        h2: dict[str, Any] = {"path": node.path or "/"}
        if node.host_header:
            h2["host"] = [part.strip() for part in node.host_header.split(",") if part.strip()]
        stream["httpSettings"] = h2
    elif network == "kcp":
        kcp: dict[str, Any] = {"header": {"type": node.extra.get("header_type") or "none"}}
        if node.extra.get("seed"):
            kcp["seed"] = node.extra["seed"]
        stream["kcpSettings"] = kcp

    if node.security == "tls":
        tls: dict[str, Any] = {"allowInsecure": force_insecure or node.insecure}
        sni = node.sni or (node.host_header if network in ("ws", "h2") else "")
        if sni:
            tls["serverName"] = sni.split(",")[0].strip()
        if node.alpn:
            tls["alpn"] = list(node.alpn)
        stream["security"] = "tls"
        stream["tlsSettings"] = tls
    return stream
