"""Real SMTP servers for delivery tests (aiosmtpd, in a thread of the test process).

`Recorder` keeps every message it accepts. `Faulty` answers one step (MAIL, RCPT or the end of
DATA) with a chosen reply, or hangs there, or drops the line there, for the first `times` messages
(then behaves). `Scripted` answers RCPT or the end of DATA per recipient, with any line (one that
is no SMTP reply too), and can hold its answers until several messages are in. `Throttling`
accepts a few messages, then refuses MAIL with a rate-limit reply while `throttling` is on. TLS
uses certificates from a throwaway CA (trustme); the client is given the CA's file, so
certificate validation stays on.

Every handler can offer PIPELINING (`pipelining=True`; aiosmtpd reads pipelined commands in
turn from its stream, but does not say it can), and keeps each chunk its server read
(`arrivals`): `pipelined_envelopes` counts the chunks that held MAIL, RCPT and DATA at once,
proof from the server's side that the client did not wait for a reply in between. `Lax` takes
DATA although RCPT was refused, as some servers do.

`line_server` is no SMTP server at all: it greets with any bytes (an SSH banner, POP3) and
answers each command from a script, on a raw asyncio server.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

Step = Literal["mail", "rcpt", "data"]
Action = Literal["reply", "hang", "drop"]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    options: list[str]
    arrived: float = field(default_factory=time.monotonic)
    """When the server had the whole message (monotonic clock)."""

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Recorder:
    """Accepts every message and keeps it."""

    received: list[Received] = field(default_factory=list)
    pipelining: bool = False
    """Whether EHLO offers PIPELINING."""
    arrivals: list[bytes] = field(default_factory=list)
    """Each chunk the server read from a client, in order (see `_Reading`)."""
    connections: int = 0
    """How many times a client said EHLO: once a connection without STARTTLS (aiosmtpd's
    controller opens one of its own to see that the server is up: it says nothing)."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.connections += 1
        if self.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    @property
    def pipelined_envelopes(self) -> int:
        """How many chunks held a MAIL, a RCPT and a DATA command together."""
        return sum(
            b"MAIL FROM:" in chunk and b"RCPT TO:" in chunk and b"DATA\r\n" in chunk
            for chunk in self.arrivals
        )

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.content,
                list(envelope.mail_options),
            )
        )
        return "250 2.0.0 Ok: queued"


@dataclass
class Faulty(Recorder):
    """Misbehaves at `step` for the first `times` messages, then accepts."""

    step: Step = "data"
    action: Action = "reply"
    reply: str = "451 4.3.0 Temporary lookup failure"
    times: int = 1_000_000
    faults: int = 0
    turned_away: list[bytes] = field(default_factory=list)
    """The messages refused at the end of DATA, as the server read them."""

    def _faulty(self) -> bool:
        return self.faults < self.times

    async def _misbehave(self, server: Any) -> str:
        self.faults += 1
        if self.action == "hang":
            await asyncio.Event().wait()  # never answers; the client's timeout ends it
        if self.action == "drop":
            server.transport.close()
            return "250 never heard"
        return self.reply

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.step == "mail" and self._faulty():
            return await self._misbehave(server)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.step == "rcpt" and self._faulty():
            return await self._misbehave(server)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.step == "data" and self._faulty():
            self.turned_away.append(envelope.content)
            return await self._misbehave(server)
        return await super().handle_DATA(server, session, envelope)


@dataclass
class Lax(Recorder):
    """Refuses RCPT with `reply` for the first `times` messages but takes DATA all the same
    (354), as a server does that checks recipients late; keeps what then comes in `received`
    too (an empty message, from a client that follows RFC 2920)."""

    reply: str = "550 5.1.1 No such user"
    times: int = 1
    refusals: int = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        envelope.rcpt_tos.append(address)  # aiosmtpd answers DATA only with a recipient
        if self.refusals < self.times:
            self.refusals += 1
            return self.reply
        return "250 OK"


WAIT = 30.0
"""Upper bound for a held answer (never a measured duration)."""


@dataclass
class Scripted(Recorder):
    """Answers RCPT (`rcpt`) or the end of DATA (`data`) with the line given for the recipient
    (any line: a reply, or garbage that is no SMTP reply); accepts the others. With `together`,
    the answers to the first `together` messages wait until they are all in (`all_in` is then
    set) and `release` is set, so they come while every connection is busy; later messages
    are answered at once."""

    rcpt: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] = field(default_factory=dict)
    together: int = 0
    all_in: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    peers: dict[str, Any] = field(default_factory=dict)
    """recipient -> the client's (host, port): which connection each message came on."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt:
            return self.rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        (recipient,) = envelope.rcpt_tos
        self.peers[recipient] = session.peer
        if len(self.peers) <= self.together:
            if len(self.peers) == self.together:
                self.all_in.set()
            await asyncio.to_thread(self.release.wait, WAIT)
        if recipient in self.data:
            return self.data[recipient]
        return await super().handle_DATA(server, session, envelope)


@dataclass
class Throttling(Recorder):
    """Lets the first `accept` messages in, then refuses every MAIL with `reply` while
    `throttling` is on (as Postfix's rate limits do); `refused` counts the refusals."""

    accept: int = 3
    reply: str = "450 4.7.1 Error: too much mail from 127.0.0.1"
    throttling: bool = True
    let_in: int = 0
    refused: int = 0

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.throttling and self.let_in >= self.accept:
            self.refused += 1
            return self.reply
        self.let_in += 1
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"


def _says_go_ahead(answer: bytes) -> bool:
    """Whether an answer to DATA holds a 354 line (a message follows)."""
    return any(line.startswith(b"354") for line in answer.splitlines())


@contextmanager
def line_server(greeting: bytes, answers: Mapping[bytes, bytes] | None = None) -> Iterator[int]:
    """A raw server on 127.0.0.1 that sends `greeting` on each connection, then answers each
    command line with `answers[VERB]` (`b"."`: the end of a message after DATA), else
    `250 OK` (`354` to DATA: a message follows when a line of the answer is 354); yields its
    port. It speaks no more SMTP than that."""
    script = {b"DATA": b"354 go ahead\r\n", **(answers or {})}

    sessions: set[asyncio.Task[Any]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            sessions.add(task)
        writer.write(greeting)
        in_message = False
        try:
            while line := await reader.readline():
                if in_message:
                    if line == b".\r\n":
                        in_message = False
                        writer.write(script.get(b".", b"250 2.0.0 Ok: queued\r\n"))
                    continue
                verb = line.split(maxsplit=1)[0].upper() if line.strip() else b""
                writer.write(script.get(verb, b"250 OK\r\n"))
                in_message = verb == b"DATA" and _says_go_ahead(script[b"DATA"])
                if verb == b"QUIT":
                    break
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["server"] = loop.run_until_complete(asyncio.start_server(serve, "127.0.0.1", 0))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(WAIT)
    server = holder["server"]
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:

        async def shut() -> None:
            server.close()
            for session in sessions:
                session.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut(), loop).result(WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        loop.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Certificates:
    server: ssl.SSLContext
    ca_file: Path


def certificates(directory: Path) -> Certificates:
    """A CA and a certificate for 127.0.0.1 and localhost, signed by it."""
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issued.configure_cert(server)
    ca_file = directory / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    return Certificates(server, ca_file)


def _accept(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.password == b"right"
    return AuthResult(success=ok, handled=False)


class _Reading(SMTP):
    """aiosmtpd's server, keeping each chunk it reads in its handler's `arrivals`."""

    def data_received(self, data: bytes) -> None:
        self.event_handler.arrivals.append(data)
        super().data_received(data)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _Reading(self.handler, **self.SMTP_kwargs)


@contextmanager
def running(
    handler: Recorder,
    *,
    tls: Literal["none", "starttls", "tls"] = "none",
    certs: Certificates | None = None,
    auth: bool = False,
    smtputf8: bool = True,
    port: int | None = None,
) -> Iterator[int]:
    """Serve `handler` on 127.0.0.1 (on `port`, else a free one) until the block ends; yields
    the port."""
    port = port or free_port()
    options: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
    if tls == "starttls":
        assert certs is not None
        options.update(tls_context=certs.server, require_starttls=True)
    if tls == "tls":
        assert certs is not None
        options["ssl_context"] = certs.server
    if auth:  # over TLS only, as a real server asks
        assert tls != "none", "a server asking for a login is tested over TLS"
        options.update(authenticator=_accept, auth_required=True)
    controller = _Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
