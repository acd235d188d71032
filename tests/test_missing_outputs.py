"""Result folders deleted by hand: each run finds them (one listing per folder, never one
request per file), says so in the issues queue and exits 1, never combines a participant
from what is left; `wearflow retry STUDY --missing` (audited) has the next run write them
again, the participant from both wrists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from study_helpers import write_csv
from wearflow import load_study, run_study, study_status
from wearflow.cli import app
from wearflow.config import Study
from wearflow.executors import InlineExecutor
from wearflow.services.verify import verify_outputs
from wearflow.state import State
from wearflow.storage import Store

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STUDY = """\
study: MISSING
input: raw/
output: results/
files:
  sensor: ["{{participant}}_{{side}}.csv"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
single_wrist_grace_h: {grace_h}
"""


def _study(root: Path, sides: str, grace_h: float = 0) -> Study:
    (root / "raw").mkdir(exist_ok=True)
    (root / "study.yaml").write_text(STUDY.format(grace_h=grace_h))
    for side in sides:
        write_csv(root / f"raw/P1_{side}.csv", seed=1, hours=0.3)
    return load_study(root)


def _wrist_folder(study: Study, side: str) -> str:
    with State(study.state_url) as state:
        return next(t.result_dir or "" for t, f in state.tasks.for_current_files()
                    if f.side == side)


def _issues(study: Study) -> list[dict[str, Any]]:
    return list(study_status(study)["issues"])


def _retry_missing(root: Path, *more: str) -> Any:
    return CliRunner().invoke(app, ["retry", str(root), *more, "--reason", "deleted by hand"])


def _regenerated_from_both_wrists(study: Study) -> None:
    report = run_study(study, executor=InlineExecutor())
    assert (report.executed, report.participants_aggregated, report.exit_code) == (1, 1, 0)
    with State(study.state_url) as state:
        [result] = state.results.latest_participants()
    prov = json.loads((Path(study.output) / result.result_dir / "provenance.json").read_text())
    assert sorted(i["side"] for i in prov["input"]) == ["left", "right"]
    assert json.loads(result.flags_json) == []
    assert _issues(study) == []
    assert verify_outputs(study).ok


def test_deleted_result_folders_are_reported_and_written_again(tmp_path: Path) -> None:
    study = _study(tmp_path, "LR")
    assert run_study(study, executor=InlineExecutor()).participants_aggregated == 1
    left = _wrist_folder(study, "left")
    with State(study.state_url) as state:
        [participant] = state.results.latest_participants()
    for folder in (left, participant.result_dir):
        shutil.rmtree(Path(study.output) / folder)

    report = run_study(study, executor=InlineExecutor())
    assert (report.exit_code, report.missing_outputs, report.participants_aggregated) == (1, 2, 0)
    issues = _issues(study)
    assert len(issues) == 2
    assert all("retry" in i["resolution"] and "--missing" in i["resolution"] for i in issues)
    said = " ".join(i["message"] for i in issues)
    assert left in said and participant.result_dir in said
    assert any((i["uri"] or "").endswith("/P1_L.csv") for i in issues)

    retried = _retry_missing(tmp_path, "--missing")
    assert retried.exit_code == 0, retried.output
    assert "1 task" in retried.output and "1 participant result" in retried.output
    with State(study.state_url) as state:
        [entry] = [e for e in state.audit.entries() if e.action == "manual.retry"]
    assert left in (entry.before_json or "") and participant.result_dir in (entry.before_json or "")
    assert entry.reason == "deleted by hand"
    assert _retry_missing(tmp_path, "--missing").exit_code == 2  # queued: nothing else missing

    _regenerated_from_both_wrists(study)
    assert (Path(study.output) / participant.result_dir).is_dir()  # the same folder again


def test_a_wrist_whose_result_is_gone_is_not_left_out_of_its_participant(tmp_path: Path) -> None:
    """The left wrist is done (its partner awaited), then its folder is deleted, then the
    right wrist arrives: the participant is not combined from the right wrist alone."""
    study = _study(tmp_path, "L", grace_h=24)
    assert run_study(study, executor=InlineExecutor()).participants_aggregated == 0
    shutil.rmtree(Path(study.output) / _wrist_folder(study, "left"))
    write_csv(tmp_path / "raw/P1_R.csv", seed=1, hours=0.3)
    report = run_study(study, executor=InlineExecutor())
    assert (report.exit_code, report.executed, report.participants_aggregated) == (1, 1, 0)
    [issue] = _issues(study)
    assert issue["uri"].endswith("/P1_L.csv") and "gone" in issue["message"]
    assert _retry_missing(tmp_path, "--missing").exit_code == 0
    _regenerated_from_both_wrists(study)


def test_retry_takes_a_file_or_missing(tmp_path: Path) -> None:
    _study(tmp_path, "")
    for neither_or_both in ((), ("P1_L.csv", "--missing")):
        said = _retry_missing(tmp_path, *neither_or_both)
        assert said.exit_code == 2 and "a file or --missing" in said.output


class _Counting:
    """An fsspec filesystem's listings, counted."""

    def __init__(self, fs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        for name in ("ls", "find", "exists", "info", "isdir", "isfile"):
            real = getattr(fs, name)
            monkeypatch.setattr(fs, name, self._wrap(name, real))

    def _wrap(self, name: str, real: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return real(*args, **kwargs)
        return counted


FOLDERS = [f"single-wrist-processed/wrist/P{p}/P{p}_{s}.csv/{p:016x}"
           for p in range(1, 41) for s in "LR"]


@pytest.mark.parametrize("root", ["local", "memory://missing-outputs"])
def test_present_folders_are_found_without_a_request_per_folder(
        root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(str(tmp_path / "out") if root == "local" else root)
    for folder in FOLDERS:
        for name in ("day.csv", "day.parquet", "qc.json", "provenance.json"):
            store.write_once(f"{folder}/{name}", b"x")
    gone = FOLDERS[::7]
    for folder in gone:
        if root == "local":
            shutil.rmtree(tmp_path / "out" / folder)
        else:
            store.fs.rm(store._full(folder), recursive=True)
    asked = [*FOLDERS, "single-wrist-processed/wrist/P99/P99_L.csv/0"]
    calls = _Counting(store.fs, monkeypatch).calls
    listings: list[str] = []
    real_scandir = __import__("os").scandir
    monkeypatch.setattr("os.scandir", lambda p: listings.append(str(p)) or real_scandir(p))
    present = store.present_folders(asked)
    assert present == set(FOLDERS) - set(gone)
    if root == "local":  # one directory read per parent folder (one per input file here)
        assert len(listings) <= len({f.rsplit("/", 1)[0] for f in asked})
        assert calls == []
    else:  # one recursive listing of the tree, however many folders
        assert calls == ["find"]
