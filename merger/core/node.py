"""The canonical proxy node and its fingerprint.

Every input format (share links, Clash YAML, sing-box JSON, v2ray JSON, SIP008) is parsed into
`Node`, and every export is written from it. A node keeps only what identifies and configures a
connection in one normalised shape, so that the same server read from two formats compares equal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

# Protocol names used in `Node.protocol`. Aliases such as `hy2`, `wg`, `socks5` and `shadowsocks`
# are mapped to these by the parsers.
PROTOCOLS = (
    "vmess",
    "vless",
    "trojan",
    "ss",
    "ssr",
    "hysteria",
    "hysteria2",
    "tuic",
    "wireguard",
    "socks",
    "http",
    "anytls",
)

# Transport names used in `Node.network`. `raw` is Xray's new name for `tcp` and is normalised to
# it; `http` (the old v2ray name of the HTTP/2 transport) is normalised to `h2`. `splithttp` is
# the old name of `xhttp`.
NETWORKS = ("tcp", "ws", "grpc", "h2", "httpupgrade", "xhttp", "kcp", "quic")

SECURITIES = ("none", "tls", "reality")

# Keys of `Node.extra` that take part in the fingerprint, because they change which server answers
# or how it must be spoken to. Other extra keys (bandwidth hints, mtu, udp relay mode...) are
# client-side tuning and are left out, so that two copies of one server that only differ in those
# are still duplicates.
IDENTITY_EXTRA_KEYS = (
    "plugin",
    "plugin_opts",
    "protocol",  # ssr protocol
    "protocol_param",
    "obfs",  # ssr obfs, hysteria/hysteria2 obfs type
    "obfs_param",
    "obfs_password",
    "ports",  # port hopping range of hysteria/hysteria2
    "private_key",
    "public_key",
    "pre_shared_key",
    "reserved",
    "local_address",
    "version",  # tuic version, socks version
    "header_type",
    "seed",  # kcp seed
)


@dataclass(slots=True)
class Node:
    """One proxy server as a client would connect to it.

    Fields that a protocol does not use keep their empty default. Strings are never None.
    `extra` carries protocol-specific values with the keys documented in `EXTRA_KEYS` below.
    """

    protocol: str
    host: str
    port: int
    name: str = ""

    # Credentials. `uuid` is the vmess/vless/tuic user id; `password` is the trojan, ss, ssr,
    # hysteria auth string, hysteria2, tuic, anytls, socks or http password; `method` is the ss
    # or ssr cipher or the vmess `scy` security setting.
    uuid: str = ""
    password: str = ""
    username: str = ""
    method: str = ""
    alter_id: int = 0
    flow: str = ""

    # Transport. `path` is the ws/h2/httpupgrade/xhttp path (or the kcp seed is in extra);
    # `host_header` is the HTTP Host header of ws/h2/httpupgrade/xhttp or the tcp http-obfs host;
    # `service_name` is the grpc service name; `mode` is the grpc (gun, multi) or xhttp mode.
    network: str = "tcp"
    path: str = ""
    host_header: str = ""
    service_name: str = ""
    mode: str = ""

    # Transport security.
    security: str = "none"
    sni: str = ""
    alpn: tuple[str, ...] = ()
    client_fingerprint: str = ""
    insecure: bool = False
    reality_public_key: str = ""
    reality_short_id: str = ""
    reality_spider_x: str = ""

    extra: dict[str, Any] = field(default_factory=dict)

    # Names of the sources the node was read from. Filled by the merge, not by parsers.
    sources: list[str] = field(default_factory=list)

    def identity(self) -> tuple:
        """Return the values that identify the connection, in a fixed order.

        The name, the sources and client-side choices (TLS client fingerprint, ALPN offer,
        certificate checking, REALITY spider path, gRPC and XHTTP mode) are left out, so that renamed copies and the
        same server written by different converters are duplicates of each other.
        """
        extra = self.extra
        host = self.host.lower()
        host_header = self.host_header.lower()
        # The SNI a client sends when none is set: mihomo and v2rayN take the WebSocket or
        # HTTPUpgrade Host header, otherwise the server address. Converters differ in whether they
        # write that default out, so the identity uses the effective value, with the server
        # address counted as empty.
        sni = self.sni.lower()
        if not sni and self.security == "tls" and self.network in ("ws", "httpupgrade"):
            sni = host_header
        if sni == host:
            sni = ""
        # An HTTP request target starts with "/", and some converters add it to a path such as
        # "?ed=2048" while others keep it as written.
        path = self.path
        if path and path[0] != "/" and self.network != "tcp":
            path = "/" + path
        extras = tuple(
            (key, _freeze(extra[key])) for key in IDENTITY_EXTRA_KEYS if extra.get(key) not in (None, "", (), [])
        )
        return (
            self.protocol,
            host,
            self.port,
            self.uuid.lower(),
            self.password,
            self.username,
            self.method.lower(),
            self.alter_id,
            self.flow,
            self.network,
            path,
            host_header,
            self.service_name,
            self.security,
            sni,
            self.reality_public_key,
            self.reality_short_id,
            extras,
        )

    @property
    def fingerprint(self) -> str:
        """Hex digest (32 characters) of `identity()`: equal for duplicates, stable across runs."""
        return hashlib.blake2b(repr(self.identity()).encode(), digest_size=16).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        """Return the node's fields as a JSON-serialisable dict, empty values left out."""
        result: dict[str, Any] = {}
        for name in self.__slots__:  # type: ignore[attr-defined]
            value = getattr(self, name)
            if value in ("", (), [], {}, None) or (name == "alter_id" and value == 0):
                continue
            if name == "insecure" and not value:
                continue
            if name == "network" and value == "tcp" or name == "security" and value == "none":
                continue
            result[name] = list(value) if isinstance(value, tuple) else value
        return result


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        # v2ray-plugin's `mux` is a client-side concurrency setting, written as a number by some
        # converters and a boolean by others, so it does not identify the server.
        return tuple(sorted((k, _freeze(v)) for k, v in value.items() if k != "mux"))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


# Documented keys of `Node.extra`, so that every parser and exporter uses the same spelling.
EXTRA_KEYS = {
    # ss
    "plugin": "ss plugin name, normalised: 'obfs-local' (simple-obfs) or 'v2ray-plugin', others kept",
    "plugin_opts": "ss plugin options as a dict of str to str (e.g. {'obfs': 'http', 'obfs-host': 'x'})",
    "udp_over_tcp": "ss: bool",
    # ssr
    "protocol": "ssr protocol, e.g. 'auth_aes128_md5'",
    "protocol_param": "ssr protocol parameter (decoded text)",
    "obfs": "ssr obfs (e.g. 'tls1.2_ticket_auth') or hysteria/hysteria2 obfs type ('salamander' for hy2)",
    "obfs_param": "ssr obfs parameter (decoded text)",
    "obfs_password": "hysteria2 obfs password; hysteria v1 obfs string",
    # hysteria v1 and v2
    "ports": "port hopping spec as a string, e.g. '443,1000-2000' (hysteria/hysteria2)",
    "up_mbps": "int, upload bandwidth hint (hysteria/hysteria2)",
    "down_mbps": "int, download bandwidth hint (hysteria/hysteria2)",
    "hysteria_protocol": "hysteria v1 transport: 'udp', 'wechat-video' or 'faketcp'",
    "pin_sha256": "hysteria2 certificate pin (pinSHA256)",
    # tuic
    "version": "tuic version (5) or socks version ('5', '4a', '4')",
    "congestion_control": "tuic: 'cubic', 'bbr' or 'new_reno'",
    "udp_relay_mode": "tuic: 'native' or 'quic'",
    "reduce_rtt": "tuic zero-RTT handshake: bool",
    # wireguard
    "private_key": "wireguard client private key (base64)",
    "public_key": "wireguard peer public key (base64)",
    "pre_shared_key": "wireguard pre-shared key (base64)",
    "reserved": "wireguard reserved bytes as a list of three ints",
    "local_address": "wireguard interface addresses as a list of CIDR strings",
    "mtu": "wireguard MTU: int",
    # transports
    "header_type": "tcp header type ('http') or kcp header type ('none', 'srtp', 'wechat-video'...)",
    "seed": "kcp seed",
    "extra_json": "xhttp 'extra' settings as a dict",
}
