"""A mail server that throttles slows every sender down instead of burning the notes' attempts:
recognising it, the shared back-off (doubling, at most an hour, reset by an accepted message),
runs during it, and what `send`, `run --once`, `status` and the daemon say about it."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from scheduler.delivery.smtp_client import is_throttling
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import CliResult, Workspace, run_cli
from tests.smtp_servers import Faulty, Scripted, Throttling, line_server, running
from tests.test_daemon import add_due_now, configure, start_service, statuses, stop, wait_until
from tests.test_delivery import NOW, add_due, run, server, state
from tests.test_misbehaving_server import with_smtp

app_state = metadata.tables["app_state"]
STARTERS = Path(__file__).parent.parent / "templates"
TOO_MUCH_MAIL = "450 4.7.1 Error: too much mail from 127.0.0.1"


def backoff_on_record(engine: Engine) -> dict[str, Any] | None:
    """The shared back-off as the store keeps it (every instance reads it there), or None."""
    with engine.connect() as connection:
        value = connection.execute(
            select(app_state.c.value).where(app_state.c.name == "sending_throttled")
        ).scalar()
    return None if value is None else dict(json.loads(value))


def backoff_until(engine: Engine) -> datetime:
    found = backoff_on_record(engine)
    assert found is not None, "no back-off on record"
    return datetime.fromisoformat(found["until"])


# Recognising a throttling server ---------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "450 4.7.1 Error: too much mail from 203.0.113.9",  # Postfix's rate limit
        "421 4.7.0 mail.example Error: too many connections from 203.0.113.9",
        "421 Service not available, closing transmission channel",
        "451 4.7.1 rate limited",
        "452 4.3.2 System not accepting network messages",
        "451 4.4.5 Insufficient system storage, congestion",
        "450 Ratelimit exceeded for this sender",
        "451 Throttling failure: Maximum sending rate exceeded.",
        "450 Please slow down",
        "451 Requested action aborted: try again later",
        "450 Too many messages, back off",
    ],
)
def test_a_throttling_reply_is_recognised(reply: str) -> None:
    code, _, message = reply.partition(" ")
    assert is_throttling(int(code), message)


@pytest.mark.parametrize(
    "reply",
    [
        "450 4.2.2 Mailbox full",
        "451 4.3.0 Temporary lookup failure",
        "450 4.2.1 Mailbox busy",
        "452 4.2.2 Over quota",
        "451 4.3.20 Local problem",  # not 4.3.2
        "550 5.7.1 Too many bad recipients",  # permanent: fails, as any 5xx
    ],
)
def test_a_reply_about_one_note_is_not_throttling(reply: str) -> None:
    code, _, message = reply.partition(" ")
    assert not is_throttling(int(code), message)


# The shared back-off ------------------------------------------------------------------------------


def test_a_throttling_server_slows_every_sender_down_and_no_note_loses_attempts(
    engine: Engine,
) -> None:
    """30 notes, `max_attempts = 5`; the server accepts 3 messages, then says "too much mail"
    for six rounds (each after the back-off ran out), then accepts again."""
    ids = [add_due(engine, f"C-{n}") for n in range(30)]
    config = with_smtp(max_attempts=5, retry_after=timedelta(minutes=5))
    throttling = Throttling(accept=3, reply=TOO_MUCH_MAIL)
    with running(throttling) as port:
        first = run(engine, server(port), NOW, config=config)
        after_first = [state(engine, touch_id) for touch_id in ids]
        during = run(engine, server(port), NOW + timedelta(minutes=4), config=config, owner="other")
        at, waits = NOW, []
        for _ in range(5):  # still throttling after each back-off
            at = backoff_until(engine) + timedelta(minutes=1)
            again = run(engine, server(port), at, config=config)
            assert not again.counts.get("sent")
            waits.append(backoff_until(engine) - at)
        throttling.throttling = False
        last = run(
            engine, server(port), backoff_until(engine) + timedelta(seconds=1), config=config
        )

    assert sorted((note["status"], note["attempts"]) for note in after_first) == (
        [("pending", 0)] * 27 + [("sent", 1)] * 3  # the sent ones' attempt is the one that went
    )
    assert first.counts["sent"] == 3  # and the notes of its claim given back, not sent
    assert first.throttled is not None
    assert first.throttled.until == NOW + timedelta(minutes=5)
    assert first.throttled.reason == TOO_MUCH_MAIL
    # another instance, during the back-off: sends nothing, and says until when and why
    assert not during.counts
    assert during.throttled == first.throttled
    assert "no send starts before 2027-06-15 09:05 UTC" in during.throttled.line()
    # each throttle after a back-off ran out waits twice as long, at most an hour
    assert waits == [timedelta(minutes=m) for m in (10, 20, 40, 60, 60)]
    assert last.counts == {"sent": 27}
    notes = [state(engine, touch_id) for touch_id in ids]
    assert {note["status"] for note in notes} == {"sent"}
    assert max(note["attempts"] for note in notes) <= 1
    assert len({r.message["Message-ID"] for r in throttling.received}) == 30
    assert backoff_on_record(engine) is None  # an accepted message ended it


def test_an_ordinary_temporary_refusal_still_retries_that_note_alone(engine: Engine) -> None:
    full, *others = (add_due(engine, f"C-{n}") for n in range(5))
    scripted = Scripted(rcpt={"c-0@example.com": "450 4.2.2 Mailbox full"})
    with running(scripted) as port:
        report = run(engine, server(port))
    assert report.counts == {"pending": 1, "sent": 4}
    note = state(engine, full)
    assert (note["status"], note["attempts"]) == ("pending", 1)
    assert note["retry_at"] > NOW
    assert "attempt 1 failed (450 4.2.2 Mailbox full)" in note["reason"]
    assert {state(engine, touch_id)["status"] for touch_id in others} == {"sent"}
    assert backoff_on_record(engine) is None


def test_several_temporary_refusals_in_a_row_are_taken_for_throttling(engine: Engine) -> None:
    """Replies that do not say so, but every note gets one: after THROTTLE_AFTER (3) in a row
    the sender slows down; the first two spent an attempt, no other note does."""
    ids = [add_due(engine, f"C-{n}") for n in range(8)]
    lookup = "451 4.3.0 Temporary lookup failure"
    scripted = Scripted(rcpt={f"c-{n}@example.com": lookup for n in range(8)})
    with running(scripted) as port:
        report = run(engine, server(port), config=with_smtp(connections=1))
    notes = [state(engine, touch_id) for touch_id in ids]
    assert [note["attempts"] for note in notes] == [1, 1, 0, 0, 0, 0, 0, 0]
    assert {note["status"] for note in notes} == {"pending"}
    assert report.throttled is not None
    assert report.throttled.reason == f"3 temporary refusals in a row, the last: {lookup}"
    assert backoff_until(engine) == NOW + timedelta(minutes=5)


def test_a_refusal_that_says_try_again_later_slows_down_without_spending_an_attempt(
    engine: Engine,
) -> None:
    touch_id = add_due(engine, "C-1")
    faulty = Faulty(step="data", reply="451 4.3.0 Try again later", times=1)
    with running(faulty) as port:
        first = run(engine, server(port))
        waiting = state(engine, touch_id)
        too_soon = run(engine, server(port), NOW + timedelta(minutes=4))
        later = run(engine, server(port), NOW + timedelta(minutes=5))
    assert first.counts == {"pending": 1}
    assert waiting["attempts"] == 0
    assert waiting["retry_at"] == NOW + timedelta(minutes=5)
    assert "the mail server asked to slow down (451 4.3.0 Try again later)" in waiting["reason"]
    assert not too_soon.counts
    assert too_soon.throttled is not None
    assert later.counts == {"sent": 1}
    (received,) = faulty.received
    assert received.message["Message-ID"] == waiting["message_id"]


def test_a_greeting_that_says_too_many_connections_slows_down_and_pauses_nothing(
    engine: Engine,
) -> None:
    ids = [add_due(engine, f"C-{n}") for n in range(3)]
    greeting = b"421 4.7.0 mail.example Error: too many connections from 127.0.0.1\r\n"
    with line_server(greeting) as port:
        report = run(engine, server(port))
    assert report.paused is None
    assert report.throttled is not None
    assert "too many connections" in report.throttled.reason
    for touch_id in ids:
        note = state(engine, touch_id)
        assert (note["status"], note["attempts"]) == ("pending", 0)


# What the owner sees ------------------------------------------------------------------------------


def test_send_run_once_and_status_tell_until_when_and_why(migrated_workspace: Workspace) -> None:
    shutil.copytree(STARTERS, migrated_workspace.folder / "templates")
    engine = create_store_engine(migrated_workspace.database_url)
    try:
        ids = [add_due(engine, f"C-{n}") for n in range(4)]

        def cli(*args: str) -> CliResult:
            return run_cli("--config", migrated_workspace.path, *args)

        throttling = Throttling(accept=1, reply=TOO_MUCH_MAIL)
        with running(throttling) as port:
            with migrated_workspace.path.open("a", encoding="utf-8") as config:
                config.write(f'\n[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n')
                config.write('timeout_seconds = 5.0\nconnections = 1\nretry_after = "10m"\n')
            sent = cli("send", "--now", "2027-06-15T10:00:00Z")
            once = cli("run", "--once", "--now", "2027-06-15T10:05:00Z", "--format", "json")
        table = cli("status")
        shown = json.loads(cli("status", "--format", "json").stdout)
        notes = [state(engine, touch_id) for touch_id in ids]
    finally:
        engine.dispose()

    slowed = (
        f"SENDING SLOWED DOWN: the mail server is throttling ({TOO_MUCH_MAIL}); no send starts "
        "before 2027-06-15 10:10 UTC (throttled once)"
    )
    assert sent.exit_code == 0
    assert slowed in sent.stderr
    assert once.exit_code == 0
    cycle = json.loads(once.stdout)
    assert cycle["outcomes"] == {}
    assert cycle["throttled"] == {
        "until": "2027-06-15T10:10:00+00:00",
        "reason": TOO_MUCH_MAIL,
        "in_a_row": 1,
    }
    assert slowed in once.stderr
    assert shown["throttled"] == cycle["throttled"]
    assert shown["last_cycle"]["throttled"] == cycle["throttled"]
    assert slowed in table.stderr
    assert len(throttling.received) == 1
    assert sorted((note["status"], note["attempts"]) for note in notes) == (
        [("pending", 0)] * 3 + [("sent", 1)]
    )


def test_the_service_logs_a_throttle_loudly_and_keeps_running(
    migrated_workspace: Workspace,
) -> None:
    engine = create_store_engine(migrated_workspace.database_url)
    throttling = Throttling(accept=0, reply=TOO_MUCH_MAIL)
    try:
        with running(throttling) as port:
            configure(migrated_workspace, port)  # retry_after 5m, a delivery every second
            add_due_now(engine, 3)
            service = start_service(migrated_workspace, None)
            try:
                wait_until(
                    lambda: "SENDING IS SLOWED DOWN" in service.log.read_text(encoding="utf-8"),
                    "the throttle in the log",
                )
                assert service.process.poll() is None
            finally:
                code, log = stop(service)
        settled = statuses(engine)
        with engine.connect() as connection:
            attempts = connection.execute(select(metadata.tables["touches"].c.attempts)).all()
    finally:
        engine.dispose()
    assert code == 0, log
    line = next(line for line in log.splitlines() if "SENDING IS SLOWED DOWN" in line)
    assert " ERROR " in line
    assert TOO_MUCH_MAIL in line
    assert settled == {"pending": 3}
    assert {row.attempts for row in attempts} == {0}
