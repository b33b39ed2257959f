"""Reading what came back from an IMAP mailbox: every new message in `[inbound] folder` is
recorded (`record.InboundRecorder`), then put out of the way or marked as read by appreciate.

Rules:
- Only new mail is read: messages not \\Seen and not marked `$Appreciated`. The mailbox may
  be a dedicated one (the return path's) or the business's own: nothing the owner has read,
  and nothing appreciate has handled, is read again.
- Mail is never deleted. What a mail system wrote and appreciate acted on (a bounce, a
  complaint, an automatic reply: `MOVED`) is moved to `processed_folder` (made when missing;
  with the server's MOVE, RFC 6851; a server without it gets them marked \\Seen and
  `$Appreciated`). A person's words (a reply, a "please stop", a message that matched no note)
  stay where the owner reads mail, marked `$Appreciated` but not \\Seen: still new to them.
- Nothing is lost and nothing is acted on twice: a message is moved or marked only after it
  is recorded; a connection lost mid-read, or a store that cannot be written, ends the poll
  with the reason, and what was not moved or marked is read again next time (and what was
  recorded already is then a duplicate, which changes nothing, and is moved or marked).
- Messages are fetched BATCH at a time with BODY.PEEK[] (the bytes as the server holds them;
  nothing is marked seen by reading) and each batch is recorded in one transaction. A message
  that cannot be read is kept as `unmatched`, as every other path does.
- A message the server answers with no content (`BODY[] NIL`: one it cannot produce, or one
  another reader removed meanwhile) is not recorded, moved or marked \\Seen: it stays where
  the owner reads mail, marked `$Appreciated` so it is not asked for again, with a warning
  naming the mailbox, the folder and its UID, and is counted in `PollReport.unreadable`. A
  server that takes no keywords cannot be told: the message is left unmarked (still new to
  the owner) and is asked for, warned about and counted again at each poll.
- A message missing from the server's answer was taken meanwhile, by another reader: nothing
  is said.
- TLS as for SMTP: `tls` (implicit, 993) or `starttls` (required, never a plaintext
  fallback), certificates always checked (the system's authorities, or `imap_ca_file`);
  `none` only for a server on this machine.
- Synchronous (imapclient): the daemon runs it in a worker thread.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from scheduler.clock import Clock
from scheduler.config.file import Config
from scheduler.inbound.record import InboundRecorder, InboundRules

log = logging.getLogger("appreciate.inbound")

BATCH = 50
DONE_KEYWORD = "$Appreciated"
MOVED = frozenset({"bounce", "soft_bounce", "complaint", "auto_reply"})
"""What a mail system wrote (by what it was taken for): moved out of the owner's way."""


@dataclass(frozen=True)
class Mailbox:
    """Where to read: from `[inbound]`, with the password from its variable or file."""

    host: str
    port: int
    security: Literal["tls", "starttls", "none"]
    user: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    processed_folder: str = "processed"
    ca_file: str | None = None
    timeout: timedelta = timedelta(seconds=30)

    @classmethod
    def of(cls, config: Config) -> Mailbox | None:
        """The mailbox `[inbound]` names, or None without `imap_host`. Reads the password
        (a ConfigError naming the key when its variable or file is missing)."""
        inbound = config.settings.inbound
        if not inbound.imap_host:
            return None
        return cls(
            host=inbound.imap_host,
            port=inbound.port,
            security=inbound.imap_security,
            user=inbound.imap_user,
            password=config.imap_password() or "",
            folder=inbound.folder,
            processed_folder=inbound.processed_folder,
            ca_file=str(config.base_dir / inbound.imap_ca_file) if inbound.imap_ca_file else None,
            timeout=timedelta(seconds=inbound.timeout_seconds),
        )


@dataclass
class PollReport:
    """What one poll did."""

    read: int = 0
    recorded: Counter[str] = field(default_factory=Counter)
    """By what was done (bounce, reply, unmatched...; `duplicate` for a message seen before)."""
    moved: int = 0
    """Put in the processed folder (or marked read, without MOVE)."""
    marked: int = 0
    """Left in place, marked `$Appreciated`: a person's words, still new to the owner."""
    unreadable: int = 0
    """Messages the server gave no content for (`BODY[] NIL`): left in place, not recorded."""
    problem: str | None = None
    """Why the poll ended early (the server, the store); None when it read everything."""

    def line(self) -> str:
        done = ", ".join(f"{n} {kind}" for kind, n in sorted(self.recorded.items())) or "nothing"
        line = f"inbound: {self.read} messages read ({done})"
        if self.unreadable:
            them = "it" if self.unreadable == 1 else "them"
            line += (
                f"; {self.unreadable} unreadable (the server gave no content for {them}): "
                "left in the mailbox"
            )
        return f"{line}; stopped early: {self.problem}" if self.problem else line

    def came_back(self) -> Counter[str]:
        """What was recorded by kind, and `unreadable`: what a cycle's report shows."""
        back = Counter(self.recorded)
        if self.unreadable:
            back["unreadable"] = self.unreadable
        return back


def poll_mailbox(engine: Engine, mailbox: Mailbox, rules: InboundRules, clock: Clock) -> PollReport:
    """Record every message waiting in the mailbox (see the module's rules)."""
    report = PollReport()
    recorder = InboundRecorder(engine, rules)
    try:
        client = _connect(mailbox)
    except (OSError, IMAPClientError, ssl.SSLError) as error:
        report.problem = f"cannot reach {mailbox.host}:{mailbox.port}: {_said(error)}"
        return report
    try:
        _read_all(client, recorder, mailbox, clock, report)
    except (OSError, IMAPClientError, ssl.SSLError) as error:
        report.problem = f"the mail server: {_said(error)}"
    except SQLAlchemyError as error:
        report.problem = f"the store: {_said(getattr(error, 'orig', None) or error)}"
    finally:
        _close(client)
    return report


def _connect(mailbox: Mailbox) -> IMAPClient:
    timeout = mailbox.timeout.total_seconds()
    context = ssl.create_default_context(cafile=mailbox.ca_file)
    if mailbox.security == "tls":
        client = IMAPClient(
            mailbox.host, port=mailbox.port, ssl=True, ssl_context=context, timeout=timeout
        )
    else:
        client = IMAPClient(mailbox.host, port=mailbox.port, ssl=False, timeout=timeout)
    try:
        if mailbox.security == "starttls":
            client.starttls(context)  # raises when not offered: never a plaintext fallback
        client.login(mailbox.user, mailbox.password)
    except BaseException:
        _close(client)
        raise
    return client


def _read_all(
    client: IMAPClient,
    recorder: InboundRecorder,
    mailbox: Mailbox,
    clock: Clock,
    report: PollReport,
) -> None:
    can_move = client.has_capability("MOVE")
    if can_move and not client.folder_exists(mailbox.processed_folder):
        client.create_folder(mailbox.processed_folder)
    selected = client.select_folder(mailbox.folder)
    keywords = b"\\*" in selected.get(b"PERMANENTFLAGS", ())
    waiting = client.search(["UNSEEN", "UNKEYWORD", DONE_KEYWORD] if keywords else ["UNSEEN"])
    for start in range(0, len(waiting), BATCH):
        chunk = waiting[start : start + BATCH]
        fetched = client.fetch(chunk, [b"BODY.PEEK[]"])
        # A message missing from the answer was taken meanwhile, by another reader.
        done = [uid for uid in chunk if isinstance(fetched.get(uid, {}).get(b"BODY[]"), bytes)]
        empty = [uid for uid in chunk if uid in fetched and uid not in done]
        raws = [fetched[uid][b"BODY[]"] for uid in done]
        machine: list[int] = []
        person: list[int] = []
        for uid, recorded in zip(done, recorder.record_many(raws, clock.now()), strict=True):
            report.recorded[recorded.kind] += 1
            (machine if recorded.seen_as in MOVED else person).append(uid)
        report.read += len(done)
        if machine and can_move:
            client.move(machine, mailbox.processed_folder)
        elif machine:
            client.add_flags(machine, [b"\\Seen", DONE_KEYWORD.encode()])
        if person and keywords:
            client.add_flags(person, [DONE_KEYWORD.encode()])
        report.moved += len(machine)
        report.marked += len(person) if keywords else 0
        if empty:
            _set_aside(client, mailbox, empty, keywords=keywords)
            report.unreadable += len(empty)


def _set_aside(client: IMAPClient, mailbox: Mailbox, uids: list[int], *, keywords: bool) -> None:
    """Warn about each message the server gave no content for and, where the server takes
    keywords, mark it `$Appreciated` so it is not asked for again (see the module's rules)."""
    if keywords:
        client.add_flags(uids, [DONE_KEYWORD.encode()])
        then = f"marked {DONE_KEYWORD} so it is not asked for again"
    else:
        then = "asked for again at each poll (the server takes no keywords to mark it with)"
    for uid in uids:
        log.warning(
            "inbound: the mail server gave no content for message UID %d in %s of %s at %s "
            "(BODY[] NIL): it is not read, and is left there for you to open in a mail "
            "program; %s",
            uid,
            mailbox.folder,
            mailbox.user,
            mailbox.host,
            then,
        )


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except (OSError, IMAPClientError, ssl.SSLError):
        with suppress(OSError, IMAPClientError):
            client.shutdown()


def _said(error: BaseException) -> str:
    if isinstance(error, socket.timeout | TimeoutError):
        return "no answer in time"
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]
