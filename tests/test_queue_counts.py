"""The queue by status, on both databases (on SQLite `sent` counted as every note less the
others): it equals counting the notes one by one whatever writes them (inserts, changes of
status, deletes, a customer deleted with their notes), with statuses sorting either side of
`sent`, none sent, only sent, and none at all."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from scheduler.store.models import metadata
from scheduler.store.queue_counts import status_counts
from scheduler.vocabulary import STATUSES
from tests.test_detection import add_customer

NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
touches = metadata.tables["touches"]
customers = metadata.tables["customers"]


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


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        found = status_counts(connection)
        assert found == counted(connection)
    return found


def test_no_notes_no_statuses(engine: Engine) -> None:
    assert counts(engine) == {}


def test_every_status_either_side_of_sent(engine: Engine) -> None:
    add_notes(engine, add_customer(engine, "C-ann"), [*STATUSES, "sent", "pending"])
    assert counts(engine) == dict.fromkeys(STATUSES, 1) | {"sent": 2, "pending": 2}


def test_none_sent_and_only_sent(engine: Engine) -> None:
    ann = add_customer(engine, "C-ann")
    add_notes(engine, ann, ["pending", "failed", "suppressed"])
    assert counts(engine) == {"failed": 1, "pending": 1, "suppressed": 1}
    with engine.begin() as connection:
        connection.execute(update(touches).values(status="sent"))
    assert counts(engine) == {"sent": 3}


def test_the_queue_by_status_follows_every_write(engine: Engine) -> None:
    ann, bob = add_customer(engine, "C-ann"), add_customer(engine, "C-bob")
    add_notes(engine, ann, ["pending", "pending", "sent", "failed"])
    add_notes(engine, bob, ["pending", "sent"], kind="order_thanks")
    assert counts(engine) == {"failed": 1, "pending": 3, "sent": 2}
    with engine.begin() as connection:
        connection.execute(
            update(touches).where(touches.c.status == "pending").values(status="claimed")
        )
        connection.execute(
            update(touches).where(touches.c.status == "failed").values(status="pending")
        )
    assert counts(engine) == {"claimed": 3, "pending": 1, "sent": 2}
    with engine.begin() as connection:
        connection.execute(delete(touches).where(touches.c.status == "pending"))
        connection.execute(delete(customers).where(customers.c.id == bob))  # and their notes
    assert counts(engine) == {"claimed": 2, "sent": 1}
