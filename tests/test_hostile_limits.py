"""Bounds on what one sensor file or study file may cost: fields per CSV line, gzip
content within what a task may use, no YAML aliases, and a wall-clock and memory limit
per task; each exceeded is one issue naming the file, and the rest of the study completes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from wearflow import load_study
from wearflow.errors import ConfigError, ReaderError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: HOSTILE
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.csv"]
  metadata: ["meta/*.csv", "meta/*.xlsx"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


# --- sensor files ---------------------------------------------------------------------------

def test_a_csv_line_just_over_the_field_bound_is_refused_before_parsing() -> None:
    from wearflow.readers import read_recording
    from wearflow.readers.csv_reader import MAX_COLUMNS

    fields = ",".join(["1"] * (MAX_COLUMNS + 1))
    data = f"time,x,y,z\n{fields}\n2,0,0,1\n".encode()
    with pytest.raises(ReaderError, match=f"line 2 has more than {MAX_COLUMNS} fields"):
        read_recording(data, "file:///raw/P1_L.csv")


def test_a_gt3x_zip_whose_parts_unzip_past_the_cap_is_refused_unopened() -> None:
    import zipfile

    from wearflow.readers import decompression_cap, read_recording

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("info.txt", "Serial Number: MOS2X\nSample Rate: 30\n")
        archive.writestr("log.bin", bytes(2 * 1024**2))  # a megabyte over the 1 MiB floor
    data = buf.getvalue()
    assert decompression_cap(len(data)) == 1024**2
    with pytest.raises(ReaderError, match=r"unzip to \d+ bytes, more than 1048576"):
        read_recording(data, "file:///raw/P1_L.gt3x")


def test_gzip_content_is_capped_by_what_the_task_may_use() -> None:
    import gzip

    from wearflow.memory import GB, max_inflated_bytes

    # what a task may use bounds how far a gzip file is inflated: the inflated bytes'
    # own estimate fits the limit; more is refused
    cap = max_inflated_bytes("P1_L.csv.gz", GB // 2)
    assert 0 < cap < 200 * 1024**2
    assert max_inflated_bytes("P1_L.csv.gz", 2 * GB) > cap
    from wearflow.readers import read_recording

    inflated = b"time,x,y,z\n" + b"1,0,0,1\n" * (10_000)
    with pytest.raises(ReaderError, match="decompressed size exceeds"):
        read_recording(gzip.compress(inflated), "file:///raw/P1_L.csv.gz",
                       max_decompressed_bytes=len(inflated) - 1)


# --- the study file -----------------------------------------------------------------------

def test_a_yaml_alias_in_the_study_file_is_refused(tmp_path: Path) -> None:
    laughs = "\n".join(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]"
                       for i in range(1, 6))
    (tmp_path / "study.yaml").write_text(
        STUDY + f"storage_options:\n  l0: &l0 [lol]\n{laughs}\n")
    with pytest.raises(ConfigError, match=r"YAML alias") as caught:
        load_study(tmp_path)
    assert "\n" not in caught.value.message
    (tmp_path / "study.yaml").write_text(STUDY + "workers: &w 1\nretries: {max_attempts: *w}\n")
    with pytest.raises(ConfigError, match=r"line 11: YAML alias \*w refused"):
        load_study(tmp_path)
    (tmp_path / "study.yaml").write_text(STUDY + "workers: &w 1\n")  # an anchor alone is fine
    assert load_study(tmp_path).workers == 1
