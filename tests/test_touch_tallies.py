"""The queue by status, on both databases: whatever writes the notes (inserts, changes of
status, deletes, a customer deleted with their notes, a store upgraded with notes in it), it
equals counting the notes; on SQLite it is read from the tallies the triggers keep."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from scheduler.store.schema import alembic_config, head_revision, schema_state, upgrade
from scheduler.store.tallies import status_counts
from tests.test_detection import add_customer

NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
touches = metadata.tables["touches"]
customers = metadata.tables["customers"]
touch_tallies = metadata.tables["touch_tallies"]


def counted(connection: Connection) -> dict[str, int]:
    rows = connection.execute(select(touches.c.status, func.count()).group_by(touches.c.status))
    return dict(sorted((status, count) for status, count in rows))


def add_notes(engine: Engine, who: int, statuses: list[str], kind: str = "birthday") -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(touches),
            [
                {
                    "customer_id": who,
                    "kind": kind,
                    "occasion_key": f"{kind}:{n}",
                    "status": status,
                    "due_at": NOW,
                }
                for n, status in enumerate(statuses)
            ],
        )


def test_the_queue_by_status_follows_every_write(engine: Engine) -> None:
    ann, bob = add_customer(engine, "C-ann"), add_customer(engine, "C-bob")
    add_notes(engine, ann, ["pending", "pending", "sent", "failed"])
    add_notes(engine, bob, ["pending", "sent"], kind="order_thanks")
    with engine.connect() as connection:
        assert status_counts(connection) == {"failed": 1, "pending": 3, "sent": 2}
    with engine.begin() as connection:
        connection.execute(
            update(touches).where(touches.c.status == "pending").values(status="claimed")
        )
        connection.execute(  # the same status again, and a change that is not of status
            update(touches).where(touches.c.status == "sent").values(status="sent", attempts=1)
        )
        connection.execute(
            update(touches).where(touches.c.status == "failed").values(status="pending")
        )
    with engine.connect() as connection:
        assert status_counts(connection) == counted(connection)
        assert status_counts(connection) == {"claimed": 3, "pending": 1, "sent": 2}
    with engine.begin() as connection:
        connection.execute(delete(touches).where(touches.c.status == "pending"))
        connection.execute(delete(customers).where(customers.c.id == bob))  # and their notes
    with engine.connect() as connection:
        assert status_counts(connection) == counted(connection) == {"claimed": 2, "sent": 1}
    with engine.begin() as connection:
        connection.execute(delete(touches))
    with engine.connect() as connection:
        assert status_counts(connection) == {}  # statuses no note has any more are left out


def test_a_write_rolled_back_leaves_the_queue_as_it_was(engine: Engine) -> None:
    add_notes(engine, add_customer(engine, "C-ann"), ["pending", "sent"])
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(update(touches).values(status="expired"))
        assert status_counts(connection) == {"expired": 2}
        transaction.rollback()
    with engine.connect() as connection:
        assert status_counts(connection) == {"pending": 1, "sent": 1}


def test_a_store_upgraded_with_notes_counts_them(database_url: str) -> None:
    store = create_store_engine(database_url)
    try:
        config = alembic_config()
        with store.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0006")
        add_notes(store, add_customer(store, "C-ann"), ["pending", "sent", "sent", "held"])
        upgrade(store)
        assert schema_state(store).current == head_revision()
        with store.connect() as connection:
            assert status_counts(connection) == {"held": 1, "pending": 1, "sent": 2}
            tallied = connection.execute(select(func.count()).select_from(touch_tallies))
            assert tallied.scalar_one() == (3 if store.dialect.name == "sqlite" else 0)
        with store.begin() as connection:  # down again and up: the tallies start afresh
            config.attributes["connection"] = connection
            command.downgrade(config, "0006")
            command.upgrade(config, "head")
        add_notes(store, add_customer(store, "C-bob"), ["sent"])
        with store.connect() as connection:
            assert status_counts(connection) == counted(connection)
            assert status_counts(connection) == {"held": 1, "pending": 1, "sent": 3}
    finally:
        store.dispose()
