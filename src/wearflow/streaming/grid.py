"""1-s blocks on a gap-free grid, and the sums over windows of them.

The algorithms index time in steps (1-s, 5-s, 1-minute), so pass 2's 1-s blocks
are laid on a complete grid from the first block to the last, empty blocks
(gaps) counting no samples. The whole grid stays on disk
(:class:`~wearflow.streaming.spill.SpilledGrid`); an algorithm reads a window of
it at a time (:class:`Seconds`), which is a :class:`SecondGrid` in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

DAY_S = 86_400
"""What the algorithms read of the on-disk 1-s table at a time (rows)."""


@dataclass(frozen=True)
class SecondGrid:
    """Every second from ``first_s`` on: ``count`` (samples) and ``sums`` (seconds,
    columns of :class:`~wearflow.streaming.features.EpochFeatures`)."""

    first_s: float
    count: FloatArray
    sums: FloatArray

    @property
    def n(self) -> int:
        return int(self.count.size)

    def coarse(self, step: int, offset: int = 0) -> tuple[FloatArray, FloatArray]:
        """Counts and sums of consecutive ``step``-second blocks starting ``offset``
        seconds into the grid (a partial last block is dropped)."""
        n = max((self.n - offset) // step, 0)  # none in a window shorter than a block
        count = self.count[offset:offset + n * step].reshape(n, step).sum(axis=1)
        sums = self.sums[offset:offset + n * step].reshape(
            n, step, self.sums.shape[1]).sum(axis=1)
        return count, sums

    def window(self, lo: int, hi: int) -> SecondGrid:
        """Rows ``lo`` to ``hi`` (clipped to the grid; views)."""
        lo, hi = max(lo, 0), min(hi, self.n)
        hi = max(hi, lo)
        return SecondGrid(self.first_s + lo, self.count[lo:hi], self.sums[lo:hi])


class Seconds(Protocol):
    """A grid of 1-s blocks read a window at a time (in memory or on disk)."""

    @property
    def first_s(self) -> float: ...

    @property
    def n(self) -> int: ...

    def window(self, lo: int, hi: int) -> SecondGrid:
        """Rows ``lo`` to ``hi`` (clipped to the grid) as an in-memory grid."""
        ...


def window_sums(values: FloatArray, length: int) -> FloatArray:
    """Sums over every window of ``length`` consecutive rows (n - length + 1 rows)."""
    if values.shape[0] < length:
        return np.zeros((0, *values.shape[1:]))
    # a convolution with ones: the same sums as summing each window (to ~1e-14 relative),
    # ten times faster than reducing a sliding-window view
    ones = np.ones(length)
    if values.ndim == 1:
        out: FloatArray = np.convolve(values, ones, "valid")
        return out
    columns = values.reshape(values.shape[0], -1)
    out = np.empty((values.shape[0] - length + 1, columns.shape[1]))
    for j in range(columns.shape[1]):
        out[:, j] = np.convolve(columns[:, j], ones, "valid")
    return out.reshape(out.shape[0], *values.shape[1:])
