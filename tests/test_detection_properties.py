"""Properties of detection against a real SQLite store: however the ticks fall, each occasion
is recorded once, and detecting again at the same moment adds nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select

from scheduler.detection.detect import detect
from scheduler.occasions.dates import occurrence
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from scheduler.store.schema import upgrade
from tests.test_detection import SETTINGS

TABLES = ("touches", "detection_marks", "orders", "customers")
ZONES = [None, "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/Santiago", "Asia/Kathmandu"]
START = datetime(2027, 2, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path: Path = tmp_path_factory.mktemp("properties") / "store.db"
    engine = create_store_engine(f"sqlite:///{path}")
    upgrade(engine)
    yield engine
    engine.dispose()


def reset(engine: Engine) -> None:
    with engine.begin() as connection:
        for name in TABLES:
            connection.execute(delete(metadata.tables[name]))


people = st.lists(
    st.tuples(
        st.dates(min_value=date(2000, 2, 15), max_value=date(2000, 4, 30)),  # near the ticks
        st.sampled_from(ZONES),
        st.integers(0, 3),  # orders in the period
    ),
    min_size=1,
    max_size=6,
)
ticks = st.lists(st.integers(10, 36 * 60), min_size=1, max_size=40)  # minutes between runs


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=25)
@given(people, ticks, st.data())
def test_each_occasion_is_recorded_once_whatever_the_ticks(
    store: Engine,
    people: list[tuple[date, str | None, int]],
    ticks: list[int],
    data: st.DataObject,
) -> None:
    reset(store)
    customers, orders = metadata.tables["customers"], metadata.tables["orders"]
    with store.begin() as connection:
        for number, (born, zone, order_count) in enumerate(people):
            customer = connection.execute(  # ids start at 1 again: the tables were emptied
                insert(customers).values(
                    external_id=f"C-{number}",
                    name=f"Customer {number}",
                    email=f"c{number}@example.com",
                    birth_month=born.month,
                    birth_day=born.day,
                    timezone=zone,
                    attributes={},
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            for n in range(order_count):
                placed = START + timedelta(minutes=data.draw(st.integers(0, 20 * 24 * 60)))
                connection.execute(
                    insert(orders).values(
                        external_id=f"A-{number}-{n}",
                        customer_id=customer,
                        placed_at=placed,
                        amount=Decimal("10.00"),
                        created_at=placed,
                        updated_at=placed,
                    )
                )
    now = START
    first_run = START + timedelta(minutes=ticks[0])
    for gap in ticks:
        now += timedelta(minutes=gap)
        detect(store, SETTINGS, now)
        again = detect(store, SETTINGS, now)
        assert sum(again.recorded.values()) == 0
    touches = metadata.tables["touches"]
    with store.connect() as connection:
        found = connection.execute(
            select(touches.c.customer_id, touches.c.occasion_key, touches.c.due_at).where(
                touches.c.kind == "birthday"
            )
        ).all()
    for number, (born, zone_name, _) in enumerate(people):
        local = ZoneInfo(zone_name or SETTINGS.business.timezone)
        first = (first_run - timedelta(days=1)).astimezone(local).date()
        last = now.astimezone(local).date()
        expected = {
            f"birthday:{year}": kept
            for year in range(first.year, last.year + 1)
            if first <= (kept := occurrence(born.month, born.day, year)) <= last
        }
        got = {key: due.astimezone(local).date() for who, key, due in found if who == number + 1}
        assert got == expected
