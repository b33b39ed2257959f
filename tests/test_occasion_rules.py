"""The occasion rules, each edge case by name, and the birthday property across two years."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from scheduler.config.occasion_settings import (
    AnniversarySettings,
    BirthdaySettings,
    CheckInSettings,
    FirstMeetingSettings,
    FollowUpSettings,
    OrderThanksSettings,
    ReferralThanksSettings,
)
from scheduler.config.settings import ScheduleSettings
from scheduler.occasions.dates import occurrence
from scheduler.occasions.rules import (
    FirstMeetingFact,
    Occasion,
    OrderFact,
    QuietCustomer,
    ReferralFact,
    Span,
    YearlyDate,
    anniversaries,
    birthdays,
    check_ins,
    first_meetings,
    follow_ups,
    order_thanks,
    referral_is_history,
    referral_thanks,
)
from scheduler.occasions.timing import SendWindow

LONDON = ZoneInfo("Europe/London")
KIRITIMATI = ZoneInfo("Pacific/Kiritimati")  # UTC+14
PAGO_PAGO = ZoneInfo("Pacific/Pago_Pago")  # UTC-11
WINDOW = SendWindow.from_settings(ScheduleSettings())


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def day_span(first: date, last: date, zone: ZoneInfo = LONDON) -> Span:
    """A span covering the local days first..last in `zone`."""
    since = datetime.combine(first, datetime.min.time(), zone).astimezone(UTC)
    now = datetime.combine(last, datetime.max.time(), zone).astimezone(UTC)
    return Span(since, now)


def keys(occasions: list[Occasion]) -> list[str]:
    return [occasion.key for occasion in occasions]


def local_days(occasions: list[Occasion], zone: ZoneInfo) -> list[date]:
    return [occasion.due_at.astimezone(zone).date() for occasion in occasions]


def born(month: int, day: int, year: int | None = None, zone: ZoneInfo = LONDON) -> YearlyDate:
    return YearlyDate(customer_id=1, zone=zone, month=month, day=day, year=year)


def test_a_feb29_birthday_is_kept_on_feb28_by_default_in_other_years() -> None:
    found = birthdays(
        [born(2, 29, 1992)],
        day_span(date(2027, 2, 1), date(2027, 3, 31)),
        BirthdaySettings(),
        WINDOW,
    )
    assert keys(found) == ["birthday:2027"]
    assert local_days(found, LONDON) == [date(2027, 2, 28)]


def test_a_feb29_birthday_can_be_kept_on_mar1() -> None:
    settings = BirthdaySettings(feb29="mar1")
    span = day_span(date(2027, 2, 1), date(2027, 3, 31))
    assert local_days(birthdays([born(2, 29)], span, settings, WINDOW), LONDON) == [
        date(2027, 3, 1)
    ]


def test_a_feb29_birthday_is_on_feb29_in_a_leap_year_under_either_policy() -> None:
    span = day_span(date(2028, 2, 1), date(2028, 3, 31))
    for policy in ("feb28", "mar1"):
        found = birthdays([born(2, 29)], span, BirthdaySettings(feb29=policy), WINDOW)
        assert local_days(found, LONDON) == [date(2028, 2, 29)]


def test_a_birthday_without_a_year_comes_every_year() -> None:
    span = day_span(date(2026, 1, 1), date(2028, 12, 31))
    found = birthdays([born(7, 9)], span, BirthdaySettings(), WINDOW)
    assert keys(found) == ["birthday:2026", "birthday:2027", "birthday:2028"]


def test_no_birthday_note_in_the_year_of_birth() -> None:
    span = day_span(date(2026, 1, 1), date(2027, 12, 31))
    assert keys(birthdays([born(7, 9, 2026)], span, BirthdaySettings(), WINDOW)) == [
        "birthday:2027"
    ]


def test_days_before_greets_early_and_keys_by_the_birthdays_year() -> None:
    settings = BirthdaySettings(days_before=3)
    found = birthdays(
        [born(1, 2)], day_span(date(2026, 12, 25), date(2027, 1, 5)), settings, WINDOW
    )
    assert keys(found) == ["birthday:2027"]
    assert local_days(found, LONDON) == [date(2026, 12, 30)]


def test_kiritimati_and_pago_pago_are_each_greeted_on_their_own_local_day() -> None:
    people = [
        YearlyDate(1, KIRITIMATI, 3, 15, None),
        YearlyDate(2, PAGO_PAGO, 3, 15, None),
    ]
    # 2027-03-14 10:00 UTC is already the 15th in Kiritimati and still the 13th in Pago Pago.
    early = birthdays(
        people, Span(utc(2027, 3, 14, 9), utc(2027, 3, 14, 10)), BirthdaySettings(), WINDOW
    )
    assert [o.customer_id for o in early] == [1]
    late = birthdays(
        people, Span(utc(2027, 3, 15, 12), utc(2027, 3, 15, 13)), BirthdaySettings(), WINDOW
    )
    assert [o.customer_id for o in late] == [2]
    due = {o.customer_id: o.due_at for o in early + late}
    assert due[1].astimezone(KIRITIMATI).isoformat() == "2027-03-15T09:00:00+14:00"
    assert due[2].astimezone(PAGO_PAGO).isoformat() == "2027-03-15T09:00:00-11:00"


def test_a_note_missed_during_downtime_is_sent_if_not_too_late_else_expired() -> None:
    span = day_span(date(2027, 5, 1), date(2027, 5, 20))
    (note,) = birthdays([born(5, 10)], span, BirthdaySettings(), WINDOW)
    assert not note.too_late(note.due_at + timedelta(days=3))
    assert note.too_late(note.due_at + timedelta(days=3, seconds=1))


def test_anniversaries_count_the_years_as_a_customer() -> None:
    since = YearlyDate(1, LONDON, 6, 30, 2024)
    span = day_span(date(2024, 1, 1), date(2026, 12, 31))
    found = anniversaries([since], span, AnniversarySettings(), WINDOW)
    assert keys(found) == ["anniversary:1", "anniversary:2"]
    assert local_days(found, LONDON) == [date(2025, 6, 30), date(2026, 6, 30)]


def order(order_id: str, placed_at: datetime, amount: str = "10", customer: int = 1) -> OrderFact:
    return OrderFact(customer, order_id, placed_at, Decimal(amount), LONDON)


def test_order_thanks_come_after_the_delay_inside_the_window() -> None:
    found = order_thanks([order("A-1", utc(2027, 6, 1, 10))], [], OrderThanksSettings(), WINDOW)
    assert keys(found) == ["order:A-1"]
    assert found[0].due_at == utc(2027, 6, 1, 12)
    evening = order_thanks([order("A-2", utc(2027, 6, 1, 15))], [], OrderThanksSettings(), WINDOW)
    assert evening[0].due_at == utc(2027, 6, 2, 8)  # 17:00 local has closed the window


def test_several_orders_inside_the_delay_get_one_thanks_for_the_latest() -> None:
    orders = [
        order("A-1", utc(2027, 6, 1, 10)),
        order("A-2", utc(2027, 6, 1, 11)),
        order("A-3", utc(2027, 6, 1, 12, 30)),
        order("B-1", utc(2027, 6, 1, 10, 30), customer=2),
    ]
    assert keys(order_thanks(orders, [], OrderThanksSettings(), WINDOW)) == [
        "order:A-3",
        "order:B-1",
    ]


def test_an_order_already_known_can_supersede_a_new_one() -> None:
    new = [order("A-1", utc(2027, 6, 1, 10))]
    known = [order("A-2", utc(2027, 6, 1, 11))]
    assert order_thanks(new, known, OrderThanksSettings(), WINDOW) == []


def test_small_orders_can_go_unthanked() -> None:
    settings = OrderThanksSettings(min_amount=20.0)
    orders = [
        order("A-1", utc(2027, 6, 1, 10), "19.99"),
        order("B-1", utc(2027, 6, 1, 10), "20", 2),
    ]
    assert keys(order_thanks(orders, [], settings, WINDOW)) == ["order:B-1"]


def test_a_follow_up_comes_after_days_on_the_local_day() -> None:
    late_evening = utc(2027, 6, 1, 22, 30)  # 23:30 on 1 June in London
    fifteenth = day_span(date(2027, 6, 15), date(2027, 6, 15))
    (found,) = follow_ups([order("A-1", late_evening)], fifteenth, FollowUpSettings(), WINDOW)
    assert found.key == "follow_up:A-1"
    assert found.due_at == utc(2027, 6, 15, 8)
    fourteenth = day_span(date(2027, 6, 14), date(2027, 6, 14))
    assert follow_ups([order("A-1", late_evening)], fourteenth, FollowUpSettings(), WINDOW) == []


def test_a_referral_made_long_before_it_was_recorded_is_history() -> None:
    recorded = utc(2027, 6, 1, 15)
    settings = ReferralThanksSettings()  # max_lateness 14 days
    made = [date(2027, 6, 1), date(2027, 5, 18), date(2027, 5, 17), date(2025, 3, 1), None]
    facts = [ReferralFact(7, f"C-{n}", recorded, LONDON, on) for n, on in enumerate(made)]
    assert [referral_is_history(fact, settings) for fact in facts] == [
        False,  # the same day
        False,  # 13 days and a bit after its day ended: still thanked
        True,  # 14 days and a bit: too late to thank
        True,  # imported with two years of history
        False,  # no date: as recorded
    ]
    thanked = referral_thanks(facts, settings, WINDOW)
    assert [occasion.key for occasion in thanked] == [
        "referral:C-0",
        "referral:C-1",
        "referral:C-4",
    ]


def test_the_referrer_is_thanked_when_the_referral_is_recorded() -> None:
    fact = ReferralFact(7, "C-77", utc(2027, 6, 1, 18), LONDON)
    (found,) = referral_thanks([fact], ReferralThanksSettings(), WINDOW)
    assert (found.customer_id, found.key, found.due_at) == (7, "referral:C-77", utc(2027, 6, 2, 8))


def test_a_first_meeting_is_followed_up_a_day_later() -> None:
    met = FirstMeetingFact(3, LONDON, met_at=utc(2027, 6, 1, 10))
    on_day = FirstMeetingFact(4, LONDON, met_on=date(2027, 6, 1))
    found = first_meetings([met, on_day], FirstMeetingSettings(), WINDOW)
    assert keys(found) == ["first_meeting", "first_meeting"]
    assert [o.due_at for o in found] == [utc(2027, 6, 2, 10), utc(2027, 6, 2, 8)]


def quiet(last_order: datetime | None, **more: object) -> QuietCustomer:
    return QuietCustomer(1, LONDON, last_order, None, None, **more)  # type: ignore[arg-type]


def test_a_valued_customer_gone_quiet_gets_a_check_in() -> None:
    now = utc(2027, 6, 1, 12)
    settings = CheckInSettings(min_value=100.0)
    quiet_for_121_days = quiet(now - timedelta(days=121), value=Decimal("150"))
    (found,) = check_ins([quiet_for_121_days], now, settings, WINDOW, values_known=True)
    assert found.key == "check_in:2027-06"
    assert (
        check_ins(
            [quiet(now - timedelta(days=119), value=Decimal("150"))], now, settings, WINDOW, True
        )
        == []
    )
    assert (
        check_ins(
            [quiet(now - timedelta(days=121), value=Decimal("50"))], now, settings, WINDOW, True
        )
        == []
    )
    top = quiet(now - timedelta(days=121), value=Decimal("50"), top_tier=True)
    assert len(check_ins([top], now, settings, WINDOW, True)) == 1
    assert len(check_ins([quiet(now - timedelta(days=121))], now, settings, WINDOW, False)) == 1
    assert check_ins([quiet(None)], now, settings, WINDOW, False) == []


def test_a_check_in_waits_every_days_for_the_next() -> None:
    now = utc(2027, 6, 1, 12)
    recently = QuietCustomer(1, LONDON, now - timedelta(days=300), None, now - timedelta(days=100))
    assert check_ins([recently], now, CheckInSettings(), WINDOW, values_known=False) == []


ZONES = st.sampled_from(
    [
        "UTC",
        "Europe/London",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
        "America/Santiago",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
    ]
).map(ZoneInfo)
BIRTHDAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2000, 12, 31))  # 2000: a leap year
START = utc(2026, 11, 1)


@given(
    st.lists(st.tuples(BIRTHDAYS, ZONES), min_size=1, max_size=5),
    st.lists(st.integers(45, 3 * 24 * 60), min_size=1, max_size=300),
    st.sampled_from(["feb28", "mar1"]),
)
def test_each_customer_gets_one_birthday_per_year_on_the_right_day_whatever_the_ticks(
    people: list[tuple[date, ZoneInfo]], gaps_in_minutes: list[int], policy: str
) -> None:
    settings = BirthdaySettings(feb29=policy)  # type: ignore[arg-type]
    customers = [
        YearlyDate(n, zone, day.month, day.day, None) for n, (day, zone) in enumerate(people)
    ]
    ticks = [START]
    while ticks[-1] < START + timedelta(days=730):
        ticks.append(
            ticks[-1] + timedelta(minutes=gaps_in_minutes[len(ticks) % len(gaps_in_minutes)])
        )
    seen: dict[tuple[int, str], Occasion] = {}
    for since, now in pairwise(ticks):
        for found in birthdays(customers, Span(since, now), settings, WINDOW):
            first_seen = seen.setdefault((found.customer_id, found.key), found)
            assert first_seen == found  # the same key always means the same moment
            if first_seen is found:  # noticed by the first tick of the customer's local day
                zone = customers[found.customer_id].zone
                day = found.due_at.astimezone(zone).date()
                day_starts = datetime.combine(day, datetime.min.time(), zone)
                assert since < day_starts <= now or day_starts <= START
    for customer in customers:
        first = ticks[0].astimezone(customer.zone).date()
        last = ticks[-1].astimezone(customer.zone).date()
        expected = {
            year: occurrence(customer.month, customer.day, year, settings.feb29)
            for year in range(first.year, last.year + 1)
            if first <= occurrence(customer.month, customer.day, year, settings.feb29) <= last
        }
        got = {
            int(key.split(":")[1]): occasion.due_at.astimezone(customer.zone).date()
            for (who, key), occasion in seen.items()
            if who == customer.customer_id
        }
        assert got == expected
