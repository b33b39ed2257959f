"""Parsing one CSV cell into the value the store keeps, or a reason it cannot be.

Every parser takes the cell's text (already stripped) and raises `FieldError` with a message a
person can act on (quoting the cell, cut short when long). Rules:

- numbers anywhere (amounts, dates, birthdays) are written with the digits 0-9: other digits
  (Arabic-Indic, full-width...) are refused, though Python's `int` and `Decimal` take them.
- birthday: `YYYY-MM-DD`, `--MM-DD` or `MM-DD`; a real calendar date (02-29 is fine without a
  year, and with a leap year); a year from 1900, not in the future.
- dates: ISO 8601 (`2027-03-01`). Datetimes: ISO 8601; one with an offset (`Z`, `+02:00`) is
  exact, one without is local time of the customer's zone (else the business's); a date alone
  means local midnight. Local times that a DST change repeats take the first occurrence; local
  times it skips are read with the offset from before the change. Every date and datetime is
  in the years 1900 to 2200 as written: `0001-01-01` and `9999-12-31` are an export's way of
  saying "unknown", and near them a change of offset leaves the calendar.
- money: see `scheduler.importer.money` (the business's locale and currency).
- time zone: an IANA name known to this machine's tz database.
- name: at most NAME_LENGTH characters; a line break or tab inside it (a spreadsheet cell's
  Alt+Enter) reads as one space; any other control character (an escape, a bidi override that
  would reorder a card's text) is refused.
- phone and postal address lines: bounded lengths (`scheduler.store.models.POSTAL_LENGTHS`), no
  control characters; a phone holds digits 0-9 and the usual punctuation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from typing import NamedTuple
from zoneinfo import ZoneInfo

from scheduler.addresses import InvalidAddress, normalize_address
from scheduler.clock import MAX_YEAR, MIN_YEAR, within_years
from scheduler.config.settings import known_time_zone

_BIRTHDAY = re.compile(r"(?:([0-9]{4})-|--)?([0-9]{2})-([0-9]{2})")
OTHER_DIGITS = re.compile(r"(?![0-9])\d")
"""A decimal digit that is not one of 0-9 (`\\d` matches every script's digits)."""
_TRUE = frozenset({"yes", "y", "true", "t", "1"})
_FALSE = frozenset({"no", "n", "false", "f", "0"})
_LEAP_YEAR = 2000
# Dates and times are read from MIN_YEAR to MAX_YEAR (both included): see scheduler.clock.
MIN_BIRTH_YEAR = MIN_YEAR
_SHOWN = 60


def quoted(text: str) -> str:
    """A cell quoted for a reason: `"12,5x"`; a long one cut, with its length."""
    if len(text) <= _SHOWN:
        return f'"{text}"'
    return f'"{text[:_SHOWN]}..." ({len(text):,} characters)'


class FieldError(ValueError):
    """A cell that cannot be used; `column` names it and the message says why."""

    def __init__(self, column: str, message: str) -> None:
        self.column = column
        self.message = message
        super().__init__(f"{column}: {message}")


def other_digits(column: str, text: str) -> FieldError | None:
    """The error for a cell that uses digits other than 0-9, or None."""
    if text.isascii() or not OTHER_DIGITS.search(text):
        return None
    return FieldError(column, f"{quoted(text)} uses digits other than 0-9 (write it with 0-9)")


class Birthday(NamedTuple):
    """A birthday; `year` is None when the customer gave only the day. (Named tuples, here
    and below, as imports make millions: they are built several times faster than frozen
    dataclasses.)"""

    month: int
    day: int
    year: int | None = None


class LocalTime(NamedTuple):
    """A datetime written without an offset: local to a zone decided later. Built by
    `parse_datetime` only, so its year is within MIN_YEAR..MAX_YEAR and `in_zone` cannot
    leave the calendar."""

    wall: datetime

    def in_zone(self, zone: tzinfo) -> datetime:
        """The UTC moment this wall-clock time names in `zone` (first occurrence if repeated)."""
        return self.wall.replace(tzinfo=zone, fold=0).astimezone(UTC)

    def place(self, column: str, zone: tzinfo) -> datetime:
        """`in_zone`, with a FieldError for `column` instead of an OverflowError for a time
        at the calendar's edge (never raised for a LocalTime from `parse_datetime`)."""
        try:
            return self.in_zone(zone)
        except (OverflowError, ValueError):
            raise FieldError(
                column, f'"{self.wall.isoformat()}" is outside the calendar in {zone}'
            ) from None


class OptOut:
    """`opted_out = yes`: opted out, at the time already stored or else now."""


OPT_OUT_NOW = OptOut()


class StaysIn:
    """`opted_out = no`: not opted out by this file; a stored opt-out is kept all the same."""


STAYS_IN = StaysIn()


def _outside_years(column: str, text: str) -> FieldError:
    return FieldError(column, f"{quoted(text)} is outside the years {MIN_YEAR} to {MAX_YEAR}")


def parse_birthday(column: str, text: str, today: date) -> Birthday:
    match = _BIRTHDAY.fullmatch(text)
    if not match:
        raise other_digits(column, text) or FieldError(
            column, f"{quoted(text)} is not a birthday (use YYYY-MM-DD, --MM-DD or MM-DD)"
        )
    year_text, month_text, day_text = match.groups()
    year = int(year_text) if year_text else None
    month, day = int(month_text), int(day_text)
    try:
        born = date(year or _LEAP_YEAR, month, day)
    except ValueError:
        raise FieldError(column, f"{quoted(text)} is not a real calendar date") from None
    if year is not None:
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise _outside_years(column, text)
        if born > today:
            raise FieldError(column, f"{quoted(text)} is in the future")
    return Birthday(month=month, day=day, year=year)


def parse_date(column: str, text: str) -> date:
    try:
        if not text.isascii():
            raise ValueError
        parsed = date.fromisoformat(text)
    except ValueError:
        raise other_digits(column, text) or FieldError(
            column, f"{quoted(text)} is not a date (use YYYY-MM-DD)"
        ) from None
    if not within_years(parsed):
        raise _outside_years(column, text)
    return parsed


def parse_datetime(column: str, text: str) -> datetime | LocalTime:
    """An exact UTC datetime when `text` has an offset, else a LocalTime to place later."""
    try:
        if not text.isascii():
            raise ValueError
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise other_digits(column, text) or FieldError(
            column,
            f"{quoted(text)} is not a date and time (use ISO 8601, e.g. 2027-03-01T14:30)",
        ) from None
    if not within_years(parsed):
        raise _outside_years(column, text)
    if parsed.tzinfo is None:
        return LocalTime(parsed)
    return parsed.astimezone(UTC)


def parse_email(column: str, text: str) -> str:
    try:
        return normalize_address(text)
    except InvalidAddress as error:
        raise FieldError(
            column, f"{quoted(text)} is not a single valid email address: {error}"
        ) from None


_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_PHONE = re.compile(r"\+?[0-9][0-9 ().\-/]*(?:\s*(?:x|ext\.?)\s*[0-9]+)?", re.IGNORECASE)


def contact_text(max_length: int) -> Callable[[str, str], str]:
    """A parser for a line of a postal address: at most `max_length` characters, and no
    control characters (a line break, an escape, a bidi override) to garble a label."""

    def parse(column: str, text: str) -> str:
        if len(text) > max_length:
            raise FieldError(column, f"is longer than {max_length} characters")
        if _CONTROL_CHARACTER.search(text):
            raise FieldError(column, f"{quoted(text)} holds a control character")
        return text

    return parse


NAME_LENGTH = 200
"""The longest name taken: a subject line and a card's first line must hold it."""
_NAME_BREAK = re.compile(r" *[\t\n\v\f\r\x85\u2028\u2029][ \t\n\v\f\r\x85\u2028\u2029]*")
"""A line break or tab with the spaces around it: one space in a name."""


def parse_name(column: str, text: str) -> str:
    """A customer's name (see the module's rules)."""
    if text.isprintable():  # no control or format character: spares the patterns (C speed)
        name, found = text, None
    else:
        name = _NAME_BREAK.sub(" ", text).strip()
        found = _CONTROL_CHARACTER.search(name)
    if len(name) > NAME_LENGTH:
        raise FieldError(column, f"is longer than {NAME_LENGTH} characters")
    if found:
        where, code = found.start() + 1, ord(found.group())
        raise FieldError(column, f"holds a control character (U+{code:04X}) at character {where}")
    return name


def phone_parser(max_length: int) -> Callable[[str, str], str]:
    """A parser for a phone number: digits 0-9 with an optional leading `+`, spaces, `()`,
    `.`, `-`, `/`, and an extension (`x12`, `ext. 12`); at most `max_length` characters."""
    text_of = contact_text(max_length)

    def parse(column: str, text: str) -> str:
        text = text_of(column, text)
        if not _PHONE.fullmatch(text):
            raise FieldError(column, f"{quoted(text)} is not a phone number")
        return text

    return parse


def parse_time_zone(column: str, text: str) -> str:
    try:
        return known_time_zone(text)
    except ValueError:
        raise FieldError(
            column,
            f'unknown time zone {quoted(text)} (expected an IANA name like "Europe/Paris")',
        ) from None


def zone(name: str) -> ZoneInfo:
    """The zone for a name already checked by `parse_time_zone` or the config."""
    return ZoneInfo(name)


def parse_opt_out(column: str, text: str) -> datetime | LocalTime | OptOut | StaysIn | None:
    """yes/true/1 -> opted out now (or when already stored); a date or datetime -> then;
    no/false/0 -> STAYS_IN, which never clears a stored opt-out (an import never re-subscribes:
    the report warns instead)."""
    lowered = text.lower()
    if lowered in _TRUE:
        return OPT_OUT_NOW
    if lowered in _FALSE:
        return STAYS_IN
    return parse_datetime(column, text)
