"""URL tests through v2ray against real servers from Debian packages, all on 127.0.0.1.

ss-server (shadowsocks-libev), trojan and v2ray (vmess, vless over WebSocket+TLS, trojan) serve
a local HTTP target. A correct node must pass the URL test; a node with a wrong password or UUID
must fail it although its port answers the TCP or TLS probe; a closed port must fail both.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings

from merger import coretest, probing
from merger.core.export.v2ray import UnsupportedByCore, v2ray_outbound
from merger.core.node import Node
from merger.core.v2ray_json import nodes_from_v2ray_outbound
from monitoring.probe_farm import free_port, make_certificate, start_server_process, stop_process

SERVER_BINARIES = ("v2ray", "ss-server", "trojan", "openssl")
BODY_MARK = "vpnmerger-probe-ok"
UUID_OK = "6a1c3a2e-0f0e-4f43-9b7e-1a1b2c3d4e5f"
UUID_VLESS = "0b9d1a62-5b8e-4c1e-8d33-2f6a7b8c9d0e"
UUID_WRONG = "11111111-2222-4333-8444-555555555555"
TEST_TIMEOUT = 3.0


def require_binaries(*names: str) -> None:
    """Fail under CI and skip elsewhere when a server binary is missing."""
    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return
    message = (
        f"missing {', '.join(missing)}: run 'make install' (it apt-installs v2ray shadowsocks-libev trojan)"
    )
    if settings.CI:
        pytest.fail(message)
    pytest.skip(message)


# ---------------------------------------------------------------------------------------------
# The exporter, checked against the reader of v2ray JSON.


def _round_trip(node: Node) -> Node:
    (back,) = nodes_from_v2ray_outbound(v2ray_outbound(node, "x"))
    return back


def test_vmess_ws_tls_outbound_round_trip():
    node = Node(
        protocol="vmess",
        host="127.0.0.5",
        port=443,
        uuid=UUID_OK,
        method="auto",
        network="ws",
        path="/ws",
        host_header="cdn.example",
        security="tls",
        sni="cdn.example",
        alpn=("h2", "http/1.1"),
    )
    assert _round_trip(node).fingerprint == node.fingerprint


def test_vless_tcp_outbound_round_trip():
    node = Node(protocol="vless", host="127.0.0.6", port=8443, uuid=UUID_VLESS)
    assert _round_trip(node).fingerprint == node.fingerprint


def test_trojan_outbound_round_trip():
    node = Node(protocol="trojan", host="127.0.0.7", port=443, password="pw", security="tls", sni="t.example")
    assert _round_trip(node).fingerprint == node.fingerprint


def test_shadowsocks_outbound_uses_v2ray_cipher_name():
    node = Node(protocol="ss", host="127.0.0.8", port=8388, method="chacha20-ietf-poly1305", password="pw")
    outbound = v2ray_outbound(node, "x")
    assert outbound["settings"]["servers"][0]["method"] == "chacha20-poly1305"
    assert _round_trip(node).fingerprint == node.fingerprint


def test_tcp_http_header_outbound_round_trip():
    node = Node(
        protocol="vmess",
        host="127.0.0.9",
        port=80,
        uuid=UUID_OK,
        method="auto",
        path="/a",
        host_header="h.example",
        extra={"header_type": "http"},
    )
    assert _round_trip(node).fingerprint == node.fingerprint


def test_force_insecure_overrides_node():
    node = Node(protocol="trojan", host="127.0.0.7", port=443, password="pw", security="tls")
    outbound = v2ray_outbound(node, "x", force_insecure=True)
    assert outbound["streamSettings"]["tlsSettings"]["allowInsecure"] is True


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        (
            Node(protocol="hysteria2", host="127.0.0.1", port=443, password="p", security="tls"),
            "no hysteria2 outbound",
        ),
        (
            Node(protocol="vless", host="127.0.0.1", port=443, uuid=UUID_VLESS, network="grpc"),
            "grpc transport",
        ),
        (
            Node(protocol="vless", host="127.0.0.1", port=443, uuid=UUID_VLESS, network="xhttp"),
            "xhttp transport",
        ),
        (
            Node(
                protocol="vless",
                host="127.0.0.1",
                port=443,
                uuid=UUID_VLESS,
                security="reality",
                reality_public_key="k",
            ),
            "REALITY",
        ),
        (
            Node(
                protocol="vless",
                host="127.0.0.1",
                port=443,
                uuid=UUID_VLESS,
                flow="xtls-rprx-vision",
                security="tls",
            ),
            "vless flow",
        ),
        (
            Node(protocol="ss", host="127.0.0.1", port=1, method="2022-blake3-aes-128-gcm", password="a"),
            "ss cipher",
        ),
        (Node(protocol="ss", host="127.0.0.1", port=1, method="aes-256-cfb", password="a"), "ss cipher"),
        (Node(protocol="vmess", host="127.0.0.1", port=1, uuid="short-id"), "needs a UUID"),
    ],
)
def test_unsupported_nodes_name_reason(node, reason):
    with pytest.raises(UnsupportedByCore, match=reason):
        v2ray_outbound(node, "x")


def test_corpus_nodes_export_or_name_reason(corpus_dir):
    """Every vless/vmess/trojan/ss node of a real list either exports or gets a reason."""
    from merger.core.decode import parse_body

    parsed = parse_body((corpus_dir / "plain-mixed-remarks.txt").read_bytes())
    exported = rejected = 0
    for index, node in enumerate(parsed.nodes):
        try:
            v2ray_outbound(node, f"out-{index}")
            exported += 1
        except UnsupportedByCore as error:
            assert str(error)
            rejected += 1
    assert exported > 0
    assert exported + rejected == len(parsed.nodes)


def test_generated_config_passes_v2ray_check(tmp_path):
    require_binaries("v2ray")
    nodes = [
        Node(
            protocol="vmess",
            host="127.0.0.5",
            port=443,
            uuid=UUID_OK,
            method="auto",
            network="ws",
            path="/w",
            security="tls",
            sni="a.example",
        ),
        Node(
            protocol="vless",
            host="127.0.0.6",
            port=80,
            uuid=UUID_VLESS,
            network="h2",
            path="/h",
            host_header="b.example",
            security="tls",
        ),
        Node(protocol="ss", host="127.0.0.8", port=8388, method="aes-128-gcm", password="pw"),
        Node(protocol="trojan", host="127.0.0.7", port=443, password="pw", security="tls"),
        Node(
            protocol="vmess",
            host="127.0.0.5",
            port=1,
            uuid=UUID_OK,
            method="auto",
            network="kcp",
            extra={"header_type": "wechat-video", "seed": "s"},
        ),
        Node(
            protocol="socks", host="127.0.0.9", port=1080, username="u", password="p", extra={"version": "5"}
        ),
        Node(protocol="http", host="127.0.0.9", port=8080, security="tls"),
    ]
    outbounds = [v2ray_outbound(node, f"out-{index}") for index, node in enumerate(nodes)]
    config = coretest.build_config(outbounds, coretest.free_ports(len(outbounds)))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        ["v2ray", "-test", "-config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert "Configuration OK" in result.stdout, result.stdout + result.stderr


def test_url_refusal_blocks_public_test_url():
    assert coretest.url_refusal("http://www.gstatic.com/generate_204", allow_public=False)
    assert coretest.url_refusal("http://127.0.0.1:9/x", allow_public=False) == ""


def test_url_test_without_core_marks_not_tested():
    options = coretest.CoreTestOptions(url="http://127.0.0.1:9/", core="/nonexistent/v2ray")
    node = Node(protocol="ss", host="127.0.0.1", port=1, method="aes-128-gcm", password="p")
    (outcome,) = asyncio.run(coretest.url_test([node], options))
    assert outcome.alive is None
    assert "no v2ray or xray binary" in outcome.error


# ---------------------------------------------------------------------------------------------
# Real servers.


class _Target(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the name is fixed by http.server
        body = BODY_MARK.encode() if self.path == "/probe" else b"not found"
        self.send_response(200 if self.path == "/probe" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - silence per-request logging
        return


@pytest.fixture(scope="module")
def target_url():
    # A module-wide server (the conftest http_server fixture is per test), so the core runs once.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/probe"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Start ss-server, trojan and v2ray on ephemeral ports; yield the ports by name."""
    require_binaries(*SERVER_BINARIES)
    folder = tmp_path_factory.mktemp("servers")
    cert, key = make_certificate(folder)
    ports = {name: free_port() for name in ("ss", "trojan", "vmess", "vless", "v2ray_trojan", "closed")}
    processes = []
    try:
        processes.append(
            start_server_process(
                [
                    "ss-server",
                    "-s",
                    "127.0.0.1",
                    "-p",
                    str(ports["ss"]),
                    "-k",
                    "ss-secret",
                    "-m",
                    "aes-256-gcm",
                ],
                ports["ss"],
            )
        )
        trojan_config = folder / "trojan.json"
        trojan_config.write_text(
            json.dumps(
                {
                    "run_type": "server",
                    "local_addr": "127.0.0.1",
                    "local_port": ports["trojan"],
                    # Unauthenticated connections are passed to a closed port, so they just end.
                    "remote_addr": "127.0.0.1",
                    "remote_port": ports["closed"],
                    "password": ["trojan-secret"],
                    "log_level": 3,
                    "ssl": {"cert": str(cert), "key": str(key), "alpn": ["http/1.1"]},
                }
            )
        )
        processes.append(start_server_process(["trojan", "-c", str(trojan_config)], ports["trojan"]))
        tls = {"certificates": [{"certificateFile": str(cert), "keyFile": str(key)}]}
        v2ray_config = folder / "v2ray.json"
        v2ray_config.write_text(
            json.dumps(
                {
                    "log": {"loglevel": "warning"},
                    "inbounds": [
                        {
                            "listen": "127.0.0.1",
                            "port": ports["vmess"],
                            "protocol": "vmess",
                            "settings": {"clients": [{"id": UUID_OK, "alterId": 0}]},
                        },
                        {
                            "listen": "127.0.0.1",
                            "port": ports["vless"],
                            "protocol": "vless",
                            "settings": {"clients": [{"id": UUID_VLESS}], "decryption": "none"},
                            "streamSettings": {
                                "network": "ws",
                                "wsSettings": {"path": "/vl"},
                                "security": "tls",
                                "tlsSettings": tls,
                            },
                        },
                        {
                            "listen": "127.0.0.1",
                            "port": ports["v2ray_trojan"],
                            "protocol": "trojan",
                            "settings": {"clients": [{"password": "v2-trojan-secret"}]},
                            "streamSettings": {"security": "tls", "tlsSettings": tls},
                        },
                    ],
                    "outbounds": [{"protocol": "freedom"}],
                }
            )
        )
        v2ray = start_server_process(["v2ray", "-config", str(v2ray_config)], ports["vmess"])
        processes.append(v2ray)
        for name in ("vless", "v2ray_trojan"):
            from monitoring.probe_farm import wait_for_port

            wait_for_port(ports[name], process=v2ray)
        yield ports
    finally:
        for process in processes:
            stop_process(process)


def _nodes(ports: dict[str, int]) -> dict[str, Node]:
    def vless(uuid: str) -> Node:
        return Node(
            protocol="vless",
            host="127.0.0.1",
            port=ports["vless"],
            uuid=uuid,
            network="ws",
            path="/vl",
            security="tls",
            sni="probe.test",
            alpn=("http/1.1",),
        )

    def trojan(port: int, password: str) -> Node:
        return Node(
            protocol="trojan",
            host="127.0.0.1",
            port=port,
            password=password,
            security="tls",
            sni="probe.test",
        )

    def ss(port: int, password: str) -> Node:
        return Node(protocol="ss", host="127.0.0.1", port=port, method="aes-256-gcm", password=password)

    def vmess(port: int, uuid: str) -> Node:
        return Node(protocol="vmess", host="127.0.0.1", port=port, uuid=uuid, method="auto")

    return {
        "ss ok": ss(ports["ss"], "ss-secret"),
        "ss wrong password": ss(ports["ss"], "not-the-secret"),
        "ss closed port": ss(ports["closed"], "ss-secret"),
        "trojan ok": trojan(ports["trojan"], "trojan-secret"),
        "trojan wrong password": trojan(ports["trojan"], "wrong"),
        "v2ray trojan ok": trojan(ports["v2ray_trojan"], "v2-trojan-secret"),
        "v2ray trojan wrong password": trojan(ports["v2ray_trojan"], "wrong"),
        "vmess ok": vmess(ports["vmess"], UUID_OK),
        "vmess wrong uuid": vmess(ports["vmess"], UUID_WRONG),
        "vmess closed port": vmess(ports["closed"], UUID_OK),
        "vless ok": vless(UUID_VLESS),
        "vless wrong uuid": vless(UUID_WRONG),
        "hostname": Node(protocol="ss", host="proxy.invalid", port=8388, method="aes-256-gcm", password="x"),
        "grpc": Node(
            protocol="vless",
            host="127.0.0.1",
            port=ports["vless"],
            uuid=UUID_VLESS,
            network="grpc",
            security="tls",
        ),
    }


@pytest.fixture(scope="module")
def results(servers, target_url):
    """Run the TCP/TLS probe and the URL test once over every node; return name -> (probe, url)."""
    require_binaries("v2ray")
    nodes = _nodes(servers)
    options = probing.ProbeOptions(
        timeout=TEST_TIMEOUT,
        attempts=1,
        concurrency=20,
        core_test=True,
        core_batch=100,
        test_url=target_url,
        test_status=200,
        test_body=BODY_MARK,
    )
    outcomes = probing.run_probes(list(nodes.values()), options)
    return {name: (found[0], found[1]) for name, found in zip(nodes, outcomes, strict=True)}


@pytest.mark.parametrize("name", ["ss ok", "trojan ok", "v2ray trojan ok", "vmess ok", "vless ok"])
def test_correct_node_passes_url_test(results, name):
    probe, url = results[name]
    assert probe.alive is True, probe
    assert url.alive is True, url
    assert url.latency_ms is not None and url.latency_ms > 0


@pytest.mark.parametrize(
    "name",
    [
        "ss wrong password",
        "trojan wrong password",
        "v2ray trojan wrong password",
        "vmess wrong uuid",
        "vless wrong uuid",
    ],
)
def test_wrong_credentials_fail_url_test_only(results, name):
    probe, url = results[name]
    assert probe.alive is True, probe
    assert url.alive is False, url
    assert url.error


@pytest.mark.parametrize("name", ["ss closed port", "vmess closed port"])
def test_closed_port_fails_both(results, name):
    probe, url = results[name]
    assert probe.alive is False
    assert probe.error == "connection refused"
    assert url.alive is False


def test_tls_nodes_probed_by_handshake(results):
    probe, _ = results["trojan ok"]
    assert probe.kind == probing.TLS
    assert probe.verified is False
    assert "self-signed" in probe.error


def test_hostname_node_not_probed(results):
    probe, url = results["hostname"]
    assert probe.alive is None
    assert probe.error == "not probed: hostname resolution disabled"
    assert url.alive is None
    assert url.error == "not probed: hostname resolution disabled"


def test_grpc_node_not_tested_by_core(results):
    _, url = results["grpc"]
    assert url.alive is None
    assert url.error == "not tested by core: v2ray 4.34 does not support the grpc transport"


def test_bad_outbound_is_isolated_by_batch_splitting(servers, target_url):
    """A node whose outbound makes the core exit is reported alone; its batch-mates are still tested."""
    require_binaries("v2ray")
    nodes = _nodes(servers)
    good = nodes["ss ok"]
    # v2ray refuses to start with an mKCP header type it does not know.
    bad = Node(
        protocol="vmess",
        host="127.0.0.1",
        port=1,
        uuid=UUID_OK,
        method="auto",
        network="kcp",
        extra={"header_type": "no-such-header"},
    )
    options = coretest.CoreTestOptions(
        url=target_url, expect_status=200, expect_body=BODY_MARK, timeout=TEST_TIMEOUT
    )
    outcomes = asyncio.run(coretest.url_test([good, bad], options))
    assert outcomes[0].alive is True
    assert outcomes[1].alive is None
    assert outcomes[1].error.startswith("not tested by core: core exited")


def test_certificate_written_once(tmp_path):
    require_binaries("openssl")
    cert, key = make_certificate(Path(tmp_path))
    assert cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert key.exists()
