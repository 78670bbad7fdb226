"""Every export re-parses to the fingerprints it was written from."""

from __future__ import annotations

import csv
import io

import orjson
import pytest
import yaml

from merger.core import pipeline
from merger.core.decode import parse_body
from tests.conftest import SAMPLES_DIR, corpus_files


def _merged(paths):
    outcomes = [pipeline.parse_input(path.name, path.read_bytes()) for path in paths]
    return pipeline.deduplicate(outcomes)


@pytest.fixture(scope="module")
def sample_merge():
    return _merged(sorted(SAMPLES_DIR.iterdir()))


@pytest.fixture(scope="module")
def corpus_merge():
    return _merged(corpus_files())


@pytest.fixture(scope="module", params=["sample_merge", "corpus_merge"])
def exported(request, tmp_path_factory):
    merged = request.getfixturevalue(request.param)
    out_dir = tmp_path_factory.mktemp(request.param)
    result = pipeline.export_all(merged.nodes, out_dir, {"unique": len(merged.nodes)})
    return merged, result


def _fingerprints(nodes):
    return {node.fingerprint for node in nodes}


def test_export_writes_every_file(exported):
    _merged_nodes, result = exported
    assert set(result.paths) == set(pipeline.EXPORT_FILES)
    for path in result.paths.values():
        assert path.stat().st_size > 0


def test_raw_reparses_to_same_fingerprints(exported):
    merged, result = exported
    reparsed = parse_body(result.paths["raw"].read_bytes())
    assert reparsed.invalid == 0
    skipped = sum(result.skipped["raw"].values())
    assert len(reparsed.nodes) == len(merged.nodes) - skipped
    assert _fingerprints(reparsed.nodes) <= _fingerprints(merged.nodes)


def test_base64_reparses_like_raw(exported):
    _merged_nodes, result = exported
    from_raw = parse_body(result.paths["raw"].read_bytes())
    from_base64 = parse_body(result.paths["base64"].read_bytes())
    assert from_base64.format == "base64"
    assert _fingerprints(from_base64.nodes) == _fingerprints(from_raw.nodes)


def test_clash_loads_with_unique_names_and_reparses(exported):
    merged, result = exported
    text = result.paths["clash"].read_text(encoding="utf-8")
    document = yaml.load(text, Loader=yaml.CSafeLoader)
    names = [proxy["name"] for proxy in document["proxies"]]
    assert len(names) == len(set(names))
    for group in document["proxy-groups"]:
        assert set(group["proxies"]) <= set(names) | {"DIRECT"} | {
            g["name"] for g in document["proxy-groups"]
        }
    reparsed = parse_body(text)
    assert reparsed.invalid == 0
    skipped = sum(result.skipped["clash"].values())
    assert len(reparsed.nodes) == len(merged.nodes) - skipped
    assert _fingerprints(reparsed.nodes) <= _fingerprints(merged.nodes)


def test_singbox_loads_with_unique_tags_and_reparses(exported):
    merged, result = exported
    document = orjson.loads(result.paths["singbox"].read_bytes())
    tags = [item["tag"] for item in document["outbounds"] + document.get("endpoints", [])]
    assert len(tags) == len(set(tags))
    reparsed = parse_body(result.paths["singbox"].read_bytes())
    assert reparsed.invalid == 0
    skipped = sum(result.skipped["singbox"].values())
    assert len(reparsed.nodes) == len(merged.nodes) - skipped
    assert _fingerprints(reparsed.nodes) <= _fingerprints(merged.nodes)


def test_csv_has_one_row_per_node(exported):
    merged, result = exported
    rows = list(csv.DictReader(io.StringIO(result.paths["csv"].read_text(encoding="utf-8"))))
    assert len(rows) == len(merged.nodes)
    assert {row["fingerprint"] for row in rows} == _fingerprints(merged.nodes)


def test_report_has_stats_and_every_node(exported):
    merged, result = exported
    report = orjson.loads(result.paths["json"].read_bytes())
    assert report["unique"] == len(merged.nodes)
    assert len(report["nodes"]) == len(merged.nodes)
    assert "export_skipped" in report
    assert {row["fingerprint"] for row in report["nodes"]} == _fingerprints(merged.nodes)


def test_cross_format_duplicates_collapse():
    # The corpus's clash-reality.yaml and singbox-reality.json hold the same 189 servers.
    clash = parse_body(next(p for p in corpus_files("clash-reality.yaml")).read_bytes())
    singbox = parse_body(next(p for p in corpus_files("singbox-reality.json")).read_bytes())
    assert _fingerprints(clash.nodes) == _fingerprints(singbox.nodes)


def test_dedupe_records_every_source():
    body = "trojan://p@127.9.9.9:443#a"
    outcomes = [pipeline.parse_input("first", body), pipeline.parse_input("second", body + "-renamed")]
    merged = pipeline.deduplicate(outcomes)
    assert len(merged.nodes) == 1
    assert merged.duplicates == 1
    assert merged.nodes[0].sources == ["first", "second"]
    assert merged.nodes[0].name == "a"
