"""One connection to the owner's mail server, and what became of each message sent on it.

Rules (the outcome of one attempt):
- 250 after the message: `sent`, with the server's reply.
- A 4xx reply, a refused connection, a timeout or a disconnect before the message was handed
  over: `retry` (the note is tried again later).
- A 5xx reply: `failed` at once, with the reply.
- 530/535 (authentication): `auth`; sending pauses for every note until the owner acts.
- A server that does not offer STARTTLS when `security = "starttls"`: `insecure`; sending
  pauses too. Never a silent downgrade to plain text.
- A disconnect or timeout after the message's final "." was sent: `unknown` (the server may
  have taken it); never resent by itself.
- An address that needs SMTPUTF8 on a server without it: `held`, with the reason.

The DATA step is done in two halves (the DATA command through aiosmtplib's public command API,
then the message through its protocol's write and read), so a lost line is known to be before or
after the final ".". Certificates are always validated.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Literal

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPException,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from scheduler.message import BuiltMessage

OutcomeStatus = Literal["sent", "retry", "failed", "auth", "insecure", "unknown", "held"]
AUTH_CODES = (530, 534, 535, 538)
QUIT_WITHIN = 5.0
"""Seconds a polite goodbye may take before the line is simply closed."""


@dataclass(frozen=True)
class Outcome:
    status: OutcomeStatus
    reply: str


@dataclass(frozen=True)
class ServerSettings:
    """Where and how to connect (the password already read from its env variable or file)."""

    host: str
    port: int
    security: Literal["starttls", "tls", "none"]
    username: str
    password: str | None
    timeout: float
    ca_file: str | None = None

    def tls_context(self) -> ssl.SSLContext:
        """Certificate and host name checks on, with the system's CAs (or `ca_file`)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


def _tls_failure(error: BaseException) -> BaseException | None:
    """The TLS error behind `error` (a certificate that does not verify, a failed handshake),
    looking through the exceptions aiosmtplib wraps it in."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reply(error: SMTPResponseException) -> str:
    return f"{error.code} {error.message}".strip()


def _classify(code: int, reply: str) -> Outcome:
    if code in AUTH_CODES:
        return Outcome("auth", reply)
    if 400 <= code < 500:
        return Outcome("retry", reply)
    return Outcome("failed", reply)


class SmtpConnection:
    """A connection opened on first use and reused for message after message."""

    def __init__(self, server: ServerSettings) -> None:
        self.server = server
        self._smtp: aiosmtplib.SMTP | None = None

    @property
    def is_open(self) -> bool:
        return self._smtp is not None and self._smtp.is_connected

    async def _open(self) -> Outcome | None:
        """Connect, secure and log in; None when ready, else the outcome for the message."""
        server = self.server
        smtp = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            timeout=server.timeout,
            use_tls=server.security == "tls",
            start_tls=False,
            tls_context=server.tls_context() if server.security != "none" else None,
        )
        try:
            await smtp.connect()
            if server.security == "starttls":
                await smtp.ehlo()
                if not smtp.supports_extension("starttls"):
                    smtp.close()
                    return Outcome(
                        "insecure",
                        f"{server.host}:{server.port} does not offer STARTTLS, and security is "
                        '"starttls": refusing to send in plain text',
                    )
                await smtp.starttls()
            if server.username:
                await smtp.login(server.username, server.password or "")
            if smtp.is_ehlo_or_helo_needed:  # the extensions (SMTPUTF8) are known before MAIL
                await smtp.ehlo()
        except asyncio.CancelledError:
            smtp.close()
            raise
        except SMTPAuthenticationError as error:
            smtp.close()
            return Outcome("auth", f"login as {server.username} refused: {_reply(error)}")
        except SMTPResponseException as error:
            smtp.close()
            return _classify(error.code, _reply(error))
        except (SMTPException, OSError) as error:
            smtp.close()
            tls = _tls_failure(error)
            if tls is not None:
                return Outcome("insecure", f"TLS with {server.host} failed: {tls}")
            return Outcome("retry", f"could not connect to {server.host}:{server.port}: {error}")
        self._smtp = smtp
        return None

    async def send(self, message: BuiltMessage) -> Outcome:
        """Send one message (see the module's rules for the outcome). A send that is cancelled
        (a stop that cannot wait) closes the line at once: it is mid-command, unfit for reuse,
        and a goodbye on it would wait for the server."""
        try:
            return await self._send(message)
        except asyncio.CancelledError:
            self._drop()
            raise

    async def _send(self, message: BuiltMessage) -> Outcome:
        if not self.is_open:
            problem = await self._open()
            if problem is not None:
                return problem
        smtp = self._smtp
        if smtp is None:
            return Outcome("retry", f"no connection to {self.server.host}")
        if message.smtputf8 and not smtp.supports_extension("smtputf8"):
            return Outcome(
                "held",
                f"the address needs SMTPUTF8 (non-ASCII), which {self.server.host} does not offer",
            )
        return await self._envelope(smtp, message)

    async def _envelope(self, smtp: aiosmtplib.SMTP, message: BuiltMessage) -> Outcome:
        """MAIL, RCPT and DATA: a refusal or a lost line here is before the message."""
        # The addresses were validated when the message was built: sent as they are (UTF-8
        # only with SMTPUTF8), without aiosmtplib re-parsing them for every note.
        options = [b"SMTPUTF8"] if message.smtputf8 else []
        sender = f"FROM:<{message.mail_from}>".encode()
        recipient = f"TO:<{message.rcpt_to}>".encode()
        try:
            mail = await smtp.execute_command(b"MAIL", sender, *options)
            if mail.code != 250:
                return await self._refused(mail.code, f"{mail.code} {mail.message}")
            rcpt = await smtp.execute_command(b"RCPT", recipient)
            if rcpt.code not in (250, 251):
                return await self._refused(rcpt.code, f"{rcpt.code} {rcpt.message}")
            start = await smtp.execute_command(b"DATA")
            if start.code != 354:
                return await self._refused(start.code, f"{start.code} {start.message}")
        except SMTPResponseException as error:
            return await self._refused(error.code, _reply(error))
        except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as error:
            self._drop()
            return Outcome("retry", f"connection lost before the message was sent: {error}")
        return await self._hand_over(smtp, message)

    async def _hand_over(self, smtp: aiosmtplib.SMTP, message: BuiltMessage) -> Outcome:
        """The message itself and its final "."; a lost line from here on is `unknown`."""
        protocol = smtp.protocol
        if protocol is None:
            self._drop()
            return Outcome("retry", "connection lost before the message was sent")
        data = message.data
        if data.startswith(b"."):
            data = b"." + data
        data = data.replace(b"\r\n.", b"\r\n..") + b".\r\n"
        try:
            protocol.write(data)
            reply = await protocol.read_response(timeout=self.server.timeout)
        except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as error:
            self._drop()
            return Outcome("unknown", f"connection lost after the message was handed over: {error}")
        text = f"{reply.code} {reply.message}".strip()
        if reply.code == 250:
            return Outcome("sent", text)
        return await self._refused(reply.code, text)

    async def _refused(self, code: int, reply: str) -> Outcome:
        """The server said no: reset the transaction so the connection can go on."""
        if code == 421:
            self._drop()
        elif self._smtp is not None:
            try:
                await self._smtp.rset()
            except (SMTPException, OSError):
                self._drop()
        return _classify(code, reply)

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
        self._smtp = None

    async def close(self) -> None:
        """Say goodbye politely when the line still works (within QUIT_WITHIN seconds); the
        line is closed in any case, also when the goodbye is cancelled."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if smtp.is_connected:
                await smtp.quit(timeout=min(self.server.timeout, QUIT_WITHIN))
        except (SMTPException, OSError):
            pass
        finally:
            smtp.close()
