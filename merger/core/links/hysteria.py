"""Hysteria v1 (hysteria://), Hysteria 2 (hysteria2://, hy2://) and TUIC v5 (tuic://) share links.

All three run over QUIC with TLS, so their nodes always have security "tls". Port hopping
(hysteria and hysteria2) goes to extra["ports"] as the link writes it, in the port position
(`host:443,1000-2000`) or in the `mport` parameter. `Node.port` is the first port.
"""

from __future__ import annotations

from urllib.parse import unquote

from ..errors import LinkError
from ..node import Node
from .common import (
    build_query,
    check_host,
    check_port,
    decode_name,
    encode_name,
    parse_query,
    percent_encode,
    split_alpn,
    split_body,
    split_host_port,
    truthy,
)

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def normalize_port_spec(spec: str) -> str:
    """Return a port-hopping spec as `443,1000-2000`: no spaces, ranges with '-'.

    sing-box writes ranges as `1000:2000`, which become dashes. Raises LinkError when a part is
    not a port in 1-65535 or a range whose start is above its end.
    """
    cleaned = spec.replace(" ", "").replace(":", "-").strip(",")
    parts = cleaned.split(",")
    normalized = []
    for part in parts:
        start, sep, end = part.partition("-")
        if not (start.isdigit() and (not sep or end.isdigit())):
            raise LinkError(f"invalid port hopping range {spec[:40]!r}: use ports like 443,1000-2000")
        first = int(start)
        last = int(end) if sep else first
        if not (1 <= first <= last <= 65535):
            raise LinkError(f"invalid port hopping range {spec[:40]!r}: ports must be 1-65535, low-high")
        # A one-port range ("443-443", which sing-box needs) is the same as the single port.
        normalized.append(str(first) if first == last else f"{first}-{last}")
    return ",".join(normalized)


def _split_ports(port_text: str, mport: str) -> tuple[int, str]:
    """Return the main port and the hopping spec from the port position and `mport`.

    A hopping spec equal to the main port alone is dropped, because it hops nowhere.
    """
    if not port_text:
        port_text = "443"
    if "," in port_text or "-" in port_text:
        ports = normalize_port_spec(port_text)
        port = int(ports.partition(",")[0].partition("-")[0])
    else:
        port = check_port(port_text)
        ports = ""
    if mport:
        ports = normalize_port_spec(mport)
    if ports == str(port):
        ports = ""
    return port, ports


def _format_ports(host: str, port: int, ports: str) -> tuple[str, str]:
    """Return the `host:port` text and the `mport` value that `_split_ports` reads back.

    The official form puts the spec in the port position. That reads back only when the spec
    starts with the main port, so other specs go to `mport` next to the main port.
    """
    address = f"[{host}]" if ":" in host else host
    if ports:
        head = ports.partition(",")[0].partition("-")[0]
        if head == str(port):
            return f"{address}:{ports}", ""
        return f"{address}:{port}", ports
    return f"{address}:{port}", ""


def _split(text: str) -> tuple[str, str, str, str, str]:
    """Split a link into userinfo, host, port, query and fragment, still percent-encoded.

    Unlike `common.split_link`, the host is found after the last '@' before the query, because
    real hysteria2 auth strings contain raw '/' and '@'. These schemes carry no path.
    """
    body, query, fragment = split_body(text)
    userinfo, _, hostport = body.rpartition("@")
    slash_index = hostport.find("/")
    if slash_index >= 0:
        hostport = hostport[:slash_index]
    host, port = split_host_port(hostport)
    return userinfo, host, port, query, fragment


def _insecure(params: dict[str, str]) -> bool:
    for key in ("insecure", "allowinsecure", "allow_insecure", "skip-cert-verify"):
        if key in params:
            return truthy(params[key])
    return False


def _mbps(value: str) -> int:
    """Read a bandwidth hint such as `100` or `100 Mbps`, returning 0 when absent or not a number."""
    digits = value.strip().lower().removesuffix("mbps").strip()
    return int(digits) if digits.isdigit() else 0


def _name(fragment: str) -> str:
    return decode_name(fragment) if fragment else ""


# --- hysteria v1 --------------------------------------------------------------------------------


def parse_hysteria(text: str) -> Node:
    """Parse a Hysteria v1 link: `hysteria://host:port?auth=..&peer=..&upmbps=..#name`."""
    userinfo, host, port_text, query, fragment = _split(text)
    params = parse_query(query)
    port, ports = _split_ports(port_text, params.get("mport", ""))

    extra: dict = {}
    if ports:
        extra["ports"] = ports
    protocol = params.get("protocol", "").strip().lower()
    if protocol and protocol != "udp":
        extra["hysteria_protocol"] = protocol
    # v1 has a single obfs method (xplus), so only its password identifies the setting. Some
    # generators put the password itself in `obfs` and leave `obfsParam` out.
    obfs_param = params.get("obfsparam", "")
    obfs = params.get("obfs", "")
    if not obfs_param and obfs.lower() not in ("", "xplus", "none"):
        obfs_param = obfs
    if obfs_param:
        extra["obfs_password"] = obfs_param
    up_mbps = _mbps(params.get("upmbps", params.get("up", "")))
    if up_mbps:
        extra["up_mbps"] = up_mbps
    down_mbps = _mbps(params.get("downmbps", params.get("down", "")))
    if down_mbps:
        extra["down_mbps"] = down_mbps

    auth = params.get("auth", params.get("auth_str", ""))
    if not auth and userinfo:
        auth = unquote(userinfo)
    return Node(
        protocol="hysteria",
        host=check_host(host),
        port=port,
        name=_name(fragment),
        password=auth,
        security="tls",
        sni=params.get("peer", params.get("sni", "")),
        alpn=split_alpn(params.get("alpn", "")),
        insecure=_insecure(params),
        extra=extra,
    )


def serialize_hysteria(node: Node) -> str:
    """Write a node as a Hysteria v1 link in the form the Hysteria v1 client documents."""
    extra = node.extra
    address, mport = _format_ports(node.host, node.port, extra.get("ports", ""))
    obfs_password = extra.get("obfs_password", "")
    query = build_query(
        {
            "protocol": extra.get("hysteria_protocol", ""),
            "auth": node.password,
            "peer": node.sni,
            "insecure": node.insecure,
            "upmbps": extra.get("up_mbps", 0) or "",
            "downmbps": extra.get("down_mbps", 0) or "",
            "alpn": ",".join(node.alpn),
            "obfs": "xplus" if obfs_password else "",
            "obfsParam": obfs_password,
            "mport": mport,
        }
    )
    return _finish(f"hysteria://{address}", query, node.name)


# --- hysteria2 ----------------------------------------------------------------------------------


def parse_hysteria2(text: str) -> Node:
    """Parse a Hysteria 2 link (scheme hysteria2 or hy2): `hysteria2://auth@host:port/?sni=..#name`.

    The auth string is kept whole, including a `user:pass` form, because the server compares it
    as one string.
    """
    userinfo, host, port_text, query, fragment = _split(text)
    params = parse_query(query)
    port, ports = _split_ports(port_text, params.get("mport", params.get("ports", "")))
    auth = unquote(userinfo) if "%" in userinfo else userinfo
    if not auth:
        auth = params.get("auth", "")
    if not auth:
        raise LinkError("missing hysteria2 password: put it before '@' as hysteria2://password@host")

    extra: dict = {}
    if ports:
        extra["ports"] = ports
    # An obfs password means nothing without the obfs type (salamander), so it is kept only with one.
    obfs = params.get("obfs", "").strip().lower()
    if obfs and obfs != "none":
        extra["obfs"] = obfs
        obfs_password = params.get("obfs-password", "")
        if obfs_password:
            extra["obfs_password"] = obfs_password
    pin = params.get("pinsha256", "")
    if pin:
        extra["pin_sha256"] = pin
    up_mbps = _mbps(params.get("upmbps", params.get("up", "")))
    if up_mbps:
        extra["up_mbps"] = up_mbps
    down_mbps = _mbps(params.get("downmbps", params.get("down", "")))
    if down_mbps:
        extra["down_mbps"] = down_mbps

    return Node(
        protocol="hysteria2",
        host=check_host(host),
        port=port,
        name=_name(fragment),
        password=auth,
        security="tls",
        sni=params.get("sni", params.get("peer", "")),
        alpn=split_alpn(params.get("alpn", "")),
        insecure=_insecure(params),
        extra=extra,
    )


def serialize_hysteria2(node: Node) -> str:
    """Write a node as a `hysteria2://` link in the form the Hysteria 2 documentation gives."""
    extra = node.extra
    address, mport = _format_ports(node.host, node.port, extra.get("ports", ""))
    query = build_query(
        {
            "sni": node.sni,
            "insecure": node.insecure,
            "obfs": extra.get("obfs", ""),
            "obfs-password": extra.get("obfs_password", ""),
            "pinSHA256": extra.get("pin_sha256", ""),
            "alpn": ",".join(node.alpn),
            "upmbps": extra.get("up_mbps", 0) or "",
            "downmbps": extra.get("down_mbps", 0) or "",
            "mport": mport,
        }
    )
    userinfo = percent_encode(node.password, ":")
    return _finish(f"hysteria2://{userinfo}@{address}/", query, node.name)


# --- tuic ---------------------------------------------------------------------------------------


def parse_tuic(text: str) -> Node:
    """Parse a TUIC v5 link: `tuic://uuid:password@host:port?congestion_control=bbr&sni=..#name`."""
    userinfo, host, port_text, query, fragment = _split(text)
    params = parse_query(query)
    if not userinfo:
        raise LinkError("missing tuic uuid:password before '@'")
    raw_uuid, sep, raw_password = userinfo.partition(":")
    uuid = unquote(raw_uuid).strip()
    password = unquote(raw_password) if "%" in raw_password else raw_password
    if not _is_uuid(uuid):
        if not sep:
            raise LinkError("tuic link has a token but no uuid:password (tuic v4 is not supported)")
        raise LinkError(f"invalid tuic user id {uuid[:40]!r}: not a UUID")
    if not password:
        raise LinkError("missing tuic password: write tuic://uuid:password@host:port")

    extra: dict = {"version": 5}
    congestion = params.get("congestion_control", params.get("congestion-control", "")).strip().lower()
    if congestion:
        extra["congestion_control"] = congestion
    relay_mode = params.get("udp_relay_mode", params.get("udp-relay-mode", "")).strip().lower()
    if relay_mode:
        extra["udp_relay_mode"] = relay_mode
    if truthy(params.get("reduce_rtt", params.get("zero_rtt_handshake", ""))):
        extra["reduce_rtt"] = True

    return Node(
        protocol="tuic",
        host=check_host(host),
        port=check_port(port_text),
        name=_name(fragment),
        uuid=uuid.lower(),
        password=password,
        security="tls",
        sni=params.get("sni", params.get("peer", "")),
        alpn=split_alpn(params.get("alpn", "")),
        insecure=_insecure(params),
        extra=extra,
    )


def _is_uuid(value: str) -> bool:
    # TUIC v5 sends the user id as 16 raw bytes, so unlike Xray it cannot take free-form ids.
    if len(value) != 36:
        return False
    if value[8] != "-" or value[13] != "-" or value[18] != "-" or value[23] != "-":
        return False
    return all(char in _HEX_DIGITS for char in value.replace("-", ""))


def serialize_tuic(node: Node) -> str:
    """Write a node as a TUIC v5 link with the parameter names sing-box and v2rayN read."""
    extra = node.extra
    address = f"[{node.host}]" if ":" in node.host else node.host
    query = build_query(
        {
            "congestion_control": extra.get("congestion_control", ""),
            "udp_relay_mode": extra.get("udp_relay_mode", ""),
            "alpn": ",".join(node.alpn),
            "sni": node.sni,
            "allow_insecure": node.insecure,
            "reduce_rtt": bool(extra.get("reduce_rtt")),
        }
    )
    userinfo = f"{node.uuid}:{percent_encode(node.password, '')}"
    return _finish(f"tuic://{userinfo}@{address}:{node.port}", query, node.name)


def _finish(base: str, query: str, name: str) -> str:
    link = f"{base}?{query}" if query else base
    return f"{link}#{encode_name(name)}" if name else link


PARSERS = {
    "hysteria": parse_hysteria,
    "hysteria2": parse_hysteria2,
    "hy2": parse_hysteria2,
    "tuic": parse_tuic,
}
SERIALIZERS = {
    "hysteria": serialize_hysteria,
    "hysteria2": serialize_hysteria2,
    "tuic": serialize_tuic,
}
