"""Background merges: one merge at a time, the Celery fan-out, cancelling, heartbeats and recovery.

The web UI, the API, `merge --background` and the schedule all call `request_merge`. It creates a
pending MergeRun and queues `merger.tasks.merge_run` after the transaction commits. On a worker
with a result backend the run then fans out in two Celery chords:

1. one `fetch_source` task per source fetches and decodes it, then `finish_merge` de-duplicates
   and writes the exports (`services.prepare_fetched`);
2. `probe_batch` tasks probe PROBE_BATCH_SIZE nodes each, then `persist_merge` stores nodes, probe
   results and counts (`services.persist_prepared`).

The in-process `services.run_merge` calls the same two service functions, so both paths write the
same exports for the same bodies. With no broker (eager mode) or no result backend the task runs
`run_merge` itself, which fetches concurrently in one process.

Between tasks, each source's body, fetch metadata and decoded nodes live on disk under
VAR_DIR/run-work/<run id>/. Passing them through the result backend instead would make the chord
callback's message as large as all subscriptions together. A multi-machine set-up therefore
shares VAR_DIR (docs/operations.md).
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from . import fetch, probing, services
from .core import pipeline
from .models import MergeRun, Source

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = (MergeRun.Status.PENDING, MergeRun.Status.RUNNING)
# Key of the PostgreSQL advisory lock that serialises merge requests (any constant works, as long
# as nothing else in the database uses it).
MERGE_LOCK_KEY = 7_164_202_601


@dataclass(frozen=True, slots=True)
class MergeRequest:
    """The outcome of `request_merge`: the new run, or the one already active (`created` False)."""

    run: MergeRun
    created: bool


class NoEnabledSources(Exception):
    """Raised by `request_merge` when there is nothing to merge."""


def request_merge(trigger: str = "web", *, probe: bool = True, now: datetime | None = None) -> MergeRequest:
    """Create and queue a merge of every enabled source unless one is already pending or running.

    The merge task is queued after the transaction commits, so the worker always finds the row.
    In eager mode (no broker) the merge runs before this function returns. Raises NoEnabledSources
    when no source is enabled, because an empty merge would become the current export.
    """
    recover_stale_runs(now=now)
    if not Source.objects.filter(enabled=True).exists():
        raise NoEnabledSources(
            _("No enabled sources. Add some with 'manage.py load_sources FILE' or in the admin.")
        )
    with transaction.atomic():
        _lock_merge_requests()
        active = _active_merge()
        if active is not None:
            return MergeRequest(active, created=False)
        run = MergeRun.objects.create(trigger=trigger)
        run_id = run.pk
        transaction.on_commit(lambda: queue_run(run_id, probe=probe))
    logger.info("merge run %s requested (%s)", run.pk, trigger)
    return MergeRequest(run, created=True)


def reserve_merge(trigger: str = "command", *, now: datetime | None = None) -> MergeRequest:
    """Create a pending merge run for the caller to run itself, unless a merge is already active.

    The foreground `merge` command uses this so that it obeys the same one-merge-at-a-time rule
    as queued merges; two merges writing at once would otherwise collide on the node rows.
    """
    recover_stale_runs(now=now)
    with transaction.atomic():
        _lock_merge_requests()
        active = _active_merge()
        if active is not None:
            return MergeRequest(active, created=False)
        run = MergeRun.objects.create(trigger=trigger)
    return MergeRequest(run, created=True)


def _active_merge() -> MergeRun | None:
    return (
        MergeRun.objects.filter(kind=MergeRun.Kind.MERGE, status__in=ACTIVE_STATUSES)
        .order_by("created_at")
        .first()
    )


def _lock_merge_requests() -> None:
    """Serialise merge requests until the surrounding transaction ends.

    Two requests that both read "no active run" would otherwise both create one. PostgreSQL gets a
    transaction-scoped advisory lock. SQLite allows a single writer, and the no-op UPDATE takes
    that write lock before the read.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [MERGE_LOCK_KEY])
    elif connection.vendor == "sqlite":
        MergeRun.objects.filter(pk=-1).update(cancel_requested=False)
    else:
        # NOTE: other databases get no lock, so two simultaneous requests may both start a merge.
        pass


def queue_run(run_id: int, *, probe: bool = True) -> None:
    from vpnmerger.celery import app

    from .tasks import merge_run

    if app.conf.task_always_eager:
        # apply() runs the task here like an eager apply_async(), without the producer that
        # Celery 5.7 opens for eager tasks and kombu warns about when there is no broker.
        merge_run.apply((run_id, probe), throw=True)
    else:
        merge_run.apply_async((run_id, probe))


def cancel_run(run_id: int) -> MergeRun:
    """Cancel a pending run at once, or ask a running one to stop at its next check.

    Raises MergeRun.DoesNotExist for an unknown id. A finished run is returned unchanged.
    """
    now = timezone.now()
    MergeRun.objects.filter(pk=run_id, status=MergeRun.Status.PENDING).update(
        status=MergeRun.Status.CANCELLED, cancel_requested=True, finished_at=now
    )
    MergeRun.objects.filter(pk=run_id, status=MergeRun.Status.RUNNING).update(cancel_requested=True)
    return MergeRun.objects.get(pk=run_id)


def claim_run(run_id: int, *, task_id: str = "", worker: str = "") -> bool:
    """Move a pending run to running; return False when it was already claimed, finished or cancelled.

    The UPDATE touches exactly one row only for the first caller, which makes a redelivered or
    duplicated merge task harmless.
    """
    now = timezone.now()
    claimed = MergeRun.objects.filter(
        pk=run_id, status=MergeRun.Status.PENDING, cancel_requested=False
    ).update(
        status=MergeRun.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        task_id=task_id[:255],
        worker=worker[:255],
        stage="fetch",
        progress=0.0,
    )
    return claimed == 1


def execute_run(
    run_id: int, *, task_id: str = "", worker: str = "", fan_out: bool, probe: bool = True
) -> None:
    """Run a claimed merge: fan it out over the workers, or run it in-process."""
    if not claim_run(run_id, task_id=task_id, worker=worker):
        logger.info("merge run %s is not pending any more; nothing to do", run_id)
        return
    run = MergeRun.objects.get(pk=run_id)
    if fan_out:
        start_fan_out(run, probe=probe)
        return
    with heartbeat(run_id):
        try:
            services.run_merge(run, probe_options=probing.ProbeOptions.from_settings() if probe else None)
        except Exception:
            # run_merge has logged the error and stored it on the run, where the UI and the `runs`
            # command read it. Raising would only fail the request that queued the merge.
            return


def start_fan_out(run: MergeRun, *, probe: bool = True) -> None:
    """Queue one fetch-and-decode task per enabled source and the final step as the chord's callback."""
    from celery import chord

    from .tasks import fetch_source, finish_merge

    source_ids = list(Source.objects.filter(enabled=True).order_by("name").values_list("pk", flat=True))
    logger.info("merge run %s fans out over %d sources", run.pk, len(source_ids))
    folder = work_dir(run.pk)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sources.count").write_text(str(len(source_ids)))
    callback = finish_merge.si(run.pk, source_ids, probe)
    if not source_ids:
        callback.apply_async()
        return
    chord([fetch_source.si(run.pk, source_id) for source_id in source_ids])(callback)


def work_dir(run_id: int) -> Path:
    return Path(settings.VAR_DIR) / "run-work" / str(run_id)


def _is_running(run_id: int) -> bool:
    state = MergeRun.objects.filter(pk=run_id).values("status", "cancel_requested").first()
    return state is not None and state["status"] == MergeRun.Status.RUNNING and not state["cancel_requested"]


def fetch_source_for_run(run_id: int, source_id: int) -> dict[str, Any]:
    """Fetch and decode one source for a running merge, storing the outcome in the run's work folder.

    Returns a small summary. A second call for the same pair reuses the stored result, and a
    cancelled or finished run is skipped.
    """
    if not _is_running(run_id):
        return {"source_id": source_id, "skipped": True}
    folder = work_dir(run_id)
    if (folder / f"{source_id}.json").exists():
        return {"source_id": source_id, "reused": True}

    source = Source.objects.filter(pk=source_id).first()
    parsed = None
    if source is None:
        result = fetch.FetchResult(str(source_id), "", ok=False, error=f"source {source_id} was deleted")
    else:
        item = services.input_for_source(source)
        result = services.fetch_one(item)
        # The body is decoded here, in parallel with the other sources; the final step parses it
        # itself only when this stored outcome is missing.
        body, _stale = services.choose_body(item, result)
        if body is not None:
            parsed = pipeline.parse_input(item.label, body)
    _store_fetched(folder, source_id, result, parsed)

    # The fetch share of the progress bar grows by one source; F() keeps parallel tasks from
    # overwriting each other's increments.
    total = max(1, _source_count_hint(run_id))
    MergeRun.objects.filter(pk=run_id, status=MergeRun.Status.RUNNING).update(
        heartbeat_at=timezone.now(), progress=F("progress") + services.STAGE_WEIGHTS["fetch"] / total
    )
    return {"source_id": source_id, "ok": result.ok, "size": result.size}


def _source_count_hint(run_id: int) -> int:
    path = work_dir(run_id) / "sources.count"
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return Source.objects.filter(enabled=True).count()


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def _store_fetched(
    folder: Path, source_id: int, result: fetch.FetchResult, parsed: pipeline.InputOutcome | None
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "key": result.key,
        "url": result.url,
        "ok": result.ok,
        "status": result.status,
        "not_modified": result.not_modified,
        "error": result.error,
        "etag": result.etag,
        "last_modified": result.last_modified,
        "userinfo": result.userinfo,
        "content_type": result.content_type,
        "elapsed_ms": result.elapsed_ms,
        "attempts": result.attempts,
        "size": result.size,
        "has_body": result.body is not None,
    }
    if result.body is not None:
        _write_atomically(folder / f"{source_id}.body", result.body)
    if parsed is not None:
        _write_atomically(folder / f"{source_id}.parsed", pickle.dumps(parsed, pickle.HIGHEST_PROTOCOL))
    # The metadata file is written last, so its presence means the whole result is stored.
    _write_atomically(folder / f"{source_id}.json", json.dumps(meta).encode())


def _load_fetched(folder: Path, source_id: int) -> tuple[fetch.FetchResult, pipeline.InputOutcome | None]:
    try:
        meta = json.loads((folder / f"{source_id}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return fetch.FetchResult(str(source_id), "", ok=False, error="the fetch task stored no result"), None
    body = (folder / f"{source_id}.body").read_bytes() if meta.pop("has_body") else None
    parsed_path = folder / f"{source_id}.parsed"
    # The work folder is written only by this project's own tasks, so unpickling it is safe.
    parsed = pickle.loads(parsed_path.read_bytes()) if parsed_path.exists() else None
    return fetch.FetchResult(body=body, **meta), parsed


def _load_inputs(
    run_id: int, source_ids: list[int]
) -> tuple[list[services.MergeInput], list[fetch.FetchResult], list[pipeline.InputOutcome | None]]:
    folder = work_dir(run_id)
    sources = Source.objects.in_bulk(source_ids)
    inputs, fetched, parsed = [], [], []
    for source_id in source_ids:
        source = sources.get(source_id)
        if source is None:
            continue
        result, outcome = _load_fetched(folder, source_id)
        inputs.append(services.input_for_source(source))
        fetched.append(result)
        parsed.append(outcome)
    return inputs, fetched, parsed


@contextmanager
def _final_step(run_id: int, step: str) -> Iterator[MergeRun | None]:
    """Yield the run if it is still running, with heartbeats, cancel handling and failure recording."""
    run = MergeRun.objects.filter(pk=run_id).first()
    if run is None or run.status != MergeRun.Status.RUNNING:
        logger.info("merge run %s is not running; %s skipped", run_id, step)
        yield None
        return
    try:
        with heartbeat(run_id):
            yield run
    except services.MergeCancelled:
        services.mark_cancelled(run)
        shutil.rmtree(work_dir(run_id), ignore_errors=True)
    except Exception as error:
        logger.exception("merge run %s failed in its %s", run_id, step)
        MergeRun.objects.filter(pk=run_id).update(
            status=MergeRun.Status.FAILED,
            error=f"{type(error).__name__}: {error}",
            finished_at=timezone.now(),
        )
        shutil.rmtree(work_dir(run_id), ignore_errors=True)
        raise


def finish_run(run_id: int, source_ids: list[int], probe: bool = True) -> None:
    """Parse what the fetch tasks left, de-duplicate and export, then probe in batches or persist.

    Does nothing unless the run is still running, so a redelivered callback cannot redo a
    finished run.
    """
    from celery import chord

    from .tasks import persist_merge, probe_batch

    with _final_step(run_id, "final step") as run:
        if run is None:
            return
        inputs, fetched, parsed = _load_inputs(run_id, source_ids)
        out_dir = Path(settings.VPNMERGER["EXPORT_DIR"]) / f"run-{run.pk}"
        progress = services.progress_tracker(run)
        prepared = services.prepare_fetched(run, inputs, fetched, out_dir, progress, parsed=parsed)
        if not probe or not prepared.nodes:
            services.persist_prepared(run, prepared, inputs, fetched, progress)
            shutil.rmtree(work_dir(run_id), ignore_errors=True)
            logger.info("merge run %s finished on the workers: %d unique nodes", run_id, run.unique)
            return
        # The run's counts and export folder are saved now, because the persist task reads the run
        # from the database while the prepared nodes travel through the work folder.
        run.save()
        _write_atomically(
            work_dir(run_id) / "prepared.pickle", pickle.dumps(prepared, pickle.HIGHEST_PROTOCOL)
        )
        size = max(1, settings.VPNMERGER["PROBE_BATCH_SIZE"])
        batches = [
            (start, min(start + size, len(prepared.nodes))) for start in range(0, len(prepared.nodes), size)
        ]
        logger.info("merge run %s probes %d nodes in %d batches", run_id, len(prepared.nodes), len(batches))
        chord([probe_batch.si(run_id, start, end) for start, end in batches])(
            persist_merge.si(run_id, source_ids, [start for start, _ in batches])
        )


def _load_prepared(run_id: int) -> services.PreparedMerge:
    return pickle.loads((work_dir(run_id) / "prepared.pickle").read_bytes())


def probe_nodes_for_run(run_id: int, start: int, end: int) -> dict[str, Any]:
    """Probe nodes start..end-1 of a prepared run and store their outcomes; reuse them when stored."""
    if not _is_running(run_id):
        return {"start": start, "skipped": True}
    path = work_dir(run_id) / f"probe-{start}.pickle"
    if path.exists():
        return {"start": start, "reused": True}
    nodes = _load_prepared(run_id).nodes[start:end]
    outcomes = probing.run_probes(nodes, probing.ProbeOptions.from_settings())
    _write_atomically(path, pickle.dumps(outcomes, pickle.HIGHEST_PROTOCOL))
    MergeRun.objects.filter(pk=run_id, status=MergeRun.Status.RUNNING).update(heartbeat_at=timezone.now())
    return {"start": start, "probed": len(nodes)}


def persist_run(run_id: int, source_ids: list[int], batch_starts: list[int]) -> None:
    """Store the prepared nodes with their probe outcomes and mark the run succeeded: the last step."""
    with _final_step(run_id, "persist step") as run:
        if run is None:
            return
        # Probe batches of a cancelled run store nothing, so the cancel is checked before loading.
        services.check_cancel(run)
        prepared = _load_prepared(run_id)
        outcomes: list[list[probing.ProbeOutcome]] = []
        for start in batch_starts:
            outcomes.extend(pickle.loads((work_dir(run_id) / f"probe-{start}.pickle").read_bytes()))
        inputs, fetched, _parsed = _load_inputs(run_id, source_ids)
        options = probing.ProbeOptions.from_settings()
        services.persist_prepared(
            run, prepared, inputs, fetched, services.progress_tracker(run), outcomes, options
        )
        shutil.rmtree(work_dir(run_id), ignore_errors=True)
        logger.info("merge run %s finished on the workers: %d unique nodes", run_id, run.unique)


@contextmanager
def heartbeat(run_id: int, interval: float | None = None) -> Iterator[None]:
    """Refresh the run's heartbeat from a background thread while the block runs.

    The stages themselves beat too (services.check_cancel), but one stage such as fetching many
    slow sources can outlast the heartbeat timeout.
    """
    if interval is None:
        interval = max(1.0, settings.VPNMERGER["HEARTBEAT_TIMEOUT"] / 5)
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    MergeRun.objects.filter(pk=run_id, status=MergeRun.Status.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError:
                    logger.warning("could not record the heartbeat of merge run %s", run_id, exc_info=True)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"merge-{run_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def recover_stale_runs(*, now: datetime | None = None) -> list[int]:
    """Mark failed every running merge whose heartbeat stopped and every pending one never picked up.

    A worker killed in the middle of a merge leaves its run "running". Its exports went to its
    own folder, so marking it failed keeps the last succeeded run's exports current, and its
    stored nodes and source caches are untouched. Returns the ids of the runs marked failed.
    """
    now = now or timezone.now()
    options = settings.VPNMERGER
    beat_cutoff = now - timedelta(seconds=options["HEARTBEAT_TIMEOUT"])
    pending_cutoff = now - timedelta(seconds=options["PENDING_TIMEOUT"])
    dead_running = Q(status=MergeRun.Status.RUNNING) & (
        Q(heartbeat_at__lt=beat_cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=beat_cutoff)
    )
    never_started = Q(status=MergeRun.Status.PENDING, created_at__lt=pending_cutoff)

    recovered = []
    for run in MergeRun.objects.filter(dead_running | never_started).only("pk", "status", "heartbeat_at"):
        if run.status == MergeRun.Status.RUNNING:
            error = f"the worker stopped responding: no heartbeat since {run.heartbeat_at or 'the start'}"
            guard = dead_running
        else:
            error = "no worker picked the merge up: check that a Celery worker is running"
            guard = never_started
        # The guard is repeated in the UPDATE so that a run that beat again in the meantime stays.
        changed = MergeRun.objects.filter(guard, pk=run.pk).update(
            status=MergeRun.Status.FAILED, error=error, finished_at=now
        )
        if changed == 1:
            logger.warning("merge run %s marked failed: %s", run.pk, error)
            shutil.rmtree(work_dir(run.pk), ignore_errors=True)
            recovered.append(run.pk)
    return recovered


def cleanup_old_runs(*, now: datetime | None = None) -> int:
    """Delete finished runs older than RUN_RETENTION_DAYS with their export folders; return the count.

    The newest KEEP_RUNS runs and the run whose exports are current are always kept.
    """
    now = now or timezone.now()
    options = settings.VPNMERGER
    cutoff = now - timedelta(days=options["RUN_RETENTION_DAYS"])
    kept = set(MergeRun.objects.order_by("-created_at").values_list("pk", flat=True)[: options["KEEP_RUNS"]])
    current = services.current_export_dir()
    export_root = Path(options["EXPORT_DIR"]).resolve()

    old_runs = (
        MergeRun.objects.exclude(status__in=ACTIVE_STATUSES)
        .filter(created_at__lt=cutoff)
        .exclude(pk__in=kept)
    )
    deleted = 0
    for run in old_runs.only("pk", "export_dir"):
        if run.export_dir and current is not None and Path(run.export_dir) == current:
            continue
        # Only the per-run folders this project created are removed, never a folder given to --out.
        own_folder = export_root / f"run-{run.pk}"
        if run.export_dir and Path(run.export_dir).resolve() == own_folder:
            shutil.rmtree(own_folder, ignore_errors=True)
        shutil.rmtree(work_dir(run.pk), ignore_errors=True)
        run.delete()
        deleted += 1
    if deleted:
        logger.info("deleted %d merge runs older than %s", deleted, cutoff.date())
    return deleted
