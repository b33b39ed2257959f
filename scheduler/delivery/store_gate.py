"""The delivery's workers' way to the store when another writer may hold it locked.

Rules:
- A write is one transaction, passed as a function. When it fails with OperationalError (SQLite
  locked longer than its busy timeout, a PostgreSQL lock timeout, a lost database) the gate
  closes: the worker that met the lock tries again after a growing wait (FIRST_WAIT, doubling
  up to LONGEST_WAIT), and the other workers' writes wait until it succeeds. The delivery hands
  a note over only after a write (its `sending` mark), so no note is handed over meanwhile.
- `closed` tells the writes to carry every outcome gathered, not just a group: they are written
  as soon as the store is free.
- A stop asked for ends the wait at once. After waiting `patience` seconds in all the gate gives
  up: every write then raises StoreUnavailable, except one marked `last`, which is tried once
  more (the outcomes still in hand).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError

from scheduler.errors import StoreError

log = logging.getLogger("appreciate.send")
T = TypeVar("T")
FIRST_WAIT = 0.5
LONGEST_WAIT = 10.0
"""Seconds between tries to write a locked store: the first, doubling up to the longest."""


class StoreUnavailable(StoreError):
    """The store could not be written for as long as the sender may wait."""

    def __init__(self, waited: float, cause: str) -> None:
        self.waited = waited
        self.cause = cause
        super().__init__(f"the store could not be written for {waited:.0f} s: {cause}")


class StoreGate:
    """Writes from several workers on one event loop, waiting out a locked store (see the
    module's rules); `stopping` ends every wait."""

    def __init__(self, patience: float, stopping: asyncio.Event) -> None:
        self.patience = patience
        self.stopping = stopping
        self.failure: StoreUnavailable | None = None
        self._open = asyncio.Event()
        self._open.set()

    @property
    def closed(self) -> bool:
        """A worker is waiting for the store to be free."""
        return not self._open.is_set()

    async def write(
        self, attempt: Callable[[], T], *, last: bool = False, in_thread: bool = False
    ) -> T:
        """`attempt()`, once the store lets it through (see the module's rules); `in_thread`:
        run it in a worker thread (long work, such as writing notes, that must not hold up the
        event loop)."""
        if not last:
            while self.closed and self.failure is None:
                await self._until(self._open)  # another worker waits for the store
                if self.stopping.is_set():
                    raise StoreUnavailable(0, "stopped while waiting for the store")
            if self.failure is not None:
                raise self.failure
        started: float | None = None
        wait = FIRST_WAIT
        while True:
            try:
                result = await asyncio.to_thread(attempt) if in_thread else attempt()
            except OperationalError as error:
                now = asyncio.get_running_loop().time()
                started = now if started is None else started
                cause = " ".join(str(error).split())[:300]
                out_of_time = now - started + wait > self.patience
                if self.failure is not None or self.stopping.is_set() or out_of_time:
                    raise self._give_up(now - started, cause) from error
                self._waiting(cause, wait)
                await self._until(self.stopping, timeout=wait)
                if self.stopping.is_set():
                    raise self._give_up(now - started, cause) from error
                wait = min(wait * 2, LONGEST_WAIT)
                continue
            if started is not None:
                waited = asyncio.get_running_loop().time() - started
                log.warning("the store can be written again after %.1f s; sending goes on", waited)
                self._open.set()
            return result

    def _waiting(self, cause: str, wait: float) -> None:
        if self.closed:
            log.info("the store still cannot be written; trying again in %.1f s", wait)
            return
        self._open.clear()
        log.warning(
            "the store cannot be written (%s): no note is handed over until the outcomes so "
            "far are written; trying again in %.1f s",
            cause,
            wait,
        )

    def _give_up(self, waited: float, cause: str) -> StoreUnavailable:
        """No more waiting: the workers waiting for the store are woken, to end."""
        if self.failure is None:
            self.failure = StoreUnavailable(waited, cause)
        self._open.set()
        return self.failure

    async def _until(self, event: asyncio.Event, timeout: float | None = None) -> None:
        """Until `event` is set, a stop is asked for, or `timeout` seconds have passed."""
        waits = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(self.stopping.wait())}
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
