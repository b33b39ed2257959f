"""Importing orders: customer references, local and exact times, money, ignored columns."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from scheduler.importer import ImportReport, import_csv
from scheduler.store.models import metadata
from tests.conftest import NOW

LONDON = ZoneInfo("Europe/London")
customers = metadata.tables["customers"]
orders = metadata.tables["orders"]
HEADER = ["id", "customer_id", "placed_at", "amount", "margin", "description"]


def csv_text(*rows: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def run(engine: Engine, kind: str, tmp_path: Path, text: str) -> ImportReport:
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(text.encode("utf-8"))
    return import_csv(engine, kind, path, now=NOW, business_zone=LONDON)


def add_customers(engine: Engine, tmp_path: Path) -> dict[str, int]:
    """C-LON has no time zone (the business's, London, applies); C-TYO lives in Tokyo."""
    text = csv_text(
        ["id", "name", "timezone"], ["C-LON", "Ann", ""], ["C-TYO", "Kenji", "Asia/Tokyo"]
    )
    assert run(engine, "customers", tmp_path, text).inserted == 2
    with engine.connect() as connection:
        rows = connection.execute(select(customers.c.external_id, customers.c.id)).all()
    return {row.external_id: row.id for row in rows}


def stored(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(orders)).all()
    return {row.external_id: dict(row._mapping) for row in rows}


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def rejected(report: ImportReport) -> list[tuple[int, str]]:
    return [(rejection.line, rejection.reason) for rejection in report.rejected]


def test_an_order_refers_to_its_customer_by_external_id(engine: Engine, tmp_path: Path) -> None:
    ids = add_customers(engine, tmp_path)
    text = csv_text(
        HEADER,
        ["A-1", "C-LON", "2026-03-01T10:00:00Z", "12.50", "4.25", "Two loaves"],
        ["A-2", "C-TYO", "2026-03-02T10:00:00Z", "7", "", ""],
    )
    report = run(engine, "orders", tmp_path, text)
    assert (report.rows, report.inserted, report.rejected) == (2, 2, [])
    rows = stored(engine)
    first, second = rows["A-1"], rows["A-2"]
    assert first["customer_id"] == ids["C-LON"]
    assert (first["amount"], first["margin"], first["description"]) == (
        Decimal("12.50"),
        Decimal("4.25"),
        "Two loaves",
    )
    assert second["customer_id"] == ids["C-TYO"]
    assert (second["amount"], second["margin"], second["description"]) == (Decimal(7), None, None)


def test_an_unknown_customer_is_rejected_by_id(engine: Engine, tmp_path: Path) -> None:
    add_customers(engine, tmp_path)
    text = csv_text(
        HEADER[:4],
        ["A-1", "C-LON", "2026-03-01T10:00Z", "10"],
        ["A-2", "C-404", "2026-03-01T10:00Z", "10"],
        ["A-3", "C-TYO", "2026-03-01T10:00Z", "10"],
    )
    report = run(engine, "orders", tmp_path, text)
    assert rejected(report) == [
        (3, 'customer_id: no customer with id "C-404" (import customers first)')
    ]
    assert sorted(stored(engine)) == ["A-1", "A-3"]


@pytest.mark.parametrize(
    ("customer", "placed_at", "expected"),
    [
        pytest.param("C-TYO", "2026-03-01T14:30:00+02:00", utc(2026, 3, 1, 12, 30), id="offset"),
        pytest.param("C-LON", "2026-07-01T10:00:00Z", utc(2026, 7, 1, 10, 0), id="utc"),
        pytest.param("C-TYO", "2026-03-01T09:00", utc(2026, 3, 1, 0, 0), id="customer-zone"),
        pytest.param("C-LON", "2026-01-15T10:00", utc(2026, 1, 15, 10, 0), id="london-winter"),
        pytest.param("C-LON", "2026-07-01T10:00", utc(2026, 7, 1, 9, 0), id="london-summer"),
        pytest.param("C-LON", "2026-07-01", utc(2026, 6, 30, 23, 0), id="date-london"),
        pytest.param("C-TYO", "2026-07-01", utc(2026, 6, 30, 15, 0), id="date-tokyo"),
        # 01:30 happens twice on 2026-10-25 in London: the first (summer time) one counts
        pytest.param("C-LON", "2026-10-25T01:30", utc(2026, 10, 25, 0, 30), id="repeated-hour"),
        # 01:30 never happens on 2026-03-29 in London: read with the winter offset
        pytest.param("C-LON", "2026-03-29T01:30", utc(2026, 3, 29, 1, 30), id="skipped-hour"),
    ],
)
def test_placed_at_is_stored_in_utc(
    engine: Engine, tmp_path: Path, customer: str, placed_at: str, expected: datetime
) -> None:
    add_customers(engine, tmp_path)
    report = run(
        engine, "orders", tmp_path, csv_text(HEADER[:4], ["A-1", customer, placed_at, "1"])
    )
    assert report.rejected == []
    assert stored(engine)["A-1"]["placed_at"] == expected


def test_a_customer_time_zone_set_later_applies_to_later_imports(
    engine: Engine, tmp_path: Path
) -> None:
    add_customers(engine, tmp_path)
    run(engine, "customers", tmp_path, "id,name,timezone\nC-LON,Ann,America/New_York\n")
    run(
        engine,
        "orders",
        tmp_path,
        "id,customer_id,placed_at,amount\nA-1,C-LON,2026-07-01T10:00,1\n",
    )
    assert stored(engine)["A-1"]["placed_at"] == datetime(2026, 7, 1, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("-5", 'amount: "-5" is negative'),
        ("12.345", 'amount: "12.345" has more than two decimal places'),
        ("€12", 'amount: "€12" has a currency sign ("€"): set [business] currency to its ISO '
         '4217 code (e.g. "EUR") to read amounts with one, or write plain numbers'),
        ("1,25,0.00", 'amount: "1,25,0.00" has misplaced group separators (write 1,250.00 or '
         "1250.00)"),
        ("12,50", 'amount: "12,50" is not how en_US writes amounts (1,250.00): for amounts '
         'written like 1.250,00, set [business] locale (e.g. "de_DE")'),
        ("١٢", 'amount: "١٢" uses digits other than 0-9 (write it with 0-9)'),
        ("", "amount: is empty"),
    ],
)  # fmt: skip
def test_a_bad_amount_rejects_its_row_only(
    engine: Engine, tmp_path: Path, amount: str, reason: str
) -> None:
    add_customers(engine, tmp_path)
    text = csv_text(
        HEADER[:4],
        ["A-1", "C-LON", "2026-03-01T10:00Z", "12.50"],
        ["A-2", "C-LON", "2026-03-01T11:00Z", amount],
        ["A-3", "C-LON", "2026-03-01T12:00Z", "1200.00"],
    )
    report = run(engine, "orders", tmp_path, text)
    assert rejected(report) == [(3, reason)]
    rows = stored(engine)
    assert {key: row["amount"] for key, row in rows.items()} == {
        "A-1": Decimal("12.50"),
        "A-3": Decimal("1200.00"),
    }


def test_margin_may_be_negative_but_not_above_the_amount(engine: Engine, tmp_path: Path) -> None:
    add_customers(engine, tmp_path)
    text = csv_text(
        HEADER[:5],
        ["A-1", "C-LON", "2026-03-01T10:00Z", "20.00", "-3.50"],
        ["A-2", "C-LON", "2026-03-01T11:00Z", "20.00", "20.00"],
        ["A-3", "C-LON", "2026-03-01T12:00Z", "20.00", "20.01"],
        ["A-4", "C-LON", "2026-03-01T13:00Z", "20.00", "1.234"],
    )
    report = run(engine, "orders", tmp_path, text)
    assert rejected(report) == [
        (4, "margin: 20.01 is more than the amount 20.00"),
        (5, 'margin: "1.234" has more than two decimal places'),
    ]
    rows = stored(engine)
    assert {key: row["margin"] for key, row in rows.items()} == {
        "A-1": Decimal("-3.50"),
        "A-2": Decimal("20.00"),
    }


def test_every_bad_cell_of_an_order_is_reported_at_once(engine: Engine, tmp_path: Path) -> None:
    add_customers(engine, tmp_path)
    text = csv_text(HEADER[:4], ["", "C-LON", "01/03/2026 10:00", "-1"])
    report = run(engine, "orders", tmp_path, text)
    assert rejected(report) == [
        (
            2,
            "id: is empty; "
            'placed_at: "01/03/2026 10:00" is not a date and time '
            "(use ISO 8601, e.g. 2027-03-01T14:30); "
            'amount: "-1" is negative',
        )
    ]
    assert stored(engine) == {}


def test_unknown_columns_are_reported_and_otherwise_ignored(engine: Engine, tmp_path: Path) -> None:
    add_customers(engine, tmp_path)
    text = csv_text(
        [*HEADER[:4], "Sales Rep", "Notes"],
        ["A-1", "C-LON", "2026-03-01T10:00Z", "12.50", "Bob", "left early"],
    )
    report = run(engine, "orders", tmp_path, text)
    assert report.ignored_columns == ["Sales Rep", "Notes"]
    assert (report.rows, report.inserted, report.rejected) == (1, 1, [])
    row = stored(engine)["A-1"]
    assert (row["amount"], row["margin"], row["description"]) == (Decimal("12.50"), None, None)
    with engine.connect() as connection:
        attributes = connection.execute(select(customers.c.attributes)).scalars().all()
    assert attributes == [{}, {}]
    # the same order without the extra columns is the same order
    again = run(
        engine,
        "orders",
        tmp_path,
        csv_text(HEADER[:4], ["A-1", "C-LON", "2026-03-01T10:00Z", "12.50"]),
    )
    assert (again.ignored_columns, again.unchanged, again.updated) == ([], 1, 0)


def test_a_corrected_order_is_updated_in_place(engine: Engine, tmp_path: Path) -> None:
    ids = add_customers(engine, tmp_path)
    run(
        engine,
        "orders",
        tmp_path,
        csv_text(HEADER, ["A-1", "C-LON", "2026-03-01T10:00Z", "9", "1", "Bun"]),
    )
    report = run(
        engine,
        "orders",
        tmp_path,
        csv_text(HEADER[:4], ["A-1", "C-TYO", "2026-03-01T10:00Z", "9.50"]),
    )
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 0)
    row = stored(engine)["A-1"]
    assert row["customer_id"] == ids["C-TYO"]
    assert (row["amount"], row["margin"], row["description"]) == (
        Decimal("9.50"),
        Decimal(1),
        "Bun",
    )
