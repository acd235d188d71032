"""Chunks of samples: what the streaming kernels consume.

A chunk is a time-ordered run of samples: ``time_s`` (n,) UTC seconds,
``accel_g`` (n, 3) in g, ``temperature_c`` (n,) in deg C or None. The streaming
readers (``wearflow.readers.chunks.Chunk``, issue 17) yield exactly these
attributes; until they land, :func:`recording_chunks` splits a whole
:class:`~wearflow.recording.Recording` into such chunks so that the kernels can
be tested and measured now.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from wearflow.recording import Recording

FloatArray = npt.NDArray[np.float64]


class ChunkLike(Protocol):
    """The three attributes a kernel reads from a chunk."""

    @property
    def time_s(self) -> FloatArray: ...
    @property
    def accel_g(self) -> FloatArray: ...
    @property
    def temperature_c(self) -> FloatArray | None: ...


@dataclass(frozen=True)
class SampleChunk:
    """A chunk held in memory (views into a larger array are fine: kernels never write)."""

    time_s: FloatArray
    accel_g: FloatArray
    temperature_c: FloatArray | None = None


def recording_chunks(recording: Recording, chunk_samples: int) -> Iterator[SampleChunk]:
    """``recording`` as consecutive chunks of ``chunk_samples`` samples (the last shorter)."""
    if chunk_samples < 1:
        raise ValueError(f"chunk_samples must be >= 1, got {chunk_samples}")
    temp = recording.temperature_c
    for i in range(0, recording.n_samples, chunk_samples):
        j = i + chunk_samples
        yield SampleChunk(recording.time_s[i:j], recording.accel_g[i:j],
                          None if temp is None else temp[i:j])


ChunkSource = Iterable[ChunkLike]
"""Something a pass can iterate over once; a two-pass pipeline asks for it twice."""
