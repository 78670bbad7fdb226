"""ss:// and ssr:// share links: SIP002 examples, real-world variants, rejections and the corpus."""

from __future__ import annotations

import base64
import collections
import json
import random

import pytest

from merger.core.errors import LinkError
from merger.core.links import parse_link, to_link
from merger.core.links.shadowsocks import (
    PARSERS,
    SERIALIZERS,
    SS_CIPHERS,
    SSR_CIPHERS,
    SSR_OBFS,
    SSR_PROTOCOLS,
    format_plugin,
    normalize_ss_cipher,
    parse_plugin,
)
from merger.core.node import Node
from tests.conftest import CORPUS_DIR

KEY_256 = "YctPZ6U7xPPcU+gp3u+0tx/tRizJN9K8y+uKlW2qjlI="  # 32 bytes, from the SIP002 examples
KEY_128 = base64.b64encode(bytes(range(16))).decode()


def b64(text: str, urlsafe: bool = False, padded: bool = True) -> str:
    raw = text.encode()
    encoded = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
    return encoded if padded else encoded.rstrip("=")


def round_trip(node: Node) -> Node:
    return parse_link(to_link(node))


# --- SIP002 examples ---------------------------------------------------------------------------


def test_ss_sip002_base64_userinfo():
    node = parse_link("ss://YWVzLTEyOC1nY206dGVzdA@192.168.100.1:8888#Example1")
    assert node.protocol == "ss"
    assert node.method == "aes-128-gcm"
    assert node.password == "test"
    assert node.host == "192.168.100.1"
    assert node.port == 8888
    assert node.name == "Example1"
    assert node.extra == {}
    assert node.security == "none"


def test_ss_sip002_obfs_plugin_encoded():
    node = parse_link("ss://cmM0LW1kNTpwYXNzd2Q@192.168.100.1:8888/?plugin=obfs-local%3Bobfs%3Dhttp#Example2")
    assert node.method == "rc4-md5"
    assert node.password == "passwd"
    assert node.extra == {"plugin": "obfs-local", "plugin_opts": {"obfs": "http"}}
    assert node.name == "Example2"


def test_ss_sip002_2022_plain_userinfo():
    link = "ss://2022-blake3-aes-256-gcm:YctPZ6U7xPPcU%2Bgp3u%2B0tx%2FtRizJN9K8y%2BuKlW2qjlI%3D@192.168.100.1:8888#Example3"
    node = parse_link(link)
    assert node.method == "2022-blake3-aes-256-gcm"
    assert node.password == KEY_256


def test_ss_sip002_v2ray_plugin_server_flag_dropped():
    link = (
        "ss://2022-blake3-aes-256-gcm:YctPZ6U7xPPcU%2Bgp3u%2B0tx%2FtRizJN9K8y%2BuKlW2qjlI%3D"
        "@192.168.100.1:8888/?plugin=v2ray-plugin%3Bserver#Example3"
    )
    node = parse_link(link)
    assert node.extra["plugin"] == "v2ray-plugin"
    # `server` only matters to the server side of v2ray-plugin; mode defaults to websocket.
    assert node.extra["plugin_opts"] == {"mode": "websocket"}


def test_ss_legacy_whole_base64():
    payload = b64("bf-cfb:test@192.168.100.1:8888")
    node = parse_link(f"ss://{payload}#example-server")
    assert (node.method, node.password, node.host, node.port) == ("bf-cfb", "test", "192.168.100.1", 8888)
    assert node.name == "example-server"


def test_ss_legacy_password_with_at_sign():
    node = parse_link("ss://" + b64("aes-256-cfb:p@ss@127.0.5.6:8388", urlsafe=True, padded=False))
    assert node.password == "p@ss"
    assert node.host == "127.0.5.6"


# --- userinfo encodings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("urlsafe", "padded"),
    [(False, True), (False, False), (True, True), (True, False)],
    ids=["standard-padded", "standard-unpadded", "urlsafe-padded", "urlsafe-unpadded"],
)
def test_ss_userinfo_base64_variants(urlsafe, padded):
    # This password encodes to base64 with both '+' and '/' and needs padding.
    userinfo = b64("aes-256-gcm:ab?>~x?", urlsafe=urlsafe, padded=padded)
    node = parse_link(f"ss://{userinfo}@127.0.2.3:8388#n")
    assert node.method == "aes-256-gcm"
    assert node.password == "ab?>~x?"
    assert node.host == "127.0.2.3"


def test_ss_userinfo_percent_encoded_base64():
    userinfo = b64("chacha20-ietf-poly1305:pw-1").replace("=", "%3D")
    node = parse_link(f"ss://{userinfo}@127.0.2.3:8388")
    assert node.password == "pw-1"


def test_ss_2022_multi_user_key():
    password = f"{KEY_256}:{KEY_256}"
    plain = parse_link(f"ss://2022-blake3-aes-256-gcm:{password}@127.0.2.3:8388")
    encoded = parse_link(f"ss://{b64('2022-blake3-aes-256-gcm:' + password)}@127.0.2.3:8388")
    assert plain.password == password
    assert encoded.password == password


def test_ss_cipher_upper_case_and_aliases():
    assert parse_link(f"ss://{b64('AES-128-GCM:x')}@127.0.2.3:1").method == "aes-128-gcm"
    assert normalize_ss_cipher("chacha20-poly1305") == "chacha20-ietf-poly1305"
    assert normalize_ss_cipher("AEAD_AES_256_GCM") == "aes-256-gcm"
    assert normalize_ss_cipher("plain") == "none"
    assert normalize_ss_cipher("aes-128-cfb128") == "aes-128-cfb"


def test_ss_none_cipher_allows_empty_password():
    node = parse_link(f"ss://{b64('none:')}@127.0.2.3:8388")
    assert node.method == "none"
    assert node.password == ""


def test_ss_ipv6_host():
    node = parse_link(f"ss://{b64('aes-128-gcm:pw')}@[2001:db8::1]:8388#v6")
    assert node.host == "2001:db8::1"
    assert node.port == 8388


def test_ss_emoji_name_raw_and_encoded():
    raw = parse_link(f"ss://{b64('aes-128-gcm:pw')}@127.0.2.3:8388# 🇩🇪 Frankfurt ⚡")
    encoded = parse_link(f"ss://{b64('aes-128-gcm:pw')}@127.0.2.3:8388#%F0%9F%87%A9%F0%9F%87%AA%20Frankfurt")
    assert raw.name == "🇩🇪 Frankfurt ⚡"
    assert encoded.name == "🇩🇪 Frankfurt"


def test_ss_harmless_query_params_accepted():
    node = parse_link(
        f"ss://{b64('aes-128-gcm:pw')}@127.0.2.3:8388?type=tcp&amp;security=none&headerType=none"
    )
    assert node.network == "tcp"
    assert node.security == "none"


# --- plugins -----------------------------------------------------------------------------------


def test_ss_obfs_plugin_not_encoded():
    node = parse_link(
        f"ss://{b64('aes-128-gcm:pw')}@127.0.2.3:8388?plugin=obfs-local;obfs=tls;obfs-host=n1.example.com#x"
    )
    assert node.extra == {
        "plugin": "obfs-local",
        "plugin_opts": {"obfs": "tls", "obfs-host": "n1.example.com"},
    }


def test_ss_simple_obfs_alias():
    node = parse_link(f"ss://{b64('aes-128-gcm:pw')}@127.0.2.3:8388/?plugin=simple-obfs%3Bobfs%3Dhttp")
    assert node.extra["plugin"] == "obfs-local"


def test_ss_v2ray_plugin_options():
    spec = "v2ray-plugin;tls;host=n2.example.com;path=/ws;mux=4;loglevel=none"
    plugin, options = parse_plugin(spec)
    assert plugin == "v2ray-plugin"
    assert options == {
        "mode": "websocket",
        "host": "n2.example.com",
        "path": "/ws",
        "mux": "4",
        "tls": "true",
    }


def test_ss_v2ray_plugin_without_tls():
    assert parse_plugin("v2ray-plugin;mode=websocket;host=a.example.com") == (
        "v2ray-plugin",
        {"mode": "websocket", "host": "a.example.com"},
    )


def test_ss_unknown_plugin_options_kept():
    assert parse_plugin("kcptun;key=abc;crypt=aes;nocomp") == (
        "kcptun",
        {"key": "abc", "crypt": "aes", "nocomp": ""},
    )


def test_ss_plugin_escaped_separators():
    # SIP002 escapes ':', ';', '=' and backslashes inside plugin values with a backslash.
    plugin, options = parse_plugin(r"kcptun;key=a\;b\=c\:d\\e;mode=fast")
    assert plugin == "kcptun"
    assert options == {"key": "a;b=c:d\\e", "mode": "fast"}
    assert format_plugin(plugin, options) == r"kcptun;key=a\;b\=c\:d\\e;mode=fast"
    assert parse_plugin(format_plugin(plugin, options)) == (plugin, options)


# --- rejections --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        (
            "ss://5f1a3c2e-9b7d-4e8a-a1c3-2d4e6f8a0b1c@127.0.2.3:443?type=ws&security=tls&path=%2F#v",
            "ss userinfo is not method:password (looks like a vless link)",
        ),
        (
            "ss://fe%611410f-ff3b-449%61-%61d0b-481ec9354d67@127.0.2.3:80?path=%2F&amp;type=ws",
            "ss userinfo is not method:password (looks like a vless link)",
        ),
        (
            "ss://---SSHQUS---@127.0.2.3:443?type=tcp&security=reality&pbk=abc",
            "ss userinfo is not method:password (looks like a vless link)",
        ),
        (
            "ss://" + b64('{"v": "2", "add": "127.0.2.3", "port": "443", "id": "x"}'),
            "ss payload is JSON, not method:password@host:port (looks like a vmess link)",
        ),
        (
            'ss://{"add":"127.0.2.3","port":"443","id":"x"}',
            "ss payload is JSON, not method:password (looks like a vmess link)",
        ),
        (f"ss://{b64('foo-cipher:pw')}@127.0.2.3:8388", "unknown ss cipher 'foo-cipher'"),
        (f"ss://{b64('aes-128-gcm:pw')}@127.0.2.3:70000", "invalid port 70000: must be 1-65535"),
        (f"ss://{b64('aes-128-gcm:')}@127.0.2.3:8388", "missing ss password for cipher 'aes-128-gcm'"),
        (f"ss://{b64('aes-128-gcm:pw')}@:8388", "missing host"),
        (
            f"ss://{b64('aes-128-gcm:pw')}@127.0.2.3:443?type=ws&path=%2F",
            "ss over transport 'ws' is not supported: use a plugin",
        ),
        (
            f"ss://2022-blake3-aes-128-gcm:{KEY_256}@127.0.2.3:8388",
            "invalid 2022-blake3-aes-128-gcm key: 32 bytes, expected 16",
        ),
        ("ss://127.0.2.3:8388#no-userinfo", "invalid ss link: no userinfo@ and the body is not base64"),
        ("ss://" + b64("aes-128-gcm:pw"), "invalid ss payload: no '@' between method:password and host:port"),
    ],
    ids=[
        "vless-uuid",
        "vless-uuid-percent-letters",
        "vless-free-id",
        "vmess-json-base64",
        "raw-json",
        "unknown-cipher",
        "bad-port",
        "missing-password",
        "missing-host",
        "ws-transport",
        "2022-key-size",
        "legacy-not-base64",
        "legacy-truncated",
    ],
)
def test_ss_rejections(link, reason):
    with pytest.raises(LinkError) as error:
        parse_link(link)
    assert str(error.value) == reason


def test_ss_2022_key_128_accepted():
    node = parse_link(f"ss://2022-blake3-aes-128-gcm:{KEY_128}@127.0.2.3:8388")
    assert node.password == KEY_128


# --- cipher sets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cipher",
    [
        # shadowsocks-libev 3.3 stream and AEAD ciphers
        "bf-cfb",
        "salsa20",
        "camellia-256-cfb",
        "aes-192-ctr",
        "chacha20-ietf",
        "xchacha20-ietf-poly1305",
        # shadowsocks-rust (shadowsocks-crypto)
        "aes-128-cfb1",
        "aes-256-ofb",
        "camellia-128-ctr",
        "sm4-gcm",
        "aes-256-gcm-siv",
        "2022-blake3-chacha8-poly1305",
        "table",
        # Xray-core spellings
        "aead_aes_128_gcm",
        "xchacha20-poly1305",
        "plain",
        "none",
        # mihomo (sing-shadowsocks2)
        "aegis-128l",
        "lea-256-gcm",
        "rabbit128-poly1305",
        "deoxys-ii-256-128",
        "2022-blake3-aes-128-ccm",
        "dummy",
    ],
)
def test_ss_cipher_set_covers_implementations(cipher):
    assert cipher in SS_CIPHERS


def test_ssr_sets_cover_common_values():
    assert {"aes-256-cfb", "chacha20-ietf", "rc4-md5", "none"} <= SSR_CIPHERS
    assert "aes-256-gcm" not in SSR_CIPHERS
    assert {"origin", "auth_aes128_md5", "auth_aes128_sha1", "auth_chain_a", "auth_sha1_v4"} <= SSR_PROTOCOLS
    assert {"plain", "http_simple", "http_post", "tls1.2_ticket_auth", "random_head"} <= SSR_OBFS


# --- serializer --------------------------------------------------------------------------------


def test_ss_serializer_base64_userinfo_urlsafe_unpadded():
    node = Node(protocol="ss", host="127.0.2.3", port=8388, method="aes-256-gcm", password="ab?>~x?")
    link = to_link(node)
    userinfo = link.removeprefix("ss://").partition("@")[0]
    assert "=" not in userinfo
    assert "+" not in userinfo
    assert "/" not in userinfo
    assert base64.urlsafe_b64decode(userinfo + "==").decode() == "aes-256-gcm:ab?>~x?"


def test_ss_serializer_2022_plain_userinfo():
    node = Node(
        protocol="ss", host="127.0.2.3", port=8388, method="2022-blake3-aes-256-gcm", password=KEY_256
    )
    link = to_link(node)
    assert (
        link
        == "ss://2022-blake3-aes-256-gcm:YctPZ6U7xPPcU%2Bgp3u%2B0tx%2FtRizJN9K8y%2BuKlW2qjlI%3D@127.0.2.3:8388"
    )


def test_ss_serializer_plugin_query():
    node = Node(
        protocol="ss",
        host="127.0.2.3",
        port=8388,
        method="aes-128-gcm",
        password="pw",
        extra={"plugin": "obfs-local", "plugin_opts": {"obfs": "http", "obfs-host": "n1.example.com"}},
    )
    assert to_link(node).endswith(
        "@127.0.2.3:8388/?plugin=obfs-local%3Bobfs%3Dhttp%3Bobfs-host%3Dn1.example.com"
    )


ROUND_TRIP_NODES = [
    Node(protocol="ss", host="127.0.2.3", port=8388, name="plain", method="aes-128-gcm", password="pw"),
    Node(
        protocol="ss",
        host="127.0.2.3",
        port=1,
        name="🇯🇵 東京 #1 100%",
        method="rc4-md5",
        password="p@ss:w/rd",
    ),
    Node(protocol="ss", host="2001:db8::1", port=443, method="chacha20-ietf-poly1305", password="v6"),
    Node(protocol="ss", host="127.0.2.3", port=8388, method="none", password=""),
    Node(protocol="ss", host="127.0.2.3", port=8388, method="2022-blake3-aes-256-gcm", password=KEY_256),
    Node(
        protocol="ss",
        host="127.0.2.3",
        port=8388,
        method="2022-blake3-aes-256-gcm",
        password=f"{KEY_256}:{KEY_256}",
        name="multi-user",
    ),
    Node(
        protocol="ss",
        host="n1.example.com",
        port=443,
        method="aes-256-gcm",
        password="pw",
        extra={"plugin": "obfs-local", "plugin_opts": {"obfs": "tls", "obfs-host": "n1.example.com"}},
    ),
    Node(
        protocol="ss",
        host="127.0.2.3",
        port=443,
        method="aes-256-gcm",
        password="pw",
        extra={
            "plugin": "v2ray-plugin",
            "plugin_opts": {"mode": "websocket", "host": "n2.example.com", "path": "/a;b=c", "tls": "true"},
        },
    ),
    Node(
        protocol="ss",
        host="127.0.2.3",
        port=443,
        method="aes-256-gcm",
        password="pw",
        extra={"plugin": "kcptun", "plugin_opts": {"key": "k", "nocomp": ""}},
    ),
    Node(
        protocol="ssr",
        host="127.0.2.3",
        port=8388,
        name="🇭🇰 ssr",
        method="aes-256-cfb",
        password="pässword",
        extra={
            "protocol": "auth_aes128_md5",
            "protocol_param": "1234:abcd",
            "obfs": "tls1.2_ticket_auth",
            "obfs_param": "n3.example.com",
        },
    ),
    Node(
        protocol="ssr",
        host="2001:db8::2",
        port=443,
        method="chacha20-ietf",
        password="pw",
        extra={"protocol": "origin", "obfs": "plain"},
    ),
]


@pytest.mark.parametrize("node", ROUND_TRIP_NODES, ids=lambda node: f"{node.protocol}-{node.method}")
def test_ss_ssr_round_trip(node):
    assert round_trip(node) == node


# --- ssr ---------------------------------------------------------------------------------------


def ssr_link(main: str, query: str, urlsafe: bool = True) -> str:
    return "ssr://" + b64(f"{main}/?{query}", urlsafe=urlsafe, padded=False)


def test_ssr_standard_form_fields():
    main = f"127.0.3.4:8443:auth_aes128_md5:aes-256-cfb:tls1.2_ticket_auth:{b64('secret', True, False)}"
    query = (
        f"obfsparam={b64('n4.example.com', True, False)}&protoparam={b64('64:key', True, False)}"
        f"&remarks={b64('🇺🇸 US 1', True, False)}&group={b64('grp', True, False)}"
    )
    node = parse_link(ssr_link(main, query))
    assert node.protocol == "ssr"
    assert (node.host, node.port) == ("127.0.3.4", 8443)
    assert node.method == "aes-256-cfb"
    assert node.password == "secret"
    assert node.name == "🇺🇸 US 1"
    assert node.extra == {
        "protocol": "auth_aes128_md5",
        "protocol_param": "64:key",
        "obfs": "tls1.2_ticket_auth",
        "obfs_param": "n4.example.com",
    }


def test_ssr_corpus_plain_form_with_fragment():
    link = (
        "ssr://127.89.30.28:11708:origin:aes-256-cfb:http_simple:Y1VqeE1ObFlFOUskJkA4NQ==/?obfsparam="
        "bjg0NTAzLmV4YW1wbGUuY29t&remarks=8J%2BHs%2FCfh7FOTC0xMjcuODkuMzAuMjgtNDk2OA%3D%3D&protoparam="
        "bjg0NTAzLmV4YW1wbGUuY29t# By UgemUja 🦅"
    )
    node = parse_link(link)
    assert (node.host, node.port) == ("127.89.30.28", 11708)
    assert node.password == "cUjxMNlYE9K$&@85"
    assert node.extra == {"protocol": "origin", "obfs": "http_simple", "obfs_param": "n84503.example.com"}
    assert node.name == "By UgemUja 🦅"


def test_ssr_plain_form_remarks_without_fragment():
    link = "ssr://127.0.3.4:80:origin:none:plain:/?remarks=" + b64("only remarks", True, False)
    node = parse_link(link)
    assert node.name == "only remarks"
    assert node.method == "none"


def test_ssr_ipv6_host_split_from_right():
    main = f"2001:db8::5:8388:origin:rc4-md5:plain:{b64('pw', True, False)}"
    node = parse_link(ssr_link(main, "remarks="))
    assert node.host == "2001:db8::5"
    assert node.port == 8388


@pytest.mark.parametrize(
    ("main", "reason"),
    [
        (f"127.0.3.4:80:foo_proto:aes-256-cfb:plain:{b64('pw')}", "unknown ssr protocol 'foo_proto'"),
        (f"127.0.3.4:80:origin:aes-256-gcm:plain:{b64('pw')}", "unknown ssr cipher 'aes-256-gcm'"),
        (f"127.0.3.4:80:origin:aes-256-cfb:bar_obfs:{b64('pw')}", "unknown ssr obfs 'bar_obfs'"),
        ("127.0.3.4:80:origin:aes-256-cfb:plain:!!!", "invalid ssr password: not base64"),
        (f"127.0.3.4:http:origin:aes-256-cfb:plain:{b64('pw')}", "invalid port 'http': not a number"),
        ("127.0.3.4:80:origin", "invalid ssr link: expected host:port:protocol:method:obfs:password"),
    ],
)
def test_ssr_rejections(main, reason):
    with pytest.raises(LinkError) as error:
        parse_link(ssr_link(main, "remarks="))
    assert str(error.value) == reason


def test_ssr_undecodable_payload_rejected():
    with pytest.raises(LinkError, match="ssr link: payload is not base64"):
        parse_link("ssr://!!!not-base64!!!")


def test_ssr_serializer_is_standard_base64():
    node = ROUND_TRIP_NODES[-2]
    body = to_link(node).removeprefix("ssr://")
    assert ":" not in body
    assert "=" not in body
    decoded = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    assert decoded.startswith("127.0.2.3:8388:auth_aes128_md5:aes-256-cfb:tls1.2_ticket_auth:")


def test_registries_cover_schemes():
    assert set(PARSERS) == {"ss", "ssr"}
    assert set(SERIALIZERS) == {"ss", "ssr"}


# --- corpus ------------------------------------------------------------------------------------


def corpus_links(file_name: str, schemes: tuple[str, ...]) -> list[str]:
    """Return the links of the given schemes in a corpus file, decoding base64 and JSON bodies."""
    text = (CORPUS_DIR / file_name).read_text(encoding="utf-8")
    if file_name.startswith("b64-"):
        compact = "".join(text.split())
        text = base64.b64decode(compact + "=" * (-len(compact) % 4)).decode("utf-8")
    if file_name.endswith(".json"):
        lines = list(_json_strings(json.loads(text)))
    else:
        lines = text.split("\n")
    return [
        line.strip() for line in lines if line.strip().lower().startswith(tuple(f"{s}://" for s in schemes))
    ]


def _json_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


def check_corpus_file(file_name: str, schemes: tuple[str, ...]) -> tuple[int, collections.Counter]:
    """Parse every link; each must raise LinkError or round-trip exactly. Returns the counts."""
    parsed = 0
    reasons: collections.Counter = collections.Counter()
    mismatches = []
    for link in corpus_links(file_name, schemes):
        try:
            node = parse_link(link)
        except LinkError as error:
            reasons[str(error)] += 1
            continue
        parsed += 1
        again = parse_link(to_link(node))
        if again != node:
            mismatches.append((link[:120], node, again))
    assert mismatches == []
    return parsed, reasons


# The upper bounds of rejections are the corpus's counts of malformed entries, leaving out traits
# that a parser must tolerate (html-entity separators).
@pytest.mark.parametrize(
    ("file_name", "entries", "max_rejected"),
    [
        # ss-userinfo-not-method 2393, vmess json 129, raw json 14, whitespace 5, b64 4, port 4,
        # empty host 2, truncated 1; one line may carry several of these.
        ("plain-ss-messy.txt", 9014, 2393 + 129 + 14 + 5 + 4 + 4 + 2 + 1),
        ("b64-ss.txt", 723, 10),
        # The file's 27 malformed entries span all protocols; b64-undecodable 6 and bad-port 2 can be ss.
        ("plain-mixed-remarks.txt", 378, 6 + 2),
        ("json-links.json", 1000, 990 + 2 + 1 + 1 + 1),
    ],
)
def test_ss_corpus_parses_or_rejects(file_name, entries, max_rejected):
    assert len(corpus_links(file_name, ("ss",))) == entries
    parsed, reasons = check_corpus_file(file_name, ("ss",))
    assert sum(reasons.values()) <= max_rejected
    assert parsed == entries - sum(reasons.values())


def test_ss_corpus_vless_bodies_named_as_such():
    _, reasons = check_corpus_file("json-links.json", ("ss",))
    # 990 ss:// entries of this file have userinfo that is not method:password, mostly vless bodies.
    assert reasons["ss userinfo is not method:password (looks like a vless link)"] >= 900


def test_ss_corpus_vmess_payloads_named_as_such():
    _, reasons = check_corpus_file("plain-ss-messy.txt", ("ss",))
    vmess = sum(count for reason, count in reasons.items() if "looks like a vmess link" in reason)
    # The file has 129 base64 vmess JSON payloads and 14 raw JSON ones behind ss://.
    assert vmess == 129 + 14


def test_ssr_corpus_plain_form_all_parse():
    parsed, reasons = check_corpus_file("plain-ssr-decoded.txt", ("ssr",))
    assert reasons == collections.Counter()
    assert parsed == 28


# --- randomised round trips --------------------------------------------------------------------

TRICKY = "aZ09 @:/?#%&=+;\\,[]{}\"'~é東🇩🇪\t"


def random_text(rng, min_length: int = 0) -> str:
    return "".join(rng.choice(TRICKY) for _ in range(rng.randint(min_length, 12)))


def test_ss_ssr_random_round_trips():
    rng = random.Random(20240601)
    ciphers = sorted({"aes-128-gcm", "chacha20-ietf-poly1305", "rc4-md5", "aes-256-cfb", "none"})
    failures = []
    for _ in range(500):
        method = rng.choice(ciphers)
        password = "" if method == "none" else random_text(rng, 1)
        plugin_opts = {"obfs": "http", "obfs-host": random_text(rng, 1).strip() or "h"}
        ss = Node(
            protocol="ss",
            host=rng.choice(["127.0.9.9", "2001:db8::9", "n9.example.com"]),
            port=rng.randint(1, 65535),
            name=random_text(rng).strip(),
            method=method,
            password=password,
            extra=rng.choice([{}, {"plugin": "obfs-local", "plugin_opts": plugin_opts}]),
        )
        ssr = Node(
            protocol="ssr",
            host=ss.host,
            port=ss.port,
            name=ss.name,
            method=rng.choice(["aes-256-cfb", "chacha20-ietf", "rc4-md5"]),
            password=random_text(rng, 1),
            extra={
                "protocol": "auth_aes128_md5",
                "protocol_param": random_text(rng, 1),
                "obfs": "http_simple",
                "obfs_param": random_text(rng, 1),
            },
        )
        for node in (ss, ssr):
            if round_trip(node) != node:
                failures.append(to_link(node))
    assert failures == []
