"""End to end on the embedded default: study file -> per-wrist -> participant results."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from wearflow import load_study, run_study, study_status
from wearflow.demo.synthetic import write_study
from wearflow.executors import InlineExecutor, LocalExecutor

STUDY = """\
study: E2E
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.cwa", "{participant}_{side}.bin", "{participant}_{side}.csv"]
  sides: {left: [L, LW, left], right: [R, RW, right]}
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every output file (state database and log excluded)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "wearflow.db" not in p.name and p.parent.name != "logs"
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    write_study(root, participants=2, days=2.0, seed=7)
    (root / "study.yaml").write_text(STUDY)
    return root


@pytest.fixture(scope="module")
def first_run(demo: Path):  # type: ignore[no-untyped-def]
    return run_study(load_study(demo), executor=LocalExecutor(2))


def test_every_file_processed_and_participants_aggregated(demo: Path, first_run) -> None:  # type: ignore[no-untyped-def]
    assert first_run.exit_code == 0
    assert (first_run.executed, first_run.done, first_run.failed) == (4, 4, 0)
    assert first_run.participants_aggregated == 2
    status = study_status(load_study(demo))
    assert status["files"] == {"total": 4, "by_state": {"pending": 0, "waiting": 0,
                                                         "running": 0, "done": 4, "failed": 0,
                                                         "excluded": 0}}
    assert status["participants"] == {"total": 2, "processed": 2}
    assert status["issues"] == []


def test_per_wrist_results_with_provenance(demo: Path, first_run) -> None:  # type: ignore[no-untyped-def]
    folders = sorted((demo / "results/single-wrist-processed/wrist/P001/P001_L.cwa").iterdir())
    assert len(folders) == 1
    folder = folders[0]
    names = {p.name for p in folder.iterdir()}
    assert {"activity_level_classification.csv", "activity_level_classification.parquet",
            "sleep.csv", "sleep.parquet", "minute_series.csv", "minute_series.parquet",
            "qc.json", "provenance.json"} <= names
    prov = json.loads((folder / "provenance.json").read_text())
    raw = demo / "raw/P001_L.cwa"
    assert prov["input"]["uri"] == f"file://{raw}"
    assert prov["input"]["sha256"] == hashlib.sha256(raw.read_bytes()).hexdigest()
    assert prov["input"]["size_bytes"] == raw.stat().st_size
    assert prov["solution"]["name"] == "wrist"
    assert "skdh-0.17.18" in prov["solution"]["version"]
    assert len(prov["solution"]["fingerprint"]) == 64
    assert prov["software"]["packages"]["scikit-digital-health"] == "0.17.18"
    assert prov["started_utc"] <= prov["finished_utc"]
    for out in prov["outputs"]:
        data = (demo / "results" / out["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == out["sha256"]
    qc = json.loads((folder / "qc.json").read_text())
    # the synthetic device has a +-0.02 g calibration error that SKDH's calibration removes
    assert qc["calibration_error_after_g"] < qc["calibration_error_before_g"]
    assert abs(qc["rate_drift_pct"]) < 0.01
    days = pd.read_parquet(folder / "activity_level_classification.parquet")
    assert {"date", "n_wear_hours", "wake_mvpa_5s_epoch_min"} <= set(days.columns)
    assert days["n_wear_hours"].dtype == "float64"
    minutes = pd.read_parquet(folder / "minute_series.parquet")
    assert len(minutes) == 2 * 24 * 60  # two days from 08:00 local: every minute
    assert (str(minutes["minute_utc"].dtype), str(minutes["sleep_window"].dtype),
            str(minutes["moderate_s"].dtype)) == ("string", "int64", "float64")


def test_participant_results_combine_both_wrists(demo: Path, first_run) -> None:  # type: ignore[no-untyped-def]
    (folder,) = sorted((demo / "results/processed/wrist/P002").iterdir())
    days = pd.read_csv(folder / "activity_level_classification.csv")
    assert not (folder / "minute_series.csv").exists()  # no date: it stays per wrist
    for col in ("n_wear_hours", "n_wear_hours_left", "n_wear_hours_right",
                "n_wear_hours_discordance"):
        assert col in days.columns
    assert set(days["combined_rule"]) == {"mean"}
    both = days.dropna(subset=["n_wear_hours_left", "n_wear_hours_right"])
    assert not both.empty
    pd.testing.assert_series_equal(
        both["n_wear_hours"], (both["n_wear_hours_left"] + both["n_wear_hours_right"]) / 2,
        check_names=False)
    prov = json.loads((folder / "provenance.json").read_text())
    assert sorted(i["side"] for i in prov["input"]) == ["left", "right"]
    (summary_dir,) = (demo / "results/processed/wrist/study-summary").iterdir()
    summary = pd.read_csv(summary_dir / "summary.csv")
    assert sorted(set(summary["participant"])) == ["P001", "P002"]
    assert summary["wear_hours"].notna().any()


def test_second_run_does_nothing_and_changes_no_byte(demo: Path, first_run) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(demo / "results")
    again = run_study(load_study(demo), executor=InlineExecutor())
    assert again.executed == 0
    assert again.participants_aggregated == 0
    assert snapshot(demo / "results") == before


def test_builtin_finds_planted_non_wear_and_sleep(demo: Path, first_run) -> None:  # type: ignore[no-untyped-def]
    """Planted truth vs wearflow's per-wrist tables: non-wear within 30 min per recording,
    each night's total sleep within 60 min of the planted night."""
    from wearflow.demo.synthetic import GroundTruth

    for truth_file in sorted((demo / "truth").glob("*.truth.json")):
        truth = GroundTruth.from_json(truth_file.read_text())
        name = truth_file.name.replace(".truth.json", ".cwa")
        (folder,) = (demo / "results/single-wrist-processed/wrist" / name[:4] / name).iterdir()
        wear = pd.read_parquet(folder / "detach_wear.parquet")
        worn_h = float(wear["duration_h"].sum())
        found_non_wear_min = (truth.duration_s / 3600 - worn_h) * 60
        planted_non_wear_min = sum(end - start for start, end in truth.non_wear) / 60
        assert abs(found_non_wear_min - planted_non_wear_min) <= 30, name
        nights = pd.read_parquet(folder / "sleep.parquet")
        planted = sorted((end - start) / 60 for start, end in truth.sleep)
        found = sorted(nights["total_sleep_time_min"].dropna())
        assert len(found) == len(planted) == 2, name
        for f, p in zip(found, planted, strict=True):
            assert abs(f - p) <= 60, (name, f, p)
