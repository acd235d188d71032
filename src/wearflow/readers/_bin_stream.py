"""GENEActiv .bin, page by page: the streaming twin of :mod:`wearflow.readers.geneactiv`.

Two passes over the content's lines, as the whole-file reader splits them
(``data.split(b"\\n")``: a page is a ``Recorded Data`` line and the nine after it):

1. a census: the header, the number of page starts, and per page that parses
   and decodes its ordinal, naive page time and frequency (24 bytes a page: about
   5 MB for a week at 100 Hz). The page clock fits one line per run of contiguous
   pages from all the run's page times (``geneactiv.page_runs``), a whole-run fact,
   so it is computed between the passes.
2. the decode: the usable pages again, a batch at a time, with the whole-file
   reader's calibration and each run's clock, through the streaming clean-up.

A line is held whole: a file without line breaks costs its size, as in the
whole-file read.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from wearflow.errors import ReaderError
from wearflow.readers import geneactiv as ga
from wearflow.readers._common import (
    MAX_SAMPLING_RATE_HZ,
    MIN_SAMPLING_RATE_HZ,
    check_sampling_rate,
    local_to_utc,
    zone_offset_s,
)
from wearflow.readers._cwa_stream import Opener, Readable
from wearflow.readers._stream_finish import StreamFinisher
from wearflow.readers.chunks import Chunk, StreamHeader

LINE_READ_BYTES = 1 << 20
CENSUS_PAGES = 2048


def _lines(content: Readable) -> Iterator[bytes]:
    """The content's lines, as ``bytes.split(b"\\n")`` gives them (the last one too)."""
    rest = b""
    while piece := content.read(LINE_READ_BYTES):
        parts = (rest + piece).split(b"\n")
        rest = parts.pop()
        yield from parts
    yield rest


def _pages(content: Readable, header: list[bytes] | None) -> Iterator[list[bytes]]:
    """Each page's lines (its start and up to nine after it), in order of their starts.

    The lines before the first page start are appended to ``header`` when given.
    """
    open_pages: list[list[bytes]] = []
    seen_start = False
    for line in _lines(content):
        for page in open_pages:
            page.append(line)
        if open_pages and len(open_pages[0]) == 10:
            yield open_pages.pop(0)  # at most one page completes per line
        if ga.is_page_start(line):
            seen_start = True
            open_pages.append([line])
        elif not seen_start and header is not None:
            header.append(line)
    yield from open_pages


@dataclass
class _Census:
    header_lines: list[bytes] = field(default_factory=list)
    n_starts: int = 0
    incomplete: int = 0
    corrupt: int = 0
    implausible_rate: float | None = None
    ordinal: array[int] = field(default_factory=lambda: array("q"))
    page_local: array[float] = field(default_factory=lambda: array("d"))
    freq: array[float] = field(default_factory=lambda: array("d"))


def _parsed(pages: Iterator[list[bytes]]) -> Iterator[tuple[int, bool, tuple[
        str, float, float, memoryview] | None]]:
    """(ordinal, whether it is the last page start, fields or None) per page."""
    previous: tuple[int, list[bytes]] | None = None
    for k, page in enumerate(pages):
        if previous is not None:
            yield previous[0], False, ga.page_fields(previous[1])
        previous = (k, page)
    if previous is not None:
        yield previous[0], True, ga.page_fields(previous[1])


def _census(content: Readable) -> _Census:
    census = _Census()
    batch: list[tuple[int, str, float, memoryview]] = []
    for k, last, fields in _parsed(_pages(content, census.header_lines)):
        census.n_starts = k + 1
        if fields is None:
            census.incomplete += last
            census.corrupt += not last
            continue
        stamp, _, freq, hex_line = fields
        if not MIN_SAMPLING_RATE_HZ <= freq <= MAX_SAMPLING_RATE_HZ:
            if census.implausible_rate is None:
                census.implausible_rate = freq
            census.corrupt += 1
            continue
        batch.append((k, stamp, freq, hex_line))
        if len(batch) == CENSUS_PAGES:
            _check_batch(census, batch)
    _check_batch(census, batch)
    return census


def _check_batch(census: _Census, batch: list[tuple[int, str, float, memoryview]]) -> None:
    """Keep the pages whose hex and page time decode (``_parse_pages``' second step)."""
    if not batch:
        return
    _, ok = ga._unhex([b[3] for b in batch])
    local, time_ok = ga._page_seconds([b[1] for b in batch])
    ok &= time_ok
    census.corrupt += int(np.count_nonzero(~ok))
    for (k, _, freq, _), good, t in zip(batch, ok.tolist(), local.tolist(), strict=True):
        if good:
            census.ordinal.append(k)
            census.page_local.append(t)
            census.freq.append(freq)
    batch.clear()


def stream_geneactiv(open_content: Opener, uri: str, *, device_time_zone: str,
                     chunk_s: float, on_header: Callable[[StreamHeader], None],
                     on_flags: Callable[[tuple[str, ...]], None]) -> Iterator[Chunk]:
    """The chunks of a .bin, equal when concatenated to :func:`read_geneactiv`."""
    census = _census(open_content())
    header, flags, gain, offset = ga.header_facts(census.header_lines, census.n_starts, uri)
    page_flags = [f"incomplete_pages_dropped={census.incomplete}"] if census.incomplete else []
    if census.corrupt:
        page_flags.append(f"corrupt_pages_skipped={census.corrupt}")
    if not census.ordinal:
        if census.implausible_rate is not None:
            check_sampling_rate(census.implausible_rate, uri)
        raise ReaderError(f"no decodable data pages ({', '.join(page_flags)})", subject=uri)
    flags += page_flags
    ordinal = np.frombuffer(census.ordinal, np.int64)
    page_local = np.frombuffer(census.page_local, np.float64)
    edges, run_start, run_rate, residual = ga.page_runs(
        ordinal, page_local, np.frombuffer(census.freq, np.float64))
    if residual > ga.RESIDUAL_FLAG_S:
        flags.append(f"page_time_residual_s={residual:.1f}")
    reference = ga._reference_time(header.get("Config Time", ""), float(page_local[0]))
    rate_hz = ga._true_rate(float(census.freq[0]))
    finisher = StreamFinisher(uri, rate_hz)
    on_header(StreamHeader(ga.device_info(header), rate_hz))
    # Times rise within a run: its first and last samples bound it, and local_to_utc
    # on the runs' bounds gives the whole file's DST flag.
    bounds = np.concatenate([
        ga.page_times(ordinal[[lo, hi - 1]], run_start[r], run_rate[r]).ravel()[[0, -1]]
        for r, (lo, hi) in enumerate(itertools.pairwise(edges.tolist()))])
    _, tz_flags = local_to_utc(bounds, device_time_zone, reference, uri)
    flags += tz_flags + ga._header_zone_flag(header, device_time_zone, reference, uri)
    shift = zone_offset_s(device_time_zone, reference, uri)
    run_of_page = np.repeat(np.arange(len(run_start)), np.diff(edges))
    batch_pages = max(1, int(chunk_s * rate_hz) // ga.SAMPLES_PER_PAGE)
    wanted = iter(ordinal.tolist())
    next_wanted = next(wanted, None)
    done = 0  # usable pages decoded so far
    pages: list[list[bytes]] = []
    for k, page in enumerate(_pages(open_content(), None)):
        if k != next_wanted:
            continue
        pages.append(page)
        next_wanted = next(wanted, None)
        if len(pages) == batch_pages or next_wanted is None:
            chunk = _decode(pages, ordinal, run_of_page, run_start, run_rate, done,
                            gain, offset, shift, finisher)
            done += len(pages)
            pages = []
            if chunk is not None:
                yield chunk
        if next_wanted is None:
            break
    on_flags(finisher.flags(flags))


def _decode(pages: list[list[bytes]], ordinal: np.ndarray, run_of_page: np.ndarray,
            run_start: list[float], run_rate: list[float], done: int, gain: list[float],
            offset: list[float], shift: float, finisher: StreamFinisher) -> Chunk | None:
    fields = [f for f in (ga.page_fields(page) for page in pages) if f is not None]
    packed, _ = ga._unhex([f[3] for f in fields])
    temps = np.asarray([f[1] for f in fields], np.float64)
    accel = ga._calibrate(packed, gain, offset)
    here = slice(done, done + len(pages))
    runs = run_of_page[here]
    times = np.empty((len(pages), ga.SAMPLES_PER_PAGE))
    edges = np.concatenate(([0], np.flatnonzero(np.diff(runs)) + 1, [len(runs)]))
    for lo, hi in itertools.pairwise(edges.tolist()):
        r = int(runs[lo])
        times[lo:hi] = ga.page_times(ordinal[here][lo:hi], run_start[r], run_rate[r])
    return finisher.push(times.ravel() - shift, accel,
                         np.repeat(temps, ga.SAMPLES_PER_PAGE), 0)
