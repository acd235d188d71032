"""Check outputs on storage against what was recorded, and re-run a result to compare bytes.

``verify_outputs``: every file under ``single-wrist-processed/`` and
``processed/`` must be listed, with its sha256, in the provenance.json of its
folder, and every provenance.json must have the sha256 the state database
recorded when it was written. Reports altered, missing and unrecorded files.

``reproduce``: re-run one per-wrist result's task from its provenance into a
scratch location and compare every output file byte for byte.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from wearflow.config import Study
from wearflow.errors import WearflowError
from wearflow.plan import TaskSpec
from wearflow.results import PROCESSED, SINGLE_WRIST
from wearflow.solutions import load_solution
from wearflow.state import State
from wearflow.storage import Store, sha256_bytes
from wearflow.worker import execute

Problem = Literal["altered", "missing", "unrecorded"]


@dataclass(frozen=True)
class OutputProblem:
    kind: Problem
    path: str
    detail: str


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[OutputProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_outputs(study: Study) -> VerifyReport:
    """Compare every result file on storage with its recorded sha256."""
    out = Store(study.output, study.storage_options)
    state = State(study.state_url)
    try:
        expected_prov = state.provenance_hashes()
    finally:
        state.close()
    report = VerifyReport()
    on_storage = {e.path: e for e in out.walk()
                  if e.path.startswith((SINGLE_WRIST + "/", PROCESSED + "/"))}
    recorded: set[str] = set()
    for folder, prov_sha in sorted(expected_prov.items()):
        prov_path = f"{folder}/provenance.json"
        recorded.add(prov_path)
        if prov_path not in on_storage:
            report.problems.append(OutputProblem("missing", prov_path, "provenance.json is gone"))
            continue
        data = out.read_bytes(prov_path)
        report.checked += 1
        if sha256_bytes(data) != prov_sha:
            report.problems.append(OutputProblem(
                "altered", prov_path, "provenance.json differs from the one written"))
        try:
            outputs = json.loads(data)["outputs"]
        except (ValueError, KeyError, TypeError):
            continue
        for item in outputs:
            path, digest = str(item["path"]), str(item["sha256"])
            recorded.add(path)
            if path not in on_storage:
                report.problems.append(OutputProblem("missing", path, "listed in provenance"))
                continue
            report.checked += 1
            actual = sha256_bytes(out.read_bytes(path))
            if actual != digest:
                report.problems.append(OutputProblem(
                    "altered", path, f"sha256 {actual[:12]}..., recorded {digest[:12]}..."))
    for path in sorted(set(on_storage) - recorded):
        report.problems.append(OutputProblem("unrecorded", path,
                                             "in a result tree but in no provenance"))
    return report


@dataclass(frozen=True)
class FileComparison:
    path: str
    identical: bool


@dataclass(frozen=True)
class ReproduceReport:
    task_key: str
    result_dir: str
    files: tuple[FileComparison, ...]

    @property
    def identical(self) -> bool:
        return all(f.identical for f in self.files)


def reproduce(study: Study, result: str, scratch: Path | None = None) -> ReproduceReport:
    """Re-run the task behind ``result`` (a result folder or a task key, or its prefix).

    Raises
    ------
    WearflowError
        The result is unknown, or its input no longer has the recorded bytes.
    """
    state = State(study.state_url)
    try:
        spec, folder = state.task_for_result(result)
    finally:
        state.close()
    configs = {c.name: c for c in study.solutions}
    if spec.solution not in configs:
        raise WearflowError("its solution is no longer in the study file", subject=result)
    current = load_solution(configs[spec.solution])
    if current.fingerprint != spec.solution_fingerprint:
        raise WearflowError(f"solution {spec.solution} is now {current.version}; the result "
                            f"was made by {spec.solution_version}", subject=result)
    out = Store(study.output, study.storage_options)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        task = TaskSpec(
            key=spec.key, file_id=spec.file_id, uri=spec.uri, location=spec.location,
            path=spec.path, sha256=spec.sha256, size_bytes=spec.size_bytes,
            participant=spec.participant, side=spec.side, solution=configs[spec.solution],
            solution_version=spec.solution_version,
            solution_fingerprint=spec.solution_fingerprint, study=study.study,
            study_fingerprint=study.fingerprint(), output=tmp,
            device_time_zone=study.clock_time_zone, metadata=spec.inputs,
            storage_options=study.storage_options,
        )
        outcome = execute(task, run_id="reproduce")
        if outcome.state != "done" or outcome.result_dir is None:
            raise WearflowError(f"re-run failed: {outcome.message}", subject=result)
        fresh = Store(tmp)
        names = sorted(set(out.listdir(folder)) | set(fresh.listdir(folder)))
        files = tuple(
            FileComparison(f"{folder}/{name}",
                           out.exists(f"{folder}/{name}") and fresh.exists(f"{folder}/{name}")
                           and out.read_bytes(f"{folder}/{name}")
                           == fresh.read_bytes(f"{folder}/{name}"))
            for name in names if name != "provenance.json"  # it holds run times
        )
    return ReproduceReport(spec.key, folder, files)
