"""Ctrl-C and SIGTERM during `appreciate send` and `appreciate run --once`: the command stops
within `stop_within`, gives back every note it holds and says what became of them."""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import select

from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import Workspace
from tests.smtp_servers import Faulty, running
from tests.test_daemon import WAIT, add_due_now, configure, start_service, statuses, wait_until

touches = metadata.tables["touches"]


@pytest.mark.parametrize(
    ("command", "stop_signal"),
    [(("send",), signal.SIGINT), (("run", "--once"), signal.SIGTERM)],
    ids=["send-ctrl-c", "run-once-sigterm"],
)
def test_a_stopped_command_gives_back_every_note_it_holds(
    migrated_workspace: Workspace, command: tuple[str, ...], stop_signal: signal.Signals
) -> None:
    engine = create_store_engine(migrated_workspace.database_url)
    hanging = Faulty(step="data", action="hang")  # takes each note and never answers
    try:
        with running(hanging) as port:
            configure(migrated_workspace, port, connections=2)  # stop_within 2 s, timeout 30 s
            add_due_now(engine, 3)
            started = start_service(migrated_workspace, None, command)
            wait_until(lambda: statuses(engine).get("sending") == 2, "two notes handed over")
            stopping = time.monotonic()
            started.send_signal(stop_signal)
            code = started.process.wait(timeout=WAIT)
            took = time.monotonic() - stopping
        with engine.connect() as connection:
            notes = connection.execute(
                select(touches.c.status, touches.c.lease_owner).order_by(touches.c.id)
            ).all()
    finally:
        engine.dispose()
    output = started.log.read_text(encoding="utf-8")
    assert code == 128 + stop_signal.value, output
    assert took < 15, output  # the bound (2 s), not the server's 30 s timeout
    assert sorted(note.status for note in notes) == ["pending", "unknown", "unknown"]
    assert all(note.lease_owner is None for note in notes)  # nothing waits for a lease
    assert f"Stopped by {stop_signal.name}" in output
    assert "2 were being handed to the server and may have gone out" in output
