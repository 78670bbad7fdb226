"""Output profiles: scores, countries, the served node set, userinfo policies, command and admin."""

from __future__ import annotations

import logging
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from merger import profiles
from merger.core.decode import parse_body
from merger.core.node import Node as CoreNode
from merger.models import MergeRun, Node, OutputProfile, Source, SourceResult, hash_profile_token
from tests.conftest import CORPUS_DIR

pytestmark = pytest.mark.django_db


def store_run(
    nodes: list[CoreNode], *, status: str = MergeRun.Status.SUCCEEDED, origins: list[str] | None = None
) -> MergeRun:
    """Store nodes as the merge service does: rows pointing at a run with the given status."""
    now = timezone.now()
    run = MergeRun.objects.create(status=status, started_at=now, finished_at=now)
    rows = []
    for node in nodes:
        rows.append(
            Node(
                fingerprint=node.fingerprint,
                protocol=node.protocol,
                host=node.host,
                port=node.port,
                name=node.name[:500],
                link="",
                data=node.as_dict(),
                origins=origins or ["corpus"],
                last_run=run,
            )
        )
    Node.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["fingerprint"],
        update_fields=["name", "data", "origins", "last_run"],
    )
    return run


def corpus_nodes(file_name: str) -> list[CoreNode]:
    """Return a corpus file's nodes with duplicates dropped, as a merge would store them."""
    unique: dict[str, CoreNode] = {}
    for node in parse_body((CORPUS_DIR / file_name).read_bytes()).nodes:
        unique.setdefault(node.fingerprint, node)
    return list(unique.values())


# --- update_scores ---------------------------------------------------------------------------


def test_update_scores_uses_probe_figures_and_source_history(settings):
    settings.VPNMERGER = {
        **settings.VPNMERGER,
        "SCORE_WEIGHTS": {"latency": 0.4, "success": 0.4, "source": 0.2},
        "SCORE_LATENCY_CEILING_MS": 2000.0,
        "GEOIP_DATABASE": "",
    }
    Source.objects.create(name="good", url="file:///good", consecutive_failures=0)
    Source.objects.create(name="flaky", url="file:///flaky", consecutive_failures=1)
    node = CoreNode("vless", "127.0.0.1", 443, "🇯🇵 Tokyo", uuid="b831381d-6324-4d53-ad4f-8cda48b30811")
    run = store_run([node], origins=["flaky"])
    # flaky: 3 of 4 recent fetches worked, failing now -> 0.75 / (1 + 1) = 0.375.
    for ok in (True, True, False, True):
        SourceResult.objects.create(run=run, label="flaky", url="file:///flaky", ok=ok)
    Node.objects.update(alive=True, latency_ms=500, success_ratio=0.8)

    assert profiles.update_scores() == 1

    row = Node.objects.get()
    # 100 * (0.4 * 0.75 + 0.4 * 0.8 + 0.2 * 0.375) = 69.5
    assert row.score == pytest.approx(69.5)
    assert row.country == "JP"


def test_update_scores_takes_best_origin_and_skips_unchanged_rows():
    Source.objects.create(name="good", url="file:///good")
    node = CoreNode("trojan", "127.0.0.2", 443, "plain", password="p")
    run = store_run([node], origins=["unknown-label", "good"])
    SourceResult.objects.create(run=run, label="good", url="file:///good", ok=True)

    assert profiles.update_scores() == 1
    # Unprobed, source reliability 1.0 -> only the source weight counts: 20 of 100.
    assert Node.objects.get().score == pytest.approx(20.0)
    assert profiles.update_scores() == 0


def test_update_scores_country_from_geoip_database(tmp_path, settings):
    mmdb_writer = pytest.importorskip("mmdb_writer")
    from netaddr import IPSet

    path = tmp_path / "tiny.mmdb"
    writer = mmdb_writer.MMDBWriter(ip_version=4, database_type="GeoIP2-Country")
    writer.insert_network(IPSet(["127.10.0.0/16"]), {"country": {"iso_code": "SE"}})
    writer.to_db_file(str(path))
    settings.VPNMERGER = {**settings.VPNMERGER, "GEOIP_DATABASE": str(path)}

    store_run(
        [
            CoreNode("trojan", "127.10.3.4", 443, "no country here", password="p"),
            CoreNode("trojan", "127.20.3.4", 443, "outside the range", password="p"),
            CoreNode("trojan", "127.10.3.5", 443, "🇩🇪 name wins", password="p"),
        ]
    )
    profiles.update_scores()

    countries = dict(Node.objects.values_list("host", "country"))
    assert countries == {"127.10.3.4": "SE", "127.20.3.4": "", "127.10.3.5": "DE"}


def test_update_scores_missing_geoip_file_falls_back_to_names(tmp_path, settings, caplog, monkeypatch):
    # Another test's logging.config call may have disabled existing loggers.
    monkeypatch.setattr(profiles.logger, "disabled", False)
    caplog.set_level(logging.WARNING, logger="merger.profiles")
    settings.VPNMERGER = {**settings.VPNMERGER, "GEOIP_DATABASE": str(tmp_path / "missing.mmdb")}
    store_run([CoreNode("trojan", "127.10.3.4", 443, "🇫🇮 Helsinki", password="p")])
    profiles.update_scores()
    assert Node.objects.get().country == "FI"
    assert "could not be opened" in caplog.text


# --- Served node set -------------------------------------------------------------------------


def test_profile_serves_only_latest_succeeded_run():
    nodes = corpus_nodes("b64-mixed-http-socks.txt")
    store_run(nodes[:100])
    newest = store_run(nodes[100:150])
    # A failed run's rows must never be served, even when it is the newest run.
    failed = MergeRun.objects.create(status=MergeRun.Status.FAILED, finished_at=timezone.now() + timedelta(1))
    Node.objects.filter(fingerprint=nodes[0].fingerprint).update(last_run=failed)
    profile = OutputProfile.objects.create(name="all")

    selected = profiles.build_profile_nodes(profile)

    assert selected.run == newest
    assert sorted(node.fingerprint for node in selected.nodes) == sorted(
        node.fingerprint for node in nodes[100:150]
    )


def test_profile_filters_and_renames_corpus_nodes():
    store_run(corpus_nodes("b64-vless.txt"))
    profiles.update_scores()
    profile = OutputProfile.objects.create(
        name="de",
        regions=["DE"],
        protocols=["vless"],
        rename_template="{flag} {country} {protocol} {index}",
        sort="name",
    )

    selected = profiles.build_profile_nodes(profile)

    assert selected.nodes
    assert [node.name for node in selected.nodes[:2]] == ["🇩🇪 DE vless 1", "🇩🇪 DE vless 2"]
    assert len({node.name for node in selected.nodes}) == len(selected.nodes)


def test_profile_without_runs_is_empty():
    profile = OutputProfile.objects.create(name="empty")
    assert profiles.build_profile_nodes(profile).nodes == []


def test_validate_profile_reports_fields():
    profile = OutputProfile(name="bad", include_regex="([", rename_template="{nope}", regions=["Atlantis"])
    with pytest.raises(ValidationError) as raised:
        profiles.validate_profile(profile)
    errors = raised.value.message_dict
    assert "'(['" in errors["include_regex"][0]
    assert "{nope}" in errors["rename_template"][0]
    assert "Atlantis" in errors["regions"][0]


# --- userinfo --------------------------------------------------------------------------------


def _sources_with_quotas() -> MergeRun:
    run = store_run([CoreNode("trojan", "127.0.0.3", 443, "x", password="p")])
    a = Source.objects.create(
        name="a", url="file:///a", userinfo={"upload": 1, "download": 2, "total": 100, "expire": 2000}
    )
    b = Source.objects.create(
        name="b", url="file:///b", userinfo={"upload": 10, "download": 20, "total": 1000, "expire": 1000}
    )
    c = Source.objects.create(name="c", url="file:///c")
    for source in (b, a, c):
        SourceResult.objects.create(run=run, source=source, label=source.name, url=source.url, ok=True)
    return run


def test_userinfo_first_policy():
    run = _sources_with_quotas()
    profile = OutputProfile(name="p", userinfo_policy=OutputProfile.UserinfoPolicy.FIRST)
    assert profiles.userinfo_for(profile, run) == {"upload": 1, "download": 2, "total": 100, "expire": 2000}


def test_userinfo_sum_policy_takes_earliest_expiry():
    run = _sources_with_quotas()
    profile = OutputProfile(name="p", userinfo_policy=OutputProfile.UserinfoPolicy.SUM)
    assert profiles.userinfo_for(profile, run) == {
        "upload": 11,
        "download": 22,
        "total": 1100,
        "expire": 1000,
    }


def test_userinfo_none_policy():
    run = _sources_with_quotas()
    profile = OutputProfile(name="p", userinfo_policy=OutputProfile.UserinfoPolicy.NONE)
    assert profiles.userinfo_for(profile, run) is None


def test_format_userinfo_header():
    assert profiles.format_userinfo({"total": 3, "upload": 1, "expire": 4}) == "upload=1; total=3; expire=4"


# --- Tokens ----------------------------------------------------------------------------------


def test_token_has_256_bits_and_hash_follows_rotation():
    profile = OutputProfile.objects.create(name="t")
    assert len(profile.token) == 43  # 32 bytes in unpadded URL-safe base64
    old = profile.token
    profiles.rotate_token(profile)
    profile.refresh_from_db()
    assert profile.token != old
    assert profile.token_sha256 == hash_profile_token(profile.token)
    assert profiles.find_profile(old) is None
    assert profiles.find_profile(profile.token) == profile


# --- Command ---------------------------------------------------------------------------------


def run_profile_command(*args: str) -> str:
    out = StringIO()
    call_command("profile", *args, stdout=out)
    return out.getvalue().strip()


def test_profile_command_round_trip(settings):
    settings.PUBLIC_BASE_URL = "https://vpn.example.test"
    url = run_profile_command(
        "create", "phone", "--format", "clash", "--alive-only", "--protocol", "VLESS", "--protocol", "hy2",
        "--top", "20", "--region", "uk", "--rename", "{flag} {index}", "--expires", "2030-01-31",
    )  # fmt: skip
    profile = OutputProfile.objects.get(name="phone")
    assert url == f"https://vpn.example.test/sub/{profile.token}"
    assert profile.default_format == "clash"
    assert profile.alive_only is True
    assert profile.protocols == ["vless", "hysteria2"]
    assert profile.regions == ["GB"]
    assert profile.top_n == 20
    assert profile.expires_at.year == 2030

    listing = run_profile_command("list")
    assert f"phone\tactive\tclash\t{url}" in listing

    rotated = run_profile_command("rotate", "phone")
    profile.refresh_from_db()
    assert rotated == f"https://vpn.example.test/sub/{profile.token}"
    assert rotated != url

    revoked = run_profile_command("revoke", "phone")
    assert rotated in revoked
    profile.refresh_from_db()
    assert profile.revoked is True
    assert "phone\trevoked" in run_profile_command("list")


def test_profile_command_rejects_bad_regex():
    with pytest.raises(CommandError, match=r"invalid include regex '\(\['"):
        run_profile_command("create", "bad", "--include", "([")
    assert not OutputProfile.objects.exists()


def test_profile_command_unknown_name():
    with pytest.raises(CommandError, match="No profile named 'ghost'"):
        run_profile_command("rotate", "ghost")


# --- Admin -----------------------------------------------------------------------------------


@pytest.fixture
def admin_client_logged_in(client):
    user = get_user_model().objects.create_superuser("admin", "admin@example.test", "pw")
    client.force_login(user)
    return client


def test_admin_change_page_shows_url_and_qr(admin_client_logged_in, settings):
    settings.PUBLIC_BASE_URL = ""
    profile = OutputProfile.objects.create(name="qr")
    response = admin_client_logged_in.get(reverse("admin:merger_outputprofile_change", args=[profile.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert f"http://testserver/sub/{profile.token}" in page
    assert 'src="data:image/svg+xml' in page


def test_admin_rejects_invalid_rename_template(admin_client_logged_in):
    response = admin_client_logged_in.post(
        reverse("admin:merger_outputprofile_add"),
        {
            "name": "x",
            "rename_template": "{bogus}",
            "protocols": "[]",
            "ports": "[]",
            "regions": "[]",
            "sort": "score",
            "default_format": "base64",
            "userinfo_policy": "first",
            "update_interval_hours": "12",
        },
    )
    assert response.status_code == 200
    assert "unknown placeholder {bogus}" in response.content.decode()
    assert not OutputProfile.objects.exists()
