"""The node identity: what makes two nodes duplicates and what does not."""

from __future__ import annotations

import dataclasses

from merger.core.node import Node


def _vless(**changes) -> Node:
    node = Node(
        protocol="vless",
        host="127.5.5.5",
        port=443,
        name="a",
        uuid="5f1a3c2e-9b7d-4e8a-a1c3-2d4e6f8a0b1c",
        network="ws",
        path="/ws",
        host_header="cdn.example.com",
        security="tls",
        sni="cdn.example.com",
    )
    return dataclasses.replace(node, **changes)


def test_name_and_sources_not_in_identity():
    assert _vless(name="other", sources=["x"]).fingerprint == _vless().fingerprint


def test_client_side_choices_not_in_identity():
    renamed = _vless(client_fingerprint="chrome", alpn=("h2",), insecure=True, mode="multi")
    assert renamed.fingerprint == _vless().fingerprint


def test_connection_fields_change_identity():
    base = _vless().fingerprint
    for field_name, value in [
        ("host", "127.5.5.6"),
        ("port", 8443),
        ("uuid", "00000000-0000-4000-8000-000000000000"),
        ("path", "/other"),
        ("host_header", "other.example.com"),
        ("security", "none"),
        ("sni", "other.example.com"),
    ]:
        assert _vless(**{field_name: value}).fingerprint != base, field_name


def test_host_case_ignored():
    assert _vless(host="LOCALHOST").fingerprint == _vless(host="localhost").fingerprint


def test_sni_equal_to_server_counts_as_empty():
    plain = Node(protocol="trojan", host="127.1.1.1", port=443, password="p", security="tls")
    explicit = dataclasses.replace(plain, sni="127.1.1.1")
    assert explicit.fingerprint == plain.fingerprint


def test_ws_sni_defaults_to_host_header():
    assert _vless(sni="").fingerprint == _vless().fingerprint


def test_path_without_leading_slash_matches():
    assert _vless(path="?ed=2048").fingerprint == _vless(path="/?ed=2048").fingerprint


def test_identity_extra_keys_only():
    plain = Node(protocol="hysteria2", host="127.1.1.2", port=443, password="p", security="tls")
    tuned = dataclasses.replace(plain, extra={"up_mbps": 100, "down_mbps": 500})
    obfuscated = dataclasses.replace(plain, extra={"obfs": "salamander", "obfs_password": "x"})
    assert tuned.fingerprint == plain.fingerprint
    assert obfuscated.fingerprint != plain.fingerprint


def test_v2ray_plugin_mux_ignored():
    def with_mux(mux: str) -> Node:
        opts = {"mode": "websocket", "host": "a.example.com", "mux": mux}
        return Node(
            protocol="ss",
            host="127.1.1.3",
            port=8388,
            password="p",
            method="aes-128-gcm",
            extra={"plugin": "v2ray-plugin", "plugin_opts": opts},
        )

    assert with_mux("8").fingerprint == with_mux("false").fingerprint


def test_fingerprint_is_stable_hex():
    fingerprint = _vless().fingerprint
    assert len(fingerprint) == 32
    assert int(fingerprint, 16) >= 0
    assert fingerprint == _vless().fingerprint
