"""Scoring, region detection, filters and renaming over real corpus names."""

from __future__ import annotations

import pytest

from merger.core import select
from merger.core.decode import parse_body
from merger.core.export.sip008 import render_sip008
from merger.core.node import Node
from tests.conftest import CORPUS_DIR


@pytest.fixture(scope="module")
def vless_nodes() -> list[Node]:
    return parse_body((CORPUS_DIR / "b64-vless.txt").read_bytes()).nodes


@pytest.fixture(scope="module")
def clash_ipv6_nodes() -> list[Node]:
    return parse_body((CORPUS_DIR / "clash-flow-ipv6.yaml").read_bytes()).nodes


def candidates(nodes: list[Node], **figures) -> list[select.Candidate]:
    return [select.Candidate(node=node, **figures) for node in nodes]


# --- Score -----------------------------------------------------------------------------------


def test_score_weighted_mean_of_parts():
    # latency 500 of 2000 ms -> 0.75; success 0.8; source 0.5; weights 0.4/0.4/0.2:
    # 100 * (0.4*0.75 + 0.4*0.8 + 0.2*0.5) = 100 * (0.30 + 0.32 + 0.10) = 72.
    score = select.compute_score(alive=True, latency_ms=500, success_ratio=0.8, source_reliability=0.5)
    assert score == pytest.approx(72.0)


def test_score_custom_weights_are_normalised():
    # Only latency counts: 100 ms of 1000 ms -> 0.9 -> 90, whatever the other parts are.
    score = select.compute_score(
        alive=True,
        latency_ms=100,
        success_ratio=0.0,
        source_reliability=0.0,
        weights={"latency": 2.0, "success": 0.0, "source": 0.0},
        latency_ceiling_ms=1000,
    )
    assert score == pytest.approx(90.0)


def test_score_dead_node_gets_no_latency_points():
    score = select.compute_score(alive=False, latency_ms=10, success_ratio=0.5, source_reliability=1.0)
    # 0.4*0 + 0.4*0.5 + 0.2*1 = 0.4
    assert score == pytest.approx(40.0)


def test_score_unprobed_node_counts_only_its_source():
    score = select.compute_score(alive=None, latency_ms=None, success_ratio=None, source_reliability=1.0)
    assert score == pytest.approx(20.0)


def test_score_latency_beyond_ceiling_is_zero():
    score = select.compute_score(alive=True, latency_ms=5000, success_ratio=None, source_reliability=0.0)
    # latency part clamps to 0; success falls back to 1 for a live node: 0.4 * 1.
    assert score == pytest.approx(40.0)


def test_source_reliability_divides_by_current_failures():
    assert select.source_reliability([True, True, False, True], consecutive_failures=1) == pytest.approx(
        0.375
    )
    assert select.source_reliability([True, True], consecutive_failures=0) == 1.0
    assert select.source_reliability([], consecutive_failures=0) == 0.0


def test_check_weights_rejects_unknown_key():
    with pytest.raises(select.SelectionError, match="unknown score weight 'speed'"):
        select.check_weights({"speed": 1.0})


def test_check_weights_rejects_all_zero():
    with pytest.raises(select.SelectionError, match="all 0"):
        select.check_weights({"latency": 0, "success": 0, "source": 0})


# --- Regions ---------------------------------------------------------------------------------


def test_detect_country_from_flag_in_corpus(vless_nodes):
    flagged = [node for node in vless_nodes if "🇳🇱" in node.name]
    assert len(flagged) > 10
    assert {select.detect_country(node.name) for node in flagged} == {"NL"}


def test_detect_country_ignores_pirate_flag_and_protocol_labels(vless_nodes):
    # "🔒 VL-WS-TLS 🏴‍☠️ NA-127.x": no country; NA means "not available" there.
    pirate = [node for node in vless_nodes if "🏴" in node.name]
    assert pirate
    assert {select.detect_country(node.name) for node in pirate} == {""}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("🔒 TR-TCP-NA 🏴\u200d☠️ NA-127.68.232.18:443", ""),  # TR is trojan here, not Turkey
        ("🔒 TR-TCP-TLS 🇺🇸 US-127.116.48.1:2096", "US"),
        ("🇭🇰HK-127.193.187.131-5551", "HK"),
        ("🇺🇸US_280 @DeziZan_8", "US"),
        ("[VMess] 🇨🇦 _CA_加拿大", "CA"),
        ("[SS] 美国备专径网转01", "US"),
        ("UK-London 3", "GB"),
        ("Hong Kong 03", "HK"),
        ("Germany fast", "DE"),
        ("🔴🇷🇴[🎬🤖📺🎭]_kelugo.neb/Lef1ng001_46821886", "RO"),
        ("⚪🏳️_kelugo.neb/Lef1ng001_21b3202d", ""),
        ("By UgemUja 🌍", ""),
        ("[SS] relay", ""),  # SS is Shadowsocks, not South Sudan
        ("🔄 LATEST-UPDATE 📅 LAH-12-SEV-1404 🕑 01:06", ""),
    ],
)
def test_detect_country_table(name, expected):
    assert select.detect_country(name) == expected


def test_detect_country_on_chinese_corpus_names(clash_ipv6_nodes):
    by_name = {node.name: select.detect_country(node.name) for node in clash_ipv6_nodes}
    singapore = [name for name in by_name if "新加坡" in name]
    assert singapore
    assert all(by_name[name] == "SG" for name in singapore)


def test_flag_emoji_round_trips_detection():
    assert select.flag_emoji("JP") == "🇯🇵"
    assert select.detect_country(select.flag_emoji("JP")) == "JP"
    assert select.flag_emoji("") == ""
    assert select.flag_emoji("XX") == ""


def test_normalize_region_accepts_aliases_and_rejects_unknown():
    assert select.normalize_region("uk") == "GB"
    assert select.normalize_region("Japan") == "JP"
    with pytest.raises(select.SelectionError, match="unknown region 'Atlantis'"):
        select.normalize_region("Atlantis")


# --- Filters ---------------------------------------------------------------------------------


def test_invalid_include_regex_names_the_pattern():
    with pytest.raises(select.SelectionError, match=r"invalid include regex '\(\['"):
        select.make_selection(include="([")


def test_invalid_exclude_regex_names_the_pattern():
    with pytest.raises(select.SelectionError, match=r"invalid exclude regex 'a\{2,1\}'"):
        select.make_selection(exclude="a{2,1}")


def test_unknown_protocol_is_rejected():
    with pytest.raises(select.SelectionError, match="unknown protocol 'vmes'"):
        select.make_selection(protocols=["vmes"])


def test_include_and_exclude_on_corpus_names(vless_nodes):
    selection = select.make_selection(include=r"VL-GRPC", exclude=r"🇷🇺")
    chosen = select.select(candidates(vless_nodes), selection)
    assert chosen
    assert all("VL-GRPC" in item.node.name for item in chosen)
    assert not any("🇷🇺" in item.node.name for item in chosen)
    expected = sum(1 for node in vless_nodes if "VL-GRPC" in node.name and "🇷🇺" not in node.name)
    assert len(chosen) == expected


def test_include_is_case_insensitive(vless_nodes):
    chosen = select.select(candidates(vless_nodes), select.make_selection(include="vl-grpc"))
    assert len(chosen) == sum(1 for node in vless_nodes if "VL-GRPC" in node.name)


def test_region_filter_uses_detected_country(vless_nodes):
    chosen = select.select(candidates(vless_nodes), select.make_selection(regions=["us"]))
    assert chosen
    assert all("🇺🇸" in item.node.name for item in chosen)


def test_region_filter_prefers_stored_country():
    node = Node(protocol="vless", host="127.0.0.1", port=443, name="🇺🇸 US 1", uuid="x")
    item = select.Candidate(node=node, country="DE")
    assert select.select([item], select.make_selection(regions=["DE"])) == [item]
    assert select.select([item], select.make_selection(regions=["US"])) == []


def test_protocol_port_alive_and_latency_filters():
    items = [
        select.Candidate(Node("vless", "127.0.0.1", 443, "a"), alive=True, latency_ms=100),
        select.Candidate(Node("vless", "127.0.0.2", 8443, "b"), alive=True, latency_ms=900),
        select.Candidate(Node("trojan", "127.0.0.3", 443, "c"), alive=False, latency_ms=None),
        select.Candidate(Node("ss", "127.0.0.4", 443, "d"), alive=None, latency_ms=None),
    ]
    names = lambda chosen: [item.node.name for item in chosen]  # noqa: E731
    assert names(select.select(items, select.make_selection(protocols=["vless"], sort="name"))) == ["a", "b"]
    assert names(select.select(items, select.make_selection(ports=["443"], sort="name"))) == ["a", "c", "d"]
    assert names(select.select(items, select.make_selection(alive_only=True, sort="name"))) == ["a", "b"]
    assert names(select.select(items, select.make_selection(max_latency_ms=500))) == ["a"]


def test_sort_top_n_and_per_protocol_cap():
    items = [
        select.Candidate(Node("vless", "127.0.0.1", 1, "v1"), score=90, latency_ms=300),
        select.Candidate(Node("vless", "127.0.0.2", 2, "v2"), score=80, latency_ms=50),
        select.Candidate(Node("vless", "127.0.0.3", 3, "v3"), score=70, latency_ms=None),
        select.Candidate(Node("trojan", "127.0.0.4", 4, "t1"), score=85, latency_ms=200),
    ]
    names = lambda chosen: [item.node.name for item in chosen]  # noqa: E731
    assert names(select.select(items, select.make_selection(sort="score"))) == ["v1", "t1", "v2", "v3"]
    assert names(select.select(items, select.make_selection(sort="latency"))) == ["v2", "t1", "v1", "v3"]
    assert names(select.select(items, select.make_selection(sort="name"))) == ["t1", "v1", "v2", "v3"]
    assert names(select.select(items, select.make_selection(top_n=2))) == ["v1", "t1"]
    assert names(select.select(items, select.make_selection(per_protocol_cap=1))) == ["v1", "t1"]
    # The cap applies before top N, so the best of each protocol survive.
    assert names(select.select(items, select.make_selection(per_protocol_cap=2, top_n=3))) == [
        "v1",
        "t1",
        "v2",
    ]


# --- Rename ----------------------------------------------------------------------------------


def test_unknown_placeholder_is_named():
    with pytest.raises(select.SelectionError, match=r"unknown placeholder \{speed\}"):
        select.make_selection(rename_template="{flag} {speed}")


def test_bad_format_spec_is_rejected():
    with pytest.raises(select.SelectionError, match="invalid rename template"):
        select.check_template("{index:zz}")


def test_rename_template_on_corpus_names(vless_nodes):
    flagged = [node for node in vless_nodes if "🇩🇪" in node.name][:3]
    items = [select.Candidate(node, latency_ms=85.4) for node in flagged]
    names = select.rename(items, "{flag} {country} {protocol} {index:02d} {latency}")
    assert names == ["🇩🇪 DE vless 01 85ms", "🇩🇪 DE vless 02 85ms", "🇩🇪 DE vless 03 85ms"]


def test_rename_collapses_empty_placeholders_and_makes_names_unique():
    node = Node("trojan", "127.0.0.1", 443, "By UgemUja 🌍", password="p")
    items = [select.Candidate(node), select.Candidate(node), select.Candidate(node)]
    # No country and no latency: "{flag} {country} {protocol} {latency}" leaves only the protocol.
    assert select.rename(items, "{flag} {country} {protocol} {latency}") == ["trojan", "trojan 2", "trojan 3"]


def test_rename_without_template_keeps_names_unique(clash_ipv6_nodes):
    items = candidates(clash_ipv6_nodes + clash_ipv6_nodes[:5])
    names = select.rename(items, "")
    assert len(set(names)) == len(names)
    assert names[: len(clash_ipv6_nodes)] == [node.name for node in clash_ipv6_nodes]


# --- Node rows and SIP008 --------------------------------------------------------------------


def test_node_from_dict_keeps_fingerprint(vless_nodes):
    for node in vless_nodes[:300]:
        rebuilt = select.node_from_dict(node.as_dict())
        assert rebuilt.fingerprint == node.fingerprint
        assert rebuilt.name == node.name


def test_sip008_export_reparses_ss_nodes():
    nodes = parse_body((CORPUS_DIR / "b64-mixed-http-socks.txt").read_bytes()).nodes
    ss_nodes = [node for node in nodes if node.protocol == "ss"]
    assert ss_nodes
    text, skipped = render_sip008(nodes, {"upload": 10, "download": 20, "total": 100})
    assert sum(skipped.values()) == len(nodes) - len(ss_nodes)
    parsed = parse_body(text)
    assert parsed.format == "sip008"
    assert [node.fingerprint for node in parsed.nodes] == [node.fingerprint for node in ss_nodes]


def test_sip008_plugin_options_round_trip():
    node = Node(
        "ss",
        "127.0.0.9",
        8388,
        "obfs",
        password="secret",
        method="aes-256-gcm",
        extra={"plugin": "obfs-local", "plugin_opts": {"obfs": "http", "obfs-host": "a.example"}},
    )
    text, _ = render_sip008([node])
    assert '"plugin_opts": "obfs=http;obfs-host=a.example"' in text
    assert parse_body(text).nodes[0].fingerprint == node.fingerprint
