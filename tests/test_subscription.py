"""GET /sub/<token>: formats, client detection, headers, ETag, 404s and token-free logs."""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
from datetime import timedelta

import pytest
import yaml
from django.utils import timezone

from merger.core.decode import parse_body
from merger.logfilters import RedactSubscriptionTokens
from merger.models import OutputProfile, Source, SourceResult
from merger.subscription import NOT_FOUND_BODY
from tests.test_profiles import corpus_nodes, store_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def served(db):
    """A succeeded run with a mixed corpus file (http, socks, ss, vless, vmess, trojan) stored."""
    nodes = corpus_nodes("b64-mixed-http-socks.txt")
    run = store_run(nodes)
    source = Source.objects.create(
        name="provider",
        url="file:///provider",
        userinfo={"upload": 5, "download": 7, "total": 1000, "expire": 1900000000},
    )
    SourceResult.objects.create(run=run, source=source, label="provider", url=source.url, ok=True)
    return nodes


@pytest.fixture
def profile(served):
    return OutputProfile.objects.create(name="Home", update_interval_hours=6)


def sub_url(profile: OutputProfile, target: str = "") -> str:
    return f"/sub/{profile.token}" + (f"?target={target}" if target else "")


# --- Formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected_format"),
    [
        ("raw", "links"),
        ("base64", "base64"),
        ("clash", "clash"),
        ("singbox", "singbox"),
        ("json", "json-links"),
        ("sip008", "sip008"),
    ],
)
def test_every_target_reparses(client, profile, served, target, expected_format):
    response = client.get(sub_url(profile, target))
    assert response.status_code == 200
    parsed = parse_body(response.content)
    assert parsed.format == expected_format
    assert parsed.nodes
    served_fingerprints = {node.fingerprint for node in served}
    assert {node.fingerprint for node in parsed.nodes} <= served_fingerprints
    if target in ("raw", "base64", "json"):
        # Share links exist for every protocol in this file, so nothing may go missing.
        assert len(parsed.nodes) == len(served)
    if target == "sip008":
        assert len(parsed.nodes) == sum(1 for node in served if node.protocol == "ss")


def test_clash_target_is_yaml_with_unique_names(client, profile, served):
    response = client.get(sub_url(profile, "clash"))
    config = yaml.safe_load(response.content)
    names = [proxy["name"] for proxy in config["proxies"]]
    assert len(names) == len(set(names))
    assert response["Content-Type"].startswith("text/yaml")


def test_singbox_target_is_json(client, profile):
    response = client.get(sub_url(profile, "singbox"))
    config = json.loads(response.content)
    assert any(outbound["type"] == "vless" for outbound in config["outbounds"])


def test_csv_target_has_links_that_reparse(client, profile, served):
    response = client.get(sub_url(profile, "csv"))
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == len(served)
    parsed = parse_body("\n".join(row["link"] for row in rows))
    assert len(parsed.nodes) == len(served)


def test_base64_body_decodes_to_raw(client, profile):
    raw = client.get(sub_url(profile, "raw")).content
    encoded = client.get(sub_url(profile, "base64")).content
    assert base64.b64decode(encoded) == raw


def test_unknown_target_is_400_naming_it(client, profile):
    response = client.get(sub_url(profile, "wat"))
    assert response.status_code == 400
    assert b"unknown target 'wat'" in response.content


def test_profile_filters_apply_to_served_body(client, served):
    profile = OutputProfile.objects.create(
        name="ss only", protocols=["ss"], rename_template="{protocol} {index}"
    )
    parsed = parse_body(client.get(sub_url(profile, "raw")).content)
    assert {node.protocol for node in parsed.nodes} == {"ss"}
    assert parsed.nodes[0].name == "ss 1"


# --- Client detection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        ("clash-verge/v1.7.7", "clash"),
        ("ClashX Pro/1.118.0", "clash"),
        ("ClashforWindows/0.20.39", "clash"),
        ("mihomo/1.18.10", "clash"),
        ("Stash/2.4.8 Clash/1.9.0", "clash"),
        ("FlClash/v0.8.80 clash-verge", "clash"),
        ("sing-box 1.11.0", "singbox"),
        ("SFA/1.10.7 (Android 14)", "singbox"),
        ("SFI/1.11.0 (iOS 18.1)", "singbox"),
        ("SFM/1.11.0", "singbox"),
        ("v2rayN/7.4.2", "base64"),
        ("v2rayNG/1.9.30", "base64"),
        ("Shadowrocket/2.2.54 CFNetwork/1568", "base64"),
        ("Quantumult%20X/1.5.2", "base64"),
        ("curl/8.5.0", "base64"),
        ("", "base64"),
    ],
)
def test_user_agent_detection_table(client, profile, user_agent, expected):
    response = client.get(sub_url(profile), HTTP_USER_AGENT=user_agent)
    assert response.status_code == 200
    extension = {"clash": ".yaml", "singbox": ".json", "base64": ".txt"}[expected]
    assert f'filename="Home{extension}"' in response["Content-Disposition"]
    if expected == "base64":
        assert parse_body(response.content).format == "base64"
    else:
        assert parse_body(response.content).format == expected


def test_target_overrides_user_agent(client, profile):
    response = client.get(sub_url(profile, "raw"), HTTP_USER_AGENT="clash-verge/v1.7.7")
    assert parse_body(response.content).format == "links"


def test_unknown_client_gets_profile_default_format(client, served):
    profile = OutputProfile.objects.create(name="yaml default", default_format=OutputProfile.Format.CLASH)
    response = client.get(sub_url(profile), HTTP_USER_AGENT="SomeNewClient/1.0")
    assert parse_body(response.content).format == "clash"


# --- Headers ---------------------------------------------------------------------------------


def test_subscription_headers(client, profile):
    response = client.get(sub_url(profile, "clash"))
    assert response["profile-update-interval"] == "6"
    assert response["subscription-userinfo"] == "upload=5; download=7; total=1000; expire=1900000000"
    assert response["Content-Disposition"] == 'attachment; filename="Home.yaml"'
    assert "User-Agent" in response["Vary"]


def test_userinfo_none_policy_sends_no_header(client, served):
    profile = OutputProfile.objects.create(name="quiet", userinfo_policy=OutputProfile.UserinfoPolicy.NONE)
    response = client.get(sub_url(profile, "raw"))
    assert "subscription-userinfo" not in response


def test_etag_gives_304(client, profile):
    first = client.get(sub_url(profile, "clash"))
    etag = first["ETag"]
    assert etag.startswith('"')

    again = client.get(sub_url(profile, "clash"), HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag

    stale = client.get(sub_url(profile, "clash"), HTTP_IF_NONE_MATCH='"something-else"')
    assert stale.status_code == 200


def test_etag_changes_with_profile_settings(client, profile):
    before = client.get(sub_url(profile, "raw"))["ETag"]
    profile.top_n = 3
    profile.save()
    after = client.get(sub_url(profile, "raw"))
    assert after["ETag"] != before
    assert len(parse_body(after.content).nodes) == 3


# --- 404s and logs ---------------------------------------------------------------------------


def test_unknown_revoked_and_expired_tokens_get_same_404(client, profile):
    unknown = client.get("/sub/" + "A" * 43)
    revoked_profile = OutputProfile.objects.create(name="revoked", revoked=True)
    revoked = client.get(sub_url(revoked_profile))
    expired_profile = OutputProfile.objects.create(
        name="expired", expires_at=timezone.now() - timedelta(seconds=1)
    )
    expired = client.get(sub_url(expired_profile))

    for response in (unknown, revoked, expired):
        assert response.status_code == 404
        assert response.content == NOT_FOUND_BODY
    assert revoked.headers == unknown.headers
    assert expired.headers == unknown.headers


def test_profile_before_expiry_is_served(client, served):
    profile = OutputProfile.objects.create(name="later", expires_at=timezone.now() + timedelta(days=1))
    assert client.get(sub_url(profile, "raw")).status_code == 200


def test_tokens_never_reach_logs(client, profile, caplog, monkeypatch):
    # Another test's logging.config call may have disabled existing loggers.
    for name in ("django.request", "merger.subscription"):
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
    caplog.set_level(logging.DEBUG)
    revoked_profile = OutputProfile.objects.create(name="revoked", revoked=True)
    secret_unknown = "Zz" * 20
    client.get(f"/sub/{secret_unknown}")
    client.get(sub_url(revoked_profile))
    client.get(sub_url(profile, "nope"))
    client.post(sub_url(profile))  # 405, logged by Django's request logger
    client.get(sub_url(profile, "raw"))

    assert caplog.records
    for token in (secret_unknown, revoked_profile.token, profile.token):
        assert token not in caplog.text
    assert "Method Not Allowed" in caplog.text
    assert "/sub/<redacted>" in caplog.text


def test_log_filter_redacts_request_paths():
    record = logging.LogRecord(
        "django.request",
        logging.WARNING,
        __file__,
        1,
        "Not Found: %s",
        ("/sub/abcDEF123_-x?target=raw",),
        None,
    )
    assert RedactSubscriptionTokens().filter(record) is True
    assert record.getMessage() == "Not Found: /sub/<redacted>?target=raw"
