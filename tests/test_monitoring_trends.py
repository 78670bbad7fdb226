"""Trend maths on known series, the recommendation rules, /metrics and the healthcheck command."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from merger.models import MergeRun, Node, Source
from monitoring import trends
from monitoring.checks import CheckResult
from monitoring.models import CheckSample, HealthSnapshot, Threshold
from monitoring.recommendations import recommendations
from monitoring.snapshots import take_snapshot

# --- trend maths -------------------------------------------------------------------------------


def test_slope_of_exact_line():
    points = [(x, 2 * x + 1) for x in range(5)]
    assert trends.slope(points) == pytest.approx(2.0)
    assert trends.linear_fit(points)[1] == pytest.approx(1.0)


def test_slope_with_unix_timestamps():
    # Half a unit per minute, sampled every minute near a 2024 timestamp.
    start = 1_700_000_000
    points = [(start + 60 * index, 10 + 0.5 * index) for index in range(100)]
    assert trends.slope(points) * 60 == pytest.approx(0.5, rel=1e-9)


def test_slope_of_noisy_symmetric_series_is_zero():
    assert trends.slope([(0, 1), (1, 3), (2, 1), (3, 3), (4, 1), (5, 3), (6, 2)]) == pytest.approx(
        0.0, abs=0.2
    )


def test_slope_undefined():
    assert trends.slope([]) is None
    assert trends.slope([(1, 5)]) is None
    assert trends.slope([(1, 5), (1, 7)]) is None


def test_ewma_known_values():
    # alpha 0.5: 1 -> 0.5*2 + 0.5*1 = 1.5 -> 0.5*3 + 0.5*1.5 = 2.25
    assert trends.ewma([1, 2, 3], alpha=0.5) == pytest.approx(2.25)
    # span 3 gives alpha = 2 / (3 + 1) = 0.5.
    assert trends.ewma([1, 2, 3], span=3) == pytest.approx(2.25)
    assert trends.ewma([4, 4, 4], alpha=0.2) == pytest.approx(4.0)
    assert trends.ewma([], alpha=0.5) is None


def test_ewma_rejects_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        trends.ewma([1.0], alpha=1.5)
    with pytest.raises(ValueError, match="span"):
        trends.ewma([1.0])


def test_forecast_disk_full():
    # 10 points per hour from 50%: 100% is reached 5 hours after the start.
    points = [(0, 50.0), (3600, 60.0), (7200, 70.0)]
    assert trends.forecast_crossing(points, 100.0) == pytest.approx(18000.0)


def test_forecast_none_when_flat_or_falling():
    assert trends.forecast_crossing([(0, 50.0), (60, 50.0)], 100.0) is None
    assert trends.forecast_crossing([(0, 60.0), (60, 50.0)], 100.0) is None
    assert trends.forecast_crossing([(0, 50.0)], 100.0) is None


def test_degradation_against_median():
    history = [100.0, 90.0, 110.0, 100.0]
    assert trends.degradation_ratio(150.0, history) == pytest.approx(1.5)
    assert trends.is_degraded(150.0, history)
    assert not trends.is_degraded(149.0, history)
    assert not trends.is_degraded(150.0, [])


def test_summarize_series():
    summary = trends.summarize("memory", [(3600 * index, 10.0 + index) for index in range(5)], span=3)
    assert summary.count == 5
    assert summary.latest == 14.0
    assert summary.slope_per_hour == pytest.approx(1.0)
    assert summary.median == 12.0


# --- recommendations ---------------------------------------------------------------------------


def store_disk_series(now, values, step=timedelta(hours=1)):
    for index, value in enumerate(values):
        moment = now - step * (len(values) - 1 - index)
        snapshot = HealthSnapshot.objects.create(taken_at=moment, status="ok")
        CheckSample.objects.create(snapshot=snapshot, taken_at=moment, name="disk", status="ok", value=value)


@pytest.mark.django_db
def test_recommends_disk_forecast():
    now = timezone.now()
    # Two points per hour from 80%: about 9 hours left at 82%... full within a day, so critical.
    store_disk_series(now, [76.0, 78.0, 80.0, 82.0])
    found = [item for item in recommendations([], now=now) if item.check == "disk"]
    assert len(found) == 1
    assert found[0].severity == "critical"
    assert "9 hours" in found[0].title


@pytest.mark.django_db
def test_no_disk_recommendation_when_stable():
    now = timezone.now()
    store_disk_series(now, [50.0, 50.0, 50.0, 50.0])
    assert not [item for item in recommendations([], now=now) if item.check == "disk"]


@pytest.mark.django_db
def test_recommends_on_degraded_merge_duration():
    now = timezone.now()
    for hours_ago, seconds in [(48, 100), (36, 110), (24, 90), (12, 100), (1, 200)]:
        finished = now - timedelta(hours=hours_ago)
        MergeRun.objects.create(
            status="succeeded", started_at=finished - timedelta(seconds=seconds), finished_at=finished
        )
    found = [item for item in recommendations([], now=now) if item.check == "merge_duration"]
    assert len(found) == 1
    assert "2.0x" in found[0].title


@pytest.mark.django_db
def test_recommends_fix_for_failing_check_and_source():
    Source.objects.create(
        name="flaky", url="http://127.0.0.1/a", consecutive_failures=4, last_error="HTTP 503"
    )
    results = [CheckResult("workers", "critical", None, "no Celery worker replied", label="Celery workers")]
    found = recommendations(results)
    assert found[0].severity == "critical"
    assert "celery -A vpnmerger worker" in found[0].fix
    assert any("flaky" in item.title and "HTTP 503" in item.fix for item in found)


# --- /metrics ---------------------------------------------------------------------------------


@pytest.fixture
def metrics_data(db):
    now = timezone.now()
    run = MergeRun.objects.create(
        status="succeeded",
        started_at=now - timedelta(seconds=90),
        finished_at=now - timedelta(seconds=30),
        unique=3,
    )
    for index, protocol in enumerate(["vless", "vless", "trojan"]):
        Node.objects.create(
            fingerprint=f"fp{index}",
            protocol=protocol,
            host="127.0.0.1",
            port=1000 + index,
            link="x",
            alive=index == 0,
        )
    Source.objects.create(name="flaky", url="http://127.0.0.1/a", consecutive_failures=2)
    take_snapshot(results=[CheckResult("disk", "critical", 97.0, "")])
    return run


@pytest.mark.django_db
def test_metrics_disabled_by_default(client, settings):
    settings.METRICS_ENABLED = False
    assert client.get("/metrics").status_code == 404


def test_metrics_exposes_state(client, settings, metrics_data):
    settings.METRICS_ENABLED = True
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'vpnmerger_nodes{protocol="vless"} 2.0' in text
    assert 'vpnmerger_nodes{protocol="trojan"} 1.0' in text
    assert "vpnmerger_nodes_alive 1.0" in text
    assert "vpnmerger_last_merge_duration_seconds 60.0" in text
    assert "vpnmerger_last_merge_age_seconds" in text
    assert 'vpnmerger_source_consecutive_failures{enabled="true",source="flaky"} 2.0' in text
    assert 'vpnmerger_check_status{check="disk"} 2.0' in text
    assert 'vpnmerger_open_alerts{severity="critical"} 1.0' in text


def test_metrics_bearer_token(client, settings, metrics_data):
    settings.METRICS_ENABLED = True
    settings.METRICS_TOKEN = "scrape-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-token"}).status_code == 200


# --- healthcheck command -----------------------------------------------------------------------


@pytest.mark.django_db
def test_healthcheck_json_healthy_exits_zero(capsys):
    call_command("healthcheck", "--json", "--check", "database", "--check", "channel_layer")
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "ok"
    assert [check["name"] for check in document["checks"]] == ["database", "channel_layer"]


@pytest.mark.django_db
def test_healthcheck_exit_codes(capsys):
    Threshold.objects.create(check_name="disk", warning=0, critical=101)
    with pytest.raises(SystemExit) as degraded:
        call_command("healthcheck", "--check", "disk")
    assert degraded.value.code == 1
    Threshold.objects.filter(check_name="disk").update(critical=0)
    with pytest.raises(SystemExit) as critical:
        call_command("healthcheck", "--check", "disk")
    assert critical.value.code == 2
    assert "critical" in capsys.readouterr().out


@pytest.mark.django_db
def test_healthcheck_watch_bounded_by_count(capsys):
    call_command("healthcheck", "--json", "--check", "database", "--watch", "0", "--count", "3")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert all(json.loads(line)["checks"][0]["name"] == "database" for line in lines)


@pytest.mark.django_db
def test_healthcheck_recommend_prints_fix(capsys):
    Threshold.objects.create(check_name="disk", warning=0, critical=0)
    with pytest.raises(SystemExit):
        call_command("healthcheck", "--check", "disk", "--recommend")
    out = capsys.readouterr().out
    assert "[critical]" in out
    assert "Fix:" in out


@pytest.mark.django_db
def test_healthcheck_unknown_check_is_an_error():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="unknown health check"):
        call_command("healthcheck", "--check", "nope")
