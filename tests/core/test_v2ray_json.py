"""Tests for reading nodes out of v2ray / Xray JSON configs.

The configs are written for these tests after the client examples in the Xray documentation
(xtls.github.io outbound protocol and transport pages); servers are loopback addresses.
"""

from __future__ import annotations

from merger.core.links import parse_link
from merger.core.singbox import node_from_singbox
from merger.core.v2ray_json import nodes_from_v2ray_config, nodes_from_v2ray_outbound

UUID = "5783a3e7-e373-51cd-8642-c83782b807c5"
SS2022_KEY = "8JCsPssfgS8tiRwiMlhARg=="


def _vless_reality_outbound() -> dict:
    return {
        "tag": "proxy",
        "protocol": "vless",
        "settings": {
            "vnext": [
                {
                    "address": "127.20.0.1",
                    "port": 443,
                    "users": [{"id": UUID, "encryption": "none", "flow": "xtls-rprx-vision"}],
                }
            ]
        },
        "streamSettings": {
            "network": "raw",
            "security": "reality",
            "realitySettings": {
                "serverName": "www.example.com",
                "fingerprint": "chrome",
                "password": "Z84J2IelR9ch3k8VtlVhhs5ycBUlXA7wHBWcBrjqnAw",
                "shortId": "6ba85179e30d4fc2",
                "spiderX": "/",
            },
        },
    }


def _vmess_ws_tls_outbound() -> dict:
    return {
        "tag": "vmess-ws",
        "protocol": "vmess",
        "settings": {
            "vnext": [
                {
                    "address": "127.20.0.2",
                    "port": 8443,
                    "users": [{"id": UUID, "alterId": 0, "security": "auto", "level": 0}],
                }
            ]
        },
        "streamSettings": {
            "network": "ws",
            "security": "tls",
            "tlsSettings": {
                "serverName": "ws.example.com",
                "allowInsecure": False,
                "alpn": ["http/1.1"],
                "fingerprint": "firefox",
            },
            "wsSettings": {"path": "/websocket", "headers": {"Host": "ws.example.com"}},
        },
    }


FULL_CONFIG = {
    "log": {"loglevel": "warning"},
    "inbounds": [{"port": 10808, "listen": "127.0.0.1", "protocol": "socks", "settings": {"udp": True}}],
    "outbounds": [
        _vless_reality_outbound(),
        _vmess_ws_tls_outbound(),
        {
            "tag": "trojan-grpc",
            "protocol": "trojan",
            "settings": {"servers": [{"address": "127.20.0.3", "port": 443, "password": "trojan-pw"}]},
            "streamSettings": {
                "network": "grpc",
                "security": "tls",
                "tlsSettings": {"serverName": "grpc.example.com"},
                "grpcSettings": {"serviceName": "TunService", "multiMode": True},
            },
        },
        {
            "tag": "ss",
            "protocol": "shadowsocks",
            "settings": {
                "servers": [
                    {
                        "address": "127.20.0.4",
                        "port": 8388,
                        "method": "2022-blake3-aes-128-gcm",
                        "password": SS2022_KEY,
                        "uot": True,
                    },
                    {"address": "127.20.0.5", "port": 8389, "method": "AES-256-GCM", "password": "pw"},
                ]
            },
        },
        {
            "tag": "socks-out",
            "protocol": "socks",
            "settings": {
                "servers": [{"address": "127.20.0.6", "port": 1080, "users": [{"user": "u", "pass": "p"}]}]
            },
        },
        {
            "tag": "https-out",
            "protocol": "http",
            "settings": {
                "servers": [{"address": "127.20.0.7", "port": 443, "users": [{"user": "hu", "pass": "hp"}]}]
            },
            "streamSettings": {"security": "tls", "tlsSettings": {"serverName": "proxy.example.com"}},
        },
        {"tag": "direct", "protocol": "freedom", "settings": {}},
        {"tag": "block", "protocol": "blackhole", "settings": {}},
        {"tag": "dns-out", "protocol": "dns"},
    ],
    "routing": {"rules": []},
}


def test_full_config_nodes_and_ignored_outbounds() -> None:
    nodes, rejected = nodes_from_v2ray_config(FULL_CONFIG)
    assert rejected == []
    assert [node.protocol for node in nodes] == ["vless", "vmess", "trojan", "ss", "ss", "socks", "http"]
    assert [node.name for node in nodes] == [
        "proxy",
        "vmess-ws",
        "trojan-grpc",
        "ss",
        "ss",
        "socks-out",
        "https-out",
    ]


def test_vless_reality_fields() -> None:
    (node,) = nodes_from_v2ray_outbound(_vless_reality_outbound())
    assert (node.host, node.port) == ("127.20.0.1", 443)
    assert node.uuid == UUID
    assert node.flow == "xtls-rprx-vision"
    assert node.network == "tcp"
    assert node.security == "reality"
    assert node.sni == "www.example.com"
    assert node.client_fingerprint == "chrome"
    assert node.reality_public_key == "Z84J2IelR9ch3k8VtlVhhs5ycBUlXA7wHBWcBrjqnAw"
    assert node.reality_short_id == "6ba85179e30d4fc2"
    assert node.reality_spider_x == "/"


def test_reality_public_key_old_name() -> None:
    outbound = _vless_reality_outbound()
    settings = outbound["streamSettings"]["realitySettings"]
    settings["publicKey"] = settings.pop("password")
    (node,) = nodes_from_v2ray_outbound(outbound)
    assert node.reality_public_key == "Z84J2IelR9ch3k8VtlVhhs5ycBUlXA7wHBWcBrjqnAw"


def test_vmess_ws_tls_fields() -> None:
    (node,) = nodes_from_v2ray_outbound(_vmess_ws_tls_outbound())
    assert node.method == "auto"
    assert node.network == "ws"
    assert node.path == "/websocket"
    assert node.host_header == "ws.example.com"
    assert node.security == "tls"
    assert node.sni == "ws.example.com"
    assert node.alpn == ("http/1.1",)
    assert node.client_fingerprint == "firefox"
    assert node.insecure is False


def test_trojan_grpc_and_shadowsocks_fields() -> None:
    nodes, _ = nodes_from_v2ray_config(FULL_CONFIG)
    trojan, ss_2022, ss_gcm = nodes[2], nodes[3], nodes[4]
    assert trojan.password == "trojan-pw"
    assert trojan.network == "grpc"
    assert trojan.service_name == "TunService"
    assert trojan.mode == "multi"
    assert trojan.security == "tls"
    assert ss_2022.method == "2022-blake3-aes-128-gcm"
    assert ss_2022.password == SS2022_KEY
    assert ss_2022.extra["udp_over_tcp"] is True
    assert ss_gcm.method == "aes-256-gcm"
    assert ss_gcm.security == "none"


def test_socks_and_http_users() -> None:
    nodes, _ = nodes_from_v2ray_config(FULL_CONFIG)
    socks, http = nodes[5], nodes[6]
    assert (socks.username, socks.password) == ("u", "p")
    assert socks.extra["version"] == "5"
    assert (http.username, http.password) == ("hu", "hp")
    assert http.security == "tls"
    assert http.sni == "proxy.example.com"


def _vmess_with_stream(stream: dict) -> dict:
    return {
        "protocol": "vmess",
        "settings": {"vnext": [{"address": "127.20.1.1", "port": 80, "users": [{"id": UUID}]}]},
        "streamSettings": stream,
    }


def test_tcp_http_header_obfuscation() -> None:
    stream = {
        "network": "tcp",
        "tcpSettings": {
            "header": {
                "type": "http",
                "request": {
                    "version": "1.1",
                    "method": "GET",
                    "path": ["/video"],
                    "headers": {"Host": ["www.example.com", "www.example.org"]},
                },
            }
        },
    }
    (node,) = nodes_from_v2ray_outbound(_vmess_with_stream(stream))
    assert node.network == "tcp"
    assert node.extra["header_type"] == "http"
    assert node.path == "/video"
    assert node.host_header == "www.example.com"


def test_tcp_none_header_drops_fields() -> None:
    stream = {"network": "tcp", "tcpSettings": {"header": {"type": "none"}}, "wsSettings": {"path": "/x"}}
    (node,) = nodes_from_v2ray_outbound(_vmess_with_stream(stream))
    assert "header_type" not in node.extra
    assert node.path == ""


def test_kcp_header_and_seed() -> None:
    stream = {
        "network": "kcp",
        "kcpSettings": {"mtu": 1350, "header": {"type": "wechat-video"}, "seed": "s33d"},
    }
    (node,) = nodes_from_v2ray_outbound(_vmess_with_stream(stream))
    assert node.network == "kcp"
    assert node.extra["header_type"] == "wechat-video"
    assert node.extra["seed"] == "s33d"


def test_xhttp_settings() -> None:
    stream = {
        "network": "xhttp",
        "security": "tls",
        "tlsSettings": {"serverName": "x.example.com", "alpn": ["h2"]},
        "xhttpSettings": {
            "host": "x.example.com",
            "path": "/xh",
            "mode": "packet-up",
            "extra": {"xPaddingBytes": "100-1000"},
        },
    }
    (node,) = nodes_from_v2ray_outbound(_vmess_with_stream(stream))
    assert node.network == "xhttp"
    assert (node.path, node.host_header, node.mode) == ("/xh", "x.example.com", "packet-up")
    assert node.extra["extra_json"] == {"xPaddingBytes": "100-1000"}


def test_splithttp_old_name() -> None:
    stream = {"network": "splithttp", "splithttpSettings": {"path": "/sp"}}
    (node,) = nodes_from_v2ray_outbound(_vmess_with_stream(stream))
    assert (node.network, node.path) == ("xhttp", "/sp")


def test_h2_http_settings() -> None:
    stream = {
        "network": "http",
        "security": "tls",
        "httpSettings": {"host": ["a.example.com", "b.example.com"], "path": "/h2"},
    }
    (node,) = nodes_from_v2ray_outbound(_vmess_with_stream(stream))
    assert node.network == "h2"
    assert node.host_header == "a.example.com,b.example.com"
    assert node.path == "/h2"


def test_httpupgrade_and_ws_host_field() -> None:
    upgrade = {"network": "httpupgrade", "httpupgradeSettings": {"path": "/up", "host": "up.example.com"}}
    ws = {
        "network": "ws",
        "wsSettings": {"host": "host.example.com", "headers": {"Host": "header.example.com"}},
    }
    (upgrade_node,) = nodes_from_v2ray_outbound(_vmess_with_stream(upgrade))
    (ws_node,) = nodes_from_v2ray_outbound(_vmess_with_stream(ws))
    assert (upgrade_node.network, upgrade_node.path, upgrade_node.host_header) == (
        "httpupgrade",
        "/up",
        "up.example.com",
    )
    # Xray's `host` field wins over the Host header, and an empty ws path becomes "/".
    assert (ws_node.path, ws_node.host_header) == ("/", "host.example.com")


def test_xtls_security_read_as_tls() -> None:
    stream = {"network": "tcp", "security": "xtls", "xtlsSettings": {"serverName": "old.example.com"}}
    (node,) = nodes_from_v2ray_outbound(_vmess_with_stream(stream))
    assert node.security == "tls"
    assert node.sni == "old.example.com"


def test_tls_allow_insecure() -> None:
    stream = {"security": "tls", "tlsSettings": {"allowInsecure": True, "alpn": "h2,http/1.1"}}
    (node,) = nodes_from_v2ray_outbound(_vmess_with_stream(stream))
    assert node.insecure is True
    assert node.alpn == ("h2", "http/1.1")


def test_several_vnext_users_give_several_nodes() -> None:
    outbound = {
        "protocol": "vmess",
        "tag": "multi",
        "settings": {
            "vnext": [
                {
                    "address": "127.20.2.1",
                    "port": 443,
                    "users": [{"id": UUID}, {"id": UUID.replace("5", "6")}],
                },
                {"address": "127.20.2.2", "port": 444, "users": [{"id": UUID, "alterId": 4}]},
            ]
        },
    }
    nodes = nodes_from_v2ray_outbound(outbound)
    assert [(node.host, node.port, node.alter_id) for node in nodes] == [
        ("127.20.2.1", 443, 0),
        ("127.20.2.1", 443, 0),
        ("127.20.2.2", 444, 4),
    ]
    assert nodes[0].uuid != nodes[1].uuid


def test_flat_settings_form() -> None:
    outbound = {
        "protocol": "vless",
        "settings": {"address": "127.20.3.1", "port": 443, "id": UUID, "encryption": "none"},
        "streamSettings": {"network": "grpc", "grpcSettings": {"serviceName": "g"}},
    }
    (node,) = nodes_from_v2ray_outbound(outbound)
    assert (node.host, node.port, node.uuid, node.service_name) == ("127.20.3.1", 443, UUID, "g")


def test_wireguard_outbound() -> None:
    outbound = {
        "protocol": "wireguard",
        "tag": "warp",
        "settings": {
            "secretKey": "YNXtAzepDqRv9H52osJVDQnznT5AM11eCK3ESpwSt04=",
            "address": ["172.16.0.2", "fd01:5ca1:ab1e:823e:e094:eb1c:ff87:1fab/128"],
            "peers": [
                {"publicKey": "Z1XXLsKYkYxuiYjJIkRvtIKFepCYHTgON+GwPq7SOV4=", "endpoint": "127.20.4.1:2408"}
            ],
            "reserved": [78, 135, 76],
            "mtu": 1280,
        },
    }
    (node,) = nodes_from_v2ray_outbound(outbound)
    assert (node.protocol, node.host, node.port, node.name) == ("wireguard", "127.20.4.1", 2408, "warp")
    assert node.extra["reserved"] == [78, 135, 76]
    assert node.extra["local_address"] == ["172.16.0.2/32", "fd01:5ca1:ab1e:823e:e094:eb1c:ff87:1fab/128"]
    assert node.extra["mtu"] == 1280


def test_single_outbound_object_accepted() -> None:
    nodes, rejected = nodes_from_v2ray_config(_vless_reality_outbound())
    assert rejected == []
    assert len(nodes) == 1


def test_list_of_configs_accepted() -> None:
    nodes, rejected = nodes_from_v2ray_config(
        [{"outbounds": [_vless_reality_outbound()]}, {"outbounds": [_vmess_ws_tls_outbound()]}]
    )
    assert rejected == []
    assert [node.protocol for node in nodes] == ["vless", "vmess"]


def test_v2ray_v4_outbound_detour_keys() -> None:
    nodes, _ = nodes_from_v2ray_config(
        {"outbound": _vmess_ws_tls_outbound(), "outboundDetour": [{"protocol": "freedom", "tag": "direct"}]}
    )
    assert [node.protocol for node in nodes] == ["vmess"]


def test_rejection_reasons() -> None:
    bad_port = _vmess_ws_tls_outbound()
    bad_port["settings"]["vnext"][0]["port"] = 70000
    bad_cipher = {
        "tag": "ss-bad",
        "protocol": "shadowsocks",
        "settings": {"servers": [{"address": "127.20.5.1", "port": 1, "method": "foo", "password": "x"}]},
    }
    no_key = _vless_reality_outbound()
    del no_key["streamSettings"]["realitySettings"]["password"]
    bad_network = _vmess_with_stream({"network": "meek"})
    encryption = _vless_reality_outbound()
    encryption["settings"]["vnext"][0]["users"][0]["encryption"] = "mlkem768x25519plus.native.0rtt.abc"

    config = {
        "outbounds": [
            bad_port,
            bad_cipher,
            no_key,
            bad_network,
            encryption,
            {"protocol": "hysteria", "tag": "hy"},
            {"protocol": "freedom"},
        ]
    }
    nodes, rejected = nodes_from_v2ray_config(config)
    assert nodes == []

    assert len(rejected) == 6
    assert rejected[0] == "outbound 1 ('vmess-ws'): invalid port 70000: must be 1-65535"
    assert rejected[1] == "outbound 2 ('ss-bad'): unknown ss cipher 'foo'"
    assert "missing reality publicKey" in rejected[2]
    assert "unsupported transport 'meek'" in rejected[3]
    assert "unsupported vless encryption" in rejected[4]
    assert rejected[5] == "outbound 6 ('hy'): unsupported outbound protocol 'hysteria'"


def test_missing_vmess_id_rejected() -> None:
    outbound = _vmess_ws_tls_outbound()
    del outbound["settings"]["vnext"][0]["users"][0]["id"]
    nodes, rejected = nodes_from_v2ray_config(outbound)
    assert nodes == []
    assert rejected == ["outbound 1 ('vmess-ws'): missing vmess user id (UUID)"]


# --- the same server from other formats ------------------------------------------------------------


def test_vless_reality_matches_singbox_and_link() -> None:
    (from_xray,) = nodes_from_v2ray_outbound(_vless_reality_outbound())
    from_singbox = node_from_singbox(
        {
            "type": "vless",
            "tag": "other name",
            "server": "127.20.0.1",
            "server_port": 443,
            "uuid": UUID,
            "flow": "xtls-rprx-vision",
            "tls": {
                "enabled": True,
                "server_name": "www.example.com",
                "utls": {"enabled": True, "fingerprint": "safari"},
                "reality": {
                    "enabled": True,
                    "public_key": "Z84J2IelR9ch3k8VtlVhhs5ycBUlXA7wHBWcBrjqnAw",
                    "short_id": "6ba85179e30d4fc2",
                },
            },
        }
    )
    from_link = parse_link(
        f"vless://{UUID}@127.20.0.1:443?encryption=none&flow=xtls-rprx-vision&security=reality"
        "&sni=www.example.com&fp=chrome&pbk=Z84J2IelR9ch3k8VtlVhhs5ycBUlXA7wHBWcBrjqnAw"
        "&sid=6ba85179e30d4fc2&spx=%2F&type=tcp#link"
    )
    assert from_singbox is not None
    assert from_xray.fingerprint == from_singbox.fingerprint
    assert from_xray.fingerprint == from_link.fingerprint


def test_vmess_ws_tls_matches_singbox() -> None:
    (from_xray,) = nodes_from_v2ray_outbound(_vmess_ws_tls_outbound())
    from_singbox = node_from_singbox(
        {
            "type": "vmess",
            "server": "127.20.0.2",
            "server_port": 8443,
            "uuid": UUID,
            "security": "auto",
            "tls": {"enabled": True, "server_name": "ws.example.com"},
            "transport": {"type": "ws", "path": "/websocket", "headers": {"Host": "ws.example.com"}},
        }
    )
    assert from_singbox is not None
    assert from_xray.fingerprint == from_singbox.fingerprint
