"""Analysis-ready results: ``wearflow export`` and ``wearflow.load_results``.

On the demo study (two visits for P001 and P002; fewer, shorter and slower-sampled
recordings than ``wearflow demo`` writes, to keep the suite fast), checked against the
participant results they are built from, read back with DuckDB, and on bad input.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from study_helpers import write_csv
from wearflow import load_results, load_study, run_study, study_status
from wearflow.aggregate import combine_wrists
from wearflow.analysis import (
    DAY,
    DICTIONARY,
    NIGHT,
    TABLES,
    VISIT,
    build_tables,
    data_dictionary,
)
from wearflow.cli import app
from wearflow.demo import write_demo_study
from wearflow.errors import ConfigError, OutputExistsError
from wearflow.executors import InlineExecutor, LocalExecutor
from wearflow.results import read_tables
from wearflow.services import manual
from wearflow.services.export import export_results
from wearflow.state import State
from wearflow.storage import Store

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
runner = CliRunner()
EXPORTED = (DAY, NIGHT, VISIT)


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo study, smaller: P001 and P002 with visits V1 and V2, P003 with V1 only."""
    root = tmp_path_factory.mktemp("demo")
    study_file = write_demo_study(root, participants=3, days=1.5, seed=0,
                                  sampling_rate_hz=25.0)
    assert run_study(load_study(study_file), executor=LocalExecutor(2)).exit_code == 0
    return root


@pytest.fixture(scope="module")
def exported(demo: Path) -> Path:
    """The demo exported as Parquet (the default folder under the output)."""
    result = runner.invoke(app, ["export", str(demo), "--format", "parquet", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["written"] and report["participant_visits"] == 5
    return Path(report["location"].removeprefix("file://"))


def _current_results(demo: Path) -> list[tuple[str, str, str]]:
    """(participant, visit, result folder) of every participant result the state knows."""
    with State(load_study(demo).state_url) as state:
        return [(r.participant, r.visit, r.result_dir)
                for r in state.results.latest_participants()]


# --------------------------------------------------------------------------- the demo


def test_demo_export_has_a_row_per_day_night_and_participant_visit(demo: Path,
                                                                   exported: Path) -> None:
    tables = {name: pd.read_parquet(exported / f"{name}.parquet") for name in EXPORTED}
    results = _current_results(demo)
    visits = study_status(load_study(demo))["participant_visits"]
    assert visits == {"total": 5, "processed": 5}
    assert len(tables[VISIT]) == visits["total"] == len(results)
    days = nights = 0
    for _participant, _visit, folder in results:
        own = read_tables(Store(str(demo / "results")), folder)
        days += len(own["qc_days"])
        nights += len(own["sleep"])
    assert len(tables[DAY]) == days == tables[VISIT]["n_days"].sum()
    assert len(tables[NIGHT]) == nights == tables[VISIT]["n_nights"].sum()
    assert sorted(zip(tables[VISIT]["participant"], tables[VISIT]["visit"], strict=True)) == [
        ("P001", "V1"), ("P001", "V2"), ("P002", "V1"), ("P002", "V2"), ("P003", "V1")]
    for table in tables.values():
        assert set(table["solution"]) == {"wrist"}
        assert table["solution_version"].str.startswith("builtin:wrist-stream@").all()


def test_the_demo_summary_shows_the_visit(demo: Path) -> None:
    from rich.console import Console

    from wearflow.demo import print_summary

    study = load_study(demo)
    report = run_study(study, executor=InlineExecutor())
    assert report.executed == 0 and report.summary_dirs
    console = Console(record=True, width=200)
    print_summary(console, study, report)
    text = console.export_text()
    assert "visit" in text
    rows = [line.split("│")[1:4] for line in text.splitlines() if line.count("│") > 4]
    assert sorted({(p.strip(), v.strip()) for p, v, _ in rows}) == [
        ("P001", "V1"), ("P001", "V2"), ("P002", "V1"), ("P002", "V2"), ("P003", "V1")]
    assert f"wearflow export {demo}" in text


def test_values_are_the_participant_results_values(demo: Path, exported: Path) -> None:
    day = pd.read_parquet(exported / f"{DAY}.parquet")
    night = pd.read_parquet(exported / f"{NIGHT}.parquet")
    for participant, visit, folder in _current_results(demo):
        own = read_tables(Store(str(demo / "results")), folder)
        rows = day[(day["participant"] == participant) & (day["visit"] == visit)]
        qc = own["qc_days"].sort_values("date").reset_index(drop=True)
        alc = own["activity_level_classification"].sort_values("date").reset_index(drop=True)
        assert list(rows["date"]) == list(qc["date"]) == list(alc["date"])
        np.testing.assert_array_equal(rows["wear_hours"], qc["wear_hours"])
        np.testing.assert_array_equal(rows["valid_day"], qc["valid_day"].astype("int64"))
        assert list(rows["exclusion_reason"].fillna("")) == list(
            qc["exclusion_reason"].fillna(""))
        for col in ("wake_sed_5s_epoch_min", "wake_light_5s_epoch_min",
                    "wake_mvpa_5s_epoch_min"):
            np.testing.assert_array_equal(rows[col], alc[col])
        assert rows["wake_mvpa_5s_epoch_min"].notna().any()
        sleep = own["sleep"].sort_values("date").reset_index(drop=True)
        nights = night[(night["participant"] == participant) & (night["visit"] == visit)]
        np.testing.assert_array_equal(nights["total_sleep_time_min"],
                                      sleep["total_sleep_time_min"])
        start = pd.to_datetime(sleep["tso_start_timestamp"], unit="s", utc=True).dt.round("s")
        assert list(nights["tso_start_local"].fillna("")) == [
            "" if pd.isna(t) else t.isoformat() for t in start]
        # a window without a sleep period is listed, not valid, with the hours worn
        assert list(nights["valid_night"]) == list(sleep["tso_start_timestamp"].notna())
        assert nights.loc[nights["valid_night"] == 0, "exclusion_reason"].str.startswith(
            "no sleep period found (worn ").all()
    visit = pd.read_parquet(exported / f"{VISIT}.parquet")
    valid = day[day["valid_day"] == 1].groupby(["participant", "visit"])["wear_hours"].mean()
    got = visit.set_index(["participant", "visit"])["valid_days_mean_wear_hours"]
    pd.testing.assert_series_equal(got.sort_index(), valid.sort_index(), check_names=False)


def test_every_column_is_in_the_dictionary_and_the_other_way_round(exported: Path) -> None:
    dictionary = pd.read_parquet(exported / f"{DICTIONARY}.parquet")
    pd.testing.assert_frame_equal(dictionary, data_dictionary())
    assert set(dictionary["table"]) == set(EXPORTED)
    for name in EXPORTED:
        table = pd.read_parquet(exported / f"{name}.parquet")
        entries = dictionary[dictionary["table"] == name]
        assert list(table.columns) == list(entries["column"]), name
        for column, dtype in zip(entries["column"], entries["dtype"], strict=True):
            assert str(table[column].dtype) in (dtype, "object" if dtype == "string" else ""), (
                name, column)
    assert (dictionary["definition"].str.len() > 10).all()
    assert (dictionary["source_table"] != "").all() and (dictionary["source_step"] != "").all()
    # numbers carry their unit, in the dictionary and (minutes, hours) in the name
    numbers = dictionary[dictionary["dtype"] == "float64"]
    assert (numbers["unit"] != "").all()
    assert (numbers.loc[numbers["column"].str.endswith("_min"), "unit"] == "min").all()
    assert (numbers.loc[numbers["column"].str.endswith("_hours"), "unit"] == "h").all()
    # the CSV export has the same dictionary, and its tables the same columns
    csv = export_results(load_study(exported.parents[2]), "csv")
    folder = Path(csv.location.removeprefix("file://"))
    for name in EXPORTED:
        assert list(pd.read_csv(folder / f"{name}.csv").columns) == [
            c.name for c in TABLES[name]]


def test_duckdb_reads_the_parquet_export_like_pandas(exported: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    for name in EXPORTED:
        path = exported / f"{name}.parquet"
        ((count,),) = duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall()
        assert count == len(pd.read_parquet(path))
    day = pd.read_parquet(exported / f"{DAY}.parquet")
    rows = duckdb.sql(
        "select participant, visit, count(*) as days, sum(valid_day) as valid_days, "
        "avg(wear_hours) filter (where valid_day = 1) as wear_h "
        f"from read_parquet('{exported / DAY}.parquet') "
        "group by participant, visit order by participant, visit").fetchall()
    expected = day.groupby(["participant", "visit"]).agg(
        days=("date", "size"), valid_days=("valid_day", "sum"))
    assert [(p, v, d, s) for p, v, d, s, _ in rows] == [
        (p, v, int(r.days), int(r.valid_days)) for (p, v), r in expected.iterrows()]
    visit = pd.read_parquet(exported / f"{VISIT}.parquet")
    np.testing.assert_allclose([w for *_, w in rows], visit["valid_days_mean_wear_hours"])
    # the same values, column for column
    night = duckdb.sql(f"select * from read_parquet('{exported / NIGHT}.parquet')").df()
    pd.testing.assert_frame_equal(night, pd.read_parquet(exported / f"{NIGHT}.parquet"),
                                  check_dtype=False)


def test_load_results_gives_the_exported_tables_and_writes_nothing(demo: Path,
                                                                   exported: Path) -> None:
    outputs = {k: v for k, v in snapshot(demo / "results").items() if "wearflow.db" not in k}
    tables = load_results(load_study(demo))
    assert sorted(tables) == sorted(EXPORTED)
    for name in EXPORTED:
        pd.testing.assert_frame_equal(tables[name],
                                      pd.read_parquet(exported / f"{name}.parquet"))
    assert load_results(load_study(demo), solution="wrist")[DAY].equals(tables[DAY])
    assert {k: v for k, v in snapshot(demo / "results").items()
            if "wearflow.db" not in k} == outputs
    with pytest.raises(ConfigError, match="no solution named 'gait'"):
        load_results(load_study(demo), solution="gait")


def test_provenance_lists_the_participant_result_folders(demo: Path, exported: Path) -> None:
    prov = json.loads((exported / "provenance.json").read_text())
    assert prov["kind"] == "export" and prov["format"] == "parquet"
    assert sorted(s["result_dir"] for s in prov["sources"]) == sorted(
        folder for *_, folder in _current_results(demo))
    for source in prov["sources"]:
        folder = demo / "results" / source["result_dir"]
        assert hashlib.sha256((folder / "provenance.json").read_bytes()).hexdigest() == (
            source["provenance_sha256"])
    for out in prov["outputs"]:
        data = (demo / "results" / out["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == out["sha256"]
    assert sorted(Path(o["path"]).name for o in prov["outputs"]) == sorted(
        f"{name}.parquet" for name in (*EXPORTED, DICTIONARY))


def test_an_export_run_twice_is_the_same_folder_with_the_same_bytes(demo: Path,
                                                                    exported: Path) -> None:
    before = snapshot(exported)
    result = runner.invoke(app, ["export", str(demo), "--format", "parquet", "--json"])
    assert result.exit_code == 0, result.output
    assert Path(json.loads(result.stdout)["location"].removeprefix("file://")) == exported
    assert snapshot(exported) == before
    assert exported.parent.name == "export" and len(exported.name) == 16


def test_export_to_a_folder_never_replaces_a_different_file(demo: Path, tmp_path: Path) -> None:
    target = tmp_path / "for-the-statistician"
    result = runner.invoke(app, ["export", str(demo), "--to", str(target)])
    assert result.exit_code == 0, result.output
    assert "5 participant-visits exported" in result.stdout
    names = sorted(p.name for p in target.iterdir())
    assert names == sorted([*(f"{n}.csv" for n in (*EXPORTED, DICTIONARY)), "provenance.json"])
    before = snapshot(target)
    assert runner.invoke(app, ["export", str(demo), "--to", str(target)]).exit_code == 0
    assert snapshot(target) == before  # the same export again: nothing changes
    (target / f"{VISIT}.csv").write_text("edited by hand\n")
    edited = snapshot(target)
    result = runner.invoke(app, ["export", str(demo), "--to", str(target)])
    assert result.exit_code == 2
    assert "output exists with different content" in result.stderr
    assert f"{VISIT}.csv" in result.stderr
    assert snapshot(target) == edited
    # another export (Parquet) into a folder holding one: refused before writing anything
    result = runner.invoke(app, ["export", str(demo), "--to", str(target), "--format",
                                 "parquet"])
    assert result.exit_code == 2 and "another export" in result.stderr
    assert snapshot(target) == edited


def test_export_to_a_bucket(demo: Path, s3_endpoint: str) -> None:
    import boto3

    bucket = f"export-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    study = load_study(demo).model_copy(update={"storage_options": {
        "endpoint_url": s3_endpoint}})
    report = export_results(study, "parquet", to=f"s3://{bucket}/exports/2026-12")
    assert report.location == f"s3://{bucket}/exports/2026-12"
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(f"exports/2026-12/{f.path}" for f in report.files)
    again = export_results(study, "parquet", to=f"s3://{bucket}/exports/2026-12")
    assert again.files == report.files
    client.put_object(Bucket=bucket, Key=f"exports/2026-12/{DAY}.parquet", Body=b"other")
    with pytest.raises(OutputExistsError, match=f"{DAY}.parquet"):
        export_results(study, "parquet", to=f"s3://{bucket}/exports/2026-12")


def test_a_stale_result_is_left_out_and_said_so(demo: Path) -> None:
    study = load_study(demo)
    manual.exclude(study, "P003_V1_R.cwa", "test: the right wrist is set aside")
    try:
        result = runner.invoke(app, ["export", str(demo), "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["participant_visits"] == 4
        (left_out,) = report["left_out"]
        assert (left_out["participant"], left_out["visit"]) == ("P003", "V1")
        assert "run `wearflow run`" in left_out["reason"]
        tables = load_results(study)
        assert "P003" not in set(tables[VISIT]["participant"])
        assert "P003" not in set(tables[DAY]["participant"])
    finally:
        manual.exclude(study, "P003_V1_R.cwa", "test: back in", undo=True)
    assert len(load_results(study)[VISIT]) == 5


# --------------------------------------------------------------------------- bad input


def test_no_participant_result_yet_exports_nothing(tmp_path: Path) -> None:
    root = tmp_path / "s"
    (root / "raw").mkdir(parents=True)
    (root / "study.yaml").write_text(
        "study: WAITING\ninput: raw/\noutput: results/\nsingle_wrist_grace_h: 24\n"
        "files: {sensor: ['{participant}_{side}.csv']}\n"
        "solutions: [{name: wrist, pipeline: builtin:wrist}]\n")
    result = runner.invoke(app, ["export", str(root)])  # never run
    assert result.exit_code == 1, result.output
    assert "no current participant result yet, nothing exported" in result.stderr
    assert not (root / "results/export").exists()
    write_csv(root / "raw/P1_L.csv", seed=1)  # one wrist, waiting for the other
    assert run_study(load_study(root), executor=InlineExecutor()).done == 1
    before = snapshot(root / "results")
    result = runner.invoke(app, ["export", str(root), "--to", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["written"] is False
    assert not (tmp_path / "out").exists() and not (root / "results/export").exists()
    assert {k: v for k, v in snapshot(root / "results").items() if "wearflow.db" not in k} == {
        k: v for k, v in before.items() if "wearflow.db" not in k}
    assert all(len(t) == 0 for t in load_results(load_study(root)).values())


def test_an_unknown_format_is_refused_in_one_line(demo: Path) -> None:
    result = runner.invoke(app, ["export", str(demo), "--format", "xlsx"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error [PIPELINE_ISSUE] wearflow export: --format must be one of csv, parquet, "
        "got 'xlsx'"]
    result = runner.invoke(app, ["export", str(demo), "--solution", "gait"])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- pure tables


def _wrist(seed: int, dates: list[str]) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = len(dates)
    wear = rng.uniform(10, 24, n)
    return {
        "qc_days": pd.DataFrame({"date": dates, "wear_hours": wear,
                                 "valid_day": (wear >= 16).astype("int64"),
                                 "exclusion_reason": pd.array(
                                     [None if w >= 16 else "short" for w in wear],
                                     dtype="string")}),
        "activity_level_classification": pd.DataFrame({
            "date": dates, "n_wear_hours": wear, "wake_sed_5s_epoch_min": rng.uniform(0, 600, n),
            "wake_light_5s_epoch_min": rng.uniform(0, 200, n),
            "wake_mvpa_5s_epoch_min": rng.uniform(0, 90, n)}),
        "sleep": pd.DataFrame({
            "date": dates, "total_minutes": 1440.0, "wear_minutes": 1300.0,
            # 2026-07-01 22:30 UTC, then a night the sleep step found nothing in
            "tso_start_timestamp": [1782945000.0, np.nan][:n],
            "tso_duration_min": [480.0, np.nan][:n], "total_sleep_time_min": [450.0, np.nan][:n],
            "sleep_onset_latency_min": 5.0, "wake_after_sleep_onset_min": 25.0,
            "percent_time_asleep_pct": [93.75, np.nan][:n], "number_of_wake_bouts": 3.0}),
    }


def test_one_wrist_in_a_summer_time_zone() -> None:
    left = _wrist(1, ["2026-07-01", "2026-07-02"])
    context = {"solution": "wrist", "solution_version": "v", "participant": "P9",
               "visit": "", "time_zone": "Europe/Berlin", "result_flags": "single_wrist:left"}
    tables = build_tables([(context, combine_wrists(left, None))])
    day, night, visit = tables[DAY], tables[NIGHT], tables[VISIT]
    assert list(day["combined_rule"]) == ["left_only"] * 2
    assert list(night["tso_start_local"].fillna("")) == ["2026-07-02T00:30:00+02:00", ""]
    assert night["tso_end_local"].iloc[0] == "2026-07-02T08:30:00+02:00"
    assert list(night["valid_night"]) == [1, 0]
    assert night["exclusion_reason"].iloc[1] == "no sleep period found (worn 21.7 h of 24.0 h)"
    assert visit["result_flags"].iloc[0] == "single_wrist:left"
    assert visit["visit"].iloc[0] == ""
    valid = day["valid_day"] == 1
    expected = day.loc[valid, "wake_mvpa_5s_epoch_min"].mean() if valid.any() else np.nan
    np.testing.assert_allclose(visit["valid_days_mean_wake_mvpa_5s_epoch_min"], [expected])
    assert visit["n_valid_nights"].iloc[0] == 1
    assert visit["valid_nights_mean_total_sleep_time_min"].iloc[0] == 450.0


def test_no_results_give_empty_tables_of_the_declared_types() -> None:
    tables = build_tables([])
    for name, columns in TABLES.items():
        assert list(tables[name].columns) == [c.name for c in columns]
        assert [str(tables[name][c.name].dtype) for c in columns] == [c.dtype for c in columns]
        assert tables[name].empty


def test_a_result_whose_sleep_table_is_empty_and_typed_as_text_exports() -> None:
    """A recording too short for a night: its sleep table has no rows, and read back
    from Parquet its columns are text. It exports (no night rows) instead of failing."""
    from wearflow.streaming.pipeline import SLEEP_COLUMNS

    sleep = pd.DataFrame({c: pd.Series([], dtype="string") for c in SLEEP_COLUMNS})
    activity = pd.DataFrame({"date": pd.Series(["2026-07-01"], dtype="string"),
                             "n_wear_hours": [3.5], "wake_mvpa_5s_epoch_min": [12.0]})
    context = {"solution": "wrist", "solution_version": "v", "participant": "P9",
               "visit": "", "time_zone": "UTC", "result_flags": ""}
    tables = build_tables([(context, {"sleep": sleep,
                                      "activity_level_classification": activity})])
    assert tables[NIGHT].empty and len(tables[DAY]) == 1
    assert tables[VISIT]["n_valid_nights"].iloc[0] == 0


def test_participant_visit_splits_valid_weekdays_and_weekend_days() -> None:
    # 2026-07-03 is a Friday, 07-04 Saturday, 07-05 Sunday, 07-06 Monday
    dates = ["2026-07-03", "2026-07-04", "2026-07-05", "2026-07-06"]
    tables = {"qc_days": pd.DataFrame({
        "date": dates, "wear_hours": [20.0, 22.0, 10.0, 18.0], "valid_day": [1, 1, 0, 1],
        "exclusion_reason": pd.array([None, None, "short", None], dtype="string")}),
        "activity_level_classification": pd.DataFrame({
            "date": dates, "n_wear_hours": [20.0, 22.0, 10.0, 18.0],
            "wake_sed_5s_epoch_min": 100.0, "wake_light_5s_epoch_min": 50.0,
            "wake_mvpa_5s_epoch_min": [30.0, 60.0, 90.0, 10.0]})}
    context = {"solution": "wrist", "solution_version": "v", "participant": "P1",
               "visit": "", "time_zone": "UTC", "result_flags": ""}
    visit = build_tables([(context, combine_wrists(tables, None))])[VISIT].iloc[0]
    assert (visit["n_valid_weekdays"], visit["n_valid_weekend_days"]) == (2, 1)
    assert visit["valid_weekdays_mean_wake_mvpa_5s_epoch_min"] == 20.0  # Fri 30, Mon 10
    assert visit["valid_weekend_days_mean_wake_mvpa_5s_epoch_min"] == 60.0  # Sat only
    assert visit["valid_weekend_days_mean_wear_hours"] == 22.0
