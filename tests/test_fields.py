"""Parsing cells: birthdays (with and without a year, 29 February) and local times across DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.importer.fields import (
    Birthday,
    FieldError,
    LocalTime,
    parse_birthday,
    parse_datetime,
)
from scheduler.importer.money import amount_format

TODAY = date(2026, 11, 23)
ZONES = [
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Asia/Kolkata",
    "America/Santiago",
    "UTC",
]


@given(st.dates(min_value=date(1900, 1, 1), max_value=TODAY))
def test_a_full_birthday_reads_back_as_written(born: date) -> None:
    assert parse_birthday("birthday", born.isoformat(), TODAY) == Birthday(
        born.month, born.day, born.year
    )


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2000, 12, 31)))
def test_a_birthday_without_a_year_reads_in_both_forms(day: date) -> None:
    expected = Birthday(day.month, day.day, None)
    assert parse_birthday("birthday", f"--{day:%m-%d}", TODAY) == expected
    assert parse_birthday("birthday", f"{day:%m-%d}", TODAY) == expected


def test_feb_29_without_a_year_is_a_real_birthday() -> None:
    assert parse_birthday("birthday", "--02-29", TODAY) == Birthday(2, 29, None)


def test_feb_29_in_a_common_year_is_not() -> None:
    with pytest.raises(FieldError, match="not a real calendar date"):
        parse_birthday("birthday", "2023-02-29", TODAY)


@pytest.mark.parametrize("text", ["02-30", "--13-01", "1990-04-31", "1990/04/30", "April 1"])
def test_impossible_birthdays_are_refused(text: str) -> None:
    with pytest.raises(FieldError):
        parse_birthday("birthday", text, TODAY)


def test_a_datetime_with_an_offset_is_exact() -> None:
    assert parse_datetime("placed_at", "2027-03-01T10:00:00+02:00") == datetime(
        2027, 3, 1, 8, tzinfo=UTC
    )
    assert parse_datetime("placed_at", "2027-03-01T10:00:00Z") == datetime(
        2027, 3, 1, 10, tzinfo=UTC
    )


@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1)),  # noqa: DTZ001
    st.sampled_from(ZONES),
)
def test_a_local_time_lands_on_its_wall_clock(wall: datetime, zone_name: str) -> None:
    """A local time means that wall-clock time in the zone; a time a DST change skips moves
    forward by the gap (at most two hours); a repeated time takes its first occurrence."""
    zone = ZoneInfo(zone_name)
    moment = LocalTime(wall).in_zone(zone)
    assert moment.tzinfo is UTC
    shown = moment.astimezone(zone).replace(tzinfo=None)
    assert timedelta(0) <= shown - wall <= timedelta(hours=2)
    later = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    assert moment <= later


def test_a_local_time_in_the_spring_gap_moves_past_it() -> None:
    moment = LocalTime(datetime(2027, 3, 28, 1, 30)).in_zone(ZoneInfo("Europe/London"))  # noqa: DTZ001
    assert moment == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    assert moment.astimezone(ZoneInfo("Europe/London")).hour == 2


def test_a_repeated_local_time_takes_the_first_occurrence() -> None:
    moment = LocalTime(datetime(2027, 10, 31, 1, 30)).in_zone(ZoneInfo("Europe/London"))  # noqa: DTZ001
    assert moment == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-1.00", "negative"),
        ("12.345", "two decimal places"),
        ("€12", "currency sign"),
        ("1e3", "not an amount"),
        ("NaN", "not an amount"),
    ],
)
def test_money_must_be_an_amount(text: str, reason: str) -> None:
    with pytest.raises(FieldError, match=reason):
        amount_format().amount("amount", text)


def test_money_keeps_its_exact_value() -> None:
    plain = amount_format()
    assert str(plain.amount("amount", "1200.5")) == "1200.5"
    assert str(plain.margin("margin", "-3.25")) == "-3.25"
