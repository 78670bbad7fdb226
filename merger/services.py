"""Run a merge and persist it.

`run_merge` is the one entry for a merge: the `merge` command, Celery tasks, the API and the web
UI all call it, so a merge behaves the same whichever door it came through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import fetch, probing
from . import progress as progress_events
from .core import pipeline
from .core.node import Node as CoreNode
from .models import MergeRun, MergeSettings, Node, Source, SourceResult

logger = logging.getLogger(__name__)

# Share of the overall progress bar given to each stage, in pipeline order.
STAGE_WEIGHTS = {"fetch": 30.0, "parse": 25.0, "dedupe": 5.0, "export": 15.0, "probe": 10.0, "persist": 15.0}
# SQLite allows 999 variables per statement in older builds; batches stay below that.
QUERY_BATCH = 900

# Listener for progress: (run, stage, stage_done, stage_total, overall_percent).
ProgressListener = Callable[[MergeRun, str, int, int, float], None]


@dataclass(slots=True)
class MergeInput:
    """One thing to read in a merge: a Source row, or a path or URL given on the command line."""

    label: str
    url: str
    source_id: int | None = None
    user_agent: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    etag: str = ""
    last_modified: str = ""

    @property
    def is_remote(self) -> bool:
        return self.url.lower().startswith(("http://", "https://"))


def inputs_for_enabled_sources() -> list[MergeInput]:
    return [input_for_source(source) for source in Source.objects.filter(enabled=True).order_by("name")]


def input_for_source(source: Source) -> MergeInput:
    # The conditional-GET validators are sent only while the cached body exists, because a 304
    # answer is useless without it.
    cached = _cache_path(source.pk).exists()
    return MergeInput(
        label=source.name,
        url=source.url,
        source_id=source.pk,
        user_agent=source.user_agent,
        headers=dict(source.headers or {}),
        etag=source.etag if cached else "",
        last_modified=source.last_modified if cached else "",
    )


def inputs_from_locations(locations: Iterable[str]) -> list[MergeInput]:
    return [MergeInput(label=location, url=location) for location in locations]


def _cache_path(source_id: int) -> Path:
    """File with a source's last good body, used after a 304 and when a fetch fails."""
    return settings.VAR_DIR / "source-cache" / f"{source_id}.body"


class _ProgressTracker:
    """Turns stage progress into an overall percentage, stored on the run at most twice a second."""

    def __init__(self, run: MergeRun, listener: ProgressListener | None) -> None:
        self.run = run
        self.listener = listener
        self.saved_at = 0.0
        self.publisher = progress_events.RunEventPublisher(run.pk)

    def __call__(self, stage: str, done: int, total: int) -> None:
        before = 0.0
        for name, weight in STAGE_WEIGHTS.items():
            if name == stage:
                break
            before += weight
        fraction = done / total if total else 1.0
        percent = min(100.0, before + STAGE_WEIGHTS.get(stage, 0.0) * fraction)
        self.run.stage = stage
        self.run.progress = round(percent, 1)
        now = time.monotonic()
        # Fetch progress arrives from inside the fetcher's event loop, where Django forbids
        # database calls; the row catches up at the next call from synchronous code.
        if (now - self.saved_at > 0.5 or done >= total) and not _in_event_loop():
            self.saved_at = now
            MergeRun.objects.filter(pk=self.run.pk).update(stage=stage, progress=self.run.progress)
        self.publisher(stage, done, total, self.run.progress)
        if self.listener is not None:
            self.listener(self.run, stage, done, total, self.run.progress)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def create_run(trigger: str = "command", kind: str = MergeRun.Kind.MERGE) -> MergeRun:
    return MergeRun.objects.create(trigger=trigger, kind=kind)


class MergeCancelled(Exception):
    """Raised between stages when someone asked to cancel the run (MergeRun.cancel_requested)."""


def check_cancel(run: MergeRun) -> None:
    """Record a heartbeat for the run and raise MergeCancelled if a cancel was requested.

    Called between stages, so a worker that stops calling it is taken as dead once the heartbeat
    is older than VPNMERGER["HEARTBEAT_TIMEOUT"].
    """
    now = timezone.now()
    MergeRun.objects.filter(pk=run.pk).update(heartbeat_at=now)
    run.heartbeat_at = now
    if MergeRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
        raise MergeCancelled(f"merge run {run.pk} was cancelled")


def mark_cancelled(run: MergeRun) -> None:
    """Set a run that stopped on a cancel request to cancelled; its partial exports are never current."""
    logger.info("merge run %s cancelled at stage %r", run.pk, run.stage)
    MergeRun.objects.filter(pk=run.pk).update(status=MergeRun.Status.CANCELLED, finished_at=timezone.now())
    run.refresh_from_db()
    progress_events.publish_run_status(run)


def current_export_dir() -> Path | None:
    """Return the export folder of the latest succeeded run, or None before the first one.

    Exports are written per run (EXPORT_DIR/run-<id>), so a failed, cancelled or still running
    merge never replaces what clients are served.
    """
    runs = MergeRun.objects.filter(kind=MergeRun.Kind.MERGE, status=MergeRun.Status.SUCCEEDED).exclude(
        export_dir=""
    )
    for export_dir in runs.order_by("-finished_at", "-pk").values_list("export_dir", flat=True)[:5]:
        path = Path(export_dir)
        if path.is_dir():
            return path
    return None


def run_merge(
    run: MergeRun | None = None,
    *,
    inputs: Sequence[MergeInput] | None = None,
    out_dir: Path | None = None,
    listener: ProgressListener | None = None,
    trigger: str = "command",
    probe_options: probing.ProbeOptions | None = None,
) -> MergeRun:
    """Fetch, parse, de-duplicate and export, then store nodes and counts on a MergeRun.

    With `inputs` None every enabled source is merged. A failing input is recorded on its
    SourceResult and the merge goes on; only an error of the merge itself fails the run.
    With `probe_options` every unique node is probed (and URL-tested when they ask for it)
    before the nodes are stored; a node that cannot be probed is recorded with the reason.
    """
    run = run or create_run(trigger)
    if inputs is None:
        inputs = inputs_for_enabled_sources()
    out_dir = out_dir or Path(settings.VPNMERGER["EXPORT_DIR"]) / f"run-{run.pk}"
    progress = _ProgressTracker(run, listener)

    run.status = MergeRun.Status.RUNNING
    run.started_at = run.heartbeat_at = timezone.now()
    run.save(update_fields=["status", "started_at", "heartbeat_at"])
    progress_events.publish_run_status(run)
    logger.info("merge run %s started with %d inputs", run.pk, len(inputs))
    try:
        _execute(run, list(inputs), out_dir, progress, probe_options)
    except MergeCancelled:
        mark_cancelled(run)
        return run
    except Exception as error:
        logger.exception("merge run %s failed", run.pk)
        MergeRun.objects.filter(pk=run.pk).update(
            status=MergeRun.Status.FAILED,
            error=f"{type(error).__name__}: {error}",
            finished_at=timezone.now(),
        )
        run.refresh_from_db()
        progress_events.publish_run_status(run)
        raise
    logger.info("merge run %s finished: %d unique nodes", run.pk, run.unique)
    return run


def _execute(
    run: MergeRun,
    inputs: list[MergeInput],
    out_dir: Path,
    progress: _ProgressTracker,
    probe_options: probing.ProbeOptions | None = None,
) -> None:
    fetched = _fetch_inputs(inputs, progress)
    finish_fetched(run, inputs, fetched, out_dir, progress, probe_options=probe_options)


def finish_fetched(
    run: MergeRun,
    inputs: list[MergeInput],
    fetched: list[fetch.FetchResult],
    out_dir: Path,
    progress: _ProgressTracker,
    *,
    probe_options: probing.ProbeOptions | None = None,
) -> None:
    """Parse, de-duplicate, export, probe and persist fetched inputs (`fetched[i]` belongs to `inputs[i]`).

    The in-process merge ends here. The Celery fan-out calls the same `prepare_fetched` and
    `persist_prepared` with the probing split into batch tasks in between, so both write the
    same exports for the same bodies.
    """
    prepared = prepare_fetched(run, inputs, fetched, out_dir, progress)
    # Probing is network I/O that can take minutes, so it runs before the transaction of _persist.
    probe_outcomes = None
    if probe_options is not None:
        check_cancel(run)
        probe_outcomes = probing.run_probes(
            prepared.nodes, probe_options, lambda done, total: progress("probe", done, total)
        )
    persist_prepared(run, prepared, inputs, fetched, progress, probe_outcomes, probe_options)


def prepare_fetched(
    run: MergeRun,
    inputs: list[MergeInput],
    fetched: list[fetch.FetchResult],
    out_dir: Path,
    progress: _ProgressTracker,
    parsed: Sequence[pipeline.InputOutcome | None] | None = None,
) -> PreparedMerge:
    """Parse (unless `parsed[i]` already holds input i's outcome), de-duplicate and write the exports."""
    check_cancel(run)
    outcomes: list[pipeline.InputOutcome] = []
    results: list[SourceResult] = []
    for index, (item, result) in enumerate(zip(inputs, fetched, strict=True), 1):
        outcome, source_result = _parse_fetched(run, item, result, parsed[index - 1] if parsed else None)
        outcomes.append(outcome)
        results.append(source_result)
        progress("parse", index, len(inputs))

    check_cancel(run)
    deduplicated = pipeline.deduplicate(outcomes)
    progress("dedupe", 1, 1)

    run.sources_ok = sum(1 for result in results if result.ok)
    run.sources_failed = len(results) - run.sources_ok
    run.links_seen = deduplicated.links_seen
    run.invalid = deduplicated.invalid
    run.duplicates = deduplicated.duplicates
    run.unique = len(deduplicated.nodes)
    run.per_protocol = deduplicated.per_protocol
    run.invalid_reasons = dict(deduplicated.invalid_reasons.most_common())

    stats = {
        "run_id": run.pk,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "sources": [_result_summary(result) for result in results],
        "sources_ok": run.sources_ok,
        "sources_failed": run.sources_failed,
        "links_seen": run.links_seen,
        "invalid": run.invalid,
        "invalid_reasons": run.invalid_reasons,
        "duplicates": run.duplicates,
        "unique": run.unique,
        "per_protocol": run.per_protocol,
    }
    check_cancel(run)
    exported = pipeline.export_all(deduplicated.nodes, out_dir, stats, progress)
    run.export_dir = str(out_dir)
    run.export_skipped = exported.skipped
    return PreparedMerge(results, deduplicated.nodes, exported.links)


@dataclass(slots=True)
class PreparedMerge:
    """A merge after its exports are written and before probing and persisting.

    The Celery fan-out pickles it between its final tasks, so it holds only plain data and unsaved
    SourceResult rows.
    """

    results: list[SourceResult]
    nodes: list[CoreNode]
    links: list[str]


def persist_prepared(
    run: MergeRun,
    prepared: PreparedMerge,
    inputs: list[MergeInput],
    fetched: list[fetch.FetchResult],
    progress: _ProgressTracker,
    probe_outcomes: list[list[probing.ProbeOutcome]] | None = None,
    probe_options: probing.ProbeOptions | None = None,
) -> None:
    """Store the nodes, probe outcomes and counts of a prepared merge and mark the run succeeded."""
    from .profiles import update_scores

    check_cancel(run)
    _persist(
        run,
        prepared.results,
        prepared.nodes,
        prepared.links,
        inputs,
        fetched,
        progress,
        probe_outcomes,
        probe_options,
    )
    # Scores combine the probe outcomes and source results stored above.
    if run.kind == MergeRun.Kind.MERGE and run.status == MergeRun.Status.SUCCEEDED:
        update_scores(last_run=run)


def progress_tracker(run: MergeRun, listener: ProgressListener | None = None) -> _ProgressTracker:
    return _ProgressTracker(run, listener)


def fetch_one(item: MergeInput) -> fetch.FetchResult:
    """Fetch or read one input with the configured limits; the Celery fan-out's per-source step."""
    return _fetch_inputs([item], lambda stage, done, total: None)[0]


def _fetch_inputs(inputs: list[MergeInput], progress: _ProgressTracker) -> list[fetch.FetchResult]:
    total = len(inputs)
    done = 0

    def on_result(_result: fetch.FetchResult) -> None:
        nonlocal done
        done += 1
        progress("fetch", done, total)

    # The Configuration page edits these live; the environment only seeds the first row.
    options = {**settings.VPNMERGER, **MergeSettings.load().as_options()}
    by_key: dict[str, fetch.FetchResult] = {}
    remote = []
    for index, item in enumerate(inputs):
        key = str(index)
        if item.is_remote:
            remote.append(
                fetch.FetchRequest(
                    key=key,
                    url=item.url,
                    user_agent=item.user_agent or None,
                    headers=item.headers,
                    etag=item.etag,
                    last_modified=item.last_modified,
                )
            )
        else:
            result = fetch.read_local(item.url, max_bytes=options["FETCH_MAX_BYTES"])
            result.key = key
            by_key[key] = result
            on_result(result)
    if remote:
        for result in fetch.fetch_all_sync(
            remote,
            concurrency=options["FETCH_CONCURRENCY"],
            timeout=options["FETCH_TIMEOUT"],
            retries=options["FETCH_RETRIES"],
            max_bytes=options["FETCH_MAX_BYTES"],
            default_user_agent=options["USER_AGENT"],
            on_result=on_result,
        ):
            by_key[result.key] = result
    if total == 0:
        progress("fetch", 0, 0)
    return [by_key[str(index)] for index in range(total)]


def choose_body(item: MergeInput, result: fetch.FetchResult) -> tuple[bytes | None, bool]:
    """Return the body to parse and whether it is stale: the cached body after a 304 or a failed fetch."""
    if item.source_id is not None and (result.not_modified or not result.ok):
        cache = _cache_path(item.source_id)
        if cache.exists():
            return cache.read_bytes(), not result.ok
    return result.body, False


def _parse_fetched(
    run: MergeRun,
    item: MergeInput,
    result: fetch.FetchResult,
    parsed_outcome: pipeline.InputOutcome | None = None,
) -> tuple[pipeline.InputOutcome, SourceResult]:
    source_result = SourceResult(
        run=run,
        source_id=item.source_id,
        label=item.label[:300],
        url=_redact(item.url)[:2000],
        http_status=result.status,
        not_modified=result.not_modified,
        size=result.size,
        elapsed_ms=result.elapsed_ms,
        userinfo=result.userinfo,
    )
    body, stale = choose_body(item, result)
    if body is None:
        source_result.error = (result.error or "no body")[:500]
        return pipeline.InputOutcome(item.label, error=source_result.error), source_result

    outcome = parsed_outcome or pipeline.parse_input(item.label, body)
    if outcome.parsed is None:
        source_result.error = outcome.error[:500]
        return outcome, source_result
    parsed = outcome.parsed
    source_result.ok = True
    source_result.format = parsed.format
    source_result.entries = parsed.entries
    source_result.nodes = len(parsed.nodes)
    source_result.invalid = parsed.invalid
    source_result.invalid_reasons = dict(parsed.reasons.most_common(20))
    source_result.stale = stale
    if stale:
        source_result.error = f"stale: fetch failed ({result.error}); used the last good content"[:500]
    if item.source_id is not None and result.ok and result.body is not None:
        cache = _cache_path(item.source_id)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(result.body)
    return outcome, source_result


def _redact(url: str) -> str:
    """Drop the query of a URL before storing or showing it, because subscription tokens live there."""
    return url.split("?", 1)[0] if "://" in url else url


def _result_summary(result: SourceResult) -> dict[str, Any]:
    return {
        "label": result.label,
        "url": result.url,
        "ok": result.ok,
        "http_status": result.http_status,
        "error": result.error,
        "format": result.format,
        "entries": result.entries,
        "nodes": result.nodes,
        "invalid": result.invalid,
        "invalid_reasons": result.invalid_reasons,
        "userinfo": result.userinfo,
    }


def _persist(
    run: MergeRun,
    results: list[SourceResult],
    nodes: list[CoreNode],
    links: list[str],
    inputs: list[MergeInput],
    fetched: list[fetch.FetchResult],
    progress: _ProgressTracker,
    probe_outcomes: list[list[probing.ProbeOutcome]] | None = None,
    probe_options: probing.ProbeOptions | None = None,
) -> None:
    now = timezone.now()
    with transaction.atomic():
        SourceResult.objects.bulk_create(results)
        _update_sources(inputs, fetched, results, now)
        if inputs and not any(result.ok for result in results):
            # Storing nothing keeps the previous nodes and exports served.
            _finish_without_nodes(
                run, MergeRun.Status.FAILED, f"all {len(inputs)} inputs failed; nothing was stored"
            )
            return
        if run.kind == MergeRun.Kind.ADHOC:
            # Inputs given on the command line go to the export folder only, so a trial merge
            # never changes the stored nodes or what subscribers are served.
            _finish_without_nodes(run, MergeRun.Status.SUCCEEDED, "")
            return
        total = len(nodes)
        for start in range(0, total, QUERY_BATCH):
            batch = nodes[start : start + QUERY_BATCH]
            _upsert_nodes(run, batch, links[start : start + QUERY_BATCH], now)
            progress("persist", min(start + QUERY_BATCH, total), total)
        if probe_outcomes is not None and probe_options is not None:
            ids = dict(Node.objects.filter(last_run=run).values_list("fingerprint", "pk"))
            node_ids = [ids[node.fingerprint] for node in nodes]
            run.probed, run.alive = probing.store_outcomes(
                run, node_ids, probe_outcomes, now, probe_options.history
            )
        run.status = MergeRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.progress = 100.0
        run.stage = "done"
        run.save()
        progress_events.publish_run_status(run)


def _finish_without_nodes(run: MergeRun, status: str, error: str) -> None:
    run.status = status
    run.error = error
    run.finished_at = timezone.now()
    run.progress = 100.0
    run.stage = "done"
    run.save()
    progress_events.publish_run_status(run)


def _upsert_nodes(run: MergeRun, batch: list[CoreNode], links: list[str], now) -> None:
    fingerprints = [node.fingerprint for node in batch]
    existing = dict(Node.objects.filter(fingerprint__in=fingerprints).values_list("fingerprint", "origins"))
    rows = []
    for node, fingerprint, link in zip(batch, fingerprints, links, strict=True):
        origins = list(existing.get(fingerprint) or [])
        for label in node.sources:
            if label not in origins:
                origins.append(label)
        rows.append(
            Node(
                fingerprint=fingerprint,
                protocol=node.protocol,
                host=node.host[:255],
                port=node.port,
                name=node.name[:500],
                link=link,
                data=node.as_dict(),
                origins=origins,
                first_seen=now,
                last_seen=now,
                last_run=run,
            )
        )
    Node.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["fingerprint"],
        update_fields=[
            "name",
            "link",
            "data",
            "origins",
            "last_seen",
            "last_run",
            "protocol",
            "host",
            "port",
        ],
    )


def _update_sources(
    inputs: list[MergeInput], fetched: list[fetch.FetchResult], results: list[SourceResult], now
) -> None:
    for item, fetch_result, result in zip(inputs, fetched, results, strict=True):
        if item.source_id is None:
            continue
        changes: dict[str, Any] = {"last_fetched_at": now}
        if result.ok and fetch_result.ok:
            changes.update(
                last_ok_at=now,
                last_error="",
                consecutive_failures=0,
                last_node_count=result.nodes,
                etag=fetch_result.etag or "",
                last_modified=fetch_result.last_modified or "",
            )
            if fetch_result.userinfo is not None:
                changes["userinfo"] = fetch_result.userinfo
            Source.objects.filter(pk=item.source_id).update(**changes)
        else:
            changes["last_error"] = result.error[:500]
            changes["consecutive_failures"] = F("consecutive_failures") + 1
            Source.objects.filter(pk=item.source_id).update(**changes)
