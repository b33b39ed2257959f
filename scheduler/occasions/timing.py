"""When, in a customer's own time zone, a note may go out: local days, the send window, DST.

Rules:
- A local wall time that a DST change skips (02:30 on a spring-forward night) is read as the
  first valid moment after the gap (the instant of the change), never as a time past it.
- A wall time that a DST change repeats (01:30 on a fall-back night) is its first occurrence.
- The send window is `[start, end)` in local time on the allowed weekdays (an end of `24:00`
  is the next midnight). A moment inside it is sendable as it is; any other moment moves to the
  start of the next window.

All functions are pure: datetimes in and out are aware; results are in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache

from scheduler.config.settings import END_OF_DAY, WEEKDAYS, ScheduleSettings


@lru_cache(maxsize=16_384)
def local_moment(day: date, at: time, zone: tzinfo) -> datetime:
    """The UTC instant of the wall time `at` on local `day` (see the module's DST rules).
    Cached: a detection run asks the same day and zone for thousands of customers."""
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    return _end_of_gap(wall, zone)


def _end_of_gap(wall: datetime, zone: tzinfo) -> datetime:
    """The instant a DST gap containing `wall` ends: where the zone's offset changes."""
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)  # read with the later offset
    after = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)  # read with the earlier offset
    low, high = min(before, after), max(before, after)
    low_offset = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == low_offset:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def local_day(moment: datetime, zone: tzinfo) -> date:
    """The calendar day it is in `zone` at `moment`."""
    return moment.astimezone(zone).date()


@dataclass(frozen=True)
class SendWindow:
    """The hours and weekdays notes may go out, in local time."""

    start: time
    end: time
    days: frozenset[int]  # 0 = Monday

    @classmethod
    def from_settings(cls, schedule: ScheduleSettings) -> SendWindow:
        start, end = schedule.window
        return cls(start, end, frozenset(WEEKDAYS.index(day) for day in schedule.send_days))

    def opens(self, day: date, zone: tzinfo) -> datetime:
        """When the window opens on local `day` (whether or not `day` is a send day)."""
        return local_moment(day, self.start, zone)

    def closes(self, day: date, zone: tzinfo) -> datetime:
        """When the window closes on local `day` (exclusive); a `24:00` end is the next
        local midnight."""
        if self.end == END_OF_DAY:
            return local_moment(day + timedelta(days=1), time(0), zone)
        return local_moment(day, self.end, zone)

    def first_send_day(self, day: date) -> date:
        """`day` itself if notes go out that weekday, else the next day they do."""
        while day.weekday() not in self.days:
            day += timedelta(days=1)
        return day

    def next_moment(self, earliest: datetime, zone: tzinfo) -> datetime:
        """The first instant at or after `earliest` inside the window, in UTC."""
        earliest = earliest.astimezone(UTC)
        day = local_day(earliest, zone)
        if day.weekday() in self.days:
            if earliest < self.opens(day, zone):
                return self.opens(day, zone)
            if earliest < self.closes(day, zone):
                return earliest
        return self.opens(self.first_send_day(day + timedelta(days=1)), zone)

    def on_day(self, day: date, zone: tzinfo) -> datetime:
        """The moment a note for local `day` is due: the window's opening that day, or on the
        next send day when notes do not go out on `day`."""
        return self.opens(self.first_send_day(day), zone)
