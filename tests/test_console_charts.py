"""The console's charts, on both databases: each day's notes counted by what became of them
(on the day of their latest activity, in UTC), tiers with their share of value, and the SVG
drawn on the server with every figure in it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, insert

from scheduler.service.activity import notes_per_day, tier_shares
from scheduler.store.models import metadata
from scheduler.web.charts import notes_per_day_svg, tier_shares_svg
from tests.test_console_note import client
from tests.test_detection import add_customer, add_ltv_run

NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
touches = metadata.tables["touches"]
customer_values = metadata.tables["customer_values"]


def add(engine: Engine, status: str, at: datetime, n: int) -> None:
    who = add_customer(engine, f"C-{status}-{n}-{at:%j%H}")
    with engine.begin() as connection:
        connection.execute(
            insert(touches).values(
                customer_id=who,
                kind="birthday",
                occasion_key=f"birthday:{n}",
                status=status,
                due_at=at,
                updated_at=at,
            )
        )


def test_each_day_counts_its_notes_by_what_became_of_them(engine: Engine) -> None:
    today = NOW.date()
    add(engine, "sent", NOW, 1)
    add(engine, "sent", NOW - timedelta(hours=1), 2)
    add(engine, "failed", NOW, 3)
    add(engine, "suppressed", NOW - timedelta(days=1), 4)
    add(engine, "pending", NOW, 5)  # still waiting: not drawn
    add(engine, "sent", datetime(2027, 6, 14, 23, 30, tzinfo=UTC), 6)  # late yesterday, UTC
    add(engine, "sent", NOW - timedelta(days=30), 7)  # before the window
    with engine.connect() as connection:
        days = notes_per_day(connection, today, 7)
    assert sorted(days) == [today - timedelta(days=n) for n in range(6, -1, -1)]
    assert days[today] == {"sent": 2, "needs you": 1, "not sent": 0}
    assert days[date(2027, 6, 14)] == {"sent": 1, "needs you": 0, "not sent": 1}
    assert sum(sum(counts.values()) for counts in days.values()) == 5
    drawn = notes_per_day_svg(days)
    assert drawn.startswith("<svg")
    assert "2027-06-15: 2 sent, 1 needs you, 0 not sent" in drawn


def test_tiers_show_their_share_of_all_value(engine: Engine) -> None:
    with engine.begin() as connection:
        run_id = add_ltv_run(connection)
    for n, (tier, total) in enumerate([("vip", "750"), ("regular", "200"), ("regular", "50")]):
        who = add_customer(engine, f"T-{n}")
        with engine.begin() as connection:
            connection.execute(
                insert(customer_values).values(
                    customer_id=who,
                    run_id=run_id,
                    historical=Decimal(total),
                    predicted=Decimal(0),
                    referral=Decimal(0),
                    total=Decimal(total),
                    tier=tier,
                )
            )
    with engine.connect() as connection:
        shares = tier_shares(connection)
    assert [(s.tier, s.customers, s.share) for s in shares] == [
        ("vip", 1, 0.75),
        ("regular", 2, 0.25),
    ]
    assert "vip: 1 customers, 750.00 (75% of all value)" in tier_shares_svg(shares)


def test_today_draws_both_charts(engine: Engine) -> None:
    add(engine, "sent", datetime.now(UTC), 1)
    page = client(engine).get("/").text
    assert page.count("<svg") == 1  # no values yet: the tier chart says so instead
    assert "Notes, the last 90 days" in page
    assert "Not valued yet" in page
