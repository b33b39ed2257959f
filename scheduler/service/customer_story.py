"""One customer's story for the console: who they are, whether they get notes, and everything
that happened between them and the business, the latest first.

Rules:
- The customer is named by the business's own id (`external_id`); an unknown id is None.
- The timeline holds orders, referrals (made and received), meetings, reviews (where, stars and
  the start of the words, escaped like every text), notes (by their due time,
  with status and reason), opt-out choices (who, when, how) and what came back from the
  customer (replies, bounces, complaints: `scheduler.inbound`), at most `limit` entries, the
  latest first; `more` says whether older ones were left out.
- Reads only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Connection, select

from scheduler.store.models import metadata
from scheduler.store.review_values import excerpt
from scheduler.store.types import aware_utc
from scheduler.store.undeliverable import bounced_since

customers = metadata.tables["customers"]
orders = metadata.tables["orders"]
referrals = metadata.tables["referrals"]
meetings = metadata.tables["meetings"]
reviews = metadata.tables["reviews"]
touches = metadata.tables["touches"]
opt_outs = metadata.tables["opt_outs"]
inbound_messages = metadata.tables["inbound_messages"]


@dataclass(frozen=True)
class Moment:
    """One entry of the timeline: when, what kind of thing, and what to say of it."""

    at: datetime
    what: str
    text: str
    touch_id: int | None = None
    status: str | None = None


@dataclass(frozen=True)
class CustomerStory:
    id: int
    facts: dict[str, Any]
    opted_out_at: datetime | None
    opted_out_how: str | None
    """The latest opt-out's source (one_click, page, import, ...), when opted out."""
    timeline: list[Moment]
    more: bool
    bounced: tuple[datetime, str] | None = None
    """When their address bounced for good, and why (no note goes to it)."""


def customer_story(
    connection: Connection, external_id: str, limit: int = 200
) -> CustomerStory | None:
    """The story of the customer with this id (see the module's rules)."""
    row = connection.execute(
        select(customers).where(customers.c.external_id == external_id)
    ).first()
    if row is None:
        return None
    facts = dict(row._mapping)
    who: int = facts["id"]
    timeline = _orders(connection, who, limit) + _referrals(connection, who, limit)
    timeline += _meetings(connection, who, limit) + _notes(connection, who, limit)
    timeline += _reviews(connection, who, limit)
    choices = _choices(connection, who, limit)
    timeline += choices + _came_back(connection, who, limit)
    timeline.sort(key=lambda moment: moment.at, reverse=True)
    latest_opt_out = [moment for moment in choices if moment.what.startswith("opt-out")][-1:]
    return CustomerStory(
        id=who,
        facts=facts,
        opted_out_at=aware_utc(facts["opted_out_at"]) if facts["opted_out_at"] else None,
        opted_out_how=(
            latest_opt_out[0].what.removeprefix("opt-out via ")
            if facts["opted_out_at"] and latest_opt_out
            else None
        ),
        timeline=timeline[:limit],
        more=len(timeline) > limit,
        bounced=bounced_since(connection, facts["email"]),
    )


def _orders(connection: Connection, who: int, limit: int) -> list[Moment]:
    rows = connection.execute(
        select(orders.c.placed_at, orders.c.amount, orders.c.external_id, orders.c.description)
        .where(orders.c.customer_id == who)
        .order_by(orders.c.placed_at.desc())
        .limit(limit + 1)
    )
    return [
        Moment(
            aware_utc(r.placed_at),
            "order",
            f"{r.external_id}: {r.amount}" + (f" ({r.description})" if r.description else ""),
        )
        for r in rows
    ]


def _referrals(connection: Connection, who: int, limit: int) -> list[Moment]:
    other = customers.alias("other")
    made = connection.execute(
        select(referrals.c.referred_on, other.c.external_id, other.c.name)
        .join(other, other.c.id == referrals.c.referred_id)
        .where(referrals.c.referrer_id == who)
        .order_by(referrals.c.referred_on.desc())
        .limit(limit + 1)
    )
    moments = [
        Moment(_day(r.referred_on), "referral", f"referred {r.name} ({r.external_id})")
        for r in made
    ]
    received = connection.execute(
        select(referrals.c.referred_on, other.c.external_id, other.c.name)
        .join(other, other.c.id == referrals.c.referrer_id)
        .where(referrals.c.referred_id == who)
    )
    moments += [
        Moment(_day(r.referred_on), "referral", f"referred by {r.name} ({r.external_id})")
        for r in received
    ]
    return moments


def _meetings(connection: Connection, who: int, limit: int) -> list[Moment]:
    rows = connection.execute(
        select(meetings.c.met_at, meetings.c.note)
        .where(meetings.c.customer_id == who)
        .order_by(meetings.c.met_at.desc())
        .limit(limit + 1)
    )
    return [Moment(aware_utc(r.met_at), "meeting", r.note or "") for r in rows]


def _reviews(connection: Connection, who: int, limit: int) -> list[Moment]:
    rows = connection.execute(
        select(reviews.c.reviewed_at, reviews.c.site, reviews.c.rating, reviews.c.text)
        .where(reviews.c.customer_id == who)
        .order_by(reviews.c.reviewed_at.desc())
        .limit(limit + 1)
    )
    moments = []
    for r in rows:
        parts = [f"on {r.site}" if r.site else "", f"{r.rating}/5" if r.rating else ""]
        said = " ".join(part for part in parts if part)
        words = excerpt(r.text, 120) if r.text else ""
        text = f"{said}: {words}" if said and words else said or words
        moments.append(Moment(aware_utc(r.reviewed_at), "review", text))
    return moments


def _notes(connection: Connection, who: int, limit: int) -> list[Moment]:
    rows = connection.execute(
        select(
            touches.c.id,
            touches.c.kind,
            touches.c.status,
            touches.c.reason,
            touches.c.subject,
            touches.c.due_at,
        )
        .where(touches.c.customer_id == who)
        .order_by(touches.c.due_at.desc())
        .limit(limit + 1)
    )
    return [
        Moment(
            aware_utc(r.due_at),
            f"note: {r.kind}",
            r.subject if r.status == "sent" and r.subject else (r.reason or r.subject or ""),
            touch_id=r.id,
            status=r.status,
        )
        for r in rows
    ]


def _choices(connection: Connection, who: int, limit: int) -> list[Moment]:
    rows = connection.execute(
        select(opt_outs.c.at, opt_outs.c.action, opt_outs.c.source, opt_outs.c.detail)
        .where(opt_outs.c.customer_id == who)
        .order_by(opt_outs.c.id)
        .limit(limit + 1)
    )
    return [
        Moment(
            aware_utc(r.at),
            f"{'opt-out' if r.action == 'opt_out' else 'resubscribed'} via {r.source}",
            r.detail or "",
        )
        for r in rows
    ]


def _came_back(connection: Connection, who: int, limit: int) -> list[Moment]:
    rows = connection.execute(
        select(
            inbound_messages.c.received_at,
            inbound_messages.c.kind,
            inbound_messages.c.detail,
            inbound_messages.c.touch_id,
        )
        .where(inbound_messages.c.customer_id == who)
        .order_by(inbound_messages.c.received_at.desc())
        .limit(limit + 1)
    )
    return [
        Moment(
            aware_utc(r.received_at),
            f"came back: {r.kind.replace('_', ' ')}",
            r.detail or "",
            touch_id=r.touch_id,
        )
        for r in rows
    ]


def _day(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)
