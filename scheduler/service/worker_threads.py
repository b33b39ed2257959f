"""The service's worker threads: a stop never waits for them.

Rules:
- Each call (`asyncio.to_thread`: a detection, a value refresh, a mailbox poll, a reload's
  checks) runs in a daemon thread of its own, so the event loop runs on meanwhile.
- Neither the event loop's end nor the process's exit waits for one still running (the
  standard pool joins its threads at both): once the daemon has stopped, the process exits,
  and the store rolls back what such a job had not committed (the next run does it again).
- Jobs run one of each at a time (the timer's `max_instances=1`), so threads stay few.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class UnwaitedThreads(ThreadPoolExecutor):
    """An executor for the daemon's event loop (see the module's rules). A ThreadPoolExecutor
    only because asyncio takes no other as its default; none of its pool's threads is made."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:  # handed to whoever awaits it
                future.set_exception(error)
            else:
                future.set_result(result)

        threading.Thread(target=work, name="appreciate-worker", daemon=True).start()
        return future
