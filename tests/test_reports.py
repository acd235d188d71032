"""Reports: participant, study and run pages of a demo study, looked at in headless Chromium.

What a person sees is asserted on the rendered page (elements, text, pixels); the numbers
of a page are read back from its data block and compared with the stored tables.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from wearflow.cli import app
from wearflow.config import load_study
from wearflow.demo import write_demo_study
from wearflow.reports import timeline
from wearflow.reports.participant import ParticipantResult, WristResult, render_participant
from wearflow.results import read_tables
from wearflow.services.reports import build_reports
from wearflow.storage import Store

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
runner = CliRunner()
CORRUPT = "P003_V1_L.cwa"
TOLERANCE_MIN = 5


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo study, smaller (P001 with visits V1 and V2, 25 Hz, 1.5 days), and a corrupt
    file, run by `wearflow run` (the demo's study file writes the reports after the run)."""
    root = tmp_path_factory.mktemp("demo")
    write_demo_study(root, participants=1, days=1.5, seed=0, sampling_rate_hz=25.0)
    (root / "raw" / CORRUPT).write_bytes(b"MD" + bytes(range(256)) * 40)
    result = runner.invoke(app, ["run", str(root), "--workers", "2"])
    assert result.exit_code == 1, result.output  # the corrupt file failed, the rest done
    assert "study report: " in result.output
    return root


def reports_of(root: Path, kind: str) -> list[Path]:
    return sorted((root / "results" / "reports" / kind).rglob("report.html"))


def data_block(page: Path | str) -> dict[str, Any]:
    html = page.read_text() if isinstance(page, Path) else page
    found = re.search(r'<script type="application/json" id="wearflow-data">(.*?)</script>',
                      html, re.S)
    assert found is not None
    value: dict[str, Any] = json.loads(found.group(1))
    return value


@pytest.fixture()
def page(browser: Any) -> Iterator[tuple[Any, list[str]]]:
    """A browser page and every URL it requested."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    requests: list[str] = []
    tab.on("request", lambda r: requests.append(r.url))
    yield tab, requests
    context.close()


def open_report(tab: Any, requests: list[str], path: Path) -> None:
    tab.goto(path.as_uri())
    assert requests == [path.as_uri()], "a report must not request anything"


def not_blank(png: bytes) -> tuple[int, float]:
    """Distinct colours and the share of pixels that are not white in a screenshot."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    colours = len(np.unique(pixels, axis=0))
    return colours, float(np.mean(np.any(pixels < 245, axis=1)))


def x_of(box: dict[str, float], minute: float) -> float:
    """Pixel x of a minute of the day in a day picture drawn at ``box``."""
    scale = box["width"] / timeline.WIDTH
    return box["x"] + scale * (timeline.LEFT + timeline.PLOT_W * minute / 1440)


def test_participant_report_shows_every_day_the_exclusions_and_the_planted_night(
        demo: Path, page: tuple[Any, list[str]]) -> None:
    tab, requests = page
    report = next(p for p in reports_of(demo, "participants") if "/P001/V1/" in p.as_posix())
    open_report(tab, requests, report)
    data = data_block(report)
    # one timeline row per local day from the first sample to the last (08:00 to 20:00 the
    # next day: two days), one lane per wrist
    rows = tab.locator("section.day")
    assert rows.count() == 2 == len(data["timeline"]["days"])
    assert tab.locator("section.day").first.locator("text=left").count() == 1
    # the excluded day's reason, as the stored QC table gives it, on the page
    qc = pd.read_csv(next((demo / "results" / "processed").rglob("P001/V1/*/qc_days.csv")))
    excluded = qc[qc["valid_day"] == 0]
    assert len(excluded) >= 1
    for _, day in excluded.iterrows():
        shown = tab.locator(f"section.day[data-date='{day['date']}'] .facts").inner_text()
        assert f"excluded: {day['exclusion_reason']}" in shown
        assert str(day["exclusion_reason"]) in tab.locator("ul.excluded-days").inner_text()
    # the planted night (the generator's truth) lies inside the drawn sleep window, in pixels
    truth = json.loads((demo / "truth" / "P001_V1_L.truth.json").read_text())
    onset_s, wake_s = truth["sleep"][0]
    onset = pd.Timestamp(onset_s, unit="s", tz="UTC")
    wake = pd.Timestamp(wake_s, unit="s", tz="UTC")
    evening = tab.locator(f"section.day[data-date='{onset.date()}']")
    morning = tab.locator(f"section.day[data-date='{wake.date()}']")
    ev_box = evening.locator("svg").bounding_box()
    mo_box = morning.locator("svg").bounding_box()
    for side_lane in range(2):  # each wrist's own window
        ev = evening.locator("rect.sleep-window").nth(side_lane).bounding_box()
        mo = morning.locator("rect.sleep-window").nth(side_lane).bounding_box()
        # within TOLERANCE_MIN: SKDH's window starts and ends a few seconds from the planted
        # one, and a minute is drawn in the window when most of it is
        onset_x = x_of(ev_box, onset.hour * 60 + onset.minute + TOLERANCE_MIN)
        wake_x = x_of(mo_box, wake.hour * 60 + wake.minute - TOLERANCE_MIN)
        assert ev["x"] <= onset_x and ev["x"] + ev["width"] >= x_of(ev_box, 1439)
        assert mo["x"] <= x_of(mo_box, 1) and mo["x"] + mo["width"] >= wake_x
    # the plot area is drawn, not blank
    colours, inked = not_blank(evening.locator("svg").screenshot())
    assert colours > 20 and inked > 0.3
    assert tab.locator("h2", has_text="Files and their quality").count() == 1
    assert "calibration error" in tab.inner_text("body")


def test_study_report_shows_completeness_problems_and_links(
        demo: Path, page: tuple[Any, list[str]]) -> None:
    tab, requests = page
    [report] = reports_of(demo, "study")
    open_report(tab, requests, report)
    data = data_block(report)
    assert [p["visit"] for p in data["participants"]] == ["V1", "V2"]
    # heat map: one row of squares per participant-visit, one square per day
    assert tab.locator("svg.heat-map rect").count() == sum(
        p["days"] for p in data["participants"])
    assert tab.locator("svg.heat-map rect.valid").count() == sum(
        p["valid_days"] for p in data["participants"])
    # files by state, and the corrupt file's problem with its message
    assert data["files_by_state"]["failed"] == 1 and data["files_by_state"]["done"] == 4
    problems = tab.locator("table.problems").inner_text()
    assert "DATA_ISSUE" in problems and CORRUPT in problems
    # every biomarker plotted; the links open the participant reports
    assert tab.locator("svg.distribution").count() == 3
    links = tab.locator("table.participants a")
    assert links.count() == 2
    links.first.click()
    assert tab.locator("h1").inner_text() == "Participant P001, visit V1"


def test_run_report_shows_each_task_its_costs_and_the_failure(
        demo: Path, page: tuple[Any, list[str]]) -> None:
    tab, requests = page
    [report] = reports_of(demo, "runs")
    open_report(tab, requests, report)
    data = data_block(report)
    attempts = data["attempts"]
    assert len(attempts) == 5  # four demo files and the corrupt one
    assert tab.locator("svg.run-timeline rect.task").count() == 5
    assert tab.locator("svg.run-timeline rect.failed").count() == 1
    assert all(a["cpu_s"] > 0 and a["peak_rss_bytes"] > 0 for a in attempts
               if a["state"] == "done")
    failures = tab.locator("table.problems").inner_text()
    assert CORRUPT in failures and "DATA_ISSUE" in failures
    stages = tab.locator("table.stages").inner_text()
    # the demo's builtin:wrist-stream reads its files in passes: their bytes are verified
    # (hashed) where a whole-file solution fetches them
    for stage in ("verify", "decode", "solution", "write"):
        assert stage in stages
    assert "tasks done" in tab.inner_text("div.tiles")
    colours, inked = not_blank(tab.locator("svg.run-timeline").screenshot())
    assert colours > 5 and inked > 0.05


def test_reports_are_deterministic_and_their_numbers_are_the_stored_ones(demo: Path) -> None:
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in (demo / "results" / "reports").rglob("*") if p.is_file()}
    again = build_reports(load_study(demo))
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in (demo / "results" / "reports").rglob("*") if p.is_file()}
    assert after == before  # the same results: the same pages, in the same folders
    assert {b.kind for b in again.built} == {"participant", "study", "run"}
    assert again.problems == ()
    out = Store(str(demo / "results"))
    for page_path in reports_of(demo, "participants"):
        data = data_block(page_path)
        tables = read_tables(out, data["result_dir"])
        qc = tables["qc_days"].set_index("date")
        act = tables["activity_level_classification"].set_index("date")
        for day in data["days"]:
            assert day["wear_hours"] == qc.loc[day["date"], "wear_hours"]
            assert day["valid_day"] == qc.loc[day["date"], "valid_day"]
            if "wake_mvpa_5s_epoch_min" in day:
                assert day["wake_mvpa_5s_epoch_min"] == pytest.approx(
                    act.loc[day["date"], "wake_mvpa_5s_epoch_min"], abs=0, rel=1e-12)
        sleep = tables["sleep"].set_index("date")
        for night in data["nights"]:
            stored = sleep.loc[night["date"], "total_sleep_time_min"]
            assert night["total_sleep_time_min"] == (None if pd.isna(stored) else stored)
        assert len(data["days"]) == len(qc)
        provenance = json.loads((page_path.parent / "provenance.json").read_text())
        assert data["result_dir"] in [s["path"] for s in provenance["sources"]]
        assert provenance["outputs"][0]["sha256"] == hashlib.sha256(
            page_path.read_bytes()).hexdigest()


def fourteen_days() -> ParticipantResult:
    """A 14-day single-wrist result built by hand: the report draws every day."""
    start = pd.Timestamp("2026-05-04T00:00:00", tz="Europe/Berlin")  # local midnight
    local = pd.date_range(start, periods=14 * 1440, freq="min")
    minutes = local.tz_convert("UTC")
    n = minutes.size
    hour = (local.hour + local.minute / 60).to_numpy()
    night = (hour >= 23) | (hour < 7)
    walk = (hour >= 12) & (hour < 12.5)
    series = pd.DataFrame({
        "minute_utc": minutes.strftime("%Y-%m-%dT%H:%M:00.000Z"),
        # not worn on the afternoon of the 10th; the 12th without a wear classification
        "wear_fraction": np.where(local.day == 12, np.nan,
                                  np.where((local.day == 10) & (hour > 8), 0.0, 1.0)),
        "sleep_window": night.astype("int64"), "asleep": night.astype("int64"),
        "angle_deg": np.where(night, -10.0, 40.0), "enmo_g": np.where(walk, 0.3, 0.02),
        "sedentary_s": np.where(walk, 0.0, 60.0), "light_s": np.zeros(n),
        "moderate_s": np.where(walk, 60.0, 0.0), "vigorous_s": np.zeros(n)})
    days = sorted({d.date().isoformat() for d in local})
    qc = pd.DataFrame({"date": days, "wear_hours": [15.0] * len(days),
                       "wear_hours_left": [15.0] * len(days),
                       "wear_hours_right": [np.nan] * len(days),
                       "valid_day": [0] + [1] * (len(days) - 2) + [0],
                       "exclusion_reason": ["worn 15 h < 16 h"] + [""] * (len(days) - 2)
                       + ["worn 15 h < 16 h"]})
    wrist = WristResult(side="left", file_name="P9_L.cwa", result_dir="x", qc={},
                        tables={timeline.MINUTE_TABLE: series})
    return ParticipantResult(study="S", solution="wrist", solution_version="v",
                             participant="P9", visit="", time_zone="Europe/Berlin",
                             result_dir="r", tables={"qc_days": qc}, wrists=(wrist,))


def test_a_fourteen_day_recording_shows_fourteen_rows(
        tmp_path: Path, page: tuple[Any, list[str]]) -> None:
    tab, requests = page
    html = render_participant(fourteen_days())
    assert render_participant(fourteen_days()) == html  # deterministic
    path = tmp_path / "report.html"
    path.write_text(html)
    open_report(tab, requests, path)
    assert tab.locator("section.day").count() == 14
    assert tab.locator("section.day").nth(13).get_attribute("data-date") == "2026-05-17"
    # the non-wear afternoon of the 10th is drawn, and only there
    assert tab.locator("section.day[data-date='2026-05-10'] rect.non-wear").count() == 1
    assert tab.locator("rect.non-wear").count() == 1
    # a day without a wear classification is drawn as unknown, not as not worn
    assert tab.locator("section.day[data-date='2026-05-12'] rect.wear-unknown").count() == 1
    assert tab.locator("rect.wear-unknown").count() == 1
    assert tab.locator("text=excluded: worn 15 h < 16 h").count() == 2
    # one wrist recorded: said in words, never "R -"
    facts = tab.locator("section.day[data-date='2026-05-11'] .facts").inner_text()
    assert "worn 15.0 h (left wrist only)" in facts and "R -" not in facts


def test_report_command(demo: Path) -> None:
    result = runner.invoke(app, ["report", str(demo), "--participant", "P001"],
                           terminal_width=80)
    assert result.exit_code == 0, result.output
    assert result.output.count("participant report P001/") == 2
    runs = data_block(reports_of(demo, "runs")[0])["run"]["run_id"]
    result = runner.invoke(app, ["report", str(demo), "--run", runs[:8], "--json"])
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)
    [built] = reports["reports"]
    assert built["kind"] == "run" and built["subject"] == runs and reports["problems"] == []
    result = runner.invoke(app, ["report", str(demo), "--participant", "P404"])
    assert result.exit_code == 2
    assert "P404" in result.output and "no current result" in result.output


def test_an_unreadable_result_is_named_and_the_other_reports_are_written(
        demo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(demo, copy)
    shutil.rmtree(copy / "results" / "reports")
    [broken] = list((copy / "results" / "processed").rglob("P001/V2/*/qc_days.parquet"))
    broken.chmod(0o644)
    broken.write_bytes(b"not parquet")
    result = runner.invoke(app, ["report", str(copy)])
    assert result.exit_code == 1
    assert "no report for P001/V2:" in result.stderr
    assert broken.parent.relative_to(copy / "results").as_posix() in result.stderr
    assert len(reports_of(copy, "participants")) == 1  # V1's
    [study_page] = reports_of(copy, "study")
    assert data_block(study_page)["unreported"][0]["subject"] == "P001/V2"
    assert "P001/V2" in study_page.read_text()
    assert len(reports_of(copy, "runs")) == 1
