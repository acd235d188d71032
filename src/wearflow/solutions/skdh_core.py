"""Run a scikit-digital-health pipeline step by step and tidy its results.

This module imports nothing from wearflow: it runs both inside wearflow's own
environment and, as a script, inside a solution's pinned environment (where
only the solution's packages are installed)::

    python skdh_core.py INPUT.npz PIPELINE.skdh OUT_DIR --short-h 24 \
        [--step-module wearflow.solutions.skdh_steps=/path/to/skdh_steps.py]

Step by step, so that every warning becomes a QC flag, a step that fails on a
recording shorter than ``short_h`` hours is skipped with a flag, and DETACH
is replaced by acceleration-only wear detection when there is no temperature.
A step's result becomes tidy tables: columns of equal length one table
(``tidy_table``), (n, 2) index pairs a bouts table (``bouts_table``), and
GaitLumbar's per-step result a steps and a bouts table (``gait_tables``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import types
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# SKDH columns that carry a unit only in its documentation.
_KNOWN_UNITS = {
    "total sleep time": "min",
    "TSO Duration": "min",
    "wake after sleep onset": "min",
    "sleep onset latency": "min",
    "average sleep duration": "min",
    "average wake duration": "min",
    "percent time asleep": "pct",
}


class StepFailed(Exception):
    """A step raised on a recording long enough that it should have worked."""

    def __init__(self, step: str, reason: str) -> None:
        self.step, self.reason = step, reason
        super().__init__(f"step {step} failed: {reason}")


def tidy_column(name: str) -> str:
    """SKDH result name -> snake_case with its unit last ("total sleep time" -> "..._min")."""
    unit = _KNOWN_UNITS.get(name)
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name) if " " not in name else name
    text = text.replace("[", " ").replace("]", " ").replace("%", " pct ").replace("-", " ")
    text = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    return f"{text}_{unit}" if unit and not text.endswith(unit) else text


def tidy_table(step_result: Mapping[str, Any]) -> pd.DataFrame | None:
    """A step's result dict as a typed table, or None when it is not tabular."""
    columns: dict[str, Any] = {}
    length = None
    for key, value in step_result.items():
        arr = np.asarray(value)
        if arr.ndim != 1:
            return None
        if length is None:
            length = arr.shape[0]
        elif arr.shape[0] != length:
            return None
        columns[tidy_column(str(key))] = _typed(arr)
    if not columns:
        return None
    return pd.DataFrame(columns)


def _typed(arr: np.ndarray[Any, Any]) -> Any:
    if arr.dtype.kind in "fiub":
        return arr.astype("float64") if arr.dtype.kind == "f" else arr.astype("int64")
    return pd.array([None if v is None else str(v) for v in arr], dtype="string")


def bouts_table(index_pairs: np.ndarray[Any, Any], time_s: np.ndarray[Any, Any]) -> pd.DataFrame:
    """(n, 2) sample-index pairs (SKDH's wear bouts) -> start/end UTC and duration."""
    idx = np.asarray(index_pairs, dtype="int64").reshape(-1, 2)
    idx = np.clip(idx, 0, time_s.shape[0] - 1)
    start, end = time_s[idx[:, 0]], time_s[idx[:, 1]]
    return pd.DataFrame({
        "start_utc": pd.array(_iso(start), dtype="string"),
        "end_utc": pd.array(_iso(end), dtype="string"),
        "duration_h": np.round((end - start) / 3600.0, 6),
    })


def _iso(seconds: np.ndarray[Any, Any]) -> list[str]:
    stamps = pd.to_datetime(np.round(seconds, 3), unit="s", utc=True)
    return [t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" for t in stamps]


def _with_asymmetry(*endpoints: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(e for name, unit in endpoints for e in ((name, unit),
                                                          (f"{name} asymmetry", unit)))


# GaitLumbar's per-step endpoints in its own order, with the units SKDH states only in
# prose ("" for ratios and indices); an asymmetry (difference between sequential steps of
# opposite feet) has its endpoint's unit. m1/m2: inverted-pendulum model 1 or 2 (SKDH's
# "step length", "stride length" and "gait speed" are model 2); delta h: vertical travel of
# the centre of mass during the step.
GAIT_STEP_ENDPOINTS: tuple[tuple[str, str], ...] = (
    *_with_asymmetry(("stride time", "s"), ("stance time", "s"), ("swing time", "s"),
                     ("step time", "s"), ("initial double support", "s"),
                     ("terminal double support", "s"), ("double support", "s"),
                     ("single support", "s")),
    ("m2 delta h", "m"), ("m2 delta h prime", "m"),
    *_with_asymmetry(("step length", "m"), ("stride length", "m"), ("gait speed", "m_s")),
    ("cadence", "steps_min"), ("m1 delta h", "m"),
    *_with_asymmetry(("step length m1", "m"), ("stride length m1", "m"),
                     ("gait speed m1", "m_s")),
    ("intra-step covariance - V", ""), ("intra-stride covariance - V", ""),
    ("harmonic ratio - V", ""), ("stride SPARC", ""),
)
# Per-bout endpoints (SKDH repeats them on every step of the bout).
GAIT_BOUT_ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("bout:phase coordination index", "pct"), ("bout:gait symmetry index", ""),
    ("bout:step regularity - V", ""), ("bout:stride regularity - V", ""),
    ("bout:autocovariance symmetry - V", ""), ("bout:regularity index - V", ""),
)
# Per-step endpoints also averaged per bout (NaN steps left out).
GAIT_BOUT_MEANS = ("cadence", "step time", "stride time", "gait speed", "step length",
                   "stride length")
# Bookkeeping GaitLumbar adds that the tables express otherwise (bout_n, start_utc, ic_utc)
# or that carries nothing here: day columns (the built-in has no day windows; the local date
# of a step follows from ic_utc and the participant's time zone), relative and local copies
# of the contact time, its internal axis estimates, and "Turn" (always -1: wearflow passes no
# gyroscope).
_GAIT_BOOKKEEPING = frozenset({
    "Day N", "Date", "Processing Start Hour", "Processing End Hour", "Day Start Datetime",
    "Day End Datetime", "Bout N", "Bout Starts", "Bout Duration", "Bout Steps", "Gait Cycles",
    "IC Timestamp", "IC Rel Timestamp", "IC Datetime", "debug:mean step freq",
    "debug:v axis est", "debug:ap axis est", "Turn",
})


def _gait_column(name: str, unit: str) -> str:
    text = tidy_column(name.removeprefix("bout:"))
    return f"{text}_{unit}" if unit else text


def gait_tables(label: str, result: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """SKDH GaitLumbar's result -> ``<label>_steps`` and ``<label>_bouts`` (tidy, typed).

    Steps: one row per initial contact kept by GaitLumbar's stride checks, with its bout,
    its time (``ic_utc``) and every per-step endpoint (NaN where a step has no value, e.g.
    the last steps of a bout, or lengths and speed without a height). Bouts: one row per
    bout with steps: start, end, duration, initial contacts, complete gait cycles, the
    per-bout endpoints and the bout means of the main per-step endpoints. The columns are
    the same whether or not any gait was found; an endpoint this SKDH version does not
    know is NaN, one this table does not know is kept after the known ones.
    """
    base = tidy_column(label)
    ic_s = np.asarray(result.get("IC Timestamp", ()), dtype=np.float64)
    n = ic_s.size
    starts_s, bout_i = np.unique(np.asarray(result.get("Bout Starts", ()), dtype=np.float64),
                                 return_inverse=True)  # bouts in time order, bout_n from 1
    bout_i = bout_i.reshape(-1).astype(np.int64)
    first = np.unique(bout_i, return_index=True)[1]  # each bout's first step

    def column(name: str) -> np.ndarray[Any, Any]:
        values = result.get(name)
        return (np.full(n, np.nan) if values is None
                else np.asarray(values, dtype=np.float64).reshape(-1))

    known = {name for name, _ in (*GAIT_STEP_ENDPOINTS, *GAIT_BOUT_ENDPOINTS)}
    unknown = [k for k in result if k not in known and k not in _GAIT_BOOKKEEPING]
    steps: dict[str, Any] = {"bout_n": bout_i + 1, "ic_utc": pd.array(_iso(ic_s), dtype="string")}
    for name, unit in GAIT_STEP_ENDPOINTS:
        steps[_gait_column(name, unit)] = column(name)
    steps.update({tidy_column(k): column(k) for k in unknown if not k.startswith("bout:")})

    duration_s = column("Bout Duration")[first]
    bouts: dict[str, Any] = {
        "bout_n": np.arange(1, starts_s.size + 1, dtype=np.int64),
        "start_utc": pd.array(_iso(starts_s), dtype="string"),
        "end_utc": pd.array(_iso(starts_s + duration_s), dtype="string"),
        "duration_s": duration_s,
        "n_initial_contacts": np.bincount(bout_i, minlength=starts_s.size).astype(np.int64),
        "n_gait_cycles": column("Gait Cycles")[first].astype(np.int64),
    }
    for name, unit in GAIT_BOUT_ENDPOINTS:
        bouts[_gait_column(name, unit)] = column(name)[first]
    bouts.update({tidy_column(k.removeprefix("bout:")): column(k)[first]
                  for k in unknown if k.startswith("bout:")})
    for name in GAIT_BOUT_MEANS:
        unit = dict(GAIT_STEP_ENDPOINTS)[name]
        bouts[f"mean_{_gait_column(name, unit)}"] = _bout_means(column(name), bout_i,
                                                                starts_s.size)
    return {f"{base}_steps": pd.DataFrame(steps), f"{base}_bouts": pd.DataFrame(bouts)}


def _bout_means(values: np.ndarray[Any, Any], bout_i: np.ndarray[Any, Any], n_bouts: int
                ) -> np.ndarray[Any, Any]:
    """Mean of ``values`` per bout, NaN left out (NaN for a bout without a value)."""
    ok = ~np.isnan(values)
    total = np.bincount(bout_i[ok], weights=values[ok], minlength=n_bouts)
    count = np.bincount(bout_i[ok], minlength=n_bouts)
    out = np.full(n_bouts, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


def load_steps(pipeline_text: str, step_modules: Sequence[str] = ()) -> list[Any]:
    """Build the pipeline's steps; ``step_modules`` (dotted names) are imported first."""
    import skdh

    for module in step_modules:
        importlib.import_module(module)
    pipeline = skdh.Pipeline()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.load(yaml_str=pipeline_text, process_raise=True)
    return list(pipeline._steps)


def calibration_error_g(accel: np.ndarray[Any, Any], fs: float) -> float | None:
    """Mean | |a| - 1 g | over still 10-s windows (SD < 0.013 g on every axis), in g.

    The usual calibration quality figure (GGIR, UK Biobank): near 0 for a well
    calibrated device; None when the recording has no still window.
    """
    n = round(10 * fs)
    if n < 2 or accel.shape[0] < n:
        return None
    mean, sd = window_mean_sd(accel, n)
    still = np.all(sd < STILL_SD_G, axis=1)
    if not np.any(still):
        return None
    norms = np.linalg.norm(mean[still], axis=1)
    return round(float(np.mean(np.abs(norms - 1.0))), 6)


_CHUNK_SAMPLES = 1 << 20  # per axis and pass: 8 MB, stays in cache


def window_mean_sd(accel: np.ndarray[Any, Any], n: int
                   ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Mean and SD per axis of consecutive ``n``-sample windows (the tail is left out).

    Axis by axis over contiguous copies of about a million samples: reducing a
    (windows, n, 3) view along its middle axis walks memory with a stride and
    costs 10x more (5 s vs 0.5 s on a 7-day 100 Hz recording). Two passes per
    window (mean, then squared deviations), as ``numpy.std`` does.
    """
    n_windows = accel.shape[0] // n
    mean = np.empty((n_windows, accel.shape[1]))
    sd = np.empty((n_windows, accel.shape[1]))
    step = max(1, _CHUNK_SAMPLES // n)
    for w0 in range(0, n_windows, step):
        w1 = min(n_windows, w0 + step)
        for axis in range(accel.shape[1]):
            block = np.array(accel[w0 * n:w1 * n, axis], dtype=np.float64)  # a copy
            block = block.reshape(w1 - w0, n)
            m = block.mean(axis=1)
            block -= m[:, None]
            mean[w0:w1, axis] = m
            sd[w0:w1, axis] = np.sqrt(np.einsum("ij,ij->i", block, block) / n)
    return mean, sd


def run_steps(steps: Sequence[Any], inputs: dict[str, Any], short: bool, duration_h: float
              ) -> tuple[dict[str, pd.DataFrame], list[str], dict[str, Any]]:
    """Run ``steps`` on ``inputs`` (time, accel, fs, tz_name, [temperature, height]).

    Returns the tidy tables by name, the QC flags and QC figures (calibration
    error before and after a calibration step); raises StepFailed when a step
    fails on a recording that is not short.
    """
    kwargs = dict(inputs)
    flags: list[str] = []
    tables: dict[str, pd.DataFrame] = {}
    qc: dict[str, Any] = {}
    for original in steps:
        step = _substitute(original, kwargs, flags)
        label = step._name
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                kwargs, result = step.predict(**kwargs)
            except Exception as exc:  # the algorithm's own failure, any type
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                if _is_wear_step(step) and never_moved(inputs["accel"], float(inputs["fs"])):
                    # SKDH's wear detectors index an empty wear list on a device that was
                    # never worn; the answer is known: no wear at all.
                    kwargs["wear"] = np.empty((0, 2), dtype="int64")
                    flags.append(f"never_worn:{label}:no movement in the whole recording, "
                                 "zero wear")
                    tables.update(_step_tables(label, {"wear": kwargs["wear"]},
                                               inputs["time"]))
                    continue
                if not short:
                    raise StepFailed(label, reason) from exc
                flags.append(f"skipped:{label}:recording too short ({duration_h:.2f} h): "
                             f"{reason}")
                continue
        flags.extend(_warning_flags(label, caught))
        tables.update(gait_tables(label, result) if _is_gait_step(step)
                      else _step_tables(label, result, inputs["time"]))
        if type(step).__name__.startswith("Calibrate"):
            fs = float(inputs["fs"])
            qc["calibration_error_before_g"] = calibration_error_g(inputs["accel"], fs)
            qc["calibration_error_after_g"] = calibration_error_g(kwargs["accel"], fs)
    return dict(sorted(tables.items())), flags, qc


WEAR_STEPS = frozenset({"DETACH", "AccelThresholdWearDetection", "CtaWearDetection",
                        "CountWearDetection"})
STILL_SD_G = 0.013  # SKDH's own bench-test threshold for a motionless device


def _is_wear_step(step: Any) -> bool:
    return type(step).__name__ in WEAR_STEPS


def _is_gait_step(step: Any) -> bool:
    return type(step).__name__ == "GaitLumbar"


def never_moved(accel: np.ndarray[Any, Any], fs: float) -> bool:
    """True when no 1-minute window has movement above a motionless device's noise."""
    n = round(60 * fs)
    if n < 2 or accel.shape[0] < n:
        return bool(np.all(np.std(accel, axis=0) < STILL_SD_G))
    return bool(np.all(window_mean_sd(accel, n)[1] < STILL_SD_G))


def _substitute(step: Any, kwargs: Mapping[str, Any], flags: list[str]) -> Any:
    if type(step).__name__ == "DETACH" and kwargs.get("temperature") is None:
        from skdh.preprocessing import AccelThresholdWearDetection

        replacement = AccelThresholdWearDetection()
        replacement._in_pipeline = True
        replacement.pipe_save_file = None
        replacement._name = step._name
        flags.append(f"substituted:{step._name}:no temperature, used AccelThresholdWearDetection")
        return replacement
    return step


def _warning_flags(label: str, caught: list[warnings.WarningMessage]) -> list[str]:
    seen: list[str] = []
    for w in caught:
        text = f"warning:{label}:{str(w.message).splitlines()[0][:160]}"
        if text not in seen:
            seen.append(text)
    return seen


def _step_tables(label: str, result: Any, time_s: np.ndarray[Any, Any]) -> dict[str, pd.DataFrame]:
    if not isinstance(result, Mapping) or not result:
        return {}
    base = tidy_column(label)
    out: dict[str, pd.DataFrame] = {}
    bout_keys = [k for k, v in result.items()
                 if isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[1] == 2]
    for key in bout_keys:
        out[f"{base}_{tidy_column(str(key))}"] = bouts_table(result[key], time_s)
    rest = {k: v for k, v in result.items() if k not in bout_keys}
    table = tidy_table(rest) if rest else None
    if table is not None:
        out[base] = table
    return out


def _register_module(name: str, path: str) -> None:
    """Make ``name`` importable from ``path`` without installing its package."""
    parts = name.split(".")
    for i in range(1, len(parts)):
        parent = ".".join(parts[:i])
        if parent not in sys.modules:
            module = types.ModuleType(parent)
            module.__path__ = []
            sys.modules[parent] = module
            if i > 1:
                setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], module)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name} from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    setattr(sys.modules[".".join(parts[:-1])], parts[-1], module)


def main(argv: Sequence[str] | None = None) -> int:
    """Script entry: run one recording in a solution environment; results to OUT_DIR."""
    parser = argparse.ArgumentParser()
    parser.add_argument("inputs")
    parser.add_argument("pipeline")
    parser.add_argument("out")
    parser.add_argument("--short-h", type=float, default=24.0)
    parser.add_argument("--step-module", action="append", default=[])
    args = parser.parse_args(argv)
    for spec in args.step_module:
        name, _, path = spec.partition("=")
        _register_module(name, path)
    with np.load(args.inputs) as data:
        inputs: dict[str, Any] = {k: data[k] for k in data.files}
    inputs["fs"] = float(inputs["fs"])
    inputs["tz_name"] = str(inputs["tz_name"])
    if "height" in inputs:
        inputs["height"] = float(inputs["height"])
    duration_h = float(inputs["time"][-1] - inputs["time"][0]) / 3600.0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        steps = load_steps(Path(args.pipeline).read_text(encoding="utf-8"))
        tables, flags, qc = run_steps(steps, inputs, duration_h < args.short_h, duration_h)
    except StepFailed as exc:
        (out / "result.json").write_text(json.dumps({"error": str(exc)}))
        return 0
    for name, table in tables.items():
        table.to_parquet(out / f"{name}.parquet", index=False)
    (out / "result.json").write_text(json.dumps({"flags": flags, "tables": sorted(tables),
                                                 "qc": qc}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
