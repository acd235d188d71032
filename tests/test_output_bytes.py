"""Result files: their bytes are pinned, and a result folder is write-once.

The bytes of result files are pinned: a change to how tables are encoded makes
every earlier result differ from a re-run of the same task (write-once folders keyed
by task, ``wearflow reproduce``), so it must be deliberate and show up here.

Parquet bytes also carry the pyarrow version (``created_by``): upgrading pyarrow in
uv.lock shows up here too, which is the point.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wearflow.errors import OutputExistsError
from wearflow.provenance import InputRef, Provenance, SolutionRef, software
from wearflow.results import csv_bytes, parquet_bytes, write_result
from wearflow.storage import Store


def table() -> pd.DataFrame:
    return pd.DataFrame({
        "date": pd.array(["2026-03-01", "2026-03-02", "2026-03-03"], dtype="string"),
        "n_wear_hours": np.array([23.5, np.nan, 1 / 3]),
        "wake_mvpa_5s_epoch_min": np.array([12.25, 0.0, 1e-12]),
        "valid_day": np.array([1, 0, 0], dtype="int64"),
        "combined_rule": pd.array(["mean", "left_only", None], dtype="string"),
    })


def test_csv_bytes_are_pinned() -> None:
    data = csv_bytes(table())
    assert data.decode().splitlines()[1] == "2026-03-01,23.5,12.25,1,mean"
    assert hashlib.sha256(data).hexdigest() == CSV_SHA256


def test_parquet_bytes_are_pinned() -> None:
    assert hashlib.sha256(parquet_bytes(table())).hexdigest() == PARQUET_SHA256


CSV_SHA256 = "af887851eaaa399a3eb101edf93a42962e1b17400d358c92b4ece5848de4c6b9"
PARQUET_SHA256 = "0d697f06dd455612ed0950e060c69a1191d4dcfab4166b59ccce8600c02ee19b"


def _provenance(run_id: str) -> Provenance:
    return Provenance(
        kind="participant", study="S", study_fingerprint="f", task_key="k" * 64,
        run_id=run_id, user="tester", input=InputRef(uri="file:///x", sha256="0" * 64,
                                                     size_bytes=1),
        solution=SolutionRef(name="wrist", version="v", fingerprint="f",
                             pipeline_sha256=None, parameters={}),
        software=software(), started_utc="2026-12-01T00:00:00.000Z",
        finished_utc="2026-12-01T00:00:01.000Z")


@pytest.mark.parametrize("race", [False, True])
def test_the_same_result_written_twice_keeps_the_first_provenance(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, race: bool) -> None:
    """A re-run, or two coordinators writing one participant result at once (the second
    sees no provenance.json yet, the first writes it before the second does): the first
    provenance is the record, and the second writer is told its sha256, not an error."""
    store = Store(str(tmp_path))
    _, first_sha = write_result(store, "processed/w/P1/abc", {"t": table()}, {},
                                _provenance("run-1"))
    if race:
        real_exists = Store.exists
        monkeypatch.setattr(Store, "exists", lambda self, path: False if
                            path.endswith("provenance.json") else real_exists(self, path))
    _, second_sha = write_result(store, "processed/w/P1/abc", {"t": table()}, {},
                                 _provenance("run-2"))
    stored = (tmp_path / "processed/w/P1/abc/provenance.json").read_bytes()
    assert second_sha == first_sha == hashlib.sha256(stored).hexdigest()
    assert b'"run_id": "run-1"' in stored


def test_different_table_bytes_under_one_result_folder_are_refused(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    write_result(store, "processed/w/P1/abc", {"t": table()}, {}, _provenance("run-1"))
    changed = table()
    changed.loc[0, "n_wear_hours"] = 1.0
    with pytest.raises(OutputExistsError):
        write_result(store, "processed/w/P1/abc", {"t": changed}, {}, _provenance("run-2"))
