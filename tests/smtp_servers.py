"""Real SMTP servers for delivery tests (aiosmtpd, in a thread of the test process).

`Recorder` keeps every message it accepts. `Faulty` answers one step (MAIL, RCPT or the end of
DATA) with a chosen reply, or hangs there, or drops the line there, for the first `times` messages
(then behaves). TLS uses certificates from a throwaway CA (trustme); the client is given the
CA's file, so certificate validation stays on.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

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
    reply: str = "451 4.3.0 Try again later"
    times: int = 1_000_000
    faults: int = 0

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
            return await self._misbehave(server)
        return await super().handle_DATA(server, session, envelope)


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
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
