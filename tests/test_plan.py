"""make_plan on state rows: what runs, what waits, what is held, and the task specs."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from wearflow.catalog import StoredFile
from wearflow.config import parse_study
from wearflow.memory import estimate_peak_bytes
from wearflow.metadata import MetaCell
from wearflow.plan import make_plan, task_key
from wearflow.task import TaskSpec

ROOT = "file:///study/raw"


@dataclasses.dataclass(frozen=True)
class FakeSolution:
    name: str
    version: str
    fingerprint: str
    requires: tuple[str, ...] = ()
    pipeline_sha256: str | None = None
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    environment_lock: str = ""


SOLUTIONS = [FakeSolution("wrist", "1", "fp-wrist"),
             FakeSolution("sleep", "2", "fp-sleep", requires=("height_m",))]


def study() -> Any:
    return parse_study({
        "study": "PLAN", "input": "raw/", "output": "out", "time_zone": "UTC",
        "files": {"sensor": ["{participant}_{side}.cwa"]},
        "solutions": [{"name": "wrist", "pipeline": "builtin:wrist"},
                      {"name": "sleep", "pipeline": "builtin:wrist", "requires": ["height_m"]}],
    }, source="/study/study.yaml", base=Path("/study"))


def stored(file_id: int, name: str, sha256: str, **changes: Any) -> StoredFile:
    participant, side = name.split(".")[0].split("_")
    row = StoredFile(file_id, f"{ROOT}/{name}", sha256, 1_000_000 + file_id, "m", ROOT, name,
                     "sensor", participant, side, "{}", None, None, None, None, "t", "t",
                     True, True)
    return row._replace(**changes)


def test_specs_are_the_ones_the_constructor_makes() -> None:
    s = study()
    files = [stored(1, "P1_left.cwa", "a"), stored(2, "P1_right.cwa", "b"),
             stored(3, "P2_left.cwa", "c")]
    metadata = {"P1": {"height_m": MetaCell("1.80", "meta.csv", 1, "t"),
                       "time_zone": MetaCell("Europe/Paris", "meta.csv", 1, "t")}}
    plan = make_plan(s, files, SOLUTIONS, {}, metadata, {}, {"P1", "P2"},
                     now=datetime(2026, 1, 1, tzinfo=UTC))
    configs = {c.name: c for c in s.solutions}
    # P2 has no height: its sleep task waits; everything else runs
    assert [(t.file_id, t.solution.name) for t in plan.to_run] == [
        (1, "wrist"), (1, "sleep"), (2, "wrist"), (2, "sleep"), (3, "wrist")]
    assert [(r.file_id, r.solution, r.state) for r in plan.records][-1] == (3, "sleep", "waiting")
    for spec in plan.to_run:
        f = files[spec.file_id - 1]
        sol = next(x for x in SOLUTIONS if x.name == spec.solution.name)
        inputs = {"time_zone": "Europe/Paris" if f.participant == "P1" else "UTC",
                  "min_wear_hours": f"{s.qc.min_wear_hours:g}",
                  **({"height_m": "1.80"} if sol.requires and f.participant == "P1" else {})}
        expected = TaskSpec(
            key=task_key(f.sha256, sol.fingerprint, inputs), file_id=f.id, uri=f.uri,
            location=f.location, path=f.path, sha256=f.sha256, size_bytes=f.size_bytes,
            participant=f.participant or "", side=f.side or "",
            solution=configs[sol.name], solution_version=sol.version,
            solution_fingerprint=sol.fingerprint, study=s.study,
            study_fingerprint=s.fingerprint(), output=s.output,
            device_time_zone=s.clock_time_zone, user=spec.user, metadata=inputs,
            memory_bytes=estimate_peak_bytes(f.path, f.size_bytes,
                                             configs[sol.name].bytes_per_sample),
            storage_options=s.storage_options, timeout_s=s.task_timeout_s)
        assert spec == expected
        assert vars(spec) == vars(expected)  # every field, defaults included
        assert pickle.loads(pickle.dumps(spec)) == spec
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.key = "changed"  # type: ignore[misc]


def test_done_held_and_excluded_files() -> None:
    s = study()
    files = [stored(1, "P1_left.cwa", "same"), stored(2, "P2_left.cwa", "same",
                                                       duplicate_of=f"{ROOT}/P1_left.cwa"),
             stored(3, "P3_left.cwa", "x", parse_error="no match", participant=None),
             stored(4, "P4_left.cwa", "y", excluded_reason="by hand")]
    metadata = {"P1": {"height_m": MetaCell("1.7", "meta.csv", 1, "t")}}
    first = make_plan(s, files, SOLUTIONS, {}, metadata, {}, {"P1"})
    done = {r.key: "done" for r in first.records}
    again = make_plan(s, files, SOLUTIONS, done, metadata, {}, {"P1"})
    assert again.to_run == ()
    assert [(r.file_id, r.state) for r in again.records] == [(1, "done"), (1, "done")]
    assert [(h.uri.rsplit("/", 1)[-1], h.tag) for h in again.held] == [
        ("P2_left.cwa", "DATA_ISSUE"), ("P3_left.cwa", "DATA_ISSUE")]
