"""A recording delivered piece by piece: :class:`Chunk` and :class:`RecordingStream`.

:func:`wearflow.readers.iter_recording` returns a :class:`RecordingStream`:
iterating it yields time-ordered :class:`Chunk` objects whose concatenation is
exactly what :func:`wearflow.readers.read_recording` returns for the same
bytes (samples, times, temperature, flags, device, sampling rate), so a
consumer that keeps only per-epoch features needs memory in proportion to a
chunk, not to the file. The header facts (``device``, ``sampling_rate_hz``)
are known once the first chunk has been produced; ``flags`` once the stream
is exhausted, because counts such as ``trimmed_samples=N`` or ``gap_s=X``
cover the whole file.

A stream is read once. Errors are :class:`~wearflow.errors.ReaderError` naming
the file, with the same one-line message the whole-file read gives; one can
surface after chunks were yielded (a clock jump into the future found late in
the file), so a consumer must treat a stream that raised as a failed file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from wearflow.recording import DeviceInfo, FloatArray, Recording, accel_extremes

StreamMethod = Literal["streamed", "whole-file"]
"""How a stream is produced: ``streamed`` decodes the file piece by piece in bounded
memory; ``whole-file`` decodes it whole (formats without a streaming decoder, see
:func:`wearflow.readers.iter_recording`) and then hands it out in chunks."""


@dataclass(frozen=True)
class Chunk:
    """Consecutive samples of one recording, in time order.

    ``time_s`` is strictly increasing UTC seconds since 1970, shape (n,), and
    continues the previous chunk's (the first time here is later than the last
    there); ``accel_g`` is (n, 3) in g; ``temperature_c`` (n,) in degC or None
    for the whole stream. ``segment`` counts the reader's time-base segments
    (0 first): a .cwa logging restart or spliced session starts a new one
    (the ``segments=N`` flag of the whole-file read), and a chunk never spans
    two. Gaps within a segment show in ``time_s`` and in the ``gap_s`` flags.
    """

    time_s: FloatArray
    accel_g: FloatArray
    temperature_c: FloatArray | None
    segment: int = 0

    @property
    def n_samples(self) -> int:
        return int(self.time_s.shape[0])


@dataclass(frozen=True)
class StreamHeader:
    """What is known about a recording before its samples: the device and its rate."""

    device: DeviceInfo
    sampling_rate_hz: float


class RecordingStream:
    """Time-ordered chunks of one recording; iterate once.

    Parameters
    ----------
    uri
        The file, as named in errors.
    method
        How the chunks are produced (see :data:`StreamMethod`).
    produce
        Called once on iteration with two callbacks: ``on_header`` (call once,
        before the first chunk) and ``on_flags`` (call once, after the last);
        returns the chunks.
    """

    def __init__(
        self,
        uri: str,
        method: StreamMethod,
        produce: Callable[[Callable[[StreamHeader], None], Callable[[tuple[str, ...]], None]],
                          Iterator[Chunk]],
    ) -> None:
        self.uri = uri
        self.method: StreamMethod = method
        self._produce = produce
        self._header: StreamHeader | None = None
        self._flags: tuple[str, ...] | None = None
        self._started = False

    def __iter__(self) -> Iterator[Chunk]:
        if self._started:
            raise RuntimeError(f"the stream of {self.uri} was already iterated")
        self._started = True
        return self._produce(self._set_header, self._set_flags)

    def _set_header(self, header: StreamHeader) -> None:
        self._header = header

    def _set_flags(self, flags: tuple[str, ...]) -> None:
        self._flags = flags

    @property
    def header(self) -> StreamHeader:
        """Device and sampling rate; available once the first chunk was produced."""
        if self._header is None:
            raise RuntimeError(f"the stream of {self.uri} has produced no chunk yet")
        return self._header

    @property
    def device(self) -> DeviceInfo:
        return self.header.device

    @property
    def sampling_rate_hz(self) -> float:
        return self.header.sampling_rate_hz

    @property
    def flags(self) -> tuple[str, ...]:
        """The whole file's flags, as the whole-file read gives them; after the last chunk."""
        if self._flags is None:
            raise RuntimeError(f"the stream of {self.uri} is not finished")
        return self._flags

    @property
    def finished(self) -> bool:
        return self._flags is not None


def collect(stream: RecordingStream) -> Recording:
    """Concatenate a whole stream into the :class:`Recording` the whole-file read gives.

    For tests and small files: this holds every sample in memory, as
    :func:`wearflow.readers.read_recording` does.
    """
    chunks = list(stream)
    times = [c.time_s for c in chunks]
    accel = [c.accel_g for c in chunks]
    temps = [c.temperature_c for c in chunks if c.temperature_c is not None]
    accel_g = np.ascontiguousarray(np.concatenate(accel) if accel else np.empty((0, 3)))
    return Recording(
        time_s=np.ascontiguousarray(np.concatenate(times) if times else np.empty(0)),
        accel_g=accel_g,
        sampling_rate_hz=stream.sampling_rate_hz,
        device=stream.device,
        temperature_c=np.concatenate(temps) if temps and len(temps) == len(chunks) else None,
        flags=stream.flags,
        extremes=accel_extremes(accel_g),
    ).validate(stream.uri)
