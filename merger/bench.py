"""The offline merge benchmark: the shared corpus grown by mutation to N links, merged stage by stage.

Everything here is offline and plain Python: no Django, no network. Every mutated host stays a
127.x address because the mutation only changes the third octet of a loopback IPv4 address.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import resource
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from .core import pipeline
from .core.decode import parse_body


def corpus_links(corpus_dir: Path) -> list[str]:
    """Return every share-link line of the corpus files that hold link lists, decoded where base64."""
    links: list[str] = []
    for path in sorted(corpus_dir.iterdir()):
        if path.suffix not in (".txt", ".json") or path.name.startswith("singbox"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.name.startswith("b64-"):
            compact = "".join(text.split())
            text = base64.b64decode(compact + "=" * (-len(compact) % 4)).decode("utf-8", errors="replace")
        if path.suffix == ".json":
            lines = list(_json_strings(json.loads(text)))
        else:
            lines = text.splitlines()
        links.extend(line.strip() for line in lines if "://" in line)
    return links


def _json_strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


def _shift_host(host: str, shift: int) -> str:
    parts = host.split(".")
    if len(parts) == 4 and parts[0] == "127" and all(part.isdigit() for part in parts):
        parts[2] = str((int(parts[2]) + shift) % 256)
        return ".".join(parts)
    return host


def mutate_link(link: str, shift: int) -> str:
    """Return the link with its loopback server moved by `shift` in the third octet.

    The rest of the line stays byte for byte, so every quirk of the original survives. Links whose
    server cannot be found are returned unchanged and become duplicates, as in real feeds.
    """
    if shift == 0:
        return link
    scheme, _, rest = link.partition("://")
    if scheme.lower() == "vmess" and "@" not in rest[:80]:
        payload = rest.split("#", 1)[0]
        try:
            data = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return link
        if isinstance(data, dict) and isinstance(data.get("add"), str):
            data["add"] = _shift_host(data["add"], shift)
            return "vmess://" + base64.b64encode(json.dumps(data, ensure_ascii=False).encode()).decode()
        return link
    end = len(rest)
    for stop in ("?", "#", "/"):
        index = rest.find(stop)
        if 0 <= index < end:
            end = index
    authority = rest[:end]
    at = authority.rfind("@")
    host_start = at + 1
    host_end = authority.find(":", host_start)
    if host_end < 0:
        host_end = len(authority)
    host = authority[host_start:host_end]
    return f"{scheme}://{rest[:host_start]}{_shift_host(host, shift)}{rest[host_end:]}"


def grow_links(seed: list[str], count: int) -> list[str]:
    """Return `count` links: the seed repeated, each repeat moved to other loopback servers."""
    result: list[str] = []
    shift = 0
    while len(result) < count:
        needed = count - len(result)
        result.extend(mutate_link(link, shift) for link in seed[:needed])
        shift += 1
    return result


@dataclass
class StageFigure:
    """One stage's wall time, items handled and peak memory.

    `cpu_seconds` adds up user and system time of this process and of the worker processes it
    waited for, so it shows the work done even when other programs slow the wall clock down.
    `peak_rss_mb` is the largest sum of the resident set sizes of this process and its children
    seen during the stage; pages that a forked child shares with its parent count twice.
    """

    name: str
    seconds: float
    items: int
    peak_rss_mb: float
    cpu_seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


@dataclass
class BenchmarkReport:
    links: int
    unique: int = 0
    duplicates: int = 0
    invalid: int = 0
    stages: list[StageFigure] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    # Seconds of each export format, as `pipeline.export_all` measured them.
    export_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(stage.seconds for stage in self.stages if stage.name != "generate")


class _RssSampler:
    """Samples the resident set size of this process and its children every 10 ms.

    `peak` is the largest sum seen since `reset()`. Forked workers are counted because the merge
    runs parts of parsing and exporting in them.
    """

    def __init__(self) -> None:
        self.process = psutil.Process(os.getpid())
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> None:
        self.peak = self._tree_rss()

    def _tree_rss(self) -> int:
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                # The child exited between the listing and the read.
                continue
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            rss = self._tree_rss()
            if rss > self.peak:
                self.peak = rss


def run_merge_benchmark(
    corpus_dir: Path,
    count: int,
    out_dir: Path | None = None,
    echo: Callable[[str], None] = lambda text: None,
) -> BenchmarkReport:
    """Grow the corpus to `count` links and time decode+parse, de-duplication and every export."""
    report = BenchmarkReport(links=count)
    with _RssSampler() as sampler:

        def measure(name: str, items: int, work: Callable[[], object]) -> object:
            sampler.reset()
            cpu_before = _cpu_seconds()
            started = time.perf_counter()
            value = work()
            seconds = time.perf_counter() - started
            figure = StageFigure(name, seconds, items, sampler.peak / 2**20, _cpu_seconds() - cpu_before)
            report.stages.append(figure)
            echo(
                f"{name:<10} {seconds:7.2f} s  {figure.per_second:>12,.0f} items/s  "
                f"CPU {figure.cpu_seconds:6.2f} s  peak RSS {figure.peak_rss_mb:,.0f} MB"
            )
            return value

        seed = corpus_links(corpus_dir)
        body = measure("generate", count, lambda: "\n".join(grow_links(seed, count)).encode())
        outcome = measure("parse", count, functools.partial(pipeline.parse_input, "benchmark", body))
        del body
        deduplicated = measure("dedupe", count, functools.partial(pipeline.deduplicate, [outcome]))
        del outcome
        report.unique = len(deduplicated.nodes)
        report.duplicates = deduplicated.duplicates
        report.invalid = deduplicated.invalid
        stats = {"links_seen": deduplicated.links_seen, "unique": report.unique}
        with tempfile.TemporaryDirectory() as temporary:
            target = out_dir or Path(temporary)
            exported = measure(
                "export", report.unique, lambda: pipeline.export_all(deduplicated.nodes, target, stats)
            )
            report.export_seconds = dict(exported.seconds)
            for name, seconds in exported.seconds.items():
                echo(f"  {name:<8} {seconds:7.2f} s")
    # The sampled peaks are sums over the process tree; ru_maxrss catches a peak of this process
    # alone that fell between two samples.
    own_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report.peak_rss_mb = max([own_peak_mb, *(stage.peak_rss_mb for stage in report.stages)])
    return report


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def parse_only(body: bytes) -> int:
    """Parse a body and return the node count; used by pytest-benchmark."""
    return len(parse_body(body).nodes)
