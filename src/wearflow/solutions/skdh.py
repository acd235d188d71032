"""Scikit-digital-health pipeline files as wearflow solutions.

A solution is a ``.skdh`` pipeline file run by the pinned scikit-digital-health
version; it is identified by the file's sha256. Steps run one at a time so
that the adapter can:

* record every warning a step raises as a QC flag (for example "less than
  12 hours of data, no calibration performed");
* skip a step that fails on a recording shorter than the solution's
  ``short_recording_h`` (default 24 h), with a flag, instead of failing the
  file: a 5-minute file gets no wear detection rather than a crash. On a
  longer recording a failing step is an algorithm failure of the whole file;
* use acceleration-only wear detection when a temperature-based step (DETACH)
  gets a recording without temperature.

``skdh`` is imported only when a solution first runs (it costs about 3.5 s
and 265 MB), so the coordinator never pays for it.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from wearflow.config import SolutionConfig
from wearflow.errors import AlgorithmError, SolutionError
from wearflow.recording import Recording
from wearflow.solutions.base import FileResult

ADAPTER_VERSION = "1"
SKDH_DISTRIBUTION = "scikit-digital-health"
BUILTINS = ("wrist",)

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


class _TupleLoader(yaml.SafeLoader):
    """SKDH pipeline files use ``!!python/tuple``; read it safely as a list."""


_TupleLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple",
    lambda loader, node: tuple(loader.construct_sequence(node)),  # type: ignore[arg-type]
)


def builtin_pipeline_path(name: str) -> Path:
    """Path of a pipeline file shipped with wearflow (``builtin:<name>``)."""
    if name not in BUILTINS:
        raise SolutionError(f"unknown built-in pipeline {name!r}; known: {list(BUILTINS)}",
                            subject=f"builtin:{name}")
    return Path(str(files("wearflow.solutions") / "builtin" / f"{name}.skdh"))


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


@dataclass(frozen=True)
class SkdhSolution:
    """A scikit-digital-health pipeline file run under the installed (pinned) SKDH."""

    name: str
    version: str
    fingerprint: str
    pipeline_sha256: str
    pipeline_text: str
    parameters: Mapping[str, Any]
    requires: tuple[str, ...] = ()
    short_recording_h: float = 24.0
    _pipeline: list[Any] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: SolutionConfig) -> SkdhSolution:
        source = config.pipeline
        path = (builtin_pipeline_path(source.removeprefix("builtin:"))
                if source.startswith("builtin:") else Path(source))
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise SolutionError(f"cannot read pipeline file ({exc.strerror})",
                                subject=str(path)) from None
        digest = hashlib.sha256(raw).hexdigest()
        if config.sha256 and config.sha256 != digest:
            raise SolutionError(
                f"pipeline file sha256 is {digest}, the study pins {config.sha256}",
                subject=str(path),
            )
        text = raw.decode("utf-8", errors="replace")
        steps = _parse_steps(text, str(path))
        step_modules = sorted({s.rsplit(".", 1)[0] for s in steps if not s.startswith("skdh.")})
        try:
            skdh_version = version(SKDH_DISTRIBUTION)
        except PackageNotFoundError:
            raise SolutionError("scikit-digital-health is not installed",
                                subject=str(path)) from None
        label = source if source.startswith("builtin:") else path.name
        # Steps shipped by wearflow itself make wearflow's version part of the solution.
        own = f"|wearflow=={version('wearflow')}" if any(
            m.startswith("wearflow.") for m in step_modules) else ""
        fingerprint = hashlib.sha256(
            f"{digest}|{SKDH_DISTRIBUTION}=={skdh_version}|adapter={ADAPTER_VERSION}"
            f"|short_h={config.short_recording_h}{own}".encode()
        ).hexdigest()
        return cls(
            name=config.name,
            version=f"{label}@{digest[:12]}+skdh-{skdh_version}",
            fingerprint=fingerprint,
            pipeline_sha256=digest,
            pipeline_text=text,
            parameters={"pipeline": label, "steps": steps, "skdh": skdh_version,
                        "step_modules": step_modules},
            requires=config.requires,
            short_recording_h=config.short_recording_h,
        )

    def _steps(self) -> list[Any]:
        if not self._pipeline:
            import skdh  # deferred: heavy import, paid once per worker process

            for module in self.parameters.get("step_modules", ()):
                import_module(module)  # steps from other packages must be importable by name
            pipeline = skdh.Pipeline()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipeline.load(yaml_str=self.pipeline_text, process_raise=True)
            self._pipeline.extend(pipeline._steps)
        return self._pipeline

    def run(self, recording: Recording, metadata: Mapping[str, Any]) -> FileResult:
        kwargs: dict[str, Any] = {
            "time": recording.time_s,
            "accel": recording.accel_g,
            "fs": recording.sampling_rate_hz,
            "tz_name": str(metadata.get("time_zone") or "UTC"),
        }
        if recording.temperature_c is not None:
            kwargs["temperature"] = recording.temperature_c
        if metadata.get("height_m") is not None:
            kwargs["height"] = float(metadata["height_m"])
        short = recording.duration_s < self.short_recording_h * 3600.0
        flags: list[str] = []
        tables: dict[str, pd.DataFrame] = {}
        for step in self._steps():
            step = self._substitute(step, kwargs, flags)
            label = step._name
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    kwargs, result = step.predict(**kwargs)
                except Exception as exc:  # the algorithm's own failure, any type
                    reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                    if not short:
                        raise AlgorithmError(f"step {label} failed: {reason}") from exc
                    flags.append(f"skipped:{label}:recording too short "
                                 f"({recording.duration_s / 3600:.2f} h): {reason}")
                    continue
            flags.extend(_warning_flags(label, caught))
            tables.update(_step_tables(label, result, recording.time_s))
        return FileResult(tables=dict(sorted(tables.items())), flags=tuple(flags))

    @staticmethod
    def _substitute(step: Any, kwargs: Mapping[str, Any], flags: list[str]) -> Any:
        if type(step).__name__ == "DETACH" and "temperature" not in kwargs:
            from skdh.preprocessing import AccelThresholdWearDetection

            replacement = AccelThresholdWearDetection()
            replacement._in_pipeline = True
            replacement.pipe_save_file = None
            replacement._name = step._name
            flags.append(f"substituted:{step._name}:no temperature, "
                         "used AccelThresholdWearDetection")
            return replacement
        return step


def _parse_steps(text: str, source: str) -> list[str]:
    try:
        data = yaml.load(text, Loader=_TupleLoader)
    except yaml.YAMLError:
        raise SolutionError("pipeline file is not valid YAML", subject=source) from None
    steps = data.get("Steps") if isinstance(data, dict) else None
    if not isinstance(steps, list) or not steps:
        raise SolutionError("pipeline file has no 'Steps' list", subject=source)
    names = []
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or not {"process", "package", "module"} <= step.keys():
            raise SolutionError(f"step {i} lacks process/package/module", subject=source)
        names.append(f"{step['package']}.{step['module']}.{step['process']}")
    return names


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
