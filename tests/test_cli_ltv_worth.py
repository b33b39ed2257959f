"""What a customer is worth spending on, from a real store (SQLite and PostgreSQL): the
acquisition budget, the goodwill allowance, `ltv --customer` in words, and the friendlies."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, time
from decimal import Decimal

from sqlalchemy import Engine, insert

from scheduler.config.settings import Settings
from scheduler.service.ltv_explain import explain
from scheduler.service.ltv_report import ValueReport, ValueRow
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import Workspace, adas_bakery, run_cli
from tests.test_detection import add_order_on
from tests.test_ltv_blend import AS_OF, practice

TODAY = date(2027, 6, 16)
NOW = "2027-06-16T12:00:00Z"
SHIFT = TODAY.toordinal() - AS_OF


def the_practice(workspace: Workspace) -> None:
    """The 22-patient practice of test_ltv_blend (P-1 .. P-22; P-22 paid the 1,250.00 deposit),
    P-21 referred P-1 and P-2, P-20 referred P-3, and P-23 has never bought."""
    engine = create_store_engine(workspace.database_url)
    customers = metadata.tables["customers"]
    try:
        with engine.begin() as connection:
            ids: dict[int, int] = {}
            for p in range(1, 24):
                inserted = connection.execute(
                    insert(customers).values(external_id=f"P-{p}", name=f"Patient {p}")
                ).inserted_primary_key
                assert inserted is not None
                ids[p] = int(inserted[0])
            for n, (who, day, amount) in enumerate(zip(*practice(), strict=True)):
                when = datetime.combine(date.fromordinal(day + SHIFT), time(12), tzinfo=UTC)
                add_order_on(connection, f"O-{n}", ids[who], when, amount=Decimal(str(amount)))
            for referrer, referred in ((21, 1), (21, 2), (20, 3)):
                connection.execute(
                    insert(metadata.tables["referrals"]).values(
                        referrer_id=ids[referrer], referred_id=ids[referred], referred_on=TODAY
                    )
                )
    finally:
        engine.dispose()


def refreshed(workspace: Workspace) -> None:
    the_practice(workspace)
    result = run_cli("--config", workspace.path, "ltv", "refresh", "--now", NOW)
    assert result.exit_code == 0, result.stderr


def test_ltv_customer_explains_each_part_in_words(migrated_workspace: Workspace) -> None:
    refreshed(migrated_workspace)
    result = run_cli("--config", migrated_workspace.path, "ltv", "--customer", "P-22")
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "spent so far 1,250.00" in text
    assert "their 1 order averaging 1,250.00 counts as 1 part" in text
    assert "the business's average of" in text
    assert "as 3" in text
    assert "purchases a year" in text
    assert "0 return purchases after the first" in text
    assert "years still to come" in text
    assert "expected_lifetime_years 5" in text
    assert "goodwill allowance" in text
    assert "10% of their total" in text
    shown = json.loads(
        run_cli(
            "--config", migrated_workspace.path, "ltv", "--customer", "P-22", "--format", "json"
        ).stdout
    )
    row = shown["customers"][0]
    assert row["tier"] != "vip"
    assert Decimal(row["goodwill"]) == (Decimal(row["total"]) / 10).quantize(Decimal("0.01"))
    assert any(line.startswith("average order") for line in shown["explanation"])


def test_the_acquisition_budget_is_a_third_of_a_buying_customers_average_value(
    migrated_workspace: Workspace,
) -> None:
    refreshed(migrated_workspace)
    config = migrated_workspace.path
    report = json.loads(run_cli("--config", config, "ltv", "--top", "0", "--format", "json").stdout)
    rows = report["customers"]
    assert len(rows) == 23
    bought = [Decimal(r["total"]) for r in rows if r["customer_id"] != "P-23"]
    average = (sum(bought, Decimal(0)) / len(bought)).quantize(Decimal("0.01"))
    acquisition = report["acquisition"]
    assert acquisition["overall"]["customers"] == 22  # P-23 never bought
    assert Decimal(acquisition["overall"]["average_value"]) == average
    expected = (average * Decimal(repr(1 / 3))).quantize(Decimal("0.01"))
    assert Decimal(acquisition["overall"]["budget"]) == expected
    assert set(acquisition["tiers"]) == {"vip", "regular", "new"}
    table = run_cli("--config", config, "ltv").stdout
    assert f"Acquisition budget: {expected:,} per new customer" in " ".join(table.split())
    budget = run_cli("--config", config, "ltv", "budget", "--format", "csv")
    lines = list(csv.DictReader(io.StringIO(budget.stdout)))
    assert [line["group"] for line in lines] == ["all", "new", "regular", "vip"]
    assert Decimal(lines[0]["budget"]) == expected
    listing = run_cli("--config", config, "ltv", "--format", "csv").stdout.splitlines()
    assert listing[0].endswith(",tier,goodwill")


def test_shares_come_from_the_config(migrated_workspace: Workspace) -> None:
    config = migrated_workspace.path
    config.write_text(
        config.read_text(encoding="utf-8")
        + "\n[ltv]\nacquisition_share = 0.5\ngoodwill_share = 0.25\n",
        encoding="utf-8",
    )
    refreshed(migrated_workspace)
    report = json.loads(run_cli("--config", config, "ltv", "--format", "json").stdout)
    top = report["customers"][0]
    assert Decimal(top["goodwill"]) == (Decimal(top["total"]) / 4).quantize(Decimal("0.01"))
    assert report["acquisition"]["share"] == 0.5
    config.write_text(config.read_text(encoding="utf-8").replace("0.25", "1.5"), encoding="utf-8")
    bad = run_cli("--config", config, "ltv")
    assert bad.exit_code == 2
    assert "goodwill_share" in bad.stderr


def test_referrers_are_ranked_by_what_those_they_brought_are_worth(
    migrated_workspace: Workspace,
) -> None:
    refreshed(migrated_workspace)
    config = migrated_workspace.path
    values = {
        r["customer_id"]: Decimal(r["historical"]) + Decimal(r["predicted"])
        for r in json.loads(
            run_cli("--config", config, "ltv", "--top", "0", "--format", "json").stdout
        )["customers"]
    }
    found = json.loads(run_cli("--config", config, "ltv", "referrers", "--format", "json").stdout)
    referrers = found["referrers"]
    assert [r["customer_id"] for r in referrers] == ["P-21", "P-20"]
    first = referrers[0]
    assert Decimal(first["brought"]) == values["P-1"] + values["P-2"]
    assert {r["customer_id"] for r in first["referred"]} == {"P-1", "P-2"}
    assert Decimal(first["credit"]) == (Decimal(first["brought"]) / 2).quantize(Decimal("0.01"))
    one = run_cli("--config", config, "ltv", "referrers", "--limit", "1")
    assert one.exit_code == 0, one.stderr
    assert "P-21 Patient 21: brought" in one.stdout
    assert "P-20" not in one.stdout
    rows = run_cli("--config", config, "ltv", "referrers", "--format", "csv").stdout
    assert len(rows.splitlines()) == 4  # header + one line per referred customer


def test_referrers_before_any_refresh_says_how(migrated_workspace: Workspace) -> None:
    result = run_cli("--config", migrated_workspace.path, "ltv", "referrers")
    assert result.exit_code == 1
    assert "appreciate ltv refresh" in result.stderr


def test_with_bgnbd_the_words_say_what_the_prediction_rests_on(engine: Engine) -> None:
    report = ValueReport(
        "bgnbd", {}, {}, -1.0, "bgnbd: test", TODAY, None,
        [
            ValueRow(
                "C-1", "Ann", Decimal("100.00"), Decimal("50.00"), Decimal("0.00"),
                Decimal("150.00"), 0.8, "vip", Decimal("15.00"),
            )
        ],
    )  # fmt: skip
    with engine.connect() as connection:
        words = explain(connection, Settings(business=adas_bakery()), report, 1)
    assert words[0] == "spent so far 100.00 (the margin of their orders up to 2027-06-16)"
    assert words[1].startswith("expected to spend 50.00 over the next 36 months")
    assert "BG/NBD" in words[1]
    assert words[1].endswith("80% likely still a customer")
    assert words[-1].startswith("goodwill allowance 15.00: 10% of their total 150.00")
