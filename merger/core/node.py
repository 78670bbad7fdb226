"""The canonical proxy node and its fingerprint.

Every input format (share links, Clash YAML, sing-box JSON, v2ray JSON, SIP008) is parsed into
`Node`, and every export is written from it. A node keeps only what identifies and configures a
connection in one normalised shape, so that the same server read from two formats compares equal.
"""

from __future__ import annotations

import hashlib
import operator
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


class _FingerprintSlot:
    """Base of `Node` that stores the fingerprint cache outside the dataclass fields.

    The slot is not a field, so it stays out of `Node.__slots__`, `__init__`, `==` and repr, and
    `dataclasses.replace` returns a node without it. It is unset until `cache_fingerprint` runs.
    """

    __slots__ = ("_fingerprint",)


@dataclass(slots=True)
class Node(_FingerprintSlot):
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
        certificate checking, REALITY spider path, gRPC and XHTTP mode) are left out, so that
        renamed copies and the same server written by different converters are duplicates.
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
        # Most nodes carry no identity extras, so the node's few extra keys are looked up in the
        # rank table instead of probing every key of IDENTITY_EXTRA_KEYS.
        extras: tuple = ()
        if extra:
            ranked = [
                (rank, key, value)
                for key, value in extra.items()
                if (rank := _IDENTITY_EXTRA_RANK.get(key)) is not None and value not in (None, "", (), [])
            ]
            if ranked:
                if len(ranked) > 1:
                    ranked.sort()
                extras = tuple([(key, _freeze(value)) for _, key, value in ranked])
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
        try:
            return self._fingerprint
        except AttributeError:
            return fingerprint_of(self.identity())

    def cache_fingerprint(self, identity: tuple | None = None) -> str:
        """Compute the fingerprint once and keep it for later reads of `fingerprint`.

        `identity` may pass the value of `identity()` that the caller already has. The merge calls
        this on the nodes it keeps, because the CSV, the JSON report and the database all read
        the fingerprint again.
        NOTE: the cache is not invalidated. Code that changes an identifying field afterwards
        must delete `_fingerprint`.
        """
        cached = fingerprint_of(self.identity() if identity is None else identity)
        self._fingerprint = cached
        return cached

    def as_dict(self) -> dict[str, Any]:
        """Return the node's fields as a JSON-serialisable dict, empty values left out.

        Fields come in declaration order. `alter_id` 0, `insecure` False, `network` "tcp" and
        `security` "none" count as empty. Tuples become lists; `extra` and `sources` are the
        node's own objects, not copies.
        """
        if not self.port:
            return self._as_dict_checked()
        # Every field but `port` is a string, tuple, list, dict, bool or int whose falsy values
        # count as empty, so a truth test filters them.
        result = {name: value for name, value in zip(_DICT_FIELDS, _field_values(self), strict=True) if value}
        if result.get("network") == "tcp":
            del result["network"]
        if result.get("security") == "none":
            del result["security"]
        for name in ("alpn", "sources"):
            value = result.get(name)
            if isinstance(value, tuple):
                result[name] = list(value)
        return result

    def _as_dict_checked(self) -> dict[str, Any]:
        # The field-by-field form of `as_dict`, for a port that is 0 or empty: 0 is written out,
        # and the truth test of the fast path would drop it.
        result: dict[str, Any] = {}
        for name, value in zip(_DICT_FIELDS, _field_values(self), strict=True):
            if value in _EMPTY_VALUES or value == _DEFAULT_OMITTED.get(name, _NO_DEFAULT):
                continue
            result[name] = list(value) if isinstance(value, tuple) else value
        return result


# Position of each identity extra key, which fixes the order of extras in `identity()`.
_IDENTITY_EXTRA_RANK = {key: rank for rank, key in enumerate(IDENTITY_EXTRA_KEYS)}

# Fields written by `as_dict`, in declaration order, and the values that count as empty there.
_DICT_FIELDS = Node.__slots__  # type: ignore[attr-defined]
_field_values = operator.attrgetter(*_DICT_FIELDS)
_EMPTY_VALUES = ("", (), [], {}, None)
_DEFAULT_OMITTED: dict[str, Any] = {"alter_id": 0, "insecure": False, "network": "tcp", "security": "none"}
_NO_DEFAULT = object()


def fingerprint_of(identity: tuple) -> str:
    """Return the fingerprint of a value of `Node.identity()`."""
    return hashlib.blake2b(repr(identity).encode(), digest_size=16).hexdigest()


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
