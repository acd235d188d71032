"""The per-task fast paths: each against a plain reference, on the edges the speed-ups add.

* QC peak and clipped fraction chunk by chunk (``qc._peak_and_clipped``): the same
  figures as max |a| and "any axis within CLIP_MARGIN_G of it" over the whole array,
  across chunk boundaries, for strided inputs, without touching the input;
* per-window mean and SD axis by axis (``skdh_core.window_mean_sd``) and what is
  built on it: the calibration error of still windows and ``never_moved``;
* the catalog's streamed sha256 and header (``Store.sha256_and_head``,
  ``catalog.inspect_file``) on synthetic and real files;
* the worker's integrity check, which now runs beside decoding: a file whose bytes
  are not the cataloged ones fails as changed (whatever its decoder said) and
  writes nothing; a task that runs reports its per-stage seconds, and so does the run;
* the per-chunk extremes the reader computes while checking its samples (used by QC)
  and the chunked strictly-increasing time check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wearflow import catalog, load_study, qc, run_study
from wearflow.catalog import inspect_file
from wearflow.demo.cwa_writer import write_cwa
from wearflow.demo.synthetic import generate_recording
from wearflow.errors import ReaderError, StorageError
from wearflow.executors import InlineExecutor
from wearflow.plan import make_plan
from wearflow.qc import CLIP_MARGIN_G, recording_qc
from wearflow.readers import read_recording
from wearflow.readers._common import finish
from wearflow.readers.header import header_serial
from wearflow.recording import DeviceInfo, Recording, accel_extremes, strictly_increasing
from wearflow.solutions import load_solution, skdh_core
from wearflow.solutions.skdh_core import (
    STILL_SD_G,
    calibration_error_g,
    never_moved,
    window_mean_sd,
)
from wearflow.state import State
from wearflow.storage import Store
from wearflow.task import TaskSpec
from wearflow.worker import execute

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
STAGES = {"fetch", "decode", "verify", "solution", "qc", "write"}

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# -- 1. QC peak and clipped fraction ------------------------------------------------------

def reference_peak_and_clipped(accel: np.ndarray[Any, Any]) -> tuple[float, float]:
    """The naive figures: max |a| over every axis; the fraction of rows with any axis
    at |a| >= peak - CLIP_MARGIN_G (0 unless the peak is above 1.5 g)."""
    if accel.shape[0] == 0:
        return 0.0, 0.0
    magnitude = np.abs(accel)
    peak = float(magnitude.max())
    if peak <= 1.5:
        return peak, 0.0
    return peak, float(np.mean(np.any(magnitude >= peak - CLIP_MARGIN_G, axis=1)))


def clipping_array(n: int, seed: int) -> np.ndarray[Any, Any]:
    """Seeded samples in +-2.2 g clipped at +-2 g: many clipped values, on either sign
    and on several axes of one row, spread over every chunk."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.uniform(-2.2, 2.2, size=(n, 3)), -2.0, 2.0)


def check_peak_and_clipped(accel: np.ndarray[Any, Any]) -> tuple[float, float]:
    """``_peak_and_clipped`` equals the reference and leaves its input as it was."""
    before = accel.copy(order="K")
    peak, clipped = qc._peak_and_clipped(accel)
    expected = reference_peak_and_clipped(np.ascontiguousarray(accel))
    assert (peak, clipped) == pytest.approx(expected, rel=0, abs=1e-12)
    np.testing.assert_array_equal(accel, before)
    return peak, clipped


@pytest.mark.parametrize("chunk_rows", [7, 1 << 18])
@pytest.mark.parametrize("n", [1, 2, 6, 7, 8, 13, 14, 15, 49, 50, 300])
def test_peak_and_clipped_match_the_reference_across_chunks(
        monkeypatch: pytest.MonkeyPatch, chunk_rows: int, n: int) -> None:
    monkeypatch.setattr(qc, "_CHUNK_ROWS", chunk_rows)
    peak, clipped = check_peak_and_clipped(clipping_array(n, seed=n))
    assert peak <= 2.0
    assert 0.0 <= clipped <= 1.0


def test_clipped_fraction_is_meaningful_on_large_random_arrays(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qc, "_CHUNK_ROWS", 7)
    accel = clipping_array(10_001, seed=3)
    peak, clipped = check_peak_and_clipped(accel)
    assert peak == 2.0
    # P(|a| >= 1.95 g on one axis) = 0.5 / 4.4; on at least one of three axes
    assert clipped == pytest.approx(1 - (3.9 / 4.4) ** 3, abs=0.02)


def test_a_row_clipped_on_several_axes_counts_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qc, "_CHUNK_ROWS", 7)
    accel = np.zeros((21, 3))
    accel[3] = [2.0, 2.0, -2.0]  # three axes, one row
    accel[6] = [2.0, -1.99, 0.0]  # last row of the first chunk, two axes
    accel[7] = [0.0, 0.0, 1.97]  # first row of the second chunk
    accel[20] = [-2.0, -2.0, 0.3]  # last row of the recording
    assert check_peak_and_clipped(accel) == (2.0, 4 / 21)


def test_negative_clipping_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qc, "_CHUNK_ROWS", 7)
    accel = np.full((30, 3), 0.5)
    accel[[2, 9, 10, 29], 1] = -8.0
    accel[17, 2] = -7.96  # within the margin
    accel[18, 0] = -7.94  # just outside it
    accel[5, 0] = 7.0  # the positive side stays below the limit
    assert check_peak_and_clipped(accel) == (8.0, 5 / 30)


def test_chunks_within_the_margin_of_the_peak_are_counted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk whose own peak is below the recording's but within the margin still holds
    clipped samples; a chunk whose peak is just below the limit holds none."""
    monkeypatch.setattr(qc, "_CHUNK_ROWS", 7)
    accel = np.zeros((28, 3))
    accel[1, 0] = 4.0  # chunk 0: the peak
    accel[9, 1] = -3.96  # chunk 1: within the margin of the peak
    accel[12, 2] = 3.955
    accel[16, 0] = 3.94  # chunk 2: just below the limit
    accel[27] = [-3.96, 3.97, 3.96]  # chunk 3: within the margin on every axis
    assert check_peak_and_clipped(accel) == (4.0, 4 / 28)


@pytest.mark.parametrize("chunk_rows", [7, 1 << 18])
def test_non_contiguous_inputs(monkeypatch: pytest.MonkeyPatch, chunk_rows: int) -> None:
    monkeypatch.setattr(qc, "_CHUNK_ROWS", chunk_rows)
    base = clipping_array(101, seed=11)
    fortran = np.asfortranarray(base)
    assert not fortran.flags.c_contiguous
    assert check_peak_and_clipped(fortran) == check_peak_and_clipped(base)
    strided = base[::2]
    assert not strided.flags.c_contiguous
    check_peak_and_clipped(strided)
    check_peak_and_clipped(np.asfortranarray(base)[1::3])
    check_peak_and_clipped(base[::-1])


def test_empty_and_peak_at_or_below_one_and_a_half_g(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qc, "_CHUNK_ROWS", 7)
    assert qc._peak_and_clipped(np.empty((0, 3))) == (0.0, 0.0)
    at_limit = np.full((20, 3), 1.5)
    at_limit[::2] *= -1
    assert check_peak_and_clipped(at_limit) == (1.5, 0.0)
    below = np.linspace(-1.4, 1.4, 60).reshape(20, 3)
    assert check_peak_and_clipped(below) == pytest.approx((1.4, 0.0))
    # just above 1.5 g the clipped fraction counts
    above = at_limit.copy()
    above[13, 1] = 1.51
    assert check_peak_and_clipped(above) == (1.51, 1.0)  # every row within 0.05 g of it


def small_recording(accel: np.ndarray[Any, Any], fs: float = 25.0) -> Recording:
    time_s = 1.7e9 + np.arange(accel.shape[0]) / fs
    return Recording(time_s=time_s, accel_g=accel, sampling_rate_hz=fs,
                     device=DeviceInfo(format="csv"))


@pytest.mark.parametrize("chunk_rows", [7, 1 << 18])
def test_recording_qc_reports_the_reference_figures(monkeypatch: pytest.MonkeyPatch,
                                                    chunk_rows: int) -> None:
    monkeypatch.setattr(qc, "_CHUNK_ROWS", chunk_rows)
    accel = np.asfortranarray(clipping_array(250, seed=5) * 1.5)  # +-3 g, clipped
    before = accel.copy()
    figures = recording_qc(small_recording(accel))
    peak, clipped = reference_peak_and_clipped(np.ascontiguousarray(accel))
    assert figures["peak_abs_accel_g"] == round(peak, 4) == 3.0
    assert figures["clipped_fraction"] == round(clipped, 6)
    assert figures["clipped_fraction"] > 0
    assert figures["measured_rate_hz"] == 25.0
    np.testing.assert_array_equal(accel, before)
    quiet = recording_qc(small_recording(np.tile([0.0, 0.0, 1.0], (100, 1))))
    assert (quiet["peak_abs_accel_g"], quiet["clipped_fraction"]) == (1.0, 0.0)


# -- 2. window mean and SD, calibration error, never moved ---------------------------------

def reference_mean_sd(accel: np.ndarray[Any, Any], n: int
                      ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    k = accel.shape[0] // n
    windows = np.ascontiguousarray(accel, dtype=np.float64)[:k * n].reshape(-1, n, 3)
    return windows.mean(axis=1), windows.std(axis=1)


def check_mean_sd(accel: np.ndarray[Any, Any], n: int) -> None:
    before = accel.copy(order="K")
    mean, sd = window_mean_sd(accel, n)
    ref_mean, ref_sd = reference_mean_sd(accel, n)
    assert mean.shape == sd.shape == (accel.shape[0] // n, 3)
    assert np.allclose(mean, ref_mean, rtol=1e-12, atol=1e-12)
    assert np.allclose(sd, ref_sd, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(accel, before)


def noisy_posture(n_samples: int, seed: int, noise_g: float = 0.01) -> np.ndarray[Any, Any]:
    """About 1 g on a slowly changing orientation plus noise: an offset large against the
    SD, where a one-pass variance would lose digits."""
    rng = np.random.default_rng(seed)
    turn = np.linspace(0, 3, n_samples)
    posture = np.column_stack([np.sin(turn), 0.3 * np.cos(turn), np.cos(turn)])
    return posture + rng.normal(0, noise_g, size=(n_samples, 3))


@pytest.mark.parametrize("chunk_samples", [1, 10, 64, 1 << 20])
@pytest.mark.parametrize(("length", "n"), [(0, 5), (4, 5), (5, 5), (99, 5), (100, 5),
                                           (101, 7), (250, 2), (1000, 100), (1003, 250)])
def test_window_mean_sd_matches_numpy(monkeypatch: pytest.MonkeyPatch, chunk_samples: int,
                                      length: int, n: int) -> None:
    monkeypatch.setattr(skdh_core, "_CHUNK_SAMPLES", chunk_samples)
    check_mean_sd(noisy_posture(length, seed=length + n), n)


@pytest.mark.parametrize("chunk_samples", [10, 1 << 20])
def test_window_mean_sd_on_strided_inputs(monkeypatch: pytest.MonkeyPatch,
                                          chunk_samples: int) -> None:
    monkeypatch.setattr(skdh_core, "_CHUNK_SAMPLES", chunk_samples)
    base = noisy_posture(1201, seed=2)
    fortran = np.asfortranarray(base)
    assert fortran.flags.f_contiguous and not fortran.flags.c_contiguous
    check_mean_sd(fortran, 6)
    assert fortran.flags.f_contiguous  # still the caller's array, as it was
    check_mean_sd(base[::2], 6)
    check_mean_sd(base.astype(np.float32), 6)  # windowed in float64


def still_then_moving(fs: float, offsets: list[float], moving_windows: int,
                      tail: int = 0) -> np.ndarray[Any, Any]:
    """10-s windows: one still window per norm in ``offsets`` (the device reads
    ``1 + offset`` g when still, pointing a different way in each), then
    ``moving_windows`` windows of arm swing, then ``tail`` still samples at 2 g."""
    n = round(10 * fs)
    rng = np.random.default_rng(1)
    parts = []
    for k, offset in enumerate(offsets):
        direction = np.array([np.sin(k), 0.2, np.cos(k)])
        direction /= np.linalg.norm(direction)
        noise = rng.normal(0, 0.002, size=(n, 3))
        noise -= noise.mean(axis=0)  # the window's mean is exactly the posture
        parts.append(direction * (1.0 + offset) + noise)
    t = np.arange(moving_windows * n) / fs
    parts.append(np.column_stack([0.5 * np.sin(2 * np.pi * t), 0.1 * np.cos(2 * np.pi * t),
                                  np.ones_like(t)]))
    parts.append(np.tile([0.0, 0.0, 2.0], (tail, 1)))
    return np.concatenate(parts)


@pytest.mark.parametrize("chunk_samples", [250, 1 << 20])
def test_calibration_error_of_still_windows(monkeypatch: pytest.MonkeyPatch,
                                            chunk_samples: int) -> None:
    monkeypatch.setattr(skdh_core, "_CHUNK_SAMPLES", chunk_samples)
    fs = 10.0
    # a device reading 1.02 g when still is 0.02 g off
    assert calibration_error_g(still_then_moving(fs, [0.02], 0), fs) == pytest.approx(0.02)
    accel = np.asfortranarray(still_then_moving(fs, [0.02, -0.03, 0.0, 0.01], 3, tail=57))
    before = accel.copy()
    # the moving windows and the 2 g tail (less than a window) are left out
    assert calibration_error_g(accel, fs) == pytest.approx((0.02 + 0.03 + 0.0 + 0.01) / 4,
                                                           abs=1e-6)
    np.testing.assert_array_equal(accel, before)
    # a window still on two axes but not the third is not still
    shaky = still_then_moving(fs, [0.02, 0.05], 0)
    shaky[100:200, 0] += np.where(np.arange(100) % 2, 0.02, -0.02)
    assert calibration_error_g(shaky, fs) == pytest.approx(0.02)


def test_calibration_error_none_without_a_still_window() -> None:
    fs = 10.0
    assert calibration_error_g(still_then_moving(fs, [], 4), fs) is None
    assert calibration_error_g(still_then_moving(fs, [0.02], 0)[:99], fs) is None
    assert calibration_error_g(np.zeros((0, 3)), fs) is None
    # SD just above the still threshold on one axis
    barely = np.tile([0.0, 0.0, 1.0], (200, 1))
    barely[:, 1] += np.where(np.arange(200) % 2, 1.01 * STILL_SD_G, -1.01 * STILL_SD_G)
    assert calibration_error_g(barely, fs) is None


@pytest.mark.parametrize("chunk_samples", [100, 1 << 20])
def test_never_moved(monkeypatch: pytest.MonkeyPatch, chunk_samples: int) -> None:
    monkeypatch.setattr(skdh_core, "_CHUNK_SAMPLES", chunk_samples)
    fs = 2.0  # 120-sample minutes
    rng = np.random.default_rng(4)
    motionless = np.array([0.1, -0.2, 0.97]) + rng.normal(0, 0.003, size=(30 * 120 + 17, 3))
    assert never_moved(motionless, fs) is True
    assert never_moved(np.asfortranarray(motionless), fs) is True
    for minute in (0, 13, 29):  # first, a middle and the last full minute
        moved = motionless.copy()
        moved[minute * 120 + 40:minute * 120 + 60, 0] += 0.5
        assert never_moved(moved, fs) is False, minute
        assert never_moved(np.asfortranarray(moved), fs) is False, minute


# -- 3. streamed sha256 and header -----------------------------------------------------------

@pytest.mark.parametrize("chunk_bytes", [7, 1000, 16 << 20])
@pytest.mark.parametrize("head_bytes", [0, 1, 999, 1000, 1001, 6999, 7000, 7001, 20_000])
def test_sha256_and_head_stream_the_whole_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               chunk_bytes: int, head_bytes: int) -> None:
    import wearflow.storage

    monkeypatch.setattr(wearflow.storage, "_STREAM_CHUNK_BYTES", chunk_bytes)
    data = np.random.default_rng(head_bytes).bytes(7000)
    (tmp_path / "rec.bin").write_bytes(data)
    digest, head = Store(str(tmp_path)).sha256_and_head("rec.bin", head_bytes)
    assert digest == hashlib.sha256(data).hexdigest()
    assert head == data[:head_bytes]


def test_sha256_and_head_of_small_empty_and_missing_files(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import wearflow.storage

    monkeypatch.setattr(wearflow.storage, "_STREAM_CHUNK_BYTES", 16)
    store = Store(tmp_path.as_uri())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/small.bin").write_bytes(b"MD tiny header")
    assert store.sha256_and_head("sub/small.bin", 65536) == (
        hashlib.sha256(b"MD tiny header").hexdigest(), b"MD tiny header")
    (tmp_path / "empty.bin").write_bytes(b"")
    assert store.sha256_and_head("empty.bin", 100) == (hashlib.sha256(b"").hexdigest(), b"")
    with pytest.raises(StorageError) as caught:
        store.sha256_and_head("sub/missing.bin", 100)
    assert caught.value.subject == store.uri("sub/missing.bin")
    assert caught.value.subject == (tmp_path / "sub/missing.bin").as_uri()
    assert "not found" in caught.value.message


@pytest.mark.parametrize("gzipped", [False, True])
def test_inspect_finds_a_serial_late_in_the_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 gzipped: bool) -> None:
    """A serial near the end of the 8 kB header_serial looks at, behind bytes that do not
    compress: the streamed head holds enough of the file, gzipped or not."""
    import gzip

    import wearflow.storage

    monkeypatch.setattr(wearflow.storage, "_STREAM_CHUNK_BYTES", 1000)
    rng = np.random.default_rng(8)
    filler = rng.bytes(8150)  # the label ends 7 bytes before the 8192th
    for name, body in [("late.bin", filler + b"\r\nDevice Unique Serial Code: 4242\r\n"),
                       ("beyond.bin", filler * 2 + b"\r\nDevice Unique Serial Code: 99\r\n")]:
        data = body + rng.bytes(200_000)
        if gzipped:
            data = gzip.compress(data)
        (tmp_path / name).write_bytes(data)
        expected = header_serial(data)
        assert expected == ("4242" if name == "late.bin" else None)
        assert inspect_file(Store(str(tmp_path)), name) == (hashlib.sha256(data).hexdigest(),
                                                            expected)


def real_files() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real recordings not found at {REAL}")
    return REAL


@pytest.mark.parametrize("chunk_bytes", [1000, 16 << 20])
@pytest.mark.parametrize("path", ["cwa/skdh_ax3_sample.cwa", "cwa/stepcount_tiny-sample.cwa.gz",
                                  "geneactiv_bin/ggir_history_TESTfile.bin",
                                  "geneactiv_bin/skdh_gnactv_sample.bin"])
def test_inspect_real_files(monkeypatch: pytest.MonkeyPatch, chunk_bytes: int,
                            path: str) -> None:
    import wearflow.storage

    real = real_files()
    monkeypatch.setattr(wearflow.storage, "_STREAM_CHUNK_BYTES", chunk_bytes)

    def no_whole_read(self: Store, path: str) -> bytes:
        raise AssertionError("inspect_file read the whole file at once")

    monkeypatch.setattr(Store, "read_bytes", no_whole_read)
    whole = (real / path).read_bytes()
    expected_serial = header_serial(whole)
    assert expected_serial  # each of these headers records its device
    assert inspect_file(Store(str(real)), path) == (hashlib.sha256(whole).hexdigest(),
                                                    expected_serial)


# -- 4. the worker: integrity check and stage seconds ---------------------------------------

STUDY = """\
study: FAST
input: raw/
output: results/
files:
  sensor: ["{participant}_{side}.cwa"]
solutions:
  - name: wrist
    pipeline: builtin:wrist
"""


def write_recording(path: Path, seed: int, hours: float = 2.0) -> None:
    rec, _ = generate_recording(seed=seed, days=hours / 24, sampling_rate_hz=25.0)
    write_cwa(path, rec.time_s, rec.accel_g, rec.temperature_c, 25.0, serial=seed)


@pytest.fixture
def study_root(tmp_path: Path) -> Path:
    """A one-file study: P1_L.cwa, 2 h at 25 Hz."""
    root = tmp_path / "study"
    (root / "raw").mkdir(parents=True)
    write_recording(root / "raw/P1_L.cwa", seed=1)
    (root / "study.yaml").write_text(STUDY)
    return root


def planned_task(root: Path) -> TaskSpec:
    """The study's one task, as the runner plans it: catalog, state rows, make_plan."""
    study = load_study(root)
    solutions = [load_solution(c) for c in study.solutions]
    stores = [Store(loc, study.storage_options) for loc in study.input]
    state = State(study.state_url)
    try:
        state.files.sync(catalog.scan(stores, study.files), [s.root_uri for s in stores])
        plan = make_plan(study, state.files.current(), solutions, {})
    finally:
        state.close()
    (task,) = plan.to_run
    assert task.sha256 == hashlib.sha256((root / "raw/P1_L.cwa").read_bytes()).hexdigest()
    return task


def written_results(root: Path) -> list[Path]:
    folder = root / "results/single-wrist-processed"
    return sorted(folder.rglob("*")) if folder.exists() else []


def test_changed_bytes_fail_and_write_nothing(study_root: Path) -> None:
    task = planned_task(study_root)
    write_recording(study_root / "raw/P1_L.cwa", seed=2)  # another valid recording
    outcome = execute(task, "run-changed")
    assert outcome.state == "failed"
    assert outcome.key == task.key
    assert outcome.message is not None
    assert "file changed since it was cataloged" in outcome.message
    assert outcome.result_dir is None
    assert outcome.transient is False
    assert written_results(study_root) == []


def test_a_hash_thread_that_fails_is_not_reported_as_a_changed_file(
        study_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = planned_task(study_root)

    def no_memory(data: bytes) -> str:
        raise MemoryError

    monkeypatch.setattr("wearflow.worker.sha256_bytes", no_memory)
    outcome = execute(task, "run-hash-oom")
    assert (outcome.state, outcome.message) == ("failed", "out of memory while verifying the file")
    assert written_results(study_root) == []


def test_the_check_waits_for_a_hash_that_ends_after_decoding(
        study_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hash runs beside decoding: when it is still running once the bytes are decoded,
    the worker waits for it rather than processing bytes it has not checked."""
    import wearflow.worker

    task = planned_task(study_root)
    write_recording(study_root / "raw/P1_L.cwa", seed=2)
    decoded = threading.Event()
    real_read, real_sha = wearflow.worker.read_recording, wearflow.worker.sha256_bytes

    def read_then_signal(*args: Any, **kwargs: Any) -> Recording:
        try:
            return real_read(*args, **kwargs)
        finally:
            decoded.set()

    def sha_after_decoding(data: bytes) -> str:
        decoded.wait(timeout=10)
        return str(real_sha(data))

    monkeypatch.setattr(wearflow.worker, "read_recording", read_then_signal)
    monkeypatch.setattr(wearflow.worker, "sha256_bytes", sha_after_decoding)
    outcome = execute(task, "run-late-hash")
    assert decoded.is_set()
    assert (outcome.state, outcome.result_dir) == ("failed", None)
    assert outcome.message is not None
    assert "file changed since it was cataloged" in outcome.message
    assert written_results(study_root) == []


def test_changed_and_undecodable_reports_the_change(study_root: Path) -> None:
    task = planned_task(study_root)
    garbage = b"\x00not a sensor file\xff" * 500
    (study_root / "raw/P1_L.cwa").write_bytes(garbage)
    # with the bytes as cataloged, these fail in the decoder...
    as_cataloged = dataclasses.replace(task, sha256=hashlib.sha256(garbage).hexdigest())
    decoder = execute(as_cataloged, "run-garbage")
    assert (decoder.state, decoder.tag) == ("failed", "DATA_ISSUE")
    assert decoder.message is not None
    assert "file changed" not in decoder.message
    # ...but cataloged as other bytes, the change is the reason
    outcome = execute(task, "run-changed-garbage")
    assert outcome.state == "failed"
    assert outcome.message is not None
    assert "file changed since it was cataloged" in outcome.message
    assert decoder.message not in outcome.message
    assert outcome.tag != decoder.tag
    assert written_results(study_root) == []


def test_a_task_that_runs_reports_its_stage_seconds(study_root: Path) -> None:
    task = planned_task(study_root)
    outcome = execute(task, "run-ok")
    assert outcome.state == "done", outcome.message
    names = [name for name, _ in outcome.stage_s]
    assert sorted(names) == sorted(STAGES)  # each stage once
    assert all(seconds >= 0 for _, seconds in outcome.stage_s)
    assert outcome.result_dir is not None
    folder = study_root / "results" / outcome.result_dir
    assert outcome.result_dir.startswith("single-wrist-processed/wrist/P1/P1_L.cwa/")
    figures = json.loads((folder / "qc.json").read_text())
    # the file's figures are the reference ones of the decoded recording
    recording = read_recording((study_root / "raw/P1_L.cwa").read_bytes(), task.uri)
    peak, clipped = reference_peak_and_clipped(recording.accel_g)
    assert figures["peak_abs_accel_g"] == round(peak, 4)
    assert figures["clipped_fraction"] == round(clipped, 6)
    n = round(10 * recording.sampling_rate_hz)
    mean, sd = reference_mean_sd(recording.accel_g, n)
    still = np.all(sd < STILL_SD_G, axis=1)
    assert still.any()
    expected = float(np.mean(np.abs(np.linalg.norm(mean[still], axis=1) - 1.0)))
    assert figures["calibration_error_before_g"] == pytest.approx(expected, abs=1e-6)


def test_run_report_sums_stage_seconds(study_root: Path) -> None:
    first = run_study(load_study(study_root), executor=InlineExecutor())
    assert (first.executed, first.done, first.failed) == (1, 1, 0)
    assert set(first.task_stage_s) == STAGES
    assert all(seconds >= 0 for seconds in first.task_stage_s.values())
    assert len(written_results(study_root)) > 0
    again = run_study(load_study(study_root), executor=InlineExecutor())
    assert again.executed == 0
    assert again.task_stage_s == {}  # this run's tasks only


# -- 5. per-chunk extremes and the time checks, where the reader checks its samples ------

@pytest.mark.parametrize("chunk_rows", [1, 7, 1 << 18])
@pytest.mark.parametrize("n", [1, 6, 7, 8, 50])
def test_accel_extremes_are_the_min_and_max_of_each_chunk(chunk_rows: int, n: int) -> None:
    accel = np.random.default_rng(n).normal(0, 2, (n, 3))
    ext = accel_extremes(accel, chunk_rows)
    starts = range(0, n, chunk_rows)
    assert ext.low_g.tolist() == [accel[i:i + chunk_rows].min() for i in starts]
    assert ext.high_g.tolist() == [accel[i:i + chunk_rows].max() for i in starts]
    assert ext.chunk_peak_g.max() == np.abs(accel).max()
    assert ext.all_finite


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("row", [0, 7, 13])
def test_accel_extremes_see_any_non_finite_value(bad: float, row: int) -> None:
    accel = np.zeros((14, 3))
    accel[row, 1] = bad
    assert not accel_extremes(accel, 7).all_finite


@pytest.mark.parametrize("chunk", [1, 2, 5, 1 << 18])
def test_strictly_increasing_across_chunk_boundaries(chunk: int) -> None:
    t = np.arange(11, dtype=np.float64)
    assert strictly_increasing(t, chunk)
    assert strictly_increasing(t[:1], chunk) and strictly_increasing(t[:0], chunk)
    for i in range(1, 11):  # a repeat or a step back anywhere, a NaN anywhere
        for value in (t[i - 1], t[i - 1] - 0.5, np.nan):
            bad = t.copy()
            bad[i] = value
            assert not strictly_increasing(bad, chunk), (i, value)


def test_validate_refuses_a_nan_time_inside_the_recording() -> None:
    t = np.arange(10, dtype=np.float64) + 1.7e9
    t[5] = np.nan
    rec = Recording(time_s=t, accel_g=np.zeros((10, 3)), sampling_rate_hz=1.0,
                    device=DeviceInfo("csv"))
    with pytest.raises(ReaderError, match="not strictly increasing"):
        rec.validate("file:///x.csv")


def _finished(time_s: np.ndarray[Any, Any], accel: np.ndarray[Any, Any]) -> Recording:
    return finish("file:///x.csv", time_s=time_s, accel_g=accel, temperature_c=None,
                  sampling_rate_hz=10.0, device=DeviceInfo("csv"), flags=[])


def test_reader_extremes_describe_the_samples_it_returns() -> None:
    rng = np.random.default_rng(3)
    t = 1.7e9 + np.arange(2000) / 10.0
    accel = rng.normal(0, 1, (2000, 3))
    clean = _finished(t, accel)
    assert clean.extremes is not None
    assert clean.extremes.low_g.tolist() == accel_extremes(clean.accel_g).low_g.tolist()
    # the peak sits on a dropped sample: non-finite time, then a step back in time
    for broken in ("nan_time", "step_back"):
        t2, a2 = t.copy(), accel.copy()
        a2[700] = [9.0, -9.0, 9.0]
        if broken == "nan_time":
            t2[700] = np.nan
        else:
            t2[700] = t2[699] - 1.0
        rec = _finished(t2, a2)
        assert rec.n_samples == 1999
        assert rec.extremes is not None and rec.extremes.chunk_peak_g.max() < 9.0
        assert recording_qc(rec)["peak_abs_accel_g"] == round(float(np.abs(rec.accel_g).max()), 4)
    # a non-finite acceleration value drops its row, with the flag
    a3 = accel.copy()
    a3[5, 2] = np.inf
    rec = _finished(t, a3)
    assert rec.n_samples == 1999 and "non_finite_samples_dropped=1" in rec.flags
    assert rec.extremes is not None and rec.extremes.all_finite
