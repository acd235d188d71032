"""Bad files never stop a study; a changed file is re-processed and its old result kept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from study_helpers import write_csv
from wearflow import load_study, run_study, study_status
from wearflow.executors import InlineExecutor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: BAD-INPUT
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.cwa", "{participant}_{side}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


@pytest.fixture()
def study_dir(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    (tmp_path / "study.yaml").write_text(STUDY)
    write_csv(raw / "P1_L.csv", seed=1)
    write_csv(raw / "P1_R.csv", seed=1)
    return tmp_path


def failures(root: Path) -> dict[str, tuple[str, str]]:
    info = study_status(load_study(root))
    return {i["uri"].rsplit("/", 1)[-1]: (i["tag"], i["message"]) for i in info["issues"]}


def test_bad_files_fail_with_tagged_reason_and_study_completes(study_dir: Path) -> None:
    raw = study_dir / "raw"
    (raw / "P2_L.cwa").write_bytes(b"")
    (raw / "P2_R.cwa").write_bytes(np.random.default_rng(0).bytes(5000))
    good = (raw / "P1_L.csv").read_bytes()
    (raw / "P3_L.csv").write_bytes(good[: len(good) // 3] + b"\n2026-0")  # truncated mid-row
    (raw / "P3_R.csv").write_bytes(b"timestamp,a,b\n1,2,3\n")
    (raw / "unlabeled.cwa").write_bytes(b"whatever")
    (raw / "P4_L.csv").write_bytes(good)  # same bytes as P1_L.csv under another name
    report = run_study(load_study(study_dir), executor=InlineExecutor())
    assert report.exit_code == 1
    assert report.participants_aggregated >= 1  # P1 both wrists, P3_L if its head was readable
    status = study_status(load_study(study_dir))
    assert status["files"]["by_state"]["failed"] >= 5
    assert status["files"]["by_state"]["done"] >= 2
    issues = failures(study_dir)
    assert issues["P2_L.cwa"][0] == "DATA_ISSUE"
    assert "empty" in issues["P2_L.cwa"][1].lower()
    assert issues["P2_R.cwa"][0] == "DATA_ISSUE"
    assert issues["P3_R.csv"][0] == "DATA_ISSUE"
    assert issues["unlabeled.cwa"][0] == "DATA_ISSUE"
    assert "does not parse" in issues["unlabeled.cwa"][1]
    assert issues["P4_L.csv"][0] == "DATA_ISSUE"
    assert "P1_L.csv" in issues["P4_L.csv"][1]
    for _, message in issues.values():
        assert "Traceback" not in message
    log = (study_dir / "results/logs/wearflow.log").read_text()
    assert "[DATA_ISSUE]" in log and "P2_R.cwa" in log


def test_new_file_alone_and_changed_file_reprocessed_with_old_result_kept(
    study_dir: Path,
) -> None:
    first = run_study(load_study(study_dir), executor=InlineExecutor())
    assert (first.executed, first.exit_code) == (2, 0)
    write_csv(study_dir / "raw/P2_L.csv", seed=2)
    second = run_study(load_study(study_dir), executor=InlineExecutor())
    assert second.executed == 1
    assert second.participants_aggregated == 1  # P2, single wrist
    wrist_dir = study_dir / "results/single-wrist-processed/wrist/P1/P1_L.csv"
    (old,) = list(wrist_dir.iterdir())
    old_bytes = {p.name: p.read_bytes() for p in old.iterdir()}
    write_csv(study_dir / "raw/P1_L.csv", seed=3)  # same name, new bytes
    os.utime(study_dir / "raw/P1_L.csv", (1, 1))
    third = run_study(load_study(study_dir), executor=InlineExecutor())
    assert third.executed == 1
    folders = sorted(wrist_dir.iterdir())
    assert len(folders) == 2
    assert {p.name: p.read_bytes() for p in old.iterdir()} == old_bytes
    assert len(list((study_dir / "results/processed/wrist/P1").iterdir())) == 2
    provs = [json.loads((f / "provenance.json").read_text()) for f in folders]
    assert len({p["input"]["sha256"] for p in provs}) == 2


def test_unreachable_input_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(STUDY)
    from wearflow.errors import StorageError

    # a first run that cannot start leaves nothing behind (no database, log or lock)
    with pytest.raises(StorageError, match="does not exist"):
        run_study(load_study(tmp_path), executor=InlineExecutor())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]
    (tmp_path / "raw").mkdir()
    run_study(load_study(tmp_path), executor=InlineExecutor())
    (tmp_path / "raw").rmdir()
    # a study that has a state database: the problem is also in its issues queue
    with pytest.raises(StorageError, match="does not exist"):
        run_study(load_study(tmp_path), executor=InlineExecutor())
    (issue,) = study_status(load_study(tmp_path))["issues"]
    assert issue["tag"] == "PIPELINE_ISSUE"
    assert issue["uri"] == str(tmp_path / "study.yaml")
    assert f"input: {tmp_path / 'raw'}: location does not exist" in issue["message"]
    (tmp_path / "raw").mkdir()
    run_study(load_study(tmp_path), executor=InlineExecutor())
    assert study_status(load_study(tmp_path))["issues"] == []  # cause gone, issue closed


def test_never_worn_device_is_processed_as_zero_wear(tmp_path: Path) -> None:
    """A flat signal at room temperature: done, zero wear, no biomarkers, no crash."""
    import pandas as pd

    from wearflow.services.status import study_qc

    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY)
    t = 1772438400.0 + np.arange(30 * 3600 * 5) / 5.0  # 30 h at 5 Hz
    noise = np.random.default_rng(0).normal(0, 0.002, (t.size, 3))
    pd.DataFrame({"timestamp": t, "x": noise[:, 0], "y": noise[:, 1], "z": 1 + noise[:, 2],
                  "temperature": 22.0}).to_csv(tmp_path / "raw/P9_L.csv", index=False)
    report = run_study(load_study(tmp_path), executor=InlineExecutor())
    assert report.exit_code == 0
    (folder,) = (tmp_path / "results/single-wrist-processed/wrist/P9/P9_L.csv").iterdir()
    qc = json.loads((folder / "qc.json").read_text())
    assert any(f.startswith("never_worn:DETACH") for f in qc["flags"])
    assert pd.read_csv(folder / "detach_wear.csv").empty
    days = pd.read_csv(folder / "activity_level_classification.csv")
    assert days["wake_mvpa_5s_epoch_min"].isna().all()  # no biomarkers without wear
    rows = study_qc(load_study(tmp_path))
    assert rows and all(r["valid_day"] == 0 for r in rows)
    assert any(r["reason"] == "worn 0 h < 16 h" for r in rows)


def test_lone_wrist_waits_for_its_grace_period(study_dir: Path) -> None:
    (study_dir / "raw/P1_R.csv").unlink()
    text = (study_dir / "study.yaml").read_text()
    (study_dir / "study.yaml").write_text(text + "single_wrist_grace_h: 5\n")
    report = run_study(load_study(study_dir), executor=InlineExecutor())
    assert (report.executed, report.participants_aggregated) == (1, 0)
    (study_dir / "study.yaml").write_text(text + "single_wrist_grace_h: 0\n")
    report = run_study(load_study(study_dir), executor=InlineExecutor())
    assert (report.executed, report.participants_aggregated) == (0, 1)
    (single,) = (study_dir / "results/processed/wrist/P1").iterdir()
    assert json.loads((single / "provenance.json").read_text())["flags"] == ["single_wrist:left"]
    write_csv(study_dir / "raw/P1_R.csv", seed=1)  # the other wrist arrives late
    report = run_study(load_study(study_dir), executor=InlineExecutor())
    assert (report.executed, report.participants_aggregated) == (1, 1)
    folders = list((study_dir / "results/processed/wrist/P1").iterdir())
    assert len(folders) == 2 and single in folders  # the earlier result is kept


def test_recording_outside_the_study_window_is_flagged(study_dir: Path) -> None:
    text = (study_dir / "study.yaml").read_text()
    (study_dir / "study.yaml").write_text(text + "qc: {study_start: 2026-03-03}\n")
    assert run_study(load_study(study_dir), executor=InlineExecutor()).exit_code == 0
    (folder,) = (study_dir / "results/single-wrist-processed/wrist/P1/P1_L.csv").iterdir()
    flags = json.loads((folder / "qc.json").read_text())["flags"]
    assert "outside_study_window:2026-03-03..-" in flags  # the synthetic start is 2026-03-02
