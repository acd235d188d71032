"""A new user's first hour: every file accounted for, output that fits a terminal."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wearflow import load_study, run_study, study_status
from wearflow.cli import app
from wearflow.executors import InlineExecutor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
runner = CliRunner()

STUDY = """\
study: FIRST
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.cwa"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


def _study(root: Path) -> Path:
    (root / "raw").mkdir(parents=True)
    (root / "study.yaml").write_text(STUDY)
    return root


def test_a_symlinked_recording_is_processed(tmp_path: Path, real_dir: Path) -> None:
    root = _study(tmp_path)
    os.symlink(real_dir / "cwa/casson_example.cwa", root / "raw/P1_L.cwa")
    report = run_study(load_study(root), executor=InlineExecutor())
    assert (report.files_total, report.done, report.exit_code) == (1, 1, 0)


def test_a_readable_file_outside_the_patterns_is_reported(tmp_path: Path,
                                                          real_dir: Path) -> None:
    root = _study(tmp_path)
    shutil.copy(real_dir / "cwa/casson_example.cwa", root / "raw/P1_L.cwa")
    shutil.copy(real_dir / "gt3x/agread_example.gt3x", root / "raw/P2_L.gt3x")
    report = run_study(load_study(root), executor=InlineExecutor())
    assert (report.files_total, report.done, report.unparsable) == (2, 1, 1)
    assert report.exit_code == 1
    (issue,) = [i for i in study_status(load_study(root))["issues"]
                if i["tag"] == "DATA_ISSUE"]
    assert str(issue["uri"]).endswith("P2_L.gt3x")
    assert "matches none of the sensor patterns" in str(issue["message"])


def test_a_run_that_finds_no_sensor_file_says_so(tmp_path: Path) -> None:
    root = _study(tmp_path)
    (root / "raw/notes.txt").write_text("nothing here")
    result = runner.invoke(app, ["run", str(root), "--executor", "inline"])
    assert result.exit_code == 1
    assert "no sensor file in the input locations" in result.output


def test_small_cli_things(tmp_path: Path, real_dir: Path) -> None:
    assert runner.invoke(app, ["--version"]).output.startswith("wearflow ")
    root = _study(tmp_path)
    for bad in ("0", "-3"):
        result = runner.invoke(app, ["run", str(root), "--workers", bad])
        assert result.exit_code == 2 and "--workers" in result.output
    long_name = "P1_L_" + "x" * 60 + ".cwa"  # parses into no pattern: a DATA_ISSUE
    shutil.copy(real_dir / "cwa/casson_example.cwa", root / f"raw/{long_name}")
    run_study(load_study(root), executor=InlineExecutor())
    lower = runner.invoke(app, ["issues", str(root), "--tag", "data_issue", "--json"])
    assert lower.exit_code == 0 and long_name in lower.stdout
    assert runner.invoke(app, ["issues", str(root), "--tag", "NOPE"]).exit_code == 2
    for command, column in ((["status", str(root)], 2), (["issues", str(root)], 4)):
        shown = runner.invoke(app, command, env={"COLUMNS": "80"})
        assert shown.exit_code == 0
        assert max(len(line) for line in shown.output.splitlines()) <= 80
        # the file name is never cut: folded over lines, every character is there
        cells = [line.split("│")[column].strip() for line in shown.output.splitlines()
                 if line.count("│") > column]
        assert long_name in "".join(cells), cells


def test_a_skipped_step_is_an_issue_naming_the_file_and_step(tmp_path: Path,
                                                              real_dir: Path) -> None:
    root = _study(tmp_path)
    shutil.copy(real_dir / "cwa/skdh_ax3_sample.cwa", root / "raw/P1_L.cwa")  # 5 minutes
    report = run_study(load_study(root), executor=InlineExecutor())
    assert report.done == 1
    skipped = [i for i in study_status(load_study(root))["issues"]
               if i["tag"] == "ALGORITHM_ISSUE"]
    assert skipped and all(str(i["uri"]).endswith("P1_L.cwa") for i in skipped)
    messages = " | ".join(str(i["message"]) for i in skipped)
    assert "a step of the solution was skipped (DETACH)" in messages, messages
    assert "Calibrate" not in messages  # too short to calibrate: a QC flag, not an issue


def test_wrists_that_do_not_overlap_in_time_are_not_combined(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from study_helpers import write_csv

    root = tmp_path
    (root / "raw").mkdir()
    (root / "study.yaml").write_text(STUDY.replace(".cwa", ".csv"))
    write_csv(root / "raw/P1_L.csv", seed=1, hours=0.5)
    write_csv(root / "raw/P1_R.csv", seed=2, hours=0.5,
              start_utc=datetime(2025, 3, 2, 8, tzinfo=UTC))
    report = run_study(load_study(root), executor=InlineExecutor())
    assert (report.done, report.participants_aggregated) == (2, 0)
    assert not (root / "results/processed").exists()
    (apart,) = [i for i in study_status(load_study(root))["issues"]
                if "do not overlap in time" in str(i["message"])]
    assert apart["tag"] == "DATA_ISSUE" and apart["participant"] == "P1"
    assert "P1_L.csv: 2026-03-02..2026-03-02, P1_R.csv: 2025-03-02..2025-03-02" in str(
        apart["message"])


# What a new user does with one real file of each format wearflow reads, named as they
# would name them, following the README: init, copy, validate, run, status, export.
NEWCOMER_FILES = {
    "P001_L.cwa": "cwa/casson_example.cwa",
    "P002_L.cwa.gz": "cwa/stepcount_tiny-sample.cwa.gz",
    "P003_R.bin": "geneactiv_bin/wristpy_example_geneactiv.bin",
    "P004_L.csv": "actigraph_raw_csv/agread_TestID_LeftWrist_RAW.csv",
    "P005_R.gt3x": "gt3x/agread_example.gt3x",
    "P006_L.agdc": "agdc/pygt3x_CPW1C48210013_baseline.agdc",
}


def test_a_newcomer_session_on_real_files(tmp_path: Path, real_dir: Path) -> None:
    import json

    env = {"COLUMNS": "80"}  # an 80-column terminal; CliRunner's output is a pipe
    study = tmp_path / "my-study"
    assert runner.invoke(app, ["init", str(study)], env=env).exit_code == 0
    for name, source in NEWCOMER_FILES.items():
        shutil.copy(real_dir / source, study / "raw" / name)
    checked = runner.invoke(app, ["validate", str(study), "--json"], env=env)
    assert checked.exit_code == 0, checked.output
    plan = json.loads(checked.stdout)
    assert {Path(f["uri"]).name: f["what"] for f in plan["files"]} == {
        name: "runs" for name in NEWCOMER_FILES}  # every file accounted for, every one runs
    assert plan["ignored"] == []
    ran = runner.invoke(app, ["run", str(study), "--workers", "2"], env=env)
    assert ran.exit_code == 0, ran.output
    assert "6 files: 6 done, 0 failed" in ran.output
    summary_line = next(line for line in ran.output.splitlines() if "study summary:" in line)
    assert Path(summary_line.split("study summary: ", 1)[1]).is_file()  # never split
    assert "processing files" in ran.output and "aggregating participants" in ran.output
    status = json.loads(runner.invoke(app, ["status", str(study), "--json"], env=env).stdout)
    assert status["files"]["by_state"]["done"] == 6
    assert status["participants"] == {"total": 6, "processed": 6}
    for result in status["current"]["participant_results"]:
        assert (study / "results" / result["folder"] / "provenance.json").is_file()
    exported = runner.invoke(app, ["export", str(study), "--format", "parquet", "--json"],
                             env=env)
    assert exported.exit_code == 0, exported.output
    from wearflow import load_results

    tables = load_results(load_study(study))
    assert set(tables["participant_visit"]["participant"]) == {
        name.split("_")[0] for name in NEWCOMER_FILES}


def test_errors_name_the_key_and_suggest_and_a_failed_first_run_leaves_nothing(
        tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    (root / "study.yaml").write_text(STUDY.replace("study: FIRST", "study: FIRST\ntime_zon: UTC")
                                     .replace("output:", "output:"))
    result = runner.invoke(app, ["validate", str(root)])
    assert result.exit_code == 2
    assert "time_zon: unknown key; did you mean time_zone?" in result.output
    (root / "study.yaml").write_text(STUDY.replace("builtin:wrist", "builtin:wirst"))
    result = runner.invoke(app, ["run", str(root)])
    assert result.exit_code == 2
    assert "solutions.0 (solution wrist)" in result.output
    assert "did you mean builtin:wrist?" in result.output
    assert str(root / "study.yaml") in result.output
    (root / "study.yaml").write_text(STUDY)  # raw/ does not exist
    result = runner.invoke(app, ["run", str(root)])
    assert result.exit_code == 2 and "input: " in result.output
    assert "location does not exist" in result.output
    assert sorted(p.name for p in root.iterdir()) == ["study.yaml"]  # nothing left behind


def test_qc_json_flags_are_lists(tmp_path: Path, real_dir: Path) -> None:
    import json

    root = _study(tmp_path)
    shutil.copy(real_dir / "cwa/skdh_ax3_sample.cwa", root / "raw/P1_L.cwa")
    run_study(load_study(root), executor=InlineExecutor())
    rows = json.loads(runner.invoke(app, ["qc", str(root), "--json"]).stdout)
    assert rows and all(isinstance(r["flags"], list) for r in rows)
    assert any(f.startswith("skipped:DETACH") for f in rows[0]["flags"])


def test_a_yaml_error_names_the_line_to_fix(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(
        'study: X\ninput: raw/\noutput: results/\nfiles:\n  sensor: ["{participant}.cwa"\n'
        "solutions:\n  - name: w\n    pipeline: builtin:wrist\n")
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "not valid YAML at line 6: expected ',' or ']'" in result.output
    assert "(a flow sequence started at line 5)" in result.output


def test_the_command_line_starts_without_the_heavy_libraries() -> None:
    """`wearflow --help` must not pay for the database, pandas or the algorithms."""
    import subprocess
    import sys

    code = ("import sys, wearflow.cli; print(sorted(m for m in ('sqlalchemy', 'pandas', "
            "'skdh', 'pyarrow', 'wearflow.runner', 'wearflow.state') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_a_header_time_zone_other_than_the_studys_is_said(tmp_path: Path,
                                                           real_dir: Path) -> None:
    root = tmp_path
    (root / "raw").mkdir()
    (root / "study.yaml").write_text(STUDY.replace(".cwa", ".gt3x"))
    shutil.copy(real_dir / "gt3x/agread_example.gt3x", root / "raw/P1_L.gt3x")
    assert run_study(load_study(root), executor=InlineExecutor()).done == 1
    (zone,) = [i for i in study_status(load_study(root))["issues"]
               if "header says its clock ran at" in str(i["message"])]
    assert zone["tag"] == "DATA_ISSUE" and str(zone["uri"]).endswith("P1_L.gt3x")
    assert "UTC-05:00" in str(zone["message"]) and "device_time_zone was used" in str(
        zone["message"])


def test_an_excluded_participant_is_not_counted_as_pending(tmp_path: Path,
                                                          real_dir: Path) -> None:
    root = _study(tmp_path)
    shutil.copy(real_dir / "cwa/casson_example.cwa", root / "raw/P1_L.cwa")
    shutil.copy(real_dir / "cwa/ggirread_ax3_testfile.cwa", root / "raw/P2_L.cwa")
    result = runner.invoke(app, ["exclude", str(root), "P2_L.cwa", "--reason", "withdrew"])
    assert result.exit_code == 2  # not cataloged yet: nothing to exclude
    run_study(load_study(root), executor=InlineExecutor())
    result = runner.invoke(app, ["exclude", str(root), "P2_L.cwa", "--reason", "withdrew"])
    assert result.exit_code == 0, result.output
    status = study_status(load_study(root))
    assert status["files"]["by_state"]["excluded"] == 1
    assert status["participants"] == {"total": 1, "processed": 1}
