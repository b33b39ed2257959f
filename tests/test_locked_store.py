"""A store that another writer locks while notes are being sent (SQLite: `BEGIN IMMEDIATE`;
PostgreSQL: `LOCK TABLE touches IN EXCLUSIVE MODE`), longer than the busy (lock) timeout: the
outcomes the server gave are kept and written once the store is free; meanwhile no note is
handed over. A store that stays locked fails the run, saying which outcomes it could not write;
a stop ends the wait."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url

from scheduler.delivery.deliver import SendReport
from scheduler.delivery.store_gate import StoreUnavailable
from scheduler.store.db import create_store_engine
from scheduler.store.schema import upgrade
from tests.smtp_servers import WAIT, Recorder, running
from tests.test_delivery import add_due, sender_for, server, state
from tests.test_misbehaving_server import with_smtp

BUSY_TIMEOUT = 0.3
"""Seconds the sender's store waits for a lock (10 s in production)."""
NOTES = 20
CONNECTIONS = 2


class Blocker:
    """Another writer: holds the store's write lock (SQLite) or an EXCLUSIVE lock on touches
    (PostgreSQL) from `hold()` until `let_go()`; either may be called from any thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.held = threading.Event()
        self._sqlite: sqlite3.Connection | None = None
        self._engine: Engine | None = None
        self._postgres: Connection | None = None
        if make_url(url).get_backend_name() == "sqlite":
            path = make_url(url).database
            assert path is not None
            self._sqlite = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        else:
            self._engine = create_store_engine(url, busy_timeout=WAIT)
            self._postgres = self._engine.connect()

    def hold(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("BEGIN IMMEDIATE")
        elif self._postgres is not None:
            self._postgres.begin()
            self._postgres.exec_driver_sql("LOCK TABLE touches IN EXCLUSIVE MODE")
        self.held.set()

    def let_go(self) -> None:
        if self.held.is_set():
            if self._sqlite is not None:
                self._sqlite.execute("ROLLBACK")
            elif self._postgres is not None:
                self._postgres.rollback()
            self.held.clear()

    def close(self) -> None:
        self.let_go()
        if self._sqlite is not None:
            self._sqlite.close()
        if self._postgres is not None:
            self._postgres.close()
        if self._engine is not None:
            self._engine.dispose()


@dataclass
class LockingRecorder(Recorder):
    """Accepts every message; as the `lock_at`-th comes in (before answering it), the blocker
    takes the lock. Counts the messages that arrive while it holds it."""

    blocker: Blocker | None = None
    lock_at: int = 5
    arrived: int = 0
    locked: threading.Event = field(default_factory=threading.Event)
    """Set once the blocker took the lock (it may have let go since)."""
    while_locked: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.arrived += 1
        if self.blocker is not None and self.arrived == self.lock_at:
            await asyncio.to_thread(self.blocker.hold)
            self.locked.set()
        elif self.blocker is not None and self.arrived > self.lock_at:
            await asyncio.to_thread(self.locked.wait, WAIT)
            if self.blocker.held.is_set():
                self.while_locked.extend(envelope.rcpt_tos)
        return await super().handle_DATA(server, session, envelope)


class OnLog(logging.Handler):
    """Calls `then()` once the sender has logged `times` failed tries to write the store."""

    def __init__(self, times: int, then: Callable[[], None]) -> None:
        super().__init__(logging.INFO)
        self.times = times
        self.then = then
        self.tries = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "store cannot be written" in message or "store still cannot be written" in message:
            self.tries += 1
            if self.tries == self.times:
                self.then()


@pytest.fixture
def locked_engine(database_url: str) -> Iterator[Engine]:
    """The sender's store, with a short busy (lock) timeout."""
    engine = create_store_engine(database_url, busy_timeout=BUSY_TIMEOUT)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def blocker(database_url: str) -> Iterator[Blocker]:
    held = Blocker(database_url)
    yield held
    held.close()


def deliver(engine: Engine, port: int, handler: logging.Handler, **smtp: Any) -> SendReport:
    sender = sender_for(
        engine, server(port), config=with_smtp(**({"connections": CONNECTIONS} | smtp))
    )
    sending = logging.getLogger("appreciate.send")
    sending.addHandler(handler)
    previous = sending.level
    sending.setLevel(logging.INFO)
    try:
        return asyncio.run(asyncio.wait_for(sender.run(), timeout=WAIT))
    finally:
        sending.removeHandler(handler)
        sending.setLevel(previous)


def test_outcomes_received_while_the_store_is_locked_are_written_once_it_is_free(
    locked_engine: Engine, blocker: Blocker
) -> None:
    ids = [add_due(locked_engine, f"C-{n}") for n in range(NOTES)]
    recorder = LockingRecorder(blocker=blocker, lock_at=5)
    with running(recorder) as port:
        # the other writer lets go after the sender failed to write three times
        report = deliver(locked_engine, port, OnLog(3, blocker.let_go))
    notes = [state(locked_engine, touch_id) for touch_id in ids]
    assert {note["status"] for note in notes} == {"sent"}  # none unknown, none left sending
    assert report.counts == {"sent": NOTES}
    assert len(recorder.received) == NOTES
    assert len({r.message["Message-ID"] for r in recorder.received}) == NOTES
    # while the outcomes could not be written, no note was handed over (only the one already
    # on its way over the other connection arrived)
    assert len(recorder.while_locked) <= CONNECTIONS - 1


def test_notes_held_up_by_a_locked_store_keep_to_the_rate_limit_once_it_is_free(
    locked_engine: Engine, blocker: Blocker
) -> None:
    """The notes that waited for the store go out at the configured pace afterwards, not all
    at once: a provider's limit (`max_per_minute`) holds through a slow store too."""
    for n in range(12):
        add_due(locked_engine, f"C-{n}")
    recorder = LockingRecorder(blocker=blocker, lock_at=3)
    with running(recorder) as port:
        report = deliver(
            locked_engine, port, OnLog(3, blocker.let_go), max_per_minute=600, connections=4
        )
    assert report.counts == {"sent": 12}
    arrivals = sorted(r.arrived for r in recorder.received)
    # 600 a minute: one every 0.1 s; one note held up on its way may arrive close to the next,
    # but never three within 0.15 s (before, the notes that waited all went out together)
    spans_of_three = [arrivals[n + 2] - arrivals[n] for n in range(len(arrivals) - 2)]
    assert min(spans_of_three) > 0.15, [round(a - arrivals[0], 3) for a in arrivals]


def test_a_store_that_stays_locked_fails_the_run_and_says_what_it_could_not_write(
    locked_engine: Engine, blocker: Blocker, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [add_due(locked_engine, f"C-{n}") for n in range(NOTES)]
    recorder = LockingRecorder(blocker=blocker, lock_at=3)
    with running(recorder) as port, pytest.raises(StoreUnavailable) as failed:
        deliver(locked_engine, port, OnLog(0, lambda: None), lease=timedelta(seconds=3))
    blocker.let_go()
    assert "the store could not be written for" in str(failed.value)
    (lost,) = [r.getMessage() for r in caplog.records if "could not write" in r.getMessage()]
    accepted = [
        touch_id for touch_id in ids if state(locked_engine, touch_id)["status"] == "sending"
    ]
    assert len(accepted) == len(recorder.received)  # handed over, outcome not written: its lease
    assert f"sent: {', '.join(str(touch_id) for touch_id in accepted)}" in lost  # decides


def test_a_stop_ends_the_wait_for_a_locked_store(locked_engine: Engine, blocker: Blocker) -> None:
    """The lease (10 minutes) would let it wait long; a stop asked for meanwhile ends it."""
    for n in range(NOTES):
        add_due(locked_engine, f"C-{n}")
    recorder = LockingRecorder(blocker=blocker, lock_at=3)
    holder: dict[str, Any] = {}

    async def deliver_then_stop(port: int) -> SendReport:
        sender = sender_for(locked_engine, server(port), config=with_smtp(connections=CONNECTIONS))
        holder["sender"] = sender
        return await asyncio.wait_for(sender.run(), timeout=WAIT)

    stop = OnLog(1, lambda: holder["sender"].stop("the test stops it"))
    sending = logging.getLogger("appreciate.send")
    sending.addHandler(stop)
    try:
        with running(recorder) as port, pytest.raises(StoreUnavailable):
            asyncio.run(deliver_then_stop(port))
    finally:
        sending.removeHandler(stop)
    assert stop.tries >= 1
    assert len(recorder.received) <= 3 + CONNECTIONS - 1
