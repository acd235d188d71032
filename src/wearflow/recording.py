"""The decoded sensor recording every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from wearflow.errors import ReaderError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DeviceInfo:
    """What the file's header says about the device that recorded it."""

    format: str  # "axivity-cwa", "geneactiv-bin", "csv"
    serial: str | None = None
    model: str | None = None
    firmware: str | None = None


CHUNK_ROWS = 1 << 18  # samples per chunk of the per-chunk statistics below (6 MB of float64)


@dataclass(frozen=True)
class AccelExtremes:
    """Smallest and largest acceleration value (any axis) per chunk of ``chunk_rows`` samples.

    Computed once where the samples are checked (a NaN or infinity shows in
    them, so they are also the finiteness check) and used by QC for the peak and
    to know which chunks can hold clipped samples, without another pass over
    the recording.
    """

    chunk_rows: int
    low_g: FloatArray
    high_g: FloatArray

    @property
    def all_finite(self) -> bool:
        return bool(np.all(np.isfinite(self.low_g)) and np.all(np.isfinite(self.high_g)))

    @property
    def chunk_peak_g(self) -> FloatArray:
        """max |a| per chunk."""
        return np.maximum(self.high_g, -self.low_g)


def accel_extremes(accel_g: npt.NDArray[np.floating], chunk_rows: int = CHUNK_ROWS
                   ) -> AccelExtremes:
    """Per-chunk min and max of an (n, 3) acceleration array, one read of its memory."""
    starts = range(0, accel_g.shape[0], chunk_rows)
    low = np.array([accel_g[i:i + chunk_rows].min() for i in starts], dtype=np.float64)
    high = np.array([accel_g[i:i + chunk_rows].max() for i in starts], dtype=np.float64)
    return AccelExtremes(chunk_rows, low, high)


def strictly_increasing(values: FloatArray, chunk: int = CHUNK_ROWS) -> bool:
    """True when every value is larger than the one before (NaN fails), chunk by chunk."""
    n = values.shape[0]
    for i in range(0, n - 1, chunk):
        j = min(n, i + chunk + 1)
        if not np.all(values[i + 1:j] > values[i:j - 1]):
            return False
    return True


@dataclass(frozen=True)
class Recording:
    """A decoded sensor file.

    Invariants (checked by :meth:`validate`): ``time_s`` is strictly increasing
    UTC seconds since the epoch, all after 1990; ``accel_g`` has shape (n, 3)
    in units of g; ``temperature_c``, when present, has shape (n,).
    ``flags`` are short machine-readable QC notes from the reader, such as
    ``"corrupt_blocks_skipped=6"`` or ``"gap_s=244.1"``.
    """

    time_s: FloatArray
    accel_g: FloatArray
    sampling_rate_hz: float
    device: DeviceInfo
    temperature_c: FloatArray | None = None
    flags: tuple[str, ...] = field(default_factory=tuple)
    # per-chunk extremes of accel_g when the reader computed them (QC computes them if not)
    extremes: AccelExtremes | None = field(default=None, compare=False, repr=False)

    @property
    def n_samples(self) -> int:
        return int(self.time_s.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.time_s[-1] - self.time_s[0]) if self.n_samples else 0.0

    def validate(self, uri: str) -> Recording:
        """Return self when the invariants hold, else raise ReaderError naming ``uri``."""
        n = self.n_samples
        if n == 0:
            raise ReaderError("no samples in the recording", subject=uri)
        if self.accel_g.shape != (n, 3):
            raise ReaderError(f"acceleration has shape {self.accel_g.shape}, expected ({n}, 3)",
                              subject=uri)
        if self.temperature_c is not None and self.temperature_c.shape != (n,):
            raise ReaderError("temperature length differs from time length", subject=uri)
        # strictly increasing (NaN fails the comparison) with finite ends: all finite
        if not (np.isfinite(self.time_s[0]) and np.isfinite(self.time_s[-1])):
            raise ReaderError("non-finite timestamps", subject=uri)
        if not strictly_increasing(self.time_s):
            raise ReaderError("timestamps are not strictly increasing", subject=uri)
        if self.time_s[0] < 631152000.0:  # 1990-01-01T00:00:00Z
            raise ReaderError("recording starts before 1990 (device clock not set?)", subject=uri)
        if not (0.0 < self.sampling_rate_hz <= 10_000.0):
            raise ReaderError(f"implausible sampling rate {self.sampling_rate_hz} Hz", subject=uri)
        return self
