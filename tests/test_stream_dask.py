"""builtin:wrist-stream runs wherever builtin:wrist runs: on the Dask executor (streamed
in the Dask worker processes, asking the scheduler for the streamed footprint, writing
the inline run's bytes), under ``wearflow reproduce`` (the same bytes again, provenance
as complete as builtin:wrist's), with the qc.json figures of builtin:wrist on the same
file, and beside a solution pinned to its own environment.

The study: four real recordings from ../shared/data/real (MANIFEST.md), one of each
streamed reader path: a gzipped .cwa with a logging gap (3 h, 100 Hz), a plain .cwa
(36 min, 100 Hz) and two GENEActiv .bin (15 and 7.5 min); both solutions on each.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

from test_dask import outputs
from wearflow import load_study, run_study
from wearflow.executors import InlineExecutor
from wearflow.executors.dask import MEMORY, DaskExecutor
from wearflow.memory import estimate_peak_bytes, streamed_task_bytes
from wearflow.plan import task_memory_bytes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

GB = 1024**3
REAL_FILES = {  # study name -> file under ../shared/data/real
    "P1_L.cwa.gz": "cwa/stepcount_tiny-sample.cwa.gz",
    "P1_R.bin": "geneactiv_bin/geneacore_100650Hz_file.bin",
    "P2_L.cwa": "cwa/casson_example.cwa",
    "P2_R.bin": "geneactiv_bin/wristpy_example_geneactiv.bin",
}
STUDY = """\
study: STREAM-EVERYWHERE
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.cwa.gz", "{participant}_{side}.cwa", "{participant}_{side}.bin"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
  - name: stream
    pipeline: builtin:wrist-stream
"""
# qc.json's figures of the recording itself (not of a solution's algorithms)
RECORDING_FIGURES = ("n_samples", "sampling_rate_hz", "start_utc", "end_utc", "duration_h",
                     "has_temperature", "device", "measured_rate_hz", "rate_drift_pct",
                     "peak_abs_accel_g", "clipped_fraction")


@dataclass(frozen=True)
class Runs:
    root: Path  # the study, its results those of the Dask run
    inline: Path  # the inline run's results
    requested: dict[str, dict[str, float] | None]  # Dask key prefix -> resources asked


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, real_dir: Path) -> Iterator[Runs]:
    """The study run inline, its results moved aside, then run again on a local Dask
    cluster of two worker processes (same paths: provenance names them)."""
    base = tmp_path_factory.mktemp("stream-everywhere")
    root = base / "study"
    (root / "raw").mkdir(parents=True)
    for name, source in REAL_FILES.items():
        shutil.copyfile(real_dir / source, root / "raw" / name)
    (root / "study.yaml").write_text(STUDY)
    report = run_study(load_study(root), executor=InlineExecutor())
    assert (report.exit_code, report.executed, report.failed) == (0, 8, 0)
    (root / "results").rename(base / "inline")

    requested: dict[str, dict[str, float] | None] = {}
    submit = Client.submit

    def spy(self: Client, func: Any, *args: Any, **kwargs: Any) -> Any:
        requested[str(kwargs.get("key", ""))[len("wearflow-"):][:16]] = kwargs.get("resources")
        return submit(self, func, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Client, "submit", spy)
        report = run_study(load_study(root),
                           executor=DaskExecutor(workers=2, memory_limit_gb=4.0))
    assert (report.exit_code, report.executed, report.done, report.failed) == (0, 8, 4, 0)
    yield Runs(root, base / "inline", requested)


def _attempts(results: Path) -> list[dict[str, Any]]:
    """Every task attempt: solution, file name, worker, stage seconds, task key."""
    with sqlite3.connect(results / "wearflow.db") as db:
        rows = db.execute("select solution, uri, worker, stage_json, task_key "
                          "from task_attempts order by uri, solution").fetchall()
    return [{"solution": s, "file": u.rsplit("/", 1)[-1], "worker": w,
             "stages": json.loads(j)["wall"], "key": k} for s, u, w, j, k in rows]


def _result_dir(results: Path, solution: str, file_name: str) -> Path:
    (folder,) = (results / "single-wrist-processed" / solution).glob(f"*/{file_name}/*")
    return folder


# -- 1. Dask ----------------------------------------------------------------------------------

def test_on_dask_every_file_is_done_with_the_inline_bytes(runs: Runs) -> None:
    expected, got = outputs(runs.inline), outputs(runs.root / "results")
    streamed = [p for p in got if p.startswith("single-wrist-processed/stream/")]
    assert sum(p.endswith("/qc.json") for p in streamed) == 4
    assert sorted(got) == sorted(expected)
    assert [p for p in expected if got[p] != expected[p]] == []


def test_the_dask_workers_streamed(runs: Runs) -> None:
    """Every stream task ran in a Dask worker process (not the coordinator) without the
    whole-file fetch stage; builtin:wrist's tasks, beside them, fetched their file."""
    attempts = _attempts(runs.root / "results")
    assert len(attempts) == 8
    assert all(not a["worker"].endswith(f":{os.getpid()}") for a in attempts), attempts
    for a in attempts:
        if a["solution"] == "stream":
            assert "fetch" not in a["stages"] and "solution" in a["stages"], a
        else:
            assert "fetch" in a["stages"], a


def test_dask_is_asked_for_the_streamed_footprint(runs: Runs) -> None:
    """The MEMORY a stream task asks the scheduler for is the plan's streamed estimate
    (a chunk and the file's seconds), or the whole-file estimate when that is smaller
    (these real files are short); builtin:wrist's is the whole-file estimate."""
    study = load_study(runs.root)
    configs = {c.name: c for c in study.solutions}
    by_key = {a["key"][:16]: a for a in _attempts(runs.root / "results")}
    assert sorted(runs.requested) == sorted(by_key)
    for key, resources in runs.requested.items():
        attempt = by_key[key]
        path = runs.root / "raw" / attempt["file"]
        config = configs[attempt["solution"]]
        planned = task_memory_bytes(config, [(path.name, path.stat().st_size)])
        assert resources == {MEMORY: planned}, attempt
        whole = estimate_peak_bytes(path.name, path.stat().st_size, config.bytes_per_sample)
        if config.pipeline == "builtin:wrist-stream":
            assert planned == min(whole, streamed_task_bytes(path.name, path.stat().st_size))
        else:
            assert planned == whole


# -- 2. reproduce -----------------------------------------------------------------------------

def test_a_stream_result_made_on_dask_reproduces(runs: Runs) -> None:
    from typer.testing import CliRunner

    from wearflow.cli import app
    from wearflow.services.verify import reproduce

    results = runs.root / "results"
    for name in REAL_FILES:
        folder = _result_dir(results, "stream", name)
        report = reproduce(load_study(runs.root), str(folder))
        assert report.identical, report.files
        assert {Path(f.path).name for f in report.files} >= {
            "qc.json", "minute_series.csv", "sleep.parquet", "detach_wear.csv"}
    folder = _result_dir(results, "stream", "P1_L.cwa.gz")
    out = CliRunner().invoke(app, ["reproduce", str(runs.root), str(folder), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["identical"] is True


def test_stream_provenance_is_as_complete_as_builtin_wrist_s(runs: Runs) -> None:
    from wearflow.config import SolutionConfig
    from wearflow.solutions import load_solution

    results = runs.root / "results"
    for name in REAL_FILES:
        ours = json.loads((_result_dir(results, "stream", name) / "provenance.json").read_text())
        theirs = json.loads((_result_dir(results, "wrist", name) / "provenance.json").read_text())
        assert sorted(ours) == sorted(theirs)
        assert sorted(ours["solution"]) == sorted(theirs["solution"])
        assert ours["software"] == theirs["software"]
        assert ours["software"]["packages"]["wearflow"] == ours["software"]["wearflow"]
        assert ours["input"] == theirs["input"]  # the file, its sha256, whose it is
        solution = load_solution(SolutionConfig(name="stream", pipeline="builtin:wrist-stream"))
        assert ours["solution"]["name"] == "stream"
        assert ours["solution"]["version"] == solution.version
        assert ours["solution"]["fingerprint"] == solution.fingerprint
        assert ours["solution"]["parameters"]["pipeline"] == "builtin:wrist-stream"
        assert ours["solution"]["parameters"]["algorithm_version"]
        # every output hashed, as builtin:wrist's: the same files
        assert sorted(Path(o["path"]).name for o in ours["outputs"]) == sorted(
            Path(o["path"]).name for o in theirs["outputs"])


# -- 3. QC figures ----------------------------------------------------------------------------

def test_the_qc_of_a_stream_result_has_builtin_wrist_s_figures(runs: Runs) -> None:
    for name in REAL_FILES:
        ours = json.loads((_result_dir(runs.inline, "stream", name) / "qc.json").read_text())
        theirs = json.loads((_result_dir(runs.inline, "wrist", name) / "qc.json").read_text())
        assert sorted(ours) == sorted(theirs), name
        for figure in RECORDING_FIGURES:
            assert ours[figure] == theirs[figure], (name, figure)
        # the reader's flags (gaps, the header's zone) first, the same in both
        readers = [f for f in theirs["flags"] if not f.startswith(("warning:", "skipped:"))]
        assert ours["flags"][:len(readers)] == readers, name
        # measured although no fit is tried (under 12 h); its still windows are on the
        # UTC 10-s grid, builtin:wrist's counted from the first sample: close, not equal
        for figure in ("calibration_error_before_g", "calibration_error_after_g"):
            assert theirs[figure] is not None and ours[figure] is not None, (name, figure)
            assert abs(ours[figure] - theirs[figure]) <= 0.002, (name, figure)


def test_the_calibration_figures_are_builtin_wrist_s_when_it_calibrates() -> None:
    """A 1-day recording with a planted calibration error, its windows on whole seconds:
    before and after the fit, builtin:wrist's figures to the last digit."""
    from wearflow.config import SolutionConfig
    from wearflow.demo.synthetic import generate_recording
    from wearflow.solutions import load_solution

    rec, truth = generate_recording(seed=3, days=1.0, sampling_rate_hz=25.0)
    metadata = {"time_zone": truth.time_zone}
    ours = load_solution(SolutionConfig(name="s", pipeline="builtin:wrist-stream")
                         ).run(rec, metadata).qc
    theirs = load_solution(SolutionConfig(name="w", pipeline="builtin:wrist")
                           ).run(rec, metadata).qc
    assert dict(ours) == dict(theirs)
    assert theirs["calibration_error_after_g"] < theirs["calibration_error_before_g"]


# -- 4. beside a pinned environment -----------------------------------------------------------

PINNED_STUDY = """\
study: STREAM-PINNED
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.cwa", "{participant}_{side}.bin"]
solutions:
  - name: pinned
    pipeline: builtin:wrist
    environment: ["scikit-digital-health==0.17.16"]
  - name: stream
    pipeline: builtin:wrist-stream
"""


def test_beside_a_solution_pinned_to_its_own_environment(
        tmp_path: Path, real_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study whose other solution runs in its own locked environment: the lock is stored
    for that one only, the stream tasks carry none and stream in wearflow's own
    environment, and both solutions' results reproduce from the stored lock."""
    import wearflow.solutions
    from wearflow.services.verify import reproduce
    from wearflow.stages.environments import stored_locks

    # beside the repository, as tests/test_solution_envs.py: the built environment is reused
    monkeypatch.setenv("WEARFLOW_ENV_CACHE",
                       str(Path(__file__).resolve().parents[1] / ".cache" / "wearflow"))
    (tmp_path / "raw").mkdir()
    for name in ("P2_L.cwa", "P1_R.bin"):
        shutil.copyfile(real_dir / REAL_FILES[name], tmp_path / "raw" / name)
    (tmp_path / "study.yaml").write_text(PINNED_STUDY)
    report = run_study(load_study(tmp_path), executor=InlineExecutor())
    assert (report.exit_code, report.executed, report.failed) == (0, 4, 0)
    locks = stored_locks(load_study(tmp_path))
    assert sorted(locks) == ["pinned"]
    for attempt in _attempts(tmp_path / "results"):
        if attempt["solution"] == "stream":
            assert "fetch" not in attempt["stages"], attempt
    results = tmp_path / "results"
    for name in ("P2_L.cwa", "P1_R.bin"):
        prov = json.loads((_result_dir(results, "stream", name) / "provenance.json").read_text())
        assert "environment" not in prov["solution"]["parameters"]
        pinned = json.loads((_result_dir(results, "pinned", name) / "provenance.json"
                             ).read_text())
        assert pinned["solution"]["parameters"]["skdh"] == "0.17.16"
    # a later process: solutions built afresh, the pinned one from the stored lock
    monkeypatch.setattr(wearflow.solutions, "_CACHE", {})
    for solution in ("stream", "pinned"):
        for name in ("P2_L.cwa", "P1_R.bin"):
            again = reproduce(load_study(tmp_path), str(_result_dir(results, solution, name)))
            assert again.identical, (solution, name, again.files)
