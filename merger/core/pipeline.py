"""The merge pipeline as plain functions: parse bodies, de-duplicate, export.

Fetching and persistence live in the merger app; these functions take bodies and return plain
data, so the `merge` command, Celery tasks and benchmarks all run the same code.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bulk import ChildFailed, ForkedCall, can_fork, paused_gc
from .decode import ParsedBody, parse_body
from .errors import DecodeError
from .export.clash import write_clash
from .export.links import serialize_links, write_raw_and_base64
from .export.singbox import write_singbox
from .export.table import write_csv, write_report
from .node import Node

# File names of the exports; other tools read these exact names.
EXPORT_FILES = {
    "raw": "raw.txt",
    "base64": "base64.txt",
    "clash": "clash.yaml",
    "singbox": "singbox.json",
    "csv": "nodes.csv",
    "json": "report.json",
}

# Progress callback: (stage, done, total). Stages are "fetch", "parse", "dedupe", "export".
Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass(slots=True)
class InputOutcome:
    """One input's parse outcome. `error` is set when the body could not be decoded at all."""

    label: str
    parsed: ParsedBody | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.parsed is not None


def parse_input(label: str, body: bytes | str) -> InputOutcome:
    """Parse one body; a DecodeError becomes the outcome's error instead of propagating."""
    try:
        return InputOutcome(label, parse_body(body))
    except DecodeError as error:
        return InputOutcome(label, error=str(error))


@dataclass(slots=True)
class Deduplicated:
    nodes: list[Node]
    duplicates: int
    links_seen: int
    invalid: int
    invalid_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def per_protocol(self) -> dict[str, int]:
        return dict(sorted(Counter(node.protocol for node in self.nodes).items()))


def deduplicate(outcomes: Iterable[InputOutcome]) -> Deduplicated:
    """Keep the first node of every fingerprint, recording every input label it came from.

    The identity tuple is used as the dict key instead of the hex fingerprint because hashing a
    tuple is several times cheaper than a blake2b digest, and equal tuples mean equal fingerprints.
    Each kept node's fingerprint is computed once here and cached on it (`Node.cache_fingerprint`),
    because the CSV, the JSON report and the database all read it.
    """
    with paused_gc():
        return _deduplicate(outcomes)


def _deduplicate(outcomes: Iterable[InputOutcome]) -> Deduplicated:
    by_identity: dict[tuple, Node] = {}
    duplicates = 0
    links_seen = 0
    invalid_reasons: Counter[str] = Counter()
    for outcome in outcomes:
        parsed = outcome.parsed
        if parsed is None:
            continue
        links_seen += parsed.entries
        invalid_reasons.update(parsed.reasons)
        label = outcome.label
        for node in parsed.nodes:
            key = node.identity()
            kept = by_identity.get(key)
            if kept is None:
                node.sources = [label]
                node.cache_fingerprint(key)
                by_identity[key] = node
            else:
                duplicates += 1
                if label not in kept.sources:
                    kept.sources.append(label)
    return Deduplicated(
        nodes=list(by_identity.values()),
        duplicates=duplicates,
        links_seen=links_seen,
        invalid=sum(invalid_reasons.values()),
        invalid_reasons=invalid_reasons,
    )


@dataclass(slots=True)
class ExportResult:
    paths: dict[str, Path]
    # Each node's canonical link ('' where it has none), in node order, for callers that store them.
    links: list[str]
    skipped: dict[str, dict[str, int]]
    seconds: dict[str, float]


def export_all(
    nodes: Sequence[Node],
    out_dir: Path,
    stats: dict[str, Any],
    progress: Progress = _no_progress,
) -> ExportResult:
    """Write every export format into `out_dir` and return the paths and per-format skip counts.

    Files are written under a temporary name and renamed, so a reader never sees half a file.
    Each file is written in chunks as it is encoded. From PARALLEL_MIN_NODES nodes on, where the
    machine has a second core, a forked child writes the Clash and sing-box configs while this
    process writes the rest.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    total = len(EXPORT_FILES)
    temporaries = {key: out_dir / (file_name + ".tmp") for key, file_name in EXPORT_FILES.items()}
    done = 0

    def finished(count: int) -> None:
        nonlocal done
        done += count
        progress("export", done, total)

    with paused_gc():
        child = None
        if len(nodes) >= PARALLEL_MIN_NODES and can_fork():
            try:
                child = ForkedCall(_write_configs, nodes, temporaries)
            except OSError:
                child = None

        started = time.perf_counter()
        links, link_skips = serialize_links(nodes)
        with temporaries["raw"].open("wb") as raw, temporaries["base64"].open("wb") as encoded:
            write_raw_and_base64(links, raw.write, encoded.write)
        link_seconds = time.perf_counter() - started
        finished(2)

        configs = None
        if child is None:
            configs = _write_configs(nodes, temporaries)
            finished(2)

        started = time.perf_counter()
        with temporaries["csv"].open("w", encoding="utf-8") as table:
            write_csv(nodes, links, table)
        csv_seconds = time.perf_counter() - started
        finished(1)

        if configs is None:
            try:
                configs = child.result()  # type: ignore[union-attr]
            except ChildFailed:
                # The parent writes the files itself, so that an error in the exporters is
                # raised here with its real traceback, and a killed child costs only time.
                configs = _write_configs(nodes, temporaries)
            finished(2)

        skipped: dict[str, dict[str, int]] = {"raw": dict(link_skips), "base64": dict(link_skips)}
        seconds: dict[str, float] = {"raw": link_seconds}
        for key, (format_skips, format_seconds) in configs.items():
            skipped[key] = format_skips
            seconds[key] = format_seconds
        seconds["csv"] = csv_seconds

        started = time.perf_counter()
        report_stats = {**stats, "export_skipped": skipped}
        with temporaries["json"].open("wb") as report:
            write_report(report_stats, nodes, links, report.write)
        seconds["json"] = time.perf_counter() - started

    paths = {}
    for key, file_name in EXPORT_FILES.items():
        path = out_dir / file_name
        temporaries[key].replace(path)
        paths[key] = path
    progress("export", total, total)
    return ExportResult(paths=paths, links=links, skipped=skipped, seconds=seconds)


# From this many nodes on, the Clash and sing-box configs are written by a forked child. Below
# it the fork costs more than the second core saves.
PARALLEL_MIN_NODES = 20_000


def _write_configs(
    nodes: Sequence[Node], temporaries: dict[str, Path]
) -> dict[str, tuple[dict[str, int], float]]:
    """Write the Clash and sing-box configs; return each one's skip counts and seconds."""
    result = {}
    for key, write_config in (("clash", write_clash), ("singbox", write_singbox)):
        started = time.perf_counter()
        with temporaries[key].open("wb") as stream:
            format_skips = write_config(nodes, stream.write)
        result[key] = (dict(format_skips), time.perf_counter() - started)
    return result
