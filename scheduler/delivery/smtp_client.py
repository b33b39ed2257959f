"""One connection to the owner's mail server, and what became of each message sent on it.

Rules (the outcome of one attempt):
- 250 after the message: `sent`, with the server's reply.
- A 4xx reply, a refused connection, a timeout or a disconnect before the message was handed
  over: `retry` (the note is tried again later). So is a reply that is not the one expected
  (354 to MAIL), and one to MAIL, RCPT or DATA that is no SMTP reply at all (garbage, too
  long): then the line is dropped, since what follows on it cannot be trusted. So is a reply
  that came with more than was asked before the message (a 250 in the same packet as DATA's
  354 or EHLO's reply: it would be taken for the message's answer); see `_in_step`.
- A reply to the message that came with more (a reply too many): the note keeps that reply,
  and the next note goes on a new line, never reading what was left over as its own answer.
- A 4xx reply that says the server is limiting us rather than refusing this note (see
  `is_throttling`): `throttled`; the sender slows down as a whole.
- A 5xx reply: `failed` at once, with the reply.
- 530/535 (authentication): `auth`; sending pauses for every note until the owner acts. So
  does a server that offers no login we can make while `[smtp] username` is set.
- A server that does not offer STARTTLS when `security = "starttls"`: `insecure`; sending
  pauses too. Never a silent downgrade to plain text.
- A greeting that is not 220 (an SSH or POP3 server, "554 no service"): `bad_greeting`, naming
  host, port and what it said; sending pauses too. A 4xx greeting (a busy server, "421 too many
  connections") is temporary, as any 4xx. A 5xx to EHLO or STARTTLS ("554 client host
  rejected") is `bad_greeting` too: the session is refused, and no note fails with it.
- A disconnect, a timeout or a reply that cannot be read (garbage, or no SMTP reply code) after
  the message's final "." was sent: `unknown` (the server may have taken it); the line is
  dropped, and the note never resent by itself.
- An address that needs SMTPUTF8 on a server without it: `held`, with the reason.
- An unexpected error while sending (a bug here or in aiosmtplib): see `abandon`.

When the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go in one write and their
three replies are read in order (see `pipelining`); the outcome is the one the same replies give
one command at a time: the first refusal (MAIL's or RCPT's, not the 503 DATA then gets), and the
transaction reset. A 354 to DATA after a refusal is answered by "." alone (an empty message),
never by the note. 421, garbage, a reply that puts the server out of step (354 to MAIL) or a
lost line there drops the line. Without PIPELINING, one command at a time, as always.

The DATA step is done in two halves (the DATA command through aiosmtplib's public command API,
or pipelined, then the message through its protocol's write and read), so a lost line is known
to be before or after the final ".". Certificates are always validated.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass
from typing import Literal, NamedTuple

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectResponseError,
    SMTPException,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from aiosmtplib.protocol import COMMAND_INJECTION_REGEX
from aiosmtplib.response import SMTPResponse

from scheduler.delivery.pipelining import PipelinedReplies, taken_over
from scheduler.notes.message import BuiltMessage

OutcomeStatus = Literal[
    "sent", "retry", "throttled", "failed", "auth", "insecure", "bad_greeting", "unknown", "held"
]
AUTH_CODES = (530, 534, 535, 538)
QUIT_WITHIN = 5.0
"""Seconds a polite goodbye may take before the line is simply closed."""
SHOWN_ANSWER = 80
"""At most this many characters of what a server answered are quoted in a reason."""
_MALFORMED = "Malformed SMTP response line:"
"""How aiosmtplib's message for a line without a reply code begins (the line follows)."""
_THROTTLING_STATUS = re.compile(r"4\.(?:7\.\d{1,3}|3\.2|4\.5)(?!\.?\d)")
_THROTTLING_WORDS = re.compile(
    r"too much mail|too many|rate[ -]?limit|throttl|slow(?:ing)? down|try again later",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Outcome:
    status: OutcomeStatus
    reply: str
    code: int | None = None
    """The server's reply code when the outcome is its reply (None: no reply, e.g. a lost
    line, or a reply that was no SMTP reply)."""


def is_throttling(code: int, message: str) -> bool:
    """Whether a temporary (4xx) reply says the server is limiting this sender rather than
    refusing this one note: 421 (closing the line), an enhanced status code 4.7.x (policy, such
    as Postfix's rate limits), 4.3.2 (not accepting mail) or 4.4.5 (congestion), or words such
    as "too much mail", "too many", "rate limit", "throttl...", "slow down", "try again
    later". Other 4xx replies ("450 4.2.2 mailbox full") concern one note only."""
    if not 400 <= code < 500:
        return False
    if code == 421:
        return True
    return bool(_THROTTLING_STATUS.match(message.lstrip()) or _THROTTLING_WORDS.search(message))


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


def _is_reply_code(code: int) -> bool:
    """A code a server may send (aiosmtplib reports a line it cannot read as -1)."""
    return 200 <= code < 600


def _classify(code: int, reply: str) -> Outcome:
    """The outcome of a reply that refuses, before the message was handed over."""
    if code in AUTH_CODES:
        return Outcome("auth", reply, code)
    if 400 <= code < 500:
        message = reply.removeprefix(str(code))
        return Outcome("throttled" if is_throttling(code, message) else "retry", reply, code)
    if 500 <= code < 600:
        return Outcome("failed", reply, code)
    return Outcome("retry", f"unexpected reply: {reply}", code)


def _not_understood(error: SMTPResponseException) -> Outcome:
    """A line that is no SMTP reply (garbage, too long) before the message: the line is
    dropped by the caller, and the note tried again later."""
    return Outcome("retry", f"the server's reply could not be understood: {_said(error)}")


def _said(error: SMTPResponseException) -> str:
    """What the server answered, quoted (see `shown`), for a reason a person reads."""
    if error.message.startswith(_MALFORMED):
        return shown(error.message.removeprefix(_MALFORMED))
    if _is_reply_code(error.code):
        return shown(_reply(error))
    return f"no SMTP reply ({error.message})"


def shown(text: str, limit: int = SHOWN_ANSWER) -> str:
    """`text` from the other end, quoted for a reason or a log line: control characters
    (escape sequences, line breaks, bidi overrides) escaped, at most `limit` characters."""
    quoted = repr(text.strip()[: limit * 4])[1:-1]
    cut = quoted[:limit] + "..." if len(quoted) > limit else quoted
    return f'"{cut}"'


def _shut(smtp: aiosmtplib.SMTP, transport: asyncio.BaseTransport | None = None) -> None:
    """Close the line at once: its transport (`transport`, else the one `smtp` holds) is
    aborted, so its socket is closed on the event loop's next turn. A plain close would first
    trade TLS close_notify messages with the server, and a loop that stops meanwhile (the end
    of `appreciate send`) would leave the socket open."""
    line = transport or smtp.transport
    if isinstance(line, asyncio.Transport):
        line.abort()
    smtp.close()


def _in_step(smtp: aiosmtplib.SMTP | None) -> bool:
    """Whether nothing came with the last reply read beyond it. aiosmtplib reads one reply per
    command and keeps what came after it in the same packet for the next command (its
    `_buffer`: it has no public way to see it), so a server that says more than it was asked
    (a 250 before the message was sent, a reply too many after it) would have each later reply
    taken for the wrong command: such a line is out of step."""
    protocol = smtp.protocol if smtp is not None else None
    return protocol is None or not protocol._buffer


def _lost_before(error: BaseException) -> Outcome:
    return Outcome("retry", f"connection lost before the message was sent: {error}")


def _broken_before(error: BaseException | None) -> Outcome:
    """A pipelined envelope whose replies broke off (garbage, a lost line) or ran on (`None`:
    more than was asked), before any refusal: the note is tried again later."""
    if isinstance(error, SMTPResponseException):
        return _not_understood(error)
    if error is None:
        return Outcome("retry", "the server said more than was asked before the message")
    return _lost_before(error)


class _Step(NamedTuple):
    """One command of the envelope and the replies that let the next go ahead (a named tuple:
    two are made for every note)."""

    command: bytes
    arguments: tuple[bytes, ...]
    wanted: tuple[int, ...]

    @property
    def line(self) -> bytes:
        """The command as written to the line, as aiosmtplib would write it (refusing control
        characters, as its `execute_command` does)."""
        for argument in self.arguments:
            if COMMAND_INJECTION_REGEX.search(argument):
                raise ValueError("Command arg contains a prohibited control character")
        return b" ".join((self.command, *self.arguments)) + b"\r\n"


def _envelope_steps(message: BuiltMessage) -> tuple[_Step, _Step, _Step]:
    """MAIL (with SMTPUTF8 when the message needs it), RCPT and DATA. The addresses were
    validated when the message was built: sent as they are (UTF-8 only with SMTPUTF8), without
    aiosmtplib re-parsing them for every note."""
    options = (b"SMTPUTF8",) if message.smtputf8 else ()
    return (
        _Step(b"MAIL", (f"FROM:<{message.mail_from}>".encode(), *options), (250,)),
        _Step(b"RCPT", (f"TO:<{message.rcpt_to}>".encode(),), (250, 251)),
        _DATA,
    )


_DATA = _Step(b"DATA", (), (354,))


@dataclass(frozen=True)
class _Exchange:
    """The replies read to a pipelined envelope, each with its command, and whether every
    command got one (if not, `broken` or a reply that took the server out of step says why)."""

    answered: tuple[tuple[_Step, SMTPResponse], ...]
    complete: bool
    broken: BaseException | None = None
    """Garbage, a lost line or a timeout where the next reply should have been."""

    @property
    def refusal(self) -> SMTPResponse | None:
        """The first reply that is not the one its command wanted."""
        return next((reply for step, reply in self.answered if reply.code not in step.wanted), None)

    @property
    def can_go_on(self) -> bool:
        """Whether the line is fit for RSET: every reply came, and none ended the line."""
        return self.complete and all(
            _leaves_line_in_step(reply, step.wanted) for step, reply in self.answered
        )

    @property
    def data_accepted(self) -> bool:
        """Whether DATA (the last command) got 354, so the server waits for a message."""
        return self.complete and self.answered[-1][1].code == 354


def _leaves_line_in_step(reply: SMTPResponse, wanted: tuple[int, ...]) -> bool:
    """Whether the server still reads commands after this reply: the one wanted, or a refusal
    other than 421 (which closes the line). Another reply (354 to MAIL) means the server is
    not where the commands already written expect it."""
    return reply.code in wanted or (400 <= reply.code < 600 and reply.code != 421)


async def _read_replies(
    line: PipelinedReplies, steps: tuple[_Step, ...], timeout: float
) -> _Exchange:
    """The replies to `steps`, in order, each within `timeout`; the reading stops at a reply
    after which the server is no longer reading commands (see `_leaves_line_in_step`), or at
    the first that cannot be read."""
    answered: list[tuple[_Step, SMTPResponse]] = []
    for step in steps:
        try:
            reply = await line.reply(timeout)
        except (SMTPException, OSError) as error:
            return _Exchange(tuple(answered), complete=False, broken=error)
        answered.append((step, reply))
        if not _leaves_line_in_step(reply, step.wanted):
            return _Exchange(tuple(answered), complete=len(answered) == len(steps))
    return _Exchange(tuple(answered), complete=True)


class SmtpConnection:
    """A connection opened on first use and reused for message after message."""

    def __init__(self, server: ServerSettings) -> None:
        self.server = server
        self._smtp: aiosmtplib.SMTP | None = None
        self._written = False
        """Whether the message being sent was written to the line (so it may have gone)."""

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
            problem = await self._greeted(smtp) or await self._secured(smtp)
        except asyncio.CancelledError:
            _shut(smtp)
            raise
        if problem is not None:
            _shut(smtp)
            return problem
        self._smtp = smtp
        return None

    async def _greeted(self, smtp: aiosmtplib.SMTP) -> Outcome | None:
        """The connection (with TLS when `security = "tls"`) and the server's greeting."""
        server = self.server
        try:
            await smtp.connect()
        except SMTPResponseException as error:  # a reply, but not 220, or no SMTP reply at all
            if isinstance(error, SMTPConnectResponseError) and 400 <= error.code < 500:
                return _classify(error.code, _reply(error))  # busy, or too many connections
            return Outcome(
                "bad_greeting",
                f"{server.host}:{server.port} did not greet like a mail server: it answered "
                f"{_said(error)} instead of 220; check [smtp] host, port and security",
            )
        except (SMTPException, OSError) as error:
            return self._unreachable(error)
        return None

    async def _secured(self, smtp: aiosmtplib.SMTP) -> Outcome | None:
        """STARTTLS (when `security = "starttls"`), the login, and the server's extensions."""
        server = self.server
        try:
            if server.security == "starttls":
                await smtp.ehlo()
                if not smtp.supports_extension("starttls"):
                    return Outcome(
                        "insecure",
                        f"{server.host}:{server.port} does not offer STARTTLS, and security is "
                        '"starttls": refusing to send in plain text',
                    )
                await smtp.starttls()
            problem = await self._logged_in(smtp)
            if problem is None and smtp.is_ehlo_or_helo_needed:  # SMTPUTF8 known before MAIL
                await smtp.ehlo()
        except SMTPAuthenticationError as error:
            return Outcome("auth", f"login as {server.username} refused: {_reply(error)}")
        except SMTPResponseException as error:
            return self._refused_session(error)
        except (SMTPException, OSError) as error:
            return self._unreachable(error)
        return problem

    def _refused_session(self, error: SMTPResponseException) -> Outcome:
        """A reply to EHLO or STARTTLS that is not the one wanted: garbage is `retry` (see
        `_not_understood`), a 4xx temporary as any; a 5xx (but 530/535) refuses this sender
        or this session, not a note, so it is `bad_greeting`: sending pauses, and no note
        fails with it."""
        server = self.server
        if not _is_reply_code(error.code):
            return _not_understood(error)
        if 500 <= error.code < 600 and error.code not in AUTH_CODES:
            return Outcome(
                "bad_greeting",
                f"{server.host}:{server.port} refused the session: it answered {_said(error)} "
                "before any note; check [smtp] host, port and security",
            )
        return _classify(error.code, _reply(error))

    async def _logged_in(self, smtp: aiosmtplib.SMTP) -> Outcome | None:
        """The login, when [smtp] username is set. A server that offers no login aiosmtplib
        can make (no AUTH, or only mechanisms other than PLAIN, LOGIN and CRAM-MD5) is `auth`
        as a refused login is: trying again cannot help."""
        server = self.server
        if not server.username:
            return None
        if smtp.is_ehlo_or_helo_needed:
            await smtp.ehlo()
        if not smtp.supported_auth_methods:
            offered = shown(" ".join(smtp.server_auth_methods).upper() or "no AUTH")
            return Outcome(
                "auth",
                f"{server.host}:{server.port} offers no login appreciate can make ({offered}), "
                "and [smtp] username is set; check [smtp] port and security",
            )
        await smtp.login(server.username, server.password or "")
        return None

    def _unreachable(self, error: BaseException) -> Outcome:
        server = self.server
        tls = _tls_failure(error)
        if tls is not None:
            return Outcome("insecure", f"TLS with {server.host} failed: {tls}")
        return Outcome("retry", f"could not connect to {server.host}:{server.port}: {error}")

    async def send(self, message: BuiltMessage) -> Outcome:
        """Send one message (see the module's rules for the outcome). A send that is cancelled
        (a stop that cannot wait) closes the line at once: it is mid-command, unfit for reuse,
        and a goodbye on it would wait for the server."""
        try:
            return await self._send(message)
        except asyncio.CancelledError:
            self._drop()
            raise

    def abandon(self, error: BaseException) -> Outcome:
        """After an unexpected error in `send` (a bug here or in aiosmtplib): the line is
        dropped, and the outcome is `unknown` if the message had been written to it (it may
        have gone), else `retry`."""
        self._drop()
        what = f"{type(error).__name__}: {error}"
        if self._written:
            return Outcome("unknown", f"unexpected error once the message was handed over: {what}")
        return Outcome("retry", f"unexpected error before the message was handed over: {what}")

    async def _send(self, message: BuiltMessage) -> Outcome:
        self._written = False
        if not _in_step(self._smtp):  # more came with the last note's reply: a new line
            self._drop()
        if not self.is_open:
            problem = await self._open()
            if problem is not None:
                return problem
        smtp = self._smtp
        if smtp is None:
            return Outcome("retry", f"no connection to {self.server.host}")
        if not _in_step(smtp):  # more came with the greeting or EHLO's reply
            self._drop()
            return _broken_before(None)
        if message.smtputf8 and not smtp.supports_extension("smtputf8"):
            return Outcome(
                "held",
                f"the address needs SMTPUTF8 (non-ASCII), which {self.server.host} does not offer",
            )
        return await self._envelope(smtp, message)

    async def _envelope(self, smtp: aiosmtplib.SMTP, message: BuiltMessage) -> Outcome:
        """MAIL, RCPT and DATA: a refusal or a lost line here is before the message. Pipelined
        when the server offers PIPELINING (see `_pipelined`), else one command at a time."""
        steps = _envelope_steps(message)
        if smtp.supports_extension("pipelining"):
            return await self._pipelined(smtp, message, steps)
        try:
            for step in steps:
                reply = await smtp.execute_command(step.command, *step.arguments)
                if reply.code not in step.wanted:
                    return await self._refused(reply.code, f"{reply.code} {reply.message}")
        except SMTPResponseException as error:
            if not _is_reply_code(error.code):  # garbage: what follows on the line is suspect
                self._drop()
                return _not_understood(error)
            return await self._refused(error.code, _reply(error))
        except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as error:
            self._drop()
            return _lost_before(error)
        return await self._hand_over(smtp, message)

    async def _pipelined(
        self, smtp: aiosmtplib.SMTP, message: BuiltMessage, steps: tuple[_Step, ...]
    ) -> Outcome:
        """RFC 2920: MAIL, RCPT and DATA in one write, then their replies, read in order.
        All 250/251 and DATA's 354: the message follows. Else the outcome is the first reply
        that refuses, as one command at a time would have it, and the transaction is reset;
        DATA's 354 after a refusal (a server that takes DATA with no recipient) is ended by a
        "." alone, an empty message, never by the note. The line is dropped instead when it
        cannot go on: 421, a reply no command could get (garbage, 354 to MAIL: the server is
        out of step), more than was asked, or a lost line. Garbage or a lost line before any
        refusal is `retry`, as in `_envelope`."""
        protocol = smtp.protocol
        if protocol is None:
            self._drop()
            return Outcome("retry", "connection lost before the message was sent")
        try:
            async with taken_over(protocol) as line:
                protocol.write(b"".join(step.line for step in steps))
                exchange = await _read_replies(line, steps, self.server.timeout)
                out_of_step = line.left_over
        except (SMTPServerDisconnected, OSError) as error:  # closed before the write
            self._drop()
            return _lost_before(error)
        refusal = exchange.refusal
        said = f"{refusal.code} {refusal.message}" if refusal else ""  # as in `_envelope`
        if refusal is None:
            if exchange.broken is not None or out_of_step:
                self._drop()
                return _broken_before(exchange.broken)
            return await self._hand_over(smtp, message)
        if exchange.broken is not None or out_of_step or not exchange.can_go_on:
            self._drop()
            return _classify(refusal.code, said)
        if exchange.data_accepted:
            await self._end_empty_message(smtp)
        return await self._refused(refusal.code, said)

    async def _end_empty_message(self, smtp: aiosmtplib.SMTP) -> None:
        """DATA was accepted although the envelope was refused: "the client SMTP should send a
        single dot" (RFC 2920, 3.1); its reply is read and ignored. The line is dropped if that
        fails."""
        protocol = smtp.protocol
        try:
            if protocol is None:
                raise SMTPServerDisconnected("Connection lost")
            protocol.write(b".\r\n")
            await protocol.read_response(timeout=self.server.timeout)
        except (SMTPException, OSError):
            self._drop()

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
        if not _in_step(smtp):  # more came with DATA's 354: a reply to a message not yet sent
            self._drop()
            return _broken_before(None)
        try:
            self._written = True
            protocol.write(data)
            reply = await protocol.read_response(timeout=self.server.timeout)
        except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as error:
            self._drop()
            return Outcome("unknown", f"connection lost after the message was handed over: {error}")
        except SMTPResponseException as error:  # a line that is no SMTP reply (garbage)
            self._drop()
            return Outcome(
                "unknown",
                f"the server's reply to the message could not be understood: {_said(error)}",
            )
        return await self._answered(reply)

    async def _answered(self, reply: SMTPResponse) -> Outcome:
        """The outcome of the server's reply to the message: 250 sent, 4xx or 5xx refused,
        anything else `unknown` (the line is dropped)."""
        text = f"{reply.code} {reply.message}".strip()
        if reply.code == 250:
            return Outcome("sent", text, reply.code)
        if 400 <= reply.code < 600:
            return await self._refused(reply.code, text)
        self._drop()
        return Outcome("unknown", f"unexpected reply to the message: {shown(text)}", reply.code)

    async def _refused(self, code: int, reply: str) -> Outcome:
        """The server said no: reset the transaction so the connection can go on (a 421, or a
        code no server sends, ends the line instead)."""
        if code == 421 or not _is_reply_code(code):
            self._drop()
        elif self._smtp is not None:
            try:
                await self._smtp.rset()
            except (SMTPException, OSError):
                self._drop()
        return _classify(code, reply)

    def _drop(self) -> None:
        if self._smtp is not None:
            _shut(self._smtp)
        self._smtp = None

    async def close(self) -> None:
        """Say goodbye politely when the line still works (within QUIT_WITHIN seconds); the
        line is closed in any case, also when the goodbye is cancelled."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        transport = smtp.transport  # aiosmtplib forgets it once the goodbye is said
        try:
            if smtp.is_connected:
                await smtp.quit(timeout=min(self.server.timeout, QUIT_WITHIN))
        except (SMTPException, OSError):
            pass
        finally:
            _shut(smtp, transport)
        await asyncio.sleep(0)  # the aborted line's socket is closed on this turn of the loop
