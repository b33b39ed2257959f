"""The frequency cap: one note per customer per gap; precedence decides, nothing is lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.config.settings import ScheduleSettings
from scheduler.occasions.cap import Planned, space_out
from scheduler.occasions.rules import Occasion
from scheduler.occasions.timing import SendWindow
from scheduler.vocabulary import OCCASION_KINDS, OccasionKind

LONDON = ZoneInfo("Europe/London")
WINDOW = SendWindow.from_settings(ScheduleSettings())
WEEK = timedelta(days=7)


def at(day: int, hour: int = 8) -> datetime:
    """A June 2027 day, 08:00 UTC (09:00 in London) unless told."""
    return datetime(2027, 6, day, hour, tzinfo=UTC)


def occasion(kind: OccasionKind, key: str, day: int, late_days: int = 7) -> Occasion:
    return Occasion(1, kind, key, at(day), at(day) + timedelta(days=late_days))


def plan(
    *occasions: Occasion, last_note: datetime | None = None, gap: timedelta = WEEK
) -> list[Planned]:
    return space_out(
        occasions,
        last_note_at=last_note,
        gap=gap,
        precedence=OCCASION_KINDS,
        window=WINDOW,
        zone=LONDON,
    )


def summary(planned: list[Planned]) -> list[tuple[str, str, datetime]]:
    return [(p.occasion.key, p.status, p.send_at) for p in planned]


def test_the_birthday_goes_first_when_an_order_thanks_falls_in_the_same_week() -> None:
    thanks = occasion("order_thanks", "order:A-1", 1, late_days=10)
    birthday = occasion("birthday", "birthday:2027", 3, late_days=3)
    assert summary(plan(thanks, birthday)) == [
        ("birthday:2027", "pending", at(3)),
        ("order:A-1", "deferred", at(10)),
    ]


def test_a_deferred_note_past_its_lateness_expires_with_a_reason() -> None:
    thanks = occasion("order_thanks", "order:A-1", 1, late_days=7)
    birthday = occasion("birthday", "birthday:2027", 3, late_days=3)
    planned = plan(thanks, birthday)
    assert summary(planned)[1] == ("order:A-1", "expired", at(10))
    assert planned[1].reason == "the birthday note took the only slot before it became too late"


def test_a_recent_note_pushes_the_next_back_by_the_gap() -> None:
    thanks = occasion("order_thanks", "order:A-1", 5)
    assert summary(plan(thanks, last_note=at(2, 14))) == [("order:A-1", "deferred", at(9, 14))]


def test_notes_further_apart_than_the_gap_all_go_when_due() -> None:
    planned = plan(
        occasion("follow_up", "follow_up:A-1", 1), occasion("anniversary", "anniversary:2", 20)
    )
    assert [p.status for p in planned] == ["pending", "pending"]


def test_a_gap_of_zero_caps_nothing() -> None:
    same_day = [occasion("birthday", "birthday:2027", 3), occasion("order_thanks", "order:A-1", 3)]
    assert [p.send_at for p in plan(*same_day, gap=timedelta(0))] == [at(3), at(3)]


def test_a_deferred_note_moves_into_the_send_window() -> None:
    thanks = occasion("order_thanks", "order:A-1", 5)
    (planned,) = plan(thanks, last_note=at(1, 20))  # 21:00 in London: the window has closed
    assert planned.send_at == at(9, 8)
