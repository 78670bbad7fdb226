"""End to end in a real browser: daphne on 127.0.0.1 and Debian's chromium driven by Playwright.

daphne runs in a subprocess on its own file-based SQLite database (migrated by the fixture), so it
shares nothing with pytest-django's test database: the test talks to it only through the browser.
The merge runs in a thread inside daphne, so its progress events reach the socket through the
in-memory channel layer of that process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_DIR, SAMPLES_DIR

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_DIR / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """Start daphne on a migrated SQLite file with one user; yield its base URL."""
    env = {
        **os.environ,
        "VPNMERGER_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'browser.sqlite3'}",
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "",
        "WHITENOISE_USE_FINDERS": "true",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
    }
    manage = [sys.executable, str(REPO_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True, cwd=REPO_DIR)
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
        cwd=REPO_DIR,
    )
    port = _free_port()
    log = (tmp_path / "daphne.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "vpnmerger.asgi:application"],
        env=env,
        cwd=REPO_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"daphne exited: {(tmp_path / 'daphne.log').read_text()}")
            time.sleep(0.1)
    else:
        pytest.fail("daphne did not listen within 30 s")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)
    log.close()


@pytest.fixture
def page():
    """A fresh browser per test: a session-scoped sync Playwright would break later async tests."""
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing at /usr/bin/chromium: run `make install` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        yield context.new_page()
        context.close()
        browser.close()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_merge_from_browser_shows_live_progress(server, page, http_server):
    http_server.routes["/sub.txt"] = (
        200,
        {"Content-Type": "text/plain"},
        (SAMPLES_DIR / "base64.txt").read_bytes(),
    )
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(server + "/")
    assert "/accounts/login/" in page.url
    _shot(page, "login")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")

    for name, url in (
        ("sample links", str(SAMPLES_DIR / "links.txt")),
        ("loopback", http_server.url("/sub.txt")),
    ):
        page.goto(server + "/sources/new/")
        page.fill("#id_name", name)
        page.fill("#id_url", url)
        page.click("form.form button[type=submit]")
        page.wait_for_url(server + "/sources/")
    page.goto(server + "/sources/new/")
    page.fill("#id_name", "bad")
    page.fill("#id_url", "ftp://127.0.0.1/x")
    page.click("form.form button[type=submit]")
    assert "Unsupported scheme ftp://" in page.inner_text(".field.invalid")

    page.goto(server + "/operations/")
    page.wait_for_selector("#live-state.live")
    page.click("#start-merge")
    # The bar fills from WebSocket events; the page is never reloaded.
    page.wait_for_selector("#run-progress[aria-valuenow='100']", timeout=30_000)
    page.wait_for_selector("#run-status.succeeded", timeout=10_000)
    run_id = page.inner_text("#run-id")
    row = page.locator(f"#runs-table tr[data-run-id='{run_id}']")
    assert "succeeded" in row.inner_text()
    assert "stage fetch started" in page.inner_text("#run-log")
    _shot(page, "operations")

    for tab in ("dashboard", "monitoring", "configuration", "sources", "deployments"):
        page.goto(server + ("/" if tab == "dashboard" else f"/{tab}/"))
        page.wait_for_load_state("networkidle")
        _shot(page, tab)
    page.goto(server + "/")
    assert page.inner_text("#stat-total") != "0"
    page.set_viewport_size({"width": 390, "height": 844})
    _shot(page, "dashboard-phone")
    assert errors == []
