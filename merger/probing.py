"""Probing servers: a TCP connect or a TLS handshake per node, and storing the outcomes.

The probe functions are plain asyncio and take a host, port, SNI and ALPN, so benchmarks and
tests call them without Django. `store_outcomes` is the thin Django layer: it writes ProbeResult
rows and copies each node's latest outcome onto its Node row in bulk.

Safety: unless VPNMERGER["PROBE_ALLOW_PUBLIC"] is on, only literal loopback addresses
(127.0.0.0/8, ::1) are contacted and host names are never resolved; other nodes get a result
with `alive=None` and the reason.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import F, Window
from django.db.models.functions import RowNumber

from .core.node import Node as CoreNode
from .models import MergeRun, Node, ProbeResult

logger = logging.getLogger(__name__)

TCP = "tcp"
TLS = "tls"
URL = "url"

# Protocols that run over QUIC or plain UDP, so a TCP connect or TLS handshake shows nothing about them.
UDP_PROTOCOLS = frozenset(("hysteria", "hysteria2", "tuic", "wireguard"))
# Protocols that always speak TLS on the wire, whatever the node's security field contains.
TLS_PROTOCOLS = frozenset(("anytls",))

# File descriptors kept free for the database, logs and the event loop itself.
_FD_RESERVE = 256


@dataclass(slots=True)
class ProbeOutcome:
    """The result of one check. `alive` is None when the node could not be checked this way."""

    kind: str
    alive: bool | None
    latency_ms: float | None = None
    error: str = ""
    # TLS only: whether the certificate chain and the SNI name verified against the system CAs.
    # The probe counts a handshake as alive either way, because free servers use self-signed certs.
    verified: bool | None = None


@dataclass(slots=True)
class ProbeTarget:
    """What to probe for one node: a TCP connect or a TLS handshake, or `skip` with the reason."""

    host: str
    port: int
    kind: str = TCP
    sni: str = ""
    alpn: tuple[str, ...] = ()
    skip: str = ""


def address_refusal(host: str, allow_public: bool) -> str:
    """Return why `host` must not be contacted, or "" when it may be.

    Without `allow_public` only literal loopback addresses pass, and names are refused before any
    lookup, so a probe can never leak a DNS query or a packet off the machine.
    """
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(literal)
    except ValueError:
        return "" if allow_public else "not probed: hostname resolution disabled"
    if allow_public or address.is_loopback:
        return ""
    return f"not probed: {literal} is outside loopback and VPNMERGER_PROBE_ALLOW_PUBLIC is off"


def target_for_node(node: CoreNode, *, allow_public: bool) -> ProbeTarget:
    """Choose the check for a node: TLS for TLS-based nodes, TCP for the rest, none for UDP ones."""
    target = ProbeTarget(host=node.host, port=node.port)
    if node.protocol in UDP_PROTOCOLS:
        target.skip = f"not tested by TCP/TLS: {node.protocol} runs over UDP"
        return target
    target.skip = address_refusal(node.host, allow_public)
    if node.security in ("tls", "reality") or node.protocol in TLS_PROTOCOLS:
        target.kind = TLS
        sni = node.sni
        if not sni and node.network in ("ws", "httpupgrade", "h2"):
            sni = node.host_header.split(",")[0].strip()
        target.sni = sni
        target.alpn = tuple(node.alpn)
    return target


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft limit on open files towards `wanted` (capped by the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        soft = ceiling
    return soft


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 2)


def _describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return f"{type(error).__name__}: {error}"[:200]


async def _connect_socket(host: str, port: int) -> socket.socket:
    """Open a TCP connection with a bare non-blocking socket; cheaper than a stream transport."""
    loop = asyncio.get_running_loop()
    literal = host[1:-1] if host.startswith("[") else host
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(literal).version == 6 else socket.AF_INET
        address: tuple[Any, ...] = (literal, port)
    except ValueError:
        # A name: `target_for_node` lets names through only with PROBE_ALLOW_PUBLIC on.
        infos = await loop.getaddrinfo(literal, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


async def probe_tcp(host: str, port: int, *, timeout: float, attempts: int = 1) -> ProbeOutcome:
    """Connect to host:port; alive when the TCP handshake completes within `timeout` seconds."""
    error = ""
    for _attempt in range(max(1, attempts)):
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                sock = await _connect_socket(host, port)
        except TimeoutError:
            error = f"timed out after {timeout:g} s"
            continue
        except OSError as exc:
            error = _describe(exc)
            continue
        latency = _elapsed_ms(started)
        sock.close()
        return ProbeOutcome(TCP, True, latency)
    return ProbeOutcome(TCP, False, error=error)


_VERIFYING_CONTEXTS: dict[tuple[str, ...], ssl.SSLContext] = {}


def _verifying_context(alpn: tuple[str, ...]) -> ssl.SSLContext:
    # Loading the system CA store takes milliseconds, so one context per ALPN offer is kept.
    context = _VERIFYING_CONTEXTS.get(alpn)
    if context is None:
        context = ssl.create_default_context()
        if alpn:
            context.set_alpn_protocols(list(alpn))
        _VERIFYING_CONTEXTS[alpn] = context
    return context


async def probe_tls(
    host: str, port: int, *, sni: str = "", alpn: Sequence[str] = (), timeout: float, attempts: int = 1
) -> ProbeOutcome:
    """Complete a TLS handshake with the given SNI and ALPN offer.

    The handshake runs with certificate verification on, and a verification failure still counts
    as alive: the server has sent its certificate, which is all a probe needs, so a self-signed
    server costs one handshake, not two. `verified` records whether the chain and name checked out.
    """
    loop = asyncio.get_running_loop()
    context = _verifying_context(tuple(alpn))
    # Without an SNI the server address is checked against the certificate; Python sends no SNI
    # for an IP address.
    server_hostname = sni or (host[1:-1] if host.startswith("[") else host)
    error = ""
    for _attempt in range(max(1, attempts)):
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                sock = await _connect_socket(host, port)
                transport, _ = await loop.create_connection(
                    asyncio.Protocol,
                    sock=sock,
                    ssl=context,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=timeout,
                )
        except ssl.SSLCertVerificationError as exc:
            return ProbeOutcome(TLS, True, _elapsed_ms(started), verified=False, error=_verify_note(exc))
        except TimeoutError:
            error = f"timed out after {timeout:g} s"
            continue
        except ssl.SSLError as exc:
            error = f"TLS handshake failed: {exc.reason or exc}"[:200]
            continue
        except (OSError, EOFError) as exc:
            error = _describe(exc)
            if isinstance(exc, ConnectionResetError | EOFError):
                error = "TLS handshake failed: connection closed by the server"
            continue
        latency = _elapsed_ms(started)
        transport.abort()
        return ProbeOutcome(TLS, True, latency, verified=True)
    return ProbeOutcome(TLS, False, error=error)


def _verify_note(error: ssl.SSLCertVerificationError) -> str:
    return f"certificate not verified: {error.verify_message or error.reason}"[:200]


async def probe_target(target: ProbeTarget, *, timeout: float, attempts: int) -> ProbeOutcome:
    """Run the check that the target names; a skipped target gives alive=None with its reason."""
    if target.skip:
        return ProbeOutcome(target.kind, None, error=target.skip)
    if target.kind == TLS:
        return await probe_tls(
            target.host, target.port, sni=target.sni, alpn=target.alpn, timeout=timeout, attempts=attempts
        )
    return await probe_tcp(target.host, target.port, timeout=timeout, attempts=attempts)


async def probe_all(
    targets: Sequence[ProbeTarget],
    *,
    concurrency: int,
    timeout: float,
    attempts: int,
    on_result: Callable[[int, ProbeOutcome], None] | None = None,
) -> list[ProbeOutcome]:
    """Probe every target with at most `concurrency` in flight; outcomes come back in input order.

    A fixed pool of workers pulls from one iterator, so memory stays flat however many targets
    there are. The open-files limit is raised to fit, and concurrency is lowered when it cannot be.
    """
    if not targets:
        return []
    limit = raise_fd_limit(concurrency + _FD_RESERVE)
    workers = max(1, min(concurrency, len(targets), limit - _FD_RESERVE))
    if workers < min(concurrency, len(targets)):
        logger.warning(
            "probe concurrency lowered from %d to %d by the open-files limit %d", concurrency, workers, limit
        )
    outcomes: list[ProbeOutcome | None] = [None] * len(targets)
    pending = iter(range(len(targets)))

    async def work() -> None:
        for index in pending:
            try:
                outcome = await probe_target(targets[index], timeout=timeout, attempts=attempts)
            except Exception as error:  # noqa: BLE001 - one odd node must not stop the run
                logger.warning(
                    "probe of %s:%s failed unexpectedly",
                    targets[index].host,
                    targets[index].port,
                    exc_info=True,
                )
                outcome = ProbeOutcome(targets[index].kind, False, error=_describe(error))
            outcomes[index] = outcome
            if on_result is not None:
                on_result(index, outcome)

    await asyncio.gather(*(work() for _ in range(workers)))
    return outcomes  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Django layer: run probes for core nodes and store the outcomes.


@dataclass(slots=True)
class ProbeOptions:
    """Probe settings, normally `ProbeOptions.from_settings()` (VPNMERGER["PROBE_*"])."""

    concurrency: int = 200
    timeout: float = 5.0
    attempts: int = 2
    allow_public: bool = False
    history: int = 10
    core_test: bool = False
    core: str = ""
    core_batch: int = 100
    test_url: str = ""
    test_status: int = 204
    test_body: str = ""

    @classmethod
    def from_settings(cls, **overrides: Any) -> ProbeOptions:
        from django.conf import settings

        options = settings.VPNMERGER
        values = {
            "concurrency": options["PROBE_CONCURRENCY"],
            "timeout": options["PROBE_TIMEOUT"],
            "attempts": options["PROBE_ATTEMPTS"],
            "allow_public": options["PROBE_ALLOW_PUBLIC"],
            "history": options["PROBE_HISTORY"],
            "core": options["PROBE_CORE"],
            "core_batch": options["PROBE_CORE_BATCH"],
            "test_url": options["PROBE_TEST_URL"],
            "test_status": options["PROBE_TEST_STATUS"],
            "test_body": options["PROBE_TEST_BODY"],
        }
        values.update(overrides)
        return cls(**values)


# Progress callback: (done, total).
ProbeProgress = Callable[[int, int], None]


def run_probes(
    nodes: Sequence[CoreNode], options: ProbeOptions, progress: ProbeProgress | None = None
) -> list[list[ProbeOutcome]]:
    """Probe each node by TCP or TLS, then by a URL test through a core when `options.core_test`.

    Returns one list of outcomes per node, in input order. Never raises for a single node: a node
    that cannot be tested gets an outcome with alive=None and the reason.
    """
    from . import coretest

    targets = [target_for_node(node, allow_public=options.allow_public) for node in nodes]
    total = len(nodes) * (2 if options.core_test else 1)
    done = 0

    def step(_index: int, _outcome: ProbeOutcome) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    async def main() -> list[list[ProbeOutcome]]:
        first = await probe_all(
            targets,
            concurrency=options.concurrency,
            timeout=options.timeout,
            attempts=options.attempts,
            on_result=step,
        )
        results = [[outcome] for outcome in first]
        if options.core_test:
            tested = await coretest.url_test(
                nodes, coretest.CoreTestOptions.from_probe_options(options), on_result=step
            )
            for outcomes, outcome in zip(results, tested, strict=True):
                outcomes.append(outcome)
        return results

    if progress is not None:
        progress(0, total)
    return asyncio.run(main())


def summarise(outcomes: Iterable[ProbeOutcome]) -> ProbeOutcome | None:
    """Return the outcome that decides a node's state: the URL test when it was conclusive."""
    decisive = None
    for outcome in outcomes:
        if outcome.alive is None:
            continue
        if decisive is None or outcome.kind == URL:
            decisive = outcome
    return decisive


def store_outcomes(
    run: MergeRun | None,
    node_ids: Sequence[int],
    outcomes: Sequence[list[ProbeOutcome]],
    now: datetime,
    history: int,
) -> tuple[int, int]:
    """Write the ProbeResult rows and update each node's summary fields; return (probed, alive).

    Call it inside a transaction; it issues a few queries per batch of 900 nodes, never one per node.
    """
    probed = alive = 0
    batch_size = 900
    for start in range(0, len(node_ids), batch_size):
        ids = node_ids[start : start + batch_size]
        batch = outcomes[start : start + batch_size]
        rows = [
            ProbeResult(
                node_id=node_id,
                run=run,
                kind=outcome.kind,
                checked_at=now,
                alive=outcome.alive,
                latency_ms=outcome.latency_ms,
                error=outcome.error[:300],
                tls_verified=outcome.verified,
            )
            for node_id, node_outcomes in zip(ids, batch, strict=True)
            for outcome in node_outcomes
        ]
        ProbeResult.objects.bulk_create(rows)
        ratios = _success_ratios(ids, history)
        nodes = []
        for node_id, node_outcomes in zip(ids, batch, strict=True):
            decisive = summarise(node_outcomes)
            node = Node(pk=node_id, checked_at=now, success_ratio=ratios.get(node_id))
            node.alive = decisive.alive if decisive else None
            node.latency_ms = decisive.latency_ms if decisive and decisive.alive else None
            nodes.append(node)
            if decisive is not None:
                probed += 1
                alive += bool(decisive.alive)
        Node.objects.bulk_update(nodes, ["alive", "latency_ms", "checked_at", "success_ratio"])
    return probed, alive


def _success_ratios(node_ids: Sequence[int], history: int) -> dict[int, float]:
    """Share of passed checks among each node's last `history` conclusive results, by node id."""
    ranked = (
        ProbeResult.objects.filter(node_id__in=node_ids, alive__isnull=False)
        .annotate(
            position=Window(
                RowNumber(), partition_by=[F("node_id")], order_by=[F("checked_at").desc(), F("pk").desc()]
            )
        )
        .filter(position__lte=history)
        .values_list("node_id", "alive")
    )
    passed: dict[int, int] = {}
    seen: dict[int, int] = {}
    for node_id, was_alive in ranked:
        seen[node_id] = seen.get(node_id, 0) + 1
        passed[node_id] = passed.get(node_id, 0) + int(was_alive)
    return {node_id: round(passed[node_id] / count, 4) for node_id, count in seen.items()}


def core_node_from_data(data: dict[str, Any]) -> CoreNode:
    """Rebuild a core Node from `Node.data` (the output of `CoreNode.as_dict()`)."""
    values = dict(data)
    if "alpn" in values:
        values["alpn"] = tuple(values["alpn"])
    values.pop("sources", None)
    return CoreNode(**values)


def probe_stored_nodes(
    *,
    protocols: Sequence[str] = (),
    only: str = "",
    limit: int | None = None,
    options: ProbeOptions,
    progress: ProbeProgress | None = None,
    now: datetime | None = None,
) -> tuple[int, int, int]:
    """Re-probe stored nodes and store the outcomes; return (nodes checked, conclusive, alive).

    `only` is "dead" (alive false or never conclusive), "alive" or "" for every node. Runs that
    are not part of a merge store their ProbeResults with no run.
    """
    from django.db import transaction
    from django.db.models import Q
    from django.utils import timezone

    rows = Node.objects.order_by("pk")
    if protocols:
        rows = rows.filter(protocol__in=list(protocols))
    if only == "alive":
        rows = rows.filter(alive=True)
    elif only == "dead":
        rows = rows.filter(Q(alive=False) | Q(alive__isnull=True))
    if limit is not None:
        rows = rows[:limit]
    node_ids: list[int] = []
    nodes: list[CoreNode] = []
    for pk, data in rows.values_list("pk", "data"):
        node_ids.append(pk)
        nodes.append(core_node_from_data(data))
    outcomes = run_probes(nodes, options, progress)
    with transaction.atomic():
        probed, alive = store_outcomes(None, node_ids, outcomes, now or timezone.now(), options.history)
    return len(node_ids), probed, alive
