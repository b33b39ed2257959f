"""While the web service runs, opt-outs kept on disk are recorded as soon as the store is back.

Rules:
- Every REPLAY_EVERY seconds a thread records the opt-outs waiting in the spool (see
  `scheduler.store.opt_out_spool`), when there are any; the unsubscribe routes also do so before
  each request, and delivery before each run.
- A store still down is logged once per outage (WARNING); the replay logs what it recorded,
  and a spool folder that cannot be read is an ERROR each time.
- Nothing here stops the web service: every error is logged and tried again.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError

from scheduler.store.opt_out_spool import REPLAY_EVERY
from scheduler.web.pages import WebContext
from scheduler.web.unsubscribe import replay_waiting

log = logging.getLogger("appreciate.web")


class Replays:
    """The replaying thread for `context`, from `start()` (or `with`) until `stop()`."""

    def __init__(self, context: WebContext, every: float = REPLAY_EVERY) -> None:
        self.context = context
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opt-out replays", daemon=True)
        self._store_down = False

    def start(self) -> Replays:
        if self.context.spool is not None:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> Replays:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def once(self) -> None:
        """One replay (see the module's rules)."""
        try:
            replay_waiting(self.context)
        except SQLAlchemyError as error:
            if not self._store_down:
                log.warning(
                    "opt-outs wait for the store, which cannot take them yet (%s); trying "
                    "again every %g s",
                    type(error).__name__,
                    self.every,
                )
            self._store_down = True
            return
        self._store_down = False

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.once()
