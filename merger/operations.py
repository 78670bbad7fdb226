"""Start merges, probes and exports in the background for the web pages and the API.

A request must return at once with the run id, so the work runs in a Celery worker when a broker
is configured and in a thread of this process otherwise (the embedded default, where Celery is
eager and would run the task inside the request). Either way the same service functions that the
management commands call do the work, and progress reaches the browser as `run.progress` events.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import orchestration, services
from . import progress as progress_events
from .core import pipeline
from .models import MergeRun, Source, SourceResult
from .progress import append_log, log_lines  # noqa: F401 - the pages read the log through here

logger = logging.getLogger(__name__)

OPERATIONS = ("merge", "probe", "export")


class OperationError(ValueError):
    """An operation that cannot be started, with a message for the user."""


@dataclass(frozen=True, slots=True)
class Started:
    """The run that an operation request leads to; `created` is False when one was already active."""

    run: MergeRun
    created: bool


def start(operation: str, trigger: str = "web") -> Started:
    """Create a run for `operation` and start it in the background once the transaction commits.

    With a broker, a merge goes through `orchestration.request_merge`, which queues the Celery
    task. Without one Celery is eager and would merge inside the request, so the same task body
    (`orchestration.execute_run`) runs in a thread instead.
    """
    if operation not in OPERATIONS:
        raise OperationError(
            _("Unknown operation %(name)r: use one of %(known)s.")
            % {"name": operation, "known": ", ".join(OPERATIONS)}
        )
    if operation == "merge":
        if not settings.CELERY_TASK_ALWAYS_EAGER:
            try:
                request = orchestration.request_merge(trigger)
            except orchestration.NoEnabledSources as error:
                raise OperationError(str(error)) from None
            return Started(request.run, request.created)
        if not Source.objects.filter(enabled=True).exists():
            raise OperationError(_("No enabled sources: add or enable one on the Sources page first."))
        request = orchestration.reserve_merge(trigger)
        if not request.created:
            return Started(request.run, created=False)
        run = request.run
    else:
        run = services.create_run(trigger, kind=operation)
    append_log(run.pk, f"{operation} queued by {trigger}")
    transaction.on_commit(lambda: run_in_background(operation, run.pk))
    return Started(run, created=True)


def cancel(run: MergeRun) -> bool:
    """Cancel a pending run, or ask a running one to stop at its next stage; False when it already ended."""
    if run.status not in orchestration.ACTIVE_STATUSES:
        return False
    run = orchestration.cancel_run(run.pk)
    append_log(run.pk, "cancel requested")
    progress_events.publish_run_status(run)
    return True


def run_in_background(operation: str, run_id: int) -> None:
    """Run the operation in a daemon thread; tests replace this to run it inline."""
    thread = threading.Thread(
        target=_execute_in_thread, args=(operation, run_id), name=f"run-{run_id}", daemon=True
    )
    thread.start()


def _execute_in_thread(operation: str, run_id: int) -> None:
    try:
        execute(operation, run_id)
    finally:
        # The thread's own database connection is closed here; closing in `execute` would also
        # close the caller's connection when a test runs it inline.
        close_old_connections()


def execute(operation: str, run_id: int) -> None:
    """Run one operation to its end and record its log; every error ends up on the run."""
    handler = _ThreadLogHandler(run_id)
    logging.getLogger("merger").addHandler(handler)
    try:
        _RUNNERS[operation](run_id)
    except Exception as error:
        logger.exception("%s run %s failed", operation, run_id)
        append_log(run_id, f"failed: {type(error).__name__}: {error}")
        MergeRun.objects.filter(pk=run_id, status__in=orchestration.ACTIVE_STATUSES).update(
            status=MergeRun.Status.FAILED,
            error=f"{type(error).__name__}: {error}"[:2000],
            finished_at=timezone.now(),
        )
        progress_events.publish_run_status(MergeRun.objects.get(pk=run_id))
    finally:
        logging.getLogger("merger").removeHandler(handler)


def _merge(run_id: int) -> None:
    orchestration.execute_run(run_id, worker=f"web thread {threading.get_ident()}", fan_out=False)
    run = MergeRun.objects.get(pk=run_id)
    for result in SourceResult.objects.filter(run=run).order_by("label"):
        if result.ok:
            line = f"ok {result.label}: {result.format}, {result.nodes} nodes, {result.invalid} invalid"
        else:
            line = f"failed {result.label}: {result.error}"
        append_log(run.pk, line)
    summary = f"{run.status}: {run.links_seen} links, {run.unique} unique, {run.duplicates} duplicates"
    append_log(run.pk, f"{summary}, {run.invalid} invalid" + (f"; {run.error}" if run.error else ""))


def _probe(run_id: int) -> None:
    """Re-probe every stored node with the settings' probe options and refresh the scores."""
    from . import probing, profiles

    _begin(run_id, "probe")
    publisher = progress_events.RunEventPublisher(run_id)

    def progress(done: int, total: int) -> None:
        publisher("probe", done, total, 100.0 * done / total if total else 100.0)

    checked, probed, alive = probing.probe_stored_nodes(
        options=probing.ProbeOptions.from_settings(), progress=progress
    )
    profiles.update_scores()
    MergeRun.objects.filter(pk=run_id).update(probed=probed, alive=alive)
    _finish(run_id, f"probe finished: {checked} nodes checked, {probed} testable, {alive} alive")


def _export(run_id: int) -> None:
    """Write the served nodes again in every export format, into this run's own folder.

    The folder is recorded on the export run for download; the current exports stay those of the
    latest merge run, because only merge runs are served.
    """
    from . import profiles
    from .core.select import node_from_dict
    from .models import Node

    _begin(run_id, "export")
    served = profiles.served_run()
    if served is None:
        raise OperationError(_("Nothing to export yet: run a merge first."))
    nodes = []
    for data, origins in Node.objects.filter(last_run=served).order_by("pk").values_list("data", "origins"):
        node = node_from_dict(data)
        node.sources = list(origins or [])
        nodes.append(node)
    out_dir = Path(settings.VPNMERGER["EXPORT_DIR"]) / f"run-{run_id}"
    stats = {"run_id": run_id, "exported_from_run": served.pk, "unique": len(nodes)}
    result = pipeline.export_all(nodes, out_dir, stats)
    MergeRun.objects.filter(pk=run_id).update(
        export_dir=str(out_dir), export_skipped=result.skipped, unique=len(nodes)
    )
    _finish(run_id, f"export finished: {len(nodes)} nodes from run {served.pk} written to {out_dir}")


def _begin(run_id: int, stage: str) -> None:
    MergeRun.objects.filter(pk=run_id).update(
        status=MergeRun.Status.RUNNING, started_at=timezone.now(), stage=stage
    )
    progress_events.publish_run_status(MergeRun.objects.get(pk=run_id))
    append_log(run_id, f"{stage} started")


def _finish(run_id: int, message: str) -> None:
    append_log(run_id, message)
    MergeRun.objects.filter(pk=run_id).update(
        status=MergeRun.Status.SUCCEEDED, progress=100.0, stage="done", finished_at=timezone.now()
    )
    progress_events.publish_run_status(MergeRun.objects.get(pk=run_id))


_RUNNERS: dict[str, Callable[[int], None]] = {"merge": _merge, "probe": _probe, "export": _export}


class _ThreadLogHandler(logging.Handler):
    """Copies warnings and errors logged by the run's own thread into its log tail."""

    def __init__(self, run_id: int) -> None:
        super().__init__(level=logging.WARNING)
        self.run_id = run_id
        self.thread_id = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread_id:
            return
        try:
            append_log(self.run_id, f"{record.levelname.lower()}: {record.getMessage()}"[:500])
        except Exception:
            self.handleError(record)


@dataclass(slots=True)
class SourceCheck:
    """The outcome of fetching and parsing one source now, without storing anything."""

    ok: bool
    http_status: int | None = None
    size: int = 0
    elapsed_ms: float = 0.0
    format: str = ""
    entries: int = 0
    nodes: int = 0
    invalid: int = 0
    reasons: list[tuple[str, int]] = field(default_factory=list)
    per_protocol: dict[str, int] = field(default_factory=dict)
    error: str = ""


def check_source(source: Source) -> SourceCheck:
    """Fetch and parse one source with the merge's limits and report counts and errors.

    Conditional-GET validators are left out, because a 304 answer would leave nothing to parse.
    """
    item = services.input_for_source(source)
    item.etag = item.last_modified = ""
    result = services.fetch_one(item)
    check = SourceCheck(ok=False, http_status=result.status, size=result.size, elapsed_ms=result.elapsed_ms)
    if result.body is None:
        check.error = result.error or "no body"
        return check
    outcome = pipeline.parse_input(source.name, result.body)
    if outcome.parsed is None:
        check.error = outcome.error
        return check
    parsed = outcome.parsed
    check.ok = True
    check.format = parsed.format
    check.entries = parsed.entries
    check.nodes = len(parsed.nodes)
    check.invalid = parsed.invalid
    check.reasons = parsed.reasons.most_common(10)
    check.per_protocol = dict(sorted(Counter(node.protocol for node in parsed.nodes).items()))
    return check
