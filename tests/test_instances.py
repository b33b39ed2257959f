"""Several `appreciate run` processes on one store share the work: every note goes out once, and
an instance killed mid-run loses nothing (its notes are taken back after the lease)."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select

from scheduler.delivery.deliver import RESULTS_EVERY
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import Workspace
from tests.smtp_servers import Recorder, running
from tests.test_daemon import configure, start_service, statuses, stop, wait_until

customers = metadata.tables["customers"]
touches = metadata.tables["touches"]
NOTES = 3000
CONNECTIONS = 2
"""Per instance: at most this many notes can be past the final "." when one is killed."""


def add_many_due(engine: Engine, count: int) -> None:
    """`count` customers, each with a birthday note due an hour ago (wall clock)."""
    due = datetime.now(UTC) - timedelta(hours=1)
    with engine.begin() as connection:
        connection.execute(
            insert(customers),
            [
                {"external_id": f"C-{n}", "name": f"Customer {n}", "email": f"c{n}@example.com"}
                for n in range(count)
            ],
        )
        ids = connection.execute(select(customers.c.id)).scalars().all()
        connection.execute(
            insert(touches),
            [
                {
                    "customer_id": customer_id,
                    "kind": "birthday",
                    "occasion_key": "birthday:2026",
                    "status": "pending",
                    "due_at": due,
                    "expires_at": due + timedelta(days=3),
                }
                for customer_id in ids
            ],
        )


def test_three_instances_send_each_note_once_and_survive_a_kill(
    migrated_workspace: Workspace,
) -> None:
    engine = create_store_engine(migrated_workspace.database_url)
    recorder = Recorder()
    try:
        add_many_due(engine, NOTES)
        with running(recorder) as port:
            configure(migrated_workspace, port, connections=CONNECTIONS, lease="10s")
            services = [start_service(migrated_workspace, None) for _ in range(3)]
            try:
                wait_until(lambda: len(recorder.received) >= NOTES // 5, "sending to begin")
                services[0].send_signal(signal.SIGKILL)
                services[0].process.wait()
                wait_until(
                    lambda: not set(statuses(engine)) & {"pending", "claimed", "sending"},
                    "every note to be settled",
                    timeout=180,
                    state=lambda: statuses(engine),
                )
            finally:
                results = [stop(service) for service in services[1:]]
                for service in services:
                    if service.process.poll() is None:  # only when a stop failed
                        service.process.kill()
        with engine.connect() as connection:
            notes = connection.execute(select(touches.c.status, touches.c.message_id)).all()
    finally:
        engine.dispose()

    for code, stderr in results:
        assert code == 0, stderr
    settled = Counter(note.status for note in notes)
    assert set(settled) <= {"sent", "unknown"}, settled
    # only what the killed one was handing over, or had sent without writing it down yet
    assert settled["unknown"] <= CONNECTIONS + RESULTS_EVERY
    received = Counter(r.message["Message-ID"] for r in recorder.received)
    assert max(received.values()) == 1  # no note went out twice
    for note in notes:
        expected = 1 if note.status == "sent" else received[note.message_id]
        assert received[note.message_id] == expected
    assert len(recorder.received) >= NOTES - settled["unknown"]
