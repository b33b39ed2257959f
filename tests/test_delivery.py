"""Delivery against a real SMTP server (aiosmtpd) and a real store (SQLite and PostgreSQL):
each outcome, retries with the same Message-ID, leases, pauses, TLS, and two senders at once."""

from __future__ import annotations

import asyncio
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import Engine, insert, select, update

from scheduler.clock import FixedClock
from scheduler.config.settings import Settings, SmtpSettings
from scheduler.delivery.claims import claim, mark_sending
from scheduler.delivery.deliver import LONGEST_RETRY_WAIT, Sender, SendReport
from scheduler.delivery.smtp_client import ServerSettings
from scheduler.notes.dkim_signing import DkimSigner
from scheduler.notes.render import NoteRenderer
from scheduler.store.db import create_store_engine, write_transaction
from scheduler.store.models import metadata
from scheduler.store.opt_out_spool import OptOutSpool
from scheduler.store.schema import upgrade
from tests.conftest import adas_bakery
from tests.smtp_servers import WAIT, Faulty, Recorder, Scripted, certificates, free_port, running
from tests.test_detection import add_customer

touches = metadata.tables["touches"]
customers = metadata.tables["customers"]
touch_events = metadata.tables["touch_events"]
TEMPLATES = Path(__file__).parent.parent / "templates"
NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
PIPELINING = pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
"""Whether the server offers PIPELINING (then MAIL, RCPT and DATA go in one write)."""
SETTINGS = Settings(
    business=adas_bakery(),
    smtp=SmtpSettings(connections=2, max_attempts=3, retry_after=timedelta(minutes=5)),
)


def server(
    port: int,
    security: Literal["starttls", "tls", "none"] = "none",
    *,
    username: str = "",
    password: str | None = None,
    ca_file: Path | None = None,
) -> ServerSettings:
    return ServerSettings(
        "127.0.0.1", port, security, username, password, 1.0, str(ca_file) if ca_file else None
    )


@pytest.fixture
def certs(tmp_path: Path) -> Any:
    return certificates(tmp_path)


def add_due(engine: Engine, external_id: str, *, due: datetime = NOW, **customer: Any) -> int:
    """A customer with a birthday note due at `due`; the touch's id."""
    values = {"birth_month": 6, "birth_day": 15, **customer}
    who = add_customer(engine, external_id, **values)
    with engine.begin() as connection:
        touch_id: int = connection.execute(
            insert(touches).values(
                customer_id=who,
                kind="birthday",
                occasion_key="birthday:2027",
                status="pending",
                due_at=due,
                expires_at=due + timedelta(days=3),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    return touch_id


def run(engine: Engine, settings: ServerSettings, at: datetime = NOW, **options: Any) -> SendReport:
    """One delivery at `at` (options as for `sender_for`)."""
    return asyncio.run(sender_for(engine, settings, at, **options).run())


def sender_for(
    engine: Engine,
    settings: ServerSettings,
    at: datetime = NOW,
    *,
    config: Settings = SETTINGS,
    owner: str = "test-1",
    templates: Path = TEMPLATES,
    signer: DkimSigner | None = None,
    spool: OptOutSpool | None = None,
) -> Sender:
    return Sender(
        engine,
        config,
        settings,
        NoteRenderer(templates),
        FixedClock(at),
        owner=owner,
        rng=random.Random(7),
        signer=signer,
        spool=spool,
    )


def state(engine: Engine, touch_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(select(touches).where(touches.c.id == touch_id)).one()
        return dict(row._mapping)


def history(engine: Engine, touch_id: int) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(touch_events.c.status)
                .where(touch_events.c.touch_id == touch_id)
                .order_by(touch_events.c.id)
            ).scalars()
        )


@PIPELINING
def test_a_due_note_is_sent_once_and_kept_as_sent(engine: Engine, pipelining: bool) -> None:
    touch_id = add_due(engine, "C-1", name="Ann Lee")
    recorder = Recorder(pipelining=pipelining)
    with running(recorder) as port:
        report = run(engine, server(port))
        again = run(engine, server(port))
    assert report.counts == {"sent": 1}
    assert not again.counts
    assert recorder.pipelined_envelopes == (1 if pipelining else 0)
    (received,) = recorder.received
    assert received.rcpt_tos == ["c-1@example.com"]
    note = state(engine, touch_id)
    assert note["status"] == "sent"
    assert note["sent_at"] == NOW
    assert note["last_reply"] == "250 2.0.0 Ok: queued"
    assert received.message["Message-ID"] == note["message_id"]
    assert received.message["Subject"] == note["subject"]
    assert "Ann" in note["body_text"]
    assert note["headers"].startswith("From: ") or "From: " in note["headers"]
    assert history(engine, touch_id) == ["sent"]


def test_a_temporary_refusal_is_retried_later_with_the_same_message_id(engine: Engine) -> None:
    touch_id = add_due(engine, "C-1")
    faulty = Faulty(step="data", reply="451 4.3.0 Temporary lookup failure", times=1)
    with running(faulty) as port:
        first = run(engine, server(port))
        waiting = state(engine, touch_id)
        too_soon = run(engine, server(port), NOW + timedelta(minutes=1))
        later = run(engine, server(port), NOW + timedelta(minutes=10))
    assert first.counts == {"pending": 1}
    assert waiting["attempts"] == 1
    assert waiting["retry_at"] > NOW + timedelta(minutes=3)
    assert "451 4.3.0 Temporary lookup failure" in waiting["reason"]
    assert not too_soon.counts
    assert later.counts == {"sent": 1}
    (received,) = faulty.received
    assert (
        received.message["Message-ID"]
        == waiting["message_id"]
        == state(engine, touch_id)["message_id"]
    )
    assert history(engine, touch_id) == ["pending", "sent"]


@PIPELINING
@pytest.mark.parametrize(
    ("step", "reply"),
    [
        ("rcpt", "550 5.1.1 No such user"),
        ("data", "552 5.3.4 Message too big"),
        ("mail", "553 5.1.8 Bad sender"),
    ],
)
def test_a_permanent_refusal_fails_at_once_with_the_reply(
    engine: Engine, step: Any, reply: str, pipelining: bool
) -> None:
    touch_id = add_due(engine, "C-1")
    with running(Faulty(step=step, reply=reply, pipelining=pipelining)) as port:
        report = run(engine, server(port))
    assert report.counts == {"failed": 1}
    note = state(engine, touch_id)
    assert note["status"] == "failed"
    assert note["last_reply"] == reply
    assert reply in note["reason"]


@PIPELINING
def test_the_server_closing_with_421_is_temporary(engine: Engine, pipelining: bool) -> None:
    touch_id = add_due(engine, "C-1")
    faulty = Faulty(step="mail", reply="421 4.3.2 Shutting down", pipelining=pipelining)
    with running(faulty) as port:
        report = run(engine, server(port))
    assert report.counts == {"pending": 1}
    assert state(engine, touch_id)["retry_at"] is not None


def test_after_max_attempts_a_note_fails(engine: Engine) -> None:
    touch_id = add_due(engine, "C-1")
    with running(Faulty(step="rcpt", reply="450 4.2.1 Mailbox busy")) as port:
        for hours in range(3):
            run(engine, server(port), NOW + timedelta(hours=hours))
    note = state(engine, touch_id)
    assert note["status"] == "failed"
    assert note["attempts"] == 3
    assert note["reason"].startswith("gave up after 3 attempts: 450 4.2.1 Mailbox busy")


def test_the_wait_after_many_temporary_failures_stops_growing_at_a_year(engine: Engine) -> None:
    """The 60th attempt of a note that may have 100 (5 minutes doubled 59 times) was an
    OverflowError that ended the run; it waits at most LONGEST_RETRY_WAIT (+-20%) now."""
    touch_id = add_due(engine, "C-1")
    with engine.begin() as connection:
        connection.execute(update(touches).where(touches.c.id == touch_id).values(attempts=59))
    patient = SETTINGS.model_copy(
        update={"smtp": SETTINGS.smtp.model_copy(update={"max_attempts": 100})}
    )
    with running(Faulty(step="rcpt", reply="450 4.2.1 Mailbox busy")) as port:
        report = run(engine, server(port), config=patient)
    assert report.counts == {"pending": 1}
    note = state(engine, touch_id)
    assert note["attempts"] == 60
    wait = note["retry_at"] - NOW
    assert LONGEST_RETRY_WAIT * 0.8 <= wait <= LONGEST_RETRY_WAIT * 1.2


@PIPELINING
def test_a_line_lost_after_the_message_is_unknown_and_never_resent_by_itself(
    engine: Engine, pipelining: bool
) -> None:
    touch_id = add_due(engine, "C-1")
    faulty = Faulty(step="data", action="drop", times=1, pipelining=pipelining)
    with running(faulty) as port:
        report = run(engine, server(port))
        again = run(engine, server(port), NOW + timedelta(hours=1))
    assert report.counts == {"unknown": 1}
    assert not again.counts
    note = state(engine, touch_id)
    assert note["status"] == "unknown"
    assert "may have gone out" in note["reason"]


@PIPELINING
def test_a_server_that_hangs_times_out(engine: Engine, pipelining: bool) -> None:
    before = add_due(engine, "C-1")
    with running(Faulty(step="rcpt", action="hang", pipelining=pipelining)) as port:
        run(engine, server(port))
    assert state(engine, before)["status"] == "pending"  # not handed over: tried again later
    after = add_due(engine, "C-2")
    with running(Faulty(step="data", action="hang", pipelining=pipelining)) as port:
        run(engine, server(port), NOW + timedelta(minutes=1))
    assert state(engine, after)["status"] == "unknown"  # the whole message was sent


def test_a_delivery_stopped_mid_send_ends_at_once(engine: Engine) -> None:
    """Cancelling a delivery (the daemon's stop after `stop_within`) while the server sits on
    a note ends it at once: neither the reply nor a goodbye on that line is waited for (the
    server's timeout here is a minute)."""
    touch_id = add_due(engine, "C-1")
    hanging = Faulty(step="data", action="hang")

    async def stop_mid_send(port: int) -> None:
        sender = sender_for(engine, replace(server(port), timeout=60.0))
        delivery = asyncio.create_task(sender.run())
        while not hanging.faults:  # the server has the whole note and says nothing
            await asyncio.sleep(0.01)
        delivery.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(delivery, timeout=10)

    with running(hanging) as port:
        asyncio.run(stop_mid_send(port))
    assert state(engine, touch_id)["status"] == "sending"  # the daemon's release settles it


def test_a_refused_connection_is_retried(engine: Engine) -> None:
    touch_id = add_due(engine, "C-1")
    report = run(engine, server(free_port()))
    assert report.counts == {"pending": 1}
    assert "could not connect" in state(engine, touch_id)["reason"]


def test_a_refused_login_pauses_sending_for_every_note(engine: Engine, certs: Any) -> None:
    ids = [add_due(engine, f"C-{n}") for n in range(3)]
    recorder = Recorder()
    with running(recorder, tls="starttls", certs=certs, auth=True) as port:
        login = {"username": "ada", "ca_file": certs.ca_file}
        report = run(engine, server(port, "starttls", password="wrong", **login))
        again = run(engine, server(port, "starttls", password="right", **login))
    assert report.paused is not None
    assert "535" in report.paused
    assert again.paused == report.paused  # stays paused until the owner resumes
    assert not recorder.received
    for touch_id in ids:
        note = state(engine, touch_id)
        assert note["status"] == "pending"
        assert note["attempts"] == 0


@PIPELINING
def test_the_right_login_sends(engine: Engine, certs: Any, pipelining: bool) -> None:
    add_due(engine, "C-1")
    recorder = Recorder(pipelining=pipelining)
    with running(recorder, tls="starttls", certs=certs, auth=True) as port:
        login = server(port, "starttls", username="ada", password="right", ca_file=certs.ca_file)
        report = run(engine, login)
    assert report.counts == {"sent": 1}


@PIPELINING
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_with_a_validated_certificate(
    engine: Engine, certs: Any, security: Any, pipelining: bool
) -> None:
    """Pipelined over TLS too: the replies are read off the TLS transport (see pipelining)."""
    add_due(engine, "C-1")
    add_due(engine, "C-2")
    recorder = Recorder(pipelining=pipelining)
    with running(recorder, tls=security, certs=certs) as port:
        report = run(engine, server(port, security, ca_file=certs.ca_file))
    assert report.counts == {"sent": 2}
    assert recorder.pipelined_envelopes == (2 if pipelining else 0)


def test_a_certificate_from_an_unknown_authority_pauses_sending(engine: Engine, certs: Any) -> None:
    add_due(engine, "C-1")
    recorder = Recorder()
    with running(recorder, tls="tls", certs=certs) as port:
        report = run(engine, server(port, "tls"))  # the system's CAs do not know the test CA
    assert report.paused is not None
    assert not recorder.received


def test_starttls_required_but_not_offered_is_never_a_plaintext_send(engine: Engine) -> None:
    touch_id = add_due(engine, "C-1")
    recorder = Recorder()
    with running(recorder) as port:  # offers no STARTTLS
        report = run(engine, server(port, "starttls"))
    assert report.paused is not None
    assert "does not offer STARTTLS" in report.paused
    assert not recorder.received
    assert state(engine, touch_id)["status"] == "pending"


def test_an_address_the_server_cannot_take_is_held(engine: Engine) -> None:
    touch_id = add_due(engine, "C-1", email="josé@example.com")
    recorder = Recorder()
    with running(recorder, smtputf8=False) as port:
        report = run(engine, server(port))
    assert report.counts == {"held": 1}
    assert "SMTPUTF8" in state(engine, touch_id)["reason"]


@PIPELINING
def test_a_non_ascii_address_goes_out_with_smtputf8_when_the_server_offers_it(
    engine: Engine, pipelining: bool
) -> None:
    add_due(engine, "C-1", email="josé@example.com")
    add_due(engine, "C-2", email="ann@example.com")
    recorder = Recorder(pipelining=pipelining)
    with running(recorder) as port:
        report = run(engine, server(port))
    assert report.counts == {"sent": 2}
    by_recipient = {r.rcpt_tos[0]: r for r in recorder.received}
    assert by_recipient["josé@example.com"].options == ["SMTPUTF8"]
    assert by_recipient["ann@example.com"].options == []
    assert recorder.pipelined_envelopes == (2 if pipelining else 0)
    assert "josé@example.com" in str(by_recipient["josé@example.com"].message["To"])


def test_the_rate_limit_is_shared_by_every_connection(engine: Engine) -> None:
    for n in range(5):
        add_due(engine, f"C-{n}")
    recorder = Recorder()
    limited = SETTINGS.model_copy(
        update={"smtp": SETTINGS.smtp.model_copy(update={"max_per_minute": 600, "connections": 4})}
    )
    with running(recorder) as port:
        report = run(engine, server(port), config=limited)
    assert report.counts == {"sent": 5}
    arrivals = sorted(r.arrived for r in recorder.received)
    # 600 a minute: one every 0.1 s across the four connections, never four at once. One note
    # held up on its way (a busy machine) may arrive close to the next, but never three at once
    assert arrivals[-1] - arrivals[0] > 0.35, arrivals
    spans_of_three = [arrivals[n + 2] - arrivals[n] for n in range(len(arrivals) - 2)]
    assert min(spans_of_three) > 0.15, arrivals


def test_a_customer_who_opted_out_since_is_not_written_to(engine: Engine) -> None:
    touch_id = add_due(engine, "C-1", opted_out_at=NOW - timedelta(hours=1))
    recorder = Recorder()
    with running(recorder) as port:
        report = run(engine, server(port))
    assert report.counts == {"suppressed": 1}
    assert not recorder.received
    assert state(engine, touch_id)["reason"].startswith("opted out on")


def test_a_broken_template_fails_its_note_only(engine: Engine, tmp_path: Path) -> None:
    for template in TEMPLATES.glob("*.j2"):
        (tmp_path / template.name).write_text(
            template.read_text(encoding="utf-8"), encoding="utf-8"
        )
    (tmp_path / "birthday.vip.j2").write_text(
        '{% extends "birthday.j2" %}{% block subject %}{{ customer.nickname }}{% endblock %}',
        encoding="utf-8",
    )
    broken = add_due(engine, "C-1")
    fine = add_due(engine, "C-2")
    with engine.begin() as connection:
        run_id = connection.execute(
            insert(metadata.tables["ltv_runs"]).values(
                computed_at=NOW, as_of=NOW.date(), model="simple", reason="test", customers=1
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        connection.execute(
            insert(metadata.tables["customer_values"]).values(
                customer_id=state(engine, broken)["customer_id"],
                run_id=run_id,
                historical=100,
                predicted=0,
                referral=0,
                total=100,
                tier="vip",
            )
        )
    recorder = Recorder()
    with running(recorder) as port:
        report = run(engine, server(port), templates=tmp_path)
    assert report.counts == {"failed": 1, "sent": 1}
    assert state(engine, fine)["status"] == "sent"
    reason = state(engine, broken)["reason"]
    assert "birthday.vip.j2:1" in reason
    assert "nickname" in reason


def copy_of_starters(folder: Path) -> Path:
    for template in TEMPLATES.glob("*.j2"):
        (folder / template.name).write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
    return folder


def test_a_note_looping_past_its_deadline_fails_alone_and_the_others_go(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    templates = copy_of_starters(tmp_path)
    (templates / "birthday.j2").write_text(
        '{% extends "_layout.j2" %}\n{% block subject %}Happy birthday{% endblock %}\n'
        "{% block message %}\n{% if customer.attributes.notes is defined %}\n"
        "{% for a in customer.attributes.notes %}{% for b in customer.attributes.notes %}"
        "{% endfor %}{% endfor %}\n{% endif %}\nMany happy returns.\n{% endblock %}\n",
        encoding="utf-8",
    )
    looping = add_due(engine, "C-loop", attributes={"notes": "x" * 45_000})
    fine = [add_due(engine, f"C-{n}") for n in range(3)]
    recorder = Recorder()
    sender = Sender(
        engine,
        SETTINGS,
        server(0),
        NoteRenderer(templates, timeout=0.5),
        FixedClock(NOW),
        owner="test-1",
        rng=random.Random(7),
    )
    with running(recorder) as port, caplog.at_level(logging.INFO, logger="appreciate"):
        sender.server = server(port)
        report = asyncio.run(sender.run())
    assert report.counts == {"failed": 1, "sent": 3}
    assert all(state(engine, touch_id)["status"] == "sent" for touch_id in fine)
    reason = state(engine, looping)["reason"]
    assert reason.startswith("template problem: birthday.j2:5: writing the note took longer")
    assert "0.5 s" in reason
    assert sender.template_problems == {reason.removeprefix("template problem: "): 1}
    assert len(recorder.received) == 3
    logged = [record.getMessage() for record in caplog.records]
    assert f"touch {looping} birthday customer C-loop failed: {reason}" in logged
    assert f"touch {fine[0]} birthday customer C-0 sent" in logged


def test_a_stop_while_a_note_is_written_gives_every_claimed_note_back(
    engine: Engine, tmp_path: Path
) -> None:
    templates = copy_of_starters(tmp_path)
    (templates / "birthday.j2").write_text(
        '{% extends "_layout.j2" %}{% block subject %}Hi{% endblock %}{% block message %}'
        "{% for a in customer.attributes.notes %}{% for b in customer.attributes.notes %}"
        "{% endfor %}{% endfor %}{% endblock %}",
        encoding="utf-8",
    )
    touch_ids = [add_due(engine, f"C-{n}", attributes={"notes": "x" * 45_000}) for n in range(3)]
    recorder = Recorder()
    sender = Sender(
        engine,
        SETTINGS,
        server(0),
        NoteRenderer(templates, timeout=None),  # only the stop can end these notes
        FixedClock(NOW),
        owner="test-1",
    )

    async def run_then_stop() -> SendReport:
        delivery = asyncio.create_task(sender.run())
        deadline = asyncio.get_running_loop().time() + 30
        while not any(state(engine, t)["status"] == "claimed" for t in touch_ids):
            assert asyncio.get_running_loop().time() < deadline, "no note was claimed"
            await asyncio.sleep(0.01)  # the event loop stays free while notes are written
        sender.stop("appreciate is stopping")
        return await asyncio.wait_for(delivery, timeout=30)

    with running(recorder) as port:
        sender.server = server(port)
        report = asyncio.run(run_then_stop())
    assert report.counts == {"pending": 3}
    for touch_id in touch_ids:
        note = state(engine, touch_id)
        assert (note["status"], note["lease_owner"]) == ("pending", None)
        assert note["reason"] == "not sent: appreciate is stopping"
        assert note["attempts"] == 0
    assert not recorder.received


def test_a_dead_senders_notes_are_taken_up_again_or_marked_unknown(engine: Engine) -> None:
    claimed, in_flight = add_due(engine, "C-1"), add_due(engine, "C-2")
    with engine.begin() as connection:
        for touch_id, status in ((claimed, "claimed"), (in_flight, "sending")):
            connection.execute(
                update(touches)
                .where(touches.c.id == touch_id)
                .values(status=status, lease_owner="dead:1", lease_until=NOW - timedelta(minutes=1))
            )
    recorder = Recorder()
    with running(recorder) as port:
        report = run(engine, server(port))
    assert report.requeued == 1
    assert state(engine, claimed)["status"] == "sent"
    assert state(engine, in_flight)["status"] == "unknown"
    assert len(recorder.received) == 1


def test_marking_a_note_as_being_sent_restarts_its_lease(engine: Engine) -> None:
    touch_id = add_due(engine, "C-1")
    with write_transaction(engine) as connection:
        [claimed] = claim(connection, "one", NOW, timedelta(minutes=10), 10)
    later = NOW + timedelta(minutes=7)
    with write_transaction(engine) as connection:
        assert not mark_sending(connection, touch_id, "other", later, timedelta(minutes=10))
        assert mark_sending(connection, claimed.id, "one", later, timedelta(minutes=10))
        assert not mark_sending(connection, touch_id, "one", later, timedelta(minutes=10))
    note = state(engine, touch_id)
    assert note["status"] == "sending"
    assert note["lease_owner"] == "one"
    assert note["lease_until"] == later + timedelta(minutes=10)
    assert note["updated_at"] == later


def test_a_sender_that_lost_its_lease_writes_nothing(engine: Engine) -> None:
    touch_id = add_due(engine, "C-1")
    with engine.begin() as connection:
        connection.execute(
            update(touches)
            .where(touches.c.id == touch_id)
            .values(status="claimed", lease_owner="other:2", lease_until=NOW + timedelta(minutes=5))
        )
    recorder = Recorder()
    with running(recorder) as port:
        report = run(engine, server(port))
    assert not report.counts
    assert state(engine, touch_id)["lease_owner"] == "other:2"


def test_two_senders_at_once_send_each_note_exactly_once(database_url: str) -> None:
    engines = [create_store_engine(database_url) for _ in range(2)]
    try:
        upgrade(engines[0])
        ids = [add_due(engines[0], f"C-{n}") for n in range(120)]
        recorder = Recorder()
        with running(recorder) as port, ThreadPoolExecutor(2) as pool:
            reports = list(
                pool.map(lambda n: run(engines[n], server(port), owner=f"sender-{n}"), range(2))
            )
        assert sum(report.counts["sent"] for report in reports) == 120
        assert len(recorder.received) == 120
        assert len({r.message["Message-ID"] for r in recorder.received}) == 120
        assert {state(engines[0], touch_id)["status"] for touch_id in ids} == {"sent"}
    finally:
        for engine in engines:
            engine.dispose()


def test_a_second_sender_gets_work_while_the_first_is_busy(engine: Engine) -> None:
    """Claims hold what the connections send in a moment, not every note due: while the
    first sender's two connections wait on the server, a second sender takes the rest."""
    ids = [add_due(engine, f"C-{n}") for n in range(40)]
    held = Scripted(together=2)  # the first two messages wait for the test

    async def two_senders(port: int) -> tuple[SendReport, SendReport]:
        first = sender_for(engine, replace(server(port), timeout=WAIT), owner="first")
        sending = asyncio.create_task(first.run())
        assert await asyncio.to_thread(held.all_in.wait, WAIT)
        second = await asyncio.to_thread(run, engine, server(port), owner="second")
        held.release.set()
        return await sending, second

    with running(held) as port:
        first, second = asyncio.run(two_senders(port))
    assert second.counts["sent"] >= 30
    assert first.counts["sent"] + second.counts["sent"] == 40
    assert len({r.message["Message-ID"] for r in held.received}) == len(held.received) == 40
    assert {state(engine, touch_id)["status"] for touch_id in ids} == {"sent"}
