"""The fits run with one BLAS thread.

The BG/NBD and Gamma-Gamma fits are small (a few thousand collapsed rows, a few dozen
iterations): BLAS threads cost more to start and synchronise than they save, and on a busy
machine (a daemon sending notes, another process) a thread waiting for a core stalls every
step. `one_blas_thread()` limits the BLAS libraries numpy and scipy loaded to one thread while
it is entered, and puts the limit back afterwards (threadpoolctl: no I/O, only the libraries'
own thread settings). The libraries are looked up once, at the first fit.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController


@functools.cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Meanwhile, BLAS runs on one thread."""
    with _controller().limit(limits=1, user_api="blas"):
        yield
