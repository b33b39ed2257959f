"""Yearly dates: birthdays (with or without a year) and customer anniversaries.

Rules:
- A date recurs on the same month and day each year.
- 29 February, in a year without it, falls on 28 February (`feb29 = "feb28"`, the default) or
  on 1 March (`"mar1"`), the two customs people keep.
- A birthday without a year recurs every year; one with a year starts in the year after it.
- An anniversary `n` falls `n` years after the day someone became a customer (n >= 1).
- Dates outside EARLIEST_YEAR..LATEST_YEAR (1900-2200) are not plausible (`plausible`): readers
  of the store skip them or treat them as unknown.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Literal, TypeGuard, TypeVar

Feb29Policy = Literal["feb28", "mar1"]
Dated = TypeVar("Dated", bound=date)


def occurrence(month: int, day: int, year: int, feb29: Feb29Policy = "feb28") -> date:
    """The day `month`/`day` is kept in `year`."""
    if month == 2 and day == 29 and not calendar.isleap(year):
        return date(year, 2, 28) if feb29 == "feb28" else date(year, 3, 1)
    return date(year, month, day)


def occurrences_between(
    month: int, day: int, first: date, last: date, feb29: Feb29Policy = "feb28"
) -> Iterator[tuple[int, date]]:
    """Each (year, kept day) with `first <= kept day <= last`, in order."""
    for year in range(first.year, last.year + 1):
        kept = occurrence(month, day, year, feb29)
        if first <= kept <= last:
            yield year, kept


def month_days_between(first: date, last: date) -> set[tuple[int, int]]:
    """The (month, day) pairs whose kept day can fall in `first..last` under either Feb 29
    policy: the days themselves, plus 29 February when 28 February or 1 March is in range."""
    pairs: set[tuple[int, int]] = set()
    day = first
    while day <= last:
        pairs.add((day.month, day.day))
        if (day.month, day.day) in ((2, 28), (3, 1)) and not calendar.isleap(day.year):
            pairs.add((2, 29))
        day += timedelta(days=1)
    return pairs


EARLIEST_YEAR, LATEST_YEAR = 1900, 2200
"""The years a date in the store can plausibly have. Others are placeholders (9999-12-31,
0001-01-01) or typos, written before import bounded them or by another application; every
reader skips them (or treats them as unknown) rather than compute with them: a day or two
added to 9999-12-31, or a time zone applied to 0001-01-01 00:00 UTC, overflows."""


def plausible(value: Dated | None) -> TypeGuard[Dated]:
    """Whether `value` (a date or a datetime) lies in EARLIEST_YEAR..LATEST_YEAR."""
    return value is not None and EARLIEST_YEAR <= value.year <= LATEST_YEAR
