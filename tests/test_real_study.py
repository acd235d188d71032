"""End to end over real recordings from ../shared/data/real/, defective ones included."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from wearflow import load_study, run_study, study_status
from wearflow.executors import InlineExecutor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: REAL
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.cwa", "{participant}_{side}.cwa.gz", "{participant}_{side}.bin",
           "{participant}_{side}.csv", "{participant}_{side}.csv.gz"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""

# study name <- real file; outcome: "done" with flags that must be present, or the failure reason.
CASES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "P01_L.cwa": ("cwa/casson_example.cwa", "done", ()),
    "P01_R.cwa": ("cwa/ggirread_ax3_testfile.cwa", "done", ("skipped:DETACH",)),
    "P02_L.cwa": ("cwa/skdh_ax3_sample.cwa", "done", ("skipped:DETACH",)),
    "P02_R.bin": ("geneactiv_bin/wristpy_example_geneactiv.bin", "done", ()),
    "P03_L.bin": ("geneactiv_bin/ggir_history_TESTfile.bin", "done", ()),
    "P03_R.csv.gz": ("generic_csv/oxwar_nhanes_like_sample_80Hz.csv.gz", "done",
                     ("substituted:DETACH",)),
    "P04_L.cwa.gz": ("cwa/stepcount_tiny-sample.cwa.gz", "done", ("gap_s=",)),
    "P04_R.cwa": ("cwa/ggirread_ax3_testfile_corrupt_blocks_0_13_14_142_143_144.cwa", "done",
                  ("corrupt_blocks_skipped=6",)),
    "P05_L.bin": ("geneactiv_bin/ggirread_GENEActiv_testfile.bin", "done", ("pages_missing=",)),
    "P05_R.bin": ("geneactiv_bin/geneacore_Zero_data_pages.bin", "failed",
                  ("DATA_ISSUE", "no data pages")),
    "P06_L.bin": ("geneactiv_bin/geneacore_Short_header.bin", "failed",
                  ("DATA_ISSUE", "header is truncated")),
    "P06_R.cwa": ("cwa/ggirread_ax6_testfile.cwa", "done", ()),
    "P07_L.csv": ("actigraph_raw_csv/agread_TestID_LeftWrist_RAW.csv", "done", ()),
    "P07_R.bin": ("geneactiv_bin/geneacore_Not_a_GENEActiv_bin_file.bin", "done",
                  ("device_type=",)),
    "noname.cwa": ("cwa/openmovement_example-610-steps.cwa", "held", ("does not parse",)),
}


@pytest.fixture(scope="module")
def real_study(tmp_path_factory: pytest.TempPathFactory, real_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("real")
    (root / "raw").mkdir()
    for name, (source, _, _) in CASES.items():
        shutil.copyfile(real_dir / source, root / "raw" / name)
    (root / "study.yaml").write_text(STUDY)
    report = run_study(load_study(root), executor=InlineExecutor())
    assert report.exit_code == 1  # some failed, the rest completed
    return root


def task_rows(root: Path) -> dict[str, tuple[str, str | None, str | None, list[str]]]:
    with sqlite3.connect(root / "results/wearflow.db") as db:
        rows = db.execute("select f.path, t.state, t.tag, t.message, t.flags_json from tasks t "
                          "join files f on f.id = t.file_id").fetchall()
    return {r[0]: (r[1], r[2], r[3], json.loads(r[4])) for r in rows}


@pytest.mark.parametrize("name", sorted(CASES))
def test_outcome_of_each_real_file(real_study: Path, name: str) -> None:
    _, outcome, expect = CASES[name]
    rows = task_rows(real_study)
    if outcome == "held":
        assert name not in rows
        issues = {i["uri"].rsplit("/", 1)[-1]: i for i in study_status(load_study(real_study))
                  ["issues"]}
        assert issues[name]["tag"] == "DATA_ISSUE"
        assert expect[0] in issues[name]["message"]
        return
    state, tag, message, flags = rows[name]
    assert state == outcome, message
    if outcome == "failed":
        assert (tag, expect[1] in (message or "")) == (expect[0], True)
        return
    for prefix in expect:
        assert any(f.startswith(prefix) for f in flags), flags
    (result,) = (real_study / "results/single-wrist-processed/wrist" / name.split("_")[0]
                 / name).iterdir()
    qc = json.loads((result / "qc.json").read_text())
    assert qc["n_samples"] > 0
    assert qc["start_utc"] > "1990"


def test_study_completes_and_aggregates_every_participant_with_a_good_file(
    real_study: Path,
) -> None:
    status = study_status(load_study(real_study))
    assert status["files"]["total"] == len(CASES)
    assert status["files"]["by_state"]["done"] == 12
    assert status["files"]["by_state"]["failed"] == 3
    # these real recordings were paired by us, not recorded together: a pair that shares no
    # moment is not combined (a DATA_ISSUE says so); every other participant is processed
    apart = {i["participant"] for i in status["issues"]
             if "do not overlap in time" in i["message"]}
    assert apart and status["participants"] == {"total": 7, "processed": 7 - len(apart)}
    single = json.loads(next((real_study / "results/processed/wrist/P05").iterdir())
                        .joinpath("provenance.json").read_text())
    assert single["flags"] == ["single_wrist:left"]


def test_qc_lists_every_file_and_why_days_are_not_valid(real_study: Path) -> None:
    from typer.testing import CliRunner

    from wearflow.cli import app

    result = CliRunner().invoke(app, ["qc", str(real_study), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by_file: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by_file.setdefault(str(row["uri"]).rsplit("/", 1)[-1], []).append(row)
    assert set(by_file) == set(CASES)
    for name, (_, outcome, expect) in CASES.items():
        file_rows = by_file[name]
        assert all(r["valid_day"] == 0 for r in file_rows)  # no real file here has a 16 h day
        if outcome == "failed":
            assert f"[{expect[0]}]" in str(file_rows[0]["reason"])
            assert expect[1] in str(file_rows[0]["reason"])
        elif outcome == "held":
            assert "does not parse" in str(file_rows[0]["reason"])
        else:
            assert all(r["reason"] for r in file_rows), name
    casson = by_file["P01_L.cwa"][0]
    assert casson["date"] == "2019-05-31"
    assert casson["reason"] == "worn 0.6 h < 16 h"
    assert "qc/" in result.stdout or list((real_study / "results/qc").glob("*/qc.csv"))
