"""Format detection and body parsing on hand-made bodies, the samples and the whole corpus."""

from __future__ import annotations

import base64

import pytest

from merger.core.decode import parse_body
from merger.core.errors import DecodeError
from tests.conftest import SAMPLES_DIR, corpus_files

TROJAN = "trojan://pass@127.1.2.3:443?sni=a.example.com#one"
VLESS = "vless://5f1a3c2e-9b7d-4e8a-a1c3-2d4e6f8a0b1c@127.1.2.4:443?security=tls&type=ws&path=%2F#two"


def test_plain_list_with_crlf_bom_comments():
    body = ("\ufeff# comment\r\n\r\n" + TROJAN + "\r\n// other comment\r\n" + VLESS + "\r\n").encode()
    parsed = parse_body(body)
    assert parsed.format == "links"
    assert parsed.entries == 2
    assert [node.protocol for node in parsed.nodes] == ["trojan", "vless"]


def test_base64_body_standard_padded_wrapped():
    encoded = base64.b64encode((TROJAN + "\n" + VLESS).encode()).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    parsed = parse_body(wrapped)
    assert parsed.format == "base64"
    assert len(parsed.nodes) == 2


def test_base64_body_urlsafe_unpadded():
    encoded = base64.urlsafe_b64encode((VLESS + "\n" + TROJAN + "\n").encode()).decode().rstrip("=")
    parsed = parse_body(encoded)
    assert parsed.format == "base64"
    assert {node.host for node in parsed.nodes} == {"127.1.2.3", "127.1.2.4"}


def test_nested_base64_body():
    once = base64.b64encode(TROJAN.encode()).decode()
    twice = base64.b64encode(once.encode()).decode()
    parsed = parse_body(twice)
    assert len(parsed.nodes) == 1
    assert parsed.nodes[0].password == "pass"


@pytest.mark.parametrize(
    "body, reason",
    [
        ("<!DOCTYPE html><html><body>Login</body></html>", "HTML page"),
        ("  <html><head></head></html>", "HTML page"),
        ("", "empty body"),
        ("   \n\n ", "empty body"),
        ("just some words, nothing else", "not a recognised subscription format"),
        ('{"hello": "world"}', "JSON document without proxies"),
    ],
)
def test_junk_bodies_raise_decode_error(body, reason):
    with pytest.raises(DecodeError, match=reason):
        parse_body(body)


def test_malformed_lines_are_counted_not_fatal():
    body = "\n".join([TROJAN, "vless://x@127.0.0.9:0?type=tcp#bad", "hello world", "foo://bar", VLESS])
    parsed = parse_body(body)
    assert len(parsed.nodes) == 2
    assert parsed.entries == 5
    assert parsed.invalid == 3
    assert [item.line for item in parsed.rejected] == [2, 3, 4]
    assert all(item.reason for item in parsed.rejected)


def test_clash_yaml_with_anchor_merge_key():
    parsed = parse_body((SAMPLES_DIR / "clash.yaml").read_bytes())
    assert parsed.format == "clash"
    by_name = {node.name: node for node in parsed.nodes}
    vmess = by_name["🇺🇸 US vmess ws"]
    # network and tls come from the merge key `<<: *ws-defaults`.
    assert vmess.network == "ws"
    assert vmess.security == "tls"
    assert vmess.path == "/vmess"
    assert parsed.invalid == 1
    assert "port" in parsed.rejected[0].reason


EXPECTED_SAMPLE_FORMATS = {
    "links.txt": "links",
    "base64.txt": "base64",
    "clash.yaml": "clash",
    "singbox.json": "singbox",
    "sip008.json": "sip008",
    "v2ray.json": "v2ray",
    "json-links.json": "json-links",
}


@pytest.mark.parametrize("file_name, expected", sorted(EXPECTED_SAMPLE_FORMATS.items()))
def test_sample_format_detected_by_content(file_name, expected):
    parsed = parse_body((SAMPLES_DIR / file_name).read_bytes())
    assert parsed.format == expected
    assert parsed.nodes
    assert all(node.host.startswith("127.") for node in parsed.nodes)


def test_singbox_sample_skips_selector_and_direct():
    parsed = parse_body((SAMPLES_DIR / "singbox.json").read_bytes())
    assert parsed.entries == 4
    assert sorted(node.protocol for node in parsed.nodes) == ["hysteria2", "ss", "tuic", "vless"]


def test_v2ray_sample_reads_outbounds():
    parsed = parse_body((SAMPLES_DIR / "v2ray.json").read_bytes())
    assert sorted(node.protocol for node in parsed.nodes) == ["trojan", "vmess"]
    vmess = next(node for node in parsed.nodes if node.protocol == "vmess")
    assert vmess.path == "/v2"
    assert vmess.sni == "v2.example.com"


def test_sip008_sample_with_plugin():
    parsed = parse_body((SAMPLES_DIR / "sip008.json").read_bytes())
    plugin_node = next(node for node in parsed.nodes if node.extra.get("plugin"))
    assert plugin_node.extra["plugin"] == "obfs-local"
    assert plugin_node.extra["plugin_opts"] == {"obfs": "tls", "obfs-host": "sip.example.com"}


# Format of each corpus file by its name prefix, as listed in the corpus README.
CORPUS_FORMATS = {
    "plain": "links",
    "b64": "base64",
    "clash": "clash",
    "singbox": "singbox",
    "json": "json-links",
}


@pytest.mark.parametrize("path", corpus_files(), ids=lambda path: path.name)
def test_corpus_file_parses_every_entry_or_rejects(path):
    parsed = parse_body(path.read_bytes())
    assert parsed.format == CORPUS_FORMATS[path.name.split("-")[0]]
    assert len(parsed.nodes) + parsed.invalid == parsed.entries
    assert len(parsed.nodes) > 0
    for rejected in parsed.rejected:
        assert rejected.reason
        assert rejected.line >= 1


def test_clash_alias_bomb_rejected_without_expanding():
    # Each level refers to the previous one nine times; expanding the last level would build
    # 9**8 (about 43 million) strings.
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        levels.append(f"a{level}: &a{level} [{refs}]")
    body = (
        "\n".join(levels)
        + "\nproxies:\n  - {name: bomb, type: trojan, server: 127.1.1.1, port: 443, password: *a8}\n"
    )
    parsed = parse_body(body)
    assert parsed.nodes == []
    assert parsed.invalid == 1
    assert "expected a single value" in parsed.rejected[0].reason


@pytest.mark.parametrize("port", ["true", "443.5", "'٤٤٣'", "'４４３'"])
def test_clash_port_not_a_whole_ascii_number_rejected(port):
    body = f"proxies:\n  - {{name: p, type: trojan, server: 127.1.1.1, port: {port}, password: x}}\n"
    parsed = parse_body(body)
    assert parsed.nodes == []
    assert "invalid port" in parsed.rejected[0].reason


def test_nul_character_in_link_rejected():
    parsed = parse_body("trojan://p%00w@127.0.0.1:443#x\ntrojan://p@127.0.0.1:443#ok\n")
    assert [node.name for node in parsed.nodes] == ["ok"]
    assert parsed.rejected[0].reason == "contains a NUL character"
    assert parsed.rejected[0].line == 1


def test_invalid_reasons_grouped_with_values_masked():
    parsed = parse_body("vless://x@127.0.0.9:0?type=tcp#a\nvless://x@127.0.0.9:70000?type=tcp#b\n")
    assert parsed.reasons == {"invalid port N: must be N-N": 2}
