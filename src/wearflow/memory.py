"""How much memory a task will need at its peak, and how much the workers may use.

A task's peak is estimated before it runs from the file's size: the number of
samples a file of that format and size holds (bytes on disk per sample, the
smallest seen on real recordings, so the estimate errs high) times the
solution's bytes per sample in memory (scikit-digital-health's wrist pipeline
peaks at about 150 bytes per sample), plus the worker's own footprint.
"""

from __future__ import annotations

import psutil

# Bytes on disk per sample, by file ending: the smallest seen on the real recordings in
# shared/data/real (AX3 packed .cwa 4.27; GENEActiv .bin 12.7; ActiGraph .gt3x/.agdc with
# idle sleep 1.7; ActiLife RAW .csv 18.7; gzipped CSV 2.1). Longest ending first.
ON_DISK_BYTES_PER_SAMPLE: tuple[tuple[str, float], ...] = (
    (".cwa.gz", 1.5),
    (".csv.gz", 1.5),
    (".bin.gz", 4.0),
    (".cwa", 4.2),
    (".bin", 12.5),
    (".gt3x", 1.5),
    (".agdc", 1.5),
    (".csv", 15.0),
)
UNKNOWN_FORMAT_BYTES_PER_SAMPLE = 1.5
# Measured: the builtin wrist solution peaks at 9.5 GB on a 7-day 100 Hz recording
# (60.5 million samples) = 157 bytes per sample.
DEFAULT_BYTES_PER_SAMPLE = 160.0
# Measured (`make bench`, throughput): builtin:wrist-stream on the same recording peaks at
# 4.2 GB, 65 bytes per sample over its worker's setup; most of it the decoded recording,
# which it still receives whole (issue 17: the streaming readers are not plugged in yet)
STREAM_BYTES_PER_SAMPLE = 70.0
# ... but on one file of a format that streams it reads the file chunk by chunk
# (wearflow.streamed) and keeps its 1-s table on disk, read a day at a time
# (wearflow.streaming.spill): a one-file study in one process peaked at 0.32, 0.33 and
# 0.34 GB for 1, 7 and 14 days at 100 Hz (`make bench`, stream_task): the imports and a
# chunk's and a day's working set, then about 18 bytes per second of recording (pass 1's
# still windows, two marks per second for DETACH, the per-minute table), whatever the
# rate. A streamed task reserves the worker's footprint, a chunk's and a day's, and
# STREAM_BYTES_PER_SECOND for the seconds its samples span at STREAM_ASSUMED_HZ (a file
# at a lower rate spans more seconds than assumed; the margin covers down to 30 Hz):
# `streamed_task_bytes`. (The 1-s table takes 72 bytes per second of temporary disk.)
STREAMED_TASK_BYTES = 128 * 1024**2
STREAM_BYTES_PER_SECOND = 32.0
STREAM_ASSUMED_HZ = 50.0
WORKER_BASE_BYTES = 400 * 1024**2  # interpreter + scikit-digital-health import
MEMORY_FRACTION = 0.8  # of physical memory, when the study sets no limit

GB = 1024**3


def _on_disk_bytes_per_sample(file_name: str) -> float:
    name = file_name.lower()
    return next((b for end, b in ON_DISK_BYTES_PER_SAMPLE if name.endswith(end)),
                UNKNOWN_FORMAT_BYTES_PER_SAMPLE)


def estimated_samples(file_name: str, size_bytes: int) -> int:
    return int(size_bytes / _on_disk_bytes_per_sample(file_name)) + 1


def max_inflated_bytes(file_name: str, limit_bytes: int,
                       bytes_per_sample: float = DEFAULT_BYTES_PER_SAMPLE) -> int:
    """The most a compressed file may inflate to when one task may use ``limit_bytes``
    (on top of its worker's own footprint): content whose samples, at the fewest bytes
    per sample of the format inside (the name without ``.gz``), fit the limit.

    The plan estimates a ``.gz`` file from its compressed size; its content is what
    the task decodes. Inflating no further than this keeps a gzip bomb inside what the
    task may use, whatever its ratio."""
    inner = file_name.lower().removesuffix(".gz")
    return int(limit_bytes / bytes_per_sample * _on_disk_bytes_per_sample(inner))


def estimate_peak_bytes(file_name: str, size_bytes: int,
                        bytes_per_sample: float = DEFAULT_BYTES_PER_SAMPLE) -> int:
    """Estimated peak memory of one task on ``file_name`` of ``size_bytes``."""
    return WORKER_BASE_BYTES + int(estimated_samples(file_name, size_bytes) * bytes_per_sample)


def streamed_task_bytes(file_name: str, size_bytes: int) -> int:
    """Estimated peak memory of one streamed task on ``file_name`` of ``size_bytes``."""
    seconds = estimated_samples(file_name, size_bytes) / STREAM_ASSUMED_HZ
    return WORKER_BASE_BYTES + STREAMED_TASK_BYTES + int(seconds * STREAM_BYTES_PER_SECOND)


def physical_memory_bytes() -> int:
    return int(psutil.virtual_memory().total)


def memory_budget_bytes(limit_gb: float | None = None) -> int:
    """What all of one machine's workers together may use: ``limit_gb`` when given,
    else a fixed share of physical memory (the rest for the system and coordinator)."""
    if limit_gb is not None:
        return int(limit_gb * GB)
    return int(physical_memory_bytes() * MEMORY_FRACTION)


def format_gb(n_bytes: int) -> str:
    return f"{n_bytes / GB:.1f} GB"


def too_big(needed_bytes: int, available_bytes: int | None, *,
            limit: str = "the workers may use",
            remedy: str = "in the study file or run it on a bigger machine") -> str | None:
    """Why a task is not started, when its estimate exceeds ``available_bytes`` (what
    ``limit`` allows; None: no limit known), else None."""
    if available_bytes is None or needed_bytes <= available_bytes:
        return None
    return (f"needs about {format_gb(needed_bytes)} of memory at its peak (estimate), more "
            f"than {limit} ({format_gb(available_bytes)}); raise memory_limit_gb {remedy}")
