"""A task's file read as a stream, for a solution that takes chunks (issue 17).

The whole-file path (:mod:`wearflow.worker`) fetches a file's bytes, decodes them into
one :class:`~wearflow.recording.Recording` and hands it to the solution: its memory
grows with the recording (4 GB for a week at 100 Hz before any algorithm). A solution
with a ``run_stream`` method (``builtin:wrist-stream``) instead gets a factory of
chunk iterators: each pass opens the file again and decodes it chunk by chunk
(:func:`wearflow.readers.iter_recording`), so the task's memory is one chunk plus what
the algorithms keep per epoch, whatever the file's length.

What the whole-file path checks holds here too: the file's bytes are hashed (read in
blocks) before the first pass and again after the last, and must be the cataloged ones
both times (a file replaced mid-task is never reported as processed); the figures of
the file's QC (samples, span, rate drift, peak and clipped fraction, temperature,
device, the reader's flags) are gathered from the chunks of the solution's passes
(:class:`_Gatherer`) and equal the whole-file path's
(:class:`~wearflow.qc.RecordingSummary`).

Only a task on one file whose format streams (.cwa, .cwa.gz, GENEActiv .bin, CSV plain
or .csv.gz) goes this way; several recordings of one wrist and gt3x go the whole-file
way. (A CSV whose whole-file facts cannot be gathered in bounded state -- not UTF-8,
times out of order, column types changing down the file -- is still read whole inside
the stream: see :mod:`wearflow.readers._csv_stream`.)
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO, Protocol, TypeGuard, runtime_checkable

import numpy as np

from wearflow.errors import ReaderError, WearflowError
from wearflow.qc import CLIP_MARGIN_G, RecordingSummary
from wearflow.readers.chunks import Chunk, RecordingStream
from wearflow.readers.streaming import iter_recording
from wearflow.solutions.base import FileResult
from wearflow.storage import Store
from wearflow.streaming import kernels
from wearflow.task import InputFile, TaskSpec

STREAMED_ENDINGS = (".cwa", ".cwa.gz", ".bin", ".csv", ".csv.gz")
CHUNK_S = 900.0  # 15 minutes of samples per chunk (100 Hz: 90,000 samples, 2 MB of float64)
_HASH_BLOCK_BYTES = 8 * 1024 * 1024
_CLIPPING_FROM_G = 1.5  # as qc._peak_and_clipped: below, nothing is counted as clipped

ChunkFactory = Callable[[], Iterable[Chunk]]


@runtime_checkable
class StreamingSolution(Protocol):
    """A solution that reads a recording in passes of chunks."""

    def run_stream(self, chunks: ChunkFactory, sampling_rate_hz: float,
                   metadata: Mapping[str, Any]) -> FileResult: ...


def streams(solution: object, task: TaskSpec) -> TypeGuard[StreamingSolution]:
    """Whether ``task`` runs streamed: one input file of a format that streams, and a
    solution that takes chunks."""
    return (isinstance(solution, StreamingSolution) and len(task.inputs) == 1
            and task.inputs[0].path.lower().endswith(STREAMED_ENDINGS))


def run_streamed(task: TaskSpec, solution: StreamingSolution, stage: Callable[[str], Any],
                 inflate_cap: int) -> tuple[FileResult, RecordingSummary]:
    """Run ``solution`` on the task's file in passes of chunks; its result and the
    recording's summary. ``stage(name)`` is the task's stopwatch (a context manager).

    Raises
    ------
    ReaderError
        The file cannot be decoded (named, as the whole-file read names it).
    WearflowError
        The file's bytes are not the cataloged ones (before the first pass or after the
        last).
    """
    (part,) = task.inputs
    store = Store(part.location, dict(task.storage_options))
    with stage("verify"):
        _check_unchanged(store, part)
    gatherer = _Gatherer()

    def open_stream(source: BinaryIO) -> RecordingStream:
        return iter_recording(source, part.uri, chunk_s=CHUNK_S,
                              device_time_zone=task.device_time_zone,
                              max_decompressed_bytes=inflate_cap)

    with contextlib.ExitStack() as held:
        # the first pass goes on from the stream opened for the rate (from its first
        # chunk: the algorithms need it before their first pass): one survey of the
        # file fewer
        with stage("decode"):
            source = held.enter_context(store.open(part.path))
            first_stream = open_stream(source)
            primed = iter(first_stream)
            held.callback(_close, primed)
            first = next(primed, None)
            if first is None:
                raise ReaderError("no samples", subject=part.uri)
            rate_hz = first_stream.sampling_rate_hz
        resume = [itertools.chain((first,), primed)]

        def chunks() -> Iterator[Chunk]:
            if resume:
                yield from gatherer.watch(first_stream, resume.pop())
                return
            with store.open(part.path) as again:
                stream = open_stream(again)
                yield from gatherer.watch(stream, iter(stream))

        with stage("solution"):
            result = solution.run_stream(chunks, rate_hz, dict(task.metadata))
            summary = gatherer.summary(chunks, part.uri)
    with stage("verify"):
        _check_unchanged(store, part)
    return result, summary


def _close(chunks: Iterator[Chunk]) -> None:
    """Close a stream's iteration (its file reader) if it was left before its end."""
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


def _check_unchanged(store: Store, part: InputFile) -> None:
    digest = hashlib.sha256()
    with store.open(part.path) as source:
        while block := source.read(_HASH_BLOCK_BYTES):
            digest.update(block)
    if digest.hexdigest() != part.sha256:
        raise WearflowError("file changed since it was cataloged; it will be re-planned",
                            subject=part.uri)


class _NearPeak:
    """The rows (their largest |value|) that may end within ``CLIP_MARGIN_G`` of the
    recording's peak, kept during the first pass, so that the clipped samples are counted
    without another whole pass: a row counts at the end if its largest |value| is at
    least ``peak - CLIP_MARGIN_G`` (any axis at or beyond ``±`` that), and the peak so far
    never exceeds the final one, so every such row is kept when it passes. Rows under
    ``_CLIPPING_FROM_G - CLIP_MARGIN_G`` never count and are not kept; past
    ``MAX_KEPT`` rows (a recording sitting near its peak) it gives up, and the next
    whole pass counts them."""

    MAX_KEPT = 2_000_000  # 16 MB

    def __init__(self) -> None:
        self._kept: list[np.ndarray] | None = []
        self._n_kept = 0
        self._pruned_at = 0

    def add(self, accel_g: np.ndarray, peak_so_far_g: float) -> float:
        """Keep the chunk's rows that may count; its peak (the largest |value|)."""
        if self._kept is None:
            return kernels.peak_abs_g(accel_g)
        floor = max(peak_so_far_g, _CLIPPING_FROM_G) - CLIP_MARGIN_G
        peak, rows = kernels.peak_and_rows_from(accel_g, floor)
        if not rows.size:
            return peak
        floor = max(peak_so_far_g, peak, _CLIPPING_FROM_G) - CLIP_MARGIN_G
        self._kept.append(rows)
        self._n_kept += rows.size
        if self._n_kept > 2 * self._pruned_at + 1024:  # drop what the peak has left behind
            self._kept = [kept[kept >= floor] for kept in self._kept]
            self._n_kept = self._pruned_at = sum(kept.size for kept in self._kept)
        if self._n_kept > self.MAX_KEPT:
            self._kept = None
        return peak

    def count(self, peak_g: float) -> int | None:
        """Rows within the margin of the final peak (None: gave up)."""
        if self._kept is None:
            return None
        limit = peak_g - CLIP_MARGIN_G
        return sum(int(np.count_nonzero(kept >= limit)) for kept in self._kept)


class _Gatherer:
    """The figures of a recording's QC, gathered from the chunks of every pass over it:
    its samples, span, peak and clipped samples (within ``CLIP_MARGIN_G`` of the peak,
    :class:`_NearPeak`; else from the next whole pass) from the first whole pass; the
    device, rate and flags from the stream once it is finished."""

    def __init__(self) -> None:
        self._streams: list[RecordingStream] = []
        self._finished: RecordingStream | None = None
        self._n = 0
        self._first_s: float | None = None
        self._last_s = 0.0
        self._has_temperature = False
        self._peak_g = 0.0
        self._clipped: int | None = None
        self._counting = False

    def watch(self, stream: RecordingStream, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        """``stream``'s chunks (``chunks``, its iteration), gathered from as they pass."""
        self._streams.append(stream)
        first_pass = self._finished is None
        counting = (not first_pass and self._clipped is None
                    and self._peak_g > _CLIPPING_FROM_G and not self._counting)
        if counting:
            self._counting = True
        try:
            yield from self._gather(stream, chunks, first_pass, counting)
        finally:
            if counting:
                self._counting = False

    def _gather(self, stream: RecordingStream, chunks: Iterator[Chunk], first_pass: bool,
                counting: bool) -> Iterator[Chunk]:
        n = clipped = 0
        first_s: float | None = None
        last_s, peak_g, has_temperature = 0.0, 0.0, False
        near = _NearPeak()
        for chunk in chunks:
            if chunk.time_s.size:
                if first_pass:
                    n += int(chunk.time_s.size)
                    first_s = float(chunk.time_s[0]) if first_s is None else first_s
                    last_s = float(chunk.time_s[-1])
                    peak_g = max(peak_g, near.add(chunk.accel_g, peak_g))
                    has_temperature = has_temperature or chunk.temperature_c is not None
                elif counting:
                    clipped += kernels.count_clipped(chunk.accel_g,
                                                     self._peak_g - CLIP_MARGIN_G)
            yield chunk
        # a pass is only counted once it went through the whole file
        if first_pass:
            self._finished, self._n, self._first_s, self._last_s = stream, n, first_s, last_s
            self._peak_g, self._has_temperature = peak_g, has_temperature
            if peak_g > _CLIPPING_FROM_G:
                self._clipped = near.count(peak_g)  # None: the next whole pass counts
        elif counting:
            self._clipped = clipped

    def summary(self, chunks: ChunkFactory, uri: str) -> RecordingSummary:
        """The summary; one more pass when the solution's passes did not give it all."""
        if self._finished is None:
            for _ in chunks():
                pass
        if self._clipped is None and self._peak_g > _CLIPPING_FROM_G:
            for _ in chunks():
                pass
        stream = self._finished
        if stream is None or self._first_s is None or self._n == 0:
            raise ReaderError("no samples", subject=uri)
        return RecordingSummary(
            n_samples=self._n, sampling_rate_hz=stream.sampling_rate_hz,
            first_s=self._first_s, last_s=self._last_s,
            has_temperature=self._has_temperature, device=stream.device,
            flags=tuple(stream.flags), peak_abs_accel_g=self._peak_g,
            clipped_fraction=(self._clipped or 0) / self._n)
