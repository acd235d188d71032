"""`wearflow validate` is a dry run: every file accounted for, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from study_helpers import write_csv
from wearflow.cli import app

runner = CliRunner()

STUDY = """\
study: DRY
input: raw/
output: results/
files:
  sensor: ["{participant}_{visit}_{side}.cwa", "{participant}_{visit}_{side}_{device}.cwa",
           "{participant}_{visit}_{side}.csv"]
  metadata: ["participants.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
    applies_to: {visit: [V1]}
  - name: later
    pipeline: builtin:wrist
    short_recording_h: 12
    requires: [height_m]
    applies_to: {visit: [V2]}
"""


def test_validate_says_what_a_run_would_do_with_every_file(tmp_path: Path,
                                                           real_dir: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY)
    cwa = real_dir / "cwa/casson_example.cwa"
    shutil.copy(cwa, tmp_path / "raw/P1_V1_L.cwa")
    shutil.copy(cwa, tmp_path / "raw/P1_V1_R.cwa")  # the same bytes: held as a copy
    shutil.copy(real_dir / "cwa/ggirread_ax3_testfile.cwa", tmp_path / "raw/P1_V2_L_a.cwa")
    shutil.copy(real_dir / "cwa/skdh_ax3_sample.cwa", tmp_path / "raw/P1_V2_L_b.cwa")
    write_csv(tmp_path / "raw/P2_V3_L.csv", seed=1, hours=0.2)  # no solution for V3
    (tmp_path / "raw/P3_V1_X.cwa").write_bytes(b"x")  # side X: the name does not parse
    (tmp_path / "raw/readme.txt").write_text("notes")
    (tmp_path / "raw/participants.csv").write_text("participant,height_cm\nP2,170\n")
    result = runner.invoke(app, ["validate", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    files = {Path(f["uri"]).name: f for f in report["files"]}
    assert set(files) == {"P1_V1_L.cwa", "P1_V1_R.cwa", "P1_V2_L_a.cwa", "P1_V2_L_b.cwa",
                          "P2_V3_L.csv", "P3_V1_X.cwa", "participants.csv"}
    assert (files["P1_V1_L.cwa"]["what"], files["P1_V1_L.cwa"]["solutions"]) == (
        "runs", ["wrist"])
    assert files["P1_V1_R.cwa"]["what"] == "held"
    assert "same bytes as" in files["P1_V1_R.cwa"]["reason"]
    # two recordings of P1's left wrist at V2: one task, waiting for P1's height
    for name, other in (("P1_V2_L_a.cwa", "P1_V2_L_b.cwa"), ("P1_V2_L_b.cwa", "P1_V2_L_a.cwa")):
        assert files[name]["what"] == "waits" and files[name]["solutions"] == ["later"]
        assert [Path(u).name for u in files[name]["combined_with"]] == [other]
    assert "height_m of participant P1" in files["P1_V2_L_a.cwa"]["reason"]
    assert files["P2_V3_L.csv"]["what"] == "held"
    assert "no solution of the study applies" in files["P2_V3_L.csv"]["reason"]
    assert files["P3_V1_X.cwa"]["what"] == "held"
    assert "side label 'X'" in files["P3_V1_X.cwa"]["reason"]
    assert files["participants.csv"]["kind"] == "metadata"
    assert [Path(i["uri"]).name for i in report["ignored"]] == ["readme.txt"]
    uses = {s["name"]: s["files"] for s in report["solutions"]}
    assert uses == {"wrist": 1, "later": 2}
    assert not (tmp_path / "results").exists()  # a dry run writes nothing
    text = runner.invoke(app, ["validate", str(tmp_path)], env={"COLUMNS": "80"})
    assert text.exit_code == 0, text.output
    assert "P1_V2_L_a.cwa" in text.output and "readme.txt" in text.output


def test_validate_with_no_sensor_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY)
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 0  # the study file is valid, its locations are empty
    assert "no sensor file in the input locations yet" in result.output
