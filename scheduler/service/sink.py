"""A local SMTP sink: a mail server that accepts every message and delivers none.

It is for trying appreciate before pointing it at a real mail server: `appreciate demo` runs one
in-process, and `appreciate sink` runs one on its own so a real config can send to it
(`security = "none"`, host and port of the sink). Nothing is ever relayed: every message is
kept as one `.eml` file in the `new/` folder of a Maildir, byte for byte as it arrived, where
any mail program (or `mailbox.Maildir`) can read it.

The sink listens on a loopback address only, unless its caller explicitly allows otherwise: it
takes mail from anyone who can reach it, without a login.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import mailbox
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from scheduler.errors import AppreciateError

LOOPBACK = "127.0.0.1"
UNREADABLE = "(unreadable)"
NO_SUBJECT = "(no subject)"
MAILDIR_FOLDERS = ("tmp", "new", "cur")

logger = logging.getLogger(__name__)


class SinkError(AppreciateError):
    """The sink cannot start."""


class SinkAddressRefused(SinkError, ValueError):
    """An address the sink will not listen on (not loopback, or not an address at all)."""

    exit_code = 2

    def __init__(self, host: str, reason: str) -> None:
        self.host = host
        self.reason = reason
        super().__init__(f'the sink will not listen on "{host}": {reason}')


class SinkUnavailable(SinkError):
    """The sink's address cannot be used: the port is taken, not allowed, or similar."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        self.reason = reason
        super().__init__(f"the sink cannot listen on {host_port(host, port)}: {reason}")


class SinkFolderUnusable(SinkError):
    """The folder meant for the received messages cannot hold them."""

    exit_code = 2

    def __init__(self, folder: Path, reason: str) -> None:
        self.folder = folder
        self.reason = reason
        super().__init__(f"the sink cannot keep messages in {folder}: {reason}")


def host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class ReceivedNote:
    """One message the sink accepted: the envelope, the decoded subject and its file."""

    mail_from: str
    recipients: tuple[str, ...]
    subject: str
    path: Path


def read_subject(data: bytes) -> str:
    """The Subject header, decoded (RFC 2047 words, raw UTF-8); never raises."""
    try:
        parsed = message_from_bytes(data, policy=policy.default)
        subject = parsed["subject"]
        return NO_SUBJECT if subject is None else str(subject)
    except Exception:  # a malformed message is still kept; only its subject is unknown
        return UNREADABLE


def prepare_maildir(folder: Path) -> mailbox.Maildir:
    """A Maildir at `folder`, created if needed; refuses a folder of other files."""
    try:
        if folder.exists() and not folder.is_dir():
            raise SinkFolderUnusable(folder, "it is a file, not a folder")
        if (
            folder.is_dir()
            and any(folder.iterdir())
            and not all((folder / name).is_dir() for name in MAILDIR_FOLDERS)
        ):
            raise SinkFolderUnusable(
                folder, "it holds other files and is not a Maildir; choose a new or empty folder"
            )
        for name in MAILDIR_FOLDERS:
            (folder / name).mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise SinkFolderUnusable(folder, error.strerror or str(error)) from None
    return mailbox.Maildir(folder, create=False)


class Sink:
    """An aiosmtpd handler that accepts every message and keeps it as a file; relays nothing.

    Each message lands in `<maildir>/new/<unique name>.eml`. `on_message` is called (in the
    server's thread) after the file is written; if it raises, the error is logged and the
    message is still accepted.
    """

    def __init__(
        self, maildir: Path, on_message: Callable[[ReceivedNote], None] | None = None
    ) -> None:
        self.folder = maildir
        self._maildir = prepare_maildir(maildir)
        self._on_message = on_message
        self._lock = threading.Lock()
        self._count = 0

    @property
    def count(self) -> int:
        """How many messages this sink has kept."""
        with self._lock:
            return self._count

    def keep(self, mail_from: str, recipients: list[str], data: bytes) -> ReceivedNote:
        """Store one message's bytes as they are and describe it."""
        key = self._maildir.add(data)
        stored = self.folder / "new" / key
        path = stored.with_name(f"{key}.eml")
        os.replace(stored, path)
        with self._lock:
            self._count += 1
        return ReceivedNote(mail_from, tuple(recipients), read_subject(data), path)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook for the end of DATA: keep the message, then say so."""
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):  # only with decode_data=True, which the sink does not use
            data = data.encode("utf-8", "surrogateescape")
        try:
            note = self.keep(str(envelope.mail_from), list(envelope.rcpt_tos), data)
        except Exception:
            logger.exception("the sink could not store a message in %s", self.folder)
            return "451 4.3.0 The sink could not store the message"
        if self._on_message is not None:
            try:
                self._on_message(note)
            except Exception:
                logger.exception("the sink's on_message callback failed for %s", note.path)
        return f"250 2.0.0 Kept as {note.path.name} (nothing is relayed)"


@dataclass(frozen=True)
class SinkServer:
    """A running sink: the address it really listens on, and its handler."""

    host: str
    port: int
    sink: Sink

    @property
    def address(self) -> str:
        return host_port(self.host, self.port)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int, *, allow_remote: bool) -> socket.socket:
    """A socket bound to `host:port` (the first address, IPv4 first), not yet listening."""
    if not 0 <= port <= 65535:
        raise SinkAddressRefused(host, f"{port} is not a port number (0 to 65535)")
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        raise SinkAddressRefused(host, f"no such address ({error.strerror})") from None
    candidates = sorted(found, key=lambda info: info[0] != socket.AF_INET)
    if not allow_remote and not all(_is_loopback(str(info[4][0])) for info in candidates):
        raise SinkAddressRefused(
            host,
            "it is not a loopback address; a sink takes mail from anyone who reaches it, so it "
            "listens on this machine only (e.g. 127.0.0.1, ::1 or localhost)",
        )
    family, kind, protocol, _, address = candidates[0]
    listener = socket.socket(family, kind, protocol)
    try:
        if os.name == "posix":  # as asyncio does: restart at once on a port left in TIME_WAIT
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            reason = "the port is already in use (another sink or mail server?); pick another"
        elif isinstance(error, PermissionError):
            reason = "not allowed (ports below 1024 need special rights); pick another port"
        else:
            reason = error.strerror or str(error)
        raise SinkUnavailable(str(address[0]), port, reason) from None
    return listener


class _SocketController(Controller):
    """aiosmtpd's threaded controller, serving a socket bound beforehand.

    Binding first reports a taken port in the caller's thread, and gives the real port when
    port 0 (any free port) was asked for, without the race of probing for a free port.
    """

    def __init__(self, handler: Sink, listener: socket.socket) -> None:
        bound, port = listener.getsockname()[:2]
        reachable = bound
        if ipaddress.ip_address(bound.split("%", 1)[0]).is_unspecified:
            reachable = "::1" if listener.family == socket.AF_INET6 else LOOPBACK
        super().__init__(
            handler,
            hostname=reachable,  # where start() connects to check the server answers
            port=port,
            server_hostname="appreciate-sink",  # the greeting's name; no slow getfqdn()
            enable_SMTPUTF8=True,
        )
        self.listener = listener

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self.listener)


@contextmanager
def running_sink(
    maildir: Path,
    *,
    host: str = LOOPBACK,
    port: int = 0,
    on_message: Callable[[ReceivedNote], None] | None = None,
    allow_remote: bool = False,
) -> Iterator[SinkServer]:
    """Run a sink in a thread of its own until the block ends.

    `port=0` takes any free port; the yielded `SinkServer` tells the real one. A host that is
    not a loopback address is refused (`SinkAddressRefused`, a ValueError) unless
    `allow_remote=True`; a port that cannot be used raises `SinkUnavailable`.
    """
    listener = _listen(host, port, allow_remote=allow_remote)
    try:
        sink = Sink(maildir, on_message)
    except BaseException:
        listener.close()
        raise
    bound, real_port = listener.getsockname()[:2]
    controller = _SocketController(sink, listener)
    try:
        controller.start()
    except Exception as error:
        controller.stop(no_assert=True)
        if not controller.loop.is_closed():
            controller.loop.close()
        listener.close()
        raise SinkUnavailable(bound, real_port, f"the SMTP server did not start: {error}") from None
    try:
        yield SinkServer(bound, real_port, sink)
    finally:
        controller.stop()
