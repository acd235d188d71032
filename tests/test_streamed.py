"""A streaming solution's task reads its file chunk by chunk, and gives the bytes the
whole-file path gives: every table, qc.json and flag (wearflow.streamed)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from wearflow import load_study, run_study
from wearflow.demo import write_demo_study
from wearflow.executors import InlineExecutor
from wearflow.solutions.stream import StreamSolution

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _stream_study(root: Path) -> Path:
    """The demo study (one participant, two visits, 1.5 days at 25 Hz) with the
    streaming solution, without reports."""
    write_demo_study(root, participants=1, days=1.5, seed=0, sampling_rate_hz=25.0)
    study = root / "study.yaml"
    text = study.read_text().replace("builtin:wrist\n", "builtin:wrist-stream\n")
    study.write_text(text.replace("after_run: true", "after_run: false"))
    return root


def _files(output: Path) -> dict[str, bytes]:
    """Every per-wrist and participant result file but provenance.json (which names the
    run), by its path under the output."""
    found = {}
    for folder in ("single-wrist-processed", "processed"):
        for path in sorted((output / folder).rglob("*")):
            if path.is_file() and path.name != "provenance.json":
                found[str(path.relative_to(output))] = path.read_bytes()
    return found


@pytest.fixture(scope="module")
def twin_studies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The same study run twice: streamed (the default for this solution and .cwa files),
    and with the streaming path turned off (the whole recording, cut into chunks)."""
    streamed = _stream_study(tmp_path_factory.mktemp("streamed"))
    whole = tmp_path_factory.mktemp("whole")
    shutil.copytree(streamed, whole, dirs_exist_ok=True)
    seen: list[str] = []
    original = StreamSolution.run_stream

    def spy(self: StreamSolution, *args: object, **kwargs: object) -> object:
        seen.append("stream")
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(StreamSolution, "run_stream", spy)
        report = run_study(load_study(streamed), executor=InlineExecutor())
        assert report.exit_code == 0 and report.done == 4
        assert len(seen) == 4  # every file went the streaming way
        mp.setattr("wearflow.worker.streams", lambda solution, task: False)
        report = run_study(load_study(whole), executor=InlineExecutor())
        assert report.exit_code == 0 and report.done == 4
    yield streamed / "results", whole / "results"


def test_streamed_tasks_write_the_bytes_of_the_whole_file_path(
        twin_studies: tuple[Path, Path]) -> None:
    streamed, whole = twin_studies
    ours, theirs = _files(streamed), _files(whole)
    assert sorted(ours) == sorted(theirs)
    assert any(name.endswith("qc.json") for name in ours)
    assert any(name.endswith("minute_series.csv") for name in ours)
    different = [name for name in ours if ours[name] != theirs[name]]
    assert different == []


def test_on_the_process_pool_too(twin_studies: tuple[Path, Path], tmp_path: Path) -> None:
    """The local executor's worker processes stream it as the inline run did: same bytes."""
    from wearflow.executors import LocalExecutor

    root = _stream_study(tmp_path)
    report = run_study(load_study(root), executor=LocalExecutor(2))
    assert report.exit_code == 0 and report.done == 4
    assert _files(root / "results") == _files(twin_studies[0])
    # streamed in the worker processes: no whole-file fetch stage in any task's seconds
    stages = [line.split("seconds=")[1].split()[0] for line in
              (root / "results" / "logs" / "wearflow.log").read_text().splitlines()
              if "seconds=" in line]
    assert len(stages) == 4
    assert all("fetch:" not in s and "solution:" in s for s in stages), stages


def test_the_qc_of_a_streamed_file_has_every_figure(twin_studies: tuple[Path, Path]) -> None:
    streamed, _ = twin_studies
    (qc_file,) = sorted((streamed / "single-wrist-processed").rglob("P001_V1_L.cwa/*/qc.json"))
    qc = json.loads(qc_file.read_text())
    assert qc["n_samples"] == int(1.5 * 86400 * 25) and qc["sampling_rate_hz"] == 25.0
    assert qc["device"]["format"] == "axivity-cwa" and qc["has_temperature"] is True
    assert abs(qc["rate_drift_pct"]) < 0.01 and qc["peak_abs_accel_g"] > 1.0
    assert "calibration_error_after_g" in qc


def test_a_file_replaced_while_its_task_ran_is_not_reported_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _stream_study(tmp_path)
    original = StreamSolution.run_stream
    target = root / "raw" / "P001_V1_L.cwa"

    def replace_then_run(self: StreamSolution, *args: object, **kwargs: object) -> object:
        result = original(self, *args, **kwargs)  # type: ignore[arg-type]
        if target.exists() and not getattr(replace_then_run, "done", False):
            replace_then_run.done = True  # type: ignore[attr-defined]
            data = bytearray(target.read_bytes())
            data[-1] ^= 0xFF  # one byte of the last block
            target.chmod(0o644)
            target.write_bytes(bytes(data))
        return result

    monkeypatch.setattr(StreamSolution, "run_stream", replace_then_run)
    report = run_study(load_study(root), executor=InlineExecutor())
    assert report.done == 3
    issues = json.loads("[" + ",".join(
        (root / "results" / "issues.jsonl").read_text().splitlines()) + "]")
    assert any("file changed since it was cataloged" in i["message"]
               and i["uri"].endswith("P001_V1_L.cwa") for i in issues), issues


def _csv_study(root: Path) -> Path:
    """The demo study (one participant, two visits, half a day at 25 Hz) with its .cwa files
    written as CSV tables: visit 1 plain .csv, visit 2 .csv.gz (unix seconds, g, degC)."""
    import gzip

    from wearflow.readers import read_recording

    write_demo_study(root, participants=1, days=0.5, seed=1, sampling_rate_hz=25.0)
    for cwa in sorted((root / "raw").glob("*.cwa")):
        recording = read_recording(cwa.read_bytes(), cwa.name)
        assert recording.temperature_c is not None
        lines = ["time,x,y,z,temperature"] + [
            f"{t:.3f},{x:.5f},{y:.5f},{z:.5f},{c:.2f}" for t, (x, y, z), c in
            zip(recording.time_s, recording.accel_g, recording.temperature_c, strict=True)]
        text = ("\n".join(lines) + "\n").encode()
        if "_V1_" in cwa.name:
            cwa.with_suffix(".csv").write_bytes(text)
        else:
            cwa.with_suffix(".csv.gz").write_bytes(gzip.compress(text, 1, mtime=0))
        cwa.unlink()
    study = root / "study.yaml"
    text = study.read_text().replace("builtin:wrist\n", "builtin:wrist-stream\n")
    name = "{participant}_{visit}_{side}"
    text = text.replace(f'["{name}.cwa"]', f'["{name}.csv", "{name}.csv.gz"]')
    study.write_text(text.replace("after_run: true", "after_run: false"))
    return root


def test_a_csv_study_streamed_writes_the_bytes_of_the_whole_file_path(
        tmp_path: Path) -> None:
    """CSV (plain and gzip) streams in the worker too, with the same tables, qc.json and
    participant results as the whole recording cut into chunks."""
    streamed = _csv_study(tmp_path / "streamed")
    whole = tmp_path / "whole"
    shutil.copytree(streamed, whole)
    methods: list[str] = []
    import wearflow.streamed as streamed_module

    original = streamed_module.iter_recording

    def spy(*args: object, **kwargs: object) -> object:
        stream = original(*args, **kwargs)  # type: ignore[arg-type]
        methods.append(stream.method)
        return stream

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(streamed_module, "iter_recording", spy)
        report = run_study(load_study(streamed), executor=InlineExecutor())
        assert report.exit_code == 0 and report.done == 4
        assert methods and set(methods) == {"streamed"}  # every pass decoded by blocks
        mp.setattr("wearflow.worker.streams", lambda solution, task: False)
        report = run_study(load_study(whole), executor=InlineExecutor())
        assert report.exit_code == 0 and report.done == 4
    ours, theirs = _files(streamed / "results"), _files(whole / "results")
    assert sorted(ours) == sorted(theirs)
    assert any(".csv.gz" in name for name in ours) and any(".csv/" in name for name in ours)
    assert any(name.endswith("qc.json") for name in ours)
    assert [name for name in ours if ours[name] != theirs[name]] == []
