"""What wearflow writes on a local disk has explicit modes, whatever the umask: the state
database 0600, folders 0750, logs and the issues file 0640, finished results read-only
(0440). Nothing is readable by others, nothing writable by the group."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from study_helpers import write_csv
from wearflow import load_study, run_study
from wearflow.executors import InlineExecutor
from wearflow.state import State

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: MODES
input: raw/
output: results/
state: sqlite:///state/wearflow.db
files:
  sensor: ["{participant}_{side}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    before = os.umask(request.param)
    try:
        yield int(request.param)
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022], indirect=True, ids=["000", "022"])
def test_modes_do_not_depend_on_the_umask(tmp_path: Path, umask: int) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY)
    write_csv(tmp_path / "raw/P1_L.csv", seed=1, hours=0.3)
    (tmp_path / "raw/P1_L_copy.csv").write_bytes((tmp_path / "raw/P1_L.csv").read_bytes())
    study = load_study(tmp_path)
    report = run_study(study, executor=InlineExecutor())
    assert report.executed == 1  # and an issue: the copy (its name, its bytes)

    out, state_dir = Path(study.output), tmp_path / "state"
    assert (out / "issues.jsonl").is_file() and (out / "logs/wearflow.log").is_file()
    with State(study.state_url) as state:
        state.files.current()  # open: the write-ahead log and its index are there
        db_files = sorted(state_dir.iterdir())
        assert [p.name for p in db_files] == ["wearflow.db", "wearflow.db-shm",
                                             "wearflow.db-wal", "wearflow.db.migrate-lock"]
        assert {p.name: _mode(p) for p in db_files} == dict.fromkeys(
            (p.name for p in db_files), 0o600)
    assert _mode(state_dir) == 0o750
    folders = [out, *(p for p in out.rglob("*") if p.is_dir())]
    assert {str(p): _mode(p) for p in folders} == dict.fromkeys(map(str, folders), 0o750)
    for appended in (out / "issues.jsonl", out / "logs/wearflow.log"):
        assert _mode(appended) == 0o640, appended
    results = [p for p in out.rglob("*") if p.is_file()
               and p.name not in ("issues.jsonl", "wearflow.log")]
    assert any(p.name == "provenance.json" for p in results)
    assert {str(p): _mode(p) for p in results} == dict.fromkeys(map(str, results), 0o440)


def test_an_older_database_and_log_are_tightened(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "study.yaml").write_text(STUDY)
    write_csv(tmp_path / "raw/P1_L.csv", seed=1, hours=0.3)
    study = load_study(tmp_path)
    run_study(study, executor=InlineExecutor())
    db, log = tmp_path / "state/wearflow.db", Path(study.output) / "logs/wearflow.log"
    db.chmod(0o644)  # as an earlier version left them under umask 022
    log.chmod(0o666)
    run_study(study, executor=InlineExecutor())
    assert (_mode(db), _mode(log)) == (0o600, 0o640)
