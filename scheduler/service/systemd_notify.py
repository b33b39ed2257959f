"""systemd `Type=notify` support, spoken directly over `$NOTIFY_SOCKET` (see sd_notify(3)).

Rules:

- Without `NOTIFY_SOCKET` (a terminal, a test, cron) every method does nothing, so the daemon
  runs the same everywhere. `NOTIFY_SOCKET` is a filesystem path, or `@name` for a socket in
  the abstract namespace (the `@` stands for a leading NUL byte); other forms are ignored.
- `WATCHDOG_USEC` asks for `WATCHDOG=1` at least that often; we ping every half of it. When
  `WATCHDOG_PID` is set to another process's id, the watchdog is not ours: no watchdog.
- `keep_alive` pings from the event loop itself, so a stuck loop stops pinging and systemd
  restarts the service. Reloading is `reloading()`, the reload, then `ready()` again.
- Sending never raises: a failure to notify must not bring the daemon down. The first failure
  is logged as a warning, later ones at debug level. One socket is kept open until `close()`.
- Messages carry state words and a one-line status; status text never holds a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping
from types import TracebackType

log = logging.getLogger("appreciate.systemd")

SEND_TIMEOUT = 1.0
"""Seconds a send may wait when systemd's queue is full, so the event loop is never held long."""
STATUS_MAX_BYTES = 1024
"""Status text is cut to this many bytes: systemd ignores datagrams longer than a page."""


class Notifier:
    """Tells systemd how the service is doing. Build one with `Notifier.from_environ`."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address: str | bytes | None = _socket_address(address)
        self._watchdog_usec = watchdog_usec if self._address is not None else None
        self._socket: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Notifier:
        """Read `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `env`."""
        return cls(env.get("NOTIFY_SOCKET") or None, _watchdog_usec(env))

    @property
    def enabled(self) -> bool:
        """Whether systemd is listening (`NOTIFY_SOCKET` was given in a form we speak)."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half of `WATCHDOG_USEC`), or None: no watchdog."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def ready(self) -> None:
        """Start-up (or a reload) is complete."""
        self._send("READY=1")

    def status(self, text: str) -> None:
        """A one-line status for `systemctl status`."""
        line = " ".join(text.replace("\0", "").splitlines()).strip()
        line = line.encode()[:STATUS_MAX_BYTES].decode(errors="ignore")
        self._send(f"STATUS={line}")

    def stopping(self) -> None:
        """Shutdown has begun."""
        self._send("STOPPING=1")

    def reloading(self) -> None:
        """A reload has begun; call `ready()` when it is done."""
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={now_usec}")

    def watchdog(self) -> None:
        """Still alive."""
        self._send("WATCHDOG=1")

    def close(self) -> None:
        """Close the socket (a later message opens a new one)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.settimeout(SEND_TIMEOUT)
            self._socket.sendto(message.encode(), self._address)
        except OSError as error:
            self._failed(error)

    def _failed(self, error: OSError) -> None:
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(level, "cannot notify systemd at %r: %s", self._address, error)


async def keep_alive(notifier: Notifier, stop: asyncio.Event) -> None:
    """Ping systemd's watchdog every `watchdog_interval` seconds until `stop` is set.

    Returns at once when there is no watchdog. Run it as a task on the daemon's event loop.
    """
    interval = notifier.watchdog_interval
    if interval is None:
        return
    while not stop.is_set():
        notifier.watchdog()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def _socket_address(value: str | None) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    log.warning("NOTIFY_SOCKET %r is not a path or an @abstract socket; not notifying", value)
    return None


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        usec = 0
    if usec <= 0:
        log.warning("WATCHDOG_USEC %r is not a positive number of microseconds; ignored", raw)
        return None
    return usec
