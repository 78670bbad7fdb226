"""TCP and TLS probes against loopback servers, the safety rules, and storing results."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from merger import probing
from merger.core.decode import parse_body
from merger.core.node import Node as CoreNode
from merger.models import MergeRun, Node, ProbeResult, Source
from monitoring.probe_farm import make_certificate

pytestmark = pytest.mark.django_db

UUID = "6a1c3a2e-0f0e-4f43-9b7e-1a1b2c3d4e5f"


# ---------------------------------------------------------------------------------------------
# Loopback servers.


@pytest.fixture
def listener() -> Iterator[int]:
    """A listening TCP socket on 127.0.0.1 that the kernel completes handshakes for."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port that is bound but not listening, so a connect gets a reset."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A listener whose one-slot backlog is taken, so further SYNs are dropped and connects hang."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(0)
        port = sock.getsockname()[1]
        filler = socket.create_connection(("127.0.0.1", port))
        try:
            yield port
        finally:
            filler.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("cert"), "probe.test")


class TlsServer:
    """A threaded TLS server on 127.0.0.1 that records the SNI and ALPN of each handshake."""

    def __init__(self, cert: Path, key: Path, *, alpn: list[str] | None = None, silent: bool = False) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        if alpn:
            self.context.set_alpn_protocols(alpn)
        self.server_names: list[str | None] = []
        self.selected_alpn: list[str | None] = []
        self.context.sni_callback = lambda _sock, name, _context: self.server_names.append(name)
        self.silent = silent
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.silent:
                self.held.append(conn)
                continue
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    self.selected_alpn.append(tls.selected_alpn_protocol())
            except (ssl.SSLError, OSError):
                conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def tls_server(certificate) -> Iterator[TlsServer]:
    server = TlsServer(*certificate, alpn=["h2", "http/1.1"])
    yield server
    server.close()


# ---------------------------------------------------------------------------------------------
# Safety and probe choice.


@pytest.mark.parametrize("host", ["127.0.0.1", "127.45.3.9", "::1", "[::1]"])
def test_loopback_addresses_allowed(host):
    assert probing.address_refusal(host, allow_public=False) == ""


def test_hostname_refused_without_lookup():
    assert (
        probing.address_refusal("example.com", allow_public=False)
        == "not probed: hostname resolution disabled"
    )


@pytest.mark.parametrize("host", ["8.8.8.8", "10.0.0.1", "192.168.1.1", "169.254.169.254", "2001:db8::1"])
def test_non_loopback_address_refused(host):
    assert "outside loopback" in probing.address_refusal(host, allow_public=False)


def test_allow_public_lets_everything_through():
    assert probing.address_refusal("8.8.8.8", allow_public=True) == ""
    assert probing.address_refusal("example.com", allow_public=True) == ""


def test_quic_protocols_not_tested_by_tcp():
    for protocol in ("hysteria", "hysteria2", "tuic", "wireguard"):
        node = CoreNode(protocol=protocol, host="127.0.0.1", port=443, security="tls")
        target = probing.target_for_node(node, allow_public=False)
        assert target.skip == f"not tested by TCP/TLS: {protocol} runs over UDP"


def test_reality_node_probed_by_tls_with_its_sni_and_alpn():
    node = CoreNode(
        protocol="vless",
        host="127.0.0.2",
        port=443,
        uuid=UUID,
        security="reality",
        sni="www.example.com",
        alpn=("h2",),
        reality_public_key="k",
    )
    target = probing.target_for_node(node, allow_public=False)
    assert target.kind == probing.TLS
    assert target.sni == "www.example.com"
    assert target.alpn == ("h2",)


def test_ws_tls_node_uses_host_header_as_sni():
    node = CoreNode(
        protocol="vmess",
        host="127.0.0.2",
        port=443,
        uuid=UUID,
        network="ws",
        host_header="cdn.example",
        security="tls",
    )
    assert probing.target_for_node(node, allow_public=False).sni == "cdn.example"


def test_plain_nodes_probed_by_tcp():
    node = CoreNode(protocol="ss", host="127.0.0.2", port=8388, method="aes-128-gcm", password="p")
    assert probing.target_for_node(node, allow_public=False).kind == probing.TCP


def test_corpus_targets_are_planned_without_network(corpus_dir):
    """Every node of a real list gets a probe plan; every corpus server is a 127.x address."""
    parsed = parse_body((corpus_dir / "b64-hysteria.txt").read_bytes())
    targets = [probing.target_for_node(node, allow_public=False) for node in parsed.nodes]
    udp = [target for target in targets if target.skip]
    assert len(targets) == len(parsed.nodes)
    assert udp
    assert all("runs over UDP" in target.skip for target in udp)
    assert all(target.kind == probing.TLS for target in targets if not target.skip)


# ---------------------------------------------------------------------------------------------
# TCP probe.


def test_tcp_probe_alive(listener):
    outcome = asyncio.run(probing.probe_tcp("127.0.0.1", listener, timeout=2.0))
    assert outcome.alive is True
    assert outcome.latency_ms is not None and outcome.latency_ms >= 0


def test_tcp_probe_ipv6_loopback():
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback on this machine")
        sock.listen(4)
        outcome = asyncio.run(probing.probe_tcp("[::1]", sock.getsockname()[1], timeout=2.0))
    assert outcome.alive is True


def test_tcp_probe_closed_port(closed_port):
    outcome = asyncio.run(probing.probe_tcp("127.0.0.1", closed_port, timeout=2.0, attempts=2))
    assert outcome.alive is False
    assert outcome.error == "connection refused"


def test_tcp_probe_times_out_on_full_backlog(full_backlog):
    outcome = asyncio.run(probing.probe_tcp("127.0.0.1", full_backlog, timeout=0.3))
    assert outcome.alive is False
    assert outcome.error == "timed out after 0.3 s"


# ---------------------------------------------------------------------------------------------
# TLS probe.


def test_tls_probe_self_signed_alive_but_unverified(tls_server):
    outcome = asyncio.run(
        probing.probe_tls("127.0.0.1", tls_server.port, sni="probe.test", alpn=("h2",), timeout=3.0)
    )
    assert outcome.alive is True
    assert outcome.verified is False
    assert outcome.error == "certificate not verified: self-signed certificate"


def test_tls_probe_sends_sni_and_alpn(tls_server, certificate, monkeypatch):
    # Trusting the test certificate lets the handshake finish, so the server sees the ALPN choice.
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    trusting.set_alpn_protocols(["h2"])
    monkeypatch.setitem(probing._VERIFYING_CONTEXTS, ("h2",), trusting)
    outcome = asyncio.run(
        probing.probe_tls("127.0.0.1", tls_server.port, sni="probe.test", alpn=("h2",), timeout=3.0)
    )
    assert outcome.alive is True
    assert outcome.verified is True
    assert tls_server.server_names == ["probe.test"]
    assert _wait_for(lambda: tls_server.selected_alpn) == ["h2"]


def test_tls_probe_silent_server_times_out(certificate):
    server = TlsServer(*certificate, silent=True)
    try:
        outcome = asyncio.run(probing.probe_tls("127.0.0.1", server.port, sni="probe.test", timeout=0.3))
    finally:
        server.close()
    assert outcome.alive is False
    assert outcome.error == "timed out after 0.3 s"


def test_tls_probe_plain_tcp_server_fails(listener):
    # The listener never answers the ClientHello, so the handshake cannot finish.
    outcome = asyncio.run(probing.probe_tls("127.0.0.1", listener, timeout=0.3))
    assert outcome.alive is False


def test_tls_probe_closed_port(closed_port):
    outcome = asyncio.run(probing.probe_tls("127.0.0.1", closed_port, timeout=1.0))
    assert outcome.alive is False
    assert outcome.error == "connection refused"


def _wait_for(read, timeout: float = 3.0):
    """Poll `read()` until it returns something truthy or the deadline passes."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# Concurrency.


def test_probe_all_bounds_concurrency_and_keeps_order():
    """At most `concurrency` connections are open at once, and outcomes keep the input order."""
    in_flight = 0
    peak = 0

    async def main() -> list[probing.ProbeOutcome]:
        nonlocal in_flight, peak

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            # The TLS probe waits for a ServerHello, so it stays connected until the server closes.
            await asyncio.sleep(0.05)
            in_flight -= 1
            writer.close()

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            targets = [probing.ProbeTarget("127.0.0.1", port, kind=probing.TLS) for _ in range(12)]
            targets.insert(5, probing.ProbeTarget("127.0.0.1", closed.getsockname()[1]))
            targets.insert(0, probing.ProbeTarget("127.0.0.1", port, skip="not probed: test"))
            outcomes = await probing.probe_all(targets, concurrency=3, timeout=2.0, attempts=1)
        server.close()
        await server.wait_closed()
        return outcomes

    outcomes = asyncio.run(main())
    assert peak == 3
    assert outcomes[0].alive is None
    assert outcomes[0].error == "not probed: test"
    assert outcomes[6].error == "connection refused"
    assert len(outcomes) == 14


def test_raise_fd_limit_never_lowers():
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert probing.raise_fd_limit(16) >= min(soft, 16)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft


# ---------------------------------------------------------------------------------------------
# Storing outcomes.


def _store_node(host: str, port: int, protocol: str = "ss", **fields) -> Node:
    core = CoreNode(protocol=protocol, host=host, port=port, method="aes-128-gcm", password="p", **fields)
    return Node.objects.create(
        fingerprint=core.fingerprint, protocol=protocol, host=host, port=port, link="x", data=core.as_dict()
    )


def test_store_outcomes_writes_rows_and_summary():
    run = MergeRun.objects.create()
    first = _store_node("127.0.0.1", 1)
    second = _store_node("127.0.0.1", 2)
    now = timezone.now()
    outcomes = [
        [
            probing.ProbeOutcome("tcp", True, 3.5),
            probing.ProbeOutcome("url", False, error="test URL timed out"),
        ],
        [
            probing.ProbeOutcome(
                "tls", True, 7.0, error="certificate not verified: self-signed", verified=False
            )
        ],
    ]
    probed, alive = probing.store_outcomes(run, [first.pk, second.pk], outcomes, now, history=10)
    assert (probed, alive) == (2, 1)
    first.refresh_from_db()
    second.refresh_from_db()
    # The URL test outranks the TCP connect, so the first node is dead.
    assert first.alive is False
    assert first.latency_ms is None
    assert first.success_ratio == 0.5
    assert second.alive is True
    assert second.latency_ms == 7.0
    assert second.checked_at == now
    row = ProbeResult.objects.get(node=second)
    assert row.tls_verified is False
    assert row.run == run
    assert ProbeResult.objects.filter(node=first).count() == 2


def test_success_ratio_covers_last_n_checks():
    node = _store_node("127.0.0.1", 3)
    start = timezone.now()
    # Oldest first: dead, dead, alive, alive; with a history of 2 only the alive ones count.
    for offset, was_alive in enumerate([False, False, True, True]):
        probing.store_outcomes(
            None,
            [node.pk],
            [[probing.ProbeOutcome("tcp", was_alive, 1.0 if was_alive else None)]],
            start + timedelta(seconds=offset),
            history=2,
        )
    node.refresh_from_db()
    assert node.success_ratio == 1.0


def test_untestable_node_keeps_null_alive():
    node = _store_node("proxy.invalid", 4)
    probing.store_outcomes(
        None,
        [node.pk],
        [[probing.ProbeOutcome("tcp", None, error="not probed: hostname resolution disabled")]],
        timezone.now(),
        history=5,
    )
    node.refresh_from_db()
    assert node.alive is None
    assert node.success_ratio is None
    assert ProbeResult.objects.get(node=node).error == "not probed: hostname resolution disabled"


def test_core_node_from_data_round_trip():
    core = CoreNode(protocol="trojan", host="127.0.0.3", port=443, password="p", security="tls", alpn=("h2",))
    assert probing.core_node_from_data(core.as_dict()).fingerprint == core.fingerprint


# ---------------------------------------------------------------------------------------------
# Commands.


def _links_file(tmp_path: Path, listener: int, closed_port: int) -> Path:
    path = tmp_path / "links.txt"
    path.write_text(
        "\n".join(
            [
                f"trojan://pw@127.0.0.1:{listener}?security=none#up",
                f"trojan://pw@127.0.0.1:{closed_port}?security=none#down",
                "trojan://pw@proxy.invalid:443?security=none#named",
            ]
        )
    )
    return path


def test_merge_command_probes_nodes(tmp_path, listener, closed_port, settings):
    settings.VPNMERGER = {**settings.VPNMERGER, "PROBE_TIMEOUT": 1.0, "PROBE_ATTEMPTS": 1}
    out = StringIO()
    path = _links_file(tmp_path, listener, closed_port)
    Source.objects.create(name="links", url=str(path))
    call_command("merge", "--out", str(tmp_path / "out"), "--no-progress", stdout=out)
    states = {node.port: node.alive for node in Node.objects.all()}
    assert states == {listener: True, closed_port: False, 443: None}
    run = MergeRun.objects.get()
    assert (run.probed, run.alive) == (2, 1)
    assert "Probed: 2 nodes, 1 alive" in out.getvalue()
    named = ProbeResult.objects.get(node__host="proxy.invalid")
    assert named.error == "not probed: hostname resolution disabled"


def test_merge_command_no_probe(tmp_path, listener, closed_port):
    path = _links_file(tmp_path, listener, closed_port)
    Source.objects.create(name="links", url=str(path))
    call_command(
        "merge",
        "--out",
        str(tmp_path / "out"),
        "--no-probe",
        "--no-progress",
        stdout=StringIO(),
    )
    assert Node.objects.count() == 3
    assert not ProbeResult.objects.exists()


def test_probe_command_filters(listener, closed_port, settings):
    settings.VPNMERGER = {**settings.VPNMERGER, "PROBE_TIMEOUT": 1.0, "PROBE_ATTEMPTS": 1}
    up = _store_node("127.0.0.1", listener)
    down = _store_node("127.0.0.1", closed_port)
    other = _store_node("127.0.0.1", listener, protocol="trojan", security="none")
    out = StringIO()
    call_command("probe", "--protocol", "ss", "--no-progress", stdout=out)
    assert "Checked 2 nodes: 2 testable, 1 alive" in out.getvalue()
    assert not ProbeResult.objects.filter(node=other).exists()

    call_command("probe", "--only-dead", "--no-progress", stdout=StringIO())
    # The dead ss node and the never-checked trojan node are probed again; the live one is not.
    assert ProbeResult.objects.filter(node=up).count() == 1
    assert ProbeResult.objects.filter(node=down).count() == 2
    assert ProbeResult.objects.filter(node=other).count() == 1

    call_command("probe", "--only-alive", "--limit", "1", "--no-progress", stdout=StringIO())
    assert ProbeResult.objects.filter(node=up).count() == 2


def test_probe_command_rejects_bad_limit():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--limit must be at least 1"):
        call_command("probe", "--limit", "0", "--no-progress")
