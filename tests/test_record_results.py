"""Recording outcomes in groups (`claims.record_results`, compiled once and written with one
executemany each): only the notes whose lease the sender still holds are written, each with its
event, and the count says how many; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update

from scheduler.delivery.claims import Result, claim, mark_sending, record_results
from scheduler.store.db import write_transaction
from scheduler.store.models import metadata
from tests.test_delivery import add_due

touches = metadata.tables["touches"]
touch_events = metadata.tables["touch_events"]
NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=3)
LEASE = timedelta(minutes=10)


def test_outcomes_are_written_only_where_the_lease_is_still_held(engine: Engine) -> None:
    ids = [add_due(engine, f"C-{n}") for n in range(6)]
    with write_transaction(engine) as connection:
        claimed = claim(connection, "one", NOW, LEASE, 10)
        assert sorted(t.id for t in claimed) == ids
        for touch_id in ids[:4]:
            assert mark_sending(connection, touch_id, "one", NOW, LEASE)
    lost, taken_back = ids[1], ids[4]
    with write_transaction(engine) as connection:  # another sender took these two over
        connection.execute(
            update(touches)
            .where(touches.c.id.in_([lost, taken_back]))
            .values(lease_owner="other:2", status="claimed")
        )
    retry_at = LATER + timedelta(minutes=5)
    results = [
        Result(ids[0], "sent", None, "250 ok", sent_at=LATER),
        Result(lost, "sent", None, "250 ok", sent_at=LATER),
        Result(ids[2], "pending", "attempt 1 failed", "451 later", retry_at=retry_at),
        Result(ids[3], "failed", "the server refused it: 550 no", "550 no"),
        Result(taken_back, "pending", "not sent: stopping", attempted=False),
        Result(ids[5], "suppressed", "opted out", attempted=False),
    ]
    with write_transaction(engine) as connection:
        written = record_results(connection, "one", results, LATER)
    assert written == 4
    with engine.connect() as connection:
        rows = {row.id: row for row in connection.execute(select(touches)).all()}
        events = connection.execute(
            select(touch_events.c.touch_id, touch_events.c.at, touch_events.c.status)
            .where(touch_events.c.at == LATER)
            .order_by(touch_events.c.touch_id)
        ).all()
    expected = {
        ids[0]: ("sent", None, "250 ok", LATER, None, 1),
        ids[2]: ("pending", "attempt 1 failed", "451 later", None, retry_at, 1),
        ids[3]: ("failed", "the server refused it: 550 no", "550 no", None, None, 1),
        ids[5]: ("suppressed", "opted out", None, None, None, 0),
    }
    for touch_id, (status, reason, reply, sent_at, retry, attempts) in expected.items():
        row = rows[touch_id]
        assert (row.status, row.reason, row.last_reply) == (status, reason, reply)
        assert (row.sent_at, row.retry_at, row.attempts) == (sent_at, retry, attempts)
        assert (row.lease_owner, row.lease_until, row.updated_at) == (None, None, LATER)
    for touch_id in (lost, taken_back):  # untouched: the other sender's
        assert (rows[touch_id].status, rows[touch_id].lease_owner) == ("claimed", "other:2")
        assert rows[touch_id].attempts == 0
    assert [(e.touch_id, e.at, e.status) for e in events] == [
        (touch_id, LATER, expected[touch_id][0]) for touch_id in sorted(expected)
    ]


def test_no_outcome_is_written_when_every_lease_was_lost(engine: Engine) -> None:
    ids = [add_due(engine, f"C-{n}") for n in range(3)]
    with write_transaction(engine) as connection:
        claim(connection, "one", NOW, LEASE, 10)
    results = [Result(touch_id, "sent", None, "250 ok", sent_at=LATER) for touch_id in ids]
    with write_transaction(engine) as connection:
        assert record_results(connection, "two", results, LATER) == 0
        assert record_results(connection, "two", [], LATER) == 0
    with engine.connect() as connection:
        assert connection.execute(select(touch_events)).all() == []
        assert {row.status for row in connection.execute(select(touches)).all()} == {"claimed"}


def test_groups_of_every_size_are_written(engine: Engine) -> None:
    ids = [add_due(engine, f"C-{n}") for n in range(40)]
    with write_transaction(engine) as connection:
        claim(connection, "one", NOW, LEASE, 100)
    start = 0
    for size in (1, 2, 8, 13, 16):
        group = ids[start : start + size]
        start += size
        results = [Result(touch_id, "sent", None, "250 ok", sent_at=LATER) for touch_id in group]
        with write_transaction(engine) as connection:
            assert record_results(connection, "one", results, LATER) == size
    with engine.connect() as connection:
        sent = connection.execute(select(touches.c.id).where(touches.c.status == "sent"))
        assert sorted(sent.scalars()) == ids
        assert len(connection.execute(select(touch_events)).all()) == len(ids)
