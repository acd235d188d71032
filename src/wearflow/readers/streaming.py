"""The streaming read: :func:`iter_recording`, a file object in, time-ordered chunks out.

Which formats stream (``RecordingStream.method == "streamed"``), in memory bounded
by ``chunk_s``, not by the file: Axivity .cwa (:mod:`._cwa_stream`), GENEActiv
.bin (:mod:`._bin_stream`) and CSV tables (:mod:`._csv_stream`; those whose
whole-file facts can be gathered exactly in bounded state), plain or in one gzip
layer (the content is inflated twice, piece by piece, under the same cap as the
whole-file read). Every other format -- ActiGraph .gt3x/.agdc (pygt3x decodes a
whole file), a CSV left to the whole-file read, a gzip inside a gzip, anything
refused -- is read whole by
:func:`wearflow.readers.read_recording` and then handed out in chunks
(``method == "whole-file"``): the same chunks and guarantees, the whole-file
memory. The method is an attribute of the stream, not a flag, so that the flags
stay those of the whole-file read.

Concatenated, the chunks equal :func:`read_recording` on the same bytes:
samples, times, temperature, flags, device and sampling rate, bit for bit;
errors are the same one-line :class:`~wearflow.errors.ReaderError` naming the
file, raised by this call or while iterating.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Iterator
from typing import BinaryIO

import numpy as np

from wearflow.readers import _content
from wearflow.readers._bin_stream import stream_geneactiv
from wearflow.readers._common import reader_error
from wearflow.readers._csv_stream import stream_csv, survey_csv
from wearflow.readers._cwa_stream import Readable, stream_cwa
from wearflow.readers.actigraph import SQLITE_MAGIC
from wearflow.readers.chunks import Chunk, RecordingStream, StreamHeader
from wearflow.recording import Recording

DEFAULT_CHUNK_S = 3600.0
"""An hour of samples per chunk: 360,000 at 100 Hz, about 13 MB as float64."""
_SPOOL_MEMORY_BYTES = 1 << 20
_COPY_BYTES = 1 << 20


def iter_recording(
    source: BinaryIO,
    uri: str,
    *,
    chunk_s: float = DEFAULT_CHUNK_S,
    device_time_zone: str = "UTC",
    max_decompressed_bytes: int | None = None,
) -> RecordingStream:
    """Decode one sensor file as time-ordered chunks, whatever its format.

    Parameters
    ----------
    source
        The file, opened in binary mode at its first byte (a local file, an
        fsspec file from :meth:`wearflow.storage.Store.open`). One that cannot
        seek is first copied to a temporary file (the streaming decoders read
        their content twice).
    uri
        Where the bytes came from; named in every error.
    chunk_s
        About how many seconds of samples a chunk holds (a chunk also ends
        where a segment does; a whole-file read is cut at these durations).
    device_time_zone, max_decompressed_bytes
        As for :func:`wearflow.readers.read_recording`.

    Raises
    ------
    ReaderError
        For any file that cannot be decoded, with a one-line reason (also while
        iterating).
    """
    if not chunk_s > 0:
        raise ValueError(f"chunk_s must be positive, not {chunk_s!r}")
    try:
        with np.errstate(all="ignore"):
            return _dispatch(source, uri, chunk_s, device_time_zone, max_decompressed_bytes)
    except Exception as exc:
        error = reader_error(exc, uri)
        if error is exc:
            raise
        raise error from exc


def _dispatch(source: BinaryIO, uri: str, chunk_s: float, zone: str, cap: int | None
              ) -> RecordingStream:
    if not source.seekable():
        source = _spooled(source)
    base = source.tell()
    size = source.seek(0, 2) - base
    source.seek(base)
    max_bytes = cap if cap is not None else _content.decompression_cap(size)
    gzipped = source.read(len(_content.GZIP_MAGIC)) == _content.GZIP_MAGIC

    def open_content() -> Readable:
        source.seek(base)
        return _content.GunzipStream(source, uri, max_bytes) if gzipped else source

    head = open_content().read(_content.TEXT_SNIFF_BYTES)
    nested = gzipped and head.startswith(_content.GZIP_MAGIC)
    if head and not nested:
        if _content.is_cwa(head):
            decoder: Decoder = stream_cwa
        elif head[:64].lstrip(b"\xef\xbb\xbf").startswith(b"Device Identity"):
            decoder = stream_geneactiv
        elif _csv_text(head):
            plan = survey_csv(open_content, uri, zone)
            decoder = None if plan is None else functools.partial(stream_csv, plan)
        else:
            decoder = None
        if decoder is not None:
            return RecordingStream(uri, "streamed",
                                   _producer(decoder, open_content, uri, zone, chunk_s))
    source.seek(base)
    from wearflow.readers import read_recording  # the package's, defined before this runs

    recording = read_recording(source.read(), uri, device_time_zone=zone,
                           max_decompressed_bytes=cap)
    return RecordingStream(uri, "whole-file", lambda h, f: _slices(recording, chunk_s, h, f))


def _csv_text(head: bytes) -> bool:
    """Whether content starting with ``head`` goes to ``read_csv`` (read_recording's
    order: not a .cwa, .gt3x, .agdc or .bin, and text)."""
    text_start = head[:64].lstrip(b"\xef\xbb\xbf")
    return (not head.startswith((b"PK\x03\x04", SQLITE_MAGIC))
            and not text_start.startswith((b"Device Identity", b"GENEA/"))
            and _content.looks_like_text(head[:_content.TEXT_SNIFF_BYTES]))


Decoder = Callable[..., Iterator[Chunk]] | None
"""A streaming decoder: ``(open_content, uri, *, device_time_zone, chunk_s, on_header,
on_flags) -> chunks`` (:func:`stream_cwa`, :func:`stream_geneactiv`)."""


def _producer(decoder: Callable[..., Iterator[Chunk]], open_content: Callable[[], Readable],
              uri: str, zone: str, chunk_s: float) -> Callable[
                  [Callable[[StreamHeader], None], Callable[[tuple[str, ...]], None]],
                  Iterator[Chunk]]:
    """What a RecordingStream calls to run ``decoder`` on the content."""

    def produce(on_header: Callable[[StreamHeader], None],
                on_flags: Callable[[tuple[str, ...]], None]) -> Iterator[Chunk]:
        opened: list[Readable] = []

        def open_tracked() -> Readable:
            opened.append(open_content())
            return opened[-1]

        def finish(flags: tuple[str, ...]) -> None:
            # the whole-file read adds the gzip flag after the reader's own
            last = opened[-1]
            cut = isinstance(last, _content.GunzipStream) and last.truncated
            on_flags((*flags, "gzip_truncated") if cut else flags)

        return _guarded(uri, decoder(open_tracked, uri, device_time_zone=zone,
                                     chunk_s=chunk_s, on_header=on_header, on_flags=finish))

    return produce


def _guarded(uri: str, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """The chunks, every error made the whole-file read's one-line ReaderError."""
    while True:
        try:
            with np.errstate(all="ignore"):
                chunk = next(chunks)
        except StopIteration:
            return
        except Exception as exc:
            error = reader_error(exc, uri)
            if error is exc:
                raise
            raise error from exc
        yield chunk


def _slices(recording: Recording, chunk_s: float, on_header: Callable[[StreamHeader], None],
            on_flags: Callable[[tuple[str, ...]], None]) -> Iterator[Chunk]:
    """A whole recording, cut into chunks of less than ``chunk_s`` seconds (views, no copies).

    Each chunk starts at a sample and ends before ``chunk_s`` after it, so a long gap
    costs no empty chunks (time may span far more than the samples: a corrupt CSV).
    """
    on_header(StreamHeader(recording.device, recording.sampling_rate_hz))
    time_s = recording.time_s
    temperature = recording.temperature_c
    lo, n = 0, int(time_s.size)
    while lo < n:
        hi = int(np.searchsorted(time_s, time_s[lo] + chunk_s, side="left"))
        hi = max(hi, lo + 1)  # chunk_s below the float spacing of a large time
        yield Chunk(time_s[lo:hi], recording.accel_g[lo:hi],
                    None if temperature is None else temperature[lo:hi])
        lo = hi
    on_flags(recording.flags)


def _spooled(source: BinaryIO) -> BinaryIO:
    """A seekable copy of a one-way stream: in memory up to 1 MiB, then on disk."""
    copy = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY_BYTES)  # noqa: SIM115
    while piece := source.read(_COPY_BYTES):
        copy.write(piece)
    copy.seek(0)
    return copy  # type: ignore[return-value]
