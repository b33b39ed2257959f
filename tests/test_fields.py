"""Parsing cells: birthdays (with and without a year, 29 February), local times across DST,
the calendar's edges, and digits other than 0-9."""

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
    parse_date,
    parse_datetime,
    parse_opt_out,
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


@pytest.mark.parametrize(
    "text",
    ["9999-12-31", "0001-01-01", "1899-12-31", "2201-01-01"],
)
def test_dates_outside_1900_to_2200_are_refused_naming_the_column_and_range(text: str) -> None:
    expected = f'"{text}" is outside the years 1900 to 2200'
    with pytest.raises(FieldError, match=expected) as caught:
        parse_date("customer_since", text)
    assert caught.value.column == "customer_since"
    for parse in (parse_datetime, parse_opt_out):
        with pytest.raises(FieldError, match=expected):
            parse("placed_at", text)
        with pytest.raises(FieldError, match="outside the years 1900 to 2200"):
            parse("placed_at", f"{text}T23:00:00-05:00")
    if text.startswith(("0", "18")):
        with pytest.raises(FieldError, match=expected):
            parse_birthday("birthday", text, TODAY)


@pytest.mark.parametrize(
    "text", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59"]
)
def test_a_time_at_the_calendars_edge_is_a_bad_cell_not_an_overflow(text: str) -> None:
    with pytest.raises(FieldError, match="outside the years 1900 to 2200"):
        parse_datetime("met_at", text)


def test_the_bounds_themselves_are_accepted() -> None:
    assert parse_date("customer_since", "1900-01-01") == date(1900, 1, 1)
    assert parse_date("customer_since", "2200-12-31") == date(2200, 12, 31)
    assert parse_datetime("placed_at", "2200-12-31T23:59:59-12:00") == datetime(
        2201, 1, 1, 11, 59, 59, tzinfo=UTC
    )


@given(
    st.datetimes(
        min_value=datetime(1, 1, 1),  # noqa: DTZ001
        max_value=datetime(9999, 12, 31, 23, 59, 59),  # noqa: DTZ001
    ),
    st.one_of(st.none(), st.integers(min_value=-24 * 60 + 1, max_value=24 * 60 - 1)),
    st.sampled_from(ZONES),
)
def test_any_date_time_is_read_or_refused_and_placing_it_never_raises(
    wall: datetime, offset_minutes: int | None, zone_name: str
) -> None:
    text = wall.isoformat()
    if offset_minutes is not None:
        sign = "-" if offset_minutes < 0 else "+"
        text += f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    if not 1900 <= wall.year <= 2200:
        with pytest.raises(FieldError, match="outside the years 1900 to 2200"):
            parse_datetime("placed_at", text)
        return
    value = parse_datetime("placed_at", text)
    if isinstance(value, LocalTime):
        assert value.place("placed_at", ZoneInfo(zone_name)).tzinfo is UTC


def test_a_local_time_that_cannot_be_placed_is_a_field_error() -> None:
    edge = LocalTime(datetime(9999, 12, 31, 23))  # noqa: DTZ001
    with pytest.raises(
        FieldError, match=r"met_at: .* is outside the calendar in Pacific/Pago_Pago"
    ):
        edge.place("met_at", ZoneInfo("Pacific/Pago_Pago"))


ARABIC_INDIC, FULL_WIDTH, DEVANAGARI = "\u0660", "\uff10", "\u0966"


def written_in(zero: str, text: str) -> str:
    """`text` with its digits 0-9 written in the script whose zero is `zero`."""
    return "".join(chr(ord(zero) + int(c)) if c in "0123456789" else c for c in text)


OTHER_DIGITS = [
    written_in(ARABIC_INDIC, "1990-05-17"),
    written_in(FULL_WIDTH, "1990-05-17"),
    "199" + written_in(ARABIC_INDIC, "0") + "-05-17",
    written_in(DEVANAGARI, "2020") + "-01-01",
]


@pytest.mark.parametrize("text", OTHER_DIGITS)
def test_digits_other_than_0_to_9_are_refused_in_dates_and_birthdays(text: str) -> None:
    reason = "uses digits other than 0-9"
    with pytest.raises(FieldError, match=reason):
        parse_date("first_met_on", text)
    with pytest.raises(FieldError, match=reason):
        parse_datetime("met_at", text + "T10:00")
    with pytest.raises(FieldError, match=reason):
        parse_birthday("birthday", text, TODAY)


@pytest.mark.parametrize(
    "text",
    [
        "--" + written_in(ARABIC_INDIC, "05-17"),
        written_in(FULL_WIDTH, "05-17"),
        "05-1" + written_in(ARABIC_INDIC, "7"),
    ],
)
def test_digits_other_than_0_to_9_are_refused_in_birthdays_without_a_year(text: str) -> None:
    with pytest.raises(FieldError, match="uses digits other than 0-9"):
        parse_birthday("birthday", text, TODAY)


@pytest.mark.parametrize(
    "text",
    [
        written_in(ARABIC_INDIC, "123"),
        written_in(FULL_WIDTH, "12.50"),
        "12.5" + written_in(ARABIC_INDIC, "0"),
        written_in(DEVANAGARI, "3"),
    ],
)
def test_digits_other_than_0_to_9_are_refused_in_amounts(text: str) -> None:
    with pytest.raises(FieldError, match="uses digits other than 0-9"):
        amount_format().amount("amount", text)
    with pytest.raises(FieldError, match="uses digits other than 0-9"):
        amount_format("de_DE", "EUR").margin("margin", text + " €")


def test_a_long_cell_is_quoted_short_in_its_reason() -> None:
    with pytest.raises(FieldError) as caught:
        parse_date("first_met_on", "x" * 1_000_000)
    assert len(str(caught.value)) < 200
    assert "(1,000,000 characters)" in str(caught.value)
