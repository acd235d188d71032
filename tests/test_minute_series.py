"""The wrist's ``minute_series``: per UTC minute exactly what the solution classified.

A report draws this table, so it must agree with the tables it came from: per day the
seconds per intensity level with ActivityLevelClassification's 5-s-epoch minutes, the
wear fraction with its wear minutes; per night the sleep window with Sleep's TSO and
the minutes asleep with its total sleep time. Also: the planted truth of a synthetic
recording lies where the series draws it, no state passes from one file to the next,
skipped steps leave their columns empty, and the isolated-environment path (parquet)
gives the same table, dtypes included.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from wearflow.config import SolutionConfig
from wearflow.demo.synthetic import GroundTruth, generate_recording
from wearflow.readers import read_recording
from wearflow.recording import Recording
from wearflow.solutions.base import FileResult
from wearflow.solutions.environments import SolutionEnvironment
from wearflow.solutions.skdh import SkdhSolution
from wearflow.solutions.skdh_core import _iso

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ZONE = "America/New_York"  # local days and nights on UTC minutes
RATE_HZ = 25.0
LEVELS = {"sedentary": "sed", "light": "light", "moderate": "mod", "vigorous": "vig"}
COLUMNS = {"minute_utc": "string", "wear_fraction": "float64", "sleep_window": "int64",
           "asleep": "int64", "angle_deg": "float64", "enmo_g": "float64",
           **{f"{level}_s": "float64" for level in LEVELS}}


def _solution() -> SkdhSolution:
    return SkdhSolution.from_config(SolutionConfig(name="wrist", pipeline="builtin:wrist"))


def _run(solution: SkdhSolution, rec: Recording, zone: str = ZONE) -> FileResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return solution.run(rec, {"time_zone": zone})


def _seconds(minutes: pd.Series) -> np.ndarray:
    """``minute_utc`` -> UTC seconds of the minute's start."""
    text = minutes.astype(str).str.removesuffix("Z").to_numpy()
    return text.astype("datetime64[ms]").astype(np.int64) / 1000.0


def _local_dates(minutes: pd.Series, zone: str) -> pd.Series:
    utc = pd.to_datetime(_seconds(minutes), unit="s", utc=True)
    return pd.Series(utc.tz_convert(zone).strftime("%Y-%m-%d"), index=minutes.index)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) row ranges where ``flags`` is 1."""
    edges = np.flatnonzero(np.diff(np.r_[0, flags, 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


@pytest.fixture(scope="module")
def shared() -> dict[str, Any]:
    """Two recordings of the same dates through ONE solution object, as a worker runs them:
    A (2.5 days: two nights, three analysed days), then B (another participant, 1.5 days)."""
    rec_a, truth_a = generate_recording(seed=21, days=2.5, sampling_rate_hz=RATE_HZ,
                                        time_zone=ZONE)
    rec_b, _ = generate_recording(seed=34, days=1.5, sampling_rate_hz=RATE_HZ, time_zone=ZONE)
    solution = _solution()
    result_a = _run(solution, rec_a)
    result_b = _run(solution, rec_b)
    return {"rec_a": rec_a, "truth_a": truth_a, "a": result_a.tables, "flags_a": result_a.flags,
            "rec_b": rec_b, "b": result_b.tables}


def test_one_row_per_utc_minute_with_typed_columns(shared: dict[str, Any]) -> None:
    for rec, tables in ((shared["rec_a"], shared["a"]), (shared["rec_b"], shared["b"])):
        series = tables["minute_series"]
        assert {c: str(t) for c, t in series.dtypes.items()} == COLUMNS
        first, last = np.floor(rec.time_s[0] / 60.0), np.floor(rec.time_s[-1] / 60.0)
        assert len(series) == int(last - first) + 1
        starts = _seconds(series["minute_utc"])
        assert starts[0] == 60.0 * first and np.all(np.diff(starts) == 60.0)
        assert list(series["minute_utc"].iloc[[0, -1]]) == _iso(starts[[0, -1]])
        assert series["wear_fraction"].between(0.0, 1.0).all()
        assert set(series["sleep_window"]) | set(series["asleep"]) <= {0, 1}
        levels = series[[f"{level}_s" for level in LEVELS]]
        assert (levels >= 0.0).all().all()
        # ENMO where SKDH classified an epoch (some seconds at a level), NaN elsewhere
        assert (series["enmo_g"].notna() == (levels.sum(axis=1) > 0)).all()


def test_intensity_seconds_add_up_to_the_activity_table_per_day(shared: dict[str, Any]) -> None:
    series, days = shared["a"]["minute_series"], shared["a"]["activity_level_classification"]
    by_date = series.groupby(_local_dates(series["minute_utc"], ZONE))
    analysed = days[days["wake_mvpa_5s_epoch_min"].notna()]
    assert len(analysed) == 3
    for _, day in analysed.iterrows():
        minutes = by_date.get_group(day["date"])
        for level, short in LEVELS.items():
            skdh_min = np.nansum([day[f"wake_{short}_5s_epoch_min"],
                                  day[f"sleep_{short}_5s_epoch_min"]])
            assert minutes[f"{level}_s"].sum() / 60.0 == pytest.approx(skdh_min, abs=1e-6)
        mvpa_min = (minutes["moderate_s"] + minutes["vigorous_s"]).sum() / 60.0
        skdh_mvpa = np.nansum([day["wake_mvpa_5s_epoch_min"], day["sleep_mvpa_5s_epoch_min"]])
        assert mvpa_min == pytest.approx(skdh_mvpa, abs=1e-6)
        assert mvpa_min > 0.0  # the generator plants walks every day


def test_wear_fraction_adds_up_to_the_wear_minutes_per_day(shared: dict[str, Any]) -> None:
    series, days = shared["a"]["minute_series"], shared["a"]["activity_level_classification"]
    by_date = series.groupby(_local_dates(series["minute_utc"], ZONE))
    for _, day in days.iterrows():
        worn = by_date.get_group(day["date"])["wear_fraction"].sum()
        assert worn == pytest.approx(day["wear_minutes"], abs=0.05)
    # the planted non-wear (the device on a table) is drawn as such
    starts = _seconds(series["minute_utc"])
    for a, b in shared["truth_a"].non_wear:
        inside = (starts >= a + 1800.0) & (starts + 60.0 <= b - 1800.0)
        assert inside.any() and (series["wear_fraction"][inside] == 0.0).all()


def test_sleep_window_and_asleep_are_the_sleep_tables_nights(shared: dict[str, Any]) -> None:
    series, sleep = shared["a"]["minute_series"], shared["a"]["sleep"]
    nights = sleep[sleep["tso_start_timestamp"].notna()]
    assert len(nights) == 2
    window = series["sleep_window"].to_numpy()
    asleep = series["asleep"].to_numpy()
    assert not np.any(asleep > window)  # sleep/wake is scored inside the window only
    starts = _seconds(series["minute_utc"])
    drawn = _runs(window)
    assert len(drawn) == len(nights)
    for (i0, i1), (_, night) in zip(drawn, nights.iterrows(), strict=True):
        tso_start = night["tso_start_timestamp"]
        tso_end = tso_start + 60.0 * night["tso_duration_min"]
        assert abs(starts[i0] - tso_start) < 60.0
        assert abs(starts[i1 - 1] + 60.0 - tso_end) < 60.0
        assert asleep[i0:i1].sum() == night["total_sleep_time_min"]
        assert 100.0 * asleep[i0:i1].sum() / (i1 - i0) == pytest.approx(
            night["percent_time_asleep_pct"], abs=1e-3)


def test_the_planted_nights_are_drawn_where_they_were(shared: dict[str, Any]) -> None:
    truth: GroundTruth = shared["truth_a"]
    series = shared["a"]["minute_series"]
    starts = _seconds(series["minute_utc"])
    drawn = _runs(series["sleep_window"].to_numpy())
    assert len(truth.sleep) == 2
    for a, b in truth.sleep:
        overlap = [max(0.0, min(b, starts[i1 - 1] + 60.0) - max(a, starts[i0]))
                   for i0, i1 in drawn]
        assert max(overlap) > 0.8 * (b - a)
        in_night = (starts >= a) & (starts + 60.0 <= b)
        assert series["asleep"][in_night].mean() > 0.8


def test_arm_angle_and_enmo_line_up_with_the_recording(shared: dict[str, Any]) -> None:
    """Per-minute means of the raw signal: the values sit on the right minutes."""
    rec, series = shared["rec_a"], shared["a"]["minute_series"]
    n = round(60 * RATE_HZ)
    skip = round((np.ceil(rec.time_s[0] / 60.0) * 60.0 - rec.time_s[0]) * RATE_HZ)
    m = (rec.accel_g.shape[0] - skip) // n
    acc = rec.accel_g[skip:skip + m * n]
    z_deg = np.degrees(np.arctan(acc[:, 2] / np.hypot(acc[:, 0], acc[:, 1])))
    raw_angle = z_deg.reshape(m, n).mean(axis=1)
    raw_enmo = np.maximum(np.linalg.norm(acc, axis=1) - 1.0, 0.0).reshape(m, n).mean(axis=1)
    row0 = int(np.searchsorted(_seconds(series["minute_utc"]), rec.time_s[skip]))
    for column, raw, corr in (("angle_deg", raw_angle, 0.99), ("enmo_g", raw_enmo, 0.95)):
        drawn = series[column].to_numpy()[row0:row0 + m]
        ok = np.isfinite(drawn)
        assert ok.mean() > 0.5, column
        assert np.corrcoef(drawn[ok], raw[ok])[0, 1] > corr, column
    assert series["angle_deg"].dropna().between(-90.0, 90.0).all()


@pytest.mark.xfail(strict=True, reason=(
    "SKDH 0.17.18 counts a daytime wear bout as sleep too (get_day_index_intersection keeps "
    "a bout that lies wholly inside an exclusion window), so ActivityLevelClassification "
    "classifies its epochs twice, as wake and as sleep: its sleep_*_5s_epoch_min include "
    "them, and the series, which adds up to them, holds up to 120 s in such minutes"))
def test_no_minute_holds_more_than_60_s_of_epochs(shared: dict[str, Any]) -> None:
    series = shared["a"]["minute_series"]
    total = series[[f"{level}_s" for level in LEVELS]].sum(axis=1)
    assert (total <= 60.0 + 1e-9).all()


def test_a_solution_object_keeps_nothing_of_the_previous_file(shared: dict[str, Any]) -> None:
    fresh = _run(_solution(), shared["rec_b"]).tables["minute_series"]
    after_a = shared["b"]["minute_series"]
    pd.testing.assert_frame_equal(after_a, fresh, check_exact=True)
    assert after_a["sleep_window"].sum() > 0 and after_a["moderate_s"].sum() > 0


def test_a_diary_night_is_drawn_as_the_diary_says(shared: dict[str, Any]) -> None:
    """A diary night replaces SKDH's window: drawn from bed to wake time to the minute, its
    minutes asleep SKDH's as always; SKDH computes no arm angle for that day window."""
    diary = json.dumps([["2026-03-02T22:00", "2026-03-03T06:30"]])  # EST: UTC-5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = _solution().run(shared["rec_b"], {"time_zone": ZONE,
                                                   "sleep_diary": diary}).tables
    series, sleep = tables["minute_series"], tables["sleep"]
    (night,) = sleep[sleep["tso_source"] == "diary"].itertuples()
    (i0, i1), *_ = _runs(series["sleep_window"].to_numpy())
    assert series["minute_utc"].iloc[i0] == "2026-03-03T03:00:00.000Z"
    assert series["minute_utc"].iloc[i1 - 1] == "2026-03-03T11:29:00.000Z"
    assert series["asleep"].iloc[i0:i1].sum() == night.total_sleep_time_min
    utc = series["minute_utc"]
    diary_day = (utc >= "2026-03-02T17:00") & (utc < "2026-03-03T17:00")
    assert series["angle_deg"][diary_day].isna().all()
    assert series["angle_deg"][~diary_day].notna().any()


def test_skipped_steps_leave_their_columns_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short recording without temperature (DETACH replaced) whose Sleep and activity
    steps fail: skipped with a flag, the series still drawn, their columns empty."""
    from wearflow.solutions import skdh_steps

    def fails(self: Any, **kwargs: Any) -> Any:
        raise RuntimeError("not enough data")

    monkeypatch.setattr(skdh_steps.DiarySleep, "predict", fails)
    monkeypatch.setattr(skdh_steps.ActivityLevels, "predict", fails)
    generated, _ = generate_recording(seed=5, days=0.25, sampling_rate_hz=RATE_HZ)
    rec = dataclasses.replace(generated, temperature_c=None)
    result = _run(_solution(), rec)
    assert any(f.startswith("substituted:DETACH") for f in result.flags)
    skipped = {f.split(":")[1] for f in result.flags if f.startswith("skipped:")}
    assert skipped == {"Sleep", "ActivityLevelClassification"}
    series = result.tables["minute_series"]
    assert len(series) == 6 * 60
    assert series["wear_fraction"].notna().all() and series["wear_fraction"].sum() > 0
    assert (series["sleep_window"] == 0).all() and (series["asleep"] == 0).all()
    empty = ["angle_deg", "enmo_g", *(f"{level}_s" for level in LEVELS)]
    assert series[empty].isna().all().all()


def test_without_a_wear_step_the_wear_fraction_is_empty(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    from skdh.preprocessing import DETACH

    def fails(self: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no wear today")

    monkeypatch.setattr(DETACH, "predict", fails)
    rec, _ = generate_recording(seed=6, days=0.1, sampling_rate_hz=RATE_HZ)
    result = _run(_solution(), rec)
    assert any(f.startswith("skipped:DETACH") for f in result.flags)
    assert result.tables["minute_series"]["wear_fraction"].isna().all()


def test_isolated_environment_path_gives_the_same_table(shared: dict[str, Any]) -> None:
    """skdh_core.py as a script, the step module registered from its file, tables back
    through parquet: here with wearflow's own Python, so the same SKDH."""
    env = SolutionEnvironment(python=Path(sys.executable), lock_sha256="0" * 64,
                              packages={"scikit-digital-health": "0.17.18"})
    isolated = dataclasses.replace(_solution(), environment=env)
    tables = _run(isolated, shared["rec_b"]).tables
    pd.testing.assert_frame_equal(tables["minute_series"], shared["b"]["minute_series"],
                                  check_exact=True)


def test_a_real_wrist_recording(real_dir: Path) -> None:
    """Three hours of a UK-Biobank-style wrist .cwa with a 4-minute gap."""
    path = real_dir / "cwa/stepcount_tiny-sample.cwa.gz"
    rec = read_recording(path.read_bytes(), str(path))
    series = _run(_solution(), rec, "UTC").tables["minute_series"]
    minutes = int(np.floor(rec.time_s[-1] / 60.0) - np.floor(rec.time_s[0] / 60.0)) + 1
    assert 175 <= minutes <= 185 and len(series) == minutes
    assert series["minute_utc"].iloc[0] == _iso(np.floor(rec.time_s[:1] / 60.0) * 60.0)[0]
    assert series["wear_fraction"].between(0.0, 1.0).all()
    assert series["wear_fraction"].iloc[1:-1].sum() > 0.0
