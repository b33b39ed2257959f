"""The replies to commands sent together (SMTP PIPELINING, RFC 2920), read in order.

aiosmtplib reads one reply per command written: bytes that arrive while a parsed reply waits to
be picked up are dropped, and a second reply in the same packet is left unread. So while the
replies to a pipelined group are read, `taken_over` puts `PipelinedReplies` in place of
aiosmtplib's protocol on the transport (asyncio's `set_protocol`, which TLS transports honour
too): it keeps every byte and splits it into replies as aiosmtplib would. Then aiosmtplib's
protocol gets the line back, for the message and whatever follows.

Rules:
- A reply is read as aiosmtplib reads one: 3-digit code, lines joined by "\\n", "NNN-" goes on.
- A line without a reply code, one longer than aiosmtplib's MAX_LINE_LENGTH, or replies
  piling up past its MAX_RESPONSE_LENGTH: `SMTPResponseException` with code -1 (garbage),
  with aiosmtplib's messages ("Malformed SMTP response line: ...", "Response too long").
- The line closing, or an end of file: `SMTPServerDisconnected`; no reply within the timeout:
  `SMTPReadTimeoutError`.
- Bytes beyond the replies asked for are `left_over` (a server that says more than it was
  asked: what follows on that line cannot be trusted).
- aiosmtplib's protocol still hears that the line closed (it forgets its transport) and is
  told when to pause writing; its command lock is held, so no command of its own comes
  between (aiosmtplib has no public way to hold it: `_command_lock`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiosmtplib import SMTPResponseException, SMTPServerDisconnected
from aiosmtplib.errors import SMTPReadTimeoutError
from aiosmtplib.protocol import MAX_LINE_LENGTH, MAX_RESPONSE_LENGTH, SMTPProtocol
from aiosmtplib.response import SMTPResponse

GARBAGE = -1
"""The code aiosmtplib gives a line that is no SMTP reply."""


def parse_reply(buffer: bytearray) -> SMTPResponse | None:
    """The first whole reply in `buffer`, removed from it; None while it is incomplete. Raises
    `SMTPResponseException(-1, ...)` for a line that is no reply (see the module's rules)."""
    code = GARBAGE
    lines: list[bytes] = []
    offset = 0
    while (end := buffer.find(b"\n", offset)) != -1:
        line = bytes(buffer[offset : end + 1])
        if len(line) > MAX_LINE_LENGTH:
            raise SMTPResponseException(GARBAGE, "Response too long")
        try:
            code = int(line[:3])
        except ValueError:
            text = line.decode("utf-8", errors="ignore")
            raise SMTPResponseException(GARBAGE, f"Malformed SMTP response line: {text}") from None
        offset += len(line)
        lines.append(line[4:].strip(b" \t\r\n"))
        if line[3:4] != b"-":
            del buffer[:offset]
            return SMTPResponse(code, b"\n".join(lines).decode("utf-8", "surrogateescape"))
    if len(buffer) > MAX_RESPONSE_LENGTH:
        raise SMTPResponseException(GARBAGE, "Response too long")
    return None


class PipelinedReplies(asyncio.Protocol):
    """Stands in for aiosmtplib's protocol `inner` on the transport (see the module's rules)."""

    def __init__(self, inner: SMTPProtocol) -> None:
        self._inner = inner
        self._buffer = bytearray()
        self._arrived = asyncio.Event()
        self._lost: SMTPServerDisconnected | None = None

    def data_received(self, data: bytes) -> None:
        self._buffer.extend(data)
        self._arrived.set()

    def eof_received(self) -> bool | None:
        self._lost = self._lost or SMTPServerDisconnected("Unexpected EOF received")
        self._arrived.set()
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = self._lost or SMTPServerDisconnected("Connection lost")
        self._arrived.set()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    @property
    def left_over(self) -> bool:
        """Whether bytes came beyond the replies read."""
        return bool(self._buffer)

    async def reply(self, timeout: float | None) -> SMTPResponse:
        """The next reply, waiting at most `timeout` seconds for it (see the module's rules)."""
        try:
            async with asyncio.timeout(timeout):
                while (found := parse_reply(self._buffer)) is None:
                    if self._lost is not None:
                        raise self._lost
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError as error:
            raise SMTPReadTimeoutError("Timed out waiting for server response") from error
        return found


@asynccontextmanager
async def taken_over(protocol: SMTPProtocol) -> AsyncIterator[PipelinedReplies]:
    """The line of `protocol` read by a `PipelinedReplies` for the block, holding aiosmtplib's
    command lock (no command of its own can come between); given back to `protocol`
    afterwards, unless it closed meanwhile. Raises `SMTPServerDisconnected` when the line is
    already closed."""
    lock, transport = protocol._command_lock, protocol.transport
    if lock is None or transport is None or transport.is_closing():
        raise SMTPServerDisconnected("Connection lost")
    async with lock:
        replies = PipelinedReplies(protocol)
        transport.set_protocol(replies)
        try:
            yield replies
        finally:
            if not transport.is_closing():
                transport.set_protocol(protocol)
