"""The offline merge benchmark: corpus growth, stage figures, and a parse timing for pytest-benchmark.

`test_parse_corpus_speed` uses the `benchmark` fixture, so the default `--benchmark-skip` in
pyproject.toml skips it; run it with `pytest tests/test_bench.py --benchmark-only`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from merger.bench import corpus_links, grow_links, mutate_link, parse_only, run_merge_benchmark
from merger.core import pipeline


def _host_of(link: str) -> str:
    node = pipeline.parse_input("one", link).parsed
    assert node is not None and node.nodes, link
    return node.nodes[0].host


def test_grow_links_keeps_count_and_loopback_hosts(corpus_dir: Path) -> None:
    seed = corpus_links(corpus_dir)
    assert len(seed) > 30_000
    grown = grow_links(seed, len(seed) + 500)
    assert len(grown) == len(seed) + 500
    assert grown[: len(seed)] == seed
    parsed = pipeline.parse_input("grown", "\n".join(grown[len(seed) :])).parsed
    assert parsed is not None
    assert parsed.nodes
    for node in parsed.nodes:
        assert node.host.startswith("127.") or ":" in node.host, node.host


def test_mutate_link_moves_third_octet() -> None:
    link = "trojan://secret@127.0.250.9:443?security=tls#name"
    assert _host_of(mutate_link(link, 10)) == "127.0.4.9"
    assert mutate_link(link, 0) == link


def test_mutate_link_moves_vmess_json_host() -> None:
    user_id = "a3482e88-686a-4a58-8126-99c9df64b7bf"
    settings = {"v": "2", "ps": "x", "add": "127.0.1.2", "port": "443", "id": user_id}
    seed = "vmess://" + base64.b64encode(json.dumps(settings).encode()).decode()
    assert _host_of(seed) == "127.0.1.2"
    assert _host_of(mutate_link(seed, 3)) == "127.0.4.2"


def test_run_merge_benchmark_reports_every_stage(corpus_dir: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_merge_benchmark(corpus_dir, 2_000, out_dir=tmp_path, echo=lines.append)

    assert [stage.name for stage in report.stages] == ["generate", "parse", "dedupe", "export"]
    assert report.links == 2_000
    assert report.unique > 0
    assert report.unique + report.duplicates + report.invalid == report.links
    stages = {stage.name: stage for stage in report.stages}
    assert stages["parse"].items == 2_000
    assert stages["dedupe"].items == 2_000
    assert stages["export"].items == report.unique
    for stage in report.stages:
        assert stage.seconds > 0, stage.name
        assert stage.cpu_seconds >= 0, stage.name
        assert stage.peak_rss_mb > 10, stage.name
        assert stage.per_second > 0, stage.name
    assert report.peak_rss_mb >= max(stage.peak_rss_mb for stage in report.stages) - 1
    assert list(report.export_seconds) == ["raw", "clash", "singbox", "csv", "json"]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(pipeline.EXPORT_FILES.values())
    assert any(line.startswith("parse") for line in lines)
    assert report.total_seconds == pytest.approx(
        sum(stage.seconds for stage in report.stages if stage.name != "generate")
    )


def test_parse_corpus_speed(benchmark, corpus_dir: Path) -> None:
    body = "\n".join(corpus_links(corpus_dir)).encode()
    count = benchmark.pedantic(parse_only, args=(body,), rounds=5, iterations=1)
    assert count > 25_000
