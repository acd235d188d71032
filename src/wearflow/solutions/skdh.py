"""Scikit-digital-health pipeline files as wearflow solutions.

A solution is a ``.skdh`` pipeline file run by a pinned scikit-digital-health
version and identified by the file's sha256 (and, for a solution with its own
``environment``, the lock's hash). The steps run one at a time through
:mod:`wearflow.solutions.skdh_core` (warnings become QC flags, steps too long for
a short recording are skipped with a flag, DETACH falls back to acceleration-only
wear detection without temperature, a never-worn device gets zero wear): in this
process for wearflow's own scikit-digital-health, or as a script in the
solution's environment (:mod:`wearflow.solutions.environments`).

``skdh`` is imported only when a solution first runs (seconds and hundreds of
MB), so the coordinator never pays for it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import yaml

from wearflow.config import SolutionConfig
from wearflow.errors import AlgorithmError, SolutionError
from wearflow.recording import Recording
from wearflow.solutions import skdh_core
from wearflow.solutions.base import FileResult
from wearflow.solutions.environments import SolutionEnvironment, ensure_environment

DIARY_INPUT = "sleep_diary"  # the task input wearflow.metadata.DIARY names

ADAPTER_VERSION = "1"
SKDH_DISTRIBUTION = "scikit-digital-health"
# Built-in pipelines and the metadata each needs whatever the study says: GaitLumbar's step
# length, stride length and gait speed need the participant's height (without it SKDH leaves
# them NaN with a warning), so a builtin:gait file waits for height_m instead.
BUILTIN_REQUIRES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "wrist": (),
    "gait": ("height_m",),
})
BUILTINS = tuple(BUILTIN_REQUIRES)


class _TupleLoader(yaml.SafeLoader):
    """SKDH pipeline files use ``!!python/tuple``; read it safely as a list."""


_TupleLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple",
    lambda loader, node: tuple(loader.construct_sequence(node)),  # type: ignore[arg-type]
)


def builtin_pipeline_path(name: str) -> Path:
    """Path of a pipeline file shipped with wearflow (``builtin:<name>``)."""
    if name not in BUILTINS:
        close = difflib.get_close_matches(name, list(BUILTINS), n=1)
        hint = f"; did you mean builtin:{close[0]}?" if close else ""
        raise SolutionError(f"unknown built-in pipeline {name!r}{hint} (known: "
                            f"{', '.join(f'builtin:{b}' for b in BUILTINS)})",
                            subject=f"builtin:{name}")
    return Path(str(files("wearflow.solutions") / "builtin" / f"{name}.skdh"))


@dataclass(frozen=True)
class SkdhSolution:
    """A scikit-digital-health pipeline file run under a pinned SKDH.

    Without ``environment`` it runs in wearflow's own environment (whose
    scikit-digital-health is pinned by wearflow's lock); with one, in that
    solution's own cached environment, in a subprocess.
    """

    name: str
    version: str
    fingerprint: str
    pipeline_sha256: str
    pipeline_text: str
    parameters: Mapping[str, Any]
    requires: tuple[str, ...] = ()
    short_recording_h: float = 24.0
    environment: SolutionEnvironment | None = None
    _pipeline: list[Any] = field(default_factory=list, compare=False, repr=False)

    @property
    def environment_lock(self) -> str:
        """The lock (with hashes) its own environment was built from; "" without one."""
        return self.environment.lock_text if self.environment is not None else ""

    @classmethod
    def from_config(cls, config: SolutionConfig, lock_text: str | None = None) -> SkdhSolution:
        """``lock_text``: for a solution with its own environment, the lock to build it
        from (the study's stored one); None: this machine's lock."""
        source = config.pipeline
        builtin = source.removeprefix("builtin:") if source.startswith("builtin:") else None
        path = builtin_pipeline_path(builtin) if builtin is not None else Path(source)
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
        env = None
        if config.environment:
            env = ensure_environment(config.environment, subject=f"solution {config.name}",
                                     lock_text=lock_text)
            skdh_version = env.packages.get(SKDH_DISTRIBUTION)
            if skdh_version is None:
                raise SolutionError("its environment has no scikit-digital-health",
                                    subject=f"solution {config.name}")
            pinned = f"|env={env.lock_sha256}"
        else:
            try:
                skdh_version = version(SKDH_DISTRIBUTION)
            except PackageNotFoundError:
                raise SolutionError("scikit-digital-health is not installed",
                                    subject=str(path)) from None
            # Steps shipped by wearflow itself make wearflow's version part of the solution.
            pinned = f"|wearflow=={version('wearflow')}" if any(
                m.startswith("wearflow.") for m in step_modules) else ""
        label = source if source.startswith("builtin:") else path.name
        fingerprint = hashlib.sha256(
            f"{digest}|{SKDH_DISTRIBUTION}=={skdh_version}|adapter={ADAPTER_VERSION}"
            f"|short_h={config.short_recording_h}{pinned}".encode()
        ).hexdigest()
        parameters: dict[str, Any] = {"pipeline": label, "steps": steps, "skdh": skdh_version,
                                      "step_modules": step_modules}
        if env is not None:
            parameters["environment"] = {"requirements": sorted(config.environment),
                                         "lock_sha256": env.lock_sha256,
                                         "packages": env.packages}
        return cls(
            name=config.name,
            version=f"{label}@{digest[:12]}+skdh-{skdh_version}",
            fingerprint=fingerprint,
            pipeline_sha256=digest,
            pipeline_text=text,
            parameters=parameters,
            # the study's requirements, then the built-in's own (a study may forget them)
            requires=tuple(dict.fromkeys(
                (*config.requires, *BUILTIN_REQUIRES.get(builtin or "", ())))),
            short_recording_h=config.short_recording_h,
            environment=env,
        )

    def run(self, recording: Recording, metadata: Mapping[str, Any]) -> FileResult:
        inputs: dict[str, Any] = {
            "time": recording.time_s,
            "accel": recording.accel_g,
            "fs": recording.sampling_rate_hz,
            "tz_name": str(metadata.get("time_zone") or "UTC"),
        }
        if recording.temperature_c is not None:
            inputs["temperature"] = recording.temperature_c
        if metadata.get("height_m") is not None:
            inputs["height"] = float(metadata["height_m"])
        if metadata.get(DIARY_INPUT):
            inputs[DIARY_INPUT] = diary_utc(str(metadata[DIARY_INPUT]), inputs["tz_name"])
        duration_h = recording.duration_s / 3600.0
        short = duration_h < self.short_recording_h
        if self.environment is not None:
            return self._run_isolated(inputs, duration_h)
        if not self._pipeline:
            self._pipeline.extend(skdh_core.load_steps(self.pipeline_text,
                                                       self.parameters["step_modules"]))
        try:
            tables, flags, qc = skdh_core.run_steps(self._pipeline, inputs, short, duration_h)
        except skdh_core.StepFailed as exc:
            raise AlgorithmError(str(exc)) from exc
        return FileResult(tables=tables, flags=tuple(flags), qc=qc)

    def _run_isolated(self, inputs: Mapping[str, Any], duration_h: float) -> FileResult:
        if self.environment is None:
            raise SolutionError("no environment", subject=self.name)
        with tempfile.TemporaryDirectory(prefix="wearflow-solution-") as tmp:
            folder = Path(tmp)
            np.savez(folder / "inputs.npz", **inputs)
            (folder / "pipeline.skdh").write_text(self.pipeline_text, encoding="utf-8")
            # -I: the script's folder must not shadow packages (it holds a skdh.py)
            args = [str(self.environment.python), "-I", skdh_core.__file__,
                    str(folder / "inputs.npz"), str(folder / "pipeline.skdh"),
                    str(folder / "out"), "--short-h", str(self.short_recording_h)]
            for module in self.parameters["step_modules"]:
                spec = import_module(module).__spec__
                if spec is not None and spec.origin:
                    args += ["--step-module", f"{module}={spec.origin}"]
            done = subprocess.run(args, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = " ".join(done.stderr.strip().splitlines()[-2:])[:300]
                raise AlgorithmError(f"solution process failed: {tail}")
            result = json.loads((folder / "out" / "result.json").read_text())
            if "error" in result:
                raise AlgorithmError(result["error"])
            tables = {name: pd.read_parquet(folder / "out" / f"{name}.parquet")
                      for name in result["tables"]}
        return FileResult(tables=tables, flags=tuple(result["flags"]), qc=result.get("qc", {}))


def diary_utc(diary_json: str, time_zone: str) -> list[tuple[float, float]]:
    """A participant's diary nights ([bed, wake] local ISO times) as UTC seconds."""
    zone = ZoneInfo(time_zone)
    return [(datetime.fromisoformat(bed).replace(tzinfo=zone).timestamp(),
             datetime.fromisoformat(wake).replace(tzinfo=zone).timestamp())
            for bed, wake in json.loads(diary_json)]


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
