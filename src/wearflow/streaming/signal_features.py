"""Per-day wake signal features of the 5-s ENMO epochs (SKDH's ``SignalFeatures``).

Mirrors ``skdh.activity.endpoints.SignalFeatures`` (0.17.18) as
ActivityLevelClassification runs it for builtin:wrist: for windows of 15, 30 and 60
minutes of epochs (180, 360, 720 epochs), stepped by half a window from each wake
segment's start (a segment shorter than the window gives none), the features of every
window of the day's segments, averaged. The sampling rate the features are told is the
epoch rate, 0.2 Hz. A day with wear but no window keeps SKDH's initial 0.0.

The features, with SKDH's parameters, re-implemented with numpy from the Fortran
kernels of ``skdh.features`` (importing skdh costs about 1 s and 85 MB; a test
compares each kernel with SKDH's on the same windows):

- signal entropy: the bias-corrected histogram entropy (ceil(sqrt(n)) bins), as
  ``exp(H**2) - 2``;
- sample entropy, m = 4, r = 1.0 (an absolute tolerance, in g): ``-log(A/B)``;
- permutation entropy, order 3, delay 1, normalised; ties keep their order;
- power spectral sum, spectral flatness (dB), spectral entropy: the normalised power
  spectrum of the window zero-padded to ``2**(ceil(log2 n) + 2)`` points, 0-10 Hz
  (so every bin but the Nyquist one at 0.2 Hz);
- SPARC: spectral arc length of the magnitude spectrum zero-padded to
  ``2**(ceil(log2 n) + 4)`` points, cut-off 10 Hz, amplitude threshold 0.05.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

SIGNAL_WINDOWS_MIN = (15, 30, 60)
WINDOW_SKIP_FRACTION = 0.5
SIGNAL_FEATURES = ("signal_entropy", "sample_entropy", "permutation_entropy",
                   "power_spectral_sum", "spectral_flatness", "spectral_entropy", "sparc")
"""Column stems in SKDH's order (``wake_<w>min_<feature>``)."""

SAMPLE_ENTROPY_M = 4
SAMPLE_ENTROPY_R = 1.0
PERMUTATION_ORDER = 3
SPECTRAL_PAD = 2
SPECTRAL_LOW_HZ = 0.0
SPECTRAL_HIGH_HZ = 10.0
SPARC_PAD = 4
SPARC_CUTOFF_HZ = 10.0
SPARC_AMPLITUDE = 0.05


def signal_feature_columns() -> list[str]:
    """The table's column names, in builtin:wrist's order."""
    return [f"wake_{w}min_{f}" for w in SIGNAL_WINDOWS_MIN for f in SIGNAL_FEATURES]


def wake_signal_features(segments: list[FloatArray], epoch_s: float = 5.0
                         ) -> dict[str, float]:
    """The day's ``wake_<15|30|60>min_<feature>`` columns from the 5-s ENMO epochs (g)
    of each wake segment (the segments SKDH's endpoints see)."""
    out = dict.fromkeys(signal_feature_columns(), 0.0)
    fs_hz = 1.0 / epoch_s
    for minutes in SIGNAL_WINDOWS_MIN:
        wlen = int(minutes * (60 / epoch_s))
        skip = int(wlen * WINDOW_SKIP_FRACTION)
        views = [np.lib.stride_tricks.sliding_window_view(seg, wlen)[::skip]
                 for seg in segments if seg.size >= wlen]
        if not views:
            continue
        feats = window_features(np.concatenate(views, axis=0), fs_hz)
        for name, values in zip(SIGNAL_FEATURES, feats, strict=True):
            out[f"wake_{minutes}min_{name}"] = float(np.mean(values))
    return out


def window_features(windows: FloatArray, fs_hz: float) -> list[FloatArray]:
    """The seven features of each row of ``windows`` (rows: windows), SKDH's order."""
    x = np.ascontiguousarray(windows, dtype=np.float64)
    power = spectral_features(x, fs_hz)
    return [signal_entropy(x),
            np.array([sample_entropy(row) for row in x]),
            permutation_entropy(x),
            *power,
            sparc(x, fs_hz)]


def signal_entropy(x: FloatArray) -> FloatArray:
    """SKDH's ``SignalEntropy`` of each row."""
    n = x.shape[1]
    k = math.ceil(math.sqrt(n))
    lo, hi = x.min(axis=1), x.max(axis=1)
    # SKDH's sample SD, its formula (shifted by the first value)
    ex2 = np.sum((x - x[:, :1]) ** 2, axis=1)
    ex = x.sum(axis=1) - n * x[:, 0]
    sd = np.sqrt((ex2 - ex**2 / n) / (n - 1))
    sd[sd == 0] = 1.0
    delta = (hi - lo) / (n - 1)
    d1, d2 = (lo - delta / 2) / sd, (hi + delta / 2) / sd
    width = (hi - lo) / k
    width[width == 0] = 1.0
    idx = np.minimum(((x - lo[:, None]) / width[:, None]).astype(np.int64), k - 1)
    rows = np.arange(x.shape[0])[:, None]
    counts = np.bincount((rows * k + idx).ravel(), minlength=x.shape[0] * k)
    h = counts.reshape(x.shape[0], k).astype(np.float64)
    logh = np.log(np.where(h > 0, h, 1.0))
    cnt = h.sum(axis=1)
    nbias = -(k - 1) / (2.0 * cnt)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = -np.sum(h * logh, axis=1) / cnt + np.log(cnt) + np.log((d2 - d1) / k) - nbias
        ent: FloatArray = np.exp(est**2) - 2.0
    ent[d1 == d2] = 0.0
    return ent


def sample_entropy(x: FloatArray, m: int = SAMPLE_ENTROPY_M,
                   r: float = SAMPLE_ENTROPY_R) -> float:
    """SKDH's ``SampleEntropy`` of one window: -log(A/B), A the pairs of templates of
    length m within r (Chebyshev, strict), B those of length m-1 whose next point
    exists."""
    n = x.size
    if np.ptp(x) < r:
        # every pair of points is within r: A and B both count all template pairs
        return -0.0
    close = np.abs(x[:, None] - x[None, :]) < r

    def runs(length: int) -> npt.NDArray[np.bool_]:
        out = close[: n - length + 1, : n - length + 1].copy()
        for s in range(1, length):
            out &= close[s: n - length + 1 + s, s: n - length + 1 + s]
        return out

    # the matrix is symmetric with a True diagonal: count the pairs above it
    ra = runs(m)
    a = (int(ra.sum()) - int(np.trace(ra))) / 2
    rb = runs(m - 1)[:-1, :-1]  # template end before the last point
    b = (int(rb.sum()) - int(np.trace(rb))) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(-np.log(np.float64(a) / np.float64(b)))


def permutation_entropy(x: FloatArray, order: int = PERMUTATION_ORDER) -> FloatArray:
    """SKDH's ``PermutationEntropy`` of each row (delay 1, normalised); ties rank in
    their order of appearance (SKDH's insertion sort)."""
    nrow, n = x.shape
    emb = np.lib.stride_tricks.sliding_window_view(x, order, axis=1)
    ranks = np.argsort(emb, axis=2, kind="stable")
    code = np.sum(ranks * order ** np.arange(order), axis=2)
    ncode = order**order
    counts = np.bincount((np.arange(nrow)[:, None] * ncode + code).ravel(),
                         minlength=nrow * ncode).reshape(nrow, ncode)
    p = counts / (n - order + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p) / np.log(2.0), 0.0)
    pe: FloatArray = -terms.sum(axis=1) / (math.log(math.factorial(order)) / math.log(2.0))
    return pe


def spectral_features(x: FloatArray, fs_hz: float) -> list[FloatArray]:
    """SKDH's ``PowerSpectralSum``, ``SpectralFlatness`` and ``SpectralEntropy`` of each
    row (padlevel 2, 0-10 Hz)."""
    n = x.shape[1]
    nfft = 2 ** (math.ceil(math.log(n) / math.log(2.0)) - 1 + SPECTRAL_PAD)
    hi = min(math.floor(SPECTRAL_HIGH_HZ / (fs_hz / 2) * (nfft - 1) + 1), nfft + 1)
    lo = max(math.ceil(SPECTRAL_LOW_HZ / (fs_hz / 2) * (nfft - 1) + 1), 1)
    hi = min(hi, nfft)
    spec = np.fft.rfft(x, n=2 * nfft, axis=1)
    power = spec.real**2 + spec.imag**2
    band = slice(lo - 1, hi)  # SKDH's 1-based lo..hi
    with np.errstate(divide="ignore", invalid="ignore"):  # an all-zero window: NaN
        p = power / power[:, band].sum(axis=1, keepdims=True) + 1e-10
    pb = p[:, band]
    imax = np.argmax(pb, axis=1) + lo  # 1-based
    width = 0.5 * nfft / fs_hz * 2.0
    s_lo = np.maximum(imax - math.ceil(width), 1)
    s_hi = np.minimum(imax + math.floor(width), nfft)
    pss = np.array([p[i, s_lo[i] - 1: s_hi[i]].sum() for i in range(x.shape[0])])
    nband = hi - lo + 1
    logp = np.log(pb)
    flatness = 10.0 * np.log10(np.exp(logp.mean(axis=1)) / (pb.sum(axis=1) / nband))
    entropy = -np.sum(logp / np.log(2.0) * pb, axis=1) / (math.log(nband) / math.log(2.0))
    return [pss, flatness, entropy]


def sparc(x: FloatArray, fs_hz: float, padlevel: int = SPARC_PAD,
          cutoff_hz: float = SPARC_CUTOFF_HZ, amplitude: float = SPARC_AMPLITUDE
          ) -> FloatArray:
    """SKDH's ``SPARC`` of each row (NaN for an all-zero row, SKDH's 0/0)."""
    n = x.shape[1]
    # SKDH takes log2(n) in single precision
    nfft = 2 ** (int(np.ceil(np.log(np.float32(n)) / np.log(np.float32(2.0)))) + padlevel)
    half = nfft // 2
    ixf = min(math.ceil(cutoff_hz / (0.5 * fs_hz) * half), half + 1)  # 1-based
    mag = np.abs(np.fft.rfft(x, n=nfft, axis=1))
    peak = mag.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = mag / peak
    above = mag >= amplitude
    cols = np.arange(mag.shape[1])
    # 1-based first index at or above the threshold, last one at or below ixf
    inxi = np.where(above.any(axis=1), np.argmax(above, axis=1) + 1, half + 1)
    upto = above[:, :ixf]
    inxf = np.where(upto.any(axis=1), ixf - np.argmax(upto[:, ::-1], axis=1), 1)
    span = (inxf - inxi).astype(np.float64)
    with np.errstate(divide="ignore"):
        factor = 1.0 / span**2
    # steps i = inxi+1 .. inxf (1-based): diffs mag[i-1] - mag[i-2]
    steps = np.sqrt(factor[:, None] + np.diff(mag, axis=1) ** 2)
    take = (cols[1:] + 1 >= (inxi + 1)[:, None]) & (cols[1:] + 1 <= inxf[:, None])
    sal: FloatArray = -np.sum(np.where(take, steps, 0.0), axis=1)
    sal[inxf <= inxi] = 0.0
    sal[~(peak[:, 0] > 0)] = np.nan
    return sal
