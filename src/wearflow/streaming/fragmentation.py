"""Fragmentation endpoints of a sleep/wake sequence, as SKDH computes them.

Mirrors ``skdh.utility.fragmentation_endpoints`` (0.17.18): average duration,
state transition probability, Gini index (corrected), average hazard and
power-law exponent of the runs of one state; and the ten sleep endpoints of
``skdh.sleep.endpoints`` built on them (``AverageSleepDuration`` ...
``WakePowerLawDistribution``), under builtin:wrist's column names.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def runs_of(pred: IntArray, state: int) -> IntArray:
    """Lengths of the runs of ``state`` in ``pred`` (SKDH's ``rle``, filtered)."""
    if pred.size == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, pred[1:] != pred[:-1]])
    lengths = np.diff(np.r_[starts, pred.size])
    out: IntArray = lengths[pred[starts] == state].astype(np.int64)
    return out


def average_duration(lens: IntArray) -> float:
    return float(np.mean(lens)) if lens.size else 0.0


def transition_probability(lens: IntArray) -> float:
    return float(1 / np.mean(lens)) if lens.size else float("nan")


def gini_index(lens: IntArray) -> float:
    """SKDH's ``gini(x, w=None, corr=True)`` on the run lengths."""
    if lens.size == 0:
        return 0.0
    if lens.size == 1:
        return 1.0
    n = lens.size
    cum = np.cumsum(np.sort(lens), dtype=np.float64)
    g = (n + 1 - 2 * np.sum(cum) / cum[-1]) / n
    return float(min(g * n / (n - 1), 1))


def average_hazard(lens: IntArray) -> float:
    if lens.size == 0:
        return float("nan")
    unq, cnts = np.unique(lens, return_counts=True)
    cum = np.insert(np.cumsum(cnts), 0, 0)
    h = cnts / (cum[-1] - cum[:-1])
    return float(np.sum(h) / unq.size)


def power_law(lens: IntArray) -> float:
    if lens.size == 0:
        return 1.0
    return float(1 + lens.size / np.sum(np.log(lens / (lens.min() - 0.5))))


def sleep_fragmentation(pred: IntArray) -> dict[str, float]:
    """The ten fragmentation columns of builtin:wrist's ``sleep`` table for one TSO."""
    out: dict[str, float] = {}
    for name, state in (("sleep", 1), ("wake", 0)):
        lens = runs_of(pred, state)
        out[f"average_{name}_duration_min"] = average_duration(lens)
        out[f"{name}_gini_index"] = gini_index(lens)
        out[f"{name}_average_hazard"] = average_hazard(lens)
        out[f"{name}_power_law_distribution"] = power_law(lens)
    out["sleep_wake_transition_probability"] = transition_probability(runs_of(pred, 1))
    out["wake_sleep_transition_probability"] = transition_probability(runs_of(pred, 0))
    return out
