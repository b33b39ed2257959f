"""An inbound message stored once, matched to the note it answers, and acted on, in one
transaction: a message is either wholly recorded and acted on, or not at all (the caller may
offer it again).

Rules:
- Once: a message whose bytes (SHA-256) or Message-ID are already stored is a duplicate and
  changes nothing, however often it is read, by however many instances.
- Matching, first that finds a note: the return path's tag (VERP, `bounce_tag`), then the
  Message-IDs the message refers to (`reading.MessageFacts.refers_to`, each looked up among
  the notes' Message-IDs, which are unguessable). An emailed opt-out that names no note is
  matched by its sender: every customer with that address.
- A bounce or complaint whose return path carries a tag that fails its check is never acted
  on, even if it quotes a known Message-ID: it is `unmatched`, "forged or damaged tag".
- What is done (the `kind` stored):
  - `bounce`: the note becomes `bounced` (from sent or unknown) with the server's words; the
    address is undeliverable (`undeliverable_addresses`); the customer's open notes are
    suppressed, and no note goes to that address until it changes (an import, the owner).
  - `soft_bounce`: recorded on the note's history, nothing else; the third for one customer
    within SOFT_BOUNCE_WINDOW counts as a `bounce`.
  - `complaint`: the customer is opted out, source `complaint`.
  - `opt_out`: the customer is opted out, source `email`.
  - `auto_reply`: recorded, nothing else.
  - `reply`: the note's `replied_at` is set (the first reply's time is kept).
  - `unmatched`: nothing, with the reason; `seen_as` keeps what it looked like.
- The raw message is kept until `keep_raw_for` has passed: each recorder (a poll of the
  mailbox, a pipe call) first clears what has been kept long enough (`forget_raw`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from sqlalchemy import Connection, Engine, bindparam, func, or_, select, update

from scheduler.config.settings import Settings
from scheduler.inbound.classify import Verdict, classify
from scheduler.inbound.reading import MessageFacts, read_message
from scheduler.notes.bounce_tag import FORGED, read_tag, tag_key
from scheduler.store.db import write_transaction
from scheduler.store.models import metadata
from scheduler.store.opt_outs import SUPPRESSIBLE, Source, opt_out
from scheduler.store.touch_history import record_events
from scheduler.store.undeliverable import mark_undeliverable

inbound_messages = metadata.tables["inbound_messages"]
touches = metadata.tables["touches"]
customers = metadata.tables["customers"]
SOFT_BOUNCE_WINDOW = timedelta(days=30)
SOFT_BOUNCES_FOR_GOOD = 3
BOUNCEABLE = ("sent", "unknown")
"""A note in these statuses becomes `bounced` when its bounce comes."""
MACHINE_KINDS = ("bounce", "soft_bounce", "complaint")

# Built once: a poll runs them for every message (SQLAlchemy then reuses their compiled form).
_ALREADY_STORED = (
    select(inbound_messages.c.id)
    .where(
        or_(
            inbound_messages.c.digest == bindparam("digest"),
            inbound_messages.c.message_id == bindparam("message_id"),
        )
    )
    .limit(1)
)
_STORE = inbound_messages.insert().returning(inbound_messages.c.id)
_NOTE_COLUMNS = (touches.c.id, touches.c.customer_id, touches.c.status, touches.c.message_id)
_NOTE_BY_ID = select(*_NOTE_COLUMNS).where(touches.c.id == bindparam("touch_id"))
_NOTES_BY_MESSAGE_ID = select(*_NOTE_COLUMNS).where(
    touches.c.message_id.in_(bindparam("ids", expanding=True))
)
_FIRST_REPLY = (
    update(touches)
    .where(touches.c.id == bindparam("touch_id"), touches.c.replied_at.is_(None))
    .values(replied_at=bindparam("now"))
)


@dataclass(frozen=True)
class InboundRules:
    """The settings that decide how a message is read (from `[inbound]` and `[business]`)."""

    bounce_address: str = ""
    unsubscribe_address: str = ""
    language: str = "en"
    keep_raw_for: timedelta = timedelta(days=30)

    @classmethod
    def of(cls, settings: Settings) -> InboundRules:
        """The rules a config sets (the language is its locale's: `de_DE` reads German)."""
        return cls(
            bounce_address=settings.inbound.bounce_address,
            unsubscribe_address=settings.business.unsubscribe_email,
            language=settings.business.locale.split("_")[0].lower(),
            keep_raw_for=settings.inbound.keep_raw_for,
        )


class Note(NamedTuple):
    """The note a message is about."""

    touch_id: int
    customer_id: int
    status: str


@dataclass(frozen=True)
class Recorded:
    """What became of one message."""

    kind: str
    """What was done (see the module's rules), or `duplicate`."""
    seen_as: str
    detail: str
    touch_id: int | None = None
    customer_ids: tuple[int, ...] = ()
    inbound_id: int | None = None
    notes_suppressed: int = 0


class InboundRecorder:
    """Records messages into one store under one set of rules (a poll of a mailbox, one pipe
    call); the tagging key is read once, at the first message."""

    def __init__(self, engine: Engine, rules: InboundRules) -> None:
        self.engine = engine
        self.rules = rules
        self._key: bytes | None = None
        self._tidied = False
        """Whether this recorder has dropped the raw messages kept long enough (once each)."""

    def record(self, raw: bytes, now: datetime) -> Recorded:
        """Read, store once, match and act on one raw message (see the module's rules)."""
        (recorded,) = self.record_many([raw], now)
        return recorded

    def record_many(self, raws: Sequence[bytes], now: datetime) -> list[Recorded]:
        """`record` for several messages in one transaction (a batch fetched from a mailbox):
        all are recorded, or none (and each is read again, the same, next time)."""
        rules = self.rules
        read = []
        for raw in raws:  # outside the transaction: reading takes longer than writing
            facts = read_message(raw)
            verdict = classify(
                facts, unsubscribe_address=rules.unsubscribe_address, language=rules.language
            )
            read.append((raw, facts, verdict, hashlib.sha256(raw).hexdigest()))
        with write_transaction(self.engine) as connection:
            if not self._tidied:
                forget_raw(connection, now)
                self._tidied = True
            return [self._store(connection, *message, now) for message in read]

    def _store(
        self,
        connection: Connection,
        raw: bytes,
        facts: MessageFacts,
        verdict: Verdict,
        digest: str,
        now: datetime,
    ) -> Recorded:
        seen = connection.execute(
            _ALREADY_STORED, {"digest": digest, "message_id": facts.message_id}
        ).first()
        if seen is not None:
            return Recorded("duplicate", verdict.kind, "this message was recorded before")
        recorded = _act(connection, facts, verdict, self._tagged(connection, facts, now), now)
        inbound_id = connection.execute(
            _STORE,
            {
                "received_at": now,
                "digest": digest,
                "message_id": facts.message_id,
                "kind": recorded.kind,
                "seen_as": recorded.seen_as,
                "touch_id": recorded.touch_id,
                "customer_id": recorded.customer_ids[0] if recorded.customer_ids else None,
                "sender": facts.sender[:320] or None,
                "subject": facts.subject or None,
                "detail": recorded.detail or None,
                "raw": raw,
                "keep_raw_until": now + self.rules.keep_raw_for,
            },
        ).scalar_one()
        return replace(recorded, inbound_id=inbound_id)

    def _tagged(
        self, connection: Connection, facts: MessageFacts, now: datetime
    ) -> int | Literal["forged"] | None:
        """The note the return path's tag names (see `bounce_tag.read_tag`)."""
        if not self.rules.bounce_address:
            return None
        if self._key is None:
            self._key = tag_key(connection, now)
        return read_tag(self.rules.bounce_address, self._key, facts.recipients)


def record_message(engine: Engine, raw: bytes, rules: InboundRules, now: datetime) -> Recorded:
    """Read, store once, match and act on one raw message (see `InboundRecorder`)."""
    return InboundRecorder(engine, rules).record(raw, now)


def forget_raw(connection: Connection, now: datetime) -> int:
    """Drop the raw bytes of messages kept long enough; how many."""
    done = connection.execute(
        update(inbound_messages)
        .where(inbound_messages.c.keep_raw_until < now, inbound_messages.c.raw.is_not(None))
        .values(raw=None)
    )
    return done.rowcount or 0


def _act(  # noqa: PLR0911 - one return per kind, as the module's rules list them
    connection: Connection,
    facts: MessageFacts,
    verdict: Verdict,
    tagged: int | Literal["forged"] | None,
    now: datetime,
) -> Recorded:
    if verdict.kind == "unreadable":
        return Recorded("unmatched", verdict.kind, verdict.detail)
    if tagged == FORGED and verdict.kind in MACHINE_KINDS:
        return Recorded("unmatched", verdict.kind, "forged or damaged tag in the return path")
    note = _note(connection, tagged if isinstance(tagged, int) else None, facts.refers_to)
    if note is None and verdict.kind == "opt_out":
        return _opt_out_by_sender(connection, facts, verdict, now)
    if note is None:
        return Recorded(
            "unmatched", verdict.kind, f"no note matches it ({verdict.kind}: {verdict.detail})"
        )
    touch_id, customer_id, _ = note
    match verdict.kind:
        case "bounce":
            return _bounce(connection, facts, verdict, note, now)
        case "soft_bounce":
            return _soft_bounce(connection, facts, verdict, note, now)
        case "complaint" | "opt_out":
            source: Source = "complaint" if verdict.kind == "complaint" else "email"
            choice = opt_out(connection, customer_id, now, source, verdict.detail[:200])
            return Recorded(
                verdict.kind,
                verdict.kind,
                verdict.detail,
                touch_id,
                (customer_id,),
                notes_suppressed=choice.notes,
            )
        case "reply":
            connection.execute(_FIRST_REPLY, {"touch_id": touch_id, "now": now})
    return Recorded(verdict.kind, verdict.kind, verdict.detail, touch_id, (customer_id,))


def _note(connection: Connection, tagged: int | None, refers_to: Sequence[str]) -> Note | None:
    """The note the message is about, or None."""
    if tagged is not None:
        row = connection.execute(_NOTE_BY_ID, {"touch_id": tagged}).first()
        if row is not None:
            return Note(row.id, row.customer_id, row.status)
    if not refers_to:
        return None
    rows = connection.execute(_NOTES_BY_MESSAGE_ID, {"ids": list(refers_to)}).all()
    by_id = {row.message_id: row for row in rows}
    for message_id in refers_to:
        if message_id in by_id:
            row = by_id[message_id]
            return Note(row.id, row.customer_id, row.status)
    return None


def _opt_out_by_sender(
    connection: Connection, facts: MessageFacts, verdict: Verdict, now: datetime
) -> Recorded:
    if not facts.sender:
        return Recorded("unmatched", "opt_out", "an opt-out from no address")
    found = connection.execute(
        select(customers.c.id)
        .where(func.lower(customers.c.email) == facts.sender)
        .order_by(customers.c.id)
    ).scalars()
    who = tuple(found)
    if not who:
        return Recorded("unmatched", "opt_out", f"no customer has the address {facts.sender}")
    suppressed = sum(
        opt_out(connection, customer_id, now, "email", verdict.detail[:200]).notes
        for customer_id in who
    )
    return Recorded("opt_out", "opt_out", verdict.detail, None, who, notes_suppressed=suppressed)


def _bounce(
    connection: Connection, facts: MessageFacts, verdict: Verdict, note: Note, now: datetime
) -> Recorded:
    touch_id, customer_id, status = note
    reason = f"bounced: {verdict.detail}"[:2000]
    if status in BOUNCEABLE:
        connection.execute(
            update(touches)
            .where(touches.c.id == touch_id)
            .values(status="bounced", reason=reason, updated_at=now)
        )
        record_events(connection, [(touch_id, "bounced", reason)], now)
    address = _bounced_address(connection, facts, customer_id)
    suppressed = 0
    if address:
        mark_undeliverable(connection, address, now, verdict.detail)
        suppressed = _suppress_open_notes(connection, customer_id, address, now)
    return Recorded(
        "bounce",
        verdict.kind,
        verdict.detail,
        touch_id,
        (customer_id,),
        notes_suppressed=suppressed,
    )


def _soft_bounce(
    connection: Connection, facts: MessageFacts, verdict: Verdict, note: Note, now: datetime
) -> Recorded:
    touch_id, customer_id, status = note
    earlier = connection.execute(
        select(func.count())
        .select_from(inbound_messages)
        .where(
            inbound_messages.c.customer_id == customer_id,
            inbound_messages.c.seen_as == "soft_bounce",
            inbound_messages.c.received_at > now - SOFT_BOUNCE_WINDOW,
        )
    ).scalar_one()
    if earlier + 1 >= SOFT_BOUNCES_FOR_GOOD:
        days = SOFT_BOUNCE_WINDOW.days
        lasting = Verdict(
            "bounce",
            f"{earlier + 1} temporary failures in {days} days; the last: {verdict.detail}",
        )
        found = _bounce(connection, facts, lasting, note, now)
        return Recorded(
            "bounce",
            "soft_bounce",
            lasting.detail,
            touch_id,
            (customer_id,),
            notes_suppressed=found.notes_suppressed,
        )
    record_events(connection, [(touch_id, status, f"delivery delayed: {verdict.detail}")], now)
    return Recorded("soft_bounce", "soft_bounce", verdict.detail, touch_id, (customer_id,))


def _bounced_address(connection: Connection, facts: MessageFacts, customer_id: int) -> str:
    """The address that bounced: the customer's own, lower-cased (a report naming another
    address, e.g. after the owner changed it, marks nothing)."""
    email = connection.execute(
        select(customers.c.email).where(customers.c.id == customer_id)
    ).scalar()
    current = (email or "").strip().lower()
    reported = {status.recipient for status in facts.statuses if status.recipient}
    if reported and current not in reported:
        return ""
    return current


def _suppress_open_notes(
    connection: Connection, customer_id: int, address: str, now: datetime
) -> int:
    reason = f"the address {address} bounced on {now.date().isoformat()}"
    stopped = connection.execute(
        update(touches)
        .where(touches.c.customer_id == customer_id, touches.c.status.in_(SUPPRESSIBLE))
        .values(
            status="suppressed",
            reason=reason,
            lease_owner=None,
            lease_until=None,
            updated_at=now,
        )
        .returning(touches.c.id)
    ).all()
    record_events(connection, [(row.id, "suppressed", reason) for row in stopped], now)
    return len(stopped)
