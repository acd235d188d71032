"""``builtin:wrist-stream``: the streaming wrist algorithms as a Solution.

The tables of builtin:wrist (``detach_wear``, ``sleep``,
``activity_level_classification``, ``minute_series``; the columns listed in
docs/wrist-stream.md) from :mod:`wearflow.streaming`, which mirrors
scikit-digital-health's rules on per-second features, in wearflow's own
environment and without importing scikit-digital-health.

The worker hands it chunks decoded straight from the file (:meth:`run_stream`,
:mod:`wearflow.streamed`) when the task is one file of a format that streams
(.cwa, .cwa.gz, .bin); otherwise the whole :class:`Recording`, which :meth:`run`
cuts into chunks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from types import MappingProxyType
from typing import Any

from wearflow.config import SolutionConfig
from wearflow.errors import SolutionError
from wearflow.recording import Recording
from wearflow.solutions.base import FileResult
from wearflow.streaming import recording_chunks, run_wrist_stream
from wearflow.streaming.pipeline import ChunkFactory

STREAM_PIPELINE = "builtin:wrist-stream"
ALGORITHM_VERSION = "3"  # bump whenever a result of the streaming algorithms may change
CHUNK_SAMPLES = 1 << 20  # 40 MB of float64 samples per chunk and pass
PARAMETERS: Mapping[str, Any] = MappingProxyType({
    "pipeline": STREAM_PIPELINE,
    "algorithm_version": ALGORITHM_VERSION,
    "mirrors": "scikit-digital-health 0.17.18 builtin:wrist (CalibrateAccelerometer, DETACH, "
               "Sleep, ActivityLevelClassification, MinuteSeries)",
})


@dataclass(frozen=True)
class StreamSolution:
    """The streaming wrist solution (see the module docstring)."""

    name: str
    version: str
    fingerprint: str
    parameters: Mapping[str, Any]
    requires: tuple[str, ...] = ()
    pipeline_sha256: str | None = None
    environment_lock: str = ""

    @classmethod
    def from_config(cls, config: SolutionConfig) -> StreamSolution:
        if config.pipeline != STREAM_PIPELINE:
            raise SolutionError(f"not the streaming wrist solution: {config.pipeline!r}",
                                subject=config.name)
        if config.environment:
            raise SolutionError(f"{STREAM_PIPELINE} runs in wearflow's own environment; "
                                "remove 'environment'", subject=f"solution {config.name}")
        wearflow_version = version("wearflow")
        fingerprint = hashlib.sha256(
            f"{STREAM_PIPELINE}|{ALGORITHM_VERSION}|wearflow=={wearflow_version}|"
            f"{json.dumps(dict(PARAMETERS), sort_keys=True)}".encode()).hexdigest()
        return cls(name=config.name,
                   version=f"{STREAM_PIPELINE}@{ALGORITHM_VERSION}+wearflow-{wearflow_version}",
                   fingerprint=fingerprint, parameters=dict(PARAMETERS),
                   requires=tuple(config.requires))

    def run(self, recording: Recording, metadata: Mapping[str, Any]) -> FileResult:
        """On a whole recording (cut into chunks here)."""
        return self.run_stream(lambda: recording_chunks(recording, CHUNK_SAMPLES),
                               recording.sampling_rate_hz, metadata)

    def run_stream(self, chunks: ChunkFactory, sampling_rate_hz: float,
                   metadata: Mapping[str, Any]) -> FileResult:
        """On a recording read in passes: ``chunks()`` starts a pass over it (the worker
        gives one that decodes the file chunk by chunk, :mod:`wearflow.streamed`)."""
        zone = str(metadata.get("time_zone") or "UTC")
        out = run_wrist_stream(chunks, sampling_rate_hz, zone)
        # builtin:wrist's figures (not the sphere fit's own errors, which SKDH computes
        # only when it tries a fit: on 12 h or more)
        qc = {"calibration_error_before_g": out.error_before_g,
              "calibration_error_after_g": out.error_after_g}
        return FileResult(tables=dict(sorted(out.tables.items())), flags=out.flags, qc=qc)
