"""The worker runs exactly what was planned, and the result layout keeps ids apart."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest

import wearflow.solutions
from study_helpers import write_csv
from wearflow import load_study, run_study
from wearflow.catalog import StoredFile, scan
from wearflow.executors import InlineExecutor
from wearflow.plan import make_plan
from wearflow.solutions import builtin_pipeline_path, load_solution
from wearflow.storage import Store
from wearflow.task import TaskSpec, TaskState
from wearflow.worker import execute, worker_name

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: WORKER
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv"]
solutions:
  - name: custom
    pipeline: custom.skdh
"""


def test_a_pipeline_edited_after_planning_is_refused(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY)
    shutil.copy(builtin_pipeline_path("wrist"), tmp_path / "custom.skdh")
    write_csv(tmp_path / "raw/P1_L.csv", seed=1, hours=1)
    study = load_study(tmp_path)
    planned = load_solution(study.solutions[0])
    (cataloged,) = scan([Store(study.input[0])], study.files)
    stored = StoredFile(1, cataloged.uri, cataloged.sha256, cataloged.size_bytes,
                        cataloged.mtime, cataloged.location, cataloged.path, "sensor", "P1",
                        "left", "{}", None, None, None, None, "", "", True, True)
    (task,) = make_plan(study, [stored], [planned], {}).to_run
    # the pipeline file changes between planning and execution (a new worker process
    # loads it afresh)
    with (tmp_path / "custom.skdh").open("a") as fh:
        fh.write("# edited\n")
    monkeypatch.setattr(wearflow.solutions, "_CACHE", {})
    outcome = execute(task, run_id="test")
    assert outcome.state == TaskState.FAILED
    assert outcome.tag == "PIPELINE_ISSUE"
    assert "has solution custom with fingerprint" in (outcome.message or "")
    assert "the next run plans the file again" in (outcome.message or "")
    assert not (tmp_path / "results").exists()  # nothing written under the old key
    # the next run plans it under the new version and processes it
    report = run_study(load_study(tmp_path), executor=InlineExecutor())
    assert (report.executed, report.done) == (1, 1)


def test_a_participant_named_study_summary_keeps_its_own_folder(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY.replace("custom.skdh", "builtin:wrist"))
    for seed, name in enumerate(("study-summary_L", "study-summary_R", "P2_L"), start=2):
        write_csv(tmp_path / f"raw/{name}.csv", seed=seed, hours=1)
    report = run_study(load_study(tmp_path), executor=InlineExecutor())
    assert (report.exit_code, report.participants_aggregated) == (0, 2)
    processed = tmp_path / "results/processed/custom"
    assert sorted(p.name for p in processed.iterdir()) == ["P2", "study-summary",
                                                          "~study-summary"]
    (participant,) = (processed / "~study-summary").iterdir()
    assert (participant / "provenance.json").exists()
    (summary_dir,) = (processed / "study-summary").iterdir()
    assert sorted(p.name for p in summary_dir.iterdir()) == [
        "provenance.json", "summary.csv", "summary.parquet"]
    summary = pd.read_csv(summary_dir / "summary.csv", dtype={"participant": str})
    assert sorted(set(summary["participant"])) == ["P2", "study-summary"]


def _planned_task(tmp_path: Path) -> TaskSpec:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY.replace("custom.skdh", "builtin:wrist"))
    write_csv(tmp_path / "raw/P1_L.csv", seed=1, hours=0.3)
    study = load_study(tmp_path)
    planned = load_solution(study.solutions[0])
    (cataloged,) = scan([Store(study.input[0])], study.files)
    stored = StoredFile(1, cataloged.uri, cataloged.sha256, cataloged.size_bytes,
                        cataloged.mtime, cataloged.location, cataloged.path, "sensor", "P1",
                        "left", "{}", None, None, None, None, "", "", True, True)
    (task,) = make_plan(study, [stored], [planned], {}).to_run
    return task


def test_a_task_carries_the_coordinators_wearflow_version(tmp_path: Path) -> None:
    task = _planned_task(tmp_path)
    assert task.wearflow_version == version("wearflow")
    assert (task.environment_lock, task.environment_lock_sha256) == ("", "")
    assert execute(task, run_id="test").state == TaskState.DONE  # same software: runs


@pytest.mark.parametrize("differs", ["wearflow", "lock", "fingerprint"])
def test_a_worker_with_other_software_refuses_the_task(tmp_path: Path, differs: str) -> None:
    """Another wearflow version, environment lock or solution fingerprint than the
    coordinator planned with: refused, not transient (it is not retried by itself), a
    PIPELINE_ISSUE naming the worker, both sides and what to do; nothing written."""
    task = _planned_task(tmp_path)
    other = {"wearflow": {"wearflow_version": "0.0.0+other"},
             "lock": {"environment_lock": "scikit-digital-health==0.17.16\n"},
             "fingerprint": {"solution_fingerprint": "f" * 64}}[differs]
    outcome = execute(dataclasses.replace(task, **other), run_id="test")
    assert (outcome.state, outcome.tag, outcome.transient) == (
        TaskState.FAILED, "PIPELINE_ISSUE", False)
    message = outcome.message or ""
    assert message.startswith(f"worker {worker_name()} ")
    assert "task refused" in message
    assert "start the workers from the same image/version as the coordinator, then " \
           "`wearflow retry` the file" in message
    expected = {
        "wearflow": f"runs wearflow {version('wearflow')}, the coordinator 0.0.0+other",
        "lock": "environment from lock (none), the coordinator planned it with lock "
                + hashlib.sha256(b"scikit-digital-health==0.17.16\n").hexdigest()[:12],
        "fingerprint": f"with fingerprint {task.solution_fingerprint[:12]}..., the "
                       f"coordinator planned it with {'f' * 12}...",
    }[differs]
    assert expected in message
    assert not (tmp_path / "results").exists()
