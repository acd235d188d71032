"""The compiled kernels of the streaming passes against their plain numpy references:
equal to the bit, so every table downstream is the numpy code's."""

from __future__ import annotations

import numpy as np
import pytest

from wearflow.streaming import kernels


def _blocks(rng: np.random.Generator, lengths: list[int]) -> tuple[np.ndarray, np.ndarray]:
    heads = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
    raw = rng.normal(0.0, 1.0, (kernels.RAW_ROWS, int(sum(lengths))))
    raw[3] = rng.uniform(20.0, 35.0, raw.shape[1])  # temperature
    return raw, heads


# every branch of numpy's pairwise sum: under 8, up to 128, halves above (several levels)
LENGTHS = [1, 2, 7, 8, 9, 15, 16, 17, 100, 127, 128, 129, 130, 200, 256, 257, 1000, 1001,
           4099, 20_000]


@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("shift", [False, True])
def test_block_sums_equal_numpy_reduceat_to_the_bit(mode: int, shift: bool) -> None:
    rng = np.random.default_rng(mode * 2 + shift)
    raw, heads = _blocks(rng, LENGTHS + list(rng.integers(1, 3000, 40)))
    offset, scale = rng.normal(0, 0.05, 3), rng.normal(1, 0.05, 3)
    temperature_scale = rng.normal(0, 0.01, 3)
    got = kernels._block_sums(raw, heads, mode, offset, scale, temperature_scale, 27.5, shift)
    want = kernels.block_sums_numpy(raw, heads, mode, offset, scale, temperature_scale,
                                    27.5, shift)
    assert got.shape == want.shape == (heads.size, (7, 8, 14)[mode])
    assert np.array_equal(got, want)  # not allclose: the same bits
    if mode == 0:
        assert got[0, 3] == raw[0, 0] ** 2  # a 1-sample block's square


def test_block_sums_of_a_strided_view_equal_a_copy() -> None:
    """The passes hand the kernel views (a chunk's rows after the carried block)."""
    rng = np.random.default_rng(9)
    raw, heads = _blocks(rng, [100] * 50)
    wide = np.zeros((kernels.RAW_ROWS, raw.shape[1] * 2))
    wide[:, ::2] = raw
    view = wide[:, ::2]
    assert np.array_equal(kernels.still_sums(view, heads), kernels.still_sums(raw, heads))


def test_feature_sums_enmo_is_zero_below_one_g_and_calibration_applies() -> None:
    raw = np.array([[0.5, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [30.0, 30.0, 30.0]])
    heads = np.array([0, 1, 2], dtype=np.int64)
    sums = kernels.feature_sums(raw, heads, np.zeros(3), np.ones(3), np.zeros(3), 0.0,
                                shift=False, extremes=False)
    assert sums[:, 6].tolist() == [0.0, 0.0, 1.0]  # ENMO = max(|a| - 1, 0)
    doubled = kernels.feature_sums(raw, heads, np.full(3, 0.5), np.full(3, 2.0), np.zeros(3),
                                   0.0, shift=False, extremes=False)
    assert doubled[:, 0].tolist() == [2.0, 1.0, 5.0]  # (x + 0.5) * 2
    warm = kernels.feature_sums(raw, heads, np.zeros(3), np.ones(3), np.full(3, 0.1), 20.0,
                                shift=True, extremes=True)
    assert warm[:, 0].tolist() == pytest.approx([1.5, 1.0, 3.0])  # + (30 - 20) * 0.1
    assert warm[:, 8].tolist() == warm[:, 11].tolist() == warm[:, 0].tolist()  # one sample


def test_peak_and_clipped_count_equal_numpy() -> None:
    rng = np.random.default_rng(4)
    accel = rng.normal(0, 2.0, (10_007, 3))
    assert kernels.peak_abs_g(accel) == float(np.max(np.abs(accel)))
    assert kernels.peak_abs_g(np.empty((0, 3))) == 0.0
    limit = 3.5
    hit = (accel >= limit) | (accel <= -limit)
    assert kernels.count_clipped(accel, limit) == int(np.count_nonzero(hit.any(axis=1))) > 0


def test_numba_is_imported_only_when_a_kernel_first_runs() -> None:
    """Commands that decode nothing (status, the dashboard) do not pay numba's import."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "import wearflow.state, wearflow.catalog, wearflow.streaming.kernels as k\n"
            "assert 'numba' not in sys.modules, 'imported early'\n"
            "assert k.peak_abs_g(np.array([[1.0, -3.0, 2.0]])) == 3.0\n"
            "assert 'numba' in sys.modules and type(k.peak_abs_g).__module__.startswith('numba')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    # a worker's warm-up loads them for the layouts the passes hand over (a chunk's rows
    # and a view of them), so the first task does not
    warm = ("import sys\n"
            "from wearflow import _jit\n"
            "import wearflow.streaming.kernels as k, wearflow.readers._cwa_kernels as r\n"
            "_jit.prepare('wearflow.streaming.kernels', 'wearflow.readers._cwa_kernels',\n"
            "             'wearflow.readers._finish_kernels')\n"
            "layouts = {s[0].layout for s in k._block_sums.signatures}\n"
            "assert layouts == {'C', 'A'}, layouts\n"
            "assert not r.word_checks.signatures[0][0].mutable  # blocks read from bytes\n")
    subprocess.run([sys.executable, "-c", warm], check=True, timeout=300)


def test_near_peak_rows_count_the_clipped_samples_in_one_pass() -> None:
    """The first pass keeps the rows that may end near the peak; their count at the end
    is the count over the whole recording a second pass would make."""
    from wearflow.qc import CLIP_MARGIN_G
    from wearflow.streamed import _NearPeak

    rng = np.random.default_rng(12)
    chunks = [np.clip(rng.normal(0, s, (20_000, 3)), -8.0, 8.0) for s in (0.3, 1.0, 3.0, 0.5)]
    near, peak = _NearPeak(), 0.0
    for chunk in chunks:  # the peak rises chunk by chunk: kept rows are pruned as it does
        got = near.add(chunk, peak)
        assert got == kernels.peak_abs_g(chunk)
        peak = max(peak, got)
    whole = np.concatenate(chunks)
    assert peak == 8.0
    want = kernels.count_clipped(whole, peak - CLIP_MARGIN_G)
    assert near.count(peak) == want > 0
    near.MAX_KEPT = 10  # a recording sitting at its peak: it gives up, a pass counts
    near.add(chunks[2], peak)
    assert near.count(peak) is None
