"""Tests for merger.fetch against a real HTTP server on 127.0.0.1.

The server is the stdlib ThreadingHTTPServer on an ephemeral port, speaking HTTP/1.1 so that
keep-alive, chunked bodies and Content-Length behave as with real subscription hosts.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from merger.fetch import (
    DEFAULT_USER_AGENT,
    MAX_REDIRECTS,
    FetchRequest,
    FetchResult,
    fetch_all,
    fetch_all_sync,
    format_size,
    parse_subscription_userinfo,
    read_local,
    redact_url,
)
from tests.conftest import CORPUS_DIR

OK_BODY = b"vless://11111111-2222-3333-4444-555555555555@127.0.0.2:443?security=tls#one\n"
HTML_BODY = b"<!DOCTYPE html><html><head><title>Login</title></head><body>Sign in</body></html>"
PLAIN_BODY = b"trojan://secret@127.0.0.3:443#gzip-node\n" * 50
USERINFO = "upload=1024; download=2048; total=10737418240; expire=1767225600"
LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"

# Short limits keep the whole module fast: no test waits for a default 15 s timeout.
FAST = {"timeout": 0.5, "retries": 0, "backoff": 0.01}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0

    def handle_error(self, request: object, client_address: object) -> None:
        # The client hangs up on purpose in the cap and timeout tests, so broken pipes are expected.
        pass

    def hit(self, name: str) -> int:
        with self.lock:
            self.hits[name] += 1
            return self.hits[name]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        header_map = {"Content-Type": "text/plain; charset=utf-8"}
        header_map.update(headers or {})
        for name, value in header_map.items():
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status not in (204, 304):
            self.wfile.write(body)

    def _query(self) -> dict[str, str]:
        _, _, query = self.path.partition("?")
        pairs = (part.partition("=") for part in query.split("&") if part)
        return {name: value for name, _, value in pairs}

    def do_GET(self) -> None:
        route = self.path.partition("?")[0]
        query = self._query()
        handler = getattr(self, "route_" + route.strip("/").replace("-", "_").replace("/", "__"), None)
        if route.startswith("/corpus/"):
            self._send(200, (CORPUS_DIR / route.removeprefix("/corpus/")).read_bytes())
        elif handler is None:
            self._send(404, b"no such route")
        else:
            handler(query)

    def route_ok(self, query: dict[str, str]) -> None:
        self._send(200, OK_BODY, {"ETag": '"v1"', "Last-Modified": LAST_MODIFIED})

    def route_not_found(self, query: dict[str, str]) -> None:
        self._send(404, b"missing")

    def route_forbidden(self, query: dict[str, str]) -> None:
        self.server.hit("forbidden")
        self._send(403, b"forbidden")

    def route_slow(self, query: dict[str, str]) -> None:
        self.server.release.wait(timeout=2.0)
        self._send(200, OK_BODY)

    def route_dribble(self, query: dict[str, str]) -> None:
        # One byte every 50 ms never trips a per-read timeout, only the per-attempt one.
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        for _ in range(100):
            if self.server.release.wait(timeout=0.05):
                return
            self.wfile.write(b"x")
            self.wfile.flush()

    def route_html(self, query: dict[str, str]) -> None:
        self._send(200, HTML_BODY, {"Content-Type": "text/html; charset=utf-8"})

    def route_big_length(self, query: dict[str, str]) -> None:
        self._send(200, b"a" * 5000)

    def route_big_chunked(self, query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"b" * 1024
        for _ in range(1024):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def route_etag(self, query: dict[str, str]) -> None:
        headers = {"ETag": '"v2"', "Last-Modified": LAST_MODIFIED, "subscription-userinfo": USERINFO}
        if self.headers.get("If-None-Match") == '"v2"':
            self._send(304, b"", headers)
        else:
            self._send(200, OK_BODY, headers)

    def route_gzip(self, query: dict[str, str]) -> None:
        self._send(200, gzip.compress(PLAIN_BODY), {"Content-Encoding": "gzip"})

    def route_deflate(self, query: dict[str, str]) -> None:
        self._send(200, zlib.compress(PLAIN_BODY), {"Content-Encoding": "deflate"})

    def route_gzip_bomb(self, query: dict[str, str]) -> None:
        self._send(200, gzip.compress(b"\0" * 200_000), {"Content-Encoding": "gzip"})

    def route_bad_gzip(self, query: dict[str, str]) -> None:
        self._send(200, b"this is not gzip data", {"Content-Encoding": "gzip"})

    def route_flaky(self, query: dict[str, str]) -> None:
        if self.server.hit("flaky-" + query["id"]) == 1:
            self._send(503, b"try later")
        else:
            self._send(200, OK_BODY)

    def route_always_503(self, query: dict[str, str]) -> None:
        self.server.hit("always-503-" + query["id"])
        self._send(503, b"down")

    def route_rate_limited(self, query: dict[str, str]) -> None:
        if self.server.hit("rate-limited-" + query["id"]) == 1:
            self._send(429, b"slow down", {"Retry-After": query.get("after", "0")})
        else:
            self._send(200, OK_BODY)

    def route_echo(self, query: dict[str, str]) -> None:
        echoed = {name.lower(): value for name, value in self.headers.items()}
        self._send(200, json.dumps(echoed).encode(), {"Content-Type": "application/json"})

    def route_userinfo(self, query: dict[str, str]) -> None:
        self._send(200, OK_BODY, {"Subscription-Userinfo": USERINFO})

    def route_redirect(self, query: dict[str, str]) -> None:
        self._send(302, b"", {"Location": "/ok"})

    def route_redirect_file(self, query: dict[str, str]) -> None:
        self._send(302, b"", {"Location": "file:///etc/passwd"})

    def route_redirect_loop(self, query: dict[str, str]) -> None:
        self.server.hit("redirect-loop")
        self._send(302, b"", {"Location": "/redirect-loop"})

    def route_concurrent(self, query: dict[str, str]) -> None:
        with self.server.lock:
            self.server.in_flight += 1
            self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
        time.sleep(0.1)
        with self.server.lock:
            self.server.in_flight -= 1
        self._send(200, OK_BODY)

    def route_delay(self, query: dict[str, str]) -> None:
        time.sleep(int(query["ms"]) / 1000)
        self._send(200, query["ms"].encode())


class _Running:
    def __init__(self, server: _Server) -> None:
        self.server = server
        self.base = f"http://127.0.0.1:{server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(scope="module")
def http() -> Iterator[_Running]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield _Running(server)
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def fetch_one(url: str, request: FetchRequest | None = None, **options: object) -> FetchResult:
    merged = {**FAST, **options}
    results = await fetch_all([request or FetchRequest("src", url)], **merged)
    assert len(results) == 1
    return results[0]


async def test_fetch_ok_body_and_validators(http: _Running) -> None:
    result = await fetch_one(http.url("/ok"))
    assert result.ok is True
    assert result.key == "src"
    assert result.url == http.url("/ok")
    assert result.status == 200
    assert result.body == OK_BODY
    assert result.size == len(OK_BODY)
    assert result.not_modified is False
    assert result.error == ""
    assert result.etag == '"v1"'
    assert result.last_modified == LAST_MODIFIED
    assert result.content_type == "text/plain; charset=utf-8"
    assert result.userinfo is None
    assert result.attempts == 1
    assert result.elapsed_ms > 0


async def test_fetch_404_not_retried(http: _Running) -> None:
    result = await fetch_one(http.url("/not-found"), retries=2)
    assert result.ok is False
    assert result.status == 404
    assert result.error == "HTTP 404"
    assert result.body is None
    assert result.attempts == 1


async def test_fetch_403_not_retried(http: _Running) -> None:
    before = http.server.hits["forbidden"]
    result = await fetch_one(http.url("/forbidden"), retries=3)
    assert result.error == "HTTP 403"
    assert result.attempts == 1
    assert http.server.hits["forbidden"] == before + 1


async def test_fetch_slow_times_out(http: _Running) -> None:
    result = await fetch_one(http.url("/slow"), timeout=0.3)
    assert result.ok is False
    assert result.status is None
    assert result.error == "timed out after 0.3 s"
    assert result.body is None
    assert result.attempts == 1
    assert 250 <= result.elapsed_ms < 1500


async def test_fetch_timeout_is_retried(http: _Running) -> None:
    result = await fetch_one(http.url("/slow"), timeout=0.2, retries=1)
    assert result.error == "timed out after 0.2 s"
    assert result.attempts == 2


async def test_fetch_dribbling_body_hits_total_timeout(http: _Running) -> None:
    # Each byte arrives well within the read timeout, so only the per-attempt limit can stop it.
    result = await fetch_one(http.url("/dribble"), timeout=0.4)
    assert result.ok is False
    assert result.error == "timed out after 0.4 s"
    assert result.elapsed_ms < 2000


async def test_fetch_html_page_is_not_judged(http: _Running) -> None:
    result = await fetch_one(http.url("/html"))
    assert result.ok is True
    assert result.body == HTML_BODY
    assert result.content_type.startswith("text/html")


async def test_fetch_cap_rejects_announced_length(http: _Running) -> None:
    result = await fetch_one(http.url("/big-length"), max_bytes=1000)
    assert result.ok is False
    assert result.status == 200
    assert result.body is None
    assert result.error == "body larger than the 1000 bytes cap (Content-Length 5000)"
    assert result.size == 0


async def test_fetch_cap_stops_chunked_stream_early(http: _Running) -> None:
    result = await fetch_one(http.url("/big-chunked"), max_bytes=1000)
    assert result.ok is False
    assert result.body is None
    assert result.error == "body larger than the 1000 bytes cap"
    assert result.size > 1000
    # The server offers 1 MiB; the fetcher must stop after about one network read.
    assert result.size < 256 * 1024


async def test_fetch_cap_applies_to_decoded_gzip(http: _Running) -> None:
    result = await fetch_one(http.url("/gzip-bomb"), max_bytes=10_000)
    assert result.ok is False
    assert result.error == "body larger than the 10000 bytes cap"
    assert result.size > 10_000


async def test_fetch_conditional_get_not_modified(http: _Running) -> None:
    first = await fetch_one(http.url("/etag"))
    assert first.ok is True
    assert first.status == 200
    assert first.etag == '"v2"'

    request = FetchRequest("src", http.url("/etag"), etag=first.etag, last_modified=first.last_modified)
    second = await fetch_one("", request)
    assert second.ok is True
    assert second.status == 304
    assert second.not_modified is True
    assert second.body is None
    assert second.size == 0
    assert second.error == ""
    assert second.etag == '"v2"'
    assert second.last_modified == LAST_MODIFIED
    assert second.userinfo == {"upload": 1024, "download": 2048, "total": 10737418240, "expire": 1767225600}


async def test_fetch_stale_etag_gets_full_body(http: _Running) -> None:
    request = FetchRequest("src", http.url("/etag"), etag='"v1"')
    result = await fetch_one("", request)
    assert result.status == 200
    assert result.not_modified is False
    assert result.body == OK_BODY


async def test_fetch_sends_conditional_headers(http: _Running) -> None:
    request = FetchRequest("src", http.url("/echo"), etag='"abc"', last_modified=LAST_MODIFIED)
    result = await fetch_one("", request)
    assert result.body is not None
    echoed = json.loads(result.body)
    assert echoed["if-none-match"] == '"abc"'
    assert echoed["if-modified-since"] == LAST_MODIFIED


async def test_fetch_without_validators_sends_no_conditions(http: _Running) -> None:
    result = await fetch_one(http.url("/echo"))
    assert result.body is not None
    echoed = json.loads(result.body)
    assert "if-none-match" not in echoed
    assert "if-modified-since" not in echoed


@pytest.mark.parametrize("route", ["/gzip", "/deflate"])
async def test_fetch_decodes_compressed_body(http: _Running, route: str) -> None:
    result = await fetch_one(http.url(route))
    assert result.ok is True
    assert result.body == PLAIN_BODY
    assert result.size == len(PLAIN_BODY)


async def test_fetch_invalid_gzip_fails(http: _Running) -> None:
    result = await fetch_one(http.url("/bad-gzip"), retries=2)
    assert result.ok is False
    assert result.error.startswith("invalid gzip body")
    assert result.attempts == 1


async def test_fetch_503_retried_then_ok(http: _Running) -> None:
    result = await fetch_one(http.url("/flaky?id=retry-once"), retries=2)
    assert result.ok is True
    assert result.status == 200
    assert result.body == OK_BODY
    assert result.attempts == 2
    assert http.server.hits["flaky-retry-once"] == 2


async def test_fetch_503_gives_up_after_retries(http: _Running) -> None:
    result = await fetch_one(http.url("/always-503?id=give-up"), retries=2)
    assert result.ok is False
    assert result.status == 503
    assert result.error == "HTTP 503"
    assert result.attempts == 3
    assert http.server.hits["always-503-give-up"] == 3


async def test_fetch_503_without_retries(http: _Running) -> None:
    result = await fetch_one(http.url("/always-503?id=no-retry"), retries=0)
    assert result.attempts == 1
    assert http.server.hits["always-503-no-retry"] == 1


async def test_fetch_429_retried(http: _Running) -> None:
    result = await fetch_one(http.url("/rate-limited?id=short&after=0"), retries=1)
    assert result.ok is True
    assert result.attempts == 2


async def test_fetch_429_long_retry_after_not_waited(http: _Running) -> None:
    result = await fetch_one(http.url("/rate-limited?id=long&after=3600"), retries=2)
    assert result.ok is False
    assert result.status == 429
    assert result.error == "HTTP 429 (Retry-After 3600 s is over the 30 s limit)"
    assert result.attempts == 1
    assert result.elapsed_ms < 1000


async def test_fetch_user_agent_and_headers(http: _Running) -> None:
    request = FetchRequest(
        "src", http.url("/echo"), user_agent="clash-verge/v2.0", headers={"X-Token": "abc", "Accept": "*/*"}
    )
    result = await fetch_one("", request)
    assert result.content_type == "application/json"
    assert result.body is not None
    echoed = json.loads(result.body)
    assert echoed["user-agent"] == "clash-verge/v2.0"
    assert echoed["x-token"] == "abc"
    assert echoed["accept"] == "*/*"
    assert "gzip" in echoed["accept-encoding"]


async def test_fetch_default_user_agent(http: _Running) -> None:
    plain = await fetch_one(http.url("/echo"))
    assert plain.body is not None
    assert json.loads(plain.body)["user-agent"] == DEFAULT_USER_AGENT

    custom = await fetch_one(http.url("/echo"), default_user_agent="merger-test/1")
    assert custom.body is not None
    assert json.loads(custom.body)["user-agent"] == "merger-test/1"


async def test_fetch_user_agent_from_headers(http: _Running) -> None:
    request = FetchRequest("src", http.url("/echo"), headers={"User-Agent": "v2rayN/6.0"})
    result = await fetch_one("", request)
    assert result.body is not None
    assert json.loads(result.body)["user-agent"] == "v2rayN/6.0"


async def test_fetch_subscription_userinfo(http: _Running) -> None:
    result = await fetch_one(http.url("/userinfo"))
    assert result.ok is True
    assert result.userinfo == {"upload": 1024, "download": 2048, "total": 10737418240, "expire": 1767225600}


async def test_fetch_connection_refused(closed_port: int) -> None:
    result = await fetch_one(f"http://127.0.0.1:{closed_port}/sub", retries=1)
    assert result.ok is False
    assert result.status is None
    assert result.error == "connection refused"
    assert result.body is None
    assert result.attempts == 2


async def test_fetch_uppercase_scheme(http: _Running) -> None:
    result = await fetch_one(http.url("/ok").replace("http://", "HTTP://"))
    assert result.ok is True
    assert result.body == OK_BODY


async def test_fetch_follows_redirect(http: _Running) -> None:
    result = await fetch_one(http.url("/redirect"))
    assert result.ok is True
    assert result.status == 200
    assert result.body == OK_BODY


async def test_fetch_redirect_disabled(http: _Running) -> None:
    result = await fetch_one(http.url("/redirect"), follow_redirects=False)
    assert result.ok is False
    assert result.status == 302
    assert result.error == "HTTP 302 redirect, but following redirects is disabled"


async def test_fetch_redirect_to_file_rejected(http: _Running) -> None:
    result = await fetch_one(http.url("/redirect-file"))
    assert result.ok is False
    assert result.body is None
    assert result.error == "redirect to a file: URL rejected: only http and https are followed"


async def test_fetch_redirect_loop_stops(http: _Running) -> None:
    before = http.server.hits["redirect-loop"]
    result = await fetch_one(http.url("/redirect-loop"), retries=2)
    assert result.ok is False
    assert result.error == f"more than {MAX_REDIRECTS} redirects"
    assert result.attempts == 1
    assert http.server.hits["redirect-loop"] - before == MAX_REDIRECTS + 1


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("file:///etc/passwd", "unsupported URL scheme 'file': use an http:// or https:// URL"),
        ("ftp://127.0.0.1/sub", "unsupported URL scheme 'ftp': use an http:// or https:// URL"),
        ("127.0.0.1/sub", "missing http:// or https:// at the start of the URL"),
        ("mailto:someone", "missing http:// or https:// at the start of the URL"),
    ],
)
async def test_fetch_rejects_non_http_scheme(url: str, error: str) -> None:
    result = await fetch_one(url)
    assert result.ok is False
    assert result.error == error
    assert result.attempts == 0
    assert result.body is None


async def test_fetch_bounded_concurrency(http: _Running) -> None:
    http.server.max_in_flight = 0
    requests = [FetchRequest(f"s{index}", http.url("/concurrent")) for index in range(6)]
    started = time.perf_counter()
    results = await fetch_all(requests, concurrency=2, timeout=2.0)
    elapsed = time.perf_counter() - started
    assert all(result.ok for result in results)
    assert http.server.max_in_flight <= 2
    # Six 100 ms requests, two at a time, need at least three rounds.
    assert elapsed >= 0.29


async def test_fetch_result_and_callback_order(http: _Running) -> None:
    finished: list[str] = []
    requests = [
        FetchRequest("slow", http.url("/delay?ms=300")),
        FetchRequest("fast", http.url("/delay?ms=0")),
    ]
    results = await fetch_all(requests, timeout=2.0, on_result=lambda result: finished.append(result.key))
    assert [result.key for result in results] == ["slow", "fast"]
    assert [result.body for result in results] == [b"300", b"0"]
    assert finished == ["fast", "slow"]


async def test_fetch_async_callback_awaited(http: _Running) -> None:
    seen: list[FetchResult] = []

    async def record(result: FetchResult) -> None:
        await asyncio.sleep(0)
        seen.append(result)

    results = await fetch_all(
        [FetchRequest("a", http.url("/ok")), FetchRequest("b", http.url("/not-found"))],
        on_result=record,
        **FAST,
    )
    assert sorted(result.key for result in seen) == ["a", "b"]
    assert seen[0] in results


async def test_fetch_failing_callback_keeps_results(http: _Running, caplog: pytest.LogCaptureFixture) -> None:
    def explode(result: FetchResult) -> None:
        raise RuntimeError("progress bar broke")

    with caplog.at_level(logging.ERROR, logger="merger.fetch"):
        results = await fetch_all([FetchRequest("a", http.url("/ok"))], on_result=explode, **FAST)
    assert results[0].ok is True
    assert "on_result callback failed for source a" in caplog.text


async def test_fetch_empty_request_list() -> None:
    assert await fetch_all([]) == []


@pytest.mark.parametrize(
    ("option", "value"),
    [("concurrency", 0), ("timeout", 0), ("retries", -1), ("backoff", -1.0), ("max_bytes", 0)],
)
async def test_fetch_invalid_option_raises(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"invalid {option}"):
        await fetch_all([FetchRequest("a", "http://127.0.0.1:9/")], **{option: value})


async def test_fetch_logs_without_query(http: _Running, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="merger.fetch"):
        await fetch_one(http.url("/flaky?id=logged&token=SECRET1"), retries=1)
        await fetch_one(http.url("/not-found?token=SECRET2"))
    retry_records = [record for record in caplog.records if record.levelno == logging.INFO]
    failure_records = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(retry_records) == 1
    assert "/flaky" in retry_records[0].getMessage()
    assert "HTTP 503" in retry_records[0].getMessage()
    assert len(failure_records) == 1
    assert "/not-found" in failure_records[0].getMessage()
    assert "src" in failure_records[0].getMessage()
    assert "SECRET" not in caplog.text


def test_fetch_all_sync_outside_loop(http: _Running) -> None:
    results = fetch_all_sync([FetchRequest("a", http.url("/ok"))], **FAST)
    assert results[0].ok is True
    assert results[0].body == OK_BODY


async def test_fetch_all_sync_inside_loop_raises() -> None:
    with pytest.raises(RuntimeError, match="await fetch_all"):
        fetch_all_sync([FetchRequest("a", "http://127.0.0.1:9/")])


@pytest.mark.parametrize("name", ["b64-vless.txt", "clash-reality.yaml", "singbox-reality.json"])
async def test_fetch_corpus_file_bytes_intact(http: _Running, name: str) -> None:
    expected = (CORPUS_DIR / name).read_bytes()
    result = await fetch_one(http.url(f"/corpus/{name}"))
    assert result.ok is True
    assert result.body == expected
    assert result.size == len(expected)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://127.0.0.1/sub?token=abc", "https://127.0.0.1/sub"),
        ("https://user:pass@127.0.0.1:8443/api/v1?token=abc#frag", "https://127.0.0.1:8443/api/v1"),
        ("http://127.0.0.1#only-fragment", "http://127.0.0.1"),
        ("http://127.0.0.1/a@b/c", "http://127.0.0.1/a@b/c"),
        ("/local/path?x=1", "/local/path"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (USERINFO, {"upload": 1024, "download": 2048, "total": 10737418240, "expire": 1767225600}),
        ("upload=0;download=1.5e3;total=2E4", {"upload": 0, "download": 1500, "total": 20000}),
        ("Upload=5; DOWNLOAD=6; expire=", {"upload": 5, "download": 6}),
        ("upload=x; remark=abc; total=7", {"total": 7}),
        ("", None),
        ("garbage", None),
        ("expire=inf", None),
    ],
)
def test_parse_subscription_userinfo(header: str, expected: dict[str, int] | None) -> None:
    assert parse_subscription_userinfo(header) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [(20 * 1024 * 1024, "20 MiB"), (64 * 1024, "64 KiB"), (1000, "1000 bytes"), (1536, "1536 bytes")],
)
def test_format_size(size: int, expected: str) -> None:
    assert format_size(size) == expected


def test_read_local_plain_path(tmp_path: Path) -> None:
    path = tmp_path / "sub.txt"
    path.write_bytes(OK_BODY)
    result = read_local(path)
    assert result.ok is True
    assert result.key == str(path)
    assert result.url == str(path)
    assert result.body == OK_BODY
    assert result.size == len(OK_BODY)
    assert result.status is None
    assert result.attempts == 1


def test_read_local_file_urls(tmp_path: Path) -> None:
    path = tmp_path / "my sub.txt"
    path.write_bytes(OK_BODY)
    encoded = str(path).replace(" ", "%20")
    for url in (f"file://{encoded}", f"file://localhost{encoded}", f"FILE:{encoded}"):
        result = read_local(url, key="local")
        assert result.ok is True, url
        assert result.key == "local"
        assert result.body == OK_BODY


def test_read_local_over_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(b"z" * 2048)
    result = read_local(path, max_bytes=1024)
    assert result.ok is False
    assert result.body is None
    assert result.error == "body larger than the 1 KiB cap (file size 2048)"


def test_read_local_at_cap(tmp_path: Path) -> None:
    path = tmp_path / "exact.txt"
    path.write_bytes(b"z" * 1024)
    result = read_local(path, max_bytes=1024)
    assert result.ok is True
    assert result.size == 1024


def test_read_local_missing_file(tmp_path: Path) -> None:
    result = read_local(tmp_path / "absent.txt")
    assert result.ok is False
    assert result.error == f"file not found: {tmp_path / 'absent.txt'}"


def test_read_local_directory(tmp_path: Path) -> None:
    result = read_local(tmp_path)
    assert result.ok is False
    assert result.error == f"{tmp_path} is a directory, not a file"


def test_read_local_remote_file_url() -> None:
    result = read_local("file://127.0.0.1/etc/hosts")
    assert result.ok is False
    assert result.error == "file URL host '127.0.0.1' is not supported: use file:///absolute/path"


def test_read_local_corpus_file() -> None:
    path = CORPUS_DIR / "plain-trojan.txt"
    result = read_local(path)
    assert result.ok is True
    assert result.body == path.read_bytes()


def test_userinfo_out_of_range_values_dropped() -> None:
    parsed = parse_subscription_userinfo("upload=5; download=-1; total=99999999999999999999; expire=7")
    assert parsed == {"upload": 5, "expire": 7}
