"""Fixtures shared by every test module."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parent.parent
# The real-world corpus lives beside the checkout (../shared/corpus), in development and in CI.
CORPUS_DIR = REPO_DIR.parent / "shared" / "corpus"
SAMPLES_DIR = REPO_DIR / "samples"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS_DIR.is_dir():
        pytest.fail(f"corpus folder {CORPUS_DIR} is missing: check out the project beside shared/")
    return CORPUS_DIR


def corpus_files(pattern: str = "*") -> list[Path]:
    """Corpus files matching a glob, for parametrising tests at collection time."""
    return sorted(path for path in CORPUS_DIR.glob(pattern) if path.name != "README.md")


# Services on 127.0.0.1 that tests may need, as (host, port).
SERVICES = {"postgresql": ("127.0.0.1", 5432), "redis": ("127.0.0.1", 6379), "rabbitmq": ("127.0.0.1", 5672)}


@pytest.fixture
def require_service():
    """Return a function that checks a service on 127.0.0.1 is reachable before a test uses it.

    `require_service("redis")` skips the test with the reason when the service is down, except
    under CI (settings.CI true), where it fails: a missing service must not pass unnoticed.
    """
    import socket

    from django.conf import settings

    def check(name: str) -> None:
        if name not in SERVICES:
            raise ValueError(f"unknown service {name!r}: expected one of {', '.join(SERVICES)}")
        host, port = SERVICES[name]
        try:
            socket.create_connection((host, port), timeout=1.0).close()
        except OSError as error:
            message = f"{name} is not reachable at {host}:{port} ({error}); start it to run this test"
            if getattr(settings, "CI", False):
                pytest.fail(message)
            pytest.skip(message)

    return check


class _Routes(dict):
    """Path to (status, headers, body) served by the `http_server` fixture."""


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1 with an ephemeral port, serving routes set by the test.

    Yields an object with `.routes` (path -> (status, headers dict, body bytes)), `.url(path)` and
    `.requests` (list of (path, headers) received).
    """
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    routes: _Routes = _Routes()
    received: list[tuple[str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name is fixed by http.server
            received.append((self.path, dict(self.headers)))
            status, headers, body = routes.get(self.path.split("?", 1)[0], (404, {}, b"not found"))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # noqa: A002 - silence per-request logging in tests
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    class Handle:
        pass

    handle = Handle()
    handle.routes = routes
    handle.requests = received
    handle.url = lambda path: f"http://127.0.0.1:{server.server_address[1]}{path}"
    yield handle
    server.shutdown()
    server.server_close()
