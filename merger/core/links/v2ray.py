"""Share links of the V2Ray family: vmess, vless and trojan.

vmess comes in three shapes: v2rayN's `vmess://base64(JSON)`, the URI form of the Xray share-link
proposal (`vmess://uuid@host:port?type=ws&security=tls#name`), and base64 of that URI body without
the scheme, which some collectors emit. vless and trojan only use the URI form. The serializers write
vmess as v2rayN JSON and vless/trojan as URIs. Every node a parser returns serializes to a link that
parses back to an equal node, because all parsers go through the same normalisation in
`_build_node`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from ..errors import LinkError
from ..node import Node
from .common import (
    SplitLink,
    b64decode_text,
    b64encode_text,
    build_query,
    check_host,
    check_port,
    check_uuid,
    decode_name,
    encode_component,
    encode_name,
    normalize_network,
    parse_query,
    percent_decode,
    split_alpn,
    split_link,
    truthy,
)

# Transports that carry an HTTP path and Host header.
_PATH_NETWORKS = frozenset(("ws", "h2", "httpupgrade", "xhttp"))
_SECURITIES = frozenset(("none", "tls", "reality"))
# VMess body ciphers of v2ray-core and Xray configs, plus aes-128-cfb of legacy (alterId > 0) VMess.
_VMESS_CIPHERS = frozenset(("auto", "aes-128-gcm", "chacha20-poly1305", "none", "zero", "aes-128-cfb"))
# Spellings that exporters write for "no cipher chosen", which means the default "auto".
_VMESS_DEFAULT_CIPHERS = frozenset(("", "auto", "null", "undefined"))
# mKCP packet header types. Anything else in a link is junk and means "none".
_KCP_HEADERS = frozenset(("srtp", "utp", "wechat-video", "dtls", "wireguard", "dns"))
_GRPC_MODES = frozenset(("gun", "multi"))
_XHTTP_MODES = frozenset(("auto", "packet-up", "stream-up", "stream-one"))
# Query keys (lower-cased) that different exporters use for "skip certificate verification".
_INSECURE_KEYS = ("allowinsecure", "insecure", "allow_insecure", "skip-cert-verify")
# The same keys in the spellings seen in vmess JSON, whose keys keep their case.
_JSON_INSECURE_KEYS = ("allowInsecure", *_INSECURE_KEYS)

# A function that returns one setting of a link by its lower-cased share-link query name ("path",
# "host", "servicename", "mode", "headertype", "seed", "extra", "sni", "alpn", "fp", "pbk", "sid",
# "spx") or "insecure". Values are stripped strings, except "alpn" (a tuple), "insecure" (a bool)
# and "extra" (a dict or None).
FieldReader = Callable[[str], Any]


def _build_node(
    protocol: str,
    host: str,
    port: int,
    name: str,
    network: str,
    security: str,
    read: FieldReader,
    uuid: str = "",
    password: str = "",
    method: str = "",
    alter_id: int = 0,
    flow: str = "",
) -> Node:
    """Create a node from the transport and TLS settings that its network and security use.

    Settings that the network or security does not use are never read, so junk parameters cannot
    make two links of one server differ.
    """
    path = host_header = service_name = mode = ""
    extra: dict[str, Any] = {}
    if network in _PATH_NETWORKS:
        path = read("path") or "/"
        host_header = read("host")
        if network == "xhttp":
            mode = read("mode").lower()
            if mode not in _XHTTP_MODES:
                mode = ""
            extra_json = read("extra")
            if extra_json:
                extra["extra_json"] = extra_json
    elif network == "tcp":
        if read("headertype").lower() == "http":
            extra["header_type"] = "http"
            path = read("path")
            host_header = read("host")
    elif network == "grpc":
        service_name = read("servicename")
        mode = read("mode").lower()
        if mode not in _GRPC_MODES:
            mode = ""
    elif network == "kcp":
        header_type = read("headertype").lower()
        if header_type in _KCP_HEADERS:
            extra["header_type"] = header_type
        seed = read("seed")
        if seed:
            extra["seed"] = seed
    # NOTE: quic keeps no settings, because Node has no field for its key and security.

    sni = fingerprint = public_key = short_id = spider_x = ""
    alpn: tuple[str, ...] = ()
    insecure = False
    if security != "none":
        sni = read("sni")
        alpn = read("alpn")
        fingerprint = read("fp")
        insecure = read("insecure")
        if security == "reality":
            public_key = read("pbk")
            # Without the server's public key a REALITY handshake cannot succeed, and Xray,
            # sing-box and mihomo all reject such a config.
            if not public_key:
                raise LinkError("missing reality public key (pbk)")
            short_id = read("sid")
            spider_x = read("spx")

    return Node(
        protocol=protocol,
        host=host,
        port=port,
        name=name,
        uuid=uuid,
        password=password,
        method=method,
        alter_id=alter_id,
        flow=flow,
        network=network,
        path=path,
        host_header=host_header,
        service_name=service_name,
        mode=mode,
        security=security,
        sni=sni,
        alpn=alpn,
        client_fingerprint=fingerprint,
        insecure=insecure,
        reality_public_key=public_key,
        reality_short_id=short_id,
        reality_spider_x=spider_x,
        extra=extra,
    )


def _check_security(value: str) -> str:
    if value not in _SECURITIES:
        raise LinkError(f"unsupported security {value[:20]!r}: expected none, tls or reality")
    return value


def _check_vmess_cipher(value: str) -> str:
    if value in _VMESS_DEFAULT_CIPHERS:
        return "auto"
    if value not in _VMESS_CIPHERS:
        expected = "auto, aes-128-gcm, chacha20-poly1305, none or zero"
        raise LinkError(f"unknown vmess security {value[:30]!r}: expected {expected}")
    return value


def _check_alter_id(value: object) -> int:
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        return 0
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise LinkError(f"invalid vmess alterId {str(value)[:20]!r}: not a number") from None
    if not 0 <= number <= 65535:
        raise LinkError(f"invalid vmess alterId {number}: must be 0-65535")
    return number


def _load_json_object(text: str) -> dict[str, Any] | None:
    """Decode xhttp `extra` settings; return None when they are not a non-empty JSON object."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) and value else None


# --- URI form: vless, trojan and the Xray-style vmess URI -------------------------------------------


def _split_credential_link(text: str) -> SplitLink:
    """Split a link whose credential may contain raw `/`, `?` or `@`.

    Trojan passwords are often base64 with a raw `/`, or contain `?`, which `split_link` takes for
    the start of the path or query. When that leaves no credential, the text up to the first `@`
    becomes the credential.
    """
    link = split_link(text)
    if link.userinfo:
        return link
    scheme, _, body = text.partition("://")
    at_index = body.find("@")
    hash_index = body.find("#")
    if at_index <= 0 or 0 <= hash_index < at_index:
        return link
    try:
        retry = split_link(f"{scheme}://{body[at_index + 1 :]}")
    except LinkError:
        return link
    if retry.userinfo or not retry.host:
        return link
    retry.userinfo = body[:at_index]
    return retry


# Settings that a link carries as a plain query value, under the same name.
_PLAIN_QUERY_KEYS = frozenset(
    ("path", "host", "servicename", "mode", "headertype", "seed", "fp", "pbk", "sid", "spx")
)


def _query_reader(query: dict[str, str]) -> FieldReader:
    get = query.get

    def read(key: str) -> Any:
        if key in _PLAIN_QUERY_KEYS:
            return get(key, "").strip()
        if key == "alpn":
            return split_alpn(get("alpn", ""))
        if key == "sni":
            # `peer` is the trojan-gfw spelling of the TLS server name.
            return (get("sni") or get("peer") or "").strip()
        if key == "insecure":
            for name in _INSECURE_KEYS:
                value = get(name)
                if value is not None and truthy(value):
                    return True
            return False
        if key == "extra":
            text = get("extra", "")
            return _load_json_object(text) if text else None
        raise KeyError(key)

    return read


def _parse_uri(text: str, protocol: str) -> Node:
    """Parse `scheme://credential@host:port[/]?query#name` into a node of the given protocol."""
    if not text.isascii():
        # Text decoded with errors="surrogateescape" can hold lone surrogates, which no UTF-8
        # link can carry, so the node could not be written back.
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise LinkError("link contains undecodable bytes (lone surrogates)") from None
    link = _split_credential_link(text)
    host = check_host(link.host)
    port = check_port(link.port)
    query = parse_query(link.query)
    credential = percent_decode(link.userinfo)

    if "type" in query:
        network = normalize_network(query["type"])
    elif "ws" in query and truthy(query["ws"]):
        # Trojan-Go era clients write `ws=1&wspath=/x` instead of `type=ws&path=/x`.
        network = "ws"
        query["path"] = query.get("wspath", "")
    else:
        network = "tcp"
    default_security = "tls" if protocol == "trojan" else "none"
    security = _check_security(query.get("security", "").strip().lower() or default_security)
    name = decode_name(link.fragment)
    read = _query_reader(query)

    if protocol == "trojan":
        if not credential:
            raise LinkError("missing trojan password before '@'")
        return _build_node("trojan", host, port, name, network, security, read, password=credential)

    uuid = check_uuid(credential.strip(), protocol)
    if protocol == "vless":
        flow = query.get("flow", "").strip()
        if flow == "none":
            flow = ""
        # NOTE: vless `encryption` is dropped because Node has no field for it. It is "none"
        # except in links for Xray's post-quantum VLESS encryption, which this loses.
        return _build_node("vless", host, port, name, network, security, read, uuid=uuid, flow=flow)

    method = _check_vmess_cipher(query.get("encryption", query.get("scy", "")).strip().lower())
    alter_id = _check_alter_id(query.get("aid", query.get("alterid", "")))
    return _build_node(
        "vmess", host, port, name, network, security, read, uuid=uuid, method=method, alter_id=alter_id
    )


def _host_port(node: Node) -> str:
    host = f"[{node.host}]" if ":" in node.host else node.host
    return f"{host}:{node.port}"


def _uri_query(node: Node) -> dict[str, object]:
    """Return the query parameters of a vless or trojan link, in the order clients write them."""
    extra = node.extra
    extra_json = extra.get("extra_json")
    return {
        "type": node.network,
        "security": node.security,
        "encryption": "none" if node.protocol == "vless" else "",
        "flow": node.flow,
        "sni": node.sni,
        "alpn": ",".join(node.alpn),
        "fp": node.client_fingerprint,
        "allowInsecure": node.insecure,
        "pbk": node.reality_public_key,
        "sid": node.reality_short_id,
        "spx": node.reality_spider_x,
        "headerType": extra.get("header_type", ""),
        "host": node.host_header,
        "path": node.path,
        "serviceName": node.service_name,
        "mode": node.mode,
        "seed": extra.get("seed", ""),
        # ASCII-only JSON, so that any text that Python can hold survives percent-encoding.
        "extra": json.dumps(extra_json, separators=(",", ":")) if extra_json else "",
    }


def _uri_link(node: Node, credential: str) -> str:
    query = build_query(_uri_query(node))
    name = f"#{encode_name(node.name)}" if node.name else ""
    return f"{node.protocol}://{encode_component(credential)}@{_host_port(node)}?{query}{name}"


def parse_vless(text: str) -> Node:
    """Parse a `vless://uuid@host:port?...#name` link."""
    return _parse_uri(text.strip(), "vless")


def parse_trojan(text: str) -> Node:
    """Parse a `trojan://password@host:port?...#name` link. TLS is on unless `security=none`."""
    return _parse_uri(text.strip(), "trojan")


def vless_link(node: Node) -> str:
    return _uri_link(node, node.uuid)


def trojan_link(node: Node) -> str:
    return _uri_link(node, node.password)


# --- vmess: v2rayN base64 JSON ----------------------------------------------------------------------


def _text(value: object) -> str:
    """Return a JSON value as stripped text, because exporters write numbers, booleans and null."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return str(value).strip()


def _fix_surrogates(value: Any) -> Any:
    """Replace lone UTF-16 surrogates (from broken `\\u` escapes) so the text can be encoded as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, dict):
        return {_fix_surrogates(key): _fix_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_fix_surrogates(item) for item in value]
    return value


def _decode_vmess_json(text: str) -> dict[str, Any]:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        # The stdlib decoder is slower but more forgiving: lone surrogates in `\u` escapes and, with
        # strict=False, raw control characters inside strings, both of which real exporters write.
        try:
            data = _fix_surrogates(json.loads(text, strict=False))
        except json.JSONDecodeError as error:
            raise LinkError(f"invalid vmess JSON: {error.msg.lower()} (character {error.pos})") from None
        except RecursionError:
            raise LinkError("invalid vmess JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise LinkError(f"invalid vmess JSON: expected an object, got {type(data).__name__}")
    return data


def _json_security(value: object) -> str:
    # "tls" and "reality" turn TLS on, and some exporters write true or "true" instead. Anything
    # else, such as "auto" or a cipher name written into the wrong key, means none.
    if value is True:
        return "tls"
    text = _text(value).lower()
    if text in ("tls", "true", "1"):
        return "tls"
    if text == "reality":
        return "reality"
    return "none"


def _json_reader(data: dict[str, Any]) -> FieldReader:
    """Return a reader of v2rayN JSON settings.

    In v2rayN's format "type" is the tcp/kcp header type and "path" is the grpc service name or the
    kcp seed. Exporters also write the grpc/xhttp mode ("gun", "multi") into "type". The explicit
    keys (serviceName, mode, seed, headerType) that some exporters add are used when those are empty.
    """
    get = data.get

    def read(key: str) -> Any:
        if key in ("servicename", "seed"):
            return _text(get("path")) or _text(get("serviceName" if key == "servicename" else "seed"))
        if key == "headertype":
            return _text(get("type")) or _text(get("headerType"))
        if key == "mode":
            mode = _text(get("type"))
            return _text(get("mode")) if mode.lower() in ("", "none") else mode
        if key == "sni":
            return _text(get("sni")) or _text(get("peer"))
        if key == "alpn":
            value = get("alpn")
            if isinstance(value, list):
                return tuple(text for text in (_text(item) for item in value) if text)
            return split_alpn(_text(value))
        if key == "insecure":
            return any(truthy(get(name)) for name in _JSON_INSECURE_KEYS if name in data)
        if key == "extra":
            value = get("extra")
            if isinstance(value, str):
                return _load_json_object(value) if value.strip() else None
            return value if isinstance(value, dict) and value else None
        return _text(get(key))

    return read


def _parse_vmess_json(data: dict[str, Any]) -> Node:
    host = _text(data.get("add"))
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = check_host(host)
    port_value = data.get("port")
    port = check_port(port_value if isinstance(port_value, int) else _text(port_value))
    uuid = check_uuid(_text(data.get("id")), "vmess")
    alter_id = _check_alter_id(data.get("aid"))
    # Some exporters write the cipher under "security", which v2rayN's format leaves unused.
    method = _check_vmess_cipher((_text(data.get("scy")) or _text(data.get("security"))).lower())
    network = normalize_network(_text(data.get("net")))
    security = _json_security(data.get("tls"))
    name = _text(data.get("ps")) or _text(data.get("remarks"))
    read = _json_reader(data)
    return _build_node(
        "vmess", host, port, name, network, security, read, uuid=uuid, method=method, alter_id=alter_id
    )


def parse_vmess(text: str) -> Node:
    """Parse a vmess link in the v2rayN base64 JSON form, the URI form or base64 of the URI body."""
    text = text.strip()
    body = text.partition("://")[2]
    end = len(body)
    for stop in ("?", "#"):
        index = body.find(stop, 0, end)
        if index >= 0:
            end = index
    payload = body[:end]
    if "@" in payload:
        return _parse_uri(text, "vmess")

    decoded = b64decode_text(payload).strip()
    if decoded.startswith("eyJ"):
        # Some collectors base64-encode an already encoded payload a second time. "eyJ" is the
        # base64 of '{"'.
        decoded = b64decode_text(decoded).strip()
    if decoded.startswith("{"):
        return _parse_vmess_json(_decode_vmess_json(decoded))
    if "@" not in decoded:
        raise LinkError("vmess payload is neither JSON nor uuid@host:port")
    # Base64 of a `uuid@host:port?query` body. A name, if any, follows the base64 as `#name`.
    node = _parse_uri(f"vmess://{decoded}", "vmess")
    fragment = body.partition("#")[2]
    if fragment and not node.name:
        node.name = decode_name(fragment)
    return node


def vmess_link(node: Node) -> str:
    """Write a node as v2rayN's `vmess://base64(JSON)` with port and aid as strings."""
    network = node.network
    extra = node.extra
    if network == "grpc":
        path, kind = node.service_name, node.mode
    elif network == "xhttp":
        path, kind = node.path, node.mode
    elif network == "kcp":
        path, kind = extra.get("seed", ""), extra.get("header_type", "")
    else:
        path, kind = node.path, extra.get("header_type", "")

    data: dict[str, Any] = {
        "v": "2",
        "ps": node.name,
        "add": node.host,
        "port": str(node.port),
        "id": node.uuid,
        "aid": str(node.alter_id),
        "scy": node.method or "auto",
        "net": network,
        "type": kind or "none",
        "host": node.host_header,
        "path": path,
        "tls": "" if node.security == "none" else node.security,
        "sni": node.sni,
        "alpn": ",".join(node.alpn),
        "fp": node.client_fingerprint,
    }
    if node.insecure:
        data["allowInsecure"] = "1"
    if node.security == "reality":
        data["pbk"] = node.reality_public_key
        data["sid"] = node.reality_short_id
        data["spx"] = node.reality_spider_x
    extra_json = extra.get("extra_json")
    if extra_json:
        data["extra"] = extra_json
    try:
        text = orjson.dumps(data).decode("utf-8")
    except TypeError:
        # orjson rejects lone surrogates, which nodes from other formats may carry. Escaped
        # ASCII JSON keeps them intact.
        text = json.dumps(data, separators=(",", ":"))
    return "vmess://" + b64encode_text(text)


PARSERS = {"vmess": parse_vmess, "vless": parse_vless, "trojan": parse_trojan}
SERIALIZERS = {"vmess": vmess_link, "vless": vless_link, "trojan": trojan_link}
