"""Timestamps read as text or without their column type, as aware UTC datetimes. Imports
nothing but the standard library: the quick read path (`scheduler.service.sqlite_reads`) uses
it without SQLAlchemy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def aware_utc(value: Any) -> datetime:
    """A timestamp read without its column type (an aggregate such as `max(due_at)`: SQLite
    returns the stored text) as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp, found {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def aware_utc_or_none(value: Any) -> datetime | None:
    """Like `aware_utc`; NULL stays None."""
    return None if value is None else aware_utc(value)


def as_utc(value: datetime) -> datetime:
    """`value` in UTC; a naive datetime is a bug and raises ValueError."""
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"refusing to store a naive datetime: {value!r}")
    return value.astimezone(UTC)


def sqlite_utc_text(value: datetime | None) -> str | None:
    """`2027-03-01 09:00:00.000000`: the UTC moment, without its (always zero) offset (what
    `isoformat(sep=" ", timespec="microseconds")` writes before it, formatted directly: the
    send loop converts several moments a note)."""
    if value is None:
        return None
    at = as_utc(value)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 - faster than isoformat
        at.year,
        at.month,
        at.day,
        at.hour,
        at.minute,
        at.second,
        at.microsecond,
    )
