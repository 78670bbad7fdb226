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

from .decode import ParsedBody, parse_body
from .errors import DecodeError
from .export.clash import render_clash
from .export.links import render_base64, render_raw, serialize_links
from .export.singbox import render_singbox
from .export.table import render_csv, render_report
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
    """
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
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped: dict[str, dict[str, int]] = {}
    seconds: dict[str, float] = {}
    contents: dict[str, str | bytes] = {}
    total = len(EXPORT_FILES)

    started = time.perf_counter()
    links, link_skips = serialize_links(nodes)
    raw = render_raw(links)
    contents["raw"] = raw
    contents["base64"] = render_base64(raw)
    skipped["raw"] = skipped["base64"] = dict(link_skips)
    seconds["raw"] = time.perf_counter() - started
    progress("export", 2, total)

    started = time.perf_counter()
    contents["clash"], clash_skips = render_clash(list(nodes))
    skipped["clash"] = dict(clash_skips)
    seconds["clash"] = time.perf_counter() - started
    progress("export", 3, total)

    started = time.perf_counter()
    contents["singbox"], singbox_skips = render_singbox(list(nodes))
    skipped["singbox"] = dict(singbox_skips)
    seconds["singbox"] = time.perf_counter() - started
    progress("export", 4, total)

    started = time.perf_counter()
    contents["csv"] = render_csv(nodes, links)
    seconds["csv"] = time.perf_counter() - started
    progress("export", 5, total)

    started = time.perf_counter()
    report_stats = {**stats, "export_skipped": skipped}
    contents["json"] = render_report(report_stats, nodes, links)
    seconds["json"] = time.perf_counter() - started

    paths = {}
    for key, file_name in EXPORT_FILES.items():
        path = out_dir / file_name
        temporary = path.with_name(path.name + ".tmp")
        content = contents[key]
        if isinstance(content, str):
            temporary.write_text(content, encoding="utf-8")
        else:
            temporary.write_bytes(content)
        temporary.replace(path)
        paths[key] = path
    progress("export", total, total)
    return ExportResult(paths=paths, links=links, skipped=skipped, seconds=seconds)
