"""Readers: decode sensor files into :class:`~wearflow.recording.Recording`.

The format is detected from the content, never from the file name:
gzip (decompressed, then detected again), Axivity .cwa (``MD`` header block),
GENEActiv .bin (text starting ``Device Identity``), otherwise CSV text
(generic time/x/y/z columns or an ActiLife RAW export).

Every failure is a :class:`~wearflow.errors.ReaderError` naming the file,
with a one-line message. Every Recording returned has strictly increasing,
finite times starting between 1990 and one day after now, finite
acceleration and a sampling rate of 0.05 Hz to 10 kHz. Decompression stops
at a cap (by default 200 times the compressed size, at least 1 MiB, at most
4 GiB; a worker also stops at what the task may use, see
:func:`wearflow.memory.max_inflated_bytes`), so that a gzip bomb costs bounded
memory; a .gt3x zip whose parts unzip beyond the same default cap is refused
unopened, and a CSV line of more than 256 fields before it is parsed.

:func:`iter_recording` gives the same recording as time-ordered :class:`Chunk` objects
from a file object, in memory bounded by the chunk rather than the file for .cwa,
GENEActiv .bin and CSV (plain or gzip; a few unusual CSVs excepted); the other formats
are read whole and cut into chunks.
Concatenated, the chunks equal ``read_recording``'s result bit for bit, flags included
(see :mod:`wearflow.readers.streaming`).

Device clocks store naive local time; ``device_time_zone`` converts it to UTC
with the one offset in force when the clock was set (device clocks do not
follow daylight saving time), so time stays increasing across a DST change.
``sampling_rate_hz`` is the configured rate for device files (GENEActiv's
printed 66.7/85.7 Hz read as the true 600/9 and 600/7 Hz) and the mean regular
sample step for CSV; ``time_s`` always carries the actual timing.

Flags a recording can carry (short, ``name`` or ``name=value``)::

    corrupt_blocks_skipped=N        .cwa blocks with a bad checksum or content
    erased_blocks_skipped=N         .cwa blocks that are all 0x00 / 0xFF
    format_changed_blocks_skipped=N .cwa blocks in a different configuration
    partial_block_bytes_dropped=N   .cwa file does not end on a block boundary
    segments=N                      .cwa logging restarts / spliced sessions
    incomplete_pages_dropped=N      .bin final page cut short
    corrupt_pages_skipped=N         .bin pages that do not decode
    pages_missing=N                 .bin header counts more pages than present
    page_count_implausible          .bin header counts more than 2**32 pages
    device_type=...                 .bin from a device that is not a GENEActiv
    header_tz=+HH:MM                .bin header zone differs from device_time_zone
    page_time_residual_s=X          .bin page times stray from the sample clock
    dst_change_not_applied          the zone changes offset during the recording
    converted_m_s2_to_g             CSV acceleration was in m/s^2
    converted_mg_to_g               CSV acceleration was in milli-g
    rows_with_missing_values_dropped=N  CSV rows with empty or non-numeric cells
    gzip_truncated                  the gzip stream ended early; what was there is read
    non_finite_samples_dropped=N    samples with a non-finite time or acceleration
    trimmed_samples=N               samples dropped because time did not increase
    gap_s=X                         an interval longer than 1 s (and 3 periods)
    gaps_not_listed=N               gaps beyond the first ten
"""

from __future__ import annotations

import dataclasses

import numpy as np

from wearflow.bounds import zip_problem
from wearflow.errors import ReaderError
from wearflow.readers._common import reader_error
from wearflow.readers._content import (
    GZIP_MAGIC,
    MAX_GZIP_LAYERS,
    TEXT_SNIFF_BYTES,
    gunzip,
    is_cwa,
    looks_like_text,
)
from wearflow.readers._content import (
    MAX_DECOMPRESSED_BYTES as MAX_DECOMPRESSED_BYTES,
)
from wearflow.readers._content import (
    MAX_GZIP_RATIO as MAX_GZIP_RATIO,
)
from wearflow.readers._content import (
    MIN_DECOMPRESSED_CAP_BYTES as MIN_DECOMPRESSED_CAP_BYTES,
)
from wearflow.readers._content import (
    decompression_cap as decompression_cap,
)
from wearflow.readers.actigraph import is_agdc, is_gt3x, read_actigraph
from wearflow.readers.chunks import Chunk, RecordingStream, collect
from wearflow.readers.csv_reader import read_csv
from wearflow.readers.cwa import read_cwa
from wearflow.readers.geneactiv import read_geneactiv
from wearflow.readers.streaming import iter_recording
from wearflow.recording import Recording

__all__ = [
    "Chunk",
    "RecordingStream",
    "collect",
    "iter_recording",
    "read_csv",
    "read_cwa",
    "read_geneactiv",
    "read_recording",
]

MAX_GT3X_PARTS = 64  # a .gt3x holds a handful (info.txt, log.bin, ...)


def read_recording(
    data: bytes,
    uri: str,
    *,
    device_time_zone: str = "UTC",
    max_decompressed_bytes: int | None = None,
) -> Recording:
    """Decode one sensor file, whatever its format.

    Parameters
    ----------
    data
        The file's bytes (gzip allowed).
    uri
        Where the bytes came from; named in every error.
    device_time_zone
        IANA zone the device clock (or naive CSV timestamps) were set in.
    max_decompressed_bytes
        Refuse gzip content that decompresses to more than this. By default
        ``MAX_GZIP_RATIO`` times the compressed size, at least
        ``MIN_DECOMPRESSED_CAP_BYTES`` and at most ``MAX_DECOMPRESSED_BYTES``.

    Returns
    -------
    Recording
        Checked by :meth:`Recording.validate`.

    Raises
    ------
    ReaderError
        For any file that cannot be decoded, with a one-line reason.
    """
    if max_decompressed_bytes is None:
        max_decompressed_bytes = decompression_cap(len(data))
    try:
        # Corrupt values may overflow (a subnormal gain, a 1e308 timestamp); the inf and
        # NaN that result are dropped and counted, or refused, by the readers' finish().
        with np.errstate(all="ignore"):
            return _read(bytes(data), uri, device_time_zone, max_decompressed_bytes)
    except Exception as exc:  # a reader bug or an unforeseen defect is still a data issue
        error = reader_error(exc, uri)
        if error is exc:
            raise
        raise error from exc


def _read(data: bytes, uri: str, zone: str, max_bytes: int) -> Recording:
    flags: list[str] = []
    for _ in range(MAX_GZIP_LAYERS):
        if not data.startswith(GZIP_MAGIC):
            break
        data, truncated = gunzip(data, uri, max_bytes)
        if truncated:
            flags.append("gzip_truncated")
    recording = _dispatch(data, uri, zone)
    if flags:
        recording = dataclasses.replace(recording, flags=(*recording.flags, *flags))
    return recording


def _dispatch(data: bytes, uri: str, zone: str) -> Recording:
    if not data:
        raise ReaderError("file is empty", subject=uri)
    if is_cwa(data[:4096]):
        return read_cwa(data, uri, device_time_zone=zone)
    if is_gt3x(data):
        # a zip whose parts pygt3x inflates whole: as bounded as a gzip file's content
        problem = zip_problem(data, max_unzipped_bytes=decompression_cap(len(data)),
                              max_parts=MAX_GT3X_PARTS)
        if problem is not None:
            raise ReaderError(f"ActiGraph .gt3x file refused: {problem}", subject=uri)
    if is_gt3x(data) or is_agdc(data):
        return read_actigraph(data, uri, device_time_zone=zone)
    text_start = data[:64].lstrip(b"\xef\xbb\xbf")
    if text_start.startswith(b"Device Identity"):
        return read_geneactiv(data, uri, device_time_zone=zone)
    if text_start.startswith(b"GENEA/"):
        raise ReaderError("legacy GENEA (2010) binary format is not supported", subject=uri)
    if looks_like_text(data[:TEXT_SNIFF_BYTES]):
        return read_csv(data, uri, device_time_zone=zone)
    raise ReaderError(
        "unrecognised format: not Axivity .cwa, GENEActiv .bin, gzip or CSV text", subject=uri
    )
