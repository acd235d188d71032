"""Pass 2's 1-s table kept on disk, read back a window at a time.

A recording's 1-s blocks (a count and eight to thirteen sums per second: 72 to
120 bytes) grow with its length: 87 MB for 14 days, more than everything else
the task holds. :class:`SpilledBlockSums` writes each block's row into an
unlinked temporary file as soon as the block is complete, at the row of its
second (a gap in the recording is a hole in the file, read back as zeros: no
samples), and :class:`SpilledGrid` reads any window of rows back as an
in-memory :class:`~wearflow.streaming.grid.SecondGrid`. The algorithms read a
day (plus margins) at a time, so a task's memory is the same for a 1-day and a
14-day recording; the file (72 bytes per second of recording, 87 MB for 14
days) lives in the system's temporary directory (``TMPDIR``) and disappears when
the task ends, whether it finishes or fails.

The values are those of the in-memory table to the bit (float64 rows, written and
read unchanged).
"""

from __future__ import annotations

import os
import tempfile
from types import TracebackType
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from wearflow.streaming.blocks import BlockSums
from wearflow.streaming.grid import SecondGrid

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_ITEM_BYTES = 8  # float64


class SpilledBlockSums(BlockSums):
    """:class:`BlockSums` whose blocks go to a temporary file, one row per second from
    the first block with samples (its count, then its sums); :meth:`finish_spilled`
    gives the table to read back. Blocks must come in time order (the readers
    guarantee it: non-increasing times are trimmed)."""

    def __init__(self, length_s: float, n_columns: int,
                 reducers: tuple[np.ufunc, ...] | None = None,
                 n_inputs: int | None = None, *, file: BinaryIO | None = None,
                 first_block: int | None = None) -> None:
        """``file`` and ``first_block``: write into another writer's table (its file and
        first block), another span of its seconds (one read's tail, another's head)."""
        super().__init__(length_s, n_columns, reducers, n_inputs)
        # closed by the grid it becomes, or by close() when the pass fails
        if file is None:
            file = tempfile.TemporaryFile(prefix="wearflow-seconds-")  # noqa: SIM115
        self.file: BinaryIO = file
        self._row_bytes = (1 + n_columns) * _ITEM_BYTES
        self._first: int | None = first_block
        self.rows_written = 0  # rows before it are written (or holes)

    def _store(self, index: IntArray, count: IntArray, sums: FloatArray) -> None:
        if self._first is None:
            self._first = int(index[0])
        rows = index - self._first
        if int(rows[0]) < self.rows_written or int(rows[0]) < 0:
            raise ValueError("1-s blocks out of time order")
        table = np.empty((rows.size, 1 + self.n_columns))
        table[:, 0] = count
        table[:, 1:] = sums
        # consecutive rows in one write; a gap between them stays a hole
        cuts = np.flatnonzero(np.diff(rows) != 1) + 1
        for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), rows.size],
                          strict=True):
            _write_all(self.file.fileno(), table[lo:hi].tobytes(),
                       int(rows[lo]) * self._row_bytes)
        self.rows_written = int(rows[-1]) + 1

    def close(self) -> None:
        """Delete the file (when the pass does not finish)."""
        self.file.close()

    def finish_spilled(self, *others: SpilledBlockSums) -> SpilledGrid:
        """The table from the first block with samples to the last, on disk (with the
        rows ``others`` wrote into the same file, finished first); close it (or use it
        as a context manager) to delete the file."""
        for other in others:
            other.finish()
        self.finish()
        first_s = float(self._first or 0) * self.length_s
        rows = max([self.rows_written, *(other.rows_written for other in others)])
        return SpilledGrid(self.file, first_s, rows, self.n_columns)


class SpilledGrid:
    """Every second from ``first_s`` on (``n`` rows of ``n_columns`` sums), on disk."""

    def __init__(self, file: BinaryIO, first_s: float, n: int, n_columns: int) -> None:
        self._file = file
        self.first_s = first_s
        self.n = n
        self.n_columns = n_columns

    def window(self, lo: int, hi: int) -> SecondGrid:
        """Rows ``lo`` to ``hi`` (clipped to the table) in memory."""
        lo, hi = max(lo, 0), min(hi, self.n)
        table = np.zeros((max(hi - lo, 0), 1 + self.n_columns))
        if table.size:
            _read_into(self._file.fileno(), table, lo * table.shape[1] * _ITEM_BYTES)
        return SecondGrid(self.first_s + lo, np.ascontiguousarray(table[:, 0]), table[:, 1:])

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SpilledGrid:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _read_into(fd: int, table: FloatArray, offset: int) -> None:
    """Fill ``table`` from the file at ``offset``; bytes past the file's end (rows never
    written after the last hole) stay zero."""
    view = table.reshape(-1).data.cast("B")
    while view:
        got = os.preadv(fd, [view], offset)
        if got == 0:
            return
        view, offset = view[got:], offset + got
