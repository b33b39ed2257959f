"""Bulk imports write without the secondary indexes and never leave the store without them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, inspect
from sqlalchemy.exc import IntegrityError

from scheduler.importer import run as import_run
from scheduler.store.db import CACHE_KIB, create_store_engine
from scheduler.store.indexes import restore_missing_indexes, secondary_indexes
from scheduler.store.models import metadata
from scheduler.store.schema import open_store, upgrade
from tests.conftest import NOW
from tests.test_import_behaviour import (
    LATER,
    StopOnCall,
    counts,
    csv_text,
    run,
    snapshot,
    stored,
    write,
)

ORDER_INDEXES = {"ix_orders_placed_at", "ix_orders_customer_placed_at"}
ALL_INDEXES = {str(index.name) for table in metadata.tables.values() for index in table.indexes}


def index_names(engine: Engine, table: str) -> set[str]:
    with engine.connect() as connection:
        return {str(index["name"]) for index in inspect(connection).get_indexes(table)}


def every_index(engine: Engine) -> set[str]:
    """The declared indexes the database has."""
    return {name for table in metadata.tables for name in index_names(engine, table)} & ALL_INDEXES


class IndexesSeen(StopOnCall):
    """A progress callback noting which order indexes exist after each batch."""

    def __init__(self, engine: Engine, stop_at: int = 0) -> None:
        super().__init__(stop_at)
        self.engine = engine
        self.seen: list[set[str]] = []

    def __call__(self, done: int, total: int) -> None:
        self.seen.append(index_names(self.engine, "orders") & ORDER_INDEXES)
        super().__call__(done, total)


@pytest.fixture
def small_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat ten rows as a bulk import, so the tests stay small."""
    monkeypatch.setattr(import_run, "BULK_MIN_ROWS", 10)


def customers_and_orders(tmp_path: Path, engine: Engine, orders: int) -> Path:
    people = [[f"C-{n}", f"Customer {n}"] for n in range(1, 4)]
    run(engine, write(tmp_path, csv_text(["id", "name"], *people)))
    rows = [
        [f"A-{n:03}", f"C-{n % 3 + 1}", f"2026-0{n % 9 + 1}-01T10:00", f"{n}.50"]
        for n in range(1, orders + 1)
    ]
    header = ["id", "customer_id", "placed_at", "amount"]
    return write(tmp_path, csv_text(header, *rows), "orders.csv")


@pytest.mark.usefixtures("small_bulk")
def test_a_bulk_import_writes_without_secondary_indexes_and_builds_them_after(
    engine: Engine, tmp_path: Path
) -> None:
    path = customers_and_orders(tmp_path, engine, 25)
    progress = IndexesSeen(engine)
    report = run(engine, path, "orders", progress=progress, batch_size=10)
    assert counts(report) == (25, 25, 0, 0, [])
    assert progress.seen == [set(), set(), set()]
    assert every_index(engine) == ALL_INDEXES


@pytest.mark.usefixtures("small_bulk")
def test_an_import_smaller_than_its_table_keeps_the_indexes(engine: Engine, tmp_path: Path) -> None:
    path = customers_and_orders(tmp_path, engine, 25)
    run(engine, path, "orders", batch_size=10)
    smaller = write(tmp_path, "\n".join(path.read_text().splitlines()[:16]) + "\n", "part.csv")
    progress = IndexesSeen(engine)
    report = run(engine, smaller, "orders", progress=progress, batch_size=10, now=LATER)
    assert counts(report) == (15, 0, 0, 15, [])
    assert progress.seen == [ORDER_INDEXES, ORDER_INDEXES]


def test_a_small_import_keeps_the_indexes(engine: Engine, tmp_path: Path) -> None:
    path = customers_and_orders(tmp_path, engine, 25)
    progress = IndexesSeen(engine)
    run(engine, path, "orders", progress=progress, batch_size=10)
    assert progress.seen == [ORDER_INDEXES] * 3


@pytest.mark.usefixtures("small_bulk")
def test_an_interrupted_bulk_import_builds_the_indexes_again(
    engine: Engine, tmp_path: Path
) -> None:
    path = customers_and_orders(tmp_path, engine, 25)
    progress = IndexesSeen(engine, stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        run(engine, path, "orders", progress=progress, batch_size=10)
    assert progress.seen == [set(), set()]
    assert every_index(engine) == ALL_INDEXES
    assert len(snapshot(engine, "orders")["orders"]) == 20


@pytest.mark.usefixtures("small_bulk")
def test_a_bulk_dry_run_leaves_the_store_as_it_was(engine: Engine, tmp_path: Path) -> None:
    path = customers_and_orders(tmp_path, engine, 25)
    before = snapshot(engine, "customers", "orders")
    report = run(engine, path, "orders", dry_run=True, batch_size=10)
    assert counts(report) == (25, 25, 0, 0, [])
    assert snapshot(engine, "customers", "orders") == before
    assert every_index(engine) == ALL_INDEXES


def test_indexes_lost_to_a_killed_import_come_back_when_the_store_is_opened(
    engine: Engine, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    orders = metadata.tables["orders"]
    with engine.begin() as connection:
        for index in secondary_indexes(orders):
            index.drop(connection)
    assert index_names(engine, "orders") & ORDER_INDEXES == set()

    reopened = open_store(database_url)
    try:
        assert every_index(reopened) == ALL_INDEXES
        assert restore_missing_indexes(reopened) == []
    finally:
        reopened.dispose()
    assert "ix_orders_customer_placed_at, ix_orders_placed_at" in caplog.text


def test_only_non_unique_indexes_are_ever_set_aside() -> None:
    for table in metadata.tables.values():
        assert all(not index.unique for index in secondary_indexes(table))
    assert {str(index.name) for index in secondary_indexes(metadata.tables["orders"])} == (
        ORDER_INDEXES
    )


@pytest.mark.usefixtures("small_bulk")
def test_a_bulk_customers_import_keeps_the_birthday_index(engine: Engine, tmp_path: Path) -> None:
    rows = [[f"C-{n:02}", f"Customer {n}", f"{n % 12 + 1:02}-15"] for n in range(1, 26)]
    path = write(tmp_path, csv_text(["id", "name", "birthday"], *rows))
    report = run(engine, path, batch_size=10)
    assert counts(report) == (25, 25, 0, 0, [])
    assert stored(engine)["C-07"]["birth_month"] == 8
    assert "ix_customers_birthday" in index_names(engine, "customers")


@pytest.fixture
def sqlite_after_import(tmp_path: Path, small_bulk: None) -> Iterator[Engine]:
    """A SQLite store whose pooled connection has just run a bulk orders import."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        upgrade(engine)
        run(engine, customers_and_orders(tmp_path, engine, 25), "orders", batch_size=10)
        yield engine
    finally:
        engine.dispose()


def test_sqlite_connections_keep_their_page_cache_after_building_indexes(
    sqlite_after_import: Engine,
) -> None:
    with sqlite_after_import.connect() as connection:
        cache = connection.exec_driver_sql("PRAGMA cache_size").scalar_one()
    assert cache == -CACHE_KIB


def test_sqlite_still_enforces_foreign_keys_after_an_import(sqlite_after_import: Engine) -> None:
    """Imports check their references themselves and skip SQLite's; others never do."""
    with sqlite_after_import.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        with pytest.raises(IntegrityError):
            connection.execute(
                insert(metadata.tables["orders"]).values(
                    external_id="X", customer_id=999, placed_at=NOW, amount=1
                )
            )
