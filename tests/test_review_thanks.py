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
from scheduler.occasions.rules import (
    ReviewFact,
    first_reviews_of_their_day,
    review_is_history,
    review_thanks,
)
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


# One review a day ---------------------------------------------------------------------------


def review(customer: int, review_id: str, written: datetime, zone: ZoneInfo = LONDON) -> ReviewFact:
    return ReviewFact(customer, review_id, written, written, zone, 5)


def test_the_same_review_under_two_ids_is_kept_once() -> None:
    from_app = review(1, "ChdDSUhN", datetime(2027, 6, 14, 18, 3, 27, tzinfo=UTC))
    from_export = review(1, "auto-5f1c", datetime(2027, 6, 14, 18, 3, tzinfo=UTC))
    kept, left_out = first_reviews_of_their_day([from_app, from_export], {})
    assert (kept, left_out) == ([from_app], [from_export])


def test_reviews_on_other_days_or_by_other_customers_are_all_kept() -> None:
    evening = datetime(2027, 6, 14, 22, 30, tzinfo=UTC)  # 23:30 in London
    after_midnight = datetime(2027, 6, 14, 23, 30, tzinfo=UTC)  # 00:30 the next day
    reviews_ = [
        review(1, "R-1", evening),
        review(1, "R-2", after_midnight),
        review(2, "R-3", evening),
    ]
    assert first_reviews_of_their_day(reviews_, {}) == (reviews_, [])


def test_a_review_whose_day_an_earlier_review_took_is_left_out() -> None:
    """The earlier one was stored by an earlier run (thanked, or not: low stars, history)."""
    written = datetime(2027, 6, 14, 10, 0, tzinfo=UTC)
    late_twin = review(1, "auto-77aa", written)
    other_day = review(1, "R-9", written + timedelta(days=1))
    earlier = {1: [written - timedelta(hours=3)]}
    assert first_reviews_of_their_day([late_twin, other_day], earlier) == ([other_day], [late_twin])


def test_the_day_is_the_customers_own() -> None:
    """13:30 and 14:30 UTC are one day in London but two on Kiritimati (UTC+14)."""
    first = datetime(2027, 6, 14, 9, 30, tzinfo=UTC)
    second = datetime(2027, 6, 14, 10, 30, tzinfo=UTC)
    london = [review(1, "R-1", first), review(1, "R-2", second)]
    assert len(first_reviews_of_their_day(london, {})[0]) == 1
    kiritimati = [review(1, "R-1", first, KIRITIMATI), review(1, "R-2", second, KIRITIMATI)]
    assert len(first_reviews_of_their_day(kiritimati, {})[0]) == 2


@given(
    st.lists(st.tuples(st.integers(1, 3), moments), max_size=12),
    st.lists(st.tuples(st.integers(1, 3), moments), max_size=6),
    zones,
)
def test_each_customer_day_keeps_exactly_its_first_new_review(
    new_rows: list[tuple[int, datetime]], earlier_rows: list[tuple[int, datetime]], zone: ZoneInfo
) -> None:
    """Whatever the reviews: a (customer, local day) an earlier review took keeps none of the new
    ones; any other keeps exactly one, the first given; nothing is lost or invented."""
    new = [review(c, f"R-{n}", moment, zone) for n, (c, moment) in enumerate(new_rows)]
    earlier: dict[int, list[datetime]] = {}
    for customer, moment in earlier_rows:
        earlier.setdefault(customer, []).append(moment)
    kept, left_out = first_reviews_of_their_day(new, earlier)
    assert sorted(kept + left_out, key=new.index) == new

    def day(customer: int, moment: datetime) -> tuple[int, date]:
        return customer, moment.astimezone(zone).date()

    taken = {day(c, m) for c, ms in earlier.items() for m in ms}
    first_of_day: dict[tuple[int, date], ReviewFact] = {}
    for r in new:
        first_of_day.setdefault(day(r.customer_id, r.reviewed_at), r)
    expected = [r for key, r in first_of_day.items() if key not in taken]
    assert kept == sorted(expected, key=new.index)


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


def test_a_review_the_app_wrote_and_an_export_brought_again_is_thanked_once(
    engine: Engine, tmp_path: Path
) -> None:
    """The business's app writes the review with Google's id; the next day the owner imports
    Google's export, which has no id (so the review gets a made-up one) and the time to the
    minute: one note. And the other way round, for another customer, in one detection run."""
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    ann = add_customer(engine, "C-1")
    ben = add_customer(engine, "C-2")
    write_review(
        engine,
        ann,
        external_id="ChdDSUhNMG9nS0VJQ0FnSUNo",
        reviewed_at=datetime(2027, 6, 15, 6, 41, 17, tzinfo=UTC),
        site="Google",
    )
    detect(engine, SETTINGS, NOW)
    source = tmp_path / "google.csv"
    source.write_text(
        "customer_id,reviewed_at,where,text\n"
        "C-1,2027-06-15T07:41,google,Lovely bread.\n"  # 07:41 in London: the same review
        "C-2,2027-06-15T07:50,Google,Kind people.\n",
        encoding="utf-8",
    )
    later = NOW + timedelta(hours=2)
    assert import_csv(engine, "reviews", source, now=later, business_zone=LONDON).inserted == 2
    write_review(  # Ben's, as the app writes it after the export came in
        engine,
        ben,
        external_id="ChdDSUhNMG9nS0VJQ0FnSUNz",
        reviewed_at=datetime(2027, 6, 15, 6, 50, tzinfo=UTC),
        created_at=later,
        site="Google",
    )
    report = detect(engine, SETTINGS, later + timedelta(minutes=5))
    keys = sorted((customer, key) for customer, key, *_ in notes(engine))
    assert [customer for customer, _ in keys] == [ann, ben]
    assert keys[0][1] == "review_thanks:ChdDSUhNMG9nS0VJQ0FnSUNo"
    assert keys[1][1].startswith("review_thanks:auto-")  # the export's, stored first
    assert report.same_day_reviews == 2  # Ann's export row, and the app's row for Ben


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
