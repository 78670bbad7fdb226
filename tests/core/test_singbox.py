"""Tests for the sing-box outbound converter and the sing-box config export.

Expected field names come from the sing-box documentation (outbound pages, shared/tls,
shared/v2ray-transport, endpoint/wireguard) for versions 1.11 and 1.12.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from merger.core.errors import LinkError, UnsupportedNode
from merger.core.export.singbox import render_singbox
from merger.core.node import Node
from merger.core.singbox import (
    ENDPOINT_PROTOCOLS,
    node_from_singbox,
    node_to_singbox,
    nodes_from_singbox_config,
    normalize_fields,
    ports_from_singbox,
)
from tests.conftest import corpus_files

UUID = "b0b949fb-70f7-403d-873b-bd74e7a2f1a3"
WG_PRIVATE = "YNXtAzepDqRv9H52osJVDQnznT5AM11eCK3ESpwSt04="
WG_PUBLIC = "Z1XXLsKYkYxuiYjJIkRvtIKFepCYHTgON+GwPq7SOV4="
WG_PSK = "31aIhAPwktDGpH4JDhA8GNvjFXEf/a6+UaQRyOAiyfM="
SS2022_KEY = "8JCsPssfgS8tiRwiMlhARg=="

# Proxy and non-proxy counts stated for each sing-box file in the corpus README.
CORPUS_EXPECTED = {
    "singbox-mixed.json": {"proxies": 469, "non_proxy": 0},
    "singbox-reality.json": {"proxies": 189, "non_proxy": 26},
}


def _node(**fields: object) -> Node:
    fields.setdefault("host", "127.10.20.30")
    fields.setdefault("port", 443)
    fields.setdefault("name", "test node")
    return normalize_fields(Node(**fields))  # type: ignore[arg-type]


# --- corpus --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", corpus_files("singbox-*.json"), ids=lambda path: path.name)
def test_corpus_outbounds_convert_or_are_classified(path: Path) -> None:
    config = json.loads(path.read_text(encoding="utf-8"))
    entries = config.get("outbounds", []) + config.get("endpoints", [])
    converted, ignored, rejected = [], [], []
    for entry in entries:
        try:
            node = node_from_singbox(entry)
        except LinkError as error:
            rejected.append(str(error))
            continue
        if node is None:
            ignored.append(entry["type"])
        else:
            converted.append(node)
    counts = f"{len(converted)} converted, {len(ignored)} ignored, {len(rejected)} rejected"
    print(f"{path.name}: {counts} {rejected}")
    assert len(converted) + len(ignored) + len(rejected) == len(entries)
    expected = CORPUS_EXPECTED[path.name]
    assert len(converted) == expected["proxies"]
    assert len(ignored) == expected["non_proxy"]
    assert rejected == []
    assert set(ignored) <= {"selector", "urltest", "direct", "block", "dns"}


@pytest.mark.parametrize("path", corpus_files("singbox-*.json"), ids=lambda path: path.name)
def test_corpus_nodes_round_trip(path: Path) -> None:
    nodes, _ = nodes_from_singbox_config(json.loads(path.read_text(encoding="utf-8")))
    for node in nodes:
        again = node_from_singbox(node_to_singbox(node, node.name))
        assert again is not None
        assert again.identity() == node.identity(), node.name


def test_corpus_reality_fields_read() -> None:
    config = json.loads((corpus_files("singbox-reality.json")[0]).read_text(encoding="utf-8"))
    first = next(entry for entry in config["outbounds"] if entry["type"] == "vless")
    node = node_from_singbox(first)
    assert node is not None
    assert node.security == "reality"
    assert node.reality_public_key == first["tls"]["reality"]["public_key"]
    assert node.reality_short_id == first["tls"]["reality"]["short_id"]
    assert node.sni == first["tls"]["server_name"]
    assert node.client_fingerprint == first["tls"]["utls"]["fingerprint"]
    assert node.name == first["tag"]


# --- reading sing-box shapes ---------------------------------------------------------------------


def test_vless_reality_outbound_read() -> None:
    node = node_from_singbox(
        {
            "type": "vless",
            "tag": " reality ",
            "server": "127.1.2.3",
            "server_port": 443,
            "uuid": UUID.upper(),
            "flow": "xtls-rprx-vision",
            "packet_encoding": "xudp",
            "tls": {
                "enabled": True,
                "server_name": "n1.example.com",
                "utls": {"enabled": True, "fingerprint": "chrome"},
                "reality": {"enabled": True, "public_key": "pbk-value", "short_id": "ab12"},
            },
        }
    )
    assert node is not None
    assert (node.protocol, node.host, node.port, node.name) == ("vless", "127.1.2.3", 443, "reality")
    assert node.uuid == UUID
    assert node.flow == "xtls-rprx-vision"
    assert node.security == "reality"
    assert node.reality_public_key == "pbk-value"
    assert node.reality_short_id == "ab12"
    assert node.client_fingerprint == "chrome"


def test_ws_transport_host_header_and_early_data_read() -> None:
    node = node_from_singbox(
        {
            "type": "vmess",
            "server": "127.1.2.3",
            "server_port": 8080,
            "uuid": UUID,
            "security": "",
            "transport": {
                "type": "ws",
                "path": "/ray",
                "headers": {"host": ["cdn.example.com"]},
                "max_early_data": 2048,
                "early_data_header_name": "Sec-WebSocket-Protocol",
            },
        }
    )
    assert node is not None
    assert node.network == "ws"
    assert node.host_header == "cdn.example.com"
    # Xray's share-link spelling of the same early-data setting.
    assert node.path == "/ray?ed=2048"
    assert node.method == "auto"
    assert node.security == "none"


@pytest.mark.parametrize(
    ("transport", "network", "field", "value"),
    [
        ({"type": "grpc", "service_name": "gun"}, "grpc", "service_name", "gun"),
        (
            {"type": "http", "host": ["a.example.com", "b.example.com"], "path": "/h2"},
            "h2",
            "host_header",
            "a.example.com,b.example.com",
        ),
        (
            {"type": "httpupgrade", "host": "up.example.com", "path": "/up"},
            "httpupgrade",
            "host_header",
            "up.example.com",
        ),
        ({"type": "quic"}, "quic", "path", ""),
    ],
)
def test_transport_types_read(transport: dict, network: str, field: str, value: str) -> None:
    outbound = {
        "type": "trojan",
        "server": "127.1.2.3",
        "server_port": 443,
        "password": "secret",
        "tls": {"enabled": True},
        "transport": transport,
    }
    node = node_from_singbox(outbound)
    assert node is not None
    assert node.network == network
    assert getattr(node, field) == value


def test_grpc_read_drops_path_junk() -> None:
    outbound = {
        "type": "vless",
        "server": "127.1.2.3",
        "server_port": 443,
        "uuid": UUID,
        "transport": {"type": "grpc", "service_name": "svc", "path": "/junk"},
    }
    node = node_from_singbox(outbound)
    assert node is not None
    assert node.path == ""
    assert node.service_name == "svc"


def test_shadowsocks_plugin_strings_read() -> None:
    node = node_from_singbox(
        {
            "type": "shadowsocks",
            "server": "127.1.2.3",
            "server_port": 8388,
            "method": "AES-256-GCM",
            "password": "pw",
            "plugin": "obfs-local",
            "plugin_opts": "obfs=http;obfs-host=www.example.com",
        }
    )
    assert node is not None
    assert node.protocol == "ss"
    assert node.method == "aes-256-gcm"
    assert node.extra["plugin"] == "obfs-local"
    assert node.extra["plugin_opts"] == {"obfs": "http", "obfs-host": "www.example.com"}


def test_v2ray_plugin_tls_flag_read() -> None:
    node = node_from_singbox(
        {
            "type": "shadowsocks",
            "server": "127.1.2.3",
            "server_port": 443,
            "method": "chacha20-ietf-poly1305",
            "password": "pw",
            "plugin": "v2ray-plugin",
            "plugin_opts": "mode=websocket;host=cdn.example.com;path=/ws;tls",
        }
    )
    assert node is not None
    assert node.extra["plugin_opts"] == {
        "mode": "websocket",
        "host": "cdn.example.com",
        "path": "/ws",
        "tls": "true",
    }


def test_hysteria2_obfs_and_port_hopping_read() -> None:
    node = node_from_singbox(
        {
            "type": "hysteria2",
            "server": "127.1.2.3",
            "server_ports": ["1000:2000", "3000:3000"],
            "up_mbps": 50,
            "down_mbps": 200,
            "obfs": {"type": "salamander", "password": "obfs-pw"},
            "password": "auth",
            "tls": {"enabled": True, "server_name": "h.example.com", "insecure": True, "alpn": ["h3"]},
        }
    )
    assert node is not None
    assert node.protocol == "hysteria2"
    # server_port is optional when server_ports is set; the first port becomes the main one.
    assert node.port == 1000
    assert node.extra["ports"] == "1000-2000,3000"
    assert node.extra["obfs"] == "salamander"
    assert node.extra["obfs_password"] == "obfs-pw"
    assert (node.extra["up_mbps"], node.extra["down_mbps"]) == (50, 200)
    assert node.security == "tls"
    assert node.insecure is True
    assert node.alpn == ("h3",)


def test_ports_from_singbox_forms() -> None:
    assert ports_from_singbox(["443:443", "1000:2000"]) == "443,1000-2000"
    assert ports_from_singbox("20000:") == "20000-65535"
    assert ports_from_singbox(["5000-6000"]) == "5000-6000"
    with pytest.raises(LinkError, match="start is after end"):
        ports_from_singbox(["2000:1000"])
    with pytest.raises(LinkError, match="70000"):
        ports_from_singbox(["1000:70000"])


def test_hysteria_v1_auth_read() -> None:
    node = node_from_singbox(
        {
            "type": "hysteria",
            "server": "127.1.2.3",
            "server_port": 443,
            "up_mbps": 10,
            "down_mbps": 50,
            "auth": "c2VjcmV0",
            "obfs": "xplus-pw",
            "tls": {"enabled": True, "alpn": ["hysteria"]},
        }
    )
    assert node is not None
    assert node.password == "secret"
    assert node.extra["obfs_password"] == "xplus-pw"
    assert node.security == "tls"


def test_tuic_fields_read() -> None:
    node = node_from_singbox(
        {
            "type": "tuic",
            "server": "127.1.2.3",
            "server_port": 443,
            "uuid": UUID,
            "password": "pw",
            "congestion_control": "BBR",
            "udp_relay_mode": "quic",
            "zero_rtt_handshake": True,
            "heartbeat": "10s",
            "tls": {"enabled": True, "server_name": "t.example.com", "alpn": "h3"},
        }
    )
    assert node is not None
    assert node.extra["congestion_control"] == "bbr"
    assert node.extra["udp_relay_mode"] == "quic"
    assert node.extra["reduce_rtt"] is True
    assert node.extra["version"] == 5
    assert node.alpn == ("h3",)


def test_wireguard_endpoint_shape_read() -> None:
    node = node_from_singbox(
        {
            "type": "wireguard",
            "tag": "wg-ep",
            "mtu": 1280,
            "address": ["172.16.0.2", "2606:4700:110:8a36::2/128"],
            "private_key": WG_PRIVATE,
            "peers": [
                {
                    "address": "127.5.6.7",
                    "port": 2408,
                    "public_key": WG_PUBLIC,
                    "pre_shared_key": WG_PSK,
                    "allowed_ips": ["0.0.0.0/0"],
                    "reserved": [1, 2, 3],
                }
            ],
        }
    )
    assert node is not None
    assert (node.protocol, node.host, node.port) == ("wireguard", "127.5.6.7", 2408)
    assert node.extra["private_key"] == WG_PRIVATE
    assert node.extra["public_key"] == WG_PUBLIC
    assert node.extra["pre_shared_key"] == WG_PSK
    assert node.extra["reserved"] == [1, 2, 3]
    assert node.extra["local_address"] == ["172.16.0.2/32", "2606:4700:110:8a36::2/128"]
    assert node.extra["mtu"] == 1280


def test_wireguard_old_outbound_shape_read() -> None:
    node = node_from_singbox(
        {
            "type": "wireguard",
            "server": "127.5.6.7",
            "server_port": 51820,
            "local_address": ["10.0.0.2/32"],
            "private_key": WG_PRIVATE,
            "peer_public_key": WG_PUBLIC,
            "reserved": "AQID",
            "mtu": 1408,
        }
    )
    assert node is not None
    assert (node.host, node.port) == ("127.5.6.7", 51820)
    assert node.extra["public_key"] == WG_PUBLIC
    # "AQID" is base64 of the bytes 1, 2, 3.
    assert node.extra["reserved"] == [1, 2, 3]
    assert node.extra["local_address"] == ["10.0.0.2/32"]


def test_wireguard_old_outbound_with_peers_read() -> None:
    node = node_from_singbox(
        {
            "type": "wireguard",
            "local_address": ["10.0.0.2/32"],
            "private_key": WG_PRIVATE,
            "peers": [
                {"server": "127.5.6.8", "server_port": 1080, "public_key": WG_PUBLIC, "allowed_ips": []}
            ],
        }
    )
    assert node is not None
    assert (node.host, node.port) == ("127.5.6.8", 1080)


def test_socks_and_http_read() -> None:
    socks = node_from_singbox(
        {
            "type": "socks",
            "server": "127.1.1.1",
            "server_port": 1080,
            "version": "4a",
            "username": "u",
            "password": "p",
        }
    )
    http = node_from_singbox(
        {
            "type": "http",
            "server": "127.1.1.2",
            "server_port": 443,
            "username": "u",
            "password": "p",
            "tls": {"enabled": True, "server_name": "p.example.com"},
        }
    )
    assert socks is not None and http is not None
    assert socks.extra["version"] == "4a"
    assert (socks.username, socks.password) == ("u", "p")
    assert http.security == "tls"
    assert http.sni == "p.example.com"


def test_shadowsocksr_outbound_read() -> None:
    node = node_from_singbox(
        {
            "type": "shadowsocksr",
            "server": "127.1.1.3",
            "server_port": 8989,
            "method": "aes-256-cfb",
            "password": "pw",
            "obfs": "tls1.2_ticket_auth",
            "obfs_param": "o.example.com",
            "protocol": "auth_aes128_md5",
            "protocol_param": "1:abc",
        }
    )
    assert node is not None
    assert node.protocol == "ssr"
    assert node.extra["protocol"] == "auth_aes128_md5"
    assert node.extra["obfs_param"] == "o.example.com"


@pytest.mark.parametrize("kind", ["selector", "urltest", "direct", "block", "dns"])
def test_non_proxy_outbounds_ignored(kind: str) -> None:
    assert node_from_singbox({"type": kind, "tag": "x", "outbounds": ["a"]}) is None


@pytest.mark.parametrize(
    ("outbound", "reason"),
    [
        ({"type": "vless", "server": "127.1.1.1", "server_port": 70000, "uuid": UUID}, "invalid port 70000"),
        ({"type": "vless", "server": "127.1.1.1", "uuid": UUID}, "missing server_port"),
        ({"type": "vmess", "server": "127.1.1.1", "server_port": 443}, "missing vmess user id"),
        (
            {
                "type": "shadowsocks",
                "server": "127.1.1.1",
                "server_port": 443,
                "method": "foo",
                "password": "x",
            },
            "unknown ss cipher 'foo'",
        ),
        ({"type": "trojan", "server": "127.1.1.1", "server_port": 443}, "missing trojan password"),
        ({"type": "trojan", "server": "bad host!", "server_port": 443, "password": "x"}, "invalid host"),
        ({"type": "naive", "server": "127.1.1.1", "server_port": 443}, "unsupported sing-box outbound type"),
        (
            {
                "type": "vless",
                "server": "127.1.1.1",
                "server_port": 443,
                "uuid": UUID,
                "transport": {"type": "xhttp"},
            },
            "unsupported sing-box transport 'xhttp'",
        ),
        (
            {
                "type": "vless",
                "server": "127.1.1.1",
                "server_port": 443,
                "uuid": UUID,
                "tls": {"enabled": True, "reality": {"enabled": True}},
            },
            "missing reality public_key",
        ),
        (
            {
                "type": "wireguard",
                "server": "127.1.1.1",
                "server_port": 443,
                "private_key": WG_PRIVATE,
                "peer_public_key": WG_PUBLIC,
            },
            "missing wireguard local address",
        ),
        (
            {
                "type": "wireguard",
                "address": ["10.0.0.2/32"],
                "private_key": WG_PRIVATE,
                "peers": [{"address": "127.1.1.1", "port": 1, "public_key": WG_PUBLIC, "reserved": [1, 2]}],
            },
            "invalid wireguard reserved",
        ),
        ({"server": "127.1.1.1"}, "missing outbound type"),
    ],
)
def test_broken_outbound_rejected_with_reason(outbound: dict, reason: str) -> None:
    with pytest.raises(LinkError, match=reason.replace("(", r"\(")):
        node_from_singbox(outbound)


# --- writing and round trips --------------------------------------------------------------------

ROUND_TRIP_NODES = {
    "vmess_tcp_none": _node(protocol="vmess", uuid=UUID, method="auto", alter_id=0),
    "vmess_ws_tls": _node(
        protocol="vmess",
        uuid=UUID,
        method="aes-128-gcm",
        network="ws",
        path="/ws",
        host_header="cdn.example.com",
        security="tls",
        sni="cdn.example.com",
        alpn=("h2", "http/1.1"),
        insecure=True,
        client_fingerprint="firefox",
    ),
    "vmess_h2_tls": _node(
        protocol="vmess",
        uuid=UUID,
        method="auto",
        alter_id=64,
        network="h2",
        path="/h2",
        host_header="a.example.com,b.example.com",
        security="tls",
    ),
    "vless_reality_vision": _node(
        protocol="vless",
        uuid=UUID,
        flow="xtls-rprx-vision",
        security="reality",
        sni="www.example.com",
        reality_public_key="pbk",
        reality_short_id="0a1b",
        client_fingerprint="chrome",
    ),
    "vless_reality_grpc_no_fingerprint": _node(
        protocol="vless",
        uuid=UUID,
        network="grpc",
        service_name="grpc",
        security="reality",
        reality_public_key="pbk",
    ),
    "vless_ws_early_data": _node(
        protocol="vless", uuid=UUID, network="ws", path="/p?x=1&ed=2048", host_header="h.example.com"
    ),
    "vless_ws_two_question_marks": _node(protocol="vless", uuid=UUID, network="ws", path="/?a?ed=512"),
    "vless_httpupgrade": _node(
        protocol="vless",
        uuid=UUID,
        network="httpupgrade",
        path="/up",
        host_header="up.example.com",
        security="tls",
        sni="up.example.com",
    ),
    "trojan_grpc": _node(
        protocol="trojan",
        password="pw",
        network="grpc",
        service_name="svc",
        security="tls",
        sni="t.example.com",
    ),
    "trojan_plain": _node(protocol="trojan", password="pw", security="none"),
    "trojan_quic": _node(protocol="trojan", password="pw", network="quic", security="tls"),
    "ss_2022": _node(protocol="ss", method="2022-blake3-aes-128-gcm", password=SS2022_KEY),
    "ss_obfs_local": _node(
        protocol="ss",
        method="aes-256-gcm",
        password="pw",
        extra={"plugin": "obfs-local", "plugin_opts": {"obfs": "tls", "obfs-host": "o.com"}},
    ),
    "ss_v2ray_plugin_tls": _node(
        protocol="ss",
        method="chacha20-ietf-poly1305",
        password="pw",
        extra={
            "plugin": "v2ray-plugin",
            "plugin_opts": {"mode": "websocket", "host": "h.com", "path": "/v", "tls": "true"},
        },
    ),
    "socks5_auth": _node(protocol="socks", username="user", password="pass", extra={"version": "5"}),
    "socks4": _node(protocol="socks", extra={"version": "4"}),
    "http_tls": _node(protocol="http", username="u", password="p", security="tls", sni="p.example.com"),
    "http_plain": _node(protocol="http"),
    "hysteria_v1": _node(
        protocol="hysteria",
        password="auth",
        sni="h.example.com",
        extra={"obfs_password": "xp", "up_mbps": 20, "down_mbps": 100, "ports": "443,5000-6000"},
    ),
    "hysteria2_obfs_ports": _node(
        protocol="hysteria2",
        password="pw",
        insecure=True,
        extra={"obfs": "salamander", "obfs_password": "op", "ports": "443,1000-2000"},
    ),
    "tuic_v5": _node(
        protocol="tuic",
        uuid=UUID,
        password="pw",
        alpn=("h3",),
        extra={"version": 5, "congestion_control": "bbr", "udp_relay_mode": "native"},
    ),
    "anytls": _node(protocol="anytls", password="pw", sni="a.example.com", client_fingerprint="chrome"),
    "wireguard": _node(
        protocol="wireguard",
        port=2408,
        extra={
            "private_key": WG_PRIVATE,
            "public_key": WG_PUBLIC,
            "pre_shared_key": WG_PSK,
            "reserved": [7, 8, 9],
            "local_address": ["172.16.0.2/32"],
            "mtu": 1280,
        },
    ),
}


@pytest.mark.parametrize("key", sorted(ROUND_TRIP_NODES))
def test_node_round_trip(key: str) -> None:
    node = ROUND_TRIP_NODES[key]
    written = node_to_singbox(node, node.name)
    assert written["tag"] == node.name
    again = node_from_singbox(json.loads(json.dumps(written)))
    assert again is not None
    assert again.identity() == node.identity()
    assert again.name == node.name


def test_vless_reality_written_fields() -> None:
    outbound = node_to_singbox(ROUND_TRIP_NODES["vless_reality_grpc_no_fingerprint"], "r")
    tls = outbound["tls"]
    assert tls["enabled"] is True
    assert tls["reality"] == {"enabled": True, "public_key": "pbk"}
    # sing-box refuses REALITY without uTLS, so a fingerprint is filled in.
    assert tls["utls"] == {"enabled": True, "fingerprint": "chrome"}
    assert outbound["transport"] == {"type": "grpc", "service_name": "grpc"}
    assert (outbound["server"], outbound["server_port"]) == ("127.10.20.30", 443)


def test_ws_early_data_written_as_singbox_fields() -> None:
    outbound = node_to_singbox(ROUND_TRIP_NODES["vless_ws_early_data"], "w")
    assert outbound["transport"] == {
        "type": "ws",
        "path": "/p?x=1",
        "headers": {"Host": "h.example.com"},
        "max_early_data": 2048,
        "early_data_header_name": "Sec-WebSocket-Protocol",
    }
    assert "tls" not in outbound


def test_h2_written_as_http_transport() -> None:
    outbound = node_to_singbox(ROUND_TRIP_NODES["vmess_h2_tls"], "h")
    assert outbound["transport"] == {
        "type": "http",
        "path": "/h2",
        "host": ["a.example.com", "b.example.com"],
    }
    assert outbound["alter_id"] == 64


def test_hysteria2_written_fields() -> None:
    outbound = node_to_singbox(ROUND_TRIP_NODES["hysteria2_obfs_ports"], "h")
    assert outbound["server_port"] == 443
    # sing-box needs "start:end" even for one port.
    assert outbound["server_ports"] == ["443:443", "1000:2000"]
    assert outbound["obfs"] == {"type": "salamander", "password": "op"}
    assert outbound["tls"] == {"enabled": True, "insecure": True}


def test_hysteria_v1_written_with_required_bandwidth() -> None:
    node = _node(protocol="hysteria", password="auth")
    outbound = node_to_singbox(node, "h1")
    assert outbound["auth_str"] == "auth"
    assert outbound["up_mbps"] > 0
    assert outbound["down_mbps"] > 0
    assert outbound["tls"]["enabled"] is True


def test_shadowsocks_plugin_written_as_strings() -> None:
    outbound = node_to_singbox(ROUND_TRIP_NODES["ss_v2ray_plugin_tls"], "s")
    assert outbound["plugin"] == "v2ray-plugin"
    assert outbound["plugin_opts"] == "mode=websocket;host=h.com;path=/v;tls"


def test_wireguard_written_as_endpoint() -> None:
    node = ROUND_TRIP_NODES["wireguard"]
    assert node.protocol in ENDPOINT_PROTOCOLS
    endpoint = node_to_singbox(node, "wg")
    assert endpoint["type"] == "wireguard"
    assert endpoint["address"] == ["172.16.0.2/32"]
    assert endpoint["private_key"] == WG_PRIVATE
    assert endpoint["mtu"] == 1280
    peer = endpoint["peers"][0]
    assert (peer["address"], peer["port"]) == ("127.10.20.30", 2408)
    assert peer["public_key"] == WG_PUBLIC
    assert peer["pre_shared_key"] == WG_PSK
    assert peer["reserved"] == [7, 8, 9]
    assert peer["allowed_ips"] == ["0.0.0.0/0", "::/0"]
    assert "server" not in endpoint


UNSUPPORTED_NODES = {
    "ssr": _node(
        protocol="ssr", method="aes-256-cfb", password="p", extra={"protocol": "origin", "obfs": "plain"}
    ),
    "xhttp": _node(protocol="vless", uuid=UUID, network="xhttp", path="/x"),
    "kcp": _node(protocol="vmess", uuid=UUID, network="kcp", extra={"seed": "s"}),
    "tcp_http_header": _node(
        protocol="vmess", uuid=UUID, path="/", host_header="h.com", extra={"header_type": "http"}
    ),
    "vless_old_flow": _node(protocol="vless", uuid=UUID, flow="xtls-rprx-direct", security="tls"),
    "ss_cipher": _node(protocol="ss", method="aes-128-gcm-siv", password="p"),
    "ss_plugin": _node(protocol="ss", method="aes-128-gcm", password="p", extra={"plugin": "kcptun"}),
    "tuic_v4": _node(protocol="tuic", uuid=UUID, password="p", extra={"version": 4}),
    "hysteria_faketcp": _node(protocol="hysteria", password="p", extra={"hysteria_protocol": "faketcp"}),
    "wireguard_no_address": _node(
        protocol="wireguard", extra={"private_key": WG_PRIVATE, "public_key": WG_PUBLIC}
    ),
}


@pytest.mark.parametrize("key", sorted(UNSUPPORTED_NODES))
def test_unsupported_node_raises(key: str) -> None:
    with pytest.raises(UnsupportedNode) as error:
        node_to_singbox(UNSUPPORTED_NODES[key], "x")
    assert str(error.value)


# --- config export --------------------------------------------------------------------------------


def _all_tags(config: dict) -> list[str]:
    return [entry["tag"] for entry in config["outbounds"] + config.get("endpoints", [])]


def test_render_config_structure() -> None:
    nodes = [*ROUND_TRIP_NODES.values(), *UNSUPPORTED_NODES.values()]
    text, skipped = render_singbox(nodes)
    config = json.loads(text)

    tags = _all_tags(config)
    assert len(tags) == len(set(tags))
    assert config["inbounds"] == [
        {"type": "mixed", "tag": "mixed-in", "listen": "127.0.0.1", "listen_port": 2080}
    ]

    by_type: dict[str, list[dict]] = {}
    for outbound in config["outbounds"]:
        by_type.setdefault(outbound["type"], []).append(outbound)
    selector = by_type["selector"][0]
    urltest = by_type["urltest"][0]
    assert config["route"]["final"] == selector["tag"]
    assert set(selector["outbounds"]) <= set(tags)
    assert set(urltest["outbounds"]) <= set(tags)
    assert selector["default"] in selector["outbounds"]
    assert "direct" in by_type

    proxy_tags = [tag for tag in tags if tag not in (selector["tag"], urltest["tag"], "direct")]
    assert sorted(urltest["outbounds"]) == sorted(proxy_tags)
    assert len(proxy_tags) == len(ROUND_TRIP_NODES)

    # Every node shares the name "test node", so the tags were numbered.
    assert "test node" in proxy_tags
    assert "test node 2" in proxy_tags

    assert [endpoint["type"] for endpoint in config["endpoints"]] == ["wireguard"]
    assert all(outbound["type"] != "wireguard" for outbound in config["outbounds"])
    assert not any(outbound["type"] in ("block", "dns") for outbound in config["outbounds"])

    assert sum(skipped.values()) == len(UNSUPPORTED_NODES)
    assert skipped["ssr is not supported by sing-box (removed in 1.6.0)"] == 1


def test_render_renames_node_called_like_a_group() -> None:
    nodes = [_node(protocol="trojan", password="p", security="tls", name=name) for name in ("auto", "direct")]
    config = json.loads(render_singbox(nodes)[0])
    tags = _all_tags(config)
    assert len(tags) == len(set(tags))
    trojan_tags = [entry["tag"] for entry in config["outbounds"] if entry["type"] == "trojan"]
    assert trojan_tags == ["auto 2", "direct 2"]


def test_render_empty_node_list() -> None:
    text, skipped = render_singbox([])
    config = json.loads(text)
    assert not skipped
    assert "endpoints" not in config
    selector = config["outbounds"][0]
    assert selector["type"] == "selector"
    assert selector["outbounds"] == ["direct"]
    assert all(outbound["type"] != "urltest" for outbound in config["outbounds"])


def test_render_corpus_nodes() -> None:
    nodes: list[Node] = []
    for path in corpus_files("singbox-*.json"):
        nodes += nodes_from_singbox_config(json.loads(path.read_text(encoding="utf-8")))[0]
    config = json.loads(render_singbox(nodes)[0])
    tags = _all_tags(config)
    assert len(tags) == len(set(tags))
    assert len(tags) == len(nodes) + 3


@pytest.mark.skipif(shutil.which("sing-box") is None, reason="sing-box binary is not on PATH")
def test_rendered_config_passes_singbox_check(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    nodes = [node for node in ROUND_TRIP_NODES.values() if node.protocol != "hysteria"]
    path.write_text(render_singbox(nodes)[0], encoding="utf-8")
    result = subprocess.run(
        ["sing-box", "check", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_render_100k_nodes() -> None:
    base = list(ROUND_TRIP_NODES.values())
    nodes = [base[index % len(base)] for index in range(100_000)]
    text, _ = render_singbox(nodes)
    document = json.loads(text)
    assert document["route"]["final"] == "select"
    tags = [outbound["tag"] for outbound in document["outbounds"] + document.get("endpoints", [])]
    assert len(tags) == len(set(tags))
