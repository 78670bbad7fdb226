"""Shadowsocks (ss://) and ShadowsocksR (ssr://) share links.

ss links follow SIP002 (`ss://userinfo@host:port/?plugin=...#name`, userinfo either base64 of
`method:password` or percent-encoded plain text) or the older whole-base64 form
`ss://BASE64(method:password@host:port)#name`. ssr links are
`ssr://BASE64(host:port:protocol:method:obfs:BASE64(password)/?obfsparam=...&remarks=...)`.

The cipher, protocol and obfs sets below are exported for the Clash and sing-box converters, so
that every input format accepts and rejects the same names.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

from ..errors import LinkError
from ..node import Node
from .common import (
    b64decode_text,
    b64encode_text,
    check_host,
    check_port,
    decode_name,
    encode_name,
    parse_query,
    percent_encode,
    split_body,
    split_host_port,
    truthy,
)

# Canonical cipher names, as stored in `Node.method`. Together they cover shadowsocks-libev 3.3,
# shadowsocks-rust (shadowsocks-crypto with all features), Xray-core and mihomo (sing-shadowsocks2).
SS_2022_CIPHERS = frozenset(
    (
        "2022-blake3-aes-128-gcm",
        "2022-blake3-aes-256-gcm",
        "2022-blake3-chacha20-poly1305",
        "2022-blake3-chacha8-poly1305",
        "2022-blake3-aes-128-ccm",
        "2022-blake3-aes-256-ccm",
    )
)
_SS_AEAD_CIPHERS = (
    "aes-128-gcm",
    "aes-192-gcm",
    "aes-256-gcm",
    "aes-128-ccm",
    "aes-192-ccm",
    "aes-256-ccm",
    "aes-128-gcm-siv",
    "aes-256-gcm-siv",
    "chacha20-ietf-poly1305",
    "xchacha20-ietf-poly1305",
    "chacha8-ietf-poly1305",
    "xchacha8-ietf-poly1305",
    "sm4-gcm",
    "sm4-ccm",
    "rabbit128-poly1305",
    "aegis-128l",
    "aegis-256",
    "aez-384",
    "deoxys-ii-256-128",
    "lea-128-gcm",
    "lea-192-gcm",
    "lea-256-gcm",
    "ascon128",
    "ascon128a",
)
_SS_STREAM_CIPHERS = (
    "table",
    "rc4",
    "rc4-md5",
    "bf-cfb",
    "salsa20",
    "chacha20",
    "chacha20-ietf",
    "xchacha20",
    *(f"aes-{bits}-{mode}" for bits in (128, 192, 256) for mode in ("cfb", "cfb1", "cfb8", "ctr", "ofb")),
    *(
        f"camellia-{bits}-{mode}"
        for bits in (128, 192, 256)
        for mode in ("cfb", "cfb1", "cfb8", "ctr", "ofb")
    ),
)

# Other spellings of the canonical ciphers: Xray's `aead_*` and short chacha names, mihomo's
# `dummy`, shadowsocks-rust's `plain` and `*-cfb128` (its `*-cfb` is CFB128).
SS_CIPHER_ALIASES: dict[str, str] = {
    "plain": "none",
    "dummy": "none",
    "chacha20-poly1305": "chacha20-ietf-poly1305",
    "xchacha20-poly1305": "xchacha20-ietf-poly1305",
    "aead_aes_128_gcm": "aes-128-gcm",
    "aead_aes_192_gcm": "aes-192-gcm",
    "aead_aes_256_gcm": "aes-256-gcm",
    "aead_chacha20_poly1305": "chacha20-ietf-poly1305",
    "aead_xchacha20_poly1305": "xchacha20-ietf-poly1305",
    **{
        f"{family}-{bits}-cfb128": f"{family}-{bits}-cfb"
        for family in ("aes", "camellia")
        for bits in (128, 192, 256)
    },
}

# Every cipher name accepted in input, canonical names and aliases alike.
SS_CIPHERS = frozenset(("none", *_SS_AEAD_CIPHERS, *_SS_STREAM_CIPHERS, *SS_2022_CIPHERS, *SS_CIPHER_ALIASES))

# ShadowsocksR ciphers, protocols and obfs methods. SSR predates AEAD ciphers, so only stream
# ciphers are listed. The `_compatible` spellings are accepted and kept as written.
SSR_CIPHERS = frozenset(
    (
        "none",
        "table",
        "rc4",
        "rc4-md5",
        "rc4-md5-6",
        "bf-cfb",
        "cast5-cfb",
        "des-cfb",
        "idea-cfb",
        "rc2-cfb",
        "seed-cfb",
        "salsa20",
        "chacha20",
        "chacha20-ietf",
        "xsalsa20",
        "xchacha20",
        *(f"aes-{bits}-{mode}" for bits in (128, 192, 256) for mode in ("cfb", "cfb1", "cfb8", "ctr", "ofb")),
        *(f"camellia-{bits}-cfb" for bits in (128, 192, 256)),
    )
)
SSR_PROTOCOLS = frozenset(
    (
        "origin",
        "verify_simple",
        "verify_deflate",
        "verify_sha1",
        "auth_simple",
        "auth_sha1",
        "auth_sha1_v2",
        "auth_sha1_v2_compatible",
        "auth_sha1_v4",
        "auth_sha1_v4_compatible",
        "auth_aes128_md5",
        "auth_aes128_sha1",
        "auth_chain_a",
        "auth_chain_b",
        "auth_chain_c",
        "auth_chain_d",
        "auth_chain_e",
        "auth_chain_f",
        "auth_akarin_rand",
        "auth_akarin_spec_a",
    )
)
SSR_OBFS = frozenset(
    (
        "plain",
        "http_simple",
        "http_simple_compatible",
        "http_post",
        "http_post_compatible",
        "random_head",
        "random_head_compatible",
        "tls_simple",
        "tls1.2_ticket_auth",
        "tls1.2_ticket_auth_compatible",
        "tls1.2_ticket_fastauth",
        "tls1.2_ticket_fastauth_compatible",
    )
)

# 2022-blake3 keys are base64 of exactly this many bytes (one key, or several joined by ':' for
# the identity headers of multi-user servers).
_SS_2022_KEY_BYTES = {
    "2022-blake3-aes-128-gcm": 16,
    "2022-blake3-aes-128-ccm": 16,
    "2022-blake3-aes-256-gcm": 32,
    "2022-blake3-aes-256-ccm": 32,
    "2022-blake3-chacha20-poly1305": 32,
    "2022-blake3-chacha8-poly1305": 32,
}

_PLUGIN_ALIASES = {
    "obfs-local": "obfs-local",
    "simple-obfs": "obfs-local",
    "obfs": "obfs-local",
    "v2ray-plugin": "v2ray-plugin",
}
_OBFS_LOCAL_KEYS = ("obfs", "obfs-host", "obfs-uri")
_V2RAY_PLUGIN_KEYS = ("mode", "host", "path", "mux")

# Query keys that only vless/vmess links carry. Their presence next to an ss:// userinfo that is
# not `method:password` means the collector put a vless body behind the wrong scheme.
_VLESS_MARKERS = ("encryption", "security", "type", "flow", "pbk", "sni", "servicename", "path")


def normalize_ss_cipher(method: str) -> str:
    """Return the canonical name of an ss cipher, or raise LinkError for an unknown one."""
    name = method.strip().lower()
    if name not in SS_CIPHERS:
        raise LinkError(f"unknown ss cipher {method[:40]!r}")
    return SS_CIPHER_ALIASES.get(name, name)


def check_ss_password(method: str, password: str) -> str:
    """Return the password, or raise LinkError when the canonical `method` cannot use it.

    2022-blake3 ciphers take base64 keys of a fixed size, which servers check, so a wrong key can
    never connect.
    """
    if method == "none":
        return password
    if not password:
        raise LinkError(f"missing ss password for cipher {method!r}")
    key_bytes = _SS_2022_KEY_BYTES.get(method)
    if key_bytes is not None:
        for key in password.split(":"):
            try:
                size = len(base64.b64decode(key + "=" * (-len(key) % 4), validate=True))
            except (binascii.Error, ValueError):
                raise LinkError(f"invalid {method} key {key[:48]!r}: not base64") from None
            if size != key_bytes:
                raise LinkError(f"invalid {method} key: {size} bytes, expected {key_bytes}")
    return password


def parse_plugin(spec: str) -> tuple[str, dict[str, str]]:
    """Parse a SIP003 plugin string `name;key=value;flag` into a normalised name and options.

    obfs-local (also written simple-obfs or obfs) keeps obfs, obfs-host and obfs-uri; v2ray-plugin
    keeps mode (default websocket), host, path, mux and tls ("true" only when enabled). Options of
    other plugins are kept as given, a bare flag mapping to ''. Returns ('', {}) for an empty spec.
    """
    fields = _split_plugin_spec(spec)
    raw_name = fields[0][0].strip()
    if not raw_name:
        return "", {}
    name = _PLUGIN_ALIASES.get(raw_name.lower(), raw_name)
    options: dict[str, str] = {}
    for key, value in fields[1:]:
        key = key.strip()
        if key:
            options.setdefault(key, "" if value is None else value.strip())

    if name == "obfs-local":
        result = {key: options[key] for key in _OBFS_LOCAL_KEYS if options.get(key)}
        if "obfs" in result:
            result["obfs"] = result["obfs"].lower()
        return name, result
    if name == "v2ray-plugin":
        result = {key: options[key] for key in _V2RAY_PLUGIN_KEYS if options.get(key)}
        result["mode"] = result.get("mode", "websocket").lower()
        # v2ray-plugin's tls is a bare flag, but converted links also write `tls=true`.
        if "tls" in options and (options["tls"] == "" or truthy(options["tls"])):
            result["tls"] = "true"
        return name, result
    return name, options


def format_plugin(name: str, options: dict[str, str]) -> str:
    """Write a plugin name and options as a SIP003 string, the inverse of `parse_plugin`."""
    parts = [_escape_plugin_part(name)]
    for key, value in options.items():
        if name == "v2ray-plugin" and key == "tls":
            parts.append("tls")
        elif value == "":
            parts.append(_escape_plugin_part(key))
        else:
            parts.append(f"{_escape_plugin_part(key)}={_escape_plugin_part(value)}")
    return ";".join(parts)


def _split_plugin_spec(spec: str) -> list[tuple[str, str | None]]:
    """Split `name;key=value;flag` into (key, value) pairs, value None for a bare flag.

    SIP002 escapes ':', ';', '=' and '\\' inside names and values with a backslash.
    """
    if "\\" not in spec:
        fields: list[tuple[str, str | None]] = []
        for part in spec.split(";"):
            key, sep, value = part.partition("=")
            fields.append((key, value if sep else None))
        return fields

    fields = []
    key_chars: list[str] = []
    value_chars: list[str] | None = None
    index = 0
    while index < len(spec):
        char = spec[index]
        target = key_chars if value_chars is None else value_chars
        if char == "\\" and index + 1 < len(spec):
            index += 1
            target.append(spec[index])
        elif char == ";":
            fields.append(("".join(key_chars), None if value_chars is None else "".join(value_chars)))
            key_chars, value_chars = [], None
        elif char == "=" and value_chars is None:
            value_chars = []
        else:
            target.append(char)
        index += 1
    fields.append(("".join(key_chars), None if value_chars is None else "".join(value_chars)))
    return fields


def _escape_plugin_part(text: str) -> str:
    if "\\" in text or ";" in text or "=" in text or ":" in text:
        return text.replace("\\", "\\\\").replace(";", "\\;").replace("=", "\\=").replace(":", "\\:")
    return text


# --- ss ----------------------------------------------------------------------------------------


def parse_ss(text: str) -> Node:
    """Parse a SIP002 or legacy whole-base64 ss:// link."""
    body, query, fragment = split_body(text)
    params = parse_query(query)

    if body.startswith("{"):
        raise LinkError("ss payload is JSON, not method:password (looks like a vmess link)")

    # Standard base64 userinfo may contain '/', so the host is found after an '@' rather than by
    # splitting at the first '/' as for other schemes. Plain userinfo may hold a raw '@' in the
    # password, so the last '@' is used, unless the text before the first '@' has no ':' and so
    # is base64, which never contains '@'.
    at_index = body.find("@")
    if at_index >= 0 and ":" in body[:at_index]:
        at_index = body.rfind("@")
    if at_index < 0:
        credentials, hostport = _decode_legacy_body(body)
    else:
        credentials = _decode_userinfo(body[:at_index])
        hostport = body[at_index + 1 :]
        slash_index = hostport.find("/")
        if slash_index >= 0:
            hostport = hostport[:slash_index]

    method, password = _split_credentials(credentials, params)
    host, port = split_host_port(hostport)
    _reject_transport(params)

    extra: dict = {}
    plugin_spec = params.get("plugin")
    if plugin_spec:
        plugin, options = parse_plugin(plugin_spec)
        if plugin:
            extra["plugin"] = plugin
            if options:
                extra["plugin_opts"] = options

    return Node(
        protocol="ss",
        host=check_host(host),
        port=check_port(port),
        name=decode_name(fragment) if fragment else "",
        method=method,
        password=check_ss_password(method, password),
        extra=extra,
    )


def _decode_legacy_body(body: str) -> tuple[str, str]:
    """Decode `BASE64(method:password@host:port)` into `method:password` and `host:port`."""
    payload = body.rstrip("/")
    try:
        decoded = b64decode_text(unquote(payload) if "%" in payload else payload)
    except LinkError:
        raise LinkError("invalid ss link: no userinfo@ and the body is not base64") from None
    decoded = decoded.strip()
    if decoded.startswith("{"):
        raise LinkError("ss payload is JSON, not method:password@host:port (looks like a vmess link)")
    credentials, sep, hostport = decoded.rpartition("@")
    if not sep:
        raise LinkError("invalid ss payload: no '@' between method:password and host:port")
    return credentials, hostport.rstrip("/")


def _decode_userinfo(userinfo: str) -> str:
    """Return `method:password` from SIP002 userinfo, plain (percent-encoded) or base64."""
    text = unquote(userinfo) if "%" in userinfo else userinfo
    if ":" in text:
        return text
    if _looks_like_uuid(text):
        raise LinkError("ss userinfo is not method:password (looks like a vless link)")
    try:
        decoded = b64decode_text(text)
    except LinkError:
        decoded = ""
    if decoded.lstrip().startswith("{"):
        raise LinkError("ss payload is JSON, not method:password (looks like a vmess link)")
    return decoded


def _split_credentials(credentials: str, params: dict[str, str]) -> tuple[str, str]:
    """Split `method:password` at the first ':' (2022 multi-user keys contain more of them)."""
    method, sep, password = credentials.partition(":")
    if not sep:
        raise LinkError(_not_method_password(params))
    try:
        return normalize_ss_cipher(method), password
    except LinkError:
        if any(key in params for key in _VLESS_MARKERS):
            raise LinkError(_not_method_password(params)) from None
        raise


def _not_method_password(params: dict[str, str]) -> str:
    if any(key in params for key in _VLESS_MARKERS):
        return "ss userinfo is not method:password (looks like a vless link)"
    return "ss userinfo is not method:password or base64 of it"


def _looks_like_uuid(text: str) -> bool:
    return len(text) == 36 and text[8] == "-" and text[13] == "-" and text[18] == "-" and text[23] == "-"


def _reject_transport(params: dict[str, str]) -> None:
    # Xray can run ss over ws/grpc/tls, but neither SIP002 nor Clash nor sing-box can express it,
    # so such a link is rejected rather than turned into a plain-tcp node that would not connect.
    # `type=tcp` and `security=none` add nothing and are accepted.
    network = params.get("type", "").lower()
    security = params.get("security", "").lower()
    if network not in ("", "tcp", "raw"):
        raise LinkError(f"ss over transport {network[:20]!r} is not supported: use a plugin")
    if security not in ("", "none"):
        raise LinkError(f"ss with security {security[:20]!r} is not supported: use a plugin")


def serialize_ss(node: Node) -> str:
    """Write a node as a SIP002 link.

    SIP002 forbids base64 userinfo for 2022-blake3 ciphers, so they get percent-encoded plain
    userinfo. The others get URL-safe unpadded base64 of `method:password`.
    """
    if node.method in SS_2022_CIPHERS:
        userinfo = f"{node.method}:{percent_encode(node.password, '')}"
    else:
        userinfo = b64encode_text(f"{node.method}:{node.password}", urlsafe=True, padding=False)
    link = f"ss://{userinfo}@{_format_host(node.host)}:{node.port}"
    plugin = node.extra.get("plugin")
    if plugin:
        spec = format_plugin(plugin, node.extra.get("plugin_opts") or {})
        link += f"/?plugin={percent_encode(spec, '')}"
    if node.name:
        link += f"#{encode_name(node.name)}"
    return link


# --- ssr ---------------------------------------------------------------------------------------


def parse_ssr(text: str) -> Node:
    """Parse an ssr:// link, base64-encoded as specified or left in plain text by some converters."""
    body = text.partition("://")[2]
    fragment = ""
    hash_index = body.find("#")
    if hash_index >= 0:
        fragment = body[hash_index + 1 :]
        body = body[:hash_index]
    # The encoded form is pure base64, which has no ':', while the plain form has five of them.
    if ":" not in body:
        try:
            body = b64decode_text(body.rstrip("/"))
        except LinkError:
            raise LinkError("invalid ssr link: payload is not base64") from None

    main, _, query = body.partition("?")
    main = main.rstrip("/")
    fields = main.rsplit(":", 5)
    if len(fields) != 6:
        raise LinkError("invalid ssr link: expected host:port:protocol:method:obfs:password")
    host, port, protocol, method, obfs, password_b64 = fields
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]

    protocol = protocol.strip().lower()
    if protocol not in SSR_PROTOCOLS:
        raise LinkError(f"unknown ssr protocol {protocol[:40]!r}")
    method = method.strip().lower()
    if method not in SSR_CIPHERS:
        raise LinkError(f"unknown ssr cipher {method[:40]!r}")
    obfs = obfs.strip().lower()
    if obfs not in SSR_OBFS:
        raise LinkError(f"unknown ssr obfs {obfs[:40]!r}")
    try:
        password = b64decode_text(password_b64)
    except LinkError:
        raise LinkError("invalid ssr password: not base64") from None
    if not password and method != "none":
        raise LinkError("missing ssr password: the sixth field must be base64 of the password")

    params = parse_query(query)
    extra: dict = {"protocol": protocol, "obfs": obfs}
    # SSR ignores the parameter of the `origin` protocol and of the `plain` obfs, so keeping one
    # would only make copies of the same server look different.
    protocol_param = _decode_ssr_param(params.get("protoparam", ""))
    if protocol_param and protocol != "origin":
        extra["protocol_param"] = protocol_param
    obfs_param = _decode_ssr_param(params.get("obfsparam", ""))
    if obfs_param and obfs != "plain":
        extra["obfs_param"] = obfs_param

    # The plain form carries the converter's '#remark' next to the original `remarks=`; the
    # fragment is what the subscription shows, so it wins.
    # NOTE: the `group` parameter has no place in Node and is dropped.
    name = decode_name(fragment) if fragment else ""
    if not name:
        name = _decode_ssr_param(params.get("remarks", "")).strip()

    return Node(
        protocol="ssr",
        host=check_host(host),
        port=check_port(port),
        name=name,
        method=method,
        password=password,
        extra=extra,
    )


def _decode_ssr_param(value: str) -> str:
    """Decode a URL-safe base64 ssr parameter. Text that is not base64 is kept as written."""
    if not value:
        return ""
    try:
        return b64decode_text(value)
    except LinkError:
        return value


def serialize_ssr(node: Node) -> str:
    """Write a node as a standard ssr:// link (URL-safe unpadded base64 throughout)."""
    extra = node.extra

    def encode(value: str) -> str:
        return b64encode_text(value, urlsafe=True, padding=False)

    main = (
        f"{node.host}:{node.port}:{extra.get('protocol', 'origin')}:{node.method}:"
        f"{extra.get('obfs', 'plain')}:{encode(node.password)}"
    )
    query = (
        f"obfsparam={encode(extra.get('obfs_param', ''))}"
        f"&protoparam={encode(extra.get('protocol_param', ''))}"
        f"&remarks={encode(node.name)}"
    )
    return "ssr://" + encode(f"{main}/?{query}")


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


PARSERS = {"ss": parse_ss, "ssr": parse_ssr}
SERIALIZERS = {"ss": serialize_ss, "ssr": serialize_ssr}
