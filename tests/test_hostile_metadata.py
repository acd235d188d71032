"""Metadata files that are corrupt or hostile are one METADATA_ISSUE each, naming the file,
at a bounded cost (bytes, columns, rows, cells, unzipped bytes, no XML entities); the
other files and `wearflow watch` carry on."""

from __future__ import annotations

import io
import logging
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from study_helpers import HOSTILE_STUDY, issues_by_file, write_csv
from wearflow import load_study, run_study
from wearflow.errors import DataError
from wearflow.executors import InlineExecutor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = HOSTILE_STUDY


# --- metadata workbooks and tables -------------------------------------------------------

def xlsx_bytes(table: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    table.to_excel(buf, index=False)
    return buf.getvalue()


GOOD_XLSX = xlsx_bytes(pd.DataFrame({"participant": ["P1"], "height_cm": ["170"]}))


def rezip(data: bytes, *, drop: tuple[str, ...] = (),
          edit: Callable[[str, bytes], bytes] = lambda name, body: body) -> bytes:
    """The workbook ``data`` with parts dropped or edited."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            if name not in drop:
                dst.writestr(name, edit(name, src.read(name)))
    return out.getvalue()


def in_sheet(old: str, new: str) -> Callable[[str, bytes], bytes]:
    def edit(name: str, body: bytes) -> bytes:
        if name != "xl/worksheets/sheet1.xml":
            return body
        assert old.encode() in body
        return body.replace(old.encode(), new.encode(), 1)
    return edit


ENTITIES = '<!ENTITY a0 "aaaaaaaaaa">' + "".join(
    f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 9))
CORRUPT_XLSX = {
    "junk.xlsx": b"PK\x03\x04" + b"junk after the zip header " * 40,
    "no-content-types.xlsx": rezip(GOOD_XLSX, drop=("[Content_Types].xml",)),
    "entity-bomb.xlsx": rezip(GOOD_XLSX, edit=in_sheet(
        "<worksheet", f"<!DOCTYPE worksheet [{ENTITIES}]><worksheet")),
}


@pytest.mark.parametrize("name", sorted(CORRUPT_XLSX))
def test_a_corrupt_workbook_is_a_data_error_naming_the_file(name: str) -> None:
    from wearflow.metadata import parse_metadata

    uri = f"file:///study/raw/meta/{name}"
    with pytest.raises(DataError) as caught:
        parse_metadata(CORRUPT_XLSX[name], uri, {})
    assert caught.value.subject == uri
    assert "\n" not in caught.value.message and len(caught.value.message) <= 300


def test_corrupt_metadata_workbooks_are_one_issue_each_and_the_study_completes(
        tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(STUDY)
    meta = tmp_path / "raw/meta"
    meta.mkdir(parents=True)
    for name, data in CORRUPT_XLSX.items():
        (meta / name).write_bytes(data)
    (meta / "good.csv").write_text("participant,height_cm\nP1,171\n")
    write_csv(tmp_path / "raw/P1_L.csv", seed=1)
    report = run_study(load_study(tmp_path), executor=InlineExecutor())
    assert report.done == 1  # the sensor file was processed
    issues = issues_by_file(tmp_path)
    for name in CORRUPT_XLSX:
        ((tag, message),) = issues[name]
        assert tag == "METADATA_ISSUE"
        assert "\n" not in message and "Traceback" not in message
    from wearflow.services.status import study_metadata

    assert study_metadata(load_study(tmp_path))["P1"]["height_m"]["value"] == "1.71"


def xlsx_with(old: str, new: str) -> bytes:
    return rezip(GOOD_XLSX, edit=in_sheet(old, new))


def with_part(name: str, body: str) -> bytes:
    """The good workbook with one more part."""
    out = io.BytesIO(rezip(GOOD_XLSX))
    with zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, body)
    return out.getvalue()


# each bound of the metadata parsers, fed just over its limit (made small here)
METADATA_OVER = {
    "bytes": ("MAX_METADATA_BYTES", 64, b"participant,height_cm\n" + b"P1,170\n" * 10),
    "csv columns": ("MAX_METADATA_COLUMNS", 5,
                    b"participant,height_cm,a,b,c\nP1,170,1,2,3,4\n"),
    "csv rows": ("MAX_METADATA_ROWS", 3, b"participant,height_cm\n" + b"P1,170\n" * 4),
    "csv cells": ("MAX_METADATA_CELLS", 7, b"participant,height_cm\nP1,170\nP2,171\nP3,172\n"),
    "xlsx columns": ("MAX_METADATA_COLUMNS", 5, xlsx_with(
        "</row></sheetData>",
        '<c r="F2" t="inlineStr"><is><t>x</t></is></c></row></sheetData>')),
    "xlsx rows": ("MAX_METADATA_ROWS", 3, xlsx_with(
        "</row></sheetData>",
        '</row><row r="5"><c r="A5" t="inlineStr"><is><t>P9</t></is></c></row></sheetData>')),
    "xlsx unzipped bytes": ("MAX_XLSX_UNZIPPED_BYTES", 4096, xlsx_with(
        "</sheetData>", "</sheetData>" + "<!-- padding -->" * 400)),
    "xlsx shared strings": ("MAX_METADATA_CELLS", 7, with_part(
        "xl/sharedStrings.xml", '<sst xmlns="http://schemas.openxmlformats.org/'
        'spreadsheetml/2006/main">' + "<si><t>s</t></si>" * 8 + "</sst>")),
}


@pytest.mark.parametrize("bound", sorted(METADATA_OVER))
def test_metadata_parsers_refuse_a_file_just_over_a_bound(
        bound: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import wearflow.metadata

    limit_name, limit, data = METADATA_OVER[bound]
    monkeypatch.setattr(wearflow.metadata, limit_name, limit)
    uri = "file:///study/raw/meta/over"
    with pytest.raises(DataError) as caught:
        wearflow.metadata.parse_metadata(data, uri, {})
    assert caught.value.subject == uri
    assert "\n" not in caught.value.message
    assert str(limit) in caught.value.message  # says which bound


def test_metadata_just_under_every_bound_is_read() -> None:
    from wearflow.metadata import parse_metadata

    values = parse_metadata(GOOD_XLSX, "file:///m.xlsx", {})
    assert [(v.participant, v.field, v.value) for v in values] == [("P1", "height_m", "1.7")]


# --- the watch loop ------------------------------------------------------------------------

def test_watch_logs_a_failed_cycle_and_carries_on(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    import wearflow.watch

    (tmp_path / "study.yaml").write_text(STUDY)
    (tmp_path / "raw").mkdir()
    stop = threading.Event()
    cycles: list[int] = []

    def run_study(*_args: object, **_kwargs: object) -> object:
        cycles.append(1)
        if len(cycles) == 1:
            raise KeyError("an unforeseen bug in one cycle")
        stop.set()
        raise ValueError("and another")

    monkeypatch.setattr(wearflow.watch, "run_study", run_study)
    with caplog.at_level(logging.INFO, logger="wearflow"):
        report = wearflow.watch.watch_study(
            load_study(tmp_path), executor=InlineExecutor(), stop=stop, poll_s=0.01,
            settle_s=0.0, idle_cycle_s=0.0, install_signal_handlers=False)
    assert len(cycles) == 2  # the loop went on after the first error
    assert len(report.errors) == 2 and "an unforeseen bug in one cycle" in report.errors[0]
    logged = [r for r in caplog.records if "an unforeseen bug" in r.getMessage()]
    assert logged and logged[0].tag == "PIPELINE_ISSUE"  # type: ignore[attr-defined]
