"""Where appreciate gets the time: injected, so rules and tests never read the wall clock.

`SystemClock` is the only place that asks the operating system; `FixedClock` stands still at a
given moment (tests and the CLI's `--now`). Both return timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Protocol

MIN_YEAR = 1900
MAX_YEAR = 2200
"""appreciate reads dates and moments from MIN_YEAR to MAX_YEAR (both included): imported
dates, and the CLI's `--now`, `--date` and `--as-of`. Far outside them a day's arithmetic (the
day after, a week ahead, a time zone's offset) would leave the calendar."""


def within_years(moment: datetime | date) -> bool:
    """Whether `moment` (a date, or a moment read in its own offset) falls in the years
    appreciate reads (see MIN_YEAR)."""
    return MIN_YEAR <= moment.year <= MAX_YEAR


class Clock(Protocol):
    """Anything that can tell the current moment as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that always answers the same moment.

    A naive datetime is refused: every moment appreciate handles is unambiguous.
    """

    def __init__(self, moment: datetime) -> None:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"a fixed clock needs a timezone-aware moment, got {moment!r}")
        self._moment = moment.astimezone(UTC)

    def now(self) -> datetime:
        return self._moment
