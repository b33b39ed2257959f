"""Channels against a real store (SQLite and PostgreSQL): notes routed to a card or a call by
tier and by occasion, cards due early enough to arrive, and delivery never taking them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select

from scheduler.config.settings import ChannelsSettings, ScheduleSettings, Settings
from scheduler.delivery.claims import claim
from scheduler.delivery.daily_budget import apply_budget
from scheduler.detection.detect import detect
from scheduler.occasions.channels import card_due, channel_for
from scheduler.occasions.rules import Occasion
from scheduler.store.db import write_transaction
from scheduler.store.models import metadata
from tests.conftest import adas_bakery
from tests.test_detection import add_customer, add_ltv_run, add_order

touches = metadata.tables["touches"]
customer_values = metadata.tables["customer_values"]
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2027, 6, 15, 7, 0, tzinfo=UTC)  # 08:00 in London


def settings(**channels: Any) -> Settings:
    return Settings(business=adas_bakery(), channels=ChannelsSettings(**channels))


def with_tier(engine: Engine, customer_id: int, tier: str) -> None:
    with engine.begin() as connection:
        run_id = add_ltv_run(connection)
        connection.execute(
            insert(customer_values).values(
                customer_id=customer_id,
                run_id=run_id,
                historical=Decimal(100),
                predicted=Decimal(0),
                referral=Decimal(0),
                total=Decimal(100),
                tier=tier,
            )
        )


def notes(engine: Engine) -> dict[tuple[int, str], dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(touches)).all()
    return {(row.customer_id, row.occasion_key): dict(row._mapping) for row in rows}


def test_a_vip_customers_birthday_is_a_card_and_a_regulars_an_email(engine: Engine) -> None:
    vip = add_customer(engine, "C-1", birth_month=6, birth_day=15)
    regular = add_customer(engine, "C-2", birth_month=6, birth_day=15)
    with_tier(engine, vip, "vip")
    detect(engine, settings(cards=("vip",)), NOW)
    found = notes(engine)
    assert found[(vip, "birthday:2027")]["channel"] == "card"
    assert found[(regular, "birthday:2027")]["channel"] == "email"
    assert found[(vip, "birthday:2027")]["status"] == "pending"


def test_an_occasion_kind_routes_every_such_note_to_a_card(engine: Engine) -> None:
    who = add_customer(engine, "C-1", birth_month=6, birth_day=15)
    add_order(engine, "A-1", who, NOW - timedelta(hours=30))
    detect(engine, settings(cards=("birthday",)), NOW - timedelta(hours=1))
    detect(engine, settings(cards=("birthday",)), NOW + timedelta(days=3))
    channels = {key: note["channel"] for (_, key), note in notes(engine).items()}
    assert channels == {"birthday:2027": "card", "order:A-1": "email"}


def test_a_call_wins_over_a_card_when_there_is_a_phone(engine: Engine) -> None:
    called = add_customer(engine, "C-1", birth_month=6, birth_day=15, phone="+44 20 7946 0000")
    no_phone = add_customer(engine, "C-2", birth_month=6, birth_day=15)
    for who in (called, no_phone):
        with_tier(engine, who, "vip")
    detect(engine, settings(cards=("vip",), call=("vip",)), NOW)
    found = notes(engine)
    assert found[(called, "birthday:2027")]["channel"] == "call"
    assert found[(no_phone, "birthday:2027")]["channel"] == "card"


def test_a_card_needs_no_email_address_but_an_opt_out_suppresses_it(engine: Engine) -> None:
    no_email = add_customer(engine, "C-1", birth_month=6, birth_day=15, email=None)
    opted_out = add_customer(
        engine, "C-2", birth_month=6, birth_day=15, opted_out_at=NOW - timedelta(days=9)
    )
    detect(engine, settings(cards=("birthday",)), NOW)
    found = notes(engine)
    assert found[(no_email, "birthday:2027")]["status"] == "pending"
    assert found[(opted_out, "birthday:2027")]["status"] == "suppressed"


def test_card_and_email_makes_a_second_note_keyed_card(engine: Engine) -> None:
    who = add_customer(engine, "C-1", birth_month=6, birth_day=15)
    chosen = settings(cards=("birthday",), card_and_email=True)
    detect(engine, chosen, NOW)
    detect(engine, chosen, NOW + timedelta(hours=2))
    found = notes(engine)
    assert {key: note["channel"] for (_, key), note in found.items()} == {
        "birthday:2027": "email",
        "card:birthday:2027": "card",
    }
    assert found[(who, "birthday:2027")]["status"] == "pending"


def test_a_birthday_card_is_due_five_days_before_in_the_business_zone(engine: Engine) -> None:
    who = add_customer(engine, "C-1", birth_month=6, birth_day=20)
    chosen = settings(cards=("birthday",))
    detect(engine, chosen, NOW - timedelta(hours=2))
    detect(engine, chosen, NOW)
    card = notes(engine)[(who, "birthday:2027")]
    assert card["channel"] == "card"
    # midnight on 15 June in London (BST), five days before the birthday
    assert card["due_at"] == datetime(2027, 6, 15, 0, 0, tzinfo=LONDON)
    # on the day itself nothing new is recorded: the occasion has its one note
    detect(engine, chosen, datetime(2027, 6, 20, 8, 0, tzinfo=UTC))
    assert list(notes(engine)) == [(who, "birthday:2027")]


def test_an_email_birthday_is_still_found_on_its_day_only(engine: Engine) -> None:
    who = add_customer(engine, "C-1", birth_month=6, birth_day=20)
    detect(engine, settings(cards=("vip",)), NOW)
    assert notes(engine) == {}
    detect(engine, settings(cards=("vip",)), datetime(2027, 6, 20, 8, 0, tzinfo=UTC))
    assert notes(engine)[(who, "birthday:2027")]["channel"] == "email"


def add_note(engine: Engine, external_id: str, channel: str, due: datetime = NOW) -> int:
    who = add_customer(engine, external_id)
    with engine.begin() as connection:
        touch_id: int = connection.execute(
            insert(touches).values(
                customer_id=who,
                kind="birthday",
                occasion_key="birthday:2027",
                status="pending",
                channel=channel,
                due_at=due - timedelta(hours=1),
                expires_at=due + timedelta(days=3),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    return touch_id


def test_delivery_never_claims_a_card_or_a_call(engine: Engine) -> None:
    email = add_note(engine, "C-1", "email")
    add_note(engine, "C-2", "card")
    add_note(engine, "C-3", "call")
    with write_transaction(engine) as connection:
        claimed = claim(connection, "one", NOW, timedelta(minutes=10), 10)
    assert [touch.id for touch in claimed] == [email]
    statuses = {note["channel"]: note["status"] for note in notes(engine).values()}
    assert statuses == {"email": "claimed", "card": "pending", "call": "pending"}


def test_the_daily_budget_counts_emails_only(engine: Engine) -> None:
    add_note(engine, "C-1", "card")
    add_note(engine, "C-2", "call")
    email = add_note(engine, "C-3", "email")
    budget = Settings(business=adas_bakery(), schedule=ScheduleSettings(daily_budget=1))
    with write_transaction(engine) as connection:
        report = apply_budget(connection, budget, NOW)
    assert (report.kept, report.deferred) == (1, 0)
    assert all(note["status"] == "pending" for note in notes(engine).values())
    assert email in {note["id"] for note in notes(engine).values()}


# The pure rules -----------------------------------------------------------------------------


def test_the_tier_or_the_kind_chooses_and_a_call_needs_a_phone() -> None:
    chosen = ChannelsSettings(cards=("vip", "anniversary"), call=("birthday",))
    assert channel_for("order_thanks", "vip", False, chosen) == "card"
    assert channel_for("anniversary", None, False, chosen) == "card"
    assert channel_for("birthday", "regular", True, chosen) == "call"
    assert channel_for("birthday", "regular", False, chosen) == "email"
    assert channel_for("order_thanks", "regular", True, chosen) == "email"


def test_an_unknown_name_in_channels_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match='"gold" is neither a tier nor an occasion kind'):
        ChannelsSettings(cards=("gold",))


def test_an_order_thanks_card_is_due_when_its_note_is() -> None:
    due = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
    thanks = Occasion(1, "order_thanks", "order:A-1", due, due + timedelta(days=3))
    card = card_due(thanks, LONDON, LONDON, 5)
    assert (card.channel, card.due_at, card.expires_at) == ("card", due, thanks.expires_at)


ZONES = st.sampled_from(["Europe/London", "America/New_York", "Asia/Tokyo", "Pacific/Auckland"])


@given(
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
    lead=st.integers(min_value=0, max_value=60),
    customer=ZONES,
    business=ZONES,
)
def test_a_dated_card_is_due_at_the_business_midnight_lead_days_before(
    day: date, lead: int, customer: str, business: str
) -> None:
    customer_zone, business_zone = ZoneInfo(customer), ZoneInfo(business)
    due = datetime(day.year, day.month, day.day, 9, 0, tzinfo=customer_zone).astimezone(UTC)
    birthday = Occasion(1, "birthday", f"birthday:{day.year}", due, due + timedelta(days=7))
    card = card_due(birthday, customer_zone, business_zone, lead)
    assert card.expires_at == birthday.expires_at
    assert card.due_at <= birthday.due_at
    local = card.due_at.astimezone(business_zone)
    if card.due_at < birthday.due_at:
        assert local.date() == day - timedelta(days=lead)
        assert local.time().hour in (0, 1)  # midnight, or just after a DST gap at midnight
