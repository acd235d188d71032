"""Axivity .cwa, block by block: the streaming twin of :mod:`wearflow.readers.cwa`.

Two passes over the content, each holding one batch of 512-byte blocks:

1. a census: which blocks are decodable, erased or corrupt, and how many usable
   blocks each configuration (rate code, axes/packing) has. The whole-file
   reader keeps only the dominant configuration and decides from all blocks
   whether temperature is present; both are whole-file facts, so the census
   comes first. It holds a few counters, whatever the file's length.
2. the decode: the same per-block steps as the whole-file reader (see
   :mod:`wearflow.readers._cwa_decode`), with the sample times interpolated by a
   :class:`_SegmentClock` that keeps only the block anchors its pending samples
   still need. A sample is timed as soon as the anchor after it is known (the
   anchors the whole-file reader keeps never change once a later one is kept),
   so the times are bit for bit the whole-file ones.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from wearflow.errors import ReaderError
from wearflow.readers import _cwa_decode as dec
from wearflow.readers import _cwa_format as fmt
from wearflow.readers import _cwa_kernels as kernels
from wearflow.readers import _finish_kernels as finish_kernels
from wearflow.readers._common import local_to_utc, zone_offset_s
from wearflow.readers._stream_finish import StreamFinisher
from wearflow.readers.chunks import Chunk, StreamHeader
from wearflow.recording import FloatArray

IntArray = dec.IntArray

CENSUS_BLOCKS = 4096
"""Blocks per read in the census (2 MiB)."""


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


Opener = Callable[[], Readable]
"""Opens the (decompressed) content from its first byte; called once per pass."""


@dataclass
class _Census:
    n_blocks: int = 0
    tail_bytes: int = 0
    n_corrupt: int = 0
    n_erased: int = 0
    per_key: dict[int, int] = field(default_factory=dict)
    temperature_keys: set[int] = field(default_factory=set)


def _read_full(fh: Readable, size: int) -> bytes:
    """``size`` bytes, or fewer only at the end of the content."""
    parts, got = [], 0
    while got < size:
        piece = fh.read(size - got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _batches(fh: Readable, batch_blocks: int) -> Iterator[tuple[bytes, int]]:
    """(bytes of whole blocks, bytes left over at the end) per read."""
    while True:
        data = _read_full(fh, batch_blocks * fmt.BLOCK_SIZE)
        n = len(data) // fmt.BLOCK_SIZE
        tail = len(data) - n * fmt.BLOCK_SIZE
        if n:
            yield data, tail
        elif tail:
            yield b"", tail
        if len(data) < batch_blocks * fmt.BLOCK_SIZE:
            return


def _views(data: bytes) -> tuple[dec.Blocks, np.ndarray]:
    n = len(data) // fmt.BLOCK_SIZE
    blocks = np.frombuffer(data, fmt.BLOCK_DTYPE, count=n)
    words = np.frombuffer(data, "<u2", count=n * 256).reshape(n, 256)
    return blocks, words


def _census(fh: Readable, uri: str) -> tuple[bytes, _Census]:
    header = _read_full(fh, fmt.HEADER_SIZE)
    census = _Census()
    for data, tail in _batches(fh, CENSUS_BLOCKS):
        census.tail_bytes = tail
        if not data:
            continue
        blocks, words = _views(data)
        census.n_blocks += len(blocks)
        good, erased, _ = dec.block_checks(blocks, words)
        census.n_corrupt += int(np.count_nonzero(~good & ~erased))
        census.n_erased += int(np.count_nonzero(erased))
        key = dec.format_key(blocks)[good]
        values, seen = np.unique(key, return_counts=True)
        for value, count in zip(values.tolist(), seen.tolist(), strict=True):
            census.per_key[value] = census.per_key.get(value, 0) + count
        warm = np.unique(key[(blocks["temperature"][good] & 0x3FF) != 0])
        census.temperature_keys.update(warm.tolist())
    if len(header) < fmt.HEADER_SIZE:
        raise ReaderError(f"truncated CWA header ({len(header)} of 1024 bytes)", subject=uri)
    if census.n_blocks == 0:
        raise ReaderError("CWA file has a header but no data blocks", subject=uri)
    return header, census


def stream_cwa(open_content: Opener, uri: str, *, device_time_zone: str, chunk_s: float,
               on_header: Callable[[StreamHeader], None],
               on_flags: Callable[[tuple[str, ...]], None]) -> Iterator[Chunk]:
    """The chunks of a .cwa, equal when concatenated to :func:`wearflow.readers.read_cwa`."""
    header, census = _census(open_content(), uri)
    flags = [f"partial_block_bytes_dropped={census.tail_bytes}"] if census.tail_bytes else []
    block_flags = []
    if census.n_corrupt:
        block_flags.append(f"corrupt_blocks_skipped={census.n_corrupt}")
    if census.n_erased:
        block_flags.append(f"erased_blocks_skipped={census.n_erased}")
    if not census.per_key:
        raise ReaderError(f"no usable CWA data blocks ({', '.join(block_flags)})", subject=uri)
    top = max(census.per_key.values())
    dominant = min(k for k, n in census.per_key.items() if n == top)  # np.unique order
    if n_other := sum(census.per_key.values()) - top:
        block_flags.append(f"format_changed_blocks_skipped={n_other}")
    flags += block_flags
    freq = float(fmt.rate_hz(np.asarray([dominant >> 8], np.int64))[0])
    capacity = dec.format_capacity(dominant)
    decoder = _Decoder(uri, header, freq, capacity, dominant,
                       with_temperature=dominant in census.temperature_keys,
                       zone=device_time_zone)
    on_header(StreamHeader(dec.device_info(header), freq))
    content = open_content()
    _read_full(content, fmt.HEADER_SIZE)
    batch_blocks = max(1, math.ceil(chunk_s * freq / capacity))
    for data, _ in _batches(content, batch_blocks):
        if data:
            yield from decoder.decode(data)
    yield from decoder.flush()
    if decoder.segments > 1:
        flags.append(f"segments={decoder.segments}")
    on_flags(decoder.finisher.flags(flags + decoder.zone_flags()))


class _Decoder:
    """Pass 2: blocks -> timed samples -> cleaned chunks, with the state carried between."""

    def __init__(self, uri: str, header: bytes, freq: float, capacity: int, dominant: int,
                 *, with_temperature: bool, zone: str) -> None:
        self.uri, self.header, self.freq, self.zone = uri, header, freq, zone
        self.capacity, self.dominant = capacity, dominant
        self.with_temperature = with_temperature
        self.finisher = StreamFinisher(uri, freq)
        self.next_block = 0  # file index of the next block
        self.next_start = 0  # sample position of the next block
        # the last usable block: sequence, position, session, stamp, anchor
        self.previous: tuple[int, int, int, float, int] | None = None
        self.segments = 0
        self.clock: _SegmentClock | None = None
        self.offset_s: float | None = None
        self.reference_local_s = 0.0
        self.local_range: list[float] = [math.inf, -math.inf]

    def decode(self, data: bytes) -> Iterator[Chunk]:
        blocks, words = _views(data)
        good, _, _ = dec.block_checks(blocks, words)
        valid = good & (dec.format_key(blocks) == self.dominant)
        per_block = np.where(valid, blocks["sample_count"], self.capacity).astype(np.int64)
        starts_all = self.next_start + np.cumsum(per_block) - per_block
        kept = np.flatnonzero(valid)
        position = self.next_block + kept
        self.next_block += len(blocks)
        self.next_start += int(per_block.sum())
        if kept.size == 0:
            return
        usable = blocks[kept]
        starts = starts_all[kept]
        counts = usable["sample_count"].astype(np.int64)
        anchor, stamp = dec.block_anchors(usable, starts, self.freq)
        sequence = usable["sequence_id"].astype(np.int64)
        session = usable["session_id"].astype(np.int64)
        if self.previous is None:
            breaks = np.concatenate(([True], dec.segment_breaks(
                sequence, position, session, stamp, anchor, self.freq)))
        else:
            seq0, pos0, ses0, stamp0, anchor0 = self.previous
            breaks = dec.segment_breaks(
                np.concatenate(([seq0], sequence)), np.concatenate(([pos0], position)),
                np.concatenate(([ses0], session)), np.concatenate(([stamp0], stamp)),
                np.concatenate(([anchor0], anchor)), self.freq)
        self.previous = (int(sequence[-1]), int(position[-1]), int(session[-1]),
                         float(stamp[-1]), int(anchor[-1]))
        positions, accel = _samples(usable, counts, starts)
        temperature = None
        if self.with_temperature:
            raw = (usable["temperature"] & 0x3FF).astype(np.float64)
            temperature = np.repeat(raw * fmt.TEMPERATURE_SCALE + fmt.TEMPERATURE_OFFSET, counts)
        sample_edges = np.concatenate(([0], np.cumsum(counts)))
        edges = np.concatenate((np.flatnonzero(breaks), [len(kept)]))
        if edges[0] != 0:
            edges = np.concatenate(([0], edges))
        for lo, hi in itertools.pairwise(edges):
            if breaks[lo]:
                yield from self.flush()
                self.clock = _SegmentClock(self.freq)
                self.segments += 1
            part = slice(int(sample_edges[lo]), int(sample_edges[hi]))
            self.clock = self.clock or _SegmentClock(self.freq)  # set above: breaks[0]
            self.clock.add(anchor[lo:hi].astype(np.float64), stamp[lo:hi],
                           positions[part], accel[part],
                           None if temperature is None else temperature[part])
            yield from self._emit(self.clock.ready())

    def flush(self) -> Iterator[Chunk]:
        if self.clock is not None:
            yield from self._emit(self.clock.finish())

    def _emit(self, timed: list[tuple[FloatArray, FloatArray, FloatArray | None]]
              ) -> Iterator[Chunk]:
        for local, accel, temperature in timed:
            if self.offset_s is None:
                self.reference_local_s = dec.config_time(self.header, float(local[0]))
                self.offset_s = zone_offset_s(self.zone, self.reference_local_s, self.uri)
            lo, hi = finish_kernels.finite_range(local)
            self.local_range[0] = min(self.local_range[0], lo)
            self.local_range[1] = max(self.local_range[1], hi)
            chunk = self.finisher.push(local - self.offset_s, accel, temperature,
                                       self.segments - 1)
            if chunk is not None:
                yield chunk

    def zone_flags(self) -> list[str]:
        """``local_to_utc``'s flag, from the range of local times seen."""
        lo, hi = self.local_range
        if self.offset_s is None or lo > hi:
            return []
        _, flags = local_to_utc(np.asarray([lo, hi]), self.zone, self.reference_local_s,
                                self.uri)
        return flags


def _samples(usable: dec.Blocks, counts: IntArray, starts: IntArray
             ) -> tuple[FloatArray, FloatArray]:
    """Each sample's position (float) and acceleration (g) of blocks of one layout: what
    the whole-file reader's ``decode_accel`` and position arrays give, in one loop."""
    code = int(usable["axes_packing"][0])
    payload = np.ascontiguousarray(usable["payload"])
    if code & 0x0F == 0:
        return kernels.unpack_packed(payload.view("<u4"), counts, starts)
    scale = 1.0 / np.left_shift(1, 8 + ((usable["light_scale"] >> 13) & 0x07)).astype(float)
    return kernels.unpack_int16(payload.view("<i2"), counts, starts, code >> 4, scale)


class _SegmentClock:
    """Sample times of one segment, as ``sample_times`` computes them, anchor by anchor.

    Keeps the anchors (block sample position -> naive local time) that stay
    increasing in both (``_monotonic_anchors``), the first two for the slope
    before the first anchor, and the samples not yet timed.
    """

    def __init__(self, freq: float) -> None:
        self.slope = 1.0 / freq
        self.first: list[tuple[float, float]] = []  # the first two kept anchors
        self.xp = np.empty(0)
        self.fp = np.empty(0)
        self.pending: list[tuple[FloatArray, FloatArray, FloatArray | None]] = []

    def add(self, xp: FloatArray, fp: FloatArray, x: FloatArray, accel: FloatArray,
            temperature: FloatArray | None) -> None:
        if self.xp.size:
            last_x, last_f = float(self.xp[-1]), float(self.fp[-1])
        else:
            last_x = last_f = -math.inf
        if (xp[0] > last_x and fp[0] > last_f and np.all(np.diff(xp) > 0)
                and np.all(np.diff(fp) > 0)):
            new_x, new_f = xp, fp
        else:  # rare: keep greedily, as _monotonic_anchors does
            keep = []
            for i in range(len(xp)):
                if xp[i] > last_x and fp[i] > last_f:
                    keep.append(i)
                    last_x, last_f = float(xp[i]), float(fp[i])
            new_x, new_f = xp[keep], fp[keep]
        for a, b in zip(new_x[:2].tolist(), new_f[:2].tolist(), strict=True):
            if len(self.first) < 2:
                self.first.append((a, b))
        self.xp = np.concatenate((self.xp, new_x))
        self.fp = np.concatenate((self.fp, new_f))
        self.pending.append((x, accel, temperature))

    def _take(self, n: int) -> list[tuple[FloatArray, FloatArray, FloatArray | None]]:
        """The first ``n`` pending samples, as the pieces they came in (views: the
        samples are not copied into one array); the rest stays pending."""
        taken: list[tuple[FloatArray, FloatArray, FloatArray | None]] = []
        while n > 0:
            x, accel, temperature = self.pending[0]
            if x.size <= n:
                taken.append(self.pending.pop(0))
                n -= x.size
                continue
            taken.append((x[:n], accel[:n], None if temperature is None else temperature[:n]))
            # copies: the samples left are few (up to a block's), and views would keep
            # the whole batch they came in alive until the next is taken
            self.pending[0] = (x[n:].copy(), accel[n:].copy(), None if temperature is None
                               else temperature[n:].copy())
            n = 0
        return taken

    def _times(self, x: FloatArray, *, at_end: bool) -> FloatArray:
        x0, f0 = self.first[0]
        first_slope = self.slope
        if len(self.first) >= 2:
            (x1, f1) = self.first[1]
            first_slope = (f1 - f0) / (x1 - x0)
        out = kernels.interp(x, self.xp, self.fp)  # np.interp's values, in one walk
        before = x < x0
        out[before] = f0 + (x[before] - x0) * first_slope
        if at_end:
            after = x > self.xp[-1]
            last_slope = self.slope
            if len(self.first) >= 2:
                last_slope = (self.fp[-1] - self.fp[-2]) / (self.xp[-1] - self.xp[-2])
            out[after] = self.fp[-1] + (x[after] - self.xp[-1]) * last_slope
        return out

    def ready(self) -> list[tuple[FloatArray, FloatArray, FloatArray | None]]:
        """The samples whose time no later anchor can change, timed (in pieces)."""
        if not self.pending or not self.xp.size:
            return []
        if len(self.first) < 2 and float(self.pending[0][0][0]) < self.first[0][0]:
            return []  # the slope before the first anchor needs the second
        n = sum(int(np.searchsorted(p[0], self.xp[-1], side="right")) for p in self.pending)
        if n == 0:
            return []
        pieces = self._take(n)
        timed = [(self._times(x, at_end=False), accel, temperature)
                 for x, accel, temperature in pieces]
        # Later samples lie after the last one taken: they need the anchors from the last
        # one at or before it on (anchors can run ahead of their samples), and the last two.
        keep_from = int(np.searchsorted(self.xp, pieces[-1][0][-1], side="right")) - 1
        keep_from = max(0, min(keep_from, self.xp.size - 2))
        self.xp, self.fp = self.xp[keep_from:], self.fp[keep_from:]
        return timed

    def finish(self) -> list[tuple[FloatArray, FloatArray, FloatArray | None]]:
        """Every sample left, at the end of the segment (in pieces)."""
        pieces = self._take(sum(p[0].size for p in self.pending))
        return [(self._times(x, at_end=True), accel, temperature)
                for x, accel, temperature in pieces]
