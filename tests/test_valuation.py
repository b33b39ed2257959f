"""Lifetime values from a real store (SQLite and PostgreSQL): the refresh, the business's local
as-of day, the published CDNOW fit end to end, and `appreciate ltv` as a person runs it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, insert, select

from scheduler.config.settings import LtvSettings, Settings
from scheduler.service.valuation import compute_values, refresh_values
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from scheduler.store.schema import upgrade
from tests.conftest import Workspace, adas_bakery, run_cli
from tests.test_detection import add_customer, add_order, set_amount

customers = metadata.tables["customers"]
orders = metadata.tables["orders"]
customer_values = metadata.tables["customer_values"]
ltv_runs = metadata.tables["ltv_runs"]
CDNOW = Path(__file__).parent / "data" / "cdnow" / "CDNOW_sample.txt"
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2027, 6, 16, 12, 0, tzinfo=UTC)
SETTINGS = Settings(
    business=adas_bakery(),
    ltv=LtvSettings(margin=0.5),
)


def add_referral(engine: Engine, referrer: int, referred: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(metadata.tables["referrals"]).values(
                referrer_id=referrer, referred_id=referred, referred_on=date(2027, 1, 1)
            )
        )


def small_shop(engine: Engine) -> dict[str, int]:
    """Ann (two orders, one with its own margin) referred Bob (one order); Cy has none."""
    ann, bob, cy = (add_customer(engine, name) for name in ("C-ann", "C-bob", "C-cy"))
    add_order(engine, "O-1", ann, datetime(2027, 1, 10, 12, tzinfo=UTC), amount=Decimal("100"))
    add_order(
        engine,
        "O-2",
        ann,
        datetime(2027, 3, 10, 12, tzinfo=UTC),
        amount=Decimal("80"),
        margin=Decimal("30"),
    )
    add_order(engine, "O-3", bob, datetime(2027, 5, 1, 12, tzinfo=UTC), amount=Decimal("40"))
    add_referral(engine, ann, bob)
    return {"ann": ann, "bob": bob, "cy": cy}


def stored(engine: Engine) -> dict[int, tuple[Decimal, Decimal, Decimal, Decimal, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                customer_values.c.customer_id,
                customer_values.c.historical,
                customer_values.c.predicted,
                customer_values.c.referral,
                customer_values.c.total,
                customer_values.c.tier,
            )
        )
        return {row[0]: tuple(row[1:]) for row in rows}


def test_a_refresh_scores_every_customer_and_says_how(engine: Engine) -> None:
    shop = small_shop(engine)
    result = refresh_values(engine, SETTINGS, NOW)
    assert result.as_of == date(2027, 6, 16)
    scores = stored(engine)
    assert set(scores) == set(shop.values())  # Cy, without orders, is scored too
    ann, bob, cy = (scores[shop[name]] for name in ("ann", "bob", "cy"))
    assert ann[0] == Decimal("80.00")  # 100 x margin 0.5, plus the order's own margin 30
    assert bob[0] == Decimal("20.00")
    assert cy[:4] == (Decimal(0), Decimal(0), Decimal(0), Decimal(0))
    for historical, predicted, referral, total, _ in (ann, bob):
        assert predicted > 0
        assert abs(historical + predicted + referral - total) <= Decimal("0.02")
    assert ann[2] == ((bob[0] + bob[1]) * Decimal("0.5")).quantize(Decimal("0.01"))
    assert (ann[4], bob[4], cy[4]) == ("vip", "new", "new")
    with engine.connect() as connection:
        run = connection.execute(select(ltv_runs)).one()
    assert run.model == "simple"
    assert run.reason == "simple: only 2 customers with purchases (need 100)"
    assert run.customers == 3


def test_a_refresh_replaces_the_previous_scores(engine: Engine) -> None:
    small_shop(engine)
    first = refresh_values(engine, SETTINGS, NOW)
    second = refresh_values(engine, SETTINGS, NOW + timedelta(days=1))
    assert second.run_id > first.run_id
    with engine.connect() as connection:
        runs = connection.execute(
            select(customer_values.c.run_id, func.count()).group_by(customer_values.c.run_id)
        ).all()
    assert runs == [(second.run_id, 3)]


def test_as_of_counts_orders_by_the_businesss_local_day(engine: Engine) -> None:
    ann = add_customer(engine, "C-ann")
    late_evening = datetime.combine(date(2027, 6, 15), time(23, 30), LONDON)  # 22:30 UTC
    after_midnight = datetime.combine(date(2027, 6, 16), time(0, 30), LONDON)  # 23:30 UTC
    add_order(engine, "O-1", ann, late_evening.astimezone(UTC), amount=Decimal("10"))
    add_order(engine, "O-2", ann, after_midnight.astimezone(UTC), amount=Decimal("1000"))
    with engine.connect() as connection:
        values = compute_values(connection, SETTINGS, date(2027, 6, 15)).values
    assert values.historical.tolist() == [5.0]  # 10 x margin 0.5; the next day's order waits


def add_cdnow_purchases(engine: Engine) -> None:
    """The CDNOW sample as customers and orders placed at noon, London time."""
    lines = [line.split() for line in CDNOW.read_text(encoding="utf-8").splitlines() if line]
    with engine.begin() as connection:
        connection.execute(
            insert(customers),
            [
                {"external_id": f"CD-{n}", "name": f"Customer {n}", "attributes": {}}
                for n in sorted({int(parts[1]) for parts in lines})
            ],
        )
        ids = dict(connection.execute(select(customers.c.external_id, customers.c.id)).all())
        connection.execute(
            insert(orders),
            [
                {
                    "external_id": f"CDO-{number}",
                    "customer_id": ids[f"CD-{int(sample_id)}"],
                    "placed_at": datetime.combine(
                        date(int(day[:4]), int(day[4:6]), int(day[6:])), time(12), LONDON
                    ).astimezone(UTC),
                    "amount": Decimal(dollars),
                }
                for number, (_, sample_id, day, _, dollars) in enumerate(lines)
            ],
        )


def test_the_store_reproduces_the_published_cdnow_fit(engine: Engine) -> None:
    add_cdnow_purchases(engine)
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    spend = {"p": 6.25, "q": 3.74, "gamma": 15.44}
    settings = SETTINGS.model_copy(update={"ltv": LtvSettings()})
    with engine.connect() as connection:
        values = compute_values(connection, settings, date(1997, 9, 30)).values
    assert values.model == "bgnbd"
    assert values.params == pytest.approx(published, rel=0.01)
    assert values.spend_params == pytest.approx(spend, rel=0.01)
    assert values.log_likelihood == pytest.approx(-9582.4, abs=0.5)
    assert values.customer_id.shape == (2357,)


def with_values(workspace: Workspace) -> None:
    engine = create_store_engine(workspace.database_url)
    try:
        small_shop(engine)
    finally:
        engine.dispose()


def test_ltv_says_how_to_get_values_before_the_first_refresh(
    migrated_workspace: Workspace,
) -> None:
    result = run_cli("--config", migrated_workspace.path, "ltv")
    assert result.exit_code == 1
    assert "No lifetime values yet" in result.stderr
    assert "appreciate ltv refresh" in result.stderr


def test_ltv_refresh_then_show_as_json_table_and_csv(migrated_workspace: Workspace) -> None:
    with_values(migrated_workspace)
    config = migrated_workspace.path
    refreshed = run_cli("--config", config, "ltv", "refresh", "--now", "2027-06-16T12:00:00Z")
    assert refreshed.exit_code == 0, refreshed.stderr
    assert "Stored the lifetime value of 3 customers as of 2027-06-16." in refreshed.stdout
    assert "Model: simple: only 2 customers with purchases (need 100)" in refreshed.stdout
    shown = run_cli("--config", config, "ltv", "--format", "json")
    assert shown.exit_code == 0, shown.stderr
    report = json.loads(shown.stdout)
    model = report["model"]
    assert model["kind"] == "simple"
    assert model["reason"] == "simple: only 2 customers with purchases (need 100)"
    assert model["params"]["prior_orders"] == 3.0
    assert model["params"]["business_order"] == pytest.approx(170 / 3)
    assert model["spend_params"] == {}
    assert model["log_likelihood"] is None
    assert [row["customer_id"] for row in report["customers"]] == ["C-ann", "C-bob", "C-cy"]
    assert set(report["customers"][0]) == {
        "customer_id",
        "historical",
        "predicted",
        "referral",
        "total",
        "p_alive",
        "tier",
        "goodwill",
    }
    assert report["customers"][0]["historical"] == "130.00"  # the config's margin is 1.0
    assert report["customers"][0]["tier"] == "vip"
    top = run_cli("--config", config, "ltv", "--top", "1")
    assert "C-ann" in top.stdout
    assert "C-bob" not in top.stdout
    assert "computed 2027-06-16 12:00 UTC" in top.stdout
    one = run_cli("--config", config, "ltv", "--customer", "C-bob", "--format", "csv")
    lines = one.stdout.splitlines()
    assert lines[0] == (
        "customer_id,name,historical,predicted,referral,total,p_alive,tier,goodwill"
    )
    assert len(lines) == 2
    assert lines[1].startswith("C-bob,C-bob,40.00,")


def test_ltv_as_of_computes_without_storing(migrated_workspace: Workspace) -> None:
    with_values(migrated_workspace)
    config = migrated_workspace.path
    result = run_cli("--config", config, "ltv", "--as-of", "2027-02-01", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = {row["customer_id"]: row for row in json.loads(result.stdout)["customers"]}
    assert rows["C-ann"]["historical"] == "100.00"  # only the January order
    assert rows["C-bob"]["historical"] == "0.00"
    assert rows["C-ann"]["referral"] == "0.00"  # Bob had not bought yet
    assert run_cli("--config", config, "ltv").exit_code == 1  # nothing was stored


def test_ltv_names_an_unknown_customer_and_a_bad_date(migrated_workspace: Workspace) -> None:
    with_values(migrated_workspace)
    config = migrated_workspace.path
    unknown = run_cli("--config", config, "ltv", "--as-of", "2027-06-01", "--customer", "C-zz")
    assert unknown.exit_code == 1
    assert 'no customer has the id "C-zz"' in unknown.stderr
    bad = run_cli("--config", config, "ltv", "--as-of", "01/06/2027")
    assert bad.exit_code == 2
    assert '"01/06/2027" is not a date (YYYY-MM-DD)' in bad.stderr


def test_an_order_time_another_application_wrote_badly_is_left_out_and_said(
    tmp_path: Path,
) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        upgrade(engine)
        ann = add_customer(engine, "C-ann")
        add_order(engine, "O-1", ann, datetime(2027, 6, 1, 12, tzinfo=UTC), amount=Decimal("10"))
        add_order(engine, "O-2", ann, datetime(2027, 6, 2, 12, tzinfo=UTC), amount=Decimal("20"))
        with engine.begin() as connection:  # SQLite stores whatever text it is given
            connection.exec_driver_sql(
                "UPDATE orders SET placed_at = '20270602T120000' WHERE external_id = 'O-2'"
            )
        result = refresh_values(engine, SETTINGS, NOW)
    finally:
        engine.dispose()
    assert result.values.historical.tolist() == [5.0]
    assert result.warning is not None
    assert result.warning.startswith("1 order was left out")


def test_orders_dated_at_the_calendars_edges_are_left_out_and_said(engine: Engine) -> None:
    ann = add_customer(engine, "C-ann")
    add_order(engine, "O-1", ann, datetime(2027, 6, 1, 12, tzinfo=UTC), amount=Decimal("10"))
    add_order(engine, "O-2", ann, datetime(9999, 12, 31, 23, 59, tzinfo=UTC), amount=Decimal("20"))
    add_order(engine, "O-3", ann, datetime(1, 1, 1, tzinfo=UTC), amount=Decimal("40"))
    result = refresh_values(engine, SETTINGS, NOW)
    assert result.values.historical.tolist() == [5.0]
    assert result.warning is not None
    assert result.warning.startswith("2 orders were left out")


def test_orders_whose_amount_is_no_amount_are_left_out_and_said(
    migrated_workspace: Workspace,
) -> None:
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        ann, bob = add_customer(engine, "C-ann"), add_customer(engine, "C-bob")
        add_order(engine, "O-1", ann, datetime(2027, 6, 1, 12, tzinfo=UTC), amount=Decimal("10"))
        wrong = ["NaN"] if engine.dialect.name == "postgresql" else ["NaN", 1e300, float("inf")]
        for number, amount in enumerate(wrong):
            add_order(engine, f"W-{number}", bob, datetime(2027, 6, 2, 12, tzinfo=UTC))
            set_amount(engine, f"W-{number}", amount)
    finally:
        engine.dispose()
    config = migrated_workspace.path
    refreshed = run_cli("--config", config, "ltv", "refresh", "--now", "2027-06-16T12:00:00Z")
    assert refreshed.exit_code == 0, refreshed.stderr
    left_out = "1 order was left out" if len(wrong) == 1 else f"{len(wrong)} orders were left out"
    assert left_out in refreshed.stdout + refreshed.stderr
    assert "their amount is none or not from 0 to 999999999999.99" in (
        refreshed.stdout + refreshed.stderr
    )
    shown = run_cli("--config", config, "ltv", "--format", "json")
    assert shown.exit_code == 0, shown.stderr
    rows = {row["customer_id"]: row for row in json.loads(shown.stdout)["customers"]}
    assert rows["C-ann"]["historical"] == "10.00"
    assert rows["C-bob"]["historical"] == "0.00"
    planned = run_cli("--config", config, "plan", "--now", "2027-06-16T12:00:00Z")
    assert planned.exit_code in (0, 1), planned.stderr
    assert "Traceback" not in planned.stderr


def test_a_value_beyond_what_the_store_holds_is_stored_as_the_largest_and_said(
    migrated_workspace: Workspace,
) -> None:
    """Two orders of 600 billion each (amounts in cents written by another application, say)
    sum to more than NUMERIC(14, 2) holds: the refresh still stores every score, the runaway
    one at the largest amount, and says so instead of failing every night."""
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        ann, bob = add_customer(engine, "C-ann"), add_customer(engine, "C-bob")
        add_order(engine, "O-1", ann, datetime(2027, 6, 1, 12, tzinfo=UTC), amount=Decimal("10"))
        for number in range(2):
            add_order(
                engine,
                f"B-{number}",
                bob,
                datetime(2027, 6, 2 + number, 12, tzinfo=UTC),
                amount=Decimal("600000000000"),
            )
    finally:
        engine.dispose()
    config = migrated_workspace.path
    refreshed = run_cli("--config", config, "ltv", "refresh", "--now", "2027-06-16T12:00:00Z")
    assert refreshed.exit_code == 0, refreshed.stderr
    said = refreshed.stdout + refreshed.stderr
    # Ann's predicted part borrows from the shop's average spend, so hers runs away too.
    assert "2 lifetime values were more than 999999999999.99" in " ".join(said.split())
    shown = run_cli("--config", config, "ltv", "--format", "json")
    assert shown.exit_code == 0, shown.stderr
    rows = {row["customer_id"]: row for row in json.loads(shown.stdout)["customers"]}
    assert rows["C-ann"]["historical"] == "10.00"
    assert rows["C-bob"]["historical"] == "999999999999.99"
    assert rows["C-bob"]["total"] == "999999999999.99"
    assert rows["C-bob"]["tier"] == "vip"
