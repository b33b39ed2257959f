"""The `[occasions.<kind>]` tables: which moments deserve a note, and how each is timed.

Durations are written as text a person reads at a glance: `"2h"`, `"90m"`, `"1d"`,
`"1d 12h"`, `"30s"` (units d, h, m, s; at least one part), at most LONGEST_DURATION. Every
kind has `enabled` and `max_lateness`: an occasion missed while appreciate was down is still
sent once if it is no later than that, and recorded as expired otherwise.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

_DURATION_PART = re.compile(r"\s*([0-9]+)\s*([dhms])")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
LONGEST_DURATION = timedelta(days=3650)
"""No duration is longer (ten years): far longer ones would carry a moment past the calendar's
end (a lease or a back-off added to now)."""


def parse_duration(value: object) -> timedelta:
    """`"1d 12h"` -> 36 hours. Raises ValueError naming the accepted form."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f'expected a duration such as "2h", got {value!r}')
    position, seconds, text = 0, 0, value.strip()
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if not match:
            break
        seconds += int(match[1]) * _UNIT_SECONDS[match[2]]
        position = match.end()
    if not text or position < len(text):
        forms = '"2h", "90m", "1d" or "1d 12h"'
        raise ValueError(f'expected a duration such as {forms}, got "{value}"')
    if seconds > LONGEST_DURATION.total_seconds():
        longest = format_duration(LONGEST_DURATION)
        raise ValueError(f'"{value}" is longer than {longest} (ten years), the longest allowed')
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration: 36 hours -> `"1d 12h"`."""
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 24 * 3600)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    units = ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s"))
    return " ".join(f"{n}{unit}" for n, unit in units if n) or "0m"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
Amount = Annotated[float, Field(ge=0)]


class _Occasion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    enabled: bool = True


class BirthdaySettings(_Occasion):
    """On the customer's birthday in their own time zone, or `days_before` earlier."""

    days_before: int = Field(default=0, ge=0, le=60)
    feb29: Literal["feb28", "mar1"] = "feb28"
    max_lateness: Duration = timedelta(days=3)


class OrderThanksSettings(_Occasion):
    """After a new order, once `delay` has passed; orders by one customer inside the delay get
    one note, for the latest."""

    delay: Duration = timedelta(hours=2)
    min_amount: Amount = 0.0
    max_lateness: Duration = timedelta(days=7)


class ReferralThanksSettings(_Occasion):
    """To the referrer, when a referral is recorded."""

    max_lateness: Duration = timedelta(days=14)


class ReviewThanksSettings(_Occasion):
    """To a customer who wrote a review, on the review's local day; never for a review
    written more than `max_lateness` before it was recorded (past reviews imported with the
    history), nor for one rated below `min_rating` (a review without a rating always counts)."""

    min_rating: int = Field(default=1, ge=1, le=5)
    max_lateness: Duration = timedelta(days=14)


class FirstMeetingSettings(_Occasion):
    """After the customer's first recorded meeting (or `first_met_on`), once `delay` passed."""

    delay: Duration = timedelta(days=1)
    max_lateness: Duration = timedelta(days=7)


class FollowUpSettings(_Occasion):
    """`after_days` after an order: how did it go?"""

    after_days: int = Field(default=14, ge=1, le=365)
    max_lateness: Duration = timedelta(days=14)


class AnniversarySettings(_Occasion):
    """Each year on the date the customer became a customer."""

    max_lateness: Duration = timedelta(days=7)


class CheckInSettings(_Occasion):
    """A valued customer gone quiet: no order and no note for `quiet_days`, but an order within
    `stop_after_days` (someone silent for years has moved on). When lifetime values exist, only
    customers worth at least `min_value` or in the top tier."""

    quiet_days: int = Field(default=120, ge=7, le=3650)
    stop_after_days: int = Field(default=730, ge=14, le=36500)
    min_value: Amount = 0.0
    every_days: int = Field(default=180, ge=28, le=3650)
    max_lateness: Duration = timedelta(days=30)

    @model_validator(mode="after")
    def _stops_after_quiet(self) -> CheckInSettings:
        if self.stop_after_days <= self.quiet_days:
            raise ValueError("stop_after_days must be more than quiet_days")
        return self


class OccasionsSettings(BaseModel):
    """One table per occasion kind, e.g. `[occasions.birthday]`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    birthday: BirthdaySettings = BirthdaySettings()
    order_thanks: OrderThanksSettings = OrderThanksSettings()
    referral_thanks: ReferralThanksSettings = ReferralThanksSettings()
    review_thanks: ReviewThanksSettings = ReviewThanksSettings()
    first_meeting: FirstMeetingSettings = FirstMeetingSettings()
    follow_up: FollowUpSettings = FollowUpSettings()
    anniversary: AnniversarySettings = AnniversarySettings()
    check_in: CheckInSettings = CheckInSettings()
