"""URL test ("real delay") through a proxy core: fetch a test URL through each node.

For a batch of nodes, one v2ray (or Xray) process is started with one HTTP proxy inbound per node
on 127.0.0.1, each routed to that node's outbound. The test URL is fetched through every inbound
and the answer's status and body are checked, so a node with a wrong password fails even though
its port accepts connections. Nodes the core cannot express get alive=None and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from .core.export.v2ray import UnsupportedByCore, v2ray_outbound
from .core.node import Node
from .probing import URL, ProbeOutcome, address_refusal

if TYPE_CHECKING:
    from .probing import ProbeOptions

logger = logging.getLogger(__name__)

# Cores whose config this module can write: Xray still reads the v2ray 4.x JSON used here.
# NOTE: sing-box takes a different config format and is not driven yet.
CORE_NAMES = ("v2ray", "xray")
# Seconds a core gets to open its inbounds before the batch is given up.
STARTUP_TIMEOUT = 10.0


@dataclass(slots=True)
class CoreTestOptions:
    """Settings of a URL test run."""

    url: str
    expect_status: int = 204
    expect_body: str = ""
    timeout: float = 5.0
    concurrency: int = 100
    batch_size: int = 100
    core: str = ""
    allow_public: bool = False

    @classmethod
    def from_probe_options(cls, options: ProbeOptions) -> CoreTestOptions:
        return cls(
            url=options.test_url,
            expect_status=options.test_status,
            expect_body=options.test_body,
            timeout=options.timeout,
            concurrency=options.concurrency,
            batch_size=options.core_batch,
            core=options.core,
            allow_public=options.allow_public,
        )


def find_core(explicit: str = "") -> str | None:
    """Return the path of the core binary: `explicit` when given, else v2ray or xray from PATH."""
    if explicit:
        return shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
    for name in CORE_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def url_refusal(url: str, allow_public: bool) -> str:
    """Return why the test URL must not be used, or "" when it may.

    The remote server fetches this URL, so with PROBE_ALLOW_PUBLIC off it must name a loopback
    address as well; a public test URL would make a local test server reach the internet.
    """
    if not url.startswith(("http://", "https://")):
        return f"invalid test URL {url!r}: set VPNMERGER_PROBE_TEST_URL to an http:// or https:// URL"
    host = httpx.URL(url).host
    reason = address_refusal(host, allow_public)
    if reason:
        return f"not tested by core: test URL host {host!r} refused ({reason})"
    return ""


def free_ports(count: int) -> list[int]:
    """Return `count` TCP ports on 127.0.0.1 that were free a moment ago.

    NOTE: another process may take a port between this call and the core binding it; the batch
    then fails to start and its nodes are retried in smaller batches.
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def build_config(outbounds: Sequence[dict[str, Any]], ports: Sequence[int]) -> dict[str, Any]:
    """Return a core config with one HTTP inbound per outbound, routed to it by inbound tag."""
    inbounds = []
    rules = []
    for index, (outbound, port) in enumerate(zip(outbounds, ports, strict=True)):
        tag = f"in-{index}"
        inbounds.append({"tag": tag, "listen": "127.0.0.1", "port": port, "protocol": "http", "settings": {}})
        rules.append({"type": "field", "inboundTag": [tag], "outboundTag": outbound["tag"]})
    return {
        "log": {"loglevel": "warning"},
        "inbounds": inbounds,
        "outbounds": list(outbounds),
        "routing": {"rules": rules},
    }


async def url_test(
    nodes: Sequence[Node],
    options: CoreTestOptions,
    on_result: Callable[[int, ProbeOutcome], None] | None = None,
) -> list[ProbeOutcome]:
    """Return one URL-test outcome per node, in input order.

    Nodes that cannot be tested (no core, refused address, unsupported by the core) get
    alive=None with the reason; the others are tested in batches of `options.batch_size`.
    """
    outcomes: list[ProbeOutcome | None] = [None] * len(nodes)

    def finish(index: int, outcome: ProbeOutcome) -> None:
        outcomes[index] = outcome
        if on_result is not None:
            on_result(index, outcome)

    core = find_core(options.core)
    blanket = ""
    if core is None:
        blanket = "not tested by core: no v2ray or xray binary found (apt-get install v2ray)"
    else:
        blanket = url_refusal(options.url, options.allow_public)

    testable: list[tuple[int, dict[str, Any]]] = []
    for index, node in enumerate(nodes):
        reason = blanket or address_refusal(node.host, options.allow_public)
        if not reason:
            try:
                testable.append((index, v2ray_outbound(node, f"out-{index}", force_insecure=True)))
                continue
            except UnsupportedByCore as error:
                reason = f"not tested by core: {error}"
        finish(index, ProbeOutcome(URL, None, error=reason))

    semaphore = asyncio.Semaphore(max(1, options.concurrency))
    for start in range(0, len(testable), max(1, options.batch_size)):
        batch = testable[start : start + options.batch_size]
        await _test_batch(core or "", batch, options, semaphore, finish)
    return outcomes  # type: ignore[return-value]


async def _test_batch(
    core: str,
    batch: list[tuple[int, dict[str, Any]]],
    options: CoreTestOptions,
    semaphore: asyncio.Semaphore,
    finish: Callable[[int, ProbeOutcome], None],
) -> None:
    ports = free_ports(len(batch))
    config = build_config([outbound for _, outbound in batch], ports)
    with tempfile.TemporaryDirectory(prefix="vpnmerger-core-") as folder:
        path = Path(folder) / "config.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        try:
            process = await asyncio.create_subprocess_exec(
                core, "-config", str(path), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
        except OSError as error:
            logger.warning("could not start the core %s: %s", core, error)
            for index, _ in batch:
                finish(
                    index,
                    ProbeOutcome(URL, None, error=f"not tested by core: cannot run {core}: {error}"[:300]),
                )
            return
        try:
            failure = await _wait_for_inbounds(process, ports)
            if failure and len(batch) > 1:
                # One outbound the core rejects sinks the whole config, so halve the batch until
                # the bad node is alone and only it is reported.
                logger.warning(
                    "core failed to start a batch of %d nodes (%s); splitting it", len(batch), failure
                )
            elif failure:
                finish(batch[0][0], ProbeOutcome(URL, None, error=f"not tested by core: {failure}"[:300]))
            else:
                await asyncio.gather(
                    *(
                        _fetch_through(index, port, options, semaphore, finish)
                        for (index, _), port in zip(batch, ports, strict=True)
                    )
                )
        finally:
            await _stop(process)
    if failure and len(batch) > 1:
        middle = len(batch) // 2
        await _test_batch(core, batch[:middle], options, semaphore, finish)
        await _test_batch(core, batch[middle:], options, semaphore, finish)


async def _wait_for_inbounds(process: asyncio.subprocess.Process, ports: Sequence[int]) -> str:
    """Poll until every inbound port accepts connections; return "" or why the core did not start."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    waiting = list(ports)
    while waiting:
        if process.returncode is not None:
            return _exit_reason(process.returncode, await process.stderr.read() if process.stderr else b"")
        port = waiting[-1]
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                return f"core did not open port {port} within {STARTUP_TIMEOUT:g} s"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 0.05)
            continue
        writer.close()
        waiting.pop()
    return ""


def _exit_reason(code: int, stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    tail = lines[-1][-200:] if lines else "no output"
    return f"core exited with status {code}: {tail}"


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _fetch_through(
    index: int,
    port: int,
    options: CoreTestOptions,
    semaphore: asyncio.Semaphore,
    finish: Callable[[int, ProbeOutcome], None],
) -> None:
    async with semaphore:
        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(
                proxy=f"http://127.0.0.1:{port}", timeout=options.timeout, trust_env=False, verify=False
            ) as client:
                response = await client.get(options.url)
        except httpx.TimeoutException:
            finish(index, ProbeOutcome(URL, False, error=f"test URL timed out after {options.timeout:g} s"))
            return
        except httpx.HTTPError as error:
            finish(
                index,
                ProbeOutcome(URL, False, error=f"test URL failed: {type(error).__name__}: {error}"[:300]),
            )
            return
        latency = round((time.perf_counter() - started) * 1000.0, 2)
        if response.status_code != options.expect_status:
            error = f"test URL answered {response.status_code}, expected {options.expect_status}"
            finish(index, ProbeOutcome(URL, False, error=error))
        elif options.expect_body and options.expect_body not in response.text:
            error = f"test URL body lacks the expected text {options.expect_body[:40]!r}"
            finish(index, ProbeOutcome(URL, False, error=error))
        else:
            finish(index, ProbeOutcome(URL, True, latency))
