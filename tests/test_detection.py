"""Detection against a real store (SQLite and PostgreSQL): exactly once, suppression, lateness,
watermarks, superseded thanks, and the daily queries' indexes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Select, event, insert, select, text

from scheduler.config.occasion_settings import (
    BirthdaySettings,
    CheckInSettings,
    OrderThanksSettings,
)
from scheduler.config.settings import Settings
from scheduler.detection.detect import DetectionReport, _Detector, detect
from scheduler.occasions.dates import month_days_between
from scheduler.occasions.rules import Occasion, Span
from scheduler.store.by_hand import overdue_query
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from scheduler.store.occasion_queries import (
    anniversary_query,
    birthday_query,
    first_met_on_query,
    neighbours_query,
    new_orders_query,
    placed_between_query,
)
from scheduler.store.schema import upgrade
from tests.conftest import CONFIG_TEMPLATE, adas_bakery, run_cli

customers = metadata.tables["customers"]
orders = metadata.tables["orders"]
touches = metadata.tables["touches"]
SETTINGS = Settings(business=adas_bakery())
NOW = datetime(2027, 6, 15, 7, 0, tzinfo=UTC)  # 08:00 in London


def add_customer(engine: Engine, external_id: str, **values: Any) -> int:
    row = {"name": external_id, "email": f"{external_id.lower()}@example.com", "attributes": {}}
    row.update(values)
    with engine.begin() as connection:
        result = connection.execute(insert(customers).values(external_id=external_id, **row))
        customer_id: int = result.inserted_primary_key[0]  # type: ignore[index]
        return customer_id


def add_order(
    engine: Engine, external_id: str, customer_id: int, placed_at: datetime, **more: Any
) -> None:
    with engine.begin() as connection:
        add_order_on(connection, external_id, customer_id, placed_at, **more)


def add_ltv_run(connection: Connection) -> int:
    """A lifetime-value computation for test scores to point to."""
    result = connection.execute(
        insert(metadata.tables["ltv_runs"]).values(
            computed_at=NOW, as_of=NOW.date(), model="simple", reason="set by a test", customers=0
        )
    )
    run_id: int = result.inserted_primary_key[0]  # type: ignore[index]
    return run_id


def notes(engine: Engine) -> list[tuple[int, str, str, str | None, datetime]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                touches.c.customer_id,
                touches.c.occasion_key,
                touches.c.status,
                touches.c.reason,
                touches.c.due_at,
            ).order_by(touches.c.customer_id, touches.c.occasion_key)
        )
        return [tuple(row) for row in rows]


def test_a_birthday_today_is_recorded_once_however_often_detection_runs(engine: Engine) -> None:
    ann = add_customer(engine, "C-1", birth_month=6, birth_day=15)
    first = detect(engine, SETTINGS, NOW)
    detect(engine, SETTINGS, NOW)
    detect(engine, SETTINGS, NOW + timedelta(hours=3))
    assert first.count("birthday", "pending") == 1
    assert notes(engine) == [
        (ann, "birthday:2027", "pending", None, datetime(2027, 6, 15, 8, tzinfo=UTC))
    ]


def test_opted_out_and_unreachable_customers_are_suppressed_with_the_reason(engine: Engine) -> None:
    gone = add_customer(
        engine, "C-1", birth_month=6, birth_day=15, opted_out_at=datetime(2027, 1, 2, tzinfo=UTC)
    )
    silent = add_customer(engine, "C-2", birth_month=6, birth_day=15, email=None)
    report = detect(engine, SETTINGS, NOW)
    assert report.count("birthday", "suppressed") == 2
    assert [(who, status, reason) for who, _, status, reason, _ in notes(engine)] == [
        (gone, "suppressed", "opted out on 2027-01-02"),
        (silent, "suppressed", "no email address"),
    ]


def test_after_downtime_recent_misses_are_sent_and_old_ones_expire(engine: Engine) -> None:
    detect(engine, SETTINGS, NOW - timedelta(days=10))
    recent = add_customer(engine, "C-1", birth_month=6, birth_day=13)  # 2 days ago: within 3
    old = add_customer(engine, "C-2", birth_month=6, birth_day=9)  # 6 days ago: too late
    report = detect(engine, SETTINGS, NOW)
    assert (report.count("birthday", "pending"), report.count("birthday", "expired")) == (1, 1)
    found = {who: (status, reason) for who, _, status, reason, _ in notes(engine)}
    assert found[recent] == ("pending", None)
    assert found[old] == ("expired", "missed by 6 days; sent at most 3 days late")


def test_a_new_order_is_thanked_then_followed_up_two_weeks_later(engine: Engine) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    ann = add_customer(engine, "C-1")
    add_order(engine, "A-1", ann, NOW - timedelta(minutes=30))
    report = detect(engine, SETTINGS, NOW)
    assert report.count("order_thanks", "pending") == 1
    assert [key for _, key, _, _, _ in notes(engine)] == ["order:A-1"]
    for day in range(1, 15):  # the daemon ticks on
        detect(engine, SETTINGS, NOW + timedelta(days=day))
    keys = [(key, status, due) for _, key, status, _, due in notes(engine)]
    assert keys == [
        ("follow_up:A-1", "pending", datetime(2027, 6, 29, 8, tzinfo=UTC)),
        ("order:A-1", "pending", datetime(2027, 6, 15, 8, 30, tzinfo=UTC)),
    ]


def test_a_second_order_within_the_delay_replaces_the_first_ones_notes(engine: Engine) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    ann = add_customer(engine, "C-1")
    add_order(engine, "A-1", ann, NOW - timedelta(minutes=30))
    detect(engine, SETTINGS, NOW)
    add_order(engine, "A-2", ann, NOW + timedelta(minutes=30))
    report = detect(engine, SETTINGS, NOW + timedelta(hours=1))
    assert report.superseded == 1
    detect(engine, SETTINGS, NOW + timedelta(days=14))
    statuses = {key: status for _, key, status, _, _ in notes(engine)}
    assert statuses == {"order:A-1": "skipped", "order:A-2": "pending", "follow_up:A-2": "pending"}


def test_orders_imported_long_after_they_were_placed_are_history(engine: Engine) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    ann = add_customer(engine, "C-1")
    add_order(engine, "A-1", ann, NOW - timedelta(days=400), created_at=NOW - timedelta(minutes=5))
    report = detect(engine, SETTINGS, NOW)
    assert report.history == 1  # its thanks (its follow-up's day is long gone too)
    assert notes(engine) == []


def test_the_frequency_cap_defers_an_order_thanks_behind_a_birthday(engine: Engine) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    ann = add_customer(engine, "C-1", birth_month=6, birth_day=16)
    add_order(engine, "A-1", ann, NOW - timedelta(minutes=30))
    patient = SETTINGS.model_copy(
        update={
            "occasions": SETTINGS.occasions.model_copy(
                update={"order_thanks": OrderThanksSettings(max_lateness=timedelta(days=10))}
            )
        }
    )
    detect(engine, patient, NOW + timedelta(days=1))
    found = {key: (status, due) for _, key, status, _, due in notes(engine)}
    assert found["birthday:2027"] == ("pending", datetime(2027, 6, 16, 8, tzinfo=UTC))
    assert found["order:A-1"][0] == "deferred"
    assert found["order:A-1"][1] == datetime(2027, 6, 23, 8, tzinfo=UTC)


def test_two_instances_detecting_at_once_record_each_note_once(database_url: str) -> None:
    setup = create_store_engine(database_url)
    try:
        upgrade(setup)
        for n in range(40):
            add_customer(setup, f"C-{n}", birth_month=6, birth_day=15)
        engines = [create_store_engine(database_url) for _ in range(3)]
        try:
            with ThreadPoolExecutor(3) as pool:
                list(pool.map(lambda e: detect(e, SETTINGS, NOW), engines))
        finally:
            for each in engines:
                each.dispose()
        assert len(notes(setup)) == 40
    finally:
        setup.dispose()


DAILY_QUERIES: dict[str, tuple[Callable[[], Select[Any]], tuple[str, ...]]] = {
    "birthdays": (
        lambda: birthday_query([(month_days_between(date(2027, 6, 14), date(2027, 6, 16)), None)]),
        ("ix_customers_birthday",),
    ),
    "birthdays in the far east": (
        lambda: birthday_query(
            [({(6, 16)}, customers.c.timezone.in_(["Pacific/Kiritimati", "Pacific/Auckland"]))]
        ),
        ("ix_customers_birthday",),
    ),
    "anniversaries": (
        lambda: anniversary_query([([date(2020, 6, 15), date(2021, 6, 15)], None)]),
        ("ix_customers_customer_since",),
    ),
    "first meetings": (
        lambda: first_met_on_query(date(2027, 6, 13), date(2027, 6, 15)),
        ("ix_customers_first_met_on",),
    ),
    "follow-ups' orders": (
        lambda: placed_between_query(NOW - timedelta(days=15), NOW - timedelta(days=13)),
        ("ix_orders_placed_at",),
    ),
    "new orders": (
        lambda: new_orders_query(1000),
        ("INTEGER PRIMARY KEY", "orders_pkey"),
    ),
    "cards and calls past their time": (
        lambda: overdue_query("card", NOW),
        ("ix_touches_by_hand",),
    ),
    "the same customers' orders": (
        lambda: neighbours_query([1, 2, 3], NOW - timedelta(hours=2), NOW),
        ("ix_orders_customer_placed_at", "ix_orders_placed_at"),  # PostgreSQL decides by stats
    ),
}


def query_plan(engine: Engine, query: Select[Any]) -> str:
    """The database's plan for `query`, as run with the parameters the driver really gets."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":  # tiny tables: ask whether an index can serve
            connection.execute(text("SET LOCAL enable_seqscan = off"))
        event.listen(connection, "before_cursor_execute", capture)
        connection.execute(query).all()
        event.remove(connection, "before_cursor_execute", capture)
        statement, parameters = sent[-1]
        rows = connection.exec_driver_sql(explain + statement, parameters)
        return " | ".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize("name", DAILY_QUERIES)
def test_the_daily_queries_use_their_indexes(engine: Engine, name: str) -> None:
    build, indexes = DAILY_QUERIES[name]
    plan = query_plan(engine, build())
    assert any(index in plan for index in indexes), plan


def test_sqlite_finds_the_same_customers_orders_by_customer_first(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        upgrade(engine)
        query = neighbours_query([1, 2, 3], NOW - timedelta(hours=2), NOW)
        plan = query_plan(engine, query)
    finally:
        engine.dispose()
    assert "USING INDEX ix_orders_customer_placed_at" in plan, plan


def test_a_note_sent_recently_holds_back_the_next_one(engine: Engine) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    ann = add_customer(engine, "C-1")
    sent_at = NOW - timedelta(days=2)
    with engine.begin() as connection:
        connection.execute(
            insert(touches).values(
                customer_id=ann,
                kind="anniversary",
                occasion_key="anniversary:1",
                status="sent",
                due_at=sent_at,
                sent_at=sent_at,
            )
        )
    add_order(engine, "A-1", ann, NOW - timedelta(minutes=30))
    detect(engine, SETTINGS, NOW)
    found = {key: (status, due) for _, key, status, _, due in notes(engine)}
    # a week after the last note is 08:00 in London, before the window opens at 09:00
    assert found["order:A-1"] == ("deferred", datetime(2027, 6, 20, 8, tzinfo=UTC))


def test_check_ins_go_to_customers_gone_quiet_but_not_gone_for_good(engine: Engine) -> None:
    quiet = add_customer(engine, "C-1")
    add_order(engine, "A-1", quiet, NOW - timedelta(days=200))
    gone = add_customer(engine, "C-2")
    add_order(engine, "B-1", gone, NOW - timedelta(days=800))
    active = add_customer(engine, "C-3")
    add_order(engine, "C-1", active, NOW - timedelta(days=30))
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    assert [(who, key) for who, key, *_ in notes(engine)] == [(quiet, "check_in:2027-06")]
    later_that_day = detect(engine, SETTINGS, NOW + timedelta(hours=2))
    assert later_that_day.count("check_in", "pending") == 0


def add_meeting(engine: Engine, customer_id: int, met_at: datetime, stored_at: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(metadata.tables["meetings"]).values(
                customer_id=customer_id, met_at=met_at, created_at=stored_at, updated_at=stored_at
            )
        )


def test_only_a_customers_first_meeting_gets_a_note(engine: Engine) -> None:
    old_friend = add_customer(engine, "C-1")
    add_meeting(engine, old_friend, NOW - timedelta(days=300), NOW - timedelta(days=300))
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    newcomer = add_customer(engine, "C-2")
    add_meeting(engine, old_friend, NOW - timedelta(minutes=20), NOW)
    add_meeting(engine, newcomer, NOW - timedelta(minutes=20), NOW)
    report = detect(engine, SETTINGS, NOW)
    assert report.count("first_meeting", "pending") == 1
    assert [(who, key, due) for who, key, _, _, due in notes(engine)] == [
        (newcomer, "first_meeting", datetime(2027, 6, 16, 8, tzinfo=UTC))  # a day on, at 09:00
    ]


def test_the_referrer_is_thanked_for_a_referral(engine: Engine) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    referrer = add_customer(engine, "C-1")
    friend = add_customer(engine, "C-77")
    with engine.begin() as connection:
        connection.execute(
            insert(metadata.tables["referrals"]).values(
                referrer_id=referrer,
                referred_id=friend,
                referred_on=NOW.date(),
                created_at=NOW,
                updated_at=NOW,
            )
        )
    detect(engine, SETTINGS, NOW + timedelta(minutes=5))
    assert [(who, key) for who, key, *_ in notes(engine)] == [(referrer, "referral:C-77")]


def test_referrals_imported_with_years_of_history_are_not_thanked(engine: Engine) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    referrer = add_customer(engine, "C-1")
    friends = [add_customer(engine, f"C-{n}") for n in (77, 78)]
    with engine.begin() as connection:
        for friend, made in zip(
            friends, (NOW.date() - timedelta(days=700), NOW.date()), strict=True
        ):
            connection.execute(
                insert(metadata.tables["referrals"]).values(
                    referrer_id=referrer,
                    referred_id=friend,
                    referred_on=made,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    report = detect(engine, SETTINGS, NOW + timedelta(minutes=5))
    assert [key for _, key, *_ in notes(engine)] == ["referral:C-78"]
    assert report.history == 1


def test_a_kind_switched_off_is_never_recorded(engine: Engine) -> None:
    add_customer(engine, "C-1", birth_month=6, birth_day=15)
    quiet = SETTINGS.model_copy(
        update={
            "occasions": SETTINGS.occasions.model_copy(
                update={"birthday": BirthdaySettings(enabled=False)}
            )
        }
    )
    assert sum(detect(engine, quiet, NOW).recorded.values()) == 0
    assert notes(engine) == []


def test_later_check_in_passes_find_the_newly_quiet_and_those_due_again(engine: Engine) -> None:
    first = add_customer(engine, "C-1")
    add_order(engine, "A-1", first, NOW - timedelta(days=200))
    soon_quiet = add_customer(engine, "C-2")
    add_order(engine, "B-1", soon_quiet, NOW - timedelta(days=119, hours=12))
    detect(engine, SETTINGS, NOW)  # the first pass: C-1 only
    next_day = detect(engine, SETTINGS, NOW + timedelta(days=1))
    assert next_day.count("check_in", "pending") == 1  # C-2 went quiet overnight
    for day in range(2, 185):  # daily passes; both check-ins come round again 180 days on
        detect(engine, SETTINGS, NOW + timedelta(days=day))
    found = sorted((who, key) for who, key, *_ in notes(engine) if key.startswith("check_in"))
    assert found == [
        (first, "check_in:2027-06"),
        (first, "check_in:2027-12"),
        (soon_quiet, "check_in:2027-06"),
        (soon_quiet, "check_in:2027-12"),
    ]


def test_with_lifetime_values_only_valued_or_vip_customers_get_check_ins(engine: Engine) -> None:
    valued, vip, modest = (add_customer(engine, f"C-{n}") for n in (1, 2, 3))
    with engine.begin() as connection:
        run_id = add_ltv_run(connection)
        for number, (who, total, tier) in enumerate(
            [(valued, "500.00", "regular"), (vip, "10.00", "vip"), (modest, "10.00", "regular")]
        ):
            add_order_on(connection, f"A-{number}", who, NOW - timedelta(days=200))
            connection.execute(
                insert(metadata.tables["customer_values"]).values(
                    customer_id=who,
                    historical=Decimal(total),
                    predicted=Decimal(0),
                    referral=Decimal(0),
                    total=Decimal(total),
                    tier=tier,
                    run_id=run_id,
                )
            )
    picky = SETTINGS.model_copy(
        update={
            "occasions": SETTINGS.occasions.model_copy(
                update={"check_in": CheckInSettings(min_value=100.0)}
            )
        }
    )
    detect(engine, picky, NOW)
    assert sorted(who for who, key, *_ in notes(engine) if key.startswith("check_in")) == [
        valued,
        vip,
    ]


def add_order_on(
    connection: Any, external_id: str, customer_id: int, placed_at: datetime, **more: Any
) -> None:
    values = {"amount": Decimal("25.00"), "created_at": placed_at, "updated_at": placed_at}
    values.update(more)
    connection.execute(
        insert(orders).values(
            external_id=external_id, customer_id=customer_id, placed_at=placed_at, **values
        )
    )


# Dates at the calendar's edges ------------------------------------------------------------

END_OF_TIME = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
START_OF_TIME = datetime(1, 1, 1, tzinfo=UTC)


def add_edge_rows(engine: Engine) -> dict[str, int]:
    """Rows another application wrote straight into the store, dated 9999-12-31 and
    0001-01-01 in every column detection reads, beside customers whose notes are real."""
    ann = add_customer(engine, "C-ann", birth_month=6, birth_day=15)
    cal = add_customer(engine, "C-cal", birth_year=1, birth_month=6, birth_day=15)
    eve = add_customer(
        engine, "C-eve", customer_since=date(1, 1, 1), first_met_on=END_OF_TIME.date()
    )
    fay = add_customer(engine, "C-fay", customer_since=date(9999, 12, 31))
    new = add_customer(engine, "C-new")
    with engine.begin() as connection:
        add_order_on(connection, "A-end", ann, END_OF_TIME)
        add_order_on(connection, "A-start", ann, START_OF_TIME)
        add_order_on(
            connection, "A-stored-end", ann, NOW - timedelta(minutes=30), created_at=END_OF_TIME
        )
        add_order_on(connection, "A-real", new, NOW - timedelta(minutes=30), created_at=NOW)
        referral = connection.execute(
            insert(metadata.tables["referrals"]).values(
                referrer_id=ann, referred_id=eve, referred_on=END_OF_TIME.date()
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    for moment in (START_OF_TIME, END_OF_TIME):
        add_meeting(engine, fay, moment, NOW)
    add_meeting(engine, new, NOW - timedelta(days=1), NOW)
    return {"ann": ann, "cal": cal, "eve": eve, "fay": fay, "new": new, "referral": referral}


def test_rows_dated_at_the_calendars_edges_never_stop_detection(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    people = add_edge_rows(engine)
    with caplog.at_level(logging.WARNING, logger="appreciate.detect"):
        report = detect(engine, SETTINGS, NOW)
    skipped = sorted(str(row) for row in report.skipped)
    assert [row.split(":")[0] for row in skipped] == [
        "meetings #1",
        "meetings #2",
        "orders A-end",
        "orders A-start",
        "orders A-stored-end",
        f"referrals #{people['referral']}",
    ]
    bounds = "is not a date from 1900 to 2200"
    assert any(row.startswith("orders A-end: placed_at 9999-12-31 23:59:00") for row in skipped)
    assert all(bounds in row for row in skipped)
    assert f"referrals #{people['referral']}: referred_on 9999-12-31 {bounds}" in skipped
    assert sorted(r.getMessage() for r in caplog.records) == [
        f"detection skipped {row}" for row in skipped
    ]
    # every other occasion is still recorded
    keys = {(who, key) for who, key, *_ in notes(engine)}
    assert keys == {
        (people["ann"], "birthday:2027"),
        (people["cal"], "birthday:2027"),  # a year of birth of 1 is no year at all
        (people["new"], "order:A-real"),
        (people["new"], "first_meeting"),
    }
    # each row is skipped once, and the days after see nothing wrong
    for day in range(1, 400, 7):
        later = detect(engine, SETTINGS, NOW + timedelta(days=day))
        assert later.skipped == []


def test_a_placeholder_order_never_hides_a_customer_gone_quiet(engine: Engine) -> None:
    quiet = add_customer(engine, "C-1")
    with engine.begin() as connection:
        add_order_on(connection, "A-1", quiet, NOW - timedelta(days=200))
        add_order_on(connection, "A-2", quiet, END_OF_TIME)
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    assert [(who, key) for who, key, *_ in notes(engine)] == [(quiet, "check_in:2027-06")]


def test_a_rule_that_cannot_compute_one_rows_occasion_skips_that_row_alone(
    engine: Engine,
) -> None:
    add_customer(engine, "C-1")
    add_customer(engine, "C-2")
    report = DetectionReport(since=NOW - timedelta(hours=1), now=NOW)
    detector = _Detector(engine.connect(), SETTINGS, Span(report.since, NOW), report)
    try:

        def rule(customer_ids: list[int]) -> list[Occasion]:
            if 2 in customer_ids:
                raise OverflowError("date value out of range")
            return [Occasion(who, "check_in", "check_in:2027-06", NOW, NOW) for who in customer_ids]

        found = detector._computed(rule, [1, 2], detector._customer_row)
    finally:
        detector.connection.close()
    assert [occasion.customer_id for occasion in found] == [1]
    assert [str(row) for row in report.skipped] == [
        "customers C-2: its occasion cannot be computed (OverflowError: date value out of range)"
    ]


# Amounts that are no amount --------------------------------------------------------------


def set_amount(engine: Engine, external_id: str, amount: object) -> None:
    """What the business's own application may write: on SQLite any REAL (1e300, infinity) or
    even text; on PostgreSQL NUMERIC(14, 2) holds 'NaN' (which passes `amount >= 0`)."""
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE orders SET amount = :amount WHERE external_id = :id"),
            {"amount": amount, "id": external_id},
        )


def test_orders_whose_amount_is_no_amount_are_skipped_and_detection_goes_on(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    detect(engine, SETTINGS, NOW - timedelta(hours=1))
    odd = add_customer(engine, "C-odd")
    fine = add_customer(engine, "C-fine")
    wrong: dict[str, object] = {"A-nan": "NaN"}
    if engine.dialect.name == "sqlite":
        wrong |= {"A-huge": 1e300, "A-inf": float("inf")}
    with engine.begin() as connection:
        for minutes, order in enumerate(wrong):
            add_order_on(connection, order, odd, NOW - timedelta(minutes=50 - minutes))
        add_order_on(connection, "A-odd-ok", odd, NOW - timedelta(minutes=30))  # near the odd
        add_order_on(connection, "A-fine", fine, NOW - timedelta(minutes=30))
    for order, amount in wrong.items():
        set_amount(engine, order, amount)
    with caplog.at_level(logging.WARNING, logger="appreciate.detect"):
        report = detect(engine, SETTINGS, NOW)
    skipped = sorted(str(row) for row in report.skipped)
    assert [row.split(":")[0] for row in skipped] == [f"orders {order}" for order in sorted(wrong)]
    assert all("is not an amount from 0 to 999999999999.99" in row for row in skipped)
    assert "orders A-nan: amount NaN is not an amount from 0 to 999999999999.99" in skipped
    assert sorted(r.getMessage() for r in caplog.records) == [
        f"detection skipped {row}" for row in skipped
    ]
    assert {(who, key) for who, key, *_ in notes(engine)} == {
        (odd, "order:A-odd-ok"),
        (fine, "order:A-fine"),
    }
    # the follow-ups two weeks later read the same orders by their time: no second warning
    for day in range(1, 16):
        assert detect(engine, SETTINGS, NOW + timedelta(days=day)).skipped == []
    assert {key for _, key, *_ in notes(engine)} >= {"follow_up:A-odd-ok", "follow_up:A-fine"}


def store_written_by_another_application(
    tmp_path: Path, column: str, written: dict[str, str | None]
) -> Path:
    """A SQLite workspace caught up an hour before NOW, then customers with a birthday today
    whose `column` another application set to the given text (None: left alone); its config."""
    config = tmp_path / "appreciate.toml"
    config.write_text(CONFIG_TEMPLATE.format(url=f"sqlite:///{tmp_path / 'store.db'}"))
    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        upgrade(engine)
        detect(engine, SETTINGS, NOW - timedelta(hours=1))
        for external_id, value in written.items():
            who = add_customer(engine, external_id, birth_month=6, birth_day=15)
            if value is not None:
                with engine.begin() as connection:
                    connection.execute(
                        text(f"UPDATE customers SET {column} = :value WHERE id = :id"),
                        {"value": value, "id": who},
                    )
    finally:
        engine.dispose()
    return config


def test_a_year_of_birth_written_as_text_counts_as_unknown(tmp_path: Path) -> None:
    """SQLite keeps text in an integer column: an application writing '' (or 'n/a') for an
    unknown year stopped detection and every note to that customer."""
    config = store_written_by_another_application(
        tmp_path, "birth_year", {"C-blank": "", "C-words": "n/a"}
    )
    found = run_cli("--config", config, "detect", "--now", NOW.isoformat(), "--format", "json")
    assert found.exit_code == 0, found.stderr
    assert "Traceback" not in found.stderr
    assert run_cli("--config", config, "templates", "add").exit_code == 0
    shown = run_cli("--config", config, "preview", "birthday", "--customer", "C-blank")
    assert shown.exit_code == 0, shown.stderr
    assert "Happy birthday" in shown.stdout
    listed = run_cli("--config", config, "plan", "--now", NOW.isoformat(), "--format", "json")
    assert listed.exit_code == 0, listed.stderr
    planned = json.loads(listed.stdout)["notes"]
    assert sorted((n["customer"], n["occasion"], n["status"]) for n in planned) == [
        ("C-blank", "birthday:2027", "pending"),
        ("C-words", "birthday:2027", "pending"),
    ]


def test_an_opt_out_time_written_as_no_time_still_counts_as_opted_out(tmp_path: Path) -> None:
    """SQLite keeps any text in a timestamp column: an application writing 'yes' (or a date
    that does not exist) into opted_out_at stopped detection and plan with a traceback. The
    customer must still never be written to."""
    config = store_written_by_another_application(
        tmp_path, "opted_out_at", {"C-fine": None, "C-yes": "yes", "C-nodate": "2027-13-45"}
    )
    found = run_cli("--config", config, "detect", "--now", NOW.isoformat(), "--format", "json")
    assert found.exit_code == 0, found.stderr
    listed = run_cli("--config", config, "plan", "--now", NOW.isoformat(), "--format", "json")
    assert listed.exit_code == 0, listed.stderr
    planned = json.loads(listed.stdout)["notes"]
    assert [(n["customer"], n["status"]) for n in planned] == [("C-fine", "pending")]
    logged = run_cli("--config", config, "log", "--format", "json")
    assert logged.exit_code == 0, logged.stderr
    suppressed = {
        row["customer_id"]: row["reason"]
        for row in json.loads(logged.stdout)
        if row["status"] == "suppressed"
    }
    assert suppressed == {
        "C-yes": "opted out on 1970-01-01",
        "C-nodate": "opted out on 1970-01-01",
    }
