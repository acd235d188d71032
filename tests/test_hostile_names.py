"""Hostile names: participant ids that are path parts, line breaks in file names (log
lines), formulas in cells of the CSVs meant for spreadsheets."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from study_helpers import HOSTILE_STUDY, issues_by_file, write_csv
from wearflow import load_study, run_study, study_status
from wearflow.executors import InlineExecutor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = HOSTILE_STUDY


# --- names: path parts, control characters, formulas --------------------------------------

FORGED = "P3\n2026-01-01T00:00:00.000Z [INFO] study=HOSTILE all good"
NAMES = {"dot": " ._L.csv", "dotdot": " .._L.csv", "newline": f"{FORGED}_L.csv",
         "formula": "=2+5_L.csv", "good": "P1_L.csv"}


@pytest.fixture(scope="module")
def named_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of a study whose file names are hostile: ids `` .`` and `` ..`` (a name
    starting with a dot is a hidden file, never cataloged), a name
    with a line break, a participant ``=2+5``; P1 is an ordinary participant."""
    root = tmp_path_factory.mktemp("names")
    (root / "study.yaml").write_text(STUDY)
    (root / "raw").mkdir()
    for seed, name in enumerate(NAMES.values(), start=1):
        write_csv(root / "raw" / name, seed=seed)
    run_study(load_study(root), executor=InlineExecutor())
    return root


@pytest.mark.parametrize("name", [" ._L.csv", " .._L.csv"])
def test_a_dot_or_dotdot_participant_id_is_refused_naming_the_file(
        named_study: Path, name: str) -> None:
    ((tag, message),) = issues_by_file(named_study)[name]
    assert tag == "DATA_ISSUE" and "participant id" in message
    wrist = named_study / "results/single-wrist-processed/wrist"
    assert sorted(p.name for p in wrist.iterdir()) == ["P1", "_2_5"]
    from wearflow.services.verify import verify_outputs

    report = verify_outputs(load_study(named_study))
    assert report.ok, report.problems
    assert report.checked > 0


def test_results_never_leave_their_folder_whatever_the_id() -> None:
    from wearflow.results import participant_dir, single_wrist_dir

    for bad in (".", "..", " ..", "...", "a/../.."):
        for path in (single_wrist_dir("wrist", bad, bad, "k" * 16),
                     participant_dir("wrist", bad, "k" * 16, visit=bad)):
            assert all(part not in (".", "..") for part in path.split("/")), path


def test_a_line_break_in_a_file_name_cannot_forge_a_log_line(named_study: Path) -> None:
    log = (named_study / "results/logs/wearflow.log").read_text(encoding="utf-8")
    assert log.count("\n") == len(log.splitlines())  # no other line separator inside
    for line in log.splitlines():
        assert line[:4].isdigit() and line[23:26] == "Z [", line
    assert "P3\\n2026-01-01T00:00:00.000Z [INFO]" in log
    ((tag, _message),) = issues_by_file(named_study)[f"{FORGED}_L.csv"]
    assert tag == "DATA_ISSUE"  # a name with a control character is refused too


def test_control_characters_in_log_fields_and_messages_are_escaped() -> None:
    from wearflow.logs import _UtcFormatter

    record = logging.LogRecord("wearflow", logging.INFO, "", 0, "read\r\nfake\u2028x\x1b[31m",
                               None, None)
    record.tag = "DATA_ISSUE"
    record.fields = {"uri": "file:///raw/a\nb\tc.csv", "study": "S"}
    line = _UtcFormatter().format(record)
    assert len(line.splitlines()) == 1 and "\t" not in line and "\x1b" not in line
    assert line.endswith(r"study=S uri=file:///raw/a\nb\tc.csv read\r\nfake\u2028x\x1b[31m")


def test_formulas_are_neutralised_in_spreadsheet_csvs_only(named_study: Path) -> None:
    study = load_study(named_study)
    summaries = study_status(study)["current"]["summaries"]
    folder = named_study / "results" / summaries["wrist"]
    summary = pd.read_csv(folder / "summary.csv", dtype={"participant": str})
    assert set(summary["participant"]) == {"P1", "'=2+5"}
    assert set(pd.read_parquet(folder / "summary.parquet")["participant"]) == {"P1", "=2+5"}
    from wearflow.services.export import export_results
    from wearflow.services.status import export_qc

    exported = export_results(study)
    day = pd.read_csv(Path(exported.location.removeprefix("file://"))
                      / "participant_visit_day.csv", dtype={"participant": str})
    assert set(day["participant"]) == {"P1", "'=2+5"}
    qc = pd.read_csv(named_study / "results" / export_qc(study).path,
                     dtype={"participant": str})
    assert "'=2+5" in set(qc["participant"]) and "=2+5" not in set(qc["participant"])
    # the per-file results are not spreadsheet CSVs: their bytes stay as the tables are
    (result,) = (named_study / "results/single-wrist-processed/wrist/_2_5").rglob("qc_days.csv")
    from wearflow.results import csv_bytes

    assert result.read_bytes() == csv_bytes(pd.read_parquet(result.with_suffix(".parquet")))


def test_only_string_cells_that_start_a_formula_are_neutralised() -> None:
    from wearflow.results import csv_bytes

    table = pd.DataFrame({
        "text": ["=1+2", "+x", "-x", "@SUM(A1)", "\tx", "-1.5", "+3", "plain", None, "a=b"],
        "number": [-1.5, 2.0, -3.0, 1e-9, -0.0, 0.5, -7.0, 1.0, None, 4.0],
        "mixed": [-1, "-1+1", 3, "=x", 5, 6, 7, 8, 9, 10],
    })
    lines = csv_bytes(table, spreadsheet=True).decode().splitlines()
    assert lines[1:5] == ["'=1+2,-1.5,-1", "'+x,2,'-1+1", "'-x,-3,3", "'@SUM(A1),1e-09,'=x"]
    assert lines[5].startswith("'\tx,")
    assert lines[6:] == ["-1.5,0.5,6", "+3,-7,7", "plain,1,8", ",,9", "a=b,4,10"]
    plain = pd.DataFrame({"a": ["x", "y"], "b": [-1.25, 2.0], "c": [-1, 2]})
    assert csv_bytes(plain, spreadsheet=True) == csv_bytes(plain)
