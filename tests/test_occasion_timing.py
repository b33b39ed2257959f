"""Local days, the send window and DST: each rule of scheduler.occasions.timing by name."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from scheduler.config.settings import ScheduleSettings
from scheduler.occasions.timing import SendWindow, local_moment

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
NINE_TO_FIVE = SendWindow.from_settings(ScheduleSettings())
WEEKDAYS_ONLY = SendWindow.from_settings(
    ScheduleSettings(send_days=("mon", "tue", "wed", "thu", "fri"))
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_window_starting_in_a_skipped_hour_starts_when_the_clocks_have_changed() -> None:
    # London springs forward at 01:00 GMT on 2027-03-28: 01:00-02:00 local does not exist.
    window = SendWindow.from_settings(ScheduleSettings(send_window="01:30-05:00"))
    opens = window.opens(date(2027, 3, 28), LONDON)
    assert opens == utc(2027, 3, 28, 1, 0)
    assert opens.astimezone(LONDON).time() == time(2, 0)


def test_a_repeated_hour_is_read_as_its_first_occurrence() -> None:
    # London falls back at 01:00 GMT on 2027-10-31: 01:00-02:00 local happens twice.
    assert local_moment(date(2027, 10, 31), time(1, 30), LONDON) == utc(2027, 10, 31, 0, 30)


def test_the_window_opens_at_the_same_local_time_either_side_of_a_dst_change() -> None:
    before = NINE_TO_FIVE.opens(date(2027, 3, 13), NEW_YORK)
    after = NINE_TO_FIVE.opens(date(2027, 3, 15), NEW_YORK)
    assert (before.hour, after.hour) == (14, 13)


def test_a_moment_inside_the_window_is_sendable_as_it_is() -> None:
    moment = utc(2027, 6, 1, 12, 0)  # 13:00 in London
    assert NINE_TO_FIVE.next_moment(moment, LONDON) == moment


def test_a_moment_before_the_window_waits_for_it_to_open() -> None:
    assert NINE_TO_FIVE.next_moment(utc(2027, 6, 1, 5, 0), LONDON) == utc(2027, 6, 1, 8, 0)


def test_a_moment_after_the_window_waits_for_the_next_day() -> None:
    assert NINE_TO_FIVE.next_moment(utc(2027, 6, 1, 16, 0), LONDON) == utc(2027, 6, 2, 8, 0)


def test_a_window_ending_at_24_00_runs_to_midnight() -> None:
    whole_day = SendWindow.from_settings(ScheduleSettings(send_window="00:00-24:00"))
    late = utc(2027, 6, 1, 22, 59)  # 23:59 in London
    assert whole_day.next_moment(late, LONDON) == late
    assert whole_day.closes(date(2027, 6, 1), LONDON) == utc(2027, 6, 1, 23, 0)


def test_days_without_notes_are_skipped() -> None:
    saturday_noon = utc(2027, 6, 5, 11, 0)
    assert WEEKDAYS_ONLY.next_moment(saturday_noon, LONDON) == utc(2027, 6, 7, 8, 0)
    assert WEEKDAYS_ONLY.on_day(date(2027, 6, 5), LONDON) == utc(2027, 6, 7, 8, 0)


ZONES = st.sampled_from(
    [
        "UTC",
        "Europe/London",
        "America/New_York",
        "Australia/Lord_Howe",  # a 30-minute DST shift
        "Pacific/Kiritimati",  # UTC+14
        "Pacific/Pago_Pago",  # UTC-11
        "America/Santiago",  # DST at midnight
        "Asia/Kathmandu",  # UTC+05:45
    ]
).map(ZoneInfo)
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
    max_value=datetime(2040, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
WINDOWS = st.sampled_from(
    ["09:00-17:00", "00:00-23:59", "00:30-01:30", "12:00-12:01", "00:00-24:00", "22:00-24:00"]
)


@given(MOMENTS, ZONES, WINDOWS, st.sets(st.integers(0, 6), min_size=1))
def test_the_next_send_moment_is_inside_the_window_and_never_early(
    moment: datetime, zone: ZoneInfo, window_text: str, days: set[int]
) -> None:
    base = SendWindow.from_settings(ScheduleSettings(send_window=window_text))
    window = SendWindow(base.start, base.end, frozenset(days))
    sent = window.next_moment(moment, zone)
    local = sent.astimezone(zone)
    assert sent >= moment
    assert local.weekday() in days
    assert window.opens(local.date(), zone) <= sent < window.closes(local.date(), zone)
    assert sent - moment <= timedelta(days=8)
