"""The bytes of result files are pinned: a change to how tables are encoded makes
every earlier result differ from a re-run of the same task (write-once folders keyed
by task, ``wearflow reproduce``), so it must be deliberate and show up here.

Parquet bytes also carry the pyarrow version (``created_by``): upgrading pyarrow in
uv.lock shows up here too, which is the point.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from wearflow.results import csv_bytes, parquet_bytes


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
