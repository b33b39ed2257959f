"""Ctrl-C and SIGTERM for the one-shot commands (`send`, `run --once`): they stop as the daemon
does, and leave no note held.

Rules:
- The first SIGINT or SIGTERM stops claiming: the senders being watched start no new send, the
  sends under way get `stop_within` to finish, and the notes not yet sent go back to the queue.
- A second signal, or the end of `stop_within`, cancels what is still running.
- Either way, the notes this process still holds are released before it exits: claimed ones
  go back to pending at once (not after their lease), and ones it was handing to the server
  become `unknown` (they may have gone; `appreciate retry ID` sends one again).
- The command then exits with 128 + the signal's number (130 for Ctrl-C), so a script knows
  the run did not finish.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine

from scheduler.clock import Clock
from scheduler.delivery.claims import release
from scheduler.delivery.deliver import Sender
from scheduler.store.db import write_transaction

log = logging.getLogger("appreciate")
T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def release_held(engine: Engine, owner: str, clock: Clock) -> tuple[int, int]:
    """Give back every note `owner` holds (see `claims.release`); (released, unknown). A store
    that cannot be reached is logged: the leases then expire by themselves."""
    try:
        with write_transaction(engine) as connection:
            return release(connection, owner, clock.now())
    except Exception as error:
        log.error("could not release the leases (%s); they expire by themselves", error)
        return 0, 0


@dataclass
class Interruption:
    """Watches for SIGINT/SIGTERM while `run` awaits a command's work (see the module's rules)."""

    stop_within: timedelta
    received: signal.Signals | None = None
    _senders: list[Sender] = field(default_factory=list)
    _reason: str = ""

    @property
    def exit_code(self) -> int:
        """128 + the signal received (0 when none was)."""
        return 128 + self.received.value if self.received is not None else 0

    def watch(self, sender: Sender) -> Sender:
        """Stop `sender` on the first signal (at once if one came already)."""
        self._senders.append(sender)
        if self.received is not None:
            sender.stop(self._reason)
        return sender

    async def run(self, work: Coroutine[Any, Any, T]) -> T | None:
        """`work`'s result, or None when a second signal or the bound cancelled it."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(work)

        def on_signal(received: signal.Signals) -> None:
            if self.received is not None:
                task.cancel()
                return
            self.received = received
            self._reason = f"interrupted by {received.name}"
            log.warning(
                "%s: no new notes are sent; finishing the ones under way (at most %.0f s; "
                "press Ctrl-C again to stop at once)",
                received.name,
                self.stop_within.total_seconds(),
            )
            for sender in self._senders:
                sender.stop(self._reason)
            loop.call_later(self.stop_within.total_seconds(), task.cancel)

        for stop_signal in STOP_SIGNALS:
            loop.add_signal_handler(stop_signal, on_signal, stop_signal)
        try:
            return await task
        except asyncio.CancelledError:
            if self.received is None:
                raise
            log.warning("stopped the sends still under way")
            return None
        finally:
            for stop_signal in STOP_SIGNALS:
                loop.remove_signal_handler(stop_signal)


def stopped_line(received: signal.Signals, released: int, unknown: int) -> str:
    """What a person reads after an interrupted command."""
    line = f"Stopped by {received.name}: the notes not sent stay queued for the next run"
    if released:
        line += f" ({released} given back)"
    if unknown:
        line += (
            f"; {unknown} were being handed to the server and may have gone out: see "
            "`appreciate log --status unknown`, and `appreciate retry ID` to send one again"
        )
    return line + "."
