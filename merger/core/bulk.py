"""Helpers for the bulk steps of a merge: pausing the garbage collector and forking workers.

A merge of a million links is CPU-bound Python, so a second core only helps through a second
process. `os.fork` gives the child the parent's objects without pickling them, and only the
child's (small or compact) result travels back through a pipe. Where fork is missing (Windows)
or fails, callers run the same work in the parent.
"""

from __future__ import annotations

import gc
import os
import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def paused_gc() -> Iterator[None]:
    """Turn off the cyclic garbage collector for a bulk step, then restore its previous state.

    Parsing and exporting allocate millions of objects that form no reference cycles, and every
    few thousand allocations CPython scans the tracked objects again. At 200k links that scanning
    took about a quarter of the parse time (Python 3.11, measured by merger/bench.py).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def usable_cores() -> int:
    """Return how many cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# Set to "1" to let parsing and exporting use a forked worker. It is off by default because a
# worker that reads the parent's nodes copies the memory pages that hold them: at 1M links
# (merger/bench.py, 2 cores) the peak PSS went from 1.6 to 2.7 GB for about 5% less wall time.
FORK_ENV = "VPNMERGER_FORK"


def can_fork() -> bool:
    """Return True when work may go to a forked worker.

    That needs VPNMERGER_FORK=1, `os.fork` and a second usable core.
    """
    if os.environ.get(FORK_ENV, "0") != "1":
        return False
    return hasattr(os, "fork") and usable_cores() > 1


class ChildFailed(RuntimeError):
    """A forked worker died or raised; the message carries its exit status or traceback."""


class ForkedCall:
    """One function call running in a forked child process; `result()` waits for its return value.

    The child pickles the return value (or the formatted traceback of an exception) into a pipe
    and leaves with `os._exit`, so it never runs the parent's exit handlers or flushes its
    buffered output a second time.
    """

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        read_fd, write_fd = os.pipe()
        # Objects that exist before the fork are not scanned by the child's collector, so the
        # child does not write to (and copy) every page of the parent's heap.
        gc.freeze()
        try:
            pid = os.fork()
        except OSError:
            gc.unfreeze()
            os.close(read_fd)
            os.close(write_fd)
            raise
        if pid == 0:  # pragma: no cover - runs in the child, which coverage does not follow
            os.close(read_fd)
            _run_child(write_fd, function, args)
        gc.unfreeze()
        os.close(write_fd)
        self.pid = pid
        self._read_fd = read_fd
        self.started = time.perf_counter()

    def result(self) -> Any:
        """Wait for the child and return its value; raise ChildFailed if it raised or died."""
        with os.fdopen(self._read_fd, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(self.pid, 0)
        if not data:
            raise ChildFailed(f"worker process {self.pid} exited with status {status} and sent no result")
        succeeded, value = pickle.loads(data)
        if not succeeded:
            raise ChildFailed(f"worker process {self.pid} raised an exception:\n{value}")
        return value


def _run_child(  # pragma: no cover
    write_fd: int, function: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    status = 1
    try:
        try:
            payload = (True, function(*args))
        except BaseException:  # noqa: BLE001 - every failure must reach the parent as text
            import traceback

            payload = (False, traceback.format_exc())
        # The whole value is pickled before writing, so that the child holds the pipe only for
        # the copy and the parent, which reads after its own share of the work, waits less.
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(data)
        status = 0
    finally:
        os._exit(status)
