"""The worker runs exactly what was planned, and the result layout keeps ids apart."""

from __future__ import annotations

import shutil
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
from wearflow.task import TaskState
from wearflow.worker import execute

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
    assert "solution custom changed since the task was planned" in (outcome.message or "")
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
