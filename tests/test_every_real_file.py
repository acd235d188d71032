"""A study over every raw recording in ../shared/data/real/ that has a reader (MANIFEST.md),
the known-defective ones included: each file's outcome, and the study as a whole completes."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from wearflow import load_study, run_study, study_status
from wearflow.executors import LocalExecutor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FOLDERS = ("cwa", "geneactiv_bin", "gt3x", "agdc", "actigraph_raw_csv", "generic_csv")
# Files whose bytes cannot give a recording, with the reason the study must report.
REJECTED = {
    "geneacore_Short_header.bin": "header is truncated",
    "geneacore_Zero_data_pages.bin": "no data pages",
}
STUDY = """\
study: EVERY-REAL-FILE
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.cwa", "{participant}_{side}.cwa.gz",
           "{participant}_{side}.bin", "{participant}_{side}.gt3x",
           "{participant}_{side}.agdc", "{participant}_{side}.csv",
           "{participant}_{side}.csv.gz"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, real_dir: Path) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("every")
    (root / "raw").mkdir()
    names: dict[str, str] = {}
    sources = sorted(p for folder in FOLDERS for p in (real_dir / folder).iterdir()
                     if p.is_file())
    for i, source in enumerate(sources):
        # a participant per file, sides alternating, the original extension kept
        ext = "".join(source.suffixes[-2:]) if source.name.endswith(".gz") else source.suffix
        name = f"R{i:03d}_{'LR'[i % 2]}{ext}"
        shutil.copyfile(source, root / "raw" / name)
        names[name] = source.name
    (root / "study.yaml").write_text(STUDY)
    report = run_study(load_study(root), executor=LocalExecutor(2))
    assert report.exit_code == 1  # the rejected files, and nothing stopped the study
    return root, names


def test_each_file_has_its_outcome(study: tuple[Path, dict]) -> None:
    root, names = study
    with sqlite3.connect(root / "results/wearflow.db") as db:
        rows = {path: (state, tag, message, json.loads(flags)) for path, state, tag, message,
                flags in db.execute("select f.path, t.state, t.tag, t.message, t.flags_json "
                                    "from tasks t join files f on f.id = t.file_id")}
    assert set(rows) == set(names)
    for name, original in names.items():
        state, tag, message, _flags = rows[name]
        if original in REJECTED:
            assert (state, tag) == ("failed", "DATA_ISSUE"), (original, message)
            assert REJECTED[original] in (message or ""), (original, message)
        else:
            assert state == "done", (original, tag, message)
    flags_of = {names[n]: r[3] for n, r in rows.items()}
    assert "corrupt_blocks_skipped=6" in flags_of[
        "ggirread_ax3_testfile_corrupt_blocks_0_13_14_142_143_144.cwa"]
    assert any(f.startswith("gap_s=") for f in flags_of["stepcount_tiny-sample.cwa.gz"])
    assert any(f.startswith("idle_sleep_mode_samples=")
               for f in flags_of["wristpy_example_actigraph_idle_sleep_mode.gt3x"])


def test_study_completes_and_reports(study: tuple[Path, dict]) -> None:
    root, names = study
    info = study_status(load_study(root))
    assert info["files"]["total"] == len(names)
    assert info["files"]["by_state"]["failed"] == len(REJECTED)
    assert info["files"]["by_state"]["done"] == len(names) - len(REJECTED)
    # every rejected file has its issue; the others' issues are about results kept with a
    # flag (a step skipped on a short file, a device never worn, a header time zone other
    # than the study's) or wrists not combined
    # (recordings we paired that were not recorded together)
    kept = ("do not overlap in time", "the device was never worn",
            "header says its clock ran at")
    failures = [i for i in info["issues"] if i["tag"] != "ALGORITHM_ISSUE"
                and not any(k in i["message"] for k in kept)]
    assert {i["uri"].rsplit("/", 1)[-1] for i in failures} == {
        n for n, o in names.items() if o in REJECTED}
