"""Every bound on hostile input, fed just over its limit (and the bombs the bounds stop,
at full scale where a small file makes them), to one study run in a child process:
each hostile file is one one-line issue naming it, the ordinary participant is
processed, and the child's peak memory stays under ``PEAK_BOUND_BYTES``.

Without the bounds the same files cost tens of gigabytes (a 20 MB CSV line of ten
million fields, a workbook whose one cell sits at XFD1048576, a 1,000,000-column
metadata CSV, a billion-laugh YAML); the child runs under an address-space limit
(``SAFETY_NET_BYTES``) so that a bound that does not hold fails this test instead of
exhausting the machine.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study_helpers import issues_by_file, write_csv
from wearflow import load_study, study_status
from wearflow.memory import GB

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PEAK_BOUND_BYTES = 768 * 1024**2
"""The child's peak resident memory: an inline run of one ordinary 1-hour file peaks at
about 360 MB (the interpreter, scikit-digital-health, the state), and no hostile file
may add more than what its bound allows (here: the 20 MB wide CSV line held once, the
gzip content inflated to its cap). Unbounded, the same files took 5 GB (1 million
columns) to about 35 GB (10 million fields)."""
SAFETY_NET_BYTES = 4 * GB  # the child's address space (it uses about 2 GB unprovoked)
TASK_MEMORY_LIMIT_GB = 0.1  # what a task may take: the gzip cap follows it

STUDY = f"""\
study: LIMITS
input: raw/
output: results/
files:
  sensor: ["{{participant}}_{{side}}.csv", "{{participant}}_{{side}}.csv.gz",
           "{{participant}}_{{side}}.gt3x"]
  metadata: ["meta/*.csv", "meta/*.xlsx"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
task_memory_limit_gb: {TASK_MEMORY_LIMIT_GB}
"""


def _column_letters(index: int) -> str:
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _workbook(sheet_cells: str = "", *, drop: tuple[str, ...] = (),
              doctype: str = "") -> bytes:
    """A one-sheet workbook (participant, height_cm; P1, 170) with ``sheet_cells`` appended
    to its rows, parts dropped, or a document type declared in its sheet."""
    buf = io.BytesIO()
    pd.DataFrame({"participant": ["P1"], "height_cm": ["170"]}).to_excel(buf, index=False)
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            body = src.read(name)
            if name == "xl/worksheets/sheet1.xml":
                body = body.replace(b"</sheetData>", sheet_cells.encode() + b"</sheetData>")
                body = body.replace(b"<worksheet", doctype.encode() + b"<worksheet", 1)
            if name not in drop:
                dst.writestr(name, body)
    return out.getvalue()


def _zip_of_zeros(path: Path, members: dict[str, int]) -> None:
    """A zip whose parts are ``size`` zero bytes each, written in chunks."""
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, size in members.items():
            with archive.open(name, "w", force_zip64=True) as part:
                for start in range(0, size, len(chunk)):
                    part.write(chunk[:min(len(chunk), size - start)])


def _hostile_study(root: Path) -> dict[str, str]:
    """Write the study; return each hostile file's name and the issue tag expected."""
    from wearflow import metadata
    from wearflow.readers import decompression_cap
    from wearflow.readers.csv_reader import MAX_COLUMNS

    raw, meta = root / "raw", root / "raw/meta"
    meta.mkdir(parents=True)
    (root / "study.yaml").write_text(STUDY)
    write_csv(raw / "P1_L.csv", seed=1)  # the rest of the study
    (meta / "good.csv").write_text("participant,height_cm\nP1,171\n")
    expected: dict[str, str] = {}

    def sensor(name: str, data: bytes) -> None:
        (raw / name).write_bytes(data)
        expected[name] = "DATA_ISSUE"

    def metadata_file(name: str, data: bytes) -> None:
        (meta / name).write_bytes(data)
        expected[name] = "METADATA_ISSUE"

    header = b"timestamp,x,y,z\n"
    sensor("F1_L.csv", header + b",".join([b"1"] * (MAX_COLUMNS + 1)) + b"\n")
    sensor("F2_L.csv", header + b"1," * 10_000_000 + b"1\n")  # full scale: 20 MB
    # gzip content one byte over what a task of TASK_MEMORY_LIMIT_GB may inflate, at a
    # ratio far under the 200x cap (random digits)
    from wearflow.memory import max_inflated_bytes

    cap = max_inflated_bytes("F3_L.csv.gz", int(TASK_MEMORY_LIMIT_GB * GB))
    digits = np.random.default_rng(3).integers(0, 10, cap + 1, dtype=np.uint8) + ord("0")
    content = header + digits.tobytes()[: cap + 1 - len(header)]
    packed = gzip.compress(content, compresslevel=1)
    assert decompression_cap(len(packed)) > cap
    sensor("F3_L.csv.gz", packed)
    with gzip.open(raw / "F4_L.csv.gz", "wb") as bomb:  # full scale: 256 MiB of zeros
        for _ in range(256):
            bomb.write(bytes(1 << 20))
    expected["F4_L.csv.gz"] = "DATA_ISSUE"
    # a .gt3x whose parts unzip one byte past the 1 MiB floor of the cap
    _zip_of_zeros(raw / "F5_L.gt3x", {"info.txt": 0, "log.bin": (1 << 20) + 1})
    expected["F5_L.gt3x"] = "DATA_ISSUE"

    metadata_file("junk.xlsx", b"PK\x03\x04" + b"junk after the zip header " * 40)
    metadata_file("no-content-types.xlsx", _workbook(drop=("[Content_Types].xml",)))
    laughs = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    metadata_file("entity-bomb.xlsx", _workbook(doctype=f"<!DOCTYPE w [{laughs}]>"))
    metadata_file("row-bomb.xlsx", _workbook(  # full scale: 17 billion cells if padded
        '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>'))
    over_rows = metadata.MAX_METADATA_ROWS + 1
    metadata_file("sheet-rows-over.xlsx", _workbook(
        f'<row r="{over_rows}"><c r="A{over_rows}" t="inlineStr"><is><t>P9</t></is></c></row>'))
    wide = _column_letters(metadata.MAX_METADATA_COLUMNS + 1)
    metadata_file("sheet-columns-over.xlsx", _workbook(
        f'<row r="3"><c r="{wide}3" t="inlineStr"><is><t>x</t></is></c></row>'))
    _zip_of_zeros(meta / "unzipped-over.xlsx", {
        "[Content_Types].xml": 0, "xl/media/padding.bin": metadata.MAX_XLSX_UNZIPPED_BYTES + 1})
    expected["unzipped-over.xlsx"] = "METADATA_ISSUE"
    columns = metadata.MAX_METADATA_COLUMNS
    metadata_file("columns-over.csv", b"participant" + b",c" * columns + b"\nP1\n")
    metadata_file("columns-bomb.csv", b"participant" + b",c" * 1_000_000 + b"\n")  # full scale
    metadata_file("rows-over.csv", b"participant\n" + b"P1\n" * metadata.MAX_METADATA_ROWS)
    width = 100
    rows = metadata.MAX_METADATA_CELLS // width + 1
    metadata_file("cells-over.csv", b",".join([b"participant", *[b"c"] * (width - 1)])
                  + b"\n" + (b"P1" + b",1" * (width - 1) + b"\n") * (rows - 1))
    with (meta / "bytes-over.csv").open("wb") as fh:  # sparse: one byte over 32 MiB
        fh.write(b"participant,height_cm\n")
        fh.truncate(metadata.MAX_METADATA_BYTES + 1)
    expected["bytes-over.csv"] = "METADATA_ISSUE"

    bomb = "\n".join(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10))
    (root / "alias-bomb.yaml").write_text(STUDY + f"storage_options:\n  l0: &l0 [lol]\n{bomb}\n")
    return expected


def _run_child(root: Path) -> tuple[int, dict[str, object], int, str]:
    """Run the child; its exit code, what it printed, its peak resident memory (bytes:
    the high-water mark of its own address space, ``VmHWM``, which it reports itself)
    and its stderr.

    Not the ``ru_maxrss`` that ``wait4`` returns: ``subprocess`` starts the child with
    vfork + exec, and exec records the *parent's* peak as the child's starting maxrss,
    so a child of a big pytest worker reported that worker's memory (770 MiB and 2 GB
    seen in CI runs of the whole suite; about 400 MiB when run alone)."""
    child = Path(__file__).with_name("limits_child.py")
    err_path = root / "child.err"
    with err_path.open("wb") as err:
        proc = subprocess.run([sys.executable, str(child), str(root), str(SAFETY_NET_BYTES)],
                              stdout=subprocess.PIPE, stderr=err, check=False)
    lines = proc.stdout.decode().strip().splitlines()
    seen = json.loads(lines[-1]) if lines else {}
    peak = seen.pop("peak_bytes", None)
    return (proc.returncode, seen, int(peak) if isinstance(peak, int) else -1,
            err_path.read_text(errors="replace"))


def test_every_bound_just_over_its_limit_is_one_issue_at_a_bounded_cost(tmp_path: Path) -> None:
    expected = _hostile_study(tmp_path)
    code, seen, peak_bytes, stderr = _run_child(tmp_path)
    assert code == 0, stderr[-3000:]
    alias = str(seen["alias_bomb"])
    assert "YAML alias *l0 refused" in alias and "\n" not in alias
    assert seen["done"] == 1 and seen["participants"] == 1  # the rest of the study
    issues = issues_by_file(tmp_path)
    for name, tag in sorted(expected.items()):
        assert name in issues, f"{name}: no issue"
        ((got_tag, message),) = issues[name]
        assert got_tag == tag, (name, message)
        assert "\n" not in message and "Traceback" not in message, (name, message)
    status = study_status(load_study(tmp_path))
    assert [r["participant"] for r in status["current"]["participant_results"]] == ["P1"]
    from wearflow.services.status import study_metadata

    assert study_metadata(load_study(tmp_path))["P1"]["height_m"]["value"] == "1.71"
    assert 0 < peak_bytes < PEAK_BOUND_BYTES, f"child peaked at {peak_bytes / 1024**2:.0f} MiB"
