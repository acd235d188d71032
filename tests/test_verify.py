"""Write-once outputs can be verified and reproduced byte for byte."""

from __future__ import annotations

import hashlib
import json
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
    csv_file.chmod(0o640)  # results are read-only: whoever alters one makes it writable first
    csv_file.write_bytes(bytes(data))
    (parquet,) = results.glob("processed/wrist/P1/*/sleep.parquet")
    parquet.unlink()
    stray = csv_file.parent / "extra.csv"
    stray.write_text("a,b\n")
    (prov,) = results.glob("single-wrist-processed/wrist/P1/P1_R.csv/*/provenance.json")
    prov.chmod(0o640)
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


def _rewrite_result(results: Path, folder: Path, name: str) -> str:
    """Edit one CSV of a result, its sha256 in provenance.json and the state's record of
    that provenance.json, all together; return the folder, relative to the output."""
    csv_file = folder / name
    data = bytearray(csv_file.read_bytes())
    data[-2] = ord("7") if data[-2] != ord("7") else ord("8")
    csv_file.write_bytes(bytes(data))
    relative = folder.relative_to(results).as_posix()
    prov = json.loads((folder / "provenance.json").read_bytes())
    for item in prov["outputs"]:
        if item["path"] == f"{relative}/{name}":
            item["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    prov_bytes = (json.dumps(prov, indent=2, sort_keys=True) + "\n").encode()
    (folder / "provenance.json").write_bytes(prov_bytes)
    with sqlite3.connect(results / "wearflow.db") as db:
        for table in ("tasks", "participant_results"):
            db.execute(f"update {table} set provenance_sha256 = ? where result_dir = ?",
                       (hashlib.sha256(prov_bytes).hexdigest(), relative))
    return relative


def test_a_result_rewritten_with_every_hash_is_caught_by_the_audit_trail(study: Path) -> None:
    results = study / "results"
    (wrist,) = results.glob("single-wrist-processed/wrist/P1/P1_L.csv/*")
    (participant,) = results.glob("processed/wrist/P1/*")
    rewritten = {_rewrite_result(results, wrist, "sleep.csv"),
                 _rewrite_result(results, participant, "sleep.csv")}
    report = verify_outputs(load_study(study))
    assert {(p.kind, p.path) for p in report.problems} == {
        ("altered", f"{folder}/provenance.json") for folder in rewritten}
    assert all("audit trail" in p.detail for p in report.problems)
    result = runner.invoke(app, ["verify", str(study)])
    assert result.exit_code == 1 and "audit trail" in result.output


def test_a_result_the_audit_trail_never_saw_is_named(study: Path) -> None:
    """A result folder recorded in the state but never written by a run (no
    result.written entry): a forged addition."""
    with sqlite3.connect(study / "results/wearflow.db") as db:
        (folder,) = db.execute("select result_dir from participant_results").fetchone()
        db.execute("update participant_results set result_dir = ?", (folder + "-forged",))
    report = verify_outputs(load_study(study))
    kinds = {(p.kind, p.path.rsplit("/", 2)[-2:][0]) for p in report.problems}
    assert ("unaudited", folder.rsplit("/", 1)[-1] + "-forged") in kinds
