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

from wearflow.identity import unauthenticated_name


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


class ExportSource(_Record):
    """One participant result an export was built from."""

    solution: str
    solution_version: str
    participant: str
    visit: str
    result_dir: str  # relative to the study's output location
    result_key: str
    provenance_sha256: str  # of the result's provenance.json, as the state recorded it


class ExportProvenance(_Record):
    """What an export of analysis-ready tables was built from (``wearflow export``)."""

    kind: str = "export"
    study: str
    study_fingerprint: str
    format: str
    solution: str | None = None  # the one solution exported; None: every solution
    user: str
    software: Software
    created_utc: str
    sources: list[ExportSource]
    outputs: list[OutputRef] = Field(default_factory=list)

    def to_json_bytes(self) -> bytes:
        return (json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()

    def same_export(self, other: ExportProvenance) -> bool:
        """Whether ``other`` records the same export (who made it, when, with which
        software and under which study fingerprint aside: the same tables from the same
        results are the same export after a change of the study's configuration that
        changed no result, e.g. credentials left out of the fingerprint)."""
        keep = {"user", "software", "created_utc", "study_fingerprint"}
        return self.model_dump(exclude=keep) == other.model_dump(exclude=keep)


class ReportSource(_Record):
    """One stored result a report was drawn from."""

    kind: str  # participant | single-wrist | summary | run
    path: str  # its folder (or, for a run, the run id)
    provenance_sha256: str = ""


class ReportProvenance(_Record):
    """What a report (HTML) was drawn from (``wearflow report``)."""

    kind: str = "report"
    report: str  # participant | study | run
    study: str
    study_fingerprint: str
    subject: str  # the participant (and visit), the study, or the run id
    user: str
    software: Software
    created_utc: str
    sources: list[ReportSource]
    outputs: list[OutputRef] = Field(default_factory=list)

    def to_json_bytes(self) -> bytes:
        return (json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()


def current_user() -> str:
    """The operating-system user this process runs as, by its effective user id: never
    ``$USER`` or ``$LOGNAME`` (what :func:`getpass.getuser` reads first), which anyone can
    set. ``uid N`` when the id has no name (a container), else "unknown"."""
    try:
        import pwd
    except ImportError:  # not a POSIX system: the login name is all there is
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name or f"uid {uid}"
    except KeyError:
        return f"uid {uid}"


def declared_user(configured: str | None = None) -> str | None:
    """The name someone declared: ``configured`` (the study's ``identity``), else
    ``$WEARFLOW_USER``; None when neither is set. A claim nothing checks."""
    for candidate in (configured, os.environ.get("WEARFLOW_USER")):
        if candidate and candidate.strip():
            return candidate.strip()
    return None


def default_actor(configured: str | None = None) -> str:
    """Who acts, as the audit trail and provenance record someone not authenticated: the
    declared name (:func:`declared_user`) with the OS user beside it, ``dr.ada (OS user
    root)``; ``OS user root`` when nothing is declared (or the OS user's own name is)."""
    return unauthenticated_name(declared_user(configured), current_user())
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
