"""Reading what came back from a real IMAP server (a private Dovecot on loopback), on both
databases: every new message recorded once; what a mail system wrote moved to the processed
folder, a person's words left where the owner reads mail, still unread, marked; nothing
deleted, nothing the owner has read touched; a line dropped mid-read, a store that is locked and
a message delivered twice leave exactly one record each; a message the server gives no content
for (a proxy turns its content into NIL) is said once and left for the owner."""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import trustme
from imapclient import IMAPClient
from sqlalchemy import Engine, select

from scheduler.clock import FixedClock
from scheduler.inbound.imap_poll import Mailbox, PollReport, poll_mailbox
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import Workspace, run_cli
from tests.dovecot_server import PASSWORD, Dovecot, DovecotUnavailable, private_dovecot
from tests.test_delivery import state
from tests.test_inbound import LATER, RULES, SentNote, send_one
from tests.test_inbound_reading import RECIPIENT, corpus
from tests.test_locked_store import Blocker

inbound_messages = metadata.tables["inbound_messages"]
USER = "bounces"
CLOCK = FixedClock(LATER)
NOW = LATER.isoformat()


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    try:
        with private_dovecot() as server:
            yield server
    except DovecotUnavailable as error:
        pytest.skip(f"no IMAP server for these tests: {error}")


@pytest.fixture
def mailbox(dovecot: Dovecot, request: pytest.FixtureRequest) -> Mailbox:
    """A mailbox of this test's own on the shared server."""
    user = f"u{abs(hash(request.node.nodeid)) % 10**9}"
    dovecot.maildir(user)
    return Mailbox("127.0.0.1", dovecot.port, "none", user, PASSWORD)


def answer(name: str, sent: SentNote, message_id: str = "") -> bytes:
    raw = corpus(name, tag=sent.tag, message_id=sent.message_id)
    raw = raw.replace(RECIPIENT.encode(), sent.address.encode())
    if message_id:  # a message of its own (its Message-ID), about the same note
        raw = raw.replace(
            b"Message-ID: <CAF=reply-english-0001@mail.gmail.example>", message_id.encode()
        )
    return raw


def inbox_flags(dovecot: Dovecot, mailbox: Mailbox) -> list[set[bytes]]:
    """The flags of each message left in the INBOX, as the owner's mail app sees them."""
    with IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10) as client:
        client.login(mailbox.user, PASSWORD)
        client.select_folder("INBOX", readonly=True)
        found = client.fetch(client.search(["ALL"]), [b"FLAGS"])
    return [set(found[uid][b"FLAGS"]) - {b"\\Recent"} for uid in sorted(found)]


def recorded(engine: Engine) -> list[tuple[str, int | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(inbound_messages.c.kind, inbound_messages.c.touch_id).order_by(
                inbound_messages.c.id
            )
        ).all()
    return [(row.kind, row.touch_id) for row in rows]


def test_every_new_message_is_recorded_once_and_only_machine_mail_is_moved(
    engine: Engine, dovecot: Dovecot, mailbox: Mailbox
) -> None:
    sent = send_one(engine, "C-1")
    other = send_one(engine, "C-2")
    dovecot.deliver(mailbox.user, answer("postfix_dsn_user_unknown.eml", sent))
    dovecot.deliver(mailbox.user, answer("reply_english.eml", other))
    dovecot.deliver(mailbox.user, b"garbage that is no message")
    report = poll_mailbox(engine, mailbox, RULES, CLOCK)
    assert (report.read, report.moved, report.marked, report.problem) == (3, 1, 2, None)
    assert report.recorded == {"bounce": 1, "reply": 1, "unmatched": 1}
    assert state(engine, sent.touch_id)["status"] == "bounced"
    assert state(engine, other.touch_id)["replied_at"] == LATER
    assert len(dovecot.messages(mailbox.user, "processed")) == 1
    assert inbox_flags(dovecot, mailbox) == [{b"$Appreciated"}, {b"$Appreciated"}]  # unread
    again = poll_mailbox(engine, mailbox, RULES, CLOCK)
    assert (again.read, again.problem) == (0, None)
    assert len(recorded(engine)) == 3


def test_mail_the_owner_has_already_read_is_left_alone(
    engine: Engine, dovecot: Dovecot, mailbox: Mailbox
) -> None:
    sent = send_one(engine)
    dovecot.deliver(mailbox.user, answer("postfix_dsn_user_unknown.eml", sent), seen=True)
    report = poll_mailbox(engine, mailbox, RULES, CLOCK)
    assert (report.read, report.problem) == (0, None)
    assert state(engine, sent.touch_id)["status"] == "sent"
    assert inbox_flags(dovecot, mailbox) == [{b"\\Seen"}]


def test_a_message_delivered_twice_is_recorded_once(
    engine: Engine, dovecot: Dovecot, mailbox: Mailbox
) -> None:
    sent = send_one(engine)
    reply = answer("reply_english.eml", sent)
    dovecot.deliver(mailbox.user, reply)
    dovecot.deliver(mailbox.user, reply)
    report = poll_mailbox(engine, mailbox, RULES, CLOCK)
    assert report.recorded == {"reply": 1, "duplicate": 1}
    assert recorded(engine) == [("reply", sent.touch_id)]
    assert inbox_flags(dovecot, mailbox) == [{b"$Appreciated"}, {b"$Appreciated"}]


class CuttingProxy:
    """A loopback proxy to the IMAP server that drops both lines as soon as the client sends
    a command containing `cut_at` (once), as a network or a crash would."""

    def __init__(self, port: int, cut_at: bytes) -> None:
        self.target = port
        self.cut_at = cut_at
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]

    def serve(self) -> None:
        with self.listener:
            while not self.cut.is_set():
                try:
                    client, _ = self.listener.accept()
                except OSError:
                    return
                server = socket.create_connection(("127.0.0.1", self.target))
                threading.Thread(target=self._pipe, args=(server, client), daemon=True).start()
                threading.Thread(
                    target=self._pipe, args=(client, server, True), daemon=True
                ).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, watch: bool = False) -> None:
        with suppress(OSError):
            while chunk := source.recv(65536):
                if watch and not self.cut.is_set() and self.cut_at in chunk.upper():
                    self.cut.set()
                    break
                sink.sendall(chunk)
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    @contextmanager
    def running(self) -> Iterator[int]:
        thread = threading.Thread(target=self.serve, daemon=True)
        thread.start()
        try:
            yield self.port
        finally:
            self.cut.set()
            self.listener.close()
            thread.join(timeout=5)


class NilBodyProxy:
    """A loopback proxy to the IMAP server that answers `BODY[] NIL` for the content of each
    message holding `marker` (as a server does for a message it cannot produce) and, with
    `keywords` False, takes `\\*` out of PERMANENTFLAGS (a server that stores no keywords);
    everything else passes as the server said it."""

    def __init__(self, port: int, marker: bytes, *, keywords: bool = True) -> None:
        self.target = port
        self.marker = marker
        self.keywords = keywords
        self.fetches = 0
        """How many messages the server sent content for, or the proxy NIL for, in all."""
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]

    def serve(self) -> None:
        with self.listener:
            while True:
                try:
                    client, _ = self.listener.accept()
                except OSError:
                    return
                server = socket.create_connection(("127.0.0.1", self.target))
                threading.Thread(target=self._answers, args=(server, client), daemon=True).start()
                threading.Thread(target=self._commands, args=(client, server), daemon=True).start()

    def _commands(self, client: socket.socket, server: socket.socket) -> None:
        with suppress(OSError):
            while chunk := client.recv(65536):
                server.sendall(chunk)
        _hang_up(client, server)

    def _answers(self, server: socket.socket, client: socket.socket) -> None:
        """The server's answers, a line (and the literal it announces) at a time."""
        reader = server.makefile("rb")
        with suppress(OSError):
            while line := reader.readline():
                if not self.keywords and b"PERMANENTFLAGS" in line:
                    line = line.replace(b" \\*", b"")
                announced = re.search(rb"BODY\[\] \{(\d+)\}\r\n$", line)
                if announced is None:
                    client.sendall(line)
                    continue
                self.fetches += 1
                content = reader.read(int(announced.group(1)))
                if self.marker in content:
                    client.sendall(line[: announced.start()] + b"BODY[] NIL")
                else:
                    client.sendall(line + content)
        _hang_up(server, client)

    @contextmanager
    def running(self) -> Iterator[int]:
        thread = threading.Thread(target=self.serve, daemon=True)
        thread.start()
        try:
            yield self.port
        finally:
            self.listener.close()
            thread.join(timeout=5)


def _hang_up(*ends: socket.socket) -> None:
    for end in ends:
        with suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
        end.close()


HELD_BACK = b"X-Test-Held-Back: yes"
HELD_MESSAGE = b"Subject: kept by the server\r\n" + HELD_BACK + b"\r\n\r\nHello.\r\n"


def uid_of(dovecot: Dovecot, mailbox: Mailbox, header: bytes) -> int:
    """The UID of the INBOX's message with the header `Name: value`."""
    name, value = header.decode().split(": ")
    with IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10) as client:
        client.login(mailbox.user, PASSWORD)
        client.select_folder("INBOX", readonly=True)
        (uid,) = client.search(["HEADER", name, value])
    return int(uid)


def test_a_message_the_server_gives_no_content_for_is_said_once_and_left_for_the_owner(
    engine: Engine, dovecot: Dovecot, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A message whose content came back NIL was skipped without a word, and asked for again
    at every poll, for ever. Now a warning names the mailbox, the folder and the UID, the poll
    counts it, and it is marked $Appreciated (not asked for again) but left where the owner
    reads mail, unread and unmoved."""
    sent = send_one(engine)
    dovecot.deliver(mailbox.user, answer("reply_english.eml", sent))
    dovecot.deliver(mailbox.user, HELD_MESSAGE)
    uid = uid_of(dovecot, mailbox, HELD_BACK)
    proxy = NilBodyProxy(dovecot.port, HELD_BACK)
    with proxy.running() as port, caplog.at_level(logging.WARNING, "appreciate.inbound"):
        first = poll_mailbox(engine, replace(mailbox, port=port), RULES, CLOCK)
        second = poll_mailbox(engine, replace(mailbox, port=port), RULES, CLOCK)
    assert (first.read, first.recorded, first.unreadable, first.problem) == (
        1,
        {"reply": 1},
        1,
        None,
    )
    assert first.line() == (
        "inbound: 1 messages read (1 reply); 1 unreadable (the server gave no content for "
        "it): left in the mailbox"
    )
    assert first.came_back() == {"reply": 1, "unreadable": 1}
    assert (second.read, second.unreadable, second.problem) == (0, 0, None)
    assert proxy.fetches == 2  # each message asked for once
    assert [record.getMessage() for record in caplog.records] == [
        f"inbound: the mail server gave no content for message UID {uid} in INBOX of "
        f"{mailbox.user} at 127.0.0.1 (BODY[] NIL): it is not read, and is left there for you "
        "to open in a mail program; marked $Appreciated so it is not asked for again"
    ]
    assert recorded(engine) == [("reply", sent.touch_id)]
    assert inbox_flags(dovecot, mailbox) == [{b"$Appreciated"}, {b"$Appreciated"}]  # unread
    assert dovecot.messages(mailbox.user, "processed") == []
    assert len(dovecot.messages(mailbox.user)) == 2


def test_run_once_shows_a_message_the_server_gave_no_content_for(
    migrated_workspace: Workspace, dovecot: Dovecot
) -> None:
    """What `appreciate run --once` (and so the service's log and `status`) shows."""
    user = f"w{abs(hash(str(migrated_workspace.path))) % 10**9}"
    dovecot.maildir(user)
    dovecot.deliver(user, HELD_MESSAGE)
    (migrated_workspace.folder / "imap-password").write_text(PASSWORD, encoding="utf-8")
    proxy = NilBodyProxy(dovecot.port, HELD_BACK)
    with proxy.running() as port:
        with migrated_workspace.path.open("a", encoding="utf-8") as config:
            config.write(
                f'\n[inbound]\nimap_host = "127.0.0.1"\nimap_port = {port}\n'
                f'imap_security = "none"\nimap_user = "{user}"\n'
                'imap_password_file = "imap-password"\n'
            )
        done = run_cli("--config", migrated_workspace.path, "run", "--once", "--now", NOW)
    assert done.exit_code == 0, done.stderr
    assert "came back: unreadable" in done.stdout
    assert f"gave no content for message UID 1 in INBOX of {user} at 127.0.0.1" in done.stderr
    assert "inbound: 0 messages read (nothing); 1 unreadable" in done.stderr


def test_without_keywords_a_message_with_no_content_stays_unread_and_is_said_each_poll(
    engine: Engine, dovecot: Dovecot, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that stores no keywords cannot be told the message was seen without marking it
    read for the owner too: it is left unmarked, and each poll says so again."""
    dovecot.deliver(mailbox.user, HELD_MESSAGE)
    proxy = NilBodyProxy(dovecot.port, HELD_BACK, keywords=False)
    with proxy.running() as port, caplog.at_level(logging.WARNING, "appreciate.inbound"):
        polls = [poll_mailbox(engine, replace(mailbox, port=port), RULES, CLOCK) for _ in "ab"]
    assert [(poll.read, poll.unreadable, poll.problem) for poll in polls] == [(0, 1, None)] * 2
    assert len(caplog.records) == 2
    assert "asked for again at each poll (the server takes no keywords" in caplog.text
    assert inbox_flags(dovecot, mailbox) == [set()]
    assert recorded(engine) == []


@pytest.mark.parametrize(
    "cut_at", [b" FETCH ", b" MOVE ", b" STORE "], ids=["reading", "moving", "marking"]
)
def test_a_line_dropped_mid_poll_loses_nothing_and_records_nothing_twice(
    engine: Engine, dovecot: Dovecot, mailbox: Mailbox, cut_at: bytes
) -> None:
    sent = send_one(engine)
    dovecot.deliver(mailbox.user, answer("reply_english.eml", sent))
    dovecot.deliver(mailbox.user, answer("postfix_dsn_user_unknown.eml", sent))
    proxy = CuttingProxy(dovecot.port, cut_at)
    with proxy.running() as port:
        cut = poll_mailbox(engine, replace(mailbox, port=port), RULES, CLOCK)
    assert cut.problem is not None
    assert cut.problem.startswith("the mail server")
    left = inbox_flags(dovecot, mailbox)  # what was not finished: there, to be read again
    assert left
    assert all(b"$Appreciated" not in flags for flags in left)
    again = poll_mailbox(engine, mailbox, RULES, CLOCK)
    assert again.problem is None
    assert sorted(kind for kind, _ in recorded(engine)) == ["bounce", "reply"]
    assert len(dovecot.messages(mailbox.user, "processed")) == 1  # the bounce
    assert inbox_flags(dovecot, mailbox) == [{b"$Appreciated"}]  # the reply, still unread


def test_a_locked_store_ends_the_poll_and_the_next_one_records_each_message_once(
    engine: Engine, dovecot: Dovecot, mailbox: Mailbox, database_url: str
) -> None:
    sent = send_one(engine)
    dovecot.deliver(mailbox.user, answer("reply_english.eml", sent))
    impatient = create_store_engine(database_url, busy_timeout=0.3)
    blocker = Blocker(database_url)
    try:
        blocker.hold()
        locked = poll_mailbox(impatient, mailbox, RULES, CLOCK)
        blocker.let_go()
        assert locked.problem is not None
        assert locked.problem.startswith("the store")
        assert locked.recorded == {}
        assert len(dovecot.messages(mailbox.user)) == 1
        freed = poll_mailbox(impatient, mailbox, RULES, CLOCK)
    finally:
        blocker.close()
        impatient.dispose()
    assert freed.recorded == {"reply": 1}
    assert recorded(engine) == [("reply", sent.touch_id)]


def test_a_server_that_cannot_be_reached_or_refuses_the_login_says_so(
    engine: Engine, dovecot: Dovecot, mailbox: Mailbox
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    unreachable = poll_mailbox(
        engine,
        Mailbox("127.0.0.1", closed, "none", "x", "y", timeout=timedelta(seconds=2)),
        RULES,
        CLOCK,
    )
    assert unreachable.problem is not None
    assert unreachable.problem.startswith(f"cannot reach 127.0.0.1:{closed}")
    refused = poll_mailbox(
        engine, Mailbox("127.0.0.1", dovecot.port, "none", mailbox.user, "wrong"), RULES, CLOCK
    )
    assert refused.problem is not None
    assert "wrong" not in refused.problem  # the password never shows


def test_starttls_required_but_not_offered_is_never_a_plaintext_login(
    engine: Engine, dovecot: Dovecot, mailbox: Mailbox
) -> None:
    report: PollReport = poll_mailbox(engine, replace(mailbox, security="starttls"), RULES, CLOCK)
    assert report.problem is not None
    assert report.read == 0


def test_a_mailbox_over_tls_with_a_private_authority(engine: Engine, tmp_path: Path) -> None:
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    authority.cert_pem.write_to_path(str(ca_file))
    try:
        with private_dovecot(certificate=(cert, key)) as server:
            sent = send_one(engine)
            server.deliver(USER, answer("reply_english.eml", sent))
            secure = Mailbox("127.0.0.1", server.port, "tls", USER, PASSWORD, ca_file=str(ca_file))
            read = poll_mailbox(engine, secure, RULES, CLOCK)
            untrusted = poll_mailbox(engine, replace(secure, ca_file=None), RULES, CLOCK)
    except DovecotUnavailable as error:
        pytest.skip(f"no IMAP server for this test: {error}")
    assert (read.problem, read.recorded) == (None, {"reply": 1})
    assert untrusted.problem is not None
    assert "certificate" in untrusted.problem.lower()
