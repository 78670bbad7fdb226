"""Conversion between `Node` and Clash / Clash.Meta (mihomo) proxy mappings.

`node_from_clash` reads the `proxies:` entries of a Clash config, including the older key
spellings that converters still write. `node_to_clash` writes the mapping mihomo expects and
raises `UnsupportedNode` for what mihomo cannot express. Field names follow the mihomo
documentation (wiki.metacubex.one, "config/proxies" pages).
"""

from __future__ import annotations

from typing import Any

from .errors import LinkError, UnsupportedNode
from .links.common import b64decode_text, check_host, check_port, check_uuid, normalize_network, truthy
from .links.hysteria import normalize_port_spec
from .links.shadowsocks import SSR_CIPHERS, SSR_OBFS, SSR_PROTOCOLS, check_ss_password, normalize_ss_cipher
from .links.simple import parse_local_address, parse_reserved
from .node import Node

# Shadowsocks ciphers that mihomo implements, from its documentation. `node_to_clash` writes
# only these, while input accepts every cipher that the ss link parser accepts.
CLASH_SS_CIPHERS = frozenset(
    (
        "aes-128-ctr aes-192-ctr aes-256-ctr aes-128-cfb aes-192-cfb aes-256-cfb "
        "aes-128-gcm aes-192-gcm aes-256-gcm aes-128-ccm aes-192-ccm aes-256-ccm "
        "aes-128-gcm-siv aes-256-gcm-siv chacha20-ietf chacha20 xchacha20 "
        "chacha20-ietf-poly1305 xchacha20-ietf-poly1305 chacha8-ietf-poly1305 xchacha8-ietf-poly1305 "
        "2022-blake3-aes-128-gcm 2022-blake3-aes-256-gcm 2022-blake3-chacha20-poly1305 "
        "lea-128-gcm lea-192-gcm lea-256-gcm rabbit128-poly1305 aegis-128l aegis-256 aez-384 "
        "deoxys-ii-256-128 rc4-md5 none"
    ).split()
)
# NOTE: the three mihomo SSR lists below come from its docs and examples. A name outside them
# makes mihomo reject the whole config file, so the exporter skips such nodes instead.
CLASH_SSR_CIPHERS = frozenset(
    "none dummy rc4-md5 aes-128-cfb aes-192-cfb aes-256-cfb aes-128-ctr aes-192-ctr aes-256-ctr "
    "chacha20 chacha20-ietf xchacha20 salsa20".split()
)
CLASH_SSR_PROTOCOLS = frozenset(
    "origin auth_sha1_v4 auth_aes128_md5 auth_aes128_sha1 auth_chain_a auth_chain_b".split()
)
CLASH_SSR_OBFS = frozenset(
    "plain http_simple http_post random_head tls1.2_ticket_auth tls1.2_ticket_fastauth".split()
)
CLASH_VMESS_CIPHERS = frozenset(("auto", "none", "zero", "aes-128-gcm", "chacha20-poly1305"))
# ss plugins that mihomo implements besides obfs and v2ray-plugin; their options pass through.
CLASH_OTHER_SS_PLUGINS = frozenset(("gost-plugin", "shadow-tls", "restls", "kcptun"))

_TYPE_ALIASES = {
    "shadowsocks": "ss",
    "shadowsocksr": "ssr",
    "hy2": "hysteria2",
    "wg": "wireguard",
    "socks": "socks5",
    "https": "http",
}
_PATH_NETWORKS = frozenset(("ws", "h2", "httpupgrade", "xhttp"))
_BANDWIDTH_UNITS = {"bps": 1e-6, "kbps": 1e-3, "mbps": 1.0, "gbps": 1e3, "tbps": 1e6}


# --- reading helpers -------------------------------------------------------------------------


def _text(value: Any) -> str:
    """Return a YAML scalar as text: None becomes '', numbers and booleans their usual spelling.

    A mapping or list where a scalar belongs is a broken entry. It is rejected rather than turned
    into its repr, which would also expand a YAML alias bomb.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise LinkError(f"expected a single value, got a {'mapping' if isinstance(value, dict) else 'list'}")
    return str(value)


def _opts(proxy: dict, key: str) -> dict:
    value = proxy.get(key)
    return value if isinstance(value, dict) else {}


def _header(headers: Any, name: str) -> str:
    """Return one HTTP header from a Clash headers mapping, whose values may be lists."""
    if not isinstance(headers, dict):
        return ""
    for key, value in headers.items():
        if str(key).lower() == name:
            if isinstance(value, list):
                return ",".join(_text(item) for item in value if item not in (None, ""))
            return _text(value)
    return ""


def _alpn(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(_text(item).strip() for item in value if _text(item).strip())
    return tuple(part.strip() for part in _text(value).split(",") if part.strip())


def _int(value: Any, what: str) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise LinkError(f"invalid {what} {value!r}: not a number") from None


def parse_bandwidth(value: Any) -> int:
    """Return a bandwidth in Mbit/s from 100, "100", "100 Mbps" or "1 Gbps"; 0 when empty."""
    if value is None or value == "":
        return 0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip().lower().replace(" ", "")
    digits_end = 0
    while digits_end < len(text) and (text[digits_end].isdigit() or text[digits_end] == "."):
        digits_end += 1
    number, unit = text[:digits_end], text[digits_end:] or "mbps"
    scale = _BANDWIDTH_UNITS.get(unit)
    if not number or scale is None:
        raise LinkError(f"invalid bandwidth {value!r}: expected a number with bps, Kbps, Mbps or Gbps")
    return round(float(number) * scale)


def normalize_ports(value: Any) -> str:
    """Return a port-hopping spec as "443,1000-2000" from a Clash `ports` value.

    Besides the forms `normalize_port_spec` reads, "/" and ";" separators are accepted.
    """
    return normalize_port_spec(_text(value).replace("/", ",").replace(";", ","))


def _server(proxy: dict) -> str:
    host = _text(proxy.get("server")).strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return check_host(host)


def _read_tls_fields(node: Node, proxy: dict, sni_key: str, utls: bool = True, reality: bool = True) -> None:
    """Read SNI, ALPN and certificate checking, plus the uTLS fingerprint and REALITY if asked.

    mihomo documents `servername` for vmess/vless and `sni` elsewhere; either is accepted.
    """
    other_key = "sni" if sni_key == "servername" else "servername"
    node.sni = _text(proxy.get(sni_key) or proxy.get(other_key)).strip()
    node.alpn = _alpn(proxy.get("alpn"))
    node.insecure = truthy(proxy.get("skip-cert-verify") or False)
    if utls:
        node.client_fingerprint = _text(proxy.get("client-fingerprint")).strip()
    if not reality:
        return
    reality_opts = _opts(proxy, "reality-opts")
    public_key = _text(reality_opts.get("public-key")).strip()
    if public_key:
        node.security = "reality"
        node.reality_public_key = public_key
        # NOTE: an unquoted all-digit short id reaches us as a YAML int, so leading zeros or an
        # octal spelling are already lost here.
        node.reality_short_id = _text(reality_opts.get("short-id")).strip()


def _finish_security(node: Node) -> None:
    """Drop TLS fields the chosen security does not use, as the normalisation rules require."""
    if node.security == "none":
        node.sni = ""
        node.alpn = ()
        node.client_fingerprint = ""
        node.insecure = False
    if node.security != "reality":
        node.reality_public_key = ""
        node.reality_short_id = ""
        node.reality_spider_x = ""


# --- transports ------------------------------------------------------------------------------


def _read_transport(node: Node, proxy: dict) -> None:
    """Fill network, path, host header, service name and mode of a vmess/vless/trojan proxy."""
    raw_network = _text(proxy.get("network")).strip().lower()
    # Old Clash vmess wrote `obfs: websocket` with `obfs-host` instead of a network.
    if not raw_network and _text(proxy.get("obfs")).lower() in ("websocket", "ws"):
        raw_network = "ws"
    if raw_network == "http":
        # Clash's "http" network is the HTTP/1.1 header disguise over TCP (v2ray tcp + http
        # header), not the HTTP/2 transport that share links call "http".
        http_opts = _opts(proxy, "http-opts")
        node.network = "tcp"
        node.extra["header_type"] = "http"
        paths = http_opts.get("path")
        if isinstance(paths, list):
            node.path = ",".join(_text(path) for path in paths if path not in (None, ""))
        else:
            node.path = _text(paths)
        node.host_header = _header(http_opts.get("headers"), "host")
        return
    if raw_network in ("kcp", "mkcp", "quic"):
        raise LinkError(f"unsupported clash network {raw_network!r}")
    network = normalize_network(raw_network)

    if network in ("ws", "httpupgrade"):
        ws_opts = _opts(proxy, "ws-opts") or _opts(proxy, "http-upgrade-opts")
        if truthy(ws_opts.get("v2ray-http-upgrade") or False):
            network = "httpupgrade"
        node.path = _text(ws_opts.get("path") or proxy.get("ws-path")).strip()
        node.host_header = _header(ws_opts.get("headers") or proxy.get("ws-headers"), "host") or _text(
            proxy.get("obfs-host")
        )
        early_data = ws_opts.get("max-early-data")
        header_name = _text(ws_opts.get("early-data-header-name"))
        # Share links carry early data as "?ed=N" in the path; subconverter moves it into
        # max-early-data with the Sec-WebSocket-Protocol header. Putting it back keeps both
        # spellings of one server equal.
        if early_data and header_name.lower() == "sec-websocket-protocol" and "ed=" not in node.path:
            node.path = (
                f"{node.path or '/'}{'&' if '?' in node.path else '?'}ed={_int(early_data, 'max-early-data')}"
            )
    elif network == "h2":
        h2_opts = _opts(proxy, "h2-opts")
        node.path = _text(h2_opts.get("path")).strip()
        hosts = h2_opts.get("host")
        if isinstance(hosts, list):
            node.host_header = ",".join(_text(host) for host in hosts if host not in (None, ""))
        else:
            node.host_header = _text(hosts)
    elif network == "grpc":
        grpc_opts = _opts(proxy, "grpc-opts")
        node.service_name = _text(grpc_opts.get("grpc-service-name")).strip()
        mode = _text(grpc_opts.get("grpc-mode")).strip().lower()
        node.mode = mode if mode in ("gun", "multi") else ""
    elif network == "xhttp":
        xhttp_opts = _opts(proxy, "xhttp-opts")
        node.path = _text(xhttp_opts.get("path")).strip()
        node.host_header = _text(xhttp_opts.get("host")).strip()
        node.mode = _text(xhttp_opts.get("mode")).strip()
    node.network = network
    if network in _PATH_NETWORKS and not node.path:
        node.path = "/"


# --- per-protocol readers --------------------------------------------------------------------


def _vmess(node: Node, proxy: dict) -> None:
    node.uuid = check_uuid(_text(proxy.get("uuid")).strip(), "vmess")
    alter_id = proxy.get("alterId", proxy.get("alter-id", 0))
    node.alter_id = _int(alter_id, "alterId") if alter_id not in (None, "") else 0
    node.method = _text(proxy.get("cipher")).strip().lower() or "auto"
    if truthy(proxy.get("tls") or False):
        node.security = "tls"
    _read_tls_fields(node, proxy, "servername")
    _read_transport(node, proxy)
    _sni_from_ws_host(node)


def _sni_from_ws_host(node: Node) -> None:
    # Without `servername`, mihomo sends the WebSocket Host header as the SNI of a vmess or vless
    # proxy (Clash documents servername as taking "priority over wss host").
    if not node.sni and node.security == "tls" and node.network in ("ws", "httpupgrade") and node.host_header:
        node.sni = node.host_header


def _vless(node: Node, proxy: dict) -> None:
    node.uuid = check_uuid(_text(proxy.get("uuid")).strip(), "vless")
    encryption = _text(proxy.get("encryption")).strip()
    if encryption not in ("", "none"):
        raise LinkError(f"unsupported vless encryption {encryption[:40]!r}")
    node.flow = _text(proxy.get("flow")).strip()
    if truthy(proxy.get("tls") or False):
        node.security = "tls"
    _read_tls_fields(node, proxy, "servername")
    _read_transport(node, proxy)
    _sni_from_ws_host(node)


def _trojan(node: Node, proxy: dict) -> None:
    node.password = _text(proxy.get("password"))
    if not node.password:
        raise LinkError("missing trojan password")
    # mihomo always uses TLS for a trojan server, whatever `tls:` is set to.
    node.security = "tls"
    _read_tls_fields(node, proxy, "sni")
    _read_transport(node, proxy)


def _ss_plugin(node: Node, proxy: dict) -> None:
    plugin = _text(proxy.get("plugin")).strip()
    if not plugin:
        return
    opts = _opts(proxy, "plugin-opts")
    if plugin in ("obfs", "simple-obfs", "obfs-local"):
        plugin_opts = {}
        mode = _text(opts.get("mode") or opts.get("obfs")).strip().lower()
        if mode:
            plugin_opts["obfs"] = mode
        host = _text(opts.get("host") or opts.get("obfs-host")).strip()
        if host:
            plugin_opts["obfs-host"] = host
        node.extra["plugin"] = "obfs-local"
        node.extra["plugin_opts"] = plugin_opts
        return
    if plugin == "v2ray-plugin":
        plugin_opts = {"mode": _text(opts.get("mode")).strip().lower() or "websocket"}
        for key in ("host", "path"):
            value = _text(opts.get(key)).strip()
            if value:
                plugin_opts[key] = value
        if truthy(opts.get("tls") or False):
            plugin_opts["tls"] = "true"
        if "mux" in opts and opts["mux"] is not None:
            plugin_opts["mux"] = _text(opts["mux"]).lower()
        node.extra["plugin"] = "v2ray-plugin"
        node.extra["plugin_opts"] = plugin_opts
        return
    # Other plugins keep their name and flat options as text.
    node.extra["plugin"] = plugin
    node.extra["plugin_opts"] = {
        str(key): _text(value) for key, value in opts.items() if not isinstance(value, (dict, list))
    }


def _ss(node: Node, proxy: dict) -> None:
    node.method = normalize_ss_cipher(_text(proxy.get("cipher") or proxy.get("method")))
    node.password = check_ss_password(node.method, _text(proxy.get("password")))
    _ss_plugin(node, proxy)
    if truthy(proxy.get("udp-over-tcp") or False):
        node.extra["udp_over_tcp"] = True


def _ssr(node: Node, proxy: dict) -> None:
    method = _text(proxy.get("cipher") or proxy.get("method")).strip().lower()
    if method not in SSR_CIPHERS:
        raise LinkError(f"unknown ssr cipher {method[:40]!r}")
    protocol = _text(proxy.get("protocol")).strip().lower() or "origin"
    if protocol not in SSR_PROTOCOLS:
        raise LinkError(f"unknown ssr protocol {protocol[:40]!r}")
    obfs = _text(proxy.get("obfs")).strip().lower() or "plain"
    if obfs not in SSR_OBFS:
        raise LinkError(f"unknown ssr obfs {obfs[:40]!r}")
    node.method = method
    node.password = _text(proxy.get("password"))
    if not node.password and method != "none":
        raise LinkError("missing ssr password")
    node.extra["protocol"] = protocol
    node.extra["obfs"] = obfs
    # SSR ignores the parameter of the `origin` protocol and of the `plain` obfs; the link parser
    # drops them for the same reason.
    protocol_param = _text(proxy.get("protocol-param", proxy.get("protocolparam")))
    obfs_param = _text(proxy.get("obfs-param", proxy.get("obfsparam")))
    if protocol_param and protocol != "origin":
        node.extra["protocol_param"] = protocol_param
    if obfs_param and obfs != "plain":
        node.extra["obfs_param"] = obfs_param


def _bandwidth(node: Node, proxy: dict) -> None:
    up = parse_bandwidth(proxy.get("up") or proxy.get("up-speed") or proxy.get("up_mbps"))
    down = parse_bandwidth(proxy.get("down") or proxy.get("down-speed") or proxy.get("down_mbps"))
    if up:
        node.extra["up_mbps"] = up
    if down:
        node.extra["down_mbps"] = down


def _hysteria_common(node: Node, proxy: dict) -> None:
    node.security = "tls"
    _read_tls_fields(node, proxy, "sni", utls=False, reality=False)
    ports = proxy.get("ports")
    if ports not in (None, ""):
        spec = normalize_ports(ports)
        # A spec that is only the main port hops nowhere, and the link parser drops it too.
        if spec != str(node.port):
            node.extra["ports"] = spec
    _bandwidth(node, proxy)


def _hysteria(node: Node, proxy: dict) -> None:
    password = _text(proxy.get("auth-str") or proxy.get("auth_str"))
    if not password and proxy.get("auth"):
        # `auth` contains the auth bytes in base64. Binary auth is kept in its base64 form.
        try:
            password = b64decode_text(_text(proxy["auth"]))
        except LinkError:
            password = _text(proxy["auth"])
    node.password = password
    _hysteria_common(node, proxy)
    # NOTE: hysteria v1 has one obfuscation ("xplus"), so only its password is stored.
    obfs = _text(proxy.get("obfs"))
    if obfs:
        node.extra["obfs_password"] = obfs
    protocol = _text(proxy.get("protocol")).strip().lower()
    if protocol:
        node.extra["hysteria_protocol"] = protocol


def _hysteria2(node: Node, proxy: dict) -> None:
    node.password = _text(proxy.get("password") or proxy.get("auth"))
    if not node.password:
        raise LinkError("missing hysteria2 password")
    _hysteria_common(node, proxy)
    obfs = _text(proxy.get("obfs")).strip().lower()
    if obfs:
        node.extra["obfs"] = obfs
        obfs_password = _text(proxy.get("obfs-password"))
        if obfs_password:
            node.extra["obfs_password"] = obfs_password
    pin = _text(proxy.get("fingerprint")).strip()
    if pin:
        node.extra["pin_sha256"] = pin


def _tuic(node: Node, proxy: dict) -> None:
    if proxy.get("token") and not proxy.get("uuid"):
        raise LinkError("unsupported tuic v4 proxy (token): only tuic v5 with uuid and password is supported")
    node.uuid = check_uuid(_text(proxy.get("uuid")).strip(), "tuic")
    node.password = _text(proxy.get("password"))
    if not node.password:
        raise LinkError("missing tuic password")
    node.security = "tls"
    _read_tls_fields(node, proxy, "sni", utls=False, reality=False)
    node.extra["version"] = 5
    congestion = _text(proxy.get("congestion-controller") or proxy.get("congestion-control")).strip().lower()
    if congestion:
        node.extra["congestion_control"] = congestion
    relay_mode = _text(proxy.get("udp-relay-mode")).strip().lower()
    if relay_mode:
        node.extra["udp_relay_mode"] = relay_mode
    if truthy(proxy.get("reduce-rtt") or False):
        node.extra["reduce_rtt"] = True


def _wireguard(node: Node, proxy: dict) -> None:
    if proxy.get("amnezia-wg-option"):
        raise LinkError("unsupported wireguard amnezia-wg-option")
    private_key = _text(proxy.get("private-key")).strip()
    if not private_key:
        raise LinkError("missing wireguard private-key")

    peer = proxy
    peers = proxy.get("peers")
    if isinstance(peers, list) and peers:
        if len(peers) > 1:
            raise LinkError(
                f"unsupported wireguard config with {len(peers)} peers: only one peer is supported"
            )
        if not isinstance(peers[0], dict):
            raise LinkError("invalid wireguard peers entry: expected a mapping")
        # With `peers:`, mihomo ignores the top-level server, port and keys.
        peer = peers[0]
        node.host = _server(peer)
        node.port = check_port(peer.get("port"))

    public_key = _text(peer.get("public-key")).strip()
    if not public_key:
        raise LinkError("missing wireguard public-key")
    extra = node.extra
    extra["private_key"] = private_key
    extra["public_key"] = public_key
    pre_shared_key = _text(peer.get("pre-shared-key") or peer.get("preshared-key")).strip()
    if pre_shared_key:
        extra["pre_shared_key"] = pre_shared_key
    reserved = peer.get("reserved")
    if reserved not in (None, "", []):
        extra["reserved"] = parse_reserved(reserved)
    addresses = [_text(proxy.get(key)).strip() for key in ("ip", "ipv6")]
    local_address = parse_local_address([address for address in addresses if address])
    if local_address:
        extra["local_address"] = local_address
    mtu = proxy.get("mtu")
    if mtu not in (None, ""):
        extra["mtu"] = _int(mtu, "wireguard mtu")


def _proxy_auth(node: Node, proxy: dict) -> None:
    """Read username, password and optional TLS of a socks5 or http proxy."""
    node.username = _text(proxy.get("username"))
    node.password = _text(proxy.get("password"))
    if truthy(proxy.get("tls") or False):
        node.security = "tls"
        _read_tls_fields(node, proxy, "sni", utls=False, reality=False)


def _socks5(node: Node, proxy: dict) -> None:
    _proxy_auth(node, proxy)
    node.extra["version"] = "5"


def _anytls(node: Node, proxy: dict) -> None:
    node.password = _text(proxy.get("password"))
    if not node.password:
        raise LinkError("missing anytls password")
    node.security = "tls"
    _read_tls_fields(node, proxy, "sni", reality=False)


_READERS = {
    "vmess": _vmess,
    "vless": _vless,
    "trojan": _trojan,
    "ss": _ss,
    "ssr": _ssr,
    "hysteria": _hysteria,
    "hysteria2": _hysteria2,
    "tuic": _tuic,
    "wireguard": _wireguard,
    "socks5": _socks5,
    "http": _proxy_auth,
    "anytls": _anytls,
}
_PROTOCOLS = {"socks5": "socks"}


def node_from_clash(proxy: dict) -> Node:
    """Convert one entry of a Clash `proxies:` list to a Node.

    Raises LinkError with a short reason for an entry that is not a mapping, has an unknown
    type, or misses or has invalid required values.
    """
    if not isinstance(proxy, dict):
        raise LinkError(f"invalid clash proxy: expected a mapping, got {type(proxy).__name__}")
    proxy_type = _text(proxy.get("type")).strip().lower()
    proxy_type = _TYPE_ALIASES.get(proxy_type, proxy_type)
    reader = _READERS.get(proxy_type)
    if reader is None:
        raise LinkError(
            f"unsupported clash proxy type {proxy_type!r}" if proxy_type else "missing clash proxy type"
        )
    port = proxy.get("port")
    if port in (None, "") and proxy_type in ("hysteria", "hysteria2") and proxy.get("ports"):
        port = normalize_ports(proxy["ports"]).split(",")[0].split("-")[0]
    if proxy_type == "wireguard" and isinstance(proxy.get("peers"), list) and proxy["peers"]:
        # The peer carries the endpoint; the reader fills host and port from it.
        host, port_number = "", 0
    else:
        host, port_number = _server(proxy), check_port(port)
    node = Node(
        protocol=_PROTOCOLS.get(proxy_type, proxy_type),
        host=host,
        port=port_number,
        name=_text(proxy.get("name")).strip(),
    )
    reader(node, proxy)
    _finish_security(node)
    return node


# --- writing ---------------------------------------------------------------------------------


def _write_tls(result: dict, node: Node, sni_key: str) -> None:
    if node.sni:
        result[sni_key] = node.sni
    if node.alpn:
        result["alpn"] = list(node.alpn)
    if node.insecure:
        result["skip-cert-verify"] = True


def _write_stream_security(result: dict, node: Node, sni_key: str) -> None:
    """Write TLS or REALITY settings of a vmess, vless or trojan node."""
    if node.security == "none":
        return
    if sni_key == "servername":
        result["tls"] = True
    _write_tls(result, node, sni_key)
    if node.client_fingerprint:
        result["client-fingerprint"] = node.client_fingerprint
    if node.security == "reality":
        reality = {"public-key": node.reality_public_key}
        if node.reality_short_id:
            reality["short-id"] = node.reality_short_id
        result["reality-opts"] = reality


def _write_transport(result: dict, node: Node) -> None:
    network = node.network
    protocol = node.protocol
    if network == "tcp":
        if node.extra.get("header_type") != "http":
            return
        if protocol == "trojan":
            raise UnsupportedNode("trojan with an http header disguise is not supported by Clash.Meta")
        http_opts: dict[str, Any] = {"method": "GET"}
        if node.path:
            http_opts["path"] = node.path.split(",")
        if node.host_header:
            http_opts["headers"] = {"Host": node.host_header.split(",")}
        result["network"] = "http"
        result["http-opts"] = http_opts
    elif network in ("ws", "httpupgrade"):
        ws_opts: dict[str, Any] = {"path": node.path or "/"}
        if node.host_header:
            ws_opts["headers"] = {"Host": node.host_header}
        if network == "httpupgrade":
            ws_opts["v2ray-http-upgrade"] = True
        result["network"] = "ws"
        result["ws-opts"] = ws_opts
    elif network == "grpc":
        result["network"] = "grpc"
        result["grpc-opts"] = {"grpc-service-name": node.service_name}
    elif network == "h2":
        if protocol == "trojan":
            raise UnsupportedNode("trojan over h2 is not supported by Clash.Meta")
        h2_opts: dict[str, Any] = {"path": node.path or "/"}
        if node.host_header:
            h2_opts["host"] = node.host_header.split(",")
        result["network"] = "h2"
        result["h2-opts"] = h2_opts
    elif network == "xhttp":
        if protocol != "vless":
            raise UnsupportedNode(f"{protocol} over xhttp is not supported by Clash.Meta (vless only)")
        xhttp_opts = {"path": node.path or "/"}
        if node.host_header:
            xhttp_opts["host"] = node.host_header
        if node.mode:
            xhttp_opts["mode"] = node.mode
        result["network"] = "xhttp"
        result["xhttp-opts"] = xhttp_opts
    else:
        raise UnsupportedNode(f"{network} transport is not supported by Clash.Meta")


def _write_vmess(result: dict, node: Node) -> None:
    method = node.method or "auto"
    if method not in CLASH_VMESS_CIPHERS:
        raise UnsupportedNode(f"vmess cipher {method!r} is not supported by Clash.Meta")
    result["uuid"] = node.uuid
    result["alterId"] = node.alter_id
    result["cipher"] = method
    _write_stream_security(result, node, "servername")
    _write_transport(result, node)


def _write_vless(result: dict, node: Node) -> None:
    result["uuid"] = node.uuid
    if node.flow:
        result["flow"] = node.flow
    _write_stream_security(result, node, "servername")
    _write_transport(result, node)


def _write_trojan(result: dict, node: Node) -> None:
    if node.security == "none":
        raise UnsupportedNode("trojan without TLS is not supported by Clash.Meta")
    result["password"] = node.password
    _write_stream_security(result, node, "sni")
    _write_transport(result, node)


def _write_ss_plugin(result: dict, node: Node) -> None:
    plugin = node.extra.get("plugin")
    if not plugin:
        return
    opts = node.extra.get("plugin_opts") or {}
    if plugin == "obfs-local":
        mode = opts.get("obfs", "")
        if mode not in ("http", "tls"):
            raise UnsupportedNode(f"obfs mode {mode!r} is not supported by Clash.Meta (http or tls)")
        plugin_opts = {"mode": mode}
        if opts.get("obfs-host"):
            plugin_opts["host"] = opts["obfs-host"]
        result["plugin"] = "obfs"
        result["plugin-opts"] = plugin_opts
    elif plugin == "v2ray-plugin":
        mode = opts.get("mode", "websocket")
        if mode != "websocket":
            raise UnsupportedNode(
                f"v2ray-plugin mode {mode!r} is not supported by Clash.Meta (websocket only)"
            )
        v2ray_opts: dict[str, Any] = {"mode": "websocket"}
        for key in ("host", "path"):
            if opts.get(key):
                v2ray_opts[key] = opts[key]
        if opts.get("tls") == "true":
            v2ray_opts["tls"] = True
        if "mux" in opts:
            v2ray_opts["mux"] = truthy(opts["mux"])
        result["plugin"] = "v2ray-plugin"
        result["plugin-opts"] = v2ray_opts
    elif plugin in CLASH_OTHER_SS_PLUGINS:
        result["plugin"] = plugin
        result["plugin-opts"] = dict(opts)
    else:
        raise UnsupportedNode(f"ss plugin {plugin!r} is not supported by Clash.Meta")


def _write_ss(result: dict, node: Node) -> None:
    if node.method not in CLASH_SS_CIPHERS:
        raise UnsupportedNode(f"ss cipher {node.method!r} is not supported by Clash.Meta")
    result["cipher"] = node.method
    result["password"] = node.password
    _write_ss_plugin(result, node)
    if node.extra.get("udp_over_tcp"):
        result["udp-over-tcp"] = True


def _write_ssr(result: dict, node: Node) -> None:
    extra = node.extra
    protocol = extra.get("protocol") or "origin"
    obfs = extra.get("obfs") or "plain"
    if node.method not in CLASH_SSR_CIPHERS:
        raise UnsupportedNode(f"ssr cipher {node.method!r} is not supported by Clash.Meta")
    if protocol not in CLASH_SSR_PROTOCOLS:
        raise UnsupportedNode(f"ssr protocol {protocol!r} is not supported by Clash.Meta")
    if obfs not in CLASH_SSR_OBFS:
        raise UnsupportedNode(f"ssr obfs {obfs!r} is not supported by Clash.Meta")
    result["cipher"] = node.method
    result["password"] = node.password
    result["protocol"] = protocol
    result["obfs"] = obfs
    if extra.get("protocol_param"):
        result["protocol-param"] = extra["protocol_param"]
    if extra.get("obfs_param"):
        result["obfs-param"] = extra["obfs_param"]


def _write_hysteria(result: dict, node: Node) -> None:
    extra = node.extra
    if extra.get("ports"):
        result["ports"] = extra["ports"]
    result["auth-str"] = node.password
    if extra.get("obfs_password"):
        result["obfs"] = extra["obfs_password"]
    result["protocol"] = extra.get("hysteria_protocol") or "udp"
    # mihomo rejects a hysteria v1 proxy without bandwidth; links often omit it.
    # NOTE: 10/50 Mbps is a conservative guess for such links, not a value from the server.
    result["up"] = f"{extra.get('up_mbps') or 10} Mbps"
    result["down"] = f"{extra.get('down_mbps') or 50} Mbps"
    _write_tls(result, node, "sni")


def _write_hysteria2(result: dict, node: Node) -> None:
    extra = node.extra
    if extra.get("ports"):
        result["ports"] = extra["ports"]
    result["password"] = node.password
    if extra.get("up_mbps"):
        result["up"] = f"{extra['up_mbps']} Mbps"
    if extra.get("down_mbps"):
        result["down"] = f"{extra['down_mbps']} Mbps"
    obfs = extra.get("obfs")
    if obfs:
        if obfs != "salamander":
            raise UnsupportedNode(f"hysteria2 obfs {obfs!r} is not supported by Clash.Meta (salamander only)")
        result["obfs"] = obfs
        result["obfs-password"] = extra.get("obfs_password", "")
    if extra.get("pin_sha256"):
        result["fingerprint"] = extra["pin_sha256"]
    _write_tls(result, node, "sni")


def _write_tuic(result: dict, node: Node) -> None:
    extra = node.extra
    if str(extra.get("version", 5)) != "5":
        raise UnsupportedNode(f"tuic version {extra.get('version')!r} is not supported: only v5 is written")
    result["uuid"] = node.uuid
    result["password"] = node.password
    if extra.get("congestion_control"):
        result["congestion-controller"] = extra["congestion_control"]
    if extra.get("udp_relay_mode"):
        result["udp-relay-mode"] = extra["udp_relay_mode"]
    if extra.get("reduce_rtt"):
        result["reduce-rtt"] = True
    _write_tls(result, node, "sni")


def _write_wireguard(result: dict, node: Node) -> None:
    extra = node.extra
    ipv4 = [address for address in extra.get("local_address") or () if ":" not in address]
    ipv6 = [address for address in extra.get("local_address") or () if ":" in address]
    if len(ipv4) > 1 or len(ipv6) > 1:
        raise UnsupportedNode(
            "wireguard with more than one IPv4 or IPv6 interface address is not supported by Clash.Meta"
        )
    result["private-key"] = extra.get("private_key", "")
    result["public-key"] = extra.get("public_key", "")
    if extra.get("pre_shared_key"):
        result["pre-shared-key"] = extra["pre_shared_key"]
    if ipv4:
        result["ip"] = ipv4[0]
    if ipv6:
        result["ipv6"] = ipv6[0]
    if extra.get("reserved"):
        result["reserved"] = list(extra["reserved"])
    if extra.get("mtu"):
        result["mtu"] = extra["mtu"]
    result["allowed-ips"] = ["0.0.0.0/0", "::/0"]


def _write_proxy_auth(result: dict, node: Node) -> None:
    if node.username:
        result["username"] = node.username
    if node.password:
        result["password"] = node.password
    if node.security == "tls":
        result["tls"] = True
        _write_tls(result, node, "sni")


def _write_socks(result: dict, node: Node) -> None:
    version = str(node.extra.get("version") or "5")
    if version != "5":
        raise UnsupportedNode(f"socks{version} is not supported by Clash.Meta (socks5 only)")
    _write_proxy_auth(result, node)


def _write_anytls(result: dict, node: Node) -> None:
    result["password"] = node.password
    _write_tls(result, node, "sni")
    if node.client_fingerprint:
        result["client-fingerprint"] = node.client_fingerprint


_WRITERS = {
    "vmess": ("vmess", _write_vmess),
    "vless": ("vless", _write_vless),
    "trojan": ("trojan", _write_trojan),
    "ss": ("ss", _write_ss),
    "ssr": ("ssr", _write_ssr),
    "hysteria": ("hysteria", _write_hysteria),
    "hysteria2": ("hysteria2", _write_hysteria2),
    "tuic": ("tuic", _write_tuic),
    "wireguard": ("wireguard", _write_wireguard),
    "socks": ("socks5", _write_socks),
    "http": ("http", _write_proxy_auth),
    "anytls": ("anytls", _write_anytls),
}
# http proxies carry no UDP; every other type relays UDP in mihomo when asked to.
_NO_UDP = frozenset(("http",))


def node_to_clash(node: Node, name: str) -> dict[str, Any]:
    """Return the mihomo proxy mapping of a node, named `name`.

    Raises UnsupportedNode with the reason when mihomo cannot express the node (an ss plugin or
    cipher it lacks, kcp or quic transport, xhttp on a protocol other than vless, socks4...).
    """
    writer = _WRITERS.get(node.protocol)
    if writer is None:
        raise UnsupportedNode(f"protocol {node.protocol!r} is not supported by Clash.Meta")
    clash_type, write = writer
    result: dict[str, Any] = {"name": name, "type": clash_type, "server": node.host, "port": node.port}
    write(result, node)
    if node.protocol not in _NO_UDP:
        result["udp"] = True
    return result
