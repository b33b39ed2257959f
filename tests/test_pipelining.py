"""SMTP PIPELINING (RFC 2920): MAIL, RCPT and DATA go in one write when the server offers it,
and every outcome is the one sending them one by one gives. Real servers: aiosmtpd offering
PIPELINING (it reads pipelined commands in turn), and a raw server for replies aiosmtpd cannot
give; the server's own record says whether the three commands came in one chunk."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from aiosmtplib import SMTPResponseException
from aiosmtplib.protocol import SMTPProtocol
from sqlalchemy import Engine

from scheduler.delivery.pipelining import parse_reply
from tests.smtp_servers import Faulty, Lax, Received, Recorder, line_server, running
from tests.test_delivery import NOW, PIPELINING, add_due, run, server, state
from tests.test_misbehaving_server import GARBAGE, with_smtp

ONE_LINE = with_smtp(connections=1)
"""One connection, so the second note shows whether the line went on after the first."""
EHLO_WITH_PIPELINING = b"250-mail.example\r\n250 PIPELINING\r\n"


def notes(engine: Engine, count: int) -> list[int]:
    """`count` notes due now, one minute apart in the order they are claimed."""
    return [add_due(engine, f"C-{n}", due=NOW - timedelta(minutes=count - n)) for n in range(count)]


def what_it_says(received: Received) -> list[tuple[str, str]]:
    """A message's headers and each part's type and content, less what a retry writes anew:
    the Date and the MIME boundary (so the Content-Type of a multipart message)."""
    message = received.message
    headers = [(k, str(v)) for k, v in message.items() if k not in ("Date", "Content-Type")]
    parts = [
        (part.get_content_type(), str(part.get_content()))
        for part in message.walk()
        if not part.is_multipart()
    ]
    return headers + parts


def test_the_pipelined_message_is_the_one_sent_one_command_at_a_time(engine: Engine) -> None:
    """The same note, first refused at the end of DATA by a server without PIPELINING, then
    sent to one with it: the server reads the same message (its Date and MIME boundary, made
    anew for each attempt, aside)."""
    touch_id = add_due(engine, "C-1")
    one_by_one = Faulty(step="data", reply="451 4.3.0 Try later", times=1)
    with running(one_by_one) as port:
        assert run(engine, server(port)).counts == {"pending": 1}
    pipelined = Recorder(pipelining=True)
    with running(pipelined) as port:
        assert run(engine, server(port), NOW + timedelta(minutes=10)).counts == {"sent": 1}
    (refused,) = one_by_one.turned_away
    (received,) = pipelined.received
    assert pipelined.pipelined_envelopes == 1
    assert one_by_one.pipelined_envelopes == 0
    assert what_it_says(received) == what_it_says(Received("", [], refused, []))
    assert len(what_it_says(received)) > 6
    assert received.message["Message-ID"] == state(engine, touch_id)["message_id"]


@PIPELINING
@pytest.mark.parametrize(
    ("step", "reply", "status"),
    [
        ("mail", "553 5.1.8 Bad sender", "failed"),
        ("rcpt", "550 5.1.1 No such user", "failed"),
        ("mail", "451 4.3.0 Temporary lookup failure", "pending"),
        ("rcpt", "450 4.2.1 Mailbox busy", "pending"),
    ],
)
def test_a_refused_envelope_gives_its_reply_and_the_line_goes_on(
    engine: Engine, pipelining: bool, step: Any, reply: str, status: str
) -> None:
    """The refusal of MAIL or RCPT is the outcome (not the 503 that DATA then gets), and after
    RSET the next note goes on the same connection."""
    first, second = notes(engine, 2)
    faulty = Faulty(step=step, reply=reply, times=1, pipelining=pipelining)
    with running(faulty) as port:
        report = run(engine, server(port), config=ONE_LINE)
    assert report.counts == {status: 1, "sent": 1}
    refused = state(engine, first)
    assert refused["status"] == status
    assert refused["last_reply"] == reply
    assert reply in refused["reason"]
    assert state(engine, second)["status"] == "sent"
    assert faulty.connections == 1
    assert faulty.pipelined_envelopes == (2 if pipelining else 0)


@PIPELINING
@pytest.mark.parametrize("step", ["mail", "rcpt"])
def test_421_to_the_envelope_ends_the_line(engine: Engine, pipelining: bool, step: Any) -> None:
    """421: the server is closing; the line is dropped with neither RSET nor QUIT, and the
    run slows down (no new send) without spending the note's attempt."""
    first, second = notes(engine, 2)
    reply = "421 4.3.2 Shutting down"
    faulty = Faulty(step=step, reply=reply, times=1, pipelining=pipelining)
    with running(faulty) as port:
        report = run(engine, server(port), config=ONE_LINE)
    assert report.throttled is not None
    closing = state(engine, first)
    assert closing["status"] == "pending"
    assert closing["last_reply"] == reply
    assert closing["attempts"] == 0
    assert state(engine, second)["attempts"] == 0
    assert faulty.connections == 1
    assert not [chunk for chunk in faulty.arrivals if b"RSET" in chunk or b"QUIT" in chunk]
    assert faulty.pipelined_envelopes == (1 if pipelining else 0)


@PIPELINING
@pytest.mark.parametrize("step", ["mail", "rcpt"])
def test_garbage_for_a_reply_to_the_envelope_is_retried_on_a_new_line(
    engine: Engine, pipelining: bool, step: Any
) -> None:
    first, second = notes(engine, 2)
    faulty = Faulty(step=step, reply=GARBAGE, times=1, pipelining=pipelining)
    with running(faulty) as port:
        report = run(engine, server(port), config=ONE_LINE)
    assert report.counts == {"pending": 1, "sent": 1}
    garbled = state(engine, first)
    assert garbled["status"] == "pending"
    assert "could not be understood" in garbled["reason"]
    assert GARBAGE in garbled["reason"]
    assert state(engine, second)["status"] == "sent"
    assert faulty.connections == 2


@PIPELINING
@pytest.mark.parametrize("step", ["mail", "rcpt"])
def test_a_line_dropped_at_the_envelope_is_retried(
    engine: Engine, pipelining: bool, step: Any
) -> None:
    first, second = notes(engine, 2)
    faulty = Faulty(step=step, action="drop", times=1, pipelining=pipelining)
    with running(faulty) as port:
        report = run(engine, server(port), config=ONE_LINE)
    assert report.counts == {"pending": 1, "sent": 1}
    assert state(engine, second)["status"] == "sent"
    lost = state(engine, first)
    assert lost["status"] == "pending"
    assert "connection lost before the message was sent" in lost["reason"]
    assert not any(r.rcpt_tos == ["c-0@example.com"] for r in faulty.received)
    assert faulty.connections == 2


@PIPELINING
def test_a_server_that_takes_data_after_refusing_the_recipient_gets_an_empty_message(
    engine: Engine, pipelining: bool
) -> None:
    """RFC 2920, 3.1: DATA's 354 after every RCPT was refused is answered by "." alone; the
    note itself never goes, its outcome is the refusal, and the line goes on."""
    first, second = notes(engine, 2)
    lax = Lax(reply="550 5.1.1 No such user", pipelining=pipelining)
    with running(lax) as port:
        report = run(engine, server(port), config=ONE_LINE)
    assert report.counts == {"failed": 1, "sent": 1}
    assert state(engine, first)["last_reply"] == "550 5.1.1 No such user"
    sent_data = [r.data for r in lax.received if r.data]
    (only,) = sent_data
    assert only.count(b"Message-ID:") == 1
    assert state(engine, second)["message_id"].encode() in only
    assert [r.data for r in lax.received if not r.data] == ([b""] if pipelining else [])
    assert lax.connections == 1


def _raw_server_outcome(engine: Engine, answers: dict[bytes, bytes]) -> dict[str, Any]:
    """The first of two notes sent to a raw server offering PIPELINING with `answers`."""
    first, _ = notes(engine, 2)
    with line_server(b"220 mail.example ESMTP\r\n", answers) as port:
        run(engine, server(port), config=ONE_LINE)
    return state(engine, first)


def test_a_refusal_then_garbage_keeps_the_refusal(engine: Engine) -> None:
    """MAIL refused, then garbage where RCPT's reply should be: the outcome is MAIL's
    refusal, as if RCPT had never been sent."""
    note = _raw_server_outcome(
        engine,
        {
            b"EHLO": EHLO_WITH_PIPELINING,
            b"MAIL": b"553 5.1.8 Bad sender\r\n",
            b"RCPT": GARBAGE.encode() + b"\r\n",
            b"DATA": b"503 5.5.1 Error: need RCPT command\r\n",
        },
    )
    assert note["status"] == "failed"
    assert note["last_reply"] == "553 5.1.8 Bad sender"


def test_a_server_out_of_step_is_retried_without_the_message(engine: Engine) -> None:
    """354 to MAIL: the server would read RCPT and DATA as a message. The note is retried
    later, as one by one, and its message is never written to that line."""
    note = _raw_server_outcome(
        engine, {b"EHLO": EHLO_WITH_PIPELINING, b"MAIL": b"354 go ahead\r\n"}
    )
    assert note["status"] == "pending"
    assert "unexpected reply: 354 go ahead" in note["reason"]


def test_replies_in_one_packet_and_a_multiline_reply_are_all_read(engine: Engine) -> None:
    """A server that answers the three commands in one write, one of them on several lines."""
    first, second = notes(engine, 2)
    answers = {
        b"EHLO": EHLO_WITH_PIPELINING,
        b"MAIL": b"",
        b"RCPT": b"",
        b"DATA": b"250-2.1.0 Ok\r\n250 2.1.0 sender ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n",
    }
    with line_server(b"220 mail.example ESMTP\r\n", answers) as port:
        report = run(engine, server(port), config=ONE_LINE)
    assert report.counts == {"sent": 2}
    assert state(engine, first)["last_reply"] == "250 2.0.0 Ok: queued"
    assert state(engine, second)["status"] == "sent"


@pytest.mark.parametrize(
    "arrived",
    [
        b"250 2.1.0 Ok\r\n",
        b"250-mail.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
        b"250-first\r\n",  # not whole yet
        b"250",
        b"354\r\n",
        b"Hello? This is not SMTP\r\n",
        b"250-first\r\nnot a reply\r\n",
        b"250 " + b"x" * 9000 + b"\r\n",
    ],
)
def test_a_reply_is_read_as_aiosmtplib_reads_it(arrived: bytes) -> None:
    """`parse_reply` against aiosmtplib's own reading of the same bytes."""

    def read(parse: Any, buffer: bytearray) -> Any:
        try:
            return parse(), bytes(buffer)
        except SMTPResponseException as error:
            return error.code, error.message

    ours = bytearray(arrived)
    loop = asyncio.new_event_loop()  # aiosmtplib's protocol wants one; nothing runs on it
    try:
        theirs = SMTPProtocol(loop=loop)
    finally:
        loop.close()
    theirs._buffer.extend(arrived)
    assert read(lambda: parse_reply(ours), ours) == read(
        theirs._read_response_from_buffer, theirs._buffer
    )
