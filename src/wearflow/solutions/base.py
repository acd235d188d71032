"""The Solution protocol and the FileResult every solution returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from wearflow.provenance import SolutionRef
from wearflow.recording import Recording


@dataclass(frozen=True)
class FileResult:
    """One solution's result on one sensor file.

    ``tables`` are tidy (one row per day, night or bout), typed, with units in
    column names; ``flags`` are QC notes (steps skipped, warnings raised by the
    algorithm, reader flags).
    """

    tables: Mapping[str, pd.DataFrame]
    flags: tuple[str, ...] = ()
    qc: Mapping[str, Any] = field(default_factory=dict)


class Solution(Protocol):
    """A versioned, immutable biomarker algorithm."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def pipeline_sha256(self) -> str | None: ...
    @property
    def parameters(self) -> Mapping[str, Any]: ...
    @property
    def requires(self) -> tuple[str, ...]: ...
    @property
    def environment_lock(self) -> str:
        """The lock (with hashes) of the solution's own environment; "" without one."""
        ...

    def run(self, recording: Recording, metadata: Mapping[str, Any]) -> FileResult:
        """Compute the solution's tables for one recording."""
        ...


def solution_ref(solution: Solution) -> SolutionRef:
    """The provenance's record of ``solution``."""
    return SolutionRef(name=solution.name, version=solution.version,
                       fingerprint=solution.fingerprint,
                       pipeline_sha256=solution.pipeline_sha256,
                       parameters=dict(solution.parameters))
