"""Cheap look at a sensor file's header: the device serial, without decoding samples.

The catalog calls this on every new file so that planning can compare the
serial with the metadata's device-to-wrist assignment before anything runs.
"""

from __future__ import annotations

import re
import zlib

from wearflow.readers._cwa_decode import device_info

_HEAD_BYTES = 8192
# What header_serial needs of a file: the head, or of a gzipped file enough of it to
# inflate the head (deflate never grows data by more than a few bytes per 16 kB block).
HEADER_BYTES = 65536
_SERIAL_RES = (
    re.compile(rb"Device Unique Serial Code:\s*([^\r\n]+)"),  # GENEActiv .bin
    re.compile(rb"Serial Number:\s*([^\s,]+)"),  # ActiLife CSV export
)


def header_serial(data: bytes) -> str | None:
    """The device serial a file's header records, or None when it has none.

    ``data`` may be the whole file or its first :data:`HEADER_BYTES`.
    """
    head = data[:_HEAD_BYTES]
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, _HEAD_BYTES)
        except zlib.error:
            return None
    if head[:2] == b"MD" and len(head) >= 512:
        return device_info(head).serial
    for pattern in _SERIAL_RES:
        m = pattern.search(head)
        if m:
            return m.group(1).decode("ascii", errors="replace").strip() or None
    return None
