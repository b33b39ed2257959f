"""`appreciate plan` says exactly what `appreciate run` will do: the same notes, the same fates.

Each test plans a day, then runs one cycle at the end of that day (`run --once --now`) against a
real mail server, and compares what the plan said with what the cycle recorded: every note the
plan lists, and only those, changed in that cycle, with the same status ("pending" in a plan is
"sent" in the log) and, for a deferred note, the same moment it may go. (A note the cycle
noticed for a later day is that day's business.) On both databases.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, insert, select

from scheduler.cli.demo_data import write_samples
from scheduler.importer import import_csv
from scheduler.occasions.timing import local_moment
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from scheduler.store.types import aware_utc, aware_utc_or_none
from tests.conftest import run_cli
from tests.smtp_servers import Recorder, running

LONDON = ZoneInfo("Europe/London")
ZONES = ("Europe/London", "Asia/Tokyo", "America/New_York", "Pacific/Kiritimati", None)
START = date(2027, 3, 1)
touches = metadata.tables["touches"]
customers = metadata.tables["customers"]
orders = metadata.tables["orders"]

Fates = dict[tuple[str, str], tuple[str, str | None]]
"""(customer, occasion key) -> (status, when a deferred note may go)."""


@dataclass
class Shop:
    config: Path
    database_url: str
    port: int

    def engine(self) -> Engine:
        return create_store_engine(self.database_url)

    def cli(self, *args: str) -> str:
        result = run_cli("--config", self.config, *args)
        assert result.exit_code == 0, result.stdout + result.stderr
        return result.stdout


@pytest.fixture
def shop(tmp_path: Path, database_url: str) -> Iterator[Shop]:
    """A workspace (starter templates, a daily budget of 4) on the test's database, whose mail
    goes to a real server that accepts everything."""
    run_cli("init", tmp_path)
    config = tmp_path / "appreciate.toml"
    config.write_text(
        f"""
[database]
url = "{database_url}"

[business]
name = "Ada's Bakery"
sender_name = "Ada"
sender_email = "ada@example.com"
timezone = "Europe/London"

[schedule]
daily_budget = 4

[smtp]
host = "127.0.0.1"
port = PORT
security = "none"
""",
        encoding="utf-8",
    )
    with running(Recorder()) as port:
        config.write_text(config.read_text().replace("PORT", str(port)), encoding="utf-8")
        shop = Shop(config, database_url, port)
        shop.cli("db", "upgrade")
        yield shop


def end_of(day: date) -> datetime:
    """The moment the test runs its one cycle of `day`: a second before the business's
    midnight."""
    return local_moment(day + timedelta(days=1), time(0), LONDON) - timedelta(seconds=1)


def planned(shop: Shop, day: date, now: datetime) -> Fates:
    stdout = shop.cli("plan", "--date", day.isoformat(), "--now", now.isoformat(), "-f", "json")
    notes = json.loads(stdout)["notes"]
    fates: Fates = {}
    for note in notes:
        status = "sent" if note["status"] == "pending" else note["status"]
        when = note["send_at"] if status == "deferred" else None
        fates[(note["customer"], note["occasion"])] = (status, when)
    assert len(fates) == len(notes), "a note listed twice"
    return fates


def run_day(shop: Shop, day: date) -> Fates:
    """One cycle at the end of `day`; the notes it changed and their fates."""
    moment = end_of(day)
    shop.cli("run", "--once", "--now", moment.isoformat())
    engine = shop.engine()
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(
                    customers.c.external_id,
                    touches.c.occasion_key,
                    touches.c.status,
                    touches.c.planned_at,
                    touches.c.due_at,
                    touches.c.updated_at,
                ).join(customers, customers.c.id == touches.c.customer_id)
            ).all()
    finally:
        engine.dispose()
    fates: Fates = {}
    for customer, key, status, planned_at, due_at, updated_at in rows:
        if aware_utc(updated_at) != moment or status == "pending":
            continue  # not changed by this cycle, or noticed now and due on a later day
        when = None
        if status == "deferred":
            when = (aware_utc_or_none(planned_at) or aware_utc(due_at)).isoformat()
        fates[(customer, key)] = (status, when)
    return fates


def test_the_plan_of_the_demo_day_is_what_the_cycle_does(shop: Shop) -> None:
    """The demo's sample customers: birthdays in six time zones, fresh orders, a referral, a
    first meeting, an opted-out customer and bad rows; with the budget of 4 some must wait."""
    now = datetime.combine(START, time(7), UTC)
    engine = shop.engine()
    try:
        samples = write_samples(shop.config.parent / "samples", now - timedelta(minutes=5), LONDON)
        for kind in ("customers", "orders", "referrals", "meetings"):
            import_csv(engine, kind, samples[kind], now=now, business_zone=LONDON)
    finally:
        engine.dispose()
    shop.cli("ltv", "refresh", "--now", now.isoformat())
    plan = planned(shop, START, now)
    statuses = {status for status, _ in plan.values()}
    assert {"sent", "deferred", "suppressed"} <= statuses, plan
    assert run_day(shop, START) == plan


def add_customers(engine: Engine, rng: random.Random) -> list[int]:
    """Forty customers with birthdays, anniversaries and a history of orders (some gone quiet,
    so check-ins come up), in several time zones; two cannot be written to."""
    ids = []
    with engine.begin() as connection:
        for number in range(40):
            birthday = START + timedelta(days=rng.randrange(0, 24))
            since = START + timedelta(days=rng.randrange(0, 40)) - timedelta(days=365 * 2)
            email = None if number == 7 else f"c{number}@example.com"
            opted_out = datetime(2026, 1, 1, tzinfo=UTC) if number == 11 else None
            result = connection.execute(
                insert(customers).values(
                    external_id=f"C-{number:02}",
                    name=f"Customer {number}",
                    email=email,
                    birth_month=birthday.month,
                    birth_day=birthday.day,
                    timezone=rng.choice(ZONES),
                    customer_since=since,
                    opted_out_at=opted_out,
                    attributes={},
                )
            )
            customer_id: int = result.inserted_primary_key[0]  # type: ignore[index]
            ids.append(customer_id)
            for order in range(rng.randrange(0, 4)):
                placed = datetime.combine(START, time(11), UTC) - timedelta(
                    days=rng.randrange(100, 500)
                )
                add_order(connection, f"H-{number}-{order}", customer_id, placed, placed)
    return ids


def add_order(
    connection: Any, external_id: str, customer_id: int, placed: datetime, stored: datetime
) -> None:
    connection.execute(
        insert(orders).values(
            external_id=external_id,
            customer_id=customer_id,
            placed_at=placed,
            amount=120,
            created_at=stored,
            updated_at=stored,
        )
    )


def test_each_day_of_a_generated_month_goes_as_planned(shop: Shop) -> None:
    """Three weeks of birthdays, anniversaries, check-ins and orders arriving each morning,
    under a budget of 4 a day and the frequency cap: each morning's plan of the day is what that
    day's cycle records."""
    rng = random.Random(20270301)
    engine = shop.engine()
    try:
        ids = add_customers(engine, rng)
    finally:
        engine.dispose()
    shop.cli("ltv", "refresh", "--now", datetime.combine(START, time(6), UTC).isoformat())
    seen: set[str] = set()
    for offset in range(21):
        day = START + timedelta(days=offset)
        morning = datetime.combine(day, time(7), UTC)
        engine = shop.engine()
        try:
            with engine.begin() as connection:
                for number in range(rng.randrange(0, 4)):
                    placed = morning - timedelta(minutes=30 + number)
                    who = rng.choice(ids)
                    add_order(connection, f"A-{offset}-{number}", who, placed, placed)
        finally:
            engine.dispose()
        plan = planned(shop, day, morning)
        assert run_day(shop, day) == plan, day
        seen |= {status for status, _ in plan.values()}
    assert {"sent", "deferred", "expired", "suppressed"} <= seen


def test_a_plan_for_a_later_day_is_what_that_days_cycle_does(shop: Shop) -> None:
    """A plan reaches ahead: the plan made on the first morning for each of the next days is
    what each of those days' cycles records (this once said 0 notes for a day that sent 5)."""
    rng = random.Random(7)
    engine = shop.engine()
    try:
        add_customers(engine, rng)
    finally:
        engine.dispose()
    first_morning = datetime.combine(START, time(7), UTC)
    shop.cli("ltv", "refresh", "--now", first_morning.isoformat())
    plans = {
        START + timedelta(days=offset): planned(shop, START + timedelta(days=offset), first_morning)
        for offset in range(8)
    }
    assert sum(1 for fates in plans.values() for status, _ in fates.values() if status == "sent")
    for day, plan in plans.items():
        assert run_day(shop, day) == plan, day
