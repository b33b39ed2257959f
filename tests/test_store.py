"""The store: migrations from empty, schema checks, and column types, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from scheduler.errors import SchemaOutdated, SchemaTooNew, StoreError
from scheduler.store.db import CONNECT_TIMEOUT, create_store_engine, store_failure
from scheduler.store.models import metadata
from scheduler.store.schema import (
    alembic_config,
    ensure_current,
    head_revision,
    open_store,
    revisions,
    schema_state,
    upgrade,
)
from tests.conftest import CONFIG_TEMPLATE, Workspace

customers = metadata.tables["customers"]
orders = metadata.tables["orders"]
touches = metadata.tables["touches"]


def add_customer(engine: Engine) -> int:
    """Store one customer and return their row id."""
    with engine.begin() as connection:
        customer_id: int = connection.execute(
            insert(customers)
            .values(external_id="C-1", name="Ann", attributes={})
            .returning(customers.c.id)
        ).scalar_one()
    return customer_id


def test_migrations_build_every_table_from_empty(database_url: str) -> None:
    store = create_store_engine(database_url)
    try:
        assert schema_state(store).current is None
        before = upgrade(store)
        assert before.current is None
        assert schema_state(store).up_to_date
        tables = set(inspect(store).get_table_names())
        assert {
            "customers",
            "orders",
            "referrals",
            "meetings",
            "touches",
            "customer_values",
            "ltv_runs",
            "alembic_version",
        } <= tables
    finally:
        store.dispose()


def test_the_revisions_read_from_file_names_are_alembics() -> None:
    """Opening the store checks its revision without loading Alembic (see `revisions`)."""
    scripts = ScriptDirectory.from_config(alembic_config())
    assert revisions() == tuple(
        script.revision for script in reversed(list(scripts.walk_revisions()))
    )
    assert head_revision() == scripts.get_current_head()


def test_opening_the_store_loads_no_alembic(migrated_workspace: Workspace) -> None:
    code = (
        "import sys; from scheduler.store.schema import open_store; "
        f"open_store({migrated_workspace.database_url!r}).dispose(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_upgrade_twice_changes_nothing(engine: Engine) -> None:
    before = upgrade(engine)
    assert before.current == head_revision()


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    """The migration and the tables in models.py describe the same schema."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_daily_question_columns_are_indexed(engine: Engine) -> None:
    inspector = inspect(engine)

    def indexed(table: str) -> list[list[str]]:
        found = [[str(c) for c in index["column_names"]] for index in inspector.get_indexes(table)]
        found += [list(u["column_names"]) for u in inspector.get_unique_constraints(table)]
        return found

    def leads(table: str, columns: list[str]) -> bool:
        """An index of `table` starts with `columns` (it may carry more after them)."""
        return any(found[: len(columns)] == columns for found in indexed(table))

    assert leads("customers", ["birth_month", "birth_day"])
    assert leads("customers", ["customer_since"])
    assert leads("customers", ["first_met_on"])
    assert ["external_id"] in indexed("customers")
    assert ["placed_at"] in indexed("orders")
    assert ["customer_id", "occasion_key"] in indexed("touches")
    assert leads("touches", ["status", "due_at", "updated_at", "id"])  # due; the log by status
    assert leads("touches", ["status", "updated_at", "id"])
    assert leads("touches", ["due_at", "updated_at", "id"])
    assert leads("touches", ["updated_at", "id"])


def test_an_empty_database_is_refused_with_the_command_to_run(database_url: str) -> None:
    store = create_store_engine(database_url)
    try:
        with pytest.raises(SchemaOutdated, match="appreciate db upgrade") as caught:
            ensure_current(store)
        assert caught.value.current is None
    finally:
        store.dispose()


def test_a_schema_from_a_newer_appreciate_is_refused(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaTooNew):
        open_store(str(engine.url.render_as_string(hide_password=False)))


def test_a_database_without_a_revision_is_refused(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
    with pytest.raises(SchemaOutdated, match="has no appreciate schema"):
        ensure_current(engine)


def test_timestamps_come_back_aware_and_in_utc(engine: Engine) -> None:
    placed = datetime(2027, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    customer_id = add_customer(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(orders).values(
                external_id="A-1",
                customer_id=customer_id,
                placed_at=placed,
                amount=Decimal("12.50"),
            )
        )
    with engine.connect() as connection:
        row = connection.execute(
            select(orders.c.placed_at, orders.c.amount, orders.c.created_at)
        ).one()
    assert row.placed_at == datetime(2027, 3, 1, 7, 30, tzinfo=UTC)
    assert row.placed_at.tzinfo is UTC
    assert row.created_at.tzinfo is UTC
    assert row.amount == Decimal("12.50")
    assert str(row.amount) == "12.50"


def test_naive_timestamps_are_refused(engine: Engine) -> None:
    customer_id = add_customer(engine)
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as connection:
        connection.execute(
            insert(orders).values(
                external_id="A-1",
                customer_id=customer_id,
                placed_at=datetime(2027, 3, 1, 9, 30),  # noqa: DTZ001 - the point of the test
                amount=Decimal(1),
            )
        )


@pytest.mark.parametrize("amount", ["0.01", "19.99", "1234567.89", "99999999999.99"])
def test_money_keeps_its_cents(engine: Engine, amount: str) -> None:
    customer_id = add_customer(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(orders).values(
                external_id="A-1",
                customer_id=customer_id,
                placed_at=datetime(2027, 3, 1, 9, tzinfo=UTC),
                amount=Decimal(amount),
            )
        )
    with engine.connect() as connection:
        assert connection.execute(select(orders.c.amount)).scalar_one() == Decimal(amount)


def test_one_note_per_customer_and_occasion(engine: Engine) -> None:
    customer_id = add_customer(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(touches).values(
                customer_id=customer_id,
                kind="birthday",
                occasion_key="birthday:2027",
                due_at=datetime(2027, 3, 1, 9, tzinfo=UTC),
            )
        )
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            insert(touches).values(
                customer_id=customer_id,
                kind="birthday",
                occasion_key="birthday:2027",
                due_at=datetime(2027, 3, 1, 10, tzinfo=UTC),
            )
        )


def test_a_referral_to_oneself_is_refused_by_the_store(engine: Engine) -> None:
    referrals = metadata.tables["referrals"]
    customer_id = add_customer(engine)
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            insert(referrals).values(
                referrer_id=customer_id, referred_id=customer_id, referred_on=date(2026, 1, 1)
            )
        )


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: object) -> None:
    store = create_store_engine(f"sqlite:///{tmp_path}/wal.db")
    try:
        with store.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.dispose()


@contextmanager
def store_that_never_answers() -> Iterator[int]:
    """A port where a 'PostgreSQL server' accepts connections (the kernel does) and never says
    a word, as a wedged server or a half-open firewall path does."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        yield silent.getsockname()[1]


def test_a_store_that_never_answers_fails_each_command_within_the_connect_timeout(
    tmp_path: Path,
) -> None:
    """Every command, and the service's start, waited on such a store: psycopg's own limit
    is 130 s a try (older psycopg: none). Now the connection gives up after CONNECT_TIMEOUT
    seconds, and the command says the store could not be used."""
    environment = {k: v for k, v in os.environ.items() if k != "PGCONNECT_TIMEOUT"}
    with store_that_never_answers() as port:
        config = tmp_path / "appreciate.toml"
        url = f"postgresql://appreciate@127.0.0.1:{port}/shop"
        config.write_text(CONFIG_TEMPLATE.format(url=url), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "scheduler", "--config", str(config), "db", "status"],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
            timeout=CONNECT_TIMEOUT + 50,  # the process ended, not the test stuck, if it waits
        )
    assert done.returncode == StoreError.exit_code, done.stderr
    assert done.stderr.startswith("error: the store could not be used: ")
    assert "timeout" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("given_by", ["url", "environment"])
def test_a_connect_timeout_in_the_url_or_the_environment_wins_over_the_default(
    given_by: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq's own ways of setting the limit (`?connect_timeout=` in the URL, PGCONNECT_TIMEOUT)
    are kept: here 2 s, under a default made 60 s."""
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    if given_by == "environment":
        monkeypatch.setenv("PGCONNECT_TIMEOUT", "2")
    query = "?connect_timeout=2" if given_by == "url" else ""
    with store_that_never_answers() as port:
        engine = create_store_engine(
            f"postgresql+psycopg://appreciate@127.0.0.1:{port}/shop{query}", connect_timeout=60
        )
        started = time.monotonic()
        try:
            with pytest.raises(OperationalError) as failed:
                engine.connect()
        finally:
            engine.dispose()
        waited = time.monotonic() - started
    assert waited < 30  # 2 s asked; the default would be 60
    assert "timeout" in (store_failure(failed.value) or "")
