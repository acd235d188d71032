"""Tagged, structured logging: one line per event, the problem tag in brackets.

Format (parsable by dashboards and grep)::

    2026-11-23T10:00:00.123Z [DATA_ISSUE] study=DEMO-001 uri=file:///.../P1_L.cwa reader: ...

A URL's password and tokens never reach a line (:func:`wearflow.redact.redact_text`).
Control characters in the fields and the message (a file name may hold a line break)
are escaped, so that every event is exactly one line and no line can be forged.
Warnings and errors always reach stderr in this format too (the ``wearflow`` logger's
own handler, whatever else is attached); a study's whole log goes where its output is
(a file, or for a bucket a temporary file the caller uploads: :func:`add_spool_handler`).
"""

from __future__ import annotations

import logging
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from wearflow.filemodes import FILE_MODE, create_file, make_folders
from wearflow.redact import redact_text

LOGGER_NAME = "wearflow"


# C0 and C1 control characters and the Unicode line and paragraph separators: any of
# them in a file name would break a line (or forge one) in the log
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100
                                  else f"\\u{ord(char):04x}")


def escape_controls(text: str) -> str:
    """``text`` with every control character written as its escape (``\\n``, ``\\x1b``,
    ``\\u2028``): one log line stays one line, whatever a file name holds."""
    return _CONTROL.sub(_escape, text)


class _UtcFormatter(logging.Formatter):
    converter = staticmethod(time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"
        tag = getattr(record, "tag", record.levelname)
        fields = " ".join(f"{k}={v}" for k, v in sorted(getattr(record, "fields", {}).items())
                          if v is not None)
        line = f"{stamp} [{tag}] {fields + ' ' if fields else ''}{record.getMessage()}"
        return escape_controls(redact_text(line))


class _Stderr(logging.Handler):
    """Tagged lines on ``sys.stderr`` as it is when the line is written (a CLI runner's or
    a test's capture included)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


_stderr_lock = threading.Lock()
_stderr_handler: logging.Handler | None = None


def get_logger() -> logging.Logger:
    """The ``wearflow`` logger, with its tagged stderr handler (warnings and errors)."""
    global _stderr_handler
    logger = logging.getLogger(LOGGER_NAME)
    if _stderr_handler is None:
        with _stderr_lock:
            if _stderr_handler is None:
                handler = _Stderr(logging.WARNING)
                handler.setFormatter(_UtcFormatter())
                logger.addHandler(handler)
                _stderr_handler = handler
    return logger


def log_event(tag: str, message: str, *, level: int = logging.INFO, **fields: object) -> None:
    """Log one event with its tag (ERROR, DATA_ISSUE, ..., or INFO) and key=value fields."""
    get_logger().log(level, message, extra={"tag": tag, "fields": fields})


def add_file_handler(path: Path) -> logging.Handler:
    """Append the study's log to ``path`` (UTC timestamps, tagged lines); the file is
    readable by its owner and group only (:data:`~wearflow.filemodes.FILE_MODE`)."""
    make_folders(path.parent)
    create_file(path, FILE_MODE)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(_UtcFormatter())
    logger = get_logger()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def remove_handler(handler: logging.Handler) -> None:
    get_logger().removeHandler(handler)
    handler.close()


def add_spool_handler() -> logging.StreamHandler[IO[str]]:
    """Collect the log in a temporary file (private to this user) for an output that
    cannot be appended to, a bucket; :func:`spooled` reads it back."""
    # closed by spooled(), once the run it collects has ended
    spool: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
    handler = logging.StreamHandler(spool)
    handler.setFormatter(_UtcFormatter())
    logger = get_logger()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def spooled(handler: logging.StreamHandler[IO[str]]) -> bytes:
    """What a spool handler collected, as UTF-8; its temporary file is closed. Call it
    once the handler is removed."""
    stream = handler.stream
    stream.flush()
    stream.seek(0)
    text = stream.read()
    stream.close()
    return text.encode()

