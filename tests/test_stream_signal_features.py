"""The stream's wake signal features (``streaming.signal_features``) against SKDH's own
``skdh.features`` kernels and ``SignalFeatures`` endpoint on identical input.

Tolerances: the features without an FFT (signal, sample and permutation entropy) and
the power spectral sum agree with SKDH to 1e-12. The other three go through an FFT,
and SKDH's Fortran real FFT is itself off by about 1e-8 (relative) from the exact
transform, where numpy's is off by about 1e-15: so these are compared with SKDH to a
relative 1e-6 and with an extended-precision DFT to 1e-9.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from wearflow.streaming import signal_features as sf

FS_HZ = 0.2  # the 5-s epochs' rate, what SKDH tells the features
EXACT = ("signal_entropy", "sample_entropy", "permutation_entropy", "power_spectral_sum")


def _enmo_like(n: int, rows: int = 10, seed: int = 0) -> npt.NDArray[np.float64]:
    """Windows of 5-s ENMO: skewed, many exact zeros (ties), one all zero, one flat with
    a spike, one with a range over 1 g (sample entropy's r), one vigorous."""
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.gamma(0.5, 0.03, size=(rows, n)) - 0.01, 0.0)
    x[1] = 0.0
    x[2] = 0.02
    x[2, n // 3] = 0.5
    x[3, rng.integers(0, n, 5)] = 1.6
    x[4] = rng.uniform(0.0, 2.5, n)
    return x


def _skdh_bank_features(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    from skdh import features as feat

    freq = {"padlevel": 2, "low_cutoff": 0.0, "high_cutoff": 10.0}
    bank = feat.Bank()
    bank.add([feat.SignalEntropy(), feat.SampleEntropy(m=4, r=1.0),
              feat.PermutationEntropy(order=3, delay=1, normalize=True),
              feat.PowerSpectralSum(**freq), feat.SpectralFlatness(**freq),
              feat.SpectralEntropy(**freq),
              feat.SPARC(padlevel=4, fc=10.0, amplitude_threshold=0.05)])
    out: npt.NDArray[np.float64] = bank.compute(x, fs=FS_HZ, axis=1)
    return out


@pytest.mark.parametrize("n", [180, 360, 720])
def test_kernels_are_skdh_s(n: int) -> None:
    x = _enmo_like(n)
    mine = sf.window_features(x, FS_HZ)
    theirs = _skdh_bank_features(x)
    for name, a, b in zip(sf.SIGNAL_FEATURES, mine, theirs, strict=True):
        assert np.array_equal(np.isnan(a), np.isnan(b)), name
        tol = {"atol": 1e-12, "rtol": 0.0} if name in EXACT else {"atol": 0.0, "rtol": 1e-6}
        np.testing.assert_allclose(a, b, err_msg=name, **tol)
    assert np.isnan(mine[6][1])  # an all-zero window: SKDH's SPARC is NaN
    assert np.isfinite(mine[1][4]) and mine[1][4] != 0  # the general sample entropy path


def _exact_rfft(a: npt.ArrayLike, n: int | None = None, axis: int = -1
                ) -> npt.NDArray[np.complex128]:
    x = np.asarray(a, dtype=np.longdouble)
    size = int(n if n is not None else x.shape[-1])
    k = np.arange(size // 2 + 1, dtype=np.int64)
    j = np.arange(x.shape[-1], dtype=np.int64)
    angle = -2 * np.pi * np.longdouble(1) * (np.outer(k, j) % size).astype(np.longdouble) / size
    re, im = x @ np.cos(angle).T, x @ np.sin(angle).T
    return re.astype(np.float64) + 1j * im.astype(np.float64)


def test_fft_features_are_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    x = _enmo_like(180, rows=5, seed=1)[[0, 2, 3, 4]]
    mine = sf.window_features(x, FS_HZ)
    monkeypatch.setattr(np.fft, "rfft", _exact_rfft)
    exact = sf.window_features(x, FS_HZ)
    for name, a, b in zip(sf.SIGNAL_FEATURES, mine, exact, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-9, rtol=0.0, err_msg=name)


def test_day_values_are_skdh_s_endpoint() -> None:
    """Windows per segment, half-window steps, the day's mean, 0.0 without a window."""
    from skdh.activity.endpoints import SignalFeatures

    rng = np.random.default_rng(3)
    segments = [np.maximum(rng.gamma(0.5, 0.03, size=s) - 0.01, 0.0)
                for s in (200, 1000, 30, 4000)]
    mine = sf.wake_signal_features(segments)
    assert list(mine) == sf.signal_feature_columns()
    for minutes in sf.SIGNAL_WINDOWS_MIN:
        endpoint = SignalFeatures(window_minutes=minutes)
        results = {name: np.zeros(1) for name in endpoint.name}
        for seg in segments:
            endpoint.predict(results, 0, seg, None, 5, 12)
        endpoint.reset_cached()
        for name, stem in zip(endpoint.name, sf.SIGNAL_FEATURES, strict=True):
            assert name.replace(" ", "_") == f"wake_{minutes}min_{stem}"
            np.testing.assert_allclose(mine[f"wake_{minutes}min_{stem}"], results[name][0],
                                       rtol=1e-6, atol=1e-12, err_msg=name)
    short = sf.wake_signal_features([segments[0]])  # 200 epochs: only 15-min windows
    assert short["wake_15min_sparc"] != 0.0
    assert all(short[f"wake_{m}min_{f}"] == 0.0 for m in (30, 60) for f in sf.SIGNAL_FEATURES)
    assert all(v == 0.0 for v in sf.wake_signal_features([]).values())
