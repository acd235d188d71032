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
import zlib

import numpy as np

from wearflow.bounds import zip_problem
from wearflow.errors import ReaderError, one_line
from wearflow.readers.actigraph import is_agdc, is_gt3x, read_actigraph
from wearflow.readers.csv_reader import read_csv
from wearflow.readers.cwa import read_cwa
from wearflow.readers.geneactiv import read_geneactiv
from wearflow.recording import Recording

__all__ = ["read_csv", "read_cwa", "read_geneactiv", "read_recording"]

GZIP_MAGIC = b"\x1f\x8b"
MAX_GZIP_LAYERS = 2
TEXT_SNIFF_BYTES = 65536
MAX_GZIP_RATIO = 200
"""Default cap on decompressed size, as a multiple of the compressed size.

Sensor data compress 2-20 times; a higher ratio is a degenerate file or a bomb."""
MIN_DECOMPRESSED_CAP_BYTES = 1 << 20
MAX_DECOMPRESSED_BYTES = 4 << 30
MAX_GT3X_PARTS = 64  # a .gt3x holds a handful (info.txt, log.bin, ...)
_GUNZIP_CHUNK_BYTES = 1 << 20


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
    except ReaderError as exc:
        message = one_line(exc.message)
        if message == exc.message and exc.subject == uri:
            raise
        # A reason quoting the file's own bytes may hold line breaks; keep it one line.
        raise ReaderError(message, subject=uri) from exc
    except Exception as exc:  # a reader bug or an unforeseen defect: still a data issue
        reason = one_line(str(exc), 200)
        raise ReaderError(f"cannot decode ({type(exc).__name__}: {reason})", subject=uri) from exc


def decompression_cap(compressed_bytes: int) -> int:
    """The default cap on what a compressed file inflates to: ``MAX_GZIP_RATIO`` times its
    size, at least ``MIN_DECOMPRESSED_CAP_BYTES``, at most ``MAX_DECOMPRESSED_BYTES``."""
    return min(MAX_DECOMPRESSED_BYTES,
               max(MAX_GZIP_RATIO * compressed_bytes, MIN_DECOMPRESSED_CAP_BYTES))


def _read(data: bytes, uri: str, zone: str, max_bytes: int) -> Recording:
    flags: list[str] = []
    for _ in range(MAX_GZIP_LAYERS):
        if not data.startswith(GZIP_MAGIC):
            break
        data, truncated = _gunzip(data, uri, max_bytes)
        if truncated:
            flags.append("gzip_truncated")
    recording = _dispatch(data, uri, zone)
    if flags:
        recording = dataclasses.replace(recording, flags=(*recording.flags, *flags))
    return recording


def _dispatch(data: bytes, uri: str, zone: str) -> Recording:
    if not data:
        raise ReaderError("file is empty", subject=uri)
    # "MD" with the spec's packet length 1020 is a CWA header; a text file that merely
    # starts with "MD" (a CSV column name) is not.
    standard_header = data[2:4] == b"\xfc\x03"
    if data.startswith(b"MD") and (standard_header or not _looks_like_text(data[:4096])):
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
    if _looks_like_text(data[:TEXT_SNIFF_BYTES]):
        return read_csv(data, uri, device_time_zone=zone)
    raise ReaderError(
        "unrecognised format: not Axivity .cwa, GENEActiv .bin, gzip or CSV text", subject=uri
    )


def _gunzip(data: bytes, uri: str, max_bytes: int) -> tuple[bytes, bool]:
    """Decompress every gzip member, at most ``max_bytes``; a stream cut short keeps what it held.

    Decompression goes in chunks and stops one byte past ``max_bytes``, so a
    bomb is refused without ever being inflated whole.
    """
    out = bytearray()
    rest = data
    while rest.startswith(GZIP_MAGIC):
        stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        pending = rest
        try:
            while not stream.eof:
                # Never inflate more than one byte past the cap.
                room = min(_GUNZIP_CHUNK_BYTES, max_bytes + 1 - len(out))
                chunk = stream.decompress(pending, room)
                pending = stream.unconsumed_tail
                if not chunk and not pending:
                    break  # input used up before the end of the stream: truncated
                out += chunk
                _check_size(len(out), max_bytes, uri)
        except zlib.error as exc:
            raise ReaderError(f"corrupt gzip stream ({exc})", subject=uri) from exc
        if not stream.eof:
            if not out:
                raise ReaderError("truncated gzip stream with no readable content", subject=uri)
            return bytes(out), True
        rest = stream.unused_data
    return bytes(out), False


def _check_size(size: int, max_bytes: int, uri: str) -> None:
    if size > max_bytes:
        raise ReaderError(
            f"decompressed size exceeds {max_bytes} bytes (a gzip bomb or a degenerate "
            f"file: content is inflated to at most {MAX_GZIP_RATIO} times the file, and no "
            "further than one task may use, task_memory_limit_gb)",
            subject=uri,
        )


def _looks_like_text(sample: bytes) -> bool:
    if b"\x00" in sample:
        return False
    controls = sum(sample.count(bytes([c])) for c in range(32) if c not in (9, 10, 13))
    return controls <= len(sample) // 100
