"""Download subscription bodies over HTTP(S), and read local subscription files.

The fetcher runs many downloads at once with bounded concurrency, retries transient failures with
exponential backoff, caps the body size while streaming and supports conditional GET. It does not
look at the body: deciding whether it is a subscription or an HTML error page is the decoder's job.

This module imports no Django, so it can be tested alone; callers pass settings values in.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import logging
import os
import random
import socket
import ssl
import stat
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

logger = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "vpnmerger/0.1.0"
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
MAX_REDIRECTS = 5
# A 429 or 5xx response whose Retry-After requests a longer wait fails at once, because waiting
# that long would stall the whole merge for one source.
MAX_RETRY_AFTER = 30.0
# Keys of the `subscription-userinfo` header (bytes used and allowed, expiry as a Unix time).
USERINFO_KEYS = ("upload", "download", "total", "expire")

_FOLLOWED_SCHEMES = ("http", "https")

ResultCallback = Callable[["FetchResult"], Awaitable[None] | None]


@dataclass(frozen=True)
class FetchRequest:
    """One source to download.

    `key` is the caller's id for the source and is copied to the result. `user_agent` overrides
    the default User-Agent, and `headers` adds or overrides request headers. `etag` and
    `last_modified` are the ETag and Last-Modified values of the previous download, exactly as the
    server sent them. When given, they are sent as If-None-Match and If-Modified-Since.
    """

    key: str
    url: str
    user_agent: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: str = ""
    last_modified: str = ""


@dataclass
class FetchResult:
    """The outcome of one download.

    `ok` is True for a 2xx response with a body and for a 304 response to a conditional request
    (then `not_modified` is True and `body` is None). On failure `body` is None and `error` is a
    short reason such as "HTTP 404" or "connection refused". `status` is the final HTTP status, or
    None when no response arrived. `size` is the number of decoded body bytes read, `elapsed_ms`
    covers every attempt including the backoff waits, and `attempts` counts HTTP attempts.
    """

    key: str
    url: str
    ok: bool
    status: int | None = None
    body: bytes | None = None
    not_modified: bool = False
    error: str = ""
    etag: str = ""
    last_modified: str = ""
    userinfo: dict[str, int] | None = None
    content_type: str = ""
    elapsed_ms: float = 0.0
    attempts: int = 0
    size: int = 0


@dataclass(frozen=True)
class _Options:
    timeout: float
    retries: int
    backoff: float
    max_bytes: int
    default_user_agent: str
    follow_redirects: bool


@dataclass
class _Download:
    """A successful HTTP response, before it becomes a FetchResult."""

    status: int
    body: bytes | None
    not_modified: bool
    etag: str
    last_modified: str
    userinfo: dict[str, int] | None
    content_type: str
    size: int


class _AttemptFailed(Exception):
    """One failed attempt, with the reason shown to users and whether another attempt may help."""

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
        size: int = 0,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.size = size


def redact_url(url: str) -> str:
    """Return `url` without its query, fragment and user:password, so that logs carry no tokens."""
    end = len(url)
    for mark in ("?", "#"):
        index = url.find(mark)
        if 0 <= index < end:
            end = index
    head = url[:end]

    scheme_end = head.find("://")
    if scheme_end < 0:
        return head
    authority_start = scheme_end + 3
    slash = head.find("/", authority_start)
    authority_end = slash if slash >= 0 else len(head)
    at = head.rfind("@", authority_start, authority_end)
    if at >= 0:
        head = head[:authority_start] + head[at + 1 :]
    return head


def parse_subscription_userinfo(value: str) -> dict[str, int] | None:
    """Parse a `subscription-userinfo` header such as "upload=1; download=2; total=3; expire=4".

    Returns the known keys (USERINFO_KEYS) as ints, or None when none of them has a number.
    Unknown keys and empty or non-numeric values are skipped.
    """
    parsed: dict[str, int] = {}
    for part in value.split(";"):
        name, sep, raw = part.partition("=")
        name = name.strip().lower()
        raw = raw.strip()
        if not sep or name not in USERINFO_KEYS or not raw:
            continue
        try:
            number = int(raw)
        except ValueError:
            # Some panels write byte counts as floats ("1.2e10" or "123.0").
            try:
                number = int(float(raw))
            except (ValueError, OverflowError):
                continue
        # Values are stored as JSON and in 64-bit columns; a larger or negative number is junk.
        if not 0 <= number < 2**63:
            continue
        parsed[name] = number
    return parsed or None


def format_size(size: int) -> str:
    """Format a byte count for messages: "20 MiB", "64 KiB" or "1000 bytes"."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def _build_headers(request: FetchRequest, default_user_agent: str) -> httpx.Headers:
    headers = httpx.Headers(request.headers)
    if request.user_agent:
        headers["User-Agent"] = request.user_agent
    elif "User-Agent" not in headers:
        headers["User-Agent"] = default_user_agent
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    return headers


def _parse_retry_after(value: str | None) -> float | None:
    """Return the Retry-After wait in seconds (delta-seconds or HTTP-date), or None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _parse_content_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        length = int(value.strip())
    except ValueError:
        return None
    return length if length >= 0 else None


def _describe_transport_error(exc: BaseException) -> str:
    """Turn an httpx transport error into a short reason, using the OS error it wraps if any."""
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the server"
        if isinstance(cause, socket.gaierror):
            return f"host name lookup failed: {cause.strerror or cause}"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {cause.verify_message or cause}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__

    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {text}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"protocol error: {text}"
    if isinstance(exc, httpx.NetworkError):
        return f"network error: {text}"
    return f"request failed: {text}"


async def _read_download(response: httpx.Response, max_bytes: int, conditional: bool) -> _Download:
    """Check the status and stream the body of a final (non-redirect) response."""
    status = response.status_code
    headers = response.headers
    etag = headers.get("ETag", "")
    last_modified = headers.get("Last-Modified", "")
    userinfo_header = headers.get("subscription-userinfo")
    userinfo = parse_subscription_userinfo(userinfo_header) if userinfo_header else None
    content_type = headers.get("Content-Type", "")

    if status == 304:
        if not conditional:
            raise _AttemptFailed("HTTP 304 Not Modified, but no conditional request was sent", status=status)
        return _Download(status, None, True, etag, last_modified, userinfo, content_type, 0)
    if not 200 <= status < 300:
        raise _AttemptFailed(
            f"HTTP {status}",
            retryable=status == 429 or status >= 500,
            status=status,
            retry_after=_parse_retry_after(headers.get("Retry-After")),
        )

    cap = format_size(max_bytes)
    # With Content-Encoding the announced length is the compressed size. A compressed body over
    # the cap practically always decodes to more, so rejecting it early is safe.
    announced = _parse_content_length(headers.get("Content-Length"))
    if announced is not None and announced > max_bytes:
        raise _AttemptFailed(f"body larger than the {cap} cap (Content-Length {announced})", status=status)

    # aiter_bytes() yields decoded bytes, so the cap also stops gzip bombs.
    # NOTE: httpx inflates one network chunk at a time, so a single decoded chunk can briefly
    # exceed the cap (by the compression ratio times the chunk size) before it is rejected.
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise _AttemptFailed(f"body larger than the {cap} cap", status=status, size=size)
            chunks.append(chunk)
    except httpx.DecodingError as exc:
        encoding = headers.get("Content-Encoding", "encoded")
        raise _AttemptFailed(f"invalid {encoding} body: {exc}", status=status, size=size) from exc
    return _Download(status, b"".join(chunks), False, etag, last_modified, userinfo, content_type, size)


async def _attempt(
    client: httpx.AsyncClient, request: FetchRequest, headers: httpx.Headers, options: _Options
) -> _Download:
    """Make one GET, following up to MAX_REDIRECTS redirects to http and https URLs only."""
    conditional = "If-None-Match" in headers or "If-Modified-Since" in headers
    http_request = client.build_request("GET", request.url, headers=headers)
    for _ in range(MAX_REDIRECTS + 1):
        # Redirects are followed here, not by httpx, so that each target's scheme is checked
        # before anything is sent to it.
        response = await client.send(http_request, stream=True, follow_redirects=False)
        try:
            next_request = response.next_request
            if next_request is None:
                return await _read_download(response, options.max_bytes, conditional)
            status = response.status_code
            if not options.follow_redirects:
                raise _AttemptFailed(
                    f"HTTP {status} redirect, but following redirects is disabled", status=status
                )
            scheme = next_request.url.scheme
            if scheme not in _FOLLOWED_SCHEMES:
                raise _AttemptFailed(
                    f"redirect to a {scheme}: URL rejected: only http and https are followed", status=status
                )
            http_request = next_request
        finally:
            await response.aclose()
    raise _AttemptFailed(f"more than {MAX_REDIRECTS} redirects", status=response.status_code)


async def _attempt_with_timeout(
    client: httpx.AsyncClient, request: FetchRequest, headers: httpx.Headers, options: _Options
) -> _Download:
    """Run one attempt, mapping every expected error to _AttemptFailed.

    httpx's own timeout applies to each connect and read separately, so a server that sends a
    byte now and then would never time out. The outer asyncio timeout bounds the whole attempt.
    """
    timed_out = f"timed out after {float(options.timeout)} s"
    try:
        async with asyncio.timeout(options.timeout):
            return await _attempt(client, request, headers, options)
    except TimeoutError as exc:
        raise _AttemptFailed(timed_out, retryable=True) from exc
    except httpx.TimeoutException as exc:
        raise _AttemptFailed(timed_out, retryable=True) from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise _AttemptFailed(_describe_transport_error(exc), retryable=True) from exc
    except httpx.UnsupportedProtocol as exc:
        raise _AttemptFailed(f"unsupported URL: {exc}") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise _AttemptFailed(_describe_transport_error(exc)) from exc


def _retry_delay(attempt: int, backoff: float) -> float:
    """Return the wait before the next attempt: exponential in the attempt number, plus jitter."""
    return backoff * 2 ** (attempt - 1) + random.uniform(0, backoff)


async def _fetch_one(
    client: httpx.AsyncClient, semaphore: asyncio.Semaphore, request: FetchRequest, options: _Options
) -> FetchResult:
    started = time.perf_counter()
    safe_url = redact_url(request.url)

    def elapsed_ms() -> float:
        return (time.perf_counter() - started) * 1000.0

    scheme, separator, _ = request.url.partition("://")
    if scheme.lower() not in _FOLLOWED_SCHEMES:
        if separator:
            reason = f"unsupported URL scheme {scheme!r}: use an http:// or https:// URL"
        else:
            reason = "missing http:// or https:// at the start of the URL"
        logger.warning("fetch %s (%s) failed: %s", request.key, safe_url, reason)
        return FetchResult(request.key, request.url, ok=False, error=reason, elapsed_ms=elapsed_ms())

    headers = _build_headers(request, options.default_user_agent)
    attempts = 0
    while True:
        attempts += 1
        # The semaphore is held per attempt, not across backoff waits, so a source that is
        # backing off does not keep others waiting.
        async with semaphore:
            try:
                download = await _attempt_with_timeout(client, request, headers, options)
            except _AttemptFailed as failure:
                error = failure
            else:
                logger.debug(
                    "fetched %s (%s): HTTP %d, %d bytes, attempt %d",
                    request.key,
                    safe_url,
                    download.status,
                    download.size,
                    attempts,
                )
                return FetchResult(
                    key=request.key,
                    url=request.url,
                    ok=True,
                    status=download.status,
                    body=download.body,
                    not_modified=download.not_modified,
                    etag=download.etag or (request.etag if download.not_modified else ""),
                    last_modified=download.last_modified
                    or (request.last_modified if download.not_modified else ""),
                    userinfo=download.userinfo,
                    content_type=download.content_type,
                    elapsed_ms=elapsed_ms(),
                    attempts=attempts,
                    size=download.size,
                )

        reason = error.reason
        can_retry = error.retryable and attempts <= options.retries
        if can_retry and error.retry_after is not None and error.retry_after > MAX_RETRY_AFTER:
            reason = (
                f"{reason} (Retry-After {error.retry_after:.0f} s is over the {MAX_RETRY_AFTER:.0f} s limit)"
            )
            can_retry = False
        if not can_retry:
            logger.warning(
                "fetch %s (%s) failed after %d attempt(s): %s", request.key, safe_url, attempts, reason
            )
            return FetchResult(
                key=request.key,
                url=request.url,
                ok=False,
                status=error.status,
                error=reason,
                elapsed_ms=elapsed_ms(),
                attempts=attempts,
                size=error.size,
            )

        delay = _retry_delay(attempts, options.backoff)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        logger.info(
            "fetch %s (%s) attempt %d failed: %s; retrying in %.2f s",
            request.key,
            safe_url,
            attempts,
            reason,
            delay,
        )
        await asyncio.sleep(delay)


async def _notify(on_result: ResultCallback, result: FetchResult) -> None:
    # A failing progress callback must not throw away the downloads, so its error is only logged.
    try:
        outcome = on_result(result)
        if inspect.isawaitable(outcome):
            await outcome
    except Exception:
        logger.exception("on_result callback failed for source %s", result.key)


def _validate_options(concurrency: int, timeout: float, retries: int, backoff: float, max_bytes: int) -> None:
    if concurrency < 1:
        raise ValueError(f"invalid concurrency {concurrency}: must be at least 1")
    if timeout <= 0:
        raise ValueError(f"invalid timeout {timeout}: must be a positive number of seconds")
    if retries < 0:
        raise ValueError(f"invalid retries {retries}: must be 0 or more")
    if backoff < 0:
        raise ValueError(f"invalid backoff {backoff}: must be 0 or more seconds")
    if max_bytes < 1:
        raise ValueError(f"invalid max_bytes {max_bytes}: must be at least 1")


async def fetch_all(
    requests: Iterable[FetchRequest],
    *,
    concurrency: int = 8,
    timeout: float = 15.0,
    retries: int = 2,
    backoff: float = 0.5,
    max_bytes: int = DEFAULT_MAX_BYTES,
    default_user_agent: str = DEFAULT_USER_AGENT,
    on_result: ResultCallback | None = None,
    follow_redirects: bool = True,
    proxy: str | None = None,
) -> list[FetchResult]:
    """Download every request's URL and return the results in the order of `requests`.

    At most `concurrency` downloads run at once through one shared client. Each attempt is limited
    to `timeout` seconds in total. Connection and read errors, timeouts, 429 and 5xx responses are
    retried up to `retries` more times, waiting `backoff * 2**(n-1)` seconds plus up to `backoff`
    of jitter (or the server's Retry-After, when longer). Other 4xx responses are not retried. A body over
    `max_bytes` decoded bytes fails the download. Only http and https URLs are fetched, and
    redirects (at most MAX_REDIRECTS) are followed only to http and https URLs. Use read_local()
    for files. `on_result` is called with each result as it finishes, and may be a coroutine
    function. `proxy` is an http:// or https:// proxy URL for every download (socks5:// needs the
    socksio package). Proxy environment variables are ignored.

    Raises ValueError for an invalid option. A failed download is returned as a result with
    ok=False, not raised.
    """
    _validate_options(concurrency, timeout, retries, backoff, max_bytes)
    request_list = list(requests)
    if not request_list:
        return []

    options = _Options(timeout, retries, backoff, max_bytes, default_user_agent, follow_redirects)
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    # trust_env=False stops HTTP(S)_PROXY and SSL_CERT_FILE/SSL_CERT_DIR from changing where
    # requests go and which CAs are trusted, because the caller passes `proxy` explicitly.
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(timeout), limits=limits, trust_env=False, proxy=proxy
    ) as client:

        async def run(request: FetchRequest) -> FetchResult:
            result = await _fetch_one(client, semaphore, request, options)
            if on_result is not None:
                await _notify(on_result, result)
            return result

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(run(request)) for request in request_list]
    return [task.result() for task in tasks]


def fetch_all_sync(requests: Iterable[FetchRequest], **options: Any) -> list[FetchResult]:
    """Run fetch_all() to completion from synchronous code; takes the same keyword arguments.

    Raises RuntimeError when called while an event loop is running in this thread, where the
    caller must `await fetch_all(...)` instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fetch_all(requests, **options))
    raise RuntimeError("fetch_all_sync() was called inside a running event loop: await fetch_all() instead")


def _local_path(location: str) -> Path:
    """Return the file path of a `file:` URL or a plain path; raise ValueError for a remote file URL."""
    if not location.lower().startswith("file:"):
        return Path(location).expanduser()

    rest = location[len("file:") :]
    for mark in ("?", "#"):
        rest = rest.partition(mark)[0]
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            raise ValueError(f"file URL host {authority!r} is not supported: use file:///absolute/path")
        rest = slash + path
    if not rest:
        raise ValueError(f"file URL {location!r} has no path: use file:///absolute/path")
    return Path(unquote(rest))


def read_local(
    location: str | os.PathLike[str], *, key: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> FetchResult:
    """Read a subscription from a `file://` URL or a plain path, with the same size cap as fetch_all().

    Callers decide whether local files are allowed at all: fetch_all() never reads them, so a URL
    entered by a web user cannot reach the server's disk through the fetcher.
    """
    if max_bytes < 1:
        raise ValueError(f"invalid max_bytes {max_bytes}: must be at least 1")
    started = time.perf_counter()
    text = os.fspath(location)
    source_key = key if key is not None else text

    def failed(reason: str, size: int = 0) -> FetchResult:
        logger.warning("read %s (%s) failed: %s", source_key, text, reason)
        elapsed = (time.perf_counter() - started) * 1000.0
        return FetchResult(
            source_key, text, ok=False, error=reason, elapsed_ms=elapsed, attempts=1, size=size
        )

    try:
        path = _local_path(text)
    except ValueError as exc:
        return failed(str(exc))

    cap = format_size(max_bytes)
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > max_bytes:
                return failed(f"body larger than the {cap} cap (file size {info.st_size})")
            # Reading one byte past the cap catches files that grow, pipes and devices too.
            body = handle.read(max_bytes + 1)
    except FileNotFoundError:
        return failed(f"file not found: {path}")
    except IsADirectoryError:
        return failed(f"{path} is a directory, not a file")
    except PermissionError:
        return failed(f"permission denied reading {path}")
    except OSError as exc:
        return failed(f"could not read {path}: {exc.strerror or exc}")

    if len(body) > max_bytes:
        return failed(f"body larger than the {cap} cap", size=len(body))
    elapsed = (time.perf_counter() - started) * 1000.0
    return FetchResult(source_key, text, ok=True, body=body, elapsed_ms=elapsed, attempts=1, size=len(body))
