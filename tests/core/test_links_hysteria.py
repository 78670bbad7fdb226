"""hysteria://, hysteria2:// (hy2://) and tuic:// share links: documented examples and the corpus."""

from __future__ import annotations

import base64
import collections
import json
import random

import pytest

from merger.core.errors import LinkError
from merger.core.links import parse_link, to_link
from merger.core.links.hysteria import PARSERS, SERIALIZERS, normalize_port_spec
from merger.core.node import Node
from tests.conftest import CORPUS_DIR

UUID = "5f1a3c2e-9b7d-4e8a-a1c3-2d4e6f8a0b1c"


# --- hysteria v1 -------------------------------------------------------------------------------


def test_hysteria_v1_documented_example():
    # The example of the Hysteria v1 URI scheme page, with a loopback host.
    link = (
        "hysteria://127.0.4.5:443?protocol=udp&auth=123456&peer=sni.domain&insecure=1&upmbps=100"
        "&downmbps=100&alpn=hysteria&obfs=xplus&obfsParam=123456#remarks"
    )
    node = parse_link(link)
    assert node.protocol == "hysteria"
    assert (node.host, node.port) == ("127.0.4.5", 443)
    assert node.password == "123456"
    assert node.sni == "sni.domain"
    assert node.insecure is True
    assert node.alpn == ("hysteria",)
    assert node.security == "tls"
    assert node.name == "remarks"
    # protocol=udp is the default and is not stored.
    assert node.extra == {"obfs_password": "123456", "up_mbps": 100, "down_mbps": 100}


def test_hysteria_v1_faketcp_and_mport():
    node = parse_link(
        "hysteria://127.0.4.5:443?protocol=faketcp&auth=a&mport=6000-21000&upmbps=30&downmbps=70"
    )
    assert node.port == 443
    assert node.extra["ports"] == "6000-21000"
    assert node.extra["hysteria_protocol"] == "faketcp"


def test_hysteria_v1_corpus_line():
    link = (
        "hysteria://127.183.184.153:11512?insecure=1&peer=n48236.example.com&auth=n53838.example.com"
        "&upmbps=10&downmbps=50&alpn=h3#🔒 HYSTERIA-UDP 🇺🇸 US-127.183.184.153:11512"
    )
    node = parse_link(link)
    assert node.password == "n53838.example.com"
    assert node.sni == "n48236.example.com"
    assert node.alpn == ("h3",)
    assert node.extra == {"up_mbps": 10, "down_mbps": 50}
    assert node.name == "🔒 HYSTERIA-UDP 🇺🇸 US-127.183.184.153:11512"


# --- hysteria2 ---------------------------------------------------------------------------------


def test_hysteria2_documented_example():
    # The example of the Hysteria 2 URI scheme page, with a loopback host.
    link = (
        "hysteria2://letmein@127.0.4.6:123,5000-6000/?insecure=1&obfs=salamander&obfs-password=gawrgura"
        "&pinSHA256=deadbeef&sni=real.example.com"
    )
    node = parse_link(link)
    assert node.protocol == "hysteria2"
    assert node.host == "127.0.4.6"
    assert node.port == 123
    assert node.password == "letmein"
    assert node.sni == "real.example.com"
    assert node.insecure is True
    assert node.security == "tls"
    assert node.extra == {
        "ports": "123,5000-6000",
        "obfs": "salamander",
        "obfs_password": "gawrgura",
        "pin_sha256": "deadbeef",
    }


def test_hysteria2_port_defaults_to_443():
    assert parse_link("hysteria2://pw@127.0.4.6/?sni=a.example.com").port == 443


def test_hy2_scheme_alias():
    node = parse_link("hy2://pw@127.0.4.6:8443?sni=a.example.com#x")
    assert node.protocol == "hysteria2"
    assert to_link(node).startswith("hysteria2://")


def test_hysteria2_mport_parameter():
    node = parse_link("hy2://pw@127.0.4.6:443?mport=55000-56000&insecure=1")
    assert node.port == 443
    assert node.extra["ports"] == "55000-56000"


def test_hysteria2_userpass_auth_kept_whole():
    node = parse_link("hysteria2://alice:s3cret@127.0.4.6:443/")
    assert node.password == "alice:s3cret"
    assert node.username == ""


def test_hysteria2_percent_encoded_and_raw_at_sign_agree():
    encoded = parse_link("hysteria2://%40Sup%40Twykilanleg@127.0.4.6:11504?sni=a.example.com")
    raw = parse_link("hysteria2://@Sup@Twykilanleg@127.0.4.6:11504?sni=a.example.com")
    assert encoded.password == "@Sup@Twykilanleg"
    assert raw == encoded


def test_hysteria2_auth_with_raw_slash():
    node = parse_link("hysteria2://n1.example.com/abc/def@127.0.4.6:43115?insecure=1")
    assert node.password == "n1.example.com/abc/def"
    assert node.host == "127.0.4.6"


def test_hysteria2_html_entity_separators():
    node = parse_link("hysteria2://pw@127.0.4.6:443?insecure=1&amp;sni=a.example.com")
    assert node.sni == "a.example.com"
    assert node.insecure is True


def test_hysteria2_obfs_password_without_type_dropped():
    # Hysteria 2 ignores an obfs password when no obfs type is set.
    node = parse_link("hysteria2://pw@127.0.4.6:443?obfs-password=abc")
    assert node.extra == {}


def test_hysteria2_allow_insecure_spelling():
    assert parse_link("hysteria2://pw@127.0.4.6:443?allowInsecure=1").insecure is True
    assert parse_link("hysteria2://pw@127.0.4.6:443?insecure=0").insecure is False


def test_hysteria2_ipv6_host_with_hopping():
    node = parse_link("hysteria2://pw@[2001:db8::7]:443,1000-2000/")
    assert node.host == "2001:db8::7"
    assert node.port == 443
    assert node.extra["ports"] == "443,1000-2000"


# --- port hopping ------------------------------------------------------------------------------


def test_port_spec_sing_box_ranges_become_dashes():
    assert normalize_port_spec("1000:2000, 3000") == "1000-2000,3000"


@pytest.mark.parametrize("spec", ["70000-80000", "2000-1000", "abc", "1-2-3", "0"])
def test_port_spec_rejections(spec):
    with pytest.raises(LinkError, match="invalid port hopping range"):
        normalize_port_spec(spec)


# --- tuic --------------------------------------------------------------------------------------


def test_tuic_v5_fields():
    link = (
        f"tuic://{UUID.upper()}:p%40ss@127.0.4.7:8443?congestion_control=bbr&udp_relay_mode=native"
        "&alpn=h3&sni=t.example.com&allow_insecure=1#tuic node"
    )
    node = parse_link(link)
    assert node.protocol == "tuic"
    assert node.uuid == UUID
    assert node.password == "p@ss"
    assert (node.host, node.port) == ("127.0.4.7", 8443)
    assert node.alpn == ("h3",)
    assert node.sni == "t.example.com"
    assert node.insecure is True
    assert node.security == "tls"
    assert node.name == "tuic node"
    assert node.extra == {"version": 5, "congestion_control": "bbr", "udp_relay_mode": "native"}


# --- rejections --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        (
            "hysteria2://127.0.4.6:443?sni=a.example.com",
            "missing hysteria2 password: put it before '@' as hysteria2://password@host",
        ),
        ("hysteria2://pw@127.0.4.6:99999", "invalid port 99999: must be 1-65535"),
        (
            "hysteria2://pw@127.0.4.6:443,70000-80000/",
            "invalid port hopping range '443,70000-80000': ports must be 1-65535, low-high",
        ),
        ("hysteria2://pw@bad_host!:443", "invalid host 'bad_host!'"),
        ("hysteria://127.0.4.5:abc?auth=x", "invalid port 'abc': not a number"),
        (f"tuic://{UUID}@127.0.4.7:443", "missing tuic password: write tuic://uuid:password@host:port"),
        ("tuic://not-a-uuid:pw@127.0.4.7:443", "invalid tuic user id 'not-a-uuid': not a UUID"),
        (
            "tuic://sometoken@127.0.4.7:443",
            "tuic link has a token but no uuid:password (tuic v4 is not supported)",
        ),
        ("tuic://127.0.4.7:443", "missing tuic uuid:password before '@'"),
    ],
    ids=[
        "hy2-missing-auth",
        "hy2-bad-port",
        "hy2-bad-hopping",
        "hy2-bad-host",
        "hysteria-bad-port",
        "tuic-missing-password",
        "tuic-bad-uuid",
        "tuic-v4-token",
        "tuic-no-userinfo",
    ],
)
def test_hysteria_tuic_rejections(link, reason):
    with pytest.raises(LinkError) as error:
        parse_link(link)
    assert str(error.value) == reason


# --- round trips -------------------------------------------------------------------------------

ROUND_TRIP_NODES = [
    Node(protocol="hysteria", host="127.0.4.5", port=443, security="tls", name="v1 plain"),
    Node(
        protocol="hysteria",
        host="n1.example.com",
        port=443,
        password="auth str",
        security="tls",
        sni="n1.example.com",
        alpn=("h3",),
        insecure=True,
        name="🇺🇸 v1 full",
        extra={
            "hysteria_protocol": "wechat-video",
            "obfs_password": "ob&fs",
            "up_mbps": 30,
            "down_mbps": 200,
            "ports": "6000-21000",
        },
    ),
    Node(protocol="hysteria2", host="127.0.4.6", port=443, password="pw", security="tls"),
    Node(
        protocol="hysteria2",
        host="2001:db8::7",
        port=443,
        password="alice:s3cr@t/+%",
        security="tls",
        sni="h.example.com",
        insecure=True,
        name="hy2 #1 100%",
        extra={
            "ports": "443,1000-2000",
            "obfs": "salamander",
            "obfs_password": "R4g4RqEyEzmZoXaaiIJ09w==",
            "pin_sha256": "ab:cd",
        },
    ),
    # Hopping over ports that do not start with the main port needs the mport parameter.
    Node(
        protocol="hysteria2",
        host="127.0.4.6",
        port=443,
        password="pw",
        security="tls",
        extra={"ports": "22001-22999", "up_mbps": 50, "down_mbps": 100},
    ),
    Node(
        protocol="hysteria2",
        host="127.0.4.6",
        port=1000,
        password="pw",
        security="tls",
        alpn=("h3", "h2"),
        extra={"ports": "1000-2000,3000"},
    ),
    Node(
        protocol="tuic",
        host="127.0.4.7",
        port=8443,
        uuid=UUID,
        password="pw",
        security="tls",
        extra={"version": 5},
    ),
    Node(
        protocol="tuic",
        host="2001:db8::8",
        port=443,
        uuid=UUID,
        password="p@ss:w/rd",
        security="tls",
        sni="t.example.com",
        alpn=("h3",),
        insecure=True,
        name="🇯🇵 tuic",
        extra={"version": 5, "congestion_control": "bbr", "udp_relay_mode": "quic", "reduce_rtt": True},
    ),
]


@pytest.mark.parametrize(
    "node", ROUND_TRIP_NODES, ids=lambda node: f"{node.protocol}-{node.name or node.host}"
)
def test_hysteria_tuic_round_trip(node):
    assert parse_link(to_link(node)) == node


def test_hysteria2_serializer_puts_hopping_in_port_position():
    link = to_link(ROUND_TRIP_NODES[3])
    assert link.startswith("hysteria2://alice:s3cr%40t%2F%2B%25@[2001:db8::7]:443,1000-2000/?")


def test_registries_cover_schemes():
    assert set(PARSERS) == {"hysteria", "hysteria2", "hy2", "tuic"}
    assert set(SERIALIZERS) == {"hysteria", "hysteria2", "tuic"}


# --- corpus ------------------------------------------------------------------------------------

SCHEMES = ("hysteria", "hysteria2", "hy2", "tuic")


def corpus_links(file_name: str) -> list[str]:
    """Return the hysteria-family links of a corpus file, decoding base64 and JSON bodies."""
    text = (CORPUS_DIR / file_name).read_text(encoding="utf-8")
    if file_name.startswith("b64-"):
        compact = "".join(text.split())
        text = base64.b64decode(compact + "=" * (-len(compact) % 4)).decode("utf-8")
    lines = list(_json_strings(json.loads(text))) if file_name.endswith(".json") else text.split("\n")
    prefixes = tuple(f"{scheme}://" for scheme in SCHEMES)
    return [line.strip() for line in lines if line.strip().lower().startswith(prefixes)]


def _json_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


# These files have no malformed hysteria entries except two with html-entity separators, which
# the parsers must tolerate, so every entry has to parse.
@pytest.mark.parametrize(
    ("file_name", "entries"),
    [("plain-hysteria2.txt", 215), ("b64-hysteria.txt", 224 + 13), ("json-links.json", 165)],
)
def test_hysteria_corpus_all_parse_and_round_trip(file_name, entries):
    links = corpus_links(file_name)
    assert len(links) == entries
    rejected: collections.Counter = collections.Counter()
    mismatches = []
    for link in links:
        try:
            node = parse_link(link)
        except LinkError as error:
            rejected[str(error)] += 1
            continue
        if parse_link(to_link(node)) != node:
            mismatches.append(link[:120])
    assert rejected == collections.Counter()
    assert mismatches == []


def test_hysteria_corpus_port_hopping_found():
    nodes = [parse_link(link) for link in corpus_links("b64-hysteria.txt")]
    # b64-hysteria.txt has 25 entries with port hopping.
    assert sum(1 for node in nodes if node.extra.get("ports")) == 25


# --- randomised round trips --------------------------------------------------------------------

TRICKY = "aZ09 @:/?#%&=+;\\,[]{}\"'~é東🇩🇪\t"


def random_text(rng, min_length: int = 0) -> str:
    return "".join(rng.choice(TRICKY) for _ in range(rng.randint(min_length, 12)))


def test_hysteria_tuic_random_round_trips():
    rng = random.Random(20240602)
    failures = []
    for _ in range(500):
        host = rng.choice(["127.0.9.9", "2001:db8::9", "n9.example.com"])
        port = rng.randint(1, 60000)
        name = random_text(rng).strip()
        ports = rng.choice(["", f"{port},{port + 1}-{port + 5}", "61000-62000"])
        common = {"host": host, "port": port, "name": name, "security": "tls", "insecure": rng.random() < 0.5}
        v1_extra = {"ports": ports} if ports else {}
        if rng.random() < 0.5:
            v1_extra["obfs_password"] = random_text(rng, 1)
        nodes = [
            Node(
                protocol="hysteria", password=random_text(rng), sni=random_text(rng), extra=v1_extra, **common
            ),
            Node(
                protocol="hysteria2",
                password=random_text(rng, 1),
                sni=random_text(rng),
                extra={"obfs": "salamander", "obfs_password": random_text(rng, 1), **v1_extra},
                **common,
            ),
            Node(protocol="tuic", uuid=UUID, password=random_text(rng, 1), extra={"version": 5}, **common),
        ]
        for node in nodes:
            if parse_link(to_link(node)) != node:
                failures.append(to_link(node))
    assert failures == []
