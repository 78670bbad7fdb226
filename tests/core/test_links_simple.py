"""WireGuard, SOCKS, HTTP(S) and AnyTLS share links."""

from __future__ import annotations

import base64
import collections

import pytest

from merger.core.errors import LinkError
from merger.core.links import PARSERS as ALL_PARSERS
from merger.core.links import parse_link, to_link
from merger.core.links.simple import PARSERS, SERIALIZERS, parse_reserved, split_credentials
from merger.core.node import Node
from tests.conftest import CORPUS_DIR

FIRST_WG_LINE = (
    "wireguard://mwGHS5jmTZMZJ6C%2BQTW6xzPRz6unDuKREcRrNNHvOqM%3D@127.134.168.56:1002"
    "?publickey=s2VJL4%2FrEN%2F0gpUvd90qS5yGr6IVpVCOgccSg777tno%3D&reserved=72%2C160%2C156"
    "&address=172.16.0.2%2F32&mtu=1380#20014"
)


def _round_trip(node: Node) -> Node:
    return parse_link(to_link(node))


def test_registry_has_every_scheme() -> None:
    for scheme in ("wireguard", "wg", "socks", "socks5", "socks4", "socks4a", "http", "https", "anytls"):
        assert scheme in PARSERS
        assert ALL_PARSERS[scheme] is PARSERS[scheme]
    assert set(SERIALIZERS) == {"wireguard", "socks", "http", "anytls"}


# --- WireGuard -------------------------------------------------------------------------------


def test_wireguard_corpus_line_fields() -> None:
    node = parse_link(FIRST_WG_LINE)
    assert node.protocol == "wireguard"
    assert (node.host, node.port, node.name) == ("127.134.168.56", 1002, "20014")
    assert node.extra["private_key"] == "mwGHS5jmTZMZJ6C+QTW6xzPRz6unDuKREcRrNNHvOqM="
    assert node.extra["public_key"] == "s2VJL4/rEN/0gpUvd90qS5yGr6IVpVCOgccSg777tno="
    assert node.extra["reserved"] == [72, 160, 156]
    assert node.extra["local_address"] == ["172.16.0.2/32"]
    assert node.extra["mtu"] == 1380


def test_wireguard_corpus_all_parse_and_round_trip() -> None:
    lines = [line.strip() for line in (CORPUS_DIR / "plain-wireguard.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    assert len(lines) == 27
    fingerprints = set()
    for line in lines:
        node = parse_link(line)
        assert len(base64.b64decode(node.extra["private_key"])) == 32
        assert len(base64.b64decode(node.extra["public_key"])) == 32
        assert _round_trip(node) == node
        fingerprints.add(node.fingerprint)
    # README: 19 of the 27 entries are duplicates by (protocol, host, port, credential).
    assert len(fingerprints) == 27 - 19


def test_wireguard_alternative_spellings() -> None:
    node = parse_link(
        "wg://PRIV%2Bkey%3D@[2001:db8::1]:51820?public_key=PUB%2Fkey%3D&psk=PSK%3D"
        "&reserved=U4An&ip=10.0.0.2,fd00::2&mtu=1280#wg%20one"
    )
    assert node.protocol == "wireguard"
    assert node.host == "2001:db8::1"
    assert node.extra["private_key"] == "PRIV+key="
    assert node.extra["public_key"] == "PUB/key="
    assert node.extra["pre_shared_key"] == "PSK="
    # "U4An" is base64 of the bytes 0x53 0x80 0x27.
    assert node.extra["reserved"] == [0x53, 0x80, 0x27]
    assert node.extra["local_address"] == ["10.0.0.2/32", "fd00::2/128"]
    assert node.name == "wg one"
    assert _round_trip(node) == node


def test_wireguard_presharedkey_and_address_list() -> None:
    node = parse_link(
        "wireguard://a%3D@127.0.0.5:443?publicKey=b%3D&presharedkey=c%3D&address=172.16.0.2/32,2606:4700::1/128"
    )
    assert node.extra["pre_shared_key"] == "c="
    assert node.extra["local_address"] == ["172.16.0.2/32", "2606:4700::1/128"]


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        ("wireguard://@127.0.0.5:443?publickey=b", "missing wireguard private key"),
        ("wireguard://a@127.0.0.5:443", "missing wireguard peer public key"),
        ("wireguard://a@127.0.0.5:443?publickey=b&reserved=1,2", "invalid wireguard reserved"),
        ("wireguard://a@127.0.0.5:443?publickey=b&reserved=1,2,300", "invalid wireguard reserved"),
        ("wireguard://a@127.0.0.5:443?publickey=b&address=10.0.0.300", "invalid wireguard address"),
        ("wireguard://a@127.0.0.5:70000?publickey=b", "invalid port 70000"),
        ("wireguard://a@127.0.0.5:443?publickey=b&mtu=big", "invalid wireguard mtu"),
    ],
)
def test_wireguard_rejects(link: str, reason: str) -> None:
    with pytest.raises(LinkError, match=reason):
        parse_link(link)


def test_reserved_forms_agree() -> None:
    assert parse_reserved("1,2,3") == parse_reserved([1, 2, 3]) == parse_reserved("AQID") == [1, 2, 3]


# --- SOCKS and HTTP --------------------------------------------------------------------------


def test_socks_plain_and_base64_userinfo_agree() -> None:
    plain = parse_link("socks5://us%40er:p%3Ass@127.0.0.7:1080#s")
    encoded_userinfo = base64.b64encode(b"us@er:p:ss").decode()
    v2rayn = parse_link(f"socks://{encoded_userinfo}@127.0.0.7:1080#s")
    assert (plain.username, plain.password) == ("us@er", "p:ss")
    assert v2rayn == plain
    assert plain.extra == {"version": "5"}


def test_socks_versions() -> None:
    assert parse_link("socks4://127.0.0.7:1080").extra == {"version": "4"}
    node = parse_link("socks4a://127.0.0.7:1080")
    assert node.extra == {"version": "4a"}
    assert to_link(node).startswith("socks4a://")
    assert _round_trip(node) == node


def test_split_credentials_bare_username() -> None:
    # "admin" is not base64 of text with a colon, so it stays a username.
    assert split_credentials("admin") == ("admin", "")
    assert split_credentials(base64.b64encode(b":onlypass").decode()) == ("", "onlypass")


def test_https_is_http_with_tls() -> None:
    node = parse_link("https://u:p@127.0.0.8:8443?sni=proxy.example.com&allowInsecure=1#h")
    assert (node.protocol, node.security, node.sni, node.insecure) == (
        "http",
        "tls",
        "proxy.example.com",
        True,
    )
    assert to_link(node).startswith("https://")
    assert _round_trip(node) == node
    plain = parse_link("http://127.0.0.8:8080")
    assert (plain.security, plain.sni) == ("none", "")


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        ("https://example.com/sub/list.txt", "web address"),
        ("http://127.0.0.8#no-port", "missing port"),
        ("socks5://127.0.0.8:0", "invalid port 0"),
        ("http://bad host:80", "invalid host"),
    ],
)
def test_proxy_links_reject(link: str, reason: str) -> None:
    with pytest.raises(LinkError, match=reason):
        parse_link(link)


def _mixed_http_socks_lines() -> list[str]:
    body = base64.b64decode((CORPUS_DIR / "b64-mixed-http-socks.txt").read_text()).decode("utf-8")
    return [line for line in body.splitlines() if line.split("://")[0] in ("http", "https", "socks")]


def test_mixed_http_socks_corpus() -> None:
    lines = _mixed_http_socks_lines()
    schemes = collections.Counter(line.split("://")[0] for line in lines)
    # Counts from the corpus README.
    assert schemes == {"https": 277, "http": 44, "socks": 12}
    for line in lines:
        node = parse_link(line)
        assert node.protocol in ("http", "socks")
        assert (node.security == "tls") == line.startswith("https://")
        assert node.name and "%" not in node.name
        assert _round_trip(node) == node


def test_mixed_corpus_base64_credentials() -> None:
    nodes = {parse_link(line).host: parse_link(line) for line in _mixed_http_socks_lines()}
    # socks://aGF3cWE6aGF3cWE=@... is base64 of "hawqa:hawqa".
    assert (nodes["127.87.159.4"].username, nodes["127.87.159.4"].password) == ("hawqa", "hawqa")
    # http://OldpcWo=@... is base64 of ":Wiqj": an empty username.
    assert (nodes["127.247.45.72"].username, nodes["127.247.45.72"].password) == ("", "Wiqj")


# --- AnyTLS ----------------------------------------------------------------------------------


def test_anytls_fields_and_round_trip() -> None:
    node = parse_link(
        "anytls://pa%40ss@127.0.0.9:443?sni=a.example.com&insecure=1&fp=chrome&alpn=h2,http/1.1#🇩🇪 a"
    )
    assert (node.protocol, node.password, node.security) == ("anytls", "pa@ss", "tls")
    assert (node.sni, node.insecure, node.client_fingerprint) == ("a.example.com", True, "chrome")
    assert node.alpn == ("h2", "http/1.1")
    assert node.name == "🇩🇪 a"
    assert _round_trip(node) == node


def test_anytls_requires_password() -> None:
    with pytest.raises(LinkError, match="missing anytls password"):
        parse_link("anytls://127.0.0.9:443")


@pytest.mark.parametrize(
    "node",
    [
        Node("socks", "127.0.0.10", 1080, name='a "q" 🇺🇸 #1', username="u:x", extra={"version": "5"}),
        Node(
            "socks",
            "::1",
            1080,
            password="p@ss%",
            security="tls",
            sni="s.example.com",
            extra={"version": "5"},
        ),
        Node("http", "127.0.0.11", 3128, name="plain", username="ユーザー", password="パス"),
        Node(
            "http",
            "127.0.0.11",
            443,
            security="tls",
            alpn=("h2",),
            client_fingerprint="chrome",
            insecure=True,
        ),
        Node("anytls", "127.0.0.12", 8443, password="a b+c/=", security="tls"),
        Node(
            "wireguard",
            "127.0.0.13",
            51820,
            name="wg",
            extra={
                "private_key": "k+/=",
                "public_key": "p+/=",
                "pre_shared_key": "s=",
                "reserved": [0, 255, 7],
                "local_address": ["10.0.0.2/32", "fd00::2/128"],
                "mtu": 1420,
            },
        ),
    ],
)
def test_built_nodes_round_trip_exactly(node: Node) -> None:
    assert _round_trip(node) == node
