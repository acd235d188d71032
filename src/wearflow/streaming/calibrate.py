"""Auto-calibration from still 10-s windows: the van Hees sphere fit, as SKDH does it.

Mirrors ``skdh.preprocessing.CalibrateAccelerometer.predict`` and its
``_do_iterative_closest_point_fit`` (0.17.18) on the windows of pass 1:

- still: every axis' SD below ``sd_criteria`` and every axis' |mean| below 2 g (a
  clipped axis is not still);
- the sphere must be populated: on every axis a still mean below
  ``-sphere_crit`` and one above ``+sphere_crit``;
- iterative closest point: project onto the unit sphere, fit per axis a weighted
  linear regression (intercept, the axis, the temperature deviation), update
  offset, scale and temperature scale, re-weight by ``min(1 / distance, 100)``,
  stop when the residual changes by less than ``tol`` or after ``max_iter``;
- accept only when the error after is below the error before and below 0.01 g;
- the first ``min_hours`` of data, then 12 more hours at a time until a fit is
  accepted or the data runs out; fewer than ``min_hours`` in all: no calibration.

:func:`calibration_error_g` is not SKDH's: it is the figure builtin:wrist writes to
qc.json (``skdh_core.calibration_error_g``), measured whether or not a fit is tried.

Differences: windows are on the UTC 10-s grid (SKDH counts samples from the first
one), a window needs 90% of its samples, and the regression is a plain weighted
least squares rather than scikit-learn's (the same solution).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wearflow.streaming.features import STILL_WINDOW_S, Calibration, StillWindows
from wearflow.streaming.wear import STILL_SD_G

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CalibrationParameters:
    """``CalibrateAccelerometer``'s parameters (the values of builtin:wrist)."""

    sd_criteria_g: float = 0.013
    sphere_crit_g: float = 0.3
    min_hours: float = 12.0
    max_iter: int = 1000
    tol: float = 1e-10


@dataclass(frozen=True)
class CalibrationResult:
    """The calibration to apply (identity when none was accepted) and why."""

    calibration: Calibration
    applied: bool
    error_before_g: float | None
    error_after_g: float | None
    message: str


def fit_calibration(windows: StillWindows, sampling_rate_hz: float,
                    params: CalibrationParameters = CalibrationParameters()
                    ) -> CalibrationResult:
    """The sphere fit over growing prefixes of the recording (see the module docstring)."""
    nh, n12h = calibration_limits(sampling_rate_hz, params)
    if windows.n_samples < nh:
        return CalibrationResult(Calibration.identity(), False, None, None,
                                 f"less than {params.min_hours} hours of data")
    i_h = 0
    while True:
        limit = nh + i_h * n12h
        result = fit_at_limit(windows, sampling_rate_hz, limit, params)
        if result is not None and result.applied:
            return result
        if limit >= windows.n_samples:
            return result if result is not None else CalibrationResult(
                Calibration.identity(), False, None, None, "too few still windows")
        i_h += 1


def calibration_limits(sampling_rate_hz: float,
                       params: CalibrationParameters = CalibrationParameters()
                       ) -> tuple[int, int]:
    """The first limit (``min_hours``) and the step (12 h), in samples."""
    return (int(params.min_hours * 3600 * sampling_rate_hz),
            int(12 * 3600 * sampling_rate_hz))


def limit_time_s(first_start_s: float | None, sampling_rate_hz: float, limit: int) -> float:
    """The time up to which the windows of a limit (in samples) lie (``first_start_s``:
    the first window's start)."""
    return (first_start_s or 0.0) + limit / sampling_rate_hz


def fit_at_limit(windows: StillWindows, sampling_rate_hz: float, limit: int,
                 params: CalibrationParameters = CalibrationParameters()
                 ) -> CalibrationResult | None:
    """The sphere fit on the full windows that end by :func:`limit_time_s` (None: fewer
    than two still ones). It reads no window after that time, so it can be tried as soon
    as a first pass has gone past it (:mod:`wearflow.streaming.single_read`)."""
    full = windows.count >= 0.9 * STILL_WINDOW_S * sampling_rate_hz
    inside = full & (windows.start_s + STILL_WINDOW_S
                     <= limit_time_s(windows.first_start_s, sampling_rate_hz, limit))
    return _fit(windows.mean_g[inside], windows.sd_g[inside], windows.temperature_c[inside],
                params)


def calibration_error_g(windows: StillWindows, sampling_rate_hz: float,
                        calibration: Calibration | None = None) -> float | None:
    """builtin:wrist's calibration quality figure (qc.json): the mean | |a| - 1 g | over
    the still 10-s windows (SD below 0.013 g on every axis), in g, rounded to 6 places;
    None without a still window. With ``calibration``, of the calibrated windows (it is
    affine: a window's calibrated mean is the calibration of its mean, at the window's
    mean temperature; its SD scales with the axis)."""
    full = windows.count >= 0.9 * STILL_WINDOW_S * sampling_rate_hz
    mean, sd = windows.mean_g[full], windows.sd_g[full]
    if calibration is not None:
        temperature = windows.temperature_c[full] if windows.has_temperature else None
        mean = calibration.apply(mean, temperature)
        sd = sd * np.abs(calibration.scale)
    still = np.all(sd < STILL_SD_G, axis=1)  # NaN (a 1-sample window) is not still
    if not np.any(still):
        return None
    return round(float(np.mean(np.abs(np.linalg.norm(mean[still], axis=1) - 1.0))), 6)


def _fit(mean: FloatArray, sd: FloatArray, temp: FloatArray, params: CalibrationParameters
         ) -> CalibrationResult | None:
    still = np.all(sd < params.sd_criteria_g, axis=1) & np.all(np.abs(mean) < 2.0, axis=1)
    acc, tmp = mean[still], temp[still]
    if acc.shape[0] < 2:
        return None
    error_before = float(np.around(np.mean(np.abs(np.linalg.norm(acc, axis=1) - 1)), 5))
    populated = int(((acc.min(axis=0) < -params.sphere_crit_g)
                     & (acc.max(axis=0) > params.sphere_crit_g)).sum())
    if populated != 3:
        return CalibrationResult(Calibration.identity(), False, error_before, None,
                                 "sphere not populated")
    offset, scale, tscale = np.zeros(3), np.ones(3), np.zeros((1, 3))
    tmean = float(np.mean(tmp))
    dt = (tmp - tmean).reshape(-1, 1)
    weights = np.full(acc.shape[0], 100.0)
    res = [np.inf]
    curr = acc
    for niter in range(params.max_iter):
        curr = (acc + offset) * scale + dt @ tscale
        closest = curr / np.linalg.norm(curr, axis=1, keepdims=True)
        offch, scalech, toffch = np.zeros(3), np.ones(3), np.zeros((1, 3))
        root_w = np.sqrt(weights)
        for k in range(3):
            x = np.column_stack((curr[:, k], dt[:, 0]))
            design = np.column_stack((np.ones(x.shape[0]), x)) * root_w[:, None]
            coef = np.linalg.lstsq(design, closest[:, k] * root_w, rcond=None)[0]
            offch[k], scalech[k], toffch[0, k] = coef[0], coef[1], coef[2]
            curr[:, k] = x @ coef[1:]  # SKDH: x_ @ LR.coef_ (no intercept)
        offset = offset + offch / (scale * scalech)
        tscale = tscale * scalech + toffch
        scale = scale * scalech
        res.append(3 * np.mean(weights[:, None] * (curr - closest) ** 2 / weights.sum()))
        weights = np.minimum(1 / np.linalg.norm(curr - closest, axis=1), 100)
        if abs(res[niter] - res[niter - 1]) < params.tol:
            break
    after = (acc + offset) * scale + dt * tscale
    error_after = float(np.around(np.mean(np.abs(np.linalg.norm(after, axis=1) - 1)), 5))
    ok = error_after < error_before and error_after < 0.01
    cal = Calibration(offset, scale, tscale[0], tmean)
    return CalibrationResult(cal if ok else Calibration.identity(), ok, error_before,
                             error_after, "accepted" if ok else "not improved")
