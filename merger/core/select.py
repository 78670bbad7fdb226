"""Rank, filter and rename nodes for an output profile.

Plain functions over plain data: the Django side loads the nodes and their probe figures, and
these functions score them, choose which to serve, in what order and under what names.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pycountry

from .export.names import unique_names
from .node import PROTOCOLS, Node

SORT_KEYS = ("score", "latency", "name")

# Placeholders of a rename template and what each one is replaced with.
RENAME_PLACEHOLDERS = {
    "flag": "flag emoji of the country, empty when unknown",
    "country": "ISO 3166 alpha-2 country code, empty when unknown",
    "country_name": "English country name, empty when unknown",
    "protocol": "protocol name, e.g. vless",
    "index": "1-based position in the output",
    "latency": "latency such as '85ms', empty when not probed",
    "score": "score from 0 to 100, rounded",
    "name": "the original name",
    "host": "server address",
    "port": "server port",
    "network": "transport, e.g. ws",
    "security": "none, tls or reality",
}

DEFAULT_WEIGHTS = {"latency": 0.4, "success": 0.4, "source": 0.2}
DEFAULT_LATENCY_CEILING_MS = 2000.0


class SelectionError(ValueError):
    """An invalid profile setting; the message names the setting and the bad value."""


# --- Scoring ---------------------------------------------------------------------------------


def check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Return the score weights with defaults filled in, or raise SelectionError for a bad one."""
    result = dict(DEFAULT_WEIGHTS)
    for key, value in weights.items():
        if key not in DEFAULT_WEIGHTS:
            raise SelectionError(f"unknown score weight {key!r}: use latency, success or source")
        if not isinstance(value, int | float) or value < 0:
            raise SelectionError(f"score weight {key}={value!r} is invalid: use a number >= 0")
        result[key] = float(value)
    if sum(result.values()) <= 0:
        raise SelectionError("score weights are all 0: give at least one weight above 0")
    return result


def compute_score(
    *,
    alive: bool | None,
    latency_ms: float | None,
    success_ratio: float | None,
    source_reliability: float,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    latency_ceiling_ms: float = DEFAULT_LATENCY_CEILING_MS,
) -> float:
    """Return a score from 0 to 100: the weighted mean of three parts, each from 0 to 1.

    - latency: 1 at 0 ms falling linearly to 0 at `latency_ceiling_ms`; 0 when not measured or
      when the last check failed.
    - success: the share of recent checks that passed; without a history, 1 if the last check
      passed and 0 otherwise (never probed counts as 0, so probed live nodes rank first).
    - source: the reliability of the best source the node came from (see `source_reliability`).
    """
    if latency_ms is None or alive is False:
        latency_part = 0.0
    else:
        latency_part = min(1.0, max(0.0, 1.0 - latency_ms / latency_ceiling_ms))
    if success_ratio is not None:
        success_part = min(1.0, max(0.0, success_ratio))
    else:
        success_part = 1.0 if alive else 0.0
    source_part = min(1.0, max(0.0, source_reliability))
    total_weight = weights["latency"] + weights["success"] + weights["source"]
    weighted = (
        weights["latency"] * latency_part
        + weights["success"] * success_part
        + weights["source"] * source_part
    )
    return round(100.0 * weighted / total_weight, 3)


def source_reliability(ok_history: Sequence[bool], consecutive_failures: int = 0) -> float:
    """Return a source's reliability from 0 to 1: its recent fetch success ratio, divided by
    (1 + current consecutive failures) so that a source failing right now drops quickly.

    A source with no history returns 0.
    """
    if not ok_history:
        return 0.0
    ratio = sum(1 for ok in ok_history if ok) / len(ok_history)
    return ratio / (1 + max(0, consecutive_failures))


# --- Regions ---------------------------------------------------------------------------------

_REGIONAL_INDICATOR_A = 0x1F1E6
_FLAG_RE = re.compile("[\U0001f1e6-\U0001f1ff]{2}")
# Upper-case two- or three-letter words: "US_280", "HK-127.1.2.3", "[JP]". Lower case is left out
# because "us", "in", "it" and "de" are ordinary words in remarks.
_CODE_RE = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2,3})(?![A-Za-z0-9])")
# Transport and security words of labels such as "TR-TCP-TLS" and "VL-WS-NA", where TR means
# trojan (not Turkey) and WS WebSocket (not Samoa): a code inside such a label is not a country.
_TRANSPORT_WORDS = frozenset(
    (
        "TCP",
        "UDP",
        "WS",
        "GRPC",
        "H2",
        "HTTP",
        "HTTPUPGRADE",
        "XHTTP",
        "KCP",
        "QUIC",
        "TLS",
        "REALITY",
        "NONE",
    )
)
# Two-letter ISO codes that collectors mostly use for something else: NA is "not available",
# SS is Shadowsocks, AI, TV, AM and PM are words or times. A flag or a country name still finds
# these countries.
_AMBIGUOUS_CODES = frozenset(("NA", "SS", "AI", "TV", "AM", "PM"))
_CODE_ALIASES = {"UK": "GB", "USA": "US", "UAE": "AE", "KSA": "SA"}

# Names without word spacing (Chinese), matched as substrings; longer names are tried first.
_CJK_NAMES = {
    "美国": "US", "日本": "JP", "香港": "HK", "台湾": "TW", "新加坡": "SG", "狮城": "SG", "韩国": "KR",
    "英国": "GB", "德国": "DE", "法国": "FR", "加拿大": "CA", "俄罗斯": "RU", "荷兰": "NL",
    "澳大利亚": "AU", "澳洲": "AU", "印度尼西亚": "ID", "印尼": "ID", "印度": "IN", "土耳其": "TR",
    "意大利": "IT", "巴西": "BR", "越南": "VN", "泰国": "TH", "马来西亚": "MY", "菲律宾": "PH",
    "阿根廷": "AR", "瑞士": "CH", "瑞典": "SE", "西班牙": "ES", "波兰": "PL", "芬兰": "FI",
    "爱尔兰": "IE", "以色列": "IL", "阿联酋": "AE", "乌克兰": "UA", "澳门": "MO", "南非": "ZA",
    "墨西哥": "MX", "伊朗": "IR", "哈萨克斯坦": "KZ", "罗马尼亚": "RO", "挪威": "NO", "丹麦": "DK",
}  # fmt: skip
# English names that are also common words or personal names in remarks.
_AMBIGUOUS_NAMES = frozenset(("jersey", "georgia", "chad", "jordan", "mali", "niger", "guinea", "turkey"))
_NAME_ALIASES = {
    "usa": "US", "america": "US", "united states": "US", "uk": "GB", "britain": "GB", "england": "GB",
    "united kingdom": "GB", "russia": "RU", "korea": "KR", "south korea": "KR", "vietnam": "VN",
    "hongkong": "HK", "hong kong": "HK", "taiwan": "TW", "iran": "IR", "turkiye": "TR",
    "czech republic": "CZ", "czechia": "CZ", "holland": "NL", "emirates": "AE", "dubai": "AE",
}  # fmt: skip


@lru_cache(maxsize=1)
def _countries() -> tuple[frozenset[str], dict[str, str], re.Pattern[str]]:
    """Return the ISO codes, code-to-name map and a regex over English names (built on first use)."""
    codes = set()
    names_by_code = {}
    code_by_name = dict(_NAME_ALIASES)
    for country in pycountry.countries:
        code = country.alpha_2
        display = getattr(country, "common_name", None) or country.name
        codes.add(code)
        names_by_code[code] = display
        for name in (country.name, display):
            if "," not in name and "(" not in name and name.lower() not in _AMBIGUOUS_NAMES:
                code_by_name.setdefault(name.lower(), code)
    alternatives = sorted(code_by_name, key=len, reverse=True)
    pattern = re.compile(
        r"(?<![A-Za-z])(" + "|".join(re.escape(name) for name in alternatives) + r")(?![A-Za-z])",
        re.IGNORECASE,
    )
    _NAME_CODES.update(code_by_name)
    return frozenset(codes), names_by_code, pattern


_NAME_CODES: dict[str, str] = {}
_CJK_RE = re.compile("|".join(sorted(_CJK_NAMES, key=len, reverse=True)))


def is_country_code(code: str) -> bool:
    return code in _countries()[0]


def country_name(code: str) -> str:
    """Return the English name of an ISO alpha-2 code, or '' for an unknown code."""
    return _countries()[1].get(code, "")


def flag_emoji(code: str) -> str:
    """Return the flag emoji (two regional indicator symbols) of an ISO code, or ''."""
    if len(code) != 2 or not is_country_code(code):
        return ""
    return "".join(chr(_REGIONAL_INDICATOR_A + ord(letter) - ord("A")) for letter in code)


def detect_country(name: str) -> str:
    """Return the ISO country code that a node name points to, or '' when it names none.

    Checked in this order: a flag emoji, an upper-case country code word ("US", "HK-1.2.3.4",
    "UK" and "USA" as aliases), a Chinese country name, an English country name. The first flag
    wins, because relay names such as "🇺🇸 US -> 🇬🇧 GB" put the exit last but converters usually
    repeat the exit flag first.
    """
    if not name:
        return ""
    codes, _names, name_re = _countries()
    for match in _FLAG_RE.finditer(name):
        pair = match.group()
        code = chr(ord(pair[0]) - _REGIONAL_INDICATOR_A + ord("A")) + chr(
            ord(pair[1]) - _REGIONAL_INDICATOR_A + ord("A")
        )
        if code in codes:
            return code
    for match in _CODE_RE.finditer(name):
        word = match.group(1)
        code = _CODE_ALIASES.get(word, word)
        if code not in codes or word in _AMBIGUOUS_CODES:
            continue
        if _in_transport_label(name, match.start(), match.end()):
            continue
        return code
    match = _CJK_RE.search(name)
    if match:
        return _CJK_NAMES[match.group()]
    match = name_re.search(name)
    if match:
        return _NAME_CODES.get(match.group(1).lower(), "")
    return ""


def _in_transport_label(name: str, start: int, end: int) -> bool:
    """Return True if name[start:end] is part of a dashed label such as "VL-WS-TLS" or "TR-TCP-NA"."""
    while start > 0 and (name[start - 1].isalnum() or name[start - 1] in "-_"):
        start -= 1
    while end < len(name) and (name[end].isalnum() or name[end] in "-_"):
        end += 1
    parts = name[start:end].replace("_", "-").split("-")
    return any(part.upper() in _TRANSPORT_WORDS for part in parts)


def normalize_region(value: str) -> str:
    """Return the ISO code for a region given as a code, alias or English name; raise SelectionError."""
    text = value.strip()
    upper = text.upper()
    code = _CODE_ALIASES.get(upper, upper)
    if is_country_code(code):
        return code
    _countries()
    by_name = _NAME_CODES.get(text.lower()) or _CJK_NAMES.get(text)
    if by_name:
        return by_name
    raise SelectionError(f"unknown region {value!r}: use an ISO 3166 country code such as US, DE or JP")


# --- Selection -------------------------------------------------------------------------------


@dataclass(slots=True)
class Candidate:
    """A node with the figures that filters and sorting read."""

    node: Node
    alive: bool | None = None
    latency_ms: float | None = None
    score: float = 0.0
    country: str = ""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which nodes an output contains, in what order and under what names.

    Regexes are matched with `re.search`, case-insensitively, against the node name. Empty
    tuples and None mean "no limit".
    """

    include: str = ""
    exclude: str = ""
    protocols: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    regions: tuple[str, ...] = ()
    alive_only: bool = False
    max_latency_ms: float | None = None
    top_n: int | None = None
    per_protocol_cap: int | None = None
    sort: str = "score"
    rename_template: str = ""
    compiled: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def make_selection(
    *,
    include: str = "",
    exclude: str = "",
    protocols: Iterable[str] = (),
    ports: Iterable[int | str] = (),
    regions: Iterable[str] = (),
    alive_only: bool = False,
    max_latency_ms: float | None = None,
    top_n: int | None = None,
    per_protocol_cap: int | None = None,
    sort: str = "score",
    rename_template: str = "",
) -> Selection:
    """Validate the settings and return a Selection; raise SelectionError naming the bad value."""
    compiled = {
        "include": _compile_regex("include", include),
        "exclude": _compile_regex("exclude", exclude),
    }
    protocol_names = []
    for protocol in protocols:
        name = str(protocol).strip().lower()
        name = {"hy2": "hysteria2", "shadowsocks": "ss", "wg": "wireguard", "socks5": "socks"}.get(name, name)
        if name not in PROTOCOLS:
            raise SelectionError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
        protocol_names.append(name)
    port_numbers = []
    for port in ports:
        try:
            number = int(port)
        except (TypeError, ValueError):
            number = 0
        if not 1 <= number <= 65535:
            raise SelectionError(f"invalid port {port!r}: use a number from 1 to 65535")
        port_numbers.append(number)
    region_codes = [normalize_region(str(region)) for region in regions]
    for label, value in (
        ("maximum latency", max_latency_ms),
        ("top N", top_n),
        ("per-protocol cap", per_protocol_cap),
    ):
        if value is not None and value <= 0:
            raise SelectionError(f"invalid {label} {value!r}: use a number above 0, or leave it empty")
    if sort not in SORT_KEYS:
        raise SelectionError(f"unknown sort {sort!r}: use one of {', '.join(SORT_KEYS)}")
    check_template(rename_template)
    return Selection(
        include=include,
        exclude=exclude,
        protocols=tuple(protocol_names),
        ports=tuple(port_numbers),
        regions=tuple(region_codes),
        alive_only=alive_only,
        max_latency_ms=max_latency_ms,
        top_n=top_n,
        per_protocol_cap=per_protocol_cap,
        sort=sort,
        rename_template=rename_template,
        compiled=compiled,
    )


def _compile_regex(label: str, pattern: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as error:
        raise SelectionError(
            f"invalid {label} regex {pattern!r}: {error}; fix the pattern or leave it empty"
        ) from error


def _sort_key(sort: str):
    if sort == "latency":
        # Unmeasured nodes go last; ties go to the higher score.
        return lambda item: (
            item.latency_ms is None,
            item.latency_ms or 0.0,
            -item.score,
            item.node.name.casefold(),
        )
    if sort == "name":
        return lambda item: (item.node.name.casefold(), item.node.name)
    return lambda item: (
        -item.score,
        item.latency_ms is None,
        item.latency_ms or 0.0,
        item.node.name.casefold(),
    )


def select(candidates: Iterable[Candidate], selection: Selection) -> list[Candidate]:
    """Return the candidates that pass every filter, sorted, capped per protocol, then cut to top N."""
    include = selection.compiled.get("include")
    exclude = selection.compiled.get("exclude")
    protocols = frozenset(selection.protocols)
    ports = frozenset(selection.ports)
    regions = frozenset(selection.regions)
    max_latency = selection.max_latency_ms

    kept = []
    for item in candidates:
        node = item.node
        if protocols and node.protocol not in protocols:
            continue
        if ports and node.port not in ports:
            continue
        if selection.alive_only and item.alive is not True:
            continue
        if max_latency is not None and (item.latency_ms is None or item.latency_ms > max_latency):
            continue
        if regions and (item.country or detect_country(node.name)) not in regions:
            continue
        if include is not None and not include.search(node.name):
            continue
        if exclude is not None and exclude.search(node.name):
            continue
        kept.append(item)

    kept.sort(key=_sort_key(selection.sort))
    if selection.per_protocol_cap is not None:
        counts: dict[str, int] = {}
        capped = []
        for item in kept:
            count = counts.get(item.node.protocol, 0)
            if count < selection.per_protocol_cap:
                counts[item.node.protocol] = count + 1
                capped.append(item)
        kept = capped
    if selection.top_n is not None:
        kept = kept[: selection.top_n]
    return kept


# --- Renaming --------------------------------------------------------------------------------

_SAMPLE_VALUES = {
    "flag": "🇺🇸", "country": "US", "country_name": "United States", "protocol": "vless", "index": 1,
    "latency": "85ms", "score": 90, "name": "x", "host": "127.0.0.1", "port": 443, "network": "ws",
    "security": "tls",
}  # fmt: skip
_SPACES_RE = re.compile(r"\s{2,}")


def check_template(template: str) -> None:
    """Raise SelectionError if the template uses an unknown placeholder or cannot be formatted."""
    if not template:
        return
    try:
        fields = [parsed[1] for parsed in string.Formatter().parse(template) if parsed[1] is not None]
    except ValueError as error:
        raise SelectionError(
            f"invalid rename template {template!r}: {error}; write braces as {{{{ and }}}}"
        ) from error
    for name in fields:
        if name not in RENAME_PLACEHOLDERS:
            known = ", ".join("{" + key + "}" for key in RENAME_PLACEHOLDERS)
            raise SelectionError(f"unknown placeholder {{{name}}} in rename template: use {known}")
    try:
        template.format_map(_SAMPLE_VALUES)
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise SelectionError(f"invalid rename template {template!r}: {error}") from error


def placeholder_values(item: Candidate, index: int) -> dict[str, Any]:
    node = item.node
    country = item.country or detect_country(node.name)
    return {
        "flag": flag_emoji(country),
        "country": country,
        "country_name": country_name(country),
        "protocol": node.protocol,
        "index": index,
        "latency": f"{item.latency_ms:.0f}ms" if item.latency_ms is not None else "",
        "score": round(item.score),
        "name": node.name,
        "host": node.host,
        "port": node.port,
        "network": node.network,
        "security": node.security,
    }


def rename(items: Sequence[Candidate], template: str) -> list[str]:
    """Return the output name of every item, in order, unique across the list.

    With a template each name is the template filled in (runs of spaces left by empty
    placeholders collapse to one); without one the original names are kept. Repeats get " 2",
    " 3"... because Clash rejects duplicate proxy names and sing-box duplicate tags.
    """
    if template:
        check_template(template)
        names = [
            _SPACES_RE.sub(" ", template.format_map(placeholder_values(item, index))).strip()
            for index, item in enumerate(items, 1)
        ]
    else:
        names = [item.node.name for item in items]
    probes = [
        Node(protocol=item.node.protocol, host=item.node.host, port=item.node.port, name=name)
        for item, name in zip(items, names, strict=True)
    ]
    return unique_names(probes)


def node_from_dict(data: Mapping[str, Any]) -> Node:
    """Rebuild a Node from `Node.as_dict()` output (the JSON stored for each node row).

    Keys that `Node` does not have are ignored, so rows written by a newer version still load.
    """
    values = {key: value for key, value in data.items() if key in _NODE_FIELDS}
    if "alpn" in values:
        values["alpn"] = tuple(values["alpn"])
    if "extra" in values:
        values["extra"] = dict(values["extra"])
    if "sources" in values:
        values["sources"] = list(values["sources"])
    return Node(**values)


_NODE_FIELDS = frozenset(Node.__slots__)  # type: ignore[attr-defined]
