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
        if not np.all(np.isfinite(self.time_s)):
            raise ReaderError("non-finite timestamps", subject=uri)
        if n > 1 and not np.all(np.diff(self.time_s) > 0):
            raise ReaderError("timestamps are not strictly increasing", subject=uri)
        if self.time_s[0] < 631152000.0:  # 1990-01-01T00:00:00Z
            raise ReaderError("recording starts before 1990 (device clock not set?)", subject=uri)
        if not (0.0 < self.sampling_rate_hz <= 10_000.0):
            raise ReaderError(f"implausible sampling rate {self.sampling_rate_hz} Hz", subject=uri)
        return self
