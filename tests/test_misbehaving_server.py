"""A mail server that misbehaves (garbage instead of a reply, a greeting from something that is
no mail server) and a bug while sending: each fails only what it must, and the run goes on.
Real servers: aiosmtpd, or a raw asyncio server for what aiosmtpd cannot say."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import pytest
from aiosmtplib.protocol import SMTPProtocol
from sqlalchemy import Engine

from scheduler.config.settings import Settings
from scheduler.delivery.deliver import REPLY_KEPT, SendReport
from tests.smtp_servers import WAIT, Scripted, line_server, running
from tests.test_delivery import SETTINGS, add_due, run, sender_for, server, state

GARBAGE = "Hello? This is not SMTP"


def with_smtp(**changes: Any) -> Settings:
    """SETTINGS with these [smtp] keys changed."""
    return SETTINGS.model_copy(update={"smtp": SETTINGS.smtp.model_copy(update=changes)})


# Garbage where a reply should be ----------------------------------------------------------------


def test_garbage_after_the_message_makes_that_note_unknown_and_keeps_every_other_outcome(
    engine: Engine,
) -> None:
    """Four notes are at the end of DATA on four connections at once; one gets garbage, the
    others 250, 552 and 451; the fifth is never sent (the run is stopped meanwhile)."""
    garbled, accepted, too_big, later, never = (add_due(engine, f"C-{n}") for n in range(5))
    scripted = Scripted(
        data={
            "c-0@example.com": GARBAGE,
            "c-2@example.com": "552 5.3.4 Message too big",
            "c-3@example.com": "451 4.3.0 Temporary lookup failure",
        },
        together=4,
    )

    async def send_then_stop(port: int) -> SendReport:
        sender = sender_for(
            engine, replace(server(port), timeout=WAIT), config=with_smtp(connections=4)
        )
        delivery = asyncio.create_task(sender.run())
        assert await asyncio.to_thread(scripted.all_in.wait, WAIT)
        sender.stop("the test stopped the run")
        scripted.release.set()
        return await delivery

    with running(scripted) as port:
        report = asyncio.run(send_then_stop(port))

    assert report.counts == {"unknown": 1, "sent": 1, "failed": 1, "pending": 2}
    note = state(engine, garbled)
    assert note["status"] == "unknown"
    assert f'could not be understood: "{GARBAGE}"' in note["reason"]
    assert "may have gone out" in note["reason"]
    assert state(engine, accepted)["status"] == "sent"
    assert state(engine, too_big)["status"] == "failed"
    assert state(engine, too_big)["last_reply"] == "552 5.3.4 Message too big"
    waiting = state(engine, later)
    assert (waiting["status"], waiting["attempts"]) == ("pending", 1)
    assert "451 4.3.0 Temporary lookup failure" in waiting["reason"]
    untouched = state(engine, never)
    assert (untouched["status"], untouched["attempts"]) == ("pending", 0)
    assert untouched["reason"] == "not sent: the test stopped the run"
    assert [r.rcpt_tos for r in scripted.received] == [["c-1@example.com"]]


def test_the_line_that_gave_garbage_is_dropped_and_the_next_notes_go_on_a_new_one(
    engine: Engine,
) -> None:
    garbled, *others = (add_due(engine, f"C-{n}") for n in range(3))
    scripted = Scripted(data={"c-0@example.com": GARBAGE})
    with running(scripted) as port:
        report = run(engine, server(port), config=with_smtp(connections=1))
    assert report.counts == {"unknown": 1, "sent": 2}
    assert state(engine, garbled)["status"] == "unknown"
    assert {state(engine, touch_id)["status"] for touch_id in others} == {"sent"}
    first, *after = (scripted.peers[f"c-{n}@example.com"] for n in range(3))
    assert first not in after  # the line was not used again after the garbage


@pytest.mark.parametrize("command", [b"MAIL", b"RCPT", b"DATA"])
def test_garbage_before_the_message_is_a_temporary_failure(engine: Engine, command: bytes) -> None:
    ids = [add_due(engine, f"C-{n}") for n in range(2)]
    answers = {command: f"{GARBAGE}\r\n".encode()}
    with line_server(b"220 mail.example ESMTP\r\n", answers) as port:
        report = run(engine, server(port), config=with_smtp(connections=1))
    assert report.counts == {"pending": 2}
    for touch_id in ids:
        note = state(engine, touch_id)
        assert (note["status"], note["attempts"]) == ("pending", 1)
        assert f'the server\'s reply could not be understood: "{GARBAGE}"' in note["reason"]
        assert note["retry_at"] is not None


# A greeting from something that is no mail server ----------------------------------------------


@pytest.mark.parametrize(
    ("greeting", "shown"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n", '"SSH-2.0-OpenSSH_9.2"'),
        (b"+OK POP3 ready\r\n", '"+OK POP3 ready"'),
        (b"554 5.7.1 No SMTP service here\r\n", '"554 5.7.1 No SMTP service here"'),
    ],
    ids=["ssh", "pop3", "554"],
)
def test_a_server_that_does_not_greet_like_a_mail_server_pauses_sending(
    engine: Engine, greeting: bytes, shown: str
) -> None:
    ids = [add_due(engine, f"C-{n}") for n in range(3)]
    with line_server(greeting) as port:
        report = run(engine, server(port))
        again = run(engine, server(port))
    assert report.paused == (
        f"127.0.0.1:{port} did not greet like a mail server: it answered {shown} instead of "
        "220; check [smtp] host, port and security"
    )
    assert again.paused == report.paused  # for every instance, until the owner resumes
    assert not again.counts
    for touch_id in ids:
        note = state(engine, touch_id)
        assert (note["status"], note["attempts"]) == ("pending", 0)  # no attempt lost


def test_what_a_strange_server_said_is_escaped_and_cut_short(engine: Engine) -> None:
    add_due(engine, "C-1")
    greeting = b"\x1b]0;owned\x07\x1b[2J\xe2\x80\xae" + b"A" * 5000 + b"\r\n"
    with line_server(greeting) as port:
        report = run(engine, server(port))
    assert report.paused is not None
    assert '"\\x1b]0;owned\\x07\\x1b[2J\\u202eAAAA' in report.paused
    assert "\x1b" not in report.paused
    assert "\u202e" not in report.paused
    assert 'AAA..." instead of 220' in report.paused
    assert len(report.paused) < 250


@pytest.mark.parametrize(
    ("answers", "security", "said"),
    [
        (
            {b"EHLO": b"554 5.7.1 Client host rejected\r\n"},
            "none",
            "554 5.7.1 Client host rejected",
        ),
        ({b"EHLO": b"502 5.5.2 Error: command not recognized\r\n"}, "none", "502 5.5.2 Error"),
        (
            {b"EHLO": b"250-mail.example\r\n250 STARTTLS\r\n", b"STARTTLS": b"502 5.5.1 No\r\n"},
            "starttls",
            "502 5.5.1 No",
        ),
    ],
    ids=["ehlo-554", "ehlo-502", "starttls-502"],
)
def test_a_server_that_refuses_the_session_pauses_sending(
    engine: Engine, answers: dict[bytes, bytes], security: Any, said: str
) -> None:
    """A 5xx to EHLO or STARTTLS refuses this sender, not a note: no note fails with it."""
    ids = [add_due(engine, f"C-{n}") for n in range(3)]
    with line_server(b"220 mail.example ESMTP\r\n", answers) as port:
        report = run(engine, server(port, security))
    assert report.paused is not None
    assert report.paused.startswith(f'127.0.0.1:{port} refused the session: it answered "{said}')
    assert report.paused.endswith("check [smtp] host, port and security")
    for touch_id in ids:
        note = state(engine, touch_id)
        assert (note["status"], note["attempts"]) == ("pending", 0)


@pytest.mark.parametrize(
    ("ehlo", "offered"),
    [
        (b"250 mail.example\r\n", '"no AUTH"'),
        (b"250-mail.example\r\n250 AUTH GSSAPI\r\n", '"GSSAPI"'),
    ],
    ids=["no-auth", "gssapi-only"],
)
def test_a_server_that_offers_no_login_we_can_make_pauses_sending(
    engine: Engine, ehlo: bytes, offered: str
) -> None:
    """A username is set, but the server offers no login (a relay's port 25, or a login only
    after STARTTLS): retrying cannot help, so no attempt is spent."""
    ids = [add_due(engine, f"C-{n}") for n in range(2)]
    with line_server(b"220 mail.example ESMTP\r\n", {b"EHLO": ehlo}) as port:
        report = run(engine, server(port, username="ada", password="secret"))
    assert report.paused == (
        f"127.0.0.1:{port} offers no login appreciate can make ({offered}), and [smtp] "
        "username is set; check [smtp] port and security"
    )
    for touch_id in ids:
        note = state(engine, touch_id)
        assert (note["status"], note["attempts"]) == ("pending", 0)


# A bug while sending one note ---------------------------------------------------------------------


def test_an_unexpected_error_while_sending_fails_that_note_only(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """aiosmtplib (or this code) raising something nobody expected: before the message is
    written, the note is tried again later; once it is written, it may have gone (unknown).
    The other notes go out, and the run ends normally."""
    before = add_due(engine, "C-1", email="before@example.com")
    after = add_due(engine, "C-2", email="after@example.com")
    fine = [add_due(engine, f"C-{n}") for n in range(3, 7)]
    write = SMTPProtocol.write

    def buggy_write(self: SMTPProtocol, data: bytes) -> None:
        if data.startswith(b"RCPT") and b"before@example.com" in data:
            raise RuntimeError("a bug before the message")
        write(self, data)
        if data.endswith(b"\r\n.\r\n") and b"after@example.com" in data:
            raise RuntimeError("a bug once the message was written")

    monkeypatch.setattr(SMTPProtocol, "write", buggy_write)
    recorder = Scripted()
    with caplog.at_level(logging.ERROR, logger="appreciate.send"), running(recorder) as port:
        report = run(engine, server(port))

    assert report.counts == {"pending": 1, "unknown": 1, "sent": 4}
    waiting = state(engine, before)
    assert (waiting["status"], waiting["attempts"]) == ("pending", 1)
    assert "RuntimeError: a bug before the message" in waiting["reason"]
    unknown = state(engine, after)
    assert unknown["status"] == "unknown"
    assert "RuntimeError: a bug once the message was written" in unknown["reason"]
    assert {state(engine, touch_id)["status"] for touch_id in fine} == {"sent"}
    logged = {record.exc_info[1] for record in caplog.records if record.exc_info}
    assert {str(error) for error in logged} == {
        "a bug before the message",
        "a bug once the message was written",
    }


def test_a_reply_that_is_not_utf8_is_kept_with_escapes(engine: Engine) -> None:
    """ "Boîte inconnue" in Latin-1: the store cannot keep the undecodable byte as it is."""
    refused, fine = add_due(engine, "C-1"), add_due(engine, "C-2")
    answers = {b"RCPT": b"550 5.1.1 Bo\xeete inconnue\r\n"}
    with line_server(b"220 mail.example ESMTP\r\n", answers) as port:
        report = run(engine, server(port), config=with_smtp(connections=1))
    assert report.counts == {"failed": 2}
    for touch_id in (refused, fine):
        note = state(engine, touch_id)
        assert note["last_reply"] == "550 5.1.1 Bo\\udceete inconnue"


def test_a_reply_with_escapes_and_line_breaks_is_kept_and_logged_on_one_line(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A refusal on two lines, with a terminal's escape sequences: the sent-log keeps it and
    the service logs it as one line, each control character written as an escape."""
    touch_id = add_due(engine, "C-1")
    answers = {
        b"RCPT": b"550-5.1.1 \x1b[2J\x1b]0;owned\x07 no such user\r\n550 5.1.1 <3>forged\r\n"
    }
    with (
        caplog.at_level(logging.INFO, logger="appreciate.send"),
        line_server(b"220 mail.example ESMTP\r\n", answers) as port,
    ):
        report = run(engine, server(port))
    assert report.counts == {"failed": 1}
    kept = "550 5.1.1 \\x1b[2J\\x1b]0;owned\\x07 no such user 5.1.1 <3>forged"
    note = state(engine, touch_id)
    assert note["last_reply"] == kept
    assert note["reason"] == f"the server refused it: {kept}"
    (logged,) = (record.getMessage() for record in caplog.records)
    assert logged.endswith(f" failed: the server refused it: {kept}")


@pytest.mark.parametrize("command", [b"RCPT", b"."])
def test_a_reply_with_a_nul_byte_is_kept(engine: Engine, command: bytes) -> None:
    """PostgreSQL's text cannot hold NUL: the reply is kept with it escaped, and the other
    notes' outcomes are written too."""
    ids = [add_due(engine, f"C-{n}") for n in range(2)]
    code = b"550" if command == b"RCPT" else b"250"
    answers = {command: code + b" 5.0.0 nul\x00here\r\n"}
    with line_server(b"220 mail.example ESMTP\r\n", answers) as port:
        report = run(engine, server(port))
    assert report.counts == {"failed" if command == b"RCPT" else "sent": 2}
    for touch_id in ids:
        assert state(engine, touch_id)["last_reply"] == f"{code.decode()} 5.0.0 nul\\x00here"


@pytest.mark.parametrize("command", [b"RCPT", b"."])
def test_a_reply_of_many_kilobytes_is_kept_cut_short(
    engine: Engine, command: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Three continuation lines of 8,000 characters (about the most aiosmtplib reads as one
    reply), refusing the note or accepting it."""
    touch_id = add_due(engine, "C-1")
    code = b"550" if command == b"RCPT" else b"250"
    huge = b"".join(code + b"-" + b"A" * 8000 + b"\r\n" for _ in range(3)) + code + b" end\r\n"
    with (
        caplog.at_level(logging.INFO, logger="appreciate.send"),
        line_server(b"220 mail.example ESMTP\r\n", {command: huge}) as port,
    ):
        report = run(engine, server(port))
    assert report.counts == {"failed" if command == b"RCPT" else "sent": 1}
    kept = state(engine, touch_id)["last_reply"]
    assert kept == f"{code.decode()} {'A' * (REPLY_KEPT - 4)}..."
    assert len(state(engine, touch_id)["reason"] or "") < REPLY_KEPT + 100
    assert all(len(record.getMessage()) < REPLY_KEPT + 200 for record in caplog.records)


# A server that says more than it was asked ------------------------------------------------------

EHLO_WITH_PIPELINING = b"250-mail.example\r\n250 PIPELINING\r\n"
REJECTED = b"554 5.7.1 Message rejected\r\n"


@pytest.mark.parametrize(
    "extra",
    [
        {b"EHLO": b"250-mail.example\r\n250 PIPELINING\r\n250 2.0.0 Ok: queued\r\n"},
        {b"DATA": b"354 go ahead\r\n250 2.0.0 Ok: queued\r\n"},
        {b"EHLO": EHLO_WITH_PIPELINING, b"DATA": b"354 go ahead\r\n250 2.0.0 Ok: queued\r\n"},
    ],
    ids=["after-ehlo", "with-354", "with-354-pipelined"],
)
def test_a_250_that_came_before_the_message_is_not_taken_for_its_answer(
    engine: Engine, extra: dict[bytes, bytes]
) -> None:
    """The server sends a 250 in the same packet as an earlier reply (EHLO's, DATA's 354),
    then refuses the message: the note is not sent, and is tried again later."""
    ids = [add_due(engine, f"C-{n}") for n in range(3)]
    with line_server(b"220 mail.example ESMTP\r\n", {**extra, b".": REJECTED}) as port:
        report = run(engine, server(port), config=with_smtp(connections=1))
    assert report.counts == {"pending": 3}
    for touch_id in ids:
        note = state(engine, touch_id)
        assert (note["status"], note["attempts"]) == ("pending", 1)
        assert "the server said more than was asked before the message" in note["reason"]


@pytest.mark.parametrize(
    "ehlo", [b"250 mail.example\r\n", EHLO_WITH_PIPELINING], ids=["one-by-one", "pipelined"]
)
def test_a_reply_too_many_after_the_message_is_not_taken_for_the_next_note(
    engine: Engine, ehlo: bytes
) -> None:
    """Every message is refused, each refusal followed by a 250 that answers nothing: each
    note keeps its own refusal, none is taken for sent, and none is retried."""
    ids = [add_due(engine, f"C-{n}") for n in range(3)]
    answers = {b"EHLO": ehlo, b".": REJECTED + b"250 2.0.0 Ok: queued\r\n"}
    with line_server(b"220 mail.example ESMTP\r\n", answers) as port:
        report = run(engine, server(port), config=with_smtp(connections=1))
    assert report.counts == {"failed": 3}
    for touch_id in ids:
        assert state(engine, touch_id)["last_reply"] == "554 5.7.1 Message rejected"
