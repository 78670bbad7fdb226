"""The bulk-merge speedups give the same results as the plain code paths.

Forked parsing and exporting, the streaming writers and the fingerprint cache are checked
against the serial path and the whole-text renderers on the real corpus.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from pathlib import Path

import orjson
import pytest

from merger.bench import corpus_links, grow_links
from merger.core import bulk, decode, pipeline
from merger.core.bulk import ChildFailed, ForkedCall, paused_gc
from merger.core.export.clash import render_clash
from merger.core.export.links import render_base64, render_raw, serialize_links
from merger.core.export.singbox import render_singbox
from merger.core.export.table import render_csv, render_report
from merger.core.node import Node, fingerprint_of

needs_fork = pytest.mark.skipif(
    not hasattr(os, "fork") or bulk.usable_cores() < 2, reason="needs os.fork and a second core"
)


@pytest.fixture
def fork_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bulk.FORK_ENV, "1")


@pytest.fixture(scope="module")
def grown_body(corpus_dir: Path) -> bytes:
    return "\n".join(grow_links(corpus_links(corpus_dir), 6_000)).encode()


def _merge(body: bytes) -> pipeline.Deduplicated:
    return pipeline.deduplicate([pipeline.parse_input("grown", body)])


@needs_fork
@pytest.mark.usefixtures("fork_enabled")
def test_forked_parse_equals_serial(grown_body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    serial = pipeline.parse_input("grown", grown_body).parsed
    monkeypatch.setattr(decode, "PARALLEL_MIN_LINES", 100)
    forked = pipeline.parse_input("grown", grown_body).parsed
    assert serial is not None and forked is not None
    assert len(forked.nodes) == len(serial.nodes)
    assert forked.nodes == serial.nodes
    assert [(item.line, item.reason, item.text) for item in forked.rejected] == [
        (item.line, item.reason, item.text) for item in serial.rejected
    ]
    assert forked.entries == serial.entries
    assert forked.reasons == serial.reasons


@needs_fork
@pytest.mark.usefixtures("fork_enabled")
def test_forked_export_equals_serial(
    grown_body: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    merged = _merge(grown_body)
    stats = {"links_seen": merged.links_seen, "unique": len(merged.nodes)}
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_NODES", 10**9)
    serial = pipeline.export_all(merged.nodes, tmp_path / "serial", stats)
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_NODES", 100)
    forked = pipeline.export_all(merged.nodes, tmp_path / "forked", stats)
    assert forked.links == serial.links
    assert forked.skipped == serial.skipped
    assert list(forked.seconds) == ["raw", "clash", "singbox", "csv", "json"]
    for key, path in serial.paths.items():
        assert forked.paths[key].read_bytes() == path.read_bytes(), key
    assert not list((tmp_path / "forked").glob("*.tmp"))


def test_streamed_files_equal_renderers(grown_body: bytes, tmp_path: Path) -> None:
    merged = _merge(grown_body)
    nodes = merged.nodes
    stats = {"links_seen": merged.links_seen, "unique": len(nodes)}
    result = pipeline.export_all(nodes, tmp_path, stats)
    links, link_skips = serialize_links(nodes)
    raw = render_raw(links)
    clash_text, clash_skips = render_clash(nodes)
    singbox_text, singbox_skips = render_singbox(nodes)
    skipped = {
        "raw": dict(link_skips),
        "base64": dict(link_skips),
        "clash": dict(clash_skips),
        "singbox": dict(singbox_skips),
    }
    assert result.skipped == skipped
    assert result.paths["raw"].read_text(encoding="utf-8") == raw
    assert result.paths["base64"].read_text(encoding="utf-8") == render_base64(raw)
    assert result.paths["clash"].read_text(encoding="utf-8") == clash_text
    assert result.paths["singbox"].read_text(encoding="utf-8") == singbox_text
    assert result.paths["csv"].read_text(encoding="utf-8") == render_csv(nodes, links)
    report = render_report({**stats, "export_skipped": skipped}, nodes, links)
    assert result.paths["json"].read_bytes() == report


def test_report_layout_matches_whole_document_dump() -> None:
    nodes = [
        Node("trojan", "127.0.0.1", 443, name="a", password="p", alpn=("h2",)),
        Node("ss", "127.0.0.2", 8388, password="x", method="aes-128-gcm", extra={"plugin": "obfs-local"}),
    ]
    stats = {"links_seen": 2, "per_protocol": {"ss": 1}, 5: "non-string key"}
    expected = orjson.dumps(
        {
            **stats,
            "nodes": [
                {**node.as_dict(), "fingerprint": node.fingerprint, "link": link}
                for node, link in zip(nodes, ["l1", ""], strict=True)
            ],
        },
        option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
    )
    assert render_report(stats, nodes, ["l1", ""]) == expected
    empty = orjson.dumps({**stats, "nodes": []}, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    assert render_report(stats, [], []) == empty


def test_clash_escapes_yaml_unsafe_name_in_stream() -> None:
    node = Node("trojan", "127.0.0.1", 443, name="a\u2028b\x85c", password="p", security="tls")
    text, skipped = render_clash([node])
    assert not skipped
    assert "\\u2028" in text
    assert "\\u0085" in text
    assert "\u2028" not in text


def test_clash_skips_lone_surrogate_name() -> None:
    good = Node("trojan", "127.0.0.1", 443, name="ok", password="p", security="tls")
    broken = Node("trojan", "127.0.0.2", 443, name="bad\ud800", password="p", security="tls")
    text, skipped = render_clash([good, broken])
    assert skipped == {"text that is not valid Unicode": 1}
    assert '"name":"ok"' in text
    assert "127.0.0.2" not in text


def test_cached_fingerprint_matches_identity() -> None:
    node = Node("vless", "Example.COM", 443, uuid="a3482e88-686a-4a58-8126-99c9df64b7bf")
    computed = node.fingerprint
    assert node.cache_fingerprint() == computed
    assert node._fingerprint == fingerprint_of(node.identity())
    copy = dataclasses.replace(node, port=8443)
    assert copy.fingerprint != computed
    assert not hasattr(copy, "_fingerprint")
    assert "_fingerprint" not in Node.__slots__


def test_deduplicate_caches_kept_fingerprints(grown_body: bytes) -> None:
    merged = _merge(grown_body[:200_000])
    assert merged.nodes
    for node in merged.nodes:
        assert node._fingerprint == fingerprint_of(node.identity())


def test_identity_orders_extras_by_key_list() -> None:
    extra = {"plugin_opts": {"obfs": "tls"}, "mtu": 1, "plugin": "obfs-local"}
    node = Node("ss", "127.0.0.1", 1, extra=extra)
    assert node.identity()[-1] == (("plugin", "obfs-local"), ("plugin_opts", (("obfs", "tls"),)))


def test_as_dict_keeps_port_zero_and_drops_defaults() -> None:
    node = Node("socks", "127.0.0.1", 0, alpn=("h2", "http/1.1"))
    assert node.as_dict() == {"protocol": "socks", "host": "127.0.0.1", "port": 0, "alpn": ["h2", "http/1.1"]}
    node = Node("vmess", "127.0.0.1", 80, alter_id=0, insecure=False, network="ws", security="tls")
    assert list(node.as_dict()) == ["protocol", "host", "port", "network", "security"]


def test_paused_gc_restores_state() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def _fail() -> None:
    raise ValueError("broken on purpose")


@needs_fork
def test_forked_call_reports_child_exception() -> None:
    assert ForkedCall(sum, [1, 2, 3]).result() == 6
    with pytest.raises(ChildFailed, match="broken on purpose"):
        ForkedCall(_fail).result()


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf  trojan://p@127.0.0.1:443#a\r\nvless://bad\n\n# comment\nss://x\xff\xfe@127.0.0.2:1#\xf0\x9f\x98\x80\n",
        "trojan://p@127.0.0.1:443#name\u2028trojan://q@127.0.0.2:443#b\n".encode(),
        b"trojan://p@127.0.0.1:443#\xe2\x80\n trojan://p@127.0.0.3:443#\xc2",
        b"mixed-port: 7890\nproxies:\n"
        b"  - {name: a, type: ss, server: 127.0.0.1, port: 1, cipher: none, password: x}\n",
    ],
)
def test_byte_body_parses_like_decoded_text(body: bytes) -> None:
    from_bytes = decode.parse_body(body)
    from_text = decode.parse_body(body.decode("utf-8-sig", errors="replace"))
    assert from_bytes.format == from_text.format
    assert from_bytes.nodes == from_text.nodes
    assert [(item.line, item.reason, item.text) for item in from_bytes.rejected] == [
        (item.line, item.reason, item.text) for item in from_text.rejected
    ]
    assert from_bytes.entries == from_text.entries


def test_corpus_byte_bodies_parse_like_text(corpus_dir: Path) -> None:
    for path in sorted(corpus_dir.glob("plain-*.txt")):
        data = path.read_bytes()
        from_bytes = decode.parse_body(data)
        from_text = decode.parse_body(data.decode("utf-8-sig", errors="replace"))
        assert from_bytes.nodes == from_text.nodes, path.name
        assert from_bytes.reasons == from_text.reasons, path.name


@pytest.mark.parametrize("safe", ["", ",", ":", "/"])
def test_percent_encode_matches_quote(safe: str) -> None:
    from urllib.parse import quote

    from merger.core.links.common import percent_encode

    samples = ["", "plain-Text_1.~", "a b/c:d,e%f", "🇩🇪 Berlin", "中文", "\x00\x7f\x80\xff", "é\u2028"]
    for text in samples:
        assert percent_encode(text, safe) == quote(text, safe=safe), text
    with pytest.raises(UnicodeEncodeError):
        percent_encode("bad\ud800", safe)


def test_fork_needs_env_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(bulk.FORK_ENV, raising=False)
    assert not bulk.can_fork()
    monkeypatch.setenv(bulk.FORK_ENV, "0")
    assert not bulk.can_fork()
    monkeypatch.setenv(bulk.FORK_ENV, "1")
    assert bulk.can_fork() == (hasattr(os, "fork") and bulk.usable_cores() > 1)
