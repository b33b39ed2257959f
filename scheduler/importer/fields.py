"""Parsing one CSV cell into the value the store keeps, or a reason it cannot be.

Every parser takes the cell's text (already stripped) and raises `FieldError` with a message a
person can act on. Rules:

- birthday: `YYYY-MM-DD`, `--MM-DD` or `MM-DD`; a real calendar date (02-29 is fine without a
  year, and with a leap year); a year from 1900 up to today.
- dates: ISO 8601 (`2027-03-01`). Datetimes: ISO 8601; one with an offset (`Z`, `+02:00`) is
  exact, one without is local time of the customer's zone (else the business's); a date alone
  means local midnight. Local times that a DST change repeats take the first occurrence; local
  times it skips are read with the offset from before the change.
- money: a plain decimal (`12.50`), not negative, at most two decimal places; no currency
  signs or thousands separators (they are ambiguous between locales).
- time zone: an IANA name known to this machine's tz database.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from scheduler.addresses import InvalidAddress, normalize_address
from scheduler.settings import known_time_zone

_BIRTHDAY = re.compile(r"(?:(\d{4})-|--)?(\d{2})-(\d{2})")
_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?")
_MONEY = re.compile(r"-?\d{1,12}(?:\.\d{1,2})?")  # what fits NUMERIC(14, 2)
_TRUE = frozenset({"yes", "y", "true", "t", "1"})
_FALSE = frozenset({"no", "n", "false", "f", "0"})
_LEAP_YEAR = 2000
MIN_BIRTH_YEAR = 1900


class FieldError(ValueError):
    """A cell that cannot be used; `column` names it and the message says why."""

    def __init__(self, column: str, message: str) -> None:
        self.column = column
        self.message = message
        super().__init__(f"{column}: {message}")


class Birthday(NamedTuple):
    """A birthday; `year` is None when the customer gave only the day. (Named tuples, here
    and below, as imports make millions: they are built several times faster than frozen
    dataclasses.)"""

    month: int
    day: int
    year: int | None = None


class LocalTime(NamedTuple):
    """A datetime written without an offset: local to a zone decided later."""

    wall: datetime

    def in_zone(self, zone: tzinfo) -> datetime:
        """The UTC moment this wall-clock time names in `zone` (first occurrence if repeated)."""
        return self.wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


class OptOut:
    """`opted_out = yes`: opted out, at the time already stored or else now."""


OPT_OUT_NOW = OptOut()


def parse_birthday(column: str, text: str, today: date) -> Birthday:
    match = _BIRTHDAY.fullmatch(text)
    if not match:
        raise FieldError(column, f'"{text}" is not a birthday (use YYYY-MM-DD, --MM-DD or MM-DD)')
    year_text, month_text, day_text = match.groups()
    year = int(year_text) if year_text else None
    month, day = int(month_text), int(day_text)
    try:
        born = date(year or _LEAP_YEAR, month, day)
    except ValueError:
        raise FieldError(column, f'"{text}" is not a real calendar date') from None
    if year is not None:
        if year < MIN_BIRTH_YEAR:
            raise FieldError(column, f'"{text}" is before {MIN_BIRTH_YEAR}')
        if born > today:
            raise FieldError(column, f'"{text}" is in the future')
    return Birthday(month=month, day=day, year=year)


def parse_date(column: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FieldError(column, f'"{text}" is not a date (use YYYY-MM-DD)') from None


def parse_datetime(column: str, text: str) -> datetime | LocalTime:
    """An exact UTC datetime when `text` has an offset, else a LocalTime to place later."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise FieldError(
            column, f'"{text}" is not a date and time (use ISO 8601, e.g. 2027-03-01T14:30)'
        ) from None
    if parsed.tzinfo is None:
        return LocalTime(parsed)
    return parsed.astimezone(UTC)


def parse_money(column: str, text: str, *, allow_negative: bool = False) -> Decimal:
    if _MONEY.fullmatch(text) and (allow_negative or text[0] != "-"):
        return Decimal(text)
    if not _DECIMAL.fullmatch(text):
        raise FieldError(column, f'"{text}" is not a plain decimal number (like 12.50)')
    if text[0] == "-" and not allow_negative:
        raise FieldError(column, f'"{text}" is negative')
    if "." in text and len(text.rsplit(".", 1)[1]) > 2:
        raise FieldError(column, f'"{text}" has more than two decimal places')
    raise FieldError(column, f'"{text}" is too large')


def parse_margin(column: str, text: str) -> Decimal:
    """Money that may be negative (a sale at a loss)."""
    return parse_money(column, text, allow_negative=True)


def parse_email(column: str, text: str) -> str:
    try:
        return normalize_address(text)
    except InvalidAddress as error:
        raise FieldError(column, f'"{text}" is not a single valid email address: {error}') from None


def parse_time_zone(column: str, text: str) -> str:
    try:
        return known_time_zone(text)
    except ValueError as error:
        raise FieldError(column, str(error)) from None


def zone(name: str) -> ZoneInfo:
    """The zone for a name already checked by `parse_time_zone` or the config."""
    return ZoneInfo(name)


def parse_opt_out(column: str, text: str) -> datetime | LocalTime | OptOut | None:
    """yes/true/1 -> opted out now (or when already stored); a date or datetime -> then;
    no/false/0 -> None, which never clears a stored opt-out (an import never re-subscribes)."""
    lowered = text.lower()
    if lowered in _TRUE:
        return OPT_OUT_NOW
    if lowered in _FALSE:
        return None
    return parse_datetime(column, text)
