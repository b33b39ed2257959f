"""Local calendar days of many UTC moments at once, exactly, DST included.

A zone's UTC offset changes only at its transitions. `LocalDays` finds the transitions between
two moments (hourly samples, then bisection to the second where the offset differs), so each
moment's offset is a binary search away and millions of moments convert in one numpy pass.
Day numbers count days since 1970-01-01 (`date.toordinal() - EPOCH_ORDINAL`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

import numpy as np
from numpy.typing import NDArray

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
SECONDS_PER_DAY = 86_400
_SAMPLE = 3_600
"""Offsets are sampled hourly: no zone changes its offset twice within an hour."""


def day_number(day: date) -> int:
    """`day` as days since 1970-01-01."""
    return day.toordinal() - EPOCH_ORDINAL


def day_of(number: int) -> date:
    """The date of a day number."""
    return date.fromordinal(number + EPOCH_ORDINAL)


class LocalDays:
    """Converts UTC epoch seconds from `start` to `end` into local day numbers in `zone`."""

    def __init__(self, zone: tzinfo, start: int, end: int) -> None:
        start -= SECONDS_PER_DAY  # a margin: offsets are looked up by moment, not local time
        end += SECONDS_PER_DAY
        changes = [start]
        offsets = [_offset(zone, start)]
        moment = start
        while moment < end:
            following = min(moment + _SAMPLE, end)
            offset = _offset(zone, following)
            if offset != offsets[-1]:
                changes.append(_change_between(zone, moment, following, offsets[-1]))
                offsets.append(offset)
            moment = following
        self._changes = np.array(changes, dtype=np.int64)
        self._offsets = np.array(offsets, dtype=np.int64)

    def of(self, seconds: NDArray[np.int64]) -> NDArray[np.int64]:
        """The local day number of each UTC moment (seconds since the epoch)."""
        index = np.searchsorted(self._changes, seconds, side="right") - 1
        np.clip(index, 0, len(self._offsets) - 1, out=index)
        local = seconds + self._offsets[index]
        days: NDArray[np.int64] = np.floor_divide(local, SECONDS_PER_DAY)
        return days


def _offset(zone: tzinfo, seconds: int) -> int:
    moment = datetime.fromtimestamp(seconds, UTC).astimezone(zone)
    offset = moment.utcoffset() or timedelta(0)
    return int(offset.total_seconds())


def _change_between(zone: tzinfo, low: int, high: int, low_offset: int) -> int:
    """The first second in (low, high] whose offset differs from `low_offset`."""
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(zone, middle) == low_offset:
            low = middle
        else:
            high = middle
    return high
