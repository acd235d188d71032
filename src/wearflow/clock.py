"""UTC time as wearflow writes it: ISO 8601, millisecond precision, a ``Z`` suffix.

Times are UTC inside; these are the only functions that turn them into text and back.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    """An aware datetime as ISO 8601 UTC with a Z suffix, millisecond precision."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    """The current UTC time, as :func:`iso` writes it."""
    return iso(datetime.now(UTC))


def iso_utc(seconds: float) -> str:
    """UTC seconds since the epoch, as :func:`iso` writes it."""
    return iso(datetime.fromtimestamp(float(seconds), UTC))


def parse_iso(text: str) -> datetime:
    """The aware datetime of a time written by :func:`iso` (or any ISO 8601 with offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
