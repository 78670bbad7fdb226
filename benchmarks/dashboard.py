"""Dashboard benchmark: event latency from a publisher to the browser, and rendering with 100k nodes.

Run with `.venv/bin/python benchmarks/dashboard.py` (needs Redis on 127.0.0.1:6379 and
/usr/bin/chromium). It migrates a SQLite file in a temporary folder, starts daphne on it with the
Redis channel layer (database 7), and publishes `run.progress` events from this process, as a
Celery worker would. The browser page records when each event arrives.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EVENTS = 200
NODES = 100_000
PASSWORD = "correct horse battery"


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    env = {
        **os.environ,
        "VPNMERGER_VAR_DIR": str(folder),
        "DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}",
        "REDIS_URL": "redis://127.0.0.1:6379/7",
        "CELERY_BROKER_URL": "",
        "WHITENOISE_USE_FINDERS": "true",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
    }
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vpnmerger.settings")
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True)
    subprocess.run(
        [
            *manage,
            "createsuperuser",
            "--noinput",
            "--username",
            "admin",
            "--email",
            "admin@vpnmerger.invalid",
        ],
        env=env,
        check=True,
    )

    import django

    django.setup()
    print(f"dashboard render with {NODES} nodes: {render_dashboard():.3f} s (median of 5)")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daphne = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "vpnmerger.asgi:application"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        latencies = event_latencies(f"http://127.0.0.1:{port}")
    finally:
        daphne.terminate()
        daphne.wait(timeout=10)
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    print(f"event latency over {len(latencies)} events: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    print(f"event latency max {latencies[-1]:.1f} ms")


def render_dashboard() -> float:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from merger.models import Node

    protocols = ("vless", "vmess", "trojan", "ss", "hysteria2", "tuic")
    Node.objects.bulk_create(
        (
            Node(
                fingerprint=f"{index:032x}",
                protocol=protocols[index % 6],
                host=f"127.0.{index // 250 % 250}.{index % 250}",
                port=1000 + index % 50000,
                link="x",
                alive=index % 3 != 0,
                latency_ms=(index * 7) % 2500,
            )
            for index in range(NODES)
        ),
        batch_size=5000,
    )
    client = Client()
    client.force_login(get_user_model().objects.get(username="admin"))
    times = []
    for _ in range(5):
        started = time.perf_counter()
        response = client.get("/", HTTP_HOST="127.0.0.1")
        times.append(time.perf_counter() - started)
        assert response.status_code == 200
    return statistics.median(times)


def event_latencies(base: str) -> list[float]:
    from playwright.sync_api import sync_playwright

    from vpnmerger import events

    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page()
        page.goto(base + "/accounts/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/")
        page.evaluate(
            """base => new Promise(resolve => {
                window.latencies = [];
                const socket = new WebSocket(base.replace('http', 'ws') + '/ws/runs/');
                socket.onmessage = m => { const e = JSON.parse(m.data);
                    if (e.event === 'run.progress') window.latencies.push(Date.now() - e.sent_at * 1000); };
                socket.onopen = () => resolve();
            })""",
            base,
        )
        group = events.group_name("runs")
        for index in range(EVENTS):
            message = {
                "type": "run.progress",
                "run_id": 0,
                "stage": "fetch",
                "done": index,
                "total": EVENTS,
                "progress": 0.0,
                "stages": {},
                "sent_at": time.time(),
            }
            events.send_now(group, message)
            time.sleep(0.02)
        page.wait_for_function(f"window.latencies.length >= {EVENTS}", timeout=20_000)
        latencies = page.evaluate("window.latencies")
        browser.close()
    return latencies


if __name__ == "__main__":
    main()
