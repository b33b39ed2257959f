"""What comes back, acted on in the store, on both databases: a note goes out through a real
SMTP server with its tagged return path, and the bounce, complaint or reply that answers it
finds it, does what it should, once, and nothing a forger sends can mark another note."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update

from scheduler.config.settings import InboundSettings, Settings
from scheduler.delivery.deliver import SendReport
from scheduler.inbound.record import InboundRules, Recorded, forget_raw, record_message
from scheduler.service.daily_summary import daily_summary
from scheduler.store.db import write_transaction
from scheduler.store.models import metadata
from tests.conftest import adas_bakery
from tests.smtp_servers import Received, Recorder, running
from tests.test_delivery import NOW, SETTINGS, add_due, history, run, server, state
from tests.test_detection import add_customer
from tests.test_inbound_reading import RECIPIENT, corpus

touches = metadata.tables["touches"]
customers = metadata.tables["customers"]
inbound_messages = metadata.tables["inbound_messages"]
opt_outs = metadata.tables["opt_outs"]
undeliverable = metadata.tables["undeliverable_addresses"]
BOUNCES = "bounces+{tag}@example.com"
TAGGED = Settings(
    business=adas_bakery(unsubscribe_email="unsubscribe@example.com"),
    smtp=SETTINGS.smtp,
    inbound=InboundSettings(bounce_address=BOUNCES),
)
RULES = InboundRules(
    bounce_address=BOUNCES, unsubscribe_address="unsubscribe@example.com", language="en"
)
LATER = NOW + timedelta(hours=3)


@dataclass(frozen=True)
class SentNote:
    touch_id: int
    customer_id: int
    mail_from: str
    message_id: str
    address: str

    @property
    def tag(self) -> str:
        return self.mail_from.removeprefix("bounces+").removesuffix("@example.com")


def deliver(
    engine: Engine, settings: Settings = TAGGED, at: datetime = NOW
) -> tuple[SendReport, list[Received]]:
    """One delivery run through a real SMTP server; what it sent."""
    recorder = Recorder()
    with running(recorder) as port:
        report = run(engine, server(port), at, config=settings)
    return report, recorder.received


def send_one(engine: Engine, external_id: str = "C-1", settings: Settings = TAGGED) -> SentNote:
    """A birthday note sent through a real SMTP server, and what its envelope said."""
    touch_id = add_due(engine, external_id)
    report, (received,) = deliver(engine, settings)
    assert report.counts == {"sent": 1}
    return SentNote(
        touch_id,
        state(engine, touch_id)["customer_id"],
        received.mail_from,
        str(received.message["Message-ID"]),
        received.rcpt_tos[0],
    )


def came_back(
    engine: Engine,
    name: str,
    sent: SentNote,
    *,
    rules: InboundRules = RULES,
    at: datetime = LATER,
    tag: str | None = None,
    message_id: str | None = None,
) -> Recorded:
    """The corpus message `name`, answering `sent`, recorded."""
    raw = corpus(name, tag=tag or sent.tag, message_id=message_id or sent.message_id)
    return record_message(engine, raw.replace(RECIPIENT.encode(), sent.address.encode()), rules, at)


def delay_report(sent: SentNote, name: str) -> bytes:
    """Gmail's "delayed" report about `sent`, with a Message-ID of its own (`name`)."""
    raw = corpus("gmail_dsn_delay.eml", tag=sent.tag, message_id=sent.message_id)
    raw = raw.replace(RECIPIENT.encode(), sent.address.encode())
    return raw.replace(b"abcdGMR@mx.google.com", f"{name}@mx.google.com".encode())


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as connection:
        found: int = connection.execute(
            select(func.count()).select_from(table).where(*where)
        ).scalar_one()
    return found


def customer(engine: Engine, customer_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(select(customers).where(customers.c.id == customer_id)).one()
    return dict(row._mapping)


def test_every_note_goes_out_with_its_own_authenticated_return_path(engine: Engine) -> None:
    first = send_one(engine, "C-1")
    second = send_one(engine, "C-2")
    assert first.tag[:8] != second.tag[:8]  # neighbouring notes' tags share nothing
    for sent in (first, second):
        assert sent.mail_from.startswith("bounces+")
        assert sent.mail_from.endswith("@example.com")
    untagged = send_one(engine, "C-3", TAGGED.model_copy(update={"inbound": InboundSettings()}))
    assert untagged.mail_from == "ada@example.com"


def test_a_permanent_bounce_marks_the_note_and_stops_notes_to_that_address(
    engine: Engine,
) -> None:
    sent = send_one(engine)
    waiting = add_due(engine, "C-9", due=NOW + timedelta(days=2))
    with engine.begin() as connection:  # a second note of the same customer, still to go
        connection.execute(
            update(touches)
            .where(touches.c.id == waiting)
            .values(customer_id=sent.customer_id, occasion_key="follow_up:A-1")
        )
    done = came_back(engine, "postfix_dsn_user_unknown.eml", sent)
    assert (done.kind, done.touch_id, done.notes_suppressed) == ("bounce", sent.touch_id, 1)
    note = state(engine, sent.touch_id)
    assert note["status"] == "bounced"
    assert note["reason"].startswith("bounced: 5.1.1 550 5.1.1")
    assert history(engine, sent.touch_id)[-1] == "bounced"
    assert state(engine, waiting)["status"] == "suppressed"
    assert f"the address {sent.address} bounced" in state(engine, waiting)["reason"]
    assert count(engine, undeliverable, undeliverable.c.address == sent.address) == 1


def test_a_new_note_to_an_address_that_bounced_is_suppressed_until_the_address_changes(
    engine: Engine,
) -> None:
    sent = send_one(engine)
    came_back(engine, "gmail_dsn_failure.eml", sent)
    later_note = add_due(engine, "C-2", due=LATER)
    with engine.begin() as connection:
        connection.execute(
            update(touches)
            .where(touches.c.id == later_note)
            .values(customer_id=sent.customer_id, occasion_key="follow_up:A-2")
        )
        connection.execute(  # the same address, written in capitals by an import
            update(customers)
            .where(customers.c.id == sent.customer_id)
            .values(email=sent.address.upper())
        )
    report, received = deliver(engine, at=LATER)
    assert (report.counts, received) == ({"suppressed": 1}, [])
    assert "bounced on" in state(engine, later_note)["reason"]

    another = add_due(engine, "C-3", due=LATER)
    with engine.begin() as connection:
        connection.execute(
            update(touches)
            .where(touches.c.id == another)
            .values(customer_id=sent.customer_id, occasion_key="follow_up:A-3")
        )
        connection.execute(
            update(customers)
            .where(customers.c.id == sent.customer_id)
            .values(email="dana.new@customer.example")
        )
    report, received = deliver(engine, at=LATER)
    assert report.counts == {"sent": 1}
    assert received[0].rcpt_tos == ["dana.new@customer.example"]


def test_bounces_in_every_format_find_their_note_by_message_id_alone(engine: Engine) -> None:
    untagged = TAGGED.model_copy(update={"inbound": InboundSettings()})
    for number, name in enumerate(
        ["exim_text_bounce.eml", "microsoft365_ndr.eml", "gmail_dsn_failure.eml"]
    ):
        sent = send_one(engine, f"C-{number}", untagged)
        done = came_back(engine, name, sent, rules=replace(RULES, bounce_address=""))
        assert (done.kind, done.touch_id) == ("bounce", sent.touch_id), name
        assert state(engine, sent.touch_id)["status"] == "bounced"


def test_soft_bounces_are_noted_and_the_third_in_30_days_counts_as_permanent(
    engine: Engine,
) -> None:
    sent = send_one(engine)
    for day in range(2):
        raw = delay_report(sent, f"delay{day}")
        done = record_message(engine, raw, RULES, LATER + timedelta(days=day))
        assert done.kind == "soft_bounce"
        assert state(engine, sent.touch_id)["status"] == "sent"
    assert history(engine, sent.touch_id) == ["sent", "sent", "sent"]
    raw = delay_report(sent, "delay-last")
    done = record_message(engine, raw, RULES, LATER + timedelta(days=20))
    assert (done.kind, done.seen_as) == ("bounce", "soft_bounce")
    assert done.detail.startswith("3 temporary failures in 30 days; the last: 4.4.1")
    assert state(engine, sent.touch_id)["status"] == "bounced"
    assert count(engine, undeliverable) == 1


def test_soft_bounces_further_apart_than_30_days_stay_soft(engine: Engine) -> None:
    sent = send_one(engine)
    for day in (0, 31, 62):
        raw = delay_report(sent, f"d{day}")
        assert record_message(engine, raw, RULES, LATER + timedelta(days=day)).kind == (
            "soft_bounce"
        )
    assert state(engine, sent.touch_id)["status"] == "sent"


def test_a_spam_complaint_opts_the_customer_out_at_once(engine: Engine) -> None:
    sent = send_one(engine)
    waiting = add_due(engine, "C-2", due=NOW + timedelta(days=5))
    with engine.begin() as connection:
        connection.execute(
            update(touches)
            .where(touches.c.id == waiting)
            .values(customer_id=sent.customer_id, occasion_key="follow_up:A-1")
        )
    done = came_back(engine, "arf_complaint.eml", sent)
    assert (done.kind, done.notes_suppressed) == ("complaint", 1)
    assert customer(engine, sent.customer_id)["opted_out_at"] == LATER
    with engine.connect() as connection:
        audit = connection.execute(select(opt_outs.c.source, opt_outs.c.action)).all()
    assert [tuple(row) for row in audit] == [("complaint", "opt_out")]
    assert state(engine, waiting)["status"] == "suppressed"
    assert state(engine, sent.touch_id)["status"] == "sent"


def test_a_reply_is_noted_on_the_note_and_the_first_reply_keeps_its_time(engine: Engine) -> None:
    sent = send_one(engine)
    done = came_back(engine, "reply_english.eml", sent)
    assert (done.kind, done.touch_id) == ("reply", sent.touch_id)
    assert done.detail.startswith("Thank you so much, that made my day!")
    assert "Happy birthday from all of us" not in done.detail
    came_back(engine, "reply_german.eml", sent, at=LATER + timedelta(days=1))
    note = state(engine, sent.touch_id)
    assert (note["status"], note["replied_at"]) == ("sent", LATER)


def test_an_auto_reply_is_recorded_and_changes_nothing(engine: Engine) -> None:
    sent = send_one(engine)
    done = came_back(engine, "outlook_out_of_office.eml", sent)
    assert (done.kind, done.touch_id) == ("auto_reply", sent.touch_id)
    note = state(engine, sent.touch_id)
    assert (note["status"], note["replied_at"]) == ("sent", None)
    assert customer(engine, sent.customer_id)["opted_out_at"] is None


def test_a_reply_asking_to_stop_opts_out_and_a_warm_one_does_not(engine: Engine) -> None:
    warm = send_one(engine, "C-1")
    assert came_back(engine, "keep_going_reply.eml", warm).kind == "reply"
    assert customer(engine, warm.customer_id)["opted_out_at"] is None
    stop = send_one(engine, "C-2")
    assert came_back(engine, "optout_reply_english.eml", stop).kind == "opt_out"
    assert customer(engine, stop.customer_id)["opted_out_at"] == LATER
    with engine.connect() as connection:
        sources = connection.execute(select(opt_outs.c.source)).scalars().all()
    assert sources == ["email"]


def test_an_email_to_the_unsubscribe_address_opts_out_every_customer_at_that_address(
    engine: Engine,
) -> None:
    sent = send_one(engine, "C-1")
    sibling = add_customer(engine, "C-2", email=sent.address.upper())
    stranger = add_customer(engine, "C-3")
    done = came_back(engine, "mailto_unsubscribe.eml", sent)
    assert done.kind == "opt_out"
    assert set(done.customer_ids) == {sent.customer_id, sibling}
    assert customer(engine, sibling)["opted_out_at"] == LATER
    assert customer(engine, stranger)["opted_out_at"] is None


def test_a_forged_bounce_marks_nothing_even_with_a_known_message_id(engine: Engine) -> None:
    victim = send_one(engine, "C-1")
    forger = send_one(engine, "C-2")
    bad_tag = forger.tag[:-2] + ("aa" if not forger.tag.endswith("aa") else "bb")
    done = came_back(engine, "postfix_dsn_user_unknown.eml", victim, tag=bad_tag)
    assert (done.kind, done.seen_as) == ("unmatched", "bounce")
    assert "forged or damaged tag" in done.detail
    assert state(engine, victim.touch_id)["status"] == "sent"
    assert count(engine, undeliverable) == 0


def test_a_bounce_whose_tag_names_another_note_marks_that_note_only(engine: Engine) -> None:
    first = send_one(engine, "C-1")
    second = send_one(engine, "C-2")
    done = came_back(engine, "postfix_dsn_user_unknown.eml", first, message_id="<x@y.z>")
    assert done.touch_id == first.touch_id
    assert state(engine, second.touch_id)["status"] == "sent"


def test_the_same_message_read_twice_is_recorded_once(engine: Engine) -> None:
    sent = send_one(engine)
    first = came_back(engine, "reply_english.eml", sent)
    again = came_back(engine, "reply_english.eml", sent, at=LATER + timedelta(hours=1))
    assert (first.kind, again.kind) == ("reply", "duplicate")
    assert count(engine, inbound_messages) == 1


def test_a_nul_in_a_header_or_a_report_is_dropped_and_the_message_acted_on(engine: Engine) -> None:
    """PostgreSQL keeps no NUL in text: one in a Subject, a Message-ID or a report's field must
    not make a message impossible to record (the mail server would offer it for ever)."""
    stop = send_one(engine, "C-1")
    raw = corpus("mailto_unsubscribe.eml").replace(RECIPIENT.encode(), stop.address.encode())
    raw = raw.replace(b"Subject: unsubscribe", b"Subject: unsub\x00scribe")
    raw = raw.replace(b"<mailto-unsub-0001@", b"<mailto-unsub-\x00@")
    done = record_message(engine, raw, RULES, LATER)
    assert (done.kind, done.customer_ids) == ("opt_out", (stop.customer_id,))
    assert customer(engine, stop.customer_id)["opted_out_at"] == LATER
    bounced = send_one(engine, "C-2")
    raw = corpus("postfix_dsn_user_unknown.eml", tag=bounced.tag, message_id=bounced.message_id)
    raw = raw.replace(RECIPIENT.encode(), bounced.address.encode())
    raw = raw.replace(b"Diagnostic-Code: smtp; 550", b"Diagnostic-Code: smtp; 550\x00")
    done = record_message(engine, raw, RULES, LATER)
    assert (done.kind, done.touch_id) == ("bounce", bounced.touch_id)
    assert "\x00" not in state(engine, bounced.touch_id)["reason"]
    with engine.connect() as connection:
        stored = connection.execute(select(inbound_messages.c.subject)).scalars().all()
    assert "unsubscribe" in stored


def test_a_message_id_longer_than_the_store_keeps_is_recorded_once(engine: Engine) -> None:
    sent = send_one(engine)
    long_id = "<" + "a" * 200 + "@" + "b" * 200 + ">"
    raw = corpus("reply_english.eml", tag=sent.tag, message_id=sent.message_id)
    raw = raw.replace(b"Message-ID:", f"Message-ID: {long_id}\r\nX-Was:".encode(), 1)
    first = record_message(engine, raw, RULES, LATER)
    again = record_message(engine, raw, RULES, LATER + timedelta(hours=1))
    assert (first.kind, first.touch_id, again.kind) == ("reply", sent.touch_id, "duplicate")


def test_what_matches_nothing_or_cannot_be_read_is_kept_as_unmatched(engine: Engine) -> None:
    garbage = record_message(engine, b"\x00\xff not an email at all", RULES, LATER)
    stranger = record_message(
        engine,
        b"From: someone@else.example\r\nSubject: hello\r\n\r\nWho are you?\r\n",
        RULES,
        LATER,
    )
    assert (garbage.kind, stranger.kind) == ("unmatched", "unmatched")
    assert stranger.seen_as == "reply"
    assert "no note matches it" in stranger.detail
    assert count(engine, inbound_messages, inbound_messages.c.kind == "unmatched") == 2


def test_the_raw_message_is_kept_for_its_time_and_then_forgotten(engine: Engine) -> None:
    sent = send_one(engine)
    came_back(
        engine, "reply_english.eml", sent, rules=replace(RULES, keep_raw_for=timedelta(days=2))
    )
    with write_transaction(engine) as connection:
        assert forget_raw(connection, LATER + timedelta(days=1)) == 0
        assert forget_raw(connection, LATER + timedelta(days=3)) == 1
    with engine.connect() as connection:
        row = connection.execute(select(inbound_messages.c.raw, inbound_messages.c.detail)).one()
    assert row.raw is None
    assert row.detail.startswith("Thank you so much")


def test_recording_clears_the_raw_messages_kept_long_enough(engine: Engine) -> None:
    sent = send_one(engine)
    one_day = replace(RULES, keep_raw_for=timedelta(days=1))
    came_back(engine, "reply_english.eml", sent, rules=one_day)
    came_back(engine, "outlook_out_of_office.eml", sent, at=LATER + timedelta(days=2))
    with engine.connect() as connection:
        kept = connection.execute(
            select(inbound_messages.c.kind, inbound_messages.c.raw).order_by(inbound_messages.c.id)
        ).all()
    assert [(row.kind, row.raw is None) for row in kept] == [
        ("reply", True),
        ("auto_reply", False),
    ]


def test_the_daily_summary_counts_what_went_out_and_the_replies_by_occasion(
    engine: Engine,
) -> None:
    answered = send_one(engine, "C-1")
    bounced = send_one(engine, "C-2")
    came_back(engine, "reply_english.eml", answered)
    came_back(engine, "postfix_dsn_user_unknown.eml", bounced)
    with engine.connect() as connection:
        line = daily_summary(connection, LATER + timedelta(hours=1))
        later = daily_summary(connection, LATER + timedelta(days=2))
    assert line == (
        "the last day: 2 notes sent; came back: 1 bounce, 1 reply; replies by occasion: 1 birthday"
    )
    assert later == "the last day: 0 notes sent"
