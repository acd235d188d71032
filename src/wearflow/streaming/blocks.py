"""Per-block sums of per-sample columns, fed chunk by chunk.

Every epoch feature of the streaming wrist solution is a sum over a time block
(1, 5, 10 or 60 s) of some per-sample value (an axis, its square, ENMO, the
temperature). :class:`BlockSums` computes such sums from chunks of any size
with the same result, to the bit, as from the whole recording: a block is
reduced only once all its samples have arrived (the samples of the last,
unfinished block are carried to the next chunk), and always by the same
``numpy.add.reduceat`` call over that block's samples alone. Memory: one value
per block and column, plus at most one block of carried samples.

Blocks are fixed on the UTC clock (block ``k`` is ``[k L, (k + 1) L)`` seconds),
not counted in samples as SKDH's windows are: the two agree on a recording
without gaps whose first sample is on the grid, and the clock grid keeps day,
night and minute boundaries on block boundaries whatever the gaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class BlockTable:
    """Sums per block: ``index`` (block k starts at ``k * length_s`` UTC seconds, strictly
    increasing, only blocks with samples), ``count`` (samples) and ``sums`` (blocks,
    columns)."""

    length_s: float
    index: IntArray
    count: IntArray
    sums: FloatArray

    @property
    def start_s(self) -> FloatArray:
        starts: FloatArray = self.index.astype(np.float64) * self.length_s
        return starts


class BlockSums:
    """Accumulate per-block sums of ``n_columns`` per-sample columns over chunks.

    ``reducers``: one ufunc per column (default ``numpy.add`` for all); ``numpy.maximum``
    and ``numpy.minimum`` give per-block extremes in the same table. A subclass may
    instead take ``n_inputs`` rows per sample and derive its ``n_columns`` sums from
    them in :meth:`_block_sums` (the passes' compiled kernels).
    """

    def __init__(self, length_s: float, n_columns: int,
                 reducers: tuple[np.ufunc, ...] | None = None,
                 n_inputs: int | None = None) -> None:
        if not length_s > 0:
            raise ValueError(f"length_s must be > 0, got {length_s!r}")
        self.length_s = float(length_s)
        self.n_columns = int(n_columns)
        self.n_inputs = self.n_columns if n_inputs is None else int(n_inputs)
        self.reducers = reducers if reducers is not None else (np.add,) * self.n_columns
        if len(self.reducers) != self.n_columns:
            raise ValueError("one reducer per column")
        self._carry_id = np.empty(0, dtype=np.int64)
        self._carry = np.empty((self.n_inputs, 0))
        self._index: list[IntArray] = []
        self._count: list[IntArray] = []
        self._sums: list[FloatArray] = []

    def add(self, time_s: FloatArray, columns: FloatArray) -> None:
        """Add a chunk: ``time_s`` (n,), ``columns`` (n_inputs, n), time-ordered."""
        ids = block_ids(np.asarray(time_s, dtype=np.float64), self.length_s)
        if ids.size == 0:
            return
        heads = np.flatnonzero(ids[1:] != ids[:-1]) + 1  # where each later block starts
        first_end = int(heads[0]) if heads.size else ids.size
        if self._carry_id.size:
            if int(self._carry_id[0]) == int(ids[0]):  # the carried block goes on here
                if not heads.size:  # ... and past this chunk
                    self._carry_id = np.concatenate((self._carry_id, ids))
                    self._carry = np.concatenate((self._carry, columns), axis=1)
                    return
                self._reduce(np.concatenate((self._carry_id, ids[:first_end])),
                             np.concatenate((self._carry, columns[:, :first_end]), axis=1),
                             np.zeros(1, dtype=np.int64))
                ids, columns = ids[first_end:], columns[:, first_end:]
                heads = heads - first_end
            else:
                self._reduce(self._carry_id, self._carry, np.zeros(1, dtype=np.int64))
                heads = _with_zero(heads)
        else:
            heads = _with_zero(heads)
        last = int(heads[-1])  # the last block may go on in the next chunk
        # copies: the carry must not keep the whole chunk alive
        self._carry_id, self._carry = ids[last:].copy(), columns[:, last:].copy()
        if last > 0:
            self._reduce(ids[:last], columns[:, :last], heads[:-1])

    def finish(self) -> BlockTable:
        """The table of every block (the carried one included); the object is spent."""
        if self._carry_id.size:
            self._reduce(self._carry_id, self._carry, np.zeros(1, dtype=np.int64))
            self._carry_id = np.empty(0, dtype=np.int64)
        if not self._index:
            return BlockTable(self.length_s, np.empty(0, dtype=np.int64),
                              np.empty(0, dtype=np.int64), np.empty((0, self.n_columns)))
        return BlockTable(self.length_s, np.concatenate(self._index),
                          np.concatenate(self._count), np.concatenate(self._sums))

    def so_far(self) -> BlockTable:
        """The blocks complete so far (not the one still carried); the object goes on."""
        if not self._index:
            return BlockTable(self.length_s, np.empty(0, dtype=np.int64),
                              np.empty(0, dtype=np.int64), np.empty((0, self.n_columns)))
        self._index = [np.concatenate(self._index)]
        self._count = [np.concatenate(self._count)]
        self._sums = [np.concatenate(self._sums)]
        return BlockTable(self.length_s, self._index[0], self._count[0], self._sums[0])

    def _reduce(self, ids: IntArray, columns: FloatArray, heads: IntArray) -> None:
        self._store(ids[heads], np.diff(heads, append=ids.size).astype(np.int64),
                    self._block_sums(columns, heads))

    def _block_sums(self, columns: FloatArray, heads: IntArray) -> FloatArray:
        """(blocks, n_columns) sums of the blocks starting at ``heads`` in ``columns``."""
        sums = np.empty((heads.size, self.n_columns))
        for j in range(self.n_columns):
            # one contiguous row per column: the reduction per block never depends on the
            # layout of the chunk it came in
            sums[:, j] = self.reducers[j].reduceat(np.ascontiguousarray(columns[j]), heads)
        return sums

    def _store(self, index: IntArray, count: IntArray, sums: FloatArray) -> None:
        self._index.append(index)
        self._count.append(count)
        self._sums.append(sums)


def _with_zero(heads: IntArray) -> IntArray:
    """``0`` then ``heads`` (``np.r_[0, heads]`` costs 25 µs a call, a chunk makes several)."""
    out = np.empty(heads.size + 1, dtype=np.int64)
    out[0] = 0
    out[1:] = heads
    return out


def block_ids(time_s: FloatArray, length_s: float) -> IntArray:
    """The block of each time: ``floor(t / length_s)``. Truncation is floor for times at
    or after 1970 and ten times faster, so it is used when the first (earliest) is."""
    scaled = time_s if length_s == 1.0 else time_s / length_s
    if scaled.size and scaled[0] >= 0.0:
        ids: IntArray = scaled.astype(np.int64)
        return ids
    floored: IntArray = np.floor(scaled).astype(np.int64)
    return floored


def block_sums_reference(time_s: FloatArray, columns: FloatArray, length_s: float
                         ) -> BlockTable:
    """Plain whole-array reference of :class:`BlockSums` (tests compare against it)."""
    ids = np.floor(time_s / length_s).astype(np.int64)  # not block_ids: the plain rule
    index, inverse, count = np.unique(ids, return_inverse=True, return_counts=True)
    sums: FloatArray = np.empty((index.size, columns.shape[0]))
    for j in range(columns.shape[0]):
        sums[:, j] = np.bincount(inverse, weights=columns[j], minlength=index.size)
    return BlockTable(float(length_s), index.astype(np.int64), count.astype(np.int64), sums)
