"""Metadata files, requirements, waiting tasks, mislabel checks, the issues queue, webhook."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from study_helpers import write_csv
from wearflow import load_study, notify, run_study, study_status
from wearflow.cli import app
from wearflow.demo.cwa_writer import write_cwa
from wearflow.demo.synthetic import generate_recording
from wearflow.executors import InlineExecutor
from wearflow.metadata import parse_metadata

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: META
input: raw/
output: results/
files:
  sensor: ["{{participant}}_{{side}}.csv", "{{participant}}_{{side}}.cwa"]
  metadata: ["metadata/*.csv", "metadata/*.xlsx"]
metadata:
  columns: {{"Subject ID": participant, "Height": height_cm}}
{extra}
solutions:
  - name: wrist
    pipeline: builtin:wrist
{requires}
"""


def make_study(root: Path, *, requires: str = "", extra: str = "") -> Path:
    (root / "raw/metadata").mkdir(parents=True)
    (root / "study.yaml").write_text(STUDY.format(requires=requires, extra=extra))
    return root


def issues(root: Path, tag: str | None = None) -> list[dict[str, str]]:
    return [i for i in study_status(load_study(root))["issues"] if tag in (None, i["tag"])]


# -- cleaning and validation ----------------------------------------------------------------


def test_canonical_columns_need_no_mapping_and_values_are_cleaned() -> None:
    csv = (b"participant,height_cm,weight_kg,sex,dominant_hand,time_zone,device_left\n"
           b" 1001.0 , 172,70.5, F ,R,Europe/Berlin,12345.0\n"
           b"1002,1.80 ,80,m,left,Mars/Base,777\n")
    values = {(v.participant, v.field): v for v in parse_metadata(csv, "m.csv", {})}
    assert values[("1001", "height_m")].value == "1.72"
    assert values[("1001", "sex")].value == "female"
    assert values[("1001", "dominant_hand")].value == "right"
    assert values[("1001", "device_left")].value == "12345"
    assert values[("1002", "height_m")].value is None  # the header says cm: 1.80 cm is wrong
    assert "0.018 is outside the plausible range" in (values[("1002", "height_m")].problem or "")
    assert values[("1002", "time_zone")].value is None
    assert "not an IANA" in (values[("1002", "time_zone")].problem or "")


def test_mapping_decimal_comma_and_implausible_values() -> None:
    csv = b"Subject ID;Height;weight_kg;age_years\nS-1;172,5;20;130\n"
    values = {v.field: v for v in parse_metadata(csv, "m.csv", {"Subject ID": "participant",
                                                                  "Height": "height_cm"})}
    assert values["height_m"].value == "1.725"
    assert values["weight_kg"].value == "20"
    assert values["age_years"].value is None
    assert "outside the plausible range" in (values["age_years"].problem or "")


def test_xlsx_is_read() -> None:
    buf = io.BytesIO()
    pd.DataFrame({"participant": ["P1"], "height_m": ["1.65"]}).to_excel(buf, index=False)
    (value,) = parse_metadata(buf.getvalue(), "m.xlsx", {})
    assert (value.participant, value.field, value.value) == ("P1", "height_m", "1.65")


# -- requirements and waiting ---------------------------------------------------------------


def test_waiting_for_height_then_released_by_metadata(tmp_path: Path) -> None:
    root = make_study(tmp_path, requires="    requires: [height_m]")
    write_csv(root / "raw/P1_L.csv", seed=1)
    write_csv(root / "raw/P1_R.csv", seed=1)
    write_csv(root / "raw/P2_L.csv", seed=2)
    write_csv(root / "raw/metadata/../P2_R.csv", seed=2)
    (root / "raw/metadata/sites.csv").write_text("Subject ID,Height\nP2,181\n")

    first = run_study(load_study(root), executor=InlineExecutor())
    assert first.executed == 2  # P2 has its height
    status = study_status(load_study(root))
    assert status["files"]["by_state"]["waiting"] == 2
    waiting = issues(root, "WAITING")
    assert {i["uri"].rsplit("/", 1)[-1] for i in waiting} == {"P1_L.csv", "P1_R.csv"}
    assert all(i["participant"] == "P1" and "height_m" in i["message"] for i in waiting)

    (root / "raw/metadata/bad.csv").write_text("Subject ID,Height\nP1,520\n")  # 5.2 m
    second = run_study(load_study(root), executor=InlineExecutor())
    assert second.executed == 0
    (bad,) = issues(root, "METADATA_ISSUE")
    assert bad["uri"].endswith("bad.csv") and "height_m" in bad["message"]
    assert bad["participant"] == "P1"
    assert len(issues(root, "WAITING")) == 2

    (root / "raw/metadata/fix.csv").write_text("Subject ID,Height\nP1,172\n")
    third = run_study(load_study(root), executor=InlineExecutor())
    assert third.executed == 2  # exactly the waiting tasks
    assert issues(root, "WAITING") == []
    shown = json.loads(CliRunner().invoke(app, ["metadata", str(root), "--json"]).stdout)
    assert shown["P1"]["height_m"]["value"] == "1.72"
    assert shown["P1"]["height_m"]["source_uri"].endswith("fix.csv")
    assert shown["P2"]["height_m"]["value"] == "1.81"
    assert study_status(load_study(root))["participants"] == {"total": 2, "processed": 2}


def test_wait_deadline_turns_into_metadata_issue(tmp_path: Path) -> None:
    root = make_study(tmp_path, requires="    requires: [height_m]",
                      extra="  wait_deadline_h: 0.0001")
    write_csv(root / "raw/P1_L.csv", seed=1, hours=0.2)
    run_study(load_study(root), executor=InlineExecutor())
    import time

    time.sleep(0.5)
    run_study(load_study(root), executor=InlineExecutor())
    (late,) = issues(root, "METADATA_ISSUE")
    assert "for more than" in late["message"] and "height_m" in late["message"]


def test_metadata_required_lists_unknown_participants(tmp_path: Path) -> None:
    root = make_study(tmp_path, extra="  required: true")
    write_csv(root / "raw/P1_L.csv", seed=1, hours=0.2)
    write_csv(root / "raw/P9_L.csv", seed=9, hours=0.2)
    (root / "raw/metadata/m.csv").write_text("Subject ID,Height\nP1,170\nP5,160\n")
    report = run_study(load_study(root), executor=InlineExecutor())
    assert report.executed == 1
    messages = [i["message"] for i in issues(root)]
    assert any("P9 is not in the metadata" in m for m in messages)
    assert any("P9 has sensor files but no metadata" in m for m in messages)
    assert any("P5 is in the metadata but has no sensor files" in m for m in messages)


# -- mislabel checks ------------------------------------------------------------------------


def write_device_file(path: Path, serial: int, seed: int) -> None:
    rec, _ = generate_recording(seed=seed, days=0.05, sampling_rate_hz=25.0)
    assert rec.temperature_c is not None
    write_cwa(path, rec.time_s, rec.accel_g, rec.temperature_c, rec.sampling_rate_hz,
              serial=serial)


def test_header_serial_contradicting_name_is_held_as_mislabeled(tmp_path: Path) -> None:
    root = make_study(tmp_path)
    (root / "raw/metadata/devices.csv").write_text(
        "participant,device_left,device_right\nP1,1001,1002\nP2,2001,2002\n")
    write_device_file(root / "raw/P1_L.cwa", 1001, seed=1)
    write_device_file(root / "raw/P1_R.cwa", 1001, seed=2)  # the left device, named right
    write_device_file(root / "raw/P2_L.cwa", 1002, seed=3)  # P1's right device, named P2
    report = run_study(load_study(root), executor=InlineExecutor())
    assert report.executed == 1
    held = {i["uri"].rsplit("/", 1)[-1]: i for i in issues(root, "DATA_ISSUE")}
    assert "left-wrist device of participant P1" in held["P1_R.cwa"]["message"]
    assert "participant P1" in held["P2_L.cwa"]["message"]
    listed = CliRunner().invoke(app, ["issues", str(root), "--tag", "DATA_ISSUE", "--json"])
    assert {i["uri"].rsplit("/", 1)[-1] for i in json.loads(listed.stdout)} == {
        "P1_R.cwa", "P2_L.cwa"}
    # the site corrects the assignment: the held file is released by itself
    (root / "raw/metadata/devices2.csv").write_text("participant,device_right\nP1,1001\n"
                                                    "P2,9999\n")
    (root / "raw/metadata/devices3.csv").write_text("participant,device_left\nP1,5555\n"
                                                    "P2,1002\n")
    (root / "raw/P1_L.cwa").unlink()
    again = run_study(load_study(root), executor=InlineExecutor())
    assert again.executed == 2
    assert issues(root, "DATA_ISSUE") == []


# -- issues queue: JSON lines and webhook -----------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, str]]] = []
    fail_first = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Receiver.fail_first > 0:
            _Receiver.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        _Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def receiver() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    _Receiver.fail_first = 1  # the first post fails: the next run's sender must retry
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def test_new_issue_posted_to_webhook_and_appended_to_jsonl(tmp_path: Path,
                                                            receiver: str) -> None:
    root = make_study(tmp_path, extra=f"webhook: {receiver}")
    (root / "raw/P1_L.csv").write_bytes(np.random.default_rng(1).bytes(300))
    run_study(load_study(root), executor=InlineExecutor())
    assert notify.flush(30) and _Receiver.received == []  # refused: still owed
    run_study(load_study(root), executor=InlineExecutor())  # the next run's sender retries
    assert notify.flush(30)
    (posted,) = _Receiver.received
    assert posted["tag"] == "DATA_ISSUE"
    assert posted["uri"].endswith("P1_L.csv")
    assert posted["study"] == "META"
    lines = (root / "results/issues.jsonl").read_text().splitlines()
    assert [json.loads(line)["uri"] for line in lines] == [posted["uri"]]
    run_study(load_study(root), executor=InlineExecutor())  # same issue: not posted again
    assert notify.flush(30)
    assert len(_Receiver.received) == 1


# -- time zones -----------------------------------------------------------------------------


def test_days_cut_in_participant_time_zone_across_dst(tmp_path: Path) -> None:
    root = make_study(tmp_path)
    (root / "raw/metadata/tz.csv").write_text("participant,time_zone\nP1,Europe/Berlin\n")
    rec, _ = generate_recording(seed=3, days=1.6, sampling_rate_hz=12.5,
                                start_utc=datetime(2026, 3, 28, 12, tzinfo=UTC),
                                time_zone="Europe/Berlin")
    assert rec.temperature_c is not None
    write_cwa(root / "raw/P1_L.cwa", rec.time_s, rec.accel_g, rec.temperature_c,
              rec.sampling_rate_hz, serial=1)
    assert run_study(load_study(root), executor=InlineExecutor()).exit_code == 0
    (folder,) = (root / "results/single-wrist-processed/wrist/P1/P1_L.cwa").iterdir()
    days = pd.read_csv(folder / "activity_level_classification.csv")
    day = days.set_index("date").loc["2026-03-29"]
    assert day["total_minutes"] == 23 * 60  # the spring-forward day has 23 hours
    assert day["day_start_timestamp"] == "2026-03-29 00:00:00"
