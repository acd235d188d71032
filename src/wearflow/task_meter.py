"""What one task cost its worker process: CPU seconds and peak resident memory, and
which worker it was (``host:pid``); read by the worker around each task."""

from __future__ import annotations

import os
import resource
import socket
import sys
import time


def worker_name() -> str:
    """This worker process: ``"<hostname>:<pid>"``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class TaskMeter:
    """CPU seconds and peak resident memory of this process from now on: one task's, as a
    worker process runs one task at a time (threads of its own, such as a Dask worker's
    event loop, are counted with it; on a Dask worker started with several threads the
    figures of tasks running side by side overlap).

    Peak memory, on Linux: the process's high-water mark is reset when the meter starts
    (``5`` written to ``/proc/self/clear_refs``) and read when asked (``VmHWM`` in
    ``/proc/self/status``). Where that is not possible (another system, a read-only
    ``/proc``) it is ``getrusage(RUSAGE_SELF).ru_maxrss``: the process's peak so far,
    which may be an earlier task's or the worker's start-up.
    """

    def __init__(self) -> None:
        self._reset = _reset_high_water_mark()
        self._cpu = time.process_time()

    def cpu_s(self) -> float:
        """Process CPU seconds (all threads, user and system) since the meter started."""
        return time.process_time() - self._cpu

    def peak_rss_bytes(self) -> int:
        """The peak resident memory since the meter started (see the class docstring)."""
        if self._reset:
            peak = _high_water_mark_bytes()
            if peak is not None:
                return peak
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(maxrss if sys.platform == "darwin" else maxrss * 1024)  # macOS: bytes


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _high_water_mark_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # "VmHWM:   13512 kB"
    except (OSError, ValueError, IndexError):
        return None
    return None
