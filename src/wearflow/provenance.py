"""Provenance records: what made every output (typed, serialised as provenance.json)."""

from __future__ import annotations

import getpass
import json
import os
import platform
import sys
from functools import lru_cache
from importlib.metadata import distributions, version
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputRef(_Record):
    uri: str
    sha256: str
    size_bytes: int
    participant: str | None = None
    side: str | None = None
    task_key: str | None = None


class SolutionRef(_Record):
    name: str
    version: str
    fingerprint: str
    pipeline_sha256: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class Software(_Record):
    wearflow: str
    python: str
    platform: str
    packages: dict[str, str]


class OutputRef(_Record):
    path: str
    sha256: str


class Provenance(_Record):
    """Everything needed to trace and reproduce one result folder."""

    kind: str  # "single-wrist" or "participant" or "study-summary"
    study: str
    study_fingerprint: str
    task_key: str
    run_id: str
    user: str
    input: InputRef | list[InputRef]
    solution: SolutionRef
    software: Software
    started_utc: str
    finished_utc: str
    task_inputs: dict[str, str] = Field(default_factory=dict)  # metadata the solution used
    flags: list[str] = Field(default_factory=list)
    outputs: list[OutputRef] = Field(default_factory=list)

    def to_json_bytes(self) -> bytes:
        return (json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def default_actor(configured: str | None = None) -> str:
    """Who acts: ``configured``, else ``$WEARFLOW_USER``, else the OS user, else "unknown"."""
    for candidate in (configured, os.environ.get("WEARFLOW_USER")):
        if candidate and candidate.strip():
            return candidate.strip()
    return current_user() or "unknown"


@lru_cache(maxsize=1)
def software() -> Software:
    """The running environment: every installed distribution with its version, sorted."""
    packages: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    return Software(
        wearflow=version("wearflow"),
        python=sys.version.split()[0],
        platform=platform.platform(),
        packages=dict(sorted(packages.items())),
    )
