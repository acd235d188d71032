"""Tagged, structured logging: one line per event, the problem tag in brackets.

Format (parsable by dashboards and grep)::

    2026-11-23T10:00:00.123Z [DATA_ISSUE] study=DEMO-001 uri=file:///.../P1_L.cwa reader: ...

A URL's password and tokens never reach a line (:func:`wearflow.redact.redact_text`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from wearflow.redact import redact_text

LOGGER_NAME = "wearflow"


class _UtcFormatter(logging.Formatter):
    converter = staticmethod(time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"
        tag = getattr(record, "tag", record.levelname)
        fields = " ".join(f"{k}={v}" for k, v in sorted(getattr(record, "fields", {}).items())
                          if v is not None)
        return redact_text(f"{stamp} [{tag}] {fields + ' ' if fields else ''}"
                           f"{record.getMessage()}")


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def log_event(tag: str, message: str, *, level: int = logging.INFO, **fields: object) -> None:
    """Log one event with its tag (ERROR, DATA_ISSUE, ..., or INFO) and key=value fields."""
    get_logger().log(level, message, extra={"tag": tag, "fields": fields})


def add_file_handler(path: Path) -> logging.Handler:
    """Append the study's log to ``path`` (UTC timestamps, tagged lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(_UtcFormatter())
    logger = get_logger()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def remove_handler(handler: logging.Handler) -> None:
    get_logger().removeHandler(handler)
    handler.close()
