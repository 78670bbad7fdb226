"""Output profiles: score the stored nodes, pick a profile's nodes and render them.

Which nodes are served: the Node rows whose `last_run` is the latest succeeded merge run. The
merge service writes a run's node rows and flips the run to "succeeded" in one transaction, so a
run that fails, is cancelled or is still running never has rows pointing at it, and a reader
never sees half a run. A node that the latest run did not see keeps an older `last_run` and drops
out. Probing only updates liveness and latency on the rows, never which rows are served.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from .core import select
from .core.export.clash import render_clash
from .core.export.links import render_base64, render_raw, serialize_links
from .core.export.singbox import render_singbox
from .core.export.sip008 import render_sip008
from .core.export.table import render_csv, render_report
from .core.node import Node as CoreNode
from .models import MergeRun, Node, OutputProfile, Source, SourceResult, hash_profile_token, new_profile_token

logger = logging.getLogger(__name__)

Format = OutputProfile.Format

# Content type and file extension of each served format. Clash clients ignore the type, but
# browsers and curl users see it.
FORMAT_MEDIA = {
    Format.RAW: ("text/plain; charset=utf-8", "txt"),
    Format.BASE64: ("text/plain; charset=utf-8", "txt"),
    Format.CLASH: ("text/yaml; charset=utf-8", "yaml"),
    Format.SINGBOX: ("application/json", "json"),
    Format.JSON: ("application/json", "json"),
    Format.CSV: ("text/csv; charset=utf-8", "csv"),
    Format.SIP008: ("application/json", "json"),
}
TARGET_ALIASES = {
    "clash-meta": Format.CLASH,
    "clashmeta": Format.CLASH,
    "mihomo": Format.CLASH,
    "yaml": Format.CLASH,
    "sing-box": Format.SINGBOX,
    "v2ray": Format.BASE64,
    "links": Format.RAW,
    "ss": Format.SIP008,
}

# User-Agent substrings (lower case) of clients that read a Clash config or a sing-box config.
# Checked in order; "clash" also covers clash-verge, ClashX, Clash for Windows and FlClash.
# NOTE: plain (non-Meta) Clash cores get the Clash.Meta config too and skip proxy types they lack.
USER_AGENT_FORMATS = (
    ("mihomo", Format.CLASH),
    ("clash", Format.CLASH),
    ("stash", Format.CLASH),
    ("sing-box", Format.SINGBOX),
    ("singbox", Format.SINGBOX),
    # The sing-box apps for Android, iOS, macOS and tvOS send "SFA/1.x", "SFI/1.x", "SFM/1.x", "SFT/1.x".
    ("sfa/", Format.SINGBOX),
    ("sfi/", Format.SINGBOX),
    ("sfm/", Format.SINGBOX),
    ("sft/", Format.SINGBOX),
)

# Source reliability looks at this many latest succeeded runs.
RELIABILITY_RUNS = 10
SCORE_BATCH = 500


class UnknownTarget(ValueError):
    """A ?target= value that names no format."""


def format_for_target(target: str) -> str:
    """Return the format for a ?target= value, or raise UnknownTarget naming it and the choices."""
    value = target.strip().lower()
    if value in Format.values:
        return value
    if value in TARGET_ALIASES:
        return TARGET_ALIASES[value]
    raise UnknownTarget(f"unknown target {target[:40]!r}: use one of {', '.join(Format.values)}")


def format_for_user_agent(user_agent: str, default: str = Format.BASE64) -> str:
    """Return the format a client with this User-Agent reads: Clash YAML, sing-box JSON or `default`.

    v2rayN, v2rayNG, Shadowrocket, Quantumult and unknown clients get `default`, which is the
    profile's default format (base64 unless changed).
    """
    agent = user_agent.lower()
    for needle, fmt in USER_AGENT_FORMATS:
        if needle in agent:
            return fmt
    return default


# --- Token lookup and profile management ------------------------------------------------------


def find_profile(token: str, now: datetime | None = None) -> OutputProfile | None:
    """Return the live profile with this token, or None if unknown, revoked or expired.

    The row is found by the token's SHA-256, then the token itself is compared in constant time,
    so neither step tells an attacker how close a guess was. Callers answer None with one fixed
    404 so that a revoked or expired token looks like an unknown one.
    """
    if not token or len(token) > 64:
        return None
    profile = OutputProfile.objects.filter(token_sha256=hash_profile_token(token)).first()
    if profile is None or not hmac.compare_digest(profile.token.encode(), token.encode()):
        return None
    now = now or timezone.now()
    if profile.revoked or (profile.expires_at is not None and profile.expires_at <= now):
        return None
    return profile


def rotate_token(profile: OutputProfile) -> OutputProfile:
    """Give the profile a new random token; the old URL stops working at once."""
    profile.token = new_profile_token()
    profile.save(update_fields=["token", "updated_at"])
    logger.info("output profile %s got a new token", profile.pk)
    return profile


def revoke(profile: OutputProfile) -> OutputProfile:
    profile.revoked = True
    profile.save(update_fields=["revoked", "updated_at"])
    logger.info("output profile %s revoked", profile.pk)
    return profile


def subscription_path(profile: OutputProfile) -> str:
    return reverse("merger:subscription", args=[profile.token])


def subscription_url(profile: OutputProfile, request: Any = None) -> str:
    """Return the absolute subscription URL: PUBLIC_BASE_URL, else the request's host, else localhost.

    The localhost fallback matches `manage.py runserver`'s default address, for commands run
    without PUBLIC_BASE_URL.
    """
    path = subscription_path(profile)
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL + path
    if request is not None:
        return request.build_absolute_uri(path)
    return "http://127.0.0.1:8000" + path


# --- Selection -------------------------------------------------------------------------------

# Profile fields checked one at a time, so that an error is reported on the field that contains it.
_FIELD_ARGUMENTS = {
    "include_regex": "include",
    "exclude_regex": "exclude",
    "protocols": "protocols",
    "ports": "ports",
    "regions": "regions",
    "max_latency_ms": "max_latency_ms",
    "top_n": "top_n",
    "per_protocol_cap": "per_protocol_cap",
    "sort": "sort",
    "rename_template": "rename_template",
}


def validate_profile(profile: OutputProfile) -> None:
    """Raise ValidationError, keyed by field, for every filter or template setting that is invalid."""
    errors: dict[str, str] = {}
    for field_name, argument in _FIELD_ARGUMENTS.items():
        value = getattr(profile, field_name)
        if field_name in ("protocols", "ports", "regions") and not isinstance(value, list):
            errors[field_name] = f"{field_name} must be a list, got {value!r}"
            continue
        try:
            select.make_selection(**{argument: value})
        except select.SelectionError as error:
            errors[field_name] = str(error)
    if errors:
        raise ValidationError(errors)


def selection_for(profile: OutputProfile) -> select.Selection:
    return select.make_selection(
        include=profile.include_regex,
        exclude=profile.exclude_regex,
        protocols=profile.protocols or (),
        ports=profile.ports or (),
        regions=profile.regions or (),
        alive_only=profile.alive_only,
        max_latency_ms=profile.max_latency_ms,
        top_n=profile.top_n,
        per_protocol_cap=profile.per_protocol_cap,
        sort=profile.sort,
        rename_template=profile.rename_template,
    )


def served_run() -> MergeRun | None:
    """Return the latest succeeded merge run, whose node rows are what every profile serves."""
    return (
        MergeRun.objects.filter(
            kind=MergeRun.Kind.MERGE, status=MergeRun.Status.SUCCEEDED, finished_at__isnull=False
        )
        .order_by("-finished_at", "-pk")
        .first()
    )


def _served_rows(run: MergeRun, selection: select.Selection) -> QuerySet[Node]:
    # The cheap filters run in SQL as well as in select.select(), so fewer rows are decoded.
    rows = Node.objects.filter(last_run=run)
    if selection.protocols:
        rows = rows.filter(protocol__in=selection.protocols)
    if selection.ports:
        rows = rows.filter(port__in=selection.ports)
    if selection.alive_only:
        rows = rows.filter(alive=True)
    if selection.max_latency_ms is not None:
        rows = rows.filter(latency_ms__lte=selection.max_latency_ms)
    return rows


@dataclass(slots=True)
class ProfileNodes:
    run: MergeRun | None
    nodes: list[CoreNode]


def build_profile_nodes(profile: OutputProfile) -> ProfileNodes:
    """Return the profile's nodes in output order, renamed, with names unique across the list."""
    selection = selection_for(profile)
    run = served_run()
    if run is None:
        return ProfileNodes(None, [])
    candidates = [
        select.Candidate(
            node=select.node_from_dict(data),
            alive=alive,
            latency_ms=latency_ms,
            score=score,
            country=country,
        )
        for data, alive, latency_ms, score, country in _served_rows(run, selection)
        .order_by("pk")
        .values_list("data", "alive", "latency_ms", "score", "country")
        .iterator(chunk_size=2000)
    ]
    chosen = select.select(candidates, selection)
    names = select.rename(chosen, selection.rename_template)
    nodes = []
    for item, name in zip(chosen, names, strict=True):
        item.node.name = name
        nodes.append(item.node)
    return ProfileNodes(run, nodes)


# --- Rendering -------------------------------------------------------------------------------


@dataclass(slots=True)
class Rendered:
    body: bytes
    format: str
    content_type: str
    filename: str
    etag: str
    count: int
    skipped: dict[str, int]


def render_profile(profile: OutputProfile, fmt: str) -> Rendered:
    """Render the profile's nodes in one format, with the headers' values that depend on the body."""
    selected = build_profile_nodes(profile)
    nodes = selected.nodes
    skipped: dict[str, int] = {}
    if fmt in (Format.RAW, Format.BASE64, Format.CSV, Format.JSON):
        links, link_skips = serialize_links(nodes)
        skipped = dict(link_skips)
        if fmt == Format.RAW:
            text: str | bytes = render_raw(links)
        elif fmt == Format.BASE64:
            text = render_base64(render_raw(links))
        elif fmt == Format.CSV:
            text = render_csv(nodes, links)
        else:
            # No clock in the stats: the same nodes must give the same body, and so the same ETag.
            stats = {
                "profile": profile.name,
                "run_id": selected.run.pk if selected.run else None,
                "run_finished_at": selected.run.finished_at.isoformat() if selected.run else None,
                "count": len(nodes),
            }
            text = render_report(stats, nodes, links)
    elif fmt == Format.CLASH:
        text, clash_skips = render_clash(nodes)
        skipped = dict(clash_skips)
    elif fmt == Format.SINGBOX:
        text, singbox_skips = render_singbox(nodes)
        skipped = dict(singbox_skips)
    elif fmt == Format.SIP008:
        text, sip_skips = render_sip008(nodes, userinfo_for(profile, selected.run))
        skipped = dict(sip_skips)
    else:
        raise UnknownTarget(f"unknown format {fmt!r}: use one of {', '.join(Format.values)}")

    body = text.encode("utf-8") if isinstance(text, str) else text
    content_type, extension = FORMAT_MEDIA[fmt]
    etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
    return Rendered(
        body=body,
        format=fmt,
        content_type=content_type,
        filename=f"{profile.name}.{extension}",
        etag=etag,
        count=len(nodes),
        skipped=skipped,
    )


def userinfo_for(profile: OutputProfile, run: MergeRun | None) -> dict[str, int] | None:
    """Return the traffic quota to announce under the profile's policy, or None.

    The sources are those that took part in `run`, by name. "first" takes the first one with a
    quota; "sum" adds upload, download and total over them and takes the earliest expiry.
    """
    policy = profile.userinfo_policy
    if policy == OutputProfile.UserinfoPolicy.NONE or run is None:
        return None
    source_ids = SourceResult.objects.filter(run=run, source__isnull=False).values("source_id")
    quotas = [
        userinfo
        for userinfo in Source.objects.filter(pk__in=source_ids)
        .order_by("name")
        .values_list("userinfo", flat=True)
        if isinstance(userinfo, dict) and userinfo
    ]
    if not quotas:
        return None
    if policy == OutputProfile.UserinfoPolicy.FIRST:
        return {key: int(value) for key, value in quotas[0].items()}
    total: dict[str, int] = {}
    for quota in quotas:
        for key in ("upload", "download", "total"):
            if key in quota:
                total[key] = total.get(key, 0) + int(quota[key])
    expiries = [int(quota["expire"]) for quota in quotas if int(quota.get("expire") or 0) > 0]
    if expiries:
        total["expire"] = min(expiries)
    return total


def format_userinfo(userinfo: dict[str, int]) -> str:
    """Write a quota as a subscription-userinfo header value: "upload=1; download=2; total=3; expire=4"."""
    return "; ".join(
        f"{key}={userinfo[key]}" for key in ("upload", "download", "total", "expire") if key in userinfo
    )


# --- Scores and countries --------------------------------------------------------------------


def source_reliabilities() -> dict[str, float]:
    """Return each input label's reliability (0 to 1) from its recent results and current failures."""
    run_ids = list(
        MergeRun.objects.filter(kind=MergeRun.Kind.MERGE, status=MergeRun.Status.SUCCEEDED)
        .order_by("-finished_at", "-pk")
        .values_list("pk", flat=True)[:RELIABILITY_RUNS]
    )
    history: dict[str, list[bool]] = {}
    for label, ok in SourceResult.objects.filter(run_id__in=run_ids).values_list("label", "ok"):
        history.setdefault(label, []).append(ok)
    failures = dict(Source.objects.values_list("name", "consecutive_failures"))
    return {label: select.source_reliability(oks, failures.get(label, 0)) for label, oks in history.items()}


def update_scores(node_ids: Iterable[int] | None = None, *, last_run: MergeRun | None = None) -> int:
    """Recompute Node.score and Node.country; return the number of rows changed.

    Every node is updated unless `node_ids` or `last_run` narrows the set; `last_run` selects the
    nodes a merge stored, without an id list that could pass SQLite's variable limit.

    The merge and the probe call this after they write. Weights come from
    VPNMERGER["SCORE_WEIGHTS"]; the country comes from the name, then from the GeoIP database
    when VPNMERGER["GEOIP_DATABASE"] is set and the host is an IP address.
    """
    options = settings.VPNMERGER
    weights = select.check_weights(options["SCORE_WEIGHTS"])
    ceiling = float(options["SCORE_LATENCY_CEILING_MS"])
    reliabilities = source_reliabilities()
    geoip = _geoip_reader(options.get("GEOIP_DATABASE") or "")

    rows = Node.objects.all()
    if node_ids is not None:
        rows = rows.filter(pk__in=list(node_ids))
    if last_run is not None:
        rows = rows.filter(last_run=last_run)
    changed: list[Node] = []
    updated = 0
    fields = ("pk", "name", "host", "origins", "alive", "latency_ms", "success_ratio", "score", "country")
    for pk, name, host, origins, alive, latency_ms, success_ratio, old_score, old_country in (
        rows.order_by("pk").values_list(*fields).iterator(chunk_size=2000)
    ):
        reliability = max((reliabilities.get(label, 0.0) for label in origins or ()), default=0.0)
        score = select.compute_score(
            alive=alive,
            latency_ms=latency_ms,
            success_ratio=success_ratio,
            source_reliability=reliability,
            weights=weights,
            latency_ceiling_ms=ceiling,
        )
        country = select.detect_country(name)
        if not country and geoip is not None:
            country = geoip_country(geoip, host)
        if score != old_score or country != old_country:
            changed.append(Node(pk=pk, score=score, country=country))
        if len(changed) >= SCORE_BATCH:
            updated += len(changed)
            Node.objects.bulk_update(changed, ["score", "country"])
            changed = []
    if changed:
        updated += len(changed)
        Node.objects.bulk_update(changed, ["score", "country"])
    return updated


@lru_cache(maxsize=4)
def _open_geoip(path: str) -> Any:
    import maxminddb

    return maxminddb.open_database(path)


def _geoip_reader(path: str) -> Any:
    """Return a MaxMind reader for `path`, or None when unset or unreadable (logged, not raised)."""
    if not path:
        return None
    try:
        return _open_geoip(path)
    except (OSError, ValueError) as error:
        logger.warning(
            "GeoIP database %s could not be opened, countries come from names only: %s", path, error
        )
        return None


def geoip_country(reader: Any, host: str) -> str:
    """Return the ISO country of an IP literal from a MaxMind database, or '' (names are never resolved)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return ""
    try:
        record = reader.get(str(address))
    except ValueError:
        return ""
    if not isinstance(record, dict):
        return ""
    for key in ("country", "registered_country"):
        code = (record.get(key) or {}).get("iso_code")
        if isinstance(code, str) and select.is_country_code(code.upper()):
            return code.upper()
    return ""
