"""Background merges: the request service, the Celery fan-out, cancelling, recovery and clean-up.

The first part runs the tasks in-process (eager, the embedded default). The tests marked
`services` start a real `celery -A vpnmerger worker` over Redis against PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from merger import orchestration, probing, services, tasks
from merger.core.pipeline import EXPORT_FILES
from merger.models import MergeRun, Node, Source, SourceResult
from tests.conftest import REPO_DIR, SAMPLES_DIR
from vpnmerger.celery import app as celery_app

SAMPLE_FILES = sorted(path for path in SAMPLES_DIR.iterdir() if path.is_file())
BROKER_URL = "redis://127.0.0.1:6379/4"
RESULT_BACKEND = "redis://127.0.0.1:6379/5"


@pytest.fixture(autouse=True)
def isolated_dirs(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.VPNMERGER = {
        **settings.VPNMERGER,
        "EXPORT_DIR": tmp_path / "exports",
        "FETCH_TIMEOUT": 2.0,
        "FETCH_RETRIES": 0,
        "HEARTBEAT_TIMEOUT": 60,
        "PENDING_TIMEOUT": 600,
        # The sample servers are unused 127.x addresses, so a probe is refused at once.
        "PROBE_TIMEOUT": 1.0,
        "PROBE_ATTEMPTS": 1,
        "PROBE_BATCH_SIZE": 7,
    }


def add_sample_sources() -> list[Source]:
    return [Source.objects.create(name=path.stem, url=str(path)) for path in SAMPLE_FILES]


def comparable_exports(folder: Path) -> dict[str, object]:
    """Every export file's content, with the report's run id and start time left out."""
    contents: dict[str, object] = {}
    for key, file_name in EXPORT_FILES.items():
        text = (folder / file_name).read_text(encoding="utf-8")
        if key == "json":
            report = json.loads(text)
            report.pop("run_id")
            report.pop("started_at")
            contents[key] = report
        else:
            contents[key] = text
    return contents


# In-process (eager) behaviour: no broker, as in the embedded default.


@pytest.mark.django_db
def test_request_merge_runs_in_process_without_broker(django_capture_on_commit_callbacks):
    add_sample_sources()

    with django_capture_on_commit_callbacks(execute=True):
        request = orchestration.request_merge(trigger="web")

    run = MergeRun.objects.get(pk=request.run.pk)
    assert request.created
    assert run.status == MergeRun.Status.SUCCEEDED
    assert run.trigger == "web"
    assert run.unique == Node.objects.count()
    assert run.unique > 0
    assert Path(run.export_dir).name == f"run-{run.pk}"
    assert services.current_export_dir() == Path(run.export_dir)


@pytest.mark.django_db
def test_request_merge_while_active_returns_that_run():
    add_sample_sources()
    active = MergeRun.objects.create(status=MergeRun.Status.RUNNING, heartbeat_at=timezone.now())

    request = orchestration.request_merge()

    assert not request.created
    assert request.run.pk == active.pk
    assert MergeRun.objects.count() == 1


@pytest.mark.django_db
def test_request_merge_without_sources_is_rejected():
    with pytest.raises(orchestration.NoEnabledSources, match="No enabled sources"):
        orchestration.request_merge()
    assert not MergeRun.objects.exists()


@pytest.mark.django_db
def test_merge_task_twice_does_not_rerun(django_capture_on_commit_callbacks):
    add_sample_sources()
    with django_capture_on_commit_callbacks(execute=True):
        run = orchestration.request_merge().run
    run.refresh_from_db()
    finished_at = run.finished_at
    results = SourceResult.objects.filter(run=run).count()

    tasks.merge_run.apply((run.pk,)).get()

    run.refresh_from_db()
    assert run.status == MergeRun.Status.SUCCEEDED
    assert run.finished_at == finished_at
    assert SourceResult.objects.filter(run=run).count() == results


@pytest.mark.django_db
def test_fan_out_writes_what_run_merge_writes(http_server, corpus_dir):
    """The chord (fetch tasks, then the final step) and run_merge give the same exports and rows."""
    add_sample_sources()
    corpus_file = sorted(path for path in corpus_dir.iterdir() if path.suffix == ".txt")[0]
    http_server.routes["/sub"] = (200, {"Content-Type": "text/plain"}, corpus_file.read_bytes())
    Source.objects.create(name="http", url=http_server.url("/sub"))
    Source.objects.create(name="missing", url=http_server.url("/gone"))

    in_process = services.run_merge(trigger="command", probe_options=probing.ProbeOptions.from_settings())
    alive_after_first = dict(Node.objects.values_list("fingerprint", "alive"))
    fanned = MergeRun.objects.create(trigger="schedule")
    assert orchestration.claim_run(fanned.pk)
    orchestration.start_fan_out(fanned, probe=True)  # eager: every chord's header and callback run here

    fanned.refresh_from_db()
    assert fanned.status == MergeRun.Status.SUCCEEDED
    assert comparable_exports(Path(fanned.export_dir)) == comparable_exports(Path(in_process.export_dir))
    for field in ("sources_ok", "sources_failed", "links_seen", "invalid", "duplicates", "unique"):
        assert getattr(fanned, field) == getattr(in_process, field), field
    assert fanned.per_protocol == in_process.per_protocol
    assert fanned.probed == in_process.probed
    assert fanned.probed > 0
    assert fanned.alive == in_process.alive
    assert dict(Node.objects.values_list("fingerprint", "alive")) == alive_after_first
    assert fanned.invalid_reasons == in_process.invalid_reasons

    def results(run: MergeRun) -> list[tuple]:
        rows = SourceResult.objects.filter(run=run).order_by("label")
        return list(rows.values_list("label", "ok", "error", "format", "entries", "nodes", "invalid"))

    assert results(fanned) == results(in_process)
    assert not orchestration.work_dir(fanned.pk).exists()


@pytest.mark.django_db
def test_fetch_task_twice_reuses_stored_result(http_server):
    http_server.routes["/sub"] = (200, {}, (SAMPLES_DIR / "links.txt").read_bytes())
    source = Source.objects.create(name="http", url=http_server.url("/sub"))
    run = MergeRun.objects.create()
    orchestration.claim_run(run.pk)

    first = tasks.fetch_source.apply((run.pk, source.pk)).get()
    second = tasks.fetch_source.apply((run.pk, source.pk)).get()

    assert first["ok"] is True
    assert second == {"source_id": source.pk, "reused": True}
    assert len(http_server.requests) == 1


@pytest.mark.django_db
def test_fetch_task_skips_cancelled_run():
    source = Source.objects.create(name="links", url=str(SAMPLES_DIR / "links.txt"))
    run = MergeRun.objects.create()
    orchestration.claim_run(run.pk)
    orchestration.cancel_run(run.pk)

    outcome = tasks.fetch_source.apply((run.pk, source.pk)).get()

    assert outcome == {"source_id": source.pk, "skipped": True}
    assert not orchestration.work_dir(run.pk).exists()


@pytest.mark.django_db
def test_cancel_pending_run_is_immediate():
    run = MergeRun.objects.create()

    cancelled = orchestration.cancel_run(run.pk)

    assert cancelled.status == MergeRun.Status.CANCELLED
    assert not orchestration.claim_run(run.pk)


@pytest.mark.django_db
def test_cancelled_final_step_keeps_previous_exports():
    add_sample_sources()
    previous = services.run_merge()
    run = MergeRun.objects.create()
    orchestration.claim_run(run.pk)
    source_ids = list(Source.objects.values_list("pk", flat=True))
    for source_id in source_ids:
        orchestration.fetch_source_for_run(run.pk, source_id)
    orchestration.cancel_run(run.pk)

    orchestration.finish_run(run.pk, source_ids)

    run.refresh_from_db()
    assert run.status == MergeRun.Status.CANCELLED
    assert services.current_export_dir() == Path(previous.export_dir)


@pytest.mark.django_db
def test_cancel_during_probes_ends_cancelled(monkeypatch):
    add_sample_sources()
    run = MergeRun.objects.create()
    orchestration.claim_run(run.pk)
    source_ids = list(Source.objects.order_by("name").values_list("pk", flat=True))
    for source_id in source_ids:
        orchestration.fetch_source_for_run(run.pk, source_id)
    # The chord of probe batches is replaced by a cancel request that arrives while they run.
    monkeypatch.setattr("celery.chord", lambda header: lambda callback: orchestration.cancel_run(run.pk))
    orchestration.finish_run(run.pk, source_ids)
    batch = orchestration.probe_nodes_for_run(run.pk, 0, 7)

    orchestration.persist_run(run.pk, source_ids, [0])

    run.refresh_from_db()
    assert batch == {"start": 0, "skipped": True}
    assert run.status == MergeRun.Status.CANCELLED
    assert not Node.objects.exists()
    assert services.current_export_dir() is None
    assert not orchestration.work_dir(run.pk).exists()


@pytest.mark.django_db
def test_run_merge_stops_on_cancel_between_stages():
    add_sample_sources()
    run = MergeRun.objects.create(cancel_requested=True)

    services.run_merge(run)

    run.refresh_from_db()
    assert run.status == MergeRun.Status.CANCELLED
    assert not Node.objects.exists()


@pytest.mark.django_db
def test_recover_marks_silent_running_run_failed():
    now = timezone.now()
    dead = MergeRun.objects.create(status=MergeRun.Status.RUNNING, heartbeat_at=now - timedelta(seconds=61))
    alive = MergeRun.objects.create(status=MergeRun.Status.RUNNING, heartbeat_at=now - timedelta(seconds=30))
    forgotten = MergeRun.objects.create(created_at=now - timedelta(seconds=601))

    recovered = orchestration.recover_stale_runs(now=now)

    assert sorted(recovered) == sorted([dead.pk, forgotten.pk])
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == MergeRun.Status.FAILED
    assert "no heartbeat since" in dead.error
    assert alive.status == MergeRun.Status.RUNNING


@pytest.mark.django_db
def test_failed_run_never_replaces_current_export():
    add_sample_sources()
    good = services.run_merge()
    Source.objects.create(name="zz-broken", url="file:///nonexistent/bad.txt")
    bad = MergeRun.objects.create(
        status=MergeRun.Status.FAILED, export_dir=str(Path(good.export_dir).parent / "x")
    )
    Path(bad.export_dir).mkdir()

    assert services.current_export_dir() == Path(good.export_dir)


@pytest.mark.django_db
def test_cleanup_deletes_old_runs_but_keeps_current(settings):
    settings.VPNMERGER = {**settings.VPNMERGER, "KEEP_RUNS": 1, "RUN_RETENTION_DAYS": 30}
    add_sample_sources()
    current = services.run_merge()
    old = services.run_merge()
    # The newer of the two runs becomes old and failed, so the older one keeps the current export.
    MergeRun.objects.filter(pk=old.pk).update(status=MergeRun.Status.FAILED)
    MergeRun.objects.filter(pk__in=[current.pk, old.pk]).update(
        created_at=timezone.now() - timedelta(days=40)
    )
    newest = MergeRun.objects.create(status=MergeRun.Status.FAILED)

    deleted = tasks.cleanup_old_runs.apply().get()

    assert deleted == 1
    assert set(MergeRun.objects.values_list("pk", flat=True)) == {current.pk, newest.pk}
    assert not Path(old.export_dir).exists()
    assert Path(current.export_dir).is_dir()


@pytest.mark.django_db
def test_merge_background_prints_run_id(django_capture_on_commit_callbacks):
    add_sample_sources()
    out = StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("merge", "--background", stdout=out)

    run = MergeRun.objects.get()
    assert out.getvalue().strip() == str(run.pk)
    assert run.trigger == "command"


@pytest.mark.django_db
def test_merge_background_while_running_names_run():
    add_sample_sources()
    active = MergeRun.objects.create(status=MergeRun.Status.RUNNING, heartbeat_at=timezone.now())

    with pytest.raises(CommandError, match=f"Merge run {active.pk} is already running"):
        call_command("merge", "--background", stdout=StringIO())


@pytest.mark.django_db
def test_runs_lists_recent_runs():
    add_sample_sources()
    run = services.run_merge()
    out = StringIO()

    call_command("runs", stdout=out)

    line = next(line for line in out.getvalue().splitlines() if line.strip().startswith(str(run.pk)))
    assert "succeeded" in line
    assert f"{run.sources_ok}/{run.sources_ok}" in line
    assert str(run.unique) in line


@pytest.mark.django_db
def test_runs_cancel_requests_stop_of_running_run():
    run = MergeRun.objects.create(status=MergeRun.Status.RUNNING, heartbeat_at=timezone.now())
    out = StringIO()

    call_command("runs", "--cancel", str(run.pk), stdout=out)

    run.refresh_from_db()
    assert run.cancel_requested
    assert "Cancel requested" in out.getvalue()


@pytest.mark.django_db
def test_runs_cancel_unknown_id_is_an_error():
    with pytest.raises(CommandError, match="Merge run 999 not found"):
        call_command("runs", "--cancel", "999")


# End to end: a real worker over Redis, on PostgreSQL.


@contextmanager
def broker_configured() -> Iterator[str]:
    """Point this process's Celery app at the test broker and a new queue, yield the queue name.

    Each test gets a queue of its own, because test runs started at the same time by other people
    share the Redis database. With a shared queue one run's worker would take another's tasks.
    """
    queue = f"vpnmerger-test-{uuid.uuid4().hex[:12]}"
    keys = ("broker_url", "result_backend", "task_always_eager", "task_default_queue")
    saved = {key: celery_app.conf[key] for key in keys}
    celery_app.conf.update(
        broker_url=BROKER_URL,
        result_backend=RESULT_BACKEND,
        task_always_eager=False,
        task_default_queue=queue,
    )
    reset_cached_connections()
    try:
        yield queue
    finally:
        celery_app.conf.update(saved)
        reset_cached_connections()
        delete_queue(queue)


def reset_cached_connections() -> None:
    # Celery caches the producer pool and the result backend on first use; both must follow the
    # changed configuration.
    from kombu import pools

    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app._backend_cache = None
    celery_app._local.__dict__.pop("backend", None)


def delete_queue(queue: str) -> None:
    """Drop a test queue's messages, including those a killed worker left unacknowledged."""
    import redis

    redis.Redis.from_url(BROKER_URL).delete(queue)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Worker:
    """A `celery -A vpnmerger worker` subprocess in its own process group."""

    def __init__(self, var_dir: Path, export_dir: Path, queue: str, concurrency: int = 2) -> None:
        db = connection.settings_dict
        # The worker must use the test database that pytest-django created, not the configured one.
        host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        database_url = f"postgres://{db['USER'] or 'postgres'}@{host}/{db['NAME']}"
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": BROKER_URL,
            "CELERY_RESULT_BACKEND": RESULT_BACKEND,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "REDIS_URL": "",
            "VPNMERGER_VAR_DIR": str(var_dir),
            "VPNMERGER_EXPORT_DIR": str(export_dir),
            "VPNMERGER_FETCH_TIMEOUT": "5",
            "VPNMERGER_FETCH_RETRIES": "0",
            "LOG_LEVEL": "INFO",
        }
        self.log_path = var_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
        var_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "celery", "-A", "vpnmerger", "worker", "--pool", "prefork"]
        command += ["--concurrency", str(concurrency), "--without-gossip", "--without-mingle"]
        command += [
            "--queues",
            queue,
            "--without-heartbeat",
            "--hostname",
            f"test-{uuid.uuid4().hex[:8]}@%h",
            "--loglevel",
            "INFO",
        ]
        self.process = subprocess.Popen(
            command, cwd=REPO_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_for(self._ready, 30, f"the worker to start (log: {self.log_path})")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"worker exited with {self.process.returncode}:\n{self.log_path.read_text()}"
            )
        return b" ready." in self.log_path.read_bytes()

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes, as an out-of-memory kill or a power cut would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            # SIGQUIT is Celery's cold shutdown: the tests are done with the worker, so it need not
            # finish anything, and a warm shutdown takes seconds.
            os.killpg(self.process.pid, signal.SIGQUIT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def worker_factory(require_service, transactional_db, settings, tmp_path) -> Iterator[Callable[..., Worker]]:
    require_service("redis")
    require_service("postgresql")
    if connection.vendor != "postgresql":
        pytest.skip("the worker tests run in the PostgreSQL pass (DATABASE_URL=postgres://...)")
    started: list[Worker] = []

    with broker_configured() as queue:

        def start(concurrency: int = 2) -> Worker:
            worker = Worker(settings.VAR_DIR, settings.VPNMERGER["EXPORT_DIR"], queue, concurrency)
            started.append(worker)
            return worker

        yield start
        for worker in started:
            worker.stop()


def run_status(run_id: int) -> str:
    return MergeRun.objects.filter(pk=run_id).values_list("status", flat=True).get()


@pytest.mark.services
def test_worker_runs_requested_merge(worker_factory, http_server):
    worker = worker_factory()
    add_sample_sources()
    http_server.routes["/sub"] = (200, {}, (SAMPLES_DIR / "links.txt").read_bytes())
    Source.objects.create(name="http", url=http_server.url("/sub"))

    request = orchestration.request_merge(trigger="web")
    wait_for(
        lambda: run_status(request.run.pk) not in orchestration.ACTIVE_STATUSES, 60, "the merge to finish"
    )

    run = MergeRun.objects.get(pk=request.run.pk)
    assert run.status == MergeRun.Status.SUCCEEDED, run.error
    assert run.worker.startswith("test-")
    assert run.sources_ok == len(SAMPLE_FILES) + 1
    assert SourceResult.objects.filter(run=run).count() == len(SAMPLE_FILES) + 1
    assert Node.objects.filter(last_run=run).count() == run.unique
    assert services.current_export_dir() == Path(run.export_dir)
    for file_name in EXPORT_FILES.values():
        assert (Path(run.export_dir) / file_name).stat().st_size > 0
    assert run.probed > 0
    log = worker.log_path.read_text()
    for task_name in ("merge_run", "fetch_source", "finish_merge", "probe_batch", "persist_merge"):
        assert f"merger.tasks.{task_name}[" in log, task_name
    assert not orchestration.work_dir(run.pk).exists()


@pytest.fixture
def stalling_server() -> Iterator[tuple[str, threading.Event]]:
    """An HTTP server on 127.0.0.1 whose responses wait until the test sets the returned event."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name is fixed by http.server
            release.wait(20)
            body = (SAMPLES_DIR / "links.txt").read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # noqa: A002 - silence per-request logging in tests
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/slow", release
    release.set()
    server.shutdown()
    server.server_close()


@pytest.mark.services
def test_killed_worker_run_is_recovered(worker_factory, stalling_server, settings):
    add_sample_sources()
    previous = services.run_merge()
    nodes_before = Node.objects.count()
    slow_url, release = stalling_server
    Source.objects.create(name="slow", url=slow_url)
    worker = worker_factory()

    run_id = orchestration.request_merge().run.pk
    # The sample files are fetched at once; the slow source holds the run in its fetch stage.
    folder = orchestration.work_dir(run_id)
    wait_for(lambda: len(list(folder.glob("*.json"))) >= len(SAMPLE_FILES), 30, "the fast fetch tasks")
    worker.kill()
    release.set()

    assert run_status(run_id) == MergeRun.Status.RUNNING
    assert orchestration.recover_stale_runs() == []
    later = timezone.now() + timedelta(seconds=settings.VPNMERGER["HEARTBEAT_TIMEOUT"] + 1)
    assert orchestration.recover_stale_runs(now=later) == [run_id]

    run = MergeRun.objects.get(pk=run_id)
    assert run.status == MergeRun.Status.FAILED
    assert "stopped responding" in run.error
    assert services.current_export_dir() == Path(previous.export_dir)
    assert Node.objects.count() == nodes_before
    assert Node.objects.filter(last_run_id=run_id).count() == 0

    # The lock is free again, and a new worker completes a new merge.
    worker_factory()
    again = orchestration.request_merge()
    assert again.created
    wait_for(lambda: run_status(again.run.pk) not in orchestration.ACTIVE_STATUSES, 60, "the second merge")
    assert run_status(again.run.pk) == MergeRun.Status.SUCCEEDED


# Benchmark (skipped unless --benchmark-enable): 200 loopback sources, one worker process against two.

BENCH_SOURCES = 200


@pytest.fixture
def bench_sources(corpus_dir) -> Iterator[None]:
    """200 Source rows on a loopback HTTP server that answers each after a fixed, seeded delay.

    Source i serves corpus file i modulo the 20 files whole (5 KB to 1.8 MB, as real subscriptions
    range), after 50 to 500 ms, as slow providers do.
    """
    import random
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    files = sorted(path for path in corpus_dir.iterdir() if path.name != "README.md")
    bodies = [path.read_bytes() for path in files]
    generator = random.Random(200)
    delays = [generator.uniform(0.05, 0.5) for _ in range(BENCH_SOURCES)]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name is fixed by http.server
            index = int(self.path.rsplit("/", 1)[1])
            time.sleep(delays[index])  # the provider's response time, not a wait for a result
            body = bodies[index % len(bodies)]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # noqa: A002 - silence per-request logging
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    Source.objects.bulk_create(
        Source(name=f"bench-{index:03d}", url=f"http://127.0.0.1:{port}/s/{index}")
        for index in range(BENCH_SOURCES)
    )
    yield
    server.shutdown()
    server.server_close()


def merge_and_wait() -> MergeRun:
    run_id = orchestration.request_merge(trigger="benchmark", probe=False).run.pk
    wait_for(lambda: run_status(run_id) not in orchestration.ACTIVE_STATUSES, 600, "the benchmark merge")
    run = MergeRun.objects.get(pk=run_id)
    assert run.status == MergeRun.Status.SUCCEEDED, run.error
    assert run.sources_ok == BENCH_SOURCES
    # A second round must fetch everything again, not answer from the source cache.
    Source.objects.update(etag="", last_modified="")
    return run


@pytest.mark.services
@pytest.mark.parametrize("processes", [1, 2, 8])
def test_benchmark_worker_processes(benchmark, worker_factory, bench_sources, processes):
    worker_factory(concurrency=processes)
    run = benchmark.pedantic(merge_and_wait, rounds=2, iterations=1)
    benchmark.extra_info.update(unique=run.unique, links_seen=run.links_seen, processes=processes)


@pytest.mark.django_db(transaction=True)
def test_benchmark_in_process(benchmark, bench_sources):
    run = benchmark.pedantic(lambda: services.run_merge(trigger="benchmark"), rounds=2, iterations=1)
    assert run.sources_ok == BENCH_SOURCES
