"""Compiled scans of the streaming readers' clean-up (:mod:`._stream_finish`).

Each chunk a streaming reader decodes is checked before it is handed on: every
time and acceleration finite, the times increasing, the steps over the gap
threshold. In numpy that is a sum per array, a ``diff``, its minimum and a
comparison: five passes and two temporaries of the chunk's length. Here it is one
loop; the clean-up keeps its numpy path for the chunks this scan finds not plain
(a non-finite value, times not increasing), so its results are unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from wearflow._jit import jit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@jit
def plain_chunk(time_s: FloatArray, accel_g: FloatArray, gap_threshold_s: float
                ) -> tuple[bool, IntArray]:
    """Whether every time and acceleration is finite and the times strictly increase;
    if so, where a step ``time_s[i + 1] - time_s[i]`` exceeds ``gap_threshold_s`` (the
    ``i``s, ascending; empty otherwise)."""  # pragma: no cover - compiled
    n = time_s.size
    # counts, not early exits: loops the compiler can vectorise
    spoilt = 0  # values that are NaN or infinite
    for i in range(n):
        spoilt += not abs(time_s[i]) < math.inf
        for j in range(accel_g.shape[1]):
            spoilt += not abs(accel_g[i, j]) < math.inf
    if spoilt:
        return False, np.empty(0, np.int64)
    not_later = n_gaps = 0
    for i in range(n - 1):
        step = time_s[i + 1] - time_s[i]
        not_later += step <= 0.0
        n_gaps += step > gap_threshold_s
    if not_later:
        return False, np.empty(0, np.int64)
    gaps = np.empty(n_gaps, np.int64)
    if n_gaps:
        k = 0
        for i in range(n - 1):
            if time_s[i + 1] - time_s[i] > gap_threshold_s:
                gaps[k] = i
                k += 1
    return True, gaps


@jit
def finite_range(values: FloatArray) -> tuple[float, float]:
    """The smallest and largest finite value (``inf, -inf`` when none)."""  # pragma: no cover
    lo, hi = math.inf, -math.inf
    for v in values:
        if math.isfinite(v):
            lo = min(lo, v)
            hi = max(hi, v)
    return lo, hi


def warm() -> None:
    """Load (or compile) the kernels for the argument types the readers use."""
    plain_chunk(np.arange(3.0), np.zeros((3, 3)), 1.0)
    finite_range(np.arange(3.0))
