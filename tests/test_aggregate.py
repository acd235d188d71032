from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wearflow.aggregate import combine_wrists, study_summary


def day_table(dates: list[str], wear: list[float], weekday: str = "Mon") -> pd.DataFrame:
    return pd.DataFrame({
        "date": pd.array(dates, dtype="string"),
        "day_n": np.arange(1, len(dates) + 1),
        "n_wear_hours": wear,
        "weekday": pd.array([weekday] * len(dates), dtype="string"),
    })


def test_mean_when_dominant_hand_unknown_with_discordance() -> None:
    left = {"activity_level_classification": day_table(["2026-03-02", "2026-03-03"], [20, 22])}
    right = {"activity_level_classification": day_table(["2026-03-03", "2026-03-04"], [18, 23])}
    out = combine_wrists(left, right)["activity_level_classification"]
    assert list(out["date"]) == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert list(out["n_wear_hours"]) == [20.0, 20.0, 23.0]  # one wrist only -> that wrist
    np.testing.assert_array_equal(out["n_wear_hours_left"], [20, 22, np.nan])
    np.testing.assert_array_equal(out["n_wear_hours_discordance"], [np.nan, 4, np.nan])
    assert set(out["combined_rule"]) == {"mean"}
    assert "day_n" not in out.columns
    assert list(out["weekday"]) == ["Mon", "Mon", "Mon"]


@pytest.mark.parametrize(("dominant", "expected"), [("right", 20.0), ("left", 18.0)])
def test_non_dominant_wrist_is_preferred(dominant: str, expected: float) -> None:
    left = {"t": day_table(["2026-03-02"], [20])}
    right = {"t": day_table(["2026-03-02"], [18])}
    out = combine_wrists(left, right, dominant_hand=dominant)["t"]
    assert out["n_wear_hours"].iloc[0] == expected
    other = "left" if dominant == "right" else "right"
    assert out["combined_rule"].iloc[0] == f"non_dominant_{other}"


def test_single_wrist_and_bout_tables() -> None:
    bouts = pd.DataFrame({"start_utc": ["a"], "end_utc": ["b"], "duration_h": [1.0]})
    out = combine_wrists({"t": day_table(["2026-03-02"], [20]), "detach_wear": bouts}, None)
    assert set(out) == {"t"}  # bouts stay per wrist
    assert out["t"]["combined_rule"].iloc[0] == "left_only"
    assert out["t"]["n_wear_hours"].iloc[0] == 20.0


def test_study_summary_one_row_per_participant_and_date() -> None:
    alc = pd.DataFrame({"date": pd.array(["2026-03-02"], dtype="string"),
                        "n_wear_hours": [21.5], "wake_mvpa_5s_epoch_min": [42.0]})
    sleep = pd.DataFrame({"date": pd.array(["2026-03-02"], dtype="string"),
                          "total_sleep_time_min": [450.0]})
    summary = study_summary({("P2", ""): {"activity_level_classification": alc},
                             ("P1", ""): {"activity_level_classification": alc,
                                          "sleep": sleep}})
    assert list(summary.columns) == ["participant", "visit", "date", "wear_hours",
                                     "active_minutes", "sleep_minutes", "valid_day"]
    assert list(summary["participant"]) == ["P1", "P2"]
    assert list(summary["visit"]) == ["", ""]
    assert summary["sleep_minutes"].iloc[0] == 450.0
    assert np.isnan(summary["sleep_minutes"].iloc[1])


def test_study_summary_one_row_per_participant_visit_and_date() -> None:
    alc = pd.DataFrame({"date": pd.array(["2026-03-02"], dtype="string"),
                        "n_wear_hours": [21.5], "wake_mvpa_5s_epoch_min": [42.0]})
    summary = study_summary({("P1", "V2"): {"activity_level_classification": alc},
                             ("P1", "V1"): {"activity_level_classification": alc}})
    assert list(zip(summary["participant"], summary["visit"], strict=True)) == [
        ("P1", "V1"), ("P1", "V2")]


def test_day_valid_when_either_wrist_is_valid() -> None:
    def qc(valid: list[int]) -> dict[str, pd.DataFrame]:
        return {"qc_days": pd.DataFrame({
            "date": pd.array(["2026-03-02", "2026-03-03", "2026-03-04"], dtype="string"),
            "valid_day": valid})}

    out = combine_wrists(qc([1, 0, 0]), qc([0, 0, 1]))["qc_days"]
    assert list(out["valid_day"]) == [1.0, 0.0, 1.0]
