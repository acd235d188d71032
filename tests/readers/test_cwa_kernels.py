"""The streaming .cwa decode's compiled steps against the whole-file reader's numpy
steps: the same values to the bit, on random blocks of every layout."""

from __future__ import annotations

import numpy as np
import pytest

from wearflow.readers import _cwa_decode as dec
from wearflow.readers import _cwa_format as fmt
from wearflow.readers import _cwa_kernels as kernels
from wearflow.readers._cwa_stream import _samples


def _random_blocks(rng: np.random.Generator, n: int, axes_packing: int) -> np.ndarray:
    blocks = np.zeros(n, fmt.BLOCK_DTYPE)
    blocks["payload"] = rng.integers(0, 256, (n, fmt.PAYLOAD_BYTES), dtype=np.uint8)
    blocks["axes_packing"] = axes_packing
    blocks["light_scale"] = rng.integers(0, 1 << 16, n, dtype=np.uint16)
    return blocks


@pytest.mark.parametrize("axes_packing", [0x30, 0x32, 0x62, 0x92])
def test_unpacked_samples_equal_the_whole_file_decode(axes_packing: int) -> None:
    rng = np.random.default_rng(axes_packing)
    blocks = _random_blocks(rng, 300, axes_packing)
    capacity = dec.format_capacity(axes_packing)
    counts = rng.integers(1, capacity + 1, len(blocks)).astype(np.int64)
    counts[:100] = capacity  # full blocks take numpy's other path
    starts = np.cumsum(counts) - counts + 12_345
    positions, accel = _samples(blocks, counts, starts)
    assert np.array_equal(accel, dec.decode_accel(blocks, counts))
    slots = np.arange(int(counts.max()))
    want = (starts[:, None] + slots[None, :])[slots[None, :] < counts[:, None]]
    assert np.array_equal(positions, want.astype(np.float64))
    assert accel.shape == (int(counts.sum()), 3)


def test_interp_equals_numpy_interp_to_the_bit() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        xp = np.cumsum(rng.uniform(1.0, 200.0, int(rng.integers(1, 400))))
        fp = 1.7e9 + xp / 100.0 + rng.normal(0.0, 1e-3, xp.size)
        x = np.sort(np.concatenate((rng.uniform(xp[0] - 50, xp[-1] + 50, 2000),
                                    xp[rng.integers(0, xp.size, 20)])))  # on anchors too
        assert np.array_equal(kernels.interp(x, xp, fp), np.interp(x, xp, fp))
    xp, fp = np.array([0.0, 10.0, 20.0]), np.array([5.0, 6.0, 8.0])
    unsorted = np.array([15.0, 2.0, 25.0, -1.0, 10.0])  # still numpy's, if not in order
    assert kernels.interp(unsorted, xp, fp).tolist() == np.interp(unsorted, xp, fp).tolist()


def test_word_checks_equal_numpy() -> None:
    rng = np.random.default_rng(8)
    words = rng.integers(0, 1 << 16, (500, 256), dtype=np.uint16)
    words[:, -1] = -words[:, :-1].sum(axis=1, dtype=np.uint16)  # a valid checksum ...
    words[::3, 5] += 1  # ... broken on every third block
    words[10], words[11] = 0xFFFF, 0  # erased flash, both patterns
    got = kernels.word_checks(words)
    want = dec.word_checks_numpy(words)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert got[0][1] and not got[0][0] and got[1][10] and got[1][11] and not got[1][12]


def test_plain_chunk_scan_matches_the_numpy_checks() -> None:
    from wearflow.readers import _finish_kernels as finish

    rng = np.random.default_rng(2)
    time_s = 1.7e9 + np.cumsum(rng.uniform(0.005, 0.015, 5000))
    for at, gap_s in ((100, 3.0), (2000, 50.0), (4998, 1.5)):  # three gaps over 1 s
        time_s[at:] += gap_s
    accel = rng.normal(0, 1, (5000, 3))
    plain, gaps = finish.plain_chunk(time_s, accel, 1.0)
    steps = np.diff(time_s)
    assert plain and gaps.tolist() == np.flatnonzero(steps > 1.0).tolist() == [99, 1999, 4997]
    for broken in ("nan_accel", "inf_time", "repeat", "back"):
        t, a = time_s.copy(), accel.copy()
        if broken == "nan_accel":
            a[7, 2] = np.nan
        elif broken == "inf_time":
            t[9] = np.inf
        elif broken == "repeat":
            t[11] = t[10]
        else:
            t[12] = t[10]
        assert not finish.plain_chunk(t, a, 1.0)[0], broken
    assert finish.finite_range(np.array([np.nan, 3.0, -np.inf, 1.0])) == (1.0, 3.0)
    assert finish.finite_range(np.array([np.nan])) == (np.inf, -np.inf)
