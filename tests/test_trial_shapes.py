"""Real trial shapes: visits, several recordings of one wrist, solutions scoped to files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study_helpers import write_csv
from wearflow import load_study, run_study, study_status
from wearflow.demo.cwa_writer import write_cwa
from wearflow.demo.synthetic import generate_recording
from wearflow.errors import ConfigError
from wearflow.executors import InlineExecutor, LocalExecutor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

VISITS = """\
study: VISITS
input: raw/
output: results/
files:
  sensor: ["{participant}_{visit}_{side}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


def _study(root: Path, text: str) -> Path:
    (root / "raw").mkdir(parents=True, exist_ok=True)
    (root / "study.yaml").write_text(text)
    return root


def _issues(root: Path) -> list[dict[str, object]]:
    return list(study_status(load_study(root))["issues"])


def test_two_visits_give_two_participant_visit_results(tmp_path: Path) -> None:
    root = _study(tmp_path, VISITS)
    for seed, name in enumerate(["P1_V1_L", "P1_V1_R", "P1_V2_L", "P1_V2_R"], start=1):
        write_csv(root / f"raw/{name}.csv", seed=seed, hours=1)
    report = run_study(load_study(root), executor=InlineExecutor())
    assert (report.exit_code, report.done, report.participants_aggregated) == (0, 4, 2)
    processed = root / "results/processed/wrist/P1"
    assert sorted(p.name for p in processed.iterdir()) == ["V1", "V2"]
    for visit in ("V1", "V2"):
        (folder,) = (processed / visit).iterdir()
        prov = json.loads((folder / "provenance.json").read_text())
        assert prov["task_inputs"] == {"visit": visit}
        assert {Path(i["uri"]).name for i in prov["input"]} == {
            f"P1_{visit}_L.csv", f"P1_{visit}_R.csv"}
    (summary,) = (root / "results/processed/wrist/study-summary").iterdir()
    table = pd.read_csv(summary / "summary.csv", dtype=str)
    assert sorted(set(zip(table["participant"], table["visit"], strict=True))) == [
        ("P1", "V1"), ("P1", "V2")]
    status = study_status(load_study(root))
    assert status["participant_visits"] == {"total": 2, "processed": 2}
    assert status["participants"] == {"total": 1, "processed": 1}
    assert not [i for i in status["issues"] if i["tag"] == "DATA_ISSUE"]


SCOPED = VISITS.replace("""    pipeline: builtin:wrist
""", """    pipeline: builtin:wrist
    applies_to: {visit: [V2]}
""")


def test_a_solution_scoped_to_one_visit_runs_on_its_files_only(tmp_path: Path) -> None:
    root = _study(tmp_path, SCOPED)
    for seed, name in enumerate(["P1_V1_L", "P1_V2_L", "P1_V3_L"], start=1):
        write_csv(root / f"raw/{name}.csv", seed=seed, hours=1)
    report = run_study(load_study(root), executor=InlineExecutor())
    assert (report.executed, report.done) == (1, 1)
    assert report.exit_code == 1  # two files are held: no solution applies to them
    done = list((root / "results/single-wrist-processed/wrist/P1").iterdir())
    assert [p.name for p in done] == ["P1_V2_L.csv"]
    held = sorted((str(i["uri"]).rsplit("/", 1)[-1], str(i["message"]))
                  for i in _issues(root) if i["tag"] == "DATA_ISSUE")
    assert [name for name, _ in held] == ["P1_V1_L.csv", "P1_V3_L.csv"]
    assert all("no solution of the study applies" in m and "participant P1 visit V" in m
               for _, m in held)


def test_applies_to_needs_the_field_in_a_pattern(tmp_path: Path) -> None:
    root = _study(tmp_path, SCOPED.replace("{participant}_{visit}_{side}.csv",
                                           "{participant}_{side}.csv"))
    with pytest.raises(ConfigError, match=r"applies_to.visit needs a \{visit\} field"):
        load_study(root)
    root = _study(tmp_path, SCOPED.replace("{visit: [V2]}", "{side: [middle]}"))
    with pytest.raises(ConfigError, match=r"applies_to\.side"):
        load_study(root)


SPLIT = """\
study: SPLIT
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.cwa", "{participant}_{side}_{device}.cwa"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
    short_recording_h: 12
"""
RATE_HZ = 25.0


def _write(path: Path, time_s: np.ndarray, rec: object, keep: np.ndarray,
           serial: int = 7) -> None:
    write_cwa(path, time_s[keep], rec.accel_g[keep],  # type: ignore[attr-defined]
              rec.temperature_c[keep], RATE_HZ, serial=serial)  # type: ignore[attr-defined]


def _wear_by_date(root: Path, participant: str) -> dict[str, float]:
    (folder,) = (root / f"results/single-wrist-processed/wrist/{participant}").glob("*/*")
    days = pd.read_parquet(folder / "qc_days.parquet")
    return {str(d): float(w) for d, w in zip(days["date"], days["wear_hours"], strict=True)}


def _qc(root: Path, participant: str) -> dict[str, object]:
    (folder,) = (root / f"results/single-wrist-processed/wrist/{participant}").glob("*/*")
    return dict(json.loads((folder / "qc.json").read_text()))


def test_two_recordings_of_one_wrist_give_the_result_of_one(tmp_path: Path) -> None:
    """A recording cut in two with a 1-hour overlap, and with a 1-hour gap, gives per-day
    wear hours within 0.1 h of the same recording as one file; overlap and gap flagged."""
    root = _study(tmp_path, SPLIT)
    rec, _ = generate_recording(seed=5, days=2.0, sampling_rate_hz=RATE_HZ)
    t = rec.time_s
    hour = 3600.0
    cut = t[0] + 26 * hour
    everything = np.ones(t.shape, dtype=bool)
    _write(root / "raw/P1_L.cwa", t, rec, everything)  # one file
    _write(root / "raw/P2_L_a.cwa", t, rec, t < cut)  # 1 h overlap
    _write(root / "raw/P2_L_b.cwa", t, rec, t >= cut - hour)
    gap = (t >= cut) & (t < cut + hour)
    _write(root / "raw/P3_L.cwa", t, rec, ~gap)  # one file with a 1-hour gap
    # the same gap between two files (another device: other bytes than P2's first part)
    _write(root / "raw/P4_L_a.cwa", t, rec, t < cut, serial=8)
    _write(root / "raw/P4_L_b.cwa", t, rec, t >= cut + hour, serial=8)
    report = run_study(load_study(root), executor=LocalExecutor(2))
    assert (report.exit_code, report.executed, report.participants_aggregated) == (0, 4, 4)
    whole, overlapped = _wear_by_date(root, "P1"), _wear_by_date(root, "P2")
    assert whole.keys() == overlapped.keys() and len(whole) >= 2
    assert all(abs(whole[d] - overlapped[d]) <= 0.1 for d in whole), (whole, overlapped)
    gapped, two_files = _wear_by_date(root, "P3"), _wear_by_date(root, "P4")
    assert gapped.keys() == two_files.keys()
    assert all(abs(gapped[d] - two_files[d]) <= 0.1 for d in gapped), (gapped, two_files)
    qc2, qc4 = _qc(root, "P2"), _qc(root, "P4")
    assert "recordings_combined=2" in qc2["flags"]  # type: ignore[operator]
    assert "overlap_trimmed_s=3600.0:P2_L_b.cwa" in qc2["flags"]  # type: ignore[operator]
    assert any(str(f).startswith("gap_between_recordings_s=36")
               for f in qc4["flags"])  # type: ignore[attr-defined]
    assert qc2["n_samples"] == _qc(root, "P1")["n_samples"]  # no sample counted twice
    assert [Path(str(r["uri"])).name for r in qc2["recordings"]] == [  # type: ignore[index]
        "P2_L_a.cwa", "P2_L_b.cwa"]
    prov = json.loads(next((root / "results/single-wrist-processed/wrist/P2")
                           .glob("*/*/provenance.json")).read_text())
    assert [Path(i["uri"]).name for i in prov["input"]] == ["P2_L_a.cwa", "P2_L_b.cwa"]
    status = study_status(load_study(root))
    assert status["files"]["by_state"]["done"] == 6  # both parts of a task count as done


def test_bad_trial_shapes_are_issues_and_the_rest_is_processed(tmp_path: Path) -> None:
    """Two recordings of one wrist from two devices: combined, and an issue naming the
    participant and files; a file at a rate the other part does not have: the task fails
    naming the files; the rest of the study is done."""
    root = _study(tmp_path, SPLIT.replace("short_recording_h: 12", "short_recording_h: 24"))
    rec, _ = generate_recording(seed=6, days=0.1, sampling_rate_hz=RATE_HZ)
    t = rec.time_s
    half = t[len(t) // 2]
    _write(root / "raw/P1_L_a.cwa", t, rec, t < half, serial=11)
    _write(root / "raw/P1_L_b.cwa", t, rec, t >= half, serial=12)
    _write(root / "raw/P2_R.cwa", t, rec, np.ones(t.shape, dtype=bool))
    fast, _ = generate_recording(seed=7, days=0.05, sampling_rate_hz=50.0,
                                 start_utc=pd.Timestamp(t[-1] + 60, unit="s", tz="UTC"))
    write_cwa(root / "raw/P2_L_a.cwa", fast.time_s, fast.accel_g, fast.temperature_c, 50.0,
              serial=7)
    _write(root / "raw/P2_L_b.cwa", t, rec, t < half)
    report = run_study(load_study(root), executor=InlineExecutor())
    assert (report.executed, report.done, report.failed) == (3, 3, 2)
    issues = _issues(root)
    devices = [i for i in issues if "come from 2 devices" in str(i["message"])]
    assert len(devices) == 1 and devices[0]["participant"] == "P1"
    assert "P1_L_a.cwa, P1_L_b.cwa" in str(devices[0]["message"])
    rates = [i for i in issues if "different sampling rates" in str(i["message"])]
    assert len(rates) == 1 and rates[0]["tag"] == "DATA_ISSUE"
    assert "50 Hz in P2_L_a.cwa" in str(rates[0]["message"])


PROTOCOL = """\
study: PROTOCOL
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.cwa"]
  metadata: ["participants.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
    short_recording_h: 12
"""


def test_days_outside_a_participants_protocol_window_are_excluded(tmp_path: Path) -> None:
    root = _study(tmp_path, PROTOCOL)
    rec, _ = generate_recording(seed=8, days=2.0, sampling_rate_hz=RATE_HZ)  # from 03-02
    everything = np.ones(rec.time_s.shape, dtype=bool)
    _write(root / "raw/P1_L.cwa", rec.time_s, rec, everything, serial=1)
    _write(root / "raw/P2_L.cwa", rec.time_s, rec, everything, serial=2)
    (root / "raw/participants.csv").write_text(
        "participant,protocol_start,protocol_end\n"
        "P1,2026-03-03,2026-03-10\n"
        "P2,2026-03-05,2026-03-01\n")  # ends before it starts
    report = run_study(load_study(root), executor=LocalExecutor(2))
    assert (report.executed, report.done) == (2, 2)
    days1 = pd.read_parquet(next((root / "results/single-wrist-processed/wrist/P1")
                                 .glob("*/*/qc_days.parquet")))
    before = days1[days1["date"] < "2026-03-03"]
    assert len(before) >= 1 and (before["valid_day"] == 0).all()
    assert set(before["exclusion_reason"]) == {
        "outside the protocol window 2026-03-03..2026-03-10"}
    inside = days1[days1["date"] >= "2026-03-03"]
    assert not inside["exclusion_reason"].fillna("").str.startswith("outside").any()
    days2 = pd.read_parquet(next((root / "results/single-wrist-processed/wrist/P2")
                                 .glob("*/*/qc_days.parquet")))
    assert not days2["exclusion_reason"].fillna("").str.startswith("outside").any()
    bad = [i for i in _issues(root) if "ends (2026-03-01) before it starts" in str(i["message"])]
    assert len(bad) == 2 and {i["participant"] for i in bad} == {"P2"}
    assert all(str(i["uri"]).endswith("participants.csv") and i["tag"] == "METADATA_ISSUE"
               for i in bad)


def test_a_sleep_diary_night_replaces_the_algorithms_window(tmp_path: Path) -> None:
    root = _study(tmp_path, PROTOCOL.replace('"participants.csv"', '"diary.csv"'))
    rec, _ = generate_recording(seed=9, days=2.0, sampling_rate_hz=RATE_HZ)  # from 03-02
    _write(root / "raw/P1_L.cwa", rec.time_s, rec, np.ones(rec.time_s.shape, dtype=bool))
    (root / "raw/diary.csv").write_text(
        "participant,bed_time,wake_time\n"
        "P1,2026-03-02 21:40,2026-03-03 06:50\n"
        "P1,2026-03-03 23:00,2026-03-03 22:00\n")  # wake before bed: a problem, not used
    report = run_study(load_study(root), executor=InlineExecutor())
    assert (report.executed, report.done) == (1, 1)
    sleep = pd.read_parquet(next((root / "results/single-wrist-processed/wrist/P1")
                                 .glob("*/*/sleep.parquet")))
    nights = sleep.dropna(subset=["tso_start"])
    assert len(nights) >= 2
    by_source = dict(zip(nights["tso_start"].astype(str).str[:16], nights["tso_source"],
                         strict=True))
    assert by_source.get("2026-03-02 21:40") == "diary", by_source
    assert set(by_source.values()) == {"diary", "algorithm"}
    prov = json.loads(next((root / "results/single-wrist-processed/wrist/P1")
                           .glob("*/*/provenance.json")).read_text())
    assert json.loads(prov["task_inputs"]["sleep_diary"]) == [
        ["2026-03-02T21:40", "2026-03-03T06:50"]]
    (bad,) = [i for i in _issues(root) if i["tag"] == "METADATA_ISSUE"]
    assert bad["participant"] == "P1" and str(bad["uri"]).endswith("diary.csv")
    assert "wake time 2026-03-03 22:00 is not after the bed time 2026-03-03 23:00" in str(
        bad["message"])


def test_applies_to_by_device_plans_only_that_devices_files(tmp_path: Path) -> None:
    from wearflow.catalog import StoredFile
    from wearflow.plan import make_plan
    from wearflow.solutions import load_study_solutions

    root = _study(tmp_path, SPLIT.replace("    short_recording_h: 12\n",
                                          "    applies_to: {device: [a]}\n"))
    study = load_study(root)

    def stored(n: int, name: str, fields: str) -> StoredFile:
        return StoredFile(n, f"file:///raw/{name}", f"{n:064x}", 10, "0", "file:///raw",
                          name, "sensor", "P1", "left", fields, None, None, None, None, "",
                          "", True, True)

    files = [stored(1, "P1_L_a.cwa", '{"device": "a", "participant": "P1", "side": "left"}'),
             stored(2, "P2_L_b.cwa", '{"device": "b", "participant": "P2", "side": "left"}')]
    files[1] = files[1]._replace(participant="P2")
    plan = make_plan(study, files, load_study_solutions(study), {})
    assert [t.file_name for t in plan.to_run] == ["P1_L_a.cwa"]
    assert plan.unassigned == ("file:///raw/P2_L_b.cwa",)
    assert "device b" in plan.held[0].message
