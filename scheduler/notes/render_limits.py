"""How long one note may take to write, and what stops it early.

Rules:
- A note is written inside `note_limits(timeout, stop)`. Meanwhile the sandbox calls `check()`
  at every step a template can repeat without end (each `{% for %}` item, each call, attribute,
  operator and piece of output): past the deadline it raises RenderTimeout (a template problem:
  that note fails, with file and line); once `stop` is set it raises RenderStopped (not a
  problem of the note: appreciate is stopping, and the note goes back to the queue).
- `range` hands out at most RANGE_BUDGET numbers per note in all, so loops inside loops over
  `range` are cut short before they run long (`budgeted_range`).
- The text a note builds along the way (every string a filter, method or operator returns,
  kept or not) counts against BUILT_BUDGET characters (`spend`): one step is bounded by the
  sandbox's size checks, and this bounds many steps together, such as a filter mapped over a
  long list (`range(50000)|map('center', 50000)|list` would build 2.5 GB).
- Outside `note_limits` nothing is timed and `range` draws on a budget of its own per call.
The limits live in a context variable: each thread (a worker writing notes) has its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from time import monotonic

from jinja2.exceptions import SecurityError, TemplateError

RANGE_BUDGET = 100_000
"""Numbers `range` may hand out while one note is written."""
BUILT_BUDGET = 2_000_000
"""Characters of text one note may build along the way (40 times the largest note)."""
CHECK_EVERY = 32
"""Pieces of output written between two checks (loops and calls check at every step)."""
CLOCK_EVERY = 64
"""Checks between two looks at the clock and the stop flag."""


class RenderTimeout(TemplateError):
    """Writing the note took longer than `[templates] render_timeout`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(
            f"writing the note took longer than {seconds:g} s (`[templates] render_timeout`): "
            "a loop doing too much work?"
        )


class RenderStopped(Exception):
    """The note was being written when appreciate was asked to stop: it was left unwritten."""


@dataclass
class _Limits:
    range_left: int
    deadline: float | None
    seconds: float
    stop: threading.Event | None
    steps: int = 0
    """Steps left before the clock and the stop are looked at again (every CLOCK_EVERY)."""
    built: int = 0
    """Characters of text built so far."""

    def look(self) -> None:
        self.steps = CLOCK_EVERY
        if self.stop is not None and self.stop.is_set():
            raise RenderStopped
        if self.deadline is not None and monotonic() > self.deadline:
            raise RenderTimeout(self.seconds)


_limits: ContextVar[_Limits | None] = ContextVar("note_limits", default=None)


@contextmanager
def note_limits(
    timeout: float | None = None, stop: threading.Event | None = None
) -> Iterator[None]:
    """Meanwhile, templates run against one deadline `timeout` seconds away (None: no
    deadline), stop when `stop` is set, and draw `range` from one fresh budget."""
    deadline = None if timeout is None else monotonic() + timeout
    token = _limits.set(_Limits(RANGE_BUDGET, deadline, timeout or 0.0, stop))
    try:
        yield
    finally:
        _limits.reset(token)


def check() -> None:
    """Raise RenderStopped or RenderTimeout when the note must stop (see the module's rules).
    Called at every step a template takes, so it looks at the clock and the stop only every
    CLOCK_EVERY steps (a few microseconds of work apart)."""
    limits = _limits.get()
    if limits is not None:
        limits.steps -= 1
        if limits.steps <= 0:
            limits.look()


def spend(characters: int) -> None:
    """Count `characters` of text just built against the note's BUILT_BUDGET (see the
    module's rules); past it, a SecurityError (the note fails, with file and line)."""
    limits = _limits.get()
    if limits is None:
        return
    limits.built += characters
    if limits.built > BUILT_BUDGET:
        raise SecurityError(
            f"the note built more than {BUILT_BUDGET:,} characters of text along the way "
            "(a filter or method repeated over many items?)"
        )


def budgeted_range(*args: int) -> range:
    """`range`, drawing its length from the note's budget (see the module's rules)."""
    check()
    numbers = range(*args)
    try:
        size = len(numbers)
    except OverflowError:
        size = RANGE_BUDGET + 1
    limits = _limits.get()
    left = RANGE_BUDGET if limits is None else limits.range_left
    if size > left:
        raise SecurityError(
            f"range too big: a note may loop over at most {RANGE_BUDGET:,} numbers in all"
        )
    if limits is not None:
        limits.range_left -= size
    return numbers
