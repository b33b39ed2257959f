"""`store.driver_writes`: one write transaction whose SQL goes straight to the driver, on SQLite
and PostgreSQL: committed at the end, rolled back on any error, a locked store raised as
SQLAlchemy's OperationalError, and the connection left with no transaction open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError

from scheduler.delivery.claims import Result, claim, mark_sending, record_results
from scheduler.errors import StoreError
from scheduler.store.db import create_store_engine, write_transaction
from scheduler.store.driver_writes import driver_writes
from scheduler.store.models import metadata
from tests.test_delivery import add_due

touches = metadata.tables["touches"]
touch_events = metadata.tables["touch_events"]
NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=10)


def _claimed(engine: Engine, count: int) -> list[int]:
    ids = [add_due(engine, f"C-{n}") for n in range(count)]
    with write_transaction(engine) as connection:
        claim(connection, "one", NOW, LEASE, count)
    return ids


def _status(engine: Engine, touch_id: int) -> str:
    with engine.connect() as connection:
        status: str = connection.execute(
            select(touches.c.status).where(touches.c.id == touch_id)
        ).scalar_one()
    return status


def test_the_marks_and_outcomes_written_are_committed(engine: Engine) -> None:
    first, second = _claimed(engine, 2)
    with engine.connect() as connection:
        with driver_writes(connection) as writes:
            assert mark_sending(writes, first, "one", NOW, LEASE)
            assert not mark_sending(writes, first, "one", NOW, LEASE)  # already sending
            assert not mark_sending(writes, second, "other", NOW, LEASE)  # not its lease
            result = Result(first, "sent", None, "250 ok", sent_at=NOW)
            assert record_results(writes, "one", [result], NOW) == 1
        assert not connection.in_transaction()
        with driver_writes(connection) as writes:  # the connection can go on
            assert mark_sending(writes, second, "one", NOW, LEASE)
    assert (_status(engine, first), _status(engine, second)) == ("sent", "sending")
    with engine.connect() as connection:
        events = connection.execute(select(touch_events.c.touch_id)).scalars().all()
    assert events == [first]


def _mark_then(connection: Connection, touch_id: int, statement: str = "") -> None:
    """Mark `touch_id` sending, then run `statement` (an event for a note that does not
    exist), or raise ZeroDivisionError without one."""
    with driver_writes(connection) as writes:
        assert mark_sending(writes, touch_id, "one", NOW, LEASE)
        if not statement:
            raise ZeroDivisionError
        writes.exec_driver_sql(statement, (touch_id + 1000, NOW.isoformat(), "sent"))


def test_an_error_rolls_everything_back(engine: Engine) -> None:
    (touch_id,) = _claimed(engine, 1)
    with engine.connect() as connection:
        with pytest.raises(ZeroDivisionError):
            _mark_then(connection, touch_id)
        assert not connection.in_transaction()
    assert _status(engine, touch_id) == "claimed"


def test_a_driver_error_is_raised_as_sqlalchemys_and_rolls_back(engine: Engine) -> None:
    (touch_id,) = _claimed(engine, 1)
    event = "INSERT INTO touch_events (touch_id, at, status) VALUES (?, ?, ?)"
    if engine.dialect.name == "postgresql":
        event = event.replace("?", "%s")
    with engine.connect() as connection, pytest.raises(IntegrityError):
        _mark_then(connection, touch_id, event)
    assert _status(engine, touch_id) == "claimed"


def test_a_locked_store_is_an_operational_error(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's write lock (PostgreSQL's lock timeout: tests/test_locked_store.py)")
    engine = create_store_engine(database_url, busy_timeout=0.1)
    try:
        with engine.begin() as setup:
            setup.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with write_transaction(engine), engine.connect() as connection:
            with pytest.raises(OperationalError, match="locked"), driver_writes(connection):
                pass  # never reached: BEGIN IMMEDIATE waits for the lock, then gives up
            assert not connection.in_transaction()
    finally:
        engine.dispose()


def test_a_connection_already_in_a_transaction_is_refused(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("on PostgreSQL driver_writes is connection.begin(), which refuses it too")
    with (
        engine.connect() as connection,
        connection.begin(),
        pytest.raises(StoreError, match="no transaction open"),
        driver_writes(connection),
    ):
        pass  # pragma: no cover
