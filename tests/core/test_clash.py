"""Clash / Clash.Meta (mihomo) proxy conversion and config export."""

from __future__ import annotations

import collections

import orjson
import pytest
import yaml

from merger.core.clash import node_from_clash, node_to_clash, parse_bandwidth
from merger.core.errors import LinkError, UnsupportedNode
from merger.core.export.clash import render_clash
from merger.core.node import Node
from tests.conftest import CORPUS_DIR, corpus_files

BASE = {"name": "x", "server": "127.0.0.20", "port": 443}
UUID = "0b5a9a4e-6a3b-4f7c-9d2e-1f2a3b4c5d6e"


def _load(text: str) -> dict:
    return yaml.load(text, Loader=yaml.CSafeLoader)


def _proxy(**fields: object) -> dict:
    return {**BASE, **fields}


# --- corpus ----------------------------------------------------------------------------------

# Protocol counts of each Clash corpus file, from the corpus README.
EXPECTED_PROTOCOLS = {
    "clash-meta-mixed.yaml": {
        "http": 321,
        "vless": 54,
        "ss": 43,
        "hysteria2": 31,
        "anytls": 30,
        "socks": 12,
        "vmess": 6,
        "trojan": 2,
        "ssr": 1,
    },
    "clash-flow-ipv6.yaml": {"ss": 34, "trojan": 29, "vmess": 23},
    "clash-reality.yaml": {"vless": 189},
}


@pytest.mark.parametrize("path", corpus_files("clash-*.yaml"), ids=lambda path: path.name)
def test_corpus_proxies_convert_or_raise(path) -> None:
    proxies = _load(path.read_text(encoding="utf-8"))["proxies"]
    protocols: collections.Counter[str] = collections.Counter()
    rejected: collections.Counter[str] = collections.Counter()
    for proxy in proxies:
        try:
            node = node_from_clash(proxy)
        except LinkError as error:
            rejected[str(error)] += 1
            continue
        protocols[node.protocol] += 1
        assert node.name == str(proxy["name"]).strip()
        assert node.host == proxy["server"]
        # Every converted corpus proxy is also expressible again, with the same identity.
        back = node_from_clash(node_to_clash(node, node.name))
        assert back.identity() == node.identity()
    assert not rejected, rejected
    assert protocols == EXPECTED_PROTOCOLS[path.name]


def test_corpus_reality_fields() -> None:
    proxies = _load((CORPUS_DIR / "clash-reality.yaml").read_text(encoding="utf-8"))["proxies"]
    nodes = [node_from_clash(proxy) for proxy in proxies]
    assert all(node.security == "reality" and node.reality_public_key for node in nodes)
    first = proxies[0]
    assert nodes[0].reality_public_key == first["reality-opts"]["public-key"]
    assert nodes[0].sni == first["servername"]


# --- reading ---------------------------------------------------------------------------------


def test_vless_reality_grpc() -> None:
    node = node_from_clash(
        _proxy(
            type="vless",
            uuid=UUID.upper(),
            tls=True,
            servername="r.example.com",
            flow="xtls-rprx-vision",
            network="grpc",
            **{
                "client-fingerprint": "chrome",
                "reality-opts": {"public-key": "PBK", "short-id": "ab12"},
                "grpc-opts": {"grpc-service-name": "svc"},
            },
        )
    )
    assert (node.protocol, node.uuid, node.flow) == ("vless", UUID, "xtls-rprx-vision")
    assert (node.security, node.reality_public_key, node.reality_short_id) == ("reality", "PBK", "ab12")
    assert (node.network, node.service_name, node.path) == ("grpc", "svc", "")
    assert (node.sni, node.client_fingerprint) == ("r.example.com", "chrome")


def test_vmess_old_keys_and_string_numbers() -> None:
    node = node_from_clash(
        _proxy(
            type="vmess",
            port="8443",
            uuid=UUID,
            alterId="2",
            cipher="AES-128-GCM",
            tls=True,
            network="ws",
            **{"ws-path": "/old", "ws-headers": {"Host": "h.example.com"}},
        )
    )
    assert (node.port, node.alter_id, node.method) == (8443, 2, "aes-128-gcm")
    assert (node.network, node.path, node.host_header) == ("ws", "/old", "h.example.com")
    # mihomo sends the ws Host as SNI when servername is absent.
    assert node.sni == "h.example.com"


def test_vmess_obfs_websocket_and_default_cipher() -> None:
    node = node_from_clash(
        _proxy(type="vmess", uuid=UUID, obfs="websocket", **{"obfs-host": "o.example.com"})
    )
    assert (node.network, node.path, node.host_header, node.method) == ("ws", "/", "o.example.com", "auto")
    assert node.security == "none"


def test_ws_early_data_goes_into_path() -> None:
    ws_opts = {
        "path": "/ws",
        "max-early-data": 2048,
        "early-data-header-name": "Sec-WebSocket-Protocol",
    }
    node = node_from_clash(_proxy(type="vless", uuid=UUID, network="ws", **{"ws-opts": ws_opts}))
    assert node.path == "/ws?ed=2048"


def test_clash_http_network_is_tcp_http_header() -> None:
    node = node_from_clash(
        _proxy(
            type="vmess",
            uuid=UUID,
            network="http",
            **{"http-opts": {"method": "GET", "path": ["/a", "/b"], "headers": {"Host": ["h1.example.com"]}}},
        )
    )
    assert (node.network, node.extra["header_type"]) == ("tcp", "http")
    assert (node.path, node.host_header) == ("/a,/b", "h1.example.com")


def test_tcp_ignores_junk_http_opts() -> None:
    node = node_from_clash(
        _proxy(type="vless", uuid=UUID, network="tcp", **{"http-opts": {"headers": {}, "path": ["/"]}})
    )
    assert (node.network, node.path, node.extra) == ("tcp", "", {})


@pytest.mark.parametrize(
    ("network", "opts_key", "opts", "expected"),
    [
        (
            "h2",
            "h2-opts",
            {"host": ["a.example.com", "b.example.com"], "path": "/h2"},
            ("h2", "/h2", "a.example.com,b.example.com"),
        ),
        ("ws", "ws-opts", {"path": "/up", "v2ray-http-upgrade": True}, ("httpupgrade", "/up", "")),
        (
            "xhttp",
            "xhttp-opts",
            {"path": "/x", "host": "x.example.com", "mode": "packet-up"},
            ("xhttp", "/x", "x.example.com"),
        ),
        ("splithttp", "xhttp-opts", {}, ("xhttp", "/", "")),
    ],
)
def test_transports(network: str, opts_key: str, opts: dict, expected: tuple) -> None:
    node = node_from_clash(_proxy(type="vless", uuid=UUID, network=network, **{opts_key: opts}))
    assert (node.network, node.path, node.host_header) == expected


def test_trojan_always_tls_and_ws() -> None:
    node = node_from_clash(
        _proxy(type="trojan", password="pw", sni="t.example.com", network="ws", **{"ws-opts": {"path": "/t"}})
    )
    assert (node.security, node.sni, node.network, node.path) == ("tls", "t.example.com", "ws", "/t")


def test_ss_obfs_plugin() -> None:
    node = node_from_clash(
        _proxy(
            type="ss",
            cipher="AES-256-GCM",
            password="pw",
            plugin="obfs",
            **{"plugin-opts": {"mode": "tls", "host": "b.example.com"}},
        )
    )
    assert node.method == "aes-256-gcm"
    assert node.extra["plugin"] == "obfs-local"
    assert node.extra["plugin_opts"] == {"obfs": "tls", "obfs-host": "b.example.com"}


def test_ss_v2ray_plugin() -> None:
    opts = {"mode": "websocket", "tls": True, "host": "v.example.com", "path": "/v", "mux": False}
    node = node_from_clash(
        _proxy(
            type="ss",
            cipher="chacha20-ietf-poly1305",
            password="pw",
            plugin="v2ray-plugin",
            **{"plugin-opts": opts},
        )
    )
    assert node.extra["plugin"] == "v2ray-plugin"
    assert node.extra["plugin_opts"] == {
        "mode": "websocket",
        "host": "v.example.com",
        "path": "/v",
        "tls": "true",
        "mux": "false",
    }


def test_ssr_old_param_keys() -> None:
    node = node_from_clash(
        _proxy(
            type="ssr",
            cipher="aes-256-cfb",
            password="pw",
            protocol="auth_aes128_md5",
            protocolparam="12:ab",
            obfs="tls1.2_ticket_auth",
            obfsparam="o.example.com",
        )
    )
    assert node.extra == {
        "protocol": "auth_aes128_md5",
        "obfs": "tls1.2_ticket_auth",
        "protocol_param": "12:ab",
        "obfs_param": "o.example.com",
    }


def test_hysteria_v1_old_keys() -> None:
    node = node_from_clash(
        _proxy(
            type="hysteria",
            auth_str="secret",
            up="30 Mbps",
            down="1 Gbps",
            obfs="ob",
            protocol="faketcp",
            ports="443, 1000-2000",
        )
    )
    assert (node.password, node.security) == ("secret", "tls")
    assert node.extra == {
        "ports": "443,1000-2000",
        "up_mbps": 30,
        "down_mbps": 1000,
        "obfs_password": "ob",
        "hysteria_protocol": "faketcp",
    }


def test_hysteria2_obfs_and_ports() -> None:
    node = node_from_clash(
        _proxy(
            type="hysteria2",
            password="pw",
            ports="20000-30000",
            obfs="salamander",
            sni="h.example.com",
            up=100,
            **{"obfs-password": "op", "skip-cert-verify": True},
        )
    )
    assert node.extra == {"ports": "20000-30000", "up_mbps": 100, "obfs": "salamander", "obfs_password": "op"}
    assert (node.sni, node.insecure) == ("h.example.com", True)


def test_hysteria2_empty_fields_are_absent() -> None:
    node = node_from_clash(
        _proxy(type="hysteria2", password="pw", up="", down="", obfs="", sni="", **{"obfs-password": ""})
    )
    assert node.extra == {}


def test_tuic_v5() -> None:
    node = node_from_clash(
        _proxy(
            type="tuic",
            uuid=UUID,
            password="pw",
            alpn=["h3"],
            **{"congestion-controller": "bbr", "udp-relay-mode": "native", "reduce-rtt": True},
        )
    )
    assert (node.security, node.alpn) == ("tls", ("h3",))
    assert node.extra == {
        "version": 5,
        "congestion_control": "bbr",
        "udp_relay_mode": "native",
        "reduce_rtt": True,
    }


def test_wireguard_simple_form() -> None:
    node = node_from_clash(
        _proxy(
            type="wireguard",
            ip="172.16.0.2",
            ipv6="fd01::2",
            reserved="U4An",
            mtu="1408",
            **{"private-key": "PRIV=", "public-key": "PUB=", "pre-shared-key": "PSK="},
        )
    )
    assert node.extra == {
        "private_key": "PRIV=",
        "public_key": "PUB=",
        "pre_shared_key": "PSK=",
        "reserved": [0x53, 0x80, 0x27],
        "local_address": ["172.16.0.2/32", "fd01::2/128"],
        "mtu": 1408,
    }


def test_wireguard_peers_form() -> None:
    proxy = {
        "name": "wg",
        "type": "wireguard",
        "ip": "172.16.0.2/32",
        "private-key": "PRIV=",
        "peers": [{"server": "127.0.0.21", "port": 2480, "public-key": "PUB=", "reserved": [1, 2, 3]}],
    }
    node = node_from_clash(proxy)
    assert (node.host, node.port) == ("127.0.0.21", 2480)
    assert node.extra["reserved"] == [1, 2, 3]
    assert node.extra["public_key"] == "PUB="


def test_socks5_http_anytls() -> None:
    socks = node_from_clash(_proxy(type="socks5", username=None, password=None))
    assert (socks.protocol, socks.username, socks.password, socks.extra) == (
        "socks",
        "",
        "",
        {"version": "5"},
    )
    http = node_from_clash(_proxy(type="http", username="u", password=1234, tls=True, sni="s.example.com"))
    assert (http.password, http.security, http.sni) == ("1234", "tls", "s.example.com")
    anytls = node_from_clash(
        _proxy(type="anytls", password="pw", sni="a.example.com", **{"client-fingerprint": "chrome"})
    )
    assert (anytls.security, anytls.client_fingerprint) == ("tls", "chrome")


def test_parse_bandwidth_units() -> None:
    assert parse_bandwidth("100 Mbps") == 100
    assert parse_bandwidth("100") == 100
    assert parse_bandwidth(50) == 50
    assert parse_bandwidth("2Gbps") == 2000
    assert parse_bandwidth("500 Kbps") == 0  # rounds to whole Mbit/s
    with pytest.raises(LinkError, match="invalid bandwidth"):
        parse_bandwidth("fast")


@pytest.mark.parametrize(
    ("proxy", "reason"),
    [
        ("not a mapping", "expected a mapping"),
        ({**BASE, "type": "snell"}, "unsupported clash proxy type 'snell'"),
        ({**BASE, "type": "vmess"}, "missing vmess user id"),
        ({**BASE, "type": "vless", "uuid": UUID, "port": 70000}, "invalid port 70000"),
        ({**BASE, "type": "vless", "uuid": UUID, "port": "abc"}, "invalid port 'abc'"),
        ({**BASE, "type": "vless", "uuid": UUID, "server": "bad host"}, "invalid host"),
        ({**BASE, "type": "ss", "cipher": "foo", "password": "x"}, "unknown ss cipher 'foo'"),
        ({**BASE, "type": "ss", "cipher": "aes-128-gcm"}, "missing ss password"),
        (
            {**BASE, "type": "ssr", "cipher": "aes-256-cfb", "password": "x", "protocol": "nope"},
            "unknown ssr protocol",
        ),
        ({**BASE, "type": "trojan"}, "missing trojan password"),
        ({**BASE, "type": "tuic", "token": "t"}, "tuic v4"),
        ({**BASE, "type": "vmess", "uuid": UUID, "network": "kcp"}, "unsupported clash network 'kcp'"),
        (
            {**BASE, "type": "vless", "uuid": UUID, "encryption": "mlkem768x25519plus.native.1rtt.abc"},
            "vless encryption",
        ),
        ({**BASE, "type": "hysteria2"}, "missing hysteria2 password"),
        (
            {
                "name": "wg",
                "type": "wireguard",
                "private-key": "a",
                "peers": [{"server": "127.0.0.1", "port": 1}] * 2,
            },
            "2 peers",
        ),
        ({**BASE, "type": "wireguard", "private-key": "a"}, "missing wireguard public-key"),
    ],
)
def test_rejects(proxy: object, reason: str) -> None:
    with pytest.raises(LinkError, match=reason):
        node_from_clash(proxy)  # type: ignore[arg-type]


# --- writing ---------------------------------------------------------------------------------

ROUND_TRIP_NODES = [
    Node(
        "vmess",
        "127.0.0.30",
        443,
        uuid=UUID,
        method="auto",
        alter_id=0,
        network="ws",
        path="/p",
        host_header="h.example.com",
        security="tls",
        sni="s.example.com",
        alpn=("h2",),
        client_fingerprint="chrome",
    ),
    Node(
        "vmess",
        "127.0.0.30",
        80,
        uuid=UUID,
        method="chacha20-poly1305",
        alter_id=64,
        network="tcp",
        path="/a",
        host_header="b.example.com",
        extra={"header_type": "http"},
    ),
    Node(
        "vmess",
        "127.0.0.30",
        443,
        uuid=UUID,
        method="auto",
        network="h2",
        path="/h2",
        host_header="h.example.com",
        security="tls",
        sni="h.example.com",
    ),
    Node(
        "vless",
        "127.0.0.31",
        443,
        uuid=UUID,
        flow="xtls-rprx-vision",
        security="reality",
        sni="r.example.com",
        client_fingerprint="chrome",
        reality_public_key="PBK",
        reality_short_id="01ab",
    ),
    Node(
        "vless",
        "127.0.0.31",
        443,
        uuid=UUID,
        network="grpc",
        service_name="svc",
        mode="gun",
        security="tls",
        sni="g.example.com",
        insecure=True,
    ),
    Node(
        "vless",
        "127.0.0.31",
        443,
        uuid=UUID,
        network="xhttp",
        path="/x",
        host_header="x.example.com",
        mode="packet-up",
        security="tls",
        sni="x.example.com",
    ),
    Node("vless", "127.0.0.31", 80, uuid=UUID, network="httpupgrade", path="/u", host_header="u.example.com"),
    Node(
        "trojan",
        "127.0.0.32",
        443,
        password="pw",
        security="tls",
        sni="t.example.com",
        network="ws",
        path="/t?ed=2048",
    ),
    Node("trojan", "127.0.0.32", 443, password="pw", security="tls", network="grpc", service_name="g"),
    Node("ss", "127.0.0.33", 8388, method="aes-256-gcm", password="pw"),
    Node(
        "ss",
        "127.0.0.33",
        8388,
        method="2022-blake3-aes-128-gcm",
        password="AAAAAAAAAAAAAAAAAAAAAA==",
        extra={"udp_over_tcp": True},
    ),
    Node(
        "ss",
        "127.0.0.33",
        8388,
        method="chacha20-ietf-poly1305",
        password="pw",
        extra={"plugin": "obfs-local", "plugin_opts": {"obfs": "http", "obfs-host": "o.example.com"}},
    ),
    Node(
        "ss",
        "127.0.0.33",
        8388,
        method="chacha20-ietf-poly1305",
        password="pw",
        extra={
            "plugin": "v2ray-plugin",
            "plugin_opts": {
                "mode": "websocket",
                "host": "v.example.com",
                "path": "/v",
                "tls": "true",
                "mux": "true",
            },
        },
    ),
    Node(
        "ssr",
        "127.0.0.34",
        8989,
        method="aes-256-cfb",
        password="pw",
        extra={
            "protocol": "auth_aes128_md5",
            "obfs": "tls1.2_ticket_auth",
            "protocol_param": "1:a",
            "obfs_param": "o.example.com",
        },
    ),
    Node(
        "hysteria",
        "127.0.0.35",
        443,
        password="auth",
        security="tls",
        sni="h.example.com",
        alpn=("h3",),
        extra={
            "ports": "443,1000-2000",
            "obfs_password": "ob",
            "up_mbps": 10,
            "down_mbps": 50,
            "hysteria_protocol": "udp",
        },
    ),
    Node(
        "hysteria2",
        "127.0.0.36",
        443,
        password="pw",
        security="tls",
        sni="h2.example.com",
        insecure=True,
        extra={
            "ports": "20000-30000",
            "obfs": "salamander",
            "obfs_password": "op",
            "up_mbps": 30,
            "pin_sha256": "ab" * 32,
        },
    ),
    Node(
        "tuic",
        "127.0.0.37",
        443,
        uuid=UUID,
        password="pw",
        security="tls",
        sni="t.example.com",
        alpn=("h3",),
        extra={"version": 5, "congestion_control": "bbr", "udp_relay_mode": "quic", "reduce_rtt": True},
    ),
    Node(
        "wireguard",
        "127.0.0.38",
        51820,
        extra={
            "private_key": "PRIV=",
            "public_key": "PUB=",
            "pre_shared_key": "PSK=",
            "reserved": [1, 2, 3],
            "local_address": ["172.16.0.2/32", "fd01::2/128"],
            "mtu": 1280,
        },
    ),
    Node("socks", "127.0.0.39", 1080, username="u", password="p", extra={"version": "5"}),
    Node("socks", "127.0.0.39", 1443, security="tls", sni="s.example.com", extra={"version": "5"}),
    Node("http", "127.0.0.40", 8080, username="u", password="p"),
    Node("http", "127.0.0.40", 443, security="tls", sni="p.example.com", insecure=True),
    Node(
        "anytls",
        "127.0.0.41",
        443,
        password="pw",
        security="tls",
        sni="a.example.com",
        client_fingerprint="chrome",
        alpn=("h2", "http/1.1"),
    ),
]


@pytest.mark.parametrize(
    "node", ROUND_TRIP_NODES, ids=lambda node: f"{node.protocol}-{node.network}-{node.security}"
)
def test_round_trip_node_clash_node(node: Node) -> None:
    proxy = node_to_clash(node, "name")
    assert proxy["name"] == "name"
    back = node_from_clash(proxy)
    assert back.identity() == node.identity()


def test_round_trip_covers_every_protocol() -> None:
    from merger.core.node import PROTOCOLS

    assert {node.protocol for node in ROUND_TRIP_NODES} == set(PROTOCOLS)


def test_written_field_names() -> None:
    vless = node_to_clash(ROUND_TRIP_NODES[3], "r")
    assert vless["type"] == "vless"
    assert vless["tls"] is True
    assert vless["servername"] == "r.example.com"
    assert vless["reality-opts"] == {"public-key": "PBK", "short-id": "01ab"}
    upgrade = node_to_clash(ROUND_TRIP_NODES[6], "u")
    assert upgrade["network"] == "ws"
    assert upgrade["ws-opts"]["v2ray-http-upgrade"] is True
    socks = node_to_clash(ROUND_TRIP_NODES[18], "s")
    assert socks["type"] == "socks5"
    obfs = node_to_clash(ROUND_TRIP_NODES[11], "o")
    assert (obfs["plugin"], obfs["plugin-opts"]) == ("obfs", {"mode": "http", "host": "o.example.com"})


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        (Node("vmess", "127.0.0.50", 1, uuid=UUID, method="auto", network="kcp"), "kcp transport"),
        (Node("vless", "127.0.0.50", 1, uuid=UUID, network="quic"), "quic transport"),
        (
            Node("vmess", "127.0.0.50", 1, uuid=UUID, method="auto", network="xhttp", path="/"),
            "vmess over xhttp",
        ),
        (
            Node("trojan", "127.0.0.50", 1, password="p", security="tls", network="h2", path="/"),
            "trojan over h2",
        ),
        (
            Node("ss", "127.0.0.50", 1, method="aes-128-gcm", password="p", extra={"plugin": "cloak"}),
            "ss plugin 'cloak'",
        ),
        (Node("ss", "127.0.0.50", 1, method="bf-cfb", password="p"), "ss cipher 'bf-cfb'"),
        (
            Node(
                "ss",
                "127.0.0.50",
                1,
                method="aes-128-gcm",
                password="p",
                extra={"plugin": "v2ray-plugin", "plugin_opts": {"mode": "quic"}},
            ),
            "v2ray-plugin mode 'quic'",
        ),
        (
            Node(
                "ssr",
                "127.0.0.50",
                1,
                method="aes-256-cfb",
                password="p",
                extra={"protocol": "auth_chain_d", "obfs": "plain"},
            ),
            "ssr protocol",
        ),
        (Node("socks", "127.0.0.50", 1, extra={"version": "4a"}), "socks4a"),
        (Node("vmess", "127.0.0.50", 1, uuid=UUID, method="aes-128-cfb"), "vmess cipher"),
        (
            Node(
                "wireguard",
                "127.0.0.50",
                1,
                extra={
                    "private_key": "a",
                    "public_key": "b",
                    "local_address": ["10.0.0.2/32", "10.0.0.3/32"],
                },
            ),
            "more than one",
        ),
    ],
)
def test_unsupported_nodes(node: Node, reason: str) -> None:
    with pytest.raises(UnsupportedNode, match=reason):
        node_to_clash(node, "n")


# --- render ----------------------------------------------------------------------------------


def _check_document(text: str) -> dict:
    document = _load(text)
    names = [proxy["name"] for proxy in document["proxies"]]
    assert len(names) == len(set(names))
    groups = document["proxy-groups"]
    group_names = {group["name"] for group in groups}
    assert not group_names & set(names)
    allowed = set(names) | group_names | {"DIRECT"}
    for group in groups:
        assert set(group["proxies"]) <= allowed, group["name"]
        if group["type"] in ("url-test", "fallback"):
            assert group["url"].startswith("http")
            assert group["interval"] > 0
    assert {group["type"] for group in groups} == {"select", "url-test", "fallback"}
    assert document["rules"][-1].startswith("MATCH,")
    assert document["rules"][-1].split(",", 1)[1] in group_names
    assert document["mode"] == "rule" and isinstance(document["mixed-port"], int)
    return document


def test_render_names_with_emoji_quotes_and_duplicates() -> None:
    tricky = [
        '🇩🇪 "quoted" \\ back',
        "dup",
        "dup",
        "",
        "DIRECT",
        "line\u2028sep\x85nel\x7f",
        "🚀 Proxy",
        "- [a]: {b} #c",
    ]
    nodes = [
        Node("trojan", f"127.0.1.{index}", 443, name=name, password="p", security="tls")
        for index, name in enumerate(tricky)
    ]
    text, skipped = render_clash(nodes)
    assert not skipped
    assert "🇩🇪" in text  # written as UTF-8, not escaped
    document = _check_document(text)
    names = [proxy["name"] for proxy in document["proxies"]]
    assert names[0] == tricky[0]
    assert names[1:3] == ["dup", "dup 2"]
    assert names[3] == "trojan 127.0.1.3:443"
    assert names[4] != "DIRECT"
    assert names[5] == tricky[5]
    assert names[6] == "🚀 Proxy"  # the select group takes another name instead
    assert names[7] == tricky[7]


def test_render_counts_skipped_nodes() -> None:
    nodes = [
        Node("vmess", "127.0.2.1", 1, uuid=UUID, method="auto", network="kcp"),
        Node("vmess", "127.0.2.2", 1, uuid=UUID, method="auto", network="kcp"),
        Node("socks", "127.0.2.3", 1, extra={"version": "4"}),
        Node("http", "127.0.2.4", 8080, name="ok"),
    ]
    text, skipped = render_clash(nodes)
    assert skipped == {
        "kcp transport is not supported by Clash.Meta": 2,
        "socks4 is not supported by Clash.Meta (socks5 only)": 1,
    }
    document = _check_document(text)
    assert [proxy["name"] for proxy in document["proxies"]] == ["ok"]


def test_render_empty() -> None:
    text, skipped = render_clash([])
    document = _check_document(text)
    assert document["proxies"] == []
    assert not skipped


def test_render_corpus_round_trip() -> None:
    nodes = []
    for path in corpus_files("clash-*.yaml"):
        nodes += [node_from_clash(proxy) for proxy in _load(path.read_text(encoding="utf-8"))["proxies"]]
    text, skipped = render_clash(nodes)
    assert not skipped
    document = _check_document(text)
    assert len(document["proxies"]) == len(nodes)
    for node, proxy in zip(nodes, document["proxies"], strict=True):
        assert node_from_clash(proxy).identity() == node.identity()


def test_render_100k_nodes() -> None:
    templates = ROUND_TRIP_NODES
    nodes = []
    for index in range(100_000):
        template = templates[index % len(templates)]
        nodes.append(
            Node(
                **{
                    **{slot: getattr(template, slot) for slot in Node.__slots__},
                    "port": 1 + index % 65535,
                    "name": f"n{index % 5000} 🇩🇪",
                }
            )
        )
    text, skipped = render_clash(nodes)
    assert not skipped
    # Loading 25 MB with PyYAML takes far longer than rendering, so the lines are checked as the
    # JSON they are; the small documents above go through the YAML loader.
    proxy_lines = [
        line for line in text.splitlines() if line.startswith("  - {") and '"type":"select"' not in line
    ]
    proxies = [orjson.loads(line[4:]) for line in proxy_lines if '"server"' in line]
    assert len(proxies) == 100_000
    assert len({proxy["name"] for proxy in proxies}) == 100_000
