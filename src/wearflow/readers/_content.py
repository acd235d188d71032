"""A file's content before a reader sees it: gzip layers, the decompression cap, sniffing.

Shared by the whole-file read (:func:`gunzip`, all bytes at once) and the
streaming read (:class:`GunzipStream`, piece by piece). Both follow the same
rules, so that they fail with the same message on the same bytes: every gzip
member is read in turn, a stream cut short keeps what it held (the reader then
adds ``gzip_truncated``), and inflating stops one byte past the cap.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

from wearflow.errors import ReaderError

GZIP_MAGIC = b"\x1f\x8b"
MAX_GZIP_LAYERS = 2
TEXT_SNIFF_BYTES = 65536
MAX_GZIP_RATIO = 200
"""Default cap on decompressed size, as a multiple of the compressed size.

Sensor data compress 2-20 times; a higher ratio is a degenerate file or a bomb."""
MIN_DECOMPRESSED_CAP_BYTES = 1 << 20
MAX_DECOMPRESSED_BYTES = 4 << 30
GUNZIP_CHUNK_BYTES = 1 << 20


def decompression_cap(compressed_bytes: int) -> int:
    """The default cap on what a compressed file inflates to: ``MAX_GZIP_RATIO`` times its
    size, at least ``MIN_DECOMPRESSED_CAP_BYTES``, at most ``MAX_DECOMPRESSED_BYTES``."""
    return min(MAX_DECOMPRESSED_BYTES,
               max(MAX_GZIP_RATIO * compressed_bytes, MIN_DECOMPRESSED_CAP_BYTES))


def gunzip(data: bytes, uri: str, max_bytes: int) -> tuple[bytes, bool]:
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
                room = min(GUNZIP_CHUNK_BYTES, max_bytes + 1 - len(out))
                chunk = stream.decompress(pending, room)
                pending = stream.unconsumed_tail
                if not chunk and not pending:
                    break  # input used up before the end of the stream: truncated
                out += chunk
                check_size(len(out), max_bytes, uri)
        except zlib.error as exc:
            raise ReaderError(f"corrupt gzip stream ({exc})", subject=uri) from exc
        if not stream.eof:
            if not out:
                raise ReaderError("truncated gzip stream with no readable content", subject=uri)
            return bytes(out), True
        rest = stream.unused_data
    return bytes(out), False


class GunzipStream:
    """The content of a gzip file object, read piece by piece with :meth:`read`.

    The same members, cap and errors as :func:`gunzip`; ``truncated`` is True
    once the end was reached and the last member was cut short. Memory: one
    compressed piece and one decompressed piece (``GUNZIP_CHUNK_BYTES`` each).
    """

    def __init__(self, raw: BinaryIO, uri: str, max_bytes: int) -> None:
        self._raw = raw
        self._uri = uri
        self._max_bytes = max_bytes
        self._pending = b""  # compressed bytes not yet given to the decompressor
        self._raw_eof = False
        self._stream: zlib._Decompress | None = None
        self._ready = bytearray()  # decompressed, not yet read
        self._total = 0
        self._done = False
        self.truncated = False

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of content; fewer only at the end."""
        while len(self._ready) < size and not self._done:
            self._step()
        out = bytes(self._ready[:size])
        del self._ready[:size]
        return out

    def _more_raw(self) -> bool:
        if self._raw_eof:
            return False
        piece = self._raw.read(GUNZIP_CHUNK_BYTES)
        if not piece:
            self._raw_eof = True
            return False
        self._pending += piece
        return True

    def _step(self) -> None:
        if self._stream is None:  # between members: another one, or the end
            while len(self._pending) < len(GZIP_MAGIC) and self._more_raw():
                pass
            if not self._pending.startswith(GZIP_MAGIC):
                self._done = True
                return
            self._stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        stream = self._stream
        if not self._pending:
            self._more_raw()
        try:
            room = min(GUNZIP_CHUNK_BYTES, self._max_bytes + 1 - self._total)
            chunk = stream.decompress(self._pending, room)
        except zlib.error as exc:
            raise ReaderError(f"corrupt gzip stream ({exc})", subject=self._uri) from exc
        self._pending = stream.unconsumed_tail
        self._total += len(chunk)
        self._ready += chunk
        check_size(self._total, self._max_bytes, self._uri)
        if stream.eof:
            self._pending = stream.unused_data + self._pending
            self._stream = None
        elif not chunk and not self._pending and self._raw_eof:
            # input used up before the end of the stream: truncated
            if not self._total:
                raise ReaderError("truncated gzip stream with no readable content",
                                  subject=self._uri)
            self.truncated = True
            self._done = True


def check_size(size: int, max_bytes: int, uri: str) -> None:
    if size > max_bytes:
        raise ReaderError(
            f"decompressed size exceeds {max_bytes} bytes (a gzip bomb or a degenerate "
            f"file: content is inflated to at most {MAX_GZIP_RATIO} times the file, and no "
            "further than one task may use, task_memory_limit_gb)",
            subject=uri,
        )


def looks_like_text(sample: bytes) -> bool:
    if b"\x00" in sample:
        return False
    controls = sum(sample.count(bytes([c])) for c in range(32) if c not in (9, 10, 13))
    return controls <= len(sample) // 100


def is_cwa(head: bytes) -> bool:
    """Whether content starting with ``head`` (at least 4096 bytes when there are) is a .cwa.

    "MD" with the spec's packet length 1020 is a CWA header; a text file that
    merely starts with "MD" (a CSV column name) is not.
    """
    standard_header = head[2:4] == b"\xfc\x03"
    return head.startswith(b"MD") and (standard_header or not looks_like_text(head[:4096]))
