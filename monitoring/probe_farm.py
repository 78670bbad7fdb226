"""Loopback servers for the probe tests and the probe benchmark.

- `make_certificate` writes a self-signed certificate with the openssl command.
- `run_farm` / `FarmProcess`: a listener farm of many endpoints on 127.77.x.y addresses: alive ones
  (TLS: accept, wait the delay, then handshake; TCP: a listener whose backlog takes the connection),
  closed ones (a bound socket that does not listen, so the kernel answers RST) and silent ones (TCP:
  a listener whose backlog is full, so SYNs are dropped; TLS: accept and never speak).
- `start_server_process` / `wait_for_port`: start a Debian proxy server binary and wait for it.

Run as `python -m monitoring.probe_farm --alive N --closed N --silent N --kind tcp|tls` it prints one
JSON line describing the endpoints, then serves until its standard input closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

FARM_PREFIX = "127.77"


def make_certificate(folder: Path, common_name: str = "probe.test") -> tuple[Path, Path]:
    """Write a self-signed P-256 certificate and key into `folder`; return (cert, key) paths."""
    cert = folder / "cert.pem"
    key = folder / "key.pem"
    if not cert.exists():
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "30",
                "-subj",
                f"/CN={common_name}",
                "-addext",
                f"subjectAltName=DNS:{common_name}",
            ],
            check=True,
            capture_output=True,
        )
    return cert, key


def farm_address(index: int) -> str:
    """Return the loopback address of endpoint `index`: 127.77.x.y with y in 1..250."""
    return f"{FARM_PREFIX}.{index // 250}.{index % 250 + 1}"


@dataclass
class FarmLayout:
    """Endpoints of a farm by behaviour, each a (host, port) pair."""

    alive: list[tuple[str, int]] = field(default_factory=list)
    closed: list[tuple[str, int]] = field(default_factory=list)
    silent: list[tuple[str, int]] = field(default_factory=list)


async def run_farm(
    alive: int,
    closed: int,
    silent: int,
    *,
    kind: str,
    delay: float,
    cert: Path | None,
    key: Path | None,
    ready: asyncio.Future[FarmLayout] | None = None,
    stop: asyncio.Event | None = None,
) -> FarmLayout:
    """Serve a farm until `stop` is set; `ready` gets the layout once every socket is bound."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    context = None
    if kind == "tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)

    loop = asyncio.get_running_loop()
    held: list[asyncio.BaseTransport] = []

    async def handshake_later(transport: asyncio.Transport) -> None:
        try:
            await asyncio.sleep(delay)
            if context is not None:
                transport = await loop.start_tls(transport, asyncio.Protocol(), context, server_side=True)
        except (OSError, ssl.SSLError, ConnectionError):
            pass
        finally:
            if transport is not None:
                transport.abort()

    class Answer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # Reading stays paused so that the ClientHello is still unread when the TLS layer
            # takes the connection over after the delay.
            transport.pause_reading()  # type: ignore[attr-defined]
            loop.create_task(handshake_later(transport))  # type: ignore[arg-type]

    class Hold(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            held.append(transport)

    layout = FarmLayout()
    keep: list[socket.socket] = []
    servers = []
    index = 0
    for count, role in ((alive, "alive"), (closed, "closed"), (silent, "silent")):
        for _ in range(count):
            host = farm_address(index)
            index += 1
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, 0))
            port = sock.getsockname()[1]
            if role == "closed":
                keep.append(sock)
            elif role == "silent" and kind == "tcp":
                # A backlog of 0 holds one pending connection; once a filler occupies it the kernel
                # drops every further SYN, so a probe sees no answer at all.
                sock.listen(0)
                keep.append(sock)
                filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                filler.setblocking(False)
                filler.connect_ex((host, port))
                keep.append(filler)
            elif role == "alive" and kind == "tcp":
                # The kernel completes a TCP handshake before any accept(), so a delayed accept
                # is invisible to a connect probe and would only take CPU from the prober on a
                # shared machine. The connection waits in the backlog until the farm stops.
                sock.listen(4096)
                keep.append(sock)
            else:
                sock.listen(4096)
                factory = Answer if role == "alive" else Hold
                servers.append(await loop.create_server(factory, sock=sock))
            getattr(layout, role).append((host, port))
    if kind == "tcp":
        # Let the fillers' handshakes finish before anyone probes.
        await asyncio.sleep(0.2)
    if ready is not None:
        ready.set_result(layout)
    if stop is not None:
        await stop.wait()
    for server in servers:
        server.close()
    for sock in keep:
        sock.close()
    for transport in held:
        transport.abort()
    return layout


class FarmProcess:
    """A listener farm in a child process, so its event loop does not share a core with the prober."""

    def __init__(
        self,
        alive: int,
        closed: int,
        silent: int,
        *,
        kind: str = "tcp",
        delay: float = 0.05,
        cert: Path | None = None,
        key: Path | None = None,
    ) -> None:
        command = [
            sys.executable,
            "-m",
            "monitoring.probe_farm",
            "--alive",
            str(alive),
            "--closed",
            str(closed),
            "--silent",
            str(silent),
            "--kind",
            kind,
            "--delay",
            str(delay),
        ]
        if cert and key:
            command += ["--cert", str(cert), "--key", str(key)]
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            command, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line:
            self.close()
            raise RuntimeError(f"probe farm exited with status {self.process.returncode} before it was ready")
        data = json.loads(line)
        self.layout = FarmLayout(
            alive=[tuple(item) for item in data["alive"]],
            closed=[tuple(item) for item in data["closed"]],
            silent=[tuple(item) for item in data["silent"]],
        )

    def close(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin:
                self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> FarmProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_for_port(
    port: int, host: str = "127.0.0.1", timeout: float = 10.0, process: subprocess.Popen | None = None
) -> None:
    """Poll until host:port accepts a connection; raise RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            output = process.stderr.read() if process.stderr else ""
            raise RuntimeError(f"{process.args[0]} exited with status {process.returncode}: {output[-500:]}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {host}:{port} after {timeout:g} s") from None
            time.sleep(0.05)


def start_server_process(command: list[str], port: int) -> subprocess.Popen:
    """Start a server binary and wait until it listens on 127.0.0.1:port."""
    binary = shutil.which(command[0])
    if binary is None:
        raise FileNotFoundError(command[0])
    process = subprocess.Popen(
        [binary, *command[1:]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process=process)
    except RuntimeError:
        stop_process(process)
        raise
    return process


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ProbeBenchmarkReport:
    """Figures of one probe benchmark run."""

    kind: str
    endpoints: int
    alive: int
    closed: int
    silent: int
    concurrency: int
    delay: float
    timeout: float
    wall_seconds: float
    cpu_seconds: float
    ideal_seconds: float
    reported_alive: dict[str, int]

    @property
    def ratio(self) -> float:
        return self.wall_seconds / self.ideal_seconds if self.ideal_seconds else float("inf")


def ideal_seconds(
    alive: int, closed: int, silent: int, *, kind: str, concurrency: int, delay: float, timeout: float
) -> float:
    """Return the wall time of a perfect prober: total waiting divided by the concurrency.

    An alive TLS endpoint costs `delay`, because the farm sends its ServerHello that late. An
    alive TCP endpoint and a closed one cost nothing, because the kernel answers them at once, and
    a silent one costs the full timeout. The result is never below the longest single probe.
    """
    per_alive = delay if kind == "tls" else 0.0
    total = alive * per_alive + silent * timeout
    longest = per_alive if alive else 0.0
    if silent:
        longest = timeout
    return max(total / concurrency, longest)


def run_probe_benchmark(
    endpoints: int = 10_000,
    *,
    kind: str = "tcp",
    concurrency: int = 1000,
    delay: float = 0.05,
    timeout: float = 1.0,
    seed: int = 1,
    echo=print,
) -> ProbeBenchmarkReport:
    """Probe a farm of `endpoints` loopback endpoints (90 % alive, 5 % closed, 5 % silent).

    Targets are shuffled with a fixed seed, as a real subscription mixes good and bad servers.
    Probing all silent endpoints last would add one whole timeout to the wall time.
    """
    import random

    from merger import probing

    closed = silent = endpoints // 20
    alive = endpoints - closed - silent
    cert = key = None
    if kind == "tls":
        import tempfile

        cert, key = make_certificate(Path(tempfile.mkdtemp(prefix="vpnmerger-bench-")))
    probing.raise_fd_limit(concurrency * 2 + 1024)
    with FarmProcess(alive, closed, silent, kind=kind, delay=delay, cert=cert, key=key) as farm:
        layout = farm.layout
        labelled = [("alive", endpoint) for endpoint in layout.alive]
        labelled += [("closed", endpoint) for endpoint in layout.closed]
        labelled += [("silent", endpoint) for endpoint in layout.silent]
        random.Random(seed).shuffle(labelled)
        targets = [
            probing.ProbeTarget(host, port, kind=kind, sni="probe.test") for _, (host, port) in labelled
        ]
        echo(f"farm ready: {alive} alive, {closed} closed, {silent} silent {kind} endpoints")
        started = time.perf_counter()
        cpu_started = time.process_time()
        outcomes = asyncio.run(
            probing.probe_all(targets, concurrency=concurrency, timeout=timeout, attempts=1)
        )
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    reported = {"alive": 0, "closed": 0, "silent": 0}
    for (role, _), outcome in zip(labelled, outcomes, strict=True):
        reported[role] += bool(outcome.alive)
    return ProbeBenchmarkReport(
        kind=kind,
        endpoints=endpoints,
        alive=alive,
        closed=closed,
        silent=silent,
        concurrency=concurrency,
        delay=delay,
        timeout=timeout,
        wall_seconds=wall,
        cpu_seconds=cpu,
        ideal_seconds=ideal_seconds(
            alive, closed, silent, kind=kind, concurrency=concurrency, delay=delay, timeout=timeout
        ),
        reported_alive=reported,
    )


def _main() -> None:
    parser = argparse.ArgumentParser(description="Serve a loopback listener farm until stdin closes.")
    parser.add_argument("--alive", type=int, default=0)
    parser.add_argument("--closed", type=int, default=0)
    parser.add_argument("--silent", type=int, default=0)
    parser.add_argument("--kind", choices=("tcp", "tls"), default="tcp")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds before an alive endpoint answers")
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    args = parser.parse_args()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[FarmLayout] = loop.create_future()
        stop = asyncio.Event()
        # The parent closes our stdin to stop the farm; reading it in a thread keeps the loop free.
        loop.run_in_executor(None, lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)))
        task = asyncio.create_task(
            run_farm(
                args.alive,
                args.closed,
                args.silent,
                kind=args.kind,
                delay=args.delay,
                cert=args.cert,
                key=args.key,
                ready=ready,
                stop=stop,
            )
        )
        layout = await ready
        print(
            json.dumps({"alive": layout.alive, "closed": layout.closed, "silent": layout.silent}), flush=True
        )
        await task
        os._exit(0)

    asyncio.run(main())


if __name__ == "__main__":
    _main()
