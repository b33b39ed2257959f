"""Thanking a review: the rule, each edge by name, its property over dates and zones, and
detection against a real store (SQLite and PostgreSQL): rows the business's own app writes,
history, never twice across re-imports, opt-outs and the frequency cap."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select

from scheduler.config.occasion_settings import OccasionsSettings, ReviewThanksSettings
from scheduler.config.settings import ScheduleSettings, Settings
from scheduler.detection.detect import detect
from scheduler.importer import import_csv
from scheduler.notes.note_context import TouchRef, build_contexts
from scheduler.occasions.rules import ReviewFact, review_is_history, review_thanks
from scheduler.occasions.timing import SendWindow
from scheduler.store.models import metadata
from scheduler.store.review_values import excerpt, read_rating, safe_url, url_problem
from tests.conftest import adas_bakery
from tests.test_detection import NOW, SETTINGS, add_customer, notes

LONDON = ZoneInfo("Europe/London")
KIRITIMATI = ZoneInfo("Pacific/Kiritimati")
PAGO_PAGO = ZoneInfo("Pacific/Pago_Pago")
WINDOW = SendWindow.from_settings(ScheduleSettings())
RULES = ReviewThanksSettings()
reviews = metadata.tables["reviews"]
touches = metadata.tables["touches"]


def fact(
    reviewed_at: datetime,
    recorded_at: datetime,
    zone: ZoneInfo = LONDON,
    rating: int | None = 5,
) -> ReviewFact:
    return ReviewFact(1, "R-1", reviewed_at, recorded_at, zone, rating)


# The rule, edge by edge ------------------------------------------------------------------


def test_a_review_recorded_at_once_is_thanked_in_that_days_window() -> None:
    written = datetime(2027, 6, 15, 7, 30, tzinfo=UTC)  # 08:30 in London: before the window
    [found] = review_thanks([fact(written, written)], RULES, WINDOW)
    assert (found.kind, found.key) == ("review_thanks", "review_thanks:R-1")
    assert found.due_at == datetime(2027, 6, 15, 8, 0, tzinfo=UTC)  # 09:00 in London
    assert found.expires_at == found.due_at + timedelta(days=14)


def test_a_review_written_in_the_evening_is_thanked_the_next_morning() -> None:
    written = datetime(2027, 6, 15, 19, 0, tzinfo=UTC)  # 20:00 in London: the window is shut
    [found] = review_thanks([fact(written, written)], RULES, WINDOW)
    assert found.due_at == datetime(2027, 6, 16, 8, 0, tzinfo=UTC)


def test_a_review_is_thanked_on_its_own_local_day_in_far_zones() -> None:
    written = datetime(2027, 6, 15, 12, 0, tzinfo=UTC)  # 02:00 on the 16th in Kiritimati
    [east] = review_thanks([fact(written, written, KIRITIMATI)], RULES, WINDOW)
    assert east.due_at.astimezone(KIRITIMATI).date() == date(2027, 6, 16)
    [west] = review_thanks([fact(written, written, PAGO_PAGO)], RULES, WINDOW)
    assert west.due_at.astimezone(PAGO_PAGO) == datetime(2027, 6, 15, 9, 0, tzinfo=PAGO_PAGO)


def test_a_review_recorded_a_few_days_late_is_still_thanked_when_recorded() -> None:
    written = datetime(2027, 6, 10, 12, 0, tzinfo=UTC)
    recorded = datetime(2027, 6, 15, 10, 0, tzinfo=UTC)
    [found] = review_thanks([fact(written, recorded)], RULES, WINDOW)
    assert found.due_at == recorded


def test_a_review_recorded_long_after_it_was_written_is_history() -> None:
    written = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
    end_of_its_day = datetime(2027, 6, 1, 23, 0, tzinfo=UTC)  # midnight in London (BST)
    just_in = end_of_its_day + timedelta(days=14)
    assert not review_is_history(fact(written, just_in), RULES)
    assert review_is_history(fact(written, just_in + timedelta(seconds=1)), RULES)
    assert review_thanks([fact(written, just_in + timedelta(seconds=1))], RULES, WINDOW) == []


def test_a_review_dated_ahead_of_its_recording_is_thanked_when_its_moment_comes() -> None:
    recorded = datetime(2027, 6, 15, 10, 0, tzinfo=UTC)
    written = datetime(2027, 6, 17, 12, 0, tzinfo=UTC)
    [found] = review_thanks([fact(written, recorded)], RULES, WINDOW)
    assert found.due_at == written


def test_a_review_below_min_rating_is_not_thanked_but_one_without_stars_is() -> None:
    written = datetime(2027, 6, 15, 10, 0, tzinfo=UTC)
    picky = ReviewThanksSettings(min_rating=3)
    found = review_thanks(
        [fact(written, written, rating=2), fact(written, written, rating=None)], picky, WINDOW
    )
    assert len(found) == 1
    assert review_thanks([fact(written, written, rating=2)], RULES, WINDOW) != []


moments = st.datetimes(
    min_value=datetime(1990, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2150, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
zones = st.sampled_from([LONDON, KIRITIMATI, PAGO_PAGO, ZoneInfo("America/New_York")])


@given(moments, st.integers(min_value=-3 * 24 * 60, max_value=40 * 24 * 60), zones)
def test_each_review_gets_one_timely_note_or_none_at_all(
    written: datetime, minutes_later: int, zone: ZoneInfo
) -> None:
    """Whatever the dates and the zone: a note is due inside the window, never before the review
    or its recording, with the review's key; there is none exactly when the review was
    recorded more than max_lateness after the end of its local day."""
    recorded = written + timedelta(minutes=minutes_later)
    found = review_thanks([fact(written, recorded, zone)], RULES, WINDOW)
    local_end = datetime.combine(written.astimezone(zone).date() + timedelta(days=1), time(0), zone)
    if recorded - local_end > RULES.max_lateness:
        assert found == []
        return
    [note] = found
    assert note.key == "review_thanks:R-1"
    assert note.due_at >= max(written, recorded)
    assert time(9) <= note.due_at.astimezone(zone).time() < time(17)
    assert note.due_at - max(written, recorded) < timedelta(days=1)
    assert note.expires_at - note.due_at == RULES.max_lateness


# What a review's note may show ------------------------------------------------------------


def test_only_http_addresses_with_a_host_are_a_reviews_url() -> None:
    assert url_problem("https://g.page/r/abc/review?x=1") is None
    assert url_problem("http://yelp.example/biz/ada") is None
    for bad in (
        "javascript:alert(1)",
        "data:text/html,hi",
        "//evil.example/x",
        "https://",
        "https://user:pw@evil.example/",
        "https://a.example/ b",
        "https://a.example/\x00",
        "https://" + "a" * 2100 + ".example/",
    ):
        assert url_problem(bad) is not None, bad
        assert safe_url(bad) is None


def test_ratings_are_whole_stars() -> None:
    assert [read_rating(text) for text in ("5", "4.0", "3/5", " 2 / 5 ")] == [5, 4, 3, 2]
    assert [read_rating(text) for text in ("4.5", "0", "6", "five", "10/10", "")] == [None] * 6


def test_an_excerpt_is_one_short_line_cut_at_a_word() -> None:
    assert excerpt("Kind\n\n and   quick.") == "Kind and quick."
    long = "Lovely people, " * 40
    cut = excerpt(long)
    assert len(cut) <= 203
    assert cut.endswith("people...")


# Detection against the store --------------------------------------------------------------


def write_review(engine: Engine, customer_id: int, **values: Any) -> None:
    """An INSERT as the business's own app would write it."""
    row: dict[str, Any] = {"external_id": "G-1", "reviewed_at": NOW, "created_at": NOW}
    row.update(values)
    with engine.begin() as connection:
        connection.execute(insert(reviews).values(customer_id=customer_id, **row))


def test_a_review_the_business_app_writes_is_thanked_on_its_day(engine: Engine) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    ann = add_customer(engine, "C-1")
    write_review(
        engine,
        ann,
        external_id="ChdDSUhNMG9nS0VJQ0FnSUNo",
        reviewed_at=NOW - timedelta(minutes=20),
        created_at=NOW - timedelta(minutes=10),
        site="Google",
        rating=5,
        text="Lovely bread.",
    )
    report = detect(engine, SETTINGS, NOW)
    assert report.count("review_thanks", "pending") == 1
    assert notes(engine) == [
        (
            ann,
            "review_thanks:ChdDSUhNMG9nS0VJQ0FnSUNo",
            "pending",
            None,
            datetime(2027, 6, 15, 8, 0, tzinfo=UTC),  # 09:00 in London, the window's opening
        )
    ]
    again = detect(engine, SETTINGS, NOW + timedelta(minutes=5))
    assert again.recorded == {}
    assert len(notes(engine)) == 1


def test_reviews_imported_with_years_of_history_are_not_thanked(
    engine: Engine, tmp_path: Path
) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    add_customer(engine, "C-1")
    add_customer(engine, "C-2")
    source = tmp_path / "reviews.csv"
    source.write_text(
        "id,customer_id,reviewed_at,where\n"
        "R-old,C-1,2025-03-02,Yelp\n"
        "R-new,C-2,2027-06-12,Google\n",  # three days ago: still thanked
        encoding="utf-8",
    )
    imported = import_csv(engine, "reviews", source, now=NOW, business_zone=LONDON)
    assert imported.inserted == 2
    report = detect(engine, SETTINGS, NOW + timedelta(minutes=5))
    assert [key for _, key, *_ in notes(engine)] == ["review_thanks:R-new"]
    assert report.history == 1


def test_reimporting_or_correcting_a_review_never_thanks_it_twice(
    engine: Engine, tmp_path: Path
) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    add_customer(engine, "C-1")
    source = tmp_path / "reviews.csv"
    source.write_text(
        "customer_id,reviewed_at,where,text\nC-1,2027-06-15T07:00,Google,Great\n", encoding="utf-8"
    )
    import_csv(engine, "reviews", source, now=NOW, business_zone=LONDON)
    detect(engine, SETTINGS, NOW)
    [(_, key, _, _, _)] = notes(engine)
    with engine.begin() as connection:  # it was sent
        connection.execute(touches.update().values(status="sent", sent_at=NOW))
    later = NOW + timedelta(days=2)
    import_csv(engine, "reviews", source, now=later, business_zone=LONDON)
    source.write_text(
        'customer_id,reviewed_at,where,text\nC-1,2027-06-15T07:00,Google,"Great, really"\n',
        encoding="utf-8",
    )
    corrected = import_csv(engine, "reviews", source, now=later, business_zone=LONDON)
    assert (corrected.inserted, corrected.updated) == (0, 1)
    detect(engine, SETTINGS, later)
    assert [(k, status) for _, k, status, _, _ in notes(engine)] == [(key, "sent")]
    with engine.connect() as connection:
        assert connection.execute(select(reviews.c.text)).scalars().all() == ["Great, really"]


def test_an_opted_out_reviewer_is_suppressed_with_the_reason(engine: Engine) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    gone = add_customer(engine, "C-1", opted_out_at=datetime(2027, 1, 2, tzinfo=UTC))
    write_review(engine, gone)
    report = detect(engine, SETTINGS, NOW)
    assert report.count("review_thanks", "suppressed") == 1
    assert [(who, status, reason) for who, _, status, reason, _ in notes(engine)] == [
        (gone, "suppressed", "opted out on 2027-01-02")
    ]


def test_a_birthday_goes_first_and_the_review_thanks_waits(engine: Engine) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    ann = add_customer(engine, "C-1", birth_month=6, birth_day=15)
    write_review(engine, ann)
    detect(engine, SETTINGS, NOW)
    found = {key: (status, reason) for _, key, status, reason, _ in notes(engine)}
    assert found["birthday:2027"] == ("pending", None)
    status, reason = found["review_thanks:G-1"]
    assert status == "deferred"
    assert reason is not None
    assert "one note per 7 days" in reason


def test_review_thanks_switched_off_or_below_min_rating_records_nothing(engine: Engine) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    ann = add_customer(engine, "C-1")
    write_review(engine, ann, external_id="G-low", rating=2)
    picky = Settings(
        business=adas_bakery(),
        occasions=OccasionsSettings(review_thanks=ReviewThanksSettings(min_rating=3)),
    )
    detect(engine, picky, NOW)
    write_review(engine, ann, external_id="G-off", rating=5)
    off = Settings(
        business=adas_bakery(),
        occasions=OccasionsSettings(review_thanks=ReviewThanksSettings(enabled=False)),
    )
    detect(engine, off, NOW + timedelta(minutes=5))
    assert notes(engine) == []


def test_a_placeholder_date_from_the_app_is_skipped_and_nothing_else_is(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    ann = add_customer(engine, "C-1")
    write_review(engine, ann, external_id="G-end", reviewed_at=datetime(9999, 12, 31, tzinfo=UTC))
    write_review(engine, ann, external_id="G-real")
    with caplog.at_level(logging.WARNING, logger="appreciate.detect"):
        report = detect(engine, SETTINGS, NOW)
    assert [str(row).split(":")[0] for row in report.skipped] == ["reviews G-end"]
    assert "reviewed_at 9999-12-31" in str(report.skipped[0])
    assert [key for _, key, *_ in notes(engine)] == ["review_thanks:G-real"]


def test_the_notes_context_checks_again_what_the_app_wrote(engine: Engine) -> None:
    ann = add_customer(engine, "C-1", timezone="Pacific/Kiritimati")
    bob = add_customer(engine, "C-2")
    write_review(
        engine,
        ann,
        reviewed_at=datetime(2027, 6, 15, 12, 0, tzinfo=UTC),  # the 16th in Kiritimati
        site="  ",
        url="javascript:alert(document.cookie)",
        text="Warm, kind and quick. " * 30,
    )
    touch = TouchRef(1, ann, "review_thanks", "review_thanks:G-1", NOW)
    theirs = TouchRef(2, bob, "review_thanks", "review_thanks:G-1", NOW)  # not Bob's review
    with engine.connect() as connection:
        contexts = build_contexts(
            connection, [touch, theirs], SETTINGS, now=NOW, create_tokens=False
        )
    review = contexts[1]["review"]
    assert review["id"] == "G-1"
    assert (review["where"], review["url"], review["rating"]) == (None, None, None)
    assert review["reviewed_on"] == date(2027, 6, 16)
    assert len(review["excerpt"]) <= 203
    assert review["excerpt"].endswith("...")
    assert contexts[2]["review"] is None
