"""Write-once outputs can be verified and reproduced byte for byte."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from study_helpers import write_csv
from wearflow import load_study, run_study
from wearflow.cli import app
from wearflow.executors import InlineExecutor
from wearflow.services.verify import reproduce, verify_outputs

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
runner = CliRunner()

STUDY = """\
study: VERIFY
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY)
    write_csv(tmp_path / "raw/P1_L.csv", seed=1, hours=2)
    write_csv(tmp_path / "raw/P1_R.csv", seed=1, hours=2)
    assert run_study(load_study(tmp_path), executor=InlineExecutor()).exit_code == 0
    return tmp_path


def test_every_result_reproduces_identical_bytes(study: Path) -> None:
    with sqlite3.connect(study / "results/wearflow.db") as db:
        keys = [k for (k,) in db.execute("select key from tasks where state = 'done'")]
    assert len(keys) == 2
    for key in keys:
        report = reproduce(load_study(study), key[:12])
        assert report.identical, report.files
        assert {Path(f.path).name for f in report.files} >= {
            "activity_level_classification.csv", "activity_level_classification.parquet",
            "qc.json"}
    folder = reproduce(load_study(study), keys[0]).result_dir
    result = runner.invoke(app, ["reproduce", str(study), folder])
    assert result.exit_code == 0 and "DIFFERENT" not in result.output


def test_verify_names_altered_missing_and_unrecorded_files(study: Path) -> None:
    assert verify_outputs(load_study(study)).ok
    results = study / "results"
    (csv_file,) = results.glob("single-wrist-processed/wrist/P1/P1_L.csv/*/sleep.csv")
    data = bytearray(csv_file.read_bytes())
    data[-2] = ord("7") if data[-2] != ord("7") else ord("8")  # one byte changed
    csv_file.write_bytes(bytes(data))
    (parquet,) = results.glob("processed/wrist/P1/*/sleep.parquet")
    parquet.unlink()
    stray = csv_file.parent / "extra.csv"
    stray.write_text("a,b\n")
    (prov,) = results.glob("single-wrist-processed/wrist/P1/P1_R.csv/*/provenance.json")
    prov.write_text(prov.read_text().replace('"user"', '"user" ', 1))
    report = verify_outputs(load_study(study))
    found = {(p.kind, Path(p.path).name, Path(p.path).parent.parent.name) for p in report.problems}
    assert found == {
        ("altered", "sleep.csv", "P1_L.csv"),
        ("missing", "sleep.parquet", "P1"),
        ("unrecorded", "extra.csv", "P1_L.csv"),
        ("altered", "provenance.json", "P1_R.csv"),
    }
    result = runner.invoke(app, ["verify", str(study)])
    assert result.exit_code == 1
    assert str(csv_file.relative_to(results)) in result.output


def test_reproduce_accepts_every_path_a_user_sees(study: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Absolute folder, folder relative to the working directory or to the output, the
    input-file folder above it, the key: all name the same result."""
    results = study / "results"
    (key_folder,) = results.glob("single-wrist-processed/wrist/P1/P1_L.csv/*")
    expected = key_folder.relative_to(results).as_posix()
    monkeypatch.chdir(study)
    for name in (str(key_folder), str(key_folder) + "/", str(key_folder.parent),
                 str(key_folder.relative_to(study)), expected, key_folder.name):
        report = reproduce(load_study(study), name)
        assert report.result_dir == expected and report.identical, name
    result = runner.invoke(app, ["reproduce", str(study), str(key_folder.parent), "--json"])
    assert result.exit_code == 0, result.output
    assert '"identical": true' in result.output


def test_reproduce_refuses_a_folder_holding_several_results(study: Path) -> None:
    participant = study / "results/single-wrist-processed/wrist/P1"
    result = runner.invoke(app, ["reproduce", str(study), str(participant)])
    assert result.exit_code == 2
    assert "no single done task matches" in result.output and "2 match" in result.output
