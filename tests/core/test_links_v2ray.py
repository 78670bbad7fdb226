"""Tests of the vmess, vless and trojan share-link parsers and serializers.

Hand-written links use the field meanings of v2rayN's vmess JSON (v, ps, add, port, id, aid, scy,
net, type, host, path, tls, sni, alpn, fp) and the query keys of vless/vmess/trojan URIs (type,
security, sni, fp, pbk, sid, spx, flow, headerType, host, path, serviceName, mode, seed, extra).
Expected values come from those meanings, not from this parser's output.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from merger.core.errors import LinkError
from merger.core.links import parse_link, to_link
from merger.core.links.common import percent_decode
from merger.core.links.v2ray import PARSERS, SERIALIZERS
from merger.core.node import Node
from tests.conftest import CORPUS_DIR

UUID = "b831381d-6324-4d53-ad4f-8cda48b30811"
PBK = "SZg7NZ7Le5dHWHb-sA5SHiSXB6iYRfxd9pGog6yksUM"


def vmess_json_link(fields: dict, urlsafe: bool = False, padded: bool = True) -> str:
    """Encode a v2rayN JSON object as a vmess link, the way exporters do."""
    raw = json.dumps(fields, ensure_ascii=False).encode("utf-8")
    encoded = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode("ascii")
    return "vmess://" + (encoded if padded else encoded.rstrip("="))


def assert_round_trip(node: Node) -> None:
    link = to_link(node)
    assert parse_link(link) == node, link


# --- registration -------------------------------------------------------------------------------


def test_module_exports_parsers_and_serializers() -> None:
    assert set(PARSERS) == {"vmess", "vless", "trojan"}
    assert set(SERIALIZERS) == {"vmess", "vless", "trojan"}


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "%2Fws%3Fed%3D2048",
        "%2f%3d",
        "%F0%9F%9A%80 x",
        "%2F%F0%9F%9A%80",
        "100%",
        "%zz%2",
        "%00%7F",
        "a%2Bb+c",
    ],
)
def test_percent_decode_matches_unquote(text: str) -> None:
    assert percent_decode(text) == unquote(text)


# --- vless: hand-written links ------------------------------------------------------------------


def test_vless_ws_tls_fields() -> None:
    link = (
        f"vless://{UUID}@127.10.0.1:443?encryption=none&security=tls&sni=a.example.com&alpn=h2%2Chttp%2F1.1"
        "&fp=chrome&type=ws&host=b.example.com&path=%2Fws%3Fed%3D2048#VLESS%20WS"
    )
    node = parse_link(link)
    assert node.protocol == "vless"
    assert node.host == "127.10.0.1"
    assert node.port == 443
    assert node.uuid == UUID
    assert node.network == "ws"
    assert node.path == "/ws?ed=2048"
    assert node.host_header == "b.example.com"
    assert node.security == "tls"
    assert node.sni == "a.example.com"
    assert node.alpn == ("h2", "http/1.1")
    assert node.client_fingerprint == "chrome"
    assert node.name == "VLESS WS"


def test_vless_reality_vision_fields() -> None:
    link = (
        f"vless://{UUID}@127.10.0.2:443?security=reality&encryption=none&pbk={PBK}&headerType=none"
        "&fp=firefox&spx=%2F&type=tcp&flow=xtls-rprx-vision&sni=www.example.com&sid=6ba85179e30d4fc2#R"
    )
    node = parse_link(link)
    assert node.security == "reality"
    assert node.reality_public_key == PBK
    assert node.reality_short_id == "6ba85179e30d4fc2"
    assert node.reality_spider_x == "/"
    assert node.flow == "xtls-rprx-vision"
    assert node.network == "tcp"
    assert node.extra == {}
    assert node.sni == "www.example.com"


def test_vless_grpc_service_name_and_mode() -> None:
    link = (
        f"vless://{UUID}@127.10.0.3:443?type=grpc&serviceName=svc%2Fname&mode=multi&security=tls&path=/junk"
    )
    node = parse_link(link)
    assert node.network == "grpc"
    assert node.service_name == "svc/name"
    assert node.mode == "multi"
    assert node.path == ""


def test_vless_xhttp_extra_json() -> None:
    extra = {"headers": {"X-Test": "1"}, "xPaddingBytes": "100-1000"}
    encoded = json.dumps(extra).replace(" ", "")
    link = f"vless://{UUID}@127.10.0.4:443?type=splithttp&path=%2Fx&mode=packet-up&extra={encoded}"
    node = parse_link(link)
    assert node.network == "xhttp"
    assert node.mode == "packet-up"
    assert node.extra["extra_json"] == extra


def test_vless_xhttp_invalid_extra_is_ignored() -> None:
    node = parse_link(f"vless://{UUID}@127.10.0.4:443?type=xhttp&extra=%7Bnot-json")
    assert "extra_json" not in node.extra
    assert node.path == "/"


def test_vless_kcp_header_and_seed() -> None:
    node = parse_link(f"vless://{UUID}@127.10.0.5:8443?type=kcp&headerType=wechat-video&seed=s33d&path=/x")
    assert node.network == "kcp"
    assert node.extra == {"header_type": "wechat-video", "seed": "s33d"}
    assert node.path == ""


def test_vless_tcp_http_obfs_keeps_host_and_path() -> None:
    node = parse_link(f"vless://{UUID}@127.10.0.6:80?type=raw&headerType=http&host=h.example.com&path=%2Fp")
    assert node.network == "tcp"
    assert node.extra == {"header_type": "http"}
    assert node.host_header == "h.example.com"
    assert node.path == "/p"


def test_vless_plain_tcp_drops_junk_transport_params() -> None:
    node = parse_link(
        f"vless://{UUID}@127.10.0.7:80?type=tcp&host=h.example.com&path=%2Fp&serviceName=x&mode=gun"
    )
    assert node.host_header == ""
    assert node.path == ""
    assert node.service_name == ""
    assert node.mode == ""


def test_vless_security_none_drops_tls_fields() -> None:
    node = parse_link(
        f"vless://{UUID}@127.10.0.8:80?security=none&sni=x.example.com&fp=chrome&pbk={PBK}&type=ws"
    )
    assert node.security == "none"
    assert node.sni == ""
    assert node.client_fingerprint == ""
    assert node.reality_public_key == ""


def test_vless_tls_drops_reality_fields() -> None:
    node = parse_link(f"vless://{UUID}@127.10.0.8:443?security=tls&pbk={PBK}&sid=ab")
    assert node.reality_public_key == ""
    assert node.reality_short_id == ""


def test_vless_h2_from_http_type_and_default_path() -> None:
    node = parse_link(
        f"vless://{UUID}@127.10.0.9:443?type=http&security=tls&host=a.example.com,b.example.com"
    )
    assert node.network == "h2"
    assert node.path == "/"
    assert node.host_header == "a.example.com,b.example.com"


def test_vless_httpupgrade_path() -> None:
    node = parse_link(f"vless://{UUID}@127.10.0.9:80?type=httpupgrade&path=%2Fup&host=u.example.com")
    assert node.network == "httpupgrade"
    assert node.path == "/up"


def test_vless_percent_encoded_uuid_letters_decode() -> None:
    encoded = UUID.replace("d", "%64").replace("a", "%61")
    node = parse_link(f"vless://{encoded}@127.10.0.10:443?type=tcp")
    assert node.uuid == UUID


def test_vless_uuid_is_lower_cased() -> None:
    node = parse_link(f"vless://{UUID.upper()}@127.10.0.10:443")
    assert node.uuid == UUID


def test_vless_uuid_without_dashes_gets_them() -> None:
    node = parse_link(f"vless://{UUID.replace('-', '').upper()}@127.10.0.10:443")
    assert node.uuid == UUID


def test_vless_short_custom_id_is_kept() -> None:
    node = parse_link("vless://MyUser-01@127.10.0.10:443")
    assert node.uuid == "MyUser-01"


def test_vless_ipv6_host_in_brackets() -> None:
    node = parse_link(f"vless://{UUID}@[::1]:443?security=tls#v6")
    assert node.host == "::1"
    assert node.port == 443
    assert to_link(node).startswith(f"vless://{UUID}@[::1]:443?")


def test_vless_html_escaped_separators_and_slash_before_query() -> None:
    node = parse_link(
        f"vless://{UUID}@127.10.0.11:443/?type=ws&amp;security=tls&amp;path=%2Fa&amp;sni=s.example.com"
    )
    assert node.network == "ws"
    assert node.security == "tls"
    assert node.path == "/a"
    assert node.sni == "s.example.com"


def test_vless_mixed_case_query_keys() -> None:
    node = parse_link(
        f"vless://{UUID}@127.10.0.12:443?Type=ws&Security=tls&Host=h.example.com&SNI=s.example.com"
    )
    assert node.network == "ws"
    assert node.host_header == "h.example.com"
    assert node.sni == "s.example.com"


def test_vless_names_percent_encoded_raw_and_plus() -> None:
    encoded = parse_link(f"vless://{UUID}@127.10.0.13:443#%F0%9F%87%A9%F0%9F%87%AA%20DE%20%2B%201")
    raw = parse_link(f"vless://{UUID}@127.10.0.13:443# 🇩🇪 DE + 1 ")
    assert encoded.name == "🇩🇪 DE + 1"
    assert raw.name == "🇩🇪 DE + 1"


def test_vless_insecure_spellings() -> None:
    for flag in ("allowInsecure=1", "allowInsecure=true", "insecure=1", "allow_insecure=1"):
        node = parse_link(f"vless://{UUID}@127.10.0.14:443?security=tls&{flag}")
        assert node.insecure is True, flag
    node = parse_link(f"vless://{UUID}@127.10.0.14:443?security=tls&allowInsecure=0&insecure=0")
    assert node.insecure is False


# --- trojan: hand-written links -----------------------------------------------------------------


def test_trojan_defaults_to_tls_and_reads_peer() -> None:
    node = parse_link("trojan://p%40ss%2Fw0rd@127.20.0.1:443?peer=t.example.com&allowInsecure=1#Trojan%201")
    assert node.protocol == "trojan"
    assert node.password == "p@ss/w0rd"
    assert node.security == "tls"
    assert node.sni == "t.example.com"
    assert node.insecure is True
    assert node.name == "Trojan 1"


def test_trojan_sni_wins_over_peer() -> None:
    node = parse_link("trojan://pw@127.20.0.1:443?sni=a.example.com&peer=b.example.com")
    assert node.sni == "a.example.com"


def test_trojan_security_none_is_kept() -> None:
    node = parse_link("trojan://pw@127.20.0.2:80?security=none&type=ws&path=%2Ft&sni=x.example.com")
    assert node.security == "none"
    assert node.sni == ""
    assert node.path == "/t"


def test_trojan_go_ws_flags() -> None:
    node = parse_link("trojan://pw@127.20.0.3:443?sni=w.example.com&ws=1&wspath=%2Fwebsocket")
    assert node.network == "ws"
    assert node.path == "/websocket"


def test_trojan_password_with_raw_slash_and_question_mark() -> None:
    slash = parse_link("trojan://Qw/KeT9/gq+mi@127.20.0.4:51992?allowInsecure=1#x")
    question = parse_link("trojan://?X|$aW@127.20.0.5:443?type=ws&path=/p&security=tls#y")
    assert slash.password == "Qw/KeT9/gq+mi"
    assert slash.host == "127.20.0.4"
    assert slash.insecure is True
    assert question.password == "?X|$aW"
    assert question.path == "/p"


def test_trojan_password_plus_stays_plus() -> None:
    node = parse_link("trojan://a+b@127.20.0.6:443")
    assert node.password == "a+b"


# --- vmess: v2rayN JSON -------------------------------------------------------------------------


def test_vmess_json_ws_tls_fields() -> None:
    fields = {
        "v": "2", "ps": "VMess WS", "add": "127.30.0.1", "port": "443", "id": UUID.upper(), "aid": "0",
        "scy": "chacha20-poly1305", "net": "ws", "type": "none", "host": "h.example.com", "path": "/vm",
        "tls": "tls", "sni": "s.example.com", "alpn": "h2,http/1.1", "fp": "chrome",
    }  # fmt: skip
    node = parse_link(vmess_json_link(fields))
    assert node.protocol == "vmess"
    assert node.name == "VMess WS"
    assert node.host == "127.30.0.1"
    assert node.port == 443
    assert node.uuid == UUID
    assert node.alter_id == 0
    assert node.method == "chacha20-poly1305"
    assert node.network == "ws"
    assert node.host_header == "h.example.com"
    assert node.path == "/vm"
    assert node.security == "tls"
    assert node.sni == "s.example.com"
    assert node.alpn == ("h2", "http/1.1")
    assert node.client_fingerprint == "chrome"


def test_vmess_json_numbers_booleans_and_defaults() -> None:
    fields = {"add": "127.30.0.2", "port": 8080, "id": UUID, "aid": 64, "net": "tcp", "tls": True, "ps": "n"}
    node = parse_link(vmess_json_link(fields))
    assert node.port == 8080
    assert node.alter_id == 64
    assert node.security == "tls"
    assert node.method == "auto"


@pytest.mark.parametrize("value", ["", "none", False, None, "auto"])
def test_vmess_json_tls_values_meaning_none(value: object) -> None:
    node = parse_link(vmess_json_link({"add": "127.30.0.3", "port": 1, "id": UUID, "tls": value, "sni": "x"}))
    assert node.security == "none"
    assert node.sni == ""


def test_vmess_json_unpadded_urlsafe_base64() -> None:
    # "??>" encodes to "Pz8+" in standard base64, so the URL-safe alphabet shows up in the payload.
    fields = {"add": "127.30.0.4", "port": "443", "id": UUID, "ps": "??>~~~", "net": "ws", "path": "/?>"}
    link = vmess_json_link(fields, urlsafe=True, padded=False)
    assert "-" in link or "_" in link
    node = parse_link(link)
    assert node.name == "??>~~~"
    assert node.path == "/?>"


def test_vmess_json_unicode_escapes_and_multiline() -> None:
    escaped_flag = "\\ud83c\\udde9\\ud83c\\uddea"
    text = f'{{\n  "add": "127.30.0.5",\n  "port": 443,\n  "id": "{UUID}",\n  "ps": "{escaped_flag} DE"\n}}'
    node = parse_link("vmess://" + base64.b64encode(text.encode()).decode())
    assert node.name == "🇩🇪 DE"


def test_vmess_json_lone_surrogate_is_replaced() -> None:
    text = f'{{"add": "127.30.0.5", "port": 443, "id": "{UUID}", "ps": "bad \\ud83c name"}}'
    node = parse_link("vmess://" + base64.b64encode(text.encode()).decode())
    assert node.name == "bad \ufffd name"
    assert_round_trip(node)


def test_vmess_json_grpc_path_is_service_name() -> None:
    fields = {
        "add": "127.30.0.6",
        "port": 443,
        "id": UUID,
        "net": "grpc",
        "type": "multi",
        "path": "svc",
        "tls": "tls",
    }
    node = parse_link(vmess_json_link(fields))
    assert node.network == "grpc"
    assert node.service_name == "svc"
    assert node.mode == "multi"
    assert node.path == ""


def test_vmess_json_http_net_is_h2() -> None:
    fields = {
        "add": "127.30.0.7",
        "port": 443,
        "id": UUID,
        "net": "http",
        "host": "a.example.com",
        "tls": "tls",
    }
    node = parse_link(vmess_json_link(fields))
    assert node.network == "h2"
    assert node.path == "/"
    assert node.host_header == "a.example.com"


def test_vmess_json_tcp_http_header() -> None:
    fields = {"add": "127.30.0.8", "port": 80, "id": UUID, "net": "tcp", "type": "http"}
    fields.update({"host": "o.example.com", "path": "/obfs"})
    node = parse_link(vmess_json_link(fields))
    assert node.extra == {"header_type": "http"}
    assert node.host_header == "o.example.com"
    assert node.path == "/obfs"


def test_vmess_json_kcp_header_and_seed() -> None:
    fields = {"add": "127.30.0.9", "port": 80, "id": UUID, "net": "kcp", "type": "srtp", "path": "seed1"}
    node = parse_link(vmess_json_link(fields))
    assert node.extra == {"header_type": "srtp", "seed": "seed1"}
    assert node.path == ""


def test_vmess_json_skip_cert_verify_means_insecure() -> None:
    fields = {"add": "127.30.0.10", "port": 443, "id": UUID, "tls": "tls", "skip-cert-verify": True}
    assert parse_link(vmess_json_link(fields)).insecure is True


def test_vmess_json_cipher_under_security_key() -> None:
    fields = {"add": "127.30.0.11", "port": 443, "id": UUID, "security": "aes-128-gcm"}
    assert parse_link(vmess_json_link(fields)).method == "aes-128-gcm"


def test_vmess_double_base64_payload() -> None:
    inner = vmess_json_link({"add": "127.30.0.12", "port": 443, "id": UUID})[len("vmess://") :]
    node = parse_link("vmess://" + base64.b64encode(inner.encode()).decode())
    assert node.host == "127.30.0.12"


# --- vmess: URI forms ---------------------------------------------------------------------------


def test_vmess_plain_uri_form() -> None:
    link = f"vmess://{UUID}@127.30.1.1:443?type=ws&security=tls&path=%2Fv&host=h.example.com&encryption=aes-128-gcm#U"
    node = parse_link(link)
    assert node.protocol == "vmess"
    assert node.network == "ws"
    assert node.security == "tls"
    assert node.path == "/v"
    assert node.method == "aes-128-gcm"
    assert node.name == "U"


def test_vmess_base64_uri_body() -> None:
    body = f"{UUID}@127.30.1.2:8443?encryption=auto&security=tls&sni=s.example.com&type=ws&path=/w"
    node = parse_link("vmess://" + base64.b64encode(body.encode()).decode().rstrip("=") + "#Outer%20name")
    assert node.host == "127.30.1.2"
    assert node.port == 8443
    assert node.sni == "s.example.com"
    assert node.path == "/w"
    assert node.name == "Outer name"


def test_vmess_json_and_uri_forms_give_equal_node() -> None:
    fields = {
        "v": "2", "ps": "same", "add": "127.30.1.3", "port": "443", "id": UUID, "aid": "0", "scy": "auto",
        "net": "ws", "type": "none", "host": "h.example.com", "path": "/p", "tls": "tls",
        "sni": "s.example.com",
    }  # fmt: skip
    uri = f"vmess://{UUID}@127.30.1.3:443?type=ws&security=tls&host=h.example.com&path=%2Fp&sni=s.example.com#same"
    assert parse_link(vmess_json_link(fields)) == parse_link(uri)


# --- round trips for every transport and security -----------------------------------------------

NETWORK_QUERIES = {
    "tcp": "type=tcp",
    "tcp-http": "type=tcp&headerType=http&host=o.example.com&path=%2Fobfs",
    "ws": "type=ws&host=w.example.com&path=%2Fws%3Fed%3D2048",
    "grpc": "type=grpc&serviceName=svc&mode=gun",
    "h2": "type=h2&host=a.example.com%2Cb.example.com&path=%2Fh2",
    "httpupgrade": "type=httpupgrade&host=u.example.com&path=%2Fup",
    "xhttp": "type=xhttp&host=x.example.com&path=%2Fx&mode=stream-one&extra=%7B%22a%22%3A%5B1%2C2.5%5D%7D",
    "kcp": "type=kcp&headerType=dtls&seed=s33d",
    "quic": "type=quic",
}
SECURITY_QUERIES = {
    "none": "security=none",
    "tls": "security=tls&sni=s.example.com&alpn=h2%2Chttp%2F1.1&fp=chrome&allowInsecure=1",
    "reality": f"security=reality&sni=r.example.com&fp=firefox&pbk={PBK}&sid=ab12&spx=%2Fspider",
}
CREDENTIALS = {"vless": UUID, "trojan": "p%40ss%20w%2Frd", "vmess": UUID}


@pytest.mark.parametrize("protocol", sorted(CREDENTIALS))
@pytest.mark.parametrize("security", sorted(SECURITY_QUERIES))
@pytest.mark.parametrize("network", sorted(NETWORK_QUERIES))
def test_transport_security_round_trip(protocol: str, network: str, security: str) -> None:
    query = f"{NETWORK_QUERIES[network]}&{SECURITY_QUERIES[security]}"
    flow = "&flow=xtls-rprx-vision" if protocol == "vless" else ""
    link = f"{protocol}://{CREDENTIALS[protocol]}@127.40.0.1:443?{query}{flow}#%F0%9F%9A%80%20name%20%2B"
    node = parse_link(link)
    assert node.network == network.partition("-")[0]
    assert node.security == security
    assert node.name == "🚀 name +"
    again = parse_link(to_link(node))
    assert again == node
    assert again.fingerprint == node.fingerprint


def test_vmess_serializer_writes_v2rayn_json() -> None:
    node = parse_link(f"vmess://{UUID}@127.40.0.2:443?type=grpc&serviceName=svc&mode=multi&security=tls#g")
    link = to_link(node)
    data = json.loads(base64.b64decode(link[len("vmess://") :]))
    assert data["v"] == "2"
    assert data["port"] == "443"
    assert data["aid"] == "0"
    assert data["net"] == "grpc"
    assert data["path"] == "svc"
    assert data["type"] == "multi"
    assert data["tls"] == "tls"
    assert data["ps"] == "g"


def test_vless_serializer_percent_encodes_values() -> None:
    node = parse_link(f"vless://{UUID}@127.40.0.3:443?type=ws&path=%2Fa%26b%3Dc%23d#a%20b%23c")
    link = to_link(node)
    assert "path=%2Fa%26b%3Dc%23d" in link
    assert link.endswith("#a%20b%23c")


def test_round_trip_ipv6_and_unicode_everywhere() -> None:
    node = parse_link(
        "trojan://%E5%AF%86%E7%A0%81@[2001:db8::1]:8443?type=ws&path=%2F%E8%B7%AF&sni=s.example.com#名"
    )
    assert node.password == "密码"
    assert node.path == "/路"
    assert node.host == "2001:db8::1"
    assert_round_trip(node)


# --- rejections ---------------------------------------------------------------------------------


NOT_A_UUID = "invalid vless user id 'not a uuid with spaces': not a UUID"
NOT_A_SECURITY = "unsupported security '{}': expected none, tls or reality"
NOT_A_PAYLOAD = "vmess payload is neither JSON nor uuid@host:port"
CUT_JSON = base64.b64encode(b'{"add": "127.50.0.3", "port": 443, "id": "').decode()


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        (f"vless://{UUID}@127.50.0.1:70000?type=tcp", "invalid port 70000: must be 1-65535"),
        (f"vless://{UUID}@127.50.0.1:0", "invalid port 0: must be 1-65535"),
        (f"vless://{UUID}@127.50.0.1:http", "invalid port 'http': not a number"),
        (f"vless://{UUID}@127.50.0.1#no-port", "invalid port '': not a number"),
        ("vless://127.50.0.1:443?type=tcp", "missing vless user id (UUID)"),
        ("vless://not a uuid with spaces@127.50.0.1:443", NOT_A_UUID),
        (f"vless://{UUID}@bad_host!:443", "invalid host 'bad_host!'"),
        (f"vless://{UUID}@127.50.0.1:443?security=xtls", NOT_A_SECURITY.format("xtls")),
        (f"vless://{UUID}@127.50.0.1:443?type=carrier-pigeon", "unsupported transport 'carrier-pigeon'"),
        ("trojan://127.50.0.2:443?security=tls", "missing trojan password before '@'"),
        ("trojan://pw@127.50.0.2:443/?type=tcp&security=t...", NOT_A_SECURITY.format("t...")),
        ("vmess://%%%not-base64%%%", "invalid base64 payload"),
        ("vmess://" + CUT_JSON, "invalid vmess JSON: unterminated string starting at (character 41)"),
        ("vmess://" + base64.b64encode(b'["127.50.0.3"]').decode(), NOT_A_PAYLOAD),
        ("vmess://" + base64.b64encode(b"hello world").decode(), NOT_A_PAYLOAD),
    ],
)
def test_rejection_reasons(link: str, reason: str) -> None:
    with pytest.raises(LinkError) as caught:
        parse_link(link)
    assert str(caught.value) == reason


UNKNOWN_CIPHER = "unknown vmess security 'rc4': expected auto, aes-128-gcm, chacha20-poly1305, none or zero"
NOT_AN_ALTER_ID = "invalid vmess alterId 'x': not a number"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"add": "127.50.0.4", "port": 443}, "missing vmess user id (UUID)"),
        ({"add": "127.50.0.4", "port": "70000", "id": UUID}, "invalid port 70000: must be 1-65535"),
        ({"add": "127.50.0.4", "id": UUID}, "invalid port '': not a number"),
        ({"add": "", "port": 443, "id": UUID}, "missing host"),
        ({"add": "127.50.0.4", "port": 443, "id": UUID, "aid": "x"}, NOT_AN_ALTER_ID),
        ({"add": "127.50.0.4", "port": 443, "id": UUID, "scy": "rc4"}, UNKNOWN_CIPHER),
        ({"add": "127.50.0.4", "port": 443, "id": UUID, "net": "smoke"}, "unsupported transport 'smoke'"),
    ],
)
def test_vmess_json_rejection_reasons(fields: dict, reason: str) -> None:
    with pytest.raises(LinkError) as caught:
        parse_link(vmess_json_link(fields))
    assert str(caught.value) == reason


def test_vmess_json_syntax_error_is_rejected() -> None:
    with pytest.raises(LinkError) as caught:
        parse_link("vmess://" + base64.b64encode(b"{1: 2}").decode())
    assert (
        str(caught.value)
        == "invalid vmess JSON: expecting property name enclosed in double quotes (character 1)"
    )


# --- every prefix of a link is handled ----------------------------------------------------------

PREFIX_SAMPLES = [
    f"vless://{UUID}@[::1]:443/?type=xhttp&amp;extra=%7B%22a%22%3A1%7D&security=reality&pbk={PBK}#%F0%9F%9A%80",
    "trojan://Qw/Ke?T9@127.60.0.1:443?type=grpc&serviceName=s&peer=p.example.com#名 +",
    vmess_json_link(
        {"add": "127.60.0.2", "port": 443, "id": UUID, "net": "kcp", "type": "utp", "path": "sd"}
    ),
    "vmess://" + base64.b64encode(f"{UUID}@127.60.0.3:80?type=ws&path=/p#n".encode()).decode(),
]


@pytest.mark.parametrize("link", PREFIX_SAMPLES)
def test_truncated_links_parse_or_raise_link_error(link: str) -> None:
    parsed = 0
    for end in range(len(link) + 1):
        try:
            node = parse_link(link[:end])
        except LinkError:
            continue
        parsed += 1
        assert_round_trip(node)
    assert parsed >= 1


# --- corpus -------------------------------------------------------------------------------------

SCHEMES = ("vmess://", "vless://", "trojan://")


def corpus_links(name: str) -> Iterator[str]:
    path: Path = CORPUS_DIR / name
    text = path.read_text(encoding="utf-8")
    if name.startswith("b64-"):
        body = text.strip()
        text = base64.b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
    for line in text.splitlines():
        line = line.strip()
        if line.lower().startswith(SCHEMES):
            yield line


def reason_kind(reason: str) -> str:
    """Return a rejection reason without its quoted values and numbers, e.g. "invalid port"."""
    general = re.sub(r"'[^']*'|\b\d+\b", "", reason).split(":")[0]
    return " ".join(general.split())


def check_corpus_file(name: str) -> tuple[int, Counter[str]]:
    """Parse every vmess/vless/trojan line; return the parsed count and rejection reasons by kind."""
    parsed = 0
    reasons: Counter[str] = Counter()
    for line in corpus_links(name):
        try:
            node = parse_link(line)
        except LinkError as error:
            reasons[reason_kind(str(error))] += 1
            continue
        parsed += 1
        assert parse_link(to_link(node)) == node, line
    return parsed, reasons


# Maximum rejections per file. The corpus README counts the entries that look malformed. The
# limits add what it does not flag, such as links with no UUID or password (scraped banner hosts),
# truncated `security=t...` values, port 0, and doubly encoded payloads with junk appended.
CORPUS_LIMITS = {
    "plain-vmess.txt": 35,
    "plain-trojan.txt": 13,
    "plain-mixed-remarks.txt": 130,
    "b64-vless.txt": 0,
    "b64-mixed-trojan.txt": 0,
}
EXPECTED_REASONS = {
    "invalid vmess JSON",
    "invalid base64 payload",
    "invalid port",
    "unsupported security",
    "missing vless user id (UUID)",
    "missing trojan password before",
    "missing reality public key (pbk)",
}


@pytest.mark.parametrize("name", sorted(CORPUS_LIMITS))
def test_corpus_lines_parse_or_raise_link_error(name: str) -> None:
    total = sum(1 for _ in corpus_links(name))
    parsed, reasons = check_corpus_file(name)
    assert total > 0
    assert sum(reasons.values()) <= CORPUS_LIMITS[name], reasons
    assert parsed + sum(reasons.values()) == total
    assert set(reasons) <= EXPECTED_REASONS, reasons


def test_corpus_json_links_vmess_vless_trojan() -> None:
    data = json.loads((CORPUS_DIR / "json-links.json").read_text(encoding="utf-8"))
    links: list[str] = []

    def collect(value: object) -> None:
        if isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)
        elif isinstance(value, str) and value.lower().startswith(SCHEMES):
            links.append(value)

    collect(data)
    rejected = 0
    for link in links:
        try:
            node = parse_link(link)
        except LinkError:
            rejected += 1
            continue
        assert parse_link(to_link(node)) == node, link
    # The README flags whitespace, trailing junk, a bad port and a `&amp;` link among these buckets.
    assert len(links) > 1700
    assert rejected <= 10


def test_parse_speed_plain_trojan(benchmark) -> None:  # type: ignore[no-untyped-def]
    lines = list(corpus_links("plain-trojan.txt"))

    def parse_all() -> int:
        count = 0
        for line in lines:
            try:
                parse_link(line)
            except LinkError:
                continue
            count += 1
        return count

    assert benchmark(parse_all) > 7000


def test_lone_surrogate_in_link_is_rejected() -> None:
    with pytest.raises(LinkError) as caught:
        parse_link("trojan://pw@127.60.0.4:443#bad \udcff name")
    assert str(caught.value) == "link contains undecodable bytes (lone surrogates)"


def test_reality_without_public_key_rejected() -> None:
    with pytest.raises(LinkError, match="missing reality public key"):
        parse_link(
            "vless://5f1a3c2e-9b7d-4e8a-a1c3-2d4e6f8a0b1c@127.1.1.1:443?security=reality&sni=a.example.com#x"
        )
